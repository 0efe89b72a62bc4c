"""Facts in and files out: the fact readers of every form (.facts, JSON, CSV, Parquet)
with the one fact validator (`facts`), goals checked like facts (`goals`), and output
files written whole or not at all (`output`).

May import: language, analysis.
"""
