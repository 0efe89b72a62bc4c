"""Why and why not: proofs and why-not explanations (`explain`: the `Explainer`, made of
`why`, the proofs, and `whynot`, the why-not search, over `statements`, the text of a
step's values, and `tree`, the proof nodes and their JSON; all over `match`), and the
independent proof checker (`verify`) with its own naive reference evaluator
(`reference`, which reads the rule set, not the lowered plan, on purpose).

May import: language, analysis, io, plan, engines.
"""
