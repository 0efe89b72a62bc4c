"""What the semantic checks decide (items) and what an engine model shows about one.

An item is a key: ("rule", i) live or dead, ("constraint", i), ("require", j), ("range",
i), ("redundant", i), ("conflict",), ("clash",). The solver (check_solver.py) decides what
its encoding covers; the search (check_search.py) takes the rest. Both read models alike:
a requirement's failures, the rules that concluded what a violated constraint matched, a
conclusion outside its declaration (the solver to reproduce its witness in the engine, the
search to report what an explored patient shows).
"""
from __future__ import annotations

from reasoner.analysis.program import RuleSet, check_value
from reasoner.authoring.vocabulary import CONFLICT, clash_predicates, has_conflicts
from reasoner.engines.model import Model, row_key
from reasoner.language.syntax import (
    Atom,
    Const,
    Fact,
    Rule,
    Var,
    body_atoms,
    format_value,
)
from reasoner.proof.match import solve

Item = tuple


def item_group(item: Item | None) -> Item:
    """The item a finding counts under: every conflict tuple under ("conflict",), every clash under ("clash",)."""
    item = item or ()
    return (item[0],) if item and item[0] in ("conflict", "clash") else item


def not_checked(rs: RuleSet) -> set[Item]:
    """The items the semantic checks leave alone because they depend on a rule left out for
    an error (E004, E007, E008, E009, ...): with that rule missing, a live rule would look
    dead, a violated constraint would look satisfied. Semantic findings are about the rest,
    the part of the rule set the errors do not touch."""
    if not rs.left_out:
        return set()
    tainted = {r.head.pred for r in rs.left_out if r.head is not None}
    changed = True
    while changed:
        changed = False
        for rule in rs.rules:
            if rule.head is not None and rule.head.pred not in tainted and \
                    any(a.pred in tainted for a in body_atoms(rule.body)):
                tainted.add(rule.head.pred)
                changed = True
    out: set[Item] = set()
    for item in items(rs):
        if item[0] == "require":
            req = rs.requirements[item[1]]
            reads = {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
        elif item[0] == "conflict":
            reads = {CONFLICT}
        elif item[0] == "clash":
            reads = set(clash_predicates(rs) or ())
        else:
            reads = {a.pred for a in body_atoms(rs.rules[item[1]].body)}
        if reads & tainted:
            out.add(item)
            if item[0] == "rule":
                out.add(("redundant", item[1]))
    return out


def items(rs: RuleSet) -> list[Item]:
    """Every item a semantic check decides (ranges, redundancy and clashes where they apply)."""
    out: list[Item] = []
    for i, rule in enumerate(rs.rules):
        if rule.body:
            out.append(("constraint", i) if rule.head is None else ("rule", i))
            if rule.head is not None and ranged_positions(rs, rule):
                out.append(("range", i))
    out += [("require", j) for j in range(len(rs.requirements))]
    if has_conflicts(rs):
        out.append(("conflict",))
    if clash_predicates(rs) is not None:
        out.append(("clash",))
    return out


def item_label(rs: RuleSet, item: Item) -> str:
    kind = item[0]
    if kind in ("rule", "constraint", "range", "redundant"):
        name = rs.rule_name(rs.rules[item[1]])
        return {"rule": f"rule {name}", "constraint": f"constraint {name}", "range": f"the range of {name}'s "
                "conclusions", "redundant": f"redundancy of {name}"}[kind]
    if kind == "require":
        return f"requirement \"{rs.requirements[item[1]].text}\""
    return "conflicts" if kind == "conflict" else "indicated and contraindicated together"


def ranged_positions(rs: RuleSet, rule: Rule) -> list[int]:
    decl = rs.decls.get(rule.head.pred) if rule.head is not None else None
    if decl is None or decl.role == "input":
        return []
    return [i for i, a in enumerate(decl.args)
            if (a.type in ("number", "integer") and (a.low is not None or a.type == "integer")) or a.type in rs.types]


def concluding_rules(rs: RuleSet, model: Model, constraint: Rule, bindings: dict) -> list[str]:
    """The rules that concluded the facts a violated constraint matched."""
    from reasoner.proof.match import Unbound, eval_expr
    wanted = set()
    for atom in constraint.body:
        if isinstance(atom, Atom):
            try:
                wanted.add((atom.pred, tuple(eval_expr(a, bindings, model.settings) for a in atom.args)))
            except Unbound:
                continue
    names: list[str] = []
    for index, rule in enumerate(rs.rules):
        if rule.head is None or index not in model.heads:
            continue
        for b in model.rule_firings(index):
            if (rule.head.pred, model.head_of(index, b)) in wanted:
                name = rs.rule_name(rule)
                if name not in names:
                    names.append(name)
    return names



def requirement_failures(req, model: Model, is_patient) -> list[tuple[str, str]]:
    """(patient, what fails) for each solution of the requirement's body that breaks it."""
    failing: list[tuple[str, str]] = []
    for env in solve(req.body, {}, model, model.settings, None):
        pid = next((str(v) for v in env.values() if is_patient(str(v))), None)
        if pid is None:
            continue
        body = " and ".join(shown_atom(a, env) for a in req.body if isinstance(a, Atom))
        if req.kind == "none":
            failing.append((pid, f"{body} {'hold' if ' and ' in body else 'holds'} together, which it rules out"))
            continue
        assert req.head is not None
        rows = sorted({tuple(row) for row in matches(req.head, env, model)}, key=row_key)
        n = len(rows)
        wanted = "exactly one" if req.kind == "one" else "at least one"
        if (req.kind == "one" and n != 1) or (req.kind == "some" and n == 0):
            answers = ", ".join(str(Fact(req.head.pred, r)) for r in rows[:4]) + (" ..." if n > 4 else "")
            failing.append((pid, f"{body} holds, with {'no' if n == 0 else n} {req.head.pred} "
                                 f"{'answer' if n == 1 else 'answers'}{': ' + answers if n else ''} "
                                 f"(it requires {wanted} {shown_atom(req.head, env)})"))
    return failing


def shown_atom(atom: Atom, env: dict) -> str:
    """An atom with the values a solution gives its variables (`_` where it gives none)."""
    args = []
    for a in atom.args:
        if isinstance(a, Var):
            args.append(format_value(env[a.name]) if a.name in env else "_" if a.anonymous else a.name)
        elif isinstance(a, Const):
            args.append(format_value(a.value))
        else:
            args.append(str(a))
    return f"{atom.pred}({', '.join(args)})"



def matches(atom: Atom, env: dict, model: Model) -> list[tuple]:
    from reasoner.proof.match import match_atom
    return [tuple(e[a.name] if isinstance(a, Var) else a.value for a in atom.args)  # type: ignore[union-attr]
            for e in match_atom(atom, env, model, model.settings)]


def head_problem(rs: RuleSet, pred: str, head: tuple, position: int | None = None) -> str | None:
    """`p(...): arg why` when a concluded tuple breaks its predicate's declaration."""
    decl = rs.decls[pred]
    for i, (value, spec) in enumerate(zip(head, decl.args)):
        if position is not None and i != position:
            continue
        if isinstance(value, float) and value != value:
            problem: str | None = "is not a number (a division by zero)"
        else:
            problem = check_value(value, spec, rs.types)
        if problem is not None:
            return f"{Fact(pred, head)}: {spec.name} {problem}"
    return None


def out_of_range(rs: RuleSet, model: Model, index: int, position: int | None = None) -> str | None:
    """A conclusion of rule `index` outside its predicate's declaration, or None."""
    rule = rs.rules[index]
    if rule.head is None or index not in model.heads:
        return None
    for b in model.rule_firings(index):
        problem = head_problem(rs, rule.head.pred, model.head_of(index, b), position)
        if problem is not None:
            return problem
    return None
