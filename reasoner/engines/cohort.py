"""A run's cohort: the facts given to a command, loaded whole (small inputs, any form)
or, for CSV and Parquet cohorts, checked in one streaming pass and evaluated in a
second, memory flat (`Cohort`); and its evaluation chunk by chunk, in worker processes
or in DuckDB or Spark partitions, a task applied to each chunk's model (`evaluate_cohort`).

Importing this module loads no engine, reader or parser (the command line imports it
for its partition sizes before it knows which engine a run needs): each function
imports what it uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterator

from reasoner.engines import DEFAULT_CHUNK
from reasoner.language.errors import ReasonerError
from reasoner.language.span import NO_SPAN

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet
    from reasoner.engines.model import Model
    from reasoner.io.facts import FactSet
    from reasoner.language.syntax import Atom

DUCKDB_PARTITION = 10_000
"""Patients per DuckDB partition when the answers go into Python (text and JSON
reports, queries): about 60 MB per 10,000 CRS patients; DuckDB's own per-partition
cost is ~0.1 s."""

DUCKDB_SQL_PARTITION = 50_000
"""Patients per partition when the report rows are made in SQL (CSV, Parquet): nothing
per patient reaches Python, and bigger partitions share DuckDB's fixed costs (100,000
patients: 16.4 s in partitions of 10,000, 10.8 s in partitions of 50,000, 740 MB peak).
Doubled where memory allows: `sql_partition_size`."""

LARGE_PARTITION_MEMORY = 8 << 30
"""The memory (bytes) from which a partition made in SQL holds twice DUCKDB_SQL_PARTITION."""


def sql_partition_size() -> int:
    """Patients per partition of a report made in SQL: DUCKDB_SQL_PARTITION, twice that
    where this process may use LARGE_PARTITION_MEMORY or more (`memory_bytes`). Each
    partition runs ~320 statements of ~1.5 ms fixed cost each whatever its size; at
    1,000,000 patients on two cores partitions of 100,000 peak at 2.4 GB against 1.4 GB
    (docs/duckdb.md has the runs)."""
    return 2 * DUCKDB_SQL_PARTITION if memory_bytes() >= LARGE_PARTITION_MEMORY else DUCKDB_SQL_PARTITION


class Cohort:
    """The facts of a run: loaded whole (small inputs, any form), or for CSV and Parquet
    cohorts checked in one streaming pass and evaluated in a second, memory flat.
    `stream` None: streamed when every path is a CSV or Parquet file read more than once.
    Bad facts raise ReasonerError here, before anything is evaluated."""

    def __init__(self, rules: RuleSet, paths: tuple[str, ...], stream: bool | None, engine: str = "pydatalog"):
        from reasoner.io.facts import Grouping, load_facts, validate_stream
        self.rules, self.paths = rules, paths
        cohort_forms = all(Path(p).suffix in (".csv", ".parquet") for p in paths if p != "-")
        once = [p for p in paths if read_once(p)]  # a FIFO or a device: no second pass
        if stream and once:
            raise ReasonerError.at(NO_SPAN, f"--stream reads a cohort twice, and {once[0]} can be read only once: "
                                   "drop --stream", "E016")
        self.stream = cohort_forms and "-" not in paths and not once if stream is None else stream
        self.factset: FactSet | None = None
        if self.stream and engine == "duckdb" and self.duckdb_reads_it():
            pass  # DuckDB checks the files itself, in SQL, before evaluating anything
        elif self.stream and engine == "spark" and self.spark_reads_it():
            pass  # checked by the Spark engine before it evaluates (reasoner.engines.spark)
        elif self.stream:
            self.grouping = Grouping(rules)
            validate_stream(rules, paths, grouping=self.grouping)
        else:
            self.factset = load_facts(rules, paths)

    def duckdb_reads_it(self) -> bool:
        return self.factset is None and all(Path(p).suffix in (".csv", ".parquet") and Path(p).is_file()
                                            for p in self.paths)

    def spark_reads_it(self) -> bool:
        """Every path a CSV or Parquet file (or a Parquet folder), local or a URI Spark reads
        (hdfs://, s3a://)."""
        from reasoner.io.spark_inputs import is_remote
        return self.factset is None and all(
            Path(p).suffix in (".csv", ".parquet") and (is_remote(p) or Path(p).is_file()
                                                        or (Path(p).is_dir() and Path(p).suffix == ".parquet"))
            for p in self.paths)

    def chunks(self, size: int):
        from reasoner.io.facts import chunks, stream_chunks
        if self.factset is not None:
            return chunks(self.rules, self.factset, size)
        grouping = getattr(self, "grouping", None)
        problem = grouping.problem(size) if grouping is not None else None
        if problem is not None:  # known from pass one: refused before any chunk is evaluated or printed
            raise ReasonerError([problem])
        return stream_chunks(self.rules, self.paths, size)

    def patients(self) -> int | None:
        return len(self.factset.patients(self.rules)) if self.factset is not None else None

    def facts_for(self, goal: Atom) -> FactSet:
        """The facts to evaluate for a checked goal. When the goal names a patient and the
        rule set is patient-local, only that patient's facts, a streamed cohort read once
        more to pick them out (so `why` after a cohort run needs the memory of one
        patient, not of the cohort); else all of them."""
        from reasoner.io.facts import load_facts, of_patient, stream_facts
        from reasoner.language.syntax import Const
        rules = self.rules
        k = rules.key_index(goal.pred)
        if not (rules.patient_local and k is not None and isinstance(goal.args[k], Const)):
            return self.factset if self.factset is not None else load_facts(rules, self.paths)
        facts = self.factset.facts if self.factset is not None else stream_facts(rules, self.paths)
        return of_patient(rules, facts, goal.args[k].value)  # type: ignore[index,union-attr]


def read_once(path: str) -> bool:
    """A FIFO, a device such as /dev/stdin, or stdin itself: its content can be read once."""
    p = Path(path)
    return path == "-" or (p.exists() and not p.is_file() and not p.is_dir())


def evaluate_cohort(cohort: Cohort, task: Callable[[RuleSet, Model], Any], settings: dict, jobs: int,
                    chunk_size: int | None, time_limit: float | None, engine: str = "pydatalog",
                    reads: Collection[str] | None = None, firings_of: Collection[int] | None = None,
                    sql_task: Callable[[RuleSet, Any, Any], Any] | None = None) -> Iterator:
    """`task(rules, model)` of each chunk's model, with a progress bar. With duckdb, the
    model holds only the facts of `reads` and the firings of the rules `firings_of` (none
    if None), plus every rule's patient count: copying all of DuckDB's answers into Python
    costs more than computing them. `sql_task(rules, result, turn)`, when given, is asked first
    for each partition a DuckDB cohort run keeps in SQL (`SQLResult`), and may answer None
    to get `task` instead. Unknown settings, values out of range and rules no engine can
    run raise ReasonerError before any chunk is read or any worker starts."""
    from reasoner.analysis.program import resolve_settings
    from reasoner.engines.parallel import map_chunks, map_models
    from reasoner.plan.lowered import plan_of
    resolve_settings(cohort.rules, settings)
    plan_of(cohort.rules)
    if engine == "duckdb" and sql_task is not None and cohort.duckdb_reads_it():
        yield from _duckdb_in_sql(cohort, task, sql_task, settings, time_limit, chunk_size or sql_partition_size(),
                                  reads, firings_of)
        return
    if engine == "spark":
        from reasoner.engines.spark_cohort import spark_models
        models = spark_models(cohort, settings, time_limit, chunk_size or DUCKDB_PARTITION, reads, firings_of)
        yield from map_models(cohort.rules, models, task, jobs=jobs, total=cohort.patients(), progress=True)
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
    result, turn)`, in this process, as many partitions at a time as the machine has
    cores (`DuckDBEngine.map_partitions`: threads, as DuckDB runs a small partition's
    statements on one core); a partition it declines (None) goes through `task` over a
    model instead."""
    from reasoner.engines.parallel import progress_bar
    from reasoner.engines.sql import DuckDBEngine
    engine = DuckDBEngine(cohort.rules, settings, time_limit=time_limit, firings=firings_of is not None)

    def answer(result, turn):
        out = sql_task(cohort.rules, result, turn)
        return (out if out is not None else task(cohort.rules, result.to_model(reads, firings_of))), result.patients

    with progress_bar(cohort.patients(), True) as advance:
        # at most 4 side by side: they share DuckDB's one memory limit (at most 2 GB), and each
        # holds a whole partition; more would spill rather than speed up
        for out, patients in engine.map_partitions(list(cohort.paths), answer, patients=size,
                                                   workers=min(cores(), 4)):
            yield out
            if advance and patients is not None:
                advance(patients)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, which a
    container's limit or `taskset` narrows; else every core)."""
    import os
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on every system
        return os.cpu_count() or 1


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""A container's memory limit (cgroup v2, then v1); "max" or a huge number: none."""


def memory_bytes() -> int:
    """The memory this process may use: the machine's, or a container's cgroup limit where
    lower (0 when neither can be read)."""
    import os
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every system
        available = 0
    for path in CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) and (not available or int(text) < available):
            available = int(text)
    return available


def memory_share_mb(low: int, high: int) -> int:
    """A quarter of `memory_bytes()`, in MB, held between `low` and `high` (what a cohort's
    DuckDB database and a local Spark driver are given)."""
    return min(high, max(low, memory_bytes() // (4 << 20)))
