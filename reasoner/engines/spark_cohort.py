"""A command's cohort evaluated by Spark (`query` and `recommend` with `--engine spark`):
one Spark run over the whole cohort, then one `Model` per partition of patients for the
command's report, and Spark's failures as located errors, never tracebacks.

Imported only when `--engine spark` runs (reasoner.engines.cohort), and pyspark only
when the session starts.
"""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Collection, Iterator

from reasoner.language.errors import ReasonerError

if TYPE_CHECKING:
    from reasoner.engines.cohort import Cohort
    from reasoner.engines.model import Model


def spark_models(cohort: Cohort, settings: dict, time_limit: float | None, size: int,
                 reads: Collection[str] | None, firings_of: Collection[int] | None) -> Iterator[Model]:
    """One model per partition of `size` patients (numbered by first mention, as the DuckDB
    engine numbers them): CSV and Parquet cohorts read by Spark (checked first), other
    inputs read and checked by the Python loader and handed over whole."""
    from reasoner.engines.spark import SparkEngine
    from reasoner.engines.spark_session import spark_error
    from reasoner.io.facts import stream_facts
    result = None
    try:
        engine = SparkEngine(cohort.rules, settings, time_limit=time_limit, firings=firings_of is not None)
        if cohort.spark_reads_it():
            result = engine.evaluate_files(list(cohort.paths))
        else:
            facts = cohort.factset.facts if cohort.factset is not None else stream_facts(cohort.rules, cohort.paths)
            rows: dict[str, dict[tuple, int]] = defaultdict(dict)
            for n, fact in enumerate(facts):
                rows[fact.pred].setdefault(fact.args, n)
            engine.learn(rows)
            known = {p: r for p, r in rows.items() if p in engine.compiled.arity}
            result = engine.evaluate_tables({p: list(r) for p, r in known.items()},
                                            {p: list(r.values()) for p, r in known.items()})
        yield from result.models(size, reads, firings_of)
    except ReasonerError:
        raise
    except Exception as exc:
        error = spark_error(exc)
        if error is None:
            raise
        raise error from None
    finally:
        if result is not None:
            try:
                result.close()
            except Exception:  # the session may already be gone; nothing is left to release
                pass
