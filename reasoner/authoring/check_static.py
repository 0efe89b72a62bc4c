"""Static findings (W101-W108, and the load's own errors E0xx): what reading the rules
shows, with no patient evaluated.
"""
from __future__ import annotations

import re
from collections import Counter

from reasoner.analysis.program import RuleSet, dependencies
from reasoner.authoring.check_codes import CODES, Finding
from reasoner.language.syntax import (
    Aggregate,
    Atom,
    Negation,
    Rule,
    Span,
    body_atoms,
    expr_vars,
)


def static_findings(rs: RuleSet) -> list[Finding]:
    out = [Finding(d.code, d.span, d.message) for d in rs.problems]
    for allow in rs.allows:  # an .allow that allows nothing would hide nothing and say nothing
        if allow.code not in CODES or CODES[allow.code][0] != "warning":
            known = "an error cannot be allowed" if allow.code in CODES else "there is no such code"
            out.append(Finding("E001", allow.span, f".allow {allow.code}: {known}; only warnings can be allowed "
                               "(`reasoner check --codes` lists them)"))
    used: set[str] = set()
    for rule in rs.rules:
        out += _singletons(rule, rs)
        name = rs.rule_name(rule)
        if rule.body or rule.head is None:  # facts of the rule set need no annotations
            if rule.id is None:
                out.append(Finding("W102", rule.span, f"rule {rule} has no @id", name))
            if not rule.sources:
                out.append(Finding("W103", rule.span, f"rule {name} has no @source", name))
            if rule.says is None:
                out.append(Finding("W104", rule.span, f"rule {name} has no @says sentence", name))
        if rule.head is not None:
            used.add(rule.head.pred)
        for atom in body_atoms(rule.body):
            used.add(atom.pred)
    for req in rs.requirements:
        used |= {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
    for rule in rs.left_out:  # reported already; their predicates are not "unused"
        used |= {a.pred for a in body_atoms(rule.body)} | ({rule.head.pred} if rule.head else set())
    for pred, decl in rs.decls.items():
        if pred not in used:
            out.append(Finding("W105", decl.span, f"{pred} is declared ({decl.role}) but no rule uses it", pred))
    out += _unused_derived(rs)
    for rule in rs.nonlocal_rules:
        out.append(Finding("W107", rule.span, f"rule {rs.rule_name(rule)} joins facts of different patients: "
                           "patients cannot be evaluated apart", rs.rule_name(rule)))
    cited = {s for r in rs.rules + rs.left_out for s in r.sources}  # a rule left out for an error still cites
    for key, src in rs.sources.items():
        if key not in cited:
            out.append(Finding("W108", src.span, f"source {key} is cited by no rule", key))
    # a setting no rule reads: a --set of it changes nothing (a dose cap whose rule was lost)
    written = " ".join(str(r) for r in rs.rules + rs.left_out) + " " + " ".join(str(q) for q in rs.requirements)
    read = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", written))
    for name, decl in rs.settings.items():
        if name not in read:
            out.append(Finding("W109", decl.span, f"setting {name} is read by no rule: setting it changes nothing",
                               name))
    return out


def _singletons(rule: Rule, rs: RuleSet) -> list[Finding]:
    counts: Counter[str] = Counter()
    first: dict[str, Span] = {}
    exprs = list(rule.head.args) if rule.head else []

    def visit(body: tuple) -> None:
        for lit in body:
            if isinstance(lit, Atom):
                exprs.extend(lit.args)
            elif isinstance(lit, Negation):
                exprs.extend(lit.atom.args)
            elif isinstance(lit, Aggregate):
                exprs.append(lit.result)
                if lit.target is not None:
                    exprs.append(lit.target)
                visit(lit.body)
            else:
                exprs.extend([lit.left, lit.right])

    visit(rule.body)
    for e in exprs:
        for v in expr_vars(e):
            if not v.anonymous:
                counts[v.name] += 1
                first.setdefault(v.name, v.span if v.span.line else rule.span)
    return [Finding("W101", first[name], f"variable {name} appears only once in rule {rs.rule_name(rule)}; "
                    f"write _ (or _{name}) if it is meant to be ignored", rs.rule_name(rule))
            for name, n in sorted(counts.items()) if n == 1 and not name.startswith("_")]


def _unused_derived(rs: RuleSet) -> list[Finding]:
    """Derived predicates that nothing uses, counting uses by every rule as written: a rule
    left out for an error (E004, E007, E008, E009, ...) still uses what its body names."""
    deps = dependencies(rs)
    for rule in rs.left_out:
        if rule.head is not None:
            deps.setdefault(rule.head.pred, set()).update((a.pred, "pos") for a in body_atoms(rule.body))
    roots = {p for p, d in rs.decls.items() if d.role == "output"}
    for rule in rs.rules + rs.left_out:
        if rule.head is None:
            roots |= {a.pred for a in body_atoms(rule.body)}
    for req in rs.requirements:
        roots |= {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
    seen, stack = set(roots), list(roots)
    while stack:
        for q, _kind in deps.get(stack.pop(), ()):
            if q not in seen:
                seen.add(q)
                stack.append(q)
    derived = {r.head.pred for r in rs.rules if r.head is not None and r.body}
    return [Finding("W106", rs.decls[p].span, f"{p} is derived, but no output, constraint or requirement uses it", p)
            for p in sorted(derived - seen) if p in rs.decls]
