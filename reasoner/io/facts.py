"""Fact files → checked facts, grouped by patient.

Four forms (README, "Fact files"): `.facts` (the rule language's own syntax), `.json`
(an array of {"predicate": ..., "args": [...]}), `.csv` (header `predicate,arg1,arg2,...`,
or one file per predicate) and `.parquet` (the same two layouts). A directory means every
fact file in it, `-` means stdin (in the `.facts` form unless `stdin_format` says
otherwise); /dev/null and a FIFO are read like files.

Every reader hands what it read to one validator, `validate_fact`: known input predicate,
arity, the one number syntax and the text rules of `reasoner.language.values`, type, range,
enumeration value; then `OneFacts` checks that a `one` predicate holds one fact per
patient (E017), whole or streamed. *All* problems are reported together, each located,
and nothing is evaluated from an input that failed. The DuckDB engine checks CSV and
Parquet cohorts in SQL by the same rules (reasoner/io/duckdb_inputs.py).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator

from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.parse import parse_facts
from reasoner.analysis.program import ANY, NUMERIC, RuleSet, suggest, check_value
from reasoner.language.syntax import Fact, Span, Value
from reasoner.language.values import BAD_CHAR, CELL_BLANKS, is_finite, read_number, shown, text_problem

FACT_SUFFIXES = (".facts", ".json", ".csv", ".parquet")


@dataclass
class FactSet:
    """Checked input facts, in the order read."""

    facts: list[Fact] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.facts)

    def patients(self, ruleset: RuleSet) -> list[str]:
        """Patient ids in the order first seen."""
        seen: dict[str, None] = {}
        for fact in self.facts:
            k = ruleset.key_index(fact.pred)
            if k is not None:
                seen.setdefault(str(fact.args[k]), None)
        return list(seen)


def load_facts(ruleset: RuleSet, paths: Iterable[str | Path] = (), *, text: str | None = None,
               name: str = "<facts>", stdin_format: str = "facts") -> FactSet:
    """Read and check facts from files, directories, `-` (stdin) and/or `text`.

    Raises `ReasonerError` with every problem found in any of them.
    """
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    sources: list[tuple[str, str, str]] = []  # (display name, form, text)
    for path in paths:
        try:
            sources.extend(_read_path(str(path), stdin_format))
        except ReasonerError as exc:
            problems += exc.diagnostics
    if text is not None:
        sources.append((name, "facts", text))
    one = OneFacts(ruleset)
    for display, form, content in sources:
        for item in _validated(ruleset, _parsed(ruleset, display, form, content)):
            if isinstance(item, Diagnostic):
                problems.append(item)
            else:
                facts.append(item)
                one.add(item)
    problems += one.problems()
    if problems:
        raise ReasonerError(problems)
    return FactSet(facts)


def read_once(path: str | Path) -> bool:
    """Whether `path` can be read only once: stdin (`-`), a FIFO, a socket or a device
    (not a regular file nor a directory). Such an input is read whole, never streamed in
    two passes."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _read_path(path: str, stdin_format: str) -> list[tuple[str, str, str]]:
    if path == "-":
        return [("<stdin>", stdin_format, _read_stdin())]
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in FACT_SUFFIXES)
        if not files:
            raise ReasonerError.at(Span(path, 0, 0), f"no fact files ({', '.join(FACT_SUFFIXES)}) in this directory",
                                   "E015")
        return [entry for f in files for entry in _read_path(str(f), stdin_format)]
    if not p.exists():  # /dev/null, a FIFO or /dev/stdin are read like files
        raise ReasonerError.at(Span(path, 0, 0), "no such fact file", "E015")
    if p.suffix == ".parquet":
        return [(path, "parquet", "")]  # read by streaming, not as text
    form = {".json": "json", ".csv": "csv"}.get(p.suffix, "facts")
    try:
        with open(p, "rb") as handle:  # read once: a FIFO gives its bytes only once
            data = handle.read()
    except OSError as exc:
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read: {exc.strerror or exc}", "E015") from None
    text = _decode(data, path)
    if form != "csv":  # the csv module reads every line ending itself, quoted ones too
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [(path, form, text)]


