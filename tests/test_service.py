"""`reasoner serve`, the CDS Hooks 2.0 service, against a real uvicorn server on
127.0.0.1 talked to with a real HTTP client (httpx), and a small FHIR server stub (with
bearer-token checking and paging) for the `fhirServer` path. Every response is validated
against the JSON Schemas of tests/schemas/, written from the specification.

The clinical answers are the guideline's: p02 (grade 3 CRS, documented tocilizumab
anaphylaxis) has tocilizumab indicated (CRS grade >= 2, none given yet) and
contraindicated (allergy), with siltuximab as the anti-IL-6 alternative the guideline
names for a tocilizumab allergy; dexamethasone 10 mg every 6 h is recommended (grade 3).
p01 (grade 2, no allergy) may have tocilizumab ordered with no conflict."""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest
import uvicorn
from click.testing import CliRunner

from reasoner.analysis.rulecache import load
from reasoner.cli import main
from reasoner.io.facts import load_facts
from reasoner.io.fhir import facts_to_fhir, load_fhir_mapping
from reasoner.language.syntax import Fact
from reasoner.service.app import CdsService

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {p.stem.split(".")[0]: json.loads(p.read_text()) for p in (ROOT / "tests" / "schemas").glob("*.json")}
AT = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
EXTENSION = {"org.guideline-reasoner.assessed-at": "2026-01-05T08:00:00Z"}
KEYS = {"Patient": "patient", "Observation": "observations", "Condition": "conditions",
        "MedicationAdministration": "administrations", "MedicationRequest": "requests",
        "AllergyIntolerance": "allergies"}
TOKEN = "secret-token-for-the-stub"
RULES = load(None)
MAPPING = load_fhir_mapping(RULES)


def valid(doc: Any, schema: str) -> Any:
    jsonschema.validate(doc, SCHEMAS[schema], cls=jsonschema.Draft202012Validator)
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resources(fact_file: str) -> list[dict]:
    facts = load_facts(RULES, [ROOT / "facts" / fact_file]).facts
    return [e["resource"] for e in facts_to_fhir(facts, assessed_at=AT, mapping=MAPPING)["entry"]]


def prefetch_of(found: list[dict]) -> dict[str, Any]:
    """The prefetch a client honouring the templates sends: the Patient, then one
    searchset Bundle per key (null where there is nothing)."""
    out: dict[str, Any] = {key: None for key in KEYS.values()}
    for r in found:
        key = KEYS[r["resourceType"]]
        if key == "patient":
            out[key] = r
        else:
            out[key] = out[key] or {"resourceType": "Bundle", "type": "searchset", "entry": []}
            out[key]["entry"].append({"resource": r})
    return out


def draft(patient: str, drug: str, rid: str) -> dict:
    bundle = facts_to_fhir([Fact("ordered", (patient, drug))], assessed_at=AT, mapping=MAPPING)
    order = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest")
    return {**order, "id": rid, "status": "draft"}


def hook_request(hook: str, patient: str, prefetch: dict | None, drafts: list[dict] = (), **more: Any) -> dict:
    context: dict[str, Any] = {"userId": "Practitioner/example", "patientId": patient}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    doc = {"hook": hook, "hookInstance": f"instance-{hook}-{patient}", "context": context, "extension": EXTENSION,
           **more}
    if prefetch is not None:
        doc["prefetch"] = prefetch
    return doc


# ----------------------------------------------------------------------------- servers
class Captured(logging.Handler):
    """Every log record of the process while the servers run: none may carry a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def logs():
    handler = Captured()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def service(tmp_path_factory, logs):
    """(base URL, feedback database path) of a real uvicorn server in a thread."""
    db = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"
    cds = CdsService(RULES, MAPPING, feedback_db=str(db), max_body=200_000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(cds.asgi(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", db
    server.should_exit = True
    thread.join(10)
    cds.close()


class Stub(ThreadingHTTPServer):
    """A FHIR server holding some resources: read (`Patient/id`) and search by patient
    and `code` (system|code, comma = or), 3 entries a page with `next` links, and 401
    unless the bearer token is TOKEN. Records each request's path and Authorization."""

    daemon_threads = True
    data: list[dict] = []
    seen: list[tuple[str, str | None]] = []


