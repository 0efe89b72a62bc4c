"""Patient-partitioned evaluation across worker processes.

pyDatalog keeps its state per thread and its loops run in compiled code, so the only
parallelism is processes. Each worker builds the engine once (the rules are compiled
once per process) and evaluates whole chunks of patients; results come back in chunk
order, so the output is the same bytes whatever `jobs` is.

Only rule sets the checker finds patient-local can be split: `chunks()` hands a
non-local rule set over as one chunk.

There are never more workers than chunks or usable CPUs (`--jobs 1000` over four chunks
starts at most four), and workers ignore Ctrl-C: the parent stops them (exit 130).
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import os
import signal
import sys
from typing import Any, Callable, Iterable, Iterator, TypeVar

import click

from reasoner.engines.pydatalog import Engine
from reasoner.engines.model import Model
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import Fact, Span

T = TypeVar("T")

_worker: dict = {}


def __getattr__(name: str):
    if name == "multiprocessing":  # imported when workers are started, not by every one-process run
        import multiprocessing
        return multiprocessing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# pyDatalog allocates many short-lived objects per query. With Python's default
# threshold (700 allocations) the collector runs thousands of times per chunk and each
# older-generation pass walks the compiled program again. Freezing what exists after the
# first chunk (the program) and collecting less often made a cohort run ~14% faster
# (bench/bench_cohort.py); cycles are still collected, so memory stays flat.
_GC_THRESHOLD = (50_000, 50, 100)

Packed = tuple[list[str], list[tuple]]
"""A chunk on its way to a worker: file names once, then (pred, args, file, line, col)
rows. Pickling Fact and Span dataclasses cost the reading process more than the rest of
its work; plain tuples are about 8x cheaper to send."""


def pack(chunk: list[Fact]) -> Packed:
    files: dict[str, int] = {}
    rows = [(f.pred, f.args, files.setdefault(f.span.file, len(files)), f.span.line, f.span.col) for f in chunk]
    return list(files), rows


def unpack(packed: Packed) -> list[Fact]:
    names, rows = packed
    return [Fact(pred, args, Span(names[i], line, col)) for pred, args, i, line, col in rows]


@contextlib.contextmanager
def _cohort_gc() -> Iterator[Callable[[], None]]:
    """GC tuned for a run of many chunks; yields `settle()`, to call once the program is
    built (after the first chunk), which freezes it out of the collector's way."""
    old = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLD)
    frozen: list[bool] = []

    def settle() -> None:
        if not frozen:
            gc.collect()
            gc.freeze()
            frozen.append(True)
    try:
        yield settle
    finally:
        if frozen:
            gc.unfreeze()
        gc.set_threshold(*old)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(jobs: int, chunks: int | None = None) -> int:
    """At most `jobs`, one per chunk (when their number is known) and one per usable CPU."""
    return max(1, min(jobs, usable_cpus(), jobs if chunks is None else chunks))


