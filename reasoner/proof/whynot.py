"""Why not: each rule that could conclude a goal, tried literal by literal in the engine's
order, and the first literal that no binding satisfies, with why: a missing input fact,
a false comparison with its values, a negated fact that is present (with its proof), or
a derived literal that fails in turn (to a bounded depth).

Limits: why-not explains a ground goal only; an aggregate's explanation lists the rows
it counted, not a proof of each row's absence for the rows it did not count.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from reasoner.proof.match import Env, Unbound, aggregate, eval_expr, present, solve_literal
from reasoner.proof.tree import (
    CUT, FALSE, HOLDS, INPUT, MISSING, NO_RULE, PRESENT, RULE_FAILS, RULESET_FACT, WHY_NOT, FactKey, Node,
    bindings_text, env_key, fact_text, visible,
)
from reasoner.proof.statements import substituted
from reasoner.proof.why import Prover
from reasoner.engines.model import row_key, values_equal
from reasoner.analysis.program import Step, order_body
from reasoner.language.syntax import (
    Aggregate, Atom, Comparison, Const, Expr, Literal, Negation, Rule, Setting, Value, Var, expr_vars,
    format_value,
)

_SEARCH_BUDGET = 20_000
"""Bindings a why-not tries per rule before it stops looking (and says so)."""
_EVIDENCE_SHOWN = 20
"""Facts of an aggregate shown in a why-not (the count says how many there were)."""


@dataclass
class _Attempt:
    """One way a rule's body fails for a why-not goal: after `progress` conditions held
    with bindings `env`, condition `step` failed (None: all held, the head differs)."""

    progress: int
    env: Env
    step: int | None


class WhyNot(Prover):
    """Why-not explanations over one model (and, through `Prover`, proofs)."""

    def why_not(self, pred: str, args: tuple[Value, ...], depth: int = 3, *, max_candidates: int = 5) -> Node:
        """Why a ground fact does not hold (or its proof, if it does).

        Every rule that could conclude the goal is tried with every binding of its body
        that the model offers; each way it fails is a candidate, and the candidates that
        got furthest (most conditions met) are shown first, at most `max_candidates` per
        rule. A derived condition that fails is explained in turn, `depth` levels deep;
        deeper than that the step is a `cut`, never reported as missing data."""
        self._why_not_memo: dict[tuple[FactKey, int], Node] = {}
        self._limit = depth
        return self._why_not((pred, args), depth, max_candidates)

    def _why_not(self, key: FactKey, depth: int, max_candidates: int) -> Node:
        self._step()
        pred, args = key
        if self.holds(pred, args):
            return self.prove(pred, args)
        memo = self._why_not_memo.get((key, depth))
        if memo is not None:
            return copy.deepcopy(memo)
        text = fact_text(pred, args)
        decl = self.rs.decls.get(pred)
        if decl is not None and decl.role == "input":
            node = Node(MISSING, text, holds=False, pred=pred, args=args,
                        detail="no such fact in the input" + self._nearby(pred, args))
        else:
            node = Node(WHY_NOT, text, holds=False, pred=pred, args=args)
            for index, rule in enumerate(self.rs.rules):
                if rule.head is None or rule.head.pred != pred or not rule.body:
                    continue
                head = self._unify_head(rule.head, args)
                if head is None:
                    continue  # this rule concludes other constants: not a way to this goal
                node.children += self._rule_fails(index, rule, head, key, depth, max_candidates)
            if not node.children:
                node.kind = NO_RULE
                node.detail = "no rule concludes this (and it is not an input fact)"
        self._why_not_memo[(key, depth)] = copy.deepcopy(node)
        return node

    def _unify_head(self, head: Atom, args: tuple[Value, ...]) -> tuple[Env, list[tuple[Expr, Value]]] | None:
        """Bindings the goal gives the head's variables, and the head's computed arguments
        (`X * 2`) with the value the goal wants of them: checked once the body has bound
        their variables. None when a constant of the head is not the goal's."""
        env: Env = {}
        computed: list[tuple[Expr, Value]] = []
        for arg, value in zip(head.args, args):
            if isinstance(arg, Var):
                if arg.name in env and not values_equal(env[arg.name], value):
                    return None
                env[arg.name] = value
            elif isinstance(arg, (Const, Setting)):
                if not values_equal(eval_expr(arg, env, self.settings), value):
                    return None
            else:
                computed.append((arg, value))
        return env, computed

    def _rule_fails(self, index: int, rule: Rule, head: tuple[Env, list[tuple[Expr, Value]]], goal: FactKey,
                    depth: int, max_candidates: int) -> list[Node]:
        env, computed = head
        steps = order_body(rule.body, initially_bound=frozenset(env), head=rule.head, as_written=True)
        attempts: list[_Attempt] = []
        budget = [_SEARCH_BUDGET]

        def search(i: int, current: Env) -> None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            self._step()
            if i == len(steps):
                attempts.append(_Attempt(i, current, None))  # the body holds: the head computes another value
                return
            extensions = list(solve_literal(steps[i].literal, current, self.model, self.settings, rule.body,
                                            rule.head))
            if not extensions:
                attempts.append(_Attempt(i, current, i))
                return
            for nxt in sorted(extensions, key=env_key):
                search(i + 1, nxt)

        search(0, dict(env))
        attempts.sort(key=lambda a: (-a.progress, env_key(a.env)))
        nodes = []
        asked = "the goal sets " + ", ".join(f"{k} to {format_value(v)}" for k, v in visible(env).items()) \
            if visible(env) else ""
        for n, attempt in enumerate(attempts[:max_candidates], 1):
            # the goal's values are asked for, not known: shown apart, so no line reads `Mg = 500`
            # when the rule computes 576
            node = Node(RULE_FAILS, str(rule.head), holds=False, rule_index=index, says=self._says(index),
                        bindings={k: v for k, v in visible(attempt.env).items() if k not in env},
                        detail=asked)
            held = len(steps) if attempt.step is None else attempt.step
            node.children += [self._held(index, rule, steps[j].literal, attempt.env) for j in range(held)]
            if attempt.step is None:
                node.children.append(self._head_mismatch(rule, attempt.env, computed, goal))
            else:
                node.children.append(self._failure(index, rule, steps, attempt.step, attempt.env, depth,
                                                   max_candidates))
            if len(attempts) > 1:
                node.detail += ("; " if node.detail else "") + f"candidate {n} of {len(attempts)}" + (
                    f" (the search stopped after {_SEARCH_BUDGET:,} bindings)" if budget[0] <= 0 else "")
            nodes.append(node)
        if len(attempts) > max_candidates:
            rest: dict[str, int] = {}
            for attempt in attempts[max_candidates:]:
                what = "the head" if attempt.step is None else str(steps[attempt.step].literal)
                rest[what] = rest.get(what, 0) + 1
            nodes[-1].detail += "; the other " + str(len(attempts) - max_candidates) + " fail at " + ", ".join(
                f"{what} ({count})" for what, count in rest.items())
        return nodes

    def _held(self, index: int, rule: Rule, lit: Literal, env: Env) -> Node:
        """A condition that held for this candidate: the fact it matched (with where it was
        read), or the comparison, absence or aggregate with its values."""
        if isinstance(lit, Atom):
            key = (lit.pred, self._ground(lit, env))
            text = fact_text(*key)
            if key in self.model.origins:
                return Node(INPUT, text, pred=key[0], args=key[1], origin=self.model.origins[key],
                            detail="fact from the input")
            if key in self._static:
                return Node(RULESET_FACT, text, pred=key[0], args=key[1], detail="fact stated in the rule set")
            return Node(HOLDS, text, pred=key[0], args=key[1], detail=f"derived (reasoner why '{text}' proves it)")
        position = next(i for i, b in enumerate(rule.body) if b is lit)
        return self._premise_node(index, position, lit, env, depth=1)

    def _head_mismatch(self, rule: Rule, env: Env, computed: list[tuple[Expr, Value]], goal: FactKey) -> Node:
        """Every condition holds, yet the goal is not concluded: the head computes another value."""
        assert rule.head is not None
        parts = []
        for expr, wanted in computed:
            try:
                value = eval_expr(expr, env, self.settings)
            except (Unbound, TypeError):
                parts.append(f"{expr} cannot be computed from {bindings_text(env)}")
                continue
            if isinstance(value, float) and value != value:
                parts.append(f"{expr} = {substituted(expr, env, self.settings)} divides by zero: no conclusion")
            elif not values_equal(value, wanted):
                parts.append(f"{expr} = {substituted(expr, env, self.settings)} = {format_value(value)}, "
                             f"not {format_value(wanted)}")
        try:
            concluded = fact_text(rule.head.pred, self._ground(rule.head, env))
        except (Unbound, TypeError):
            concluded = str(rule.head)
        detail = "; ".join(parts) or "the conditions hold"
        return Node(FALSE, f"head {rule.head}", holds=False,
                    detail=f"{detail}: this rule concludes {concluded}, not {fact_text(*goal)}")

    def _failure(self, index: int, rule: Rule, steps: list[Step], at: int, env: Env, depth: int,
                 max_candidates: int) -> Node:
        lit = steps[at].literal
        if isinstance(lit, Atom):
            pattern = self._pattern(lit, env)
            ground = all(not isinstance(a, Var) or a.name in env for a in lit.args)
            decl = self.rs.decls.get(lit.pred)
            derived = decl is not None and decl.role != "input"
            if ground and derived:
                if depth <= 0:
                    return Node(CUT, pattern, holds=False, pred=lit.pred, args=self._ground(lit, env),
                                detail=f"does not hold; not explained further at --depth {self._limit} "
                                       f"(--depth {self._limit + 1} or more explains it)")
                return self._why_not((lit.pred, self._ground(lit, env)), depth - 1, max_candidates)
            if derived:
                return Node(MISSING, pattern, holds=False, pred=lit.pred,
                            detail=f"no {pattern} was derived (no {lit.pred} fact matches)")
            return Node(MISSING, pattern, holds=False, pred=lit.pred,
                        detail=f"no {pattern} in the input" + self._nearby(lit.pred, self._partial(lit, env)))
        if isinstance(lit, Comparison):
            return Node(FALSE, str(lit), holds=False,
                        detail=self._comparison_values(lit, env) + self._provenance(lit, steps[:at], env))
        if isinstance(lit, Negation):
            found = sorted(present(lit.atom, env, self.model, self.settings), key=row_key)
            proofs = [self.prove(lit.atom.pred, f) for f in found[:3]]
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            return Node(PRESENT, "!" + self._pattern(lit.atom, env), holds=False, pred=lit.atom.pred,
                        detail=", ".join(fact_text(lit.atom.pred, f) for f in found[:3]) + more
                               + (" holds" if len(found) == 1 else " hold"), children=proofs)
        value, rows = aggregate(lit, env, self.model, self.settings, rule.body, rule.head)
        if value is None:
            return Node(FALSE, str(lit), holds=False,
                        detail=f"{lit.func} of nothing: no row matches {', '.join(map(str, lit.body))}")
        counted = self._aggregate_evidence(lit, rows)
        what = "row" if lit.func == "count" else "value"
        return Node(FALSE, str(lit), holds=False,
                    detail=f"{lit.func} over {len(rows)} {what}{'s' if len(rows) != 1 else ''} is "
                           f"{format_value(value)}, not {format_value(env.get(lit.result.name, value))}",
                    children=counted)

    def _aggregate_evidence(self, lit: Aggregate, rows: list[Env]) -> list[Node]:
        seen: list[FactKey] = []
        for row in sorted(rows, key=env_key):
            for atom in lit.body:
                if isinstance(atom, Atom):
                    fact = (atom.pred, self._ground(atom, row))
                    if fact not in seen:
                        seen.append(fact)
        return [self.prove(*fact) for fact in seen[:_EVIDENCE_SHOWN]]

    def _provenance(self, lit: Comparison, before: list[Step], env: Env) -> str:
        """Where the comparison's values came from: the fact (or equation) that bound each."""
        wanted = {v.name for v in expr_vars(lit.left) + expr_vars(lit.right)}
        found = []
        for step in before:
            names = [n for n in step.binds if n in wanted and not n.startswith(("_#", "#"))]
            if not names:
                continue
            if isinstance(step.literal, Atom):
                found.append(f"{', '.join(names)} from {self._pattern(step.literal, env)}")
            elif isinstance(step.literal, Comparison):
                found.append(f"{', '.join(names)} from {self._comparison_values(step.literal, env)}")
            wanted -= set(names)
        return f" ({'; '.join(found)})" if found else ""
