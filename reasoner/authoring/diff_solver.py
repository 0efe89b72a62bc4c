"""The solver half of `reasoner diff`: for each compared predicate, can some patient make
a tuple derivable in one rule-set version and not in the other?

Limits first (docs/diff.md):
- Proofs are smt.py's: bounded patients (`one`, finite, `at most N`, else the default of
  3 facts per input predicate), arithmetic the engine may round loose (smt.py),
  recursion unrolled (a witness counts, "none found" does not), counts and sums over an
  input with the default bound inexact. Whatever the encoding does not decide exactly is
  searched over explored patients (explore.py): a search, not a proof.
- Patients are those both versions accept: an input only one version declares (or the
  two declare with different arities or kinds) is left out of the comparison, and an
  input declared differently is read within both declarations (ranges intersected,
  enumerations intersected, `one` if either says so, the smaller `at most`).
- Every witness, solver's or search's, is replayed through the engine on both rule sets
  and must show the difference; a solver witness that does not is an internal error.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from reasoner.engines.pydatalog import Engine
from reasoner.authoring.explore import explore
from reasoner.authoring.explore_domain import Domain, build_domain
from reasoner.authoring.explore_witness import witnesses
from reasoner.io.facts import FactSet, check_fact, chunks
from reasoner.engines.model import Model, row_key
from reasoner.analysis.program import RuleSet, check_value
from reasoner.authoring.smt import Prover
from reasoner.authoring.smt_encode import Encoder
from reasoner.authoring.smt_formulas import NotCovered, and_, not_, or_
from reasoner.language.syntax import ArgDecl, Decl, Fact, Span, TypeDecl, Value

_WITNESS = Span("<witness>", 0, 0)


@dataclass
class Version:
    """One side of the comparison: its rules as loaded and the settings it runs with."""

    label: str  # OLD or NEW
    path: str
    rs: RuleSet
    settings: dict[str, Value]


@dataclass
class Witness:
    """A patient on whom the engine gives the two versions different answers for `pred`."""

    pred: str
    direction: str  # removed: OLD derives a tuple NEW does not; added: the other way round
    patient: str
    facts: list[Fact]
    old_rows: set[tuple]
    new_rows: set[tuple]
    file: str | None = None


@dataclass
class PredicateResult:
    """status: equivalent (proved), differs (proved or searched), undecided (searched:
    no explored patient showed a difference, which proves nothing)."""

    pred: str
    status: str
    how: str  # proved | searched
    note: str = ""
    witnesses: list[Witness] = field(default_factory=list)


# ----------------------------------------------------------------------------- common inputs
def _kind(rs: RuleSet, arg: ArgDecl) -> str:
    if arg.type in rs.types:
        return "enum"
    return "numeric" if arg.type in ("number", "integer") else arg.type


def common_inputs(a: RuleSet, b: RuleSet) -> tuple[dict[str, Decl], dict[str, TypeDecl], list[str]]:
    """The input declarations a patient of both versions can have facts of: (declarations,
    types they need that neither version names, notes on what differs)."""
    notes: list[str] = []
    common: dict[str, Decl] = {}
    types: dict[str, TypeDecl] = {}
    ins_a = {p for p, d in a.decls.items() if d.role == "input"}
    ins_b = {p for p, d in b.decls.items() if d.role == "input"}
    for p in sorted(ins_a | ins_b):
        if p not in ins_b:
            notes.append(f"input {p} is declared only in OLD: compared for patients without {p} facts")
            continue
        if p not in ins_a:
            notes.append(f"input {p} is declared only in NEW: compared for patients without {p} facts")
            continue
        da, db = a.decls[p], b.decls[p]
        same_types = all(x.type == y.type and (x.type not in a.types or a.types[x.type].values == b.types.get(
            y.type, TypeDecl("", ())).values) for x, y in zip(da.args, db.args))
        if da == db and same_types:
            common[p] = da
            continue
        if da.arity != db.arity or any(_kind(a, x) != _kind(b, y) for x, y in zip(da.args, db.args)):
            notes.append(f"input {p} is declared with different arguments in the two versions: compared for "
                         f"patients without {p} facts")
            continue
        args = []
        for x, y in zip(da.args, db.args):
            if x.type in a.types:
                keep = set(b.types[y.type].values)
                values = tuple(v for v in a.types[x.type].values if v in keep)
                if not values:
                    break
                name = x.type if x.type == y.type and values == a.types[x.type].values == b.types[y.type].values \
                    else f"&{x.type}&{y.type}"  # not an identifier: never a type of either version
                if name not in a.types:
                    types[name] = TypeDecl(name, values)
                args.append(ArgDecl(x.name, name))
                continue
            low = max((v for v in (x.low, y.low) if v is not None), default=None)
            high = min((v for v in (x.high, y.high) if v is not None), default=None)
            if low is not None and high is not None and low > high:
                break
            kind = "integer" if "integer" in (x.type, y.type) else x.type
            args.append(ArgDecl(x.name, kind, low, high, x.unit))
        else:
            bounds = [n for n in (da.bound, db.bound) if n is not None]
            common[p] = Decl(p, tuple(args), "input", da.description, da.span, da.single or db.single,
                             min(bounds) if bounds else None)
            notes.append(f"input {p} is declared differently in the two versions: compared within both "
                         f"declarations")
            continue
        notes.append(f"input {p}: no fact fits both versions' declarations: compared for patients without it")
    return common, types, notes


def _narrowed(rs: RuleSet, common: dict[str, Decl], types: dict[str, TypeDecl]) -> RuleSet:
    """A copy of `rs` whose inputs are the common ones: an input left out has no facts (its
    relation is empty in the encoding). Only the solver and the explorer read the copy; the
    engine replays every witness on the rule set itself."""
    decls = {p: d for p, d in rs.decls.items() if d.role != "input"}
    decls.update(common)
    return dataclasses.replace(rs, decls=decls, types={**rs.types, **types})


# ----------------------------------------------------------------------------- replay
class Replay:
    """Both versions' engines, for witnesses and explored patients."""

    def __init__(self, old: Version, new: Version):
        self.old, self.new = old, new
        self.engines = (Engine(old.rs, old.settings), Engine(new.rs, new.settings))

    def valid(self, facts: list[Fact]) -> bool:
        """Facts both versions accept (a witness outside either would be no patient of it)."""
        return all(check_fact(v.rs, f) is None for v in (self.old, self.new) for f in facts)

    def models(self, facts: list[Fact]) -> tuple[Model, Model]:
        placed = [Fact(f.pred, f.args, _WITNESS) for f in facts]
        return self.engines[0].evaluate(placed), self.engines[1].evaluate(placed)

    def witness(self, pred: str, direction: str, facts: list[Fact], patient: str) -> Witness | None:
        """The witness when the engine shows the difference in that direction, else None."""
        if not self.valid(facts):
            return None
        a, b = self.models(facts)
        ra, rb = a.tuples(pred), b.tuples(pred)
        shown = ra - rb if direction == "removed" else rb - ra
        return Witness(pred, direction, patient, facts, ra, rb) if shown else None


