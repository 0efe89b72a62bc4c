"""An evaluator for the `datalog-conformance` suite (PyPI, 0.1.0) over the reasoner's
own pipeline: parser, checker, compiler and engine (docs/conformance.md).

The suite hands over a program as `facts` ({predicate: [tuple, ...]}) and `rules` (rule
strings in Soufflé/Nemo/crepe style). `translate` rewrites it into the rule language's
TEXT (docs/language.md); nothing is evaluated but what `load_rules` parses and checks
and what `Engine` runs:

- every bare identifier that is not a predicate name is a VARIABLE (Soufflé's naming;
  the Nemo cases write upper-case variables, which reads the same), `_` stays `_`;
  variables become `V_<name>`, so `x` and `X` stay apart and no name starts with `_`;
- constants are the quoted strings and numbers; strings are re-quoted with the
  language's escapes, so `"1"` stays the string "1";
- predicate names become `p_<name>` (`Fib` -> `p_Fib`; the model maps them back);
- `not p(...)` -> `!p(...)`; a comparison wrapped in parentheses loses them; a missing
  final `.` is added; `T (x1, x4)` is an atom;
- arithmetic inside a BODY atom (`Fib(n - 1, x)`) is bound first, as the language asks:
  `p_Fib(E1, V_x), E1 = V_n - 1` (the same meaning: the atom holds for the value);
- the program's facts become facts of the rule text (static facts), so the checker sees
  every predicate's every use: a predicate used with two arities is rejected (E003).

Declarations are inferred (`load_rules(text=..., infer_declarations=True)`): a predicate
gets the arity of its first use and arguments of type `any`.

A rejected program raises a `ConformanceError` (a `ReasonerError`) whose `.code` is the
suite's name for the kind of problem our checker reported (`ERROR_KINDS`); its
diagnostics keep our own codes (`reasoner_code`).

`Evaluator` runs each program in a child process with a time limit, so a hang is a
failure with a message, never a hung test run (pyDatalog's loops run in compiled code
that no signal interrupts). `DuckDBEvaluator` is the same over the DuckDB engine
(`reasoner.engines.sql.DuckDBEngine`): the same translation and checks, the rule set
compiled to SQL instead of pyDatalog clauses.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from reasoner.engines.pydatalog import Engine
from reasoner.language.errors import Diagnostic, EvaluationLimit, ReasonerError
from reasoner.language.parse import unescape
from reasoner.analysis.program import load_rules
from reasoner.language.syntax import Span

__all__ = [
    "ArityMismatchError", "ConformanceError", "CyclicNegationError", "DuckDBEvaluator", "ENGINES", "ERROR_KINDS",
    "EvaluationCrash", "EvaluationTimeout", "Evaluator", "UnsupportedValueError",
    "SafetyViolationError", "TranslationError", "evaluate_program", "suite_kind", "translate",
]

Value = Any  # str | int | float, as the suite gives them
Facts = Mapping[str, Sequence[Sequence[Value]]]

PRED_PREFIX = "p_"
VAR_PREFIX = "V_"
TEMP_PREFIX = "E"  # E1, E2, ...: never the name of a translated variable (those start with V_)
ORIGIN = "<conformance>"

ENGINES = ("pydatalog", "duckdb")
"""The engines a program can run on: the reference pyDatalog engine, and DuckDB."""

DEFAULT_TIME_LIMIT = 60.0
"""Seconds per program (child process wall clock). The slowest case the test run
evaluates (LUBM, 103k facts) takes about 15 s on a 2-core machine (docs/conformance.md)."""


# ============================================================================ errors
class ConformanceError(ReasonerError):
    """A program the reasoner rejects, with `.code` in the suite's vocabulary.

    The runner of `datalog-conformance` accepts an expected error when the exception's
    class name, `str()` or `.code` equals the case's `expect_error`. `.code` is the
    suite's name for the first diagnostic's kind (`suite_kind`); `.reasoner_code` is
    ours (E003, E007, ...), and each diagnostic keeps its own.
    """

    @property
    def reasoner_code(self) -> str:
        return self.diagnostics[0].code if self.diagnostics else "E000"

    @property
    def code(self) -> str:  # type: ignore[override]
        return suite_kind(self.diagnostics[0]) if self.diagnostics else "error"


class ArityMismatchError(ConformanceError):
    """E003: a predicate used with two numbers of arguments."""


class CyclicNegationError(ConformanceError):
    """E008: negation through recursion (no stratified model)."""


class SafetyViolationError(ConformanceError):
    """E007: a variable no positive body literal binds, or `_` where a value is needed."""


class TranslationError(ConformanceError):
    """A rule string the translator cannot read (it is not in the suite's rule syntax)."""


class UnsupportedValueError(ConformanceError):
    """A fact value the language has no constant for (a boolean, NaN, infinity)."""


ERROR_KINDS: dict[str, str] = {
    # our code -> the suite's name (E007 is refined by `suite_kind`)
    "E001": "syntax_error",
    "E002": "undeclared_predicate",
    "E003": "arity_mismatch",
    "E004": "type_error",
    "E007": "unbound_variable",
    "E008": "cyclic_negation",
    "E009": "cyclic_aggregation",
}

_ERROR_CLASSES: dict[str, type[ConformanceError]] = {
    "E003": ArityMismatchError,
    "E007": SafetyViolationError,
    "E008": CyclicNegationError,
}

# E007 messages that are not about a named variable (analysis/rulecheck.py, `_safety` and
# `RuleChecker.check_rule`): `_` in a head, a fact with a variable argument.
_ANONYMOUS_SAFETY = re.compile(r"_ in a head|variables? _ in |a fact's arguments must be constants")


def suite_kind(diagnostic: Diagnostic) -> str:
    """The suite's name for one of our diagnostics.

    E007 (unsafe rule) has two names in the suite: `unbound_variable` when a NAMED
    variable is not bound by a positive body literal (in the head, a comparison, a
    negation), `safety_violations` when the problem is not a named variable (crepe's
    "underscore in goal": `Ok(_) :- Ok(_)`). Every E007 is raised as a
    `SafetyViolationError` (the class name the gunray cases expect).
    """
    if diagnostic.code == "E007" and _ANONYMOUS_SAFETY.search(diagnostic.message):
        return "safety_violations"
    return ERROR_KINDS.get(diagnostic.code, diagnostic.code)


def conformance_error(diagnostics: Iterable[Diagnostic], class_name: str | None = None) -> ConformanceError:
    """Our diagnostics as the exception the suite can match: the class is picked by the
    first diagnostic's code, or given by name (an error rebuilt from a child process)."""
    diagnostics = sorted(set(diagnostics), key=Diagnostic.sort_key)
    first = diagnostics[0].code if diagnostics else "E000"
    by_name = {c.__name__: c for c in (ArityMismatchError, CyclicNegationError, SafetyViolationError,
                                       TranslationError, UnsupportedValueError)}
    cls = by_name.get(class_name or "") or _ERROR_CLASSES.get(first, ConformanceError)
    return cls(diagnostics)


# ============================================================================ translation
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:-|!=|<=|>=|==|[()<>=+\-*/,.!])
""", re.VERBOSE)

_COMPARISONS = {"=", "!=", "<", "<=", ">", ">=", "=="}


@dataclass(frozen=True)
class _Tok:
    kind: str  # string, number, ident, op
    text: str
    pos: int


def _tokenize(rule: str, where: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if m is None:
            raise _translation_error(where, f"cannot read {rule[pos:pos + 20]!r} in rule {rule!r}")
        if m.lastgroup != "ws":
            tokens.append(_Tok(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    return tokens


def _translation_error(where: str, message: str) -> TranslationError:
    return TranslationError([Diagnostic(Span(where, 0, 0), message, "E001")])


def pred_name(name: str) -> str:
    return PRED_PREFIX + name


def var_name(name: str) -> str:
    return name if name == "_" else VAR_PREFIX + name


def quote(value: Value, where: str = ORIGIN) -> str:
    """A fact value as a constant of the language."""
    if isinstance(value, bool) or value is None:
        raise UnsupportedValueError([Diagnostic(Span(where, 0, 0), f"no constant for the value {value!r}", "E004")])
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if value != value or value in (float("inf"), float("-inf")) or "e" in text:
            raise UnsupportedValueError([Diagnostic(Span(where, 0, 0), f"no constant for the number {value!r}",
                                                    "E004")])
        return text
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _split(tokens: list[_Tok], sep: str) -> list[list[_Tok]]:
    """Split at `sep` outside parentheses."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            depth -= 1
        if depth == 0 and tok.kind == "op" and tok.text == sep:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def _closing(tokens: list[_Tok], open_index: int) -> int:
    depth = 0
    for i in range(open_index, len(tokens)):
        if tokens[i].text == "(" and tokens[i].kind == "op":
            depth += 1
        elif tokens[i].text == ")" and tokens[i].kind == "op":
            depth -= 1
            if depth == 0:
                return i
    return -1


