"""Recommendation reports as text (people), JSON (programs) and CSV (cohort analysis),
and a cohort's report put together chunk by chunk (`chunk_output` where a chunk was
evaluated, `partition_output` for a DuckDB partition whose rows are made in SQL,
`partition_parquet` for one whose rows go straight to a Parquet file, `write_report`
joining the chunks).

JSON: `{"rule_set": ..., "settings": {...}, "patients": [PatientReport...]}`, schema in
docs/output.md. CSV: one row per patient and item, with a `grade` row per patient so a
patient with nothing recommended still appears. Warnings come before recommendations in
every format (a missing input can make every recommendation wrong). A choice group
(`@choice`) is one `recommend` item "one of: a, b, c", followed in CSV by one `option`
row per alternative.
"""
from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TextIO

from reasoner.domains.crs.report import Item, PatientReport, build_reports, dose_text, rule_patient_counts
from reasoner.language.syntax import Value, format_value
from reasoner.proof.violations import distinct_violations

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet
    from reasoner.engines.model import Model

CSV_COLUMNS = ["patient", "crs_grade", "hypoxia_grade", "hypotension_grade", "kind", "action", "reason",
               "dose_mg", "frequency", "section", "rules", "sources", "strength", "choice"]

Proofs = Callable[[str, str, tuple], Any]
"""(patient, kind, fact args) → a rendered proof (text) or a JSON object, for --explain."""


def _v(value: Value | None) -> str:
    return "?" if value is None else format_value(value)


def to_text(reports: list[PatientReport], proof: Proofs | None = None,
            references: dict[Value, str] | None = None) -> str:
    """The text report; with `proof`, each item's proof under it, and with `references`
    (patient → the full citations of the sources their proofs cite) those at the end of
    the patient's part."""
    out: list[str] = []
    for r in reports:
        out.append(f"Patient {r.patient}: CRS grade {_v(r.crs_grade)} "
                   f"(hypoxia grade {_v(r.hypoxia_grade)}, hypotension grade {_v(r.hypotension_grade)})")
        _list(out, "Warnings", r.warnings, lambda i: f"{i.action}: {i.says}" if i.says else i.action)
        if not r.recommendations:
            out.append("  No action recommended.")
        section = None
        for item in r.recommendations:
            if item.section != section:
                section = item.section
                out.append(f"  {section[:1].upper() + section[1:]}")
            if item.options:
                out.append(f"    - {item.strength or 'choose'} one of ({item.choice}):")
                for option in item.options:
                    out.append(f"      - {_action_line(option)}")
                    out.append(f"        {_why(option)}")
                    if proof is not None:
                        out += _indent(proof(r.patient, "recommend", (r.patient, option.action)), 10)
                continue
            out.append(f"    - {_action_line(item)}")
            out.append(f"      {_why(item)}")
            if proof is not None:
                out += _indent(proof(r.patient, "recommend", (r.patient, item.action)), 8)
        _list(out, "Contraindicated", r.contraindications, lambda i: f"{i.action}: {i.reason}")
        _list(out, "CONFLICTS (indicated or ordered, and contraindicated)", r.conflicts, _conflict_line,
              proof and (lambda i: proof(r.patient, "conflict", (r.patient, i.action, i.reason))))
        for v in r.violations:
            out.append(f"  Rule-set constraint violated: {v}")
        if references and references.get(r.patient):
            out += _indent(references[r.patient], 2)
        out.append("")
    return "\n".join(out)


def _action_line(item: Item) -> str:
    dose = f" {dose_text(item.dose_mg)}" if item.dose_mg is not None else ""
    freq = f", {'; '.join(item.frequency)}" if item.frequency else ""
    strength = f"  [{item.strength}]" if item.strength else ""
    return f"{item.action}{dose}{freq}{strength}"


def _conflict_line(i: Item) -> str:
    line = f"{i.action}: {i.reason}" + (" (ordered by the team)" if i.ordered else "")
    if i.alternatives:
        line += f"; alternative: {', '.join(i.alternatives)}"
    return line


def _list(out: list[str], title: str, items: list[Item], line: Callable[[Item], str],
          proof: Callable[[Item], Any] | None = None) -> None:
    if not items:
        return
    out.append(f"  {title}")
    for item in items:
        out.append(f"    - {line(item)}")
        out.append(f"      {_why(item)}")
        if proof is not None:
            out += _indent(proof(item), 8)


