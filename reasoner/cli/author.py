"""The commands for rule-set authors: `rules` (the rulebook), `check`, `test` (the rule
set's own example patients) and `diff` (two versions compared). Each imports what it
uses when it runs: the checker and z3 only for `check` and `diff`."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from reasoner.cli.common import (
    EXIT_BAD_INPUT, EXIT_FINDINGS, Seconds, fail, format_option, load_rules, parse_settings, refuse, settings_option,
)
from reasoner.language.errors import INTERNAL, OUTPUT, Diagnostic, ReasonerError
from reasoner.language.span import NO_SPAN, Span


def witness_dir_error(folder: str, exc: OSError) -> ReasonerError:
    """E021 for a --witness-dir whose files could not be written."""
    return ReasonerError.at(Span(folder, 0, 0), "cannot write the --witness-dir files: "
                            f"{(exc.strerror or str(exc)).lower()}", OUTPUT)


@click.command()
@click.argument("rules_path", required=False, metavar="[RULES]")
@format_option("text", "markdown", "json")
def rules(rules_path: str | None, fmt: str) -> None:
    """The rulebook: every rule with its id, sources and sentence, by guideline section."""
    from reasoner.render import rulebook
    rs = load_rules(rules_path)
    render = {"text": rulebook.to_text, "markdown": rulebook.to_markdown, "json": rulebook.to_json}[fmt]
    click.echo(render(rs), nl=False)


@click.command()
@click.argument("rules_path", required=False, metavar="[RULES]")
@format_option("text", "json")
@click.option("--witness-dir", type=click.Path(file_okay=False), default=None,
              help="Write each semantic finding's witness patient here, as a ready-to-run fact file.")
@click.option("--static-only", is_flag=True, help="Skip the semantic checks (no patients explored).")
@click.option("--budget", type=click.IntRange(10), default=3000, show_default=True,
              help="At most this many patients from the covering array.")
@click.option("--search", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Explore patients for what the solver did not decide (auto), for everything as a cross-check "
                   "of the solver (always), or not at all (never).")
@click.option("--no-solver", is_flag=True, help="Search only, as before the solver (nothing is proved).")
@click.option("--codes", is_flag=True, help="List every finding code with its explanation, and exit.")
@settings_option
def check(rules_path: str | None, fmt: str, witness_dir: str | None, static_only: bool, budget: int,
          search: str, no_solver: bool, codes: bool, overrides: tuple[str, ...]) -> None:
    """Find contradictions, coverage gaps, dead and redundant rules; exit 1 on errors."""
    from reasoner.authoring.check import CODES, run_check, write_witnesses
    from reasoner.render import findings as render_findings
    if codes:
        for code, (severity, text) in CODES.items():
            click.echo(f"{code}  {severity:<7}  {text}")
        return
    from reasoner.io.output import check_folder
    if no_solver and search == "never":
        refuse("--no-solver --search never would check nothing semantic: drop one (or use --static-only)")
    settings = parse_settings(overrides)
    try:
        if witness_dir:  # before the exploration: a folder that cannot be made stops the run now (E021)
            check_folder(witness_dir, "--witness-dir")
        report = run_check(rules_path, semantic=not static_only, budget=budget, settings=settings,
                           solver=not no_solver, search="always" if no_solver else search)
        if witness_dir:
            try:
                write_witnesses(report, Path(witness_dir))
            except OSError as exc:
                raise witness_dir_error(witness_dir, exc) from None
    except ReasonerError as exc:
        fail(exc)
    click.echo(render_findings.render(report, fmt), nl=False)
    sys.exit(EXIT_FINDINGS if report.errors else 0)


@click.command("test")
@click.argument("rules_path", required=False, metavar="[RULES]")
@click.option("--cases", "cases_dir", type=click.Path(), default=None,
              help="Directory of test cases (default: tests/ beside the rule set).")
def test_command(rules_path: str | None, cases_dir: str | None) -> None:
    """Run the rule set's own test cases; exit 1 if any fails."""
    from reasoner.authoring.casetests import case_dir, read_case, run_case
    rs = load_rules(rules_path)
    folder = Path(cases_dir) if cases_dir else case_dir(rs)
    files = sorted(folder.glob("*.facts")) if folder.is_dir() else []
    if not files:
        refuse("no test cases (*.facts) in this folder" if folder.is_dir() else
               "not a folder of test cases" if folder.exists() else "no such folder of test cases",
               span=Span(str(folder), 0, 0))
    passed = failed = 0
    for path in files:
        try:
            outcome = run_case(read_case(path, rs), rs)
        except ReasonerError as exc:
            fail(exc)
        if outcome.passed:
            passed += 1
            click.echo(f"PASS {path.stem}")
        else:
            failed += 1
            click.echo(f"FAIL {path.stem}")
            for failure in outcome.failures:
                click.echo(f"     {path}: {failure}")
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(EXIT_FINDINGS if failed else 0)


