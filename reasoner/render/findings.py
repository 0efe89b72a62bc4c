"""Checker reports: one line per finding (`file:line:col: CODE [severity] message`), or JSON."""
from __future__ import annotations

import json

from ..check import CODES, CheckReport
from ..syntax import format_value


def _explored(report: CheckReport) -> str:
    e = report.explored
    if not e:
        return "Semantic checks not run."
    how = ("the full product of the dimensions (exhaustive)" if e["exhaustive"] else
           f"a pairwise covering array (every pair of values of two input predicates in some patient; "
           f"the full product has {e['space']:.3g} combinations, so this is a sample)")
    return (f"Explored {e['patients']} patients in one batch: {e['covering_patients']} from {how} over "
            f"{e['dimensions']} input predicates, and {e['targeted_patients']} targeted witnesses built by "
            "unfolding each rule to input facts.")


def render(report: CheckReport, fmt: str) -> str:
    if fmt == "json":
        doc = {
            "rules": report.rules_path,
            "errors": report.errors, "warnings": report.warnings,
            "allowed": sum(1 for f in report.findings if f.allowed),
            "explored": report.explored,
            "findings": [{
                "code": f.code, "severity": f.severity, "explanation": CODES[f.code][1], "at": str(f.span),
                "message": f.message, "target": f.target, "allowed": f.allowed,
                "witness": [str(x) for x in f.witness] if f.witness else None, "witness_file": f.witness_file,
            } for f in report.findings],
        }
        return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    lines = []
    for f in report.findings:
        line = f"{f.span}: {f.code} [{f.severity}] {f.message}"
        if f.allowed:
            line += f"  (allowed: {f.allowed})"
        lines.append(line)
        if f.witness_file:
            lines.append(f"    witness: {f.witness_file}")
        elif f.witness and not f.allowed:
            lines.append("    witness: " + " ".join(str(x) + "." for x in f.witness[:12]))
    used = sorted({f.code for f in report.findings if not f.allowed})
    if used:
        lines.append("")
        lines += [f"{code}: {CODES[code][1]}" for code in used]
    lines += ["", _explored(report)]
    allowed = sum(1 for f in report.findings if f.allowed)
    lines.append(f"{report.errors} errors, {report.warnings} warnings, {allowed} allowed "
                 f"(`reasoner check --codes` lists every code).")
    return "\n".join(lines) + "\n"


__all__ = ["render", "format_value"]
