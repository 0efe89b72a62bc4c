"""The command line as a user meets it: formats, exit codes, messages, determinism."""
from __future__ import annotations

import csv
import io
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
    assert result.exit_code == 0 and "C = 37.3; 37.3 ≥ 38 is false" in result.output
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
    cases = len(list((ROOT / "rules" / "crs" / "tests").glob("*.facts")))
    assert result.exit_code == 0 and result.output.splitlines()[-1] == f"{cases} passed, 0 failed"
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


# ---------------------------------------------------------------------------
# Issue 14: strength and choice in every report format; warnings before recommendations
# ---------------------------------------------------------------------------
CASES = ROOT / "rules" / "crs" / "tests"


def test_recommend_shows_strength_and_one_choice_item_in_every_format() -> None:
    refractory = str(CASES / "v2_refractory_choice.facts")
    text = run("recommend", refractory).output
    f1 = text[text.index("Patient f1"):text.index("Patient f2")]
    # G: "strongly recommended" (opening statement) -> strong; "Consider vasopressors" -> consider
    assert "- tocilizumab 560 mg, IV over 1 h" in f1 and "[strong]" in f1.split("- tocilizumab")[1].splitlines()[0]
    assert "- vasopressors  [consider]" in f1
    # the refractory options are ONE item to choose from, each option with its own strength
    assert f1.count("one of (refractory_crs):") == 1 and "    - consider one of (refractory_crs):" in f1
    options = f1.split("one of (refractory_crs):")[1].split("\n  Supportive")[0]
    assert "- anakinra 100 mg, IV or SC every 6 h  [consider]" in options
    assert "- ruxolitinib, no dose in the guideline: per institutional protocol  [option]" in options
    assert "- methylprednisolone_pulse 1000 mg, IV twice daily  [consider]" in options

    doc = json.loads(run("recommend", "--format", "json", refractory).output)
    recs = {p["patient"]: p["recommendations"] for p in doc["patients"]}
    groups = [r for r in recs["f1"] if r.get("choice")]
    assert len(groups) == 1
    (group,) = groups
    assert group["strength"] == "consider" and group["choice"] == "refractory_crs"
    assert [o["action"] for o in group["options"]] == ["anakinra", "cyclophosphamide", "cytokine_adsorption",
                                                        "methylprednisolone_pulse", "ruxolitinib"]
    assert group["action"] == "one of: anakinra, cyclophosphamide, cytokine_adsorption, methylprednisolone_pulse, " \
                              "ruxolitinib"
    assert not {"anakinra", "ruxolitinib"} & {r["action"] for r in recs["f1"]}  # not also listed on their own
    assert {r["action"]: r["strength"] for r in recs["f1"] if not r.get("choice")}["tocilizumab"] == "strong"
    # f2: siltuximab in place of tocilizumab (all doses used) is its own item, an option
    silt = [r for r in recs["f2"] if r["action"] == "siltuximab"]
    assert silt and silt[0]["strength"] == "option" and "choice" not in silt[0]

    rows = list(csv.DictReader(io.StringIO(run("recommend", "--format", "csv", refractory).output)))
    f1_rows = [r for r in rows if r["patient"] == "f1"]
    group_rows = [r for r in f1_rows if r["choice"] == "refractory_crs" and r["kind"] == "recommend"]
    assert len(group_rows) == 1 and group_rows[0]["action"] == group["action"]
    option_rows = [r for r in f1_rows if r["kind"] == "option"]
    assert [r["action"] for r in option_rows] == [o["action"] for o in group["options"]]
    assert {r["action"]: r["dose_mg"] for r in option_rows}["anakinra"] == "100"
    assert all(r["strength"] for r in f1_rows if r["kind"] in ("recommend", "option"))


def test_warnings_come_before_recommendations_in_every_format() -> None:
    missing = str(CASES / "v2_missing_inputs.facts")
    text = run("recommend", missing).output
    m1 = text[text.index("Patient m1"):text.index("Patient m2")]
    assert m1.index("Warnings") < m1.index("missing_temperature") < (m1.find("Treatment") % 10 ** 6)
    assert "missing_temperature: No temperature on record" in m1
    m3 = text[text.index("Patient m3"):text.index("Patient m4")]
    assert m3.index("no_weight_for_dose") < m3.index("Treatment Algorithm")
    doc = json.loads(run("recommend", "--format", "json", missing).output)
    for patient in doc["patients"]:
        assert list(patient).index("warnings") < list(patient).index("recommendations")
    kinds = [r["kind"] for r in csv.DictReader(io.StringIO(run("recommend", "--format", "csv", missing).output))
             if r["patient"] == "m3"]
    assert kinds.index("warning") < kinds.index("recommend")


