"""The `reasoner` group (`main`): whatever happens in a command ends in a located line
and an exit status, never a traceback; Ctrl-C is an interrupt wherever it lands (here,
in DuckDB, in click); the process ends without the interpreter's slow teardown."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from typing import Any, Iterator, NoReturn

import click

from reasoner.cli.common import (
    DISK_FULL, EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, fail, stopped,
)
from reasoner.language.errors import INTERNAL, LIMIT, OUTPUT, USAGE, Diagnostic, EvaluationLimit, ReasonerError
from reasoner.language.span import NO_SPAN

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


def _refuse_repeated_options(command: click.Command, args: list[str]) -> None:
    """An option that takes one value given twice (`-o a -o b`, `--format json --format
    csv`): click keeps the last without a word; which one is meant cannot be told."""
    single = {}
    for param in command.params:
        # a plain flag given twice means what it means once; an on/off pair is a choice
        plain_flag = param.is_flag and not param.secondary_opts if isinstance(param, click.Option) else False
        if isinstance(param, click.Option) and not param.multiple and not param.count and not plain_flag:
            for opt in (*param.opts, *param.secondary_opts):
                single[opt] = param
    seen: dict[str, str] = {}
    for arg in args:
        if arg == "--":
            break
        opt = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2] if arg.startswith("-") else None
        param = single.get(opt) if opt else None
        if param is None:
            continue
        if param.name in seen:
            both = f"{opt} given twice" if seen[param.name] == opt else f"{seen[param.name]} and {opt} given together"
            raise click.UsageError(f"{both}: which one is meant cannot be told")
        seen[param.name] = opt  # type: ignore[index]


def _internal(exc: BaseException) -> NoReturn:
    """The safety net: an exception no known case explains, reported in one line."""
    text = " ".join(str(exc).split())
    click.echo(str(Diagnostic(NO_SPAN, f"internal error: {type(exc).__name__}: {text} (please report)", INTERNAL)),
               err=True)
    sys.exit(EXIT_BAD_INPUT)


class ReasonerGroup(click.Group):
    """The `reasoner` group: whatever happens in a command ends in a located line and an
    exit status, never a traceback: bad input or usage 2, Ctrl-C 130."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _refuse_repeated_options(command, rest)
        return name, command, rest

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
        if sys.stderr is None:  # started with stderr closed (`2>&-`): messages are lost, not the run
            sys.stderr = open(os.devnull, "w", encoding="utf-8")
        if sys.stdout is None:  # started with stdout closed (`>&-`): whatever it would print is lost
            click.echo(str(Diagnostic(NO_SPAN, "standard output is closed: nothing could be written", OUTPUT)),
                       err=True)
            sys.exit(EXIT_BAD_INPUT)
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
                fail(exc)
            except EvaluationLimit as exc:
                stopped(exc)
            except (KeyboardInterrupt, click.Abort):
                _interrupted()
            except Exception as exc:
                if _interrupt(exc):
                    _interrupted()
                if type(exc).__name__ == "OutOfMemoryException":  # DuckDB at its memory limit
                    click.echo(str(Diagnostic(NO_SPAN, f"DuckDB stopped: {str(exc).splitlines()[0]}", LIMIT)),
                               err=True)
                    sys.exit(EXIT_BAD_INPUT)
                if isinstance(exc, OSError) and exc.errno in DISK_FULL:  # standard output on a full disk
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
        if error.errno not in DISK_FULL:
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


@click.group(cls=ReasonerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="guideline-reasoner")
def main() -> None:
    """Clinical guideline rules as Datalog: query, recommend, explain and check.

    A research and authoring tool, not a medical device.
    """
    facts = sys.modules.get("reasoner.io.facts")  # not imported for it: start-up stays light
    if facts is not None:  # each command names a folder's unread files once (tests run many in one process)
        facts.NOTED.clear()
