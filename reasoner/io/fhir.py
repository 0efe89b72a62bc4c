"""FHIR R4 → facts (and facts → a FHIR Bundle), by a rule set's mapping table.

Public API (the CDS Hooks service and the `reasoner facts` commands call these):

    facts_from_fhir(resources, *, origin="<fhir>", assessed_at=None, mapping=None) -> FhirFacts
        `resources`: a Bundle (any type: collection, searchset, transaction, ...), a single
        resource, or an iterable of resources and/or Bundles (CDS Hooks prefetch values;
        `context.draftOrders` is a Bundle of MedicationRequest), as parsed JSON (dicts).
        Every resource is validated with the fhir.resources R4B models (R4 and R4B agree
        on the resources read here), then mapped by `mapping` (default: the bundled CRS
        rule set's `fhir-map.toml`). `assessed_at`: the time "now" that hours-ago values
        (given, crs_onset) and the 24-hour temperature window count from; when None, the
        latest `Bundle.timestamp` among the inputs; when there is none either, a value
        that needs it is a problem (E043) — the wall clock is never read.
    FhirFacts(facts, problems, patient, notes, assessed_at, sources)
        `facts`: reasoner.language.syntax.Fact, each with a Span naming `origin` (and the
        resource's line:col when read from a file); not yet checked: `checked(ruleset)`
        runs them through the one fact validator (reasoner.io.fact_check.validate_fact)
        and names the resource and element in its messages. `problems`: what could not
        be mapped (errors: a command exits 2). `notes`: resources that give no fact on
        purpose (entered in error, superseded, a type the rule set does not read: never
        dropped silently, but no error). `patient`: the one patient id, else None.
    FhirProblem(resource, path, message, code, span)   e.g. ("Observation/obs-7",
        "valueQuantity.code", "unit 'mm[Hg]' cannot be converted to Cel", "E041").
    load_fhir_mapping(rules) -> FhirMapping      (reasoner.io.fhir_map)
    facts_to_fhir(facts, *, assessed_at, mapping=None) -> dict   a collection Bundle
        (reasoner.io.fhir_write): the inverse, for tests and fixtures.

fhir.resources is imported only when a function here runs (tests/test_startup.py).
Codes: E040 not a FHIR Bundle or resource / fails R4B validation, E041 a resource that
cannot be mapped, E042 a note, E043 no assessment time or no patient, E044 the mapping file.
docs/fhir.md states every rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from reasoner.io.fhir_map import FhirMapping, load_fhir_mapping
from reasoner.io.fhir_read import Candidate, Note, read_resource, reads
from reasoner.io.fhir_values import Unmapped, hours_before
from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import NO_SPAN, Fact, Span
from reasoner.language.values import text_problem

MALFORMED, UNMAPPED, NOTE, NO_CONTEXT = "E040", "E041", "E042", "E043"

__all__ = ["FhirFacts", "FhirMapping", "FhirProblem", "facts_from_fhir", "facts_to_fhir", "load_fhir_mapping"]


@dataclass(frozen=True)
class FhirProblem:
    """A resource, or one element of it, that cannot be mapped (or, as a note, is not)."""

    resource: str
    path: str
    message: str
    code: str = UNMAPPED
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return f"{self.resource}{' ' + self.path if self.path else ''}: {self.message}"

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.span, str(self), self.code)


@dataclass
class FhirFacts:
    """What FHIR input gave: facts (unchecked), problems (errors), notes, the patient."""

    facts: list[Fact]
    problems: list[FhirProblem]
    patient: str | None
    notes: list[FhirProblem] = field(default_factory=list)
    assessed_at: datetime | None = None
    sources: list[tuple[str, str]] = field(default_factory=list)
    """(resource, element path) of each fact, in the order of `facts`."""

    def checked(self, ruleset) -> tuple[list[Fact], list[Diagnostic]]:
        """The facts through the one fact validator, and its problems, each naming the
        resource and element the fact came from, then this input's own problems."""
        from reasoner.io.fact_check import validate_fact

        facts: list[Fact] = []
        problems = [p.diagnostic() for p in self.problems]
        doses: dict[tuple, str] = {}
        for fact, (resource, path) in zip(self.facts, self.sources):
            checked = validate_fact(ruleset, fact)
            if isinstance(checked, Diagnostic):
                problems.append(Diagnostic(checked.span, f"{resource} {path}: {checked.message}", checked.code))
                continue
            if checked.pred == "given":
                # facts are a set: two administrations of one dose at one time would count as
                # one dose (three doses in 24 h read as one); which is meant cannot be told
                first = doses.setdefault(tuple(checked.args), resource)
                if first != resource:
                    problems.append(Diagnostic(checked.span, f"{resource} {path}: the same dose at the same time "
                                               f"as {first} ({checked}): one dose recorded twice, or two doses? "
                                               "Facts are a set, so they would count as one", UNMAPPED))
                    continue
            facts.append(checked)
        return facts, problems


