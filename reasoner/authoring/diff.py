"""`reasoner diff OLD NEW [FACTS...]`: what changes between two versions of a rule set.

Limits first (docs/diff.md says more):
- The solver part compares each output predicate both versions derive (or those named
  with `--only`): "equivalent (proved)" holds for every patient within smt.py's bounds,
  and only over inputs both versions accept (diff_solver.py); "differs" comes with a
  witness patient that the engine has replayed on both versions; what the encoding does
  not decide exactly (recursion, counts over inputs with the default bound, ...) is
  searched over explored patients and says "not decided (searched)" when no difference
  was found — a search, not a proof.
- The cohort part evaluates both versions over FACTS (each version checks the facts
  against its own declarations: facts that one version rejects stop the run) and lists
  each patient whose answers differ. A value of a *functional* predicate (its last
  argument a number, or a `.require one` over it) that changes is shown as `old -> new`,
  everything else as tuples added or removed.
"""
from __future__ import annotations

import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from reasoner.authoring.diff_solver import PredicateResult, Replay, Version, Witness, constants, fresh_pid, search, solve
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.io.facts import Grouping, chunks, load_facts, stream_chunks, validate_stream
from reasoner.engines.model import Model, row_key, value_key
from reasoner.io.output import write_text
from reasoner.analysis.program import RuleSet, load_rules, resolve_settings
from reasoner.authoring.smt_formulas import DEFAULT_BOUND
from reasoner.language.syntax import NO_SPAN, Fact, Value, Var, format_value

DIFF_CHUNK = 500
"""Patients per chunk: both versions evaluate each chunk in turn, and pyDatalog reloads a
rule set (~0.1 s for the CRS rules) each time the other one ran last."""


@dataclass(frozen=True)
class Change:
    """One difference in one patient's answers.

    kind: added (NEW derives `args`, OLD does not), removed (the other way round), or
    changed (a functional predicate's value for the key `args`: `old` -> `new`). `args`
    leave out the patient key."""

    patient: str
    pred: str
    kind: str
    args: tuple
    old: Value | None = None
    new: Value | None = None

    def sort_key(self) -> tuple:
        return (value_key(self.patient), self.pred, ("removed", "added", "changed").index(self.kind),
                row_key(self.args), value_key(self.old) if self.old is not None else (),
                value_key(self.new) if self.new is not None else ())


@dataclass
class CohortDiff:
    patients: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def changed_patients(self) -> list[str]:
        return sorted({c.patient for c in self.changes}, key=value_key)


@dataclass
class DiffReport:
    old: Version
    new: Version
    overrides: dict[str, Value]
    compared: list[str]
    only: dict[str, list[str]]  # OLD / NEW → output predicates only that version derives
    incomparable: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    predicates: list[PredicateResult] = field(default_factory=list)
    explored: int = 0
    cohort: CohortDiff | None = None
    internal: list[str] = field(default_factory=list)
    functional: set[str] = field(default_factory=set)
    numeric: set[str] = field(default_factory=set)

    @property
    def settings_changed(self) -> list[tuple[str, Value | None, Value | None]]:
        names = sorted(set(self.old.settings) | set(self.new.settings))
        return [(n, self.old.settings.get(n), self.new.settings.get(n)) for n in names
                if self.old.settings.get(n) != self.new.settings.get(n)]

    @property
    def differs(self) -> bool:
        """Anything differs: a predicate (solver or search), or a patient of the cohort."""
        return any(r.status == "differs" for r in self.predicates) or bool(self.cohort and self.cohort.changes)

    def counts(self) -> list[tuple[str, str, str, int]]:
        """(predicate, change, what, patients) per kind of change, most patients first."""
        seen: Counter[tuple[str, str, str]] = Counter()
        for c in {(c.patient, c.pred, c.kind, self.label(c)) for c in (self.cohort.changes if self.cohort else [])}:
            seen[(c[1], c[2], c[3])] += 1
        return sorted(((p, k, w, n) for (p, k, w), n in seen.items()), key=lambda x: (-x[3], x[0], x[2]))

    def label(self, c: Change) -> str:
        """How a change is counted: `recommend +anakinra`, `crs_grade 1 -> 0`, `dose_mg
        tocilizumab increased` (numbers of a `number` argument vary by patient: their direction)."""
        args = c.args[:-1] if c.kind != "changed" and c.pred in self.numeric else c.args  # a dose: by drug
        what = ", ".join(format_value(v) for v in args)
        if c.kind != "changed":
            sign = "+" if c.kind == "added" else "-"
            return f"{c.pred} {sign}{what}" if what else f"{sign}{c.pred}"
        if c.pred in self.numeric and isinstance(c.old, (int, float)) and isinstance(c.new, (int, float)):
            step = "increased" if c.new > c.old else "decreased"
            return f"{c.pred} {what} {step}".replace("  ", " ")
        return f"{c.pred} {what} {format_value(c.old)} -> {format_value(c.new)}".replace("  ", " ")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- versions