def _read_stdin() -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    return _decode(buffer.read(), "<stdin>")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ReasonerError.at(Span(name, line, 1), "not UTF-8 text", "E015") from None


# ----------------------------------------------------------------------------- the one validator
def check_fact(ruleset: RuleSet, fact: Fact) -> Diagnostic | None:
    """Why `fact` is not a valid input fact of `ruleset`, or None."""
    checked = validate_fact(ruleset, fact)
    return checked if isinstance(checked, Diagnostic) else None


def validate_fact(ruleset: RuleSet, fact: Fact) -> Fact | Diagnostic:
    """`fact` checked against its declaration, with its values as the engines hold them
    (`17` where an id is declared is the id "17"), or the first problem with it."""
    decl = ruleset.decls.get(fact.pred)
    if decl is None:
        inputs = [p for p, d in ruleset.decls.items() if d.role == "input"]
        return Diagnostic(fact.span, f"unknown predicate {shown(fact.pred)}/{len(fact.args)}"
                          + suggest(fact.pred, inputs), "E002")
    if decl.role != "input":
        return Diagnostic(fact.span, f"{fact.pred} is derived by the rules ({decl.role}); "
                          "a fact file states input predicates only", "E014")
    if len(fact.args) != decl.arity:
        return Diagnostic(fact.span, f"{fact.pred} takes {decl.arity} argument{'s' if decl.arity != 1 else ''} "
                          f"({', '.join(a.name for a in decl.args)}), not {len(fact.args)}", "E003")
    values = list(fact.args)
    types = ruleset.types
    changed = False
    for i, spec in enumerate(decl.args):  # first how each value is written (a number, text) ...
        value, t = values[i], spec.type
        kind = type(value)
        if t in NUMERIC:
            if (kind is int or kind is float) and -_LARGEST <= value <= _LARGEST:  # NaN fails this too
                continue
        elif t != ANY:
            if kind is str and value and value[0] not in CELL_BLANKS and value[-1] not in CELL_BLANKS \
                    and not BAD_CHAR.search(value):
                continue
        elif kind is not NumberText:
            continue
        checked = check_argument(value, spec, ruleset, written_only=True)
        if isinstance(checked, tuple):
            problem, code = checked
            return Diagnostic(fact.span, f"{fact.pred} argument {spec.name}: {problem}", code)
        values[i] = checked
        changed = True
    for i, spec in enumerate(decl.args):  # ... then its type, range and enumeration, as DuckDB checks them
        value, t = values[i], spec.type
        if t == ANY or type(value) is str and t not in types and t not in NUMERIC:
            continue  # an id or a symbol, its text checked above
        problem = check_value(value, spec, types)
        if problem is not None:
            code = "E005" if "range" in problem else "E006" if " is not a " in problem else "E004"
            return Diagnostic(fact.span, f"{fact.pred} argument {spec.name}: {problem}", code)
        if t == "integer" and type(value) is float and value.is_integer():
            values[i] = int(value)
            changed = True
    return Fact(fact.pred, tuple(values), fact.span) if changed else fact


_LARGEST = 1.7976931348623157e308
"""The largest double: a number beyond it is not one (reasoner.language.values)."""


