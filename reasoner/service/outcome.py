"""The service's errors: each bad request ends in one `ServiceError`, answered with an
HTTP status and a FHIR OperationOutcome naming the code (E050-E056, docs/checks.md), the
problem and where in the request it is (a FHIRPath-like `expression`), never a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MALFORMED = "E050"
"""A request that is not a CDS Hooks request: not JSON, not an object, a required field
missing or of the wrong type."""
WRONG_HOOK = "E051"
"""An unknown service id (404), or a hook the service is not for (400)."""
TOO_LARGE = "E052"
"""A request body over the service's limit (413)."""
BAD_DATA = "E053"
"""FHIR data that cannot be read as facts: an invalid resource, an unknown code, a unit
that cannot be converted, a value outside its declared range, another patient's data."""
NO_DATA = "E054"
"""The data the rules need is neither prefetched nor obtainable from `fhirServer` (412)."""
BAD_FEEDBACK = "E055"
"""A feedback request that cannot be recorded (a card this service did not issue, an
outcome other than accepted or overridden, ...)."""
FEEDBACK_DB = "E056"
"""A feedback database that cannot be opened, created or read."""

ISSUE_CODES = {MALFORMED: "invalid", WRONG_HOOK: "not-supported", TOO_LARGE: "too-costly", BAD_DATA: "invalid",
               NO_DATA: "not-found", BAD_FEEDBACK: "invalid", FEEDBACK_DB: "exception", "E022": "timeout",
               "E023": "exception"}
"""Our code → the FHIR issue-type code (http://hl7.org/fhir/issue-type) of the issue."""
CODE_SYSTEM = "urn:guideline-reasoner:error-code"


@dataclass(frozen=True)
class Issue:
    """One problem: its code, the message, and where (paths into the request, may be empty)."""

    code: str
    message: str
    where: tuple[str, ...] = ()


@dataclass
class ServiceError(Exception):
    """A request the service refuses: `status` and every issue found."""

    status: int
    issues: list[Issue] = field(default_factory=list)

    @classmethod
    def one(cls, status: int, code: str, message: str, *where: str) -> "ServiceError":
        return cls(status, [Issue(code, message, tuple(w for w in where if w))])

    def __str__(self) -> str:
        return "; ".join(f"error[{i.code}]: {i.message}" + (f" (at {', '.join(i.where)})" if i.where else "")
                         for i in self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """The OperationOutcome of `issues` (FHIR R4: severity, code, details, diagnostics,
    expression), in the order given."""
    out = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": "error",
            "code": ISSUE_CODES.get(issue.code, "processing"),
            "details": {"coding": [{"system": CODE_SYSTEM, "code": issue.code}], "text": issue.message},
            "diagnostics": f"error[{issue.code}]: {issue.message}",
        }
        if issue.where:
            entry["expression"] = list(issue.where)
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}
