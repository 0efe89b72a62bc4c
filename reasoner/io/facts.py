"""Fact files → checked facts, grouped by patient: the `FactSet` and `load_facts` (files,
directories, stdin read whole), cohorts streamed in two passes (`validate_stream`, then
`stream_chunks`), and chunks of patients (`chunks`).

Four forms (README, "Fact files"): `.facts` (the rule language's own syntax), `.json`
(an array of {"predicate": ..., "args": [...]}), `.csv` (header `predicate,arg1,arg2,...`,
or one file per predicate) and `.parquet` (the same two layouts), read by
`fact_readers`. A directory means every fact file in it, `-` means stdin (in the `.facts`
form unless `stdin_format` says otherwise); /dev/null and a FIFO are read like files.

Every reader hands what it read to one validator, `validate_fact` (`fact_check`): known
input predicate, arity, the one number syntax and the text rules of
`reasoner.language.values`, type, range, enumeration value; then `OneFacts` checks that
a `one` predicate holds one fact per patient (E017), whole or streamed. *All* problems
are reported together, each located, and nothing is evaluated from an input that failed.
The DuckDB engine checks CSV and Parquet cohorts in SQL by the same rules
(reasoner/io/duckdb_inputs.py). The public names of `fact_check` and `fact_readers` are
importable from here too (`__all__`).
"""
from __future__ import annotations

import csv
import errno
import os
import stat
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from reasoner.analysis.program import RuleSet
from reasoner.io.fact_check import (
    NumberText, OneFacts, check_argument, check_fact, typed_fact, validate_fact, validated,
)
from reasoner.io.fact_readers import Parsed, csv_rows, literal_args, parquet_rows, read_form
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import Fact, Span, Value

__all__ = [
    # this module
    "FACT_SUFFIXES", "FactSet", "chunks", "load_facts", "of_patient", "read_once", "stream_chunks", "stream_facts",
    "stream_file", "validate_stream",
    # fact_check
    "NumberText", "OneFacts", "check_argument", "check_fact", "typed_fact", "validate_fact", "validated",
    # fact_readers
    "Parsed", "csv_rows", "literal_args", "parquet_rows", "read_form",
]

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
        for item in validated(ruleset, read_form(ruleset, display, form, content)):
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
        files = fact_files_in(p)
        if not files:
            raise ReasonerError.at(Span(path, 0, 0), f"no fact files ({', '.join(FACT_SUFFIXES)}) in this directory",
                                   "E015")
        return [entry for f in files for entry in _read_path(str(f), stdin_format)]
    if not p.exists():  # /dev/null, a FIFO or /dev/stdin are read like files
        why = "a loop of symbolic links" if p.is_symlink() and _link_loop(p) else "no such fact file"
        raise ReasonerError.at(Span(path, 0, 0), why, "E015")
    if p.suffix == ".parquet":
        return [(path, "parquet", "")]  # read by streaming, not as text
    form = {".json": "json", ".csv": "csv"}.get(p.suffix, "facts")
    try:
        with open(p, "rb") as handle:  # read once: a FIFO gives its bytes only once
            data = handle.read() if p.is_file() else _read_device(handle, path)
    except OSError as exc:
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read: {exc.strerror or exc}", "E015") from None
    text = _decode(data, path)
    if form != "csv":  # the csv module reads every line ending itself, quoted ones too
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [(path, form, text)]


def _link_loop(p: Path) -> bool:
    try:
        p.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 says a loop this way
        return True
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _read_device(handle, path: str) -> bytes:
    """A FIFO's or a device's bytes, in chunks: one that gives a NUL byte (/dev/zero,
    /dev/urandom) is no fact file, and is refused at once instead of read for ever."""
    chunks = []
    while chunk := handle.read(1 << 20):
        if b"\0" in chunk:
            raise ReasonerError.at(Span(path, 0, 0), "a NUL byte: not a text fact file (a device such as "
                                   "/dev/zero?)", "E015")
        chunks.append(chunk)
    return b"".join(chunks)


def _read_stdin() -> str:
    if sys.stdin is None:  # started with standard input closed (`<&-`)
        raise ReasonerError.at(Span("<stdin>", 0, 0), "standard input is closed: nothing to read for -", "E015")
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
            yield from validated(ruleset, csv_rows(csv.reader(handle, strict=True), path, ruleset, p.stem))
    elif p.suffix == ".parquet":
        yield from validated(ruleset, parquet_rows(path, ruleset))
    else:  # the human-written forms are read whole
        try:
            sources = _read_path(path, "facts")
        except ReasonerError as exc:
            yield from exc.diagnostics
            return
        for display, form, content in sources:
            yield from validated(ruleset, read_form(ruleset, display, form, content))


