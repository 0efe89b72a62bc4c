"""The command line under hostile input and circumstances (issue 16): every failure is a
located `error[CODE]: message` line with exit status 2, Ctrl-C exits 130, never a
traceback; output files are written whole or not at all; --jobs never starts more
workers than chunks or CPUs."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from reasoner.cli import main

ROOT = Path(__file__).resolve().parent.parent
FACTS = ROOT / "facts"
P01 = str(FACTS / "p01_grade2_first_dose.facts")
sys.path.insert(0, str(ROOT / "bench"))
from generate import generate_patients  # noqa: E402

REASONER = [sys.executable, "-m", "reasoner"]
LINE = re.compile(r"^(\S+:\d+:\d+: )?error\[E0\d\d\]: .+")


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def assert_located_failure(result, code: str | None = None) -> None:
    """Exit 2, no traceback, nothing on stdout, every stderr line `[place: ]error[E0xx]: ...`."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == "", result.output
    lines = [line for line in result.stderr.splitlines()
             if not re.fullmatch(r"\d+ errors; nothing was evaluated", line)]
    assert lines and all(LINE.match(line) for line in lines), result.stderr
    if code is not None:
        assert f"error[{code}]" in result.stderr, result.stderr


def cohort_rows(n: int, seed: int) -> list[list[str]]:
    """Long-layout CSV rows of `n` generated patients, grouped by patient."""
    rows = []
    for line in generate_patients(n, seed=seed).splitlines():
        line = line.strip()
        if line and not line.startswith("%"):
            pred, _, rest = line.partition("(")
            rows.append([pred] + rest[:-2].split(", "))  # `pred(a, b).`: no commas inside values
    return rows


def write_cohort_csv(path: Path, n: int, seed: int = 7) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["predicate", "arg1", "arg2", "arg3", "arg4"])
        writer.writerows(cohort_rows(n, seed))
    return path


@pytest.fixture(scope="module")
def cohort_3000(tmp_path_factory) -> Path:
    """3,000 generated patients (bench/generate.py), as a long-layout CSV."""
    return write_cohort_csv(tmp_path_factory.mktemp("cohort") / "c3000.csv", 3000)


# ----------------------------------------------------------------------------- located messages
@pytest.mark.parametrize("args", [
    ["recommend", P01, "--format", "xx"],
    ["recommend", P01, "--time-limit", "-1"],
    ["recommend", P01, "--time-limit", "nan"],
    ["recommend", P01, "--time-limit", "inf"],
    ["recommend", P01, "--time-limit", "0"],
    ["query", "crs_grade(P, G)", P01, "--time-limit", "soon"],
    ["recommend", P01, "--jobs", "0"],
    ["recommend", P01, "--bogus"],
    ["recommend"],
    ["bogus"],
], ids=lambda a: " ".join(a[:1] + a[2:]) or "none")
def test_usage_errors_are_e020_lines(args) -> None:
    result = run(*args)
    assert_located_failure(result, "E020")
    assert "--help" in result.stderr and "Usage:" not in result.stderr


def test_time_limit_and_fixpoint_rounds_are_e022_lines(tmp_path, monkeypatch) -> None:
    assert_located_failure(run("recommend", P01, "--time-limit", "0.000001"), "E022")
    (tmp_path / "nat.dl").write_text('.decl seed(n: number) input "s"\n'
                                     '.decl nat(n: number) output "counting up forever"\n'
                                     "nat(N) :- seed(N).\nnat(M) :- nat(N), M = N + 1.\n")
    (tmp_path / "seed.facts").write_text("seed(0).\n")
    from reasoner.engines.pydatalog import Engine
    defaults = list(Engine.__init__.__defaults__)  # (settings, max_iterations, time_limit, record_firings)
    defaults[1] = 20
    monkeypatch.setattr(Engine.__init__, "__defaults__", tuple(defaults))
    result = run("query", "--rules", str(tmp_path / "nat.dl"), "nat(N)", str(tmp_path / "seed.facts"))
    assert_located_failure(result, "E022")
    assert "fixpoint in 20 rounds" in result.stderr


def test_a_missing_rule_file_for_check_is_located() -> None:
    result = run("check", "r/nonexist.dl")
    assert_located_failure(result, "E013")
    assert result.stderr.startswith("r/nonexist.dl:")


