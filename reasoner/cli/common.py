"""What every command shares: exit statuses, the one way a problem ends a run (`fail`,
`refuse`, `stopped`), the shared options, `--set` parsing, and loading rules and facts.

Only what every command needs is imported here: `reasoner --help` imports no engine,
and each command imports what it uses (`query` no checker, explainer or DuckDB).
"""
from __future__ import annotations

import errno
import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, NoReturn, TypeVar

import click

from reasoner.engines import DEFAULT_CHUNK
from reasoner.engines.cohort import DUCKDB_PARTITION, DUCKDB_SQL_PARTITION
from reasoner.language.errors import Diagnostic, EvaluationLimit, ReasonerError
from reasoner.language.span import NO_SPAN, Span

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet
    from reasoner.engines.model import Model
    from reasoner.io.facts import FactSet

F = TypeVar("F", bound=Callable[..., object])

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of standard output went away
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""The errnos of a write that found no room: a located E021 line, not an internal error."""


def fail(exc: ReasonerError) -> NoReturn:
    """Every diagnostic of `exc` on stderr, then exit 2."""
    for diagnostic in exc.diagnostics:
        click.echo(str(diagnostic), err=True)
    n = len(exc.diagnostics)
    if n > 1:
        click.echo(f"{n} errors; nothing was evaluated", err=True)
    sys.exit(EXIT_BAD_INPUT)


def refuse(message: str, code: str = "E016", span: Span = NO_SPAN) -> NoReturn:
    """One problem with what the command was given (exit 2)."""
    fail(ReasonerError.at(span, message, code))


def stopped(exc: EvaluationLimit) -> NoReturn:
    """An evaluation past --time-limit or a recursion's round limit (E022, exit 2)."""
    click.echo(str(exc.diagnostic()), err=True)
    sys.exit(EXIT_BAD_INPUT)


