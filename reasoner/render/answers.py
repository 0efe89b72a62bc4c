"""Query answers as a text table or JSON."""
from __future__ import annotations

import json

from reasoner.language.syntax import Atom, Value, Var, format_value


def variables(goal: Atom) -> list[str]:
    """The goal's named variables, in order of first appearance."""
    names = [a.name for a in goal.args if isinstance(a, Var) and not a.anonymous]
    return list(dict.fromkeys(names))


def render(goal_text: str, goal: Atom, answers: list[dict[str, Value]], fmt: str) -> str:
    names = variables(goal)
    if fmt == "json":
        doc = {"query": goal_text.strip(), "variables": names, "answers": answers}
        return json.dumps(doc, ensure_ascii=False) + "\n"
    if not names:
        return ("true" if answers else "false") + "\n"
    if not answers:
        return "no answers\n"
    rows = [[format_value(a[n]) for n in names] for a in answers]
    widths = [max(len(n), *(len(r[i]) for r in rows)) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"({len(answers)} answer{'s' if len(answers) != 1 else ''})")
    return "\n".join(lines) + "\n"
