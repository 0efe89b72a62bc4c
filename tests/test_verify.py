"""The reference evaluator (reasoner.proof.reference) and the proof checker built on it
(reasoner.proof.verify, `reasoner verify`): genuine proofs verify; forged ones do not, each
with the node that fails and why; a cut is unchecked, never valid."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.proof import reference
from reasoner.cli import main
from reasoner.proof.explain import Explainer
from reasoner.render.proof import to_json_obj
from reasoner.proof.verify import FAILED, UNCHECKED, Verifier, check_proof, find_proofs

ROOT = Path(__file__).resolve().parent.parent
FACTS_DIR = ROOT / "facts"

PROGRAM = """
.type drug = tocilizumab | siltuximab
.decl temp(p: id, c: number[30, 45] "C") input "temperature"
.decl weight(p: id, kg: number[1, 400] "kg") input "weight"
.decl allergy(p: id, d: drug) input "allergy"
.decl given(p: id, d: drug, mg: number, h: number) input "doses"
.decl patient(p: id) internal "known patient"
.decl fever(p: id) internal "fever"
.decl doses(p: id, n: number) internal "doses so far"
.decl last_dose(p: id, h: number) internal "hours since the latest dose"
.decl indicated(p: id, d: drug) internal "indicated"
.decl contraindicated(p: id, d: drug, why: symbol) internal "contraindicated"
.decl recommend(p: id, d: drug) output "recommended"
.decl dose(p: id, d: drug, mg: number) output "dose"
.setting max_mg = 800 "dose cap"
patient(P) :- weight(P, _).
@id fever.temp
fever(P) :- temp(P, T), T >= 38.0.
@id doses
doses(P, N) :- patient(P), N = count : { given(P, tocilizumab, _, _) }.
@id last_dose
last_dose(P, H) :- patient(P), H = min X : { given(P, _, _, X) }.
@id indicated
indicated(P, tocilizumab) :- fever(P), doses(P, N), N < 4.
@id contraindicated
contraindicated(P, D, allergy) :- allergy(P, D).
@id recommend
recommend(P, D) :- indicated(P, D), !contraindicated(P, D, _).
@id dose
dose(P, tocilizumab, min(8 * W, $max_mg)) :- recommend(P, tocilizumab), weight(P, W).
"""
FACTS = """
temp(a, 38.6). weight(a, 72). given(a, tocilizumab, 576, 10).
temp(b, 39.1). weight(b, 90). allergy(b, tocilizumab).
temp(c, 37.9). weight(c, 60).
temp(d, 38). weight(d, 110.0). given(d, tocilizumab, 800, 30). given(d, tocilizumab, 800, 20).
given(d, tocilizumab, 800, 5).
"""


@pytest.fixture(scope="module")
def world():
    rules = load_rules(text=PROGRAM)
    facts = load_facts(rules, text=FACTS, name="ward.facts")
    model = evaluate(rules, facts)
    return rules, facts, Explainer(rules, model), Verifier(rules, facts)


def proof_json(world, pred: str, args: tuple, depth: int = 50) -> dict:
    rules, _facts, explainer, _v = world
    return to_json_obj(explainer.prove(pred, args, depth=depth), rules)


def problems(world, proof: dict) -> list[tuple[str, str, str]]:
    return [(p.node, p.status, p.why) for p in world[3].check(proof).problems]


def node(proof: dict, path: str) -> dict:
    """The node at a path id such as n.1.2."""
    for step in path.split(".")[1:]:
        proof = proof["children"][int(step) - 1]
    return proof


# ----------------------------------------------------------------------------- the reference evaluator
def test_reference_meaning_of_the_language() -> None:
    rules = load_rules(text=PROGRAM + """
