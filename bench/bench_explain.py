"""Benchmark: `reasoner recommend --explain` against the same command without proofs,
in text and in JSON, over N generated patients: wall time and peak memory of each whole
command, so "proofs cost at most 3x" and "memory flat in the cohort" are measured as a
user would see them. Not a test; copy the figures into the README.

    python bench/bench_explain.py                 # N = 10,000
    python bench/bench_explain.py -n 1000 2000 --verify

With --verify, the JSON proofs are then checked by `reasoner verify` (its time and
verdict printed, not counted in the ratio).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

# Runs the CLI in a child and prints its own peak RSS (KiB on Linux) on the last line of stderr.
_MEASURED = ("import resource, runpy, sys\n"
             "sys.argv = ['reasoner'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('reasoner', run_name='__main__')\n"
             "finally:\n    print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def run(args: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of one `reasoner ARGS` run."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"reasoner {' '.join(args)} failed:\n{done.stderr}")
    peak = next(int(line.split()[1]) for line in reversed(done.stderr.splitlines()) if line.startswith("peak_rss_kib"))
    return seconds, peak / 1024


def main() -> None:
    from generate import generate_patients

    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, nargs="+", default=[10_000], help="cohort sizes")
    parser.add_argument("--verify", action="store_true", help="also run `reasoner verify` on the JSON proofs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            facts = Path(tmp) / f"cohort{n}.facts"
            facts.write_text(generate_patients(n, seed=11))
            print(f"patients: {n:,}")
            for fmt in ("text", "json"):
                out = Path(tmp) / f"out.{fmt}"
                plain, plain_mb = run(["recommend", str(facts), "--format", fmt, "-o", str(out)])
                explained, explained_mb = run(["recommend", str(facts), "--format", fmt, "--explain", "-o", str(out)])
                size = out.stat().st_size / 1e6
                print(f"  {fmt:4}: without proofs {plain:6.2f} s {plain_mb:6.0f} MB | --explain {explained:6.2f} s "
                      f"{explained_mb:6.0f} MB, {size:,.0f} MB written | {explained / plain:.2f}x the time")
                if fmt == "json" and args.verify:
                    t0 = time.perf_counter()
                    done = subprocess.run([sys.executable, "-m", "reasoner", "verify", str(out), str(facts)],
                                          capture_output=True, text=True, cwd=ROOT)
                    last = (done.stdout.strip().splitlines() or [""])[-1]
                    print(f"  verify: exit {done.returncode} in {time.perf_counter() - t0:.2f} s: {last}")


if __name__ == "__main__":
    main()
