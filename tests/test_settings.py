"""Settings: `.setting NAME = VALUE [LO, HI] "unit" "reason"`, `--set NAME=VALUE`.

The rule set's own value and every override must be a plain number inside the declared
range (E024); an unknown name is refused by every command that takes --set (E012).
Also: the DuckDB engine stops a recursion without a fixpoint as pyDatalog does.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import EvaluationLimit, ReasonerError, evaluate, load_facts, load_rules
from reasoner.authoring.casetests import read_case
from reasoner.cli import main
from reasoner.engines.pydatalog import Engine
from reasoner.analysis.program import resolve_settings
from reasoner.engines.sql import DuckDBEngine
from reasoner.language.syntax import parse_number

ROOT = Path(__file__).resolve().parent.parent
P01 = str(ROOT / "facts" / "p01_grade2_first_dose.facts")

RULES = """
.decl w(p: id, kg: number) input "weight"
.decl dose(p: id, mg: number) output "dose"
.setting per_kg = 8 [1, 12] "mg/kg" "dose per kg"
.setting cap = 800 "a cap, no range"
dose(P, M) :- w(P, Kg), M = min($per_kg * Kg, $cap).
"""


def run(*args: str):
    return CliRunner().invoke(main, list(args))


# ----------------------------------------------------------------------------- the directive
def test_range_unit_and_reason_are_read() -> None:
    rs = load_rules(text=RULES)
    per_kg, cap = rs.settings["per_kg"], rs.settings["cap"]
    assert (per_kg.value, per_kg.low, per_kg.high, per_kg.unit, per_kg.reason) == (8, 1, 12, "mg/kg", "dose per kg")
    assert (cap.low, cap.high, cap.unit, cap.reason) == (None, None, None, "a cap, no range")
    assert per_kg.range_text() == "[1, 12] mg/kg" and cap.range_text() == ""
    one = load_rules(text='.setting h = 5 [0, 9] "only a reason"\n').settings["h"]
    assert (one.unit, one.reason) == (None, "only a reason")  # after a range, one string is the reason
    bare = load_rules(text=".setting h = -2.5 [-10, 0]\n").settings["h"]
    assert (bare.value, bare.low, bare.high, bare.reason) == (-2.5, -10, 0, "")


@pytest.mark.parametrize("text, code, where, words", [
    ('.setting x = 5 [0, 3] "u" "why"\n', "E024", (1, 10), "5 is outside its range [0, 3] u"),
    ('.setting x = -1 [0, 3] "why"\n', "E024", (1, 10), "-1 is outside its range [0, 3]"),
    ('.setting x = 5 [9, 0] "why"\n', "E001", (1, 17), "empty range"),
    ('.setting x = 5 [0, 9] "u" "why" "more"\n', "E001", (1, 33), "a unit after the range and one reason"),
    ('.setting x = 5 "why" "more"\n', "E001", (1, 22), "a unit after the range"),
    ('.setting x = 5 "u" [0, 9]\n', "E001", (1, 20), ""),
])
def test_bad_settings_are_located_errors(text: str, code: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(ReasonerError) as info:
        load_rules(text=text)
    (d,) = info.value.diagnostics
    assert (d.code, (d.span.line, d.span.col)) == (code, where) and words in d.message


def test_a_value_out_of_range_is_a_check_finding_too(tmp_path: Path) -> None:
    (tmp_path / "main.dl").write_text(RULES.replace("= 8 [1, 12]", "= 20 [1, 12]"), encoding="utf-8")
    result = run("check", "--static-only", str(tmp_path / "main.dl"))
    assert result.exit_code == 1 and "E024" in result.output
    assert "20 is outside its range [1, 12] mg/kg" in result.output


def test_the_number_syntax() -> None:
    assert [parse_number(t) for t in ("24", "-3", "0.5", "007", "12.50")] == [24, -3, 0.5, 7, 12.5]
    for text in ("1_0", "\uff11\uff10", "\u0661", "1e3", "+1", ".5", "5.", "nan", "inf", "-inf", "", " 1", "1 ", "--1",
                 "0x10", "1.2.3", "١٠"):
        assert parse_number(text) is None, text


# ----------------------------------------------------------------------------- overrides, in Python
def test_resolve_settings_names_range_and_unit() -> None:
    rs = load_rules(text=RULES)
    assert resolve_settings(rs, {"per_kg": 12, "cap": -5}) == {"per_kg": 12, "cap": -5}  # cap has no range
    with pytest.raises(ReasonerError) as info:
        resolve_settings(rs, {"per_kg": -8, "capp": 1, "cap": float("nan")})
    messages = sorted((d.code, d.message) for d in info.value.diagnostics)
    assert [c for c, _ in messages] == ["E012", "E024", "E024"]
    text = str(info.value)
    assert "unknown setting capp (did you mean cap?)" in text
    assert "setting per_kg: -8 is outside its range [1, 12] mg/kg (declared at <rules>:4:10)" in text
    assert "setting cap: nan is not a finite number" in text
    for bad in (True, "8", None):
        with pytest.raises(ReasonerError, match="E024"):
            resolve_settings(rs, {"per_kg": bad})
    facts = load_facts(rs, text="w(a, 50).")
    with pytest.raises(ReasonerError, match="outside its range"):
        evaluate(rs, facts, settings={"per_kg": 0.5})
    with pytest.raises(ReasonerError, match="outside its range"):
        DuckDBEngine(rs, settings={"per_kg": 13})


# ----------------------------------------------------------------------------- the bundled rule set
def test_every_crs_setting_has_a_range_and_a_unit_holding_its_value() -> None:
    rs = load_rules()
    assert rs.settings
    for s in rs.settings.values():
        assert s.low is not None and s.unit and s.low <= s.value <= s.high, s.name
        assert "Range:" in s.reason, s.name  # the range is justified in the reason
    doc = json.loads(run("rules", "--format", "json").output)
    toci = next(s for s in doc["settings"] if s["name"] == "toci_mg_per_kg")
    assert (toci["value"], toci["low"], toci["high"], toci["unit"]) == (8, 1, 12, "mg/kg")
    assert "toci_mg_per_kg = 8 [1, 12] mg/kg" in run("rules").output
    assert "| `toci_mg_per_kg` | 8 | [1, 12] mg/kg |" in run("rules", "--format", "markdown").output


def test_set_outside_the_range_exits_two_naming_range_and_unit() -> None:
    result = run("recommend", "--set", "toci_mg_per_kg=-8", P01)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error[E024]: setting toci_mg_per_kg: -8 is outside its range [1, 12] mg/kg")
    assert "-576" not in result.output
    ok = run("query", "--set", "toci_mg_per_kg=12", "--set", "toci_max_mg=800.0", "dose_mg(p01, tocilizumab, M)", P01)
    assert ok.exit_code == 0 and "800" in ok.stdout  # 12 * 72 = 864, capped at 800


@pytest.mark.parametrize("value", ["1_0", "\uff11\uff10", "nan", "inf", "-inf", "1e1", "+8", "8.", ".5", "", "eight"])
def test_set_takes_the_one_number_syntax(value: str) -> None:
    result = run("query", "--set", f"toci_mg_per_kg={value}", "crs_grade(P, G)", P01)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error[E024]: --set ") and "not a number" in result.stderr


def test_set_without_a_value() -> None:
    result = run("query", "--set", "toci_mg_per_kg", "crs_grade(P, G)", P01)
    assert result.exit_code == 2 and "error[E024]: --set 'toci_mg_per_kg': expected NAME=NUMBER" in result.stderr


@pytest.mark.parametrize("command", [
    ["query", "crs_grade(P, G)", P01],
    ["recommend", P01],
    ["why", "crs_grade(p01, G)", P01],
    ["why-not", "crs_grade(p01, 4)", P01],
    ["conflicts", P01],
    ["check", "--static-only"],
    ["check"],
])
def test_every_command_with_set_refuses_unknown_and_out_of_range(command: list[str]) -> None:
    unknown = run(*command, "--set", "nosuch=1")
    assert unknown.exit_code == 2 and "error[E012]: unknown setting nosuch" in unknown.stderr and not unknown.stdout
    wrong = run(*command, "--set", "spo2_target=50")
    assert wrong.exit_code == 2 and "spo2_target: 50 is outside its range [88, 96] %" in wrong.stderr


def test_verify_refuses_unknown_and_out_of_range(tmp_path: Path) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(run("why", "--format", "json", "crs_grade(p01, G)", P01).stdout, encoding="utf-8")
    assert run("verify", str(proof), P01).exit_code == 0
    assert "error[E012]" in run("verify", str(proof), P01, "--set", "nosuch=1").stderr
    result = run("verify", str(proof), P01, "--set", "toci_max_total=9")
    assert result.exit_code == 2 and "toci_max_total: 9 is outside its range [1, 4] doses" in result.stderr


def test_check_takes_valid_settings() -> None:
    assert run("check", "--static-only", "--set", "grade1_persistent_hours=24").exit_code == 0


def test_a_case_setting_is_checked_where_it_is_written(tmp_path: Path) -> None:
    rs = load_rules()
    case = tmp_path / "c.facts"
    case.write_text("% expect: crs_grade(p1, 0)\n% setting: toci_max_total = 2\nweight_kg(p1, 70).\n", encoding="utf-8")
    assert read_case(case, rs).settings == {"toci_max_total": 2}
    for line, words in (("% setting: toci_max_total = 9", "9 is outside its range [1, 4] doses"),
                        ("% setting: toci_max_total = 1_0", "expected `% setting: NAME = NUMBER`"),
                        ("% setting: toci_max_totl = 2", "unknown setting toci_max_totl")):
        case.write_text(f"% expect: crs_grade(p1, 0)\n{line}\nweight_kg(p1, 70).\n", encoding="utf-8")
        with pytest.raises(ReasonerError) as info:
            read_case(case, rs)
        (d,) = info.value.diagnostics
        assert (d.span.file, d.span.line) == (str(case), 2) and words in d.message


def test_a_comment_that_reads_like_a_directive_is_an_error_not_a_passing_case(tmp_path: Path) -> None:
    # `% Expect:` and `% expect GOAL` were read as comments: a case checking nothing passed
    rs = load_rules()
    case = tmp_path / "c.facts"
    for line, fix in (("% Expect: crs_grade(p1, 4)", "`% expect: GOAL`"),
                      ("% expect crs_grade(p1, 4)", "`% expect: GOAL`"),
                      ("%% Reject: crs_grade(p1, 0)", "`% reject: GOAL`"),
                      ("% settings: toci_max_total = 2", "`% setting: NAME = NUMBER`")):
        case.write_text(f"% expect: weight_kg(p1, 70)\n{line}\nweight_kg(p1, 70).\n", encoding="utf-8")
        with pytest.raises(ReasonerError) as info:
            read_case(case, rs)
        (d,) = info.value.diagnostics
        assert (d.span.line, d.code) == (2, "E015") and "is not a directive" in d.message and fix in d.message
    case.write_text("% expect: weight_kg(p1, 70)\n% expected to be graded 0: prose, not a directive\n"
                    "weight_kg(p1, 70).\n", encoding="utf-8")
    assert read_case(case, rs).expect


# ----------------------------------------------------------------------------- DuckDB's round limit
UNBOUNDED = """
.decl s(x: number) input "start"
.decl n(x: number) output "counting up, past any round limit"
n(X) :- s(X).
n(Y) :- n(X), X < 1000000000, Y = X + 1.
"""


def test_both_engines_have_the_same_round_limit() -> None:
    def default(cls) -> int:
        return inspect.signature(cls.__init__).parameters["max_iterations"].default
    assert default(Engine) == default(DuckDBEngine) == 100_000


def test_duckdb_stops_a_recursion_without_fixpoint_like_pydatalog() -> None:
    rs = load_rules(text=UNBOUNDED)
    facts = load_facts(rs, text="s(0).").facts
    messages = []
    for engine in (Engine(rs, max_iterations=25), DuckDBEngine(rs, max_iterations=25)):
        with pytest.raises(EvaluationLimit) as info:
            engine.evaluate(facts)
        messages.append(str(info.value))
    assert messages == ["recursion did not reach a fixpoint in 25 rounds"] * 2
    # a recursion that does end within the limit is not cut
    done = load_rules(text=UNBOUNDED.replace("1000000000", "20"))
    assert len(DuckDBEngine(done, max_iterations=25).evaluate(facts).tuples("n")) == 21


def test_the_command_line_exits_two_for_either_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules, facts = tmp_path / "r.dl", tmp_path / "f.facts"
    rules.write_text(UNBOUNDED, encoding="utf-8")
    facts.write_text("s(0).\n", encoding="utf-8")
    # the limits as the command line builds the engines, made small so the test is quick
    monkeypatch.setitem(DuckDBEngine.__init__.__kwdefaults__, "max_iterations", 25)
    with_default = [n for n, p in inspect.signature(Engine.__init__).parameters.items()
                    if p.default is not p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = list(Engine.__init__.__defaults__)
    defaults[with_default.index("max_iterations")] = 25
    monkeypatch.setattr(Engine.__init__, "__defaults__", tuple(defaults))
    for engine in ("pydatalog", "duckdb"):
        result = run("query", "--rules", str(rules), "--engine", engine, "n(X)", str(facts))
        assert result.exit_code == 2, (engine, result.output)
        assert result.stdout == ""
        assert result.stderr == "error[E022]: recursion did not reach a fixpoint in 25 rounds\n", engine


def test_numbers_too_large_for_a_double(tmp_path: Path) -> None:
    rs = load_rules(text=RULES)
    with pytest.raises(ReasonerError, match="cap: 10000000000000000000... is too large for a number"):
        resolve_settings(rs, {"cap": 10 ** 400})
    rules = tmp_path / "r.dl"
    rules.write_text(RULES, encoding="utf-8")
    facts = tmp_path / "f.facts"
    facts.write_text("w(p1, 70).\n", encoding="utf-8")
    for value in ("1" + "0" * 400, "1" + "0" * 400 + ".5", "1" + "0" * 5000):
        for engine in ("pydatalog", "duckdb"):
            result = run("query", "--rules", str(rules), "--engine", engine, "--set", f"cap={value}", "dose(P, M)",
                         str(facts))
            assert result.exit_code == 2 and "too large for a number" in result.stderr, result.output
            assert len(result.stderr) < 300  # the number is not printed whole


def test_a_rule_sentence_shows_the_setting_values_of_the_run(tmp_path: Path) -> None:
    # A warning's sentence and a proof's rule sentence name settings as `$name` in the rule
    # file; the clinician reads the value this run used, `--set` included.
    facts = tmp_path / "child.facts"
    facts.write_text("weight_kg(c, 30).\ntemperature_c(c, 38.5).\noxygen(c, facemask, 4).\n")
    for extra, kg in (((), "40"), (("--set", "adult_dose_min_weight_kg=35"), "35")):
        text = run("recommend", *extra, str(facts))
        assert text.exit_code == 0, text.output
        assert f"patient under {kg} kg" in text.output and "$adult_dose_min_weight_kg" not in text.output
        doc = json.loads(run("recommend", "--format", "json", *extra, str(facts)).output)
        says = {w["code"]: w["says"] for w in doc["patients"][0]["warnings"]}
        assert f"under {kg} kg" in says["fixed_adult_dose_dexamethasone"]
        for fmt in ("text", "markdown", "json", "html", "dot"):
            proof = run("why", "--format", fmt, *extra, "warning(c, fixed_adult_dose_dexamethasone)", str(facts))
            assert proof.exit_code == 0, proof.output
            assert f"under {kg} kg" in proof.output and "$adult_dose_min_weight_kg kg" not in proof.output, fmt
