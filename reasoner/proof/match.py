"""Matching rule bodies against a finished model, in plain Python.

pyDatalog derives the model; this module only *inspects* it, for the jobs that need to
look at literals one at a time: the explainer and why-not (which literal fails, and with
which values), and the checker's exploration. What expressions and comparisons mean is
`semantics.py`'s. (The proof checker does not use this module: it re-derives with its
own reference evaluator, `reference.py`.)
"""
from __future__ import annotations

from typing import Iterator

from reasoner.engines.model import Model, row_key
from reasoner.analysis.program import aggregate_keys
from reasoner.plan.semantics import Unbound, compare, has_value, values_equal
from reasoner.plan.semantics import aggregate as aggregate_value
from reasoner.plan.semantics import evaluate as eval_expr
from reasoner.language.syntax import Aggregate, Atom, Comparison, Const, Literal, Negation, Setting, Value, Var

__all__ = ["Env", "Unbound", "aggregate", "compare", "eval_expr", "goal_rows", "match_atom", "present", "solve",
           "solve_literal"]

Env = dict[str, Value]


def _candidates(atom: Atom, env: Env, model: Model, settings: dict[str, Value]):
    """The rows worth trying: through an index on the first bound argument, if any."""
    for i, arg in enumerate(atom.args):
        if isinstance(arg, Var):
            if arg.name not in env:
                continue
            value = env[arg.name]
        elif isinstance(arg, (Const, Setting)):
            value = eval_expr(arg, env, settings)
        else:
            continue
        return model.index(atom.pred, i).get(_index_key(value), ())
    return model.facts.get(atom.pred, ())


def _index_key(value: Value) -> tuple:
    return (isinstance(value, str), value)


def match_atom(atom: Atom, env: Env, model: Model, settings: dict[str, Value]) -> Iterator[Env]:
    """Every extension of `env` under which `atom` is a fact of the model."""
    for row in _candidates(atom, env, model, settings):
        if len(row) != len(atom.args):
            continue
        new = dict(env)
        for arg, value in zip(atom.args, row):
            if isinstance(arg, Var):
                if arg.name in new:
                    if not values_equal(new[arg.name], value):
                        break
                else:
                    new[arg.name] = value
            elif not values_equal(eval_expr(arg, new, settings), value):
                break
        else:
            yield new


def goal_rows(goal: Atom, model: Model) -> list[tuple[Value, ...]]:
    """The facts of the model that match a checked goal (variables and constants), each
    once, in row order."""
    rows = {tuple(env[a.name] if isinstance(a, Var) else a.value for a in goal.args)  # type: ignore[attr-defined]
            for env in match_atom(goal, {}, model, model.settings)}
    return sorted(rows, key=row_key)


def present(atom: Atom, env: Env, model: Model, settings: dict[str, Value]) -> list[tuple[Value, ...]]:
    """The facts matching a (possibly partly bound) atom: what a negation finds."""
    out = []
    for new in match_atom(atom, env, model, settings):
        out.append(tuple(new[a.name] if isinstance(a, Var) else eval_expr(a, new, settings) for a in atom.args))
    return out


def solve_literal(lit: Literal, env: Env, model: Model, settings: dict[str, Value], body: tuple[Literal, ...],
                  head: Atom | None) -> Iterator[Env]:
    """Extensions of `env` that satisfy one literal (its variables bound as order_body says)."""
    if isinstance(lit, Atom):
        yield from match_atom(lit, env, model, settings)
    elif isinstance(lit, Negation):
        if not present(lit.atom, env, model, settings):
            yield env
    elif isinstance(lit, Comparison):
        left_var = isinstance(lit.left, Var) and lit.left.name not in env
        right_var = isinstance(lit.right, Var) and lit.right.name not in env
        if lit.op == "=" and (left_var or right_var):
            target, expr = (lit.left, lit.right) if left_var else (lit.right, lit.left)
            value = eval_expr(expr, env, settings)
            if has_value(value):  # binding to no value (a division by zero) fails
                yield {**env, target.name: value}  # type: ignore[union-attr]
        elif compare(lit.op, eval_expr(lit.left, env, settings), eval_expr(lit.right, env, settings)):
            yield env
    else:
        value, _rows = aggregate(lit, env, model, settings, body, head)
        if value is None:
            return
        name = lit.result.name
        if name in env:
            if values_equal(env[name], value):
                yield env
        else:
            yield {**env, name: value}


def aggregate(agg: Aggregate, env: Env, model: Model, settings: dict[str, Value], body: tuple[Literal, ...],
              head: Atom | None) -> tuple[Value | None, list[Env]]:
    """The aggregate's value under `env` and the distinct rows it was computed from."""
    keys = aggregate_keys(agg, body, head)
    start = {k: env[k] for k in keys if k in env}
    rows: dict[tuple, Env] = {}
    for sol in solve(agg.body, start, model, settings, None):
        rows[tuple(sorted((k, repr(v)) for k, v in sol.items()))] = sol
    members = list(rows.values())
    values = [eval_expr(agg.target, m, settings) for m in members] if agg.target is not None else members
    return aggregate_value(agg.func, values), members  # type: ignore[arg-type]


def solve(body: tuple[Literal, ...], env: Env, model: Model, settings: dict[str, Value],
          head: Atom | None) -> Iterator[Env]:
    """Every extension of `env` satisfying the whole body (a naive nested-loop join)."""
    from reasoner.analysis.program import order_body
    steps = order_body(body, initially_bound=frozenset(env), head=head)

    def go(i: int, current: Env) -> Iterator[Env]:
        if i == len(steps):
            yield current
            return
        for nxt in solve_literal(steps[i].literal, current, model, settings, body, head):
            yield from go(i + 1, nxt)

    yield from go(0, env)
