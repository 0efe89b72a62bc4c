"""Proofs as a Graphviz DOT graph: one node per step, an edge from each premise to what
it proves, each rule step labelled with its rule, sentence and sources."""
from __future__ import annotations

import textwrap
from typing import Iterator

from reasoner.proof.explain import (
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, HOLDS, INPUT, RULE_FAILS, RULESET_FACT, Node,
)
from reasoner.analysis.program import RuleSet


def to_dot(roots: list[Node], rs: RuleSet) -> str:
    lines = ["digraph proof {", '  rankdir=BT;', '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    styles = {
        DERIVED: 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"',
        INPUT: 'shape=note, style=filled, fillcolor="#e8f4d9"',
        RULESET_FACT: 'shape=note, style=filled, fillcolor="#f0f0f0"',
        COMPARISON: 'shape=ellipse, style=filled, fillcolor="#fff6d5"',
        ABSENT: 'shape=ellipse, style="dashed,filled", fillcolor="#ffffff"',
        AGGREGATE: 'shape=hexagon, style=filled, fillcolor="#efe1f5"',
        CUT: 'shape=box, style="rounded,dashed", color="#888888"',
        HOLDS: 'shape=box, style="rounded,filled,dashed", fillcolor="#dbe9f6"',
    }
    failing = 'shape=box, style="rounded,filled", fillcolor="#f8d7d4"'
    for r, root in enumerate(roots):
        for node, nid in _walk_ids(root, f"p{r}"):
            label = "\\n".join(_dot_escape(line) for line in _dot_lines(node, rs))
            style = styles.get(node.kind, failing) if node.holds else failing
            lines.append(f'  "{_dot_escape(nid)}" [label="{label}", {style}];')
            for i, _child in enumerate(node.children, 1):
                lines.append(f'  "{_dot_escape(f"{nid}.{i}")}" -> "{_dot_escape(nid)}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


_DOT_WIDTH = 40


def _dot_lines(node: Node, rs: RuleSet) -> list[str]:
    """A node's label, line by line: the fact; for a rule step the rule's id, its sentence
    wrapped to ~40 characters and its sources; for an input fact where it was read; else
    the step's values."""
    lines = [f"rule could give {node.text}, but fails" if node.kind == RULE_FAILS else node.text]
    if node.rule_index is not None:
        rule = rs.rules[node.rule_index]
        lines.append(f"by {rs.rule_name(rule)}")
        if node.says:
            lines += _wrap(f"“{node.says}”")
        if rule.sources:
            lines += _wrap(f"[{', '.join(rule.sources)}]")
        if node.detail:
            lines += _wrap(node.detail)
    elif node.kind == INPUT and node.origin is not None:
        lines.append(str(node.origin))
    elif node.detail:
        lines.append(node.detail)
    return lines


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), _DOT_WIDTH, break_long_words=False, break_on_hyphens=False) or [""]


def _dot_escape(text: str) -> str:
    """Text inside a DOT double-quoted label: backslashes and quotes escaped (so a `\\n`
    in a fact stays two characters), line ends as spaces."""
    return " ".join(text.replace("\\", "\\\\").replace('"', '\\"').splitlines())


def _walk_ids(root: Node, prefix: str) -> Iterator[tuple[Node, str]]:
    """Every node with its path id (`number_nodes`' ids, computed without writing them
    into nodes that a proof may share)."""
    stack = [(root, prefix)]
    while stack:
        node, nid = stack.pop()
        yield node, nid
        stack.extend(reversed([(c, f"{nid}.{i}") for i, c in enumerate(node.children, 1)]))
