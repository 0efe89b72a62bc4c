"""One FHIR resource (a validated fhir.resources R4B model) → candidate facts, by the
rule set's mapping table. A candidate is a fact before the choice among several
Observations (the latest, the highest in 24 h) and before hours-ago are counted; a
resource that gives no fact on purpose gives a `Note`, one that cannot be mapped raises
`Unmapped` (fhir_values). docs/fhir.md states every rule applied here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reasoner.io.fhir_map import Code, FhirMapping, ObservationEntry
from reasoner.io.fhir_values import (
    Unmapped, codings, effective, instant, lookup, quantity, shown_codes, status_code,
)


@dataclass
class Candidate:
    """A fact to be: `args` after the patient (None: the fact is stated false, e.g. a flag
    Observation with valueBoolean false, which can still supersede an earlier true one).
    `hours_at`: a time to turn into hours before the assessment, appended to `args`."""

    predicate: str
    args: tuple | None
    path: str
    when: datetime | None = None
    pick: str | None = None
    hours_at: datetime | None = None
    group: tuple = ()


@dataclass
class Note:
    """A resource (or one of its elements) that gives no fact, on purpose, and why."""

    path: str
    message: str


Read = list[Candidate | Note]

_OBS_USED = ("final", "amended", "corrected", "preliminary")
_OBS_NOT = {"entered-in-error": "entered in error", "cancelled": "cancelled", "registered": "registered, no result yet"}
_CLINICAL_USED = ("active", "recurrence", "relapse")
_VERIFICATION_NOT = ("refuted", "entered-in-error")
_ORDER_INTENTS = ("order", "plan", "original-order", "instance-order")


def read_resource(kind: str, r: Any, mapping: FhirMapping) -> Read:
    """The candidates and notes of one resource of type `kind` (a type the mapping reads)."""
    return _READERS[kind](r, mapping)


def reads(kind: str) -> bool:
    """Whether the mapping reads resources of this type (Patient: the ids only)."""
    return kind in _READERS


# ----------------------------------------------------------------------------- Observation
def _observation(r: Any, mapping: FhirMapping) -> Read:
    if r.status in _OBS_NOT:
        return [Note("status", f"{_OBS_NOT[r.status]}: no fact")]
    if r.status not in _OBS_USED:
        raise Unmapped("status", f"status {r.status!r}: cannot tell whether the result holds")
    entry = _entry_of(r.code, mapping.observation_of, "code")
    oxygen = mapping.observations.get("oxygen")
    components = [c for c in r.component or () if oxygen and (_has(c.code, oxygen.codes) or _has(c.code, (oxygen.device,)))]
    if entry is None and not components:
        return [Note("code", f"{shown_codes(r.code)} is in no Observation table of the mapping: no fact")]
    when, _ = effective(r, ("effectiveDateTime", "effectiveInstant", "effectivePeriod"))
    out: Read = []
    if entry is not None and entry.kind != "oxygen":
        args = _observation_value(r, entry)
        out.append(Candidate(entry.predicate, args, _value_path(entry), when, entry.pick))
    if oxygen is not None and (entry is oxygen or components):
        out.append(_oxygen(r, oxygen, when, in_component=entry is not oxygen))
    return out


def _has(concept: Any, codes: tuple) -> bool:
    return any(c in codes for c in codings(concept))


def _entry_of(concept: Any, table, path: str) -> Any:
    hit = lookup(concept, table, path)
    return hit[0] if hit else None


def _observation_value(r: Any, entry: ObservationEntry) -> tuple | None:
    if entry.kind == "quantity":
        if r.valueQuantity is None:
            raise Unmapped("valueQuantity", _absent(r, f"no valueQuantity (a quantity in {entry.unit})"))
        return (quantity(r.valueQuantity, "valueQuantity", entry.unit or ""),)
    if entry.kind == "integer":
        if r.valueInteger is None:
            raise Unmapped("valueInteger", _absent(r, "no valueInteger"))
        return (int(r.valueInteger),)
    if r.valueBoolean is None:  # flag
        raise Unmapped("valueBoolean", _absent(r, "no valueBoolean (true states the fact, false denies it)"))
    return () if r.valueBoolean else None


def _value_path(entry: ObservationEntry) -> str:
    return {"quantity": "valueQuantity", "integer": "valueInteger"}.get(entry.kind, "valueBoolean")


def _absent(r: Any, message: str) -> str:
    reason = status_code(r.dataAbsentReason) if r.dataAbsentReason is not None else None
    return f"{message}; dataAbsentReason {reason}" if reason else message


def _oxygen(r: Any, entry: ObservationEntry, when: datetime, in_component: bool) -> Candidate:
    """oxygen(P, Device, Lpm): the flow (the Observation's value, or a component coded
    like it) and the device (a component), e.g. 'room_air' with no flow is 0 L/min."""
    flow_path, flow = "valueQuantity", r.valueQuantity if not in_component else None
    device = device_path = None
    for i, c in enumerate(r.component or ()):
        if _has(c.code, entry.codes):
            flow_path, flow = f"component[{i}].valueQuantity", c.valueQuantity
        elif _has(c.code, (entry.device,)):
            device_path = f"component[{i}].valueCodeableConcept"
            system = entry.device[0] if entry.device else ""
            names = [code for s, code in codings(c.valueCodeableConcept) if s == system and code in entry.devices]
            if not names:
                raise Unmapped(device_path, f"{shown_codes(c.valueCodeableConcept)} is not an oxygen device of the "
                               f"mapping ({', '.join(entry.devices)})")
            device = names[0]
    if device is None:
        raise Unmapped("component", "oxygen flow without a device component "
                       f"({entry.device[0] if entry.device else ''}#{entry.device[1] if entry.device else ''})")
    if flow is None and device == "room_air":
        return Candidate("oxygen", (device, 0), device_path or "component", when, entry.pick)
    lpm = quantity(flow, flow_path, entry.unit or "L/min")
    return Candidate("oxygen", (device, lpm), flow_path, when, entry.pick)


# ----------------------------------------------------------------------------- Condition
def _condition(r: Any, mapping: FhirMapping) -> Read:
    verification = status_code(r.verificationStatus)
    if verification in _VERIFICATION_NOT:
        return [Note("verificationStatus", f"{verification}: no fact")]
    hit = lookup(r.code, mapping.condition_of, "code")
    if hit is None:
        return [Note("code", f"{shown_codes(r.code)} is in no Condition table of the mapping: no fact")]
    entry, code = hit
    clinical = status_code(r.clinicalStatus)
    if clinical is None:
        raise Unmapped("clinicalStatus", "no clinicalStatus: cannot tell whether the condition holds now")
    if clinical not in _CLINICAL_USED:
        return [Note("clinicalStatus", f"{clinical}: no fact")]
    if entry.kind == "flag":
        return [Candidate(entry.predicate, (), "code")]
    if entry.kind == "enum":
        return [Candidate(entry.predicate, (entry.values[code],), "code")]
    if entry.kind == "graded":
        if code not in entry.grades:
            raise Unmapped("code", f"{code[1]} states no grade, and the rules need the grade: record a graded "
                           f"code ({', '.join(sorted(c[1] for c in entry.grades))})")
        return [Candidate(entry.predicate, (entry.grades[code],), "code")]
    if r.onsetDateTime is None:  # onset
        raise Unmapped("onsetDateTime", "no onsetDateTime: the hours since onset cannot be counted")
    return [Candidate(entry.predicate, (), "onsetDateTime", hours_at=instant(r.onsetDateTime, "onsetDateTime"))]


# ----------------------------------------------------------------------------- medications
def _drug(r: Any, mapping: FhirMapping) -> tuple[str, str] | Note:
    """('drug' | 'pressor', name) of a medication resource, or a Note for an ignored code."""
    if getattr(r, "medicationCodeableConcept", None) is None:
        raise Unmapped("medicationReference", "a medication given by reference: give medicationCodeableConcept")
    concept = r.medicationCodeableConcept
    hit = lookup(concept, lambda c: ("drug", mapping.drugs[c]) if c in mapping.drugs else
                 ("pressor", mapping.pressors[c]) if c in mapping.pressors else None, "medicationCodeableConcept")
    if hit is not None:
        return hit[0]
    if any(c in mapping.ignore for c in codings(concept)):
        return Note("medicationCodeableConcept", f"{shown_codes(concept)} is ignored by the mapping: no fact")
    raise Unmapped("medicationCodeableConcept", f"{shown_codes(concept)} is not a drug of the mapping (add its "
                   "code to the drug, or to [ignore] if it does not matter: docs/fhir.md)")


def _administration(r: Any, mapping: FhirMapping) -> Read:
    if r.status in ("entered-in-error", "not-done"):
        return [Note("status", f"{r.status}: no fact")]
    drug = _drug(r, mapping)
    if isinstance(drug, Note):
        return [drug]
    kind, name = drug
    if kind == "pressor":
        if r.status == "in-progress":
            return [Candidate("vasopressor", (name,), "status")]
        if r.status in ("completed", "stopped", "on-hold"):
            return [Note("status", f"{r.status}: {name} is not running now, no fact")]
        raise Unmapped("status", f"status {r.status!r}: cannot tell whether {name} is running")
    if r.status not in ("completed", "in-progress"):
        raise Unmapped("status", f"status {r.status!r}: cannot tell whether the dose was given")
    when, where = effective(r, ("effectiveDateTime", "effectivePeriod"))
    dose = r.dosage.dose if r.dosage is not None else None
    mg = quantity(dose, "dosage.dose", "mg")
    return [Candidate("given", (name, mg), where, hours_at=when)]


def _request(r: Any, mapping: FhirMapping) -> Read:
    if r.status in ("cancelled", "entered-in-error", "completed", "stopped"):
        return [Note("status", f"{r.status}: no fact")]
    if r.status not in ("active", "draft"):
        raise Unmapped("status", f"status {r.status!r}: cannot tell whether the drug is ordered")
    if r.intent not in _ORDER_INTENTS:
        return [Note("intent", f"intent {r.intent!r} is not an order or plan: no fact")]
    drug = _drug(r, mapping)
    if isinstance(drug, Note):
        return [drug]
    kind, name = drug
    if kind == "pressor":
        return [Note("medicationCodeableConcept", f"an order of {name}: vasopressor(P, Drug) comes from a "
                     "MedicationAdministration in progress, no fact")]
    if not r.doNotPerform:
        return [Candidate("ordered", (name,), "medicationCodeableConcept")]
    reasons = [code for concept in r.reasonCode or () for system, code in codings(concept)
               if system == mapping.withheld_reason_system]
    if len(reasons) != 1:
        raise Unmapped("reasonCode", f"a drug not to be given (doNotPerform) needs exactly one reason coded in "
                       f"{mapping.withheld_reason_system}, found {len(reasons)}")
    return [Candidate("withheld", (name, reasons[0]), "reasonCode")]


def _allergy(r: Any, mapping: FhirMapping) -> Read:
    verification = status_code(r.verificationStatus)
    if verification in _VERIFICATION_NOT:
        return [Note("verificationStatus", f"{verification}: no fact")]
    clinical = status_code(r.clinicalStatus)
    if clinical is None:
        raise Unmapped("clinicalStatus", "no clinicalStatus: cannot tell whether the allergy holds")
    if clinical != "active":
        return [Note("clinicalStatus", f"{clinical}: no fact")]
    concept = r.code
    hit = lookup(concept, lambda c: mapping.drugs.get(c) or (("pressor", mapping.pressors[c])
                                                             if c in mapping.pressors else None), "code")
    if hit is not None and isinstance(hit[0], str):
        return [Candidate("allergy", (hit[0],), "code")]
    if hit is not None:
        return [Note("code", f"an allergy to {hit[0][1]}: the rule set states allergies to its drugs only, no fact")]
    if any(c in mapping.ignore for c in codings(concept)):
        return [Note("code", f"{shown_codes(concept)} is ignored by the mapping: no fact")]
    raise Unmapped("code", f"{shown_codes(concept)} is not a drug of the mapping (add its code to the drug, or to "
                   "[ignore] if it does not matter: docs/fhir.md)")


_READERS = {"Observation": _observation, "Condition": _condition, "MedicationAdministration": _administration,
            "MedicationRequest": _request, "AllergyIntolerance": _allergy}

__all__ = ["Candidate", "Code", "Note", "Read", "read_resource", "reads"]
