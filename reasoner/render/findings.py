"""Checker reports: one line per finding (`file:line:col: CODE [severity] proved|searched: message`),
a summary of what the solver proved and what was searched, or JSON."""
from __future__ import annotations

import json

from reasoner.authoring.check import CODES, CheckReport
from reasoner.language.syntax import format_value


def _bounds(b: dict, default_bound: int | None = None, patient_mode: bool = True) -> str:
    declared = [f"{p} ≤ {n}" for p, (n, source) in sorted(b.items()) if source == "declared"]
    default = [f"{p} ≤ {n}" for p, (n, source) in sorted(b.items()) if source != "declared"]
    raised = default_bound is not None and any(n > default_bound for n, source in b.values() if source != "declared")
    why = (f"the default bound {default_bound}, raised to cover the facts one rule joins and the thresholds "
           "counts and sums over them are compared with" if raised else "the default bound")
    parts = ([f"{', '.join(declared)} facts (declared `at most`)"] if declared else []) + (
        [f"{', '.join(default)} facts ({why}: declare `at most N`)"] if default else [])
    if not patient_mode:
        return ("within the bounds " + "; ".join(parts) + " in the whole fact base, every other input exactly"
                ) if parts else "for every fact base (every input has finitely many possible facts)"
    return ("within the bounds " + "; ".join(parts) + ", every other input exactly (`one`, or finitely many "
            "possible facts)") if parts else "for every patient (every input is `one` or has finitely many possible facts)"


def _solver(report: CheckReport) -> str:
    s = report.explored.get("solver")
    if not s:
        return "Solver not run."
    who = "one patient at a time" if s.get("patient_mode") else (
        f"the whole fact base as one state ({s.get('whole_state_reason') or 'no patient key'})")
    n = lambda k, one, many: f"{s[k]} {one if s[k] == 1 else many}"  # noqa: E731
    trivial = s.get("trivial", 0)
    calls = f"{s['calls']} solver calls" + (
        f", {trivial} {'check' if trivial == 1 else 'checks'} decided without one (the encoding simplified "
        f"{'its' if trivial == 1 else 'their'} formula to false)" if trivial else "")
    return (f"Solver (z3): proved over {who}, "
            f"{_bounds(s['bounds'], s.get('default_bound'), s.get('patient_mode', True))}: "
            f"{n('live', 'rule live', 'rules live')}, each with a witness the engine fired; "
            f"{n('dead', 'rule', 'rules')} proved dead; "
            f"{n('constraints_hold', 'constraint', 'constraints')} proved to hold; "
            f"{n('requirements_hold', 'requirement', 'requirements')} proved to hold; "
            f"{n('ranges_hold', 'rule', 'rules')} proved to conclude only declared values; "
            f"{n('redundant', 'rule', 'rules')} proved redundant "
            f"({calls}).")  # no seconds: the same rule set gives the same bytes


def _searched(report: CheckReport) -> str:
    e = report.explored
    undecided = e.get("undecided", {})
    if not e.get("search"):
        return "Search: not needed, the solver decided every check." if not undecided else \
            f"Search: not run; {len(undecided)} checks were left undecided."
    share = e["pairs_covered"] / e["pairs"] if e.get("pairs") else 1.0
    several = e.get("several_facts") or []
    most = e.get("most_facts") or {}
    capped = ", ".join(f"{p} (up to {most[p]})" if p in most else p for p in several[:6]) + (
        f" and {len(several) - 6} more" if len(several) > 6 else "")
    how = (("the full product of the dimensions (exhaustive)" if not several else
            "the full product of the dimensions, with at most one fact per input predicate (not exhaustive: "
            f"patients with several facts of {capped} come only from the targeted witnesses)") if e["exhaustive"] else
           f"a pairwise covering array: {e['pairs_covered']} of {e['pairs']} pairs of values of two "
           f"dimensions ({share:.0%}) appear in some patient; the full product has {e['space']:.3g} "
           "combinations, so this is a sample")
    sampled = (f"; {e['sampled_patients']} more drawn at random (seed 0) from the same dimensions"
               if e.get("sampled_patients") else "")
    what = (f"Search (not a proof) for the {len(undecided)} checks the solver did not decide"
            if undecided else "Search (a cross-check of the solver)")
    return (f"{what}: explored {e['patients']} patients in one batch: {e['covering_patients']} from {how}, over "
            f"{e['dimensions']} dimensions (each input predicate's presence and each of its arguments)"
            f"{sampled}; and {e['targeted_patients']} targeted witnesses built by unfolding each rule to "
            "input facts.")


