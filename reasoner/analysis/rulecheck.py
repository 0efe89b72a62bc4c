"""The checks of one rule at a time (`RuleChecker`): predicates declared (with a
did-you-mean, `suggest`), arities, argument types and constants inside their declared
range or enumeration (`check_value`), settings known, and safety (every variable bound
by a positive literal, through `order_body`). Also the built-in argument types.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from reasoner.analysis.order import body_bound_vars, order_body
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import (
    Aggregate, ArgDecl, Atom, BinOp, Call, Comparison, Const, Expr, Literal, Negation, Requirement, Rule, Setting,
    Span, TypeDecl, Var, expr_vars,
)

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet

BASE_TYPES = ("id", "symbol", "number", "integer")
NUMERIC = ("number", "integer")
ANY = "any"  # the type of an argument whose declaration was inferred (plain Datalog programs)


def suggest(name: str, candidates) -> str:
    """A did-you-mean hint: the closest spelling, or the one name this is a prefix of."""
    import difflib
    pool = sorted(candidates)
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.7)
    if not close:
        close = [c for c in pool if c.startswith(name)] if len(name) >= 3 else []
    return f" (did you mean {close[0]}?)" if len(close) == 1 or (close and close[0] != name) else ""


class RuleChecker:
    """Declarations, types and safety of one rule at a time."""

    def __init__(self, ruleset: RuleSet):
        self.rs = ruleset

    def check_rule(self, rule: Rule) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        var_types: dict[str, tuple[str, Span]] = {}
        if rule.head is not None:
            problems += self._check_atom(rule.head, var_types, head=True)
            if not rule.body:
                for arg in rule.head.args:
                    if not isinstance(arg, Const):
                        problems.append(Diagnostic(rule.head.span, f"a fact's arguments must be constants: {arg}",
                                                   "E007"))
        problems += self._check_body(rule.body, var_types)
        if problems:
            return problems
        return _safety(rule.head, rule.body, rule.span)

    def check_requirement(self, req: Requirement) -> list[Diagnostic]:
        var_types: dict[str, tuple[str, Span]] = {}
        problems = self._check_body(req.body, var_types)
        if req.head is not None:
            problems += self._check_atom(req.head, var_types, head=False)
        return problems

    def _check_body(self, body: tuple[Literal, ...], var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        for lit in body:
            if isinstance(lit, Atom):
                problems += self._check_atom(lit, var_types)
            elif isinstance(lit, Negation):
                problems += self._check_atom(lit.atom, var_types)
            elif isinstance(lit, Aggregate):
                problems += self._check_body(lit.body, var_types)
                if lit.target is not None:
                    problems += self._need_number(lit.target, var_types, "an aggregate's target")
                problems += self._bind(lit.result, "number", var_types)
        for lit in body:  # comparisons after the atoms have typed the variables
            if isinstance(lit, Comparison):
                problems += self._check_comparison(lit, var_types)
        return problems

    def _check_atom(self, atom: Atom, var_types: dict[str, tuple[str, Span]], head: bool = False) -> list[Diagnostic]:
        decl = self.rs.decls.get(atom.pred)
        if decl is None:
            return [Diagnostic(atom.span, f"undeclared predicate {atom.pred}/{atom.arity}"
                               + suggest(atom.pred, self.rs.decls), "E002")]
        if decl.arity != atom.arity:
            return [Diagnostic(atom.span, f"{atom.pred} takes {decl.arity} argument"
                               f"{'s' if decl.arity != 1 else ''} ({', '.join(a.name for a in decl.args)}), "
                               f"not {atom.arity}", "E003")]
        problems: list[Diagnostic] = []
        for arg, spec in zip(atom.args, decl.args):
            if isinstance(arg, Const):
                problem = check_value(arg.value, spec, self.rs.types)
                if problem:  # the codes a fact with this value gets: range E005, enumeration E006
                    code = "E005" if "outside the valid range" in problem else \
                        "E006" if " is not a value of type " in problem else "E004"
                    problems.append(Diagnostic(arg.span if arg.span.line else atom.span,
                                               f"{atom.pred} argument {spec.name}: {problem}", code))
            elif isinstance(arg, Var):
                problems += self._bind(arg, spec.type, var_types)
            elif isinstance(arg, Setting):
                problems += self._setting(arg)
                if spec.type not in NUMERIC + (ANY,):
                    problems.append(Diagnostic(arg.span, f"{atom.pred} argument {spec.name} is {spec.type}, "
                                               f"but ${arg.name} is a number", "E004"))
            else:  # an arithmetic expression
                if not head:
                    problems.append(Diagnostic(atom.span, f"arithmetic in a body atom is not allowed; "
                                               f"bind it first: V = {arg}", "E001"))
                elif spec.type not in NUMERIC + (ANY,):
                    problems.append(Diagnostic(atom.span, f"{atom.pred} argument {spec.name} is {spec.type}, "
                                               f"but {arg} is a number", "E004"))
                problems += self._need_number(arg, var_types, f"{atom.pred} argument {spec.name}")
        return problems

    def _bind(self, var: Var, type_name: str, var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        if var.anonymous or type_name == ANY:
            return []
        known = var_types.get(var.name)
        if known is None:
            var_types[var.name] = (type_name, var.span)
            return []
        if not self._compatible(known[0], type_name):
            return [Diagnostic(var.span, f"variable {var.name} is used as {type_name} here but as {known[0]} "
                               f"at {known[1].line}:{known[1].col}", "E004")]
        return []

    def _compatible(self, a: str, b: str) -> bool:
        if a == b or ANY in (a, b) or (a in NUMERIC and b in NUMERIC):
            return True
        if a in NUMERIC or b in NUMERIC:
            return False
        ta, tb = self.rs.types.get(a), self.rs.types.get(b)
        if ta is not None and tb is not None:
            return bool(set(ta.values) & set(tb.values))
        return True  # id, symbol and enumerations are all symbols

    def _setting(self, s: Setting) -> list[Diagnostic]:
        if s.name not in self.rs.settings:
            return [Diagnostic(s.span, f"unknown setting ${s.name}" + suggest(s.name, self.rs.settings), "E012")]
        return []

    def _need_number(self, expr: Expr, var_types: dict[str, tuple[str, Span]], where: str) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        if isinstance(expr, Const) and not isinstance(expr.value, (int, float)):
            problems.append(Diagnostic(expr.span, f"{where}: {expr} is not a number", "E004"))
        elif isinstance(expr, Setting):
            problems += self._setting(expr)
        elif isinstance(expr, Var):
            problems += self._bind(expr, "number", var_types)
        elif isinstance(expr, BinOp):
            problems += self._need_number(expr.left, var_types, where)
            problems += self._need_number(expr.right, var_types, where)
        elif isinstance(expr, Call):
            for arg in expr.args:
                problems += self._need_number(arg, var_types, where)
        return problems

    def _check_comparison(self, c: Comparison, var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        arithmetic = any(isinstance(e, (BinOp, Call, Setting)) for e in (c.left, c.right))
        if c.op in ("<", "<=", ">", ">=") or arithmetic:
            return (self._need_number(c.left, var_types, f"comparison {c}")
                    + self._need_number(c.right, var_types, f"comparison {c}"))
        # = and != between plain terms: both sides must be of compatible types
        types = [self._type_of(e, var_types) for e in (c.left, c.right)]
        if None not in types and not self._compatible(types[0], types[1]):  # type: ignore[arg-type]
            return [Diagnostic(c.span, f"comparison {c} sets a {types[0]} against a {types[1]}", "E004")]
        for side, other in ((c.left, c.right), (c.right, c.left)):
            if isinstance(side, Var) and side.name not in var_types:
                t = self._type_of(other, var_types)
                if t is not None:
                    var_types[side.name] = (t, side.span)
        return []

    @staticmethod
    def _type_of(e: Expr, var_types: dict[str, tuple[str, Span]]) -> str | None:
        if isinstance(e, Const):
            return "number" if isinstance(e.value, (int, float)) else "symbol"
        if isinstance(e, Var):
            known = var_types.get(e.name)
            return known[0] if known else None
        return "number"


def check_value(value: object, spec: ArgDecl, types: dict[str, TypeDecl]) -> str | None:
    """Why `value` does not fit the declared argument, or None when it does."""
    t = spec.type
    if t == ANY:
        return None
    if t in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a{'n integer' if t == 'integer' else ' number'}, got {value!r}"
        if value != value:  # NaN
            return "not a number"
        if t == "integer" and not float(value).is_integer():
            return f"expected a whole number, got {value!r}"
        if spec.low is not None and spec.high is not None and not (spec.low <= value <= spec.high):
            unit = f" {spec.unit}" if spec.unit else ""
            return f"{value}{unit} is outside the valid range {_num(spec.low)}–{_num(spec.high)}{unit}"
        return None
    if not isinstance(value, str):
        return f"expected {'an id' if t == 'id' else 'a symbol' if t == 'symbol' else 'one of type ' + t}, got {value!r}"
    if t in types and value not in types[t].values:
        return (f"{value!r} is not a value of type {t} (one of: {', '.join(types[t].values)})"
                + suggest(value, types[t].values))
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ----------------------------------------------------------------------------- safety
def _safety(head: Atom | None, body: tuple[Literal, ...], span: Span) -> list[Diagnostic]:
    """Every variable of the head, of a negation and of a comparison must be bound by a
    positive literal; `order_body` finds an order that proves it or reports the rest."""
    problems: list[Diagnostic] = []
    try:
        steps = order_body(body, head=head)
    except ReasonerError as exc:
        problems += exc.diagnostics
        return problems
    bound = {name for step in steps for name in step.binds}
    if head is not None:
        for arg in head.args:
            for v in expr_vars(arg):
                if v.name not in bound:
                    what = "_ in a head" if v.anonymous else f"variable {v.name}"
                    problems.append(Diagnostic(v.span if v.span.line else head.span,
                                               f"unsafe rule: {what} is not bound by a positive body literal",
                                               "E007"))
    for lit in body:
        if isinstance(lit, Aggregate):
            try:
                order_body(lit.body)
            except ReasonerError as exc:
                problems += exc.diagnostics
            inner = body_bound_vars(lit.body)
            if lit.target is not None:
                for v in expr_vars(lit.target):
                    if v.name not in inner:
                        problems.append(Diagnostic(lit.span, f"unsafe aggregate: {v.name} is not bound inside it",
                                                   "E007"))
    return problems

