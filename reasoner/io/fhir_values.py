"""Values read from FHIR resources (already validated by the fhir.resources R4B models):
UCUM quantities converted to the vocabulary's units, times turned into "hours before the
assessment", codings looked up, statuses read. Each helper returns its value or raises
`Unmapped` naming the element path and why, which the reader reports as a problem.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Iterable

from reasoner.io.fhir_map import Code

UCUM = "http://unitsofmeasure.org"

_SCALE: dict[str, dict[str, Decimal]] = {
    # target unit -> {UCUM code: factor}; exact factors (UCUM: [lb_av] = 0.45359237 kg)
    "kg": {"kg": Decimal(1), "g": Decimal("0.001"), "[lb_av]": Decimal("0.45359237")},
    "mg": {"mg": Decimal(1), "g": Decimal(1000), "ug": Decimal("0.001")},
    "%": {"%": Decimal(1)},
    "L/min": {"L/min": Decimal(1)},
    "Cel": {"Cel": Decimal(1)},
}
CONVERTED_PLACES = Decimal("0.01")
"""A value converted from another unit is rounded to 2 decimal places (100.4 [degF] is
38 Cel, 150 [lb_av] 68.04 kg); one already in the target unit is kept as written."""


class Unmapped(Exception):
    """An element of a resource that cannot be turned into a fact value: (path, message)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def number(value: Decimal) -> int | float:
    """A decimal as the engines hold numbers: an int when whole, else a float. Past what a
    double holds it stays a number the fact validator rejects with its own message."""
    if not value.is_finite() or abs(value.adjusted()) > 400:
        return float(value)
    return int(value) if value == value.to_integral_value() else float(value)


def quantity(q: Any, path: str, target: str) -> int | float:
    """A FHIR Quantity in `target` (a UCUM code), converted by its UCUM code."""
    if q is None:
        raise Unmapped(path, f"no value (a quantity in {target} is needed)")
    if q.value is None:
        raise Unmapped(f"{path}.value", "no value")
    if q.system != UCUM or not q.code:
        raise Unmapped(f"{path}.system", f"the unit must be a UCUM code (system {UCUM}); got system "
                       f"{q.system or 'none'}, code {q.code or 'none'}, unit {q.unit or 'none'}")
    value = Decimal(q.value)
    if target == "Cel" and q.code == "[degF]":
        return number(((value - 32) * 5 / 9).quantize(CONVERTED_PLACES).normalize())
    factor = _SCALE.get(target, {}).get(q.code)
    if factor is None:
        raise Unmapped(f"{path}.code", f"unit {q.code!r} cannot be converted to {target}")
    if factor == 1:
        return number(value)
    return number((value * factor).quantize(CONVERTED_PLACES).normalize())


def codings(concept: Any) -> list[Code]:
    """The (system, code) pairs of a CodeableConcept (none when it has no coding)."""
    if concept is None:
        return []
    return [(c.system or "", c.code or "") for c in concept.coding or ()]


def lookup(concept: Any, table: Callable[[Code], Any], path: str) -> tuple[Any, Code] | None:
    """What the first coding found in `table` gives, or None when no coding is. Two codings
    that give different things are an error, not a choice."""
    found: list[tuple[Any, Code]] = [(hit, c) for c in codings(concept) if (hit := table(c)) is not None]
    if len({repr(h) for h, _ in found}) > 1:
        raise Unmapped(path, "codings that mean different things: "
                       + ", ".join(f"{c[0]}#{c[1]}" for _, c in found))
    return found[0] if found else None


def shown_codes(concept: Any) -> str:
    cs = codings(concept)
    if not cs:
        return "no coding" + (f" (text {concept.text!r})" if concept is not None and concept.text else "")
    return ", ".join(f"{s or '(no system)'}#{c}" for s, c in cs)


def status_code(concept: Any) -> str | None:
    """The code of a status CodeableConcept (Condition.clinicalStatus, ...), or None."""
    codes = [c for _, c in codings(concept) if c]
    return codes[0] if codes else None


def instant(value: Any, path: str) -> datetime:
    """A FHIR dateTime/instant with a time of day and zone (a bare date has no hour)."""
    if value is None:
        raise Unmapped(path, "no time")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Unmapped(path, "a time without a time zone")
        return value
    if isinstance(value, date):
        raise Unmapped(path, f"{value.isoformat()} is a date without a time of day: hours cannot be counted")
    raise Unmapped(path, f"{value!r} is not a time")


def effective(resource: Any, names: Iterable[str]) -> tuple[datetime, str]:
    """The first of the `names` elements set (effectiveDateTime, effectiveInstant,
    effectivePeriod: its start) as a time, with the element path."""
    for name in names:
        value = getattr(resource, name, None)
        if value is None:
            continue
        if name.endswith("Period"):
            return instant(value.start, f"{name}.start"), f"{name}.start"
        return instant(value, name), name
    raise Unmapped("|".join(names), "no time")


def hours_before(assessed_at: datetime, when: datetime) -> int | float:
    """Hours from `when` to the assessment, to 12 decimal places (3.6 ns); negative when
    `when` is after the assessment (the fact validator reports it as out of range). FHIR
    times go to the microsecond (2.8e-10 h), so the rounding never moves a time across a
    threshold the rules compare with (8 h, 7.9 h): rounding to 4 places (0.36 s) read a
    dose 7.99999 h ago as 8 h, and the too_soon contraindication was lost."""
    delta = assessed_at - when
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000
    return number((seconds / 3600).quantize(Decimal("1e-12")).normalize())
