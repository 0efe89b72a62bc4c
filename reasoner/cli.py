"""The `reasoner` command (click). Exit status: 0 success, 1 findings, 2 bad input or
usage (every problem a `file:line:col: error[CODE]: message` line, or `error[CODE]:
message` where there is no place, never a traceback), 130 interrupted (Ctrl-C)."""
from __future__ import annotations

import contextlib
import errno
import io
import itertools
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator, NoReturn, TypeVar

import click

# Only what every command needs is imported here: `reasoner --help` imports no engine,
# and each command imports what it uses (`query` no checker, explainer or DuckDB).
from reasoner.engines import DEFAULT_CHUNK
from reasoner.language.errors import INTERNAL, LIMIT, OUTPUT, USAGE, Diagnostic, EvaluationLimit, ReasonerError
from reasoner.language.syntax import NO_SPAN, Const, Span, Var

if TYPE_CHECKING:
    from reasoner.io.facts import FactSet
    from reasoner.engines.model import Model
    from reasoner.analysis.program import RuleSet
    from reasoner.language.syntax import Atom

DUCKDB_PARTITION = 10_000
"""Patients per DuckDB partition on the command line when the answers go into Python
(text and JSON reports, queries): about 60 MB per 10,000 CRS patients; DuckDB's own
per-partition cost is ~0.1 s."""

DUCKDB_SQL_PARTITION = 50_000
"""Patients per partition when the report rows are made in SQL (CSV, Parquet): nothing
per patient reaches Python, and bigger partitions share DuckDB's fixed costs (100,000
patients: 16.4 s in partitions of 10,000, 10.8 s in partitions of 50,000, 740 MB peak)."""

