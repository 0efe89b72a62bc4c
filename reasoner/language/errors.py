"""The project's one error type: a list of located diagnostics.

Every stage that rejects input raises `ReasonerError` carrying *all* the problems it
found, so the user fixes a file in one pass. The CLI prints them as
`file:line:col: error[CODE]: message` (or `error[CODE]: message` when there is no place)
and exits with status 2.

The codes the command line gives for problems outside the rule and fact files are the
constants below (the catalogue of every code: `reasoner.authoring.check.CODES`, docs/checks.md).
"""
from __future__ import annotations

from typing import Iterable

from reasoner.language.record import Record, record
from reasoner.language.span import NO_SPAN, Span

USAGE = "E020"
"""The command line itself: an unknown option, a missing argument, a value outside an
option's range or choices (click's usage errors, as located lines)."""
OUTPUT = "E021"
"""An output file that cannot be written: its folder is missing or not writable, the disk full."""
LIMIT = "E022"
"""An evaluation stopped at a limit: `--time-limit`, the rounds of a recursion that
reaches no fixpoint, or DuckDB's memory limit."""
INTERNAL = "E023"
"""An unexpected failure inside the reasoner (a bug): reported, never as a traceback."""


@record
class Diagnostic(Record):
    """One problem in one place. `code` names its kind (see docs/checks.md)."""

    span: Span
    message: str
    code: str = "E000"

    def __str__(self) -> str:
        if self.span == NO_SPAN:
            return f"error[{self.code}]: {self.message}"
        return f"{self.span}: error[{self.code}]: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.col, self.message)


class ReasonerError(Exception):
    """Bad input: a rule file, a fact file, a goal or an option the reasoner rejects."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(set(diagnostics), key=Diagnostic.sort_key)
        super().__init__("\n".join(map(str, self.diagnostics)))

    def __reduce__(self):  # picklable, so a worker process can hand it back
        return (type(self), (self.diagnostics,))

    @property
    def code(self) -> str:
        """The first diagnostic's code (E001 ...)."""
        return self.diagnostics[0].code if self.diagnostics else "E000"

    @classmethod
    def at(cls, span: Span, message: str, code: str = "E000") -> "ReasonerError":
        return cls([Diagnostic(span, message, code)])


class EvaluationLimit(Exception):
    """Evaluation went past its limit (time or iterations) and was stopped."""

    code = LIMIT

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(NO_SPAN, str(self), self.code)
