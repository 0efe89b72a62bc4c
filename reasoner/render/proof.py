"""Proof trees as text (for people), JSON (for programs), Graphviz DOT, Markdown and HTML.

Every derived step carries its rule's id, its plain-language sentence (`@says`) and its
sources, so a clinician can read the chain without the rule file open.

Text, Markdown and HTML print a sub-proof once. A later step with the same fact *and*
the same proof below it (compared node for node, so a proof cut by `--depth` is not the
same as a whole one) is one line naming the step printed earlier by its id, the path of
`number_nodes` (`crs_grade(p01, 2)  [proved above, n.1.1]`); the step it names carries
that id. The output ends with the full citation of every source its rules name, in the
order of first use. A `ProofPrinter` holds that state, so that several proofs printed
into one output (`reasoner recommend --explain`) share it:

    printer = ProofPrinter(rules, plan=proofs)     # the proofs, in the order they are printed
    texts = [to_text(p, rules, printer) for p in proofs]
    ending = printer.references_text()             # "References\\n  [ref1] ...\\n" or ""

One printer serves one output in one format; a back-reference only ever names a step
this printer has already printed in full, with its id shown.
"""
from __future__ import annotations

import json
import re

from reasoner.proof.explain import INPUT, RULE_FAILS, DERIVED, Node, to_json_obj
from reasoner.render.proof_html import HtmlPrinter, to_html
from reasoner.render.proof_state import TAGS, VALUE_KINDS, above, bindings_line, head_line, rule_line
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import format_value

__all__ = ["ProofPrinter", "render_proofs", "sources_cited", "to_dot", "to_html", "to_json_obj", "to_markdown",
           "to_text"]
"""`to_json_obj` is the proof layer's (the JSON format is what `reasoner verify` reads);
`to_dot` is render/proof_dot.py's; HTML is render/proof_html.py's."""


def to_dot(roots: list[Node], rs: RuleSet) -> str:
    """The proofs as one Graphviz DOT graph (render/proof_dot.py, imported here when first
    used: a text proof, `reasoner why`, need not load it)."""
    from reasoner.render.proof_dot import to_dot as dot
    return dot(roots, rs)


class ProofPrinter(HtmlPrinter):
    """One output being printed, in any format: text and Markdown here, HTML from
    `HtmlPrinter`, the shared state (which steps were printed, which sources cited)
    from `PrinterState` (render/proof_state.py).

    `plan`: the proofs this output will print, in order. With it, only the steps that a
    later step refers back to show their id; without it every derived step printed in
    full shows its id (a later proof may refer to any of them). The k-th proof printed is
    numbered `n` when the plan holds one proof, `n<k>` otherwise (`n2.1.3`): ids are
    unique in the output.
    """

    def references_markdown(self) -> str:
        refs = self.references()
        if not refs:
            return ""
        return "**References**\n\n" + "".join(f'- <a id="src-{_attr(k)}"></a>**{_md(k)}**: {_md(t)}\n'
                                                for k, t in refs)

    # -- text
    def text(self, root: Node) -> str:
        """One proof as an indented tree (no references: `references_text()` ends the output)."""
        lines: list[str] = []

        def emit(node: Node, nid: str, lead: str, branch: str, child_lead: str) -> None:
            ref, sig, show = self._open(node)
            if ref is not None:
                lines.append(f"{lead}{branch}{node.text}  [{above(node)}, {ref}]")
                return
            self._cite(node)
            lines.append(f"{lead}{branch}{head_line(node)}" + (f"  [{nid}]" if show else ""))
            info = lead + child_lead + ("│ " if node.children else "  ")
            rule = rule_line(node, self.rs)
            if rule:
                lines.append(info + rule)
            if node.bindings and node.kind in (DERIVED, RULE_FAILS):
                lines.append(f"{info}with {bindings_line(node)}")
            if node.detail and node.kind in (DERIVED, RULE_FAILS):
                lines.append(info + node.detail)
            for i, child in enumerate(node.children, 1):
                last = i == len(node.children)
                inner = lead + child_lead
                emit(child, f"{nid}.{i}", inner, "└─ " if last else "├─ ", "   " if last else "│  ")
            self._close(sig, nid, show)

        emit(root, self._prefix(root), "", "", "")
        return "\n".join(lines) + "\n"

    # -- markdown
    def markdown(self, root: Node) -> str:
        """One proof as a nested list (no references: `references_markdown()` ends the output)."""
        lines: list[str] = []

        def emit(node: Node, nid: str, level: int) -> None:
            pad = "  " * level
            ref, sig, show = self._open(node)
            if ref is not None:
                lines.append(f"{pad}- {_code(node.text)} — {above(node)}, [{ref}](#{_attr(ref)})")
                return
            self._cite(node)
            anchor = f' <a id="{_attr(nid)}"></a>({nid})' if show else ""
            rule = self.rs.rules[node.rule_index] if node.rule_index is not None else None
            if node.kind == RULE_FAILS:
                first = f"rule could give {_code(node.text)}, but fails{anchor}"
            elif node.kind == DERIVED:
                first = f"{_code(node.text)}{anchor}"
            else:
                tag = TAGS.get(node.kind, node.kind)
                origin = f", {_code(str(node.origin))}" if node.origin is not None else ""
                first = f"{_code(node.text)} ({tag}{origin}){anchor}"
                if node.detail and node.kind != INPUT:
                    first += f": {_md_detail(node)}"
            more: list[str] = []
            if rule is not None:
                line = f"by **{_md(self.rs.rule_name(rule))}**"
                if node.says:
                    line += f": {_md(node.says)}"
                if rule.sources:
                    line += f" _({', '.join(_md(s) for s in rule.sources)})_"
                more.append(line)
            if node.bindings and node.kind in (DERIVED, RULE_FAILS):
                more.append("with " + ", ".join(_code(f"{k} = {format_value(v)}") for k, v in node.bindings.items()))
            if node.detail and node.kind in (DERIVED, RULE_FAILS):
                more.append(_md_detail(node))
            item = [first] + more
            lines.append(f"{pad}- " + f"\\\n{pad}  ".join(item))
            for i, child in enumerate(node.children, 1):
                emit(child, f"{nid}.{i}", level + 1)
            self._close(sig, nid, show)

        emit(root, self._prefix(root), 0)
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- text
def to_text(root: Node, rs: RuleSet, printer: ProofPrinter | None = None) -> str:
    """One proof as text. Alone, it ends with its references; with a shared `printer`,
    sub-proofs the printer printed before are referred back to, and the caller ends the
    output with `printer.references_text()`."""
    if printer is not None:
        return printer.text(root)
    alone = ProofPrinter(rs, [root])
    out = alone.text(root)
    refs = alone.references_text()
    return out + ("\n" + refs if refs else "")


