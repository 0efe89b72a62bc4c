"""`recommend --engine duckdb --format parquet`: each partition's rows made in SQL
(`report_sql.sql_parquet`) and appended, in partition order, to the Parquet file as row
groups (`render.recommend.ParquetReport`, pyarrow). The file must hold exactly what
converting the CSV report gives (`csv_to_parquet`): the same rows in the same order, the
same columns and types, an empty field as NULL."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from reasoner.cli import main
from reasoner.domains.crs import report_sql
from reasoner.render import recommend

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate_patients  # noqa: E402

# ids the CSV writer quotes (comma, quote), one with a space, and in natural order
# across the partitions (p9 before p10)
ODD_IDS = {"c0001": "p,1", "c0002": 'p"2', "c0003": "p 3", "c0004": "p9", "c0005": "p10"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """90 generated patients as a long CSV, five of them renamed to ODD_IDS."""
    base = tmp_path_factory.mktemp("pq")
    path = base / "long.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        for line in _facts(generate_patients(90, seed=11)):
            pred, args = line
            args = [ODD_IDS.get(args[0], args[0]), *args[1:]]
            writer.writerow([pred, *args, *[""] * (4 - len(args))])
    return path


def _facts(text: str) -> list[tuple[str, list[str]]]:
    """The facts of generate_patients' text as (pred, [args as the CSV writes them])."""
    from reasoner import load_facts, load_rules
    facts = load_facts(load_rules(), text=text)
    return [(f.pred, [str(a) for a in f.args]) for f in facts.facts]


def _run(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["recommend", "--engine", "duckdb", *args])
    assert result.exit_code == 0, result.output


def _rows(path: Path) -> tuple[list, list]:
    con = duckdb.connect()
    return (con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall(),
            con.execute(f"SELECT * FROM '{path}'").fetchall())


def _via_csv(cohort: Path, tmp_path: Path, size: str) -> tuple[list, list]:
    """The Parquet file the CSV report (partitions of `size` patients) converts to: the reference."""
    text = tmp_path / "ref.csv"
    _run(["--format", "csv", "--chunk-size", size, "-o", str(text), str(cohort)])
    reference = tmp_path / "ref.parquet"
    recommend.csv_to_parquet(str(text), str(reference))
    return _rows(reference)


@pytest.mark.parametrize("size", ["7", "40", "1000"])
def test_parquet_from_sql_is_the_converted_csv(cohort: Path, tmp_path: Path, size: str) -> None:
    out, counts, ref_counts = tmp_path / "r.parquet", tmp_path / "c.csv", tmp_path / "rc.csv"
    _run(["--format", "parquet", "--chunk-size", size, "-o", str(out), "--rule-counts", str(counts), str(cohort)])
    _run(["--format", "csv", "-o", str(tmp_path / "x.csv"), "--rule-counts", str(ref_counts), str(cohort)])
    schema, rows = _rows(out)
    ref_schema, ref_rows = _via_csv(cohort, tmp_path, size)
    assert schema == ref_schema
    assert rows == ref_rows and len({r[0] for r in rows}) == 90
    assert {r[0] for r in rows} >= set(ODD_IDS.values())
    assert any(r[5] is None for r in rows) and any(r[7] is not None for r in rows)  # NULLs and doses both occur
    assert counts.read_bytes() == ref_counts.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.parquet", "c.csv", "rc.csv", "x.csv",
                                                                 "ref.parquet"])  # no part left behind


def test_more_workers_than_cores_give_the_same_file(cohort: Path, tmp_path: Path, monkeypatch) -> None:
    """Four partitions side by side, each appending its rows in its turn: the same file as
    one partition at a time."""
    from reasoner.engines import cohort as cohorts
    out1, out4 = tmp_path / "one.parquet", tmp_path / "four.parquet"
    monkeypatch.setattr(cohorts, "cores", lambda: 1)
    _run(["--format", "parquet", "--chunk-size", "7", "-o", str(out1), str(cohort)])
    monkeypatch.setattr(cohorts, "cores", lambda: 4)
    for _ in range(3):
        _run(["--format", "parquet", "--chunk-size", "7", "-o", str(out4), str(cohort)])
        assert _rows(out4) == _rows(out1)


def test_a_partition_sql_declines_is_converted_from_its_csv(cohort: Path, tmp_path: Path, monkeypatch) -> None:
    """Where the report predicates are typed otherwise (sql_parquet answers False), the
    partition's CSV text is converted instead: the same file."""
    calls = []

    def declines(rules, result, sink, turn) -> bool:
        calls.append(sink)
        return False
    monkeypatch.setattr(report_sql, "sql_parquet", declines)
    out = tmp_path / "r.parquet"
    _run(["--format", "parquet", "--chunk-size", "40", "-o", str(out), str(cohort)])
    assert len(calls) == 3 and len(set(calls)) == 1  # one file, appended to partition by partition
    assert _rows(out) == _via_csv(cohort, tmp_path, "40")


def test_a_failing_partition_leaves_no_file(cohort: Path, tmp_path: Path, monkeypatch) -> None:
    from reasoner.language.errors import EvaluationLimit
    real, calls = report_sql.sql_parquet, []

    def second_too_slow(rules, result, path, turn) -> bool:
        calls.append(path)
        if len(calls) == 2:
            raise EvaluationLimit("evaluation stopped after 1 s (time limit)")
        return real(rules, result, path, turn)
    monkeypatch.setattr(report_sql, "sql_parquet", second_too_slow)
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["recommend", "--engine", "duckdb", "--format", "parquet", "--chunk-size", "40",
                                       "-o", str(out), str(cohort)])
    assert result.exit_code == 2 and "time limit" in result.output, result.output
    assert len(calls) == 2 and list(out.parent.iterdir()) == []


def test_the_sql_columns_are_the_reports() -> None:
    assert report_sql.CSV_COLUMNS == recommend.CSV_COLUMNS


def test_a_cohort_without_patients_gives_the_columns_and_no_leftover(tmp_path: Path) -> None:
    """No partition appends a row: the file is the CSV header converted (the columns,
    typed, no rows), and nothing else is left in the folder."""
    empty = tmp_path / "in" / "empty.csv"
    empty.parent.mkdir()
    empty.write_text("predicate,arg1,arg2\n")
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    _run(["--format", "parquet", "-o", str(out), str(empty)])
    schema, rows = _rows(out)
    assert rows == [] and [c[0] for c in schema] == recommend.CSV_COLUMNS
    assert dict((c[0], c[1]) for c in schema)["dose_mg"] == "DOUBLE"
    assert list(out.parent.iterdir()) == [out]
