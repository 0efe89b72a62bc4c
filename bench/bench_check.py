"""Benchmark: `reasoner check` on the bundled CRS rule set, timed as a user runs it.
Not a test. Prints the check's own summary (what the solver proved, whether anything
was searched) and the wall time.

    python bench/bench_check.py
"""
from __future__ import annotations

import subprocess
import sys
import time


def main() -> None:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "reasoner", "check"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = out.stdout.rstrip().splitlines()
    print("\n".join([l for l in lines if l.startswith(("Solver", "Search"))] + lines[-1:]))
    print(f"`reasoner check` exit status {out.returncode}, {wall:.1f} s wall (target: 60 s)")


if __name__ == "__main__":
    main()
