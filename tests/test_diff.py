"""`reasoner diff OLD NEW [FACTS...]` (issue 17, item 4): small rule sets where the answer is
known — a threshold moved, an equivalent rewrite, a dose formula changed, a rule added —
each proved or shown with a witness the engine replays; the cohort's changed patients; the
command's formats and exit codes; and the bundled CRS rules against a copy with one setting
changed."""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.cli import main
from reasoner.authoring.diff import run_diff
from reasoner.authoring.diff_solver import Replay, search
from reasoner.language.syntax import Fact

ROOT = Path(__file__).resolve().parent.parent
FACTS = ROOT / "facts"

DECLS = """.source g "A guideline"
.decl temp(p: id, c: number[30, 45] "C") input one "temperature"
.decl weight(p: id, kg: number[1, 400] "kg") input one "weight"
.decl chills(p: id) input "shaking chills"
.decl fever(p: id) output "fever"
.decl grade(p: id, g: integer[0, 1]) output "a grade"
.decl dose(p: id, mg: number "mg") output "the dose"
"""


def rules(fever: str = "fever(P) :- temp(P, C), C >= 38.0.",
          dose: str = "dose(P, M) :- fever(P), weight(P, K), M = min(8 * K, 800).", extra: str = "",
          decls: str = DECLS) -> str:
    body = [fever, "grade(P, 1) :- fever(P).", "grade(P, 0) :- temp(P, _), !fever(P).", dose, extra]
    out = [decls]
    for n, text in enumerate(t for t in body if t):
        out.append(f"@id r{n}\n@source g\n@says \"rule {n}\"\n{text}")
    return "\n\n".join(out) + "\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["diff", *args], input=stdin)


def by_pred(report) -> dict:
    return {r.pred: r for r in report.predicates}


def replay(old: str, new: str, facts: list[Fact], pred: str) -> tuple[set, set]:
    """The witness through the engine, read back as a fact file would be."""
    text = "".join(f"{f}.\n" for f in facts)
    out = []
    for path in (old, new):
        rs = load_rules(path)
        out.append(evaluate(rs, load_facts(rs, text=text)).tuples(pred))
    return out[0], out[1]


# ----------------------------------------------------------------------------- the solver
def test_threshold_moved_gives_a_witness_at_the_boundary(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5."))
    report = run_diff(old, new)
    results = by_pred(report)
    assert results["fever"].status == "differs" and results["fever"].how == "proved"
    w = results["fever"].witnesses[0]
    (t,) = [f.args[1] for f in w.facts if f.pred == "temp"]
    assert 38.0 <= t < 38.5  # between the two thresholds: OLD has a fever, NEW not
    assert w.direction == "removed" and w.old_rows == {(w.patient,)} and w.new_rows == set()
    assert replay(old, new, w.facts, "fever") == ({(w.patient,)}, set())
    grade = results["grade"].witnesses[0]
    assert {(c.kind, c.old, c.new) for c in _changes(report, grade)} == {("changed", 1, 0)}
    assert results["dose"].status == "differs"
    assert report.differs


def _changes(report, w):
    from reasoner.authoring.diff import witness_changes
    return witness_changes(report, w)


def test_equivalent_rewrite_is_proved(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(Q) :- 38.0 <= T, temp(Q, T).",
                                          dose="dose(X, Y) :- weight(X, W), fever(X), Y = min(W * 8, 800)."))
    report = run_diff(old, new)
    assert {r.pred: (r.status, r.how) for r in report.predicates} == {
        "dose": ("equivalent", "proved"), "fever": ("equivalent", "proved"), "grade": ("equivalent", "proved")}
    assert not report.differs and not report.internal


def test_a_rewrite_equal_only_in_exact_arithmetic_is_not_proved_equivalent(tmp_path) -> None:
    # Found by a seeded-defect review: C * 0.1 >= 3.8 is C >= 38 for the solver's exact
    # rationals, but the engine computes in floating point, where 38 * 0.1 is
    # 3.8000000000000003 (and 37.9 * 0.1 rounds too): "equivalent (proved)" was false.
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C * 0.1 >= 3.8."))
    results = by_pred(run_diff(old, new))
    assert results["fever"].how != "proved", results["fever"]
    assert "floating point" in results["fever"].note or results["fever"].status == "differs"
    # the dose formula scaled by a power of two is exact in floating point: still proved
    new = write(tmp_path, "halves.dl", rules(dose="dose(P, M) :- fever(P), weight(P, K), M = min(16 * K / 2, 800)."))
    results = by_pred(run_diff(old, new))
    assert (results["dose"].status, results["dose"].how) == ("equivalent", "proved"), results["dose"]


