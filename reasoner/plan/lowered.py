"""The lowered program: a checked rule set in the form every evaluator runs.

`lower(ruleset)` is built once per rule set (`plan_of` keeps it) and holds what the
evaluators used to work out each for itself:

- each rule's body with its head expressions turned into assignments (`#h0 = X * 2`),
  so a head is only variables, constants and settings;
- the body in evaluation order (`Step`s: filters as soon as their variables are bound),
  and the layout of a firing row (`variables`), the same for every engine, so firings
  and the proofs printed from them read alike whichever engine made them;
- each aggregate's grouping keys and its own ordered body;
- for a rule of a recursive component, its semi-naive variants: one per recursive body
  atom, read from the last round's new facts;
- the components in evaluation order, and the facts written in rule files.

What expressions, comparisons and "no value" mean is `semantics.py`'s. Limits: join
order here is the static one (atoms as written, the delta first in a variant); an engine
with statistics may reorder with `LoweredRule.ordered(cost=...)`, which keeps the
meaning. The proof checker's reference evaluator (`reference.py`) reads the rule set
itself, not this plan, on purpose: a checker must not share the lowering it checks.
"""
from __future__ import annotations

from typing import Callable, Iterable

from reasoner.language.record import Record, record
from reasoner.language.errors import ReasonerError
from reasoner.analysis.program import RuleSet, Step, aggregate_keys, order_body, step_vars
from reasoner.plan.semantics import may_lack_value
from reasoner.language.syntax import Aggregate, Atom, Comparison, Const, Expr, Literal, Rule, Setting, Var

Cost = Callable[[Atom, set], float]
"""(atom, names bound so far) → estimated rows: an engine's join-order hint."""


@record
class LoweredAggregate(Record):
    """`V = func X : { body }` with what evaluating it needs."""

    literal: Aggregate
    position: int
    """Where it stands in the rule's body as written (how proofs and models name it)."""
    keys: tuple[str, ...]
    """Variables of the aggregate's body that the rest of the rule uses: its groups."""
    steps: tuple[Step, ...]
    """The aggregate's own body, in evaluation order."""
    variables: tuple[str, ...]
    """The variables of a row of that body (`count` counts distinct such rows)."""


@record
class Variant(Record):
    """A semi-naive variant of a recursive rule: `atom` (at `position` in the lowered
    body) is read from the facts the last round added."""

    atom: Atom
    position: int
    steps: tuple[Step, ...]
    """The body in evaluation order, `atom` first."""


@record
class LoweredRule(Record):
    """One rule with a body (a constraint when `head` is None)."""

    index: int
    """Its position in `RuleSet.rules`: the id of its firings everywhere."""
    rule: Rule
    body: tuple[Literal, ...]
    """The rule's body, then one assignment `#hI = EXPR` per head argument that is an
    expression (I its position in the head)."""
    head: tuple[Var | Const | Setting, ...] | None
    """The head's arguments with expressions replaced by their `#hI` variables."""
    steps: tuple[Step, ...]
    variables: tuple[str, ...]
    """A firing row's variables, in this order in every engine."""
    aggregates: tuple[LoweredAggregate, ...]
    """The body's aggregates, in the order of `steps`."""
    variants: tuple[Variant, ...]
    """Semi-naive variants, for a rule of a recursive component without aggregates."""
    needs: frozenset[str]
    """Predicates of its positive atoms: while one is empty the rule cannot fire."""
    may_lack_value: bool
    """Whether some expression of it can have no value (it divides)."""

    @property
    def head_pred(self) -> str | None:
        return self.rule.head.pred if self.rule.head is not None else None

    def ordered(self, first: Literal | None = None, cost: Cost | None = None) -> tuple[Step, ...]:
        """The body in another evaluation order (an engine's join order from its own
        statistics): the same literals, the same meaning."""
        return tuple(order_body(self.body, first=first, head=self.rule.head, cost=cost))

    def aggregate(self, literal: Aggregate) -> LoweredAggregate:
        return next(a for a in self.aggregates if a.literal is literal)


@record
class Component(Record):
    """Predicates that depend on each other, evaluated together, in plan order."""

    preds: tuple[str, ...]
    """Its predicates that some rule derives."""
    recursive: bool
    rules: tuple[int, ...]
    """Indexes of the rules that derive its predicates, in rule-set order."""


@record
class Plan(Record):
    """A rule set lowered for evaluation: see the module's docstring."""

    ruleset: RuleSet
    rules: dict[int, LoweredRule]
    """Every rule with a body, constraints included, by index."""
    constraints: tuple[int, ...]
    facts: tuple[tuple[str, tuple[Const | Setting, ...]], ...]
    """Facts written in rule files (`anti_cytokine(tocilizumab).`), in rule-set order."""
    components: tuple[Component, ...]

    def derived_by(self, pred: str) -> list[LoweredRule]:
        return [r for r in self.rules.values() if r.head_pred == pred]


