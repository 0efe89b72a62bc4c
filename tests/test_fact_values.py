"""What a fact may hold, the same for every reader and both engines (issue 16: silent
wrong answers from fact files and goals). docs/language.md, "Facts", states the rules;
tests/test_fact_fuzz.py checks them on generated cohorts."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from reasoner import load_facts, load_rules
from reasoner.cli import main
from reasoner.language.errors import ReasonerError
from reasoner.io.facts import OneFacts, stream_facts, validate_stream
from reasoner.engines.sql import DuckDBEngine

ROOT = Path(__file__).resolve().parent.parent
P01 = str(ROOT / "facts" / "p01_grade2_first_dose.facts")
ENGINES = [("pydatalog", "--stream"), ("pydatalog", "--no-stream"), ("duckdb", "--stream"), ("duckdb", "--no-stream")]


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def parquet(path: Path, select: str) -> Path:
    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    con.close()
    return path


TWO_WEIGHTS = ("predicate,arg1,arg2,arg3\nweight_kg,p1,72\ntemperature_c,p1,39\noxygen,p1,nasal_cannula,4\n"
               "crs_onset,p1,10\nweight_kg,p1,80\n")


# ----------------------------------------------------------------------------- one per patient
@pytest.mark.parametrize("engine,stream", ENGINES)
def test_a_second_weight_is_refused_however_the_csv_is_read(tmp_path, engine, stream) -> None:
    """Streamed, a CSV cohort used to skip the `one` check: two weights gave two
    tocilizumab doses and exit 0. Every way of reading it now says the same thing."""
    path = tmp_path / "two.csv"
    path.write_text(TWO_WEIGHTS)
    result = run("query", "dose_mg(P, tocilizumab, M)", str(path), "--engine", engine, stream)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[0] == (f"{path}:6:1: error[E017]: weight_kg holds one fact per patient; "
                                             f"weight_kg(p1, 72) is already stated at {path}:2:1")


@pytest.mark.parametrize("engine,stream", ENGINES)
def test_a_second_weight_is_refused_in_parquet_too(tmp_path, engine, stream) -> None:
    path = parquet(tmp_path / "two.parquet", "SELECT * FROM (VALUES ('weight_kg', 'p1', '72'), "
                   "('weight_kg', 'p1', '72.0'), ('temperature_c', 'p1', '39'), ('weight_kg', 'p1', '80')) "
                   "t(predicate, arg1, arg2)")
    result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream)
    assert result.exit_code == 2, result.output
    # 72.0 is the same weight as 72: only the third row differs
    assert result.output.splitlines()[0] == (f"{path}:4:1: error[E017]: weight_kg holds one fact per patient; "
                                             f"weight_kg(p1, 72) is already stated at {path}:1:1")


def test_the_one_check_spills_to_disk_with_the_same_problems(rules, tmp_path) -> None:
    """Past `spill` patients the first facts go to a DuckDB file, so a streamed cohort's
    check stays flat in memory; it finds what the in-memory check finds."""
    rows = ["predicate,arg1,arg2"]
    for n in range(30):
        rows += [f"weight_kg,p{n},{60 + n}", f"temperature_c,p{n},38"]
        if n % 7 == 3:
            rows += [f"weight_kg,p{n},{60 + n}.0", f"weight_kg,p{n},{90 + n}"]  # the same, then another
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ReasonerError) as err:
        validate_stream(rules, [path])
    expected = err.value.diagnostics
    assert {d.code for d in expected} == {"E017"} and len(expected) == 4
    facts = list(stream_facts(rules, [path]))
    for spill in (1, 5, 1000):
        one = OneFacts(rules, spill=spill)
        for fact in facts:
            one.add(fact)
        assert sorted(one.problems(), key=lambda d: d.sort_key()) == expected, spill


# ----------------------------------------------------------------------------- numbers
ODD = [("7_2", "digit separators"), ("１２", "ASCII digits"), ("1e2", "exponent"), ("+72", "ASCII digits"),
       ("72.", "ASCII digits"), ("inf", "ASCII digits"), ("9" * 400, "too large")]


@pytest.mark.parametrize("engine,stream", ENGINES)
@pytest.mark.parametrize("cell,words", ODD, ids=[c[:6] for c, _ in ODD])
def test_one_number_syntax_in_csv_on_every_engine(tmp_path, engine, stream, cell, words) -> None:
    """Python's int() reads 7_2 as 72 and fullwidth １２ as 12; DuckDB refused １２ and read
    1e2 as 100. Now every reader takes exactly the one syntax."""
    path = tmp_path / "n.csv"
    path.write_text(f"predicate,arg1,arg2\nweight_kg,p1,70\nweight_kg,p2,{cell}\n", encoding="utf-8")
    result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream)
    assert result.exit_code == 2, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:3:1: error[E004]: ") and "expected a number" in first, result.output
    if engine == "pydatalog" or stream == "--no-stream":
        assert words in first, first


@pytest.mark.parametrize("text,code", [("weight_kg(p1, 1_0).", "E001"), ("weight_kg(p1, ７２).", "E001"),
                                       ("weight_kg(p1, 1e2).", "E001"), (f"weight_kg(p1, {'9' * 5000}).", "E001"),
                                       (f"weight_kg(p1, {'9' * 400}.5).", "E001")])
def test_one_number_syntax_in_facts_files(rules, text, code) -> None:
    with pytest.raises(ReasonerError) as err:  # a located error, never a traceback (5000 digits was E023)
        load_facts(rules, text=text, name="n.facts")
    (first,) = err.value.diagnostics
    assert (first.code, first.span.line) == (code, 1) and first.span.col > 1, str(err.value)


@pytest.mark.parametrize("value", ["1e2", "1E2", "72.0e0", "-0.5e-3"])
def test_a_json_number_with_an_exponent_is_not_read(rules, tmp_path, value) -> None:
    path = tmp_path / "n.json"
    path.write_text(f'[{{"predicate": "weight_kg", "args": ["p1", {value}]}}]')
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, [path])
    (first,) = err.value.diagnostics
    assert first.code == "E004" and "exponent" in first.message and (first.span.line, first.span.col) == (1, 2)


def test_leading_zeros_and_equal_spellings_are_one_number(rules, tmp_path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("predicate,arg1,arg2\nweight_kg,p1,072\nweight_kg,p1,72.00\nweight_kg,p1, 72 \n")
    assert {f.args for f in load_facts(rules, [path]).facts} == {("p1", 72), ("p1", 72.0)}
    validate_stream(rules, [path])  # the same weight three times: not a second weight


# ----------------------------------------------------------------------------- text
FORGED = "p1\nPatient p2: CRS grade 4: CRS grade 4 (hypoxia grade 3, hypotension grade 3)"


@pytest.mark.parametrize("form", ["facts", "json", "csv", "parquet"])
@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_a_newline_in_a_patient_id_cannot_forge_a_report_section(tmp_path, form, engine) -> None:
    if form == "facts":
        path = tmp_path / "f.facts"
        path.write_text(f'weight_kg("{FORGED.replace(chr(10), chr(92) + "n")}", 72).\n')
    elif form == "json":
        path = tmp_path / "f.json"
        path.write_text(json.dumps([{"predicate": "weight_kg", "args": [FORGED, 72]}]))
    elif form == "csv":
        path = tmp_path / "f.csv"
        path.write_text(f'predicate,arg1,arg2\nweight_kg,"{FORGED}",72\n')
    else:
        path = parquet(tmp_path / "f.parquet", f"SELECT 'weight_kg' AS predicate, {sql_text(FORGED)} AS arg1, "
                       "'72' AS arg2")
    result = run("recommend", str(path), "--engine", engine)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # one line: the error, escaped
    assert "error[E004]: weight_kg argument p: id 'p1\\nPatient p2" in result.output
    assert "holds a control character (U+000A)" in result.output


def sql_text(text: str) -> str:
    return "'" + text.replace("'", "''").replace("\n", "' || chr(10) || '") + "'"


@pytest.mark.parametrize("cell", ["p\r1", "p\x001", "p\u20281", "p\x851", "p\x1b[2J"])
@pytest.mark.parametrize("engine,stream", ENGINES)
def test_control_characters_in_ids_are_refused_by_every_reader(tmp_path, cell, engine, stream) -> None:
    path = parquet(tmp_path / "c.parquet", f"SELECT 'weight_kg' AS predicate, 'p0' AS arg1, '70' AS arg2 UNION ALL "
                   f"SELECT 'weight_kg', 'p' || chr({ord(cell[1])}) || '{cell[2:]}', '72'")
    result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{path}:2:1: error[E004]: weight_kg argument p: "), result.output
    assert result.output.isprintable() or result.output.count("\n") == 1, repr(result.output)


def test_a_lone_surrogate_in_json_is_refused_without_a_traceback(tmp_path) -> None:
    path = tmp_path / "s.json"
    path.write_text('[{"predicate": "weight_kg", "args": ["p\\ud800", 72]},\n'
                    ' {"predicate": "weight_\\udfffkg", "args": ["p2", 72]}]')
    result = run("query", "weight_kg(P, K)", str(path))
    assert result.exit_code == 2, result.output
    first, second = result.output.splitlines()[:2]
    assert first == f"{path}:1:2: error[E004]: weight_kg argument p: id 'p\\ud800' holds a lone surrogate (U+D800)"
    assert second.startswith(f"{path}:2:2: error[E002]: unknown predicate weight_\\udfffkg/2")


@pytest.mark.parametrize("engine,stream", ENGINES)
def test_an_empty_id_is_refused_alike(tmp_path, engine, stream) -> None:
    """Python read `weight_kg,,72` as the patient ""; DuckDB as a missing argument."""
    csv_path = tmp_path / "e.csv"
    csv_path.write_text('predicate,arg1,arg2\nweight_kg,p1,70\nweight_kg,"",72\n')
    pq = parquet(tmp_path / "e.parquet", "SELECT * FROM (VALUES ('weight_kg', 'p1', '70'), ('weight_kg', '', '72'), "
                 "('weight_kg', NULL, '72')) t(predicate, arg1, arg2)")
    for path, lines in ((csv_path, [3]), (pq, [2, 3])):
        result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream)
        assert result.exit_code == 2, result.output
        found = [line for line in result.output.splitlines() if "error[" in line]
        assert [line.split(": error[")[0] for line in found] == [f"{path}:{n}:1" for n in lines], result.output
        assert all("error[E003]: weight_kg" in line for line in found), result.output


@pytest.mark.parametrize("text", ['weight_kg("", 72).', 'weight_kg(" p1", 72).', 'weight_kg(p1, 72).\n'
                                  'withheld(p1, tocilizumab, "").'])
def test_an_empty_or_padded_id_in_a_facts_file_is_refused(rules, text) -> None:
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, text=text)
    assert [d.code for d in err.value.diagnostics] == ["E004"]


# ----------------------------------------------------------------------------- numbers where ids are
@pytest.mark.parametrize("form", ["facts", "json", "csv"])
def test_a_number_where_an_id_is_declared_is_the_id_as_written(rules, tmp_path, form) -> None:
    if form == "facts":
        path = tmp_path / "i.facts"
        path.write_text("weight_kg(17, 72).\nweight_kg(007, 80).\nweight_kg(-3, 90).\nweight_kg(17.50, 60).\n")
    elif form == "json":
        path = tmp_path / "i.json"
        path.write_text('[{"predicate": "weight_kg", "args": [17, 72]}, {"predicate": "weight_kg", "args": '
                        '["007", 80]}, {"predicate": "weight_kg", "args": [-3, 90]}, {"predicate": "weight_kg", '
                        '"args": [17.50, 60]}]')
    else:
        path = tmp_path / "i.csv"
        path.write_text("predicate,arg1,arg2\nweight_kg,17,72\nweight_kg,007,80\nweight_kg,-3,90\nweight_kg,17.50,60\n")
    assert {f.args for f in load_facts(rules, [path]).facts} == {("17", 72), ("007", 80), ("-3", 90), ("17.50", 60)}


@pytest.mark.parametrize("goal,answers", [("weight_kg(17, K)", [{"K": 72}]), ('weight_kg("17", K)', [{"K": 72}]),
                                          ("weight_kg(007, K)", [{"K": 80}]), ("weight_kg(7, K)", []),
                                          ("weight_kg(17, 72)", [{}]), ("weight_kg(17, 72.0)", [{}])])
@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_a_goal_finds_the_patient_17_as_the_cohort_spells_it(tmp_path, goal, answers, engine) -> None:
    path = tmp_path / "c.csv"
    path.write_text("predicate,arg1,arg2\nweight_kg,17,72\nweight_kg,007,80\n")
    result = run("query", goal, str(path), "--format", "json", "--engine", engine)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["answers"] == answers


@pytest.mark.parametrize("goal,code,col,words", [
    ("crs_grade(p01, 5 + 5)", "E016", 16, "not arithmetic"),
    ("crs_grade(p01, $nosuch)", "E016", 16, "$nosuch (no such setting)"),
    ("crs_grade(p01, $toci_max_mg)", "E016", 16, "not the setting $toci_max_mg"),
    ("crs_grade(p01, max(1, 2))", "E016", 16, "not arithmetic"),
    ("crs_grade(p01, 7)", "E005", 16, "outside the valid range 0–4"),
    ("crs_grade(p01, two)", "E004", 16, "expected an integer"),
    ("recommend(p01, tocilizumb)", "E006", 16, "did you mean tocilizumab"),
    ('weight_kg("p\\q", K)', "E001", 13, "unknown escape \\q"),
    ('weight_kg("p\\n1", K)', "E004", 11, "holds a control character"),
])
def test_goal_arguments_are_refused_not_ignored(goal, code, col, words) -> None:
    """`crs_grade(p01, 5 + 5)` answered true and `$nosuch` raised nothing."""
    result = run("query", goal, P01)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"<goal>:1:{col}: error[{code}]: ") and words in result.output, result.output


# ----------------------------------------------------------------------------- files
def test_an_unknown_string_escape_is_an_error_not_a_dropped_backslash(rules) -> None:
    with pytest.raises(ReasonerError) as err:
        load_facts(rules, text='weight_kg(p1, 72).\nwithheld(p1, tocilizumab, "a\\qb").', name="e.facts")
    (first,) = err.value.diagnostics
    assert (first.code, first.span.line, first.span.col) == ("E001", 2, 29) and "unknown escape \\q" in first.message
    facts = load_facts(rules, text='withheld(p1, tocilizumab, "a\\\\qb \\"x\\"").').facts
    assert facts[0].args[2] == 'a\\qb "x"'  # the known escapes still read


def test_deeply_nested_json_is_a_located_error(tmp_path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('[{"predicate": "weight_kg", "args": ["p1", 72]},\n ' + "[" * 100_000 + "]" * 100_000 + "]")
    result = run("query", "weight_kg(P, K)", str(path))
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"{path}:2:2: error[E015]: JSON nested too deeply"), result.output


def test_dev_null_is_an_empty_fact_file() -> None:
    result = run("query", "weight_kg(P, K)", os.devnull)
    assert result.exit_code == 0 and result.output == "no answers\n", result.output


@pytest.mark.parametrize("suffix,content", [("", "weight_kg(p1, 72).\n"),
                                            (".csv", "predicate,arg1,arg2\nweight_kg,p1,72\n")])
@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_a_fifo_is_read_as_a_fact_file(tmp_path, suffix, content, engine) -> None:
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(content), daemon=True)
    writer.start()
    result = run("query", "weight_kg(P, K)", str(fifo), "--format", "json", "--engine", engine)
    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["answers"] == [{"P": "p1", "K": 72}]


# ----------------------------------------------------------------------------- engines agree
@pytest.mark.parametrize("engine,stream", ENGINES)
def test_parquet_decimal_and_float_weights_read_alike(tmp_path, engine, stream) -> None:
    """A DECIMAL weight was refused by pyDatalog ("expected a number, got Decimal")
    and read by DuckDB; a FLOAT one read as two different doubles."""
    path = parquet(tmp_path / "weight_kg.parquet", "SELECT * FROM (VALUES ('p1', 72.50::DECIMAL(5, 2)), "
                   "('p2', 80.00::DECIMAL(5, 2))) t(p, kg)")
    floats = parquet(tmp_path / "temperature_c.parquet", "SELECT * FROM (VALUES ('p1', 38.1::FLOAT), "
                     "('p2', 37.9::FLOAT)) t(p, c)")
    result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["answers"] == [{"P": "p1", "K": 72.5}, {"P": "p2", "K": 80}]
    result = run("query", "temperature_c(P, C)", str(floats), "--engine", engine, stream, "--format", "json")
    assert result.exit_code == 0, result.output
    temps = {a["P"]: a["C"] for a in json.loads(result.output)["answers"]}
    assert temps == {"p1": 38.099998474121094, "p2": 37.900001525878906}  # the doubles the FLOATs hold


@pytest.mark.parametrize("engine,stream", ENGINES)
def test_mixed_line_ends_read_alike(tmp_path, engine, stream) -> None:
    """DuckDB refused a CSV mixing CRLF and LF lines ("state machine reached an invalid
    state") where Python read it."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"predicate,arg1,arg2\r\nweight_kg,p1,72\r\ntemperature_c,p1,39\ncrs_onset,p1,5\r\n"
                     b"weight_kg,p2,80\n")
    result = run("query", "weight_kg(P, K)", str(path), "--engine", engine, stream, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["answers"] == [{"P": "p1", "K": 72}, {"P": "p2", "K": 80}]


def test_duckdb_tables_from_python_are_held_to_the_text_rules(rules) -> None:
    engine = DuckDBEngine(rules)
    for bad in ["p\n1", "", " p1"]:
        with pytest.raises(ReasonerError) as err:
            engine.evaluate_tables({"weight_kg": [(bad, 72.0)]})
        assert [d.code for d in err.value.diagnostics] == ["E004"], bad
