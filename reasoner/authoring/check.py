"""`reasoner check`: findings for guideline authors, each with a code (docs/checks.md).

Static findings come from reading the rules. Semantic findings come first from the
solver (smt.py, check_solver.py): what its encoding covers is *proved* — a dead rule, a constraint that
holds, a redundant rule are proofs of absence; a violation, a conflict, a failing
requirement, a value outside its range come with a witness patient that the engine has
reproduced. What the encoding does not cover (recursion, aggregates over unbounded
facts, ...) is *searched* over the representative patients of explore.py, and each such
finding says so and why. Every witness is written out as a ready-to-run fact file with
`--witness-dir`. A finding can be marked intended with `.allow CODE "TARGET" "why"` in
the rule files (TARGET: a rule id, a predicate, or `*`); it is then listed as allowed,
not counted.

The modules of the check, each owning one part: check_codes.py (CODES, Finding,
CheckReport), check_static.py (reading the rules), check_items.py (what the semantic checks
decide), check_solver.py and check_search.py (the solver's findings and the search's),
check_witness.py (witness files). This module runs them (run_check) and keeps the public
names of all of them importable from `reasoner.authoring.check`.
"""
from __future__ import annotations

from pathlib import Path

from reasoner.analysis.program import RuleSet, load_rules, resolve_settings
from reasoner.authoring.check_codes import (
    CODES,
    CheckReport,
    Finding,
    diagnostics_to_findings,
)
from reasoner.authoring.check_items import (
    Item,
    item_group,
    item_label,
    items,
    not_checked,
)
from reasoner.authoring.check_search import searched_findings
from reasoner.authoring.check_solver import solver_findings
from reasoner.authoring.check_static import static_findings
from reasoner.authoring.check_witness import write_witnesses
from reasoner.authoring.smt_formulas import DEFAULT_BOUND
from reasoner.language.syntax import Value

__all__ = ["CODES", "CheckReport", "Finding", "diagnostics_to_findings", "run_check", "semantic_findings",
           "static_findings", "write_witnesses"]


def semantic_findings(rs: RuleSet, settings: dict[str, Value] | None = None, budget: int = 3000,
                      per_rule: int = 3, solver: bool = True, search: str = "auto",
                      default_bound: int = DEFAULT_BOUND) -> tuple[list[Finding], dict]:
    """Solver first; the search for what it left undecided (`search`: auto), for everything
    as a cross-check (always: a search finding against a solver proof is an internal
    error), or never."""
    settings = {**{n: s.value for n, s in rs.settings.items()}, **(settings or {})}
    findings: list[Finding] = []
    skipped = not_checked(rs)
    stats: dict = {"internal": []}
    if rs.left_out:
        stats["left_out"] = {"rules": [rs.rule_name(r) for r in rs.left_out],
                             "not_checked": [item_label(rs, item) for item in items(rs) if item in skipped]}
    decided: dict[Item, str] = {}  # item → what the solver proved ("absent": no finding, "found")
    undecided: dict[Item, str] = {}
    if solver:
        found, solver_stats, decided, undecided = solver_findings(rs, settings, default_bound, skipped)
        findings += found
        stats["solver"] = solver_stats
        stats["internal"] += solver_stats.pop("internal")
    else:
        undecided = {item: "the solver was not run (--no-solver)" for item in items(rs) if item not in skipped}
    if search == "always" or (search == "auto" and undecided):
        found, explored = searched_findings(rs, settings, budget, per_rule, decided, undecided, skipped)
        found = [f for f in found if item_group(f.item) not in skipped]
        findings += found
        stats["internal"] += explored.pop("internal")
        stats.update(explored)
    stats["undecided"] = {item_label(rs, item): reason for item, reason in undecided.items()}
    return findings, stats


# ----------------------------------------------------------------------------- the whole check
LOST_FILE_CLAIMS = ("W105", "W106", "W108", "W109")
"""Static findings that claim something is used nowhere: not made while a rule file is
unparsed (its rules may be the users)."""


def run_check(path: str | Path | None, semantic: bool = True, budget: int = 3000,
              settings: dict[str, Value] | None = None, solver: bool = True, search: str = "auto",
              default_bound: int = DEFAULT_BOUND) -> CheckReport:
    """Static findings, then the solver, then the search for what the solver left undecided
    (`search`: auto; always runs both and reports any disagreement as an internal error;
    never). `solver=False` is the search alone, as before the solver."""
    rs = load_rules(path, lenient=True)
    overrides = dict(settings or {})
    lost = sorted({str(p.span.file) for p in rs.problems if p.code in ("E001", "E013")})
    if lost:  # a file that did not parse: the finding says so,
        settings = {n: v for n, v in (settings or {}).items() if n in rs.settings}  # its settings are not known
    settings = resolve_settings(rs, settings)  # an unknown setting or a value out of range: E012, E024
    report = CheckReport(rs.path, overrides=overrides)
    report.findings = static_findings(rs)
    if lost:
        # The rules of a file that did not parse are unknown, not absent: "no rule uses it",
        # "dead", "redundant" or "proved to hold" would be claims about another rule set.
        report.findings = [f for f in report.findings if f.code not in LOST_FILE_CLAIMS]
        report.not_run = (f"{', '.join(lost)} could not be read or parsed (E001, E013), so its rules are unknown; "
                          f"fix that first")
        semantic = False
    if semantic:  # the lenient load left out what was unsound; the rest can still be checked
        findings, stats = semantic_findings(rs, settings, budget, solver=solver, search=search,
                                            default_bound=default_bound)
        report.findings += findings
        report.explored = stats
    for f in report.findings:
        for allow in rs.allows:
            if allow.code == f.code and allow.target in ("*", f.target):
                f.allowed = allow.reason
    report.findings.sort(key=lambda f: (f.span.file, f.span.line, f.span.col, f.code, f.message))
    return report

