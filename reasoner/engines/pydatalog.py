"""The only module that talks to pyDatalog.

How a rule set runs (docs/engine.md says why):
- Each rule's body becomes one pyDatalog clause `_rN(V1, ..., Vk) <= body`, whose
  arguments are *all* the rule's variables. Firing a rule is one query of `_rN`; the rows
  are the rule's firings (kept for proofs), the head follows from each row.
- Strata run in dependency order; each derived fact is asserted back as a pyDatalog fact
  before the next stratum runs. pyDatalog therefore never resolves a recursive
  predicate itself (it hangs on right recursion over cycles): a recursive component is
  run by a semi-naive fixpoint that asks only non-recursive questions.
- Aggregates are computed from a query of their body (`count` counts rows, `count` and
  `sum` of nothing are 0) and asserted as a helper fact the rule's clause joins with.
- Negations of atoms with `_` go through a projection clause, so "no contraindication
  of any reason" means what it says.
- The clauses are built once per `Engine`; patients are asserted, queried and retracted
  in chunks, so memory stays flat with the cohort's size.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from itertools import count
from typing import Callable, Iterable, Iterator, Sequence

from pyDatalog import pyEngine
from pyDatalog.Logic import Logic

from reasoner.plan import semantics
from reasoner.language.errors import EvaluationLimit, ReasonerError
from reasoner.engines.model import Firing, Model
from reasoner.plan.lowered import LoweredAggregate, LoweredRule, plan_of
from reasoner.analysis.program import RuleSet, Step, resolve_settings
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Fact, Literal, Negation, Rule, Setting,
    Value, Var, body_atoms,
)


# ----------------------------------------------------------------------------- arithmetic
# What arithmetic means is semantics.py's; these are its functions as pyDatalog calls them
# on bound values (pyDatalog applies a Python function operator only when it is a
# function object, so no builtins). `+ - *` stay pyDatalog's own: they carry NaN, which
# is how "no value" travels here, and pyDatalog will not bind a variable to NaN.
_div = semantics.divide
_FUNCTIONS: dict[str, Callable[..., Value]] = dict(semantics.FUNCTIONS)


def _holds(op: str) -> Callable[[Value, Value], bool]:
    def holds(a: Value, b: Value) -> bool:
        return semantics.compare(op, a, b)
    return holds


# A comparison with a side that may have no value is asked through semantics.compare:
# pyDatalog's own `!=` holds for NaN.
_STRICT_COMPARE = {op: _holds(op) for op in ("=", "!=", "<", "<=", ">", ">=")}
_COMPARE = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


# ----------------------------------------------------------------------------- compiled form
@dataclass
class _CompiledAggregate:
    literal: Aggregate
    keys: list[str]
    inner_vars: list[str]
    inner_pred: str  # _aN_J(inner vars) <= aggregate body
    domain_pred: str | None  # _dN_J(keys) <= the body steps before the aggregate
    result_pred: str  # _gN_J(keys, value), asserted per evaluation
    position: int  # where the aggregate stands in the rule's body as written
    asserted: list = field(default_factory=list)


@dataclass
class _CompiledRule:
    index: int
    rule: Rule
    variables: tuple[str, ...]
    body_pred: str
    head_args: list[tuple[str, object]]  # ("var", name) or ("const", value)
    aggregates: list[_CompiledAggregate]
    body: tuple[Literal, ...] = ()  # the body as compiled (with head expressions as assignments)
    needs: tuple[str, ...] = ()  # predicates of its positive atoms: none may be empty
    projections: tuple[str, ...] = ()  # `_nK` projections its negations read
    divides: bool = False  # only a division makes NaN, so only such rules check for it
    variants: list[str] = field(default_factory=list)  # semi-naive clauses (recursive rules)


class Engine:
    """A rule set compiled to pyDatalog clauses, ready to evaluate chunks of facts.

    pyDatalog's state is global to the thread, so one engine is installed at a time;
    an engine re-installs itself when another one was used in between.
    """

    _installed: "Engine | None" = None

    def __init__(self, ruleset: RuleSet, settings: dict[str, float] | None = None,
                 max_iterations: int = 100_000, time_limit: float | None = None, record_firings: bool = True):
        self.ruleset = ruleset
        self.settings: dict[str, Value] = resolve_settings(ruleset, settings)
        self.max_iterations = max_iterations
        self.time_limit = time_limit
        self.record_firings = record_firings  # off: no proofs, far less memory on big recursions
        self._sizes: dict[str, float] | None = None  # facts per predicate seen in the first chunk
        self._tuned = False
        # Compiled in a fresh pyDatalog state, so that install() can use these clauses as
        # they are when nothing reset the state since (one compile for a one-chunk run),
        # and fail early on what only compiling finds.
        self._reset()
        self._compile()
        self._ready: tuple[int, int] | None = _STATE[0]

    # ------------------------------------------------------------------ compiling
    def _compile(self) -> None:
        # pyDatalog interns predicates in its current state, so clauses are built anew
        # right after each reset (about 20 ms for the CRS rule set).
        self._fresh = count(1)
        self._clauses: list = []
        self._preds: set[tuple[str, int]] = set()
        self._rules: list[_CompiledRule] = []
        self._constraints: list[_CompiledRule] = []
        self._static: list[tuple[str, tuple[Value, ...]]] = []
        self._projections: dict[str, tuple[str, tuple[int, ...]]] = {}
        _PREDS.clear()
        rs = self.ruleset
        plan = plan_of(rs)
        self._read = {atom.pred for rule in rs.rules for atom in body_atoms(rule.body)}
        for pred, decl in rs.decls.items():
            self._preds.add((pred, decl.arity))
        for pred, args in plan.facts:
            self._static.append((pred, tuple(self._const(a) for a in args)))
        for lowered in plan.rules.values():
            compiled = self._compile_rule(lowered)
            if lowered.head is None:
                self._constraints.append(compiled)
            else:
                self._rules.append(compiled)
                self._add_variants(compiled, lowered)

    def _const(self, e: Expr) -> Value:
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Setting):
            return self.settings[e.name]
        raise AssertionError(f"not a constant: {e}")

    def _compile_rule(self, lowered: LoweredRule) -> _CompiledRule:
        index, rule = lowered.index, lowered.rule
        head_args: list[tuple[str, object]] = [
            ("var", a.name) if isinstance(a, Var) else ("const", self._const(a)) for a in lowered.head or ()]
        steps = lowered.ordered(cost=self._cost) if self._sizes else lowered.steps
        aggregates: list[_CompiledAggregate] = []
        literals = []
        before = set(self._projections)
        for position, step in enumerate(steps):
            lit = step.literal
            if isinstance(lit, Aggregate):
                agg = self._compile_aggregate(index, len(aggregates), lowered.aggregate(lit), steps[:position])
                aggregates.append(agg)
                literals.append(_lit(agg.result_pred, [_var(k) for k in agg.keys] + [_var(lit.result.name)]))
            else:
                literals.append(self._literal(step))
        body_pred = f"_r{index}"
        # Rows list the plan's variables whatever join order the chunk sizes chose, so
        # firings (and the proofs printed from them) read the same in every process.
        self._add_clause(body_pred, lowered.variables, literals)
        projections = tuple(sorted(set(self._projections) - before))
        return _CompiledRule(index, rule, lowered.variables, body_pred, head_args, aggregates, lowered.body,
                             tuple(sorted(lowered.needs)), projections, lowered.may_lack_value)

    def _compile_aggregate(self, index: int, j: int, lowered: LoweredAggregate,
                           before: Sequence[Step]) -> _CompiledAggregate:
        keys = list(lowered.keys)
        inner_pred = f"_a{index}_{j}"
        self._add_clause(inner_pred, lowered.variables, [self._literal(s) for s in lowered.steps])
        domain_pred = None
        if keys:
            domain_pred = f"_d{index}_{j}"
            domain_literals = []
            for step in before:
                if isinstance(step.literal, Aggregate):
                    raise ReasonerError.at(lowered.literal.span,
                                           "an aggregate's keys may not depend on another aggregate", "E007")
                domain_literals.append(self._literal(step))
            self._add_clause(domain_pred, keys, domain_literals)
        result_pred = f"_g{index}_{j}"
        self._preds.add((result_pred, len(keys) + 1))
        return _CompiledAggregate(lowered.literal, keys, list(lowered.variables), inner_pred, domain_pred,
                                  result_pred, lowered.position)

    def _cost(self, atom: Atom, bound: set[str]) -> float:
        """Estimated rows of an atom given what is bound: its size in the first chunk,
        divided by ten for each bound argument (a textbook selectivity guess)."""
        assert self._sizes is not None
        size = self._sizes.get(atom.pred, 0.0)
        fixed = sum(1 for a in atom.args if not isinstance(a, Var) or a.name in bound)
        return (size + 1) / (10 ** fixed)

    def _add_variants(self, compiled: _CompiledRule, lowered: LoweredRule) -> None:
        """Semi-naive: one clause per variant of the plan, its recursive atom read from the
        last round's new facts (`_delta_p`) instead of all of `p`."""
        before = set(self._projections)
        for variant in lowered.variants:
            atom = variant.atom
            delta = Atom(f"_delta_{atom.pred}", atom.args, atom.span)
            steps = lowered.ordered(first=atom, cost=self._cost) if self._sizes else variant.steps
            literals = [self._literal(Step(delta, s.binds, s.assign) if s.literal is atom else s) for s in steps]
            name = f"{compiled.body_pred}_v{variant.position}"
            self._add_clause(name, list(compiled.variables), literals)  # rows read alike in every clause
            self._preds.add((delta.pred, delta.arity))
            compiled.variants.append(name)
        # a variant's negations may need projections of their own: assert them too
        compiled.projections = tuple(sorted(set(compiled.projections) | (set(self._projections) - before)))

    def _add_clause(self, name: str, variables: Sequence[str], literals: list) -> None:
        head = _lit(name, [_var(v) for v in variables])
        self._clauses.append(pyEngine.Clause(head, literals))

    def _literal(self, step: Step):
        lit = step.literal
        if isinstance(lit, Atom):
            return _lit(lit.pred, [self._term(a) for a in lit.args])
        if isinstance(lit, Negation):
            atom = lit.atom
            if any(isinstance(a, Var) and a.anonymous for a in atom.args):
                # `!p(X, _)` means "no p(X, anything)": negate a projection of p onto X.
                # p is complete by then (a lower stratum), so the projection is
                # asserted as facts once per chunk rather than re-derived per row.
                positions = tuple(i for i, a in enumerate(atom.args) if not (isinstance(a, Var) and a.anonymous))
                name = f"_n{next(self._fresh)}"
                self._projections[name] = (atom.pred, positions)
                self._preds.add((name, len(positions)))
                return _lit("~" + name, [self._term(atom.args[i]) for i in positions])
            return _lit("~" + atom.pred, [self._term(a) for a in atom.args])
        if isinstance(lit, Comparison):
            if step.assign is not None:
                target = lit.left if isinstance(lit.left, Var) and lit.left.name == step.assign else lit.right
                value = lit.right if target is lit.left else lit.left
                return _lit("==", [self._term(target), self._term(value)])
            if semantics.may_lack_value(lit.left) or semantics.may_lack_value(lit.right):
                check = pyEngine.Operation(pyEngine.Const(None), _STRICT_COMPARE[lit.op],
                                           pyEngine.VarTuple((self._term(lit.left), self._term(lit.right))))
                return _lit("==", [check, pyEngine.Const(True)])
            return _lit(_COMPARE[lit.op], [self._term(lit.left), self._term(lit.right)])
        raise AssertionError(f"unexpected literal {lit}")

    def _term(self, e: Expr):
        if isinstance(e, Var):
            return _var(e.name)
        if isinstance(e, (Const, Setting)):
            return pyEngine.Const(self._const(e))
        if isinstance(e, BinOp):
            left, right = self._term(e.left), self._term(e.right)
            if e.op == "/":
                return pyEngine.Operation(pyEngine.Const(None), _div, pyEngine.VarTuple((left, right)))
            return pyEngine.Operation(left, e.op, right)
        if isinstance(e, Call):
            args = tuple(self._term(a) for a in e.args)
            return pyEngine.Operation(pyEngine.Const(None), _FUNCTIONS[e.func], pyEngine.VarTuple(args))
        raise AssertionError(f"unexpected expression {e}")

    # ------------------------------------------------------------------ installing
    def install(self) -> None:
        """Reset pyDatalog and load this engine's clauses (done once, and again only if
        another engine was installed since)."""
        if Engine._installed is self:
            return
        if self._ready is None or self._ready != _STATE[0] or _STATE[0][0] != threading.get_ident():
            self._reset()  # a fresh pyDatalog state: nothing of an earlier program leaks in
            self._compile()
        self._ready = None  # the state is this engine's now: a later install resets it
        for pred, arity in sorted(self._preds):
            # pyDatalog raises on negating a predicate it has never seen: make each known
            placeholder = pyEngine.Clause(_lit(pred, [pyEngine.Const("_placeholder")] * arity), [])
            pyEngine.assert_(placeholder)
            pyEngine.retract(placeholder)
        for clause in self._clauses:
            pyEngine.assert_(clause)
        for pred, args in self._static:
            pyEngine.assert_(_fact(pred, args))
        Engine._installed = self

    @staticmethod
    def _reset() -> None:
        """A fresh pyDatalog state in this thread, and no engine installed in it."""
        Logic()
        pyEngine.Float_Precision = None  # keep 37.95 as 37.95, not rounded to 8 digits
        Engine._installed = None
        _STATE[0] = (threading.get_ident(), _STATE[0][1] + 1)

    # ------------------------------------------------------------------ evaluating
    def evaluate(self, facts: Iterable[Fact]) -> Model:
        """Evaluate the rule set over `facts` (one chunk) and return its model.

        The chunk's facts are retracted afterwards, so the engine is ready for the next.
        """
        self.install()
        started = time.monotonic()
        model = Model()
        asserted: list = []
        self._projected: set[str] = set()
        try:
            for pred, args in self._static:
                model.facts[pred].add(args)
            for fact in facts:
                if fact.args not in model.facts[fact.pred]:
                    model.facts[fact.pred].add(fact.args)
                    clause = _fact(fact.pred, fact.args)
                    pyEngine.assert_(clause)
                    asserted.append(clause)
                model.origins.setdefault((fact.pred, fact.args), fact.span)
            rules_by_head: dict[str, list[_CompiledRule]] = {}
            model.settings = dict(self.settings)
            for compiled in self._rules:
                assert compiled.rule.head is not None
                rules_by_head.setdefault(compiled.rule.head.pred, []).append(compiled)
                model.variables[compiled.index] = compiled.variables
                model.heads[compiled.index] = tuple(compiled.head_args)
            for compiled in self._constraints:
                model.variables[compiled.index] = compiled.variables
            for component in plan_of(self.ruleset).components:
                rules = [c for p in component.preds for c in rules_by_head.get(p, [])]
                if component.recursive:
                    self._fixpoint(rules, model, asserted, started)
                else:
                    for compiled in rules:
                        self._derive(compiled, compiled.body_pred, model, asserted)
                        self._check_time(started)
            for compiled in self._constraints:
                for row in self._fire(compiled, compiled.body_pred, model, asserted):
                    model.violations.append(Firing(compiled.index, dict(zip(compiled.variables, row))))
        finally:
            for clause in asserted:
                pyEngine.retract(clause)
            for compiled in self._rules + self._constraints:
                for agg in compiled.aggregates:
                    self._retract_aggregate(agg)
        if not self._tuned:
            # Join order from what the first chunk looked like: the body clauses are
            # rebuilt once, smallest relations first (the answers are the same).
            self._tuned = True
            self._sizes = {pred: float(len(rows)) for pred, rows in model.facts.items()}
            Engine._installed = None
        return model

    def _check_time(self, started: float) -> None:
        if self.time_limit is not None and time.monotonic() - started > self.time_limit:
            raise EvaluationLimit(f"evaluation stopped after {self.time_limit:g} s (time limit)")

    def _derive(self, compiled: _CompiledRule, clause: str, model: Model, asserted: list,
                new: set | None = None) -> None:
        assert compiled.rule.head is not None
        pred = compiled.rule.head.pred
        known = model.facts[pred]
        read_later = pred in self._read  # only what some rule reads goes back into pyDatalog
        where = {v: i for i, v in enumerate(compiled.variables)}
        picks = [(True, where[v]) if kind == "var" else (False, v) for kind, v in compiled.head_args]
        for row in self._fire(compiled, clause, model, asserted):
            head = tuple(row[x] if is_var else x for is_var, x in picks)  # type: ignore[index]
            if compiled.divides and any(isinstance(v, float) and v != v for v in head):
                continue  # a division by zero upstream: no conclusion
            if head not in known:
                known.add(head)
                if new is not None:
                    new.add(head)
                if read_later:
                    clause_ = _fact(pred, head)
                    pyEngine.assert_(clause_)
                    asserted.append(clause_)

    def _fire(self, compiled: _CompiledRule, clause: str, model: Model,
              asserted: list | None = None) -> list[tuple[Value, ...]]:
        if clause == compiled.body_pred and not all(model.facts.get(p) for p in compiled.needs):
            return []  # a positive atom has no facts at all: nothing to ask pyDatalog
        for name in compiled.projections:
            if name not in self._projected:
                self._projected.add(name)
                pred, positions = self._projections[name]
                for row in {tuple(r[i] for i in positions) for r in model.facts.get(pred, ())}:
                    fact = _fact(name, row)
                    pyEngine.assert_(fact)
                    if asserted is not None:
                        asserted.append(fact)
        for agg in compiled.aggregates:
            rows = self._compute_aggregate(agg)
            model.aggregate_rows[(compiled.index, agg.position)] = (tuple(agg.inner_vars), rows)
        rows = _ask(clause, len(compiled.variables), compiled.rule)
        if self.record_firings:
            model.firings[compiled.index].extend(rows)
        return rows

    def _compute_aggregate(self, agg: _CompiledAggregate) -> list[tuple[Value, ...]]:
        """Assert the aggregate's value for each key; return the rows it aggregated."""
        self._retract_aggregate(agg)
        lit = agg.literal
        rows = _ask(agg.inner_pred, len(agg.inner_vars), None)
        key_pos = [agg.inner_vars.index(k) for k in agg.keys]
        target_pos = agg.inner_vars.index(lit.target.name) if isinstance(lit.target, Var) else None
        groups: dict[tuple, list[tuple]] = {}
        for row in rows:
            groups.setdefault(tuple(row[i] for i in key_pos), []).append(row)
        domain = _ask(agg.domain_pred, len(agg.keys), None) if agg.domain_pred else [()]
        for key in set(domain) | (set(groups) if lit.func in ("min", "max") else set()):
            members = groups.get(key, [])
            values = members if target_pos is None else [row[target_pos] for row in members]
            value = semantics.aggregate(lit.func, values)
            if value is None:
                continue  # min/max of nothing: no value, the rule does not fire
            clause = _fact(agg.result_pred, key + (value,))
            pyEngine.assert_(clause)
            agg.asserted.append(clause)
        return rows

    @staticmethod
    def _retract_aggregate(agg: _CompiledAggregate) -> None:
        for clause in agg.asserted:
            pyEngine.retract(clause)
        agg.asserted.clear()

    def _fixpoint(self, rules: list[_CompiledRule], model: Model, asserted: list, started: float) -> None:
        """Semi-naive evaluation of one recursive component, driven from here."""
        delta: dict[str, set] = {}
        for compiled in rules:  # round 0: every rule over what is known so far
            assert compiled.rule.head is not None
            self._derive(compiled, compiled.body_pred, model, asserted,
                         delta.setdefault(compiled.rule.head.pred, set()))
            self._check_time(started)
        for iteration in range(self.max_iterations):
            if not any(delta.values()):
                return
            self._check_time(started)
            delta_facts = [_fact(f"_delta_{pred}", args) for pred, rows in delta.items() for args in rows]
            for clause in delta_facts:
                pyEngine.assert_(clause)
            new: dict[str, set] = {}
            try:
                for compiled in rules:
                    assert compiled.rule.head is not None
                    target = new.setdefault(compiled.rule.head.pred, set())
                    if compiled.variants:
                        for variant in compiled.variants:
                            self._derive(compiled, variant, model, asserted, target)
                            self._check_time(started)
                    elif compiled.aggregates:
                        self._derive(compiled, compiled.body_pred, model, asserted, target)
                        self._check_time(started)
            finally:
                for clause in delta_facts:
                    pyEngine.retract(clause)
            delta = new
        raise EvaluationLimit(f"recursion did not reach a fixpoint in {self.max_iterations} rounds")


