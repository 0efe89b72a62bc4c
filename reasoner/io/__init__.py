"""Facts in and files out: fact files loaded, streamed and chunked by patient
(`facts`), read in every form, .facts, JSON, CSV, Parquet (`fact_readers`), and checked
by the one fact validator (`fact_check`), goals checked like facts (`goals`), and output
files written whole or not at all (`output`); CSV and Parquet fact files read, checked
and loaded by DuckDB for its engine (`duckdb_inputs`, with the same checks and messages
as `facts`; their problems located by line, in Python, by `duckdb_lines`), the same files
read by Spark (`spark_inputs`, with Spark's own check of each row), and the SQL
text helpers of DuckDB's own I/O (`sqltext`).

May import: language, analysis.
"""