def load_versions(old_path: str, new_path: str, overrides: dict[str, Value]) -> tuple[Version, Version]:
    """Both rule sets with `overrides` applied to each version that declares the setting; a
    name neither declares is E012, a value outside a version's range E024."""
    problems: list[Diagnostic] = []
    loaded = []
    for path in (old_path, new_path):
        try:
            loaded.append(load_rules(path))
        except ReasonerError as exc:
            problems += exc.diagnostics
    if problems:
        raise ReasonerError(problems)
    a, b = loaded
    known = sorted(set(a.settings) | set(b.settings))
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise ReasonerError([Diagnostic(NO_SPAN, f"unknown setting {k}: neither version declares it (known: "
                                        f"{', '.join(known) or 'none'})", "E012") for k in unknown])
    versions = []
    for label, path, rs in (("OLD", old_path, a), ("NEW", new_path, b)):
        versions.append(Version(label, path, rs, resolve_settings(
            rs, {k: v for k, v in overrides.items() if k in rs.settings})))
    return versions[0], versions[1]


def compared_predicates(a: RuleSet, b: RuleSet, only: tuple[str, ...] = ()
                        ) -> tuple[list[str], dict[str, list[str]], list[tuple[str, str]]]:
    """(predicates to compare, output predicates only one version derives, predicates both
    declare that cannot be compared, with why)."""
    derived = lambda rs, p: p in rs.decls and rs.decls[p].role != "input"  # noqa: E731
    if only:
        bad = [p for p in only if not (derived(a, p) and derived(b, p))]
        if bad:
            raise ReasonerError([Diagnostic(NO_SPAN, f"--only {p}: not a derived predicate of both versions", "E016")
                                 for p in bad])
        wanted = sorted(set(only))
    else:
        wanted = sorted(p for p in set(a.decls) | set(b.decls)
                        if (a.decls.get(p) is not None and a.decls[p].role == "output")
                        or (b.decls.get(p) is not None and b.decls[p].role == "output"))
    out, incomparable = [], []
    solo: dict[str, list[str]] = {"OLD": [], "NEW": []}
    for p in wanted:
        if not derived(b, p):
            solo["OLD"].append(p)
        elif not derived(a, p):
            solo["NEW"].append(p)
        elif a.decls[p].arity != b.decls[p].arity:
            incomparable.append((p, f"arity {a.decls[p].arity} in OLD, {b.decls[p].arity} in NEW"))
        elif a.key_index(p) != b.key_index(p):
            incomparable.append((p, "the patient key is a different argument in the two versions"))
        else:
            out.append(p)
    return out, solo, incomparable


def functional_predicates(rs: RuleSet, preds: list[str]) -> set[str]:
    """Predicates with one value per key (the last argument): a number (a grade, a dose), or
    a `.require one p(..., _)`. Their changes read as `old -> new`."""
    out = set()
    for p in preds:
        decl = rs.decls[p]
        if decl.arity < 2 or decl.key_index == decl.arity - 1:
            continue
        required = any(r.kind == "one" and r.head is not None and r.head.pred == p
                       and isinstance(r.head.args[-1], Var) for r in rs.requirements)
        if decl.args[-1].type in ("number", "integer") or required:
            out.add(p)
    return out


# ----------------------------------------------------------------------------- comparing rows
def _plain(v: Value) -> Value:
    """A whole float as an int: pyDatalog gives 704.0 where DuckDB gives 704 (equal values)."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else v


def row_changes(patient: str, pred: str, key: int | None, old: set[tuple], new: set[tuple],
                functional: bool) -> list[Change]:
    """The changes between one patient's OLD and NEW tuples of `pred`."""
    def strip(r: tuple) -> tuple:
        return tuple(_plain(v) for i, v in enumerate(r) if i != key)
    gone = sorted((strip(r) for r in old - new), key=row_key)
    came = sorted((strip(r) for r in new - old), key=row_key)
    out: list[Change] = []
    if functional:
        by_old: dict[tuple, list] = {}
        by_new: dict[tuple, list] = {}
        for r in map(strip, old):
            by_old.setdefault(r[:-1], []).append(r)
        for r in map(strip, new):
            by_new.setdefault(r[:-1], []).append(r)
        pairs = {r[:-1] for r in gone} & {r[:-1] for r in came}
        pairs = {k for k in pairs if len(by_old[k]) == 1 and len(by_new[k]) == 1}  # one value each: a change
        for k in sorted(pairs, key=row_key):
            out.append(Change(patient, pred, "changed", k, by_old[k][0][-1], by_new[k][0][-1]))
        gone = [r for r in gone if r[:-1] not in pairs]
        came = [r for r in came if r[:-1] not in pairs]
    out += [Change(patient, pred, "removed", r) for r in gone]
    out += [Change(patient, pred, "added", r) for r in came]
    return out


