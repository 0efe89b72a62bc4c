"""The one definition of what expressions and comparisons mean (reasoner/plan/semantics.py),
and that every evaluator follows it where it is easiest to get wrong: a value that does
not exist (a division by zero) must fail every literal that needs it."""
from __future__ import annotations

import math

import pytest

from reasoner import evaluate, load_facts, load_rules
from reasoner.proof import reference as reference_evaluator
from reasoner.proof.explain import Explainer
from reasoner.plan.semantics import NO_VALUE, Unbound, arithmetic, compare, evaluate as evaluate_expr, has_value
from reasoner.engines.sql import DuckDBEngine
from reasoner.language.syntax import BinOp, Call, Const, Setting, Var

NAN = math.nan


@pytest.mark.parametrize("op, a, b, expected", [
    ("+", 2, 3, 5), ("-", 2, 3.5, -1.5), ("*", 4, 0.5, 2.0), ("/", 7, 2, 3.5),
    ("/", 1, 0, None), ("/", 0, 0, None), ("/", 1, 0.0, None),
    ("+", NAN, 1, None), ("*", NAN, 0, None), ("-", math.inf, math.inf, None),
])
def test_arithmetic(op: str, a, b, expected) -> None:
    out = arithmetic(op, a, b)
    assert (not has_value(out)) if expected is None else out == expected


@pytest.mark.parametrize("op, a, b, expected", [
    ("=", 38, 38.0, True), ("=", 17, "17", False), ("!=", 17, "17", True), ("<", "a", "b", False),
    (">=", 38.0, 38, True), ("<", 37.9, 38, True),
    ("!=", NAN, 3, False), ("=", NAN, NAN, False), ("<", NAN, 3, False), (">=", 3, NAN, False),
])
def test_compare(op: str, a, b, expected: bool) -> None:
    assert compare(op, a, b) is expected


def test_functions_of_no_value_have_none_whatever_the_argument_order() -> None:
    w = Var("W")
    zero_div = BinOp("/", Const(1), BinOp("-", w, Const(100)))
    env = {"W": 100}
    for func in ("min", "max"):
        assert not has_value(evaluate_expr(Call(func, (zero_div, Const(5))), env, {}))
        assert not has_value(evaluate_expr(Call(func, (Const(5), zero_div)), env, {}))
    assert not has_value(evaluate_expr(Call("abs", (zero_div,)), env, {}))
    assert evaluate_expr(Call("min", (Const(5), BinOp("*", w, Setting("k")))), env, {"k": 0.01}) == 1.0
    with pytest.raises(Unbound):
        evaluate_expr(BinOp("+", Var("X"), Const(1)), env, {})
    assert not has_value(NO_VALUE)


RULES = """
.decl weight(p: id, kg: number) input "weight"
.decl r(p: id, k: symbol) output "what held"
r(P, assigned) :- weight(P, W), X = 1 / (W - 100).
r(P, ne) :- weight(P, W), 1 / (W - 100) != 3.
r(P, min_second) :- weight(P, W), X = min(5, 1 / (W - 100)).
r(P, max_cmp) :- weight(P, W), max(5, 1 / (W - 100)) > 0.
r(P, abs_cmp) :- weight(P, W), abs(1 / (W - 100)) >= 0.
r(P, self_eq) :- weight(P, W), 1 / (W - 100) = 1 / (W - 100).
r(P, control) :- weight(P, W), W > 0.
"""


def _answers(model) -> set:
    return set(model.facts.get("r", set()))


def test_no_value_fails_every_literal_in_all_three_evaluators() -> None:
    rules = load_rules(text=RULES)
    facts = load_facts(rules, text="weight(c, 100). weight(a, 72).")
    every = {"assigned", "ne", "min_second", "max_cmp", "abs_cmp", "self_eq", "control"}
    expected = {("c", "control")} | {("a", k) for k in every}
    assert _answers(evaluate(rules, facts)) == expected
    assert _answers(DuckDBEngine(rules).evaluate(facts.facts)) == expected
    assert set(reference_evaluator.evaluate(rules, facts).facts.get("r", set())) == expected


def test_no_value_fails_every_literal_on_spark_too(spark) -> None:
    """The same table through the Spark engine (Spark SQL, ANSI mode: a division by zero
    would raise there, so the NULLIF rendering is what gives "no value")."""
    from reasoner.engines.spark import SparkEngine
    rules = load_rules(text=RULES)
    facts = load_facts(rules, text="weight(c, 100). weight(a, 72).")
    every = {"assigned", "ne", "min_second", "max_cmp", "abs_cmp", "self_eq", "control"}
    assert _answers(SparkEngine(rules).evaluate(facts.facts)) == {("c", "control")} | {("a", k) for k in every}


def test_why_not_says_a_division_by_zero_fails_the_comparison() -> None:
    rules = load_rules(text=RULES)
    facts = load_facts(rules, text="weight(c, 100).")
    model = evaluate(rules, facts)
    explainer = Explainer(rules, model)
    node = explainer.why_not("r", ("c", "ne"))
    assert not node.holds
    text = "\n".join(_walk(node))
    assert "nan" not in text.lower(), text  # no value is never shown as a number
    assert "1 / (100 - 100) has no value (it divides by zero), so the condition fails" in text, text


def _walk(node) -> list[str]:
    out = [f"{node.text} {node.detail}"]
    for child in node.children:
        out.extend(_walk(child))
    return out


@pytest.mark.parametrize("func, values, expected", [
    ("count", [], 0), ("count", ["a", "a"], 2), ("sum", [], 0), ("sum", [1, 2], 3),
    ("sum", [0.1, 0.2, 0.3], 0.6), ("sum", [1e16, 1.0, -1e16], 1.0),
    ("min", [], None), ("max", [], None), ("min", [3, 1.5], 1.5), ("max", [3, 1.5], 3),
])
def test_aggregate_values_and_empty_groups(func: str, values: list, expected) -> None:
    from reasoner.plan.semantics import aggregate
    assert aggregate(func, values) == expected
