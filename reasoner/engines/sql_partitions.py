"""A cohort larger than memory on the DuckDB engine: read and checked whole into a
database file, then evaluated partition by partition (`partitions`), or several
partitions side by side with a task applied to each (`map_partitions`).

Why side by side: a partition of 50,000 CRS patients fills tables of tens of thousands of
rows, and DuckDB runs a statement over so few rows on one thread; on a 2-core machine
the second core idled through most of a cohort's evaluation and report. Each worker is a
thread with its own connection (`cursor()`) to the one database: the cohort's
partitioned input tables are shared, and every table a partition fills is a TEMP table,
which DuckDB keeps per connection, so two partitions never see each other's rows.
DuckDB runs a statement without holding Python's lock, so the threads run in parallel.

Outputs come back in partition order whatever order the workers finish in; a task's
`with turn:` block runs after every earlier partition's (for output that must be
appended in order, such as the rows of one Parquet report).

Inside the partitions a patient is a number (`DuckDBEngine.with_patient_codes`: BIGINT
where the rules allow, a third cheaper to evaluate than text ids); each partition's
`_keys (code, key)` table is what `SQLResult` decodes them with.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, TypeVar

import duckdb

from reasoner.engines.sql_result import SQLResult
from reasoner.io.sqltext import KEY, count_added, quote_ident

if TYPE_CHECKING:
    from reasoner.engines.sql import DuckDBEngine

T = TypeVar("T")


def default_memory_limit() -> str:
    """DuckDB's memory limit for a cohort's database: a quarter of the memory this process
    may use (the machine's, or a container's limit where lower: `cohort.memory_bytes`), at
    least 512 MB and at most 2 GB. Over it DuckDB spills to disk; at 1,000,000 CRS
    patients, 512 MB spilled enough to cost 10-15 % of the run (twice the system time)."""
    from reasoner.engines.cohort import memory_share_mb
    return f"{memory_share_mb(512, 2048)}MB"


class _Cohort:
    """The cohort's database: read, checked and partitioned, ready for workers."""

    def __init__(self, engine: DuckDBEngine, paths: Sequence[str | Path], patients: int, check: bool,
                 memory_limit: str | None):
        self.engine = engine
        self.folder = tempfile.mkdtemp(prefix="reasoner-duckdb-")
        self.con: duckdb.DuckDBPyConnection | None = None
        try:
            self.con = engine.connect(str(Path(self.folder) / "cohort.duckdb"),
                                      memory_limit or default_memory_limit())
            split: dict[str, int] = {}

            def number(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
                split.update(engine._number_patients(con, patients))
                return split
            nonempty = engine.inputs().load(self.con, paths, check, split=number)
            self.sizes: list[int] = []  # the patients in each partition; [] when the cohort is not split
            self.codes: list[tuple[int, int]] = []  # each partition's lowest and highest patient number
            if split:
                parts = self.con.execute("SELECT part, count(*), min(code), max(code) FROM _patients "
                                         "GROUP BY part ORDER BY part").fetchall()
                self.sizes = [n for _, n, _, _ in parts] or [0]
                self.codes = [(low, high) for _, _, low, high in parts] or [(0, -1)]
                # partitions evaluated with patients as numbers, decoded by each partition's `_keys`
                self.engine = engine.with_patient_codes(split) or engine
            if not split:  # else the partitions' ids and `_all_` tables' patients are looked up in it
                self.con.execute("DROP TABLE IF EXISTS _patients")
            self.con.execute("DROP TABLE _staging")
        except BaseException:  # bad facts raise here: nothing of the run may stay behind
            self.close()
            raise
        self.keyed = split if self.sizes else {}
        self.shared = {p for p, d in engine.ruleset.decls.items() if d.role == "input" and p not in self.keyed}
        self.shared_rows = nonempty - set(self.keyed)  # inputs every partition holds whole
        self.parts = max(len(self.sizes), 1)

    def fill(self, con: duckdb.DuckDBPyConnection, part: int) -> set:
        """Partition `part`'s rows of the keyed input tables into `con`'s tables (a coded
        patient column takes the patient's number, any other its id from `_patients`), and
        its patients' numbers into `_keys`; the predicates that hold rows."""
        here = set(self.shared_rows)
        engine = self.engine
        for pred, k in sorted(self.keyed.items()):
            t = engine.table(pred)
            coded = engine.kinds[pred][k] == KEY
            # `_all_` tables hold the patient's code, not its id (FactFiles.load)
            columns = ", ".join(("_code" if coded else "p.key") if i == k else f"a{i}"
                                for i in range(len(engine.kinds[pred])))
            source = quote_ident('_all_' + t) + ("" if coded else " JOIN _patients AS p ON p.code = _code")
            low, high = self.codes[part]  # a partition's patients are numbered one after another
            if count_added(con.execute(f"INSERT INTO {quote_ident(t)} SELECT {columns} "
                                       f"FROM {source} WHERE _code BETWEEN {low} AND {high}")):
                here.add(pred)
        if engine.patient_coded:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _keys AS SELECT code, key FROM _patients WHERE part = {part}")
        return here

    @contextlib.contextmanager
    def evaluated(self, con: duckdb.DuckDBPyConnection, part: int) -> Iterator[SQLResult]:
        """Partition `part` evaluated on `con`; its result valid inside the block, its
        tables emptied after it (for the connection's next partition)."""
        made = self.engine._run(con, self.fill(con, part))
        result = SQLResult(self.engine, con, owner=False, firings=made)
        result.patients = self.sizes[part] if self.sizes else None
        try:
            yield result
        finally:
            result.closed = True
            self.engine._clear(con, keep=self.shared)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The connection to evaluate partitions one at a time on: the cohort's own, whose
        rule tables hold text patients, or (patients as numbers) a worker's."""
        assert self.con is not None
        if not self.engine.patient_coded:
            return self.con
        self.share_inputs()
        return self.worker_connection()

    def worker_connection(self) -> duckdb.DuckDBPyConnection:
        """Another connection to the database, with its own (TEMP) rule tables, the
        inputs every partition shares copied in."""
        assert self.con is not None
        con = self.con.cursor()
        for statement in self.engine._ddl(temp=True):
            con.execute(statement)
        for pred in sorted(self.shared_rows):
            t = quote_ident(self.engine.table(pred))
            con.execute(f"INSERT INTO {t} SELECT * FROM {quote_ident('_shared_' + self.engine.table(pred))}")
        return con

    def share_inputs(self) -> None:
        """The shared inputs as tables of the database, which other connections see."""
        assert self.con is not None
        for pred in sorted(self.shared_rows):
            t = self.engine.table(pred)
            self.con.execute(f"CREATE TABLE {quote_ident('_shared_' + t)} AS SELECT * FROM {quote_ident(t)}")

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def partitions(engine: DuckDBEngine, paths: Sequence[str | Path], patients: int, check: bool,
               memory_limit: str | None) -> Iterator[SQLResult]:
    """One `SQLResult` per partition, in order, each valid until the next is asked for
    (`DuckDBEngine.evaluate_csv_partitioned`)."""
    cohort = None
    try:
        cohort = _Cohort(engine, paths, patients, check, memory_limit)
        con = cohort.connection()
        for part in range(cohort.parts):
            with cohort.evaluated(con, part) as result:
                yield result
    finally:
        if cohort is not None:
            cohort.close()


class Turn:
    """A partition's place in the order of the outputs: `with turn:` waits until every
    earlier partition's task has passed its own turn."""

    def __init__(self, order: "_Order", part: int):
        self._order, self.part = order, part
        self.taken = False

    def __enter__(self) -> "Turn":
        if self.taken:  # the second time would wait for ever: the turn has passed
            raise RuntimeError(f"partition {self.part}'s turn was already taken")
        self._order.wait_for(self.part)
        self.taken = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._order.passed(self.part)


class _Order:
    """Which partition's turn it is, and from which partition on the run has stopped."""

    def __init__(self, window: int = 1 << 30) -> None:
        self.next = 0
        self.stopped_after: int | None = None  # partitions after this one stop
        self.yielded = 0  # outputs handed to the consumer so far
        self.window = window  # partitions a worker may start beyond those handed over
        self.cond = threading.Condition()

    @property
    def stopped(self) -> bool:
        return self.stopped_after is not None

    def wait_for(self, part: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.next == part or self._stops(part))
            if self._stops(part):
                raise _Stopped

    def may_start(self, part: int) -> bool:
        """Wait until `part` is within the window of what the consumer has taken (so that
        outputs do not pile up in memory ahead of it); False if the run has stopped."""
        with self.cond:
            self.cond.wait_for(lambda: part < self.yielded + self.window or self._stops(part))
            return not self._stops(part)

    def handed_over(self) -> None:
        with self.cond:
            self.yielded += 1
            self.cond.notify_all()

    def _stops(self, part: int) -> bool:
        return self.stopped_after is not None and part > self.stopped_after

    def passed(self, part: int) -> None:
        with self.cond:
            self.next = max(self.next, part + 1)
            self.cond.notify_all()

    def stop(self, after: int = -1) -> None:
        """Stop the partitions after `after` (a failed partition; -1: all of them, on an
        interruption); earlier ones run to the end, so their outputs still come back."""
        with self.cond:
            self.stopped_after = after if self.stopped_after is None else min(after, self.stopped_after)
            self.cond.notify_all()


class _Stopped(Exception):
    """Another partition failed or the run was interrupted: this worker stops."""


def map_partitions(engine: DuckDBEngine, paths: Sequence[str | Path], task: Callable[[SQLResult, Turn], T],
                   patients: int, workers: int, check: bool, memory_limit: str | None) -> Iterator[T]:
    """`task(result, turn)` of every partition, `workers` partitions at a time, the
    outputs yielded in partition order (`DuckDBEngine.map_partitions`). An error in
    any partition is raised when its output's turn to be yielded comes, after the
    other workers have stopped."""
    cohort = None
    order = _Order(window=2 * max(workers, 1))
    threads: list[threading.Thread] = []
    connections: list[duckdb.DuckDBPyConnection] = []
    try:
        cohort = _Cohort(engine, paths, patients, check, memory_limit)
        workers = max(1, min(workers, cohort.parts))
        if workers == 1:
            con = cohort.connection()
            for part in range(cohort.parts):
                with cohort.evaluated(con, part) as result:
                    out = task(result, Turn(order, part))
                    order.passed(part)
                yield out
            return
        cohort.share_inputs()
        # each worker runs its statements on its own thread: DuckDB's pool would add its
        # threads to every statement of every worker, more threads than cores (at 1M
        # patients on 2 cores the evaluation took 1.5x the CPU)
        cohort.con.execute("SET threads = 1")
        connections = [cohort.worker_connection() for _ in range(workers)]
        outputs: dict[int, tuple[bool, Any]] = {}  # part → (ok, output or exception)
        claimed = iter(range(cohort.parts))
        lock = threading.Lock()

        def work(con: duckdb.DuckDBPyConnection) -> None:
            assert cohort is not None
            while not order.stopped:
                with lock:
                    part = next(claimed, None)
                if part is None or not order.may_start(part):
                    return
                try:
                    with cohort.evaluated(con, part) as result:
                        turn = Turn(order, part)
                        out: tuple[bool, Any] = (True, task(result, turn))
                        if not turn.taken:
                            with turn:
                                pass
                except _Stopped:
                    return
                except BaseException as exc:  # raised in the main thread, in order
                    out = (False, exc)
                    order.stop(after=part)
                with order.cond:
                    outputs[part] = out
                    order.cond.notify_all()
                if not out[0]:
                    return

        threads = [threading.Thread(target=work, args=(con,), name=f"duckdb-partition-{i}", daemon=True)
                   for i, con in enumerate(connections)]
        for thread in threads:
            thread.start()
        for part in range(cohort.parts):
            with order.cond:
                # a timeout, so that Ctrl-C reaches the main thread while it waits
                while part not in outputs and any(t.is_alive() for t in threads):
                    order.cond.wait(0.2)
                ok, out = outputs.pop(part, (False, None))
            if not ok:
                raise out if out is not None else RuntimeError(f"partition {part} was not evaluated")
            yield out
            order.handed_over()
    finally:
        order.stop()
        _stop_workers(threads, connections)
        if cohort is not None:
            cohort.close()


def _stop_workers(threads: list[threading.Thread], connections: list[duckdb.DuckDBPyConnection]) -> None:
    """Interrupt the workers' statements until every worker has ended (an interrupt stops
    only the statement running at that moment: a worker between two statements starts
    the next), then close their connections. A second Ctrl-C meanwhile does not cut
    this short (a connection closed under a running worker aborts the process); it is
    raised once the workers are gone."""
    interrupted: BaseException | None = None
    while any(thread.is_alive() for thread in threads):
        try:
            for con in connections:
                try:
                    con.interrupt()
                except duckdb.Error:
                    pass
            for thread in threads:
                thread.join(0.05)
        except KeyboardInterrupt as exc:
            interrupted = exc
    for con in connections:
        con.close()
    if interrupted is not None:
        raise interrupted