def test_commands_own_refusals_are_located_lines(tmp_path) -> None:
    assert_located_failure(run("test", "--cases", str(tmp_path / "none")), "E016")
    (tmp_path / "plain.dl").write_text('.decl flag(p: id) input "a flag"\n.decl out(p: id) output "out"\n'
                                       "out(P) :- flag(P).\n")
    (tmp_path / "f.facts").write_text("flag(p1).\n")
    assert_located_failure(run("conflicts", "--rules", str(tmp_path / "plain.dl"), str(tmp_path / "f.facts")), "E016")
    assert_located_failure(run("recommend", P01, "--format", "parquet"), "E016")
    assert_located_failure(run("recommend", P01, "--format", "parquet", "-o", "-"), "E016")
    assert_located_failure(run("recommend", P01, "--engine", "duckdb", "--explain"), "E016")
    same = str(tmp_path / "same.csv")
    assert_located_failure(run("recommend", P01, "-o", same, "--rule-counts", same), "E016")
    assert not (tmp_path / "same.csv").exists()


def test_a_corrupt_parquet_page_on_duckdb_is_a_located_e015(tmp_path) -> None:
    """A value in a later page that is not UTF-8 (DuckDB's InvalidInputException)."""
    rows = cohort_rows(200, seed=5)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (predicate VARCHAR, arg1 VARCHAR, arg2 VARCHAR, arg3 VARCHAR, arg4 VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [(r + [None] * 5)[:5] for r in rows])
    good = tmp_path / "good.parquet"
    con.execute(f"COPY t TO '{good}' (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE 1000)")
    con.close()
    last = rows[-1][1].encode()  # the last patient's id, in the last row group
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes().replace(last, b"\xff" * len(last)))
    result = run("recommend", "--engine", "duckdb", "--format", "csv", "-o", str(tmp_path / "out.csv"), str(bad))
    assert_located_failure(result, "E015")
    assert result.stderr.startswith(f"{bad}:") and "Parquet" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "good.parquet"]


@pytest.mark.parametrize("name,text", [
    ("deep.json", "[" * 100_000 + "]" * 100_000),
    ("surrogate.json", '[{"predicate": "weight_kg", "args": ["p\\ud800", 72]}]'),
])
def test_hostile_json_fact_files_never_give_a_traceback(tmp_path, name, text) -> None:
    path = tmp_path / name
    path.write_text(text)
    for args in (["recommend", str(path)], ["recommend", "--format", "csv", str(path)],
                 ["query", "weight_kg(P, W)", str(path)]):
        assert_located_failure(run(*args))


def test_an_unexpected_exception_is_an_internal_error_line(monkeypatch) -> None:
    from reasoner.render import recommend

    def broken(*args):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(recommend, "chunk_output", broken)
    result = run("recommend", P01)
    assert_located_failure(result, "E023")
    assert "internal error: ZeroDivisionError: division by zero (please report)" in result.stderr


def test_duckdb_query_interrupted_exits_130(monkeypatch) -> None:
    from reasoner.render import recommend

    def interrupted(*args):
        raise RuntimeError("Query interrupted")
    monkeypatch.setattr(recommend, "chunk_output", interrupted)
    result = run("recommend", P01)
    assert result.exit_code == 130 and "Traceback" not in result.output and "interrupted" in result.stderr


# ----------------------------------------------------------------------------- fact paths
def test_dev_null_and_a_fifo_are_fact_files(tmp_path) -> None:
    result = run("query", "crs_grade(P, G)", "/dev/null")
    assert result.exit_code == 0 and result.output == "no answers\n", result.output
    for name, content in (("fifo", Path(P01).read_text()),
                          ("fifo.csv", "predicate,arg1,arg2\nweight_kg,p9,70\nspo2,p9,97\n")):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        writer = threading.Thread(target=fifo.write_text, args=(content,), daemon=True)
        writer.start()
        result = run("query", "weight_kg(P, W)", str(fifo))  # a .csv FIFO is read once: not streamed
        writer.join(timeout=30)
        assert result.exit_code == 0 and re.search(r"p(01|9) +7\d", result.output), result.output
    result = run("query", "weight_kg(P, W)", "--stream", str(tmp_path / "fifo.csv"))
    assert_located_failure(result, "E016")


