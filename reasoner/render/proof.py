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

import html
import json
import re
import textwrap
from typing import Iterable, Iterator

from reasoner.proof.explain import (  # to_json_obj re-exported: the JSON format is the proof layer's
    to_json_obj,
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, FALSE, HOLDS, INPUT, MISSING, NO_RULE, PRESENT, RULE_FAILS,
    RULESET_FACT, WHY_NOT, Node,
)
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import format_value

_TAGS = {
    INPUT: "fact", RULESET_FACT: "rule-set fact", ABSENT: "checked absent", COMPARISON: "true",
    AGGREGATE: "aggregate", CUT: "not expanded", MISSING: "missing", FALSE: "fails", PRESENT: "present",
    NO_RULE: "no rule", WHY_NOT: "does not hold", HOLDS: "holds",
}
_SHARED_KINDS = (DERIVED, WHY_NOT)
"""Steps that can be printed once and referred back to: a fact with a proof (or a
why-not explanation) below it."""
_VALUE_KINDS = (COMPARISON, AGGREGATE, FALSE, DERIVED)
"""Steps whose `detail` is values (`C = 38.9 ≥ 38`), shown as code in Markdown and HTML."""


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


def _above(node: Node) -> str:
    return "proved above" if node.holds else "does not hold, explained above"


def _shareable(node: Node) -> bool:
    return node.kind in _SHARED_KINDS and bool(node.children)


