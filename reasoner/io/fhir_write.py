"""Facts → a FHIR R4 collection Bundle, by the same mapping table the reader uses, so
that `facts_from_fhir(facts_to_fhir(F))` gives F back (tests/test_fhir.py checks it for
every example patient). Written for tests, fixtures and `reasoner facts to-fhir`: each
fact becomes one resource, timed at the assessment (a dose `H` hours earlier), with
deterministic ids `<patient>-<n>`; the Bundle's timestamp is the assessment time.
"""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from reasoner.io.fhir_map import Code, FhirMapping, load_fhir_mapping
from reasoner.io.fhir_values import UCUM
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import Fact

CANNOT_WRITE = "E045"
"""A fact `facts_to_fhir` cannot state in FHIR (no mapping for it, a patient id that is not a FHIR id)."""
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def facts_to_fhir(facts: list[Fact], *, assessed_at: datetime, mapping: FhirMapping | None = None) -> dict:
    """A collection Bundle (as JSON-ready dicts) stating `facts` at `assessed_at` (a time
    with a zone). Raises ReasonerError (E045) naming every fact it cannot write."""
    if assessed_at.tzinfo is None:
        raise ValueError("assessed_at needs a time zone")
    mapping = mapping if mapping is not None else load_fhir_mapping(None)
    problems: list[Diagnostic] = []
    resources: dict[str, list[dict]] = defaultdict(list)
    for fact in facts:
        pid = str(fact.args[0]) if fact.args else ""
        if not _FHIR_ID.fullmatch(pid):
            problems.append(Diagnostic(fact.span, f"{fact}: patient id {pid!r} is not a FHIR id "
                                       "([A-Za-z0-9-.], at most 64)", CANNOT_WRITE))
            continue
        try:
            body = _resource(fact, mapping, assessed_at)
        except LookupError as exc:
            problems.append(Diagnostic(fact.span, f"{fact}: {exc.args[0]}", CANNOT_WRITE))
            continue
        key = "patient" if body["resourceType"] == "AllergyIntolerance" else "subject"
        resources[pid].append({"resourceType": body.pop("resourceType"), "id": f"{pid}-{len(resources[pid]) + 1}",
                               key: {"reference": f"Patient/{pid}"}, **body})
    if problems:
        raise ReasonerError(problems)
    entries: list[dict] = []
    for pid, bodies in resources.items():
        entries.append({"resource": {"resourceType": "Patient", "id": pid}})
        entries += [{"resource": b} for b in bodies]
    return {"resourceType": "Bundle", "type": "collection", "timestamp": _time(assessed_at), "entry": entries}


def _time(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _concept(code: Code) -> dict:
    return {"coding": [{"system": code[0], "code": code[1]}]}


def _quantity(value: Any, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _resource(fact: Fact, mapping: FhirMapping, at: datetime) -> dict:
    pred, args = fact.pred, fact.args[1:]
    obs = mapping.observations.get(pred)
    cond = mapping.conditions.get(pred)
    if pred == "icans_grade" and cond is not None and args and args[0] != 0:
        code = next((c for c, g in cond.grades.items() if g == args[0]), None)
        if code is not None:
            return _condition(code)
    if obs is not None:
        return _observation(obs, args, at)
    if cond is not None:
        if cond.kind == "enum":
            code = next((c for c, v in cond.values.items() if v == args[0]), None)
            if code is None:
                raise LookupError(f"no code for {args[0]} in Condition.{pred}")
            return _condition(code)
        body = _condition(cond.write or cond.codes[0])
        if cond.kind == "onset":
            body["onsetDateTime"] = _time(at - timedelta(hours=args[0]))
        return body
    return _medication(pred, args, mapping, at)


def _observation(entry, args: tuple, at: datetime) -> dict:
    body: dict = {"resourceType": "Observation", "status": "final", "code": _concept(entry.codes[0]),
                  "effectiveDateTime": _time(at)}
    if entry.kind == "quantity":
        body["valueQuantity"] = _quantity(args[0], entry.unit)
    elif entry.kind == "integer":
        body["valueInteger"] = args[0]
    elif entry.kind == "flag":
        body["valueBoolean"] = True
    else:  # oxygen: the flow, the device as a component
        body["valueQuantity"] = _quantity(args[1], entry.unit)
        body["component"] = [{"code": _concept(entry.device),
                              "valueCodeableConcept": _concept((entry.device[0], args[0]))}]
    return body


def _condition(code: Code) -> dict:
    return {"resourceType": "Condition", "code": _concept(code),
            "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": "active"}]}}


def _medication(pred: str, args: tuple, mapping: FhirMapping, at: datetime) -> dict:
    table = mapping.pressors if pred == "vasopressor" else mapping.drugs
    if pred not in ("given", "vasopressor", "ordered", "withheld", "allergy"):
        raise LookupError(f"the FHIR mapping ({mapping.path}) has no entry for {pred}")
    code = mapping.first_code(table, str(args[0]))
    if code is None:
        raise LookupError(f"no code for {args[0]} in the mapping's medications")
    if pred == "allergy":
        return {"resourceType": "AllergyIntolerance", "code": _concept(code),
                "clinicalStatus": {"coding": [{"system": _ALLERGY_CLINICAL, "code": "active"}]}}
    if pred == "given":
        return {"resourceType": "MedicationAdministration", "status": "completed",
                "medicationCodeableConcept": _concept(code), "effectiveDateTime": _time(at - timedelta(hours=args[2])),
                "dosage": {"dose": _quantity(args[1], "mg")}}
    if pred == "vasopressor":
        return {"resourceType": "MedicationAdministration", "status": "in-progress",
                "medicationCodeableConcept": _concept(code), "effectivePeriod": {"start": _time(at)}}
    body = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": _concept(code)}
    if pred == "withheld":
        body["doNotPerform"] = True
        body["reasonCode"] = [_concept((mapping.withheld_reason_system, str(args[1])))]
    return body
