"""A rule set's FHIR mapping table (`fhir-map.toml` beside its `main.dl`): which FHIR
codes give which input predicate, read and checked into a `FhirMapping`. The file's own
comments and docs/fhir.md describe its layout; this module only reads it, and says where
it is wrong (`file: error[E044]: ...`), never guesses.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from reasoner.analysis.program import RuleSet, bundled_rules_path
from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import Span

MAPPING_FILE = "fhir-map.toml"
MAPPING_ERROR = "E044"
"""The mapping file itself is wrong (missing, not TOML, an unknown kind or system)."""

Code = tuple[str, str]
"""(system URI, code)."""

OBSERVATION_KINDS = ("quantity", "flag", "integer", "oxygen")
CONDITION_KINDS = ("flag", "onset", "graded", "enum")
PICKS = ("latest", "max_24h")


@dataclass(frozen=True)
class ObservationEntry:
    """How Observations of `codes` give the facts of `predicate`."""

    predicate: str
    kind: str
    codes: tuple[Code, ...]
    pick: str = "latest"
    unit: str | None = None
    device: Code | None = None
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditionEntry:
    """How Conditions give the facts of `predicate`: `codes` (flag, onset), `grades`
    (code → number) or `values` (code → the argument's name)."""

    predicate: str
    kind: str
    codes: tuple[Code, ...] = ()
    grades: dict[Code, int] = field(default_factory=dict)
    values: dict[Code, str] = field(default_factory=dict)
    write: Code | None = None
    """The code `facts_to_fhir` writes (kinds flag and onset; default: the first)."""


@dataclass
class FhirMapping:
    """A rule set's mapping table, as read from `path`."""

    path: str
    systems: dict[str, str]
    observations: dict[str, ObservationEntry]
    conditions: dict[str, ConditionEntry]
    drugs: dict[Code, str]
    """Drug codes → the vocabulary's drug name (given, ordered, withheld, allergy)."""
    pressors: dict[Code, str]
    """Vasopressor codes → the vocabulary's vasopressor name."""
    withheld_reason_system: str
    ignore: frozenset[Code] = frozenset()

    def observation_of(self, code: Code) -> ObservationEntry | None:
        return next((e for e in self.observations.values() if code in e.codes), None)

    def condition_of(self, code: Code) -> ConditionEntry | None:
        return next((e for e in self.conditions.values()
                     if code in e.codes or code in e.grades or code in e.values), None)

    def first_code(self, table: dict[Code, str], name: str) -> Code | None:
        """The code written for `name` (the first listed for it)."""
        return next((c for c, n in table.items() if n == name), None)

    def system_name(self, uri: str) -> str:
        """The short name of a system URI, for messages."""
        return next((k for k, v in self.systems.items() if v == uri), uri)


def load_fhir_mapping(rules: RuleSet | str | Path | None = None) -> FhirMapping:
    """The mapping table of a rule set: `rules` is a RuleSet, its directory, its `.dl`
    file, the mapping file itself, or None for the bundled CRS rule set. Raises
    ReasonerError (E044) when the file is missing or wrong."""
    if isinstance(rules, RuleSet):
        rules = rules.path
    base = Path(rules) if rules is not None else bundled_rules_path()
    path = base if base.suffix == ".toml" else (base if base.is_dir() else base.parent) / MAPPING_FILE
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ReasonerError.at(Span(str(path), 0, 0), f"no FHIR mapping file for this rule set "
                               f"({exc.strerror or exc}): docs/fhir.md says how to write one", MAPPING_ERROR) from None
    except tomllib.TOMLDecodeError as exc:
        raise ReasonerError.at(Span(str(path), 0, 0), f"not TOML: {exc}", MAPPING_ERROR) from None
    try:
        return _build(str(path), data)
    except (KeyError, TypeError, ValueError) as exc:
        message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else repr(exc)
        raise ReasonerError.at(Span(str(path), 0, 0), f"bad FHIR mapping: {message}", MAPPING_ERROR) from None


def _build(path: str, data: dict) -> FhirMapping:
    systems = dict(data.get("systems", {}))

    def code(text: str) -> Code:
        short, sep, value = str(text).partition("#")
        if not sep or short not in systems or not value:
            raise ValueError(f"{text!r} is not SYSTEM#CODE with SYSTEM one of {', '.join(systems)}")
        return systems[short], value

    observations = {}
    for pred, e in data.get("Observation", {}).items():
        if e.get("kind") not in OBSERVATION_KINDS or e.get("pick", "latest") not in PICKS:
            raise ValueError(f"Observation.{pred}: kind is one of {', '.join(OBSERVATION_KINDS)}, "
                             f"pick one of {', '.join(PICKS)}")
        observations[pred] = ObservationEntry(
            pred, e["kind"], tuple(code(c) for c in e["codes"]), e.get("pick", "latest"), e.get("unit"),
            code(e["device"]) if "device" in e else None, tuple(e.get("devices", ())))
    conditions = {}
    for pred, e in data.get("Condition", {}).items():
        if e.get("kind") not in CONDITION_KINDS:
            raise ValueError(f"Condition.{pred}: kind is one of {', '.join(CONDITION_KINDS)}")
        values = {code(c): name for name, cs in e.get("values", {}).items() for c in cs}
        conditions[pred] = ConditionEntry(pred, e["kind"], tuple(code(c) for c in e.get("codes", ())),
                                          {code(c): int(g) for c, g in e.get("grades", {}).items()}, values,
                                          code(e["write"]) if "write" in e else None)
    meds = data.get("medications", {})
    drug_pairs = [(code(c), name) for name, cs in meds.get("drugs", {}).items() for c in cs]
    pressor_pairs = [(code(c), name) for name, cs in meds.get("pressors", {}).items() for c in cs]
    _check_unique(systems, [("medication", f"drug {n}", c) for c, n in drug_pairs]
                  + [("medication", f"vasopressor {n}", c) for c, n in pressor_pairs])
    drugs, pressors = dict(drug_pairs), dict(pressor_pairs)
    reason_system = meds.get("withheld_reason_system", "local")
    if reason_system not in systems:
        raise ValueError(f"medications.withheld_reason_system {reason_system!r} is not in [systems]")
    mapping = FhirMapping(path, systems, observations, conditions, drugs, pressors, systems[reason_system],
                          frozenset(code(c) for c in data.get("ignore", {}).get("codes", ())))
    _check_unique(systems, [("Observation", e.predicate, c) for e in observations.values() for c in e.codes]
                  + [("Condition", e.predicate, c) for e in conditions.values()
                     for c in (*e.codes, *e.grades, *e.values)])
    return mapping


def _check_unique(systems: dict[str, str], listed: list[tuple[str, str, Code]]) -> None:
    """A code means one thing: listed twice it would make the answer depend on the order."""
    seen: dict[tuple[str, Code], str] = {}
    for kind, where, c in listed:
        before = seen.setdefault((kind, c), where)
        if before != where:
            short = next((k for k, v in systems.items() if v == c[0]), c[0])
            raise ValueError(f"{short}#{c[1]} is listed for both {before} and {where}")
