"""The patient's FHIR data for one request, and the facts read from it.

Prefetch templates are derived from the rule set's FHIR mapping (reasoner/io/fhir_map.py):
the Patient, and the Observations, Conditions, MedicationAdministrations,
MedicationRequests and AllergyIntolerances *of the codes the mapping reads* (so a
client that honours them sends nothing the rules cannot read). For each template the
data comes from `prefetch` (a `null` value: the client has no such data), else from the
client's `fhirServer` with `Authorization: Bearer <fhirAuthorization.access_token>`
(paging through `next` links on that server only); when neither gives it the request
gets 412 (E054): every template feeds the rules, and data not seen (an allergy list)
would change the answer silently.

The resources are read by the one FHIR reader (`facts_from_fhir`, reasoner/io/fhir.py)
and its facts checked by the one fact validator, so a bad value from FHIR gets the same
message as in a fact file; any problem is a 400 (E053) naming the prefetch key, the
resource and the element. `draftOrders` (order hooks): each MedicationRequest of a drug
the mapping knows gives `ordered(P, Drug)`; an order of anything else (another drug, a
diet, a lab) is not read and is listed on a warning card, never dropped unsaid.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable
from urllib.parse import urlsplit

from reasoner.analysis.program import RuleSet
from reasoner.io.json_keys import unique_keys
from reasoner.io.fact_check import OneFacts
from reasoner.io.fhir_map import Code, FhirMapping
from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import Fact
from reasoner.service.hooks import HookRequest, fill
from reasoner.service.outcome import BAD_DATA, NO_DATA, Issue, ServiceError

MAX_PAGES = 20
"""Pages of one search followed on the client's FHIR server before giving up (412)."""


def prefetch_templates(mapping: FhirMapping) -> dict[str, str]:
    """The prefetch templates: key → FHIR query with the `{{context.patientId}}` token."""
    def codes(cs: Iterable[Code]) -> str:
        return ",".join(f"{system}|{code}" for system, code in sorted(set(cs)))

    patient = "{{context.patientId}}"
    observation = [c for e in mapping.observations.values() for c in e.codes]
    condition = [c for e in mapping.conditions.values() for c in (*e.codes, *e.grades, *e.values)]
    drugs = list(mapping.drugs) + list(mapping.pressors)
    out = {"patient": f"Patient/{patient}"}
    if observation:
        out["observations"] = f"Observation?patient={patient}&code={codes(observation)}"
    if condition:
        out["conditions"] = f"Condition?patient={patient}&code={codes(condition)}"
    if drugs:
        out["administrations"] = f"MedicationAdministration?patient={patient}&code={codes(drugs)}"
        out["requests"] = f"MedicationRequest?patient={patient}&code={codes(drugs)}"
        out["allergies"] = f"AllergyIntolerance?patient={patient}&code={codes(mapping.drugs)}"
    return out


async def gather(request: HookRequest, templates: dict[str, str], client: Any) -> tuple[dict[str, Any], list[str]]:
    """key → the prefetched or fetched resource (None: no data), and notes on prefetch
    keys this service did not ask for. `client`: an httpx.AsyncClient."""
    given = request.prefetch or {}
    data: dict[str, Any] = {}
    missing = []
    for key in templates:
        if key in given:
            value = given[key]
            if value is not None and not isinstance(value, dict):
                raise ServiceError.one(400, BAD_DATA, f"prefetch.{key} must be a FHIR resource or null",
                                       f"prefetch.{key}")
            data[key] = value
        else:
            missing.append(key)
    notes = [f"prefetch.{key}: not a prefetch key of this service; not read" for key in sorted(given)
             if key not in templates]
    if missing and request.fhir_server is None:
        raise ServiceError(412, [Issue(NO_DATA, f"prefetch.{key} ({templates[key]}) was not sent and the request "
                                       "has no fhirServer to fetch it from", (f"prefetch.{key}",))
                                 for key in missing])
    for key in missing:
        data[key] = await _fetch(request, key, fill(templates[key], request.patient_id), client)
    return data, notes


async def _fetch(request: HookRequest, key: str, query: str, client: Any) -> Any:
    import httpx
    shown = query if len(query) <= 60 else query[:59] + "…"
    base = request.fhir_server.rstrip("/")  # type: ignore[union-attr]
    headers = {"Accept": "application/fhir+json"}
    if request.access_token:
        headers["Authorization"] = f"Bearer {request.access_token}"
    url: str | None = f"{base}/{query}"
    merged: dict[str, Any] | None = None
    for _ in range(MAX_PAGES):
        assert url is not None
        where = f"prefetch.{key}"
        try:
            response = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceError.one(412, NO_DATA, f"fhirServer could not be reached for {shown}: "
                                   f"{type(exc).__name__}", where) from None
        if response.status_code == 404 and key == "patient":
            raise ServiceError.one(412, NO_DATA, f"fhirServer has no Patient/{request.patient_id}", where)
        if response.status_code != 200:
            raise ServiceError.one(412, NO_DATA, f"fhirServer answered {response.status_code} to {shown}", where)
        try:
            page = json.loads(response.text, object_pairs_hook=unique_keys)
        except ValueError:  # not JSON, or a key given twice (json_keys.py)
            raise ServiceError.one(412, NO_DATA, f"fhirServer's answer to {shown} is not JSON", where) from None
        if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
            return page if merged is None else merged
        if merged is None:
            merged = page
        else:
            merged.setdefault("entry", []).extend(page.get("entry") or [])
        url = _next_link(page, base)
        if url is None:
            merged.pop("link", None)
            return merged
    raise ServiceError.one(412, NO_DATA, f"fhirServer's answer to {shown} has more than {MAX_PAGES} pages",
                           f"prefetch.{key}")