# ----------------------------------------------------------------------------- output files
def test_a_missing_output_folder_fails_before_anything_is_read(tmp_path, monkeypatch) -> None:
    from reasoner.engines import cohort

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluation started")
    monkeypatch.setattr(cohort, "evaluate_cohort", no_evaluation)
    monkeypatch.setattr(cohort, "Cohort", no_evaluation)
    for args in (["-o", str(tmp_path / "missing" / "x.csv")], ["--rule-counts", str(tmp_path / "missing" / "c.csv")],
                 ["--format", "parquet", "-o", str(tmp_path / "missing" / "x.parquet")]):
        result = run("recommend", P01, *args)
        assert_located_failure(result, "E021")
        assert str(tmp_path / "missing") in result.stderr and "no such folder" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_witness_dir_that_is_a_file_fails_before_exploring(tmp_path) -> None:
    (tmp_path / "taken").write_text("a file")
    result = run("check", "--witness-dir", str(tmp_path / "taken" / "w"))
    assert_located_failure(result, "E021")


def test_dash_is_standard_output(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("recommend", "--format", "csv", "-o", "-", P01)
    assert result.exit_code == 0 and result.stdout.startswith("patient,crs_grade"), result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_run_that_fails_midway_keeps_the_existing_file(tmp_path, monkeypatch, fmt) -> None:
    """The second chunk stops at the time limit: exit 2, the file from before is
    untouched, and no temporary file is left beside it."""
    from reasoner.language.errors import EvaluationLimit
    from reasoner.render import recommend
    real, calls = recommend.chunk_output, []

    def second_chunk_too_slow(*args):
        calls.append(1)
        if len(calls) == 2:
            raise EvaluationLimit("evaluation stopped after 1 s (time limit)")
        return real(*args)
    monkeypatch.setattr(recommend, "chunk_output", second_chunk_too_slow)
    out, counts = tmp_path / f"report.{fmt}", tmp_path / "counts.csv"
    out.write_text("the report of yesterday\n")
    counts.write_text("yesterday's counts\n")
    result = run("recommend", "--format", fmt, "--chunk-size", "2", "-o", str(out), "--rule-counts", str(counts),
                 str(FACTS))
    assert_located_failure(result, "E022")
    assert len(calls) == 2
    assert out.read_text() == "the report of yesterday\n" and counts.read_text() == "yesterday's counts\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", f"report.{fmt}"]


def test_bad_input_keeps_the_existing_file(tmp_path) -> None:
    bad = tmp_path / "bad.facts"
    bad.write_text("temperature_c(p1, 389).\n")
    out = tmp_path / "report.csv"
    out.write_text("kept\n")
    assert_located_failure(run("recommend", "--format", "csv", "-o", str(out), str(bad)), "E005")
    assert out.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["bad.facts", "report.csv"]