.decl v(p: id, k: symbol, x: number) output "values"
v(P, half, W / 2) :- weight(P, W).
v(P, inv, 1 / (W - 60)) :- weight(P, W).
v(P, ne, 1) :- weight(P, W), 1 / (W - 60) != 3.
v(P, minimum, X) :- weight(P, W), X = min(5, 1 / (W - 60)).
v(P, eq, 1) :- weight(P, W), W = 110.
v(P, total, S) :- patient(P), S = sum M : { given(P, _, M, _) }.
v(P, fsum, S) :- patient(P), S = sum X : { given(P, _, _, H), X = H / 10 }.
:- weight(P, W), W > 100.
""")
    facts = load_facts(rules, text=FACTS)
    ref = reference.evaluate(rules, facts)
    assert ref.facts["doses"] == {("a", 1), ("b", 0), ("c", 0), ("d", 3)}  # count of nothing is 0
    assert ref.facts["last_dose"] == {("a", 10), ("d", 5)}  # min of nothing: no row
    assert ref.facts["dose"] == {("a", "tocilizumab", 576), ("d", "tocilizumab", 800)}  # min(8 * 110.0, $max_mg)
    v = ref.facts["v"]
    assert ("d", "half", 55) in v and ("d", "eq", 1) in v  # 110.0 = 110
    assert not {row for row in v if row[0] == "c" and row[1] in ("inv", "ne", "minimum")}  # 1 / 0: no conclusion
    assert ("a", "minimum", 1 / 12) in v and ("a", "ne", 1) in v
    assert ("d", "total", 2400) in v and ("a", "total", 576) in v and ("c", "total", 0) in v
    assert ("d", "fsum", 5.5) in v
    assert ref.violations == [(len(rules.rules) - 1, {"P": "d", "W": 110.0})]
    other = reference.evaluate(rules, facts, {"max_mg": 500})
    assert other.facts["dose"] == {("a", "tocilizumab", 500), ("d", "tocilizumab", 500)}
    group = ref.group(next(i for i, r in enumerate(rules.rules) if r.id == "doses"), 1, {"P": "d"})
    assert group.value == 3 and len(group.rows) == 3
    assert group.facts == {("given", ("d", "tocilizumab", 800, h)) for h in (30, 20, 5)}


def test_reference_reads_a_named_underscore_variable_as_named() -> None:
    """docs/language.md: only `_` itself is a fresh anonymous variable; `_Y` is a variable
    like any other (a join under negation, a key of an aggregate). The engines read it as
    anonymous (program.aggregate_keys, order_body): see docs/verify.md."""
    rules = load_rules(text="""
