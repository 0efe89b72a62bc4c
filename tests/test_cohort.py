"""Cohorts: CSV and Parquet in both layouts, streamed in chunks, split across processes,
with the same answers and the same bytes as a whole, single-process run."""
from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.cli import main
from reasoner.language.errors import ReasonerError
from reasoner.io.facts import stream_chunks, validate_stream

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate_patients  # noqa: E402


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def cohort(rules, tmp_path_factory):
    """120 generated patients as .facts, long CSV and per-predicate CSV files."""
    base = tmp_path_factory.mktemp("cohort")
    text = generate_patients(120, seed=3)
    (base / "c.facts").write_text(text)
    facts = load_facts(rules, text=text)
    with open(base / "long.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        for f in facts.facts:
            writer.writerow([f.pred, *f.args, *[""] * (4 - len(f.args))])
    tables = base / "tables"
    tables.mkdir()
    by_pred: dict[str, list] = {}
    for f in facts.facts:
        by_pred.setdefault(f.pred, []).append(f.args)
    for pred, rows in by_pred.items():
        with open(tables / f"{pred}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([a.name for a in rules.decls[pred].args])
            writer.writerows(rows)
    return base, facts


def test_csv_layouts_read_the_same_facts(rules, cohort) -> None:
    base, facts = cohort
    expected = {(f.pred, f.args) for f in facts.facts}
    long = load_facts(rules, [base / "long.csv"])
    tables = load_facts(rules, [base / "tables"])
    assert {(f.pred, f.args) for f in long.facts} == expected
    assert {(f.pred, f.args) for f in tables.facts} == expected


def test_streamed_chunks_hold_whole_patients_and_give_the_same_model(rules, cohort) -> None:
    base, facts = cohort
    assert validate_stream(rules, [base / "long.csv"]) == len(facts)
    chunks = list(stream_chunks(rules, [base / "long.csv"], 25))
    assert len(chunks) == 5
    seen: set = set()
    for chunk in chunks:
        patients = {f.args[0] for f in chunk}
        assert not patients & seen
        seen |= patients
    whole = evaluate(rules, facts).tuples("recommend")
    from reasoner.engines.pydatalog import Engine
    engine = Engine(rules)
    streamed = set().union(*(engine.evaluate(c).tuples("recommend") for c in chunks))
    assert streamed == whole


def test_a_cohort_not_grouped_by_patient_is_refused_not_split(rules, tmp_path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("predicate,arg1,arg2\nweight_kg,a,70\nweight_kg,b,70\ntemperature_c,a,39\n")
    with pytest.raises(ReasonerError, match="appears again"):
        list(stream_chunks(rules, [path], 1))


def test_a_cohort_not_grouped_by_patient_is_refused_before_any_report_is_printed(tmp_path) -> None:
    # the first chunks' report went to stdout before the patient that came back was met
    path = tmp_path / "mixed.csv"
    rows = [f"weight_kg,p{i:02d},70\ntemperature_c,p{i:02d},39\n" for i in range(30)]
    path.write_text("predicate,arg1,arg2\n" + "".join(rows) + "allergy,p00,anakinra\n")
    result = CliRunner().invoke(main, ["recommend", "--stream", "--chunk-size", "5", "--format", "csv", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{path}:62:1: error[E015]: patient p00 appears again after other patients" in result.stderr
    # in one chunk the patient's facts are together: read, with the same report as whole
    whole = CliRunner().invoke(main, ["recommend", "--no-stream", "--format", "csv", str(path)])
    one = CliRunner().invoke(main, ["recommend", "--stream", "--chunk-size", "50", "--format", "csv", str(path)])
    assert one.exit_code == whole.exit_code == 0 and one.stdout == whole.stdout


def test_stream_validation_reports_every_bad_row_before_evaluating(rules, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("predicate,arg1,arg2\nweight_kg,a,-3\ntemperature_c,a,389\nwieght_kg,b,70\n")
    with pytest.raises(ReasonerError) as err:
        validate_stream(rules, [path])
    assert [(d.span.line, d.code) for d in err.value.diagnostics] == [(2, "E005"), (3, "E005"), (4, "E002")]


@pytest.fixture(scope="module")
def parquet_cohort(cohort, tmp_path_factory):
    """The cohort as Parquet: long.parquet (text columns) and one file per predicate
    whose columns DuckDB typed from the CSV (kg as DOUBLE)."""
    base, _ = cohort
    out = tmp_path_factory.mktemp("parquet")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{base / 'long.csv'}', all_varchar=true, header=true)) "
                f"TO '{out / 'long.parquet'}' (FORMAT parquet)")
    (out / "tables").mkdir()
    for table in sorted((base / "tables").glob("*.csv")):
        con.execute(f"COPY (SELECT * FROM read_csv('{table}', header=true)) "
                    f"TO '{out / 'tables' / (table.stem + '.parquet')}' (FORMAT parquet)")
    return out / "long.parquet", sorted((out / "tables").glob("*.parquet"))


def test_parquet_both_layouts(rules, cohort, parquet_cohort) -> None:
    _, facts = cohort
    long_path, per_table = parquet_cohort
    got = load_facts(rules, [long_path])
    assert {(f.pred, f.args) for f in got.facts} == {(f.pred, f.args) for f in facts.facts}
    weights = next(p for p in per_table if p.stem == "weight_kg")
    assert duckdb.connect().execute(f"DESCRIBE SELECT * FROM '{weights}'").fetchall()[1][1] == "DOUBLE"
    got_w = load_facts(rules, [weights])
    assert {f.args for f in got_w.facts} == {f.args for f in facts.facts if f.pred == "weight_kg"}


def test_duckdb_reads_parquet_itself_with_the_same_report(parquet_cohort, tmp_path) -> None:
    """Both layouts, typed columns too: DuckDB stages Parquet the way it stages CSV, and
    the report and rule counts are pyDatalog's, byte for byte."""
    long_path, per_table = parquet_cohort
    runner = CliRunner()

    def report(engine: str, *paths: Path, stream: str = "--stream") -> tuple[str, str]:
        counts = tmp_path / f"counts-{engine}.csv"
        result = runner.invoke(main, ["recommend", "--format", "csv", "--engine", engine, "--chunk-size", "50",
                                      stream, "--rule-counts", str(counts), *map(str, paths)])
        assert result.exit_code == 0, result.output
        return result.output, counts.read_text()

    reference = report("pydatalog", long_path)
    assert report("duckdb", long_path) == reference
    assert len(per_table) > 5
    # one file per predicate mentions each patient in every file: pyDatalog reads them whole
    assert report("duckdb", *per_table) == report("pydatalog", *per_table, stream="--no-stream")
    assert report("duckdb", *per_table)[1] == reference[1]


def test_integer_patient_ids_in_parquet_read_as_ids_by_either_engine(tmp_path) -> None:
    """Registries often number their patients: an INTEGER id column reads as the ids
    "17", "18" (as the same cells would in CSV), through either engine."""
    con = duckdb.connect()
    con.execute("CREATE TABLE w (p INTEGER, kg DOUBLE)")
    con.execute("INSERT INTO w VALUES (17, 70.0), (18, 80.5)")
    con.execute(f"COPY w TO '{tmp_path / 'weight_kg.parquet'}' (FORMAT parquet)")
    con.execute("CREATE TABLE t (p BIGINT, c DOUBLE)")
    con.execute("INSERT INTO t VALUES (17, 38.0), (18, 37.9)")
    con.execute(f"COPY t TO '{tmp_path / 'temperature_c.parquet'}' (FORMAT parquet)")
    files = [str(tmp_path / "weight_kg.parquet"), str(tmp_path / "temperature_c.parquet")]
    outputs = []
    # one file per predicate: pyDatalog reads them whole, DuckDB reads the Parquet itself
    for engine, stream in (("pydatalog", "--no-stream"), ("duckdb", "--stream")):
        result = CliRunner().invoke(main, ["recommend", "--format", "csv", "--engine", engine, stream, *files])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    grades = {row["patient"]: row["crs_grade"] for row in csv.DictReader(outputs[0].splitlines())}
    assert grades == {"17": "1", "18": "0"}  # exactly 38.0 C is fever (grade 1); 37.9 C is not


BAD_PARQUET = [
    # (rows after the header row, the row at fault, code, words)
    ([("weight_kg", "p1", "70"), ("temperature_c", "p1", "389")], 2, "E005", "valid range"),
    ([("weight_kg", "p1", "70"), ("weight_kg", "p2", "seventy")], 2, "E004", "expected a number"),
    ([("weight_kg", "p1", "70"), ("wieght_kg", "p2", "70")], 2, "E002", "unknown predicate"),
]


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
@pytest.mark.parametrize("rows,line,code,words", BAD_PARQUET, ids=["range", "number", "unknown"])
def test_a_bad_parquet_row_is_located_by_either_engine(tmp_path, engine, rows, line, code, words) -> None:
    path = tmp_path / "bad.parquet"
    con = duckdb.connect()
    con.execute("CREATE TABLE t (predicate VARCHAR, arg1 VARCHAR, arg2 VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    result = CliRunner().invoke(main, ["recommend", "--engine", engine, str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:{line}:1: error[{code}]") and words in first, result.output


TYPED_ID_CELLS = [
    # (SQL type and value of the patient-id cell, what the message shows)
    ("DOUBLE", "17.0", "expected an id, got 17.0"),
    ("BOOLEAN", "true", "expected an id, got True"),
]


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
@pytest.mark.parametrize("layout", ["long", "per-predicate"])
@pytest.mark.parametrize("sql_type,cell,words", TYPED_ID_CELLS, ids=["double", "boolean"])
def test_a_typed_parquet_id_is_refused_by_either_engine(tmp_path, engine, layout, sql_type, cell, words) -> None:
    """Read as text, a DOUBLE 17.0 would become the id "17.0" and a BOOLEAN the id
    "true": a guess. Both engines refuse the cell at its row instead."""
    con = duckdb.connect()
    if layout == "long":
        path = tmp_path / "cohort.parquet"
        columns = f"'weight_kg' AS predicate, CAST({cell} AS {sql_type}) AS arg1, 80.0 AS arg2"
    else:
        path = tmp_path / "weight_kg.parquet"
        columns = f"CAST({cell} AS {sql_type}) AS p, 80.0 AS kg"
    con.execute(f"COPY (SELECT {columns}) TO '{path}' (FORMAT parquet)")
    args = ["recommend", "--format", "csv", "--engine", engine, str(path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{path}:1:1: error[E004]: weight_kg argument p: {words}" in result.output
    assert "patient,crs_grade" not in result.output  # nothing on stdout before the error


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_bad_input_leaves_no_output_file(tmp_path, engine) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("predicate,arg1,arg2\nweight_kg,p1,70\nweight_kg,p2,-5\n")
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        result = CliRunner().invoke(main, ["recommend", "--engine", engine, "--format", fmt, "-o", str(out), str(bad)])
        assert result.exit_code == 2, result.output
        assert f"{bad}:3:1: error[E005]" in result.output
        assert list(tmp_path.glob("out.*")) == []


def test_jobs_and_streaming_give_the_same_bytes(cohort) -> None:
    base, _ = cohort
    runner = CliRunner()
    outputs = []
    for args in (["--no-stream"], ["--jobs", "2", "--chunk-size", "17"], ["--chunk-size", "7"]):
        result = runner.invoke(main, ["recommend", "--format", "csv", *args, str(base / "long.csv")])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] == outputs[2]
    from_facts = runner.invoke(main, ["recommend", "--format", "csv", str(base / "c.facts")])
    assert sorted(from_facts.output.splitlines()) == sorted(outputs[0].splitlines())


def test_text_report_is_the_same_bytes_whatever_the_chunks_and_engine() -> None:
    """One blank line between two patients, also where one chunk ends and the next begins."""
    runner = CliRunner()
    facts = str(ROOT / "facts")
    whole = runner.invoke(main, ["recommend", facts]).output
    assert whole.count("\nPatient ") == whole.count("\n\nPatient ") > 10
    for args in (["--chunk-size", "7"], ["--jobs", "2", "--chunk-size", "13"], ["--engine", "duckdb"],
                 ["--engine", "duckdb", "--chunk-size", "40"],
                 ["--engine", "duckdb", "--jobs", "2", "--chunk-size", "60"]):
        assert runner.invoke(main, ["recommend", *args, facts]).output == whole, args


def test_why_picks_one_patient_out_of_a_streamed_cohort(cohort, tmp_path) -> None:
    """`why` over a CSV cohort reads only the named patient's facts into the engine, and
    proves the same as over the whole .facts file; every row is still checked."""
    base, facts = cohort
    runner = CliRunner()
    patient = sorted({f.args[0] for f in facts.facts if f.pred == "weight_kg"})[60]
    goal = f"recommend({patient}, A)"
    origins = re.compile(r"\S+\.(csv|facts):\d+:\d+")
    streamed = runner.invoke(main, ["why", goal, str(base / "long.csv")])
    whole = runner.invoke(main, ["why", goal, str(base / "c.facts")])
    assert streamed.exit_code == whole.exit_code == 0, streamed.output + whole.output
    assert f"recommend({patient}, " in streamed.output and "long.csv:" in streamed.output
    assert origins.sub("ORIGIN", streamed.output) == origins.sub("ORIGIN", whole.output)
    bad = tmp_path / "bad.csv"
    lines = (base / "long.csv").read_text().splitlines()
    bad.write_text("\n".join(lines + ["temperature_c,zz_last,389"]) + "\n")
    refused = runner.invoke(main, ["why", goal, str(bad)])
    assert refused.exit_code == 2 and f"{bad}:{len(lines) + 1}:1: error[E005]" in refused.output


def test_why_keeps_every_patient_when_rules_join_patients(tmp_path) -> None:
    """A rule set that is not patient-local (W107) cannot be narrowed to the named patient:
    heavier(p1, p2) needs p2's weight too."""
    rules = tmp_path / "r.dl"
    rules.write_text('.decl weight_kg(p: id, kg: number[1, 400] "kg") input one "body weight"\n'
                     '.decl heavier(p: id, q: id) output "p weighs more than q"\n'
                     "heavier(P, Q) :- weight_kg(P, A), weight_kg(Q, B), A > B.\n")
    for name, text in (("f.facts", "weight_kg(p1, 80).\nweight_kg(p2, 70).\n"),
                       ("f.csv", "predicate,arg1,arg2\nweight_kg,p1,80\nweight_kg,p2,70\n")):
        (tmp_path / name).write_text(text)
        for command, expected in ((["why", "heavier(p1, Q)"], "weight_kg(p2, 70)"),
                                  (["why-not", "heavier(p2, p1)"], "A = 70; B = 80; 70 > 80 is false")):
            result = CliRunner().invoke(main, [*command, "--rules", str(rules), str(tmp_path / name)])
            assert result.exit_code == 0, result.output
            assert expected in result.output, result.output


def test_proofs_from_workers_point_at_the_same_lines(cohort) -> None:
    # chunks travel to workers in a packed form: the facts' file:line must survive it
    base, _ = cohort
    runner = CliRunner()
    one = runner.invoke(main, ["recommend", "--explain", "--chunk-size", "9", str(base / "long.csv")])
    two = runner.invoke(main, ["recommend", "--explain", "--chunk-size", "9", "--jobs", "2", str(base / "long.csv")])
    assert one.exit_code == two.exit_code == 0, one.output + two.output
    assert one.output == two.output
    assert re.search(r"long\.csv:\d+:1", two.output)


def test_parquet_output_and_rule_counts(cohort, tmp_path) -> None:
    base, facts = cohort
    out, counts = tmp_path / "r.parquet", tmp_path / "counts.csv"
    result = CliRunner().invoke(main, ["recommend", "--format", "parquet", "-o", str(out), "--rule-counts",
                                       str(counts), "--jobs", "2", str(base / "long.csv")])
    assert result.exit_code == 0, result.output
    rows = duckdb.connect().execute(f"SELECT count(DISTINCT patient), count(*) FROM '{out}'").fetchone()
    assert rows[0] == 120 and rows[1] > 120
    table = {row["rule"]: row for row in csv.DictReader(open(counts))}
    assert int(table["patient.from.weight"]["patients"]) == len({f.args[0] for f in facts.facts
                                                                 if f.pred == "weight_kg"})
    assert all(int(r["patients"]) <= 120 for r in table.values())


def test_json_output_is_deterministic_with_jobs(cohort) -> None:
    base, _ = cohort
    runner = CliRunner()
    a = runner.invoke(main, ["recommend", "--format", "json", str(base / "long.csv")]).output
    b = runner.invoke(main, ["recommend", "--format", "json", "--jobs", "2", str(base / "long.csv")]).output
    c = runner.invoke(main, ["recommend", "--format", "json", "--engine", "duckdb", "--jobs", "2", "--chunk-size", "50",
                             str(base / "long.csv")]).output
    assert a == b == c and len(json.loads(a)["patients"]) == 120


def test_duckdb_engine_gives_the_same_report_rows(cohort) -> None:
    base, _ = cohort
    runner = CliRunner()

    def rows(*args: str) -> tuple[str, str]:
        counts = base / f"counts{len(args)}.csv"
        result = runner.invoke(main, ["recommend", "--format", "csv", "--rule-counts", str(counts), *args,
                                      str(base / "long.csv")])
        assert result.exit_code == 0, result.output
        return result.output, counts.read_text()

    duck_rows, duck_counts = rows("--engine", "duckdb")
    rows_, counts_ = rows()
    assert duck_rows == rows_  # every column, the rules and sources behind each row too
    assert duck_counts == counts_
    assert rows("--engine", "duckdb", "--chunk-size", "7") == (rows_, counts_)  # 18 partitions
    assert rows("--jobs", "2", "--chunk-size", "7") == (rows_, counts_)
    # CSV rows made in SQL (report_sql) whatever --jobs says; the JSON test above has
    # reports built in worker processes while DuckDB evaluates the next partitions
    assert rows("--engine", "duckdb", "--jobs", "2", "--chunk-size", "30") == (rows_, counts_)
    fired = [int(row["patients"]) for row in csv.DictReader(counts_.splitlines())]
    assert 0 in fired and max(fired) > 1  # a real table: some rules fired for many patients, some never
    query = runner.invoke(main, ["query", "--engine", "duckdb", "--format", "json", "crs_grade(P, G)",
                                 str(base / "long.csv")])
    plain = runner.invoke(main, ["query", "--format", "json", "crs_grade(P, G)", str(base / "long.csv")])
    assert query.output == plain.output
    refused = runner.invoke(main, ["recommend", "--engine", "duckdb", "--explain", str(base / "long.csv")])
    assert refused.exit_code == 2 and "only the pyDatalog engine" in refused.output


BAD_CSV = [
    # (content, line, code, words in the message): what a spreadsheet export can get wrong
    (b'predicate,arg1,arg2\nweight_kg,p1,"70\n', 2, "E015", "malformed CSV"),
    (b"predicate,arg1,arg2\nweight_kg,p1,70\nweight_kg,p2,7\xff0\n", 3, "E015", "not UTF-8"),
    (b"predicate,arg1,arg2\nweight_kg,p1,70,5\n", 2, "E003", "takes 2 arguments"),
    (b'predicate,arg1,arg2\nweight_kg,p1,70\n"weight_kg\nx",p2,70\n', 3, "E002", "unknown predicate"),
    (b"predicate,arg1,arg2\nweight_kg,p1,70\ntemperature_c,p1,389\n", 3, "E005", "valid range"),
]


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
@pytest.mark.parametrize("content,line,code,words", BAD_CSV, ids=["quote", "utf8", "wide", "newline", "range"])
def test_a_bad_cohort_csv_is_located_by_either_engine(tmp_path, engine, content, line, code, words) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["recommend", "--engine", engine, str(path)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:{line}:1: error[{code}]") and words in first, result.output


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_a_byte_order_mark_is_read_past(tmp_path, engine) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfpredicate,arg1,arg2\nweight_kg,p1,70\ntemperature_c,p1,38.0\n")
    result = CliRunner().invoke(main, ["recommend", "--format", "csv", "--engine", engine, str(path)])
    assert result.exit_code == 0, result.output
    assert "p1,1," in result.output  # exactly 38.0 C is fever: grade 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("engine", ["pydatalog", "duckdb"])
def test_progress_bar_counts_patients_on_a_terminal_only(rules, monkeypatch, engine) -> None:
    """A bar on stderr when it is a terminal, counting patients as chunks come back
    (from worker processes too); nothing when stderr is a file or a pipe."""
    from reasoner.io.facts import chunks
    from reasoner.engines.parallel import map_chunks, map_models
    from reasoner.engines.sql import DuckDBEngine

    facts = load_facts(rules, [ROOT / "facts" / "cohort.facts"])
    total = len(facts.patients(rules))

    def run() -> list:
        if engine == "pydatalog":
            return list(map_chunks(rules, chunks(rules, facts, 70), lambda r, m: len(m.facts["patient"]), jobs=2,
                                   total=total, progress=True))
        duck = DuckDBEngine(rules)
        return list(map_models(rules, (duck.evaluate(c) for c in chunks(rules, facts, 70)),
                               lambda r, m: len(m.facts["patient"]), jobs=2, total=total, progress=True))

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert sum(run()) == total == 200
    shown = terminal.getvalue()
    assert "patients" in shown and f"70/{total}" in shown and f"{total}/{total}" in shown
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    assert sum(run()) == total
    assert plain.getvalue() == ""


# ----------------------------------------------------------------------------- report rows in SQL
def test_sql_report_rows_with_awkward_patient_ids(rules, cohort, tmp_path) -> None:
    """Ids that sort differently as text and as numbers (ASCII and Arabic-Indic digits),
    and ids a CSV writer must quote: the rows DuckDB makes in SQL are the bytes
    pyDatalog's Python report gives."""
    _, facts = cohort
    ids = sorted({f.args[0] for f in facts.facts}, key=lambda p: (len(p), p))
    awkward = ["p10", "p9", "p09", "p1a", "12b", "a,b", 'q"1', "p 3", "p-4", "P5", "p\u0661\u0660", "p\u0662"]
    rename = {old: awkward[i] if i < len(awkward) else old for i, old in enumerate(ids)}
    path = tmp_path / "awkward.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        for f in facts.facts:
            writer.writerow([f.pred, rename[f.args[0]], *f.args[1:], *[""] * (4 - len(f.args))])
    outputs = []
    for engine in ("pydatalog", "duckdb"):
        # one chunk: patients are ordered within a chunk, and the file is not in that order
        result = CliRunner().invoke(main, ["recommend", "--format", "csv", "--engine", engine, "--chunk-size", "1000",
                                           str(path)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    patients = list(dict.fromkeys(row["patient"] for row in csv.DictReader(io.StringIO(outputs[1]))))
    assert patients.index("p09") < patients.index("p9") < patients.index("p10")  # a tie on 9: by the text
    # natural order reads any decimal digits as numbers, as Python's int() does: p٢ is p2, p١٠ ties p10
    assert patients.index("p\u0662") < patients.index("p9") < patients.index("p10") < patients.index("p\u0661\u0660")
    assert {"a,b", 'q"1'} <= set(patients)


def test_sql_report_declines_other_typings_and_python_takes_over(tmp_path) -> None:
    """A rule set in the CRS report vocabulary but with a number where the SQL report
    expects a symbol (a dose frequency in times a day): the partition's report is built
    in Python instead, with the same rows as pyDatalog's."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "main.dl").write_text(
        ".decl weight_kg(p: id, kg: number[1, 400]) input one\n"
        ".decl crs_grade(p: id, g: integer[0, 4]) output\n"
        ".decl indicated(p: id, a: symbol) internal\n"
        ".decl contraindicated(p: id, a: symbol, r: symbol) output\n"
        ".decl recommend(p: id, a: symbol) output\n"
        ".decl conflict(p: id, a: symbol, r: symbol) output\n"
        ".decl dose_frequency(p: id, a: symbol, per_day: number[0, 24]) output\n"
        "@id grade\ncrs_grade(P, 1) :- weight_kg(P, _).\n"
        "@id fluids\nindicated(P, fluids) :- weight_kg(P, _).\n"
        "@id fluids.per_day\ndose_frequency(P, fluids, 3) :- indicated(P, fluids).\n"
        "@id heavy\ncontraindicated(P, fluids, heavy) :- weight_kg(P, W), W > 150.\n"
        "@id recommend\nrecommend(P, A) :- indicated(P, A), !contraindicated(P, A, _).\n"
        "@id conflict\nconflict(P, A, R) :- indicated(P, A), contraindicated(P, A, R).\n")
    facts = tmp_path / "w.csv"
    facts.write_text("predicate,arg1,arg2\nweight_kg,p2,70\nweight_kg,p10,160\n")
    from reasoner.domains.crs.report_sql import sql_csv
    from reasoner.engines.sql import DuckDBEngine
    ruleset = load_rules(rules_dir)
    (result,) = DuckDBEngine(ruleset, firings=True).evaluate_csv_partitioned([facts])
    assert sql_csv(ruleset, result) is None
    outputs = []
    for engine in ("pydatalog", "duckdb"):
        got = CliRunner().invoke(main, ["recommend", "--rules", str(rules_dir), "--format", "csv", "--engine", engine,
                                        str(facts)])
        assert got.exit_code == 0, got.output
        outputs.append(got.output)
    assert outputs[0] == outputs[1]
    assert "p2,1,,,recommend,fluids,,,3," in outputs[1] and "p10,1,,,conflict,fluids,heavy" in outputs[1]


def test_a_run_stopped_midway_leaves_no_half_written_report(cohort, tmp_path, monkeypatch) -> None:
    """A run that stops after some chunks were written (here: the second chunk hits the
    time limit) exits 2 and removes its output file: a partial report never passes for a
    whole one."""
    from reasoner.language.errors import EvaluationLimit
    from reasoner.render import recommend
    base, _ = cohort
    real, calls = recommend.chunk_output, []

    def second_chunk_too_slow(*args):
        calls.append(1)
        if len(calls) == 2:
            raise EvaluationLimit("evaluation stopped after 1 s (time limit)")
        return real(*args)
    monkeypatch.setattr(recommend, "chunk_output", second_chunk_too_slow)
    for fmt in ("csv", "parquet"):
        calls.clear()
        out = tmp_path / f"report.{fmt}"
        result = CliRunner().invoke(main, ["recommend", "--format", fmt, "--chunk-size", "30", "-o", str(out),
                                           str(base / "long.csv")])
        assert result.exit_code == 2 and "time limit" in result.output, result.output
        assert len(calls) == 2 and list(tmp_path.glob("report.*")) == []


@pytest.mark.parametrize("total,shown", [(None, "120"), (200, "120/200")])
def test_progress_bar_counts_patients_with_or_without_a_total(monkeypatch, total, shown) -> None:
    """A streamed cohort's size is not known up front: the bar then counts patients
    (it used to print "120/0")."""
    from reasoner.engines.parallel import progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with progress_bar(total, True) as advance:
        assert advance is not None
        advance(50)
        advance(70)
    import click
    last = click.unstyle(err.getvalue()).replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("patients") and last.rstrip().endswith(shown), last


def test_sql_report_declines_a_report_predicate_without_patient_numbers(rules, cohort, tmp_path) -> None:
    """Inside a partition patients are numbers. Were one report predicate's patient column
    left as text (its class reached by something not a patient), rows made in SQL would
    mix numbers and ids: the SQL report declines, and Python builds the rows from the
    decoded model instead."""
    from reasoner.domains.crs.report_sql import sql_csv
    from reasoner.engines.sql import DuckDBEngine
    from reasoner.io.duckdb_inputs import write_fact_csv
    from reasoner.io.sqltext import KEY, SYM
    _, facts = cohort
    path = tmp_path / "c.csv"
    write_fact_csv(path, facts.facts)

    def task(result, turn):
        assert result.engine.patient_coded
        kinds = result.engine.kinds["warning"]
        made = sql_csv(rules, result)
        kinds[0] = SYM
        try:
            return made, sql_csv(rules, result)
        finally:
            kinds[0] = KEY
    ((made, declined),) = list(DuckDBEngine(rules, firings=True).map_partitions(path, task, patients=10**6,
                                                                               workers=1))
    assert made and made.count("\n") > 10 and declined is None


def test_sql_report_declines_more_rules_than_a_mask_holds(rules, cohort, tmp_path, monkeypatch) -> None:
    """In SQL the rules behind a fact are a mask with a bit per rule concluding its
    predicate. A rule set with more such rules than the mask holds (here: the mask made
    one bit too small for the CRS rules) gets its report rows from Python: the same bytes."""
    from reasoner.domains.crs import report_sql
    from reasoner.domains.crs.report import SUPPORTED
    from reasoner.engines.sql import DuckDBEngine
    base, _ = cohort
    most = max(sum(1 for r in rules.rules if r.head is not None and r.head.pred == p) for p in SUPPORTED)
    args = ["recommend", "--engine", "duckdb", "--format", "csv", str(base / "long.csv")]
    in_sql = CliRunner().invoke(main, args)
    monkeypatch.setattr(report_sql, "_MASK_BITS", most - 1)
    declined = list(DuckDBEngine(rules, firings=True).map_partitions(
        base / "long.csv", lambda result, turn: report_sql.sql_csv(rules, result), patients=10**6, workers=1))
    assert declined == [None]
    in_python = CliRunner().invoke(main, args)
    assert in_sql.exit_code == in_python.exit_code == 0, in_sql.output + in_python.output
    assert in_sql.output.count("\n") > 120 and in_sql.output == in_python.output


@pytest.mark.parametrize("ids", [
    ["c10", "c9", "c010", "c1", "c0001", "c100000000000000000"],  # one text, one number: sorted in SQL
    ["10", "9", "010", "0"],
    ["p2", "q1", "p10"],  # two texts
    ["a1b2", "a1b10", "a2b1"],  # digits inside
    ["c\u0661\u0662", "c12", "c\u06613"],  # Arabic-Indic digits, which Python's re counts as digits
    ["c1234567890123456789", "c999"],  # a number longer than a BIGINT
])
def test_patients_sort_in_the_python_reports_natural_order(ids, tmp_path) -> None:
    """Each partition's patients take the place `model.value_key` gives them, the Python
    report's order, whether SQL sorts them (ids of one text and one number) or Python does."""
    from reasoner.domains.crs.report_sql import _sorted_patients
    from reasoner.engines.model import value_key
    con = duckdb.connect()
    con.execute("CREATE TABLE pts (p VARCHAR, key VARCHAR)")
    con.executemany("INSERT INTO pts VALUES (?, ?)", [(k, k) for k in ids])
    _sorted_patients(con, "SELECT p, key FROM pts", coded=False)
    got = [key for (key,) in con.execute("SELECT key FROM _patients_sorted ORDER BY ord").fetchall()]
    places = [ord_ for (ord_,) in con.execute("SELECT ord FROM _patients_sorted ORDER BY ord").fetchall()]
    assert got == sorted(ids, key=value_key) and places == list(range(len(ids)))


def test_the_rules_behind_each_fact_grouped_per_constant_or_not() -> None:
    """`report_sql._masks`: the mask of the rules behind each fact, from the firing
    tables. Rules that all conclude a constant action are grouped per action; a rule
    with a variable action stops the grouping. Both give the masks worked out by hand."""
    from reasoner.domains.crs import report_sql
    from reasoner.engines.sql import DuckDBEngine
    decls = ('.decl s(p: id, d: symbol) input "s"\n.decl indicated(p: id, d: symbol) output "i"\n'
             'indicated(P, "a") :- s(P, "x").\nindicated(P, "a") :- s(P, "y").\nindicated(P, "b") :- s(P, "y").\n')
    rows = [("p1", "x"), ("p1", "y"), ("p2", "a")]
    for extra, expected in (
            ("", {("p1", "a"): 0b011, ("p1", "b"): 0b100}),  # grouped by the action
            ("indicated(P, D) :- s(P, D).\n", {("p1", "a"): 0b011, ("p1", "b"): 0b100, ("p1", "x"): 0b1000,
                                                ("p1", "y"): 0b1000, ("p2", "a"): 0b1000})):
        rules = load_rules(text=decls + extra)
        engine = DuckDBEngine(rules, firings=True)
        with engine.evaluate_tables({"s": rows}) as result:
            live = [(b, i) for b, i in enumerate(range(len(rules.rules)))]
            sql = report_sql._masks(engine, live, 2)
            assert sql.count("GROUP BY") == (2 if extra == "" else 1)  # one per action, or one in all
            got = {(p, d): combo for p, d, combo in result.con.execute(sql).fetchall()}
        assert got == expected


def test_ids_with_digit_runs_too_long_for_an_int_still_sort_in_number_order() -> None:
    # an id with 4,400 digits was an internal error (Python turns at most 4,300 into an int)
    from reasoner.engines.model import value_key
    huge = ["p" + "9" * 4400, "p1" + "0" * 4400, "p" + "0" * 5 + "9" * 4400, "p12", "p٣", "p0007"]
    ordered = sorted(huge, key=value_key)
    # equal numbers (leading zeros) are put in the order of their text, as for short ones
    assert ordered == ["p٣", "p0007", "p12", "p" + "0" * 5 + "9" * 4400, "p" + "9" * 4400, "p1" + "0" * 4400]
