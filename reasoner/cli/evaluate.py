"""The commands that evaluate a cohort and report answers: `query`, `recommend`,
`conflicts`. Each imports what it uses when it runs (tests/test_startup.py)."""
from __future__ import annotations

import contextlib
import functools
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reasoner.cli.common import (
    EXIT_FINDINGS, cohort_options, fail, format_option, load_inputs, load_rules, parse_settings, refuse,
    report_violations, rules_option, run_models, settings_option,
)
from reasoner.language.errors import ReasonerError

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet
    from reasoner.engines.model import Model
    from reasoner.language.syntax import Atom


def query_task(atom: Atom, rules: RuleSet, model: Model) -> tuple[list[dict], list]:
    """`query`'s work on one chunk: the goal's answers and the distinct violations."""
    from reasoner.proof.violations import distinct_violations
    return model.query(atom), distinct_violations(model.violations)


@click.command()
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json")
@cohort_options
def query(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
          time_limit: float | None, stream: bool | None, chunk_size: int, jobs: int, engine: str) -> None:
    """Answer GOAL (e.g. 'crs_grade(P, G)') over FACTS (files, directories, or - for stdin)."""
    from reasoner.engines import cohort as cohorts
    from reasoner.engines.model import row_key
    from reasoner.io.goals import check_goal
    from reasoner.render import answers as render_answers
    rules = load_rules(rules_path)
    try:
        atom = check_goal(rules, goal)
    except ReasonerError as exc:
        fail(exc)
    cohort = cohorts.Cohort(rules, facts, stream, engine)
    answers, violations = [], []
    for part, broken in cohorts.evaluate_cohort(cohort, functools.partial(query_task, atom), parse_settings(overrides),
                                                jobs, chunk_size, time_limit, engine, reads=[atom.pred]):
        answers.extend(part)
        violations.extend(broken)
    answers.sort(key=lambda a: row_key(tuple(a.values())))
    click.echo(render_answers.render(goal, atom, answers, fmt), nl=False)
    if report_violations(rules, violations):
        sys.exit(EXIT_FINDINGS)


@click.command()
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json", "csv", "parquet")
@click.option("--explain", is_flag=True, help="Attach the proof of each recommendation and each conflict.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write here instead of standard output (required for parquet).")
@click.option("--rule-counts", type=click.Path(dir_okay=False), default=None,
              help="Also write, as CSV, for how many patients each rule fired.")
@cohort_options
def recommend(facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str, explain: bool,
              output: str | None, rule_counts: str | None, time_limit: float | None, stream: bool | None,
              chunk_size: int, jobs: int, engine: str) -> None:
    """Per patient: CRS grade, recommended actions with dose, contraindications, conflicts, warnings.

    Files (-o, --rule-counts) are written whole or not at all: under a temporary name
    in their folder, renamed into place when the run succeeds (-o - is standard output)."""
    from reasoner.domains.crs.report import READS, require_crs_vocabulary, supporting_rules, write_rule_counts
    from reasoner.engines import cohort as cohorts
    from reasoner.io.output import OutputFile
    from reasoner.render import recommend as render
    rules = load_rules(rules_path)
    try:
        require_crs_vocabulary(rules)
    except ReasonerError as exc:
        fail(exc)
    to_stdout = output in (None, "-")
    if fmt == "parquet" and to_stdout:
        refuse("--format parquet writes a file, not standard output: give --output FILE.parquet")
    if engine in ("duckdb", "spark") and explain:
        refuse(f"--explain needs proofs, which only the pyDatalog engine builds: drop --engine {engine} "
               "(or ask `reasoner why` per patient)")
    if rule_counts == "-":
        refuse("--rule-counts writes a file: give a file name (./- for a file named -)")
    if rule_counts and not to_stdout and Path(rule_counts).resolve() == Path(output).resolve():  # type: ignore
        refuse(f"--output and --rule-counts name the same file, {output}")
    with contextlib.ExitStack() as files:
        # made before anything is read or evaluated: a missing folder stops the run here (E021)
        report_file = None if to_stdout else files.enter_context(OutputFile(output, "--output", facts))  # type: ignore
        counts_file = files.enter_context(OutputFile(rule_counts, "--rule-counts", facts)) if rule_counts else None
        cohort = cohorts.Cohort(rules, facts, stream, engine)
        in_sql = fmt in ("csv", "parquet") and engine == "duckdb"  # the rows made in SQL where DuckDB can
        sql_task = render.partition_output if in_sql else None
        if in_sql and fmt == "parquet":  # each partition's rows written to the Parquet file as they come
            assert report_file is not None
            sink = files.enter_context(render.ParquetReport(report_file.temp))
            sql_task = functools.partial(render.partition_parquet, sink, READS, supporting_rules(rules))
        results = cohorts.evaluate_cohort(cohort, functools.partial(render.chunk_output, fmt, explain),
                                          parse_settings(overrides), jobs, chunk_size, time_limit, engine, reads=READS,
                                          firings_of=supporting_rules(rules), sql_task=sql_task)
        # Every input check is done before the first chunk comes back (DuckDB checks a cohort
        # as it loads it): bad input exits here, before a header is printed.
        first = next(results, None)
        results = itertools.chain([first] if first is not None else [], results)
        csv_part = report_file.new_temp(".csv") if report_file is not None and fmt == "parquet" else None
        with contextlib.ExitStack() as handles:
            if report_file is None:
                out: Any = sys.stdout
            else:
                out = handles.enter_context(open(csv_part or report_file.temp, "w", encoding="utf-8", newline=""))
            parts: list[render.ParquetReport] = []
            counts, violations = render.write_report(out, results, rules, fmt, explain, parts)
        if csv_part is not None and parts:  # every partition's rows in the Parquet file: the CSV holds only the header
            parts[0].close()
        elif csv_part is not None:
            render.csv_to_parquet(csv_part, report_file.temp)  # type: ignore[union-attr]
        if counts_file is not None:
            write_rule_counts(rules, counts, counts_file.temp)
        for done in (report_file, counts_file):  # the run succeeded: now, and only now, in place
            if done is not None:
                done.commit()
    if report_violations(rules, violations):
        sys.exit(EXIT_FINDINGS)


@click.command()
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json")
def conflicts(facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str) -> None:
    """Every conflict(P, Action, Reason), with both sides explained; exit 1 if there is any."""
    from reasoner.domains.crs.conflicts import explained_conflicts, require_conflicts
    from reasoner.render import conflicts as render
    rules, factset = load_inputs(rules_path, facts)
    try:
        require_conflicts(rules)
    except ReasonerError as exc:
        fail(exc)
    found, violations = [], []
    for model in run_models(rules, factset, overrides):
        violations += model.violations
        found += explained_conflicts(rules, model)
    click.echo((render.to_json if fmt == "json" else render.to_text)(found, rules), nl=False)
    broken = report_violations(rules, violations)
    sys.exit(EXIT_FINDINGS if found or broken else 0)