def _next_link(bundle: dict[str, Any], base: str) -> str | None:
    """The `next` page, if it is on the client's FHIR server (the token goes nowhere else)."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url = link["url"]
            same = urlsplit(url)[:2] == urlsplit(base)[:2] and url.startswith(base + "/")
            if not same:
                raise ServiceError.one(412, NO_DATA, f"fhirServer's next page {url[:120]!r} is not on fhirServer")
            return url
    return None


@dataclass
class PatientData:
    """The checked facts of one request, and what could not be used."""

    facts: list[Fact]
    notes: list[str] = field(default_factory=list)
    drafts: dict[str, list[str]] = field(default_factory=dict)
    """Drug → the draft orders of it (`MedicationRequest/<id>`)."""


def read_facts(rules: RuleSet, mapping: FhirMapping, request: HookRequest, data: dict[str, Any],
               notes: list[str]) -> PatientData:
    """The facts of the prefetched or fetched data and the draft orders, checked;
    ServiceError (400, E053) with every problem."""
    from reasoner.io.fhir import facts_from_fhir
    issues: list[Issue] = []
    out = PatientData([], list(notes))

    def read(resources: Any, where: str) -> list[Fact]:
        found = facts_from_fhir(resources, origin=where, assessed_at=request.assessed_at, mapping=mapping)
        out.notes += [f"{where}: {note}" for note in found.notes]
        facts, problems = found.checked(rules)  # the one fact validator, naming resource and element
        issues.extend(Issue(BAD_DATA, f"{d.message} ({d.code})", (where,)) for d in problems)
        return facts

    patient = data.get("patient")  # it gives no fact, so no fact names its patient: checked here
    if isinstance(patient, dict) and patient.get("resourceType") == "Patient" and "id" in patient \
            and str(patient["id"]) != request.patient_id:
        issues.append(Issue(BAD_DATA, f"Patient/{patient['id']} is another patient than the request's "
                            f"context.patientId {request.patient_id}", ("prefetch.patient",)))
    facts: list[Fact] = []
    for key, value in data.items():
        if value is not None:
            facts += read(value, f"prefetch.{key}")
    for i, resource in enumerate(_entries(request.draft_orders)):
        where = f"context.draftOrders.entry[{i}]"
        kind = resource.get("resourceType")
        if kind != "MedicationRequest" or not _codes(resource) & (set(mapping.drugs) | set(mapping.pressors)):
            shown = f"{kind}/{resource.get('id', '?')}" if isinstance(kind, str) else "a resource"
            out.notes.append(f"{where}: {shown}: an order of something the rules do not read; not read")
            continue
        ordered = read(resource, where)
        facts += ordered
        for fact in ordered:
            if fact.pred == "ordered":
                out.drafts.setdefault(str(fact.args[1]), []).append(f"MedicationRequest/{resource.get('id')}")
    if issues:
        raise ServiceError(400, issues)
    out.facts = _checked(rules, facts, request.patient_id)
    return out


def _checked(rules: RuleSet, facts: list[Fact], patient: str) -> list[Fact]:
    """The (validated) facts all about `patient`, and `one` per patient (E017)."""
    problems: list[Diagnostic] = []
    kept = []
    one = OneFacts(rules)
    for fact in facts:
        k = rules.key_index(fact.pred)
        if k is not None and str(fact.args[k]) != patient:
            problems.append(Diagnostic(fact.span, f"{fact} is about patient {fact.args[k]}, and the request about "
                                       f"patient {patient}", BAD_DATA))
            continue
        kept.append(fact)
        one.add(fact)
    problems += one.problems()
    if problems:
        raise ServiceError(400, [Issue(BAD_DATA, f"{d.message} ({d.code})" if d.code != BAD_DATA else d.message)
                                 for d in problems])
    return kept


def _entries(bundle: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not bundle:
        return []
    return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"),
                                                                                                   dict)]


def _codes(resource: dict[str, Any]) -> set[Code]:
    """The (system, code) pairs of a MedicationRequest's medicationCodeableConcept."""
    concept = resource.get("medicationCodeableConcept")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return {(c.get("system"), c.get("code")) for c in codings or [] if isinstance(c, dict)}


def new_order(mapping: FhirMapping, patient: str, drug: str, assessed_at: datetime, dose_mg: Any = None,
              frequency: list[str] | None = None) -> dict[str, Any] | None:
    """A draft MedicationRequest of `drug` for the patient (written by the FHIR writer,
    `facts_to_fhir`), with the dose the rules give as its dosage text; None if the mapping
    has no code for the drug."""
    from reasoner.io.fhir import facts_to_fhir
    if mapping.first_code(mapping.drugs, drug) is None:
        return None
    bundle = facts_to_fhir([Fact("ordered", (patient, drug))], assessed_at=assessed_at, mapping=mapping)
    order = next((r for r in _entries(bundle) if r.get("resourceType") == "MedicationRequest"), None)
    if order is None:
        return None
    order = dict(order)
    order.pop("id", None)
    order["status"] = "draft"
    order["intent"] = "order"
    if dose_mg is not None or frequency:
        text = " ".join(x for x in (f"{dose_mg:g} mg" if isinstance(dose_mg, (int, float)) else "",
                                    "; ".join(frequency or [])) if x)
        dosage: dict[str, Any] = {"text": text}
        if isinstance(dose_mg, (int, float)):
            dosage["doseAndRate"] = [{"doseQuantity": {"value": dose_mg, "unit": "mg",
                                                       "system": "http://unitsofmeasure.org", "code": "mg"}}]
        order["dosageInstruction"] = [dosage]
    return order
