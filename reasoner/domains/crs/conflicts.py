"""The conflicts of a model in the CRS vocabulary, each with both of its sides proved
(`reasoner conflicts`): `conflict(P, Action, Reason)` with the proofs of
`indicated(P, Action)` or `ordered(P, Action)` and of `contraindicated(P, Action,
Reason)`, and the `alternative(P, Action, Other)` actions, where the rule set declares
them.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoner.analysis.program import RuleSet
from reasoner.engines.model import Model, row_key
from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import NO_SPAN, Value
from reasoner.proof.explain import Explainer, Node

SIDES = ("indicated", "ordered", "contraindicated")
"""The predicates of a conflict's two sides, in the order they are shown."""


@dataclass
class Conflict:
    """One conflict(patient, action, reason) row, with the proof of each side that holds."""

    patient: Value
    action: Value
    reason: Value
    sides: list[tuple[str, Node]]
    """(predicate of SIDES, its proof), for each side the model holds, in SIDES order."""
    alternatives: list[Value]


def require_conflicts(rules: RuleSet) -> None:
    """ReasonerError (E016) unless the rule set declares the conflict predicate."""
    if "conflict" not in rules.decls:
        raise ReasonerError.at(NO_SPAN, f"{rules.path} declares no conflict/3 predicate, which `reasoner conflicts` "
                               "lists", "E016")


def explained_conflicts(rules: RuleSet, model: Model) -> list[Conflict]:
    """Every conflict of the model, in row order, with its sides proved."""
    explainer = Explainer(rules, model)
    alternatives = model.tuples("alternative") if "alternative" in rules.decls else set()
    found = []
    for row in sorted(model.tuples("conflict"), key=row_key):
        patient, action, reason = row
        sides = []
        for pred, args in ((SIDES[0], (patient, action)), (SIDES[1], (patient, action)),
                           (SIDES[2], (patient, action, reason))):
            if pred in rules.decls and model.holds(pred, args):
                sides.append((pred, explainer.prove(pred, args)))
        alts = sorted(b for p, a, b in alternatives if p == patient and a == action)
        found.append(Conflict(patient, action, reason, sides, alts))
    return found