def _ignore_interrupts() -> None:
    """Ctrl-C reaches every process of the terminal's group: a worker leaves it to the
    parent, which stops the pool and exits 130 (a worker would print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fork_pool(jobs: int, initializer: Callable[..., None], initargs: tuple) -> Any:
    """A pool of forked workers born ignoring Ctrl-C. The parent blocks SIGINT while it
    forks them: a Ctrl-C that lands between a fork and the worker's initializer would
    otherwise interrupt the worker half-started (seen: inside random's at-fork reseed), and
    such a worker, holding its sibling's pipe, never sees the end of its input and outlives
    the parent. Blocked, not ignored: a Ctrl-C meanwhile stays pending in the parent and
    arrives when it is unblocked (ignoring it lost it: the run went on to exit 0; a
    child starts with no pending signal, and its initializer ignores SIGINT)."""
    import multiprocessing
    import threading
    context = multiprocessing.get_context("fork")
    if threading.current_thread() is not threading.main_thread():  # signals belong to the main thread
        return context.Pool(jobs, initializer=initializer, initargs=initargs)
    pool = None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = context.Pool(jobs, initializer=initializer, initargs=initargs)
    finally:
        try:
            # a pending Ctrl-C is handled by this call itself (it checks for signals)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        except KeyboardInterrupt:
            if pool is not None:
                pool.terminate()
            raise
    return pool


def _init(ruleset: RuleSet, settings: dict | None, time_limit: float | None,
          task: Callable[[RuleSet, Model], object]) -> None:
    _ignore_interrupts()
    gc.set_threshold(*_GC_THRESHOLD)
    _worker["engine"] = Engine(ruleset, settings, time_limit=time_limit)
    _worker["ruleset"] = ruleset
    _worker["task"] = task
    _worker["settled"] = False


def _run(packed: Packed) -> object:
    model = _worker["engine"].evaluate(unpack(packed))
    result = _worker["task"](_worker["ruleset"], model)
    if not _worker["settled"]:
        del model
        gc.collect()
        gc.freeze()
        _worker["settled"] = True
    return result


@contextlib.contextmanager
def progress_bar(total: int | None, wanted: bool) -> Iterator[Callable[[int], None] | None]:
    """Yields `advance(patients)` for a bar on stderr when wanted and stderr is a
    terminal, else None (and nobody counts patients). Without a total (a streamed
    cohort's size is not known up front) the bar pulses and counts, never "N/0"."""
    if not (wanted and sys.stderr.isatty()):
        yield None
        return
    size: dict = {"length": total} if total else {"iterable": (_ for _ in ())}  # no length hint
    with click.progressbar(**size, label="patients", file=sys.stderr, show_pos=True) as bar:
        yield bar.update


def map_chunks(ruleset: RuleSet, chunks: Iterable[list[Fact]], task: Callable[[RuleSet, Model], T], *,
               jobs: int = 1, settings: dict | None = None, time_limit: float | None = None,
               total: int | None = None, progress: bool = False) -> Iterator[T]:
    """`task(ruleset, model)` for each chunk's model, in chunk order, over `jobs` processes.

    The workers are forked, so `task` may be any callable (a partial, a closure).
    With `progress`, a bar on stderr (only when stderr is a terminal). No more workers
    than chunks or usable CPUs: the first chunks are read before any worker starts.
    """
    jobs = worker_count(jobs)
    if jobs > 1:
        chunks = iter(chunks)
        first = list(itertools.islice(chunks, jobs))
        jobs = worker_count(jobs, len(first))
        chunks = itertools.chain(first, chunks)
    with progress_bar(total, progress) as advance, _cohort_gc() as settle:
        if jobs <= 1:
            engine = Engine(ruleset, settings, time_limit=time_limit)
            for index, chunk in enumerate(chunks):
                if index == 1:
                    settle()  # a second chunk: the program is built, worth freezing (one chunk: not worth a collection)
                result = task(ruleset, engine.evaluate(chunk))
                yield result
                if advance:
                    advance(_patients(ruleset, ((f.pred, f.args) for f in chunk)))
            return
        with _fork_pool(jobs, _init, (ruleset, settings, time_limit, task)) as pool:
            sent = ((_run, pack(chunk), _patients(ruleset, ((f.pred, f.args) for f in chunk)) if advance else 0)
                    for chunk in chunks)
            for result, size in _ordered(pool, sent, jobs):
                yield result
                if advance:
                    advance(size)


def _init_task(ruleset: RuleSet, task: Callable[[RuleSet, Model], object]) -> None:
    _ignore_interrupts()
    _worker["ruleset"] = ruleset
    _worker["task"] = task


def _run_task(model: Model) -> object:
    return _worker["task"](_worker["ruleset"], model)


def map_models(ruleset: RuleSet, models: Iterable[Model], task: Callable[[RuleSet, Model], T], *,
               jobs: int = 1, total: int | None = None, progress: bool = False,
               parts: int | None = None) -> Iterator[T]:
    """`task(ruleset, model)` for models made here (by the DuckDB engine), in order: with
    `jobs` > 1 the tasks run in worker processes while this one makes the next models.

    The pool is forked before the first model is asked for, so no worker inherits a
    DuckDB connection; so the number of models is not known then, only `parts` when the
    caller knows it (at most one worker per part, and per usable CPU).
    """
    jobs = worker_count(jobs, parts)
    with progress_bar(total, progress) as advance:
        if jobs <= 1:
            for model in models:
                size = _patients(ruleset, _rows(model)) if advance else 0
                yield task(ruleset, model)
                if advance:
                    advance(size)
            return
        with _fork_pool(jobs, _init_task, (ruleset, task)) as pool:
            sent = ((_run_task, model, _patients(ruleset, _rows(model)) if advance else 0) for model in models)
            for result, size in _ordered(pool, sent, jobs):
                yield result
                if advance:
                    advance(size)


def _ordered(pool, sent: Iterable[tuple[Callable, object, int]], jobs: int) -> Iterator[tuple[object, int]]:
    """imap with a bounded window, so a streamed cohort is never queued whole in memory:
    `sent` gives (function, its argument, patients in it)."""
    window: list = []
    for function, argument, size in sent:
        window.append((pool.apply_async(function, (argument,)), size))
        if len(window) >= 2 * jobs:
            handle, size = window.pop(0)
            yield handle.get(), size
    for handle, size in window:
        yield handle.get(), size


def _rows(model: Model) -> Iterator[tuple[str, tuple]]:
    return ((pred, args) for pred, rows in model.facts.items() for args in rows)


def _patients(ruleset: RuleSet, facts: Iterable[tuple[str, tuple]]) -> int:
    keys = set()
    for pred, args in facts:
        k = ruleset.key_index(pred)
        if k is not None:
            keys.add(args[k])
    return len(keys)