class Seconds(click.ParamType):
    """A positive, finite number of seconds (`--time-limit`): not 0, -1, nan or inf."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{value!r} is not a positive, finite number of seconds", param, ctx)
        return seconds


# ----------------------------------------------------------------------------- shared options
def rules_option(f: F) -> F:
    return click.option("--rules", "rules_path", type=click.Path(), default=None, metavar="PATH",
                        help="Rule set: a .dl file or a directory with main.dl (default: the bundled CRS rules).")(f)


def settings_option(f: F) -> F:
    return click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
                        help="Override a rule-set setting (see `reasoner rules`), e.g. --set grade1_persistent_hours=24.")(f)


def format_option(*choices: str) -> Callable[[F], F]:
    def wrap(f: F) -> F:
        return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                            help="Output format.")(f)
    return wrap


def _spark_master(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    engine = ctx.params.get("engine")
    if value and engine not in (None, "spark"):  # --engine is read first (is_eager): it is known here
        raise click.UsageError(f"--spark-master is for --engine spark, not --engine {engine}")
    if value:  # recorded for the Spark session, which starts only if --engine spark runs
        from reasoner.engines.spark_session import configure
        configure(master=value)


def cohort_options(f: F) -> F:
    f = click.option("--spark-master", metavar="URL", default=None, expose_value=False, callback=_spark_master,
                     help="With --engine spark: where Spark runs (local[*] by default; spark://host:7077, "
                          "yarn, k8s://...). SPARK_REMOTE=sc://host:15002 uses Spark Connect instead.")(f)
    f = click.option("--engine", type=click.Choice(["pydatalog", "duckdb", "spark"]), default="pydatalog",
                     show_default=True, is_eager=True,  # read first: --spark-master checks it
                     help="duckdb: the same rules compiled to SQL, for large cohorts; spark: the same SQL run "
                          "by Apache Spark (docs/spark.md). No proofs with either: "
                          "`reasoner why` re-derives one patient's with pyDatalog.")(f)
    f = click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
                     help="Worker processes (patients are split among them; patient-local rule sets "
                          "only). With duckdb they build text and JSON reports while DuckDB evaluates; "
                          "CSV and Parquet rows are made in SQL, by DuckDB's own threads.")(f)
    f = click.option("--chunk-size", type=click.IntRange(1), default=None,
                     help=f"Patients evaluated together [default: {DEFAULT_CHUNK} for pyDatalog; for duckdb "
                          f"{DUCKDB_SQL_PARTITION:,} for CSV and Parquet reports (twice that with 8 GB of memory or "
                          f"more), else {DUCKDB_PARTITION:,}].")(f)
    f = click.option("--stream/--no-stream", default=None,
                     help="Read CSV/Parquet cohorts in chunks (default for them) or whole.")(f)
    return click.option("--time-limit", type=Seconds(), default=None, metavar="SECONDS",
                        help="Stop with exit status 2 if evaluating a chunk takes longer (a positive number).")(f)


def parse_settings(overrides: tuple[str, ...]) -> dict[str, int | float]:
    """`--set NAME=VALUE` options: VALUE in the language's one number syntax (`24`, `-3`,
    `0.5`; not `1_0`, fullwidth digits, `1e3`, `nan` or `inf`), else exit 2 (E024).
    Names and ranges are checked against the rule set by `resolve_settings` (E012, E024)."""
    from reasoner.analysis.program import SETTING_RANGE
    from reasoner.language.values import read_number
    out: dict[str, int | float] = {}
    problems = []
    for item in overrides:
        name, sep, text = item.partition("=")
        name, text = name.strip(" \t"), text.strip(" \t")
        shown = repr(item if len(item) <= 60 else item[:60] + "...")
        if not sep or not name:
            problems.append(Diagnostic(NO_SPAN, f"--set {shown}: expected NAME=NUMBER", SETTING_RANGE))
            continue
        if name in out:  # which one is meant cannot be told: never the last silently
            problems.append(Diagnostic(NO_SPAN, f"--set {shown}: {name} is set twice", SETTING_RANGE))
            continue
        try:
            out[name] = read_number(text)
        except ValueError as exc:
            problems.append(Diagnostic(NO_SPAN, f"--set {shown}: not a number: {exc}", SETTING_RANGE))
    if problems:
        fail(ReasonerError(problems))
    return out


# ----------------------------------------------------------------------------- rules, facts, models
def load_rules(path: str | None) -> RuleSet:
    """The rule set at `path` (default: the bundled one), parsed and checked, or taken from
    the rule-set cache when none of its files changed (reasoner.analysis.rulecache); exit 2
    on any problem."""
    from reasoner.analysis.rulecache import load
    try:
        return load(path)
    except ReasonerError as exc:
        fail(exc)


def load_inputs(rules_path: str | None, fact_paths: tuple[str, ...]) -> tuple[RuleSet, FactSet]:
    """Rules and facts, or every problem in either (exit 2)."""
    from reasoner.io.facts import load_facts
    rules = load_rules(rules_path)
    try:
        facts = load_facts(rules, fact_paths)
    except ReasonerError as exc:
        fail(exc)
    return rules, facts


def run_models(rules: RuleSet, facts: FactSet, overrides: tuple[str, ...], chunk_size: int = DEFAULT_CHUNK,
               time_limit: float | None = None) -> Iterator[Model]:
    """Chunk models, one at a time; bad settings or an evaluation limit end the run (exit 2)."""
    from reasoner.engines.pydatalog import Engine
    from reasoner.engines.run import evaluate_chunks
    try:
        engine = Engine(rules, parse_settings(overrides), time_limit=time_limit)
        yield from evaluate_chunks(rules, facts, engine=engine, chunk_size=chunk_size)
    except ReasonerError as exc:
        fail(exc)
    except EvaluationLimit as exc:
        stopped(exc)


def report_violations(rules: RuleSet, violations: list) -> bool:
    """Print each integrity-constraint violation once on stderr; True if there was one."""
    from reasoner.proof.violations import violation_lines
    for line in violation_lines(rules, violations):
        click.echo(line, err=True)
    return bool(violations)
