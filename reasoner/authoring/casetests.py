"""A rule set's own test cases: example patients with the answers they must and must not get.

A case is a fact file kept beside the rules (`tests/*.facts` in the rule set's
directory). Besides its facts, comment lines state what is expected:

    % expect: recommend(p1, tocilizumab)      an answer that must be derived
    % expect: crs_grade(p1, G)                a goal that must have at least one answer
    % reject: recommend(p1, anakinra)         a goal that must have no answer
    % setting: grade1_persistent_hours = 24   a setting for this case only

`reasoner test` runs every case and prints one line per case and a last line
`N passed, M failed`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reasoner.engines.run import evaluate
from reasoner.io.facts import load_facts
from reasoner.io.goals import check_goal
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.analysis.program import RuleSet, resolve_settings
from reasoner.language.syntax import Atom, Span
from reasoner.language.values import read_number

_DIRECTIVE = re.compile(r"^\s*%\s*(expect|reject|setting)\s*:\s*(.+?)\s*$")
_ALMOST = re.compile(r"^\s*%+\s*(expects?|rejects?|settings?)\b\s*(:?)", re.IGNORECASE)
"""A comment that reads like a directive but is not one (`% Expect:`, `% expect crs_grade(...)`):
an error, or the case would pass without checking what its author meant."""


@dataclass
class Case:
    name: str
    path: Path
    expect: list[tuple[Atom, int]] = field(default_factory=list)
    reject: list[tuple[Atom, int]] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    case: Case
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def case_dir(rules: RuleSet) -> Path:
    base = Path(rules.path)
    return (base if base.is_dir() else base.parent) / "tests"


def read_case(path: Path, rules: RuleSet) -> Case:
    case = Case(path.stem, path)
    problems: list[Diagnostic] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _DIRECTIVE.match(line)
        if not m:
            almost = _ALMOST.match(line)
            if almost:
                word = almost.group(1).lower().rstrip("s")
                problems.append(Diagnostic(Span(str(path), number, almost.start(1) + 1),
                                           f"{line.strip()!r} is not a directive: write `% {word}: GOAL`"
                                           + (" (lower case, with a colon)" if word != "setting" else
                                              " (`% setting: NAME = NUMBER`)"), "E015"))
            continue
        kind, body = m.groups()
        span = Span(str(path), number, line.index(body) + 1)
        if kind == "setting":
            name, sep, text = body.partition("=")
            name = name.strip()
            try:
                value = read_number(text.strip())
                if not sep:
                    raise ValueError("no =")
            except ValueError as exc:
                problems.append(Diagnostic(span, f"expected `% setting: NAME = NUMBER`, got {body!r} ({exc})", "E015"))
                continue
            try:  # a name the rule set declares, a value in its range (E012, E024), located here
                resolve_settings(rules, {name: value})
            except ReasonerError as exc:
                problems += [Diagnostic(span, d.message, d.code) for d in exc.diagnostics]
                continue
            case.settings[name] = value
            continue
        try:
            atom = check_goal(rules, body.rstrip("."))
        except ReasonerError as exc:
            problems += [Diagnostic(span, d.message, d.code) for d in exc.diagnostics]
            continue
        (case.expect if kind == "expect" else case.reject).append((atom, number))
    if not case.expect and not case.reject and not problems:
        problems.append(Diagnostic(Span(str(path), 1, 1), "a test case needs at least one `% expect:` or "
                                   "`% reject:` line", "E015"))
    if problems:
        raise ReasonerError(problems)
    return case


def run_case(case: Case, rules: RuleSet) -> Outcome:
    facts = load_facts(rules, [case.path])
    model = evaluate(rules, facts, settings=case.settings or None)
    failures = []
    for atom, line in case.expect:
        if not model.query(atom):
            failures.append(f"line {line}: expected {atom}, not derived")
    for atom, line in case.reject:
        found = model.query(atom)
        if found:
            shown = ", ".join(", ".join(f"{k} = {v}" for k, v in a.items()) or "it holds" for a in found[:3])
            failures.append(f"line {line}: rejected {atom}, but derived ({shown})")
    from reasoner.proof.violations import violation_lines  # an example patient must not break the rule set's own constraints
    failures += violation_lines(rules, model.violations)
    return Outcome(case, failures)
