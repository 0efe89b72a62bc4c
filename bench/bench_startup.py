"""Benchmark: the wall time of one-patient `reasoner` commands, started as a user starts them.

Not a test: run it by hand and copy the figures into the README.

    python bench/bench_startup.py             # 21 runs of each command
    python bench/bench_startup.py -n 41 --no-cache-too
    python bench/bench_startup.py --compare /tmp/old   # also another checkout's code (git worktree add /tmp/old REV)

Each command runs N times as a fresh process (the venv's `reasoner` script beside this
Python), the commands taking turns so that the machine's load falls on all of them
alike. Two baselines run in the same turns: `python -c pass` (the interpreter's own
start) and `python -c "import pyDatalog"` (the engine's import alone); every command's
median is also printed as a ratio to them. Each command runs once first, unmeasured,
so Python's bytecode and the rule-set cache are warm (as they are from a user's second
call on); `--no-cache-too` adds the same commands with `REASONER_NO_CACHE=1` (the rule
files parsed and checked on every call). PYTHONDONTWRITEBYTECODE is removed from the
children's environment: a user's installation keeps its bytecode. `--compare DIR` adds
the three commands run from another checkout's code in the same turns (`python -P -m
reasoner` with PYTHONPATH=DIR, in this venv), and the same from this checkout run the same
way, so that a before and an after are measured under one load.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACTS = "facts/p01_grade2_first_dose.facts"


def _reasoner() -> list[str]:
    script = Path(sys.executable).with_name("reasoner")
    if script.is_file():
        return [str(script)]
    found = shutil.which("reasoner")
    return [found] if found else [sys.executable, "-m", "reasoner"]


def commands(no_cache_too: bool, compare: str | None = None) -> list[tuple[str, list[str], dict[str, str]]]:
    r = _reasoner()
    py = sys.executable
    out = [
        ("python -c pass", [py, "-c", "pass"], {}),
        ("python -c 'import pyDatalog'", [py, "-c", "import pyDatalog"], {}),
        ("reasoner --help", r + ["--help"], {}),
        ("reasoner query 'crs_grade(P, G)'", r + ["query", "crs_grade(P, G)", FACTS], {}),
        ("reasoner recommend", r + ["recommend", FACTS], {}),
        ("reasoner why 'recommend(p01, A)'", r + ["why", "recommend(p01, A)", FACTS], {}),
    ]
    if no_cache_too:
        off = {"REASONER_NO_CACHE": "1"}
        out += [(name + "  [no cache]", argv, off) for name, argv, _ in out[3:6]]
    if compare:  # the same way for both checkouts: the package first on the path, not the cwd
        m = [sys.executable, "-P", "-m", "reasoner"]
        for label, where in (("this", ROOT), (Path(compare).name, Path(compare).resolve())):
            out += [(f"[{label}] {name}", m + argv[len(r):], {"PYTHONPATH": str(where)})
                    for name, argv, _ in out[2:6]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=21, help="measured runs of each command")
    parser.add_argument("--no-cache-too", action="store_true",
                        help="also time the commands with REASONER_NO_CACHE=1")
    parser.add_argument("--compare", metavar="DIR",
                        help="also run another checkout's reasoner package (python -P -m reasoner, PYTHONPATH=DIR)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    cache = tempfile.mkdtemp(prefix="reasoner-bench-cache-")
    env["REASONER_CACHE_DIR"] = cache  # its own cache: warmed below, never a user's
    cmds = commands(args.no_cache_too, args.compare)
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name, _, _ in cmds}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in cmds}
    try:
        for name, argv, extra in cmds:  # warm-up: bytecode written, rule-set cache filled
            subprocess.run(argv, cwd=ROOT, env={**env, **extra}, check=True, capture_output=True)
        for _ in range(args.runs):
            for name, argv, extra in cmds:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(argv, cwd=ROOT, env={**env, **extra}, check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    base = statistics.median(times["python -c pass"])
    engine = statistics.median(times["python -c 'import pyDatalog'"])
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; Python {sys.version.split()[0]}")
    print("wall seconds (median, 90th percentile, fastest), the median as a multiple of the baselines' medians,")
    print("and CPU seconds (user + system, median): less disturbed than wall time by other work on the machine")
    print(f"{'command':<52} {'median':>7} {'p90':>7} {'min':>7} {'× pass':>7} {'× pyDatalog':>12} {'CPU':>7}")
    for name, _, _ in cmds:
        ts = sorted(times[name])
        med = statistics.median(ts)
        p90 = ts[min(len(ts) - 1, round(0.9 * (len(ts) - 1)))]
        print(f"{name:<52} {med:>7.3f} {p90:>7.3f} {ts[0]:>7.3f} {med / base:>7.1f} {med / engine:>12.2f} "
              f"{statistics.median(cpu[name]):>7.3f}")


if __name__ == "__main__":
    main()
