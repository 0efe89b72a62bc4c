"""Why: proof trees read off a finished model.

The engine kept every rule firing with all of its variable bindings, so a proof step is
a lookup, not a re-derivation. Among a fact's firings the prover picks one of minimal
height (each fact's rank is the height of its lowest proof, computed to a fixpoint, so
recursive rules cannot send it round a cycle); `proofs` enumerates distinct whole
derivations, the minimal one first; `violations` proves an integrity constraint's body.
"""
from __future__ import annotations

import itertools
from typing import Collection

from reasoner.proof.match import Env
from reasoner.proof.statements import StepText
from reasoner.proof.tree import (
    ABSENT, AGGREGATE, COMPARISON, CUT, DERIVED, INPUT, MISSING, RULESET_FACT, FactKey, Node, bindings_text,
    env_key, fact_text, unshared, visible,
)
from reasoner.engines.model import Model, row_key
from reasoner.analysis.program import RuleSet, aggregate_keys
from reasoner.language.syntax import Aggregate, Atom, Comparison, Const, Literal, Negation, Value


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


class Prover(StepText):
    """Proofs of the facts of one model (and of its constraint violations)."""

    def __init__(self, ruleset: RuleSet, model: Model):
        super().__init__(ruleset, model)
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
        return [unshared(p) for p in found]

    def _derivations(self, key: FactKey, depth: int, ancestors: frozenset[FactKey], limit: int) -> list[Node]:
        self._step()
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
                    out.append(Node(DERIVED, text, pred=pred, args=args, rule_index=index, says=self._says(index),
                                    bindings=visible(bindings), detail=self._head_values(rule, bindings),
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
        node = Node(DERIVED, text, pred=pred, args=args, rule_index=index, says=self._says(index),
                    bindings=visible(bindings),
                    detail=self._head_values(rule, bindings))
        for position, lit in enumerate(rule.body):
            node.children.append(self._premise_node(index, position, lit, bindings, depth - 1))
        return node

    # ------------------------------------------------------------------ violations
    def violations(self, rule_index: int, depth: int = 50) -> list[Node]:
        """A proof of each violation of the integrity constraint `rule_index`: why its
        body holds, one child per body literal (the step's `pred` is None: no head)."""
        rule = self.rs.rules[rule_index]
        names = self.model.variables.get(rule_index, ())
        seen: set[tuple] = set()
        out = []
        for firing in sorted(self.model.violations, key=lambda f: env_key(f.bindings)):
            if firing.rule_index != rule_index:
                continue
            shown = visible(firing.bindings)
            key = env_key(shown)
            if key in seen:
                continue
            seen.add(key)
            bindings = {n: firing.bindings[n] for n in names if n in firing.bindings} or firing.bindings
            node = Node(DERIVED, f"violation of {self.rs.rule_name(rule)}", rule_index=rule_index,
                        says=self._says(rule_index),
                        bindings=shown, detail=f"constraint {rule} holds with {bindings_text(shown)}")
            for position, lit in enumerate(rule.body):
                node.children.append(self._premise_node(rule_index, position, lit, bindings, depth - 1))
            out.append(node)
        return out

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
