"""Proofs as one self-contained HTML page: `HtmlPrinter` prints each proof as a tree of
`<details>` that folds (`html`) and wraps the proofs in the document (`html_page`);
`to_html` makes the whole page: inline CSS and a few lines of inline JavaScript, no
resource from anywhere.
"""
from __future__ import annotations

from reasoner.proof.explain import DERIVED, FALSE, INPUT, RULE_FAILS, RULESET_FACT, Node
from reasoner.render.proof_state import TAGS, VALUE_KINDS, PrinterState, above
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import format_value


class HtmlPrinter(PrinterState):
    """A printer's HTML: proofs as `<details>` trees, and the page around them."""

    def html(self, root: Node) -> str:
        """One proof as a tree of `<details>` (a fragment: `html_page()` makes the document)."""
        out: list[str] = []

        def emit(node: Node, nid: str) -> None:
            ref, sig, show = self._open(node)
            classes = f"node k-{node.kind}" + ("" if node.holds else " fails")
            if ref is not None:
                out.append(f'<li class="{classes} ref" id="{_e(nid)}"><div class="line">'
                           f'<span class="kind">shared</span> <code class="fact">{_e(node.text)}</code> '
                           f'<a class="backref" href="#{_e(ref)}">{above(node)}, {_e(ref)}</a></div></li>')
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
        if rule is not None and node.says:
            parts.append(f'<div class="says">{_e(node.says)}</div>')
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


_HTML_KINDS = {**TAGS, DERIVED: "proved", RULE_FAILS: "rule fails", FALSE: "false"}

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


def _e(text: str) -> str:
    import html  # here: see render/proof.py's _attr
    return html.escape(text, quote=True)


def _html_detail(node: Node) -> str:
    if node.kind in VALUE_KINDS:
        return f'<code class="values">{_e(node.detail)}</code>'
    return f'<span class="values">{_e(node.detail)}</span>'


def to_html(roots: list[Node], rs: RuleSet, goal: str, printer: HtmlPrinter | None = None) -> str:
    """One self-contained HTML page (inline CSS and a few lines of inline JavaScript, no
    resource from anywhere): each proof a tree of `<details>` that folds, every step with
    its rule, sentence, sources (linked to the references at the bottom), bindings and
    values, every input fact with the file:line it was read from; a shared sub-proof is
    printed once and linked to (`#n.1.2`); a why-not's failing steps in red."""
    printer = printer if printer is not None else HtmlPrinter(rs, roots)
    if not roots:
        body = f"<p>No answers: nothing proves <code>{_e(goal)}</code>.</p>\n"
        return printer.html_page(f"Proof of {goal}", body)
    body = "".join(printer.html(root) for root in roots)
    title = f"Why not {goal}" if not all(r.holds for r in roots) else \
        f"Proof{'s' if len(roots) > 1 else ''} of {goal}"
    return printer.html_page(title, body)