# ----------------------------------------------------------------------------- chunking
def evaluate_chunks(engine: Engine, chunks: Iterable[list[Fact]]) -> Iterator[Model]:
    """One model per chunk of facts (chunks must not share patients)."""
    for chunk in chunks:
        yield engine.evaluate(chunk)


# ----------------------------------------------------------------------------- pyDatalog glue
_NOSPAN = Var("_").span


def _var(name: str):
    return pyEngine.Var("V" + name)  # a prefix keeps `_1` clear of pyDatalog's own names


_STATE: list[tuple[int, int]] = [(0, 0)]
"""(thread, count) of the latest reset of pyDatalog's state: an engine compiled right
after it may install its clauses without compiling them again."""

_PREDS: dict[tuple[str, int], object] = {}
"""pyDatalog's predicate objects, looked up once per install (its registry is slow)."""


def _lit(pred: str, terms: list):
    key = (pred, len(terms))
    known = _PREDS.get(key)
    if known is None:
        literal = pyEngine.Literal(pred, terms)
        _PREDS[key] = literal.pred
        return literal
    return pyEngine.Literal(known, terms)


def _fact(pred: str, args: tuple[Value, ...]):
    return pyEngine.Clause(_lit(pred, [pyEngine.Const(a) for a in args]), [])


def _ask(pred: str, arity: int, rule: Rule | None) -> list[tuple[Value, ...]]:
    query = _lit(pred, [pyEngine.Var(f"Q{i}") for i in range(arity)])
    try:
        result = query.ask()
    except TypeError as exc:  # e.g. a number compared with a symbol in an untyped program
        where = rule.span if rule is not None else _NOSPAN
        raise ReasonerError.at(where, f"cannot evaluate this rule: {exc}", "E004") from None
    if result is None or result is False:
        return []
    if result is True:
        return [()]
    return [tuple(row) for row in result]
