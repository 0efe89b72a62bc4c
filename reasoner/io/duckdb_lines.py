"""Where the DuckDB checks' problems are, by line: reading a staged fact file's rows again
in Python (only when something is wrong), to give each problem the file and line of its
example row and, where the Python fact reader words the same row's problem, its
message; and the Python reader's own diagnosis of a CSV file DuckDB cannot read.
reasoner.io.duckdb_inputs finds the problems in SQL and calls `locate`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import duckdb

from reasoner.analysis.program import RuleSet
from reasoner.io.sqltext import sql_string
from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import Fact, Span, Value
from reasoner.language.values import CELL_BLANKS, read_number


def locate(ruleset: RuleSet, problems: list[Problem],
           staged: list[tuple[str, int, str | None]]) -> list[Diagnostic]:
    """Diagnostics at the line of each example: one pass over the files, in Python (only
    when something is wrong), stopping when every example is found."""
    from reasoner.io.facts import typed_fact, validate_fact
    lines: dict[int, Span] = {}
    messages: dict[int, str] = {}
    first_fact: dict[int, Fact] = {}
    todo = set(range(len(problems)))
    paths = [path for path, _, _ in staged]
    for path, width, file_pred in staged:
        if not todo:
            break
        for line, row in numbered_rows(path, width):
            if file_pred is not None:
                row = [file_pred] + row
            if not any(c.strip(CELL_BLANKS) for c in row):  # a blank row; a blank predicate is a problem
                continue
            pred = row[0].strip(CELL_BLANKS)
            cells = tuple(c.strip(CELL_BLANKS) for c in row[1:] if c.strip(CELL_BLANKS))
            taken: set[tuple[str, str]] = set()  # two examples of one check are two rows
            for j in sorted(todo):
                p = problems[j]
                if p.pred != pred or (p.file is not None and p.file != path) or (p.code, p.message) in taken:
                    continue
                if p.cells is not None:
                    hit = cells == p.cells
                elif p.values is not None:
                    hit = same_values(cells, p.values)
                else:  # `one`: the first fact that differs from the patient's first, as Python says
                    index, key = p.key  # type: ignore[misc]
                    hit = False
                    if len(cells) > index and cells[index] == key:
                        fact = typed_fact(ruleset, pred, list(cells), Span(path, line, 1))
                        if isinstance(fact, Fact):
                            fact = validate_fact(ruleset, fact)
                        if isinstance(fact, Fact):
                            seen = first_fact.setdefault(j, fact)
                            hit = seen.args != fact.args
                            if hit:
                                messages[j] = (f"{pred} holds one fact per patient; {seen} is already stated "
                                               f"at {seen.span}")
                if hit:
                    lines[j] = Span(path, line, 1)
                    todo.discard(j)
                    taken.add((p.code, p.message))
                    if j not in messages:  # the Python reader's words for the same row
                        full = [c.strip(CELL_BLANKS) for c in row[1:]]
                        while file_pred is None and full and full[-1] == "":
                            full.pop()
                        said = typed_fact(ruleset, pred, full, lines[j])
                        if isinstance(said, Fact):
                            said = validate_fact(ruleset, said)
                        if isinstance(said, Diagnostic) and said.code == p.code:
                            messages[j] = said.message
    out = []
    for j, p in enumerate(problems):
        span = lines.get(j, Span(p.file or (paths[0] if len(paths) == 1 else "<csv>"), 0, 0))
        count = f" ({p.n} such {p.unit}s)" if p.n > 1 else ""
        out.append(Diagnostic(span, messages.get(j, p.message) + count, p.code))
    return sorted(out, key=Diagnostic.sort_key)


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix == ".parquet"


def parquet_text(path: str, n: int, types: Sequence[str] | None = None) -> str:
    """A Parquet fact file's columns as text `c0..c(n-1)`, in file order: the same cells
    the CSV reader stages, so one set of checks serves both (38.0 reads as '38.0'). A
    FLOAT (single precision) column goes through DOUBLE, so its text is the double the
    Python reader gets (72.1 as a float is 72.0999984741211)."""
    def cell(i: int) -> str:
        if types is not None and i < len(types) and types[i] in ("FLOAT", "REAL", "FLOAT4"):
            return f"CAST(CAST(#{i + 1} AS DOUBLE) AS VARCHAR) AS c{i}"
        return f"CAST(#{i + 1} AS VARCHAR) AS c{i}"
    return f"SELECT {', '.join(cell(i) for i in range(n))} FROM read_parquet({sql_string(path)})"


def numbered_rows(path: str, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of a staged file after its header: CSV lines as the csv module counts
    them; Parquet rows counted from 1, as the Python reader places them."""
    if not is_parquet(path):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            while True:
                line = reader.line_num + 1  # where the row starts, as the Python reader places it
                row = next(reader, None)
                if row is None:
                    return
                yield line, row
    con = duckdb.connect()
    try:
        types = [str(t).upper() for _, t, *_ in
                 con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(path)})").fetchall()]
        result = con.execute(parquet_text(path, width, types))
        line = 0
        for batch in iter(lambda: result.fetchmany(10_000), []):
            for row in batch:
                line += 1
                yield line, ["" if c is None else c for c in row]
    finally:
        con.close()


def python_diagnosis(path: str, ruleset: RuleSet, limit: int = 20) -> list[Diagnostic]:
    """The first problems the Python fact reader finds in a CSV file DuckDB could not read."""
    from reasoner.io.facts import OneFacts, stream_file
    found: list[Diagnostic] = []
    one = OneFacts(ruleset)
    for item in stream_file(path, ruleset):  # checked facts, and the problems of the others
        if isinstance(item, Diagnostic):
            found.append(item)
            if len(found) == limit:
                return found
        else:
            one.add(item)
    return found + one.problems()[:limit - len(found)]


@dataclass
class Problem:
    """One problem the SQL checks found: `n` rows (or facts, `unit`) of `pred` fail check
    `code`; the example row to locate is given by its trimmed `cells`, its typed `values`,
    or (`one`) the key column and value whose second fact is the problem."""

    code: str
    message: str
    n: int
    unit: str
    pred: str
    cells: tuple[str, ...] | None = None
    values: tuple[Value, ...] | None = None
    key: tuple[int, Value] | None = None
    file: str | None = None


def same_values(cells: tuple[str, ...], values: tuple[Value, ...]) -> bool:
    if len(cells) != len(values):
        return False
    for cell, value in zip(cells, values):
        if isinstance(value, str):
            if cell != value:
                return False
        else:
            try:
                if read_number(cell) != value:
                    return False
            except ValueError:
                return False
    return True
