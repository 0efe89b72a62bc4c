"""The proof tree: the kinds of evidence a step is, the `Node` every proof and why-not
explanation is made of, the path ids `number_nodes` gives them, and the JSON object
`why --format json` writes (`to_json_obj`, docs/output.md), with the small helpers on
bindings that building a tree needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from reasoner.proof.match import Env
from reasoner.engines.model import value_key
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import Span, Value, format_value

FactKey = tuple[str, tuple[Value, ...]]

# How proof nodes are kinds of evidence (docs/explanations.md).
INPUT = "input"            # a fact from the patient's fact file
RULESET_FACT = "ruleset"   # a fact stated in the rule set
DERIVED = "derived"        # concluded by a rule; children: one per body literal
COMPARISON = "comparison"  # a comparison, with its values
ABSENT = "absent"          # a negated literal, checked absent
AGGREGATE = "aggregate"    # an aggregate, with the facts it counted
CUT = "cut"                # deeper than --depth: not expanded
WHY_NOT = "why-not"        # a goal that does not hold; children: one per rule that could give it
RULE_FAILS = "rule-fails"  # one such rule, and the first literal that fails
MISSING = "missing"        # no fact matches (input, or derived beyond the depth)
FALSE = "false"            # a comparison that fails, with its values
PRESENT = "present"        # a negated literal whose fact is there (with its proof)
NO_RULE = "no-rule"        # nothing in the rule set concludes this
HOLDS = "holds"            # in a why-not: a derived condition that held (its proof: `why`)


@dataclass
class Node:
    """One step of a proof (or of a why-not explanation)."""

    kind: str
    text: str
    """The fact or literal, written in the rule language."""
    holds: bool = True
    pred: str | None = None
    args: tuple[Value, ...] | None = None
    rule_index: int | None = None
    bindings: dict[str, Value] = field(default_factory=dict)
    detail: str = ""
    """Values of a comparison or aggregate, or what failed and why."""
    origin: Span | None = None
    children: list["Node"] = field(default_factory=list)
    says: str | None = None
    """For a rule step: the rule's sentence, with the setting values of the run filled in."""
    id: str = ""

    def walk(self) -> Iterator["Node"]:
        yield self
        for child in self.children:
            yield from child.walk()


def number_nodes(root: Node, prefix: str = "n") -> Node:
    """Give every node a stable id from its path: n, n.1, n.1.2 ..."""
    root.id = prefix
    for i, child in enumerate(root.children, 1):
        number_nodes(child, f"{prefix}.{i}")
    return root


def fact_text(pred: str, args: tuple[Value, ...]) -> str:
    return f"{pred}({', '.join(format_value(a) for a in args)})"


def unshared(node: Node) -> Node:
    """A copy in which no node object appears twice (derivations share sub-proofs while
    they are enumerated; a tree whose node ids are paths must not)."""
    return replace(node, children=[unshared(c) for c in node.children], bindings=dict(node.bindings))


def env_key(env: Env) -> tuple:
    return tuple((k, value_key(v)) for k, v in sorted(env.items()))


def bindings_text(env: Env) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in sorted(visible(env).items()))


def visible(env: Env) -> Env:
    return {k: v for k, v in env.items() if not k.startswith(("_#", "#"))}


def to_json_obj(root: Node, rs: RuleSet) -> dict[str, Any]:
    """A proof as the JSON object `why --format json` writes and `reasoner verify` reads
    (docs/output.md): nodes numbered by path, each rule step with its id and digest."""
    number_nodes(root)

    def obj(node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {"id": node.id, "kind": node.kind, "text": node.text, "holds": node.holds}
        if node.pred is not None:
            out["predicate"] = node.pred
        if node.args is not None:
            out["args"] = list(node.args)
        if node.rule_index is not None:
            rule = rs.rules[node.rule_index]
            # source keys only: their full citations are listed once per document ("sources")
            out["rule"] = {"id": rs.rule_name(rule), "digest": rule.digest, "says": node.says,
                           "sources": list(rule.sources), "at": str(rule.span)}
        if node.bindings:
            out["bindings"] = node.bindings
        if node.detail:
            out["detail"] = node.detail
        if node.origin is not None:
            out["origin"] = str(node.origin)
        if node.children:
            out["children"] = [obj(c) for c in node.children]
        return out

    return obj(root)
