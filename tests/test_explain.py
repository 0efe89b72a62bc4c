"""Proofs (why), failure explanations (why-not), and the independent proof checker."""
from __future__ import annotations

import copy
import json

import pytest

from reasoner import evaluate, load_facts, load_rules
from reasoner.proof.explain import ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, FALSE, INPUT, MISSING, PRESENT, Explainer
from reasoner.render.proof import render_proofs, to_dot, to_json_obj, to_text
from reasoner.proof.verify import check_proof

PROGRAM = """
.type drug = tocilizumab | siltuximab
.decl temp(p: id, c: number[30, 45] "C") input "temperature"
.decl weight(p: id, kg: number[1, 400] "kg") input "weight"
.decl allergy(p: id, d: drug) input "allergy"
.decl given(p: id, d: drug, mg: number, h: number) input "doses"
.decl patient(p: id) internal "known patient"
.decl fever(p: id) internal "fever"
.decl doses(p: id, n: number) internal "doses so far"
.decl indicated(p: id, d: drug) internal "indicated"
.decl contraindicated(p: id, d: drug, why: symbol) internal "contraindicated"
.decl recommend(p: id, d: drug) output "recommended"
.decl dose(p: id, d: drug, mg: number) output "dose"
.source g "The guideline"
patient(P) :- weight(P, _).
@id fever.temp
@source g
@says "A temperature of 38.0 C or more is fever."
fever(P) :- temp(P, T), T >= 38.0.
doses(P, N) :- patient(P), N = count : { given(P, tocilizumab, _, _) }.
indicated(P, tocilizumab) :- fever(P), doses(P, N), N < 4.
contraindicated(P, D, allergy) :- allergy(P, D).
@id recommend
recommend(P, D) :- indicated(P, D), !contraindicated(P, D, _).
dose(P, tocilizumab, min(8 * W, 800)) :- recommend(P, tocilizumab), weight(P, W).
"""
FACTS = """
temp(a, 38.6). weight(a, 72). given(a, tocilizumab, 576, 10).
temp(b, 39.1). weight(b, 90). allergy(b, tocilizumab).
temp(c, 37.9). weight(c, 60).
"""


@pytest.fixture(scope="module")
def world():
    rules = load_rules(text=PROGRAM)
    facts = load_facts(rules, text=FACTS, name="ward.facts")
    model = evaluate(rules, facts)
    return rules, facts, model, Explainer(rules, model)


def test_every_answer_has_a_proof_that_checks(world) -> None:
    rules, facts, model, explainer = world
    checked = 0
    for pred in ("recommend", "dose", "contraindicated", "indicated", "doses", "fever", "patient"):
        for row in model.tuples(pred):
            for proof in explainer.proofs(pred, row, max_proofs=5):
                assert check_proof(proof, rules, facts, model) == [], to_text(proof, rules)
                checked += 1
    assert checked >= 12


def test_proof_shape_for_a_recommendation(world) -> None:
    rules, _facts, _model, explainer = world
    proof = explainer.prove("dose", ("a", "tocilizumab", 576))
    assert proof.kind == DERIVED
    recommend = proof.children[0]
    assert recommend.text == "recommend(a, tocilizumab)"
    assert rules.rule_name(rules.rules[recommend.rule_index]) == "recommend"
    indicated, absent = recommend.children
    assert absent.kind == ABSENT and absent.text == "!contraindicated(a, tocilizumab, _)"
    fever, doses, comparison = indicated.children
    assert fever.children[0].kind == INPUT and fever.children[0].origin.line == 2
    assert fever.children[1].detail == "T = 38.6 ≥ 38.0"
    assert comparison.kind == COMPARISON and comparison.detail == "N = 1 < 4"
    aggregate = doses.children[1]
    assert aggregate.kind == AGGREGATE and "N = 1 (count over 1 row)" in aggregate.detail
    assert [c.text for c in aggregate.children] == ["given(a, tocilizumab, 576, 10)"]
    text = to_text(proof, rules)
    assert 'by fever.temp [g] "A temperature of 38.0 C or more is fever."' in text
    assert "given(a, tocilizumab, 576, 10)  [fact (ward.facts:2:31)]" in text


def test_tampered_proofs_do_not_check(world) -> None:
    rules, facts, model, explainer = world
    proof = explainer.prove("dose", ("a", "tocilizumab", 576))

    wrong_leaf = copy.deepcopy(proof)
    weight = wrong_leaf.children[1]
    weight.args = ("a", 80)
    assert any("premise" in p for p in check_proof(wrong_leaf, rules, facts, model))

    wrong_value = copy.deepcopy(proof)
    wrong_value.args = ("a", "tocilizumab", 640)
    assert any("concludes" in p for p in check_proof(wrong_value, rules, facts, model))

    false_comparison = copy.deepcopy(proof)
    indicated = false_comparison.children[0].children[0]
    indicated.bindings["N"] = 5
    assert check_proof(false_comparison, rules, facts, model)

    dropped = copy.deepcopy(proof)
    dropped.children.pop()
    assert any("premises" in p for p in check_proof(dropped, rules, facts, model))

    invented = copy.deepcopy(proof)
    fever = invented.children[0].children[0].children[0]
    fever.kind, fever.children = INPUT, []  # claim the derived fever(a) was an input fact
    assert any("input has no such fact" in p for p in check_proof(invented, rules, facts, model))

    bad_count = copy.deepcopy(explainer.prove("doses", ("a", 1)))
    bad_count.args = ("a", 2)
    bad_count.bindings["N"] = 2
    assert any("recounted count is 1" in p for p in check_proof(bad_count, rules, facts, model))


