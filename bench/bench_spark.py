"""Benchmark: `reasoner recommend` on DuckDB and on Spark, side by side, over N synthetic patients.

Not a test: run it by hand and copy the figures into docs/spark.md and the README.

    python bench/bench_spark.py                        # N = 100k and 1M
    python bench/bench_spark.py --sizes 100000 --master 'local[2]'

The patients are bench/generate.py's (through bench_duckdb.write_cohort, seed 7), written
once per size as a long-layout fact CSV under --data and reused (not timed). Each engine
then runs the whole command, in its own process:

    reasoner recommend --engine E --format csv COHORT -o OUT.csv --rule-counts COUNTS.csv

(Spark with `--spark-master MASTER`, default local[2]). Timed: the whole command, wall
clock, session start-up included. Peak memory: the largest resident set seen (polled
every 0.2 s from /proc) of the reasoner process (the Spark driver's Python side) and of
its child processes (Spark's JVM, which holds the driver and, in local mode, the
executors), so both are shown. The two engines' CSV reports and rule counts are compared
byte for byte.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out + [g for c in out for g in _children(c)]


def run(command: list[str]) -> dict:
    """Run `command`; its wall seconds and the peak MB of it and of its children."""
    peak = {"driver": 0.0, "children": 0.0}
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak["driver"] = max(peak["driver"], _rss_mb(proc.pid))
            peak["children"] = max(peak["children"], sum(_rss_mb(c) for c in _children(proc.pid)))
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    done.set()
    watcher.join()
    return {"seconds": time.monotonic() - started, "rc": proc.returncode, "stderr": err.strip()[-500:], **peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "reasoner-bench")
    args = parser.parse_args()
    from bench_duckdb import write_cohort

    args.data.mkdir(parents=True, exist_ok=True)
    reasoner = str(Path(sys.executable).parent / "reasoner")
    print(f"# load before: {os.getloadavg()[0]:.2f} (1-minute average); master {args.master}", flush=True)
    print("| engine | patients | seconds | patients/s | peak MB (reasoner process) | peak MB (child: JVM) | same bytes |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        cohort = args.data / f"cohort_{n}.csv"
        if not cohort.exists():
            write_cohort(n, cohort)
        outputs = {}
        for engine in args.engines:
            out, counts = args.data / f"out_{engine}_{n}.csv", args.data / f"counts_{engine}_{n}.csv"
            command = [reasoner, "recommend", "--engine", engine, "--format", "csv", str(cohort),
                       "-o", str(out), "--rule-counts", str(counts)]
            if engine == "spark":
                command[2:2] = ["--spark-master", args.master]
            got = run(command)
            outputs[engine] = (out, counts)
            same = ""
            if engine != args.engines[0] and got["rc"] == 0:
                first = outputs[args.engines[0]]
                same = "yes" if filecmp.cmp(first[0], out, shallow=False) and \
                    filecmp.cmp(first[1], counts, shallow=False) else "NO"
            status = "" if got["rc"] == 0 else f" (exit {got['rc']}: {got['stderr']})"
            print(f"| {engine} | {n:,} | {got['seconds']:.1f}{status} | {n / got['seconds']:,.0f} | "
                  f"{got['driver']:.0f} | {got['children']:.0f} | {same} |", flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