def _why(item: Item) -> str:
    sources = f"; sources {', '.join(item.sources)}" if item.sources else ""
    return f"(rules {', '.join(item.rules)}{sources})" if item.rules else "(no rule recorded)"


def _indent(text: str, n: int) -> list[str]:
    return [" " * n + line if line else line for line in text.rstrip("\n").split("\n")]


def to_json(reports: list[PatientReport], rule_set: str, settings: dict[str, Value],
            proof: Proofs | None = None, sources: dict[str, str] | None = None) -> str:
    """The whole JSON report (one document)."""
    writer = JSONReportWriter(rule_set, settings, sources)
    return "".join(writer.patients(reports, proof)) + writer.tail()


class JSONReportWriter:
    """The JSON report written as it goes, patient by patient: the same bytes as
    `json.dumps(document, indent=1)` of the whole, without holding the whole (a cohort
    with proofs would not fit in memory) — except that a proof given already encoded (a
    `str` of JSON, made where the chunk was evaluated) goes in as that one line."""

    def __init__(self, rule_set: str, settings: dict[str, Value], sources: dict[str, str] | None = None):
        doc = {"rule_set": rule_set, "settings": dict(sorted(settings.items())), "sources": sources or {},
               "patients": [0]}
        self._head, self._tail = json.dumps(doc, ensure_ascii=False, indent=1).split("\n  0\n")
        self._written = 0

    def patients(self, reports: list[PatientReport], proof: Proofs | None = None) -> Iterator[str]:
        for r in reports:
            encoded: list[str] = []

            def keep(obj: Any) -> Any:
                if isinstance(obj, str):  # JSON already: a placeholder now, the text after indenting
                    encoded.append(obj)
                    return f"\0{len(encoded) - 1}"
                return obj

            doc = _patient_json(r, proof and (lambda *key: keep(proof(*key))))
            text = textwrap.indent(json.dumps(doc, ensure_ascii=False, indent=1), "  ")
            if encoded:
                text = _PLACEHOLDER.sub(lambda m: encoded[int(m.group(1))], text)
            yield (self._head + "\n" if self._written == 0 else ",\n") + text
            self._written += 1

    def tail(self) -> str:
        if self._written == 0:
            return self._head.rsplit("[", 1)[0] + "[]\n}\n"
        return "\n" + self._tail + "\n"


_PLACEHOLDER = re.compile(r'"\\u0000(\d+)"')


def _patient_json(r: PatientReport, proof: Proofs | None) -> dict:
    doc = r.as_json()
    if proof is not None:
        for item, obj in zip(r.recommendations, doc["recommendations"]):
            if item.options:
                for option, sub in zip(item.options, obj["options"]):
                    sub["proof"] = proof(r.patient, "recommend", (r.patient, option.action))
            else:
                obj["proof"] = proof(r.patient, "recommend", (r.patient, item.action))
        for item, obj in zip(r.conflicts, doc["conflicts"]):
            obj["proof"] = proof(r.patient, "conflict", (r.patient, item.action, item.reason))
    return doc


def csv_rows(reports: list[PatientReport]) -> list[list[str]]:
    rows = []
    for r in reports:
        base = [r.patient, _c(r.crs_grade), _c(r.hypoxia_grade), _c(r.hypotension_grade)]
        rows.append(base + ["grade"] + [""] * 9)
        for kind, items in (("warning", r.warnings), ("recommend", r.recommendations),
                            ("contraindicated", r.contraindications), ("conflict", r.conflicts)):
            for i in items:
                rows.append(base + [kind] + _csv_item(i))
                rows += [base + ["option"] + _csv_item(o) for o in i.options]
    return rows


def _csv_item(i: Item) -> list[str]:
    return [i.action, i.reason or "", _c(i.dose_mg), "; ".join(i.frequency), i.section, " ".join(i.rules),
            " ".join(i.sources), i.strength or "", i.choice or ""]


def to_csv(reports: list[PatientReport], header: bool = True) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(reports))
    return buf.getvalue()


def _c(value: Value | None) -> str:
    return "" if value is None else format_value(value)


