"""Tools for guideline authors: the rule-set checker (`check`, which runs `check_static`,
`check_solver` and `check_search` over the items of `check_items`, with the findings model
in `check_codes` and witness files in `check_witness`), the z3 encoding (`smt_formulas`,
`smt_encode`, and the prover `smt`), the exploration fallback (`explore_domain`, `explore`,
`explore_witness`), the predicate names S202 reads (`vocabulary`), the rule set's own
example patients (`casetests`), and the comparison of two rule-set versions (`diff`,
`diff_solver`).

May import: language, analysis, io, plan, engines, proof.
"""