class _RuleTranslator:
    """One rule string -> one clause of the rule language."""

    def __init__(self, rule: str, where: str):
        self.rule = rule
        self.where = where
        self.temps = 0
        self.extra: list[str] = []  # `E1 = expr` bindings of body-atom arithmetic

    def fail(self, why: str) -> TranslationError:
        return _translation_error(self.where, f"{why} in rule {self.rule!r}")

    def translate(self) -> str:
        tokens = _tokenize(self.rule, self.where)
        if tokens and tokens[-1].kind == "op" and tokens[-1].text == ".":
            tokens = tokens[:-1]  # the final '.' is optional in the suite's rules
        if not tokens:
            raise self.fail("an empty rule")
        heads = [i for i, t in enumerate(tokens) if t.kind == "op" and t.text == ":-"]
        if len(heads) > 1:
            raise self.fail("more than one ':-'")
        if not heads:
            return self.atom(tokens, head=True) + "."
        head_tokens, body_tokens = tokens[:heads[0]], tokens[heads[0] + 1:]
        if not body_tokens:
            raise self.fail("an empty body")
        head = self.atom(head_tokens, head=True) if head_tokens else ""
        body = [self.literal(part) for part in _split(body_tokens, ",")]
        body += self.extra
        return f"{head} :- {', '.join(body)}."

    def literal(self, tokens: list[_Tok]) -> str:
        if not tokens:
            raise self.fail("an empty body literal")
        first = tokens[0]
        if first.kind == "ident" and first.text == "not" and len(tokens) > 1 and tokens[1].kind == "ident":
            return "!" + self.atom(tokens[1:], head=False)
        if first.kind == "op" and first.text == "!":
            return "!" + self.atom(tokens[1:], head=False)
        if self._is_atom(tokens):
            return self.atom(tokens, head=False)
        # a comparison, perhaps wrapped in parentheses: `(n <= 25)`
        while first.kind == "op" and first.text == "(" and _closing(tokens, 0) == len(tokens) - 1:
            tokens = tokens[1:-1]
            if not tokens:
                raise self.fail("empty parentheses")
            first = tokens[0]
        ops = [i for i, t in enumerate(tokens) if t.kind == "op" and t.text in _COMPARISONS
               and _depth_at(tokens, i) == 0]
        if len(ops) != 1:
            raise self.fail(f"cannot read the body literal {' '.join(t.text for t in tokens)!r}")
        i = ops[0]
        op = "=" if tokens[i].text == "==" else tokens[i].text
        return f"{self.expr(tokens[:i])} {op} {self.expr(tokens[i + 1:])}"

    @staticmethod
    def _is_atom(tokens: list[_Tok]) -> bool:
        return (len(tokens) >= 3 and tokens[0].kind == "ident" and tokens[1].text == "("
                and tokens[1].kind == "op" and _closing(tokens, 1) == len(tokens) - 1)

    def atom(self, tokens: list[_Tok], head: bool) -> str:
        if not self._is_atom(tokens):
            raise self.fail(f"expected an atom, got {' '.join(t.text for t in tokens)!r}")
        inner = tokens[2:-1]
        args: list[str] = []
        if inner:
            for part in _split(inner, ","):
                if not part:
                    raise self.fail("an empty argument")
                if head or _is_term(part):
                    args.append(self.expr(part))
                else:  # arithmetic in a body atom: bind it to a fresh variable first
                    self.temps += 1
                    temp = f"{TEMP_PREFIX}{self.temps}"
                    self.extra.append(f"{temp} = {self.expr(part)}")
                    args.append(temp)
        return f"{pred_name(tokens[0].text)}({', '.join(args)})"

    def expr(self, tokens: list[_Tok]) -> str:
        if not tokens:
            raise self.fail("an empty expression")
        out: list[str] = []
        for i, tok in enumerate(tokens):
            if tok.kind == "ident":
                if i + 1 < len(tokens) and tokens[i + 1].text == "(":
                    raise self.fail(f"the functor {tok.text}(...) is not supported")
                out.append(var_name(tok.text))
            elif tok.kind == "string":
                out.append(quote(unescape(tok.text[1:-1]), self.where))
            elif tok.kind == "number":
                out.append(tok.text)
            elif tok.text in ("+", "-", "*", "/", "(", ")"):
                out.append(tok.text)
            else:
                raise self.fail(f"unexpected {tok.text!r}")
        return " ".join(out)