def _undecided(report: CheckReport) -> list[str]:
    undecided = report.explored.get("undecided", {})
    if not undecided:
        return []
    by_reason: dict[str, list[str]] = {}
    for what, why in undecided.items():
        by_reason.setdefault(why, []).append(what)
    lines = ["Not proved (searched instead), and why:"]
    for why, whats in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(whats[:6]) + (f" and {len(whats) - 6} more" if len(whats) > 6 else "")
        lines.append(f"  - {why}: {shown}")
    return lines


def _left_out(report: CheckReport) -> list[str]:
    """Semantic checks cover only what the errors do not touch (docs/checks.md)."""
    left = report.explored.get("left_out")
    if not left:
        return []
    rules, skipped = left["rules"], left["not_checked"]
    n = len(rules)
    line = (f"Errors first: {n} {'rule' if n == 1 else 'rules'} with errors {'is' if n == 1 else 'are'} left out "
            f"of the semantic checks ({', '.join(rules[:6])}{' and more' if n > 6 else ''})")
    if skipped:
        line += (f", and so is what depends on {'it' if n == 1 else 'them'} ({', '.join(skipped[:6])}"
                 f"{f' and {len(skipped) - 6} more' if len(skipped) > 6 else ''})")
    return [line + "; the semantic findings are about the rest. Fix the errors to have the whole rule set checked."]


def _status(f) -> str:
    if f.status == "proved":
        return "proved: "
    if f.status == "searched":
        return "searched: "
    return ""


def _tail(f) -> str:
    if not f.note:
        return ""
    if f.status == "searched":
        return f"; not proved: {f.note}"
    return f" ({f.note})"


def render(report: CheckReport, fmt: str) -> str:
    if fmt == "json":
        doc = {
            "rules": report.rules_path,
            "errors": report.errors, "warnings": report.warnings,
            "allowed": sum(1 for f in report.findings if f.allowed),
            "internal_errors": report.internal,
            "explored": report.explored,
            "semantic_not_run": report.not_run or None,
            "findings": [{
                "code": f.code, "severity": f.severity, "explanation": CODES[f.code][1], "at": str(f.span),
                "message": f.message, "status": f.status, "note": f.note or None, "target": f.target,
                "allowed": f.allowed,
                "witness": [str(x) for x in f.witness] if f.witness else None, "witness_file": f.witness_file,
            } for f in report.findings],
        }
        return json.dumps(doc, ensure_ascii=False, indent=1, default=str) + "\n"
    lines = []
    for f in report.findings:
        line = f"{f.span}: {f.code} [{f.severity}] {_status(f)}{f.message}{_tail(f)}"
        if f.allowed:
            line += f"  (allowed: {f.allowed})"
        lines.append(line)
        if f.witness_file:
            lines.append(f"    witness: {f.witness_file}")
        elif f.witness and not f.allowed:
            lines.append("    witness: " + " ".join(str(x) + "." for x in f.witness[:12]))
    for problem in report.internal:
        lines.append(f"internal error: {problem} (please report it; this is not a finding)")
    used = sorted({f.code for f in report.findings if not f.allowed})
    if used:
        lines.append("")
        lines += [f"{code}: {CODES[code][1]}" for code in used]
    if report.explored:
        lines += [""] + _left_out(report) + [_solver(report), _searched(report)] + _undecided(report)
    else:
        lines += ["", f"Semantic checks not run: {report.not_run}." if report.not_run else "Semantic checks not run."]
    allowed = sum(1 for f in report.findings if f.allowed)
    internal = f", {len(report.internal)} internal errors" if report.internal else ""
    lines.append(f"{report.errors - len(report.internal)} errors, {report.warnings} warnings, {allowed} allowed"
                 f"{internal} (`reasoner check --codes` lists every code).")
    return "\n".join(lines) + "\n"


__all__ = ["render", "format_value"]