def test_a_successful_run_replaces_the_file_whole_and_keeps_its_permissions(tmp_path) -> None:
    out = tmp_path / "report.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    result = run("recommend", "--format", "csv", "-o", str(out), "--rule-counts", str(tmp_path / "counts.csv"), P01)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("patient,crs_grade") and (out.stat().st_mode & 0o777) == 0o640
    assert (tmp_path / "counts.csv").read_text().startswith("rule,section")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "report.csv"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_concurrent_runs_into_one_file_leave_one_whole_report(tmp_path, fmt) -> None:
    """Two runs into the same file at once: each writes its own temporary file, the last
    rename wins, and what is left is one whole report, the same as a single run's."""
    cohort = write_cohort_csv(tmp_path / "c.csv", 150)
    single = tmp_path / f"single.{fmt}"
    args = ["recommend", "--format", fmt, str(cohort), "-o"]
    subprocess.run(REASONER + args + [str(single)], check=True, capture_output=True, cwd=ROOT)
    same = tmp_path / f"same.{fmt}"
    same.write_text("an older report\n" * 1000)
    runs = [subprocess.Popen(REASONER + args + [str(same)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
            for _ in range(2)]
    for each in runs:
        _, err = each.communicate(timeout=300)
        assert each.returncode == 0 and not err, err.decode()
    if fmt == "csv":
        data = same.read_bytes()
        assert b"\0" not in data and data == single.read_bytes()
    else:
        def rows(path: Path) -> list:
            return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()
        assert rows(same) == rows(single) and len(rows(same)) > 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", f"same.{fmt}", f"single.{fmt}"]


# ----------------------------------------------------------------------------- Ctrl-C
def _interrupt_midway(args: list[str], folder: Path, target: str, group: bool = False) -> tuple[int, str]:
    """Start `reasoner ARGS`, wait until it is at work (its temporary output file exists,
    then a moment more), send SIGINT (to its whole process group, as a terminal does,
    when `group`), and return its exit status and stderr."""
    child = subprocess.Popen(REASONER + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(f".{target}.") for p in folder.iterdir()):
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.02)
        time.sleep(0.5)
        assert child.poll() is None, "the run ended before it could be interrupted"
        if group:
            os.killpg(child.pid, signal.SIGINT)
        else:
            child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err.decode()


def test_ctrl_c_in_duckdb_exits_130_and_keeps_the_target(tmp_path, cohort_3000) -> None:
    """SIGINT while DuckDB runs a query ("Query interrupted"): exit 130, no traceback, the
    Parquet target as it was and no temporary file left. Partitions of 100 patients keep
    the run going long enough to be interrupted midway."""
    target = tmp_path / "x.parquet"
    target.write_bytes(b"the previous report")
    status, err = _interrupt_midway(["recommend", "--engine", "duckdb", "--format", "parquet", "--chunk-size", "100",
                                     "-o", str(target), str(cohort_3000)], tmp_path, "x.parquet")
    assert status == 130 and "Traceback" not in err and "interrupted" in err, err
    assert target.read_bytes() == b"the previous report" and [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_ctrl_c_to_the_process_group_with_workers_exits_130(tmp_path, cohort_3000) -> None:
    """Ctrl-C at a terminal reaches the workers too: they leave it to the parent (no
    worker traceback); the new target never appears."""
    status, err = _interrupt_midway(["recommend", "--jobs", "2", "--format", "csv", "-o", str(tmp_path / "x.csv"),
                                     str(cohort_3000)], tmp_path, "x.csv", group=True)
    assert status == 130 and "Traceback" not in err and "interrupted" in err, err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- --jobs
def test_jobs_are_capped_by_chunks_and_cpus(monkeypatch) -> None:
    from reasoner import load_rules, load_facts
    from reasoner.engines import parallel
    from reasoner.io.facts import chunks
    assert parallel.worker_count(1000, 4) == min(4, parallel.usable_cpus())
    assert parallel.worker_count(1000) == parallel.usable_cpus()
    assert parallel.worker_count(3, 0) == 1
    rules = load_rules()
    facts = load_facts(rules, [P01])
    started = []
    real = parallel.multiprocessing.get_context

    def counting(method):
        context = real(method)

        class Context:
            def Pool(self, processes, **kwargs):
                started.append(processes)
                return context.Pool(processes, **kwargs)
        return Context()
    monkeypatch.setattr(parallel.multiprocessing, "get_context", counting)
    one_chunk = list(parallel.map_chunks(rules, chunks(rules, facts, 50), lambda r, m: len(m.tuples("recommend")),
                                         jobs=1000))
    assert one_chunk and started == []  # one chunk: evaluated here, no pool at all
    two = load_facts(rules, [P01, str(FACTS / "p02_tocilizumab_allergy.facts")])
    assert len(list(parallel.map_chunks(rules, chunks(rules, two, 1), lambda r, m: 0, jobs=1000))) == 2
    cpus = parallel.usable_cpus()
    assert started == ([2] if cpus >= 2 else [])  # two chunks: at most two workers


# ----------------------------------------------------------------------------- standard output
def test_a_reader_that_goes_away_is_exit_141_without_a_traceback(tmp_path) -> None:
    """`reasoner recommend ... | head -1`: a broken pipe is not a finding (exit 1)."""
    cohort = write_cohort_csv(tmp_path / "c.csv", 150)  # ~150 KB of CSV: more than a pipe holds
    child = subprocess.Popen(REASONER + ["recommend", "--format", "csv", str(cohort)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT)
    assert child.stdout.readline().startswith(b"patient,")
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 141 and err == "", err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_a_located_e021() -> None:
    result = run("recommend", "-o", "/dev/full", P01)
    assert_located_failure(result, "E021")
    with open("/dev/full", "w") as full:
        child = subprocess.run(REASONER + ["recommend", P01], stdout=full, stderr=subprocess.PIPE, cwd=ROOT)
    err = child.stderr.decode()
    assert child.returncode == 2 and LINE.match(err) and "E021" in err and "Traceback" not in err, err


def test_a_closed_standard_stream_is_said_not_an_internal_error() -> None:
    # started with stdout, stdin or stderr closed, Python gives None for it
    def reasoner(*args: str, close: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reasoner", *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE if close != 1 else None,
                              stderr=subprocess.PIPE if close != 2 else None,
                              stdin=subprocess.DEVNULL if close != 0 else None,
                              preexec_fn=lambda: os.close(close))
    out = reasoner("recommend", P01, close=1)
    assert out.returncode == 2 and out.stderr.startswith("error[E021]: standard output is closed"), out.stderr
    got = reasoner("query", "crs_grade(P, G)", "-", close=0)
    assert got.returncode == 2 and "<stdin>:0:0: error[E015]: standard input is closed" in got.stderr, got.stderr
    err = reasoner("query", "crs_grade(P, G)", P01, close=2)
    assert err.returncode == 0 and "p01  2" in err.stdout


def test_a_device_that_never_ends_and_a_link_loop_are_said(tmp_path) -> None:
    # /dev/zero was read for ever; a loop of links was "no such fact file"
    zero = run("query", "crs_grade(P, G)", "/dev/zero")
    assert zero.exit_code == 2 and "/dev/zero:0:0: error[E015]: a NUL byte" in zero.output
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    loop = run("query", "crs_grade(P, G)", str(tmp_path / "a"))
    assert loop.exit_code == 2 and "error[E015]: a loop of symbolic links" in loop.output


@pytest.mark.parametrize("args, words", [
    (["recommend", "--format", "json", "--format=csv", P01], "--format given twice"),
    (["recommend", "-o", "a.txt", "--output", "b.txt", P01], "-o and --output given together"),
    (["recommend", "--stream", "--no-stream", P01], "--stream and --no-stream given together"),
    (["query", "--set", "toci_max_total=2", "--set", "toci_max_total=3", "crs_grade(P, G)", P01],
     "toci_max_total is set twice"),
    (["query", "--engine", "duckdb", "--spark-master", "local[1]", "crs_grade(P, G)", P01],
     "--spark-master is for --engine spark, not --engine duckdb"),
    (["query", "--spark-master", "local[1]", "crs_grade(P, G)", P01], "not --engine pydatalog"),
    (["check", "--no-solver", "--search", "never"], "would check nothing semantic"),
])
def test_options_that_contradict_or_repeat_are_refused_not_taken_last(args, words) -> None:
    # click kept the last of a repeated option, and ignored an option for another engine
    result = run(*args)
    assert result.exit_code == 2 and words in result.output, result.output


def test_a_plain_flag_given_twice_is_fine() -> None:
    assert run("why", "--all", "--all", "crs_grade(P, G)", P01).exit_code == 0


def test_an_explanation_that_grows_past_its_step_budget_is_e022(tmp_path, monkeypatch) -> None:
    # why --all over p :- p, p on a clique ran past a minute (derivations multiply with depth)
    import reasoner.proof.statements as statements
    monkeypatch.setattr(statements, "MAX_STEPS", 2_000)
    rules = tmp_path / "double.dl"
    rules.write_text('.decl e(x: symbol, y: symbol) input "edge"\n.decl p(x: symbol, y: symbol) output "path"\n'
                     "p(X, Y) :- e(X, Y).\np(X, Z) :- p(X, Y), p(Y, Z).\n")
    nodes = "abcdefgh"
    facts = tmp_path / "clique.facts"
    facts.write_text("".join(f"e({x}, {y}).\n" for x in nodes for y in nodes if x != y))
    result = run("why", "--rules", str(rules), "--all", "p(a, b)", str(facts))
    assert result.exit_code == 2 and "error[E022]: the explanation stopped after 2,000 steps" in result.output
    assert run("why", "--rules", str(rules), "p(a, b)", str(facts)).exit_code == 0  # one proof: a few steps
