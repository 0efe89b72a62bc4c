"""What every proof printer shares (render/proof.py, render/proof_html.py): the tag of
each kind of step, a step's head and rule lines, and `PrinterState`, the state of one
output: which sub-proofs it printed in full (and under which id), which sources its
rules named, how many proofs it numbered.
"""
from __future__ import annotations

from typing import Iterable

from reasoner.proof.explain import (
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, FALSE, HOLDS, INPUT, MISSING, NO_RULE, PRESENT, RULE_FAILS,
    RULESET_FACT, WHY_NOT, Node,
)
from reasoner.analysis.program import RuleSet
from reasoner.language.syntax import format_value

TAGS = {
    INPUT: "fact", RULESET_FACT: "rule-set fact", ABSENT: "checked absent", COMPARISON: "true",
    AGGREGATE: "aggregate", CUT: "not expanded", MISSING: "missing", FALSE: "fails", PRESENT: "present",
    NO_RULE: "no rule", WHY_NOT: "does not hold", HOLDS: "holds",
}
SHARED_KINDS = (DERIVED, WHY_NOT)
"""Steps that can be printed once and referred back to: a fact with a proof (or a
why-not explanation) below it."""
VALUE_KINDS = (COMPARISON, AGGREGATE, FALSE, DERIVED)
"""Steps whose `detail` is values (`C = 38.9 ≥ 38`), shown as code in Markdown and HTML."""


def rule_line(node: Node, rs: RuleSet) -> str | None:
    if node.rule_index is None:
        return None
    rule = rs.rules[node.rule_index]
    sources = f" [{', '.join(rule.sources)}]" if rule.sources else ""
    says = f' "{node.says}"' if node.says else ""
    return f"by {rs.rule_name(rule)}{sources}{says}"


def bindings_line(node: Node) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in node.bindings.items())


def head_line(node: Node) -> str:
    tag = TAGS.get(node.kind)
    extra = ""
    if node.kind == INPUT and node.origin is not None:
        extra = f" ({node.origin})"
    if node.kind == DERIVED:
        return node.text
    if node.kind == RULE_FAILS:
        return f"rule could give {node.text}, but fails"
    detail = f": {node.detail}" if node.detail and node.kind not in (INPUT,) else ""
    return f"{node.text}  [{tag}{extra}]{detail}" if tag else node.text


def above(node: Node) -> str:
    return "proved above" if node.holds else "does not hold, explained above"


def shareable(node: Node) -> bool:
    return node.kind in SHARED_KINDS and bool(node.children)


class PrinterState:
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
            if shareable(node):
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
        return shareable(node) and (self._candidates is None or node.text in self._candidates)

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