class NumberText:
    """A number of a typed form (`.facts`, JSON, a goal) with the text it was written as.
    Where an id or a symbol is declared the text is the value, as the same characters in
    a CSV cell would be: `17` is the id "17", `007` the id "007"."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


_WHAT = {"id": "id", "symbol": "symbol"}


def check_argument(value: object, spec, ruleset: RuleSet, written_only: bool = False) -> Value | tuple[str, str]:
    """One argument of a fact or a goal checked against its declaration `spec` and made
    what the engines hold, or (problem, code). `written_only`: only how it is written (the
    number syntax, the text rules), not its type, range or enumeration."""
    t = spec.type
    if t == ANY:  # inferred declarations (plain Datalog): any string or number
        if isinstance(value, NumberText):
            try:
                return read_number(value.text)
            except ValueError as exc:
                return f"expected a number, got {value.text}: {exc}", "E004"
        return value  # type: ignore[return-value]
    if t in NUMERIC:
        if isinstance(value, NumberText):
            try:
                value = read_number(value.text)
            except ValueError as exc:
                return f"expected a number, got {value.text}: {exc}", "E004"
        elif isinstance(value, Decimal):  # a Parquet DECIMAL column: its digits, as DuckDB reads them
            try:
                value = read_number(format(value, "f"))
            except ValueError:
                return f"expected a number, got {value}", "E004"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"expected a number, got {value}", "E004"
        elif isinstance(value, int) and not isinstance(value, bool) and not is_finite(value):
            return "too large for a number (more than a double holds)", "E004"
        if t == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
    else:
        if isinstance(value, NumberText):
            value = value.text
        elif type(value) is int:  # a Parquet INTEGER column of ids: 17 is the id "17", as in CSV
            value = str(value)
        if isinstance(value, str):
            problem = text_problem(value, _WHAT.get(t, f"{t} value"))
            if problem:
                return problem, "E004"
    if written_only:
        return value  # type: ignore[return-value]
    problem = check_value(value, spec, ruleset.types)
    if problem is not None:
        return problem, "E005" if "range" in problem else "E006" if " is not a " in problem else "E004"
    return value  # type: ignore[return-value]


def _validated(ruleset: RuleSet, items: Iterable[Fact | Diagnostic]) -> Iterator[Fact | Diagnostic]:
    for item in items:
        yield item if isinstance(item, Diagnostic) else validate_fact(ruleset, item)


class OneFacts:
    """A predicate declared `one` holds at most one fact per patient: a second, different
    weight for the same patient is an error in the data (E017), not a second patient
    state. Every fact after the first that differs from it is reported, at its place,
    naming the first.

    The first fact of each (predicate, patient) is kept in memory up to `spill` of them;
    past that (a streamed cohort of many patients), the facts go to a DuckDB table on
    disk and one query finds the conflicts, so memory stays flat in the cohort's size."""

    def __init__(self, ruleset: RuleSet, spill: int = 50_000):
        self.ruleset = ruleset
        self.spill = spill
        self.first: dict[tuple[str, Value], Fact] = {}
        self.found: list[Diagnostic] = []
        self.con = None
        self.rows: list[tuple] = []
        self.seq = 0

    def add(self, fact: Fact) -> None:
        decl = self.ruleset.decls[fact.pred]
        k = decl.key_index
        if not decl.single or k is None:
            return
        if self.con is not None:
            self._row(fact, k)
            return
        seen = self.first.setdefault((fact.pred, fact.args[k]), fact)
        if seen is not fact and seen.args != fact.args:
            self.found.append(_one_problem(fact, seen))
        if len(self.first) > self.spill:
            self._spill()

    def problems(self) -> list[Diagnostic]:
        if self.con is None:
            return self.found
        self._flush()
        conflicts = self.con.execute(
            "WITH f AS (SELECT pred, key, min(seq) AS seq FROM one GROUP BY pred, key "
            "HAVING count(DISTINCT args) > 1) "
            "SELECT r.file, r.line, r.col, r.text, s.file, s.line, s.col, s.text FROM one AS r "
            "JOIN f ON r.pred = f.pred AND r.key = f.key JOIN one AS s ON s.seq = f.seq "
            "WHERE r.args <> s.args ORDER BY r.seq").fetchall()
        self.con.close()
        self.con = None
        self._folder.cleanup()
        for file, line, col, text, first_file, first_line, first_col, first_text in conflicts:
            pred = text.split("(", 1)[0]
            self.found.append(Diagnostic(Span(file, line, col), f"{pred} holds one fact per patient; {first_text} "
                                         f"is already stated at {Span(first_file, first_line, first_col)}", "E017"))
        return self.found

    def _spill(self) -> None:
        import tempfile

        import duckdb  # a dependency: the second engine
        self._folder = tempfile.TemporaryDirectory(prefix="reasoner-one-")  # removed with this object
        self.con = duckdb.connect(str(Path(self._folder.name) / "one.duckdb"))
        self.con.execute("SET memory_limit = '256MB'")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("CREATE TABLE one (seq BIGINT, pred VARCHAR, key VARCHAR, args VARCHAR, file VARCHAR, "
                         "line BIGINT, col BIGINT, text VARCHAR)")
        for (_, _), fact in self.first.items():
            self._row(fact, self.ruleset.decls[fact.pred].key_index)  # type: ignore[arg-type]
        self.first = {}

    def _row(self, fact: Fact, k: int) -> None:
        # numbers compare as Python compares them (72 == 72.0): as floats
        args = json.dumps([a if isinstance(a, str) else float(a) for a in fact.args])
        self.rows.append((self.seq, fact.pred, str(fact.args[k]), args, fact.span.file, fact.span.line,
                          fact.span.col, str(fact)))
        self.seq += 1
        if len(self.rows) >= 50_000:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        columns = list(zip(*self.rows))
        types = ["BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR"]
        select = ", ".join(f"unnest(${i + 1}::{t}[])" for i, t in enumerate(types))
        self.con.execute(f"INSERT INTO one SELECT {select}", [list(c) for c in columns])  # type: ignore[union-attr]
        self.rows = []