def test_depth_cut(world) -> None:
    rules, _facts, _model, explainer = world
    proof = explainer.prove("dose", ("a", "tocilizumab", 576), depth=2)
    kinds = {n.kind for n in proof.walk()}
    assert CUT in kinds and INPUT in kinds


def test_why_not_names_the_failing_comparison_with_its_values(world) -> None:
    rules, _facts, _model, explainer = world
    node = explainer.why_not("fever", ("c",))
    assert not node.holds
    (rule_node,) = node.children
    failure = rule_node.children[-1]
    assert failure.kind == FALSE and failure.detail.startswith("T = 37.9; 37.9 ≥ 38.0 is false")


def test_why_not_shows_the_present_contraindication_with_its_proof(world) -> None:
    rules, _facts, _model, explainer = world
    node = explainer.why_not("recommend", ("b", "tocilizumab"))
    (rule_node,) = node.children
    failure = rule_node.children[-1]
    assert [c.text for c in rule_node.children[:-1]] == ["indicated(b, tocilizumab)"]
    assert failure.kind == PRESENT
    assert failure.detail == "contraindicated(b, tocilizumab, allergy) holds"
    assert failure.children[0].children[0].text == "allergy(b, tocilizumab)"


def test_why_not_descends_into_derived_literals_and_missing_inputs(world) -> None:
    rules, _facts, _model, explainer = world
    node = explainer.why_not("dose", ("c", "tocilizumab", 480), depth=4)
    texts = [n.text for n in node.walk()]
    assert "recommend(c, tocilizumab)" in texts and "indicated(c, tocilizumab)" in texts
    assert any(n.kind == FALSE and "37.9" in n.detail for n in node.walk())
    missing = explainer.why_not("temp", ("z", 38.0))
    assert missing.kind == MISSING and "no temp fact at all for z" in missing.detail


def test_why_not_of_a_goal_that_holds_is_its_proof(world) -> None:
    rules, facts, model, explainer = world
    node = explainer.why_not("recommend", ("a", "tocilizumab"))
    assert node.holds and node.kind == DERIVED
    assert check_proof(node, rules, facts, model) == []


def test_json_and_dot_are_stable(world) -> None:
    rules, _facts, _model, explainer = world
    proof = explainer.prove("recommend", ("a", "tocilizumab"))
    doc = to_json_obj(proof, rules)
    assert doc["id"] == "n" and doc["children"][0]["id"] == "n.1"
    assert doc["rule"]["id"] == "recommend" and doc["bindings"] == {"P": "a", "D": "tocilizumab"}
    again = render_proofs([explainer.prove("recommend", ("a", "tocilizumab"))], rules, "json", "g")
    assert again == render_proofs([explainer.prove("recommend", ("a", "tocilizumab"))], rules, "json", "g")
    json.loads(again)
    dot = to_dot([proof], rules)
    assert dot.startswith("digraph proof {") and '"p0.1" -> "p0"' in dot


RECURSIVE = """
.decl edge(a: symbol, b: symbol) input "edge"
.decl reach(a: symbol, b: symbol) output "path"
reach(X, Y) :- edge(X, Y).
reach(X, Y) :- edge(X, Z), reach(Z, Y).
reach(X, Y) :- reach(X, Z), reach(Z, Y).
"""


def test_recursive_proofs_check_and_are_minimal() -> None:
    rules = load_rules(text=RECURSIVE)
    facts = load_facts(rules, text="edge(a, b). edge(b, c). edge(c, a). edge(a, c).")
    model = evaluate(rules, facts)
    explainer = Explainer(rules, model)
    for row in model.tuples("reach"):
        for proof in explainer.proofs("reach", row, max_proofs=3):
            assert check_proof(proof, rules, facts, model) == []
    shortest = explainer.prove("reach", ("a", "c"))
    assert [c.kind for c in shortest.children] == [INPUT]  # the direct edge, not a → b → c

    def height(node) -> int:
        return 1 + max((height(c) for c in node.children), default=0)

    assert height(explainer.prove("reach", ("b", "b"))) == 4  # b → c → a → b


def test_every_answer_of_every_example_patient_has_a_proof_that_checks() -> None:
    """The independent checker over every derived answer of every example patient."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    rules = load_rules(root / "rules" / "crs")
    outputs = [p for p, d in rules.decls.items() if d.role == "output"]
    checked = 0
    for path in sorted((root / "facts").glob("p*.facts")):
        facts = load_facts(rules, [path])
        model = evaluate(rules, facts)
        explainer = Explainer(rules, model)
        for pred in outputs:
            for row in model.tuples(pred):
                proof = explainer.prove(pred, row)
                assert check_proof(proof, rules, facts, model) == [], (path.name, pred, row)
                checked += 1
    assert checked > 400  # 411 answers over the 16 example patients
