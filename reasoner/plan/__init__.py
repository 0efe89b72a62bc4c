"""The lowered program every evaluator runs (`lowered`), and the one definition of what
expressions, comparisons, "no value" and aggregates mean (`semantics`).

May import: language, analysis.
"""
