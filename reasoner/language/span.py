"""Where a node starts in its source file: the position every message points at.

Its own module so that `errors` (and the CLI's `--help`) need not build the syntax
tree's classes (`record` says what each costs at import).
"""
from __future__ import annotations

from reasoner.language.record import Record, record


@record
class Span(Record):
    """Where a node starts in its source file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        # Always file:line:col, line 0 for a place with no line (a file as a whole, a FHIR
        # resource sent in a request): tools that read messages split on the colons
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<none>", 0, 0)
