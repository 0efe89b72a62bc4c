"""The order of a rule body: which literal runs when, so that every negation, comparison
and aggregate runs once its variables are bound (`order_body`, its `Step`s), the group
keys of an aggregate (`aggregate_keys`) and what a body binds. The checker proves safety
with it, and the engines, the planner and the explainer run and follow bodies in it.
"""
from __future__ import annotations

from reasoner.language.record import Record, record

from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import (
    Aggregate, Atom, Comparison, Literal, Negation, Span, Var, expr_vars, literal_vars,
)


def aggregate_keys(agg: Aggregate, body: tuple[Literal, ...], head: Atom | None) -> list[str]:
    """Variables of an aggregate's body that the rest of the rule also uses: its group keys."""
    outside: set[str] = set()
    for lit in body:
        if lit is not agg:
            outside |= {v.name for v in literal_vars(lit)}
    if head is not None:
        outside |= {v.name for a in head.args for v in expr_vars(a)}
    inner = []
    for lit in agg.body:
        for v in literal_vars(lit):
            if v.name in outside and v.name not in inner and not v.anonymous:
                inner.append(v.name)
    return inner


def body_bound_vars(body: tuple[Literal, ...]) -> set[str]:
    """Names of the variables that the body binds (positive atoms, assignments, aggregates)."""
    return {name for step in order_body(body) for name in step.binds}


@record
class Step(Record):
    """One literal of a body in evaluation order, with the variables it newly binds."""

    literal: Literal
    binds: tuple[str, ...]
    assign: str | None = None
    """For `X = expr` that binds X: the variable's name (the expression may be on either side)."""


def order_body(body: tuple[Literal, ...], first: Literal | None = None,
               initially_bound: frozenset[str] = frozenset(), head: Atom | None = None,
               as_written: bool = False, cost=None) -> list[Step]:
    """Order literals so each negation, comparison and aggregate runs once its variables
    are bound: filters as early as possible, positive atoms in the order written.
    `first` puts one positive atom first (semi-naive deltas). `as_written` keeps the
    written order wherever safety allows (for explanations a reader follows). `cost`,
    given (atom, bound variable names) → estimated rows, picks the cheapest atom next
    instead of the first written (the engine's join order from observed sizes).
    Raises ReasonerError for an unsafe body, naming the variables nothing binds."""
    bound: set[str] = set(initially_bound)
    remaining = list(body)
    steps: list[Step] = []
    if first is not None:
        remaining.remove(first)
        remaining.insert(0, first)
    agg_keys = {id(l): set(aggregate_keys(l, body, head)) for l in body if isinstance(l, Aggregate)}
    while remaining:
        chosen: Step | None = None
        for lit in remaining:  # filters and assignments first, as soon as they can run
            if isinstance(lit, Negation):
                if all(v.anonymous or v.name in bound for v in literal_vars(lit)):
                    chosen = Step(lit, ())
            elif isinstance(lit, Comparison):
                chosen = _comparison_step(lit, bound)
            elif isinstance(lit, Aggregate):
                if agg_keys[id(lit)] <= bound:
                    chosen = Step(lit, () if lit.result.name in bound else (lit.result.name,))
            elif as_written and isinstance(lit, Atom):
                chosen = Step(lit, tuple(dict.fromkeys(v.name for v in literal_vars(lit) if v.name not in bound)))
            if chosen is not None:
                break
        if chosen is None:
            atoms = [l for l in remaining if isinstance(l, Atom)]
            if cost is not None and atoms and not (first is not None and atoms[0] is first):
                atom = min(atoms, key=lambda a: cost(a, bound))
            else:
                atom = atoms[0] if atoms else None
            if atom is not None:
                names = []
                for v in literal_vars(atom):
                    if v.name not in bound and v.name not in names:
                        names.append(v.name)
                chosen = Step(atom, tuple(names))
        if chosen is None:
            lit = remaining[0]
            unbound = sorted({v.name for v in literal_vars(lit) if v.name not in bound and not v.anonymous})
            if isinstance(lit, Negation) and not unbound:
                unbound = ["_"]
            if isinstance(lit, Aggregate):
                unbound = sorted(agg_keys[id(lit)] - bound)
                msg = f"unsafe rule: the aggregate's key variable{'s' if len(unbound) > 1 else ''} " \
                      f"{', '.join(unbound)} must be bound by a positive literal outside it"
            else:
                kind = "negation" if isinstance(lit, Negation) else "comparison"
                msg = (f"unsafe rule: variable{'s' if len(unbound) > 1 else ''} {', '.join(unbound)} "
                       f"in the {kind} {lit} {'are' if len(unbound) > 1 else 'is'} not bound by a positive literal")
            raise ReasonerError.at(getattr(lit, "span", Span("<none>", 0, 0)), msg, "E007")
        remaining.remove(chosen.literal)
        bound |= set(chosen.binds)
        steps.append(chosen)
    return steps


def step_vars(steps: list[Step] | tuple[Step, ...]) -> list[str]:
    """The variables an ordered body binds, in the order it binds them."""
    names: list[str] = []
    for step in steps:
        for name in step.binds:
            if name not in names:
                names.append(name)
    return names


def _comparison_step(c: Comparison, bound: set[str]) -> Step | None:
    left_free = [v.name for v in expr_vars(c.left) if v.name not in bound]
    right_free = [v.name for v in expr_vars(c.right) if v.name not in bound]
    if not left_free and not right_free:
        return Step(c, ())
    if c.op == "=":
        if isinstance(c.left, Var) and not c.left.anonymous and left_free == [c.left.name] and not right_free:
            return Step(c, (c.left.name,), assign=c.left.name)
        if isinstance(c.right, Var) and not c.right.anonymous and right_free == [c.right.name] and not left_free:
            return Step(c, (c.right.name,), assign=c.right.name)
    return None

