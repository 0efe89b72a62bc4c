"""A reference evaluator: the rule language's meaning (docs/language.md), in plain Python.

It exists so that the proof checker (verify.py) and the differential tests have a model
that owes nothing to the code under test: it shares no code with the engines (engines/pydatalog.py,
sql.py), the explainer or match.py; it reads only the syntax tree (syntax.py) and the
rule set's strata. It is naive on purpose: each stratum's rules are applied to all
facts known so far, round after round, until a round adds nothing. Slow for big data,
short enough to read in one sitting.

The meaning it implements:
- a number equals a number of the same value (38 = 38.0); a number never equals a string;
- `+ - * /`, `min`, `max`, `abs` work on numbers; a division by zero (or arithmetic on a
  string) gives no value, and a literal or head that needs it draws no conclusion;
- `<`, `<=`, `>`, `>=` hold between numbers only;
- `!p(X, _)` holds when no fact p(X, anything) is known (its stratum is complete);
- `V = f T : { body }` ranges over the distinct rows of all the body's variables (`_`
  included) whose keys (the body's variables that occur elsewhere in the rule) have the
  values the rest of the rule bound; count and sum of no rows are 0, min and max of no
  rows give nothing; a sum with a float in it is `math.fsum`;
- `$name` is the rule set's setting, unless the user's settings override it;
- a rule with an empty body is a fact of the rule set; a rule without a head is an
  integrity constraint, whose every satisfying binding is a violation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import (
    NO_SPAN, Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Literal, Negation, Rule, Setting, Value, Var,
)

Env = dict[str, Value]
_FREE = object()  # an argument position a pattern leaves open


class NoValue(Exception):
    """An expression has no value (a division by zero, arithmetic on a string)."""


class RoundLimit(Exception):
    """A recursive stratum did not reach its fixpoint within the allowed rounds."""


def same(a: Value, b: Value) -> bool:
    """Equality of constants: numbers by value, strings by text, never one with the other."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


def _number(v: Value) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise NoValue(f"{v!r} is not a number")
    return v


def variables(item) -> list[str]:
    """Names of the variables of an expression, atom, literal (aggregates: all inside)."""
    if isinstance(item, Var):
        return [item.name]
    if isinstance(item, (BinOp, Comparison)):
        return variables(item.left) + variables(item.right)
    if isinstance(item, (Call, Atom)):
        return [n for a in item.args for n in variables(a)]
    if isinstance(item, Negation):
        return variables(item.atom)
    if isinstance(item, Aggregate):
        return [item.result.name] + [n for lit in item.body for n in variables(lit)] + \
            (variables(item.target) if item.target is not None else [])
    return []  # Const, Setting


def group_keys(rule: Rule, agg: Aggregate) -> list[str]:
    """An aggregate's keys: variables of its body that occur elsewhere in the rule."""
    outside = {n for lit in rule.body if lit is not agg for n in variables(lit)}
    if rule.head is not None:
        outside |= set(variables(rule.head))
    inner = [n for lit in agg.body for n in variables(lit)]
    return [n for n in dict.fromkeys(inner) if n in outside]


@dataclass
class Group:
    """The rows an aggregate ranges over for one set of key values, and its value."""

    value: Value | None  # None: min/max of no rows, or a target with no value
    rows: list[Env]
    facts: set[tuple[str, tuple[Value, ...]]]  # the positive atoms of its body, under each row