def _by_patient(rs: RuleSet, model: Model, preds: list[str]) -> dict[str, dict[str, set[tuple]]]:
    out: dict[str, dict[str, set[tuple]]] = {}
    for p in preds:
        k = rs.key_index(p)
        for row in model.tuples(p):
            out.setdefault(str(row[k]) if k is not None else "", {}).setdefault(p, set()).add(row)
    return out


def witness_changes(report: DiffReport, w: Witness) -> list[Change]:
    key = report.old.rs.key_index(w.pred)
    return row_changes(w.patient, w.pred, key, w.old_rows, w.new_rows, w.pred in report.functional)


# ----------------------------------------------------------------------------- the cohort
def _fact_chunks(rs: RuleSet, paths: tuple[str, ...], size: int, stream: bool | None) -> Iterator[list[Fact]]:
    """Chunks of checked facts: CSV and Parquet cohorts streamed (checked in a first pass),
    anything else read whole, as `recommend` does."""
    from reasoner.io.facts import read_once
    cohort_forms = all(Path(p).suffix in (".csv", ".parquet") for p in paths)
    if stream is None:
        stream = cohort_forms and not any(read_once(p) for p in paths)
    if stream:
        grouping = Grouping(rs)
        validate_stream(rs, paths, grouping=grouping)
        problem = grouping.problem(size)
        if problem is not None:
            raise ReasonerError([problem])
        return stream_chunks(rs, paths, size)
    return chunks(rs, load_facts(rs, paths), size)


def _checked_by(v: Version, exc: ReasonerError) -> ReasonerError:
    """The facts' problems, saying which version's declarations refused them."""
    return ReasonerError([Diagnostic(d.span, f"{d.message} (checked against {v.label} {v.path})", d.code)
                          for d in exc.diagnostics])


def _engine(v: Version, kind: str, time_limit: float | None, preds: list[str]):
    if kind == "duckdb":
        from reasoner.engines.sql import DuckDBEngine
        engine = DuckDBEngine(v.rs, v.settings, time_limit=time_limit)
        return lambda chunk: engine.evaluate(chunk, preds=preds)
    from reasoner.engines.pydatalog import Engine
    return Engine(v.rs, v.settings, time_limit=time_limit).evaluate


def open_cohort(old: Version, new: Version, paths: tuple[str, ...], chunk_size: int = DIFF_CHUNK,
                stream: bool | None = None) -> list[Iterator[list[Fact]]]:
    """Each version's chunks of the cohort, its facts checked now (before anything is
    evaluated) against that version's declarations."""
    text = None
    if "-" in paths:  # standard input can be read once: read it whole, for both versions
        import sys
        text = sys.stdin.read()
    sources = []
    for v in (old, new):
        try:
            if text is not None:
                sources.append(chunks(v.rs, load_facts(v.rs, [p for p in paths if p != "-"], text=text,
                                                       name="<stdin>"), chunk_size))
            else:
                sources.append(_fact_chunks(v.rs, paths, chunk_size, stream))
        except ReasonerError as exc:
            raise _checked_by(v, exc) from None
    return sources


def cohort_diff(report: DiffReport, sources: list[Iterator[list[Fact]]], engine: str = "pydatalog",
                time_limit: float | None = None) -> CohortDiff:
    """Both versions over the cohort (`open_cohort`), chunk by chunk in step: the chunks hold
    the same patients when both read the same facts; a patient is compared once both have it."""
    old, new = report.old, report.new
    run = [_engine(v, engine, time_limit, report.compared) for v in (old, new)]
    out = CohortDiff()
    pending: list[dict[str, dict[str, set[tuple]]]] = [{}, {}]
    seen: list[set[str]] = [set(), set()]
    done = [False, False]

    def settle(final: bool) -> None:
        both = seen[0] & seen[1] if not final else seen[0] | seen[1]
        for pid in both:
            rows = [pending[0].pop(pid, {}), pending[1].pop(pid, {})]
            for p in report.compared:
                a, b = rows[0].get(p, set()), rows[1].get(p, set())
                if a != b:
                    out.changes += row_changes(pid, p, old.rs.key_index(p), a, b, p in report.functional)
        seen[0] -= both
        seen[1] -= both

    while not all(done):
        for i in (0, 1):
            if done[i]:
                continue
            chunk = next(sources[i], None)
            if chunk is None:
                done[i] = True
                continue
            rs = (old, new)[i].rs
            ids = {str(f.args[rs.key_index(f.pred)]) for f in chunk if rs.key_index(f.pred) is not None}
            if i == 0:
                out.patients += len(ids)
            seen[i] |= ids | ({""} if not rs.patient_local else set())
            for pid, rows in _by_patient(rs, run[i](chunk), report.compared).items():
                pending[i].setdefault(pid, {}).update(rows)
                seen[i].add(pid)
        settle(False)
    settle(True)
    out.changes.sort(key=Change.sort_key)
    return out