def test_dose_formula_changed_shows_old_and_new_dose(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(dose="dose(P, M) :- fever(P), weight(P, K), M = min(8 * K, 700)."))
    report = run_diff(old, new)
    results = by_pred(report)
    assert results["fever"].status == "equivalent" and results["grade"].status == "equivalent"
    assert results["dose"].status == "differs"
    w = results["dose"].witnesses[0]
    (kg,) = [f.args[1] for f in w.facts if f.pred == "weight"]
    assert kg > 87.5  # below it both doses are 8 mg/kg
    (change,) = _changes(report, w)
    assert change.kind == "changed" and change.old == min(8 * kg, 800) and change.new == 700
    assert replay(old, new, w.facts, "dose") == ({(w.patient, min(8 * kg, 800))}, {(w.patient, 700)})


def test_added_rule_is_found_in_the_new_direction(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules(extra="fever(P) :- chills(P), temp(P, C), C >= 45."))
    new = write(tmp_path, "new.dl", rules(extra="fever(P) :- chills(P), temp(P, C), C >= 37.5."))
    report = run_diff(old, new)
    w = by_pred(report)["fever"].witnesses[0]
    assert w.direction == "added"
    assert any(f.pred == "chills" for f in w.facts)
    (t,) = [f.args[1] for f in w.facts if f.pred == "temp"]
    assert 37.5 <= t < 38.0
    assert replay(old, new, w.facts, "fever") == (set(), {(w.patient,)})


