"""Recommendation reports as text (people), JSON (programs) and CSV (cohort analysis),
and a cohort's report put together chunk by chunk (`chunk_output` where a chunk was
evaluated, `partition_output` for a DuckDB partition whose rows are made in SQL,
`partition_parquet` for one whose rows DuckDB keeps for a Parquet file, `write_report`
and `table_to_parquet` joining the chunks).

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

from reasoner.domains.crs.report import Item, PatientReport, build_reports, rule_patient_counts
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
    dose = f" {format_value(item.dose_mg)} mg" if item.dose_mg is not None else ""
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
    """Convert the CSV just written to Parquet with DuckDB (no other dependency), typed:
    grades and doses as numbers, the rest as text."""
    import os

    import duckdb
    types = {c: "VARCHAR" for c in CSV_COLUMNS}
    types.update({"crs_grade": "INTEGER", "hypoxia_grade": "INTEGER", "hypotension_grade": "INTEGER",
                  "dose_mg": "DOUBLE"})
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT * FROM read_csv(?, header=true, columns={types!r})) TO '{_sql_path(parquet_path)}' "
                    "(FORMAT parquet)", [csv_path])
    finally:
        con.close()
        os.unlink(csv_path)


def _sql_path(path: str) -> str:
    return path.replace("'", "''")


class ReportTable(str):
    """The DuckDB database file whose table `rows` holds the report rows of the
    partitions so far, in order (`report_sql.sql_parquet`), for `table_to_parquet`."""


def table_to_parquet(database: str, parquet_path: str) -> None:
    """The report rows of `database` as one Parquet file, in their order (a `COPY` of one
    table keeps its insertion order, with DuckDB's `preserve_insertion_order`, on by
    default, also when several threads write). One thread per core: 7.4 million rows
    (1,000,000 CRS patients) in 3.5 s instead of 4.8 s at one thread. The cores are the
    process's own (`cohort.cores`: a container's or `taskset`'s limit, as the partitions use)."""
    import duckdb

    from reasoner.engines.cohort import cores
    con = duckdb.connect(database, config={"threads": cores()})
    try:
        con.execute(f"COPY rows TO '{_sql_path(parquet_path)}' (FORMAT parquet)")
    finally:
        con.close()


def _append_csv(database: str, csv_path: str) -> None:
    """The report rows of a CSV file appended to `database`'s table, read and typed as
    `csv_to_parquet` reads them; the CSV file removed."""
    import os

    import duckdb

    from reasoner.domains.crs.report_sql import REPORT_TABLE
    types = {c: "VARCHAR" for c in CSV_COLUMNS}
    types.update({"crs_grade": "INTEGER", "hypoxia_grade": "INTEGER", "hypotension_grade": "INTEGER",
                  "dose_mg": "DOUBLE"})
    con = duckdb.connect(database)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS rows ({REPORT_TABLE})")
        con.execute(f"INSERT INTO rows SELECT * FROM read_csv(?, header=true, columns={types!r})", [csv_path])
    finally:
        con.close()
        os.unlink(csv_path)


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


def partition_parquet(database: str, reads: Any, firings_of: Any, rules: RuleSet,
                      result: Any, turn: Any) -> tuple[ReportTable, dict[int, int], dict, list]:
    """`chunk_output` of a DuckDB partition for a Parquet report: its rows appended by
    DuckDB, straight from SQL, to the table of the database file `database`, not sent as
    CSV text through Python; where the rule set is not in the CRS report's typing, its
    CSV text (over a model of the facts `reads` and the firings of `firings_of`) read in.
    Appended inside `with turn:`, so partitions evaluated side by side append in order."""
    from reasoner.domains.crs.report_sql import sql_parquet
    if sql_parquet(rules, result, database, turn):
        return (ReportTable(database), result.fired_for(), dict(result.engine.settings),
                distinct_violations(result.violations()))
    text, counts, settings, violations = chunk_output("csv", False, rules, result.to_model(reads, firings_of))
    with turn:
        csv_path = database + ".csv"
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(to_csv([], header=True) + text)
        _append_csv(database, csv_path)
    return ReportTable(database), counts, settings, violations


def write_report(out: TextIO, results: Iterable[tuple[Any, dict[int, int], dict, list]], rules: RuleSet, fmt: str,
                 explain: bool, parts: list[str] | None = None) -> tuple[dict[int, int], list]:
    """The report of every chunk's `chunk_output` into `out` (for parquet: the CSV to
    convert, and the database each `partition_parquet` filled appended to `parts`); the
    summed rule counts and the violations."""
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
        elif isinstance(rendered, ReportTable) and parts is not None:
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
