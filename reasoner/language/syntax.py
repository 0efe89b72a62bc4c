"""The syntax tree: the one model of rules and facts that every stage shares.

Parsing produces it, the checker annotates nothing in place (it reports), the engine
compiles it, the explainer and renderers read it. Every node carries a `Span` so any
stage can point the user at `file:line:col`.
"""
from __future__ import annotations

import functools
import re
from dataclasses import field
from typing import Union

Value = Union[int, float, str]
"""A constant: numbers are int or float, identifiers and quoted strings are str."""


from reasoner.language.record import Record, record  # noqa: E402
from reasoner.language.span import NO_SPAN, Span  # noqa: E402  (re-exported: every node carries one)


# --------------------------------------------------------------------------- terms
@record
class Var(Record):
    """A variable. Each anonymous `_` is renamed `_#1`, `_#2`, ... by the parser; `_Y`
    is an ordinary named variable (its leading underscore only says "used once")."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.name.startswith("_#")

    def __str__(self) -> str:
        return "_" if self.anonymous else self.name


@record
class Const(Record):
    """A constant: a number, an identifier or a quoted string."""

    value: Value
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return format_value(self.value)


@record
class Setting(Record):
    """`$name`: a named number of the rule set, replaced by its value before evaluation."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return "$" + self.name


@record
class BinOp(Record):
    """`left op right` with op one of + - * /."""

    op: str  # + - * /
    left: "Expr"
    right: "Expr"
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        # parentheses only where precedence needs them: 2 * (W + 1), W * 8 - 1
        def side(e: "Expr", right: bool) -> str:
            if isinstance(e, BinOp):
                inner, outer = _PRECEDENCE[e.op], _PRECEDENCE[self.op]
                if inner < outer or (right and inner == outer and self.op in "-/"):
                    return f"({e})"
            return str(e)
        return f"{side(self.left, False)} {self.op} {side(self.right, True)}"


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@record
class Call(Record):
    """A built-in function applied to expressions: `min(A, B)`, `max(A, B)`, `abs(A)`."""

    func: str  # min, max, abs
    args: tuple["Expr", ...]
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


Term = Union[Var, Const]
Expr = Union[Var, Const, Setting, BinOp, Call]


# --------------------------------------------------------------------------- literals
@record
class Atom(Record):
    """`pred(arg, ...)`: a fact pattern in a body or a head."""

    pred: str
    args: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def arity(self) -> int:
        return len(self.args)

    def __str__(self) -> str:
        return f"{self.pred}({', '.join(map(str, self.args))})"


@record
class Negation(Record):
    """`!atom`: no fact matches (stratified negation)."""

    atom: Atom
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return f"!{self.atom}"


@record
class Comparison(Record):
    """`left op right` with op one of = != < <= > >=; `X = expr` with X unbound assigns."""

    op: str  # = != < <= > >=
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@record
class Aggregate(Record):
    """`result = func [target] : { body }`."""

    result: Var
    func: str  # count, sum, min, max
    target: Expr | None
    body: tuple["Literal", ...]
    span: Span = field(default=NO_SPAN, compare=False)

    def __str__(self) -> str:
        target = f" {self.target}" if self.target is not None else ""
        return f"{self.result} = {self.func}{target} : {{ {', '.join(map(str, self.body))} }}"


Literal = Union[Atom, Negation, Comparison, Aggregate]


# --------------------------------------------------------------------------- statements
STRENGTHS = ("strong", "standard", "consider", "option")
"""`@strength` values, strongest first: "strongly recommended", "administer" (a plain
instruction), "consider", "other options include"."""


@record
class Rule(Record):
    """A rule, a fact of the rule set (empty body) or an integrity constraint (no head)."""

    head: Atom | None
    body: tuple[Literal, ...]
    id: str | None
    sources: tuple[str, ...]
    says: str | None
    span: Span = field(default=NO_SPAN, compare=False)
    strength: str | None = None
    """How strongly the guideline sentence puts it (`@strength`): one of STRENGTHS."""
    choice: str | None = None
    """The choice group (`@choice`): actions concluded by rules of one group are
    alternatives to choose among, not a list to give together."""
    source_spans: tuple[Span, ...] = field(default=(), compare=False)
    """Where each of `sources` is written (its `@source` line), for messages about it."""

    @property
    def is_constraint(self) -> bool:
        return self.head is None

    @property
    def digest(self) -> str:
        """A short digest of the rule's logical text (head and body, not its annotations):
        a proof names the rule it used by id *and* digest, so a proof made with another
        version of the rule is caught."""
        import hashlib
        return hashlib.sha256(str(self).encode("utf-8")).hexdigest()[:16]

    def __str__(self) -> str:
        body = ", ".join(map(str, self.body))
        if self.head is None:
            return f":- {body}."
        return f"{self.head} :- {body}." if body else f"{self.head}."


@record
class ArgDecl(Record):
    """One argument of a `.decl`: its name, type, and for numbers an optional range and unit."""

    name: str
    type: str  # id, symbol, number, or an enumeration name
    low: float | None = None
    high: float | None = None
    unit: str | None = None