# ----------------------------------------------------------------------------- markdown
def to_markdown(root: Node, rs: RuleSet, printer: ProofPrinter | None = None) -> str:
    """One proof as a Markdown list, each step with its values; alone, it ends with its
    references (with a shared `printer`: `printer.references_markdown()`)."""
    if printer is not None:
        return printer.markdown(root)
    alone = ProofPrinter(rs, [root])
    out = alone.markdown(root)
    refs = alone.references_markdown()
    return out + ("\n" + refs if refs else "")


_MD_SPECIAL = frozenset("\\`*_[]<>&")


def _md(text: str) -> str:
    """Free text (a rule's sentence, a citation, a rule id) escaped for Markdown; an
    underscore inside a word (`cardiac_monitoring`) cannot start emphasis and stays."""
    text = " ".join(text.splitlines())
    out = []
    for i, c in enumerate(text):
        if c == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            out.append(c)
        else:
            out.append("\\" + c if c in _MD_SPECIAL else c)
    return "".join(out)


def _code(text: str) -> str:
    """A Markdown code span that holds any text, backticks included."""
    text = " ".join(text.splitlines())
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_detail(node: Node) -> str:
    return _code(node.detail) if node.kind in VALUE_KINDS else _md(node.detail)


def _attr(text: str) -> str:
    import html  # here: html.entities, which `import html` loads, is a large table text proofs never need
    return html.escape(text, quote=True)


def sources_cited(roots: list[Node], rs: RuleSet) -> dict[str, str]:
    """Source key → full citation, for every source a rule of these proofs cites, in order
    of first use."""
    out: dict[str, str] = {}
    for root in roots:
        for node in root.walk():
            if node.rule_index is not None:
                for key in rs.rules[node.rule_index].sources:
                    if key in rs.sources and key not in out:
                        out[key] = rs.sources[key].text
    return out


def render_proofs(roots: list[Node], rs: RuleSet, fmt: str, goal: str) -> str:
    if fmt == "json":
        doc = {"goal": goal, "proofs": [to_json_obj(r, rs) for r in roots], "sources": sources_cited(roots, rs)}
        return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    if fmt == "dot":
        return to_dot(roots, rs)
    if fmt == "html":
        return to_html(roots, rs, goal)
    if not roots:
        return f"{goal}: no answers\n"
    printer = ProofPrinter(rs, roots)
    if fmt == "markdown":
        parts = [printer.markdown(r) for r in roots]
        refs = printer.references_markdown()
    else:
        parts = [printer.text(r) for r in roots]
        refs = printer.references_text()
    return "\n".join(parts + ([refs] if refs else []))