@dataclass
class Reference:
    """The model: every fact (input, stated, derived) and every constraint violation."""

    ruleset: object
    settings: dict[str, Value]
    facts: dict[str, set[tuple[Value, ...]]] = field(default_factory=dict)
    violations: list[tuple[int, Env]] = field(default_factory=list)
    _index: dict = field(default_factory=dict, repr=False)
    _agg_keys: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ lookups
    def holds(self, pred: str, args: tuple[Value, ...]) -> bool:
        return tuple(args) in self.facts.get(pred, ())  # Python's == on int/float/str is `same`

    def _rows(self, pred: str, pattern: tuple) -> Iterable[tuple[Value, ...]]:
        """Facts of `pred` with the pattern's values at its fixed positions."""
        fixed = tuple(i for i, v in enumerate(pattern) if v is not _FREE)
        table = self._index.get((pred, fixed))
        if table is None:
            table = {}
            for row in self.facts.get(pred, ()):
                if len(row) == len(pattern):
                    table.setdefault(tuple(row[i] for i in fixed), []).append(row)
            self._index[(pred, fixed)] = table
        return table.get(tuple(pattern[i] for i in fixed), ())

    def matching(self, atom: Atom, env: Env) -> list[tuple[Value, ...]]:
        """The facts an atom matches under `env` (its unbound variables free): what a
        negation of it must not find."""
        return [tuple(e[a.name] if isinstance(a, Var) else self.calc(a, e) for a in atom.args)
                for e in self._match(atom, env)]

    def group(self, rule_index: int, position: int, env: Env) -> Group:
        """The group of the aggregate at `position` in rule `rule_index`'s body, for the
        key values in `env` (the other variables of `env` are ignored)."""
        rule = self.ruleset.rules[rule_index]
        return self._group(rule, rule.body[position], env)

    # ------------------------------------------------------------------ expressions
    def calc(self, e: Expr, env: Env) -> Value:
        if isinstance(e, Var):
            return env[e.name]
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Setting):
            return self.settings[e.name]
        if isinstance(e, BinOp):
            a, b = _number(self.calc(e.left, env)), _number(self.calc(e.right, env))
            if e.op == "/" and b == 0:
                raise NoValue("division by zero")
            out = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[e.op]()
        elif isinstance(e, Call):
            args = [_number(self.calc(a, env)) for a in e.args]
            out = abs(args[0]) if e.func == "abs" else min(args) if e.func == "min" else max(args)
        else:
            raise TypeError(f"not an expression: {e!r}")
        if out != out:  # NaN (inf - inf): no value either
            raise NoValue("not a number")
        return out

    def compare(self, op: str, a: Value, b: Value) -> bool:
        if op == "=":
            return same(a, b)
        if op == "!=":
            return not same(a, b)
        if isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    # ------------------------------------------------------------------ solving a body
    def _match(self, atom: Atom, env: Env) -> Iterator[Env]:
        pattern = tuple(_FREE if isinstance(a, Var) and a.name not in env else self.calc(a, env) for a in atom.args)
        for row in self._rows(atom.pred, pattern):
            new = dict(env)
            for a, v in zip(atom.args, row):
                if isinstance(a, Var) and a.name not in env:
                    if a.name in new and not same(new[a.name], v):
                        break  # a variable repeated in the atom: both places must agree
                    new[a.name] = v
            else:
                yield new

    def _keys(self, rule: Rule, agg: Aggregate) -> list[str]:
        keys = self._agg_keys.get(id(agg))
        if keys is None:
            keys = self._agg_keys[id(agg)] = group_keys(rule, agg)
        return keys

    def _ready(self, lit: Literal, env: Env, rule: Rule, rest: list[Literal]) -> bool:
        if isinstance(lit, Negation):  # once nothing else can bind its variables: the rest read "anything"
            later = {n for other in rest if not isinstance(other, Negation) for n in variables(other)}
            return not any(n not in env and n in later for n in variables(lit))
        if isinstance(lit, Comparison):
            free = [n for n in variables(lit) if n not in env]
            return not free or (lit.op == "=" and len(free) == 1 and
                                any(isinstance(s, Var) and s.name == free[0] for s in (lit.left, lit.right)))
        if isinstance(lit, Aggregate):
            return all(k in env for k in self._keys(rule, lit))
        return False  # atoms go when no filter can

    def _literal(self, lit: Literal, env: Env, rule: Rule) -> Iterator[Env]:
        try:
            if isinstance(lit, Atom):
                yield from self._match(lit, env)
            elif isinstance(lit, Negation):
                if not any(True for _ in self._match(lit.atom, env)):
                    yield env
            elif isinstance(lit, Comparison):
                for var, other in ((lit.left, lit.right), (lit.right, lit.left)):
                    if lit.op == "=" and isinstance(var, Var) and var.name not in env:
                        yield {**env, var.name: self.calc(other, env)}  # X = expr binds X
                        return
                if self.compare(lit.op, self.calc(lit.left, env), self.calc(lit.right, env)):
                    yield env
            else:
                value = self._group(rule, lit, env).value
                name = lit.result.name
                if value is not None and (name not in env or same(env[name], value)):
                    yield {**env, name: value}
        except NoValue:
            return  # no value, no conclusion

    def solve(self, body: tuple[Literal, ...] | list[Literal], env: Env, rule: Rule) -> Iterator[Env]:
        """Every extension of `env` under which all of `body` holds: filters as soon as
        their variables are bound, atoms in written order (the order changes no answer)."""
        body = list(body)
        if not body:
            yield env
            return
        pick = next((i for i, lit in enumerate(body) if self._ready(lit, env, rule, body[:i] + body[i + 1:])), None)
        if pick is None:
            pick = next((i for i, lit in enumerate(body) if isinstance(lit, Atom)), None)
        if pick is None:
            raise ValueError(f"unsafe body: nothing can bind the variables of {body[0]}")
        rest = body[:pick] + body[pick + 1:]
        for new in self._literal(body[pick], env, rule):
            yield from self.solve(rest, new, rule)

    def _group(self, rule: Rule, agg: Aggregate, env: Env) -> Group:
        start = {k: env[k] for k in self._keys(rule, agg)}
        distinct: dict[tuple, Env] = {}
        for row in self.solve(agg.body, start, rule):
            distinct.setdefault(tuple(sorted(row.items())), row)
        rows = list(distinct.values())
        facts = set()
        for row in rows:
            for lit in agg.body:
                if isinstance(lit, Atom):
                    facts.add((lit.pred, tuple(self.calc(a, row) for a in lit.args)))
        value: Value | None = None
        try:
            if agg.func == "count":
                value = len(rows)
            else:
                values = [_number(self.calc(agg.target, row)) for row in rows]  # type: ignore[arg-type]
                if agg.func == "sum":
                    value = sum(values) if all(isinstance(v, int) for v in values) else math.fsum(values)
                elif values:
                    value = min(values) if agg.func == "min" else max(values)
        except NoValue:
            value = None
        return Group(value, rows, facts)

    # ------------------------------------------------------------------ rules
    def conclusions(self, rule: Rule) -> set[tuple[Value, ...]]:
        out = set()
        for env in self.solve(rule.body, {}, rule):
            try:
                out.add(tuple(self.calc(a, env) for a in rule.head.args))  # type: ignore[union-attr]
            except NoValue:
                pass  # a head that divides by zero: no conclusion
        return out

    def add(self, pred: str, rows: set[tuple[Value, ...]]) -> bool:
        known = self.facts.setdefault(pred, set())
        new = rows - known
        if new:
            known |= new
            for key in [k for k in self._index if k[0] == pred]:
                del self._index[key]
        return bool(new)


