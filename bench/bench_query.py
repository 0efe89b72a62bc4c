"""Benchmark: query every crs_grade and recommend answer for N synthetic patients.

Not a test: run it by hand and copy the figures into the README.

    python bench/bench_query.py                 # N = 1,000 and 10,000, each in a fresh process
    python bench/bench_query.py --sizes 1000 --chunk-size 200

Each size runs in its own process so peak memory (ru_maxrss) belongs to that size
alone. The cohort is written as a long-layout CSV and read the way `reasoner query`
reads a cohort: one streaming pass that checks every fact, then chunks of patients
streamed through the engine (so memory does not grow with N). Reported: wall seconds
for the checking pass, for evaluation (pyDatalog, including the second read), the
total, patients per second, and peak memory. Also the wall time of a one-patient
`reasoner query` process, started the way a user starts it.
"""
from __future__ import annotations

import argparse
import csv
import gc
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


def one_size(n: int, chunk: int) -> dict:
    from generate import generate_patients

    from reasoner import load_facts, load_rules
    from reasoner.engines.pydatalog import Engine
    from reasoner.io.facts import stream_chunks, validate_stream
    from reasoner.language.parse import parse_goal

    rules = load_rules(ROOT / "rules" / "crs")
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as f:
        path = f.name
        writer = csv.writer(f)
        writer.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        for start in range(0, n, 1000):  # generated and written in slices: the generator is not the subject
            part = load_facts(rules, text=generate_patients(min(1000, n - start), seed=7 + start,
                                                            prefix=f"s{start}c"))
            for fact in part.facts:
                writer.writerow([fact.pred, *fact.args])
            del part
    gc.collect()
    t0 = time.perf_counter()
    facts = validate_stream(rules, [path])
    t1 = time.perf_counter()
    engine = Engine(rules)
    goals = [parse_goal("crs_grade(P, G)"), parse_goal("recommend(P, A)")]
    answers = 0
    for chunk_facts in stream_chunks(rules, [path], chunk):
        model = engine.evaluate(chunk_facts)
        for goal in goals:
            answers += len(model.query(goal))
    t2 = time.perf_counter()
    os.unlink(path)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"patients": n, "facts": facts, "answers": answers, "load_s": round(t1 - t0, 2),
            "evaluate_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "patients_per_s": round(n / (t2 - t0)), "evaluate_patients_per_s": round(n / (t2 - t1)),
            "peak_mb": round(peak_mb, 1), "chunk_size": chunk}


def one_patient_process() -> float:
    facts = ROOT / "facts" / "p01_grade2_first_dose.facts"
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reasoner", "query", "crs_grade(P, G)", str(facts)],
                       check=True, capture_output=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.chunk_size)))
        return
    print(f"one-patient `reasoner query` process, best of 5: {one_patient_process():.3f} s wall")
    print(f"{'patients':>9} {'facts':>8} {'load s':>7} {'eval s':>7} {'total s':>8} {'patients/s':>11} "
          f"{'peak MB':>8}")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--chunk-size", str(args.chunk_size)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        print(f"{r['patients']:>9} {r['facts']:>8} {r['load_s']:>7} {r['evaluate_s']:>7} {r['total_s']:>8} "
              f"{r['patients_per_s']:>11} {r['peak_mb']:>8}")


if __name__ == "__main__":
    main()
