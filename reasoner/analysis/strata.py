"""Whole-program analyses of a checked rule set: the dependency graph of its predicates,
stratification (negation and aggregation never through recursion; strata in evaluation
order, recursive predicates marked) and patient locality (whether patients may be
evaluated apart).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import Aggregate, Atom, Negation, Rule, Var, body_atoms

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet


def dependencies(ruleset: RuleSet) -> dict[str, set[tuple[str, str]]]:
    """head predicate → {(body predicate, 'pos'|'neg'|'agg')}."""
    deps: dict[str, set[tuple[str, str]]] = {p: set() for p in ruleset.decls}
    for rule in ruleset.rules:
        if rule.head is None:
            continue
        edges = deps.setdefault(rule.head.pred, set())
        for lit in rule.body:
            if isinstance(lit, Atom):
                edges.add((lit.pred, "pos"))
            elif isinstance(lit, Negation):
                edges.add((lit.atom.pred, "neg"))
            elif isinstance(lit, Aggregate):
                for atom in body_atoms(lit.body):
                    edges.add((atom.pred, "agg"))
    return deps


def stratify(ruleset: RuleSet) -> list[Diagnostic]:
    """Set `ruleset.strata` and `ruleset.recursive` from its rules; return each negation
    (E008) and aggregation (E009) through recursion."""
    deps = dependencies(ruleset)
    components = _tarjan(sorted(deps), {p: sorted(q for q, _ in e) for p, e in deps.items()})
    where = {p: i for i, comp in enumerate(components) for p in comp}
    problems: list[Diagnostic] = []
    for rule in ruleset.rules:
        if rule.head is None:
            continue
        head_comp = where[rule.head.pred]
        for lit in rule.body:
            if isinstance(lit, Negation) and where.get(lit.atom.pred) == head_comp:
                problems.append(Diagnostic(lit.span, f"negation through recursion: {rule.head.pred} depends on "
                                           f"!{lit.atom.pred}, which depends on {rule.head.pred} (cyclic negation; "
                                           "the program has no stratified model)", "E008"))
            if isinstance(lit, Aggregate) and any(where.get(a.pred) == head_comp for a in body_atoms(lit.body)):
                problems.append(Diagnostic(lit.span, f"aggregation through recursion: {rule.head.pred} aggregates "
                                           f"over predicates that depend on {rule.head.pred}", "E009"))
    ruleset.strata = components
    ruleset.recursive = set()
    for comp in components:
        if len(comp) > 1 or any(q == comp[0] for q, _ in deps.get(comp[0], ())):
            ruleset.recursive |= set(comp)
    return problems


def _tarjan(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components, dependencies first (iterative: deep programs are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges.get(nxt, []))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))
    return out


def analyse_locality(ruleset: RuleSet) -> None:
    """A rule is patient-local when every keyed atom in it uses one variable as the key
    (the head's, if the head is keyed). Then patients never join, and can be run apart."""
    ruleset.nonlocal_rules = [r for r in ruleset.rules if not rule_is_local(ruleset, r)]
    ruleset.patient_local = not ruleset.nonlocal_rules


def rule_is_local(ruleset: RuleSet, rule: Rule) -> bool:
    atoms = ([rule.head] if rule.head is not None else []) + body_atoms(rule.body)
    keys = set()
    for atom in atoms:
        k = ruleset.key_index(atom.pred)
        if k is None:
            continue
        arg = atom.args[k]
        keys.add(arg.name if isinstance(arg, Var) and not arg.anonymous else f"#{id(arg)}")
    if rule.head is not None and ruleset.key_index(rule.head.pred) is None and keys:
        return False  # a patient-free conclusion drawn from patient facts mixes patients
    return len(keys) <= 1