def _one_problem(fact: Fact, seen: Fact) -> Diagnostic:
    return Diagnostic(fact.span, f"{fact.pred} holds one fact per patient; {seen} is already stated at {seen.span}",
                      "E017")


# ----------------------------------------------------------------------------- the four forms
# Each form yields the facts it could read (their values as written, checked by
# `validate_fact` after) and the problems of those it could not; it raises only when the
# file as a whole cannot be read on.
Parsed = tuple[list[Fact], list[Diagnostic]]


def _parsed(ruleset: RuleSet, display: str, form: str, content: str) -> Iterator[Fact | Diagnostic]:
    if form == "parquet":
        yield from _parquet_rows(display, ruleset)
        return
    try:
        parsed, found = _PARSERS[form](content, display, ruleset)
    except ReasonerError as exc:
        yield from exc.diagnostics
        return
    yield from found
    yield from parsed


def _parse_datalog(text: str, name: str, ruleset: RuleSet) -> Parsed:
    facts = parse_facts(text, name)
    lines = None
    for i, fact in enumerate(facts):
        decl = ruleset.decls.get(fact.pred)
        if decl is None or len(decl.args) != len(fact.args):
            continue
        if any(not isinstance(a, str) and spec.type not in NUMERIC + (ANY,) for a, spec in zip(fact.args, decl.args)):
            # a number where an id or symbol is declared: the id is its text as written
            lines = lines if lines is not None else _line_starts(text)
            written = literal_args(text, lines[fact.span.line - 1] + fact.span.col - 1)
            args = tuple(NumberText(w) if not isinstance(a, str) and w is not None and spec.type not in NUMERIC
                         else a for a, w, spec in zip(fact.args, written, decl.args))
            facts[i] = Fact(fact.pred, args, fact.span)
    return facts, []


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


_TOKEN = re.compile(r'\s+|%[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|\$[a-z][A-Za-z0-9_]*'
                    r'|[0-9]+(?:\.[0-9]+)?|:-|[<>!]=|.', re.S)


