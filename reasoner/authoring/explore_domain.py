"""Representative values for the semantic checks (explore.py's patients, and the solver's
raised default bound): what the rules compare each input argument with, carried from
derived positions back to the input positions their values come from, and how many facts
of a predicate the thresholds of its counts and sums need.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import (
    Aggregate,
    Atom,
    Comparison,
    Const,
    Expr,
    Literal,
    Rule,
    Setting,
    Value,
    Var,
    body_atoms,
    expr_vars,
)

Position = tuple[str, int]  # (predicate, argument index)


# ----------------------------------------------------------------------------- representative values
@dataclass
class Domain:
    """Representative values per input argument, and the counts aggregates compare with."""

    values: dict[Position, list[Value]] = field(default_factory=dict)
    counts: dict[str, set[int]] = field(default_factory=dict)
    """predicate → multiplicities worth generating (from count thresholds)."""
    needs: dict[str, int] = field(default_factory=dict)
    """input predicate → the facts per patient that the thresholds its counts and sums are
    compared with need (a count compared with 4 needs 5 facts to show both sides); the
    solver's default bound is raised to this (smt.py)."""


MAX_COUNT = 16
"""Facts per patient that count and sum thresholds may ask of one input predicate (the
search generates up to this many; the solver's raised default bound stops here)."""


def setting_value(e: Expr, rs: RuleSet, settings: dict[str, Value]) -> Value | None:
    if isinstance(e, Const):
        return e.value
    if isinstance(e, Setting):
        return settings.get(e.name, rs.settings[e.name].value if e.name in rs.settings else None)
    return None


def _positions(body: tuple[Literal, ...], head: Atom | None) -> dict[str, set[Position]]:
    """Variable → the atom positions it occupies in a rule (head included)."""
    out: dict[str, set[Position]] = {}
    atoms: list[Atom] = ([head] if head is not None else []) + body_atoms(body)
    for atom in atoms:
        for i, arg in enumerate(atom.args):
            if isinstance(arg, Var) and not arg.anonymous:
                out.setdefault(arg.name, set()).add((atom.pred, i))
    return out


def _comparisons(body: tuple[Literal, ...]) -> Iterator[Comparison]:
    for lit in body:
        if isinstance(lit, Comparison):
            yield lit
        elif isinstance(lit, Aggregate):
            yield from _comparisons(lit.body)


def build_domain(rs: RuleSet, settings: dict[str, Value] | None = None) -> Domain:
    """Representative values per input argument and the counts worth generating: what each
    rule (and requirement) compares its positions with, carried from derived positions back
    to the input positions their values come from."""
    reading = _Reading(rs, settings or {})
    for rule in rs.rules + [Rule(q.head, q.body, None, (), None, q.span) for q in rs.requirements]:
        reading.read(rule)
    reading.propagate()
    return reading.domain()


