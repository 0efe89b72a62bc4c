"""Fact files → checked facts, grouped by patient.

Three forms (README, "Fact files"): `.facts` (the rule language's own syntax), `.json`
(an array of {"predicate": ..., "args": [...]}) and `.csv` (header
`predicate,arg1,arg2,...`). A directory means every fact file in it, `-` means stdin
(in the `.facts` form unless `stdin_format` says otherwise).

Every fact is checked against the rule set's declarations — known input predicate,
arity, type, range, enumeration value — and *all* problems are reported together.
Nothing is evaluated from an input that failed.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import Diagnostic, ReasonerError
from .parse import parse_facts
from .program import RuleSet, _suggest, check_value
from .syntax import Fact, Span, Value

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
    for display, form, content in sources:
        try:
            parsed, found = _PARSERS[form](content, display, ruleset)
        except ReasonerError as exc:
            problems += exc.diagnostics
            continue
        problems += found
        for fact in parsed:
            problem = check_fact(ruleset, fact)
            if problem is not None:
                problems.append(problem)
            else:
                facts.append(fact)
    problems += _single_problems(ruleset, facts)
    if problems:
        raise ReasonerError(problems)
    return FactSet(facts)


def _read_path(path: str, stdin_format: str) -> list[tuple[str, str, str]]:
    if path == "-":
        return [("<stdin>", stdin_format, sys.stdin.read())]
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in FACT_SUFFIXES)
        if not files:
            raise ReasonerError.at(Span(path, 0, 0), f"no fact files ({', '.join(FACT_SUFFIXES)}) in this directory",
                                   "E015")
        return [entry for f in files for entry in _read_path(str(f), stdin_format)]
    if not p.is_file():
        raise ReasonerError.at(Span(path, 0, 0), "no such fact file", "E015")
    if p.suffix == ".parquet":
        return [(path, "parquet", "")]  # read by streaming, not as text
    form = {".json": "json", ".csv": "csv"}.get(p.suffix, "facts")
    try:
        return [(path, form, p.read_text(encoding="utf-8-sig"))]
    except UnicodeDecodeError:
        raise ReasonerError.at(Span(path, _undecodable_line(path) or 0, 1), "not UTF-8 text", "E015") from None
    except OSError as exc:
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read: {exc.strerror or exc}", "E015") from None


def check_fact(ruleset: RuleSet, fact: Fact) -> Diagnostic | None:
    """Why `fact` is not a valid input fact of `ruleset`, or None."""
    decl = ruleset.decls.get(fact.pred)
    if decl is None:
        inputs = [p for p, d in ruleset.decls.items() if d.role == "input"]
        return Diagnostic(fact.span, f"unknown predicate {fact.pred}/{len(fact.args)}" + _suggest(fact.pred, inputs),
                          "E002")
    if decl.role != "input":
        return Diagnostic(fact.span, f"{fact.pred} is derived by the rules ({decl.role}); "
                          "a fact file states input predicates only", "E014")
    if len(fact.args) != decl.arity:
        return Diagnostic(fact.span, f"{fact.pred} takes {decl.arity} argument{'s' if decl.arity != 1 else ''} "
                          f"({', '.join(a.name for a in decl.args)}), not {len(fact.args)}", "E003")
    for value, spec in zip(fact.args, decl.args):
        problem = check_value(value, spec, ruleset.types)
        if problem is not None:
            code = "E005" if "range" in problem else "E006" if " is not a " in problem else "E004"
            return Diagnostic(fact.span, f"{fact.pred} argument {spec.name}: {problem}", code)
    return None


def _single_problems(ruleset: RuleSet, facts: list[Fact]) -> list[Diagnostic]:
    """A predicate declared `one` holds at most one fact per patient: a second, different
    weight for the same patient is an error in the data, not a second patient state."""
    first: dict[tuple[str, Value], Fact] = {}
    problems = []
    for fact in facts:
        decl = ruleset.decls[fact.pred]
        k = decl.key_index
        if not decl.single or k is None:
            continue
        seen = first.setdefault((fact.pred, fact.args[k]), fact)
        if seen is not fact and seen.args != fact.args:
            problems.append(Diagnostic(fact.span, f"{fact.pred} holds one fact per patient; {seen} is already "
                                       f"stated at {seen.span}", "E017"))
    return problems


# ----------------------------------------------------------------------------- the three forms
# Each form returns the facts it could read and the problems of those it could not;
# it raises only when the file as a whole cannot be read on.
Parsed = tuple[list[Fact], list[Diagnostic]]


def _parse_datalog(text: str, name: str, ruleset: RuleSet) -> Parsed:
    return parse_facts(text, name), []


def _parse_json(text: str, name: str, ruleset: RuleSet) -> Parsed:
    """A JSON array of {"predicate": "...", "args": [...]}, each located by line:col."""
    decoder = json.JSONDecoder()
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
            raise ReasonerError.at(_span_at(text, name, exc.pos), f"invalid JSON: {exc.msg}", "E015") from None
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
        if isinstance(a, bool) or not isinstance(a, (int, float, str)):
            return Diagnostic(span, f"argument {json.dumps(a)} is not a string or a number", "E015")
        if isinstance(a, float) and not math.isfinite(a):  # Python's json reads NaN and Infinity
            return Diagnostic(span, f"argument {a} is not a finite number", "E015")
        values.append(a)
    return Fact(pred, tuple(values), span)


def _parse_csv(text: str, name: str, ruleset: RuleSet) -> Parsed:
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    for item in _csv_rows(csv.reader(io.StringIO(text), strict=True), name, ruleset, _stem(name)):
        (facts if isinstance(item, Fact) else problems).append(item)  # type: ignore[arg-type]
    return facts, problems


def _stem(name: str) -> str:
    return Path(name).stem


def _csv_rows(rows: Iterator[list[str]], name: str, ruleset: RuleSet, stem: str) -> Iterator[Fact | Diagnostic]:
    """Two layouts. Long: header `predicate,arg1,arg2,...`, one fact of any predicate
    per row. Per predicate: the file is named after the predicate (`weight_kg.csv`)
    and its header names the declared arguments (`p,kg`). Cells are typed by the
    declaration; every row is located by its line."""
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
    header = [h.strip() for h in header]
    per_predicate = header[:1] != ["predicate"]
    decl = ruleset.decls.get(stem) if per_predicate else None
    if per_predicate:
        if decl is None:
            yield Diagnostic(Span(name, 1, 1), "a fact CSV starts with the header predicate,arg1,arg2,... or is "
                             "named after a declared predicate (weight_kg.csv) with its argument names as header"
                             + _suggest(stem, ruleset.decls), "E015")
            return
        expected = [a.name for a in decl.args]
        if header != expected:
            yield Diagnostic(Span(name, 1, 1), f"{stem}.csv needs the header {','.join(expected)}, "
                             f"not {','.join(header)}", "E015")
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
        if not row or all(not c.strip() for c in row):
            continue
        if per_predicate:
            pred, cells = stem, [c.strip() for c in row]
        else:
            pred, cells = row[0].strip(), [c.strip() for c in row[1:]]
            while cells and cells[-1] == "":
                cells.pop()
        yield _typed_fact(ruleset, pred, cells, Span(name, line, 1))


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


def _typed_fact(ruleset: RuleSet, pred: str, cells: list, span: Span) -> Fact | Diagnostic:
    decl = ruleset.decls.get(pred)
    values: list[Value] = []
    for i, cell in enumerate(cells):
        wants_number = decl is not None and i < decl.arity and decl.args[i].type in ("number", "integer")
        if wants_number and isinstance(cell, str):
            try:
                values.append(_csv_number(cell))
            except ValueError:
                return Diagnostic(span, f"{pred} argument {decl.args[i].name}: "  # type: ignore[union-attr]
                                  f"expected a number, got {cell!r}", "E004")
        elif isinstance(cell, float) and cell.is_integer() and decl is not None and i < decl.arity \
                and decl.args[i].type == "integer":
            values.append(int(cell))
        elif type(cell) is int and decl is not None and i < decl.arity and not wants_number:
            # a Parquet INTEGER column of patient ids: 17 is the id "17", as in CSV (and as
            # DuckDB's cast to text reads it)
            values.append(str(cell))
        else:
            values.append(cell)
    return Fact(pred, tuple(values), span)


def _csv_number(cell: str) -> int | float:
    try:
        return int(cell)
    except ValueError:
        value = float(cell)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(cell)
        return value


def _parse_parquet(text: str, name: str, ruleset: RuleSet) -> Parsed:
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    for item in _parquet_rows(name, ruleset):
        (facts if isinstance(item, Fact) else problems).append(item)  # type: ignore[arg-type]
    return facts, problems


def _parquet_rows(name: str, ruleset: RuleSet) -> Iterator[Fact | Diagnostic]:
    """Parquet in the same two layouts as CSV, read in batches through DuckDB.
    A row's place is given as `file:ROW:1` (rows count from 1)."""
    import duckdb  # a dependency: the second engine

    con = duckdb.connect()
    try:
        relation = con.execute("SELECT * FROM read_parquet(?)", [name])
    except duckdb.Error as exc:
        yield Diagnostic(Span(name, 0, 0), f"cannot read Parquet: {str(exc).splitlines()[0]}", "E015")
        return
    first = [d[0] for d in relation.description]
    header = (row for batch in iter(lambda: relation.fetchmany(10_000), []) for row in batch)
    # the same layouts and checks as CSV; cells keep their Parquet types
    stem = _stem(name)
    per_predicate = first[:1] != ["predicate"]
    if per_predicate:
        decl = ruleset.decls.get(stem)
        if decl is None or [a.name for a in decl.args] != first:
            yield Diagnostic(Span(name, 0, 0), "a Parquet fact file has a column `predicate` then arguments, or is "
                             "named after a declared predicate with its argument names as columns", "E015")
            return
    for n, row in enumerate(header, 1):
        cells = list(row)
        if per_predicate:
            pred = stem
        else:
            pred, cells = str(cells[0]), cells[1:]
            while cells and cells[-1] in (None, ""):
                cells.pop()
        yield _typed_fact(ruleset, pred, [c if not isinstance(c, str) else c.strip() for c in cells],
                          Span(name, n, 1))


