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

import copy
import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Collection, Iterator

from reasoner.proof.match import Env, Unbound, aggregate, compare, eval_expr, present, solve_literal
from reasoner.engines.model import Model, row_key, value_key, values_equal
from reasoner.plan.semantics import has_value
from reasoner.analysis.program import RuleSet, Step, aggregate_keys, order_body
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Literal, Negation, Rule, Setting, Span, Value, Var,
    expr_vars, format_value,
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
HOLDS = "holds"            # in a why-not: a derived condition that held (its proof: `why`)


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
        seen: set[tuple] = set()  # a recursive rule's firing may be found again in a later round
        for row, bindings in zip(model.firings[index], model.rule_firings(index)):
            if row in seen:
                continue
            seen.add(row)
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
        self._best: dict[FactKey, tuple[int, Env]] = {}  # each fact's minimal firing, once chosen

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
        """Distinct whole derivations of a fact, at most `max_proofs`, the minimal one first.

        Two derivations differ in some step: another rule, other bindings, or a premise
        derived another way; a fact that is an input *and* derivable has its plain-fact
        proof first. A derivation never uses a fact to derive itself (no cycles), so the
        enumeration is finite. An aggregate's counted facts get their minimal proof."""
        self._derivation_memo: dict[tuple[FactKey, int], list[Node]] = {}
        found = self._derivations((pred, args), depth, frozenset(), max_proofs)
        return [_unshared(p) for p in found]

    def _derivations(self, key: FactKey, depth: int, ancestors: frozenset[FactKey], limit: int) -> list[Node]:
        memo_key = (key, depth)
        recursive = key[0] in self.rs.recursive  # only there can an ancestor recur below
        if not recursive and memo_key in self._derivation_memo:
            return self._derivation_memo[memo_key]
        pred, args = key
        text = fact_text(pred, args)
        out: list[Node] = []
        if key in self.model.origins:
            out.append(Node(INPUT, text, pred=pred, args=args, origin=self.model.origins[key],
                            detail="fact from the input"))
        if key in self._static:
            out.append(Node(RULESET_FACT, text, pred=pred, args=args, detail="fact stated in the rule set"))
        support = self._support.get(key, [])
        if depth <= 0:
            if not out and support:
                out.append(Node(CUT, text, pred=pred, args=args, detail="proof cut here (--depth)"))
            return out
        below = ancestors | {key}
        for index, bindings in sorted(support, key=self._preference):
            if len(out) >= limit:
                break
            rule = self.rs.rules[index]
            choices: list[list[Node]] = []
            for position, lit in enumerate(rule.body):
                if isinstance(lit, Atom):
                    fact = (lit.pred, self._ground(lit, bindings))
                    alternatives = [] if fact in below else self._derivations(fact, depth - 1, below, limit)
                else:
                    alternatives = [self._premise_node(index, position, lit, bindings, depth - 1)]
                if not alternatives:
                    break  # every derivation of this premise goes through the goal itself
                choices.append(alternatives)
            else:
                for children in itertools.islice(itertools.product(*choices), limit - len(out)):
                    out.append(Node(DERIVED, text, pred=pred, args=args, rule_index=index,
                                    bindings=_visible(bindings), detail=self._head_values(rule, bindings),
                                    children=list(children)))
        if not recursive:
            self._derivation_memo[memo_key] = out
        return out

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
        if alternative is None:
            alternative = self._best.get(key)
            if alternative is None:
                alternative = self._best[key] = min(support, key=self._preference)
        index, bindings = alternative
        rule = self.rs.rules[index]
        node = Node(DERIVED, text, pred=pred, args=args, rule_index=index, bindings=_visible(bindings),
                    detail=self._head_values(rule, bindings))
        for position, lit in enumerate(rule.body):
            node.children.append(self._premise_node(index, position, lit, bindings, depth - 1))
        return node

    def violations(self, rule_index: int, depth: int = 50) -> list[Node]:
        """A proof of each violation of the integrity constraint `rule_index`: why its
        body holds, one child per body literal (the step's `pred` is None: no head)."""
        rule = self.rs.rules[rule_index]
        names = self.model.variables.get(rule_index, ())
        seen: set[tuple] = set()
        out = []
        for firing in sorted(self.model.violations, key=lambda f: _env_key(f.bindings)):
            if firing.rule_index != rule_index:
                continue
            shown = _visible(firing.bindings)
            key = _env_key(shown)
            if key in seen:
                continue
            seen.add(key)
            bindings = {n: firing.bindings[n] for n in names if n in firing.bindings} or firing.bindings
            node = Node(DERIVED, f"violation of {self.rs.rule_name(rule)}", rule_index=rule_index,
                        bindings=shown, detail=f"constraint {rule} holds with {_bindings_text(shown)}")
            for position, lit in enumerate(rule.body):
                node.children.append(self._premise_node(rule_index, position, lit, bindings, depth - 1))
            out.append(node)
        return out

    def _head_values(self, rule: Rule, bindings: Env) -> str:
        """The head's computed arguments with their values: `V * 2 = 3 * 2 = 6`."""
        if rule.head is None:
            return ""
        parts = []
        for arg in rule.head.args:
            if isinstance(arg, (BinOp, Call)):
                try:
                    parts.append(f"{arg} = {_substituted(arg, bindings, self.settings)} = "
                                 f"{format_value(eval_expr(arg, bindings, self.settings))}")
                except (Unbound, TypeError):
                    continue
        return "; ".join(parts)

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
            if i == len(steps):
                attempts.append(_Attempt(i, current, None))  # the body holds: the head computes another value
                return
            extensions = list(solve_literal(steps[i].literal, current, self.model, self.settings, rule.body,
                                            rule.head))
            if not extensions:
                attempts.append(_Attempt(i, current, i))
                return
            for nxt in sorted(extensions, key=_env_key):
                search(i + 1, nxt)

        search(0, dict(env))
        attempts.sort(key=lambda a: (-a.progress, _env_key(a.env)))
        nodes = []
        asked = "the goal sets " + ", ".join(f"{k} to {format_value(v)}" for k, v in _visible(env).items()) \
            if _visible(env) else ""
        for n, attempt in enumerate(attempts[:max_candidates], 1):
            # the goal's values are asked for, not known: shown apart, so no line reads `Mg = 500`
            # when the rule computes 576
            node = Node(RULE_FAILS, str(rule.head), holds=False, rule_index=index,
                        bindings={k: v for k, v in _visible(attempt.env).items() if k not in env},
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
                parts.append(f"{expr} cannot be computed from {_bindings_text(env)}")
                continue
            if isinstance(value, float) and value != value:
                parts.append(f"{expr} = {_substituted(expr, env, self.settings)} divides by zero: no conclusion")
            elif not values_equal(value, wanted):
                parts.append(f"{expr} = {_substituted(expr, env, self.settings)} = {format_value(value)}, "
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
        for row in sorted(rows, key=_env_key):
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
        """The comparison with its values, as a statement that is true whether or not the
        comparison holds: `T = 37.9; 37.9 ≥ 38.0 is false`, `Mg = min(8 * 72, 800) = 576, not 500`."""
        missing = [self._no_value(e, env) for e in (lit.left, lit.right)]
        if any(missing):  # no comparison holds with a side that has no value (semantics.py)
            return "; ".join(m for m in missing if m) + ", so the condition fails"
        try:
            left, right = eval_expr(lit.left, env, self.settings), eval_expr(lit.right, env, self.settings)
        except Unbound as exc:
            return f"{lit}: {exc} has no value"
        holds = compare(lit.op, left, right)
        if lit.op == "=":
            for var, expr, value, other in ((lit.left, lit.right, left, right), (lit.right, lit.left, right, left)):
                if isinstance(var, Var) and not isinstance(expr, (Var, Const)):
                    text = f"{var.name} = {_substituted(expr, env, self.settings)} = {format_value(other)}"
                    return text if holds else f"{text}, not {format_value(value)}"
        op = {"<=": "≤", ">=": "≥", "!=": "≠"}.get(lit.op, lit.op)
        if holds and isinstance(lit.left, Var) and isinstance(lit.right, Const):  # the common filter, as a true chain
            return f"{lit.left.name} = {format_value(left)} {op} {format_value(right)}"
        sides = [self._side(e, env) for e in (lit.left, lit.right) if not isinstance(e, Const)]
        verdict = f"{format_value(left)} {op} {format_value(right)} {'holds' if holds else 'is false'}"
        return "; ".join(sides + [verdict])

    def _no_value(self, e: Expr, env: Env) -> str:
        """`1 / (W - 100) = 1 / (100 - 100) has no value (it divides by zero)` when `e` is
        computable from `env` and has no value; "" otherwise."""
        try:
            if has_value(eval_expr(e, env, self.settings)):
                return ""
        except Unbound:
            return ""
        return f"{e} = {_substituted(e, env, self.settings)} has no value{self._why_no_value(e, env)}"

    def _why_no_value(self, e: Expr, env: Env) -> str:
        if isinstance(e, BinOp):
            if e.op == "/" and has_value(divisor := eval_expr(e.right, env, self.settings)) and divisor == 0:
                return " (it divides by zero)"
            return self._why_no_value(e.left, env) or self._why_no_value(e.right, env)
        if isinstance(e, Call):
            return next((w for a in e.args if (w := self._why_no_value(a, env))), "")
        return ""

    def _side(self, e: Expr, env: Env) -> str:
        value = format_value(eval_expr(e, env, self.settings))
        if isinstance(e, Var):
            return f"{e.name} = {value}"
        if isinstance(e, Setting):
            return f"${e.name} = {value}"
        return f"{e} = {_substituted(e, env, self.settings)} = {value}"

    def _aggregate_values(self, lit: Aggregate, env: Env, rows: list[Env]) -> str:
        value = env.get(lit.result.name)
        what = "row" if lit.func == "count" else "value"
        return f"{lit.result.name} = {format_value(value) if value is not None else '?'} " \
               f"({lit.func} over {len(rows)} {what}{'s' if len(rows) != 1 else ''})"


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


def _unshared(node: Node) -> Node:
    """A copy in which no node object appears twice (derivations share sub-proofs while
    they are enumerated; a tree whose node ids are paths must not)."""
    return replace(node, children=[_unshared(c) for c in node.children], bindings=dict(node.bindings))


def _env_key(env: Env) -> tuple:
    return tuple((k, value_key(v)) for k, v in sorted(env.items()))


def _bindings_text(env: Env) -> str:
    return ", ".join(f"{k} = {format_value(v)}" for k, v in sorted(_visible(env).items()))


def _substituted(e: Expr, env: Env, settings: dict[str, Value]) -> str:
    """An expression with its variables and settings replaced by their values, with the
    parentheses its structure needs: `(W - 10) / 2` → `(72 - 10) / 2`."""
    def sub(x: Expr) -> Expr:
        if isinstance(x, Var) and x.name in env:
            return Const(env[x.name])
        if isinstance(x, Setting) and x.name in settings:
            return Const(settings[x.name])
        if isinstance(x, BinOp):
            return BinOp(x.op, sub(x.left), sub(x.right))
        if isinstance(x, Call):
            return Call(x.func, tuple(sub(a) for a in x.args))
        return x
    return str(sub(e))


def _visible(env: Env) -> Env:
    return {k: v for k, v in env.items() if not k.startswith(("_#", "#"))}


def to_json_obj(root: Node, rs: RuleSet) -> dict[str, Any]:
    """A proof as the JSON object `why --format json` writes and `reasoner verify` reads
    (docs/output.md): nodes numbered by path, each rule step with its id and digest."""
    number_nodes(root)

    def obj(node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {"id": node.id, "kind": node.kind, "text": node.text, "holds": node.holds}
        if node.pred is not None:
            out["predicate"] = node.pred
        if node.args is not None:
            out["args"] = list(node.args)
        if node.rule_index is not None:
            rule = rs.rules[node.rule_index]
            # source keys only: their full citations are listed once per document ("sources")
            out["rule"] = {"id": rs.rule_name(rule), "digest": rule.digest, "says": rule.says,
                           "sources": list(rule.sources), "at": str(rule.span)}
        if node.bindings:
            out["bindings"] = node.bindings
        if node.detail:
            out["detail"] = node.detail
        if node.origin is not None:
            out["origin"] = str(node.origin)
        if node.children:
            out["children"] = [obj(c) for c in node.children]
        return out

    return obj(root)
