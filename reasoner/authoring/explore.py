"""Representative patients for the semantic checks: the rules' own thresholds and
enumerations define them.

Limits first: exploration is a search, not a proof. A rule reported dead fired for
none of the patients explored; it may still fire for a patient outside them. The
report says how many patients were explored, out of how large a space, and how.

Two sources of patients, run as one batch:
1. A covering array over *dimensions*: each input predicate's presence (a flag present
   or absent) and each of its arguments, whose values are the representative ones
   (every constant a rule compares the argument with, just above and just below it,
   every enumeration value). When the full product is small it is explored whole
   (exhaustive); otherwise a greedy pairwise covering array puts every pair of values
   of two dimensions into some patient.
2. A targeted witness per rule: the rule's body is unfolded through the rules of its
   derived literals down to input facts (choosing among alternative rules
   depth-first), count aggregates are unrolled to the counts the rules compare with,
   and the variables get representative values that satisfy the comparisons. This
   finds rules that need many conditions at once, which pairs alone miss.

This module makes the first (explore); explore_domain.py the representative values
(build_domain), explore_witness.py the second (witnesses).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from reasoner.analysis.program import RuleSet
from reasoner.authoring.explore_domain import Domain
from reasoner.language.syntax import Fact, Span


@dataclass
class Exploration:
    patients: dict[str, list[Fact]] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    """patient id → how it was made (covering row, or the rule it is a witness for)."""
    space: int = 0
    pairs: tuple[int, int] = (0, 0)
    """(value pairs covered, value pairs in all)."""
    covering_rows: int = 0
    sampled_rows: int = 0
    exhaustive: bool = False
    dimensions: int = 0


EXPLORED_SPAN = Span("<explored>", 0, 0)
"""Where an explored or targeted patient's facts come from (no file)."""


def covering_array(dims: list[list], budget: int) -> tuple[list[tuple[int, ...]], bool, int, tuple[int, int]]:
    """Rows of value indices: the full product when it fits the budget, else a greedy
    pairwise covering array (every pair of values of two dimensions in some row)."""
    space = 1
    for d in dims:
        space *= len(d)
    pairs = sum(len(dims[a]) * len(dims[b]) for a, b in itertools.combinations(range(len(dims)), 2))
    if space <= budget:
        return list(itertools.product(*(range(len(d)) for d in dims))), True, space, (pairs, pairs)
    uncovered: set[tuple[int, int, int, int]] = {
        (a, i, b, j) for a, b in itertools.combinations(range(len(dims)), 2)
        for i in range(len(dims[a])) for j in range(len(dims[b]))}
    rows: list[tuple[int, ...]] = []
    order = sorted(range(len(dims)), key=lambda d: -len(dims[d]))
    while uncovered and len(rows) < budget:
        a, i, b, j = min(uncovered)  # seed the row with the first uncovered pair: deterministic
        row = [-1] * len(dims)
        row[a], row[b] = i, j
        for d in order:
            if row[d] >= 0:
                continue
            best, best_gain = 0, -1
            for v in range(len(dims[d])):
                gain = sum(1 for e in range(len(dims)) if row[e] >= 0 and
                           ((min(d, e), v if d < e else row[e], max(d, e), row[e] if d < e else v) in uncovered))
                if gain > best_gain:
                    best, best_gain = v, gain
            row[d] = best
        for x, y in itertools.combinations(range(len(dims)), 2):
            uncovered.discard((x, row[x], y, row[y]))
        rows.append(tuple(row))
    return rows, False, space, (pairs - len(uncovered), pairs)


def explore(rs: RuleSet, domain: Domain, budget: int = 4000) -> Exploration:
    """Patients from a covering array whose dimensions are each input predicate's
    presence and each of its arguments' representative values: pairs of thresholds
    across arguments (a drug and the hours since it was given, a device and its flow)
    are what rules combine, and argument-level dimensions keep pairwise coverage
    affordable. Several facts of one predicate come from the targeted witnesses."""
    inputs = sorted(p for p, d in rs.decls.items() if d.role == "input" and d.key_index is not None)
    dims: list[list] = []
    where: list[tuple[str, int | None]] = []
    for pred in inputs:
        decl = rs.decls[pred]
        dims.append([False, True])
        where.append((pred, None))
        for i in range(decl.arity):
            if i != decl.key_index:
                dims.append(list(domain.values[(pred, i)]))
                where.append((pred, i))
    rows, exhaustive, space, pairs = covering_array(dims, budget)
    covering = len(rows)
    if not exhaustive:  # spend the rest of the budget on a seeded random sample: higher-order mixes
        import random
        rng = random.Random(0)
        seen = set(rows)
        for _ in range(budget - len(rows)):
            row = tuple(rng.randrange(len(d)) for d in dims)
            if row not in seen:
                seen.add(row)
                rows.append(row)
    out = Exploration(space=space, covering_rows=covering, exhaustive=exhaustive, dimensions=len(dims),
                      pairs=pairs, sampled_rows=len(rows) - covering)
    for n, row in enumerate(rows, 1):
        pid = f"e{n}"
        chosen = {w: dims[d][row[d]] for d, w in enumerate(where)}
        facts = []
        for pred in inputs:
            if chosen[(pred, None)]:
                decl = rs.decls[pred]
                args = tuple(pid if i == decl.key_index else chosen[(pred, i)] for i in range(decl.arity))
                facts.append(Fact(pred, args, EXPLORED_SPAN))
        out.patients[pid] = facts
        out.how[pid] = "exhaustive" if exhaustive else "covering" if n <= covering else "sampled"
    return out