_PARSERS = {"facts": _parse_datalog, "json": _parse_json, "csv": _parse_csv, "parquet": _parse_parquet}


# ----------------------------------------------------------------------------- streaming cohorts
def stream_file(path: str, ruleset: RuleSet) -> Iterator[Fact | Diagnostic]:
    p = Path(path)
    if p.suffix == ".csv":
        with open(p, newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
            yield from _csv_rows(csv.reader(handle, strict=True), path, ruleset, p.stem)
    elif p.suffix == ".parquet":
        yield from _parquet_rows(path, ruleset)
    else:  # the human-written forms are read whole
        for display, form, content in _read_path(path, "facts"):
            try:
                parsed, found = _PARSERS[form](content, display, ruleset)
            except ReasonerError as exc:
                yield from exc.diagnostics
                continue
            yield from found
            yield from parsed


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
    """Pass one over a cohort: check every fact without keeping any. Raises
    ReasonerError with the problems (the first `limit`, and how many more)."""
    problems: list[Diagnostic] = []
    more = 0
    count = 0
    for path in _expand(paths):
        if path != "-" and not Path(path).is_file():
            problems.append(Diagnostic(Span(path, 0, 0), "no such fact file", "E015"))
            continue
        for item in stream_file(path, ruleset):
            problem = item if isinstance(item, Diagnostic) else check_fact(ruleset, item)
            count += isinstance(item, Fact)
            if problem is not None:
                if len(problems) < limit:
                    problems.append(problem)
                else:
                    more += 1
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
