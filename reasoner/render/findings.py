"""Checker reports: one line per finding (`file:line:col: CODE [severity] message`), or JSON."""
from __future__ import annotations

import json

from ..check import CODES, CheckReport
from ..syntax import format_value


def _explored(report: CheckReport) -> str:
    e = report.explored
    if not e:
        return "Semantic checks not run."
    share = e["pairs_covered"] / e["pairs"] if e.get("pairs") else 1.0
    how = ("the full product of the dimensions (exhaustive)" if e["exhaustive"] else
           f"a pairwise covering array: {e['pairs_covered']} of {e['pairs']} pairs of values of two "
           f"dimensions ({share:.0%}) appear in some patient; the full product has {e['space']:.3g} "
           "combinations, so this is a sample")
    sampled = (f"; {e['sampled_patients']} more drawn at random (seed 0) from the same dimensions"
               if e.get("sampled_patients") else "")
    return (f"Explored {e['patients']} patients in one batch: {e['covering_patients']} from {how}, over "
            f"{e['dimensions']} dimensions (each input predicate's presence and each of its arguments)"
            f"{sampled}; and {e['targeted_patients']} targeted witnesses built by unfolding each rule to "
            "input facts.")


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