# ----------------------------------------------------------------------------- the whole diff
def run_diff(old_path: str, new_path: str, facts: tuple[str, ...] = (), overrides: dict[str, Value] | None = None,
             *, only: tuple[str, ...] = (), solver: bool = True, budget: int = 3000,
             default_bound: int = DEFAULT_BOUND, chunk_size: int | None = None, stream: bool | None = None,
             engine: str = "pydatalog", time_limit: float | None = None) -> DiffReport:
    """The solver's (and search's) answer per compared predicate, then the cohort's changes."""
    overrides = dict(overrides or {})
    old, new = load_versions(old_path, new_path, overrides)
    compared, solo, incomparable = compared_predicates(old.rs, new.rs, only)
    report = DiffReport(old, new, overrides, compared, solo, incomparable)
    report.functional = functional_predicates(old.rs, compared)
    report.numeric = {p for p in report.functional if old.rs.decls[p].args[-1].type == "number"}
    sources = open_cohort(old, new, facts, chunk_size or DIFF_CHUNK, stream) if facts else None  # bad facts: now
    if solver and compared:
        replay = Replay(old, new)
        results, undecided, notes, internal = solve(old, new, compared, replay, default_bound, fresh_pid)
        report.notes += notes
        report.internal += internal
        counted = sorted(p for p, why in undecided.items() if "declares no bound" in why)  # smt.inexact's words
        if counted:  # more facts per unbounded input: a witness found so is real (replayed), none proves nothing
            wider, _, _, more = solve(old, new, counted, replay, max(3 * default_bound, 8), fresh_pid)
            report.internal += more
            for r in wider:
                if r.status == "differs":
                    r.note += f" (with up to {max(3 * default_bound, 8)} facts per input that declares no bound)"
                    results.append(r)
                    undecided.pop(r.pred)
        if undecided:
            pid = fresh_pid(constants(old, new))
            searched, report.explored = search(old, new, sorted(undecided), replay, budget, pid, undecided)
            results += searched
        report.predicates = sorted(results, key=lambda r: r.pred)
    if sources is not None:
        report.cohort = cohort_diff(report, sources, engine, time_limit)
    return report


def write_witnesses(report: DiffReport, directory: Path) -> None:
    """Each predicate's first witness as a fact file whose `% run:` line shows the difference."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in report.predicates:
        if not r.witnesses:
            continue
        w = r.witnesses[0]
        n += 1
        slug = re.sub(r"[^a-z0-9]+", "_", r.pred.lower()).strip("_")[:40]
        path = directory / f"diff-{n:03d}-{slug}.facts"
        run = (f"reasoner diff {shlex.quote(report.old.path)} {shlex.quote(report.new.path)} {shlex.quote(str(path))}"
               f" --cohort-only --only {r.pred}" + "".join(
                   f" --set {shlex.quote(f'{k}={format_value(v)}')}" for k, v in report.overrides.items()))
        lines = [f"% witness: OLD {report.old.path} and NEW {report.new.path} differ on {r.pred}",
                 f"% {r.how}: " + ("a solver witness, reproduced by the engine on both versions" if r.how == "proved"
                                   else "an explored patient, replayed on both versions")]
        lines += [f"% {_change_text(report, c)}" for c in witness_changes(report, w)]
        lines += [f"% run: {run}", ""]
        lines += [f"{f}." for f in sorted(w.facts, key=lambda f: (f.pred, row_key(f.args)))]
        write_text(path, "\n".join(lines) + "\n", "--witness-dir")
        w.file = str(path)


def _change_text(report: DiffReport, c: Change) -> str:
    return change_text(c, report.old.rs)


def change_atom(rs: RuleSet, c: Change, args: tuple) -> str:
    """The changed fact with its patient put back in its place."""
    k = rs.key_index(c.pred)
    row = args[:k] + (c.patient,) + args[k:] if k is not None and c.patient else args
    return str(Fact(c.pred, row))


def change_text(c: Change, rs: RuleSet) -> str:
    """`+ recommend(p1, anakinra)`, `- fever(p1)`, `crs_grade(p1): 1 -> 0`."""
    if c.kind == "changed":
        return f"{change_atom(rs, c, c.args)}: {format_value(c.old)} -> {format_value(c.new)}"  # type: ignore[arg-type]
    return f"{'+' if c.kind == 'added' else '-'} {change_atom(rs, c, c.args)}"

