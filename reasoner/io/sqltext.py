"""SQL text for DuckDB's own I/O: the two column kinds and their SQL types, quoted names
and literals, and values read back from DuckDB.

The evaluation program is built as sqlglot trees (reasoner.engines.sqlgen, which takes
its column kinds and number literals from here); the staging and checking of fact files
(reasoner.io.duckdb_inputs), loading, partitioning and exporting are SQL text built with
these helpers.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import Span, Value

if TYPE_CHECKING:
    import duckdb

NUM, SYM, KEY = "num", "sym", "key"
"""Column kinds: DOUBLE for number and integer arguments, VARCHAR for the rest; inside a
cohort's partitions, BIGINT for the patient's columns (KEY: each patient's number in
the cohort, `sql_partitions`), decoded wherever values leave DuckDB."""

SQL_TYPE = {NUM: "DOUBLE", SYM: "VARCHAR", KEY: "BIGINT"}
"""A column kind's DuckDB type."""

_NOSPAN = Span("<duckdb>", 0, 0)
_EXACT = 2 ** 53
"""Whole DOUBLEs below this come back as Python ints (every such int is exact in a double)."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def number_text(value: int | float) -> str:
    """A DOUBLE literal's text (`38E0`, `37.95E0`): plain `38.5` would be a DECIMAL in
    DuckDB and `7 / 2` integer arithmetic on some engines; Python computes in floats."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            raise ReasonerError.at(_NOSPAN, f"{value} cannot be written in SQL", "E004")
        text = repr(value)
        return text if "e" in text or "E" in text else text + "E0"
    return f"{value}E0"


def to_python(value: Any, numeric: bool) -> Value:
    """A value read back from DuckDB: whole DOUBLEs become ints (pyDatalog keeps 3, DuckDB
    returns 3.0; the two are == and hash alike, ints read better)."""
    if numeric and isinstance(value, float) and value.is_integer() and -_EXACT < value < _EXACT:
        return int(value)
    return value


def count_added(result: duckdb.DuckDBPyConnection) -> int:
    """Rows an INSERT added."""
    row = result.fetchone()
    return row[0] if row else 0
