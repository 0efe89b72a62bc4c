"""A one-patient command's start (issue: start-up cost): the rule-set cache gives the same
bytes as a cold run and never a stale answer, a command imports only what it uses, the
fast path for plain fact files and goals reads exactly what lark reads, and `reasoner
--help` shows every command's summary whole. No wall-clock assertions here: the speed
is measured by bench/bench_startup.py."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from reasoner.analysis import rulecache
from reasoner.cli import main
from reasoner.language.errors import ReasonerError
from reasoner.language.parse import _fast_atoms, _parse
from reasoner.language.syntax import Atom, Const, Var

ROOT = Path(__file__).resolve().parent.parent
P01 = "facts/p01_grade2_first_dose.facts"
COMMANDS = [
    ["query", "crs_grade(P, G)", P01],
    ["query", "dose_mg(p01, tocilizumab, M)", P01, "--format", "json"],
    ["recommend", P01],
    ["recommend", "--format", "json", "--explain", P01],
    ["why", "recommend(p01, A)", P01],
    ["why-not", "dose_mg(p01, tocilizumab, 500)", P01],
]


def reasoner(args: list[str], cache: Path | None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`reasoner ARGS` as its own process, with the rule-set cache in `cache` (None: off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REASONER_")}
    if cache is None:
        env["REASONER_NO_CACHE"] = "1"
    else:
        env["REASONER_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-m", "reasoner", *args], cwd=cwd, env=env, capture_output=True,
                          timeout=300)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("rules-*.pickle")) if cache.is_dir() else []


def same_run(a: subprocess.CompletedProcess, b: subprocess.CompletedProcess) -> bool:
    return (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


# ----------------------------------------------------------------------------- the cache
def test_the_cache_is_used_and_gives_a_cold_runs_bytes(tmp_path) -> None:
    cache = tmp_path / "cache"
    for args in COMMANDS:
        cold = reasoner(args, None)
        assert cold.returncode == 0, cold.stderr.decode()
        first = reasoner(args, cache)  # builds the entry
        [entry] = entries(cache)
        before = entry.stat()
        second = reasoner(args, cache)  # reads it
        after = entry.stat()
        assert same_run(cold, first) and same_run(cold, second), args
        assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns), "the entry was rewritten"
    assert oct(cache.stat().st_mode & 0o777) == "0o700"


def test_the_cache_gives_the_loaded_rule_set(tmp_path, monkeypatch) -> None:
    """In process: an entry read back equals what loading builds (every rule, declaration,
    source and stratum, with their places)."""
    monkeypatch.setenv("REASONER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("REASONER_NO_CACHE", raising=False)
    built = rulecache.load(None)
    [entry] = entries(tmp_path)
    read = rulecache.load(None)
    assert read is not built and entries(tmp_path) == [entry]
    assert read == built  # dataclass equality: every field
    assert [r.span for r in read.rules] == [r.span for r in built.rules]
    assert read.strata == built.strata and read.path == built.path


def copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "crs"
    shutil.copytree(ROOT / "rules" / "crs", rules)
    return rules


def test_changing_an_included_rule_file_invalidates_the_entry(tmp_path) -> None:
    """A change in a file that main.dl includes, of the same length and with the old
    modification time put back: the contents decide, not the file's size or time."""
    rules = copy_rules(tmp_path)
    cache = tmp_path / "cache"
    args = ["query", "dose_mg(p01, tocilizumab, M)", str(ROOT / P01), "--rules", str(rules)]
    assert b"576" in reasoner(args, cache).stdout
    assert b"576" in reasoner(args, cache).stdout
    declarations = rules / "declarations.dl"
    text = declarations.read_text(encoding="utf-8")
    assert ".setting toci_mg_per_kg = 8 " in text
    stat = declarations.stat()
    declarations.write_text(text.replace(".setting toci_mg_per_kg = 8 ", ".setting toci_mg_per_kg = 9 "),
                            encoding="utf-8")
    os.utime(declarations, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = reasoner(args, cache)
    assert changed.returncode == 0 and b"648" in changed.stdout and b"576" not in changed.stdout
    assert same_run(changed, reasoner(args, None))


def test_a_rule_file_with_an_error_is_reported_every_time_and_never_cached(tmp_path) -> None:
    rules = copy_rules(tmp_path)
    cache = tmp_path / "cache"
    args = ["query", "crs_grade(P, G)", str(ROOT / P01), "--rules", str(rules)]
    assert reasoner(args, cache).returncode == 0
    grading = rules / "grading.dl"
    grading.write_text(grading.read_text(encoding="utf-8") + "\nbroken(X :- .\n", encoding="utf-8")
    for _ in range(2):
        failed = reasoner(args, cache)
        assert failed.returncode == 2 and b"error[E001]" in failed.stderr
    grading.write_text(grading.read_text(encoding="utf-8").replace("\nbroken(X :- .\n", "\n"), encoding="utf-8")
    assert same_run(reasoner(args, cache), reasoner(args, None))


def test_a_removed_include_is_an_error_not_a_cached_answer(tmp_path) -> None:
    rules = copy_rules(tmp_path)
    cache = tmp_path / "cache"
    args = ["query", "crs_grade(P, G)", str(ROOT / P01), "--rules", str(rules)]
    assert reasoner(args, cache).returncode == 0
    (rules / "grading.dl").unlink()
    gone = reasoner(args, cache)
    assert gone.returncode == 2 and b"E013" in gone.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "another pickle"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(tmp_path, damage) -> None:
    cache = tmp_path / "cache"
    args = COMMANDS[0]
    good = reasoner(args, cache)
    [entry] = entries(cache)
    data = entry.read_bytes()
    entry.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b"",
                       "another pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01K\x02\x86\x94."}[damage])
    again = reasoner(args, cache)
    assert same_run(good, again)
    assert entries(cache) == [entry]
    rebuilt, original = pickle.loads(entry.read_bytes()), pickle.loads(data)  # rebuilt, whole
    assert rebuilt[:3] == original[:3] and rebuilt[3] == original[3]


