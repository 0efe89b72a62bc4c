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
from typing import Any, Sequence

from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.engines.model import Model, value_key
from reasoner.analysis.program import RuleSet, fill_settings
from reasoner.language.syntax import NO_SPAN, STRENGTHS, Value, format_value
from reasoner.proof.violations import distinct_violations, shown_values

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
    strength: str | None = None
    choice: str | None = None
    options: list["Item"] = field(default_factory=list)
    """For a choice item (`choice` set, action "one of: ..."): the alternatives to choose among."""
    says: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.strength is not None:
            out["strength"] = self.strength
        if self.choice is not None:
            out["choice"] = self.choice
        if self.section:
            out["section"] = self.section
        if self.options:
            out["options"] = [o.as_json() for o in self.options]
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
            # warnings first: a missing input can make every recommendation below wrong
            "warnings": [{"code": i.action, "says": i.says, "rules": i.rules, "sources": i.sources}
                         for i in self.warnings],
            "recommendations": [i.as_json() for i in self.recommendations],
            "contraindications": [i.as_json() for i in self.contraindications],
            "conflicts": [i.as_json() for i in self.conflicts],
            "constraint_violations": self.violations,
        }


def require_crs_vocabulary(rules: RuleSet) -> None:
    missing = [p for p in REQUIRED if p not in rules.decls]
    if missing:
        raise ReasonerError([Diagnostic(NO_SPAN, f"`recommend` needs a rule set in the CRS vocabulary; "
                                        f"{rules.path} does not declare {', '.join(missing)}", "E016")])


SUPPORTED = ("indicated", "contraindicated", "warning")
"""The predicates whose rules a report names: the rest of the firings are not looked at."""

READS = ("patient", "crs_grade", "hypoxia_grade", "hypotension_grade", "recommend", "contraindicated", "conflict",
         "dose_mg", "dose_frequency", "warning", "alternative", "ordered")
"""The predicates `build_reports` reads facts of."""


def supporting_rules(rules: RuleSet) -> frozenset[int]:
    """Indices of the rules whose firings a report needs (those concluding `SUPPORTED`)."""
    return frozenset(i for i, r in enumerate(rules.rules) if r.head is not None and r.head.pred in SUPPORTED)


class RuleNames:
    """What a report prints of the rules behind an item: their names and sources, and
    the guideline section it falls under, worked out once per combination of rules (a
    cohort's reports repeat a few dozen combinations). Used by the Python report and by
    the rows made in SQL (report_sql)."""

    def __init__(self, rules: RuleSet):
        self.rules = rules
        self._strength_rank = {s: i for i, s in enumerate(STRENGTHS)}
        self._sections = [rules.section_of(r) for r in rules.rules]
        self.section_rank = {title: i for i, title in enumerate(dict.fromkeys(self._sections))}
        self._named: dict[tuple[int, ...], tuple[list[str], list[str]]] = {}
        self._section_of: dict[tuple[int, ...], str] = {}

    def rank(self, section: str) -> int:
        """Where a section comes in the rule set (99 for none)."""
        return self.section_rank.get(section, 99)

    def section(self, indices: Sequence[int]) -> str:
        """The earliest guideline section among the rules (in rule-set order), or ""."""
        key = tuple(indices)
        found = self._section_of.get(key)
        if found is None:
            found = self._section_of[key] = min((self._sections[i] for i in indices),
                                                key=self.section_rank.__getitem__, default="")
        return found

    def strength(self, indices: Sequence[int]) -> str | None:
        """The strongest `@strength` among the rules (None when none states one)."""
        return self.strongest([self.rules.rules[i].strength for i in indices])

    def strongest(self, strengths: Sequence[str | None]) -> str | None:
        known = [s for s in strengths if s is not None]
        return min(known, key=self._strength_rank.__getitem__) if known else None

    def choice(self, indices: Sequence[int]) -> str | None:
        """The choice group when every rule behind an action names the same `@choice`
        (an action also called for outright by a rule of no group stands alone)."""
        groups = {self.rules.rules[i].choice for i in indices}
        return groups.pop() if len(groups) == 1 else None

    def named(self, indices: Sequence[int]) -> tuple[list[str], list[str]]:
        """The rules' names, and their sources (each source once), in order."""
        key = tuple(indices)
        found = self._named.get(key)
        if found is None:
            sources: list[str] = []
            for i in indices:
                sources += [s for s in self.rules.rules[i].sources if s not in sources]
            found = self._named[key] = ([self.rules.rule_name(self.rules.rules[i]) for i in indices], sources)
        return found


