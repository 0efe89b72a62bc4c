"""Explanations that state nothing false: why-not over every rule form and every
candidate binding, whole alternative derivations, depth cuts, and integrity-constraint
violations reported and explained (issue 15)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner.cli import main
from reasoner.proof.explain import CUT, DERIVED, FALSE, INPUT, MISSING, PRESENT, RULE_FAILS, Explainer
from reasoner import evaluate, load_facts, load_rules

ROOT = Path(__file__).resolve().parent.parent

ARITHMETIC = """
.decl n(x: symbol, v: number) input "a number"
.decl double(x: symbol, v: number) output "twice it"
.decl half(x: symbol, v: number) output "half of ten less"
.decl capped(x: symbol, v: number) output "eight times, at most 800"
@id r.double
double(X, V * 2) :- n(X, V).
@id r.half
half(X, V) :- n(X, W), V = (W - 10) / 2.
@id r.capped
capped(X, min(8 * V, 800)) :- n(X, V).
"""

GRAPH = """
.decl edge(a: symbol, b: symbol) input "edge"
.decl start(a: symbol) input "start"
.decl blocked(a: symbol) input "blocked"
.decl path(a: symbol, b: symbol) output "path"
.decl reach(a: symbol) output "reach"
@id path.base
path(X, Y) :- edge(X, Y).
@id path.step
path(X, Z) :- path(X, Y), edge(Y, Z).
@id reach.start
reach(X) :- start(X).
@id reach.step
reach(Y) :- reach(X), edge(X, Y), !blocked(Y).
"""
# two diamonds in a row: a → {b, d} → c → {f, g} → e
GRAPH_FACTS = ("edge(a, b). edge(b, c). edge(a, d). edge(d, c). edge(c, f). edge(c, g). edge(f, e). "
               "edge(g, e). start(a). blocked(c). edge(x, y).")

CHAIN = """
.decl base(x: symbol) input "base"
.decl l1(x: symbol) output "l1"
.decl l2(x: symbol) internal "l2"
.decl l3(x: symbol) internal "l3"
.decl l4(x: symbol) internal "l4"
l1(X) :- l2(X).
l2(X) :- l3(X).
l3(X) :- l4(X).
l4(X) :- base(X).
"""

CONSTRAINED = """
.decl dose(p: id, mg: number) input "dose given"
.decl max_dose(mg: number) internal "the largest dose"
.decl ok(p: id) output "a dose within the limit"
max_dose(100).
ok(P) :- dose(P, M), max_dose(X), M <= X.
@id too_high
@says "No dose above the maximum."
:- dose(P, M), max_dose(X), M > X.
"""


def _explainer(rules_text: str, facts_text: str) -> Explainer:
    rules = load_rules(text=rules_text)
    return Explainer(rules, evaluate(rules, load_facts(rules, text=facts_text)))


def _run(tmp_path: Path, rules_text: str, facts_text: str, *args: str, seed: str | None = None):
    rules, facts = tmp_path / "r.dl", tmp_path / "f.facts"
    rules.write_text(rules_text)
    facts.write_text(facts_text)
    env = dict(os.environ, PYTHONHASHSEED=seed or "0")
    return subprocess.run([sys.executable, "-m", "reasoner", *args, str(facts), "--rules", str(rules)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


# ----------------------------------------------------------------------------- why-not: true statements
def test_why_not_on_head_arithmetic_shows_the_computed_value() -> None:
    node = _explainer(ARITHMETIC, "n(a, 3).").why_not("double", ("a", 7))
    (rule_node,) = node.children
    held, failure = rule_node.children
    assert rule_node.kind == RULE_FAILS and failure.kind == FALSE
    assert held.kind == INPUT and held.text == "n(a, 3)" and rule_node.bindings == {"V": 3}
    assert "V * 2 = 3 * 2 = 6, not 7" in failure.detail and "concludes double(a, 6)" in failure.detail


def test_why_not_keeps_parentheses_and_names_the_fact_of_each_value() -> None:
    node = _explainer(ARITHMETIC, "n(b, 72).").why_not("half", ("b", 30))
    failure = node.children[0].children[-1]
    assert failure.detail == "V = (72 - 10) / 2 = 31.0, not 30 (W from n(b, 72))"


def test_why_not_on_a_min_in_the_head() -> None:
    node = _explainer(ARITHMETIC, "n(c, 72). n(d, 150).").why_not("capped", ("c", 500))
    assert "min(8 * V, 800) = min(8 * 72, 800) = 576, not 500" in node.children[0].children[-1].detail
    node = _explainer(ARITHMETIC, "n(d, 150).").why_not("capped", ("d", 1200))
    assert "= 800, not 1200" in node.children[0].children[-1].detail


def test_why_not_of_the_crs_tocilizumab_dose_states_the_real_dose() -> None:
    result = CliRunner().invoke(main, ["why-not", "dose_mg(p01, tocilizumab, 500)",
                                       str(ROOT / "facts" / "p01_grade2_first_dose.facts")])
    assert result.exit_code == 0, result.output
    assert "Mg = min(8 * 72, 800) = 576, not 500" in result.output
    assert "weight_kg(p01, 72)" in result.output
    assert "= 500 is false" not in result.output


def test_why_not_never_crashes_on_any_crs_conclusion() -> None:
    """Every output predicate of the CRS rules, asked with a value it does not have."""
    rules = load_rules()
    facts = load_facts(rules, [ROOT / "facts" / "p01_grade2_first_dose.facts"])
    explainer = Explainer(rules, evaluate(rules, facts))
    asked = 0
    for pred, decl in rules.decls.items():
        if decl.role == "input":
            continue
        for row in sorted(explainer.model.tuples(pred), key=repr)[:2]:
            wrong = tuple(v + 1 if isinstance(v, (int, float)) else v for v in row)
            node = explainer.why_not(pred, wrong if wrong != row else row)
            assert node.walk() is not None
            asked += 1
    assert asked >= 10


# ----------------------------------------------------------------------------- why-not: every candidate
def test_why_not_considers_every_binding_most_informative_first() -> None:
    node = _explainer(GRAPH, GRAPH_FACTS).why_not("reach", ("c",))
    step = [c for c in node.children if c.kind == RULE_FAILS and "X" in c.bindings]
    assert all(c.detail.startswith("the goal sets Y to c") for c in step)
    assert [c.bindings["X"] for c in step] == ["b", "d", "a"]  # b, d reach c but c is blocked; a has no edge
    assert [c.children[-1].kind for c in step] == [PRESENT, PRESENT, MISSING]
    assert step[0].children[-1].detail == "blocked(c) holds"
    assert step[2].children[-1].detail.startswith("no edge(a, c) in the input")


def test_why_not_bytes_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    outputs = {_run(tmp_path, GRAPH, GRAPH_FACTS, "why-not", "reach(c)", seed=seed).stdout for seed in "0123"}
    assert len(outputs) == 1 and "blocked(c)" in outputs.pop()


def test_a_depth_cut_is_labelled_as_a_cut() -> None:
    explainer = _explainer(CHAIN, "base(y).")
    node = explainer.why_not("l1", ("x",), depth=2)
    cut = [n for n in node.walk() if n.kind == CUT]
    assert [n.text for n in cut] == ["l4(x)"] and not cut[0].holds
    assert "--depth 3" in cut[0].detail
    assert not any(n.kind == MISSING and n.text == "l4(x)" for n in node.walk())
    deep = explainer.why_not("l1", ("x",), depth=3)
    assert any(n.kind == MISSING and n.text == "base(x)" for n in deep.walk())


# ----------------------------------------------------------------------------- --all
@pytest.mark.parametrize("goal, count", [(("a", "c"), 2), (("a", "e"), 4), (("a", "b"), 1)])
def test_all_enumerates_distinct_whole_derivations(goal: tuple, count: int) -> None:
    explainer = _explainer(GRAPH, GRAPH_FACTS)
    proofs = explainer.proofs("path", goal, max_proofs=50)
    shapes = {json.dumps(_shape(p)) for p in proofs}
    assert len(proofs) == count and len(shapes) == count
    assert len(explainer.proofs("path", ("a", "e"), max_proofs=3)) == 3


def test_all_includes_the_input_proof_of_a_fact_that_is_also_derived() -> None:
    rules = """