F = TypeVar("F", bound=Callable[..., object])

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of standard output went away
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _fail(exc: ReasonerError) -> NoReturn:
    for diagnostic in exc.diagnostics:
        click.echo(str(diagnostic), err=True)
    n = len(exc.diagnostics)
    if n > 1:
        click.echo(f"{n} errors; nothing was evaluated", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _refuse(message: str, code: str = "E016", span: Span = NO_SPAN) -> NoReturn:
    """One problem with what the command was given (exit 2)."""
    _fail(ReasonerError.at(span, message, code))


def _stopped(exc: EvaluationLimit) -> NoReturn:
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


# ----------------------------------------------------------------------------- the group
_sigint: list[bool] = []  # set once Ctrl-C arrived: whatever the exception then, the run was interrupted


@contextlib.contextmanager
def _noting_interrupts() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is noted: DuckDB turns it into its
    own exception ("Query interrupted"), which must still end the run as an interrupt."""
    def handler(signum: int, frame: Any) -> None:
        _sigint.append(True)
        signal.default_int_handler(signum, frame)
    previous = signal.getsignal(signal.SIGINT)
    installed = previous is not signal.SIG_IGN  # ignored (a background job): Ctrl-C is not for it
    if installed:
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            installed = False
    _sigint.clear()
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _interrupt(exc: BaseException) -> bool:
    """Is `exc` how Ctrl-C ended the run (here, in DuckDB, or in click)?"""
    if isinstance(exc, (KeyboardInterrupt, click.Abort)) or _sigint:
        return True
    return type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())


def _usage_line(exc: click.ClickException) -> str:
    """A click usage error (an unknown option, a bad value, a missing argument) as one
    `error[E020]: ...` line, naming the command's help."""
    message = " ".join(exc.format_message().split())
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    message = message.rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return str(Diagnostic(NO_SPAN, message, USAGE))


def _internal(exc: BaseException) -> NoReturn:
    """The safety net: an exception no known case explains, reported in one line."""
    text = " ".join(str(exc).split())
    click.echo(str(Diagnostic(NO_SPAN, f"internal error: {type(exc).__name__}: {text} (please report)", INTERNAL)),
               err=True)
    sys.exit(EXIT_BAD_INPUT)


class ReasonerGroup(click.Group):
    """The `reasoner` group: whatever happens in a command ends in a located line and an
    exit status, never a traceback: bad input or usage 2, Ctrl-C 130."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            self._standalone(args, prog_name, complete_var, **extra)
        except SystemExit as exc:
            if args is None:  # the `reasoner` process itself (a test's CliRunner passes its arguments)
                _exit_now(exc)
            raise

    def _standalone(self, args: Any, prog_name: str | None, complete_var: str | None, **extra: Any) -> NoReturn:
        with _noting_interrupts():
            try:
                status = super().main(args, prog_name, complete_var, False, **extra)
            except click.exceptions.NoArgsIsHelpError as exc:  # bare `reasoner`: the help
                exc.show()
                sys.exit(EXIT_BAD_INPUT)
            except click.ClickException as exc:
                click.echo(_usage_line(exc), err=True)
                sys.exit(EXIT_BAD_INPUT)
            except ReasonerError as exc:
                _fail(exc)
            except EvaluationLimit as exc:
                _stopped(exc)
            except (KeyboardInterrupt, click.Abort):
                _interrupted()
            except Exception as exc:
                if _interrupt(exc):
                    _interrupted()
                if type(exc).__name__ == "OutOfMemoryException":  # DuckDB at its memory limit
                    click.echo(str(Diagnostic(NO_SPAN, f"DuckDB stopped: {str(exc).splitlines()[0]}", LIMIT)),
                               err=True)
                    sys.exit(EXIT_BAD_INPUT)
                if isinstance(exc, OSError) and exc.errno in _DISK_FULL:  # standard output on a full disk
                    where = exc.filename or "standard output"
                    click.echo(str(Diagnostic(NO_SPAN, f"cannot write {where}: {(exc.strerror or '').lower()}",
                                              OUTPUT)), err=True)
                    sys.exit(EXIT_BAD_INPUT)
                _internal(exc)
        sys.exit(status if isinstance(status, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its summary whole (its `short_help`, else the first paragraph
        of its help, wrapped), never cut at 45 characters or at the "." of "e.g."."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            text = cmd.short_help or (cmd.help or "").split("\f")[0].strip().split("\n\n")[0]
            rows.append((name, " ".join(text.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): quietly, and not as findings (1)
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
            except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
                pass
            sys.exit(EXIT_BROKEN_PIPE)


def _interrupted() -> NoReturn:
    click.echo("interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)


def _exit_now(exc: SystemExit) -> None:
    """End the `reasoner` process with `exc`'s status without the interpreter's teardown,
    which frees the loaded program object by object: 15-30 ms, more than a one-patient
    answer takes (bench/bench_startup.py). atexit handlers run and standard output and
    error are flushed first (a full disk is E021, a reader gone 141, as during the run).
    Returns, for the ordinary exit, when that is not known to be safe: DuckDB loaded (its
    files are closed by its finalizers), other threads running, a message as the status."""
    import atexit
    import threading
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    code = 0 if exc.code is None else exc.code
    if (not isinstance(code, int) or run_exit_handlers is None or "duckdb" in sys.modules
            or threading.active_count() > 1):
        return
    try:
        run_exit_handlers()
        sys.stdout.flush()
    except BrokenPipeError:
        code = EXIT_BROKEN_PIPE
    except OSError as error:
        if error.errno not in _DISK_FULL:
            return
        click.echo(str(Diagnostic(NO_SPAN, f"cannot write standard output: {(error.strerror or '').lower()}",
                                  OUTPUT)), err=True)
        code = EXIT_BAD_INPUT
    except Exception:
        return
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code & 0xFF)  # as the system keeps it: sys.exit(256) is 0 too


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
        try:
            out[name] = read_number(text)
        except ValueError as exc:
            problems.append(Diagnostic(NO_SPAN, f"--set {shown}: not a number: {exc}", SETTING_RANGE))
    if problems:
        _fail(ReasonerError(problems))
    return out


def load_rules(path: str | None) -> RuleSet:
    """The rule set at `path` (default: the bundled one), parsed and checked, or taken from
    the rule-set cache when none of its files changed (reasoner.analysis.rulecache)."""
    from reasoner.analysis.rulecache import load
    return load(path)


def load_facts(rules: RuleSet, paths: tuple[str, ...]) -> FactSet:
    from reasoner.io.facts import load_facts as load
    return load(rules, paths)


def load_inputs(rules_path: str | None, fact_paths: tuple[str, ...]) -> tuple[RuleSet, FactSet]:
    """Rules and facts, or every problem in either (exit 2)."""
    try:
        rules = load_rules(rules_path)
    except ReasonerError as exc:
        _fail(exc)
    try:
        facts = load_facts(rules, fact_paths)
    except ReasonerError as exc:
        _fail(exc)
    return rules, facts


def run_models(rules: RuleSet, facts: FactSet, overrides: tuple[str, ...], chunk_size: int = DEFAULT_CHUNK,
               time_limit: float | None = None):
    """Chunk models, one at a time; bad settings or an evaluation limit end the run (exit 2)."""
    from reasoner.engines.pydatalog import Engine
    from reasoner.engines.run import evaluate_chunks
    try:
        engine = Engine(rules, parse_settings(overrides), time_limit=time_limit)
        yield from evaluate_chunks(rules, facts, engine=engine, chunk_size=chunk_size)
    except ReasonerError as exc:
        _fail(exc)
    except EvaluationLimit as exc:
        _stopped(exc)


@click.group(cls=ReasonerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="guideline-reasoner")
def main() -> None:
    """Clinical guideline rules as Datalog: query, recommend, explain and check.

    A research and authoring tool, not a medical device.
    """


class Cohort:
    """The facts of a run: loaded whole (small inputs, any form), or for CSV and Parquet
    cohorts checked in one streaming pass and evaluated in a second, memory flat."""

    def __init__(self, rules: RuleSet, paths: tuple[str, ...], stream: bool | None, engine: str = "pydatalog"):
        from reasoner.io.facts import validate_stream
        self.rules, self.paths = rules, paths
        cohort_forms = all(Path(p).suffix in (".csv", ".parquet") for p in paths if p != "-")
        once = [p for p in paths if _read_once(p)]  # a FIFO or a device: no second pass
        if stream and once:
            _refuse(f"--stream reads a cohort twice, and {once[0]} can be read only once: drop --stream")
        self.stream = cohort_forms and "-" not in paths and not once if stream is None else stream
        self.factset: FactSet | None = None
        try:
            if self.stream and engine == "duckdb" and self.duckdb_reads_it():
                pass  # DuckDB checks the files itself, in SQL, before evaluating anything
            elif self.stream:
                validate_stream(rules, paths)
            else:
                self.factset = load_facts(rules, paths)
        except ReasonerError as exc:
            _fail(exc)

    def duckdb_reads_it(self) -> bool:
        return self.factset is None and all(Path(p).suffix in (".csv", ".parquet") and Path(p).is_file()
                                            for p in self.paths)

    def chunks(self, size: int):
        from reasoner.io.facts import chunks, stream_chunks
        if self.factset is not None:
            return chunks(self.rules, self.factset, size)
        return stream_chunks(self.rules, self.paths, size)

    def patients(self) -> int | None:
        return len(self.factset.patients(self.rules)) if self.factset is not None else None


def _read_once(path: str) -> bool:
    """A FIFO, a device such as /dev/stdin, or stdin itself: its content can be read once."""
    p = Path(path)
    return path == "-" or (p.exists() and not p.is_file() and not p.is_dir())


def cohort_options(f: F) -> F:
    f = click.option("--engine", type=click.Choice(["pydatalog", "duckdb"]), default="pydatalog",
                     show_default=True,
                     help="duckdb: the same rules compiled to SQL, for large cohorts (no proofs: "
                          "`reasoner why` re-derives one patient's with pyDatalog).")(f)
    f = click.option("--jobs", type=click.IntRange(1), default=1, show_default=True,
                     help="Worker processes (patients are split among them; patient-local rule sets "
                          "only). With duckdb they build text and JSON reports while DuckDB evaluates; "
                          "CSV and Parquet rows are made in SQL, by DuckDB's own threads.")(f)
    f = click.option("--chunk-size", type=click.IntRange(1), default=None,
                     help=f"Patients evaluated together [default: {DEFAULT_CHUNK} for pyDatalog; for duckdb "
                          f"{DUCKDB_SQL_PARTITION:,} for CSV and Parquet reports, else {DUCKDB_PARTITION:,}].")(f)
    f = click.option("--stream/--no-stream", default=None,
                     help="Read CSV/Parquet cohorts in chunks (default for them) or whole.")(f)
    return click.option("--time-limit", type=Seconds(), default=None, metavar="SECONDS",
                        help="Stop with exit status 2 if evaluating a chunk takes longer (a positive number).")(f)


def _evaluate(cohort: Cohort, task, overrides: tuple[str, ...], jobs: int, chunk_size: int | None,
              time_limit: float | None, engine: str = "pydatalog", reads: Collection[str] | None = None,
              firings_of: Collection[int] | None = None, sql_task=None):
    """`task(rules, model)` of each chunk's model. With duckdb, the model holds only the
    facts of `reads` and the firings of the rules `firings_of` (none if None), plus every
    rule's patient count: copying all of DuckDB's answers into Python costs more than
    computing them. `sql_task(rules, result)`, when given, is asked first for each
    partition a DuckDB cohort run keeps in SQL (`SQLResult`), and may answer None to get
    `task` instead."""
    from reasoner.engines.parallel import map_chunks, map_models
    try:
        settings = parse_settings(overrides)
        # unknown settings, values out of range and rules no engine can run are reported
        # before any chunk is read or any worker starts
        from reasoner.plan.lowered import plan_of
        from reasoner.analysis.program import resolve_settings
        resolve_settings(cohort.rules, settings)
        plan_of(cohort.rules)
        if engine == "duckdb" and sql_task is not None and cohort.duckdb_reads_it():
            yield from _duckdb_in_sql(cohort, task, sql_task, settings, time_limit, chunk_size or DUCKDB_SQL_PARTITION,
                                      reads, firings_of)
            return
        if engine == "duckdb":
            size = chunk_size or DUCKDB_PARTITION
            models = _duckdb_models(cohort, settings, time_limit, size, reads, firings_of)
            total = cohort.patients()
            parts = -(-total // size) if total is not None else None  # no more workers than partitions
            yield from map_models(cohort.rules, models, task, jobs=jobs, total=total, progress=True, parts=parts)
            return
        yield from map_chunks(cohort.rules, cohort.chunks(chunk_size or DEFAULT_CHUNK), task, jobs=jobs,
                              settings=settings, time_limit=time_limit, total=cohort.patients(), progress=True)
    except ReasonerError as exc:
        _fail(exc)
    except EvaluationLimit as exc:
        _stopped(exc)


def _duckdb_models(cohort: Cohort, settings: dict, time_limit: float | None, size: int,
                   reads: Collection[str] | None, firings_of: Collection[int] | None) -> Iterator[Model]:
    """One model per partition of `size` patients. A streamed CSV or Parquet cohort is
    read, checked and partitioned by DuckDB itself, in a database file held to a memory
    limit; other inputs go over in the chunks the Python reader makes."""
    from reasoner.engines.sql import DuckDBEngine
    # with firings, report rows name their rules and --rule-counts works
    engine = DuckDBEngine(cohort.rules, settings, time_limit=time_limit, firings=firings_of is not None)
    if cohort.duckdb_reads_it():
        for result in engine.evaluate_csv_partitioned(list(cohort.paths), patients=size):
            yield result.to_model(reads, firings_of)
        return
    for chunk in cohort.chunks(size):
        yield engine.evaluate(chunk, preds=reads, firings_of=firings_of)


def _duckdb_in_sql(cohort: Cohort, task, sql_task, settings: dict, time_limit: float | None, size: int,
                   reads: Collection[str] | None, firings_of: Collection[int] | None) -> Iterator:
    """Each partition of a CSV or Parquet cohort answered in SQL by `sql_task(rules,
    result)`, in this process (DuckDB runs its own threads); a partition it declines
    (None) goes through `task` over a model instead."""
    from reasoner.engines.parallel import progress_bar
    from reasoner.engines.sql import DuckDBEngine
    engine = DuckDBEngine(cohort.rules, settings, time_limit=time_limit, firings=firings_of is not None)
    with progress_bar(cohort.patients(), True) as advance:
        for result in engine.evaluate_csv_partitioned(list(cohort.paths), patients=size):
            out = sql_task(cohort.rules, result)
            yield out if out is not None else task(cohort.rules, result.to_model(reads, firings_of))
            if advance and result.patients is not None:
                advance(result.patients)


def _query_task(atom, rules: RuleSet, model: Model) -> tuple[list[dict], list]:
    from reasoner.proof.violations import distinct_violations
    return model.query(atom), distinct_violations(model.violations)


def _report_violations(rules: RuleSet, violations: list) -> bool:
    """Print each integrity-constraint violation once on stderr; True if there was one."""
    from reasoner.proof.violations import violation_lines
    for line in violation_lines(rules, violations):
        click.echo(line, err=True)
    return bool(violations)


@main.command()
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json")
@cohort_options
def query(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
          time_limit: float | None, stream: bool | None, chunk_size: int, jobs: int, engine: str) -> None:
    """Answer GOAL (e.g. 'crs_grade(P, G)') over FACTS (files, directories, or - for stdin)."""
    import functools

    from reasoner.engines.model import row_key
    from reasoner.io.goals import check_goal
    from reasoner.render import answers as render_answers
    rules = _load_rules_only(rules_path)
    try:
        atom = check_goal(rules, goal)
    except ReasonerError as exc:
        _fail(exc)
    cohort = Cohort(rules, facts, stream, engine)
    answers, violations = [], []
    for part, broken in _evaluate(cohort, functools.partial(_query_task, atom), overrides, jobs, chunk_size,
                                  time_limit, engine, reads=[atom.pred]):
        answers.extend(part)
        violations.extend(broken)
    answers.sort(key=lambda a: row_key(tuple(a.values())))
    click.echo(render_answers.render(goal, atom, answers, fmt), nl=False)
    if _report_violations(rules, violations):
        sys.exit(EXIT_FINDINGS)


def _recommend_task(fmt: str, explain: bool, rules: RuleSet, model: Model):
    """Everything `recommend` prints for one chunk, computed where the chunk was evaluated
    (a worker): text and CSV rendered there, JSON as reports and proofs to join later."""
    import json
    from reasoner.render import recommend as render
    from reasoner.domains.crs.report import build_reports, distinct_violations, rule_patient_counts
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
        out: object = render.to_csv(reports, header=False)
    elif fmt == "text":
        out = render.to_text(reports, proof, references) if reports else ""
    else:
        out = (reports, proofs)
    return out, rule_patient_counts(rules, model), model.settings, distinct_violations(model.violations)


def _citations(rules: RuleSet) -> dict[str, str]:
    """Every source of the rule set, key → full citation (the JSON report's "sources")."""
    return {key: source.text for key, source in rules.sources.items()}


def _recommend_sql_task(rules: RuleSet, result):
    """CSV rows of a DuckDB partition built in SQL (None: not in the CRS report's typing)."""
    from reasoner.domains.crs.report_sql import sql_csv
    text = sql_csv(rules, result)
    if text is None:
        return None
    from reasoner.proof.violations import distinct_violations
    return text, result.fired_for(), dict(result.engine.settings), distinct_violations(result.violations())


@main.command()
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
    import functools

    from reasoner.io.output import OutputFile
    from reasoner.render import recommend as render
    from reasoner.domains.crs.report import READS, require_crs_vocabulary, supporting_rules, write_rule_counts
    rules = _load_rules_only(rules_path)
    try:
        require_crs_vocabulary(rules)
    except ReasonerError as exc:
        _fail(exc)
    to_stdout = output in (None, "-")
    if fmt == "parquet" and to_stdout:
        _refuse("--format parquet writes a file, not standard output: give --output FILE.parquet")
    if engine == "duckdb" and explain:
        _refuse("--explain needs proofs, which only the pyDatalog engine builds: drop --engine duckdb "
                "(or ask `reasoner why` per patient)")
    if rule_counts == "-":
        _refuse("--rule-counts writes a file: give a file name (./- for a file named -)")
    if rule_counts and not to_stdout and Path(rule_counts).resolve() == Path(output).resolve():  # type: ignore
        _refuse(f"--output and --rule-counts name the same file, {output}")
    with contextlib.ExitStack() as files:
        # made before anything is read or evaluated: a missing folder stops the run here (E021)
        report_file = None if to_stdout else files.enter_context(OutputFile(output, "--output"))  # type: ignore
        counts_file = files.enter_context(OutputFile(rule_counts, "--rule-counts")) if rule_counts else None
        cohort = Cohort(rules, facts, stream, engine)
        task = functools.partial(_recommend_task, fmt, explain)
        results = _evaluate(cohort, task, overrides, jobs, chunk_size, time_limit, engine, reads=READS,
                            firings_of=supporting_rules(rules),
                            sql_task=_recommend_sql_task if fmt in ("csv", "parquet") else None)
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
            counts, violations = _write_report(out, results, rules, fmt, explain, render)
        if csv_part is not None:
            render.csv_to_parquet(csv_part, report_file.temp)  # type: ignore[union-attr]
        if counts_file is not None:
            write_rule_counts(rules, counts, counts_file.temp)
        for done in (report_file, counts_file):  # the run succeeded: now, and only now, in place
            if done is not None:
                done.commit()
    if _report_violations(rules, violations):
        sys.exit(EXIT_FINDINGS)


def _write_report(out: Any, results: Iterator, rules: RuleSet, fmt: str, explain: bool,
                  render: Any) -> tuple[dict[int, int], list]:
    """The report of every chunk's result into `out`; the rule counts and the violations."""
    settings: dict = {}
    counts: dict[int, int] = {}
    violations: list = []
    wrote_text = False
    writer = None
    if fmt in ("csv", "parquet"):
        out.write(render.to_csv([], header=True))
    for rendered, chunk_counts, settings, broken in results:
        violations.extend(broken)
        for index, n in chunk_counts.items():
            counts[index] = counts.get(index, 0) + n
        if fmt == "json":  # written patient by patient: memory stays flat in the cohort
            reports, chunk_proofs = rendered
            if writer is None:
                writer = render.JSONReportWriter(rules.path, settings, _citations(rules))
            joint = (lambda patient, pred, args: chunk_proofs[(patient, pred, args)]) if explain else None
            for text in writer.patients(reports, joint):
                out.write(text)
        elif fmt in ("csv", "parquet"):
            out.write(rendered)
        elif rendered:  # a blank line between patients, across chunk boundaries too
            out.write(("\n" if wrote_text else "") + rendered)
            wrote_text = True
    if fmt == "json":
        out.write((writer or render.JSONReportWriter(rules.path, settings, _citations(rules))).tail())
    return counts, violations


def _load_rules_only(path: str | None) -> RuleSet:
    try:
        return load_rules(path)
    except ReasonerError as exc:
        _fail(exc)


@main.command()
@click.argument("rules_path", required=False, metavar="[RULES]")
@format_option("text", "markdown", "json")
def rules(rules_path: str | None, fmt: str) -> None:
    """The rulebook: every rule with its id, sources and sentence, by guideline section."""
    from reasoner.render import rulebook
    rs = _load_rules_only(rules_path)
    render = {"text": rulebook.to_text, "markdown": rulebook.to_markdown, "json": rulebook.to_json}[fmt]
    click.echo(render(rs), nl=False)


@main.command()
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
                raise ReasonerError.at(Span(witness_dir, 0, 0), "cannot write the --witness-dir files: "
                                       f"{(exc.strerror or str(exc)).lower()}", OUTPUT) from None
    except ReasonerError as exc:
        _fail(exc)
    click.echo(render_findings.render(report, fmt), nl=False)
    sys.exit(EXIT_FINDINGS if report.errors else 0)


@main.command("test")
@click.argument("rules_path", required=False, metavar="[RULES]")
@click.option("--cases", "cases_dir", type=click.Path(), default=None,
              help="Directory of test cases (default: tests/ beside the rule set).")
def test_command(rules_path: str | None, cases_dir: str | None) -> None:
    """Run the rule set's own test cases; exit 1 if any fails."""
    from reasoner.authoring.casetests import case_dir, read_case, run_case
    rs = _load_rules_only(rules_path)
    folder = Path(cases_dir) if cases_dir else case_dir(rs)
    files = sorted(folder.glob("*.facts")) if folder.is_dir() else []
    if not files:
        _refuse("no test cases (*.facts) in this folder" if folder.is_dir() else
                "not a folder of test cases" if folder.exists() else "no such folder of test cases",
                span=Span(str(folder), 0, 0))
    passed = failed = 0
    for path in files:
        try:
            outcome = run_case(read_case(path, rs), rs)
        except ReasonerError as exc:
            _fail(exc)
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


@main.command()
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json")
def conflicts(facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str) -> None:
    """Every conflict(P, Action, Reason), with both sides explained; exit 1 if there is any."""
    import json as json_module

    from reasoner.proof.explain import Explainer
    from reasoner.engines.model import row_key
    from reasoner.render import proof as proof_render
    rules_set, factset = load_inputs(rules_path, facts)
    if "conflict" not in rules_set.decls:
        _refuse(f"{rules_set.path} declares no conflict/3 predicate, which `reasoner conflicts` lists")
    found, violations = [], []
    for model in run_models(rules_set, factset, overrides):
        violations += model.violations
        explainer = Explainer(rules_set, model)
        alternatives = model.tuples("alternative") if "alternative" in rules_set.decls else set()
        for row in sorted(model.tuples("conflict"), key=row_key):
            patient, action, reason = row
            sides = []
            for pred, args in (("indicated", (patient, action)), ("ordered", (patient, action)),
                               ("contraindicated", (patient, action, reason))):
                if pred in rules_set.decls and model.holds(pred, args):
                    sides.append((pred, explainer.prove(pred, args)))
            alts = sorted(b for p, a, b in alternatives if p == patient and a == action)
            found.append((row, sides, alts))
    if fmt == "json":
        doc = {"conflicts": [{"patient": r[0], "action": r[1], "reason": r[2], "alternatives": alts,
                              "because": {pred: proof_render.to_json_obj(node, rules_set) for pred, node in sides}}
                             for r, sides, alts in found]}
        click.echo(json_module.dumps(doc, ensure_ascii=False, indent=1))
    else:
        if not found:
            click.echo("no conflicts")
        for (patient, action, reason), sides, alts in found:
            click.echo(f"CONFLICT {patient}: {action} is {'indicated' if sides and sides[0][0] == 'indicated' else 'ordered'}"
                       f" and contraindicated ({reason})" + (f"; alternative: {', '.join(alts)}" if alts else ""))
            for pred, node in sides:
                click.echo(f"  why {pred}:")
                click.echo("\n".join("    " + line for line in proof_render.to_text(node, rules_set).rstrip().split("\n")))
            click.echo("")
    broken = _report_violations(rules_set, violations)
    sys.exit(EXIT_FINDINGS if found or broken else 0)


def _goal_facts(model: Model, atom) -> list[tuple]:
    """The full tuples of `atom`'s predicate that match the goal, in order."""
    from reasoner.proof.match import match_atom
    from reasoner.engines.model import row_key
    rows = {tuple(env[a.name] if isinstance(a, Var) else a.value for a in atom.args)
            for env in match_atom(atom, {}, model, model.settings)}
    return sorted(rows, key=row_key)


def _goal_inputs(rules_path: str | None, paths: tuple[str, ...], goal: str) -> tuple[RuleSet, Atom, FactSet]:
    """Rules, the checked goal, and the facts to evaluate for it. Every fact is checked;
    when the goal names a patient and the rule set is patient-local, only that patient's
    facts are evaluated, and a CSV or Parquet cohort is streamed to pick them out (so
    `why` after a cohort run needs the memory of one patient, not of the cohort)."""
    from reasoner.io.facts import of_patient, stream_facts
    from reasoner.io.goals import check_goal
    rules = _load_rules_only(rules_path)
    cohort = Cohort(rules, paths, None)
    try:
        atom = check_goal(rules, goal)
        k = rules.key_index(atom.pred)
        if not (rules.patient_local and k is not None and isinstance(atom.args[k], Const)):
            return rules, atom, cohort.factset if cohort.factset is not None else load_facts(rules, paths)
        facts = cohort.factset.facts if cohort.factset is not None else stream_facts(rules, paths)
        return rules, atom, of_patient(rules, facts, atom.args[k].value)  # type: ignore[index,union-attr]
    except ReasonerError as exc:
        _fail(exc)


@main.command()
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json", "dot", "markdown", "html")
@click.option("--all", "all_proofs", is_flag=True, help="Show alternative proofs, not only the shortest.")
@click.option("--max-proofs", type=click.IntRange(1), default=10, show_default=True,
              help="With --all: at most this many proofs per answer.")
@click.option("--depth", type=click.IntRange(1), default=50, show_default=True,
              help="Cut proof trees deeper than this.")
def why(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
        all_proofs: bool, max_proofs: int, depth: int) -> None:
    """Prove every answer of GOAL: the chain of rules back to the facts and sources.

    GOAL may also be the id of an integrity constraint: each of its violations is
    proved (why the constraint's body holds)."""
    from reasoner.proof.explain import Explainer
    from reasoner.render.proof import render_proofs
    constraint = _constraint_goal(rules_path, goal)
    if constraint is not None:
        rules, index = constraint
        factset = load_inputs(rules_path, facts)[1]
        roots, violations = [], []
        for model in run_models(rules, factset, overrides):
            roots.extend(Explainer(rules, model).violations(index, depth=depth))
            violations += model.violations
        click.echo(render_proofs(roots, rules, fmt, goal.strip()), nl=False)
        _report_violations(rules, violations)
        return
    rules, atom, factset = _goal_inputs(rules_path, facts, goal)
    roots, violations = [], []
    for model in run_models(rules, factset, overrides):
        explainer = Explainer(rules, model)
        violations += model.violations
        for row in _goal_facts(model, atom):
            if all_proofs:
                roots.extend(explainer.proofs(atom.pred, row, max_proofs=max_proofs, depth=depth))
            else:
                roots.append(explainer.prove(atom.pred, row, depth=depth))
    click.echo(render_proofs(roots, rules, fmt, goal.strip()), nl=False)
    _report_violations(rules, violations)


def _constraint_goal(rules_path: str | None, goal: str) -> tuple[RuleSet, int] | None:
    """(rules, rule index) when GOAL is the id of an integrity constraint."""
    text = goal.strip()
    if "(" in text:
        return None
    rules = _load_rules_only(rules_path)
    for index, rule in enumerate(rules.rules):
        if rule.head is None and rules.rule_name(rule) == text:
            return rules, index
    return None


@main.command("why-not")
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option("text", "json", "dot", "markdown", "html")
@click.option("--depth", type=click.IntRange(0), default=3, show_default=True,
              help="How many derived literals deep to explain a failure.")
def why_not(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
            depth: int) -> None:
    """Explain why a ground GOAL (e.g. 'recommend(p1, anakinra)') does not hold."""
    from reasoner.proof.explain import Explainer
    from reasoner.engines.model import Model
    from reasoner.render.proof import render_proofs
    rules, atom, factset = _goal_inputs(rules_path, facts, goal)
    if not all(isinstance(a, Const) for a in atom.args):
        click.echo(f"{atom.span}: error[E016]: why-not needs a ground goal, such as recommend(p1, anakinra); "
                   f"use `reasoner query` to find values", err=True)
        sys.exit(EXIT_BAD_INPUT)
    args = tuple(a.value for a in atom.args)  # type: ignore[union-attr]
    model = Model()
    for part in run_models(rules, factset, overrides):
        model.merge(part)
    node = Explainer(rules, model).why_not(atom.pred, args, depth=depth)
    click.echo(render_proofs([node], rules, fmt, goal.strip()), nl=False)
    _report_violations(rules, model.violations)


@main.command()
@click.argument("proof_file", metavar="PROOF.json")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
def verify(proof_file: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...]) -> None:
    """Check every step of every proof in PROOF.json (from `why` or `recommend --explain`,
    --format json) against FACTS with an independent evaluator; exit 1 if any step fails
    or is unchecked (cut by --depth)."""
    from reasoner.proof.verify import run_verify
    try:
        doc = _verify_document(proof_file)
        rules_set, factset = load_inputs(rules_path, facts)
        lines, ok = run_verify(proof_file, doc, rules_set, factset, parse_settings(overrides))
    except ReasonerError as exc:
        _fail(exc)
    for line in lines:
        click.echo(line)
    sys.exit(0 if ok else EXIT_FINDINGS)


def _verify_document(path: str):
    from reasoner.proof.verify import read_document
    return read_document(path, sys.stdin.read() if path == "-" else None)


@main.command()
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
    import contextlib
    from pathlib import Path

    from reasoner.authoring.diff import run_diff, write_witnesses  # lazily: start-up stays fast for the other commands
    from reasoner.language.errors import INTERNAL, OUTPUT, Diagnostic, ReasonerError
    from reasoner.io.output import OutputFile, check_folder
    from reasoner.render.diff import render
    from reasoner.language.syntax import NO_SPAN, Span
    if cohort_only and not facts:
        _refuse("--cohort-only compares the versions on FACTS: give fact files")
    if cohort_only and witness_dir:
        _refuse("--witness-dir writes the solver's witnesses, which --cohort-only skips")
    settings = parse_settings(overrides)
    with contextlib.ExitStack() as files:  # output places checked before anything is evaluated (E021)
        out_file = None if output in (None, "-") else files.enter_context(OutputFile(output, "--output"))  # type: ignore[arg-type]
        if witness_dir:
            check_folder(witness_dir, "--witness-dir")
        report = run_diff(old_path, new_path, facts, settings, only=only, solver=not cohort_only, budget=budget,
                          chunk_size=chunk_size, stream=stream, engine=engine, time_limit=time_limit)
        if witness_dir:
            try:
                write_witnesses(report, Path(witness_dir))
            except OSError as exc:
                raise ReasonerError.at(Span(witness_dir, 0, 0), "cannot write the --witness-dir files: "
                                       f"{(exc.strerror or str(exc)).lower()}", OUTPUT) from None
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


if __name__ == "__main__":  # pragma: no cover
    main()