def csv_to_parquet(csv_path: str, parquet_path: str) -> None:
    """Convert the CSV just written to Parquet with DuckDB, typed: grades and doses as
    numbers, the rest as text."""
    import os

    import duckdb
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({_typed_csv(csv_path)}) TO '{_sql_path(parquet_path)}' (FORMAT parquet)")
    finally:
        con.close()
        os.unlink(csv_path)


def _typed_csv(csv_path: str) -> str:
    """A SELECT of a CSV report's rows, typed as the Parquet report is."""
    from reasoner.domains.crs.report_sql import REPORT_TYPES
    return f"SELECT * FROM read_csv('{_sql_path(csv_path)}', header=true, columns={REPORT_TYPES!r})"


def _sql_path(path: str) -> str:
    return path.replace("'", "''")


class ParquetReport:
    """The Parquet report being written, partition by partition: each `append`ed Arrow
    table (a partition's rows, in order) becomes the file's next row groups, written by
    pyarrow's `ParquetWriter` as it comes, so nothing is copied at the end. `close`
    finishes the file (the footer); until then it is not readable. As a context manager,
    it lets go of a file it has opened."""

    def __init__(self, path: str):
        self.path = path
        self._writer: Any = None
        self._closed = False

    def append(self, rows: Any) -> None:
        """Rows (a pyarrow Table with the report's columns) after those appended so far."""
        schema = _parquet_schema()
        if rows.schema != schema:  # a column DuckDB typed otherwise (all NULL, say): the report's types
            rows = rows.select(schema.names).cast(schema)
        self._open().write_table(rows)

    def _open(self) -> Any:
        if self._writer is None:
            import pyarrow.parquet as pq
            self._writer = pq.ParquetWriter(self.path, _parquet_schema())
        return self._writer

    def close(self) -> None:
        """The file finished: every row appended, or none (the columns only)."""
        if not self._closed:
            self._closed = True
            self._open().close()

    def __enter__(self) -> "ParquetReport":
        return self

    def __exit__(self, *exc: object) -> None:
        # a file left unfinished (the run failed; its caller removes it) is let go of, not
        # made: after a run without partitions the file at `path` is another writer's
        if self._writer is not None:
            self.close()