class StubHandler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.seen.append((self.path, auth))
        if auth != f"Bearer {TOKEN}":
            return self.reply(401, {"resourceType": "OperationOutcome", "issue": []})
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")[1:]  # after /fhir
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if len(parts) == 2:
            found = [r for r in self.server.data if r["resourceType"] == parts[0] and r.get("id") == parts[1]]
            return self.reply(200, found[0]) if found else self.reply(404, {"resourceType": "OperationOutcome"})
        codes = {tuple(c.split("|", 1)) for c in query.get("code", "").split(",") if c}
        hits = [r for r in self.server.data if r["resourceType"] == parts[0]
                and (r.get("subject") or r.get("patient") or {}).get("reference") == f"Patient/{query.get('patient')}"
                and (not codes or self.codes(r) & codes)]
        page = int(query.pop("_page", "0"))
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(hits),
                                  "entry": [{"resource": r} for r in hits[3 * page:3 * page + 3]]}
        if 3 * page + 3 < len(hits):
            host, port = self.server.server_address[:2]
            rest = "&".join(f"{k}={v}" for k, v in query.items())
            bundle["link"] = [{"relation": "next", "url": f"http://{host}:{port}{url.path}?{rest}&_page={page + 1}"}]
        self.reply(200, bundle)

    @staticmethod
    def codes(r: dict) -> set[tuple[str, str]]:
        concept = r.get("code") or r.get("medicationCodeableConcept") or {}
        return {(c.get("system"), c.get("code")) for c in concept.get("coding", [])}

    def reply(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def fhir_stub():
    stub = Stub(("127.0.0.1", 0), StubHandler)
    stub.data, stub.seen = [], []
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    yield stub, f"http://127.0.0.1:{stub.server_address[1]}/fhir"
    stub.shutdown()
    stub.server_close()


def post(base: str, path: str, doc: Any = None, content: bytes | None = None) -> httpx.Response:
    return httpx.post(base + path, json=doc if content is None else None, content=content, timeout=60)


def outcome(response: httpx.Response, status: int, code: str) -> dict:
    """A refusal: `status`, an OperationOutcome (schema-valid) naming `code`, no traceback."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    doc = valid(response.json(), "operation-outcome")
    assert code in {c["code"] for i in doc["issue"] for c in i["details"]["coding"]}, doc
    return doc


# ----------------------------------------------------------------------------- discovery
def test_discovery_lists_three_hooks_with_templates_from_the_mapping(service) -> None:
    base, _ = service
    doc = valid(httpx.get(base + "/cds-services").json(), "cds-hooks-discovery")
    assert sorted(s["hook"] for s in doc["services"]) == ["order-select", "order-sign", "patient-view"]
    templates = doc["services"][0]["prefetch"]
    assert templates["patient"] == "Patient/{{context.patientId}}"
    for entry in MAPPING.observations.values():  # every code the mapping reads is asked for
        for system, code in entry.codes:
            assert f"{system}|{code}" in templates["observations"]
    for system, code in MAPPING.drugs:
        assert f"{system}|{code}" in templates["administrations"] and f"{system}|{code}" in templates["allergies"]


# ----------------------------------------------------------------------------- cards
def test_patient_view_p02_gives_the_conflict_and_the_recommendations(service) -> None:
    base, _ = service
    request = hook_request("patient-view", "p02", prefetch_of(resources("p02_tocilizumab_allergy.facts")))
    first = post(base, "/cds-services/crs-patient-view", request)
    assert first.status_code == 200, first.text
    cards = valid(first.json(), "cds-hooks-response")["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert len(critical) == 1
    card = critical[0]
    assert "Tocilizumab" in card["summary"] and "allergy" in card["summary"] and "siltuximab" in card["summary"]
    assert {"contra.allergy", "immediate.tocilizumab.first_dose"} <= set(card["extension"]["org.guideline-reasoner.rules"])
    assert "contra.allergy" in card["source"]["label"]
    # the proof goes back to the patient's facts and ends with the guideline's sources
    assert "`allergy(p02, tocilizumab)` (fact" in card["detail"] and "**References**" in card["detail"]
    assert "suggestions" not in card  # nothing was ordered: nothing to replace
    info = {c["summary"] for c in cards if c["indicator"] == "info"}
    assert "Dexamethasone 10 mg, IV every 6 h [strong]" in info
    assert any(s.startswith("Siltuximab 715 mg") for s in info)  # 11 mg/kg x 65 kg
    assert [c["indicator"] for c in cards] == sorted((c["indicator"] for c in cards),
                                                     key=["critical", "warning", "info"].index)
    again = post(base, "/cds-services/crs-patient-view", request)
    assert again.content == first.content  # same request, same bytes (uuids from hookInstance)


def test_order_select_of_a_contraindicated_drug_is_critical_with_the_alternative(service) -> None:
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    base, _ = service
    request = hook_request("order-select", "p02", prefetch_of(resources("p02_tocilizumab_allergy.facts")),
                           [draft("p02", "tocilizumab", "draft-toci-1")])
    cards = valid(post(base, "/cds-services/crs-order-select", request).json(), "cds-hooks-response")["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]  # no info cards at order time
    card = cards[0]
    assert card["summary"].startswith("Tocilizumab is ordered but contraindicated (allergy)")
    replace, cancel = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one" and replace["isRecommended"] and not cancel["isRecommended"]
    delete, create = replace["actions"]
    assert delete == {"type": "delete", "resourceId": "MedicationRequest/draft-toci-1",
                      "description": delete["description"]}
    order = create["resource"]
    MedicationRequest.model_validate(order)  # a valid R4B MedicationRequest
    assert order["status"] == "draft" and order["subject"]["reference"] == "Patient/p02"
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == \
        MAPPING.first_code(MAPPING.drugs, "siltuximab")[1]
    assert order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 715
    assert cancel["actions"] == [delete]


def test_order_sign_of_an_allowed_drug_gives_no_critical_card(service) -> None:
    base, _ = service
    found = resources("p01_grade2_first_dose.facts")
    amoxicillin = {**draft("p01", "tocilizumab", "draft-amox"),
                   "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                             "code": "723", "display": "amoxicillin"}]}}
    request = hook_request("order-sign", "p01", prefetch_of(found), [draft("p01", "tocilizumab", "t1"), amoxicillin])
    cards = valid(post(base, "/cds-services/crs-order-sign", request).json(), "cds-hooks-response")["cards"]
    assert not [c for c in cards if c["indicator"] == "critical"]
    unused = [c for c in cards if "not used by the rules" in c["summary"]]
    assert len(unused) == 1 and "MedicationRequest/draft-amox" in unused[0]["detail"]  # listed, never dropped


def test_missing_inputs_are_a_warning_card(service) -> None:
    base, _ = service
    found = [r for r in resources("p02_tocilizumab_allergy.facts")
             if not (r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "29463-7")]
    cards = post(base, "/cds-services/crs-patient-view", hook_request("patient-view", "p02", prefetch_of(found)))
    cards = valid(cards.json(), "cds-hooks-response")["cards"]
    missing = [c for c in cards if c["summary"].startswith("Not recorded for this patient")]
    assert len(missing) == 1 and "weight_kg" in missing[0]["summary"] and missing[0]["indicator"] == "warning"
    # and the rule's own warning: siltuximab is dosed per kg
    assert any(c["indicator"] == "warning" and "No weight for dose" in c["summary"] for c in cards)


# ----------------------------------------------------------------------------- fhirServer
def test_without_prefetch_the_data_is_fetched_with_the_bearer_token(service, fhir_stub) -> None:
    base, _ = service
    stub, fhir = fhir_stub
    stub.data = resources("p02_tocilizumab_allergy.facts")
    with_prefetch = post(base, "/cds-services/crs-patient-view",
                         hook_request("patient-view", "p02", prefetch_of(stub.data))).json()
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read",
            "subject": "reasoner"}
    fetched = post(base, "/cds-services/crs-patient-view",
                   hook_request("patient-view", "p02", None, fhirServer=fhir, fhirAuthorization=auth))
    assert fetched.status_code == 200, fetched.text
    strip = [(c["indicator"], c["summary"], c["extension"]) for c in valid(fetched.json(), "cds-hooks-response")["cards"]
             if "extension" in c]
    assert strip == [(c["indicator"], c["summary"], c["extension"]) for c in with_prefetch["cards"] if "extension" in c]
    assert all(a == f"Bearer {TOKEN}" for _, a in stub.seen)
    assert any("_page=1" in path for path, _ in stub.seen)  # the Observations came in pages
    assert {urlsplit(p).path.split("/")[2] for p, _ in stub.seen} == set(KEYS)


def test_partial_prefetch_fetches_only_the_rest(service, fhir_stub) -> None:
    base, _ = service
    stub, fhir = fhir_stub
    stub.data = resources("p02_tocilizumab_allergy.facts")
    prefetch = prefetch_of(stub.data)
    del prefetch["allergies"]
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "y"}
    response = post(base, "/cds-services/crs-patient-view",
                    hook_request("patient-view", "p02", prefetch, fhirServer=fhir, fhirAuthorization=auth))
    assert response.status_code == 200
    assert [urlsplit(p).path for p, _ in stub.seen] == ["/fhir/AllergyIntolerance"]
    assert any(c["indicator"] == "critical" for c in response.json()["cards"])  # the fetched allergy counts


def test_a_refused_token_or_no_source_of_data_is_412(service, fhir_stub) -> None:
    base, _ = service
    stub, fhir = fhir_stub
    stub.data = resources("p02_tocilizumab_allergy.facts")
    auth = {"access_token": "wrong", "token_type": "Bearer", "expires_in": 300, "scope": "x", "subject": "y"}
    doc = outcome(post(base, "/cds-services/crs-patient-view",
                       hook_request("patient-view", "p02", None, fhirServer=fhir, fhirAuthorization=auth)), 412, "E054")
    assert "401" in doc["issue"][0]["diagnostics"]
    partial = prefetch_of(stub.data)
    del partial["conditions"]
    doc = outcome(post(base, "/cds-services/crs-patient-view", hook_request("patient-view", "p02", partial)), 412,
                  "E054")
    assert doc["issue"][0]["expression"] == ["prefetch.conditions"]


# ----------------------------------------------------------------------------- bad requests
@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "E050"),
    (b"[1, 2]", 400, "E050"),
    (b'{"hook": NaN}', 400, "E050"),
    (b"\xff\xfe", 400, "E050"),
    (b"[" * 100_000, 400, "E050"),
    (b'{"hook": "patient-view", "hook": "order-select"}', 400, "E050"),  # a key twice: which one is meant?
    (json.dumps({"hook": "patient-view", "context": {}}).encode(), 400, "E050"),
    (json.dumps({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p02"}}).encode(), 400, "E051"),
    (json.dumps({"hook": "no-such-hook", "hookInstance": "x", "context": {"patientId": "p02"}}).encode(), 400, "E051"),
    (json.dumps({"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p02"},
                 "fhirAuthorization": {"access_token": "t", "token_type": "Bearer"}}).encode(), 400, "E050"),
])
def test_malformed_requests_get_an_operation_outcome(service, body: bytes, status: int, code: str) -> None:
    base, _ = service
    outcome(post(base, "/cds-services/crs-patient-view", content=body), status, code)


def test_unknown_service_wrong_method_and_huge_bodies(service) -> None:
    base, _ = service
    outcome(post(base, "/cds-services/nothing-here", {"hook": "patient-view"}), 404, "E051")
    outcome(httpx.get(base + "/cds-services/crs-patient-view"), 405, "E050")
    outcome(post(base, "/cds-services/crs-patient-view", content=b" " * 300_000), 413, "E052")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b" " * 10_000
    outcome(httpx.post(base + "/cds-services/crs-patient-view", content=chunks(), timeout=60), 413, "E052")


def test_unknown_codes_bad_values_and_other_patients_data_are_400(service) -> None:
    base, _ = service
    found = resources("p02_tocilizumab_allergy.facts")
    given = {"resourceType": "MedicationAdministration", "id": "ma-unknown", "status": "completed",
             "subject": {"reference": "Patient/p02"}, "effectiveDateTime": "2026-01-05T06:00:00Z",
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "999999999"}]}}
    doc = outcome(post(base, "/cds-services/crs-patient-view",
                       hook_request("patient-view", "p02", prefetch_of(found + [given]))), 400, "E053")
    assert any("ma-unknown" in i["diagnostics"] for i in doc["issue"])
    hot = [{**r, "valueQuantity": {**r["valueQuantity"], "value": 389}} if r["resourceType"] == "Observation"
           and r["code"]["coding"][0]["code"] == "8310-5" else r for r in found]
    doc = outcome(post(base, "/cds-services/crs-patient-view", hook_request("patient-view", "p02", prefetch_of(hot))),
                  400, "E053")
    assert any("389" in i["diagnostics"] and "E005" in i["diagnostics"] for i in doc["issue"])
    other = prefetch_of(found)
    other["allergies"]["entry"][0]["resource"] = {**other["allergies"]["entry"][0]["resource"],
                                                  "patient": {"reference": "Patient/p99"}}
    doc = outcome(post(base, "/cds-services/crs-patient-view", hook_request("patient-view", "p02", other)), 400,
                  "E053")
    assert any("p99" in i["diagnostics"] for i in doc["issue"])
    # the Patient resource itself gives no fact: another patient's was accepted with cards
    other = prefetch_of(found)
    other["patient"] = {"resourceType": "Patient", "id": "p99"}
    doc = outcome(post(base, "/cds-services/crs-patient-view", hook_request("patient-view", "p02", other)), 400,
                  "E053")
    assert any("Patient/p99" in i["diagnostics"] and i["expression"] == ["prefetch.patient"] for i in doc["issue"])


def test_no_traceback_was_logged(service, logs) -> None:
    base, _ = service
    post(base, "/cds-services/crs-patient-view", content=b"{")
    assert not [r for r in logs.records if r.exc_info or "Traceback" in r.getMessage()]


# ----------------------------------------------------------------------------- feedback
def test_feedback_is_recorded_and_reported_per_rule(service) -> None:
    base, db = service
    request = hook_request("patient-view", "p02", prefetch_of(resources("p02_tocilizumab_allergy.facts")),
                           hookInstance="feedback-instance")
    cards = post(base, "/cds-services/crs-patient-view", request).json()["cards"]
    critical = next(c for c in cards if c["indicator"] == "critical")
    dexa = next(c for c in cards if c["summary"].startswith("Dexamethasone"))
    reason = critical["overrideReasons"][0]
    feedback = valid({"feedback": [
        {"card": critical["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-05T08:05:00Z",
         "overrideReason": {"reason": reason, "userComment": "premedicated, allergy was a rash"}},
        {"card": dexa["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-05T08:06:00Z"},
        {"card": dexa["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-01-05T08:07:00+00:00",
         "acceptedSuggestions": [{"id": "none-offered"}]},
    ]}, "cds-hooks-feedback")
    response = post(base, "/cds-services/crs-patient-view/feedback", feedback)
    assert response.status_code == 200 and response.json() == {"recorded": 3}
    bogus = {"feedback": [{"card": "00000000-0000-0000-0000-000000000000", "outcome": "overridden",
                           "outcomeTimestamp": "2026-01-05T08:05:00Z"}]}
    outcome(post(base, "/cds-services/crs-patient-view/feedback", bogus), 400, "E055")
    outcome(post(base, "/cds-services/crs-patient-view/feedback",
                 {"feedback": [{"card": dexa["uuid"], "outcome": "ignored", "outcomeTimestamp": "x"}]}), 400, "E055")
    outcome(post(base, "/cds-services/crs-order-sign/feedback", feedback), 400, "E055")  # another service's card

    runner = CliRunner()
    result = runner.invoke(main, ["overrides", "--feedback-db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["rule"]: r for r in json.loads(result.output)["rules"]}
    allergy = rows["contra.allergy"]
    assert (allergy["overridden"], allergy["accepted"], allergy["override_rate"]) == (1, 0, 1.0)
    assert allergy["top_override_reasons"] == [{"reason": reason["display"], "count": 1}]
    # the dexamethasone card was overridden, then accepted: its latest outcome counts
    dexa_rule = dexa["extension"]["org.guideline-reasoner.rules"][-1]
    assert (rows[dexa_rule]["accepted"], rows[dexa_rule]["overridden"]) == (1, 0)
    assert all(r["cards_shown"] >= 1 for r in rows.values())
    order = [r["rule"] for r in json.loads(result.output)["rules"]]
    assert order[0] in critical["extension"]["org.guideline-reasoner.rules"]  # most overridden first
    for fmt in ("text", "csv", "json"):
        one = runner.invoke(main, ["overrides", "--feedback-db", str(db), "--format", fmt])
        assert one.exit_code == 0 and one.output == runner.invoke(
            main, ["overrides", "--feedback-db", str(db), "--format", fmt]).output
        assert "contra.allergy" in one.output
    missing = runner.invoke(main, ["overrides", "--feedback-db", str(db) + ".nope"])
    assert missing.exit_code == 2 and "error[E056]" in missing.output


# ----------------------------------------------------------------------------- the command
def test_reasoner_serve_runs_and_stops_cleanly(tmp_path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "reasoner", "serve", "--port", str(port), "--feedback-db",
                             str(tmp_path / "fb.sqlite"), "--log-level", "warning"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
                time.sleep(0.2)
        valid(response.json(), "cds-hooks-discovery")
        bad = httpx.post(f"http://127.0.0.1:{port}/cds-services/crs-patient-view", content=b"{", timeout=30)
        assert bad.status_code == 400
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err.decode() and (tmp_path / "fb.sqlite").is_file()


def test_a_bad_feedback_database_is_refused_before_serving(tmp_path) -> None:
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_text("hello, not sqlite\n" * 100)
    result = CliRunner().invoke(main, ["serve", "--feedback-db", str(bad)])
    assert result.exit_code == 2 and "error[E056]" in result.output


def test_another_programs_database_is_never_written(tmp_path) -> None:
    # overrides (and serve) made their tables in any SQLite file they were given
    import sqlite3
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE samples (id INTEGER)")
    for args in (["overrides", "--feedback-db", str(other)], ["serve", "--feedback-db", str(other)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "error[E056]" in result.output and "nothing was written" in result.output
    with sqlite3.connect(other) as db:
        assert [name for (name,) in db.execute("SELECT name FROM sqlite_master")] == ["samples"]
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # overrides creates nothing: an empty file is no feedback database
    result = CliRunner().invoke(main, ["overrides", "--feedback-db", str(empty)])
    assert result.exit_code == 2 and "not a feedback database" in result.output and empty.stat().st_size == 0


def test_other_commands_import_no_web_stack() -> None:
    code = ("import sys; from reasoner.cli import main\n"
            "try:\n    main(['query', 'crs_grade(P, G)', 'facts/p01_grade2_first_dose.facts'], standalone_mode=False)\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('starlette', 'uvicorn', 'httpx', 'reasoner.service', 'fhir.resources') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_serve_without_the_web_stack_says_how_to_install_it(monkeypatch) -> None:
    """`pip install .` leaves Starlette, uvicorn and httpx out: a clear refusal, exit 2."""
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "starlette" else real(name, *a))
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())])
    assert result.exit_code == 2, result.output
    assert "error[E016]: reasoner serve needs starlette" in result.output
    assert "[service]" in result.output


def test_serve_says_when_it_cannot_listen() -> None:
    # uvicorn printed its own "[Errno 98]" line and exited 3
    from click.testing import CliRunner

    from reasoner.cli import main
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"error[E016]: cannot listen on 127.0.0.1:{port}: address already in use" in result.output
    result = CliRunner().invoke(main, ["serve", "--host", "256.1.1.1", "--port", "0"])
    assert result.exit_code == 2 and "the host does not resolve" in result.output
