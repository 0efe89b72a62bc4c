"""Readable proofs: a shared sub-proof printed once and referred back to, references with
full citations, Markdown with values, DOT with each rule's sentence and sources, and the
HTML page's structure and escaping (its behaviour in a browser: test_proof_html.py)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.cli import main
from reasoner.proof.explain import DERIVED, INPUT, Explainer, Node
from reasoner.render.proof import ProofPrinter, render_proofs, to_dot, to_html, to_json_obj, to_markdown, to_text

ROOT = Path(__file__).resolve().parent.parent
P01 = ROOT / "facts" / "p01_grade2_first_dose.facts"

# Every line that refers back, and every line that shows an id, in text output.
REF = re.compile(r"  \[(?:proved above|does not hold, explained above), (n[0-9.]*)\]$")
LABEL = re.compile(r"  \[(n[0-9.]*)\]$")


@pytest.fixture(scope="module")
def crs():
    rules = load_rules(ROOT / "rules" / "crs")
    facts = load_facts(rules, [str(P01)])
    explainer = Explainer(rules, evaluate(rules, facts))
    model = explainer.model
    roots = [explainer.prove("recommend", row) for row in sorted(model.tuples("recommend"))]
    return rules, explainer, roots


def assert_back_references_resolve(text: str) -> int:
    """Every `[proved above, X]` names an X whose step was printed, with its id, on an earlier line."""
    shown: set[str] = set()
    refs = 0
    for line in text.splitlines():
        ref = REF.search(line)
        if ref:
            assert ref.group(1) in shown, f"{line!r} refers to {ref.group(1)}, not printed above"
            refs += 1
        label = LABEL.search(line)
        if label:
            assert label.group(1) not in shown, f"id {label.group(1)} shown twice"
            shown.add(label.group(1))
    return refs


def test_text_prints_a_shared_sub_proof_once(crs) -> None:
    rules, _explainer, roots = crs
    text = render_proofs(roots, rules, "text", "recommend(p01, A)")
    lines = text.splitlines()
    # the grading sub-proof: printed in full once (with its id), then one line per recommendation using it
    assert lines.count("│  ├─ crs_grade(p01, 2)  [n1.1.1]") == 1
    assert sum("crs_grade(p01, 2)  [proved above, n1.1.1]" in line for line in lines) >= 5
    assert sum("by grade.crs.fever" in line for line in lines) == 1
    assert assert_back_references_resolve(text) >= 8
    unshared = sum(len(ProofPrinter(rules, [r]).text(r).splitlines()) for r in roots)  # each proof alone
    assert len(lines) < unshared / 2
    assert text == render_proofs(roots, rules, "text", "recommend(p01, A)")  # deterministic


def test_one_proof_alone_uses_the_json_ids(crs) -> None:
    rules, explainer, _roots = crs
    proof = explainer.prove("recommend", ("p01", "supplemental_oxygen"))
    text = to_text(proof, rules)
    assert text.startswith("recommend(p01, supplemental_oxygen)\n")
    # patient(p01) is used twice inside the hypoxia grade: printed once, with the id JSON gives that node
    assert "├─ patient(p01)  [n.1.1.1]" in text and text.count("patient(p01)  [proved above, n.1.1.1]") == 1
    assert to_json_obj(proof, rules)["children"][0]["children"][0]["children"][0]["id"] == "n.1.1.1"
    assert to_json_obj(proof, rules)["children"][0]["children"][0]["children"][0]["text"] == "patient(p01)"
    assert assert_back_references_resolve(text) == 1


def test_a_shared_printer_carries_sub_proofs_across_separately_printed_proofs(crs) -> None:
    rules, _explainer, roots = crs
    for printer in (ProofPrinter(rules, plan=roots), ProofPrinter(rules)):  # planned, and not
        parts = [to_text(r, rules, printer) for r in roots]
        assert all("References" not in p for p in parts)  # the caller ends the output
        joined = "\n".join(parts)
        assert assert_back_references_resolve(joined) >= 8
        assert parts[1].count("crs_grade(p01, 2)  [proved above, n1.1.1]") == 1
        refs = printer.references_text()
        assert refs.startswith("References\n  [guideline] ")
    # without a plan every derived step printed in full shows its id (a later proof may name it)
    unplanned = ProofPrinter(rules)
    first = unplanned.text(roots[0])
    assert "recommend(p01, cardiac_monitoring)  [n1]" in first and "fever(p01)  [n1.1.1.1]" in first


def test_printing_in_another_order_than_planned_never_refers_to_an_unlabelled_step(crs) -> None:
    rules, _explainer, roots = crs
    printer = ProofPrinter(rules, plan=roots)
    joined = "\n".join(printer.text(r) for r in reversed(roots))
    assert_back_references_resolve(joined)


def test_same_fact_with_another_proof_is_not_shared(crs) -> None:
    rules, _explainer, roots = crs
    index = roots[0].rule_index
    leaf_a = Node(INPUT, "x(p1, 1)", pred="x", args=("p1", 1))
    leaf_b = Node(INPUT, "x(p1, 2)", pred="x", args=("p1", 2))
    first = Node(DERIVED, "y(p1)", rule_index=index, bindings={"P": "p1"}, children=[leaf_a])
    other = Node(DERIVED, "y(p1)", rule_index=index, bindings={"P": "p1"}, children=[leaf_b])
    same = Node(DERIVED, "y(p1)", rule_index=index, bindings={"P": "p1"}, children=[leaf_a])
    root = Node(DERIVED, "z(p1)", rule_index=index, children=[first, other, same])
    text = to_text(root, rules)
    assert text.count("x(p1, 1)  [fact]") == 1 and text.count("x(p1, 2)  [fact]") == 1
    assert "├─ y(p1)  [n.1]" in text and "├─ y(p1)\n" in text and "└─ y(p1)  [proved above, n.1]" in text


def test_references_list_every_source_once_with_its_full_citation_in_order_of_first_use(crs) -> None:
    rules, _explainer, roots = crs
    text = render_proofs(roots, rules, "text", "recommend(p01, A)")
    body, refs = text.split("\nReferences\n")
    listed = [line.split("]")[0].strip(" [") for line in refs.splitlines()]
    used: list[str] = []
    for root in roots:
        for node in root.walk():
            if node.rule_index is not None:
                used += [k for k in rules.rules[node.rule_index].sources if k not in used]
    assert listed == used
    for key in listed:
        assert f"  [{key}] {rules.sources[key].text}\n" in refs
    markdown = render_proofs(roots, rules, "markdown", "recommend(p01, A)")
    assert '- <a id="src-ref1"></a>**ref1**: ' in markdown and "**References**" in markdown


def test_markdown_shows_values_and_where_facts_come_from(crs) -> None:
    rules, explainer, roots = crs
    markdown = render_proofs(roots, rules, "markdown", "recommend(p01, A)")
    assert "with `P = p01`, `Hx = 2`, `Ht = 0`, `G = 2`" in markdown
    assert re.search(r"- `C >= 38` \(true\): `[^`]*38\.9[^`]*`\n", markdown)  # the values, as code
    assert re.search(r"\(aggregate\): `G = 2[^`]*`\n", markdown)
    assert re.search(r"- `weight_kg\(p01, 72\)` \(fact, `[^`]*p01_grade2_first_dose\.facts:6:1`\)", markdown)
    assert '- `crs_grade(p01, 2)` <a id="n1.1.1"></a>(n1.1.1)' in markdown
    assert "- `crs_grade(p01, 2)` — proved above, [n1.1.1](#n1.1.1)" in markdown
    alone = to_markdown(explainer.prove("fever", ("p01",)), rules)
    assert alone.endswith("\n") and "**References**" in alone


def test_dot_labels_carry_the_rule_sentence_wrapped_and_its_sources(crs) -> None:
    rules, explainer, _roots = crs
    dot = to_dot([explainer.prove("crs_grade", ("p01", 2))], rules)
    label = re.search(r'"p0" \[label="(.*?)", shape', dot).group(1)
    lines = label.split("\\n")
    assert lines[:2] == ["crs_grade(p01, 2)", "by grade.crs.fever"]
    assert lines[-1] == "[guideline, ref1, ref2, astct]"
    says = " ".join(lines[2:-1]).strip("“”")
    assert says == rules.rule_by_id("grade.crs.fever").says
    assert all(len(line) <= 41 for line in lines[2:-1])
    assert dot == to_dot([explainer.prove("crs_grade", ("p01", 2))], rules)


ESCAPES = r'''
.decl note(p: id, text: symbol) input "a note"
.decl seen(p: id) internal "seen"
.decl flagged(p: id, text: symbol) output "flagged"
.source s1 "Citation <one> & \"two\""
@id seen.note
@source s1
seen(P) :- note(P, _).
@id flag.note
@source s1
@says "A note <b>&amp; \"quoted\"</b> with `ticks` and *stars* flags."
flagged(P, T) :- note(P, T), seen(P), seen(P).
'''
NASTY = '<script>alert(1)</script> & \\"q\\"'


@pytest.fixture(scope="module")
def nasty():
    rules = load_rules(text=ESCAPES)
    facts = load_facts(rules, text=f'note(a, "{NASTY}").', name='w<"&>.facts')
    explainer = Explainer(rules, evaluate(rules, facts))
    return rules, [explainer.prove("flagged", row) for row in sorted(explainer.model.tuples("flagged"))]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_html_escapes_every_text_and_links_only_inside_the_page(nasty, crs) -> None:
    rules, roots = nasty
    page = to_html(roots, rules, "flagged(a, T)")
    assert "<script>alert" not in page and "<b>&amp;" not in page
    parsed = _Page()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert 'flagged(a, "<script>alert(1)</script> & \\"q\\"")' in text  # shown as written, after unescaping
    assert "Citation <one> & \"two\"" in text and 'w<"&>.facts:1:1' in text
    assert parsed.tags.count("script") == 1  # the page's own
    assert not parsed.srcs
    for pg in (parsed, _Page()):
        if pg is not parsed:
            crs_rules, _explainer, crs_roots = crs
            pg.feed(to_html(crs_roots, crs_rules, "recommend(p01, A)"))
        assert len(pg.ids) == len(set(pg.ids))
        for href in pg.hrefs:
            assert href == "data:," or (href.startswith("#") and href[1:] in pg.ids), href


def test_html_is_deterministic_and_styles_why_not_steps(crs) -> None:
    rules, explainer, roots = crs
    assert to_html(roots, rules, "g") == to_html(roots, rules, "g")
    why_not = explainer.why_not("recommend", ("p01", "anakinra"))
    page = render_proofs([why_not], rules, "html", "recommend(p01, anakinra)")
    assert "<title>Why not recommend(p01, anakinra)</title>" in page
    assert '<li class="node k-why-not fails" id="n">' in page and 'class="node k-rule-fails fails"' in page


def test_cli_html_for_why_and_why_not() -> None:
    why = CliRunner().invoke(main, ["why", "recommend(p01, A)", str(P01), "--format", "html"])
    assert why.exit_code == 0 and why.output.startswith("<!DOCTYPE html>")
    assert "crs_grade(p01, 2)</code> <a class=\"backref\" href=\"#n1.1.1\">proved above, n1.1.1</a>" in why.output
    why_not = CliRunner().invoke(main, ["why-not", "recommend(p01, anakinra)", str(P01), "--format", "html"])
    assert why_not.exit_code == 0 and "does not hold" in why_not.output
    none = CliRunner().invoke(main, ["why", "recommend(p01, anakinra)", str(P01), "--format", "html"])
    assert none.exit_code == 0 and "No answers" in none.output
    # A constant outside the argument's declared type is a mistake in the goal, not an empty answer.
    unknown = CliRunner().invoke(main, ["why", "recommend(p01, nothing_at_all)", str(P01), "--format", "html"])
    assert unknown.exit_code == 2 and "error[E006]" in unknown.output


def test_why_not_prints_a_failing_sub_explanation_once() -> None:
    rules = load_rules(text="""
.decl temp(p: id, c: number) input "temperature"
.decl seen(p: id) input "seen"
.decl fever(p: id) internal "fever"
.decl alarm(p: id) output "alarm"
fever(P) :- temp(P, C), C >= 38.
alarm(P) :- seen(P), fever(P).
alarm(P) :- fever(P), seen(P).
""")
    explainer = Explainer(rules, evaluate(rules, load_facts(rules, text="temp(a, 37.1). seen(a).")))
    why_not = explainer.why_not("alarm", ("a",))
    text = render_proofs([why_not], rules, "text", "alarm(a)")
    assert "fever(a)  [does not hold]  [n.1.2]" in text
    assert "fever(a)  [does not hold, explained above, n.1.2]" in text
    assert text.count("C >= 38  [fails]") == 1 and assert_back_references_resolve(text) == 1
    page = render_proofs([why_not], rules, "html", "alarm(a)")
    assert '<a class="backref" href="#n.1.2">does not hold, explained above, n.1.2</a>' in page
