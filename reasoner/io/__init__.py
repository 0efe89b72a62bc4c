"""Facts in and files out: the fact readers of every form (.facts, JSON, CSV, Parquet)
with the one fact validator (`facts`), goals checked like facts (`goals`), and output
files written whole or not at all (`output`); CSV and Parquet fact files read, checked
and loaded by DuckDB for its engine (`duckdb_inputs`, with the same checks and messages
as `facts`), and the SQL text helpers of DuckDB's own I/O (`sqltext`).

May import: language, analysis.
"""