def _parquet_schema() -> Any:
    import pyarrow as pa

    from reasoner.domains.crs.report_sql import REPORT_TYPES
    arrow = {"INTEGER": pa.int32(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}
    return pa.schema([(c, arrow[t]) for c, t in REPORT_TYPES.items()])


def _csv_rows(csv_path: str) -> Any:
    """The report rows of a CSV file as an Arrow table, read and typed as `csv_to_parquet`
    reads them."""
    import duckdb
    con = duckdb.connect()
    try:
        return con.sql(_typed_csv(csv_path)).to_arrow_table()
    finally:
        con.close()


# ----------------------------------------------------------------------------- a cohort's report, chunk by chunk
def chunk_output(fmt: str, explain: bool, rules: RuleSet, model: Model) -> tuple[Any, dict[int, int], dict, list]:
    """Everything `recommend` prints for one chunk, computed where the chunk was evaluated
    (a worker): text and CSV rendered there, JSON as reports and proofs to join later.
    With the chunk's rule patient counts, settings and distinct violations."""
    reports = build_reports(rules, model)
    proofs: dict = {}
    references: dict = {}
    if explain:
        from reasoner.proof.explain import Explainer
        from reasoner.render import proof as proof_render
        explainer = Explainer(rules, model)
        for r in reports:
            # in the order the report prints them, so a sub-proof shared by several (the
            # CRS grade) is printed once, at its first use, and referred back to after
            keys = [("recommend", (r.patient, each.action)) for item in r.recommendations
                    for each in item.options or [item]]
            keys += [("conflict", (r.patient, item.action, item.reason)) for item in r.conflicts]
            roots = [explainer.prove(*key) for key in keys]
            if fmt == "json":  # encoded here, in the worker, compact: the C encoder, ~10x faster than indented
                rendered = [json.dumps(proof_render.to_json_obj(root, rules), ensure_ascii=False) for root in roots]
            else:
                printer = proof_render.ProofPrinter(rules, plan=roots)
                rendered = [printer.text(root) for root in roots]
                references[r.patient] = printer.references_text()
            for key, text in zip(keys, rendered):
                proofs[(r.patient,) + key] = text
    proof = (lambda p, pred, args: proofs[(p, pred, args)]) if explain else None
    if fmt in ("csv", "parquet"):
        out: object = to_csv(reports, header=False)
    elif fmt == "text":
        out = to_text(reports, proof, references) if reports else ""
    else:
        out = (reports, proofs)
    return out, rule_patient_counts(rules, model), model.settings, distinct_violations(model.violations)


def partition_output(rules: RuleSet, result: Any, turn: Any = None) -> tuple[str, dict[int, int], dict, list] | None:
    """`chunk_output` of a DuckDB partition whose CSV rows are made in SQL (`result` an
    `SQLResult`), or None where the rule set is not in the CRS report's typing. (`turn`:
    unused, the text is returned in partition order anyway.)"""
    from reasoner.domains.crs.report_sql import sql_csv
    text = sql_csv(rules, result)
    if text is None:
        return None
    return text, result.fired_for(), dict(result.engine.settings), distinct_violations(result.violations())


def partition_parquet(sink: ParquetReport, reads: Any, firings_of: Any, rules: RuleSet,
                      result: Any, turn: Any) -> tuple[ParquetReport, dict[int, int], dict, list]:
    """`chunk_output` of a DuckDB partition for a Parquet report: its rows made in SQL and
    appended to `sink`, not sent as CSV text through Python; where the rule set is not in
    the CRS report's typing, its CSV text (over a model of the facts `reads` and the
    firings of `firings_of`) read back typed. Appended inside `with turn:`, so partitions
    evaluated side by side append in order."""
    import os
    import tempfile

    from reasoner.domains.crs.report_sql import sql_parquet
    if sql_parquet(rules, result, sink, turn):
        return sink, result.fired_for(), dict(result.engine.settings), distinct_violations(result.violations())
    text, counts, settings, violations = chunk_output("csv", False, rules, result.to_model(reads, firings_of))
    handle, csv_path = tempfile.mkstemp(prefix="reasoner-report-", suffix=".csv")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as out:
            out.write(to_csv([], header=True) + text)
        rows = _csv_rows(csv_path)
    finally:
        os.unlink(csv_path)
    with turn:
        sink.append(rows)
    return sink, counts, settings, violations


def write_report(out: TextIO, results: Iterable[tuple[Any, dict[int, int], dict, list]], rules: RuleSet, fmt: str,
                 explain: bool, parts: list[ParquetReport] | None = None) -> tuple[dict[int, int], list]:
    """The report of every chunk's `chunk_output` into `out` (for parquet: the CSV to
    convert, and the `ParquetReport` each `partition_parquet` appended to added to
    `parts`); the summed rule counts and the violations."""
    settings: dict = {}
    counts: dict[int, int] = {}
    violations: list = []
    wrote_text = False
    writer = None
    if fmt in ("csv", "parquet"):
        out.write(to_csv([], header=True))
    for rendered, chunk_counts, settings, broken in results:
        violations.extend(broken)
        for index, n in chunk_counts.items():
            counts[index] = counts.get(index, 0) + n
        if fmt == "json":  # written patient by patient: memory stays flat in the cohort
            reports, chunk_proofs = rendered
            if writer is None:
                writer = JSONReportWriter(rules.path, settings, citations(rules))
            joint = (lambda patient, pred, args: chunk_proofs[(patient, pred, args)]) if explain else None
            for text in writer.patients(reports, joint):
                out.write(text)
        elif isinstance(rendered, ParquetReport) and parts is not None:
            parts.append(rendered)
        elif fmt in ("csv", "parquet"):
            out.write(rendered)
        elif rendered:  # a blank line between patients, across chunk boundaries too
            out.write(("\n" if wrote_text else "") + rendered)
            wrote_text = True
    if fmt == "json":
        out.write((writer or JSONReportWriter(rules.path, settings, citations(rules))).tail())
    return counts, violations


def citations(rules: RuleSet) -> dict[str, str]:
    """Every source of the rule set, key → full citation (the JSON report's "sources")."""
    return {key: source.text for key, source in rules.sources.items()}
