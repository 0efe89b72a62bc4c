"""The one fact validator, and the checks of one argument: `validate_fact` (known input
predicate, arity, the one number syntax and the text rules of
`reasoner.language.values`, type, range, enumeration value), `check_argument` (one
argument of a fact or a goal), `typed_fact` (a row of CSV or Parquet cells typed by its
declaration), `NumberText` (a number as written, where an id may be declared) and
`OneFacts` (a `one` predicate holds one fact per patient, E017). Every reader of
`fact_readers` hands what it read to `validate_fact`.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator

from reasoner.analysis.program import ANY, NUMERIC, RuleSet, check_value, suggest
from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import Fact, Span, Value
from reasoner.language.values import BAD_CHAR, CELL_BLANKS, is_finite, read_number, shown, text_problem


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


def validated(ruleset: RuleSet, items: Iterable[Fact | Diagnostic]) -> Iterator[Fact | Diagnostic]:
    """What a reader yields, each fact checked by `validate_fact`, each problem as it is."""
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

