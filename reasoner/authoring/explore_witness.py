"""Targeted witnesses (explore.py's second source of patients): a rule's body unfolded
through the rules of its derived literals down to input facts, choosing among alternative
rules depth-first; count aggregates unrolled to the counts the rules compare with; the
variables given representative values (explore_domain.py) that satisfy the comparisons.
"""
from __future__ import annotations

import itertools
from typing import Iterator

from reasoner.analysis.program import RuleSet
from reasoner.authoring.explore import EXPLORED_SPAN, Exploration
from reasoner.authoring.explore_domain import Domain, Position, setting_value
from reasoner.language.syntax import (
    Aggregate,
    Atom,
    BinOp,
    Call,
    Comparison,
    Const,
    Expr,
    Fact,
    Literal,
    Negation,
    Rule,
    Setting,
    Value,
    Var,
    expr_vars,
)

_DISTINCT = "<>"  # a constraint between two rows of a count: they must differ


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
                value = setting_value(e, self.rs, self.settings)
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
                    copy = self._rename(Rule(None, agg.body, None, (), None, EXPLORED_SPAN))
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
            copy = self._rename(Rule(Atom("_t", (agg.target,)), agg.body, None, (), None, EXPLORED_SPAN))  # type: ignore[arg-type]
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
        """Input facts for one unfolding: the atoms of a `one` predicate made one fact, every
        variable given one of its representative values (the patient at every key) so that
        the comparisons hold."""
        subst = self._one_fact_each(atoms, subst)  # type: ignore[assignment]
        if subst is None:
            return
        atoms = [Atom(a.pred, tuple(self._resolve(x, subst) for x in a.args)) for a in atoms]
        comparisons = [Comparison(c.op, self._resolve(c.left, subst), self._resolve(c.right, subst))
                       for c in comparisons]
        key_vars, candidates, position = self._candidate_values(atoms)
        self._widen_for_rows(comparisons, candidates, position)
        if rule.head is not None:
            k = self.rs.key_index(rule.head.pred)
            head_key = self._walk(rule.head.args[k], subst) if k is not None else None
            if isinstance(head_key, Var):
                key_vars.add(head_key.name)
        order = sorted((v for v in candidates if v not in key_vars), key=lambda v: len(candidates[v]))
        # the copies of a counted body must be different rows (else they collapse into one)
        distinct = [(c.left, c.right) for c in comparisons if c.op == _DISTINCT]
        comparisons = [c for c in comparisons if c.op != _DISTINCT]
        for solution in self._assignments(order, candidates, comparisons, distinct, {v: pid for v in key_vars}):
            yield _dedupe(self._facts(atoms, solution, pid))

    def _one_fact_each(self, atoms: list[Atom], subst: dict[str, Expr]) -> dict[str, Expr] | None:
        """The atoms of a predicate declared `one` unified into one fact (None: they cannot be)."""
        for pred in {a.pred for a in atoms if self.rs.decls[a.pred].single}:  # one fact per patient
            same = [a for a in atoms if a.pred == pred]
            for other in same[1:]:
                for x, y in zip(same[0].args, other.args):
                    s2 = self._unify(x, y, subst)
                    if s2 is None:
                        return None
                    subst = s2
        return subst

    def _candidate_values(self, atoms: list[Atom]) -> tuple[set[str], dict[str, list[Value]], dict[str, Position]]:
        """(the variables at a patient key, variable → the representative values of every
        position it holds, variable → its first position)."""
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
        return key_vars, candidates, position

    def _widen_for_rows(self, comparisons: list[Comparison], candidates: dict[str, list[Value]],
                        position: dict[str, Position]) -> None:
        """n copies of a counted body need n different rows: more values than the representative ones."""
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

    def _assignments(self, order: list[str], candidates: dict[str, list[Value]], comparisons: list[Comparison],
                     distinct: list[tuple[Expr, Expr]], start: dict[str, Value]) -> Iterator[dict[str, Value]]:
        """Values for `order`'s variables, tried in that order (at most 20,000 steps), that no
        comparison refutes and that keep the copies of a counted body apart; an `=` binds."""
        from reasoner.proof.match import Unbound, compare, eval_expr
        steps = [0]

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

        yield from search(0, start)

    def _facts(self, atoms: list[Atom], solution: dict[str, Value], pid: str) -> list[Fact]:
        """The atoms as facts under a solution (the patient at an unbound key, `x` elsewhere)."""
        from reasoner.proof.match import Unbound, eval_expr
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
            facts.append(Fact(atom.pred, tuple(args), EXPLORED_SPAN))
        return facts


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