class _Support(RuleNames):
    """Which rules concluded each derived fact (from the recorded firings), and what a
    report prints of them."""

    def __init__(self, rules: RuleSet, model: Model):
        super().__init__(rules)
        # fact → the rules that concluded it, in rule order (explain.conclusions without
        # building a bindings dict per firing: a cohort's reports read millions of rows)
        self.by_fact: dict[tuple[str, tuple], list[int]] = {}
        for index in sorted(model.firings):
            rule = rules.rules[index]
            if rule.head is None or rule.head.pred not in SUPPORTED or index not in model.heads:
                continue
            where = {v: i for i, v in enumerate(model.variables.get(index, ()))}
            picks = [(True, where[v]) if kind == "var" else (False, v) for kind, v in model.heads[index]]
            pred = rule.head.pred
            for row in model.firings[index]:
                found = self.by_fact.setdefault((pred, tuple(row[x] if is_var else x for is_var, x in picks)), [])
                if not found or found[-1] != index:
                    found.append(index)

    def rules_of(self, pred: str, args: tuple) -> list[int]:
        return self.by_fact.get((pred, args), [])

    def item(self, action: Value, indices: list[int], reason: Value | None = None, **more: Any) -> Item:
        """An item naming the rules `indices` and their sources."""
        names, sources = self.named(indices)
        return Item(str(action), None if reason is None else str(reason), rules=list(names),
                    sources=list(sources), **more)


