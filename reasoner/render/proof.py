"""Proof trees as text (for people), JSON (for programs), Graphviz DOT and Markdown.

Every derived step carries its rule's id, its plain-language sentence (`@says`) and its
sources, so a clinician can read the chain without the rule file open.
"""
from __future__ import annotations

import json
from typing import Any

from ..explain import (
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, FALSE, INPUT, MISSING, NO_RULE, PRESENT, RULE_FAILS, RULESET_FACT,
    WHY_NOT, Node, number_nodes,
)
from ..program import RuleSet
from ..syntax import format_value

_TAGS = {
    INPUT: "fact", RULESET_FACT: "rule-set fact", ABSENT: "checked absent", COMPARISON: "true",
    AGGREGATE: "aggregate", CUT: "not expanded", MISSING: "missing", FALSE: "fails", PRESENT: "present",
    NO_RULE: "no rule", WHY_NOT: "does not hold",
}


def _rule_line(node: Node, rs: RuleSet) -> str | None:
    if node.rule_index is None:
        return None
    rule = rs.rules[node.rule_index]
    sources = f" [{', '.join(rule.sources)}]" if rule.sources else ""
    says = f' "{rule.says}"' if rule.says else ""
    return f"by {rs.rule_name(rule)}{sources}{says}"


def _bindings(node: Node) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in node.bindings.items())


def _head_line(node: Node) -> str:
    tag = _TAGS.get(node.kind)
    extra = ""
    if node.kind == INPUT and node.origin is not None:
        extra = f" ({node.origin})"
    if node.kind == DERIVED:
        return node.text
    if node.kind == RULE_FAILS:
        return f"rule could give {node.text}, but fails"
    detail = f": {node.detail}" if node.detail and node.kind not in (INPUT,) else ""
    return f"{node.text}  [{tag}{extra}]{detail}" if tag else node.text


# ----------------------------------------------------------------------------- text
def to_text(root: Node, rs: RuleSet) -> str:
    lines: list[str] = []

    def emit(node: Node, lead: str, branch: str, child_lead: str) -> None:
        lines.append(f"{lead}{branch}{_head_line(node)}")
        info_lead = lead + child_lead
        rule = _rule_line(node, rs)
        if rule:
            lines.append(f"{info_lead}{'│ ' if node.children else '  '}{rule}")
        if node.bindings and node.kind in (DERIVED, RULE_FAILS):
            lines.append(f"{info_lead}{'│ ' if node.children else '  '}with {_bindings(node)}")
        if node.kind == RULE_FAILS and node.detail:
            lines.append(f"{info_lead}{'│ ' if node.children else '  '}{node.detail}")
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            emit(child, info_lead, "└─ " if last else "├─ ", "   " if last else "│  ")

    emit(root, "", "", "")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- json
def to_json_obj(root: Node, rs: RuleSet) -> dict[str, Any]:
    number_nodes(root)

    def obj(node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {"id": node.id, "kind": node.kind, "text": node.text, "holds": node.holds}
        if node.pred is not None:
            out["predicate"] = node.pred
        if node.args is not None:
            out["args"] = list(node.args)
        if node.rule_index is not None:
            rule = rs.rules[node.rule_index]
            out["rule"] = {"id": rs.rule_name(rule), "digest": rule.digest, "says": rule.says,
                           "sources": list(rule.sources),
                           "source_texts": [rs.sources[s].text for s in rule.sources if s in rs.sources],
                           "at": str(rule.span)}
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


# ----------------------------------------------------------------------------- dot
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
    }
    failing = 'shape=box, style="rounded,filled", fillcolor="#f8d7d4"'
    for r, root in enumerate(roots):
        number_nodes(root, f"p{r}")
        for node in root.walk():
            label = _dot_escape(node.text)
            if node.kind == DERIVED and node.rule_index is not None:
                label += "\\n" + _dot_escape(rs.rule_name(rs.rules[node.rule_index]))
            elif node.kind == INPUT and node.origin is not None:
                label += "\\n" + _dot_escape(str(node.origin))
            elif node.detail:
                label += "\\n" + _dot_escape(node.detail)
            style = styles.get(node.kind, failing) if node.holds else failing
            lines.append(f'  "{node.id}" [label="{label}", {style}];')
            for child in node.children:
                lines.append(f'  "{child.id}" -> "{node.id}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# ----------------------------------------------------------------------------- markdown
def to_markdown(root: Node, rs: RuleSet) -> str:
    lines: list[str] = []

    def emit(node: Node, level: int) -> None:
        pad = "  " * level
        text = f"`{node.text}`"
        tag = _TAGS.get(node.kind)
        if node.kind == DERIVED:
            rule = rs.rules[node.rule_index] if node.rule_index is not None else None
            line = f"{pad}- {text}"
            if rule is not None:
                line += f" — **{rs.rule_name(rule)}**"
                if rule.says:
                    line += f": {rule.says}"
                if rule.sources:
                    line += f" _({', '.join(rule.sources)})_"
        elif node.kind == RULE_FAILS:
            rule = rs.rules[node.rule_index] if node.rule_index is not None else None
            line = f"{pad}- rule **{rs.rule_name(rule) if rule else '?'}** could give {text} but fails"
            if node.detail:
                line += f": {node.detail}"
        else:
            line = f"{pad}- {text} ({tag}" + (f", {node.origin}" if node.origin else "") + ")"
            if node.detail and node.kind != INPUT:
                line += f": {node.detail}"
        lines.append(line)
        for child in node.children:
            emit(child, level + 1)

    emit(root, 0)
    return "\n".join(lines) + "\n"


def render_proofs(roots: list[Node], rs: RuleSet, fmt: str, goal: str) -> str:
    if fmt == "json":
        doc = {"goal": goal, "proofs": [to_json_obj(r, rs) for r in roots]}
        return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    if fmt == "dot":
        return to_dot(roots, rs)
    if not roots:
        return f"{goal}: no answers\n"
    render = to_markdown if fmt == "markdown" else to_text
    sep = "\n" if fmt == "markdown" else "\n"
    return sep.join(render(r, rs) for r in roots)
