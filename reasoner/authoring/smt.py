"""Solver-backed semantic checks: the rule set unfolded, for one patient, into formulas
over a bounded set of symbolic input facts, decided by z3.

Limits first (what "proved" means, and what is left to the search of explore.py):
- Bounded patients. A proof covers every patient whose input facts stay within the
  bounds: a predicate declared `one` has at most 1 fact; a predicate whose arguments
  all come from finite domains (the patient key, enumerations, integer ranges of at most
  SMALL_RANGE values) is encoded exactly, one Boolean per possible fact; `at most N`
  (docs/language.md) gives N facts; any other input predicate gets DEFAULT_BOUND facts.
  Every result says which bounds it relied on (`relies`).
- `count` and `sum` are exact only over facts whose number is exact or declared (`one`,
  finite, `at most N`); over a predicate with the default bound (raised to what the
  thresholds compared with the count or sum need: explore_domain.Domain.needs) a witness is
  real but "none found" is no proof, and the item is searched.
- With all facts as one state (not patient-local), `one` is one fact per patient key.
- Recursive predicates, and everything that reads them, are not encoded: searched.
- Arguments of the inferred type `any` are not encoded: searched.
- One patient at a time when the rule set is patient-local and has a patient key;
  otherwise all facts are one state and patient keys are symbols like any other.
- Numbers are exact rationals in the solver and doubles in the engine. Arithmetic the
  engine may round (smt_encode.rounds) is loose in proofs (Encoder.loose: a comparison
  near its boundary either way, a computed value within ROUNDING), exact in witnesses;
  every witness is run through the engine before it is reported (check.py), and one that
  does not reproduce its finding is an internal error, never a finding.
- A division by an expression that can be 0 gives no value: the row does not fire (as
  docs/language.md says); the engines let such a value through `!=` and min/max.
- Strings the rules never mention are fresh names (s1, s2, ...) in witnesses.
- A solver call that runs out of time (TIMEOUT_MS) leaves its item to search.

This module is the prover's API: Prover runs every check the encoding (smt_encode.py)
covers and returns an Outcome per item; check_solver.py turns outcomes into findings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import z3

from reasoner.analysis.program import RuleSet
from reasoner.authoring.smt_encode import Encoder
from reasoner.authoring.smt_formulas import (
    DEFAULT_BOUND,
    FALSE,
    TIMEOUT_MS,
    TRUE,
    NotCovered,
    Rel,
    and_,
    compare,
    eq,
    fraction,
    inexact,
    is_sym,
    is_value,
    not_,
    or_,
    real,
    rounding_note,
)
from reasoner.authoring.vocabulary import CONFLICT, clash_predicates
from reasoner.language.syntax import Fact, Value


# ----------------------------------------------------------------------------- the checks
@dataclass
class Outcome:
    """One item the solver decided (or could not).

    kind: rule (live/dead), constraint, require, range, conflict, clash, redundant.
    status: proved (unsatisfiable: dead, holds, in range, redundant), witness (satisfiable,
    with a witness the engine reproduced), uncovered (the encoding does not cover it:
    `detail` says why), internal (the solver's witness did not reproduce: an internal error).
    """

    kind: str
    index: int | None
    status: str
    detail: str = ""
    witness: list[Fact] | None = None
    value: tuple = ()
    relies: tuple[str, ...] = ()
    evidence: object = None
    """What the engine showed on the witness (the validator's answer)."""


Validator = Callable[[str, "int | None", tuple, list[Fact]], "object"]
"""(kind, index, value, witness facts) → truthy when the engine reproduces the claim. For
kind "rule" it returns the set of rule indexes that fired (all marked live at once)."""


class Prover:
    """Runs every check the encoding covers; asks `validate` (the engine) about each witness."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], validate: Validator,
                 default_bound: int = DEFAULT_BOUND, timeout_ms: int = TIMEOUT_MS, pid: str = "w",
                 names: Iterable[str] = (), needs: dict[str, int] | None = None):
        self.rs = rs
        self.enc = Encoder(rs, settings, default_bound, names, needs)
        self.others: list[Encoder] = []
        """Encoders whose formulas are decided here too (`reasoner diff`'s other version)."""
        self.validate = validate
        self.pid = pid
        self.solver = z3.Solver()
        self.solver.set("timeout", timeout_ms)
        self.solver.add(*self.enc.base)
        self.skip: set[tuple] = set()
        """Items not to decide, as check_items.py names them: ("rule", i), ("constraint", i), ("require", j),
        ("range", i), ("conflict",), ("clash",) (they depend on rules left out for errors)."""
        self.calls = 0
        self.trivial = 0
        """Checks decided without a solver call: the encoding simplified their formula to false."""
        self.seconds = 0.0

    # ---- solver calls
    def _check(self, *formulas) -> z3.CheckSatResult:
        # axioms the encoders made since the last call (a computed value's rounding bounds):
        # for good at the top level, as assumptions of this call inside a push
        pending = [a for enc in (self.enc, *self.others) for a in enc.axioms[enc.axioms_given:]]
        if pending and self.solver.num_scopes() == 0:
            self.solver.add(*pending)
            for enc in (self.enc, *self.others):
                enc.axioms_given = len(enc.axioms)
        elif pending:
            formulas = (*formulas, *pending)
        t0 = time.perf_counter()
        self.calls += 1
        r = self.solver.check(*formulas) if formulas else self.solver.check()
        self.seconds += time.perf_counter() - t0
        self._last = r
        return r

    def _witnesses(self, formula: z3.BoolRef, minimise: bool, grids=(1, 10, 100, None)) -> Iterator[list[Fact]]:
        """Witness candidates for a satisfiable formula: round numbers first (whole, tenths,
        hundredths, then any), each with as few facts as the solver finds."""
        tried: set[tuple] = set()
        for grid in grids:
            self.solver.push()
            try:
                self.solver.add(formula, z3.Not(self.enc.loose))  # a witness has exact values
                if grid is not None:
                    self.solver.add(*[z3.IsInt(x * grid) for x in self.enc.numeric_inputs])
                if self._check() != z3.sat:
                    continue
                model = self._minimise() if minimise else self.solver.model()
                facts = self.enc.decode(model, self.pid)
            finally:
                self.solver.pop()
            key = tuple(sorted(str(f) for f in facts))
            if key not in tried:
                tried.add(key)
                yield facts

    def _minimise(self) -> z3.ModelRef:
        """A model with fewer facts: a binary search on the number of present facts."""
        model = self.solver.model()
        presents = self.enc.presents
        if not presents:
            return model
        high = sum(1 for p in presents if z3.is_true(model.evaluate(p, model_completion=True)))
        low = 0
        best = model
        while low < high:
            mid = (low + high) // 2
            if self._check(z3.AtMost(*presents, mid)) == z3.sat:
                best = self.solver.model()
                high = sum(1 for p in presents if z3.is_true(best.evaluate(p, model_completion=True)))
            else:
                low = mid + 1
        return best

    def decide(self, kind: str, index: int | None, formula: z3.BoolRef, relies, value: tuple = (),
               minimise: bool = True, validate: Validator | None = None, eager: bool = False) -> Outcome:
        """unsat → proved; sat → the first witness the engine reproduces (or internal). An
        inexact encoding (recursion unrolled, a count over too few facts) proves nothing by
        unsat and may propose witnesses the engine rejects: both leave the item to search.
        What the engine computes in floating point is loose in the proof (either way near a
        boundary, Encoder.loose) and exact in witnesses; satisfiable only loosely is searched."""
        approx = inexact(relies)
        rounding = sorted(r[4:] for r in relies if r.startswith("flc:"))
        relies = tuple(sorted(r for r in relies if ":" not in r))
        if eager and not z3.is_false(formula):  # mostly satisfiable (rules are mostly live): witness first
            for facts in self._witnesses(formula, minimise, grids=(1,)):
                got = (validate or self.validate)(kind, index, value, facts)
                if got:
                    return Outcome(kind, index, "witness", witness=facts, value=value, relies=relies, evidence=got)
        if z3.is_false(formula):
            self.trivial += 1  # decided by the encoding itself: the formula simplified to false
        if z3.is_false(formula) or self._check(formula) == z3.unsat:
            if approx:
                return Outcome(kind, index, "uncovered", "; ".join(approx), value=value, relies=relies)
            return Outcome(kind, index, "proved", relies=relies)
        r = self._last
        if r != z3.sat:
            return Outcome(kind, index, "uncovered", f"the solver gave no answer within {TIMEOUT_MS // 1000} s",
                           relies=relies)
        if rounding and self._check(formula, z3.Not(self.enc.loose)) != z3.sat:
            # only a rounding the engine might make satisfies it: neither a proof nor a witness
            return Outcome(kind, index, "uncovered", rounding_note(rounding), value=value, relies=relies)
        tried = []
        for facts in self._witnesses(formula, minimise):
            got = (validate or self.validate)(kind, index, value, facts)
            if got:
                return Outcome(kind, index, "witness", witness=facts, value=value, relies=relies, evidence=got)
            tried.append(facts)
        if approx:
            return Outcome(kind, index, "uncovered", "; ".join(approx), value=value, relies=relies)
        return Outcome(kind, index, "internal", "no witness of the solver reproduced in the engine: "
                       + " ".join(f"{f}." for f in (tried[0] if tried else [])), value=value, relies=relies)

    # ---- the items
    def rules(self) -> list[Outcome]:
        """Every rule with a body: live (a witness fires it in the engine) or proved dead;
        every integrity constraint: violated (a witness) or proved to hold."""
        out: dict[int, Outcome] = {}
        live: dict[int, list[Fact]] = {}
        for index, rule in enumerate(self.rs.rules):
            if not rule.body or ("constraint" if rule.head is None else "rule", index) in self.skip:
                continue
            try:
                enc = self.enc.rule(index)
            except NotCovered as exc:
                out[index] = Outcome("constraint" if rule.head is None else "rule", index, "uncovered", str(exc))
                continue
            if rule.head is None:
                out[index] = self.decide("constraint", index, enc.fires, enc.relies)
                continue
            if index in live:
                out[index] = Outcome("rule", index, "witness", witness=live[index], relies=tuple(sorted(enc.relies)))
                continue
            fired_with: set[int] = set()

            def fires(kind, i, value, facts, _index=index) -> bool:
                fired = self.validate("rule", _index, (), facts) or set()
                if _index in fired:
                    fired_with.update(fired)
                    return True
                return False

            o = self.decide("rule", index, enc.fires, enc.relies, minimise=False, validate=fires, eager=True)
            if o.status == "witness" and fired_with:
                for j in fired_with:
                    live.setdefault(j, o.witness)  # type: ignore[arg-type]
            out[index] = o
        return [out[i] for i in sorted(out)]

    def requirements(self) -> list[Outcome]:
        out = []
        for j, req in enumerate(self.rs.requirements):
            if ("require", j) in self.skip:
                continue
            relies: set[str] = set()
            try:
                f = self.enc.requirement(req, relies)
            except NotCovered as exc:
                out.append(Outcome("require", j, "uncovered", str(exc)))
                continue
            out.append(self.decide("require", j, f, relies))
        return out

    def ranges(self) -> list[Outcome]:
        """A derived value outside its declared range, integer type or enumeration."""
        out = []
        for index, rule in enumerate(self.rs.rules):
            if rule.head is None or not rule.body or ("range", index) in self.skip:
                continue
            decl = self.rs.decls.get(rule.head.pred)
            if decl is None or decl.role == "input":
                continue
            checks = []
            for i, arg in enumerate(decl.args):
                if arg.type in ("number", "integer") and (arg.low is not None or arg.type == "integer"):
                    checks.append(i)
                elif arg.type in self.rs.types:
                    checks.append(i)
            if not checks:
                continue
            try:
                enc = self.enc.rule(index)
            except NotCovered as exc:
                out.append(Outcome("range", index, "uncovered", str(exc)))
                continue
            for i in checks:
                arg = decl.args[i]
                outside = []
                for head in enc.heads:
                    t = head.args[i]
                    if arg.type in self.rs.types:
                        bad = and_(not_(eq(t, z3.IntVal(self.enc.code[v]))) for v in self.rs.types[arg.type].values)
                    elif is_sym(t):
                        bad = TRUE
                    else:
                        parts = []
                        if arg.low is not None:
                            parts.append(compare("<", t, real(arg.low)))
                        if arg.high is not None:
                            parts.append(compare(">", t, real(arg.high)))
                        if arg.type == "integer":
                            parts.append(FALSE if is_value(t) and fraction(t).denominator == 1 else z3.Not(z3.IsInt(t)))
                        bad = or_(parts)
                    outside.append(and_([head.guard, bad]))
                out.append(self.decide("range", index, or_(outside), enc.relies, value=(i,)))
        return out

    def tuples(self, kind: str, rel_cands: list[tuple[z3.BoolRef, tuple]], relies, limit: int = 100) -> list[Outcome]:
        """Every distinct value tuple that some candidate can produce, each with a witness;
        then a proof that there is no other (or an outcome that says the search stopped)."""
        out: list[Outcome] = []
        found: list[tuple] = []
        decoded: list[tuple] = []
        while len(found) < limit:
            fresh = []
            for guard, args in rel_cands:
                new = and_([guard] + [not_(and_(eq(a, b) for a, b in zip(args, t))) for t in found])
                fresh.append(new)
            f = or_(fresh)
            if z3.is_false(f):
                break
            r = self._check(f)
            if r == z3.unsat:
                break
            if r != z3.sat:
                out.append(Outcome(kind, None, "uncovered", f"the solver gave no answer within {TIMEOUT_MS // 1000} s"))
                return out
            model = self.solver.model()
            hit = next((args for (guard, args), g in zip(rel_cands, fresh)
                        if z3.is_true(model.evaluate(g, model_completion=True))), None)
            if hit is None:
                break
            t = tuple(model.evaluate(a, model_completion=True) for a in hit)
            found.append(t)
            value = tuple(self.enc.value(v, self.pid) for v in t)
            decoded.append(value)
            formula = or_(and_([guard] + [eq(a, b) for a, b in zip(args, t)]) for guard, args in rel_cands)
            out.append(self.decide(kind, None, formula, relies, value=value))
        if inexact(relies):  # the list may be incomplete: the search looks for more
            out.append(Outcome(kind, None, "uncovered", "; ".join(inexact(relies))))
        return out

    def conflicts(self) -> list[Outcome]:
        """Every conflict tuple the rule set can produce (without the patient key)."""
        if CONFLICT not in self.rs.decls or ("conflict",) in self.skip:
            return []
        try:
            rel = self.enc.rel(CONFLICT)
        except NotCovered as exc:
            return [Outcome("conflict", None, "uncovered", str(exc))]
        k = self.rs.key_index(CONFLICT) if self.enc.patient_mode else None
        cands = [(c.guard, tuple(a for i, a in enumerate(c.args) if i != k)) for c in rel.cands]
        return self.tuples("conflict", cands, rel.relies)

    def clashes(self) -> list[Outcome]:
        """indicated(P, A, ...) and contraindicated(P, A, ..., R...) together (matched on
        indicated's arguments), and no conflict(P, A, R...) that says so."""
        pair = clash_predicates(self.rs)
        if pair is None or ("clash",) in self.skip:
            return []
        ind_pred, contra_pred = pair
        try:
            ind, contra = self.enc.rel(ind_pred), self.enc.rel(contra_pred)
            conflict = self.enc.rel(CONFLICT) if CONFLICT in self.rs.decls else None
        except NotCovered as exc:
            return [Outcome("clash", None, "uncovered", str(exc))]
        n = self.rs.decls[ind_pred].arity
        k = self.rs.key_index(contra_pred) if self.enc.patient_mode else None
        conflict_ok = (conflict is not None and self.rs.decls[CONFLICT].arity == self.rs.decls[contra_pred].arity)
        cands = []
        for ci in ind.cands:
            for cj in contra.cands:
                same = and_(eq(a, b) for a, b in zip(ci.args, cj.args[:n]))
                g = and_([ci.guard, cj.guard, same])
                if z3.is_false(g):
                    continue
                if conflict_ok:
                    g = and_([g, not_(conflict.holds(cj.args))])  # type: ignore[union-attr]
                cands.append((g, tuple(a for i, a in enumerate(cj.args) if i != k)))
        relies = ind.relies | contra.relies | (conflict.relies if conflict is not None else frozenset())
        return self.tuples("clash", cands, relies)

    def redundant(self, live: set[int]) -> list[Outcome]:
        """A live rule whose every conclusion another rule with the same head concludes too:
        proved when "it concludes something no other rule does" is unsatisfiable."""
        out = []
        for pred, indexes in self.enc.by_head.items():
            bodied = [i for i in indexes if self.rs.rules[i].body]
            if len(indexes) < 2:
                continue
            for index in bodied:
                if index not in live:
                    continue
                try:
                    mine = self.enc.rule(index)
                    others = Rel(pred, [c for j in indexes if j != index for c in self.enc.rule(j).heads])
                    relies = mine.relies | frozenset(p for j in indexes if j != index for p in self.enc.rule(j).relies)
                except NotCovered as exc:
                    out.append(Outcome("redundant", index, "uncovered", str(exc)))
                    continue
                f = or_(and_([h.guard, not_(others.holds(h.args))]) for h in mine.heads)
                if inexact(relies):  # only a witness counts: a conclusion of its own, in the engine
                    o = self.decide("unique", index, f, relies, minimise=False)
                    out.append(Outcome("redundant", index, "witness" if o.status == "witness" else "uncovered",
                                       o.detail, relies=o.relies))
                    continue
                if z3.is_false(f):
                    self.trivial += 1
                r = self._check(f) if not z3.is_false(f) else z3.unsat
                if r == z3.unsat:  # named: the other rules whose conclusions can meet this one's
                    overlap = tuple(j for j in indexes if j != index and any(
                        not z3.is_false(and_(eq(a, b) for a, b in zip(h.args, c.args)))
                        for h in mine.heads for c in self.enc.rule(j).heads))
                    out.append(Outcome("redundant", index, "proved", relies=tuple(sorted(relies)), value=overlap))
                elif r == z3.sat:  # it concludes something no other rule does (no witness needed)
                    out.append(Outcome("redundant", index, "witness", relies=tuple(sorted(relies))))
                else:
                    out.append(Outcome("redundant", index, "uncovered",
                                       f"the solver gave no answer within {TIMEOUT_MS // 1000} s"))
        return out