.decl edge(a: symbol, b: symbol) input "an edge, given or implied by a link"
.decl link(a: symbol, b: symbol) input "link"
@id implied
edge(X, Y) :- link(X, Y).
"""
    proofs = _explainer(rules, "edge(a, b). link(a, b).").proofs("edge", ("a", "b"))
    assert [p.kind for p in proofs] == [INPUT, DERIVED]


def test_all_over_a_cycle_is_finite() -> None:
    rules = GRAPH
    explainer = _explainer(rules, "edge(a, b). edge(b, a). edge(b, c).")
    proofs = explainer.proofs("path", ("a", "a"), max_proofs=50)
    assert len(proofs) == 1  # a → b → a; going round again would use path(a, a) to prove itself


def _shape(node) -> list:
    return [node.kind, node.text, node.rule_index, sorted(node.bindings.items()), [_shape(c) for c in node.children]]


# ----------------------------------------------------------------------------- constraint violations
def test_query_reports_each_violation_once_and_exits_1(tmp_path: Path) -> None:
    result = _run(tmp_path, CONSTRAINED, "dose(p1, 50). dose(p2, 150). dose(p2, 160).", "query", "ok(P)")
    assert result.returncode == 1 and "p1" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines == ["r.dl:7:1: violation[too_high]: No dose above the maximum. (P = p2, M = 150, X = 100)",
                     "r.dl:7:1: violation[too_high]: No dose above the maximum. (P = p2, M = 160, X = 100)"] or \
        [line.split(": ", 1)[1] for line in lines] == [
            "violation[too_high]: No dose above the maximum. (P = p2, M = 150, X = 100)",
            "violation[too_high]: No dose above the maximum. (P = p2, M = 160, X = 100)"]
    clean = _run(tmp_path, CONSTRAINED, "dose(p1, 50).", "query", "ok(P)")
    assert clean.returncode == 0 and clean.stderr == ""


def test_why_explains_a_violation(tmp_path: Path) -> None:
    explainer = _explainer(CONSTRAINED, "dose(p1, 50). dose(p2, 150).")
    (index,) = [i for i, r in enumerate(explainer.rs.rules) if r.head is None]
    (proof,) = explainer.violations(index)
    assert proof.bindings == {"P": "p2", "M": 150, "X": 100}
    assert [c.text for c in proof.children] == ["dose(p2, 150)", "max_dose(100)", "M > X"]
    result = _run(tmp_path, CONSTRAINED, "dose(p2, 150).", "why", "too_high")
    assert result.returncode == 0 and "violation of too_high" in result.stdout
    assert "dose(p2, 150)" in result.stdout


def test_recommend_reports_a_violation_once_with_values_and_exits_1(tmp_path: Path) -> None:
    rules = tmp_path / "crs_strict.dl"
    rules.write_text(f'.include "{ROOT / "rules" / "crs" / "main.dl"}"\n'
                     '@id test.no_grade_two\n@says "For this test: no CRS grade 2."\n:- crs_grade(P, 2).\n')
    facts = str(ROOT / "facts" / "p01_grade2_first_dose.facts")
    result = CliRunner().invoke(main, ["recommend", facts, "--rules", str(rules)])
    assert result.exit_code == 1
    assert result.stderr.count("violation[test.no_grade_two]") == 1 and "(P = p01)" in result.stderr
    assert result.stdout.count("test.no_grade_two") == 1
    plain = CliRunner().invoke(main, ["recommend", facts])
    assert plain.exit_code == 0 and "violation" not in plain.stderr


# ----------------------------------------------------------------------------- streamed JSON with proofs
def test_streamed_json_report_is_the_document_json_would_write() -> None:
    from reasoner.render.recommend import to_json
    assert to_json([], "r", {"b": 2, "a": 1}) == json.dumps(
        {"rule_set": "r", "settings": {"a": 1, "b": 2}, "sources": {}, "patients": []}, ensure_ascii=False, indent=1) + "\n"
    result = CliRunner().invoke(main, ["recommend", str(ROOT / "facts"), "--format", "json", "--explain",
                                       "--chunk-size", "7"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for patient in doc["patients"]:  # each proof is one compact line; the rest is json.dumps(indent=1)
        for item in patient["recommendations"] + patient["conflicts"]:
            for each in item.get("options", [item]):
                each["proof"] = "P"
    plain = CliRunner().invoke(main, ["recommend", str(ROOT / "facts"), "--format", "json"])
    outline = json.loads(plain.stdout)
    for patient in outline["patients"]:
        for item in patient["recommendations"] + patient["conflicts"]:
            for each in item.get("options", [item]):
                each["proof"] = "P"
    assert doc == outline
    assert plain.stdout == json.dumps(json.loads(plain.stdout), ensure_ascii=False, indent=1) + "\n"
    doc = json.loads(result.stdout)
    options = [o for p in doc["patients"] for item in p["recommendations"] for o in item.get("options", [])]
    assert options and all(o["proof"]["kind"] == DERIVED for o in options)  # each option of a choice proved


def test_every_node_of_an_alternative_proof_is_its_own_object() -> None:
    explainer = _explainer(GRAPH, GRAPH_FACTS)
    for proof in explainer.proofs("path", ("a", "e"), max_proofs=50):
        nodes = list(proof.walk())
        assert len({id(n) for n in nodes}) == len(nodes)


def test_alternative_crs_proofs_share_no_node_objects() -> None:
    rules = load_rules()
    explainer = Explainer(rules, evaluate(rules, load_facts(rules, [ROOT / "facts" / "p01_grade2_first_dose.facts"])))
    for row in sorted(explainer.model.tuples("recommend")):
        for proof in explainer.proofs("recommend", row, max_proofs=3):
            nodes = list(proof.walk())
            assert len({id(n) for n in nodes}) == len(nodes), row


def test_an_example_patient_that_violates_a_constraint_fails_its_case(tmp_path: Path) -> None:
    (tmp_path / "r.dl").write_text(CONSTRAINED)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "high.facts").write_text("% expect: ok(p1)\ndose(p1, 50). dose(p2, 150).\n")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "r.dl"), "--cases", str(tmp_path / "tests")])
    assert result.exit_code == 1 and "violation[too_high]" in result.output and "1 failed" in result.output
