"""The values a fact may hold, the same for every reader and both engines.

docs/language.md ("Facts") states the rules; this module is their one implementation on
the Python side, and `reasoner.io.duckdb_inputs` builds its SQL checks from the patterns here:

- **Numbers** have one syntax in every format: `syntax.parse_number`'s (ASCII digits, an
  optional leading `-`, at most one `.` with digits on both sides: `72`, `-3`, `037`,
  `37.5`), and a value a double holds (at most about 1.8e308). Not numbers: `1e2`, `1_0`,
  fullwidth `１２`, `+1`, `.5`, `1.`, `nan`, `inf`, `0x10`. Python's `int()` and `float()`
  take most of those, so nothing reads a number without `read_number`.
- **Text** (ids, symbols, enumeration values) is never empty, never begins or ends with
  a space (any Unicode space separator), and holds no control character: no C0 or C1
  control (newline, carriage return, tab, NUL, ...; Unicode category Cc), no line or
  paragraph separator (U+2028, U+2029) and no lone surrogate (Cs, which only a JSON
  escape can make). A patient id holding a line break would otherwise forge a patient
  section in a text report.
"""
from __future__ import annotations

import math
import re

from reasoner.language.syntax import PLAIN_NUMBER, parse_number

NUMBER_PATTERN = PLAIN_NUMBER.pattern
"""The number syntax as a regular expression that Python's `re` and DuckDB's RE2 read alike."""

BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
SQL_BAD_CHARS = r"[\x00-\x1f\x7f-\x9f\x{2028}\x{2029}]"
"""The same characters for DuckDB (RE2; DuckDB text is UTF-8, so it holds no surrogate)."""

CELL_BLANKS = "".join(chr(c) for c in (0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000))
"""What a CSV or Parquet cell is trimmed of on both sides, by both engines: the Unicode
space separators (category Zs: the space, the no-break space, the ideographic space,
...), exactly what DuckDB's `trim()` takes (tests/test_fact_fuzz.py checks every code
point). Not tabs or line breaks: those are control characters. (Python's `str.strip()`
would take tabs and line breaks too.)"""

_LONGEST_INT = 4000
"""Digits of the longest whole number read (Python's `int()` refuses more than 4300; any
number beyond 309 digits is too large for a double anyway)."""


def read_number(text: str) -> int | float:
    """`text` as a number (an int when it has no `.`); ValueError saying why it is not one."""
    value = parse_number(text) if "." in text or len(text) <= _LONGEST_INT else None
    if value is None:
        if PLAIN_NUMBER.fullmatch(text):
            raise ValueError("too large for a number (more than a double holds)")
        raise ValueError(_why_not(text))
    if not is_finite(value):
        raise ValueError("too large for a number (more than a double holds)")
    return value


def is_finite(value: int | float) -> bool:
    """A number a double holds (Python ints may be larger than any double)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _why_not(text: str) -> str:
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?[eE][-+]?[0-9]+", text):
        return "numbers are written without an exponent (100, not 1e2)"
    if any(c.isdigit() and not c.isascii() for c in text):
        return "numbers are written in ASCII digits 0-9"
    if re.fullmatch(r"-?[0-9][0-9_]*(\.[0-9_]+)?", text):  # 1_000, not __import__(...)
        return "numbers are written without digit separators (1000, not 1_000)"
    return "a number is ASCII digits with an optional leading - and one . between digits (72, -3, 37.5)"


def text_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be an id or symbol (`what` names which), or None."""
    if value == "":
        return f"an empty {what}"
    bad = BAD_CHAR.search(value)
    if bad:
        code = ord(bad.group())
        kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a line separator" if code > 0x9F else \
            "a control character"
        return f"{what} {value!r} holds {kind} (U+{code:04X})"
    if value != value.strip(CELL_BLANKS):
        return f"{what} {value!r} begins or ends with a space"
    return None


def shown(text: str) -> str:
    """`text` for a message: as it is when printable, else with Python's escapes (a name
    read from a file must not break the line it is reported on, nor the terminal)."""
    return text if text.isprintable() else repr(text)[1:-1]
