"""The evaluators: pyDatalog (`pydatalog`, the only module that talks to pyDatalog),
DuckDB SQL (`sql`, with `sqlgen` building the SQL as sqlglot trees, `sql_types` its
column types and `sql_result` the evaluated database), Apache Spark (`spark`: the same
statements rendered for Spark SQL, with `spark_result`, `spark_session` and the
command's cohort run `spark_cohort`; pyspark imported only when used), the model they
return (`model`), cohorts in chunks and worker processes (`parallel`), a command's
cohort read and evaluated by either engine (`cohort`), and the plain entry points
`evaluate`, `evaluate_chunks`, `query` (`run`).

May import: language, analysis, io, plan.
"""

DEFAULT_CHUNK = 50
"""Patients per chunk: pyDatalog's cost per row grows with the facts it holds (measured
best near 50). Here, not in `pydatalog`, so `reasoner --help` shows it without pyDatalog."""
