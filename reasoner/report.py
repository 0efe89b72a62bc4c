"""A patient's recommendation report, read off a model in the CRS vocabulary.

`reasoner recommend` shows, per patient: the CRS grade with its hypoxia and
hypotension grades; the recommended actions with dose and frequency, grouped by the
guideline section of the rules that call for them; contraindications, conflicts,
alternatives and warnings, each with the ids and sources of the rules behind it.
The vocabulary is shared/guideline/vocabulary.md; a rule set must declare
`crs_grade`, `indicated`, `contraindicated`, `recommend` and `conflict` to be reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, ReasonerError
from .model import Model, row_key, value_key
from .program import RuleSet
from .syntax import NO_SPAN, Value

REQUIRED = ("crs_grade", "indicated", "contraindicated", "recommend", "conflict")


@dataclass
class Item:
    """One line of a report: an action (or warning code) and the rules behind it."""

    action: str
    reason: str | None = None
    section: str = ""
    dose_mg: Value | None = None
    frequency: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    ordered: bool = False
    alternatives: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.section:
            out["section"] = self.section
        if self.dose_mg is not None or self.frequency:
            out["dose_mg"] = self.dose_mg
            out["frequency"] = "; ".join(self.frequency) or None
        if self.alternatives:
            out["alternatives"] = self.alternatives
        if self.ordered:
            out["ordered"] = True
        out["rules"] = self.rules
        out["sources"] = self.sources
        return out


@dataclass
class PatientReport:
    patient: str
    crs_grade: Value | None
    hypoxia_grade: Value | None
    hypotension_grade: Value | None
    recommendations: list[Item]
    contraindications: list[Item]
    conflicts: list[Item]
    warnings: list[Item]
    violations: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "crs_grade": self.crs_grade,
            "hypoxia_grade": self.hypoxia_grade,
            "hypotension_grade": self.hypotension_grade,
            "recommendations": [i.as_json() for i in self.recommendations],
            "contraindications": [i.as_json() for i in self.contraindications],
            "conflicts": [i.as_json() for i in self.conflicts],
            "warnings": [{"code": i.action, "rules": i.rules, "sources": i.sources} for i in self.warnings],
            "constraint_violations": self.violations,
        }


def require_crs_vocabulary(rules: RuleSet) -> None:
    missing = [p for p in REQUIRED if p not in rules.decls]
    if missing:
        raise ReasonerError([Diagnostic(NO_SPAN, f"`recommend` needs a rule set in the CRS vocabulary; "
                                        f"{rules.path} does not declare {', '.join(missing)}", "E016")])


_SUPPORTED = ("indicated", "contraindicated", "warning")
"""The predicates whose rules a report names: the rest of the firings are not looked at."""


class _Support:
    """Which rules concluded each derived fact (from the recorded firings)."""

    def __init__(self, rules: RuleSet, model: Model):
        from .explain import conclusions
        self.rules = rules
        self.by_fact: dict[tuple[str, tuple], list[int]] = {
            fact: list(dict.fromkeys(index for index, _ in firings))
            for fact, firings in conclusions(rules, model, _SUPPORTED).items()}

    def rules_of(self, pred: str, args: tuple) -> list[int]:
        return self.by_fact.get((pred, args), [])

    def names(self, indices: list[int]) -> list[str]:
        return [self.rules.rule_name(self.rules.rules[i]) for i in indices]

    def sources(self, indices: list[int]) -> list[str]:
        out: list[str] = []
        for i in indices:
            for s in self.rules.rules[i].sources:
                if s not in out:
                    out.append(s)
        return out


def build_reports(rules: RuleSet, model: Model) -> list[PatientReport]:
    """One report per patient of the model, in natural patient order."""
    support = _Support(rules, model)
    section_order = {title: i for i, title in enumerate(dict.fromkeys(
        rules.section_of(r) for r in rules.rules))}

    def by_patient(pred: str) -> dict[Value, list[tuple]]:
        out: dict[Value, list[tuple]] = {}
        for row in sorted(model.facts.get(pred, ()), key=row_key):
            out.setdefault(row[0], []).append(row)
        return out

    grades = by_patient("crs_grade")
    hypoxia, hypotension = by_patient("hypoxia_grade"), by_patient("hypotension_grade")
    recommend, contra, conflict = by_patient("recommend"), by_patient("contraindicated"), by_patient("conflict")
    doses, freq, warnings = by_patient("dose_mg"), by_patient("dose_frequency"), by_patient("warning")
    alternatives, ordered = by_patient("alternative"), by_patient("ordered")
    patients = set(grades) | set(recommend) | set(contra) | set(conflict) | set(warnings)
    patients |= {row[0] for row in model.facts.get("patient", ())}
    violations: dict[Value, list[str]] = {}
    for v in model.violations:
        rule = rules.rules[v.rule_index]
        who = next((val for val in v.bindings.values() if val in patients), None)
        violations.setdefault(who, []).append(rules.rule_name(rule) + (f": {rule.says}" if rule.says else ""))

    reports = []
    for p in sorted(patients, key=value_key):
        items = []
        for _, action in recommend.get(p, []):
            indicated_by = support.rules_of("indicated", (p, action))
            sections = sorted({rules.section_of(rules.rules[i]) for i in indicated_by}, key=section_order.get)
            item = Item(str(action), section=sections[0] if sections else "",
                        rules=support.names(indicated_by), sources=support.sources(indicated_by))
            for _, a, mg in doses.get(p, []):
                if a == action:  # 692.0 mg reads as 692 mg, whichever engine computed it
                    item.dose_mg = int(mg) if isinstance(mg, float) and mg.is_integer() else mg
            item.frequency = [str(t) for _, a, t in freq.get(p, []) if a == action]
            items.append(item)
        items.sort(key=lambda i: (section_order.get(i.section, 99), i.action))
        contras = []
        for _, action, reason in contra.get(p, []):
            by = support.rules_of("contraindicated", (p, action, reason))
            contras.append(Item(str(action), str(reason), rules=support.names(by), sources=support.sources(by)))
        conflicts = []
        for _, action, reason in conflict.get(p, []):
            by = support.rules_of("indicated", (p, action)) + support.rules_of("contraindicated", (p, action, reason))
            conflicts.append(Item(
                str(action), str(reason), rules=support.names(by), sources=support.sources(by),
                ordered=(p, action) in set(ordered.get(p, [])),
                alternatives=[str(b) for _, a, b in alternatives.get(p, []) if a == action]))
        warns = []
        for _, code in warnings.get(p, []):
            by = support.rules_of("warning", (p, code))
            warns.append(Item(str(code), rules=support.names(by), sources=support.sources(by)))
        reports.append(PatientReport(
            str(p), _one(grades.get(p)), _one(hypoxia.get(p)), _one(hypotension.get(p)),
            items, contras, conflicts, warns, violations.get(p, [])))
    return reports


def _one(rows: list[tuple] | None) -> Value | None:
    return rows[0][1] if rows else None


def rule_patient_counts(rules: RuleSet, model: Model) -> dict[int, int]:
    """rule index → for how many patients of this model the rule fired."""
    counts: dict[int, int] = {}
    for index, rows in model.firings.items():
        if not rows:
            continue
        names = model.variables.get(index, ())
        key = _key_variable(rules, rules.rules[index])
        if key is None or key not in names:
            counts[index] = 1  # a rule about no patient in particular: fired at all
            continue
        position = names.index(key)
        counts[index] = len({row[position] for row in rows})
    return counts


def _key_variable(rules: RuleSet, rule) -> str | None:
    from .syntax import Atom, Var
    atoms = ([rule.head] if rule.head is not None else []) + [a for a in rule.body if isinstance(a, Atom)]
    for atom in atoms:
        k = rules.key_index(atom.pred)
        if k is not None and isinstance(atom.args[k], Var):
            return atom.args[k].name
    return None


def write_rule_counts(rules: RuleSet, counts: dict[int, int], path: str) -> None:
    """The adherence-study table: every rule, its section, and the patients it fired for."""
    import csv
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["rule", "section", "concludes", "patients", "sources"])
        for index, rule in enumerate(rules.rules):
            if not rule.body:
                continue
            head = rule.head.pred if rule.head is not None else "(constraint)"
            writer.writerow([rules.rule_name(rule), rules.section_of(rule), head, counts.get(index, 0),
                             " ".join(rule.sources)])