@click.command()
@click.argument("old_path", metavar="OLD")
@click.argument("new_path", metavar="NEW")
@click.argument("facts", nargs=-1)
@settings_option
@format_option("text", "json", "markdown")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the report here instead of standard output (whole or not at all).")
@click.option("--witness-dir", type=click.Path(file_okay=False), default=None,
              help="Write each differing predicate's witness patient here, as a fact file with a `% run:` line.")
@click.option("--only", multiple=True, metavar="PRED",
              help="Compare only this derived predicate (repeatable; default: every output predicate).")
@click.option("--cohort-only", is_flag=True, help="Skip the solver: compare the versions on FACTS only.")
@click.option("--budget", type=click.IntRange(10), default=3000, show_default=True,
              help="Explored patients for what the solver does not decide.")
@click.option("--engine", type=click.Choice(["pydatalog", "duckdb"]), default="pydatalog", show_default=True,
              help="The engine that evaluates FACTS (witnesses always replay on pyDatalog).")
@click.option("--chunk-size", type=click.IntRange(1), default=None, help="Patients evaluated together [default: 500].")
@click.option("--stream/--no-stream", default=None, help="Read CSV/Parquet cohorts in chunks (default for them) or whole.")
@click.option("--time-limit", type=Seconds(), default=None, metavar="SECONDS",
              help="Stop with exit status 2 if evaluating a chunk takes longer (a positive number).")
def diff(old_path: str, new_path: str, facts: tuple[str, ...], overrides: tuple[str, ...], fmt: str,
         output: str | None, witness_dir: str | None, only: tuple[str, ...], cohort_only: bool, budget: int,
         engine: str, chunk_size: int | None, stream: bool | None, time_limit: float | None) -> None:
    """Which outputs of rule sets OLD and NEW can differ (a witness patient, or a proof that
    none can), and each patient of FACTS whose answers change; exit 1 when anything differs."""
    from reasoner.authoring.diff import run_diff, write_witnesses
    from reasoner.io.output import OutputFile, check_folder
    from reasoner.render.diff import render
    if cohort_only and not facts:
        refuse("--cohort-only compares the versions on FACTS: give fact files")
    if cohort_only and witness_dir:
        refuse("--witness-dir writes the solver's witnesses, which --cohort-only skips")
    settings = parse_settings(overrides)
    with contextlib.ExitStack() as files:  # output places checked before anything is evaluated (E021)
        out_file = None if output in (None, "-") else files.enter_context(
            OutputFile(output, "--output", (*facts, old_path, new_path)))  # type: ignore[arg-type]
        if witness_dir:
            check_folder(witness_dir, "--witness-dir")
        report = run_diff(old_path, new_path, facts, settings, only=only, solver=not cohort_only, budget=budget,
                          chunk_size=chunk_size, stream=stream, engine=engine, time_limit=time_limit)
        if witness_dir:
            try:
                write_witnesses(report, Path(witness_dir))
            except OSError as exc:
                raise witness_dir_error(witness_dir, exc) from None
        text = render(report, fmt)
        if out_file is None:
            click.echo(text, nl=False)
        else:
            with open(out_file.temp, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            out_file.commit()
    for problem in report.internal:  # a solver witness the engine did not reproduce: never a difference
        click.echo(str(Diagnostic(NO_SPAN, f"internal error: diff: {problem} (please report)", INTERNAL)), err=True)
    sys.exit(EXIT_BAD_INPUT if report.internal else EXIT_FINDINGS if report.differs else 0)
