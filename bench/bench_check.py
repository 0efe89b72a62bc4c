"""Benchmark: `reasoner check` on the bundled CRS rule set, timed as a user runs it.
Not a test. Prints the check's own report (what it explored) and the wall time.

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
    print("\n".join(out.stdout.rstrip().splitlines()[-2:]))
    print(f"`reasoner check` exit status {out.returncode}, {wall:.1f} s wall (target: 60 s)")


if __name__ == "__main__":
    main()
