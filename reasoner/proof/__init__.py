"""Why and why not: proofs and why-not explanations (`explain`, over `match`), and the
independent proof checker (`verify`) with its own naive reference evaluator
(`reference`, which reads the rule set, not the lowered plan, on purpose).

May import: language, analysis, io, plan, engines.
"""