# ----------------------------------------------------------------------------- the solver
def _bounds_note(prover: Prover, relies: tuple[str, ...]) -> str:
    parts = []
    for p in relies:
        enc = prover.enc.inputs.get(p)
        if enc is not None and not isinstance(enc, NotCovered):
            parts.append(f"{p} ≤ {enc.bound}" + (" (declared)" if enc.source == "declared" else " (default bound)"))
    return ("for every patient with at most: " + ", ".join(parts) + " facts") if parts else "for every patient"


def solve(old: Version, new: Version, preds: list[str], replay: Replay, default_bound: int,
          pid: Callable[[set[str]], str]) -> tuple[list[PredicateResult], dict[str, str], list[str], list[str]]:
    """(decided results, undecided predicate → why, notes, internal errors)."""
    common, types, notes = common_inputs(old.rs, new.rs)
    a, b = _narrowed(old.rs, common, types), _narrowed(new.rs, common, types)
    names = constants(old, new)
    # one bound per input for both versions: their slots are the same solver constants, and a
    # slot only one version has would be a fact the other never sees
    needs = dict(build_domain(a, old.settings).needs)
    for p, n in build_domain(b, new.settings).needs.items():
        needs[p] = max(needs.get(p, 0), n)
    prover = Prover(a, old.settings, validate=lambda *x: None, default_bound=default_bound, names=names, needs=needs)
    enc_b = Encoder(b, new.settings, default_bound, names, needs)
    prover.others.append(enc_b)
    results: list[PredicateResult] = []
    undecided: dict[str, str] = {}
    internal: list[str] = []
    if prover.enc.patient_mode != enc_b.patient_mode:
        why = "one version is patient-local and the other is not: the solver cannot compare them"
        return [], {p: why for p in preds}, notes, internal
    prover.solver.add(*enc_b.base)  # the same input constants: their constraints hold in both
    prover.pid = pid(set(prover.enc.code))

    def validate(kind, index, value, facts):
        return replay.witness(value[0], value[1], facts, prover.pid)

    for pred in preds:
        try:
            ra, rb = prover.enc.rel(pred), enc_b.rel(pred)
        except NotCovered as exc:
            undecided[pred] = str(exc)
            continue
        relies = ra.relies | rb.relies
        formulas = {"removed": or_(and_([c.guard, not_(rb.holds(c.args))]) for c in ra.cands),
                    "added": or_(and_([c.guard, not_(ra.holds(c.args))]) for c in rb.cands)}
        found: list[Witness] = []
        why = ""
        bounds = ""
        for direction, formula in formulas.items():
            o = prover.decide("diff", None, formula, relies, value=(pred, direction), validate=validate)
            if o.status == "witness":
                found.append(o.evidence)  # type: ignore[arg-type]
            elif o.status == "internal":
                internal.append(f"{pred} ({direction}): {o.detail}")
                why = why or "the solver's witness did not reproduce in the engine (an internal error)"
            elif o.status == "uncovered":
                why = why or o.detail
            else:
                bounds = _bounds_note(prover, o.relies)
        if found:
            results.append(PredicateResult(pred, "differs", "proved", "a solver witness, reproduced by the engine",
                                           _distinct(found)))
        elif why:
            undecided[pred] = why
        else:
            results.append(PredicateResult(pred, "equivalent", "proved", bounds))
    return results, undecided, notes, internal


