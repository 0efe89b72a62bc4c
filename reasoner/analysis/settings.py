"""A rule set's settings (`.setting`): whether a value fits one (`setting_problem`, E024)
and the values a run uses, the rule set's own with `--set` overrides applied
(`resolve_settings`).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping

from reasoner.analysis.rulecheck import suggest
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import NO_SPAN, SettingDecl, Value, format_value
from reasoner.language.values import is_finite

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet


SETTING_RANGE = "E024"
"""A setting's value (the rule set's own, or one given with `--set`) that is not a finite
number inside the setting's declared range."""


def setting_problem(decl: SettingDecl, value: object) -> str | None:
    """What is wrong with `value` for the setting `decl` (None: nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not is_finite(value):  # nan, inf, or an int larger than any double
        if isinstance(value, int):
            return f"{str(value)[:20]}... is too large for a number (more than a double holds)"
        return f"{value!r} is not a finite number"
    if decl.low is not None and not decl.low <= value <= decl.high:  # type: ignore[operator]
        return f"{format_value(value)} is outside its range {decl.range_text()}"
    return None


_SETTING_NAME = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def fill_settings(text: str, settings: Mapping[str, Value]) -> str:
    """`text` (a rule's sentence) with each `$name` of a setting replaced by the value this
    run uses: a clinician reads "under 40 kg", not "under $adult_dose_min_weight_kg kg",
    and a `--set` override shows as the value it set. Names that are no setting stay."""
    def value(m: re.Match) -> str:
        name = m.group(1)
        return format_value(settings[name]) if name in settings else m.group(0)
    return _SETTING_NAME.sub(value, text)


def resolve_settings(ruleset: RuleSet, overrides: dict | None) -> dict:
    """The rule set's settings with `overrides` applied. Every problem is an error, not
    located in a file (the values come from `--set` or the caller): an unknown name
    (E012, with the known ones), a value that is not a finite number inside the setting's
    declared range (E024, naming the range, its unit and where it is declared)."""
    values = {name: s.value for name, s in ruleset.settings.items()}
    problems = []
    for name, value in (overrides or {}).items():
        decl = ruleset.settings.get(name)
        if decl is None:
            problems.append(Diagnostic(NO_SPAN, f"unknown setting {name}" + suggest(name, values)
                                       + f" (known: {', '.join(sorted(values)) or 'none'})", "E012"))
            continue
        wrong = setting_problem(decl, value)
        if wrong:
            problems.append(Diagnostic(NO_SPAN, f"setting {name}: {wrong} (declared at {decl.span})", SETTING_RANGE))
            continue
        values[name] = value
    if problems:
        raise ReasonerError(problems)
    return values

