"""What the service offers and what it is sent: the CDS services of a rule set (one per
hook: `patient-view`, `order-select`, `order-sign`), their discovery entries with
prefetch templates, and a CDS Hooks 2.0 request read and checked (`parse_request`).

The checks follow the specification's "Calling a CDS Service" section: `hook`,
`hookInstance` and `context` are required, `fhirServer` is required with
`fhirAuthorization`, whose `access_token` and `token_type` (`Bearer`) it must have;
`context.patientId` is required by all three hooks, `context.draftOrders` (a Bundle) by
the order hooks and `context.selections` by `order-select`. Every problem is reported at
once, with its place in the request.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from reasoner.service.outcome import MALFORMED, WRONG_HOOK, Issue, ServiceError
from reasoner.io.json_keys import DuplicateKey, duplicate_at, unique_keys

HOOKS = ("patient-view", "order-select", "order-sign")
ORDER_HOOKS = ("order-select", "order-sign")
ASSESSED_AT = "org.guideline-reasoner.assessed-at"
"""A request `extension` naming the assessment time ("now" for the hours-ago values read
from FHIR); without it, the time the request arrived (UTC), stated in every card."""

_TOKEN = re.compile(r"\{\{\s*context\.patientId\s*\}\}")


@dataclass(frozen=True)
class Service:
    """One CDS service: its id (the `{id}` of `/cds-services/{id}`), hook and texts."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]

    def discovery(self) -> dict[str, Any]:
        """Its entry in the discovery response."""
        return {"hook": self.hook, "title": self.title, "description": self.description, "id": self.id,
                "prefetch": dict(self.prefetch)}


def services(name: str, title: str, prefetch: dict[str, str]) -> list[Service]:
    """The three services of a rule set called `name` (its folder name), titled `title`."""
    what = {
        "patient-view": "when a patient's chart is opened: the recommendations, conflicts and warnings of the "
                        "guideline's rules for this patient, each card with its proof",
        "order-select": "when a drug is selected for ordering: a critical card when the draft order is "
                        "contraindicated, with the alternative the rules name as a suggestion",
        "order-sign": "before orders are signed: a critical card for each contraindicated draft order, with the "
                      "alternative the rules name as a suggestion",
    }
    return [Service(f"{name}-{hook}", hook, f"{title}: {hook}", f"{title}, {what[hook]}. Research use only: not a "
                    "medical device.", prefetch) for hook in HOOKS]


def fill(template: str, patient_id: str) -> str:
    """A prefetch template with its `{{context.patientId}}` token replaced."""
    return _TOKEN.sub(patient_id, template)


@dataclass
class HookRequest:
    """A checked CDS Hooks request."""

    hook: str
    hook_instance: str
    patient_id: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None
    fhir_server: str | None = None
    access_token: str | None = None
    draft_orders: dict[str, Any] | None = None
    assessed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0))
    assessed_at_given: bool = False


def read_json(body: bytes) -> Any:
    """The JSON document of a request body, or E050 with the line and column of the problem."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError.one(400, MALFORMED, f"the request body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=no_constant, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise ServiceError.one(400, MALFORMED, f"the request body is not JSON: {exc.msg} at line {exc.lineno}, "
                               f"column {exc.colno}") from None
    except DuplicateKey as exc:
        from reasoner.io.fact_readers import span_at
        at = span_at(text, "<request>", duplicate_at(text) or 0)
        raise ServiceError.one(400, MALFORMED, f"the request body is not valid: {exc}, at line {at.line}, column "
                               f"{at.col}") from None
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ServiceError.one(400, MALFORMED, f"the request body is not JSON: {problem}") from None


def parse_request(doc: Any, service: Service) -> HookRequest:
    """A CDS Hooks request for `service`, checked; ServiceError (400) with every problem."""
    if not isinstance(doc, dict):
        raise ServiceError.one(400, MALFORMED, f"a CDS Hooks request is a JSON object, not {_kind(doc)}")
    issues: list[Issue] = []

    def need(key: str, kind: type, where: dict, path: str, required: bool = True) -> Any:
        value = where.get(key)
        if value is None:
            if required:
                issues.append(Issue(MALFORMED, f"{path} is required", (path,)))
            return None
        if not isinstance(value, kind) or (kind is str and not value.strip()) or isinstance(value, bool):
            issues.append(Issue(MALFORMED, f"{path} must be a non-empty {_name(kind)}, not {_kind(value)}", (path,)))
            return None
        return value

    hook = need("hook", str, doc, "hook")
    if hook is not None and hook != service.hook:
        known = f"; this service is for {service.hook}" if hook in HOOKS else \
            f"; the hooks served are {', '.join(HOOKS)}"
        raise ServiceError.one(400, WRONG_HOOK, f"service {service.id} does not answer the hook {hook!r}{known}",
                               "hook")
    instance = need("hookInstance", str, doc, "hookInstance")
    context = need("context", dict, doc, "context") or {}
    patient = need("patientId", str, context, "context.patientId") if "context" in doc else None
    prefetch = need("prefetch", dict, doc, "prefetch", required=False)
    server = need("fhirServer", str, doc, "fhirServer", required="fhirAuthorization" in doc)
    if server is not None and urlsplit(server).scheme not in ("http", "https"):
        issues.append(Issue(MALFORMED, f"fhirServer must be an http(s) URL, not {server[:80]!r}", ("fhirServer",)))
        server = None
    token = None
    auth = need("fhirAuthorization", dict, doc, "fhirAuthorization", required=False)
    if auth is not None:
        token = need("access_token", str, auth, "fhirAuthorization.access_token")
        kind = need("token_type", str, auth, "fhirAuthorization.token_type")
        if kind is not None and kind.lower() != "bearer":
            issues.append(Issue(MALFORMED, f"fhirAuthorization.token_type must be Bearer, not {kind[:40]!r}",
                                ("fhirAuthorization.token_type",)))
    drafts = None
    if hook in ORDER_HOOKS:
        drafts = need("draftOrders", dict, context, "context.draftOrders")
        if drafts is not None and drafts.get("resourceType") != "Bundle":
            issues.append(Issue(MALFORMED, "context.draftOrders must be a FHIR Bundle", ("context.draftOrders",)))
        if hook == "order-select":
            need("selections", list, context, "context.selections")
    assessed, given = _assessed_at(doc, issues)
    if issues:
        raise ServiceError(400, issues)
    request = HookRequest(hook, instance, patient, context, prefetch, server, token, drafts)  # type: ignore[arg-type]
    if assessed is not None:
        request.assessed_at, request.assessed_at_given = assessed, given
    return request


def _assessed_at(doc: dict, issues: list[Issue]) -> tuple[datetime | None, bool]:
    extension = doc.get("extension")
    if extension is None:
        return None, False
    if not isinstance(extension, dict):
        issues.append(Issue(MALFORMED, "extension must be a JSON object", ("extension",)))
        return None, False
    text = extension.get(ASSESSED_AT)
    if text is None:
        return None, False
    where = f"extension.{ASSESSED_AT}"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        issues.append(Issue(MALFORMED, f"{where} must be an ISO 8601 date-time with a time zone, e.g. "
                            "2026-01-05T08:00:00Z", (where,)))
        return None, False
    return when.astimezone(timezone.utc), True


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _name(kind: type) -> str:
    return {dict: "object", list: "array", str: "string"}.get(kind, kind.__name__)