def test_choice_rows_made_in_sql_equal_the_python_rows() -> None:
    # the DuckDB path builds CSV rows in SQL (report_sql): the same bytes, choice groups included
    paths = [str(p) for p in sorted(CASES.glob("v2_*.facts"))] + [str(ROOT / "tests" / "data" / "crs_review")]
    # one chunk: patients are sorted within a chunk, and these files are not in patient order
    plain = run("recommend", "--format", "csv", "--chunk-size", "1000", *paths)
    duck = run("recommend", "--engine", "duckdb", "--format", "csv", "--chunk-size", "1000", *paths)
    assert plain.exit_code == duck.exit_code
    assert ",option," in plain.output and plain.output == duck.output


def test_rulebook_shows_strength_and_choice() -> None:
    text = run("rules").output
    assert "refractory.anakinra  [guideline, ref1, ref2]  (strength: consider; choice: refractory_crs)" in text
    doc = json.loads(run("rules", "--format", "json").output)
    by_id = {r["id"]: r for r in doc["rules"]}
    assert by_id["overview.combination.tocilizumab"]["strength"] == "strong"
    assert by_id["refractory.cyclophosphamide"]["choice"] == "refractory_crs"
    assert "| strength: option; choice: refractory_crs |" in run("rules", "--format", "markdown").output


def test_a_computed_dose_reads_rounded_and_the_data_keeps_the_engine_number(tmp_path: Path) -> None:
    # siltuximab 11 mg/kg x 1.1 kg is 12.100000000000001 in floating point: the clinician
    # reads 12.1 mg; JSON keeps the number the engine computed (the same in every engine)
    facts = tmp_path / "infant.facts"
    facts.write_text("weight_kg(b, 1.1).\ntemperature_c(b, 38.5).\noxygen(b, facemask, 4).\nallergy(b, tocilizumab).\n")
    text = run("recommend", str(facts))
    assert text.exit_code == 0 and "siltuximab 12.1 mg, IV over 1 h" in text.output, text.output
    assert "12.100000000000001" not in text.output
    doc = json.loads(run("recommend", "--format", "json", str(facts)).output)
    item = next(i for i in doc["patients"][0]["recommendations"] if i["action"] == "siltuximab")
    assert item["dose_mg"] == 11 * 1.1


def test_an_output_that_is_a_link_writes_its_target_and_an_input_is_never_overwritten(tmp_path: Path) -> None:
    p01 = str(FACTS / "p01_grade2_first_dose.facts")
    real, link = tmp_path / "real.txt", tmp_path / "link.txt"
    real.write_text("old\n")
    link.symlink_to(real.name)
    assert run("recommend", "-o", str(link), p01).exit_code == 0
    # the rename used to replace the link with a file and leave its target as it was
    assert link.is_symlink() and real.read_text().startswith("Patient p01: CRS grade 2")
    # an output that is an input, or a file in an input folder, is refused before anything runs
    inp = tmp_path / "in.facts"
    inp.write_text((FACTS / "p01_grade2_first_dose.facts").read_text())
    for args in (["-o", str(inp), str(inp)], ["-o", str(inp), str(tmp_path)],
                 ["--rule-counts", str(inp), str(inp)]):
        result = run("recommend", *args)
        assert result.exit_code == 2 and "error[E021]" in result.output, result.output
        assert "overwrite" in result.output or "overwritten" in result.output
    assert inp.read_text() == (FACTS / "p01_grade2_first_dose.facts").read_text()
    result = run("facts", "to-fhir", "--assessed-at", "2026-01-01T00:00:00Z", "-o", str(inp), str(inp))
    assert result.exit_code == 2 and "error[E021]" in result.output


def test_files_a_fact_folder_does_not_read_are_named_not_dropped(tmp_path: Path) -> None:
    # B.FACTS is read when named, but a folder reads .facts, .json, .csv and .parquet only
    folder = tmp_path / "cohort"
    folder.mkdir()
    (folder / "a.facts").write_text("weight_kg(p1, 70).\n")
    (folder / "B.FACTS").write_text("allergy(p1, tocilizumab).\n")
    (folder / "day2.dl").write_text("weight_kg(p2, 71).\n")
    (folder / "README.md").write_text("notes\n")
    for engine in ("pydatalog", "duckdb"):
        result = CliRunner().invoke(main, ["query", "--engine", engine, "weight_kg(P, K)", str(folder)])
        assert result.exit_code == 0
        assert result.stderr.count("note:") == 1, result.stderr
        assert f"{folder}:0:0: note: 2 files not read, not named .facts, .json, .csv, .parquet: B.FACTS, day2.dl" \
            in result.stderr