def facts_to_fhir(facts: list[Fact], *, assessed_at: datetime, mapping: FhirMapping | None = None) -> dict:
    """A collection Bundle stating `facts` (see reasoner.io.fhir_write)."""
    from reasoner.io.fhir_write import facts_to_fhir as write

    return write(facts, assessed_at=assessed_at, mapping=mapping)


@dataclass
class _Item:
    raw: dict
    label: str
    span: Span
    model: Any = None


class _Reader:
    """One call of `facts_from_fhir`: the inputs flattened, validated, mapped, picked."""

    def __init__(self, origin: str, spans: dict[int, Span] | None):
        self.origin = origin
        self.spans = spans or {}
        self.items: list[_Item] = []
        self.problems: list[FhirProblem] = []
        self.notes: list[FhirProblem] = []
        self.timestamps: list[datetime] = []
        self.full_urls: dict[str, dict] = {}

    def span(self, raw: object, label: str | None = None) -> Span:
        """Where `raw` is: its line:col in the file read, else the origin and the resource
        (a proof then names `prefetch.observations Observation/obs-7` as a fact's source)."""
        return self.spans.get(id(raw), Span(f"{self.origin} {label}" if label else self.origin, 0, 0))

    def problem(self, item: _Item | str, path: str, message: str, code: str = UNMAPPED) -> None:
        label, span = (item.label, item.span) if isinstance(item, _Item) else (item, Span(self.origin, 0, 0))
        target = self.notes if code == NOTE else self.problems
        target.append(FhirProblem(label, path, message, code, span))

    # ------------------------------------------------------------------ flatten and validate
    def add(self, value: object, where: str) -> None:
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            self.bundle(value, where)
        elif isinstance(value, dict) and isinstance(value.get("resourceType"), str):
            label = _label(value, where)
            self.items.append(_Item(value, label, self.span(value, label)))
        elif isinstance(value, dict):
            self.problem(_Item(value, where, self.span(value)), "resourceType",
                         "not a FHIR resource (no resourceType)", MALFORMED)
        else:
            self.problem(where, "", f"not a FHIR resource or Bundle but {type(value).__name__}", MALFORMED)

    def bundle(self, raw: dict, where: str) -> None:
        from pydantic import ValidationError
        from fhir.resources.R4B.bundle import Bundle

        entries = raw.get("entry")
        shell = dict(raw)
        if isinstance(entries, list):
            shell["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                              for e in entries]
        label = _label(raw, where)
        item = _Item(raw, label, self.span(raw))
        try:
            model = Bundle.model_validate(shell)
        except ValidationError as exc:
            for err in exc.errors():
                self.problem(item, _loc(err["loc"]), f"fails FHIR R4B validation: {err['msg']}", MALFORMED)
            return
        if model.timestamp is not None:
            self.timestamps.append(model.timestamp)
        for i, entry in enumerate(entries or ()):
            resource = entry.get("resource")
            if resource is None:
                continue  # a transaction's DELETE entry holds no resource
            if isinstance(entry.get("fullUrl"), str):
                self.full_urls[entry["fullUrl"]] = resource
            self.add(resource, f"{label} entry[{i}]")

    def validate(self, item: _Item) -> bool:
        from pydantic import ValidationError
        from fhir.resources.R4B import get_fhir_model_class

        kind = item.raw["resourceType"]
        try:
            cls = get_fhir_model_class(kind)
        except (ValueError, KeyError):
            self.problem(item, "resourceType", f"{kind!r} is not a FHIR R4B resource type", MALFORMED)
            return False
        try:
            item.model = cls.model_validate(item.raw)
        except ValidationError as exc:
            for err in exc.errors():
                self.problem(item, _loc(err["loc"]), f"fails FHIR R4B validation: {err['msg']}", MALFORMED)
            return False
        return True

    # ------------------------------------------------------------------ patients
    def patient_of(self, item: _Item) -> str:
        """The Patient id a resource is about (subject, or patient for AllergyIntolerance)."""
        ref = getattr(item.model, "subject", None) or getattr(item.model, "patient", None)
        path = "subject" if getattr(item.model, "subject", None) is not None else "patient"
        text = ref.reference if ref is not None else None
        if not text:
            raise Unmapped(path, "no reference to the Patient it is about")
        target = self.full_urls.get(text)
        if isinstance(target, dict) and target.get("resourceType") == "Patient" and isinstance(target.get("id"), str):
            return target["id"]
        parts = text.split("/")
        if "_history" in parts:
            parts = parts[:parts.index("_history")]
        if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
            return parts[-1]
        raise Unmapped(f"{path}.reference", f"{text!r} is not a reference to a Patient")


def facts_from_fhir(resources: dict | Iterable[dict], *, origin: str = "<fhir>", assessed_at: datetime | None = None,
                    mapping: FhirMapping | None = None, spans: dict[int, Span] | None = None) -> FhirFacts:
    """Facts from FHIR resources (see the module docstring). `spans`: where each resource
    dict (by id()) begins in its source text, for located messages."""
    reader = _Reader(origin, spans)
    mapping = mapping if mapping is not None else load_fhir_mapping(None)
    for i, value in enumerate([resources] if isinstance(resources, dict) else list(resources)):
        reader.add(value, origin if isinstance(resources, dict) else f"{origin}[{i}]")
    if assessed_at is None and reader.timestamps:
        assessed_at = max(reader.timestamps)
    if assessed_at is not None and assessed_at.tzinfo is None:
        reader.problem("assessed_at", "", "the assessment time has no time zone", NO_CONTEXT)
        assessed_at = None
    patients: dict[str, None] = {}
    found: list[tuple[int, _Item, str, Candidate]] = []
    for n, item in enumerate(reader.items):
        if not reader.validate(item):
            continue
        kind = item.raw["resourceType"]
        if kind == "Patient":
            _patient_id(reader, item, patients)
            continue
        if not reads(kind):
            reader.problem(item, "", f"resource type {kind} is not read by this rule set's mapping: no fact", NOTE)
            continue
        try:
            patient = reader.patient_of(item)
            if (why := text_problem(patient, "patient id")) is not None:
                raise Unmapped("subject.reference", why)
            results = read_resource(kind, item.model, mapping)
        except Unmapped as exc:
            reader.problem(item, exc.path, exc.message)
            continue
        patients.setdefault(patient, None)
        for result in results:
            if isinstance(result, Note):
                reader.problem(item, result.path, result.message, NOTE)
            else:
                found.append((n, item, patient, result))
    facts = _facts(reader, found, assessed_at)
    ordered = sorted(facts, key=lambda f: f[0])
    return FhirFacts([f for _, f, _ in ordered], reader.problems, next(iter(patients)) if len(patients) == 1 else None,
                     reader.notes, assessed_at, [s for _, _, s in ordered])


def _patient_id(reader: _Reader, item: _Item, patients: dict[str, None]) -> None:
    pid = item.model.id
    if pid is None:
        reader.problem(item, "id", "a Patient without an id: facts name patients by their FHIR id", NO_CONTEXT)
    elif (why := text_problem(pid, "patient id")) is not None:
        reader.problem(item, "id", why, NO_CONTEXT)
    else:
        patients.setdefault(pid, None)


def _facts(reader: _Reader, found: list[tuple[int, _Item, str, Candidate]],
           assessed_at: datetime | None) -> list[tuple[int, Fact, tuple[str, str]]]:
    """The candidates as facts: the chosen one of each picked group, hours counted."""
    out: list[tuple[int, Fact, tuple[str, str]]] = []
    groups: dict[tuple[str, str], list[tuple[int, _Item, str, Candidate]]] = {}
    for entry in found:
        n, item, patient, c = entry
        if c.pick is not None:
            groups.setdefault((patient, c.predicate), []).append(entry)
            continue
        args = c.args or ()
        if c.hours_at is not None:
            if assessed_at is None:
                reader.problem(item, c.path, "hours before the assessment cannot be counted: no assessment time "
                               "(a Bundle.timestamp, or --assessed-at)", NO_CONTEXT)
                continue
            args = (*args, hours_before(assessed_at, c.hours_at))
        out.append((n, Fact(c.predicate, (patient, *args), item.span), (item.label, c.path)))
    for (patient, predicate), members in groups.items():
        chosen = _pick(reader, members, assessed_at)
        if chosen is None:
            continue
        n, item, _, c = chosen
        if c.args is None:
            reader.problem(item, c.path, f"false: no {predicate} fact", NOTE)
            continue
        out.append((n, Fact(predicate, (patient, *c.args), item.span), (item.label, c.path)))
    return out


def _pick(reader: _Reader, members: list, assessed_at: datetime | None):
    """The latest (or the highest within 24 h) of a patient's Observations for one
    predicate; every other one is noted, a disagreement at the same time is a problem."""
    pick = members[0][3].pick
    usable = []
    for m in members:
        _, item, _, c = m
        if assessed_at is None and pick == "max_24h":
            reader.problem(item, c.path, "the highest value in the last 24 h cannot be chosen: no assessment "
                           "time (a Bundle.timestamp, or --assessed-at)", NO_CONTEXT)
        elif assessed_at is not None and c.when > assessed_at:
            reader.problem(item, "effective", f"after the assessment time ({assessed_at.isoformat()}): not used", NOTE)
        elif pick == "max_24h" and c.when < assessed_at - timedelta(hours=24):
            reader.problem(item, "effective", "more than 24 h before the assessment: not used", NOTE)
        else:
            usable.append(m)
    if not usable:
        return None
    key = (lambda m: m[3].when) if pick == "latest" else (lambda m: m[3].args[0])
    best = max(key(m) for m in usable)
    top = [m for m in usable if key(m) == best]
    chosen = top[0]
    if pick == "latest" and len({m[3].args for m in top}) > 1:
        for m in top:
            reader.problem(m[1], m[3].path, f"disagrees with {chosen[1].label if m is not chosen else top[1][1].label} "
                           f"at the same time ({best.isoformat()})")
        return None
    for m in usable:
        if m is not chosen and m[1] is not chosen[1]:
            why = "a later one" if pick == "latest" else "a higher value in the last 24 h"
            reader.problem(m[1], m[3].path, f"superseded by {chosen[1].label} ({why}): not used", NOTE)
    return chosen


def _label(raw: dict, where: str) -> str:
    kind, rid = raw.get("resourceType"), raw.get("id")
    return f"{kind}/{rid}" if isinstance(rid, str) and rid else f"{kind} at {where}"


def _loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