def _depth_at(tokens: list[_Tok], index: int) -> int:
    depth = 0
    for tok in tokens[:index]:
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            depth -= 1
    return depth


def _is_term(tokens: list[_Tok]) -> bool:
    """A variable, `_`, a constant, or a negative number: no arithmetic to bind."""
    if len(tokens) == 1:
        return tokens[0].kind in ("ident", "string", "number")
    return len(tokens) == 2 and tokens[0].text == "-" and tokens[1].kind == "number"


def translate(facts: Facts, rules: Sequence[str]) -> str:
    """The program as text of the rule language: its rules, then its facts.

    Raises `TranslationError` for a rule the translator cannot read.
    """
    lines = ["% translated from a datalog-conformance program (reasoner/conformance.py)"]
    for index, rule in enumerate(rules):
        lines.append(_RuleTranslator(rule, f"{ORIGIN} rule {index + 1}").translate())
    for pred, rows in facts.items():
        name = pred_name(pred)
        where = f"{ORIGIN} facts of {pred}"
        for row in rows:
            lines.append(f"{name}({', '.join(quote(v, where) for v in row)}).")
    return "\n".join(lines) + "\n"


def original_name(pred: str) -> str | None:
    """The suite's name of a translated predicate (None for the engine's own)."""
    return pred[len(PRED_PREFIX):] if pred.startswith(PRED_PREFIX) else None


