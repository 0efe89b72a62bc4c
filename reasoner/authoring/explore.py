"""Representative patients for the semantic checks: the rules' own thresholds and
enumerations define them.

Limits first: exploration is a search, not a proof. A rule reported dead fired for
none of the patients explored; it may still fire for a patient outside them. The
report says how many patients were explored, out of how large a space, and how.

Two sources of patients, run as one batch:
1. A covering array over *dimensions*: each input predicate's presence (a flag present
   or absent) and each of its arguments, whose values are the representative ones
   (every constant a rule compares the argument with, just above and just below it,
   every enumeration value). When the full product is small it is explored whole
   (exhaustive); otherwise a greedy pairwise covering array puts every pair of values
   of two dimensions into some patient.
2. A targeted witness per rule: the rule's body is unfolded through the rules of its
   derived literals down to input facts (choosing among alternative rules
   depth-first), count aggregates are unrolled to the counts the rules compare with,
   and the variables get representative values that satisfy the comparisons. This
   finds rules that need many conditions at once, which pairs alone miss.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator

from reasoner.analysis.program import RuleSet, aggregate_keys
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Fact, Literal, Negation, Rule, Setting, Span, Value, Var,
    body_atoms, expr_vars,
)

Position = tuple[str, int]  # (predicate, argument index)
_DISTINCT = "<>"  # a constraint between two rows of a count: they must differ


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


def _setting_value(e: Expr, rs: RuleSet, settings: dict[str, Value]) -> Value | None:
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
    settings = settings or {}
    thresholds: dict[Position, set[Value]] = {}
    symbols: dict[Position, set[Value]] = {}
    links: dict[Position, set[Position]] = {}  # a derived position flows from these positions
    count_of: dict[Position, list[str]] = {}  # a position holding a count → the counted predicates
    count_thresholds: dict[str, set[int]] = {}
    sum_of: dict[Position, list[Position]] = {}  # a position holding a sum → the summed input positions
    sum_thresholds: dict[Position, set[float]] = {}  # a summed position → the thresholds its sum meets

    for rule in rs.rules + [Rule(q.head, q.body, None, (), None, q.span) for q in rs.requirements]:
        where = _positions(rule.body, rule.head)
        for c in _comparisons(rule.body):
            for var_side, other in ((c.left, c.right), (c.right, c.left)):
                value = _setting_value(other, rs, settings)
                names = [v.name for v in expr_vars(var_side)]
                if value is None or len(names) != 1:
                    continue
                for pos in where.get(names[0], ()):
                    (thresholds if isinstance(value, (int, float)) else symbols).setdefault(pos, set()).add(value)
            if isinstance(c.left, Var) and isinstance(c.right, Var):  # X <= Y: they share representatives
                for a in where.get(c.left.name, ()):
                    for b in where.get(c.right.name, ()):
                        links.setdefault(a, set()).add(b)
                        links.setdefault(b, set()).add(a)
        atoms = [lit for lit in rule.body if isinstance(lit, Atom)]
        for atom in atoms + ([rule.head] if rule.head else []):
            for i, arg in enumerate(atom.args):
                if isinstance(arg, Const):
                    (thresholds if isinstance(arg.value, (int, float)) else symbols).setdefault(
                        (atom.pred, i), set()).add(arg.value)
        if rule.head is not None:  # values flow from body positions into head positions
            for i, arg in enumerate(rule.head.args):
                for v in expr_vars(arg):
                    for pos in where.get(v.name, ()):
                        if pos != (rule.head.pred, i):
                            links.setdefault((rule.head.pred, i), set()).add(pos)
            for lit in rule.body:
                if isinstance(lit, Aggregate) and lit.func == "count":
                    for i, arg in enumerate(rule.head.args):
                        if isinstance(arg, Var) and arg.name == lit.result.name:
                            count_of.setdefault((rule.head.pred, i), []).extend(
                                a.pred for a in lit.body if isinstance(a, Atom))
            for lit in rule.body:
                if isinstance(lit, Aggregate) and lit.func == "sum":
                    for i, arg in enumerate(rule.head.args):
                        if isinstance(arg, Var) and arg.name == lit.result.name:
                            sum_of.setdefault((rule.head.pred, i), []).extend(_summed(lit))
        for lit in rule.body:  # a count (or sum) compared right here
            if isinstance(lit, Aggregate) and lit.func in ("count", "sum"):
                for c in _comparisons(rule.body):
                    for var_side, other in ((c.left, c.right), (c.right, c.left)):
                        value = _setting_value(other, rs, settings)
                        if isinstance(var_side, Var) and var_side.name == lit.result.name and \
                                isinstance(value, (int, float)) and not isinstance(value, bool):
                            if lit.func == "sum":
                                for pos in _summed(lit):
                                    sum_thresholds.setdefault(pos, set()).add(value)
                                continue
                            for a in lit.body:
                                if isinstance(a, Atom):
                                    count_thresholds.setdefault(a.pred, set()).add(int(value))

    # propagate thresholds along the links until nothing changes (derived → input positions)
    changed = True
    while changed:
        changed = False
        for pos, sources in links.items():
            for src in sources:
                for table in (thresholds, symbols):
                    have = table.get(pos, set())
                    if have - table.get(src, set()):
                        table.setdefault(src, set()).update(have)
                        changed = True
    for pos, preds in count_of.items():
        for t in thresholds.get(pos, ()):
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                for p in preds:
                    count_thresholds.setdefault(p, set()).add(int(t))
    for pos, summed in sum_of.items():
        for t in thresholds.get(pos, ()):
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                for q in summed:
                    sum_thresholds.setdefault(q, set()).add(t)
    # counted derived predicates pass their multiplicity to the input predicates they come from
    for _ in range(3):
        for rule in rs.rules:
            if rule.head is not None and rule.head.pred in count_thresholds:
                for lit in rule.body:
                    if isinstance(lit, Atom) and rs.decls.get(lit.pred) is not None:
                        count_thresholds.setdefault(lit.pred, set()).update(count_thresholds[rule.head.pred])

    domain = Domain()
    for pred, decl in rs.decls.items():
        if decl.role != "input":
            continue
        for i, arg in enumerate(decl.args):
            pos = (pred, i)
            if arg.type in ("number", "integer"):
                domain.values[pos] = _numeric_candidates(thresholds.get(pos, set()), arg.low, arg.high,
                                                         whole=arg.type == "integer")
            elif arg.type in rs.types:
                domain.values[pos] = list(rs.types[arg.type].values)
            elif arg.type == "id":
                domain.values[pos] = ["x"]
            else:
                domain.values[pos] = sorted({str(v) for v in symbols.get(pos, set())} | {"other"})
    for pred, ks in count_thresholds.items():
        decl = rs.decls.get(pred)
        most = 1 if decl is not None and decl.single else getattr(decl, "bound", None) or MAX_COUNT
        domain.counts[pred] = {k for t in ks for k in (t - 1, t, t + 1) if 2 <= k <= min(most, MAX_COUNT)}
        domain.needs[pred] = min(MAX_COUNT, max(ks) + 1)  # both sides of every threshold
    for (pred, i), ts in sum_thresholds.items():  # a sum of values up to `high` reaches T with T / high facts
        decl = rs.decls.get(pred)
        high = decl.args[i].high if decl is not None and decl.role == "input" else None
        if high is not None and high > 0 and ts:
            need = min(MAX_COUNT, int(max(abs(t) for t in ts) // high) + 2)
            domain.needs[pred] = max(domain.needs.get(pred, 0), need)
    return domain


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


# ----------------------------------------------------------------------------- the covering array
@dataclass
class Exploration:
    patients: dict[str, list[Fact]] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    """patient id → how it was made (covering row, or the rule it is a witness for)."""
    space: int = 0
    pairs: tuple[int, int] = (0, 0)
    """(value pairs covered, value pairs in all)."""
    covering_rows: int = 0
    sampled_rows: int = 0
    exhaustive: bool = False
    dimensions: int = 0


_SPAN = Span("<explored>", 0, 0)


def covering_array(dims: list[list], budget: int) -> tuple[list[tuple[int, ...]], bool, int, tuple[int, int]]:
    """Rows of value indices: the full product when it fits the budget, else a greedy
    pairwise covering array (every pair of values of two dimensions in some row)."""
    space = 1
    for d in dims:
        space *= len(d)
    pairs = sum(len(dims[a]) * len(dims[b]) for a, b in itertools.combinations(range(len(dims)), 2))
    if space <= budget:
        return list(itertools.product(*(range(len(d)) for d in dims))), True, space, (pairs, pairs)
    uncovered: set[tuple[int, int, int, int]] = {
        (a, i, b, j) for a, b in itertools.combinations(range(len(dims)), 2)
        for i in range(len(dims[a])) for j in range(len(dims[b]))}
    rows: list[tuple[int, ...]] = []
    order = sorted(range(len(dims)), key=lambda d: -len(dims[d]))
    while uncovered and len(rows) < budget:
        a, i, b, j = min(uncovered)  # seed the row with the first uncovered pair: deterministic
        row = [-1] * len(dims)
        row[a], row[b] = i, j
        for d in order:
            if row[d] >= 0:
                continue
            best, best_gain = 0, -1
            for v in range(len(dims[d])):
                gain = sum(1 for e in range(len(dims)) if row[e] >= 0 and
                           ((min(d, e), v if d < e else row[e], max(d, e), row[e] if d < e else v) in uncovered))
                if gain > best_gain:
                    best, best_gain = v, gain
            row[d] = best
        for x, y in itertools.combinations(range(len(dims)), 2):
            uncovered.discard((x, row[x], y, row[y]))
        rows.append(tuple(row))
    return rows, False, space, (pairs - len(uncovered), pairs)


def explore(rs: RuleSet, domain: Domain, budget: int = 4000) -> Exploration:
    """Patients from a covering array whose dimensions are each input predicate's
    presence and each of its arguments' representative values: pairs of thresholds
    across arguments (a drug and the hours since it was given, a device and its flow)
    are what rules combine, and argument-level dimensions keep pairwise coverage
    affordable. Several facts of one predicate come from the targeted witnesses."""
    inputs = sorted(p for p, d in rs.decls.items() if d.role == "input" and d.key_index is not None)
    dims: list[list] = []
    where: list[tuple[str, int | None]] = []
    for pred in inputs:
        decl = rs.decls[pred]
        dims.append([False, True])
        where.append((pred, None))
        for i in range(decl.arity):
            if i != decl.key_index:
                dims.append(list(domain.values[(pred, i)]))
                where.append((pred, i))
    rows, exhaustive, space, pairs = covering_array(dims, budget)
    covering = len(rows)
    if not exhaustive:  # spend the rest of the budget on a seeded random sample: higher-order mixes
        import random
        rng = random.Random(0)
        seen = set(rows)
        for _ in range(budget - len(rows)):
            row = tuple(rng.randrange(len(d)) for d in dims)
            if row not in seen:
                seen.add(row)
                rows.append(row)
    out = Exploration(space=space, covering_rows=covering, exhaustive=exhaustive, dimensions=len(dims),
                      pairs=pairs, sampled_rows=len(rows) - covering)
    for n, row in enumerate(rows, 1):
        pid = f"e{n}"
        chosen = {w: dims[d][row[d]] for d, w in enumerate(where)}
        facts = []
        for pred in inputs:
            if chosen[(pred, None)]:
                decl = rs.decls[pred]
                args = tuple(pid if i == decl.key_index else chosen[(pred, i)] for i in range(decl.arity))
                facts.append(Fact(pred, args, _SPAN))
        out.patients[pid] = facts
        out.how[pid] = "exhaustive" if exhaustive else "covering" if n <= covering else "sampled"
    return out


# ----------------------------------------------------------------------------- targeted witnesses
class _Unfolder:
    """SLD-style unfolding of a rule's body down to input atoms, with eager unification
    and pruning on comparisons that are already decided, then representative values for
    what is left."""

    def __init__(self, rs: RuleSet, domain: Domain, settings: dict[str, Value]):
        self.rs = rs
        self.domain = domain
        self.settings = settings
        self.fresh = itertools.count(1)
        self.by_head: dict[str, list[Rule]] = {}
        for rule in rs.rules:
            if rule.head is not None:
                self.by_head.setdefault(rule.head.pred, []).append(rule)
        for rules in self.by_head.values():  # simpler alternatives first: smaller witnesses
            rules.sort(key=lambda r: len(r.body))
        self.steps = 0

    def candidates(self, rule: Rule, pid: str, limit: int) -> list[list[Fact]]:
        out: list[list[Fact]] = []
        seen: set[tuple] = set()
        renamed = self._rename(rule)
        self.steps = 0
        goals = [(lit, 0) for lit in renamed.body]
        for atoms, comparisons, subst in itertools.islice(self._unfold(goals, [], [], {}, frozenset()), 60):
            for facts in itertools.islice(self._solve(atoms, comparisons, subst, renamed, pid), 2):
                key = tuple(sorted((f.pred, f.args) for f in facts))
                if key not in seen:
                    seen.add(key)
                    out.append(facts)
            if len(out) >= limit:
                break
        return out

    def _rename(self, rule: Rule) -> Rule:
        n = next(self.fresh)
        mapping: dict[str, Var] = {}

        def r(e: Expr) -> Expr:
            if isinstance(e, Var):
                if e.name not in mapping:
                    mapping[e.name] = Var(f"{e.name}#{n}")
                return mapping[e.name]
            if isinstance(e, BinOp):
                return BinOp(e.op, r(e.left), r(e.right))
            if isinstance(e, Call):
                return Call(e.func, tuple(r(a) for a in e.args))
            if isinstance(e, Setting):
                value = _setting_value(e, self.rs, self.settings)
                return Const(value) if value is not None else e  # type: ignore[arg-type]
            return e

        def lit(x: Literal) -> Literal:
            if isinstance(x, Atom):
                return Atom(x.pred, tuple(r(a) for a in x.args))
            if isinstance(x, Negation):
                return Negation(lit(x.atom))  # type: ignore[arg-type]
            if isinstance(x, Comparison):
                return Comparison(x.op, r(x.left), r(x.right))
            return Aggregate(r(x.result), x.func, r(x.target) if x.target else None,  # type: ignore[arg-type]
                             tuple(lit(b) for b in x.body))

        head = Atom(rule.head.pred, tuple(r(a) for a in rule.head.args)) if rule.head else None
        return Rule(head, tuple(lit(b) for b in rule.body), rule.id, rule.sources, rule.says, rule.span,
                    rule.strength, rule.choice)

    # ---- unification over a substitution (variable name → Var or Const)
    @staticmethod
    def _walk(t: Expr, subst: dict[str, Expr]) -> Expr:
        while isinstance(t, Var) and t.name in subst:
            t = subst[t.name]
        return t

    def _resolve(self, e: Expr, subst: dict[str, Expr]) -> Expr:
        e = self._walk(e, subst)
        if isinstance(e, BinOp):
            return BinOp(e.op, self._resolve(e.left, subst), self._resolve(e.right, subst))
        if isinstance(e, Call):
            return Call(e.func, tuple(self._resolve(a, subst) for a in e.args))
        return e

    def _unify(self, a: Expr, b: Expr, subst: dict[str, Expr]) -> dict[str, Expr] | None:
        a, b = self._walk(a, subst), self._walk(b, subst)
        if isinstance(a, Var) and isinstance(b, Var) and a.name == b.name:
            return subst
        if isinstance(a, Var):
            return {**subst, a.name: b}
        if isinstance(b, Var):
            return {**subst, b.name: a}
        if isinstance(a, Const) and isinstance(b, Const):
            from reasoner.engines.model import values_equal
            return subst if values_equal(a.value, b.value) else None
        return subst  # an expression: checked as a comparison

    def _decide(self, comparisons: list[Comparison], subst: dict[str, Expr]) -> tuple[list[Comparison], dict] | None:
        """Bind what assignments can bind; drop decided comparisons; None if one is false."""
        from reasoner.proof.match import Unbound, compare, eval_expr
        changed = True
        pending = list(comparisons)
        while changed:
            changed = False
            rest = []
            for c in pending:
                left, right = self._resolve(c.left, subst), self._resolve(c.right, subst)
                if c.op == _DISTINCT:  # decided only when values are chosen
                    rest.append(Comparison(c.op, left, right))
                    continue
                if c.op == "=" and isinstance(left, Var) and isinstance(right, Var):
                    if left.name != right.name:
                        subst = {**subst, left.name: right}
                    changed = True
                    continue
                env: dict[str, Value] = {}
                try:
                    lv = eval_expr(left, env, self.settings)
                except Unbound:
                    lv = None
                try:
                    rv = eval_expr(right, env, self.settings)
                except Unbound:
                    rv = None
                if lv is not None and rv is not None:
                    try:
                        if not compare(c.op, lv, rv):
                            return None
                    except TypeError:
                        return None
                    continue
                if c.op == "=" and isinstance(left, Var) and rv is not None:
                    subst = {**subst, left.name: Const(rv)}
                    changed = True
                    continue
                if c.op == "=" and isinstance(right, Var) and lv is not None:
                    subst = {**subst, right.name: Const(lv)}
                    changed = True
                    continue
                rest.append(Comparison(c.op, left, right))
            pending = rest
        return pending, subst

    def _unfold(self, goals: list[tuple[Literal, int]], atoms: list[Atom], comparisons: list[Comparison],
                subst: dict[str, Expr], proven: frozenset
                ) -> Iterator[tuple[list[Atom], list[Comparison], dict[str, Expr]]]:
        """Goals carry their nesting depth, which bounds recursive rules."""
        self.steps += 1
        if self.steps > 30000:
            return
        if not goals:
            yield atoms, comparisons, subst
            return
        (first, depth), rest = goals[0], goals[1:]
        if isinstance(first, Negation):
            yield from self._unfold(rest, atoms, comparisons, subst, proven)  # checked by evaluating
        elif isinstance(first, Comparison):
            decided = self._decide(comparisons + [first], subst)
            if decided is not None:
                yield from self._unfold(rest, atoms, decided[0], decided[1], proven)
        elif isinstance(first, Aggregate):
            yield from self._unfold_aggregate(first, depth, rest, atoms, comparisons, subst, proven)
        else:
            key = (first.pred, tuple(str(self._resolve(a, subst)) for a in first.args))
            decl = self.rs.decls.get(first.pred)
            if decl is not None and decl.role == "input":
                yield from self._unfold(rest, atoms + [first], comparisons, subst, proven)
                return
            if key in proven:  # the same fact is already being established
                yield from self._unfold(rest, atoms, comparisons, subst, proven)
                return
            if depth >= 12:
                return
            for rule in self.by_head.get(first.pred, []):
                r = self._rename(rule)
                assert r.head is not None
                s: dict[str, Expr] | None = subst
                eqs: list[Comparison] = []
                for a, b in zip(first.args, r.head.args):
                    if isinstance(b, (BinOp, Call)):
                        eqs.append(Comparison("=", a, b))
                        continue
                    s = self._unify(a, b, s) if s is not None else None
                if s is None:
                    continue
                decided = self._decide(comparisons + eqs, s)
                if decided is None:
                    continue
                yield from self._unfold([(b, depth + 1) for b in r.body] + rest, atoms, decided[0], decided[1],
                                        proven | {key})

    def _unfold_aggregate(self, agg: Aggregate, depth: int, rest: list[tuple[Literal, int]], atoms: list[Atom],
                          comparisons: list[Comparison], subst: dict[str, Expr], proven: frozenset
                          ) -> Iterator[tuple[list[Atom], list[Comparison], dict[str, Expr]]]:
        if agg.func == "count":
            counted = [a.pred for a in agg.body if isinstance(a, Atom)]
            ks = sorted({0, 1} | {k for p in counted for k in self.domain.counts.get(p, set())})
            for k in ks:
                copies: list[Literal] = []
                rows: list[Call] = []
                for _ in range(k):
                    copy = self._rename(Rule(None, agg.body, None, (), None, _SPAN))
                    copies += list(copy.body)
                    names = sorted({v.name for lit in copy.body if isinstance(lit, Atom)
                                    for a in lit.args for v in expr_vars(a)})
                    rows.append(Call("row", tuple(Var(n) for n in names)))
                s = self._unify(agg.result, Const(k), subst)
                if s is None:
                    continue
                apart = [Comparison(_DISTINCT, a, b) for a, b in itertools.combinations(rows, 2)]
                decided = self._decide(comparisons + apart, s)
                if decided is None:
                    continue
                yield from self._unfold([(c, depth + 1) for c in copies] + rest, atoms, decided[0], decided[1],
                                        proven)
            return
        for k in (1, 2) if agg.func == "sum" else (1,):
            copy = self._rename(Rule(Atom("_t", (agg.target,)), agg.body, None, (), None, _SPAN))  # type: ignore[arg-type]
            target = copy.head.args[0]  # type: ignore[union-attr]
            extra = [Comparison("=", agg.result, target)] if k == 1 else []
            if k == 1:
                yield from self._unfold([(b, depth + 1) for b in copy.body] + rest, atoms, comparisons + extra,
                                        subst, proven)

    def _spread(self, pos: Position, n: int) -> list[Value]:
        """n different valid values for an input argument (for n different facts)."""
        arg = self.rs.decls[pos[0]].args[pos[1]]
        if arg.type in self.rs.types:
            return list(self.rs.types[arg.type].values)
        if arg.type in ("number", "integer"):
            lo = 0 if arg.low is None else arg.low
            hi = lo + 100 if arg.high is None else arg.high
            if arg.type == "integer":
                import math
                lo, hi = math.ceil(lo), math.floor(hi)
                return list(range(lo, hi + 1))[:n]
            step = (hi - lo) // n if hi - lo >= n else (hi - lo) / n  # whole numbers where they fit
            return [int(x) if float(x).is_integer() else x for x in (round(lo + step * j, 6) for j in range(n))]
        return [f"x{j + 1}" for j in range(n)]

    def _solve(self, atoms: list[Atom], comparisons: list[Comparison], subst: dict[str, Expr], rule: Rule,
               pid: str) -> Iterator[list[Fact]]:
        from reasoner.proof.match import Unbound, compare, eval_expr
        for pred in {a.pred for a in atoms if self.rs.decls[a.pred].single}:  # one fact per patient
            same = [a for a in atoms if a.pred == pred]
            for other in same[1:]:
                for x, y in zip(same[0].args, other.args):
                    s2 = self._unify(x, y, subst)
                    if s2 is None:
                        return
                    subst = s2
        atoms = [Atom(a.pred, tuple(self._resolve(x, subst) for x in a.args)) for a in atoms]
        comparisons = [Comparison(c.op, self._resolve(c.left, subst), self._resolve(c.right, subst))
                       for c in comparisons]
        key_vars: set[str] = set()
        candidates: dict[str, list[Value]] = {}
        position: dict[str, Position] = {}
        for atom in atoms:
            k = self.rs.decls[atom.pred].key_index
            for i, arg in enumerate(atom.args):
                if isinstance(arg, Var):
                    if i == k:
                        key_vars.add(arg.name)
                        continue
                    vals = self.domain.values.get((atom.pred, i), [])
                    have = candidates.get(arg.name)
                    candidates[arg.name] = [v for v in have if v in vals] if have is not None else list(vals)
                    position.setdefault(arg.name, (atom.pred, i))
        # n copies of a counted body need n different rows: more values than the representative ones
        rows_n = len({str(c.left) for c in comparisons if c.op == _DISTINCT} |
                     {str(c.right) for c in comparisons if c.op == _DISTINCT})
        if rows_n > 1:
            for c in comparisons:
                if c.op != _DISTINCT:
                    continue
                for v in expr_vars(c.left) + expr_vars(c.right):
                    have = candidates.get(v.name)
                    if have is not None and len(have) < rows_n and v.name in position:
                        candidates[v.name] = have + [x for x in self._spread(position[v.name], rows_n)
                                                     if x not in have]
        if rule.head is not None:
            k = self.rs.key_index(rule.head.pred)
            head_key = self._walk(rule.head.args[k], subst) if k is not None else None
            if isinstance(head_key, Var):
                key_vars.add(head_key.name)
        order = sorted((v for v in candidates if v not in key_vars), key=lambda v: len(candidates[v]))
        steps = [0]

        # the copies of a counted body must be different rows (else they collapse into one)
        distinct = [(c.left, c.right) for c in comparisons if c.op == _DISTINCT]
        comparisons = [c for c in comparisons if c.op != _DISTINCT]

        def ground(e: Expr, env: dict[str, Value]) -> tuple | None:
            try:
                return tuple(eval_expr(x, env, self.settings) for x in e.args)  # type: ignore[union-attr]
            except Unbound:
                return None

        def consistent(env: dict[str, Value]) -> bool:
            for a, b in distinct:
                ga, gb = ground(a, env), ground(b, env)
                if ga is not None and gb is not None and ga == gb:
                    return False
            for c in comparisons:
                try:
                    if not compare(c.op, eval_expr(c.left, env, self.settings), eval_expr(c.right, env, self.settings)):
                        return False
                except Unbound:
                    continue
                except TypeError:
                    return False
            return True

        def propagate(env: dict[str, Value]) -> dict[str, Value]:
            changed = True
            while changed:
                changed = False
                for c in comparisons:
                    if c.op != "=":
                        continue
                    for target, source in ((c.left, c.right), (c.right, c.left)):
                        if isinstance(target, Var) and target.name not in env:
                            try:
                                env = {**env, target.name: eval_expr(source, env, self.settings)}
                                changed = True
                            except (Unbound, TypeError):
                                pass
            return env

        def search(i: int, env: dict[str, Value]) -> Iterator[dict[str, Value]]:
            steps[0] += 1
            env = propagate(env)
            if steps[0] > 20000 or not consistent(env):
                return
            if i == len(order):
                yield env
                return
            for value in candidates[order[i]]:
                yield from search(i + 1, {**env, order[i]: value})

        for solution in search(0, {v: pid for v in key_vars}):
            facts = []
            for atom in atoms:
                args: list[Value] = []
                for i, a in enumerate(atom.args):
                    if isinstance(a, Var):
                        args.append(solution.get(a.name, pid if i == self.rs.decls[atom.pred].key_index else "x"))
                    elif isinstance(a, Const):
                        args.append(a.value)
                    else:
                        try:
                            args.append(eval_expr(a, solution, self.settings))
                        except Unbound:
                            args.append(0)
                facts.append(Fact(atom.pred, tuple(args), _SPAN))
            yield _dedupe(facts)


def _dedupe(facts: list[Fact]) -> list[Fact]:
    seen: set[tuple] = set()
    out = []
    for f in facts:
        if (f.pred, f.args) not in seen:
            seen.add((f.pred, f.args))
            out.append(f)
    return out


def witnesses(rs: RuleSet, domain: Domain, settings: dict[str, Value], per_rule: int = 3,
              rules: list[int] | None = None) -> Exploration:
    """Candidate patients aimed at making each rule (or the listed ones) fire."""
    unfolder = _Unfolder(rs, domain, settings)
    out = Exploration()
    from reasoner.io.facts import check_fact
    for index, rule in enumerate(rs.rules):
        if rules is not None and index not in rules:
            continue
        if not rule.body:
            continue
        for n, facts in enumerate(unfolder.candidates(rule, f"w{index}_{0}", per_rule), 1):
            pid = f"w{index}_{n}"
            renamed = [Fact(f.pred, tuple(pid if a == f"w{index}_0" else a for a in f.args), f.span) for f in facts]
            if any(check_fact(rs, f) is not None for f in renamed):
                continue
            out.patients[pid] = renamed
            out.how[pid] = f"witness for {rs.rule_name(rule)}"
    return out


def keys_of(rs: RuleSet, agg: Aggregate, rule: Rule) -> list[str]:
    return aggregate_keys(agg, rule.body, rule.head)
