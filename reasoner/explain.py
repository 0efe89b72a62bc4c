"""Why and why-not: proof trees read off a finished model.

`why` needs no re-derivation: the engine kept every rule firing with all of its
variable bindings, so a proof step is a lookup. Among a fact's firings the explainer
picks one of minimal height (each fact's rank is the height of its lowest proof,
computed to a fixpoint, so recursive rules cannot send it round a cycle).

`why-not` walks each rule that could conclude the goal, literal by literal in the
engine's order, and stops at the first literal that no binding satisfies, saying why:
a missing input fact, a false comparison with its values, a negated fact that is
present (with its proof), or a derived literal that fails in turn (to a bounded depth).

Limits: proofs are explanations of *this* model (the patient's facts as given); why-not
explains a ground goal only; an aggregate's proof lists the rows it counted, not a
proof of each row's absence for the rows it did not count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Iterator

from .match import Env, Unbound, aggregate, eval_expr, present, solve_literal
from .model import Model, row_key, values_equal
from .program import RuleSet, aggregate_keys, order_body
from .syntax import (
    Aggregate, Atom, Comparison, Const, Expr, Literal, Negation, Rule, Setting, Span, Value, Var, format_value,
)

FactKey = tuple[str, tuple[Value, ...]]

# How proof nodes are kinds of evidence (docs/explanations.md).
INPUT = "input"            # a fact from the patient's fact file
RULESET_FACT = "ruleset"   # a fact stated in the rule set
DERIVED = "derived"        # concluded by a rule; children: one per body literal
COMPARISON = "comparison"  # a comparison, with its values
ABSENT = "absent"          # a negated literal, checked absent
AGGREGATE = "aggregate"    # an aggregate, with the facts it counted
CUT = "cut"                # deeper than --depth: not expanded
WHY_NOT = "why-not"        # a goal that does not hold; children: one per rule that could give it
RULE_FAILS = "rule-fails"  # one such rule, and the first literal that fails
MISSING = "missing"        # no fact matches (input, or derived beyond the depth)
FALSE = "false"            # a comparison that fails, with its values
PRESENT = "present"        # a negated literal whose fact is there (with its proof)
NO_RULE = "no-rule"        # nothing in the rule set concludes this


@dataclass
class Node:
    """One step of a proof (or of a why-not explanation)."""

    kind: str
    text: str
    """The fact or literal, written in the rule language."""
    holds: bool = True
    pred: str | None = None
    args: tuple[Value, ...] | None = None
    rule_index: int | None = None
    bindings: dict[str, Value] = field(default_factory=dict)
    detail: str = ""
    """Values of a comparison or aggregate, or what failed and why."""
    origin: Span | None = None
    children: list["Node"] = field(default_factory=list)
    id: str = ""

    def walk(self) -> Iterator["Node"]:
        yield self
        for child in self.children:
            yield from child.walk()


def number_nodes(root: Node, prefix: str = "n") -> Node:
    """Give every node a stable id from its path: n, n.1, n.1.2 ..."""
    root.id = prefix
    for i, child in enumerate(root.children, 1):
        number_nodes(child, f"{prefix}.{i}")
    return root


def fact_text(pred: str, args: tuple[Value, ...]) -> str:
    return f"{pred}({', '.join(format_value(a) for a in args)})"


def conclusions(ruleset: RuleSet, model: Model,
                preds: Collection[str] | None = None) -> dict[FactKey, list[tuple[int, Env]]]:
    """Each derived fact (of `preds`, or of every predicate) → the firings (rule index,
    bindings) that concluded it."""
    out: dict[FactKey, list[tuple[int, Env]]] = {}
    for index in sorted(model.firings):
        rule = ruleset.rules[index]
        if rule.head is None or index not in model.heads or (preds is not None and rule.head.pred not in preds):
            continue
        for bindings in model.rule_firings(index):
            out.setdefault((rule.head.pred, model.head_of(index, bindings)), []).append((index, bindings))
    return out


class Explainer:
    """Proofs and why-not explanations over one model."""

    def __init__(self, ruleset: RuleSet, model: Model):
        self.rs = ruleset
        self.model = model
        self.settings = model.settings
        self._static = {(r.head.pred, tuple(a.value for a in r.head.args if isinstance(a, Const)))
                        for r in ruleset.facts_rules if r.head is not None}
        self._support = conclusions(ruleset, model)
        self._agg_index: dict[tuple[int, int], dict[tuple, list[Env]]] = {}
        self._premise_cache: dict[tuple[int, int], list[FactKey]] = {}
        self._rank = self._ranks()

    # ------------------------------------------------------------------ ranks
    def _premises(self, index: int, bindings: Env) -> list[FactKey]:
        """The facts one firing rests on: its positive atoms and what its aggregates counted."""
        cached = self._premise_cache.get((index, id(bindings)))
        if cached is not None:
            return cached
        cached = self._premises_of(index, bindings)
        self._premise_cache[(index, id(bindings))] = cached
        return cached

    def _premises_of(self, index: int, bindings: Env) -> list[FactKey]:
        rule = self.rs.rules[index]
        out: list[FactKey] = []
        for position, lit in enumerate(rule.body):
            if isinstance(lit, Atom):
                out.append((lit.pred, self._ground(lit, bindings)))
            elif isinstance(lit, Aggregate):
                for row in self._counted(index, position, lit, bindings):
                    out += [(a.pred, self._ground(a, row)) for a in lit.body if isinstance(a, Atom)]
        return out

    def _ranks(self) -> dict[FactKey, int]:
        rank: dict[FactKey, int] = {}
        for pred, rows in self.model.facts.items():
            for row in rows:
                if (pred, row) in self.model.origins or (pred, row) in self._static:
                    rank[(pred, row)] = 0
        firings = [(fact, index, bindings, self._premises(index, bindings))
                   for fact, support in self._support.items() for index, bindings in support]
        changed = True
        while changed:  # Bellman-Ford style: ranks only go down, and are bounded below by 1
            changed = False
            for fact, _index, _bindings, premises in firings:
                if all(p in rank for p in premises):
                    candidate = 1 + max((rank[p] for p in premises), default=0)
                    if candidate < rank.get(fact, 1 << 30):
                        rank[fact] = candidate
                        changed = True
        return rank

    def _firing_height(self, index: int, bindings: Env) -> int:
        premises = self._premises(index, bindings)
        if not all(p in self._rank for p in premises):
            return 1 << 30
        return 1 + max((self._rank[p] for p in premises), default=0)

    def _preference(self, firing: tuple[int, Env]) -> tuple:
        """Lowest proof first, then the earlier rule, then the smallest values: never the
        order the engine happened to return rows in, which differs between runs that
        split a cohort differently (--jobs, --chunk-size)."""
        index, bindings = firing
        return self._firing_height(index, bindings), index, row_key(tuple(bindings.values()))

    # ------------------------------------------------------------------ why
    def holds(self, pred: str, args: tuple[Value, ...]) -> bool:
        return self.model.holds(pred, args)

    def prove(self, pred: str, args: tuple[Value, ...], depth: int = 50) -> Node:
        """A minimal-height proof of a fact of the model."""
        return self._prove((pred, args), depth, alternative=None)

    def proofs(self, pred: str, args: tuple[Value, ...], max_proofs: int = 10, depth: int = 50) -> list[Node]:
        """Alternative proofs: one per way the fact's last step was concluded, lowest first."""
        key = (pred, args)
        if key not in self._support:
            return [self._prove(key, depth, None)]
        support = sorted(self._support[key], key=self._preference)
        return [self._prove(key, depth, s) for s in support[:max_proofs]]

    def _prove(self, key: FactKey, depth: int, alternative: tuple[int, Env] | None) -> Node:
        pred, args = key
        text = fact_text(pred, args)
        if key in self.model.origins and alternative is None:
            return Node(INPUT, text, pred=pred, args=args, origin=self.model.origins[key],
                        detail="fact from the input")
        if key in self._static and alternative is None:
            return Node(RULESET_FACT, text, pred=pred, args=args, detail="fact stated in the rule set")
        if depth <= 0:
            return Node(CUT, text, pred=pred, args=args, detail="proof cut here (--depth)")
        support = self._support.get(key)
        if not support:
            return Node(MISSING, text, holds=False, pred=pred, args=args, detail="not in the model")
        index, bindings = alternative or min(support, key=self._preference)
        rule = self.rs.rules[index]
        node = Node(DERIVED, text, pred=pred, args=args, rule_index=index,
                    bindings={k: v for k, v in bindings.items() if not k.startswith(("_", "#"))})
        for position, lit in enumerate(rule.body):
            node.children.append(self._premise_node(index, position, lit, bindings, depth - 1))
        return node

    def _premise_node(self, index: int, position: int, lit: Literal, env: Env, depth: int) -> Node:
        if isinstance(lit, Atom):
            return self._prove((lit.pred, self._ground(lit, env)), depth, None)
        if isinstance(lit, Negation):
            return Node(ABSENT, "!" + self._pattern(lit.atom, env), pred=lit.atom.pred,
                        detail=f"no {self._pattern(lit.atom, env)} holds")
        if isinstance(lit, Comparison):
            return Node(COMPARISON, str(lit), detail=self._comparison_values(lit, env))
        rows = self._counted(index, position, lit, env)  # an aggregate
        node = Node(AGGREGATE, str(lit), detail=self._aggregate_values(lit, env, rows))
        seen: set[FactKey] = set()
        for row in sorted(rows, key=lambda r: row_key(tuple(r[k] for k in sorted(r)))):
            for atom in lit.body:
                if isinstance(atom, Atom):
                    fact = (atom.pred, self._ground(atom, row))
                    if fact not in seen:
                        seen.add(fact)
                        node.children.append(self._prove(fact, depth, None))
        return node

    def _counted(self, index: int, position: int, agg: Aggregate, env: Env) -> list[Env]:
        """The rows an aggregate counted for these bindings (rows indexed by their keys)."""
        rule = self.rs.rules[index]
        keys = [k for k in aggregate_keys(agg, rule.body, rule.head)]
        table = self._agg_index.get((index, position))
        if table is None:
            names, rows = self.model.aggregate_rows.get((index, position), ((), []))
            table = {}
            for row in rows:
                r = dict(zip(names, row))
                table.setdefault(tuple(r.get(k) for k in keys), []).append(r)
            self._agg_index[(index, position)] = table
        return list(table.get(tuple(env.get(k) for k in keys), []))

    # ------------------------------------------------------------------ why not
    def why_not(self, pred: str, args: tuple[Value, ...], depth: int = 3) -> Node:
        """Why a ground fact does not hold (or its proof, if it does)."""
        if self.holds(pred, args):
            return self.prove(pred, args)
        text = fact_text(pred, args)
        decl = self.rs.decls.get(pred)
        if decl is not None and decl.role == "input":
            return Node(MISSING, text, holds=False, pred=pred, args=args,
                        detail="no such fact in the input" + self._nearby(pred, args))
        node = Node(WHY_NOT, text, holds=False, pred=pred, args=args)
        for index, rule in enumerate(self.rs.rules):
            if rule.head is None or rule.head.pred != pred or not rule.body:
                continue
            env = self._unify_head(rule.head, args)
            if env is None:
                continue  # this rule concludes other values: not a way to this goal
            node.children.append(self._rule_fails(index, rule, env, args, depth))
        if not node.children:
            node.kind = NO_RULE
            node.detail = "no rule concludes this (and it is not an input fact)"
        return node

    def _unify_head(self, head: Atom, args: tuple[Value, ...]) -> Env | None:
        env: Env = {}
        for arg, value in zip(head.args, args):
            if isinstance(arg, Var):
                if arg.name in env and not values_equal(env[arg.name], value):
                    return None
                env[arg.name] = value
            elif isinstance(arg, (Const, Setting)):
                if not values_equal(eval_expr(arg, env, self.settings), value):
                    return None
        return env

    def _rule_fails(self, index: int, rule: Rule, env: Env, goal: tuple[Value, ...], depth: int) -> Node:
        node = Node(RULE_FAILS, str(rule.head), holds=False, rule_index=index, bindings=dict(env))
        bound = frozenset(env)
        steps = order_body(rule.body, initially_bound=bound, head=rule.head, as_written=True)
        envs = [env]
        for step in steps:
            lit = step.literal
            nxt: list[Env] = []
            for e in envs:
                nxt.extend(solve_literal(lit, e, self.model, self.settings, rule.body, rule.head))
                if len(nxt) > 10_000:
                    break
            if not nxt:
                node.children.append(self._failure(index, lit, envs, rule, depth))
                node.bindings = _visible(envs[0])
                return node
            envs = nxt
        # every literal held for some bindings, yet the goal is not concluded: the head computes another value
        got = sorted({self.model.head_of(index, e) if index in self.model.heads else () for e in envs}, key=row_key)
        node.detail = "the conditions hold, but this rule concludes " + ", ".join(
            fact_text(rule.head.pred, g) for g in got[:3])  # type: ignore[union-attr]
        return node

    def _failure(self, index: int, lit: Literal, envs: list[Env], rule: Rule, depth: int) -> Node:
        env = envs[0]
        if isinstance(lit, Atom):
            pattern = self._pattern(lit, env)
            ground = all(not isinstance(a, Var) or a.name in env for a in lit.args)
            decl = self.rs.decls.get(lit.pred)
            if ground and decl is not None and decl.role != "input" and depth > 0:
                return self.why_not(lit.pred, self._ground(lit, env), depth - 1)
            where = "in the input" if decl is not None and decl.role == "input" else "in the model"
            return Node(MISSING, pattern, holds=False, pred=lit.pred,
                        detail=f"no {pattern} {where}" + (self._nearby(lit.pred, self._partial(lit, env))
                                                            if where == "in the input" else ""))
        if isinstance(lit, Comparison):
            values = "; ".join(self._comparison_values(lit, e) for e in envs[:3])
            more = f" (and {len(envs) - 3} more)" if len(envs) > 3 else ""
            return Node(FALSE, str(lit), holds=False, detail=f"{values} is false{more}")
        if isinstance(lit, Negation):
            found = present(lit.atom, env, self.model, self.settings)
            proofs = [self.prove(lit.atom.pred, f) for f in sorted(found, key=row_key)[:3]]
            return Node(PRESENT, "!" + self._pattern(lit.atom, env), holds=False, pred=lit.atom.pred,
                        detail=f"{fact_text(lit.atom.pred, sorted(found, key=row_key)[0])} holds", children=proofs)
        value, rows = aggregate(lit, env, self.model, self.settings, rule.body, rule.head)
        if value is None:
            return Node(FALSE, str(lit), holds=False, detail=f"{lit.func} of nothing: no row matches")
        return Node(FALSE, str(lit), holds=False,
                    detail=f"{lit.result.name} would be {format_value(value)}, not "
                           f"{format_value(env.get(lit.result.name, value))}")

    # ------------------------------------------------------------------ helpers
    def _ground(self, atom: Atom, env: Env) -> tuple[Value, ...]:
        return tuple(eval_expr(a, env, self.settings) for a in atom.args)

    def _partial(self, atom: Atom, env: Env) -> tuple:
        out = []
        for a in atom.args:
            try:
                out.append(eval_expr(a, env, self.settings))
            except Unbound:
                out.append(None)
        return tuple(out)

    def _pattern(self, atom: Atom, env: Env) -> str:
        parts = []
        for a in atom.args:
            try:
                parts.append(format_value(eval_expr(a, env, self.settings)))
            except Unbound:
                parts.append("_" if isinstance(a, Var) and a.anonymous else str(a))
        return f"{atom.pred}({', '.join(parts)})"

    def _nearby(self, pred: str, partial: tuple) -> str:
        """Facts of the same predicate for the same patient: what *is* known."""
        k = self.rs.key_index(pred)
        if k is None or k >= len(partial) or partial[k] is None:
            return ""
        rows = sorted((r for r in self.model.facts.get(pred, ()) if values_equal(r[k], partial[k])), key=row_key)
        if not rows:
            return f"; no {pred} fact at all for {format_value(partial[k])}"
        return "; known: " + ", ".join(fact_text(pred, r) for r in rows[:3])

    def _comparison_values(self, lit: Comparison, env: Env) -> str:
        def side(e: Expr) -> tuple[str, Value | None]:
            try:
                value = eval_expr(e, env, self.settings)
            except Unbound:
                return str(e), None
            if isinstance(e, Const):
                return format_value(value), value
            return f"{e} = {format_value(value)}", value

        (ltext, lval), (rtext, rval) = side(lit.left), side(lit.right)
        op = {"<=": "≤", ">=": "≥", "!=": "≠"}.get(lit.op, lit.op)
        if lit.op == "=" and isinstance(lit.left, Var) and not isinstance(lit.right, (Var, Const)):
            return f"{lit.left.name} = {_substituted(lit.right, env, self.settings)} = {format_value(lval)}"
        if isinstance(lit.right, Const) or isinstance(lit.left, Const):
            return f"{ltext} {op} {rtext}"
        return f"{ltext}, {rtext}: {format_value(lval)} {op} {format_value(rval)}"

    def _aggregate_values(self, lit: Aggregate, env: Env, rows: list[Env]) -> str:
        value = env.get(lit.result.name)
        what = "row" if lit.func == "count" else "value"
        return f"{lit.result.name} = {format_value(value) if value is not None else '?'} " \
               f"({lit.func} over {len(rows)} {what}{'s' if len(rows) != 1 else ''})"


def _substituted(e: Expr, env: Env, settings: dict[str, Value]) -> str:
    """An expression with its variables replaced by their values: `min(8 * 72, 800)`."""
    from .syntax import BinOp, Call
    if isinstance(e, Var):
        return format_value(env[e.name]) if e.name in env else e.name
    if isinstance(e, Setting):
        return format_value(settings.get(e.name, 0))
    if isinstance(e, Const):
        return format_value(e.value)
    if isinstance(e, BinOp):
        return f"{_substituted(e.left, env, settings)} {e.op} {_substituted(e.right, env, settings)}"
    if isinstance(e, Call):
        return f"{e.func}({', '.join(_substituted(a, env, settings) for a in e.args)})"
    return str(e)


def _visible(env: Env) -> Env:
    return {k: v for k, v in env.items() if not k.startswith(("_", "#"))}
