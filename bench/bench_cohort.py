"""Benchmark: cohort scale, side by side in one run — pyDatalog chunked with 1 and 2
worker processes, and DuckDB — for N = 1k, 10k, 100k and 1M patients, skipping a size
that would take more than --max-seconds for an engine (judged from its last rate).

Not a test: run it by hand and copy the table into the README.

    python bench/bench_cohort.py
    python bench/bench_cohort.py --sizes 1000 10000 --max-seconds 120
    python bench/bench_cohort.py --sizes 1000000 --engines cli-duckdb --repeat 3

Every engine reads the same long-layout CSV cohort (bench_duckdb.write_cohort, written
once per size and not timed), checks every fact against the declarations, evaluates
the CRS rule set, and counts the answers of crs_grade and recommend. Each (engine,
size) runs in its own process, so the peak memory (ru_maxrss) is its own. "DuckDB +
firings" also keeps every rule's firings in SQL tables (what `recommend --engine duckdb`
asks for). The "CLI duckdb" row times that whole command, `reasoner recommend --engine
duckdb --format parquet --rule-counts`, whose report rows are made in SQL (answers
counted from its Parquet output).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _answers(rules, model) -> int:
    return len(model.tuples("crs_grade")) + len(model.tuples("recommend"))


def run_pydatalog(csv_path: Path, jobs: int) -> dict:
    from reasoner import load_rules
    from reasoner.io.facts import stream_chunks, validate_stream
    from reasoner.engines.parallel import map_chunks

    t0 = time.perf_counter()
    rules = load_rules(ROOT / "rules" / "crs")
    facts = validate_stream(rules, [csv_path])
    answers = sum(map_chunks(rules, stream_chunks(rules, [csv_path], 50), _answers, jobs=jobs))
    wall = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"facts": facts, "answers": answers, "seconds": wall, "peak_mb": max(own, children) / 1024}


def run_duckdb(csv_path: Path, firings: bool) -> dict:
    from reasoner import load_rules
    from reasoner.engines.sql import DuckDBEngine

    t0 = time.perf_counter()
    rules = load_rules(ROOT / "rules" / "crs")
    # with firings, as `reasoner recommend --engine duckdb` runs: every rule's firings
    # kept too, for the rules column of the report and --rule-counts
    engine = DuckDBEngine(rules, firings=firings)
    answers = 0
    # read and checked whole into a database file, then evaluated 100,000 patients at a
    # time with DuckDB held to its default 512 MB: memory flat in the cohort's size
    for result in engine.evaluate_csv_partitioned(csv_path, patients=100_000):
        answers += result.count("crs_grade") + result.count("recommend")
    wall = time.perf_counter() - t0
    return {"facts": None, "answers": answers, "seconds": wall,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_cli(csv_path: Path, jobs: int) -> dict:
    """`reasoner recommend --engine duckdb` as a researcher runs it: Parquet rows with
    their rules and sources, and the rule counts. Answers are read back from the output."""
    import duckdb

    with tempfile.TemporaryDirectory() as folder:
        out, counts = Path(folder) / "report.parquet", Path(folder) / "counts.csv"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reasoner", "recommend", "--engine", "duckdb", "--jobs", str(jobs),
                        "--format", "parquet", "-o", str(out), "--rule-counts", str(counts), str(csv_path)],
                       check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        (answers,) = duckdb.connect().execute(
            "SELECT count(*) FILTER (kind = 'grade' AND crs_grade IS NOT NULL) + count(*) FILTER (kind = 'recommend') "
            "FROM read_parquet(?)", [str(out)]).fetchone()
    # the largest process of the run (the main one or a worker), not their sum
    return {"facts": None, "answers": answers, "seconds": wall,
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "reasoner-bench")
    parser.add_argument("--engines", nargs="+", choices=["pydatalog", "duckdb", "duckdb-firings", "cli-duckdb"],
                        help="only these engines (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each (engine, size), one after another: this machine's speed varies by the hour")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # child: engine, jobs, csv
    args = parser.parse_args()
    if args.one:
        engine, jobs, path = args.one
        if engine == "pydatalog":
            result = run_pydatalog(Path(path), int(jobs))
        elif engine == "cli-duckdb":
            result = run_cli(Path(path), int(jobs))
        else:
            result = run_duckdb(Path(path), firings=engine == "duckdb-firings")
        print(json.dumps(result))
        return
    from bench_duckdb import write_cohort

    args.data.mkdir(parents=True, exist_ok=True)
    engines = [("pyDatalog, 1 job", "pydatalog", 1), ("pyDatalog, 2 jobs", "pydatalog", 2), ("DuckDB", "duckdb", 1),
               ("DuckDB + firings", "duckdb-firings", 1), ("CLI duckdb", "cli-duckdb", 1)]
    engines = [e for e in engines if args.engines is None or e[1] in args.engines]
    # (the CLI's Parquet rows are made in SQL by DuckDB's threads: --jobs changes nothing there)
    rate: dict[str, float] = {}
    # the date and cores, to tell runs apart: this machine's speed has varied 2-3x between days
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores")
    print(f"{'engine':<19} {'patients':>9} {'seconds':>8} {'patients/s':>11} {'peak MB':>8} {'answers':>9}")
    for n in sorted(args.sizes):
        path = args.data / f"cohort-{n}.csv"
        if not path.exists():
            write_cohort(n, path)
        for label, engine, jobs in engines:
            if label in rate and n / rate[label] > args.max_seconds:
                print(f"{label:<19} {n:>9} {'skipped: would take ~' + format(n / rate[label], '.0f') + ' s':>40}")
                continue
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, __file__, "--one", engine, str(jobs), str(path)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rate[label] = n / r["seconds"]
                print(f"{label:<19} {n:>9} {r['seconds']:>8.1f} {rate[label]:>11.0f} {r['peak_mb']:>8.0f} "
                      f"{r['answers']:>9}", flush=True)


if __name__ == "__main__":
    main()