def test_no_cache_writes_nothing(tmp_path) -> None:
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REASONER_")}
    env.update(REASONER_CACHE_DIR=str(cache), REASONER_NO_CACHE="1")
    done = subprocess.run([sys.executable, "-m", "reasoner", *COMMANDS[0]], cwd=ROOT, env=env, capture_output=True)
    assert done.returncode == 0 and not cache.exists()


def test_a_cache_others_may_write_to_is_not_read(tmp_path, monkeypatch) -> None:
    """An entry is a pickle: only this user's private folder is trusted."""
    if not hasattr(os, "getuid"):
        pytest.skip("POSIX permissions")
    monkeypatch.setenv("REASONER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("REASONER_NO_CACHE", raising=False)
    rulecache.load(None)
    [entry] = entries(tmp_path)
    tmp_path.chmod(0o777)
    calls = []
    original = rulecache.load_rules
    monkeypatch.setattr(rulecache, "load_rules", lambda *a, **k: calls.append(1) or original(*a, **k))
    rulecache.load(None)
    assert calls == [1]  # loaded anew, the entry not read
    tmp_path.chmod(0o700)
    rulecache.load(None)
    assert calls == [1]  # private again: read


def test_the_cache_folder_is_where_the_environment_says(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("REASONER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rulecache.cache_dir() == tmp_path / "xdg" / "reasoner"
    monkeypatch.setenv("REASONER_CACHE_DIR", str(tmp_path / "mine"))
    assert rulecache.cache_dir() == tmp_path / "mine"


def test_the_code_digest_covers_every_module_loading_imports() -> None:
    """rulecache.CODE lists every module of the package that loading a rule set imports:
    an edit to any of them must invalidate the cache."""
    code = ("import sys, json; from reasoner.analysis.program import load_rules; load_rules(); "
            "print(json.dumps(sorted(m for m in sys.modules if m == 'reasoner' or m.startswith('reasoner.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout)
    package = ROOT / "reasoner"
    files = set()
    for m in modules:
        path = package.joinpath(*m.split(".")[1:])
        files.add(str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(package)))
    assert files <= set(rulecache.CODE), files - set(rulecache.CODE)


# ----------------------------------------------------------------------------- imports
def imported_by(args: list[str], watch: tuple[str, ...]) -> list[str]:
    code = ("import sys, json\nfrom reasoner.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            f"    pass\nprint(json.dumps([m for m in {list(watch)!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


HEAVY = ("duckdb", "pyarrow", "z3", "reasoner.authoring.check", "reasoner.proof.explain", "reasoner.engines.sql", "reasoner.authoring.smt",
         "multiprocessing", "pyspark", "reasoner.engines.spark", "reasoner.engines.spark_session")


@pytest.mark.parametrize("args", [COMMANDS[0], ["recommend", P01]], ids=["query", "recommend"])
def test_query_and_recommend_import_no_checker_explainer_or_duckdb(args) -> None:
    assert imported_by(args, HEAVY) == []


def test_why_imports_the_explainer_but_not_duckdb_or_the_checker() -> None:
    # nor what only other proof formats need: html (its entity table) and the DOT writer
    assert imported_by(COMMANDS[4], HEAVY + ("html", "reasoner.render.proof_dot")) == ["reasoner.proof.explain"]


def test_help_imports_no_engine_parser_or_rule_set() -> None:
    # nor the syntax tree: its ~20 classes cost milliseconds to create (reasoner/language/record.py)
    assert imported_by(["--help"], HEAVY + ("pyDatalog", "lark", "reasoner.engines.pydatalog", "reasoner.analysis.program",
                                            "reasoner.io.facts", "reasoner.analysis.rulecache",
                                            "reasoner.language.syntax")) == []


def test_a_plain_fact_file_and_goal_need_no_lark(tmp_path) -> None:
    """With the rule set cached, a one-patient query never imports lark."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REASONER_")}
    env["REASONER_CACHE_DIR"] = str(tmp_path)
    code = ("import sys\nfrom reasoner.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('lark' in sys.modules)")
    for _ in range(2):  # the first run builds the cache (and parses the rules with lark)
        done = subprocess.run([sys.executable, "-c", code, *COMMANDS[0]], cwd=ROOT, env=env, capture_output=True,
                              text=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


# ----------------------------------------------------------------------------- --help
def test_help_shows_every_command_summary_whole() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    section = result.output.split("Commands:\n", 1)[1]
    summaries: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, text = line.strip().partition(" ")
            summaries[name] = text.strip()
        elif line.strip() and name:
            summaries[name] += " " + line.strip()
    assert set(summaries) == set(main.commands)
    for name, text in summaries.items():
        command = main.commands[name]
        first = command.short_help or " ".join(command.help.split("\n\n")[0].split())
        assert text == first and not text.endswith("...") and text.endswith("."), (name, text)


# ----------------------------------------------------------------------------- the fast path
def shape(node):
    """A parsed node with everything that matters: types of values, variable names, spans."""
    if isinstance(node, (Atom,)):
        return ("atom", node.pred, tuple(shape(a) for a in node.args), node.span)
    if isinstance(node, Var):
        return ("var", node.name, node.span)
    if isinstance(node, Const):
        return ("const", type(node.value).__name__, node.value, node.span)
    if hasattr(node, "pred"):  # a Fact
        return ("fact", node.pred, tuple((type(v).__name__, v) for v in node.args), node.span)
    return ("other", repr(node))


def lark_facts(text: str):
    try:
        return [shape(f) for f in _parse(text, "f.facts", "facts")]
    except ReasonerError:
        return None


def lark_goal(text: str):
    try:
        statements = _parse(text, "<goal>", "program")
    except ReasonerError:
        return None
    if len(statements) != 1 or statements[0].head is None or statements[0].body:
        return None
    return [shape(statements[0].head)]


def check_facts(text: str) -> None:
    fast = _fast_atoms(text, "f.facts", goal=False)
    if fast is not None:
        assert [shape(f) for f in fast] == lark_facts(text), text


def check_goal_text(text: str) -> None:
    fast = _fast_atoms(text, "<goal>", goal=True)
    if fast is not None and len(fast) == 1:  # as parse_goal takes it
        assert [shape(a) for a in fast] == lark_goal(text), text


def test_every_fact_file_of_the_repository_reads_the_same_on_the_fast_path() -> None:
    files = [p for p in ROOT.rglob("*.facts") if ".venv" not in p.parts]
    assert len(files) > 20
    fast = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        check_facts(text)
        fast += _fast_atoms(text, "f.facts", goal=False) is not None
    assert fast > len(files) // 2  # most are plain


@pytest.mark.parametrize("goal", [
    "crs_grade(P, G).", "recommend(p01, A).", "dose_mg(p01, tocilizumab, M).", "weight_kg(17, K).",
    "weight_kg(007, K).", "p(_, _, X, _Y).", "p(-3, - 2.5, \"a b\", 'x').", "p().", "p(max).", "p(maximum, abs_x).",
    "p(min).", "p(X) .", "p(X)\n.", "count(X).", "p(\"a\\\"b\").", "p(1e3).", "p(3-2).", "p($s).", "p(X), q(X).",
    "p(X). q(X).", "p(1.5.2).", "p(--3).", "not(X).", "p(X,).", "p(%c\nX).",
])
def test_goals_read_the_same_on_the_fast_path(goal) -> None:
    check_goal_text(goal)


def test_plain_goals_and_facts_take_the_fast_path() -> None:
    assert _fast_atoms("crs_grade(P, G).", "<goal>", goal=True) is not None
    assert _fast_atoms("weight_kg(p1, 72).\n% c\ntemperature_c(p1, -1.5).", "f", goal=False) is not None
    assert _fast_atoms("p(max).", "<goal>", goal=True) is None  # a keyword of expressions: lark decides
    assert _fast_atoms('p("a\\nb").', "f", goal=False) is None  # an escape: lark checks it


TOKENS = st.sampled_from([
    "weight_kg", "p1", "p01", "abc", "max", "min", "abs", "count", "sum", "not", "one", "input", "for", "none",
    "at", "most", "X", "_", "_Y", "Kg", "0", "007", "72", "37.5", "1.", ".5", "1e3", "99999999999999999999999999",
    "1" * 400, '"a b"', '""', '"a\\"b"', '"a\\qb"', '"%"', "(", ")", ",", ".", "-", "--", "+", "*", "/", ":-", "$x",
    "!", "=", "%", "% note\n", " ", "  ", "\t", "\n", "\r\n", "\r", "\f", "é", "@id x",
])
ATOMISH = st.builds(
    lambda name, args, gaps, end: name + gaps[0] + "(" + gaps[1] + ("," + gaps[2]).join(args) + gaps[3] + ")" + end,
    st.sampled_from(["weight_kg", "oxygen", "p", "min", "count", "Xp", "p q"]),
    st.lists(st.one_of(TOKENS, st.sampled_from(["-3", "- 4.25", "-\n7", "x", "Y", "_", '"s"'])), max_size=4),
    st.lists(st.sampled_from(["", " ", "\n", "\t", "% c\n", "\r\n"]), min_size=4, max_size=4),
    st.sampled_from([".", ".\n", " .", "", ".%x", ".\n% end"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(ATOMISH, TOKENS), max_size=6).map("".join))
def test_generated_fact_files_read_the_same_on_the_fast_path(text) -> None:
    check_facts(text)


@settings(max_examples=400, deadline=None)
@given(ATOMISH)
def test_generated_goals_read_the_same_on_the_fast_path(text) -> None:
    check_goal_text(text.strip() if text.strip().endswith(".") else text.strip() + ".")
