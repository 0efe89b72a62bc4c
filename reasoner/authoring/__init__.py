"""Tools for guideline authors: the rule-set checker (`check`, with the z3 encoding in
`smt` and the exploration fallback in `explore`), the rule set's own example patients
(`casetests`), and the comparison of two rule-set versions (`diff`, `diff_solver`).

May import: language, analysis, io, plan, engines, proof.
"""
