"""A patient's evaluation as CDS Hooks cards (CDS Hooks 2.0, "CDS Service Response").

- a conflict (an indicated or ordered action that is contraindicated) is a `critical`
  card; when the action was ordered in this request's `draftOrders`, its suggestions are
  "replace the order by the alternative the rules name" (delete the draft order and
  create a draft MedicationRequest of the alternative) and "cancel the order";
- a warning of the rules, a rule-set constraint violated, an input the rules read that is
  not recorded, and a FHIR resource the rules could not use are `warning` cards;
- a recommendation is an `info` card (`patient-view` only: the order hooks answer about
  the orders).

Every card from the rules has: a summary under 140 characters; as detail, the proof in
Markdown (reasoner/render/proof.py) back to the patient's facts, with the full citations
of the guideline sources; as source, the guideline and the ids of the rules behind it
(also machine-readable in the card's `extension`); a link to the rulebook; override
reasons. Card and suggestion uuids are derived from the `hookInstance` and what the card
says (uuid5), so the same request gives the same bytes.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from reasoner.analysis.program import RuleSet
from reasoner.domains.crs.conflicts import explained_conflicts
from reasoner.domains.crs.report import Item, PatientReport, build_reports, dose_text
from reasoner.engines.model import Model
from reasoner.language.syntax import Value
from reasoner.proof.explain import Explainer, Node
from reasoner.render.proof import ProofPrinter

SUMMARY_MAX = 139
"""The specification: "One-sentence, <140-character summary"."""
RULES_EXTENSION = "org.guideline-reasoner.rules"
SOURCES_EXTENSION = "org.guideline-reasoner.sources"
OVERRIDE_SYSTEM = "urn:guideline-reasoner:override-reason"
OVERRIDE_REASONS = [
    ("clinical-judgement", "Clinical judgement: the recommendation does not fit this patient"),
    ("data-wrong", "The patient data behind it is wrong or out of date"),
    ("already-addressed", "Already addressed"),
    ("patient-preference", "Patient or family preference"),
]
SECTION_SYSTEM = "urn:guideline-reasoner:section"
_NAMESPACE = uuid.UUID("6f1d0c1e-4b61-5c55-9d0f-2a8f6f7e9b10")
_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Inputs:
    """What the cards are made from besides the model."""

    patient: str
    hook: str
    hook_instance: str
    assessed_at: str
    """The assessment time, as the detail states it ("2026-01-05T08:00:00Z (from the request)")."""
    base_url: str
    drafts: dict[str, list[str]] = field(default_factory=dict)
    """Drug → the relative references of the draft orders of it (`MedicationRequest/7`)."""
    notes: list[str] = field(default_factory=list)
    """FHIR resources the rules could not use, one line each (resource, path, message)."""
    new_order: Callable[[str, Item | None], dict[str, Any] | None] | None = None
    """Drug, its report item (dose, frequency) → a draft MedicationRequest to create."""


def cards_for(rules: RuleSet, model: Model, inputs: Inputs, title: str) -> list[dict[str, Any]]:
    """The cards of one patient's model, critical first, then warnings, then information."""
    maker = _Cards(rules, model, inputs, title)
    report = next((r for r in build_reports(rules, model) if r.patient == inputs.patient), None)
    cards: list[dict[str, Any]] = []
    if report is not None:
        cards += maker.conflicts(report)
        cards += [maker.warning(w) for w in report.warnings]
        cards += [maker.violation(v) for v in report.violations]
    cards += maker.missing_inputs()
    if inputs.notes:
        cards.append(maker.unused_data())
    if report is not None and inputs.hook == "patient-view":
        cards += [maker.recommendation(item) for item in report.recommendations]
    return sorted(cards, key=lambda c: _RANK[c["indicator"]])  # stable: the report's order within a rank