# ============================================================================ evaluation
def evaluate_program(facts: Facts, rules: Sequence[str], *, time_limit: float | None = None,
                     engine: str = "pydatalog") -> dict[str, set[tuple]]:
    """Translate, load (parse + check), compile and evaluate, in this process, on `engine`
    (one of `ENGINES`).

    Returns {original predicate: set of tuples}, input facts included. Raises a
    `ConformanceError` when the reasoner rejects the program, `EvaluationLimit` when it
    runs past `time_limit` (checked by the engine between queries).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    text = translate(facts, rules)
    try:
        ruleset = load_rules(ORIGIN, text=text, infer_declarations=True)
        if engine == "duckdb":
            from reasoner.engines.sql import DuckDBEngine  # imported by the runs that use it
            model = DuckDBEngine(ruleset, time_limit=time_limit).evaluate([])
        else:
            model = Engine(ruleset, time_limit=time_limit, record_firings=False).evaluate([])  # no proofs here
    except ConformanceError:
        raise
    except ReasonerError as exc:
        raise conformance_error(exc.diagnostics) from None
    out: dict[str, set[tuple]] = {}
    for pred, rows in model.facts.items():
        name = original_name(pred)
        if name is not None:
            out[name] = set(rows)
    return out


def _child(conn: Any, facts: Facts, rules: Sequence[str], time_limit: float | None, engine: str) -> None:
    """Runs in the child process: sends (kind, payload, detail), kind one of ok,
    rejected, limit, crash. Exceptions are sent as data: a ReasonerError does not
    survive pickling (its constructor takes diagnostics, its args hold the message)."""
    try:
        started = time.monotonic()
        model = evaluate_program(facts, rules, time_limit=time_limit, engine=engine)
        conn.send(("ok", model, time.monotonic() - started))
    except ReasonerError as exc:
        conn.send(("rejected", (exc.diagnostics, type(exc).__name__), None))
    except EvaluationLimit as exc:
        conn.send(("limit", str(exc), None))
    except BaseException:  # noqa: BLE001 - anything else is reported, not lost
        conn.send(("crash", traceback.format_exc(), None))
    finally:
        conn.close()


class EvaluationTimeout(EvaluationLimit):
    """The child process ran past the time limit and was killed."""


class EvaluationCrash(RuntimeError):
    """The evaluation failed unexpectedly (a bug, not a rejected program)."""


def _fingerprint(facts: Facts, rules: Sequence[str], engine: str) -> str:
    """The program's content as a digest (pickle keeps 1, 1.0, True and "1" apart).
    Equal programs built differently may pickle differently: a cache miss, never a
    wrong answer."""
    content = (engine, list(rules), sorted((pred, list(rows)) for pred, rows in facts.items()))
    return hashlib.sha256(pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()


class Evaluator:
    """`datalog_conformance.DatalogEvaluator` over the reasoner's own pipeline.

    `evaluate(program)` returns {predicate: set(tuples)} (input predicates included) or
    raises a `ConformanceError` for a rejected program. With `isolate` (the default)
    each program runs in a child process that is killed after `time_limit` seconds
    (`EvaluationTimeout`). Results are cached by the program's content, so the suite's
    cases that share one program (LUBM: 20 cases, one per exported relation) evaluate
    it once; `cache=False` turns that off.
    """

    _cache: dict[str, tuple[str, Any]] = {}  # shared by instances: the runner makes one per test
    engine = "pydatalog"
    """The engine programs run on (`ENGINES`)."""

    def __init__(self, time_limit: float = DEFAULT_TIME_LIMIT, isolate: bool = True, cache: bool = True):
        self.time_limit = time_limit
        self.isolate = isolate
        self.cache = cache
        self.last_seconds: float | None = None
        """Wall-clock seconds of the last evaluation that ran (not served from the cache)."""

    def evaluate(self, program: Any) -> dict[str, set[tuple]]:
        facts: Facts = program.facts
        rules: Sequence[str] = list(program.rules)
        key = _fingerprint(facts, rules, self.engine) if self.cache else ""
        if self.cache and key in Evaluator._cache:
            outcome = Evaluator._cache[key]
        else:
            started = time.monotonic()
            outcome = self._run(facts, rules)
            self.last_seconds = time.monotonic() - started
            if self.cache and outcome[0] != "crash":  # a timeout would recur: keep it too
                Evaluator._cache[key] = outcome
        kind, payload = outcome
        if kind == "ok":
            return {pred: set(rows) for pred, rows in payload.items()}
        if kind == "rejected":
            diagnostics, class_name = payload
            raise conformance_error(diagnostics, class_name)
        if kind == "timeout":
            raise EvaluationTimeout(payload)
        if kind == "limit":
            raise EvaluationLimit(payload)
        raise EvaluationCrash(payload)

    def _run(self, facts: Facts, rules: Sequence[str]) -> tuple[str, Any]:
        if not self.isolate:
            try:
                return ("ok", evaluate_program(facts, rules, time_limit=self.time_limit, engine=self.engine))
            except ReasonerError as exc:
                return ("rejected", (exc.diagnostics, type(exc).__name__))
        methods = multiprocessing.get_all_start_methods()
        # fork: the child starts at once with pyDatalog, lark and the program in memory
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(send, facts, rules, self.time_limit, self.engine), daemon=True)
        child.start()
        send.close()
        try:
            if not receive.poll(self.time_limit):
                return ("timeout", f"no answer in {self.time_limit:g} s: the evaluation was stopped "
                                   "(child process killed)")
            try:
                kind, payload, _extra = receive.recv()
            except EOFError:
                child.join(5)
                return ("crash", f"the evaluation process died (exit code {child.exitcode})")
            return (kind, payload)
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join(5)



class DuckDBEvaluator(Evaluator):
    """`Evaluator` over the DuckDB engine: the same translation, parser and checks, the
    rule set compiled to SQL (a recursive component runs as a semi-naive loop of SQL
    statements), in a child process with the same time limit and cache.

    Where it differs from the pyDatalog engine (docs/duckdb.md, "Limits"): each argument
    holds one type, so a program whose argument holds both numbers and strings is
    rejected (E004, `type_error`), and whole numbers come back as ints (3.0 as 3, equal
    in the suite's sets)."""

    engine = "duckdb"
