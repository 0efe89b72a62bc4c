"""The checker: a seeded-defect rule set has every defect found by its code, the clean
parts raise nothing, and the bundled CRS rule set checks clean (statically here; the
semantic run is exercised on the seeded set, the CRS run is the benchmark)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.authoring.check import CODES, run_check, static_findings, write_witnesses
from reasoner.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEEDED = ROOT / "tests" / "data" / "seeded"

EXPECTED = {
    ("S206", "fever.39"),                                   # redundant: fever.38 concludes all of it
    ("S203", "grade"),                                      # coverage gap between 37 and 38 C
    ("S201", "consistency.no_recommended_contraindication"),  # contradiction ...
    ("S204", "consistency.no_recommended_contraindication"),  # ... naming the overlapping rules
    ("S205", "hyperthermia"),                               # dead: no temperature above 45 C is valid
    ("E007", ""), ("E002", ""), ("E008", ""), ("E011", ""),  # unsafe, undeclared, cyclic negation, bad source
    ("W103", "nosource"),                                   # missing source
}


@pytest.fixture(scope="module")
def seeded_report():
    return run_check(SEEDED, budget=500)


def test_every_seeded_defect_is_found_by_its_code(seeded_report) -> None:
    found = {(f.code, f.target) for f in seeded_report.findings}
    assert EXPECTED <= found, EXPECTED - found


def test_the_clean_parts_raise_no_finding(seeded_report) -> None:
    found = {(f.code, f.target) for f in seeded_report.findings}
    assert found - EXPECTED == set(), found - EXPECTED
    assert seeded_report.errors >= 6


def test_findings_name_the_place_and_rules(seeded_report) -> None:
    by_code = {f.code: f for f in seeded_report.findings}
    assert "recommend.fever and contra.allergy" in by_code["S204"].message
    assert by_code["E002"].span.line == 84 and "did you mean flag" in by_code["E002"].message
    assert by_code["S205"].span.file.endswith("seeded/main.dl")
    assert all(code in CODES for code in by_code)


def test_witnesses_are_runnable_fact_files_that_show_the_defect(seeded_report, tmp_path) -> None:
    write_witnesses(seeded_report, tmp_path)
    clean = load_rules(SEEDED, lenient=True)
    for f in seeded_report.findings:
        if f.code.startswith("S") and f.code != "S205" and f.code != "S206":
            assert f.witness_file, f
            facts = load_facts(clean, [f.witness_file])  # ready to run: valid against the declarations
            model = evaluate(clean, facts)
            if f.code in ("S201", "S204"):
                assert model.violations, f.witness_file
            if f.code == "S203":
                assert model.tuples("patient") and not model.tuples("grade"), f.witness_file


def test_seeded_defects_are_proved_by_the_solver(seeded_report) -> None:
    semantic = [f for f in seeded_report.findings if f.code.startswith("S")]
    assert semantic and all(f.status == "proved" for f in semantic)
    assert "search" not in seeded_report.explored and seeded_report.explored["undecided"] == {}


def test_exploration_is_reported_as_exhaustive_when_small() -> None:
    report = run_check(SEEDED, budget=500, search="always")  # the search as a cross-check of the solver
    assert report.internal == []
    assert report.explored["exhaustive"] is True
    assert report.explored["patients"] >= report.explored["covering_patients"] > 0


def test_cli_exit_codes_and_allow() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(SEEDED), "--budget", "200"])
    assert result.exit_code == 1
    assert "S204 [error]" in result.output and "errors," in result.output.splitlines()[-1]
    text = (SEEDED / "main.dl").read_text()
    allowed = text + '\n.allow S206 "fever.39" "kept on purpose"\n'
    rs = load_rules(text=allowed, path=str(SEEDED / "main.dl"), lenient=True)
    assert rs.allows and rs.allows[0].target == "fever.39"


def test_crs_rule_set_is_statically_clean() -> None:
    rs = load_rules(lenient=True)
    assert rs.problems == []
    assert static_findings(rs) == []


def test_a_rule_file_that_does_not_parse_stops_the_claims_about_the_rest(tmp_path: Path) -> None:
    # A '.' left out in grading.dl loses the whole file: its rules are unknown, so "dead",
    # "proved to hold" or "declared but no rule uses it" would be about another rule set.
    rules = tmp_path / "crs"
    rules.mkdir()
    for f in (ROOT / "rules" / "crs").iterdir():
        if f.is_file():
            (rules / f.name).write_text(f.read_text())
    grading = rules / "grading.dl"
    lines = grading.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("fever(P) :-") and line.endswith("."))
    lines[at] = lines[at][:-1]
    grading.write_text("\n".join(lines))
    report = run_check(rules, budget=50)
    assert [(f.code, f.span.line, f.span.col) for f in report.findings] == [("E001", at + 1, len(lines[at]) + 1)]
    assert not report.explored and "grading.dl could not be read or parsed" in report.not_run
    out = CliRunner().invoke(main, ["check", str(rules)])
    assert out.exit_code == 1
    assert "missing '.' at the end of this statement?" in out.output
    assert "Semantic checks not run: " in out.output and "S205" not in out.output and "W105" not in out.output


def test_the_same_rule_set_gives_the_same_report_bytes() -> None:
    # the report said how many seconds the solver took: never the same bytes twice. Each
    # run is its own process, as a command is (z3's terms live as long as the process, and
    # a second check in one process may find another, equally valid, witness).
    import subprocess
    import sys
    for fmt in ("text", "json"):
        runs = [subprocess.run([sys.executable, "-m", "reasoner", "check", "--format", fmt, str(SEEDED)],
                               capture_output=True, text=True, cwd=ROOT) for _ in range(2)]
        assert runs[0].stdout == runs[1].stdout and runs[0].returncode == 1
        assert " s)" not in runs[0].stdout and "seconds" not in runs[0].stdout


def test_an_allow_of_no_warning_and_a_type_value_given_twice_are_errors(tmp_path: Path) -> None:
    for text, code, words in (('.allow Z999 "x" "a typo"\n', "E001", ".allow Z999: there is no such code"),
                              ('.allow S201 "x" "hide it"\n', "E001", ".allow S201: an error cannot be allowed"),
                              (".type colour = red | red\n", "E010", "red is already a value of type colour")):
        path = tmp_path / "r.dl"
        path.write_text(text + '.decl a(p: id) input "a"\n.decl b(p: id) output "b"\nb(P) :- a(P).\n')
        report = run_check(path, semantic=False)
        assert [(f.code, f.span.line) for f in report.findings if f.code.startswith("E")] == [(code, 1)], \
            report.findings
        assert words in next(f.message for f in report.findings if f.code == code)


def test_a_setting_no_rule_reads_is_a_warning(tmp_path: Path) -> None:
    # a seeded-defect review removed the 800 mg cap: $toci_max_mg was then read by no rule,
    # and nothing said so (a --set of it changed nothing)
    path = tmp_path / "r.dl"
    path.write_text('.setting cap = 800 [1, 800] "mg" "the most per dose"\n.setting used = 8 [1, 12] "mg/kg" "x"\n'
                    '.decl w(p: id, kg: number[1, 400] "kg") input "w"\n.decl dose(p: id, mg: number) output "d"\n'
                    "dose(P, M) :- w(P, K), M = $used * K.\n")
    report = run_check(path, semantic=False)
    assert [(f.code, f.target, f.span.line) for f in report.findings if f.code == "W109"] == [("W109", "cap", 1)]