def build_reports(rules: RuleSet, model: Model) -> list[PatientReport]:
    """One report per patient of the model, in natural patient order."""
    support = _Support(rules, model)
    keys: dict[Value, tuple] = {}  # value_key of each value once: rows repeat ids and actions

    def sort_key(row: tuple) -> tuple:
        out = []
        for v in row:
            k = keys.get(v)
            if k is None:
                k = keys[v] = value_key(v)
            out.append(k)
        return tuple(out)

    def by_patient(pred: str) -> dict[Value, list[tuple]]:
        out: dict[Value, list[tuple]] = {}
        for row in sorted(model.facts.get(pred, ()), key=sort_key):
            out.setdefault(row[0], []).append(row)
        return out

    def by_patient_and_action(pred: str) -> dict[tuple[Value, Value], list[Value]]:
        out: dict[tuple[Value, Value], list[Value]] = {}
        for p, action, value in sorted(model.facts.get(pred, ()), key=sort_key):
            out.setdefault((p, action), []).append(value)
        return out

    grades = by_patient("crs_grade")
    hypoxia, hypotension = by_patient("hypoxia_grade"), by_patient("hypotension_grade")
    recommend, contra, conflict = by_patient("recommend"), by_patient("contraindicated"), by_patient("conflict")
    warnings = by_patient("warning")
    doses, freq = by_patient_and_action("dose_mg"), by_patient_and_action("dose_frequency")
    alternatives = by_patient_and_action("alternative")
    ordered = model.facts.get("ordered", set())
    patients = set(grades) | set(recommend) | set(contra) | set(conflict) | set(warnings)
    patients |= {row[0] for row in model.facts.get("patient", ())}
    violations: dict[Value, list[str]] = {}
    for v in distinct_violations(model.violations):
        rule = rules.rules[v.rule_index]
        who = next((val for val in v.bindings.values() if val in patients), None)
        line = f"{rules.rule_name(rule)} ({shown_values(v.bindings)})" + (
            f": {fill_settings(rule.says, model.settings)}" if rule.says else "")
        if line not in violations.setdefault(who, []):
            violations[who].append(line)

    reports = []
    for p in sorted(patients, key=value_key):
        items = []
        groups: dict[str, list[tuple[Item, list[int]]]] = {}
        for _, action in recommend.get(p, []):
            indicated_by = support.rules_of("indicated", (p, action))
            item = support.item(action, indicated_by, section=support.section(indicated_by),
                                strength=support.strength(indicated_by))
            mg = doses.get((p, action), [None])[-1]
            # 692.0 mg reads as 692 mg, whichever engine computed it
            item.dose_mg = int(mg) if isinstance(mg, float) and mg.is_integer() else mg
            item.frequency = [str(t) for t in freq.get((p, action), [])]
            group = support.choice(indicated_by)
            if group is None:
                items.append(item)
            else:
                item.choice = group
                groups.setdefault(group, []).append((item, indicated_by))
        for group, members in sorted(groups.items()):
            items.append(_choice_item(support, group, members))
        items.sort(key=lambda i: (support.rank(i.section), i.action))
        contras = [support.item(action, support.rules_of("contraindicated", (p, action, reason)), reason)
                   for _, action, reason in contra.get(p, [])]
        conflicts = [support.item(action, support.rules_of("indicated", (p, action))
                                  + support.rules_of("contraindicated", (p, action, reason)), reason,
                                  ordered=(p, action) in ordered,
                                  alternatives=[str(b) for b in alternatives.get((p, action), [])])
                     for _, action, reason in conflict.get(p, [])]
        warns = []
        for _, code in warnings.get(p, []):
            behind = support.rules_of("warning", (p, code))
            says = rules.rules[behind[0]].says if behind else None
            warns.append(support.item(code, behind, says=fill_settings(says, model.settings) if says else None))
        reports.append(PatientReport(
            str(p), _one(grades.get(p)), _one(hypoxia.get(p)), _one(hypotension.get(p)),
            items, contras, conflicts, warns, violations.get(p, [])))
    return reports


def dose_text(mg: Value) -> str:
    """A dose as a clinician reads it: "12.1 mg", not the "12.100000000000001 mg" that
    11 mg/kg x 1.1 kg is in floating point. Rounded to 0.01 mg for reading only: JSON, CSV
    and Parquet keep the number the engine computed."""
    if isinstance(mg, float):
        return f"{format_value(round(mg, 2))} mg"
    return f"{format_value(mg)} mg"


def choice_label(options: Sequence[str]) -> str:
    """The action column of a choice item: "one of: a, b, c" (options sorted)."""
    return "one of: " + ", ".join(sorted(options))


def _choice_item(support: "_Support", group: str, members: list[tuple[Item, list[int]]]) -> Item:
    """One item for the alternatives of a choice group, its options inside it."""
    options = sorted((item for item, _ in members), key=lambda i: i.action)
    indices = sorted({i for _, behind in members for i in behind})
    names, sources = support.named(indices)
    section = max((o.section for o in options), key=support.rank)  # the alternatives' own section, last
    return Item(choice_label([o.action for o in options]), section=section, rules=list(names),
                sources=list(sources), strength=support.strongest([o.strength for o in options]),
                choice=group, options=options)


def _one(rows: list[tuple] | None) -> Value | None:
    return rows[0][1] if rows else None


def rule_patient_counts(rules: RuleSet, model: Model) -> dict[int, int]:
    """rule index → for how many patients of this model the rule fired (rules that never
    fired are left out)."""
    if model.fired_for is not None:
        return dict(model.fired_for)  # the engine counted them itself
    counts: dict[int, int] = {}
    for index, rows in model.firings.items():
        if not rows:
            continue
        names = model.variables.get(index, ())
        key = rules.key_variable(rules.rules[index])
        if key is None or key not in names:
            counts[index] = 1  # a rule about no patient in particular: fired at all
            continue
        position = names.index(key)
        counts[index] = len({row[position] for row in rows})
    return counts


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