def summary(text: str) -> str:
    """`text` on one line, cut at a word under 140 characters (with "…") if longer."""
    text = " ".join(text.split())
    if len(text) <= SUMMARY_MAX:
        return text
    cut = text[:SUMMARY_MAX - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > SUMMARY_MAX // 2 else cut).rstrip(" ,;:") + "…"


def ruleset_title(rules: RuleSet) -> str:
    """The guideline's title: the `guideline` source's citation up to its first bracket,
    else the rule set's folder or file name."""
    source = rules.sources.get("guideline")
    if source is not None and source.text.strip():
        return source.text.split(" (")[0].strip()
    return re.sub(r"\.dl$", "", rules.path.rstrip("/").split("/")[-1]) or "rule set"


def _words(symbol: Value) -> str:
    return str(symbol).replace("_", " ")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Cards:
    def __init__(self, rules: RuleSet, model: Model, inputs: Inputs, title: str):
        self.rules, self.model, self.inputs, self.title = rules, model, inputs, title
        self.explainer = Explainer(rules, model)
        self.drug_of = {str(a): str(d) for a, d in model.tuples("action_drug")} if "action_drug" in rules.decls \
            else {}

    # ------------------------------------------------------------------ one card
    def card(self, key: str, text: str, indicator: str, detail: str, rules: list[str], sources: list[str],
             section: str = "", suggestions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        card_id = uuid.uuid5(_NAMESPACE, f"{self.inputs.hook_instance}\x00{key}")
        label = self.title + (f" — rules {', '.join(rules)}" if rules else "")
        source: dict[str, Any] = {"label": label}
        if section:
            source["topic"] = {"system": SECTION_SYSTEM, "code": re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-"),
                               "display": section}
        out: dict[str, Any] = {"uuid": str(card_id), "summary": summary(text), "indicator": indicator,
                               "detail": detail + f"\n\n_Assessed at {self.inputs.assessed_at}. Research use only, "
                               "not a medical device._\n", "source": source}
        if suggestions:
            for s in suggestions:
                s["uuid"] = str(uuid.uuid5(card_id, s["label"]))
            out["suggestions"] = suggestions
            out["selectionBehavior"] = "at-most-one"
        if rules:
            out["overrideReasons"] = [{"system": OVERRIDE_SYSTEM, "code": c, "display": d}
                                      for c, d in OVERRIDE_REASONS]
            out["links"] = [{"label": "The rulebook: every rule with its sources", "type": "absolute",
                             "url": f"{self.inputs.base_url}/rulebook"}]
            out["extension"] = {RULES_EXTENSION: list(rules), SOURCES_EXTENSION: list(sources)}
        return out

    def proofs(self, parts: list[tuple[str, Node]]) -> str:
        """Headed proofs in Markdown, sharing one printer, then the references."""
        printer = ProofPrinter(self.rules, [node for _, node in parts])
        out = [f"**{heading}**\n\n{printer.markdown(node)}" for heading, node in parts]
        refs = printer.references_markdown()
        return "\n".join(out + ([refs] if refs else [])).rstrip("\n")

    # ------------------------------------------------------------------ kinds of card
    def conflicts(self, report: PatientReport) -> list[dict[str, Any]]:
        found = {(str(c.action), str(c.reason)): c for c in explained_conflicts(self.rules, self.model)
                 if str(c.patient) == report.patient}
        cards = []
        for item in report.conflicts:
            conflict = found.get((item.action, str(item.reason)))
            drug = self.drug_of.get(item.action, item.action)
            drafts = self.inputs.drafts.get(drug, [])
            if self.inputs.hook != "patient-view" and not drafts:
                continue  # an order hook answers about the orders
            side = "ordered" if item.ordered else "indicated"
            text = f"{_capital(item.action)} is {side} but contraindicated ({_words(item.reason)})"
            if item.alternatives:
                text += f": consider {' or '.join(item.alternatives)} instead"
            parts = [(f"Why {item.action} is {pred}" if pred != "contraindicated" else
                      f"Why {item.action} is contraindicated ({_words(item.reason)})", node)
                     for pred, node in (conflict.sides if conflict is not None else [])]
            detail = self.proofs(parts)
            if item.alternatives:
                detail = (f"The rules name {', '.join(item.alternatives)} as the alternative.\n\n" + detail)
            suggestions = self.order_suggestions(item, drug, drafts, report) if drafts else None
            cards.append(self.card(f"conflict/{item.action}/{item.reason}", text, "critical", detail, item.rules,
                                   item.sources, suggestions=suggestions))
        return cards

    def order_suggestions(self, item: Item, drug: str, drafts: list[str], report: PatientReport
                          ) -> list[dict[str, Any]]:
        deletes = [{"type": "delete", "description": f"Remove the draft order {ref} ({drug}: contraindicated, "
                    f"{_words(item.reason)})", "resourceId": ref} for ref in drafts]
        out = []
        for alternative in item.alternatives:
            alt_drug = self.drug_of.get(alternative, alternative)
            recommended = next((r for r in report.recommendations if r.action == alternative), None)
            order = self.inputs.new_order(alt_drug, recommended) if self.inputs.new_order else None
            if order is None:
                continue
            dose = f" {dose_text(recommended.dose_mg)}" if recommended and recommended.dose_mg is not None \
                else ""
            out.append({"label": summary(f"Replace {drug} by {alternative}{dose}"), "isRecommended": True,
                        "actions": deletes + [{"type": "create", "description": f"Order {alternative}{dose} "
                                               "(a draft MedicationRequest)", "resource": order}]})
        out.append({"label": f"Cancel the {drug} order", "isRecommended": not out, "actions": deletes})
        return out

    def warning(self, item: Item) -> dict[str, Any]:
        text = f"{_capital(_words(item.action))}" + (f": {item.says}" if item.says else "")
        proof = self.explainer.prove("warning", (self._patient(), item.action)) \
            if self.model.holds("warning", (self._patient(), item.action)) else None
        detail = (f"{item.says}\n\n" if item.says else "") + (self.proofs([("Why", proof)]) if proof else "")
        return self.card(f"warning/{item.action}", text, "warning", detail, item.rules, item.sources)

    def violation(self, line: str) -> dict[str, Any]:
        return self.card(f"violation/{line}", f"Rule-set constraint violated: {line}", "warning",
                         f"The rule set's integrity constraint does not hold for this patient: {line}. The "
                         "recommendations may be wrong; report it to the rule set's authors.", [], [])

    def missing_inputs(self) -> list[dict[str, Any]]:
        """One card naming each single-valued input (`one` per patient) not recorded."""
        patient = self._patient()
        missing = []
        for pred, decl in self.rules.decls.items():
            k = decl.key_index
            if decl.role != "input" or not decl.single or k is None:
                continue
            if not any(row[k] == patient for row in self.model.facts.get(pred, ())):
                missing.append((pred, decl.description))
        if not missing:
            return []
        names = ", ".join(pred for pred, _ in missing)
        detail = ("The rules read these inputs, and none is recorded for this patient; what is not recorded is "
                  "read as not true (no weight: no weight-based dose), so a recommendation may be missing or "
                  "wrong:\n\n" + "".join(f"- `{pred}`" + (f": {_md_line(what)}" if what else "") + "\n"
                                          for pred, what in missing))
        return [self.card(f"missing/{names}", f"Not recorded for this patient: {names}", "warning", detail, [], [])]

    def unused_data(self) -> dict[str, Any]:
        notes = self.inputs.notes
        detail = ("These FHIR resources were read and not used by the rules (nothing in the rule set's FHIR mapping "
                  "reads them):\n\n" + "".join(f"- {_md_line(n)}\n" for n in notes))
        return self.card("unused/" + "|".join(notes), f"{len(notes)} FHIR resource{'s' if len(notes) != 1 else ''} "
                         "not used by the rules", "warning", detail, [], [])

    def recommendation(self, item: Item) -> dict[str, Any]:
        patient = self._patient()
        if item.options:
            text = f"Choose one of: {' or '.join(_dosed(o) for o in item.options)}"
            parts = [(f"Why {o.action}", self.explainer.prove("recommend", (patient, o.action))) for o in item.options]
        else:
            text = f"{_capital(_dosed(item))}" + (f", {'; '.join(item.frequency)}" if item.frequency else "")
            parts = [(f"Why {item.action}", self.explainer.prove("recommend", (patient, item.action)))]
        if item.strength:
            text += f" [{item.strength}]"
        detail = (f"Guideline section: {item.section}.\n\n" if item.section else "") + self.proofs(parts)
        return self.card(f"recommend/{item.action}", text, "info", detail, item.rules, item.sources,
                         section=item.section)

    def _patient(self) -> Value:
        """The patient's id as the model holds it."""
        for rows in (self.model.facts.get("patient", ()),):
            for row in rows:
                if str(row[0]) == self.inputs.patient:
                    return row[0]
        return self.inputs.patient


def _dosed(item: Item) -> str:
    return _words(item.action) + (f" {dose_text(item.dose_mg)}" if item.dose_mg is not None else "")


def _md_line(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>&])", r"\\\1", " ".join(text.split()))
