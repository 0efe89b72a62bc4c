"""`reasoner diff` reports: text, Markdown, and JSON whose lists are records (one object per
row, the same keys in each), so `pandas.DataFrame(doc["patients"])` reads them as tables."""
from __future__ import annotations

import json

from reasoner.authoring.diff import Change, DiffReport, change_atom, change_text, witness_changes
from reasoner.authoring.diff_solver import PredicateResult
from reasoner.language.syntax import Fact, format_value

_STATUS = {"equivalent": "equivalent (proved)", "differs": "DIFFERS", "undecided": "not decided (searched)"}


def _status(r: PredicateResult) -> str:
    if r.status == "differs":
        return f"DIFFERS ({r.how})"
    return _STATUS[r.status]


def _header(report: DiffReport) -> list[str]:
    lines = [f"OLD {report.old.path}", f"NEW {report.new.path}"]
    changed = report.settings_changed
    if changed:
        lines.append("settings that differ: " + ", ".join(
            f"{n} {format_value(a) if a is not None else '(none)'} -> {format_value(b) if b is not None else '(none)'}"
            for n, a, b in changed))
    for label in ("OLD", "NEW"):
        if report.only[label]:
            lines.append(f"output predicates only {label} derives (not compared): {', '.join(report.only[label])}")
    for p, why in report.incomparable:
        lines.append(f"not compared: {p} ({why})")
    lines += report.notes
    return lines


def _summary(report: DiffReport) -> str:
    n = _count_status(report.predicates)
    parts = []
    if report.predicates:
        parts.append(f"{n['differs']} of {len(report.predicates)} predicates can differ, {n['equivalent']} proved "
                     f"equivalent, {n['undecided']} not decided")
    if report.cohort is not None:
        parts.append(f"{len(report.cohort.changed_patients)} of {report.cohort.patients} patients changed")
    if not parts:
        parts.append("nothing compared")
    return "; ".join(parts)


def _count_status(results: list[PredicateResult]) -> dict[str, int]:
    out = {"differs": 0, "equivalent": 0, "undecided": 0}
    for r in results:
        out[r.status] += 1
    return out


def _facts_line(facts: list[Fact]) -> str:
    return " ".join(f"{f}." for f in sorted(facts, key=lambda f: (f.pred, str(f))))


def _by_patient(report: DiffReport) -> list[tuple[str, list[Change]]]:
    out: dict[str, list[Change]] = {}
    for c in report.cohort.changes if report.cohort else []:
        out.setdefault(c.patient, []).append(c)
    return list(out.items())  # changes are sorted by patient already


def to_text(report: DiffReport) -> str:
    lines = _header(report)
    rs = report.old.rs
    if report.predicates:
        lines += ["", "Outputs (z3 solver; what it does not decide exactly is searched):"]
        width = max(len(r.pred) for r in report.predicates)
        for r in report.predicates:
            lines.append(f"  {r.pred:<{width}}  {_status(r)}" + (f": {r.note}" if r.note else ""))
            for w in r.witnesses:
                lines.append(f"      witness {w.patient}: {_facts_line(w.facts)}")
                lines += [f"        {change_text(c, rs)}" for c in witness_changes(report, w)]
                if w.file:
                    lines.append(f"        written to {w.file}")
        if report.explored:
            lines.append(f"  (searched: {report.explored} explored patients, run through both versions)")
    if report.cohort is not None:
        n = report.cohort.patients
        lines += ["", f"Cohort: {n} patient{'s' if n != 1 else ''}, {len(report.cohort.changed_patients)} changed"]
        for pid, changes in _by_patient(report):
            lines.append(f"  {pid}")
            lines += [f"    {change_text(c, rs)}" for c in changes]
        counts = report.counts()
        if counts:
            lines += ["", "Changes by kind (patients):"]
            lines += [f"  {what}: {n} patient{'s' if n != 1 else ''}" for _, _, what, n in counts]
    lines += ["", _summary(report)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: DiffReport) -> str:
    rs = report.old.rs
    lines = ["# Rule-set diff", ""]
    lines += [f"- {_cell(line)}" for line in _header(report)]
    if report.predicates:
        lines += ["", "## Outputs", "", "| predicate | result | how | note | witness |", "|---|---|---|---|---|"]
        for r in report.predicates:
            shown = "<br>".join(f"`{_cell(_facts_line(w.facts))}` → " + "; ".join(
                f"`{_cell(change_text(c, rs))}`" for c in witness_changes(report, w)) for w in r.witnesses)
            lines.append(f"| `{r.pred}` | {r.status} | {r.how} | {_cell(r.note)} | {shown} |")
    if report.cohort is not None:
        lines += ["", "## Cohort", "", f"{report.cohort.patients} patients, "
                  f"{len(report.cohort.changed_patients)} changed.", ""]
        if report.cohort.changes:
            lines += ["| patient | predicate | change | tuple | old | new |", "|---|---|---|---|---|---|"]
            for c in report.cohort.changes:
                lines.append(f"| {_cell(c.patient)} | `{c.pred}` | {c.kind} | `{_cell(change_atom(rs, c, c.args))}` | "
                             f"{_cell(format_value(c.old)) if c.old is not None else ''} | "
                             f"{_cell(format_value(c.new)) if c.new is not None else ''} |")
            lines += ["", "| change | patients |", "|---|---:|"]
            lines += [f"| `{_cell(what)}` | {n} |" for _, _, what, n in report.counts()]
    lines += ["", _summary(report)]
    return "\n".join(lines) + "\n"


def _value(v):
    return v if v is None or isinstance(v, (int, float, str)) else str(v)


def to_json(report: DiffReport) -> str:
    rs = report.old.rs
    doc = {
        "old": report.old.path, "new": report.new.path,
        "settings": {n: {"old": a, "new": b} for n, a, b in report.settings_changed},
        "overrides": report.overrides,
        "compared": report.compared,
        "only_old": report.only["OLD"], "only_new": report.only["NEW"],
        "not_compared": [{"predicate": p, "why": why} for p, why in report.incomparable],
        "notes": report.notes,
        "predicates": [{"predicate": r.pred, "status": r.status, "how": r.how, "note": r.note,
                        "witnesses": [{"patient": w.patient, "direction": w.direction,
                                       "facts": [str(f) for f in sorted(w.facts, key=lambda f: (f.pred, str(f)))],
                                       "changes": [change_text(c, rs) for c in witness_changes(report, w)],
                                       "file": w.file} for w in r.witnesses]}
                       for r in report.predicates],
        "explored_patients": report.explored,
        "cohort_patients": report.cohort.patients if report.cohort else None,
        "changed_patients": len(report.cohort.changed_patients) if report.cohort else None,
        "patients": [{"patient": c.patient, "predicate": c.pred, "change": c.kind,
                      "tuple": change_atom(rs, c, c.args), "args": [_value(a) for a in c.args],
                      "old": _value(c.old), "new": _value(c.new), "what": report.label(c)}
                     for c in (report.cohort.changes if report.cohort else [])],
        "counts": [{"predicate": p, "change": k, "what": w, "patients": n} for p, k, w, n in report.counts()],
        "internal_errors": report.internal,
        "differs": report.differs,
        "summary": _summary(report),
    }
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def render(report: DiffReport, fmt: str) -> str:
    return {"text": to_text, "markdown": to_markdown, "json": to_json}[fmt](report)
