"""The `facts` commands: fact files from and to FHIR R4 (docs/fhir.md). `from-fhir`
reads a Bundle by the rule set's mapping table and writes a `.facts` file; `to-fhir`
writes a fact file's facts as a collection Bundle. fhir.resources is imported only when
one of them runs. (Every other command reads a Bundle as a fact file directly.)"""
from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from reasoner.cli.common import fail, load_inputs, load_rules, rules_option
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.span import Span


class IsoTime(click.ParamType):
    """An ISO 8601 time with a time zone (`2026-01-05T12:00:00Z`, `...+01:00`)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-01-05T12:00:00Z)", param, ctx)
        if when.tzinfo is None:
            self.fail(f"{value!r} has no time zone (add Z or an offset such as +01:00)", param, ctx)
        return when


@click.group()
def facts() -> None:
    """Fact files from and to FHIR R4 Bundles (docs/fhir.md)."""


@facts.command("from-fhir")
@click.argument("bundle", type=click.Path(), metavar="BUNDLE.json")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the .facts file here (default: standard output).")
@click.option("--assessed-at", type=IsoTime(), default=None,
              help="The assessment time hours-ago values count from (default: the Bundle's timestamp).")
@rules_option
def from_fhir(bundle: str, output: str | None, assessed_at: datetime | None, rules_path: str | None) -> None:
    """A FHIR Bundle's facts as a .facts file; exit 2 on any resource that cannot be mapped."""
    from reasoner.io.fact_check import OneFacts
    from reasoner.io.fhir_file import print_notes, read_bundle
    ruleset = load_rules(rules_path)
    name = "<stdin>" if bundle == "-" else bundle
    try:
        fhir = read_bundle(_read_text(bundle, name), name, assessed_at, rules=ruleset)
    except ReasonerError as exc:
        fail(exc)
    print_notes(fhir)
    checked, problems = fhir.checked(ruleset)
    one = OneFacts(ruleset)
    for fact in checked:
        one.add(fact)
    problems += one.problems()
    if problems:
        fail(ReasonerError(problems))
    when = "none (no Bundle.timestamp nor --assessed-at; nothing needed it)" if fhir.assessed_at is None else \
        fhir.assessed_at.isoformat().replace("+00:00", "Z") + (" (--assessed-at)" if assessed_at else
                                                                " (Bundle.timestamp)")
    lines = [f"% Facts from the FHIR Bundle {name} (reasoner facts from-fhir, mapping {_shown_path(ruleset)})",
             f"% Assessed at: {when}", *(f"{fact}." for fact in checked)]
    _write("\n".join(lines) + "\n", output, bundle)


@facts.command("to-fhir")
@click.argument("fact_file", type=click.Path(), metavar="FILE.facts")
@click.option("--assessed-at", type=IsoTime(), required=True,
              help="The assessment time: observations are timed at it, doses the given hours before.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the Bundle here (default: standard output).")
@rules_option
def to_fhir(fact_file: str, assessed_at: datetime, output: str | None, rules_path: str | None) -> None:
    """A fact file's facts as a FHIR R4 collection Bundle (JSON)."""
    from reasoner.io.fhir import facts_to_fhir
    from reasoner.io.fhir_map import load_fhir_mapping
    ruleset, fact_set = load_inputs(rules_path, (fact_file,))
    try:
        bundle = facts_to_fhir(fact_set.facts, assessed_at=assessed_at, mapping=load_fhir_mapping(ruleset))
    except ReasonerError as exc:
        fail(exc)
    _write(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", output, fact_file)


def _read_text(path: str, name: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        fail(ReasonerError([Diagnostic(Span(name, 0, 0), f"cannot read: {exc.strerror or exc}", "E040")]))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        fail(ReasonerError([Diagnostic(Span(name, line, 1), "not UTF-8 text", "E040")]))


def _shown_path(ruleset) -> str:
    from reasoner.io.fhir_map import MAPPING_FILE
    return f"{ruleset.path}/{MAPPING_FILE}" if not str(ruleset.path).endswith(".dl") else MAPPING_FILE


def _write(text: str, output: str | None, source: str) -> None:
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    from reasoner.io.output import write_text
    try:
        write_text(output, text, "--output", (source,))
    except ReasonerError as exc:
        fail(exc)