def literal_args(text: str, offset: int) -> list[str | None]:
    """The arguments of the atom written at `offset` of `text`, each as written when it is a
    number literal (`17`, `007`, `-3`, `37.50`), else None."""
    args: list[str | None] = []
    current: list[str] = []
    depth = 0
    for m in _TOKEN.finditer(text, offset):
        tok = m.group()
        if tok.isspace() or tok.startswith("%"):
            continue
        if tok == "(":
            depth += 1
            if depth == 1:
                continue
        elif tok == ")":
            depth -= 1
            if depth == 0:
                args.append(_literal(current))
                break
        elif tok == "," and depth == 1:
            args.append(_literal(current))
            current = []
            continue
        if depth >= 1:
            current.append(tok)
    return args


def _literal(tokens: list[str]) -> str | None:
    if len(tokens) == 1 and tokens[0][0].isdigit():
        return tokens[0]
    if len(tokens) == 2 and tokens[0] == "-" and tokens[1][0].isdigit():
        return "-" + tokens[1]
    return None


def _parse_json(text: str, name: str, ruleset: RuleSet) -> Parsed:
    """A JSON array of {"predicate": "...", "args": [...]}, each located by line:col."""
    decoder = json.JSONDecoder(parse_int=NumberText, parse_float=NumberText)
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise ReasonerError.at(_span_at(text, name, pos), 'expected a JSON array of {"predicate": ..., "args": [...]}',
                               "E015")
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return facts, problems
    while True:
        span = _span_at(text, name, pos)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ReasonerError(problems + [Diagnostic(_span_at(text, name, exc.pos), f"invalid JSON: {exc.msg}",
                                                       "E015")]) from None
        except RecursionError:
            raise ReasonerError(problems + [Diagnostic(span, "JSON nested too deeply: a fact is an object "
                                                       '{"predicate": ..., "args": [...]}', "E015")]) from None
        fact = _json_fact(item, span)
        if isinstance(fact, Diagnostic):
            problems.append(fact)
        else:
            facts.append(fact)
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            break
        raise ReasonerError(problems + [Diagnostic(_span_at(text, name, pos), "expected ',' or ']' in the array",
                                                   "E015")])
    if _skip_ws(text, pos + 1) < len(text):
        problems.append(Diagnostic(_span_at(text, name, _skip_ws(text, pos + 1)), "text after the JSON array", "E015"))
    return facts, problems


def _json_fact(item: object, span: Span) -> Fact | Diagnostic:
    if not isinstance(item, dict) or set(item) != {"predicate", "args"}:
        return Diagnostic(span, 'each fact is an object with exactly the keys "predicate" and "args"', "E015")
    pred, args = item["predicate"], item["args"]
    if not isinstance(pred, str) or not isinstance(args, list):
        return Diagnostic(span, '"predicate" must be a string and "args" an array', "E015")
    values: list[Value] = []
    for a in args:
        if isinstance(a, float):  # only NaN and Infinity, which Python's json reads
            return Diagnostic(span, f"argument {a} is not a finite number", "E015")
        if not isinstance(a, (str, NumberText)):
            what = "null" if a is None else "true or false" if isinstance(a, bool) else \
                "an array" if isinstance(a, list) else "an object"
            return Diagnostic(span, f"argument {what} is not a string or a number", "E015")
        values.append(a)  # type: ignore[arg-type]
    return Fact(pred, tuple(values), span)


def _parse_csv(text: str, name: str, ruleset: RuleSet) -> Parsed:
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    for item in _csv_rows(csv.reader(io.StringIO(text, newline=""), strict=True), name, ruleset, _stem(name)):
        (facts if isinstance(item, Fact) else problems).append(item)  # type: ignore[arg-type]
    return facts, problems


def _stem(name: str) -> str:
    return Path(name).stem


