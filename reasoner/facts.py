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
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import Diagnostic, ReasonerError
from .parse import parse_facts
from .program import RuleSet, _suggest, check_value
from .syntax import Fact, Span, Value

FACT_SUFFIXES = (".facts", ".json", ".csv")


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
    form = {".json": "json", ".csv": "csv"}.get(p.suffix, "facts")
    try:
        return [(path, form, p.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError) as exc:
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read: {exc.__class__.__name__}", "E015") from None


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
        values.append(a)
    return Fact(pred, tuple(values), span)


def _parse_csv(text: str, name: str, ruleset: RuleSet) -> Parsed:
    """Long layout: `predicate,arg1,arg2,...`; cells typed by the declaration."""
    reader = csv.reader(io.StringIO(text))
    facts: list[Fact] = []
    problems: list[Diagnostic] = []
    header = next(reader, None)
    if header is None:
        return facts, problems
    if not header or header[0].strip() != "predicate":
        raise ReasonerError.at(Span(name, 1, 1), "a fact CSV starts with the header predicate,arg1,arg2,...", "E015")
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        pred = row[0].strip()
        cells = [c.strip() for c in row[1:]]
        while cells and cells[-1] == "":
            cells.pop()
        span = Span(name, line, 1)
        decl = ruleset.decls.get(pred)
        values: list[Value] = []
        for i, cell in enumerate(cells):
            wants_number = decl is not None and i < decl.arity and decl.args[i].type in ("number", "integer")
            if wants_number:
                try:
                    values.append(_csv_number(cell))
                except ValueError:
                    problems.append(Diagnostic(span, f"{pred} argument {decl.args[i].name}: "  # type: ignore[union-attr]
                                               f"expected a number, got {cell!r}", "E004"))
                    break
            else:
                values.append(cell)
        else:
            facts.append(Fact(pred, tuple(values), span))
    return facts, problems


def _csv_number(cell: str) -> int | float:
    try:
        return int(cell)
    except ValueError:
        value = float(cell)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(cell)
        return value


_PARSERS = {"facts": _parse_datalog, "json": _parse_json, "csv": _parse_csv}


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
