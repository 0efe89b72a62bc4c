"""The command line as a user meets it: formats, exit codes, messages, determinism."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reasoner.cli import main

ROOT = Path(__file__).resolve().parent.parent
FACTS = ROOT / "facts"


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_query_text_and_json() -> None:
    result = run("query", "crs_grade(P, G)", str(FACTS / "p02_tocilizumab_allergy.facts"))
    assert result.exit_code == 0
    assert result.output.splitlines()[:2] == ["P    G", "p02  3"]
    result = run("query", "--format", "json", "crs_grade(P, G)", str(FACTS / "p02_tocilizumab_allergy.facts"))
    assert json.loads(result.output) == {"query": "crs_grade(P, G)", "variables": ["P", "G"],
                                         "answers": [{"P": "p02", "G": 3}]}


def test_ground_goals_and_no_answers_exit_zero() -> None:
    p02 = str(FACTS / "p02_tocilizumab_allergy.facts")
    assert json.loads(run("query", "--format", "json", "recommend(p02, siltuximab)", p02).output)["answers"] == [{}]
    assert json.loads(run("query", "--format", "json", "recommend(p02, tocilizumab)", p02).output)["answers"] == []
    result = run("query", "warning(P, C)", str(FACTS / "p01_grade2_first_dose.facts"))
    assert result.exit_code == 0 and result.output == "no answers\n"


def test_bad_goal_and_bad_facts_exit_two_with_located_messages() -> None:
    result = run("query", "crs_grad(P, G)", str(FACTS / "p01_grade2_first_dose.facts"))
    assert result.exit_code == 2 and "did you mean crs_grade" in result.output
    bad = "weight_kg(p1, 70).\ntemperature_c(p1, 389).\noxygen(p1, nasal, 4).\nweight_kg(p1 72).\nspo2(p1, -4).\n"
    result = run("query", "crs_grade(P, G)", "-", stdin=bad)
    assert result.exit_code == 2
    assert "<stdin>:4:14: error[E001]" in result.output  # a syntax error stops the file
    result = run("query", "crs_grade(P, G)", "-", stdin=bad.replace("p1 72", "p1, 72"))
    lines = result.output.splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert lines[0].startswith("<stdin>:2:1: error[E005]: temperature_c argument c: 389 C is outside")
    assert lines[1].startswith("<stdin>:3:1: error[E006]: oxygen argument device: 'nasal' is not")
    assert lines[2].startswith("<stdin>:4:1: error[E017]: weight_kg holds one fact per patient; "
                               "weight_kg(p1, 70) is already stated at <stdin>:1:1")
    assert lines[3].startswith("<stdin>:5:1: error[E005]: spo2 argument pct: -4 % is outside")
    assert lines[-1] == "4 errors; nothing was evaluated"


def test_bad_rule_file_exits_two(tmp_path) -> None:
    rules = tmp_path / "r.dl"
    rules.write_text('.decl f(p: id) input "f"\n.decl g(p: id) output "g"\ng(P) :- f(P), h(P).\n')
    result = run("query", "--rules", str(rules), "g(P)", "-", stdin="f(a).")
    assert result.exit_code == 2
    assert result.output.startswith(f"{rules}:3:15: error[E002]: undeclared predicate h/1")


def test_recommend_formats_are_deterministic() -> None:
    args = [str(FACTS)]
    for fmt in ("text", "json", "csv"):
        first = run("recommend", "--format", fmt, *args)
        again = run("recommend", "--format", fmt, *args)
        assert first.exit_code == 0 and first.output == again.output
    doc = json.loads(run("recommend", "--format", "json", str(FACTS / "p02_tocilizumab_allergy.facts")).output)
    (patient,) = doc["patients"]
    assert patient["crs_grade"] == 3
    assert {c["action"]: c["alternatives"] for c in patient["conflicts"]} == {"tocilizumab": ["siltuximab"]}
    silt = next(r for r in patient["recommendations"] if r["action"] == "siltuximab")
    assert silt["dose_mg"] == 715 and silt["rules"] and silt["sources"]


def test_recommend_explain_attaches_proofs() -> None:
    result = run("recommend", "--explain", "--format", "json", str(FACTS / "p02_tocilizumab_allergy.facts"))
    patient = json.loads(result.output)["patients"][0]
    assert all(r["proof"]["holds"] for r in patient["recommendations"])
    assert patient["conflicts"][0]["proof"]["text"] == "conflict(p02, tocilizumab, allergy)"
    text = run("recommend", "--explain", str(FACTS / "p02_tocilizumab_allergy.facts")).output
    assert "allergy(p02, tocilizumab)  [fact (" in text


def test_settings_change_the_answer() -> None:
    p09 = str(FACTS / "p09_persistent_grade1.facts")
    default = run("query", "--format", "json", "recommend(P, tocilizumab)", p09)
    assert json.loads(default.output)["answers"] == [{"P": "p09"}]  # 80 h > 72 h
    strict = run("query", "--format", "json", "--set", "grade1_persistent_hours=96", "recommend(P, tocilizumab)", p09)
    assert json.loads(strict.output)["answers"] == []
    unknown = run("query", "--set", "nope=3", "crs_grade(P, G)", p09)
    assert unknown.exit_code == 2 and "unknown setting nope" in unknown.output


def test_why_and_why_not() -> None:
    p14 = str(FACTS / "p14_afebrile_grade0.facts")
    result = run("why", "crs_grade(P, G)", p14)
    assert result.exit_code == 0 and result.output.startswith("crs_grade(p14, 0)")
    result = run("why-not", "fever(p14)", p14)
    assert result.exit_code == 0 and "C = 37.3 ≥ 38 is false" in result.output
    result = run("why-not", "fever(P)", p14)
    assert result.exit_code == 2 and "ground goal" in result.output
    dot = run("why", "--format", "dot", "fever(p13)", str(FACTS / "p13_masked_fever.facts")).output
    assert dot.startswith("digraph proof {")


def test_conflicts_exit_one_when_there_are_conflicts() -> None:
    result = run("conflicts", str(FACTS / "p02_tocilizumab_allergy.facts"))
    assert result.exit_code == 1
    assert "CONFLICT p02: tocilizumab is indicated and contraindicated (allergy); alternative: siltuximab" \
        in result.output
    assert "why contraindicated:" in result.output
    assert run("conflicts", str(FACTS / "p01_grade2_first_dose.facts")).exit_code == 0


def test_rule_set_tests_and_rulebook(tmp_path) -> None:
    result = run("test")
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "17 passed, 0 failed"
    case = tmp_path / "wrong.facts"
    case.write_text("% expect: recommend(p1, anakinra)\n% reject: crs_grade(p1, 1)\n"
                    "weight_kg(p1, 70). temperature_c(p1, 38.5).\n")
    result = run("test", "--cases", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "0 passed, 1 failed"
    assert "line 1: expected recommend(p1, anakinra), not derived" in result.output
    assert "line 2: rejected crs_grade(p1, 1), but derived (it holds)" in result.output
    book = run("rules", "--format", "markdown").output
    assert book.startswith("# Rulebook") and "## Treatment Algorithm: Immediate Management" in book
    assert "| `grade.hypoxia.low_flow` |" in book
