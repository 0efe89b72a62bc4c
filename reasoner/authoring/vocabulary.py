"""The predicate names the checker gives a meaning to (docs/checks.md, S202).

The rule language has no way to declare "this predicate lists conflicts", so the names
live here, once, and nowhere else in the checker: a rule set that declares a predicate
named CONFLICT has its tuples enumerated as conflicts (S202, one per tuple); one that
declares both CLASH predicates, with the first's arguments lining up with the second's
first ones, has them checked for holding together with no conflict saying so (S202).
A rule set with none of these names gets neither check; nothing else depends on them.
"""
from __future__ import annotations

from reasoner.analysis.program import RuleSet

CONFLICT = "conflict"
"""The predicate whose every tuple is a conflict the rule set can produce (S202)."""
INDICATED, CONTRAINDICATED = "indicated", "contraindicated"
"""The pair that must not hold together on the same arguments unless a CONFLICT says so (S202)."""


def has_conflicts(rs: RuleSet) -> bool:
    """Whether the rule set declares the CONFLICT predicate."""
    return CONFLICT in rs.decls


def clash_predicates(rs: RuleSet) -> tuple[str, str] | None:
    """INDICATED and CONTRAINDICATED, when both are declared and the first's arguments
    line up with the second's first ones."""
    if INDICATED not in rs.decls or CONTRAINDICATED not in rs.decls:
        return None
    a, b = rs.decls[INDICATED], rs.decls[CONTRAINDICATED]
    if a.arity > b.arity:
        return None
    return INDICATED, CONTRAINDICATED
