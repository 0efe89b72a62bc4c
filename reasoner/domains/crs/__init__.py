"""The CRS rule set's report: recommendations, grades, doses and conflicts of each
patient, in Python (`report`) and, for DuckDB cohorts, in SQL (`report_sql`); the
conflicts of a model with both sides proved (`conflicts`).

May import: language, analysis, io, plan, engines, proof, authoring.
"""