# ----------------------------------------------------------------------------- shared state
class ProofPrinter:
    """The state of one output being printed: which sub-proofs it holds in full (with
    which id), which sources its rules named, how many proofs it numbered.

    `plan`: the proofs this output will print, in order. With it, only the steps that a
    later step refers back to show their id; without it every derived step printed in
    full shows its id (a later proof may refer to any of them). The k-th proof printed is
    numbered `n` when the plan holds one proof, `n<k>` otherwise (`n2.1.3`): ids are
    unique in the output.
    """

    def __init__(self, rs: RuleSet, plan: Iterable[Node] | None = None):
        self.rs = rs
        self._interned: dict[tuple, int] = {}
        self._memo: dict[int, tuple[Node, int]] = {}
        self._shown: dict[int, str] = {}        # subtree → the id of its full print, id shown
        self._printed_once: set[int] = set()    # printed in full without an id (not planned to recur)
        self._wanted: set[int] | None = None    # subtrees the plan refers back to; None: show every id
        self._candidates: set[str] | None = None  # facts the plan holds twice or more; None: any may recur
        self._sources: dict[str, None] = {}     # in order of first use
        self._contents: list[tuple[str, Node]] = []
        self._count = 0
        self._single = False
        if plan is not None:
            roots = list(plan)
            self._single = len(roots) == 1
            self._wanted = self._plan(roots)

    # -- which steps are the same sub-proof
    def _sig(self, node: Node) -> int:
        """A number per distinct subtree (hash-consed: equal numbers, equal subtrees),
        computed once per node: the memo holds the node, so its id is not reused."""
        known = self._memo.get(id(node))
        if known is not None:
            return known[1]
        key = (node.kind, node.text, node.holds, node.rule_index,
               tuple((k, v, type(v)) for k, v in node.bindings.items()), node.detail, node.origin,
               tuple([self._sig(c) for c in node.children]))
        sig = self._interned.setdefault(key, len(self._interned))
        self._memo[id(node)] = (node, sig)
        return sig

    def _plan(self, roots: list[Node]) -> set[int]:
        """The subtrees the plan's proofs, printed in order, refer back to. Only a fact that
        occurs twice can be shared, so only those steps are compared below by subtree."""
        counts: dict[str, int] = {}
        stack = list(roots)
        while stack:
            node = stack.pop()
            if _shareable(node):
                counts[node.text] = counts.get(node.text, 0) + 1
            stack.extend(node.children)
        self._candidates = {text for text, n in counts.items() if n > 1}
        seen: set[int] = set()
        wanted: set[int] = set()

        def visit(node: Node) -> None:
            sig = self._sig(node) if self._candidate(node) else None
            if sig is not None and sig in seen:
                wanted.add(sig)
                return
            for child in node.children:
                visit(child)
            if sig is not None:
                seen.add(sig)

        for root in roots:
            visit(root)
        return wanted

    def _candidate(self, node: Node) -> bool:
        return _shareable(node) and (self._candidates is None or node.text in self._candidates)

    def _open(self, node: Node) -> tuple[str | None, int | None, bool]:
        """(the id to refer back to, or None to print in full; the subtree; show its id)."""
        if not self._candidate(node):
            return None, None, False
        sig = self._sig(node)
        if sig in self._shown:
            return self._shown[sig], sig, False
        show = self._wanted is None or sig in self._wanted or sig in self._printed_once
        return None, sig, show

    def _close(self, sig: int | None, nid: str, show: bool, anchored: bool = False) -> None:
        if sig is None:
            return
        if show or anchored:
            self._shown[sig] = nid
        else:
            self._printed_once.add(sig)

    def _cite(self, node: Node) -> None:
        if node.rule_index is not None:
            for key in self.rs.rules[node.rule_index].sources:
                self._sources.setdefault(key, None)

    def _prefix(self, root: Node) -> str:
        self._count += 1
        nid = "n" if self._single and self._count == 1 else f"n{self._count}"
        self._contents.append((nid, root))
        return nid

    # -- references
    def references(self) -> list[tuple[str, str]]:
        """(source key, full citation) of every source named so far, in order of first use."""
        return self.references_of(self._sources)

    def references_of(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        return [(key, self.rs.sources[key].text if key in self.rs.sources else "(not declared in the rule set)")
                for key in keys]

    def references_text(self) -> str:
        refs = self.references()
        return "References\n" + "".join(f"  [{k}] {t}\n" for k, t in refs) if refs else ""

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
                lines.append(f"{lead}{branch}{node.text}  [{_above(node)}, {ref}]")
                return
            self._cite(node)
            lines.append(f"{lead}{branch}{_head_line(node)}" + (f"  [{nid}]" if show else ""))
            info = lead + child_lead + ("│ " if node.children else "  ")
            rule = _rule_line(node, self.rs)
            if rule:
                lines.append(info + rule)
            if node.bindings and node.kind in (DERIVED, RULE_FAILS):
                lines.append(f"{info}with {_bindings(node)}")
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
                lines.append(f"{pad}- {_code(node.text)} — {_above(node)}, [{ref}](#{_attr(ref)})")
                return
            self._cite(node)
            anchor = f' <a id="{_attr(nid)}"></a>({nid})' if show else ""
            rule = self.rs.rules[node.rule_index] if node.rule_index is not None else None
            if node.kind == RULE_FAILS:
                first = f"rule could give {_code(node.text)}, but fails{anchor}"
            elif node.kind == DERIVED:
                first = f"{_code(node.text)}{anchor}"
            else:
                tag = _TAGS.get(node.kind, node.kind)
                origin = f", {_code(str(node.origin))}" if node.origin is not None else ""
                first = f"{_code(node.text)} ({tag}{origin}){anchor}"
                if node.detail and node.kind != INPUT:
                    first += f": {_md_detail(node)}"
            more: list[str] = []
            if rule is not None:
                line = f"by **{_md(self.rs.rule_name(rule))}**"
                if rule.says:
                    line += f": {_md(rule.says)}"
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

    # -- html
    def html(self, root: Node) -> str:
        """One proof as a tree of `<details>` (a fragment: `html_page()` makes the document)."""
        out: list[str] = []

        def emit(node: Node, nid: str) -> None:
            ref, sig, show = self._open(node)
            classes = f"node k-{node.kind}" + ("" if node.holds else " fails")
            if ref is not None:
                out.append(f'<li class="{classes} ref" id="{_e(nid)}"><div class="line">'
                           f'<span class="kind">shared</span> <code class="fact">{_e(node.text)}</code> '
                           f'<a class="backref" href="#{_e(ref)}">{_above(node)}, {_e(ref)}</a></div></li>')
                return
            self._cite(node)
            head = self._html_head(node, nid, show)
            body = self._html_body(node)
            if node.children:
                out.append(f'<li class="{classes}" id="{_e(nid)}"><details open><summary>{head}</summary>{body}<ul>')
                for i, child in enumerate(node.children, 1):
                    emit(child, f"{nid}.{i}")
                out.append("</ul></details></li>")
            else:
                out.append(f'<li class="{classes}" id="{_e(nid)}"><div class="line">{head}</div>{body}</li>')
            self._close(sig, nid, show, anchored=True)

        nid = self._prefix(root)
        out.append('<section class="proof"><ul class="tree">')
        emit(root, nid)
        out.append("</ul></section>")
        return "\n".join(out) + "\n"

    def _html_head(self, node: Node, nid: str, show: bool) -> str:
        parts = [f'<span class="kind">{_e(_HTML_KINDS.get(node.kind, node.kind))}</span>']
        rule = self.rs.rules[node.rule_index] if node.rule_index is not None else None
        if node.kind == RULE_FAILS:
            parts.append(f'rule <b class="rule">{_e(self.rs.rule_name(rule)) if rule else "?"}</b> could give '
                         f'<code class="fact">{_e(node.text)}</code>')
        else:
            parts.append(f'<code class="fact">{_e(node.text)}</code>')
            if rule is not None:
                parts.append(f'<span class="by">by <b class="rule">{_e(self.rs.rule_name(rule))}</b></span>')
        if node.origin is not None:
            parts.append(f'<span class="origin" title="where the fact was read">{_e(str(node.origin))}</span>')
        if node.detail and not node.children and node.kind not in (INPUT, RULESET_FACT, DERIVED, RULE_FAILS):
            parts.append(_html_detail(node))
        if show:
            parts.append(f'<a class="nid" href="#{_e(nid)}" title="this step\'s id">{_e(nid)}</a>')
        return " ".join(parts)

    def _html_body(self, node: Node) -> str:
        parts = []
        rule = self.rs.rules[node.rule_index] if node.rule_index is not None else None
        if rule is not None and rule.says:
            parts.append(f'<div class="says">{_e(rule.says)}</div>')
        if rule is not None and rule.sources:
            cites = dict(self.references_of(rule.sources))
            links = ", ".join(f'<a href="#src-{_e(k)}" title="{_e(cites[k])}">{_e(k)}</a>' for k in rule.sources)
            parts.append(f'<div class="sources">sources: {links}</div>')
        if node.bindings and node.kind in (DERIVED, RULE_FAILS):
            values = ", ".join(f"<code>{_e(k)} = {_e(format_value(v))}</code>" for k, v in node.bindings.items())
            parts.append(f'<div class="bindings">with {values}</div>')
        if node.detail and (node.children or node.kind in (DERIVED, RULE_FAILS)) \
                and node.kind not in (INPUT, RULESET_FACT):
            parts.append(f'<div class="detail">{_html_detail(node)}</div>')
        return f'<div class="body">{"".join(parts)}</div>' if parts else ""

    def html_page(self, title: str, body: str) -> str:
        """The whole document around the fragments of `html()`: contents (several proofs),
        the proofs, and the references with their full citations."""
        contents = ""
        if len(self._contents) > 1:
            contents = ('<nav class="contents"><h2>Proofs</h2><ol>'
                        + "".join(f'<li><a href="#{_e(nid)}"><code>{_e(root.text)}</code></a></li>'
                                  for nid, root in self._contents) + "</ol></nav>\n")
        refs = self.references()
        references = ""
        if refs:
            references = ('<section id="references"><h2>References</h2><ol class="refs">\n'
                          + "".join(f'<li id="src-{_e(k)}"><b class="key">{_e(k)}</b> '
                                    f'<span class="cite">{_e(t)}</span></li>\n' for k, t in refs)
                          + "</ol></section>\n")
        return (_HTML_TOP.replace("{title}", _e(title))
                + contents + '<main id="proofs">\n' + body + "</main>\n" + references + _HTML_BOTTOM)


_HTML_KINDS = {**_TAGS, DERIVED: "proved", RULE_FAILS: "rule fails", FALSE: "false"}

_HTML_TOP = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
body{margin:0;color:#1f2328;background:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
header{padding:12px 20px;background:#f6f8fa;border-bottom:1px solid #d0d7de}
h1{margin:0 0 4px;font-size:19px;font-weight:600}
h2{font-size:15px;margin:18px 0 6px}
.note{margin:0;color:#59636e;font-size:12.5px}
.tools{margin-top:6px}
.tools button{font:inherit;font-size:12px;padding:1px 8px;margin-right:6px;border:1px solid #d0d7de;border-radius:4px;background:#fff;cursor:pointer}
nav.contents,main,#references{padding:0 20px}
main{padding-bottom:8px}
code,.origin,.nid{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
code.fact{font-weight:600}
.proof{margin:12px 0;padding:8px 10px;border:1px solid #d0d7de;border-radius:6px}
ul.tree,ul.tree ul{list-style:none;margin:0;padding:0}
ul.tree ul{margin-left:7px;padding-left:14px;border-left:1px solid #c9d1d9}
li.node{margin:3px 0}
summary{cursor:pointer;padding:1px 4px;border-radius:4px}
summary:hover{background:#f3f4f6}
.line{padding:1px 4px 1px 19px;border-radius:4px}
.body{margin:0 0 2px 19px;color:#333a42}
.body>div{margin:1px 0}
.says{font-style:italic}
.sources,.bindings,.detail{font-size:13px}
.kind{display:inline-block;min-width:4.5em;text-align:center;font-size:11px;border-radius:3px;padding:0 5px;margin-right:2px;background:#eaeef2;color:#24292f}
.k-derived>details>summary .kind{background:#dbe9f6}
.k-input .kind{background:#dff3d0}
.k-ruleset .kind{background:#ececec}
.k-comparison .kind{background:#fff3c4}
.k-aggregate>details>summary .kind,.k-aggregate .kind{background:#efe1f5}
.k-absent .kind{background:#fff;border:1px dashed #8c959f}
.k-cut .kind{background:#fff;border:1px dashed #8c959f;color:#59636e}
.k-holds .kind{background:#dbe9f6}
.by{color:#59636e}
.rule{color:#0b4f8a;font-weight:600}
.origin{color:#1a7f37}
.nid{font-size:11px;color:#8250df;text-decoration:none;border:1px solid #d8c6f5;border-radius:3px;padding:0 3px}
.ref .kind{background:#f1e9fd}
.backref{color:#8250df}
.fails>details>summary,.fails>.line{background:#fdecea;border-left:3px solid #cf222e}
.fails .kind{background:#cf222e;color:#fff}
li.fails{color:#82071e}
:target>details>summary,:target>.line{outline:2px solid #d4a72c;background:#fff8c5}
code.values,span.values{background:#f6f8fa;border:1px solid #e3e7eb;border-radius:3px;padding:0 4px;margin-left:4px}
nav.contents ol{margin:0;padding-left:22px;columns:3 22em;column-gap:24px}
nav.contents li{margin:1px 0}
ol.refs{padding-left:22px}
ol.refs li{margin:4px 0}
ol.refs .key{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
:target.key,li:target{background:#fff8c5}
@media print{.tools{display:none}}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="note">guideline-reasoner proof: every step names its rule, the rule's sentence and sources;
input facts name the file and line they were read from. A research tool, not a medical device.</p>
<div class="tools"><button type="button" data-open="1">unfold all</button><button type="button" data-open="0">fold all</button></div>
</header>
"""

_HTML_BOTTOM = """<script>
(function () {
  "use strict";
  function reveal(id) {
    var target = document.getElementById(id);
    if (!target) { return; }
    for (var el = target.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    if (link) { reveal(decodeURIComponent(link.getAttribute("href").slice(1))); }
    var button = event.target.closest ? event.target.closest("button[data-open]") : null;
    if (button) {
      var open = button.getAttribute("data-open") === "1";
      document.querySelectorAll("main details").forEach(function (d) { d.open = open; });
    }
  }, true);
  function fromHash() {
    if (location.hash.length > 1) {
      var id = decodeURIComponent(location.hash.slice(1));
      reveal(id);
      var target = document.getElementById(id);
      if (target) { target.scrollIntoView({block: "start"}); }
    }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
</script>
</body>
</html>
"""


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


# ----------------------------------------------------------------------------- json
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
        if rule.says:
            lines += _wrap(f"“{rule.says}”")
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
    return _code(node.detail) if node.kind in _VALUE_KINDS else _md(node.detail)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


# ----------------------------------------------------------------------------- html
def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _html_detail(node: Node) -> str:
    if node.kind in _VALUE_KINDS:
        return f'<code class="values">{_e(node.detail)}</code>'
    return f'<span class="values">{_e(node.detail)}</span>'


def to_html(roots: list[Node], rs: RuleSet, goal: str, printer: ProofPrinter | None = None) -> str:
    """One self-contained HTML page (inline CSS and a few lines of inline JavaScript, no
    resource from anywhere): each proof a tree of `<details>` that folds, every step with
    its rule, sentence, sources (linked to the references at the bottom), bindings and
    values, every input fact with the file:line it was read from; a shared sub-proof is
    printed once and linked to (`#n.1.2`); a why-not's failing steps in red."""
    printer = printer if printer is not None else ProofPrinter(rs, roots)
    if not roots:
        body = f"<p>No answers: nothing proves <code>{_e(goal)}</code>.</p>\n"
        return printer.html_page(f"Proof of {goal}", body)
    body = "".join(printer.html(root) for root in roots)
    title = f"Why not {goal}" if not all(r.holds for r in roots) else \
        f"Proof{'s' if len(roots) > 1 else ''} of {goal}"
    return printer.html_page(title, body)


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
