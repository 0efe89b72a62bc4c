"""`reasoner conflicts` as text (each conflict with the proofs of its sides indented
under it) and JSON (`{"conflicts": [...]}`, each side's proof as `render.proof` gives
it)."""
from __future__ import annotations

import json

from reasoner.analysis.program import RuleSet
from reasoner.domains.crs.conflicts import Conflict
from reasoner.render import proof as proof_render


def to_text(found: list[Conflict], rules: RuleSet) -> str:
    if not found:
        return "no conflicts\n"
    out = []
    for c in found:
        side = "indicated" if c.sides and c.sides[0][0] == "indicated" else "ordered"
        out.append(f"CONFLICT {c.patient}: {c.action} is {side} and contraindicated ({c.reason})"
                   + (f"; alternative: {', '.join(c.alternatives)}" if c.alternatives else "") + "\n")
        for pred, node in c.sides:
            out.append(f"  why {pred}:\n")
            proof = proof_render.to_text(node, rules).rstrip().split("\n")
            out.append("\n".join("    " + line for line in proof) + "\n")
        out.append("\n")
    return "".join(out)


def to_json(found: list[Conflict], rules: RuleSet) -> str:
    doc = {"conflicts": [{"patient": c.patient, "action": c.action, "reason": c.reason, "alternatives": c.alternatives,
                          "because": {pred: proof_render.to_json_obj(node, rules) for pred, node in c.sides}}
                         for c in found]}
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
