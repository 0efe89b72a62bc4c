"""Recursive programs and stratified negation with known models.

pyDatalog on its own never returns on right recursion over a cycle and on some mutual
recursion (shared/pydatalog-notes.md); the engine runs recursive components as a
semi-naive fixpoint of non-recursive pyDatalog queries, and these tests pin that down.
"""
from __future__ import annotations

import itertools

import pytest

from programs import MUTUAL_EMPTY, SAME_GENERATION  # noqa: E402  (tests/programs.py)
from reasoner import EvaluationLimit, evaluate, load_facts, load_rules
from reasoner.engines.pydatalog import Engine
from reasoner.language.errors import ReasonerError

GRAPH = """
.decl edge(a: symbol, b: symbol) input "an edge"
.decl reach(a: symbol, b: symbol) output "reachability"
"""
LEFT = GRAPH + "reach(X, Y) :- edge(X, Y).\nreach(X, Y) :- reach(X, Z), edge(Z, Y).\n"
RIGHT = GRAPH + "reach(X, Y) :- edge(X, Y).\nreach(X, Y) :- edge(X, Z), reach(Z, Y).\n"
DOUBLE = GRAPH + "reach(X, Y) :- edge(X, Y).\nreach(X, Y) :- reach(X, Z), reach(Z, Y).\n"


def closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Transitive closure by brute force, the oracle for the engine."""
    reach = set(edges)
    while True:
        more = {(a, d) for (a, b), (c, d) in itertools.product(reach, reach) if b == c} - reach
        if not more:
            return reach
        reach |= more


def reach_of(program: str, edges: set[tuple[str, str]]) -> set:
    rules = load_rules(text=program)
    facts = load_facts(rules, text="\n".join(f"edge({a}, {b})." for a, b in sorted(edges)))
    return evaluate(rules, facts).tuples("reach")


@pytest.mark.parametrize("program", [LEFT, RIGHT, DOUBLE], ids=["left", "right", "doubly"])
def test_reachability_on_a_cycle(program: str) -> None:
    edges = {("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}
    got = reach_of(program, edges)
    assert got == closure(edges)
    assert ("a", "a") in got and ("d", "a") not in got


@pytest.mark.parametrize("program", [LEFT, RIGHT], ids=["left", "right"])
def test_reachability_on_a_clique_and_a_chain(program: str) -> None:
    clique = {(f"n{i}", f"n{j}") for i in range(6) for j in range(6) if i != j}
    assert reach_of(program, clique) == closure(clique)
    chain = {(f"c{i}", f"c{i + 1}") for i in range(40)}
    got = reach_of(program, chain)
    assert len(got) == 40 * 41 // 2 and got == closure(chain)


def test_mutual_recursion_with_an_empty_answer_terminates() -> None:
    rules = load_rules(text=MUTUAL_EMPTY)
    model = evaluate(rules, load_facts(rules, text="e(a). e(b)."))
    assert model.tuples("p") == model.tuples("q") == model.tuples("r") == set()


def test_same_generation() -> None:
    rules = load_rules(text=SAME_GENERATION)
    facts = load_facts(rules, text="parent(b, a). parent(c, a). parent(d, b). parent(e, c). parent(f, d).")
    got = {t for t in evaluate(rules, facts).tuples("sg") if t[0] != t[1]}
    assert got == {("b", "c"), ("c", "b"), ("d", "e"), ("e", "d")}


def test_negation_over_a_recursive_predicate_in_a_later_stratum() -> None:
    program = GRAPH + """
.decl node(a: symbol) input "nodes"
.decl unreachable(a: symbol, b: symbol) output "no path"
reach(X, Y) :- edge(X, Y).
reach(X, Y) :- reach(X, Z), edge(Z, Y).
unreachable(X, Y) :- node(X), node(Y), !reach(X, Y).
"""
    rules = load_rules(text=program)
    facts = load_facts(rules, text="node(a). node(b). node(c). edge(a, b). edge(b, a).")
    got = evaluate(rules, facts).tuples("unreachable")
    assert got == {("a", "c"), ("b", "c"), ("c", "a"), ("c", "b"), ("c", "c")}


def test_negation_through_recursion_is_rejected_before_evaluation() -> None:
    program = """
.decl node(x: symbol) input "n"
.decl p(x: symbol) output "p"
.decl q(x: symbol) output "q"
p(X) :- node(X), !q(X).
q(X) :- node(X), !p(X).
"""
    with pytest.raises(ReasonerError) as err:
        load_rules(text=program, path="cycle.dl")
    assert err.value.code == "E008"
    assert "cycle.dl:4:" in str(err.value) or "cycle.dl:5:" in str(err.value)


def test_aggregation_through_recursion_is_rejected() -> None:
    program = """
.decl e(x: symbol) input "e"
.decl n(x: symbol, c: number) output "n"
n(X, C) :- e(X), C = count : { n(X, _) }.
"""
    with pytest.raises(ReasonerError) as err:
        load_rules(text=program)
    assert err.value.code == "E009"


def test_an_unbounded_recursion_stops_with_a_clear_error() -> None:
    program = """
.decl seed(n: number) input "s"
.decl nat(n: number) output "counting up forever"
nat(N) :- seed(N).
nat(M) :- nat(N), M = N + 1.
"""
    rules = load_rules(text=program)
    facts = load_facts(rules, text="seed(0).")
    engine = Engine(rules, max_iterations=50)
    with pytest.raises(EvaluationLimit, match="fixpoint"):
        engine.evaluate(facts.facts)
    engine = Engine(rules, time_limit=0.2)
    with pytest.raises(EvaluationLimit, match="time limit"):
        engine.evaluate(facts.facts)