@dataclass
class _Reading:
    """What the rules say about argument positions, gathered rule by rule (read), then
    carried along the flows between positions (propagate), then made a Domain (domain)."""

    rs: RuleSet
    settings: dict[str, Value]
    thresholds: dict[Position, set[Value]] = field(default_factory=dict)
    symbols: dict[Position, set[Value]] = field(default_factory=dict)
    links: dict[Position, set[Position]] = field(default_factory=dict)
    """A derived position flows from these positions (and two compared variables share)."""
    count_of: dict[Position, list[str]] = field(default_factory=dict)
    """A position holding a count → the counted predicates."""
    count_thresholds: dict[str, set[int]] = field(default_factory=dict)
    sum_of: dict[Position, list[Position]] = field(default_factory=dict)
    """A position holding a sum → the summed input positions."""
    sum_thresholds: dict[Position, set[float]] = field(default_factory=dict)
    """A summed position → the thresholds its sum meets."""

    def read(self, rule: Rule) -> None:
        where = _positions(rule.body, rule.head)
        self._read_comparisons(rule, where)
        self._read_constants(rule)
        if rule.head is not None:
            self._read_head(rule, where)
        self._read_aggregate_thresholds(rule)

    def _read_comparisons(self, rule: Rule, where: dict[str, set[Position]]) -> None:
        """A variable compared with a constant or setting: a threshold (or symbol) of its positions."""
        for c in _comparisons(rule.body):
            for var_side, other in ((c.left, c.right), (c.right, c.left)):
                value = setting_value(other, self.rs, self.settings)
                names = [v.name for v in expr_vars(var_side)]
                if value is None or len(names) != 1:
                    continue
                for pos in where.get(names[0], ()):
                    (self.thresholds if isinstance(value, (int, float)) else self.symbols).setdefault(
                        pos, set()).add(value)
            if isinstance(c.left, Var) and isinstance(c.right, Var):  # X <= Y: they share representatives
                for a in where.get(c.left.name, ()):
                    for b in where.get(c.right.name, ()):
                        self.links.setdefault(a, set()).add(b)
                        self.links.setdefault(b, set()).add(a)

    def _read_constants(self, rule: Rule) -> None:
        """A constant written at a position of a positive atom or the head."""
        atoms = [lit for lit in rule.body if isinstance(lit, Atom)]
        for atom in atoms + ([rule.head] if rule.head else []):
            for i, arg in enumerate(atom.args):
                if isinstance(arg, Const):
                    (self.thresholds if isinstance(arg.value, (int, float)) else self.symbols).setdefault(
                        (atom.pred, i), set()).add(arg.value)

    def _read_head(self, rule: Rule, where: dict[str, set[Position]]) -> None:
        """Values flow from body positions into head positions; a head position may hold a count or a sum."""
        assert rule.head is not None
        for i, arg in enumerate(rule.head.args):
            for v in expr_vars(arg):
                for pos in where.get(v.name, ()):
                    if pos != (rule.head.pred, i):
                        self.links.setdefault((rule.head.pred, i), set()).add(pos)
        for lit in rule.body:
            if isinstance(lit, Aggregate) and lit.func == "count":
                for i, arg in enumerate(rule.head.args):
                    if isinstance(arg, Var) and arg.name == lit.result.name:
                        self.count_of.setdefault((rule.head.pred, i), []).extend(
                            a.pred for a in lit.body if isinstance(a, Atom))
        for lit in rule.body:
            if isinstance(lit, Aggregate) and lit.func == "sum":
                for i, arg in enumerate(rule.head.args):
                    if isinstance(arg, Var) and arg.name == lit.result.name:
                        self.sum_of.setdefault((rule.head.pred, i), []).extend(_summed(lit))

    def _read_aggregate_thresholds(self, rule: Rule) -> None:
        """A count (or sum) compared right here, in the rule that computes it."""
        for lit in rule.body:
            if isinstance(lit, Aggregate) and lit.func in ("count", "sum"):
                for c in _comparisons(rule.body):
                    for var_side, other in ((c.left, c.right), (c.right, c.left)):
                        value = setting_value(other, self.rs, self.settings)
                        if isinstance(var_side, Var) and var_side.name == lit.result.name and \
                                isinstance(value, (int, float)) and not isinstance(value, bool):
                            if lit.func == "sum":
                                for pos in _summed(lit):
                                    self.sum_thresholds.setdefault(pos, set()).add(value)
                                continue
                            for a in lit.body:
                                if isinstance(a, Atom):
                                    self.count_thresholds.setdefault(a.pred, set()).add(int(value))

    def propagate(self) -> None:
        """Thresholds along the links until nothing changes (derived → input positions); a
        count's or sum's thresholds to what it counts or sums; a counted derived predicate's
        multiplicity to the input predicates it comes from."""
        changed = True
        while changed:
            changed = False
            for pos, sources in self.links.items():
                for src in sources:
                    for table in (self.thresholds, self.symbols):
                        have = table.get(pos, set())
                        if have - table.get(src, set()):
                            table.setdefault(src, set()).update(have)
                            changed = True
        for pos, preds in self.count_of.items():
            for t in self.thresholds.get(pos, ()):
                if isinstance(t, (int, float)) and not isinstance(t, bool):
                    for p in preds:
                        self.count_thresholds.setdefault(p, set()).add(int(t))
        for pos, summed in self.sum_of.items():
            for t in self.thresholds.get(pos, ()):
                if isinstance(t, (int, float)) and not isinstance(t, bool):
                    for q in summed:
                        self.sum_thresholds.setdefault(q, set()).add(t)
        for _ in range(3):
            for rule in self.rs.rules:
                if rule.head is not None and rule.head.pred in self.count_thresholds:
                    for lit in rule.body:
                        if isinstance(lit, Atom) and self.rs.decls.get(lit.pred) is not None:
                            self.count_thresholds.setdefault(lit.pred, set()).update(
                                self.count_thresholds[rule.head.pred])

    def domain(self) -> Domain:
        """Each input argument's representative values; the counts and facts per patient
        that count and sum thresholds need."""
        rs = self.rs
        domain = Domain()
        for pred, decl in rs.decls.items():
            if decl.role != "input":
                continue
            for i, arg in enumerate(decl.args):
                pos = (pred, i)
                if arg.type in ("number", "integer"):
                    domain.values[pos] = _numeric_candidates(self.thresholds.get(pos, set()), arg.low, arg.high,
                                                             whole=arg.type == "integer")
                elif arg.type in rs.types:
                    domain.values[pos] = list(rs.types[arg.type].values)
                elif arg.type == "id":
                    domain.values[pos] = ["x"]
                else:
                    domain.values[pos] = sorted({str(v) for v in self.symbols.get(pos, set())} | {"other"})
        for pred, ks in self.count_thresholds.items():
            decl = rs.decls.get(pred)
            most = 1 if decl is not None and decl.single else getattr(decl, "bound", None) or MAX_COUNT
            domain.counts[pred] = {k for t in ks for k in (t - 1, t, t + 1) if 2 <= k <= min(most, MAX_COUNT)}
            domain.needs[pred] = min(MAX_COUNT, max(ks) + 1)  # both sides of every threshold
        for (pred, i), ts in self.sum_thresholds.items():  # a sum of values up to `high` reaches T with T / high facts
            decl = rs.decls.get(pred)
            high = decl.args[i].high if decl is not None and decl.role == "input" else None
            if high is not None and high > 0 and ts:
                need = min(MAX_COUNT, int(max(abs(t) for t in ts) // high) + 2)
                domain.needs[pred] = max(domain.needs.get(pred, 0), need)
        for pred, need in self.join_needs().items():
            domain.needs[pred] = max(domain.needs.get(pred, 0), min(MAX_COUNT, need))
        return domain

    def join_needs(self) -> dict[str, int]:
        """Input predicate → the most of its facts one rule joins: its positive atoms in one
        body, or (the larger) what a derived atom of the body needs, through its rules. A rule
        that joins 4 oxygen facts fires for no patient with 3, so a bound of 3 would "prove"
        it dead. Limit: two derived atoms that each need 3 different facts of one predicate
        may together need 6; the need is taken as 3 (adding them up instead raises every
        bound of the CRS rule set past 20, beyond what the solver decides in time)."""
        rs = self.rs
        memo: dict[str, dict[str, int]] = {}

        def of_rule(rule: Rule, seen: frozenset[str]) -> dict[str, int]:
            out: dict[str, int] = {}
            for lit in rule.body:
                if not isinstance(lit, Atom):
                    continue
                decl = rs.decls.get(lit.pred)
                if decl is not None and decl.role == "input":
                    out[lit.pred] = out.get(lit.pred, 0) + 1
            for lit in rule.body:
                decl = rs.decls.get(lit.pred) if isinstance(lit, Atom) else None
                if isinstance(lit, Atom) and (decl is None or decl.role != "input"):
                    for p, n in of_pred(lit.pred, seen).items():
                        out[p] = max(out.get(p, 0), n)
            return out

        def of_pred(pred: str, seen: frozenset[str]) -> dict[str, int]:
            if pred in memo:
                return memo[pred]
            if pred in seen or pred in rs.recursive:  # a recursion is searched, not encoded
                return {}
            out: dict[str, int] = {}
            for rule in rs.rules:
                if rule.head is not None and rule.head.pred == pred:
                    for p, n in of_rule(rule, seen | {pred}).items():
                        out[p] = max(out.get(p, 0), n)
            memo[pred] = out
            return out

        needs: dict[str, int] = {}
        for rule in rs.rules:
            for p, n in of_rule(rule, frozenset()).items():
                needs[p] = max(needs.get(p, 0), n)
        return needs

def _summed(agg: Aggregate) -> list[Position]:
    """The input positions a sum adds up: where its target variable sits in the body."""
    if not isinstance(agg.target, Var):
        return []
    return [(a.pred, i) for a in agg.body if isinstance(a, Atom)
            for i, x in enumerate(a.args) if isinstance(x, Var) and x.name == agg.target.name]


def _numeric_candidates(ts: set[Value], low: float | None, high: float | None, whole: bool = False) -> list[Value]:
    """Each threshold, just below and just above it (by 0.1 and by 1; by 1 only for integers)."""
    out: set[float] = set()
    for t in ts:
        if not isinstance(t, (int, float)):
            continue
        for d in (-1, 0, 1) if whole else (-1, -0.1, 0, 0.1, 1):
            out.add(round(float(t) + d, 6))
    if not out:
        lo = 0 if low is None else low
        hi = 100 if high is None else high
        out.add(round(lo + (hi - lo) / 4))
    values = sorted(v for v in out if (low is None or v >= low) and (high is None or v <= high))
    if not values and low is not None:
        values = [low]
    return [int(v) if float(v).is_integer() else v for v in values]