def test_an_input_only_one_version_declares_is_left_out_and_said(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    decls = DECLS + '.decl masked(p: id) input "fever masked by a drug"\n'
    new = write(tmp_path, "new.dl", rules(decls=decls, extra="fever(P) :- masked(P), temp(P, _)."))
    report = run_diff(old, new)
    assert any("masked is declared only in NEW" in n for n in report.notes)
    assert by_pred(report)["fever"].status == "equivalent"  # for patients both versions accept


def test_recursion_is_searched_not_proved(tmp_path) -> None:
    text = """.source g "A guideline"
.decl link(p: id, a: symbol, b: symbol) input "a link"
.decl reach(p: id, a: symbol, b: symbol) internal "reachable"
.decl alarm(p: id) output "a reaches z"
@id r1
@source g
@says "one"
reach(P, A, B) :- link(P, A, B).
@id r2
@source g
@says "two"
reach(P, A, C) :- reach(P, A, B), link(P, B, C).
@id r3
@source g
@says "three"
alarm(P) :- reach(P, a, z).
"""
    path = write(tmp_path, "rec.dl", text)
    report = run_diff(path, path)
    (r,) = report.predicates
    assert (r.status, r.how) == ("undecided", "searched") and "recursive" in r.note
    assert report.explored > 0 and not report.differs
    result = run(path, path)
    assert result.exit_code == 0 and "not decided (searched)" in result.output


def test_search_alone_finds_a_threshold_and_replays_it(tmp_path) -> None:
    from reasoner.authoring.diff import load_versions
    old, new = load_versions(write(tmp_path, "old.dl", rules()),
                             write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5.")), {})
    (r,), n = search(old, new, ["fever"], Replay(old, new), 300, "w", {"fever": "not run (a test)"})
    assert (r.status, r.how) == ("differs", "searched") and n > 0
    (t,) = [f.args[1] for f in r.witnesses[0].facts if f.pred == "temp"]
    assert 38.0 <= t < 38.5 and r.witnesses[0].patient == "w"


def test_settings_apply_to_both_versions(tmp_path) -> None:
    decls = DECLS + '.setting limit = 38.0 [35, 42] "C" "fever threshold"\n'
    old = write(tmp_path, "old.dl", rules(decls=decls, fever="fever(P) :- temp(P, C), C >= $limit."))
    new = write(tmp_path, "new.dl", rules(decls=decls.replace("limit = 38.0", "limit = 38.5"),
                                          fever="fever(P) :- temp(P, C), C >= $limit."))
    assert run(old, new).exit_code == 1
    result = run(old, new, "--set", "limit=39")
    assert result.exit_code == 0 and "equivalent (proved)" in result.output
    result = run(old, new, "--set", "nolimit=3")
    assert result.exit_code == 2 and "error[E012]: unknown setting nolimit" in result.output
    result = run(old, new, "--set", "limit=99")
    assert result.exit_code == 2 and "error[E024]" in result.output


def test_a_witness_that_does_not_replay_is_an_internal_error(tmp_path, monkeypatch) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5."))
    monkeypatch.setattr(Replay, "witness", lambda self, *a: None)
    result = run(old, new, "--only", "fever")
    assert result.exit_code == 2
    assert "error[E023]: internal error: diff: fever" in result.stderr
    assert "DIFFERS" not in result.stdout  # never reported as a difference


# ----------------------------------------------------------------------------- the cohort
COHORT = """temp(p1, 38.2). weight(p1, 70).
temp(p2, 39). weight(p2, 120).
temp(p3, 37). weight(p3, 50).
temp(p10, 38.4).
"""


def test_cohort_lists_each_changed_patient_with_counts(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5."))
    facts = write(tmp_path, "c.facts", COHORT)
    report = run_diff(old, new, (facts,), solver=False)
    assert report.predicates == []
    assert report.cohort.patients == 4 and report.cohort.changed_patients == ["p1", "p10"]
    shown = [(c.patient, c.pred, c.kind, c.args, c.old, c.new) for c in report.cohort.changes]
    assert shown == [("p1", "dose", "removed", (560,), None, None), ("p1", "fever", "removed", (), None, None),
                     ("p1", "grade", "changed", (), 1, 0),
                     ("p10", "fever", "removed", (), None, None), ("p10", "grade", "changed", (), 1, 0)]
    assert report.counts() == [("fever", "removed", "-fever", 2), ("grade", "changed", "grade 1 -> 0", 2),
                               ("dose", "removed", "-dose", 1)]


def test_cohort_dose_change_reads_old_to_new(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(dose="dose(P, M) :- fever(P), weight(P, K), M = min(8 * K, 700)."))
    report = run_diff(old, new, (write(tmp_path, "c.facts", COHORT),), solver=False)
    (c,) = report.cohort.changes
    assert (c.patient, c.pred, c.kind, c.old, c.new) == ("p2", "dose", "changed", 800, 700)
    assert report.label(c) == "dose decreased"


# ----------------------------------------------------------------------------- the command
def test_formats_exit_codes_and_determinism(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5."))
    facts = write(tmp_path, "c.facts", COHORT)
    same = run(old, old, facts)
    assert same.exit_code == 0 and "0 of 4 patients changed" in same.output
    text = run(old, new, facts)
    assert text.exit_code == 1
    assert "fever  DIFFERS (proved)" in text.output and "  p1\n    - dose(p1, 560)\n" in text.output
    assert "grade(p1): 1 -> 0" in text.output and "-fever: 2 patients" in text.output
    md = run(old, new, facts, "--format", "markdown")
    assert md.exit_code == 1 and md.output.startswith("# Rule-set diff")
    assert "| p1 | `grade` | changed | `grade(p1)` | 1 | 0 |" in md.output
    first = run(old, new, facts, "--format", "json")
    doc = json.loads(first.output)
    assert first.exit_code == 1 and doc["differs"] is True
    assert {r["predicate"]: r["status"] for r in doc["predicates"]} == {
        "dose": "differs", "fever": "differs", "grade": "differs"}
    keys = {tuple(sorted(r)) for r in doc["patients"]}
    assert len(keys) == 1 and {"patient", "predicate", "change", "old", "new"} <= set(next(iter(keys)))
    assert doc["counts"][0] == {"predicate": "fever", "change": "removed", "what": "-fever", "patients": 2}
    again = run(old, new, facts, "--format", "json")
    assert again.output == first.output  # deterministic, witnesses included
    out = tmp_path / "report.md"
    result = run(old, new, facts, "--format", "markdown", "-o", str(out))
    assert result.exit_code == 1 and result.stdout == "" and out.read_text() == md.output


def test_bad_input_exits_two_with_located_lines(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    broken = write(tmp_path, "broken.dl", rules().replace("fever(P) :- temp", "fever(P) :- temp temp"))
    result = run(old, broken)
    assert result.exit_code == 2 and f"{broken}:" in result.output and "error[E001]" in result.output
    result = run(old, old, "--only", "weight")
    assert result.exit_code == 2 and "error[E016]: --only weight" in result.output
    result = run(old, old, "--cohort-only")
    assert result.exit_code == 2 and "error[E016]" in result.output
    result = run(old, old, "-", stdin="temp(p1, 389).\n")
    assert result.exit_code == 2 and "<stdin>:1:1: error[E005]" in result.output and "checked against OLD" in \
        result.output
    result = run(old, old, "-o", str(tmp_path / "missing" / "x.txt"))
    assert result.exit_code == 2 and "error[E021]" in result.output
    result = run(old, old, "--format", "xml")
    assert result.exit_code == 2 and "error[E020]" in result.output


def test_witness_files_reproduce_through_their_run_line(tmp_path) -> None:
    old = write(tmp_path, "old.dl", rules())
    new = write(tmp_path, "new.dl", rules(fever="fever(P) :- temp(P, C), C >= 38.5."))
    out = tmp_path / "witnesses"
    result = run(old, new, "--witness-dir", str(out))
    assert result.exit_code == 1
    files = sorted(out.glob("*.facts"))
    assert [f.name for f in files] == ["diff-001-dose.facts", "diff-002-fever.facts", "diff-003-grade.facts"]
    text = files[1].read_text()
    assert "% - fever(w)" in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("% run: ")]
    argv = shlex.split(line[len("% run: "):])
    assert argv[:2] == ["reasoner", "diff"]
    again = CliRunner().invoke(main, argv[1:])
    assert again.exit_code == 1 and "- fever(w)" in again.output and "1 of 1 patients changed" in again.output


# ----------------------------------------------------------------------------- the CRS rules
@pytest.fixture(scope="module")
def crs_copy(tmp_path_factory) -> Path:
    """The bundled CRS rules with tocilizumab at 10 mg/kg instead of 8."""
    copy = tmp_path_factory.mktemp("crs") / "crs"
    shutil.copytree(ROOT / "rules" / "crs", copy)
    decls = copy / "declarations.dl"
    text = decls.read_text()
    assert ".setting toci_mg_per_kg = 8 " in text
    decls.write_text(text.replace(".setting toci_mg_per_kg = 8 ", ".setting toci_mg_per_kg = 10 "))
    return copy


def test_crs_setting_change_is_found_with_a_witness_and_in_the_cohort(crs_copy) -> None:
    crs = str(ROOT / "rules" / "crs")
    report = run_diff(crs, str(crs_copy), (str(FACTS),))
    assert report.settings_changed == [("toci_mg_per_kg", 8, 10)]
    results = by_pred(report)
    assert results["dose_mg"].status == "differs" and results["dose_mg"].how == "proved"
    assert {p for p, r in results.items() if r.status != "equivalent"} == {"dose_mg"}
    assert not report.internal
    for w in results["dose_mg"].witnesses:
        before, after = replay(crs, str(crs_copy), w.facts, "dose_mg")
        assert before != after and (before, after) == (w.old_rows, w.new_rows)
    # the cohort: exactly the patients whose tocilizumab dose the engine changes
    rs = load_rules(crs)
    facts = load_facts(rs, [str(FACTS)])
    doses = [evaluate(rs, facts, settings=s).tuples("dose_mg") for s in ({}, {"toci_mg_per_kg": 10})]
    expected = sorted({row[0] for row in doses[0] ^ doses[1]})
    assert expected and set(report.cohort.changed_patients) == set(expected)
    assert {(c.pred, c.kind) for c in report.cohort.changes} == {("dose_mg", "changed")}
    assert all(c.new > c.old for c in report.cohort.changes)
    assert report.counts() == [("dose_mg", "changed", "dose_mg tocilizumab increased", len(expected))]