.decl q(a: symbol) input "q"
.decl r(a: symbol, b: symbol) input "r"
.decl s(a: symbol) input "s"
.decl p(a: symbol) output "p"
.decl n(a: symbol, x: number) output "n"
p(X) :- q(X), !r(X, _Y), s(_Y).
n(X, N) :- q(X), s(_Y), N = count : { r(X, _Y) }.
""")
    ref = reference.evaluate(rules, load_facts(rules, text="q(a). r(a, b). r(a, c). s(d). s(c)."))
    assert ref.facts["p"] == {("a",)}  # r(a, d) does not hold
    assert ref.facts["n"] == {("a", 0), ("a", 1)}  # grouped by _Y: d has none, c has one


def test_reference_on_the_crs_rules_is_quick() -> None:
    import time
    rules = load_rules()
    facts = load_facts(rules, [FACTS_DIR / "p08_refractory.facts"])
    started = time.perf_counter()
    ref = reference.evaluate(rules, facts)
    assert time.perf_counter() - started < 1.0
    assert ref.facts["recommend"] == evaluate(rules, facts).facts["recommend"]


# ----------------------------------------------------------------------------- genuine proofs
def test_genuine_proofs_verify(world) -> None:
    rules, facts, explainer, verifier = world
    checked = 0
    for pred in ("dose", "recommend", "doses", "last_dose", "contraindicated", "patient"):
        for row in explainer.model.tuples(pred):
            for proof in explainer.proofs(pred, row, max_proofs=3):
                outcome = verifier.check(to_json_obj(proof, rules))
                assert outcome.ok, outcome.problems
                assert outcome.steps == sum(1 for _ in proof.walk())
                checked += 1
    assert checked >= 14
    assert check_proof(explainer.prove("doses", ("d", 3)), rules, facts) == []  # an explain.Node


# ----------------------------------------------------------------------------- forged proofs
def test_a_false_fact_resting_on_a_cut_does_not_verify(world) -> None:
    proof = proof_json(world, "recommend", ("a", "tocilizumab"), depth=1)
    assert node(proof, "n.1")["kind"] == "cut"
    proof["args"] = ["c", "tocilizumab"]  # c has no fever: recommend(c, tocilizumab) is false
    proof["bindings"]["P"] = "c"
    node(proof, "n.1")["args"] = ["c", "tocilizumab"]
    found = problems(world, proof)
    assert ("n.1", UNCHECKED, "cut at --depth; rerun with a larger --depth") in found
    assert ("n", FAILED, "the rules and the facts do not entail this fact (it is not in the reference model)") \
        in found
    genuine = proof_json(world, "recommend", ("a", "tocilizumab"), depth=1)
    assert problems(world, genuine) == [("n.1", UNCHECKED, "cut at --depth; rerun with a larger --depth")]


def test_an_aggregate_must_list_every_fact_it_counted(world) -> None:
    proof = proof_json(world, "doses", ("d", 3))
    aggregate = node(proof, "n.2")
    assert aggregate["kind"] == "aggregate" and len(aggregate["children"]) == 3
    del aggregate["children"][1:]  # 1 fact of evidence for a count of 3
    (found,) = problems(world, proof)
    assert found[:2] == ("n.2", FAILED) and "the evidence leaves out given(d, tocilizumab, 800, 20), " \
        "given(d, tocilizumab, 800, 30) of the group for P = d" in found[2]

    claimed_one = copy.deepcopy(proof)  # ... and claiming that one fact makes the count 1
    claimed_one["args"], claimed_one["bindings"]["N"] = ["d", 1], 1
    found = problems(world, claimed_one)
    assert ("n.2", FAILED, "recounted count is 3, the proof says 1") in found
    assert ("n", FAILED, "the rules and the facts do not entail this fact (it is not in the reference model)") \
        in found


def test_aggregate_evidence_of_another_patient_does_not_verify(world) -> None:
    proof = proof_json(world, "doses", ("a", 1))
    other = proof_json(world, "doses", ("d", 3))
    node(proof, "n.2")["children"] = [node(other, "n.2.1")]  # d's dose listed as a's
    found = problems(world, proof)
    assert ("n.2.1", FAILED, "counted, but not a fact of this group of N = count : { given(P, tocilizumab, _, _) }"
                             " for P = a") in found
    assert any(f[0] == "n.2" and "leaves out given(a, tocilizumab, 576, 10)" in f[2] for f in found)


def test_a_changed_rule_is_caught_by_its_digest(world) -> None:
    rules, facts, _explainer, _v = world
    proof = proof_json(world, "recommend", ("a", "tocilizumab"))
    changed = load_rules(text=PROGRAM.replace("N < 4", "N < 3"))
    found = Verifier(changed, load_facts(changed, text=FACTS)).check(proof).problems
    assert [(p.node, p.why) for p in found if p.node == "n.1"] == [
        ("n.1", f"rule indicated changed since the proof was made (digest {node(proof, 'n.1')['rule']['digest']}, "
                f"now {changed.rule_by_id('indicated').digest})")]
    renamed = copy.deepcopy(proof)
    renamed["rule"]["id"] = "recommend.v2"
    assert ("n", FAILED, "no rule recommend.v2") in problems(world, renamed)


def test_a_negation_claimed_absent_that_holds_does_not_verify(world) -> None:
    proof = proof_json(world, "recommend", ("a", "tocilizumab"))
    indicated_b = proof_json(world, "indicated", ("b", "tocilizumab"))
    proof["args"], proof["bindings"]["P"] = ["b", "tocilizumab"], "b"  # b is allergic
    proof["children"][0] = indicated_b
    node(proof, "n.2")["text"] = "!contraindicated(b, tocilizumab, _)"
    found = problems(world, proof)
    assert ("n.2", FAILED, "!contraindicated(P, D, _) is claimed absent, but contraindicated(b, tocilizumab, "
                           "allergy) holds") in found
    assert ("n", FAILED, "the rules and the facts do not entail this fact (it is not in the reference model)") \
        in found
    anonymous = world[0].rule_by_id("recommend").body[1].atom.args[2].name  # the `_` of !contraindicated(P, D, _)
    proof["bindings"][anonymous] = "nothing"  # `_` reads "anything": a value given for it is ignored
    assert problems(world, proof) == found


def test_other_forgeries(world) -> None:
    proof = proof_json(world, "dose", ("a", "tocilizumab", 576))
    weight = copy.deepcopy(proof)
    node(weight, "n.2")["args"] = ["a", 80]
    assert ("n.2", FAILED, "premise is not weight(a, 72), the body literal weight(P, W) under the bindings") \
        in problems(world, weight)
    boolean = copy.deepcopy(proof)  # JSON true is not the number 1
    node(boolean, "n.1.1.2")["args"] = ["a", True]
    assert any(p[0] == "n.1.1.2" for p in problems(world, boolean))
    elsewhere = copy.deepcopy(proof)
    assert node(elsewhere, "n.2")["origin"] == "ward.facts:2:16"
    node(elsewhere, "n.2")["origin"] = "ward.facts:3:1"
    assert ("n.2", FAILED, "the input has this fact at ward.facts:2:16, not at ward.facts:3:1") \
        in problems(world, elsewhere)
    why_not = copy.deepcopy(proof)
    node(why_not, "n.1")["kind"] = "why-not"
    assert ("n.1", FAILED, "a 'why-not' node where a proof of a fact was expected") in problems(world, why_not)
    capped = copy.deepcopy(proof)  # the head computes 576 under W = 72, not 800
    capped["args"] = ["a", "tocilizumab", 800]
    assert ("n", FAILED, "rule dose under these bindings concludes dose(a, tocilizumab, 576), not this fact") \
        in problems(world, capped)
    dropped = copy.deepcopy(proof)
    dropped["children"].pop()
    assert ("n", FAILED, "has 1 premises; rule dose has 2 body literals") in problems(world, dropped)


def test_proofs_of_a_violation(tmp_path: Path) -> None:
    rules_path = tmp_path / "c.dl"
    rules_path.write_text(".decl weight(p: id, kg: number) input \"w\"\n.decl given(p: id, mg: number) input \"d\"\n"
                          ".decl total(p: id, mg: number) output \"t\"\n"
                          "total(P, S) :- weight(P, _), S = sum M : { given(P, M) }.\n"
                          "@id heavy\n:- weight(P, W), W > 100, total(P, S), S > 10.\n")
    facts_path = tmp_path / "c.facts"
    facts_path.write_text("weight(a, 110). given(a, 5). given(a, 6.5).\nweight(b, 120).\n")
    made = run("why", "heavy", str(facts_path), "--rules", str(rules_path), "--format", "json")
    doc = json.loads(made.stdout)  # the violation is also reported on stderr
    assert [p["text"] for p in doc["proofs"]] == ["violation of heavy"]
    path = tmp_path / "v.json"
    path.write_text(made.stdout)
    result = run("verify", str(path), str(facts_path), "--rules", str(rules_path))
    assert result.exit_code == 0, result.output
    forged = doc["proofs"][0]  # b weighs 120 but has no doses: no violation
    forged["bindings"].update(P="b", W=120)
    forged["children"][0]["args"] = ["b", 120]
    del forged["children"][0]["origin"]
    path.write_text(json.dumps(doc))
    result = run("verify", str(path), str(facts_path), "--rules", str(rules_path))
    assert result.exit_code == 1
    assert f"{path}#/proofs/0 n violation of heavy: the reference model has no such violation of heavy" \
        in result.output
    assert "n.3 total(a, 11.5): premise is not total(b, 11.5)" in result.output


def test_find_proofs_in_every_document_shape() -> None:
    proof = {"id": "n", "kind": "derived", "text": "x"}
    assert [p for p, _ in find_proofs({"goal": "g", "proofs": [proof, proof]})] == ["/proofs/0", "/proofs/1"]
    doc = {"patients": [{"recommendations": [{"action": "a", "proof": proof},
                                             {"options": [{"proof": proof}]}], "conflicts": [{"proof": 3}]}],
           "conflicts": [{"because": {"indicated": proof, "contraindicated": {"id": "n"}}}]}
    assert [p for p, _ in find_proofs(doc)] == [
        "/patients/0/recommendations/0/proof", "/patients/0/recommendations/1/options/0/proof",
        "/patients/0/conflicts/0/proof", "/conflicts/0/because/indicated", "/conflicts/0/because/contraindicated"]


# ----------------------------------------------------------------------------- the command
def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_verify_command_on_genuine_and_forged_proofs(tmp_path: Path) -> None:
    p01 = str(FACTS_DIR / "p01_grade2_first_dose.facts")
    made = run("why", "recommend(p01, A)", p01, "--format", "json")
    path = tmp_path / "p.json"
    path.write_text(made.stdout)
    result = run("verify", str(path), p01)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(" steps verified\n") and result.output.startswith("9 proofs, ")

    doc = json.loads(made.stdout)
    node(doc["proofs"][0], "n.1")["args"][0] = "p02"
    path.write_text(json.dumps(doc))
    result = run("verify", str(path), p01)
    assert result.exit_code == 1
    assert f"{path}#/proofs/0 n.1 indicated(p02, cardiac_monitoring): premise is not " \
           "indicated(p01, cardiac_monitoring)" in result.output
    assert result.output.splitlines()[-1].endswith("1 failed, 0 unchecked")

    shallow = run("why", "dose_mg(p01, tocilizumab, M)", p01, "--depth", "3", "--format", "json")
    path.write_text(shallow.stdout)
    result = run("verify", str(path), p01)
    assert result.exit_code == 1 and "unchecked: cut at --depth; rerun with a larger --depth" in result.output


def test_verify_command_on_recommend_and_conflicts_documents(tmp_path: Path) -> None:
    p02 = str(FACTS_DIR / "p02_tocilizumab_allergy.facts")
    for command in (["recommend", "--explain", "--format", "json", p02], ["conflicts", "--format", "json", p02]):
        path = tmp_path / "doc.json"
        path.write_text(run(*command).stdout)
        result = run("verify", str(path), p02)
        assert result.exit_code == 0, (command, result.output)
    p09 = str(FACTS_DIR / "p09_persistent_grade1.facts")  # a proof made with other settings does not verify
    path.write_text(run("why", "recommend(p09, tocilizumab)", p09, "--format", "json").stdout)
    assert run("verify", str(path), p09).exit_code == 0
    assert run("verify", str(path), p09, "--set", "grade1_persistent_hours=96").exit_code == 1


def test_verify_command_bad_input_exits_two(tmp_path: Path) -> None:
    p01 = str(FACTS_DIR / "p01_grade2_first_dose.facts")
    broken = tmp_path / "broken.json"
    broken.write_text('{"goal": "x",\n  "proofs": [1,]}\n')
    result = run("verify", str(broken), p01)
    assert result.exit_code == 2
    assert result.output.startswith(f"{broken}:2:16: error[E018]: not valid JSON")
    empty = tmp_path / "empty.json"
    empty.write_text('{"goal": "x", "proofs": []}')
    result = run("verify", str(empty), p01)
    assert result.exit_code == 2 and "error[E019]: no proof in this document" in result.output
    assert run("verify", str(tmp_path / "missing.json"), p01).exit_code == 2
    good = tmp_path / "good.json"
    good.write_text(run("why", "crs_grade(p01, G)", p01, "--format", "json").stdout)
    result = run("verify", str(good), str(tmp_path / "missing.facts"))
    assert result.exit_code == 2 and "error[E015]" in result.output
    result = run("verify", str(good), p01, "--set", "nope=1")
    assert result.exit_code == 2 and "unknown setting nope" in result.output
    assert "Traceback" not in result.output
