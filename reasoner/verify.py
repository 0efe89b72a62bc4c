"""An independent proof checker.

It trusts neither the engine nor the explainer: it reads a proof tree and the inputs
and re-checks every step with its own arithmetic and matching (match.py):
- an input leaf is a fact of the input fact set; a rule-set leaf is a fact the rule set
  states;
- a derived step names a rule whose head, under the step's bindings, is the step's fact,
  and has one child per body literal that instantiates that literal exactly;
- a comparison is true for the bindings; a negation finds no matching fact in the model;
- an aggregate recounts: its value, computed afresh over the model, equals the bound
  value, and every fact it lists is in the model.
A step cut by --depth is reported as unchecked, not as valid.
"""
from __future__ import annotations

from .explain import ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, INPUT, RULESET_FACT, Node
from .facts import FactSet
from .match import Env, Unbound, aggregate, compare, eval_expr, present
from .model import Model, values_equal
from .program import RuleSet
from .syntax import Aggregate, Atom, Comparison, Const, Negation, Value


def check_proof(proof: Node, ruleset: RuleSet, facts: FactSet, model: Model) -> list[str]:
    """Every problem found in `proof` (empty when it checks)."""
    inputs = {(f.pred, f.args) for f in facts.facts}
    stated = {(r.head.pred, tuple(a.value for a in r.head.args if isinstance(a, Const)))
              for r in ruleset.facts_rules if r.head is not None}
    problems: list[str] = []
    _check(proof, ruleset, inputs, stated, model, problems, path="n")
    return problems


def _same(a: tuple[Value, ...] | None, b: tuple[Value, ...]) -> bool:
    return a is not None and len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))


def _check(node: Node, rs: RuleSet, inputs: set, stated: set, model: Model, problems: list[str], path: str) -> None:
    def bad(message: str) -> None:
        problems.append(f"{path} {node.text}: {message}")

    if node.kind == INPUT:
        if (node.pred, node.args) not in inputs:
            bad("claimed as an input fact, but the input has no such fact")
        return
    if node.kind == RULESET_FACT:
        if (node.pred, node.args) not in stated:
            bad("claimed as a fact of the rule set, but the rule set states no such fact")
        return
    if node.kind == CUT:
        return  # unexpanded by request: nothing claimed below it
    if node.kind != DERIVED:
        bad(f"a proof step of kind {node.kind!r} where a fact was expected")
        return
    if node.rule_index is None or not (0 <= node.rule_index < len(rs.rules)):
        bad("names no rule of the rule set")
        return
    rule = rs.rules[node.rule_index]
    env: Env = dict(node.bindings)
    if rule.head is None or rule.head.pred != node.pred:
        bad(f"rule {rs.rule_name(rule)} does not conclude {node.pred}")
        return
    if len(node.children) != len(rule.body):
        bad(f"has {len(node.children)} premises; rule {rs.rule_name(rule)} has {len(rule.body)} body literals")
        return
    # The bindings a node shows omit anonymous variables; recover them from the premises.
    for lit, child in zip(rule.body, node.children):
        if isinstance(lit, Atom) and child.args is not None:
            for arg, value in zip(lit.args, child.args):
                if getattr(arg, "name", None) is not None and arg.name not in env:  # type: ignore[union-attr]
                    env[arg.name] = value  # type: ignore[union-attr]
    settings = model.settings
    for i, (lit, child) in enumerate(zip(rule.body, node.children), 1):
        where = f"{path}.{i}"
        try:
            if isinstance(lit, Atom):
                expected = tuple(eval_expr(a, env, settings) for a in lit.args)
                if child.pred != lit.pred or not _same(child.args, expected):
                    problems.append(f"{where}: premise {child.text} is not {lit} under the bindings")
                    continue
                _check(child, rs, inputs, stated, model, problems, where)
            elif isinstance(lit, Negation):
                if child.kind != ABSENT:
                    problems.append(f"{where}: premise for {lit} is not a checked absence")
                elif present(lit.atom, env, model, settings):
                    problems.append(f"{where}: {lit} is claimed absent but a matching fact is in the model")
            elif isinstance(lit, Comparison):
                if child.kind != COMPARISON:
                    problems.append(f"{where}: premise for {lit} is not a comparison")
                    continue
                left, right = eval_expr(lit.left, env, settings), eval_expr(lit.right, env, settings)
                if not compare(lit.op, left, right):
                    problems.append(f"{where}: comparison {lit} is false for the bindings ({left} {lit.op} {right})")
            elif isinstance(lit, Aggregate):
                if child.kind != AGGREGATE:
                    problems.append(f"{where}: premise for the aggregate is not an aggregate step")
                    continue
                value, _rows = aggregate(lit, env, model, settings, rule.body, rule.head)
                claimed = env.get(lit.result.name)
                if value is None or claimed is None or not values_equal(value, claimed):
                    problems.append(f"{where}: recounted {lit.func} is {value}, the proof says {claimed}")
                for j, counted in enumerate(child.children, 1):
                    if counted.args is None or counted.args not in model.facts.get(counted.pred or "", ()):
                        problems.append(f"{where}.{j}: counted fact {counted.text} is not in the model")
                    else:
                        _check(counted, rs, inputs, stated, model, problems, f"{where}.{j}")
        except Unbound as exc:
            problems.append(f"{where}: variable {exc} of {lit} has no value in the bindings")
    try:
        head = tuple(eval_expr(a, env, settings) for a in rule.head.args)
    except Unbound as exc:
        bad(f"head variable {exc} has no value")
        return
    if not _same(node.args, head):
        bad(f"rule {rs.rule_name(rule)} under these bindings concludes {rule.head.pred}{head}, not this fact")