NOTED: set[str] = set()
"""Folders whose unread files this command has named (cleared as each command starts)."""


def fact_files_in(folder: Path) -> list[Path]:
    """The fact files under `folder` (its subfolders too), by name: those whose suffix is
    one of FACT_SUFFIXES. The other files are not read, and a note on stderr names them (once
    a command: a cohort is read twice when streamed): a
    `B.FACTS` or a `day2.dl` left in a cohort folder is not dropped without a word (hidden
    files, such as .DS_Store, and a folder's README or Markdown notes are not named)."""
    files, others = [], []
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            (files if f.suffix in FACT_SUFFIXES else others).append(f)
    shown = [str(f.relative_to(folder)) for f in others
             if not f.name.startswith(".") and not f.name.upper().startswith("README") and f.suffix != ".md"]
    if shown and str(folder) not in NOTED:
        NOTED.add(str(folder))
        print(f"{folder}:0:0: note: {len(shown)} {'file' if len(shown) == 1 else 'files'} not read, not named "
              f"{', '.join(FACT_SUFFIXES)}: {', '.join(shown[:5])}{' and more' if len(shown) > 5 else ''}",
              file=sys.stderr)
    return files


def _expand(paths: Iterable[str | Path]) -> list[str]:
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if str(path) != "-" and p.is_dir():
            out += [str(f) for f in fact_files_in(p)]
        else:
            out.append(str(path))
    return out


def _not_grouped(key: Value) -> str:
    return (f"patient {key} appears again after other patients: a cohort read in chunks must hold each patient's "
            "facts together (sort it by patient), or read it whole with --no-stream")


class Grouping:
    """Pass one's record of how a cohort's patients are grouped: each patient's rank (the
    order of first appearance) and, for a patient whose facts come back after others
    began, the highest rank seen by then and the fact that came back. Pass two hands on
    chunks of `size` patients by rank: patient p, of rank r, breaks the chunking where it
    comes back after the chunk of rank m began (r // size < m // size). Knowing that after
    pass one, a command refuses the cohort before printing any of its report."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        self.rank: dict[Value, int] = {}
        self.back: dict[Value, tuple[int, Span]] = {}
        self.current: Value | None = None
        self.keyless: tuple[int, Fact] | None = None  # the first fact of no patient after some patients

    def add(self, fact: Fact) -> None:
        k = self.ruleset.key_index(fact.pred)
        if k is None:
            if self.rank and self.keyless is None:
                self.keyless = (len(self.rank), fact)
            return
        key = fact.args[k]
        if key == self.current:
            return
        self.current = key
        if key not in self.rank:
            self.rank[key] = len(self.rank)
        elif self.rank[key] < len(self.rank) - 1:
            seen = len(self.rank) - 1
            if key not in self.back or self.back[key][0] < seen:
                self.back[key] = (seen, fact.span)

    def problem(self, size: int) -> Diagnostic | None:
        """Why chunks of `size` patients cannot be read from the cohort as it is, or None."""
        if not self.ruleset.patient_local:
            return None
        if self.keyless is not None and self.keyless[0] > size:  # after the first chunk was handed on
            fact = self.keyless[1]
            return Diagnostic(fact.span, f"{fact.pred} holds no patient: in a cohort read in chunks, such facts come "
                              "before every patient's facts", "E015")
        broken = [(span, key) for key, (seen, span) in self.back.items() if self.rank[key] // size < seen // size]
        if broken:
            span, key = min(broken, key=lambda b: (b[0].file, b[0].line, b[0].col))
            return Diagnostic(span, _not_grouped(key), "E015")
        return None


def validate_stream(ruleset: RuleSet, paths: Iterable[str | Path], limit: int = 1000,
                    grouping: Grouping | None = None) -> int:
    """Pass one over a cohort: check every fact, `one` per patient included, keeping none
    (memory flat: see `OneFacts`), and record in `grouping` how its patients are grouped.
    Raises ReasonerError with the problems (the first `limit`, and how many more)."""
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
                if grouping is not None:
                    grouping.add(item)
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
                    raise ReasonerError.at(fact.span, _not_grouped(key), "E015")
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
