"""What the rule language's expressions and comparisons mean: the one definition.

docs/language.md states it for authors; this module is it for the code. The explainer,
why-not, the checker's exploration and the pyDatalog engine's arithmetic functions call
these; the DuckDB compiler (`sql.py`) emits SQL that means the same, and
`tests/test_semantics.py` runs one table of cases through all of them. The proof
checker's reference evaluator (`reference.py`) keeps its own few lines on purpose: it
must not trust this module (docs/verify.md).

The rule that makes the rest follow: an expression that divides by zero, or whose
result is not a number (`inf - inf`), has **no value**. A literal that needs it fails:
an assignment binds nothing, every comparison (`!=` included) is false, `min`, `max`
and `abs` of it have no value, and a head that needs it concludes nothing. Inside the
engines "no value" travels as NaN (pyDatalog fails to bind a variable to NaN, and SQL
carries it as NULL); nothing outside them ever sees a NaN.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from reasoner.language.syntax import BinOp, Call, Const, Expr, Setting, Value, Var

NO_VALUE = math.nan
"""What an expression without a value evaluates to inside an evaluator."""


class Unbound(Exception):
    """An expression mentions a variable that has no value yet."""


def has_value(v: Value) -> bool:
    """False only for NO_VALUE (a NaN)."""
    return not (isinstance(v, float) and v != v)


def values_equal(a: Value, b: Value) -> bool:
    """Equality of constants: 38 equals 38.0, a number never equals a string, and a
    missing value equals nothing."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b  # NaN == anything is False, as it should be


def arithmetic(op: str, a: Value, b: Value) -> Value:
    """`a op b` for `+ - * /`; NO_VALUE when either has none or b is a zero divisor."""
    if not (has_value(a) and has_value(b)):
        return NO_VALUE
    if op == "+":
        out = a + b  # type: ignore[operator]
    elif op == "-":
        out = a - b  # type: ignore[operator]
    elif op == "*":
        out = a * b  # type: ignore[operator]
    elif op == "/":
        if b == 0:
            return NO_VALUE
        out = a / b  # type: ignore[operator]
    else:
        raise ValueError(f"unknown operator {op!r}")
    return out if has_value(out) else NO_VALUE


def divide(a: Value, b: Value) -> Value:
    """`a / b` (the one operator that can lose the value of defined operands)."""
    return arithmetic("/", a, b)


def minimum(*args: Value) -> Value:
    """`min(...)`: NO_VALUE when any argument has none (Python's own min would keep or
    drop a NaN depending on where it stands)."""
    if not all(has_value(a) for a in args):
        return NO_VALUE
    return min(args)  # type: ignore[type-var]


def maximum(*args: Value) -> Value:
    """`max(...)`, with `minimum`'s rule for missing values."""
    if not all(has_value(a) for a in args):
        return NO_VALUE
    return max(args)  # type: ignore[type-var]


def absolute(a: Value) -> Value:
    """`abs(a)`."""
    return abs(a) if has_value(a) else NO_VALUE  # type: ignore[arg-type]


FUNCTIONS = {"min": minimum, "max": maximum, "abs": absolute}
"""The built-in functions by name, as rules spell them."""


def compare(op: str, a: Value, b: Value) -> bool:
    """`a op b` for `= != < <= > >=`. Order comparisons take numbers only (false with a
    string on either side); every comparison with a missing value is false."""
    if not (has_value(a) and has_value(b)):
        return False
    if op == "=":
        return values_equal(a, b)
    if op == "!=":
        return not values_equal(a, b)
    if isinstance(a, str) or isinstance(b, str):
        return False
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    raise ValueError(f"unknown comparison {op!r}")


def aggregate(func: str, values: Sequence[Value]) -> Value | None:
    """An aggregate's value over one group's rows (`values`: one per distinct row; for
    `count` only their number matters). `count` and `sum` of no rows are 0; `min` and
    `max` of no rows are None: no value, the rule does not fire for that group. A sum is
    exact over whole numbers and correctly rounded (`math.fsum`) otherwise, so it never
    depends on the order rows came in."""
    if func == "count":
        return len(values)
    if func == "sum":
        if all(isinstance(v, int) for v in values):
            return sum(values)  # type: ignore[arg-type]
        return math.fsum(values)  # type: ignore[arg-type]
    if not values:
        return None
    if func == "min":
        return min(values)  # type: ignore[type-var]
    if func == "max":
        return max(values)  # type: ignore[type-var]
    raise ValueError(f"unknown aggregate {func!r}")


def evaluate(expr: Expr, env: Mapping[str, Value], settings: Mapping[str, Value]) -> Value:
    """The value of `expr` with variables from `env` (NO_VALUE when it has none).
    Raises `Unbound` for a variable `env` lacks."""
    if isinstance(expr, Var):
        if expr.name not in env:
            raise Unbound(expr.name)
        return env[expr.name]
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Setting):
        return settings[expr.name]
    if isinstance(expr, BinOp):
        return arithmetic(expr.op, evaluate(expr.left, env, settings), evaluate(expr.right, env, settings))
    if isinstance(expr, Call):
        return FUNCTIONS[expr.func](*(evaluate(a, env, settings) for a in expr.args))
    raise TypeError(f"not an expression: {expr!r}")


def may_lack_value(expr: Expr) -> bool:
    """Whether `expr` can have no value with every variable bound: only through a
    division (variables hold values, never NO_VALUE)."""
    if isinstance(expr, BinOp):
        return expr.op == "/" or may_lack_value(expr.left) or may_lack_value(expr.right)
    if isinstance(expr, Call):
        return any(may_lack_value(a) for a in expr.args)
    return False