@record
class Decl(Record):
    """`.decl pred(arg: type, ...) role "description"`: a predicate's arguments and role."""

    pred: str
    args: tuple[ArgDecl, ...]
    role: str  # input, output, internal
    description: str
    span: Span = field(default=NO_SPAN, compare=False)
    single: bool = False
    """`one`: at most one fact per patient (a weight, a highest temperature)."""
    bound: int | None = None
    """`at most N`: at most N facts per patient, the bound `reasoner check` proves within."""

    @property
    def arity(self) -> int:
        return len(self.args)

    @property
    def key_index(self) -> int | None:
        """Position of the patient key: the first argument of type `id`."""
        for i, arg in enumerate(self.args):
            if arg.type == "id":
                return i
        return None


@record
class TypeDecl(Record):
    """`.type name = a | b | ...`: an enumeration of symbols."""

    name: str
    values: tuple[str, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@record
class SourceDecl(Record):
    """`.source key "text"`: a reference rules cite with `@source`."""

    key: str
    text: str
    span: Span = field(default=NO_SPAN, compare=False)


@record
class SettingDecl(Record):
    """`.setting NAME = VALUE [LO, HI] "UNIT" "REASON"`: range, unit and reason optional
    (a unit only after a range). `--set` values and the rule set's own value must lie in
    the range (inclusive)."""

    name: str
    value: int | float
    reason: str
    span: Span = field(default=NO_SPAN, compare=False)
    low: int | float | None = None
    high: int | float | None = None
    unit: str | None = None

    def range_text(self) -> str:
        """`[1, 12] mg/kg`, `[0, 168]`, or "" without a range."""
        if self.low is None:
            return ""
        return f"[{format_value(self.low)}, {format_value(self.high)}]" + (f" {self.unit}" if self.unit else "")


@record
class Requirement(Record):
    """A coverage requirement: `one`/`some` HEAD for BODY, or `none` BODY."""

    kind: str  # one, some, none
    head: Atom | None
    body: tuple[Literal, ...]
    text: str
    span: Span = field(default=NO_SPAN, compare=False)


@record
class SectionDecl(Record):
    """`.section "title"`: the guideline section the rules of this file encode."""

    title: str
    span: Span = field(default=NO_SPAN, compare=False)


@record
class AllowDecl(Record):
    """`.allow CODE "target" "why"`: a checker finding the author intends (a rule id,
    a predicate, or * for any)."""

    code: str
    target: str
    reason: str
    span: Span = field(default=NO_SPAN, compare=False)


@record
class Include(Record):
    """`.include "file"`: another rule file read in place."""

    path: str
    span: Span = field(default=NO_SPAN, compare=False)


Statement = Union[Rule, Decl, TypeDecl, SourceDecl, SettingDecl, Requirement, Include, SectionDecl, AllowDecl]


@record
class Fact(Record):
    """One input fact: a ground atom with where it was read."""

    pred: str
    args: tuple[Value, ...]
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return f"{self.pred}({', '.join(format_value(a) for a in self.args)})"


# --------------------------------------------------------------------------- helpers
PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_number(text: str) -> int | float | None:
    """The one number syntax of the language (the grammar's NUMBER, with an optional `-`):
    ASCII digits, at most one `.` with digits on both sides. `1_0`, fullwidth digits,
    `1e3`, `+1`, `.5`, `nan` and `inf` are not numbers (Python's `int`/`float` take them).
    None when `text` is not one."""
    if not PLAIN_NUMBER.fullmatch(text):
        return None
    return float(text) if "." in text else int(text)


def format_value(value: Value) -> str:
    """Write a constant back in the language's own syntax."""
    if isinstance(value, bool):  # never produced by the parser; guard anyway
        return str(int(value))
    if isinstance(value, (int, float)):
        return format_number(value)
    if _is_identifier(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_number(value: int | float) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:.1f}"
        return repr(value)
    return str(value)


@functools.lru_cache(maxsize=1 << 14)  # proofs and reports write the same ids and actions over and over
def _is_identifier(text: str) -> bool:
    return bool(text) and text[0].islower() and text[0].isascii() and all(
        c.isascii() and (c.isalnum() or c == "_") for c in text
    )


def expr_vars(expr: Expr) -> list[Var]:
    """Variables of an expression, in order of appearance."""
    if isinstance(expr, Var):
        return [expr]
    if isinstance(expr, BinOp):
        return expr_vars(expr.left) + expr_vars(expr.right)
    if isinstance(expr, Call):
        return [v for arg in expr.args for v in expr_vars(arg)]
    return []


def literal_vars(literal: Literal) -> list[Var]:
    """Variables a literal mentions (for an aggregate: its result and its keys' candidates)."""
    if isinstance(literal, Atom):
        return [v for a in literal.args for v in expr_vars(a)]
    if isinstance(literal, Negation):
        return literal_vars(literal.atom)
    if isinstance(literal, Comparison):
        return expr_vars(literal.left) + expr_vars(literal.right)
    out = [literal.result]
    for inner in literal.body:
        out += literal_vars(inner)
    if literal.target is not None:
        out += expr_vars(literal.target)
    return out


def body_atoms(body: tuple["Literal", ...] | list) -> list[Atom]:
    """Every atom a body mentions: positive, negated, and inside aggregates."""
    out: list[Atom] = []
    for lit in body:
        if isinstance(lit, Atom):
            out.append(lit)
        elif isinstance(lit, Negation):
            out.append(lit.atom)
        elif isinstance(lit, Aggregate):
            out += body_atoms(lit.body)
    return out
