"""Integrity-constraint violations as a reader sees them: each constraint once per
distinct set of named values, one located line each (every evaluating command prints
them on stderr; the rule set's example patients fail on them)."""
from __future__ import annotations

from reasoner.analysis.program import RuleSet
from reasoner.engines.model import Firing, value_key
from reasoner.language.syntax import Value, format_value


def shown_values(bindings: dict[str, Value]) -> str:
    """`P = p2, M = 150`: the named variables of a firing (not `_` nor computed `#h`)."""
    return ", ".join(f"{k} = {format_value(v)}" for k, v in bindings.items() if not k.startswith(("_#", "#")))


def distinct_violations(violations: list[Firing]) -> list[Firing]:
    """Integrity-constraint violations told apart by what a reader sees: the constraint and its named variables."""
    seen: dict[tuple, Firing] = {}
    for v in violations:
        shown = {k: x for k, x in v.bindings.items() if not k.startswith(("_#", "#"))}
        seen.setdefault((v.rule_index, tuple((k, value_key(x)) for k, x in sorted(shown.items()))),
                        Firing(v.rule_index, shown))
    return [seen[k] for k in sorted(seen)]


def violation_lines(rules: RuleSet, violations: list[Firing]) -> list[str]:
    """Each violated integrity constraint once per distinct set of values, in rule order:
    `rules/x.dl:8:1: violation[too_high]: No dose above the maximum. (P = p2, M = 150)`."""
    out = []
    for v in distinct_violations(violations):
        rule = rules.rules[v.rule_index]
        says = f"{rule.says} " if rule.says else ""
        out.append(f"{rule.span}: violation[{rules.rule_name(rule)}]: {says}({shown_values(v.bindings)})")
    return out
