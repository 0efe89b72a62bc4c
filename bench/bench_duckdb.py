"""Benchmark: the DuckDB engine over N synthetic patients, from a fact CSV to Parquet answers.

Not a test: run it by hand and copy the figures into docs/duckdb.md.

    python bench/bench_duckdb.py                      # N = 1k, 10k, 100k, 1M
    python bench/bench_duckdb.py --sizes 1000 100000 --threads 2

The patients are those of bench/generate.py (the same per-patient generator, seed 7),
written once per size as a long-layout fact CSV (`predicate,arg1,arg2,...`) under
--data (default: a folder in the system temp dir) and reused; writing them is not timed.
Each size then runs in its own process, so peak memory (ru_maxrss) belongs to that size
alone. Timed: DuckDBEngine(rules).evaluate_csv(csv) (read, check against the
declarations, every stratum, the integrity constraints) and writing every output
predicate to Parquet. A size is skipped when the last one's rate says it would take more
than --max-seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def write_cohort(n: int, path: Path, seed: int = 7) -> int:
    """N patients of generate.py's generator as a fact CSV; returns the number of facts."""
    from generate import _patient

    rng = random.Random(seed)
    width = max(4, len(str(n)))
    facts = 0
    tmp = path.with_suffix(".part")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        for i in range(1, n + 1):
            for text in _patient(rng, f"c{i:0{width}d}"):
                pred, _, rest = text.partition("(")  # `pred(a, b, c).`: no commas inside values
                out.writerow([pred] + rest[:-2].split(", "))
                facts += 1
    tmp.rename(path)
    return facts


def one_size(csv_path: Path, n: int, threads: int | None, memory_limit: str | None) -> dict:
    from reasoner import load_rules
    from reasoner.engines.sql import DuckDBEngine

    rules = load_rules(ROOT / "rules" / "crs")
    t0 = time.perf_counter()
    engine = DuckDBEngine(rules, threads=threads, memory_limit=memory_limit)
    with engine.evaluate_csv(csv_path) as result:
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            files = result.export(out)
            t2 = time.perf_counter()
            out_bytes = sum(f.stat().st_size for f in files)
        facts = sum(result.count(p) for p, d in rules.decls.items() if d.role == "input")
        answers = sum(result.count(p) for p, d in rules.decls.items() if d.role == "output")
        violations = len(result.violations())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"patients": n, "facts": facts, "answers": answers, "violations": violations,
            "evaluate_s": round(t1 - t0, 2), "export_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "patients_per_s": round(n / (t2 - t0)), "peak_mb": round(peak_mb), "parquet_mb": round(out_bytes / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "reasoner-bench")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: one per core)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 1GB (default: DuckDB's own)")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    if args.one:
        path = args.data / f"patients_{args.one}.csv"
        print(json.dumps(one_size(path, args.one, args.threads, args.memory_limit)))
        return
    import duckdb

    print(f"DuckDB {duckdb.__version__}, {os.cpu_count()} cores, threads={args.threads or 'all'}, "
          f"memory_limit={args.memory_limit or 'default'}")
    print(f"{'patients':>9} {'facts':>9} {'answers':>9} {'eval s':>7} {'export s':>8} {'total s':>8} "
          f"{'patients/s':>11} {'peak MB':>8}")
    rate = None
    for n in args.sizes:
        if rate is not None and n / rate > args.max_seconds:
            print(f"{n:>9} skipped: about {n / rate:.0f} s at {rate:.0f} patients/s")
            continue
        path = args.data / f"patients_{n}.csv"
        if not path.exists():
            t = time.perf_counter()
            facts = write_cohort(n, path)
            print(f"{'':>9} (wrote {facts} facts to {path} in {time.perf_counter() - t:.0f} s, not timed)")
        cmd = [sys.executable, __file__, "--one", str(n), "--data", str(args.data)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.memory_limit:
            cmd += ["--memory-limit", args.memory_limit]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        rate = r["patients_per_s"]
        print(f"{r['patients']:>9} {r['facts']:>9} {r['answers']:>9} {r['evaluate_s']:>7} {r['export_s']:>8} "
              f"{r['total_s']:>8} {r['patients_per_s']:>11} {r['peak_mb']:>8}")


if __name__ == "__main__":
    main()