def _csv_rows(rows: Iterator[list[str]], name: str, ruleset: RuleSet, stem: str) -> Iterator[Fact | Diagnostic]:
    """Two layouts. Long: header `predicate,arg1,arg2,...`, one fact of any predicate
    per row. Per predicate: the file is named after the predicate (`weight_kg.csv`)
    and its header names the declared arguments (`p,kg`). Cells are trimmed of spaces
    and tabs and typed by the declaration; every row is located by the line it starts on."""
    try:
        header = next(rows, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        if isinstance(exc, UnicodeDecodeError):  # decoding runs ahead of the reader, by blocks
            yield Diagnostic(Span(name, _undecodable_line(name) or 1, 1), "not UTF-8 text", "E015")
        else:
            yield Diagnostic(Span(name, 1, 1), f"malformed CSV: {exc}", "E015")
        return
    if header is None:
        return
    header = [h.strip(CELL_BLANKS) for h in header]
    per_predicate = header[:1] != ["predicate"]
    decl = ruleset.decls.get(stem) if per_predicate else None
    if per_predicate:
        if decl is None:
            yield Diagnostic(Span(name, 1, 1), "a fact CSV starts with the header predicate,arg1,arg2,... or is "
                             "named after a declared predicate (weight_kg.csv) with its argument names as header"
                             + suggest(stem, ruleset.decls), "E015")
            return
        expected = [a.name for a in decl.args]
        if header != expected:
            yield Diagnostic(Span(name, 1, 1), f"{stem}.csv needs the header {','.join(expected)}, "
                             f"not {','.join(shown(h) for h in header)}", "E015")
            return
    while True:
        line = getattr(rows, "line_num", 0) + 1  # where the next row starts, even after a quoted line break
        try:
            row = next(rows, None)
        except csv.Error as exc:  # an unclosed quote, a NUL byte (the reader is strict)
            yield Diagnostic(Span(name, line, 1), f"malformed CSV: {exc}", "E015")
            return
        except UnicodeDecodeError:
            yield Diagnostic(Span(name, _undecodable_line(name) or line, 1), "not UTF-8 text", "E015")
            return
        if row is None:
            return
        cells = [c.strip(CELL_BLANKS) for c in row]
        if not any(cells):
            continue
        if per_predicate:
            pred = stem
        else:
            pred, cells = cells[0], cells[1:]
            while cells and cells[-1] == "":
                cells.pop()
        yield typed_fact(ruleset, pred, cells, Span(name, line, 1))


def _undecodable_line(path: str) -> int | None:
    """The first line of a file that is not UTF-8 (None if it cannot be read as a file)."""
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def typed_fact(ruleset: RuleSet, pred: str, cells: list, span: Span) -> Fact | Diagnostic:
    """A row of a CSV or Parquet file (cells trimmed, blank ones '' or None) as a fact:
    text cells where a number is declared read in the one number syntax, other text
    cells as they are; typed Parquet cells as they are (`validate_fact` checks them). A
    blank cell among the arguments is a missing argument (E003), as in DuckDB."""
    decl = ruleset.decls.get(pred)
    if decl is None or decl.role != "input" or len(cells) != decl.arity:  # validate_fact says what is wrong
        return Fact(pred, tuple("" if c is None else c for c in cells), span)
    if "" in cells or None in cells:
        i = next(i for i, c in enumerate(cells) if c is None or c == "")
        return Diagnostic(span, f"{pred} takes {decl.arity} argument{'s' if decl.arity != 1 else ''} "
                          f"({', '.join(a.name for a in decl.args)}); argument {i + 1} is empty", "E003")
    values: list[Value] = []
    for i, cell in enumerate(cells):
        if isinstance(cell, str) and decl.args[i].type in NUMERIC:
            try:
                values.append(read_number(cell))
            except ValueError as exc:
                return Diagnostic(span, f"{pred} argument {decl.args[i].name}: expected a number, got "
                                  f"{cell!r}: {exc}", "E004")
        else:
            values.append(cell)
    return Fact(pred, tuple(values), span)


def _parquet_rows(name: str, ruleset: RuleSet) -> Iterator[Fact | Diagnostic]:
    """Parquet in the same two layouts as CSV, read in batches through DuckDB.
    A row's place is given as `file:ROW:1` (rows count from 1); rows of blank cells are
    skipped, as in CSV."""
    import duckdb  # a dependency: the second engine

    con = duckdb.connect()
    try:
        relation = con.execute("SELECT * FROM read_parquet(?)", [name])
    except duckdb.Error as exc:
        yield Diagnostic(Span(name, 0, 0), f"cannot read Parquet: {str(exc).splitlines()[0]}", "E015")
        return
    first = [d[0] for d in relation.description]
    batches = iter(lambda: relation.fetchmany(10_000), [])
    # the same layouts and checks as CSV; cells keep their Parquet types
    stem = _stem(name)
    per_predicate = first[:1] != ["predicate"]
    if per_predicate:
        decl = ruleset.decls.get(stem)
        if decl is None or [a.name for a in decl.args] != first:
            yield Diagnostic(Span(name, 0, 0), "a Parquet fact file has a column `predicate` then arguments, or is "
                             "named after a declared predicate with its argument names as columns", "E015")
            return
    n = 0
    while True:
        try:
            batch = next(batches, None)
        except duckdb.Error as exc:  # a corrupt page further on
            yield Diagnostic(Span(name, n + 1, 1), f"cannot read Parquet: {str(exc).splitlines()[0]}", "E015")
            return
        if batch is None:
            return
        for row in batch:
            n += 1
            cells = [c.strip(CELL_BLANKS) if isinstance(c, str) else c for c in row]
            if all(c is None or c == "" for c in cells):
                continue
            if per_predicate:
                pred = stem
            else:
                pred, cells = ("" if cells[0] is None else str(cells[0])), cells[1:]
                while cells and cells[-1] in (None, ""):
                    cells.pop()
            yield typed_fact(ruleset, pred, cells, Span(name, n, 1))


_PARSERS = {"facts": _parse_datalog, "json": _parse_json, "csv": _parse_csv}  # Parquet: `_parquet_rows`


# ----------------------------------------------------------------------------- streaming cohorts
def stream_file(path: str, ruleset: RuleSet) -> Iterator[Fact | Diagnostic]:
    """The checked facts of one file (see `validate_fact`) and its problems, as read."""
    p = Path(path)
    if p.suffix == ".csv" and not read_once(path):
        try:
            handle = open(p, newline="", encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark
        except OSError as exc:
            yield Diagnostic(Span(path, 0, 0), f"cannot read: {exc.strerror or exc}", "E015")
            return
        with handle:
            yield from _validated(ruleset, _csv_rows(csv.reader(handle, strict=True), path, ruleset, p.stem))
    elif p.suffix == ".parquet":
        yield from _validated(ruleset, _parquet_rows(path, ruleset))
    else:  # the human-written forms are read whole
        try:
            sources = _read_path(path, "facts")
        except ReasonerError as exc:
            yield from exc.diagnostics
            return
        for display, form, content in sources:
            yield from _validated(ruleset, _parsed(ruleset, display, form, content))


def _expand(paths: Iterable[str | Path]) -> list[str]:
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if str(path) != "-" and p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix in FACT_SUFFIXES)
        else:
            out.append(str(path))
    return out


def validate_stream(ruleset: RuleSet, paths: Iterable[str | Path], limit: int = 1000) -> int:
    """Pass one over a cohort: check every fact, `one` per patient included, keeping none
    (memory flat: see `OneFacts`). Raises ReasonerError with the problems (the first
    `limit`, and how many more)."""
    problems: list[Diagnostic] = []
    more = 0
    count = 0
    one = OneFacts(ruleset)

    def report(problem: Diagnostic) -> None:
        nonlocal more
        if len(problems) < limit:
            problems.append(problem)
        else:
            more += 1

    for path in _expand(paths):
        if path != "-" and not Path(path).exists():
            report(Diagnostic(Span(path, 0, 0), "no such fact file", "E015"))
            continue
        if read_once(path):
            report(Diagnostic(Span(path if path != "-" else "<stdin>", 0, 0), "stdin, a FIFO or a device is read "
                              "once and cannot be streamed in two passes: read it whole (--no-stream)", "E015"))
            continue
        for item in stream_file(path, ruleset):
            if isinstance(item, Diagnostic):
                report(item)
            else:
                count += 1
                one.add(item)
    for problem in one.problems():
        report(problem)
    if more:
        problems.append(Diagnostic(Span("<facts>", 0, 0), f"... and {more} more problems", "E015"))
    if problems:
        raise ReasonerError(problems)
    return count


def stream_chunks(ruleset: RuleSet, paths: Iterable[str | Path], size: int) -> Iterator[list[Fact]]:
    """Pass two: chunks of `size` patients, read as the files go, memory flat in the
    cohort's size. A file must hold each patient's facts together (grouped by patient);
    a patient that comes back after its chunk was handed on is an error, never split."""
    if not ruleset.patient_local:
        yield list(stream_facts(ruleset, paths))
        return
    done: set[Value] = set()  # patient ids only: a million of them is tens of MB
    batch: list[Fact] = []
    current: dict[Value, None] = {}
    shared: list[Fact] = []
    handed_on = False
    for path in _expand(paths):
        for fact in stream_file(path, ruleset):
            if not isinstance(fact, Fact):
                continue
            k = ruleset.key_index(fact.pred)
            if k is None:
                if handed_on:
                    raise ReasonerError.at(fact.span, f"{fact.pred} holds no patient: in a cohort read in chunks, "
                                           "such facts come before every patient's facts", "E015")
                shared.append(fact)
                continue
            key = fact.args[k]
            if key not in current:
                if key in done:
                    raise ReasonerError.at(fact.span, f"patient {key} appears again after other patients: a cohort "
                                           "read in chunks must hold each patient's facts together (sort it by "
                                           "patient), or read it whole with --no-stream", "E015")
                if len(current) == size:
                    yield shared + batch
                    handed_on = True
                    done.update(current)
                    batch, current = [], {}
                current[key] = None
            batch.append(fact)
    if batch or shared:
        yield shared + batch


def stream_facts(ruleset: RuleSet, paths: Iterable[str | Path]) -> Iterator[Fact]:
    """Every fact of the files, as they are read. Check them first (`validate_stream`):
    a bad row here is skipped, not reported."""
    for path in _expand(paths):
        for fact in stream_file(path, ruleset):
            if isinstance(fact, Fact):
                yield fact


def of_patient(ruleset: RuleSet, facts: Iterable[Fact], patient: Value) -> FactSet:
    """One patient's facts, and the facts about no patient (fed a stream: memory flat
    whatever the cohort's size)."""
    keep = []
    for fact in facts:
        k = ruleset.key_index(fact.pred)
        if k is None or fact.args[k] == patient:
            keep.append(fact)
    return FactSet(keep)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _span_at(text: str, name: str, pos: int) -> Span:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return Span(name, line, col)


# ----------------------------------------------------------------------------- chunks
def chunks(ruleset: RuleSet, facts: FactSet, size: int) -> Iterator[list[Fact]]:
    """Split facts into chunks of at most `size` patients. Facts without a patient key
    go into every chunk. A rule set that is not patient-local runs as one chunk."""
    if not ruleset.patient_local:
        yield list(facts.facts)
        return
    shared: list[Fact] = []
    by_patient: dict[Value, list[Fact]] = defaultdict(list)
    for fact in facts.facts:
        k = ruleset.key_index(fact.pred)
        if k is None:
            shared.append(fact)
        else:
            by_patient[fact.args[k]].append(fact)
    if not by_patient:
        yield shared
        return
    batch: list[Fact] = []
    count = 0
    for patient_facts in by_patient.values():
        batch.extend(patient_facts)
        count += 1
        if count == size:
            yield shared + batch
            batch, count = [], 0
    if batch:
        yield shared + batch
