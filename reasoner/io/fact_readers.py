"""The readers of the four fact forms: `.facts` (the rule language's own syntax), `.json`
(an array of {"predicate": ..., "args": [...]}, or a FHIR Bundle: `fhir_file`), `.csv` and `.parquet` (header
`predicate,arg1,arg2,...`, or one file per predicate). Each yields the facts it could
read, their values as written (`validate_fact` checks them after), and the problems of
those it could not, each located (`read_form` for text read whole, `csv_rows` and
`parquet_rows` for rows as they are read).
"""
from __future__ import annotations

import bisect
import csv
import io
import json
import re
from pathlib import Path
from typing import Iterator

from reasoner.analysis.program import ANY, NUMERIC, RuleSet, suggest
from reasoner.io.fact_check import NumberText, typed_fact
from reasoner.io.json_keys import DuplicateKey, duplicate_at, unique_keys
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.parse import parse_facts
from reasoner.language.syntax import Fact, Span, Value
from reasoner.language.values import CELL_BLANKS, shown


# Each form yields the facts it could read (their values as written, checked by
# `validate_fact` after) and the problems of those it could not; it raises only when the
# file as a whole cannot be read on.
Parsed = tuple[list[Fact], list[Diagnostic]]


def read_form(ruleset: RuleSet, display: str, form: str, content: str) -> Iterator[Fact | Diagnostic]:
    """The facts and problems of `content` read whole in `form` (a Parquet file: by its name)."""
    if form == "parquet":
        yield from parquet_rows(display, ruleset)
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
    decoder = json.JSONDecoder(parse_int=NumberText, parse_float=NumberText, object_pairs_hook=unique_keys)
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    pos = skip_ws(text, 0)
    if pos < len(text) and text[pos] == "{":  # a JSON object: a FHIR Bundle (docs/fhir.md), read lazily
        from reasoner.io.fhir_file import bundle_facts
        return bundle_facts(ruleset, text, name)
    if pos >= len(text) or text[pos] != "[":
        raise ReasonerError.at(span_at(text, name, pos), 'expected a JSON array of {"predicate": ..., "args": [...]}',
                               "E015")
    pos = skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return facts, problems
    while True:
        span = span_at(text, name, pos)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ReasonerError(problems + [Diagnostic(span_at(text, name, exc.pos), f"invalid JSON: {exc.msg}",
                                                       "E015")]) from None
        except DuplicateKey as exc:
            at = duplicate_at(text, pos)
            raise ReasonerError(problems + [Diagnostic(span_at(text, name, pos if at is None else at), str(exc),
                                                       "E015")]) from None
        except RecursionError:
            raise ReasonerError(problems + [Diagnostic(span, "JSON nested too deeply: a fact is an object "
                                                       '{"predicate": ..., "args": [...]}', "E015")]) from None
        fact = _json_fact(item, span)
        if isinstance(fact, Diagnostic):
            problems.append(fact)
        else:
            facts.append(fact)
        pos = skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            break
        raise ReasonerError(problems + [Diagnostic(span_at(text, name, pos), "expected ',' or ']' in the array",
                                                   "E015")])
    if skip_ws(text, pos + 1) < len(text):
        problems.append(Diagnostic(span_at(text, name, skip_ws(text, pos + 1)), "text after the JSON array", "E015"))
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
    for item in csv_rows(csv.reader(io.StringIO(text, newline=""), strict=True), name, ruleset, _stem(name)):
        (facts if isinstance(item, Fact) else problems).append(item)  # type: ignore[arg-type]
    return facts, problems


def _stem(name: str) -> str:
    return Path(name).stem


def csv_rows(rows: Iterator[list[str]], name: str, ruleset: RuleSet, stem: str) -> Iterator[Fact | Diagnostic]:
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


def parquet_rows(name: str, ruleset: RuleSet) -> Iterator[Fact | Diagnostic]:
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


_PARSERS = {"facts": _parse_datalog, "json": _parse_json, "csv": _parse_csv}  # Parquet: `parquet_rows`


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


_LINE_STARTS: tuple[str, list[int]] = ("", [])
"""The newline offsets of the last text `span_at` placed positions in (one tuple, swapped
whole: threads see either the old or the new one)."""


def span_at(text: str, name: str, pos: int) -> Span:
    """The line and column of offset `pos` in `text`. Counting the newlines before each
    position made a 20,000-entry FHIR Bundle take a minute (quadratic): the offsets are
    found once per text and searched."""
    global _LINE_STARTS
    cached = _LINE_STARTS
    if cached[0] is not text:
        cached = (text, [m.start() for m in re.finditer("\n", text)])
        _LINE_STARTS = cached
    newlines = cached[1]
    before = bisect.bisect_left(newlines, pos)  # newlines before pos
    col = pos - (newlines[before - 1] + 1 if before else 0) + 1
    return Span(name, before + 1, col)

