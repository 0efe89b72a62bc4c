"""Every command over random rule sets and fact files (issue 16, item 5).

Random small rule sets — valid ones, and ones broken the ways authors break them (syntax
errors, undeclared predicates, unsafe variables, negation and aggregation through
recursion, bad settings, type and arity mismatches) — with random fact files in each
form (valid and hostile), through `query`, `recommend`, `why`, `why-not`, `conflicts`,
`check --static-only`, `rules`, `test` and `verify` (on what `why --format json` wrote),
plus the bundled CRS rules with mutated example patients, where `recommend` fits.

For every run: no traceback and no internal error (E023), exit status 0, 1 or 2, and a
per-run time bound far above the normal time. Where the inputs are known bad (the rules
or the facts do not load), the commands that need them must exit 2. A subset runs as real
processes, twice, under different PYTHONHASHSEEDs: the same stdout bytes both times, and
the bytes the in-process run printed.

Runs in-process (click's CliRunner: the same code path as the `reasoner` script below the
process boundary); the fixed seed makes the cases the same on every run. A failure lists
each offending run with its command and the inputs to reproduce it.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import ReasonerError, load_facts, load_rules
from reasoner.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = 16  # the cases are a function of this alone
RANDOM_CASES = 70  # random rule sets, each with its fact files and every command
CRS_CASES = 20  # the bundled rules with mutated example patients
RUN_LIMIT = 30.0  # seconds for one in-process command (they take 0.05-1.5 s; >= 20x)
PROCESS_LIMIT = 60.0  # seconds for one command as a process (about 1 s)
SEEDED_RUNS = 24  # in-process runs repeated as processes under two hash seeds


# ----------------------------------------------------------------------------- random rule sets
HEADER = """\
.type color = red | green | blue
.decl a(p: id, x: number[0, 100] "u") input "a measurement"
.decl b(p: id, y: symbol) input "a label"
.decl c(p: id, k: color) input "a colour"
.decl w(p: id, kg: number[1, 200] "kg") input one "a weight"
.decl e(x: id, y: id) input "an edge"
.source s1 "a source"
.setting lim = 10 [0, 100] "u" "a threshold"
.setting k = 2 "a factor"
"""

# name → (declarations, rules): pieces a rule set is made of; `requires` pieces come along
PIECES: dict[str, tuple[str, str]] = {
    "cmp": ('.decl big(p: id, x: number) output "over the threshold"',
            "big(P, X) :- a(P, X), X > $lim."),
    "neg": ('.decl lone(p: id) output "labelled, not red"',
            "lone(P) :- b(P, _), !c(P, red)."),
    "count": ('.decl na(p: id, n: integer) output "how many a"',
              "na(P, N) :- b(P, _), N = count : { a(P, _) }."),
    "sum": ('.decl sa(p: id, s: number) output "sum of a"',
            "sa(P, S) :- w(P, _), S = sum X : { a(P, X) }."),
    "max": ('.decl ma(p: id, m: number) output "largest a"',
            "ma(P, M) :- w(P, _), M = max X : { a(P, X) }."),
    "arith": ('.decl dose(p: id, mg: number) output "a capped dose"',
              "dose(P, M) :- w(P, Kg), M = min($k * Kg, 150) / 2."),
    "divide": ('.decl ratio(p: id, r: number) output "may divide by zero"',
               "ratio(P, R) :- a(P, X), R = 10 / (X - 50)."),
    "head": ('.decl dbl(p: id, x: number) output "twice a"',
             "dbl(P, X * 2) :- a(P, X)."),
    "abs": ('.decl dev(p: id, d: number) output "distance from the threshold"',
            "dev(P, D) :- a(P, X), D = abs(X - $lim)."),
    "reach": ('.decl reach(x: id, y: id) output "reachable"',
              "reach(X, Y) :- e(X, Y).\nreach(X, Z) :- reach(X, Y), e(Y, Z)."),
    "count_up": ('.decl upto(p: id, n: number) output "0 to 4"',
                 "upto(P, 0) :- a(P, _).\nupto(P, M) :- upto(P, N), N < 4, M = N + 1."),
    "quiet": ('.decl quiet(p: id) output "weighed, nothing big"',
              "quiet(P) :- w(P, _), !big(P, _)."),
    "fact": ('.decl fav(k: color) internal "favourite colours"\n.decl liked(p: id) output "a favourite colour"',
             "fav(red).\nfav(blue).\nliked(P) :- c(P, K), fav(K)."),
    "string": ('.decl named(p: id, s: symbol) output "quoted strings"',
               'named(P, "pt 1") :- b(P, "x y").\nnamed(P, Y) :- b(P, Y), Y != "x y".'),
    "conflict": ('.decl indicated(p: id, act: symbol) internal "wanted"\n'
                 '.decl contraindicated(p: id, act: symbol, why: symbol) internal "forbidden"\n'
                 '.decl conflict(p: id, act: symbol, why: symbol) output "wanted and forbidden"',
                 "indicated(P, rest) :- w(P, _).\ncontraindicated(P, rest, heavy) :- w(P, Kg), Kg > 100.\n"
                 "conflict(P, A, R) :- indicated(P, A), contraindicated(P, A, R)."),
    "constraint": ("", ":- a(P, X), X > 95."),
    "require": ('.decl grade(p: id, g: integer[0, 2]) output "a grade"',
                'grade(P, 1) :- a(P, X), X < 50.\ngrade(P, 2) :- a(P, X), X >= 50.\n'
                '.require some grade(P, _) for a(P, _) "every measured patient is graded"'),
}
REQUIRES = {"quiet": "cmp"}

# the ways a rule set is broken: each appends to, or rewrites, a valid one
BREAKS = ["syntax", "truncate", "undeclared", "unsafe", "negation_cycle", "aggregate_cycle", "unknown_setting",
          "setting_range", "setting_syntax", "duplicate_id", "type", "arity", "include", "empty_range",
          "unicode", "bad_strength", "head_anonymous", "soup"]
SOUP = ["big", "a", "b", "P", "X", "_", "(", ")", ",", ".", ":-", "!", "not", "=", "<", "!=", "+", "*", "/", "-",
        "count", "sum", "min", "max", "abs", ":", "{", "}", "$lim", "$k", "3", "2.5", '"s"', "red", "@id", "@source",
        ".decl", ".setting", "[", "]", "input", "output", "%", "\n"]


def _annotate(rng: random.Random, rule: str, n: int) -> str:
    if rule.startswith(".") or rng.random() < 0.3:
        return rule
    lines = [f"@id r{n}"]
    if rng.random() < 0.7:
        lines.append("@source s1")
    if rng.random() < 0.5:
        says = rng.choice(["a sentence", "ünïcödé", 'with \\"quotes\\"'])
        lines.append(f'@says "rule {n}: {says}"')
    if rng.random() < 0.2:
        lines.append(f"@strength {rng.choice(['strong', 'standard', 'consider', 'option'])}")
    return "\n".join(lines + [rule])


@dataclass
class RuleCase:
    text: str
    pieces: list[str]
    broken: str | None
    outputs: list[tuple[str, list[str]]] = field(default_factory=list)  # derived predicates, argument types


def random_rules(rng: random.Random) -> RuleCase:
    chosen = rng.sample(sorted(PIECES), rng.randint(2, 6))
    for piece in list(chosen):
        if piece in REQUIRES and REQUIRES[piece] not in chosen:
            chosen.append(REQUIRES[piece])
    decls, rules = [], []
    for n, piece in enumerate(chosen):
        d, r = PIECES[piece]
        if d:
            decls.append(d)
        rules += [_annotate(rng, line, 10 * n + i) for i, line in enumerate(r.split("\n"))]
    text = HEADER + "\n".join(decls) + "\n\n" + "\n".join(rules) + "\n"
    outputs = []
    for d in decls:
        for line in d.split("\n"):
            name, args = line.split()[1].split("(")[0], line.split("(", 1)[1].split(")")[0]
            outputs.append((name, re.findall(r"\w+:\s*(\w+)", args)))
    broken = rng.choice(BREAKS) if rng.random() < 0.3 else None
    if broken:
        text = _break(rng, text, broken)
    return RuleCase(text, chosen, broken, outputs)


def _break(rng: random.Random, text: str, how: str) -> str:
    if how == "syntax":  # a character dropped or a stray one inserted, in the rules part
        start = len(HEADER)
        i = rng.randrange(start, len(text))
        return text[:i] + rng.choice(["", "@", "(", ":-", "!", "$", "\u00a0", ",,"]) + text[i + 1:]
    if how == "truncate":
        return text[:rng.randrange(len(HEADER) // 2, len(text))]
    if how == "undeclared":
        return text + "ghost(P) :- a(P, _), b(P, _).\nbig2(P) :- aa(P, _).\n"
    if how == "unsafe":
        return text + ('.decl bad(p: id, q: symbol) output "unsafe"\n'
                       "bad(P, Q) :- b(P, _).\nbad(P, Q) :- b(P, _), !c(P, Q).\n")
    if how == "negation_cycle":
        return text + ('.decl pp(p: id) output "p"\n.decl qq(p: id) output "q"\n'
                       "pp(P) :- b(P, _), !qq(P).\nqq(P) :- b(P, _), !pp(P).\n")
    if how == "aggregate_cycle":
        return text + ('.decl cc(p: id, n: number) output "c"\n'
                       "cc(P, N) :- b(P, _), N = count : { cc(P, _) }.\n")
    if how == "unknown_setting":
        return text + '.decl over(p: id) output "o"\nover(P) :- a(P, X), X > $nosuch.\n'
    if how == "setting_range":
        return text.replace(".setting lim = 10 [0, 100]", ".setting lim = 500 [0, 100]")
    if how == "setting_syntax":
        return text.replace(".setting k = 2", rng.choice([".setting k = 1_0", ".setting k = nan", ".setting k = 2 [3",
                                                          ".setting k = 2 [0, 9] \"u\" \"v\" \"w\"", ".setting k ="]))
    if how == "duplicate_id":
        return text + "@id same\nx1(P) :- w(P, _).\n@id same\nx1(P) :- b(P, _).\n" + '.decl x1(p: id) output "x"\n'
    if how == "type":
        return text + '.decl t1(p: id) output "t"\nt1(P) :- a(P, red).\nt1(P) :- c(P, 3).\n'
    if how == "arity":
        return text + '.decl t2(p: id) output "t"\nt2(P) :- a(P).\nt2(P, Q) :- b(P, Q).\n'
    if how == "include":
        return '.include "missing.dl"\n' + text
    if how == "empty_range":
        return text.replace("number[0, 100]", "number[100, 0]")
    if how == "unicode":
        return text + '.decl ünï(p: id) output "u"\nünï(P) :- b(P, _).\n'
    if how == "bad_strength":
        return text + '.decl s2(p: id) output "s"\n@strength maybe\ns2(P) :- b(P, _).\n'
    if how == "soup":  # a statement of random tokens of the language
        return text + " ".join(rng.choice(SOUP) for _ in range(rng.randint(1, 14))) + "\n"
    if how == "head_anonymous":
        return text + '.decl s3(p: id, q: symbol) output "s"\ns3(P, _) :- b(P, _).\n'
    raise AssertionError(how)


# ----------------------------------------------------------------------------- random fact files
PATIENTS = ["p1", "p2", "p3", '"pt 4"', "n5"]
LABELS = ["x", '"x y"', "lbl", '"ünï"', "red"]


def _valid_facts(rng: random.Random, suffix: str = "") -> list[tuple[str, list]]:
    facts: list[tuple[str, list]] = []
    for p in rng.sample(PATIENTS, rng.randint(1, len(PATIENTS))):
        p = p[:-1] + suffix + '"' if p.endswith('"') else p + suffix
        for _ in range(rng.randint(0, 3)):
            facts.append(("a", [p, rng.choice([0, 5, 10, 11, 49, 50, 51, 96, 100, 37.5, 10.0])]))
        for _ in range(rng.randint(0, 2)):
            facts.append(("b", [p, rng.choice(LABELS)]))
        if rng.random() < 0.6:
            facts.append(("c", [p, rng.choice(["red", "green", "blue"])]))
        if rng.random() < 0.7:
            facts.append(("w", [p, rng.choice([1, 40, 72, 101, 200, 0.5 + 60])]))
        for _ in range(rng.randint(0, 2)):
            facts.append(("e", [p, rng.choice(PATIENTS)]))
    return facts


HOSTILE_LINES = [
    "zz(p1).", "a(p1).", "a(p1, 1000).", "a(p1, -1).", "c(p1, purple).", "a(p1, abc).", "w(p1, 50).\nw(p1, 60).",
    "big(p1, 5).", "a(p1, 5", "a(p1, 1e3).", "a(p1, 1_0).", "a(p1, 99999999999999999999999).", "a(p1, 5.5.5).",
    '"unterminated(p1).', "a(P, 5).", "\x00", "\ufeffa(p1, 5).", "a(p1, ５).", "% only a comment",
    "a(p1, 5). a(p1, 6).", "b(p1, " + "x" * 5000 + ").", "e(p1, p1).", "a(p1, nan).", "a(p1, -0).",
    "b(p1, \"a\\\"b\").", "b(p1, 1" + "0" * 400 + ").", "a(p1, 1" + "0" * 400 + ".5).",
]


def _facts_text(facts: list[tuple[str, list]]) -> str:
    return "".join(f"{pred}({', '.join(map(str, args))}).\n" for pred, args in facts)


def _plain(value) -> object:
    if isinstance(value, str) and value.startswith('"'):
        return json.loads(value)
    return value


def random_facts(rng: random.Random, folder: Path, name: str) -> tuple[Path, bool]:
    """A fact file in one of the three text forms; True if it was meant to be valid."""
    facts = _valid_facts(rng, "" if name.endswith("0") else name[-1])  # a second file: other patients
    hostile = rng.random() < 0.3
    form = rng.choice(["facts", "facts", "json", "csv"])
    path = folder / f"{name}.{form}"
    if form == "facts":
        text = _facts_text(facts)
        if hostile:
            lines = text.splitlines()
            lines.insert(rng.randint(0, len(lines)), rng.choice(HOSTILE_LINES))
            text = rng.choice(["\n", "\r\n"]).join(lines) + "\n"
        path.write_text(text, encoding="utf-8")
    elif form == "json":
        doc: object = [{"predicate": p, "args": [_plain(a) for a in args]} for p, args in facts]
        if hostile:
            doc = rng.choice([
                doc + [{"predicate": "a", "args": ["p1", None]}],  # type: ignore[operator]
                doc + [{"predicate": "a", "args": ["p1", True]}],  # type: ignore[operator]
                doc + [{"predicate": "a", "args": "p1"}],  # type: ignore[operator]
                doc + [{"predicate": "a", "args": ["p1", float("nan")]}],  # type: ignore[operator]
                doc + [{"predicate": "a", "args": ["p1", 10 ** 30]}],  # type: ignore[operator]
                doc + [{"predicate": "a", "args": ["p1", [1]]}],  # type: ignore[operator]
                doc + [{"pred": "a"}],  # type: ignore[operator]
                doc + [["a", "p1", 5]],  # type: ignore[operator]
                {"predicate": "a", "args": ["p1", 5]},
                "[", 17,
            ])
        text = doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=rng.random() < 0.5)
        path.write_text(text, encoding="utf-8")
    else:
        width = 3
        rows = ["predicate,arg1,arg2"]
        for pred, args in facts:
            cells = [json.dumps(_plain(a)) if isinstance(_plain(a), str) and ("," in str(_plain(a)) or " " in str(
                _plain(a))) else str(_plain(a)) for a in args]
            rows.append(",".join([pred] + cells + [""] * (width - 1 - len(cells))))
        if hostile:
            rows.insert(rng.randint(1, len(rows)), rng.choice([
                "a,p1,5,6", "a,p1,abc", "a,p1,", "zz,p1,", "a,p1,1_0", "a,p1,nan", "a,p1,inf", '"a,p1,5', ",,",
                "a,p1,1e3", "w,p1,50\nw,p1,60", "c,p1,purple"]))
            if rng.random() < 0.2:
                rows[0] = rng.choice(["pred,x,y", "", "predicate"])
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path, not hostile


# ----------------------------------------------------------------------------- the CRS rule set
CRS_EXAMPLES = sorted((ROOT / "facts").glob("p*.facts"))
CRS_HOSTILE = ["weight_kg({p}, 0).", "weight_kg({p}, 72).\nweight_kg({p}, 80).", "temperature_c({p}, 50).",
               "oxygen({p}, nasal, 4).", "given({p}, tocilizumab, 576).", "crs_grade({p}, 3).", "spo2({p}, １００).",
               "icans_grade({p}, 2.5).", "recommend({p}, tocilizumab)."]
CRS_GOALS = ["crs_grade(P, G)", "recommend(P, A)", "dose_mg(P, A, M)", "conflict(P, A, R)", "warning(P, W)",
             "indicated({p}, A)", "contraindicated({p}, A, R)"]
CRS_GROUND = ["recommend({p}, anakinra)", "recommend({p}, tocilizumab)", "crs_grade({p}, 4)", "fever({p})",
              "indicated({p}, icu_transfer)"]


def _crs_patient(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if "(" in line and not line.lstrip().startswith("%"):
            return line.split("(", 1)[1].split(",")[0].split(")")[0].strip()
    return "p1"


def crs_case(rng: random.Random, folder: Path) -> tuple[Path, str, bool]:
    source = rng.choice(CRS_EXAMPLES)
    patient = _crs_patient(source)
    lines = source.read_text(encoding="utf-8").splitlines()
    hostile = rng.random() < 0.35
    if rng.random() < 0.5:  # drop a fact: a missing weight, temperature, onset ...
        facts = [i for i, line in enumerate(lines) if line and not line.startswith("%")]
        if facts:
            del lines[rng.choice(facts)]
    if hostile:
        lines.append(rng.choice(CRS_HOSTILE).format(p=patient))
    path = folder / f"crs_{source.stem}.facts"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, patient, not hostile


# ----------------------------------------------------------------------------- running
class RunTimeout(BaseException):
    """A command past RUN_LIMIT (a BaseException, so no `except Exception` swallows it)."""


@contextlib.contextmanager
def time_bound(seconds: float):
    def expire(signum, frame):
        raise RunTimeout()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    args: list[str]
    stdin: str | None
    expect: set[int]
    inputs: list[Path]
    code: int = -1
    stdout: bytes = b""
    stderr: str = ""
    seconds: float = 0.0
    problem: str = ""
    proof_of: tuple | None = None  # verify: the `why` run whose JSON it reads, its stdin, and whether to tamper


def invoke(run: Run) -> Run:
    started = time.monotonic()
    try:
        with time_bound(RUN_LIMIT):
            result = CliRunner().invoke(main, run.args, input=run.stdin)
    except RunTimeout:
        run.seconds = time.monotonic() - started
        run.problem = f"took longer than {RUN_LIMIT:g} s"
        return run
    run.seconds = time.monotonic() - started
    run.code, run.stdout, run.stderr = result.exit_code, result.stdout_bytes, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback
        run.problem = "exception escaped: " + "".join(traceback.format_exception(result.exception))[-1500:]
    elif "Traceback" in run.stderr or "Traceback" in result.stdout:
        run.problem = "a traceback"
    elif "internal error" in run.stderr or "error[E023]" in run.stderr:
        run.problem = "an internal error"
    elif run.code not in (0, 1, 2):
        run.problem = f"exit status {run.code}"
    elif run.code not in run.expect:
        run.problem = f"exit status {run.code}, expected {sorted(run.expect)}"
    return run


def describe(run: Run) -> str:
    shown = []
    for path in run.inputs:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        shown.append(f"--- {path.name}\n{text[:1200]}" + ("...\n" if len(text) > 1200 else ""))
    return (f"{run.problem}: reasoner {' '.join(repr(a) if ' ' in a or not a else a for a in run.args)}"
            + (f"  (stdin {run.stdin[:200]!r})" if run.stdin else "")
            + f"\n  exit {run.code}, {run.seconds:.1f} s; stderr: {run.stderr[-600:]!r}\n" + "".join(shown))


def _loads(rules_path: Path | None, fact_paths: list[Path]) -> tuple[bool, bool]:
    """Do the rules load, and with them the facts? (the oracle for `expect`)"""
    try:
        rules = load_rules(str(rules_path) if rules_path else None)
    except ReasonerError:
        return False, False
    except Exception:  # the command will say how; the run's own checks judge it
        return False, False
    try:
        load_facts(rules, [str(p) for p in fact_paths])
    except ReasonerError:
        return True, False
    except Exception:
        return True, False
    return True, True


ANY = {0, 1, 2}
BAD_GOALS = ["nosuch(X)", "big(P)", 'big(P, "x")', "big(P, X", "", "X", "big(P, X), lone(P)", "ünï(P)", "a(P, X)",
             "big(p1, 1_0)", "dose(P, nan)", "  ", "big(P, X).", "$lim(X)", "big(P, X) :- a(P, X)", "big(_, _)",
             "big(P, P)", "big(P, $lim)", "big(P, 2 + 3)", "not big(P, X)", "!big(P, X)", 'big(P, "unterminated)',
             "big(P, X)\x00", "big(" + "P, " * 300 + "X)", "big(p1, -)", "big(1e3, X)", "reach(X, X)", "upto(p1, N)",
             "dbl(p1, 1" + "0" * 400 + ")",
             "ratio(P, R)", "r0", "@id", ":- a(P, X)", "na(P, 2.0)", "dbl(p1, 20.0)", "named(P, \"pt 1\")"]


def _goal(rng: random.Random, case: RuleCase, ground: bool) -> str:
    if rng.random() < 0.15 or not case.outputs:
        return rng.choice(BAD_GOALS)
    pred, types = rng.choice(case.outputs)
    args = []
    for i, kind in enumerate(types):
        if ground or rng.random() < 0.3:
            pool = {"id": ["p1", "p2", '"pt 4"', "n5"], "symbol": ["x", '"x y"', "rest", "heavy", "lbl"],
                    "color": ["red", "green", "blue"]}.get(kind, ["5", "10", "0", "-3", "2.5", "1", "2", "96"])
            if rng.random() < 0.1:  # the wrong type now and then
                pool = ["p1", "5", "red", "2.5"]
            args.append(rng.choice(pool))
        else:
            args.append(f"V{i}")
    return f"{pred}({', '.join(args)})"


def plan_runs(rng: random.Random, tmp: Path) -> list[Run]:
    runs: list[Run] = []
    for n in range(RANDOM_CASES):
        folder = tmp / f"case{n:02d}"
        (folder / "tests").mkdir(parents=True)
        case = random_rules(rng)
        rules = folder / "main.dl"
        rules.write_text(case.text, encoding="utf-8")
        fact_paths = [random_facts(rng, folder, f"facts{i}")[0] for i in range(rng.choice([1, 1, 2]))]
        facts = [str(p) for p in fact_paths]
        settings = []
        if rng.random() < 0.3:
            good = ["lim=5", "lim=0", "k=-1.5", "lim=100", "lim=49.5"]
            bad = ["lim=500", "lim=1_0", "nosuch=1", "lim=nan", "lim=", "lim=１", "k=1" + "0" * 400,
                   "k=-1" + "0" * 400 + ".5", "lim=-0", "k=0.000000000000000000001"]
            settings = ["--set", rng.choice(good if rng.random() < 0.6 else bad)]
        stdin = None
        if rng.random() < 0.15 and fact_paths[0].suffix == ".facts":
            stdin = fact_paths[0].read_text(encoding="utf-8")
            facts = ["-"]
            fact_paths = fact_paths[:1]
        rules_ok, facts_ok = _loads(rules, fact_paths)
        needs_both = {2} if not facts_ok else ANY
        rules_only = {2} if not rules_ok else ANY
        inputs = [rules, *fact_paths]
        common = ["--rules", str(rules)] + settings
        query_fmt = rng.choice(["text", "json"])
        engine = ["--engine", "duckdb"] if rng.random() < 0.2 else []
        cohort = rng.choice([[], [], ["--chunk-size", "1"], ["--no-stream"], ["--stream"], ["--chunk-size", "2"]])
        if "--stream" in cohort and stdin is not None:
            cohort = []
        runs.append(Run(["query", _goal(rng, case, False), *facts, *common, "--format", query_fmt, *engine, *cohort,
                         "--time-limit", "20"], stdin, needs_both, inputs))
        runs.append(Run(["recommend", *facts, *common], stdin, {2}, inputs))  # not the CRS vocabulary
        why_fmt = rng.choice(["text", "json", "dot", "markdown", "html"])
        why_goal = _goal(rng, case, False)
        runs.append(Run(["why", why_goal, *facts, *common, "--format", why_fmt]
                        + rng.choice([[], [], ["--all"], ["--all", "--max-proofs", "1"], ["--depth", "1"]]),
                        stdin, needs_both, inputs))
        runs.append(Run(["why-not", _goal(rng, case, True), *facts, *common,
                         "--format", rng.choice(["text", "json", "dot", "markdown", "html"])]
                        + rng.choice([[], [], ["--depth", "0"], ["--depth", "6"]]), stdin, needs_both, inputs))
        has_conflict = "conflict" in case.pieces
        runs.append(Run(["conflicts", *facts, *common], stdin, needs_both if has_conflict or not rules_ok else {2},
                        inputs))
        runs.append(Run(["check", "--static-only", str(rules), "--format", rng.choice(["text", "json"]), *settings],
                        None, ANY, inputs))
        runs.append(Run(["rules", str(rules), "--format", rng.choice(["text", "markdown", "json"])], None,
                        rules_only, inputs))
        # an example patient beside the rules, with expectations (some of them bad)
        goal = _goal(rng, case, rng.random() < 0.5)
        lines = [f"% expect: {goal}" if rng.random() < 0.6 else f"% reject: {goal}"]
        if rng.random() < 0.3:
            lines.append(rng.choice(["% setting: lim = 20", "% setting: lim = 500", "% setting: lim = 1_0",
                                     "% setting: nosuch = 1"]))
        test_case = folder / "tests" / "t1.facts"
        test_case.write_text("\n".join(lines) + "\n" + _facts_text(_valid_facts(rng)), encoding="utf-8")
        runs.append(Run(["test", str(rules)], None, rules_only, inputs + [test_case]))
        # verify what `why --format json` wrote (in plan order: written when `why` has run)
        proof = folder / "proof.json"
        runs.append(Run(["verify", str(proof), *facts, *common], stdin, ANY, inputs + [proof]))
        runs[-1].proof_of = (["why", why_goal, *facts, *common, "--format", "json"], stdin, rng.random() < 0.25)
    for n in range(CRS_CASES):
        folder = tmp / f"crs{n:02d}"
        folder.mkdir()
        path, patient, valid = crs_case(rng, folder)
        _, facts_ok = _loads(None, [path])
        expect = ANY if facts_ok else {2}
        settings = []
        if rng.random() < 0.3:
            settings = ["--set", rng.choice(["toci_mg_per_kg=12", "toci_mg_per_kg=-8", "spo2_target=94",
                                             "toci_max_total=2", "nosuch=1", "grade1_persistent_hours=1_0",
                                             "toci_max_mg=1" + "0" * 400, "spo2_target=92.0000001"])]
        fmt = rng.choice(["text", "json", "csv"])
        runs.append(Run(["recommend", str(path), "--format", fmt, *settings]
                        + (["--explain"] if rng.random() < 0.3 and fmt != "csv" else [])
                        + (["--engine", "duckdb"] if rng.random() < 0.2 else []), None, expect, [path]))
        goal = rng.choice(CRS_GOALS).format(p=patient)
        runs.append(Run(["query", goal, str(path), *settings], None, expect, [path]))
        why_goal = rng.choice(CRS_GOALS[:3]).format(p=patient).replace("(P", f"({patient}")
        runs.append(Run(["why", why_goal, str(path), "--format", rng.choice(["text", "json", "html"]), *settings],
                        None, expect, [path]))
        runs.append(Run(["why-not", rng.choice(CRS_GROUND).format(p=patient), str(path), *settings], None, expect,
                        [path]))
        runs.append(Run(["conflicts", str(path), "--format", rng.choice(["text", "json"]), *settings], None, expect,
                        [path]))
        if facts_ok and rng.random() < 0.5:  # the same patient as a CSV cohort, read and checked by DuckDB
            from reasoner.io.duckdb_inputs import write_fact_csv
            rules = load_rules()
            cohort = folder / "cohort.csv"
            write_fact_csv(cohort, load_facts(rules, [str(path)]).facts)
            if not valid or rng.random() < 0.3:
                with cohort.open("a", encoding="utf-8") as fh:
                    fh.write(rng.choice(["weight_kg,p9,0\n", "weight_kg,p9,abc\n", "oxygen,p9,nasal\n", "zz,p9\n",
                                         "weight_kg,p9,70,1\n", "spo2,p9,1_0\n", "crs_grade,p9,3\n", '"\n']))
            runs.append(Run(["recommend", str(cohort), "--engine", "duckdb",
                             "--format", rng.choice(["csv", "json", "text"]), *settings], None, ANY, [cohort]))
            runs.append(Run(["query", goal, str(cohort), "--engine", rng.choice(["duckdb", "pydatalog"]), *settings],
                            None, ANY, [cohort]))
        proof = folder / "proof.json"
        runs.append(Run(["verify", str(proof), str(path), *settings], None, ANY, [path, proof]))
        runs[-1].proof_of = (["why", why_goal, str(path), "--format", "json", *settings], None, rng.random() < 0.25)
    # inputs that are not files of the expected kind
    folder = tmp / "odd"
    (folder / "nomain").mkdir(parents=True)
    (folder / "empty.dl").write_text("", encoding="utf-8")
    (folder / "empty.facts").write_text("", encoding="utf-8")
    (folder / "binary.facts").write_bytes(bytes(range(256)))
    (folder / "latin1.facts").write_bytes("weight_kg(p\u00e9, 70).\n".encode("latin-1"))
    p01 = str(ROOT / "facts" / "p01_grade2_first_dose.facts")
    for args, expect in [
        (["query", "crs_grade(P, G)", str(folder / "nomain")], {2}),
        (["query", "crs_grade(P, G)", str(folder / "missing.facts")], {2}),
        (["query", "crs_grade(P, G)", str(folder / "binary.facts")], {2}),
        (["query", "crs_grade(P, G)", str(folder / "latin1.facts")], {2}),
        (["query", "crs_grade(P, G)", str(folder / "empty.facts")], {0}),
        (["query", "crs_grade(P, G)", "/dev/null"], {0, 2}),
        (["recommend", str(folder / "empty.facts")], {0}),
        (["query", "--rules", str(folder / "nomain"), "x(P)", p01], {2}),
        (["query", "--rules", str(folder / "empty.dl"), "x(P)", p01], {2}),
        (["rules", str(folder / "empty.dl")], {0}),
        (["check", "--static-only", str(folder / "empty.dl")], {0, 1}),
        (["test", str(folder / "empty.dl")], {2}),
        (["rules", str(folder / "binary.facts")], {2}),
        (["verify", str(folder / "binary.facts"), p01], {2}),
        (["verify", str(folder / "empty.facts"), p01], {2}),
        (["why", "crs_grade(p01, G)", p01, "--depth", "0"], {2}),
        (["query", "crs_grade(P, G)", p01, "--time-limit", "nan"], {2}),
    ]:
        runs.append(Run(args, None, expect, []))
    runs.append(Run(["check", "--static-only"], None, {0}, []))
    runs.append(Run(["rules", "--format", "markdown"], None, {0}, []))
    runs.append(Run(["test"], None, {0}, []))
    return runs


def _write_proof(run: Run, rng: random.Random) -> None:
    """The proof document `verify` reads: what `why --format json` printed, sometimes tampered with."""
    args, stdin, tamper = run.proof_of  # type: ignore[misc]
    with time_bound(RUN_LIMIT):
        result = CliRunner().invoke(main, args, input=stdin)
    text = result.stdout
    if tamper and text:
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["", "9", '"', "}", "x"]) + text[i + 1:]
    Path(run.args[1]).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory) -> list[Run]:
    rng = random.Random(SEED)
    tmp = tmp_path_factory.mktemp("fuzz")
    runs = plan_runs(rng, tmp)
    for run in runs:
        if run.proof_of is not None:
            _write_proof(run, rng)
        invoke(run)
    return runs


def test_every_command_survives_random_inputs(fuzz_runs: list[Run]) -> None:
    bad = [run for run in fuzz_runs if run.problem]
    commands = {run.args[0] for run in fuzz_runs}
    assert commands == {"query", "recommend", "why", "why-not", "conflicts", "check", "rules", "test", "verify"}
    codes = {run.code for run in fuzz_runs}
    assert {0, 1, 2} <= codes, codes  # the cases reach every outcome
    assert not bad, f"{len(bad)} of {len(fuzz_runs)} runs went wrong:\n\n" + "\n".join(map(describe, bad[:15]))


def test_the_same_bytes_whatever_the_hash_seed(fuzz_runs: list[Run]) -> None:
    """A spread of the runs above, as processes under two hash seeds: the same stdout
    as each other and as in-process (sets and dicts ordered by hash must not leak out)."""
    rng = random.Random(SEED + 1)
    fine = [run for run in fuzz_runs if not run.problem and run.stdout and run.stdin is None]
    picked: dict[str, Run] = {}
    for run in rng.sample(fine, len(fine)):  # one per command first, then any
        picked.setdefault(run.args[0], run)
    rest = [run for run in fine if run not in picked.values()]
    chosen = list(picked.values()) + rng.sample(rest, max(0, min(len(rest), SEEDED_RUNS - len(picked))))
    differ = []
    for run in chosen:
        outs = []
        for seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            done = subprocess.run([sys.executable, "-m", "reasoner", *run.args], capture_output=True, env=env,
                                  timeout=PROCESS_LIMIT, cwd=ROOT)
            assert b"Traceback" not in done.stderr, describe(run) + done.stderr.decode(errors="replace")
            assert done.returncode == run.code, (seed, done.returncode, describe(run))
            outs.append(done.stdout)
        if not outs[0] == outs[1] == run.stdout:
            differ.append(describe(run) + f"  seed 1: {outs[0][:300]!r}\n  seed 2: {outs[1][:300]!r}\n"
                          f"  in-process: {run.stdout[:300]!r}")
    assert not differ, "\n".join(differ)