def _bound_first(atom: Atom, bound: set) -> float:
    """Without statistics: the atom with the most arguments already bound goes next (in a
    recursive round, written order can make a cross product)."""
    return -sum(1 for a in atom.args if not isinstance(a, Var) or a.name in bound)


def lower_rule(ruleset: RuleSet, index: int) -> LoweredRule:
    """Lower one rule with a body. Raises ReasonerError (E007) for an unsafe body or an
    aggregate grouped by what another aggregate computes."""
    rule = ruleset.rules[index]
    body = list(rule.body)
    head: list[Var | Const | Setting] | None = None
    if rule.head is not None:
        head = []
        for i, arg in enumerate(rule.head.args):
            if isinstance(arg, (Var, Const, Setting)):
                head.append(arg)
            else:  # computed in the body, where a missing value fails the firing
                var = Var(f"#h{i}")  # a name no rule can spell
                body.append(Comparison("=", var, arg, rule.span))
                head.append(var)
    lowered_body = tuple(body)
    steps = tuple(order_body(lowered_body, head=rule.head))
    aggregates = tuple(_lower_aggregate(s.literal, rule, lowered_body) for s in steps
                       if isinstance(s.literal, Aggregate))
    for agg in aggregates[1:]:
        if agg.keys:  # its groups would be the rows of another aggregate's answer
            raise ReasonerError.at(agg.literal.span, "an aggregate's keys may not depend on another aggregate",
                                   "E007")
    variants: list[Variant] = []
    recursive = ruleset.recursive
    if rule.head is not None and rule.head.pred in recursive and not aggregates:
        component = next(set(c) for c in ruleset.strata if rule.head.pred in c)
        for position, lit in enumerate(lowered_body):
            if isinstance(lit, Atom) and lit.pred in component:
                variant_steps = order_body(lowered_body, first=lit, head=rule.head, cost=_bound_first)
                variants.append(Variant(lit, position, tuple(variant_steps)))
    return LoweredRule(
        index=index, rule=rule, body=lowered_body, head=tuple(head) if head is not None else None,
        steps=steps, variables=tuple(step_vars(steps)), aggregates=aggregates, variants=tuple(variants),
        needs=frozenset(lit.pred for lit in rule.body if isinstance(lit, Atom)),
        may_lack_value=_divides(lowered_body))


def _lower_aggregate(agg: Aggregate, rule: Rule, body: tuple[Literal, ...]) -> LoweredAggregate:
    steps = tuple(order_body(agg.body))
    position = next(i for i, lit in enumerate(rule.body) if lit is agg)
    return LoweredAggregate(agg, position, tuple(aggregate_keys(agg, body, rule.head)), steps,
                            tuple(step_vars(steps)))


def _divides(body: Iterable[Literal]) -> bool:
    for lit in body:
        if isinstance(lit, Comparison) and (may_lack_value(lit.left) or may_lack_value(lit.right)):
            return True
        if isinstance(lit, Aggregate) and (_divides(lit.body) or (lit.target is not None
                                                                  and may_lack_value(lit.target))):
            return True
    return False


def lower(ruleset: RuleSet) -> Plan:
    """Lower a checked rule set (every rule with a body, its facts, its components)."""
    rules: dict[int, LoweredRule] = {}
    facts: list[tuple[str, tuple[Const | Setting, ...]]] = []
    by_head: dict[str, list[int]] = {}
    for index, rule in enumerate(ruleset.rules):
        if rule.head is not None and not rule.body:
            facts.append((rule.head.pred, tuple(rule.head.args)))  # type: ignore[arg-type]
            continue
        rules[index] = lower_rule(ruleset, index)
        if rule.head is not None:
            by_head.setdefault(rule.head.pred, []).append(index)
    components = []
    for comp in ruleset.strata:
        preds = tuple(p for p in comp if by_head.get(p))
        if preds:
            indexes = tuple(sorted(i for p in preds for i in by_head[p]))
            components.append(Component(preds, bool(set(comp) & ruleset.recursive), indexes))
    constraints = tuple(i for i, r in rules.items() if r.rule.head is None)
    return Plan(ruleset, rules, constraints, tuple(facts), tuple(components))


def plan_of(ruleset: RuleSet) -> Plan:
    """The rule set's plan, lowered on first use and kept with it (a RuleSet does not
    change after `load_rules`)."""
    plan = ruleset.__dict__.get("_plan")
    if plan is None:
        plan = lower(ruleset)
        ruleset.__dict__["_plan"] = plan
    return plan


def setting_or_const(term: Expr, settings: dict) -> object:
    """The value of a head or fact argument that is a constant or a setting."""
    if isinstance(term, Const):
        return term.value
    if isinstance(term, Setting):
        return settings[term.name]
    raise TypeError(f"not a constant: {term!r}")
