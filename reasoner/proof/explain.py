"""Why and why-not: proof trees read off a finished model.

`why` needs no re-derivation: the engine kept every rule firing with all of its
variable bindings, so a proof step is a lookup. Among a fact's firings the explainer
picks one of minimal height (each fact's rank is the height of its lowest proof,
computed to a fixpoint, so recursive rules cannot send it round a cycle).

`why-not` walks each rule that could conclude the goal, literal by literal in the
engine's order, and stops at the first literal that no binding satisfies, saying why:
a missing input fact, a false comparison with its values, a negated fact that is
present (with its proof), or a derived literal that fails in turn (to a bounded depth).

Limits: proofs are explanations of *this* model (the patient's facts as given); why-not
explains a ground goal only; an aggregate's proof lists the rows it counted, not a
proof of each row's absence for the rows it did not count.
"""
from __future__ import annotations

from reasoner.proof.tree import (
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, FALSE, HOLDS, INPUT, MISSING, NO_RULE, PRESENT, RULE_FAILS,
    RULESET_FACT, WHY_NOT, FactKey, Node, fact_text, number_nodes, to_json_obj,
)
from reasoner.proof.why import conclusions
from reasoner.proof.whynot import WhyNot

__all__ = [
    "ABSENT", "AGGREGATE", "COMPARISON", "CUT", "DERIVED", "FALSE", "HOLDS", "INPUT", "MISSING", "NO_RULE",
    "PRESENT", "RULE_FAILS", "RULESET_FACT", "WHY_NOT", "Explainer", "FactKey", "Node", "conclusions", "fact_text",
    "number_nodes", "to_json_obj",
]


class Explainer(WhyNot):
    """Proofs and why-not explanations over one model: `prove`, `proofs` and
    `violations` (proof/why.py), `why_not` (proof/whynot.py), their steps' text
    (proof/statements.py), the tree they build (proof/tree.py)."""