def evaluate(ruleset, facts, settings: dict | None = None, max_rounds: int = 100_000) -> Reference:
    """The model of `ruleset` over `facts` (a FactSet, or Facts), stratum by stratum.

    `settings` override the rule set's settings by name (an unknown one is error E012)."""
    values = {name: s.value for name, s in ruleset.settings.items()}
    for name, value in (settings or {}).items():
        if name not in values:
            raise ReasonerError([Diagnostic(NO_SPAN, f"unknown setting {name}", "E012")])
        values[name] = value
    ref = Reference(ruleset, values, {pred: set() for pred in ruleset.decls})
    for fact in getattr(facts, "facts", facts):
        ref.add(fact.pred, {tuple(fact.args)})
    for rule in ruleset.rules:
        if rule.head is not None and not rule.body:
            ref.add(rule.head.pred, {tuple(ref.calc(a, {}) for a in rule.head.args)})
    for stratum in ruleset.strata:  # naive: apply every rule of the stratum until a round adds nothing
        rules = [r for r in ruleset.rules if r.head is not None and r.body and r.head.pred in stratum]
        for _ in range(max_rounds):
            found: dict[str, set] = {}
            for rule in rules:
                found.setdefault(rule.head.pred, set()).update(ref.conclusions(rule))  # type: ignore[union-attr]
            if not any([ref.add(pred, rows) for pred, rows in found.items()]):
                break
        else:
            raise RoundLimit(f"no fixpoint for {', '.join(stratum)} after {max_rounds} rounds")
    for index, rule in enumerate(ruleset.rules):
        if rule.head is None:
            distinct = {tuple(sorted(env.items())): env for env in ref.solve(rule.body, {}, rule)}
            ref.violations += [(index, env) for env in distinct.values()]
    return ref