def _distinct(found: list[Witness]) -> list[Witness]:
    """One witness per patient's facts: the two directions often share one (a changed grade)."""
    out, seen = [], set()
    for w in found:
        key = tuple(sorted(str(f) for f in w.facts))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


# ----------------------------------------------------------------------------- the search
def _merged_domain(old: Version, new: Version, common: dict[str, Decl], types: dict[str, TypeDecl]) -> Domain:
    """Representative values from both versions' rules, kept where they fit both."""
    da, db = build_domain(old.rs, old.settings), build_domain(new.rs, new.settings)
    all_types = {**old.rs.types, **types}
    out = Domain()
    for p, decl in common.items():
        for i, arg in enumerate(decl.args):
            values = list(da.values.get((p, i), [])) + list(db.values.get((p, i), []))
            seen: dict = {}
            for v in values:
                if check_value(v, arg, all_types) is None:
                    seen.setdefault((isinstance(v, str), v), v)
            if not seen and arg.type in all_types:
                seen = {(True, v): v for v in all_types[arg.type].values}
            if not seen:
                v0 = arg.low if arg.low is not None else (arg.high if arg.high is not None else 0)
                seen = {(False, v0): int(v0) if float(v0).is_integer() else v0}
            out.values[(p, i)] = sorted(seen.values(), key=lambda v: row_key((v,)))
    for d in (da, db):
        for p, ks in d.counts.items():
            out.counts.setdefault(p, set()).update(ks)
    return out


def search(old: Version, new: Version, preds: list[str], replay: Replay, budget: int, pid: str,
           why: dict[str, str]) -> tuple[list[PredicateResult], int]:
    """Explored patients through both versions: a witness per predicate that differs on one
    of them (renamed to `pid` and replayed again), else "not decided" with the count."""
    common, types, _ = common_inputs(old.rs, new.rs)
    narrowed = _narrowed(old.rs, common, types)
    patients = dict(explore(narrowed, _merged_domain(old, new, common, types), budget).patients)
    for tag, v in (("a", old), ("b", new)):
        for p, facts in witnesses(v.rs, build_domain(v.rs, v.settings), v.settings).patients.items():
            patients[f"{tag}{p}"] = [Fact(f.pred, tuple(f"{tag}{p}" if x == p else x for x in f.args)) for f in facts]
    singles = {p for p, d in common.items() if d.single}
    keep = {}
    for p, facts in patients.items():
        if any(f.pred not in common for f in facts) or not replay.valid(facts):
            continue
        if len({f for f in facts if f.pred in singles}) != len({f.pred for f in facts if f.pred in singles}):
            continue  # two facts of a `one` predicate: no patient of the version that says `one`
        keep[p] = facts
    models = []
    for v, engine in zip((old, new), replay.engines):
        model = Model()
        for chunk in chunks(v.rs, FactSet([f for facts in keep.values() for f in facts]), 250):
            model.merge(engine.evaluate(chunk))
        models.append(model)
    results = []
    for pred in preds:
        k = old.rs.key_index(pred)
        ra, rb = models[0].tuples(pred), models[1].tuples(pred)
        if k is None:  # no patient to single out: the explored patients were evaluated together
            results.append(PredicateResult(pred, "differs" if ra != rb else "undecided", "searched",
                                           f"{'a difference' if ra != rb else 'no difference'} among {len(keep)} "
                                           "explored patients evaluated together (the predicate has no patient key; "
                                           "no single witness)"))
            continue
        differing = sorted({str(r[k]) for r in ra ^ rb}, key=lambda p: (len(keep.get(p, ())), row_key((p,))))
        found = None
        for p in differing[:5]:  # the smallest patients first; each replayed under the witness name
            facts = [Fact(f.pred, tuple(pid if x == p else x for x in f.args)) for f in keep[p]]
            for direction in ("removed", "added"):
                found = found or replay.witness(pred, direction, facts, pid)
            if found:
                break
        if found:
            results.append(PredicateResult(pred, "differs", "searched", f"an explored patient (the solver: "
                                           f"{why.get(pred, 'not run')})", [found]))
        else:
            results.append(PredicateResult(pred, "undecided", "searched", f"no difference among {len(keep)} "
                                           f"explored patients, which proves nothing; the solver: "
                                           f"{why.get(pred, 'not run')}"))
    return results, len(keep)


def constants(old: Version, new: Version) -> set[str]:
    """Every symbol either version's rules or enumerations name."""
    return set(Encoder(old.rs, old.settings).names) | set(Encoder(new.rs, new.settings).names)


def fresh_pid(taken: set[str]) -> str:
    """The witness patient's id: `w`, unless a constant of the rule sets spells it."""
    return next(p for p in ("w", "w_", "w__", "witness") if p not in taken)
