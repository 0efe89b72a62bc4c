"""Witness files (`reasoner check --witness-dir`): each semantic finding's witness patient
as a ready-to-run fact file, with the command(s) that show the finding on it.
"""
from __future__ import annotations

import re
from pathlib import Path

from reasoner.analysis.program import load_rules
from reasoner.authoring.check_codes import CODES, CheckReport, Finding
from reasoner.authoring.vocabulary import clash_predicates
from reasoner.engines.model import row_key
from reasoner.io.output import write_text
from reasoner.language.syntax import (
    Atom,
    Const,
    Fact,
    Value,
    Var,
    expr_vars,
    format_value,
)


def write_witnesses(report: CheckReport, directory: Path) -> None:
    """Each witness as a fact file whose `% run:` line shows the finding with the rule set
    it came from (`--rules`, and the check's `--set` values); the patient is `w`."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in report.findings:
        if not f.witness:
            continue
        n += 1
        slug = re.sub(r"[^a-z0-9]+", "_", (f.target or "finding").lower()).strip("_")[:40]
        path = directory / f"{f.code}-{n:03d}-{slug}.facts"
        how = ("proved: a solver witness, reproduced by the engine" if f.status == "proved" else
               "searched: an explored patient" if f.status == "searched" else "")
        lines = [f"% witness for {f.code} ({CODES[f.code][1]})", f"% {f.message}"]
        if how:
            lines.append(f"% {how}")
        lines += [f"% run: {line}" for line in _run_lines(report, f, path)] + [""]
        for fact in sorted(f.witness, key=lambda x: (x.pred, row_key(x.args))):
            args = tuple(_shown_patient(f) if f.patient is not None and a == f.patient else a for a in fact.args)
            lines.append(str(Fact(fact.pred, args)) + ".")
        write_text(path, "\n".join(lines) + "\n", "--witness-dir")  # whole or not at all
        f.witness_file = str(path)


def _shown_patient(f: Finding) -> str | None:
    """The witness's patient as written: `w` for an explored patient (e17, w3_1), the solver's
    own id (`w`, or one that no constant of the rule set spells) as it is."""
    return f.patient if f.status == "proved" else "w"


def _run_lines(report: CheckReport, f: Finding, path: Path) -> list[str]:
    """The command(s) that show the finding on its witness file, with the same rules and settings."""
    import shlex
    tail = f" {shlex.quote(str(path))} --rules {shlex.quote(report.rules_path)}" + "".join(
        f" --set {shlex.quote(f'{k}={format_value(v)}')}" for k, v in report.overrides.items())
    try:
        rs = load_rules(report.rules_path, lenient=True)
    except Exception:  # the rules are gone: the generic line
        return [f"reasoner check {shlex.quote(report.rules_path)}"]
    pid = _shown_patient(f) if f.patient is not None else None
    item = f.item or ()

    def goal(atom: Atom, values: dict[int, Value] | None = None) -> str:
        """The atom as a query goal: the witness's patient at the key, a named variable for
        each `_` (its declared argument's name), so that the query prints the answers."""
        k = rs.key_index(atom.pred)
        decl = rs.decls.get(atom.pred)
        taken = {v.name for a in atom.args for v in expr_vars(a)}
        args = []
        for i, a in enumerate(atom.args):
            if values and i in values:
                args.append(format_value(values[i]))
            elif i == k and pid is not None:
                args.append(pid)
            elif isinstance(a, Const) or (isinstance(a, Var) and not a.anonymous):
                args.append(str(a))
            else:
                name = (decl.args[i].name.capitalize() if decl is not None and i < decl.arity
                        and decl.args[i].name[:1].isalpha() else f"X{i + 1}")
                while name in taken:
                    name += "_"
                taken.add(name)
                args.append(name)
        return shlex.quote(f"{atom.pred}({', '.join(args)})")

    if f.code in ("S201", "S204"):
        return [f"reasoner why {shlex.quote(f.target)}{tail}"]
    if f.code == "S202" and item and item[0] == "conflict":
        return [f"reasoner conflicts{tail}"]
    if f.code == "S202" and item and item[0] == "clash":
        ind, contra = clash_predicates(rs)  # type: ignore[misc]
        k = rs.key_index(contra)
        row = list(item[1])
        if k is not None and pid is not None:
            row.insert(k, pid)
        n = rs.decls[ind].arity
        return [f"reasoner why {shlex.quote(str(Fact(ind, tuple(row[:n]))))}{tail}",
                f"reasoner why {shlex.quote(str(Fact(contra, tuple(row))))}{tail}"]
    if f.code == "S203" and item:
        req = rs.requirements[item[1]] if item[1] < len(rs.requirements) else None
        if req is not None:  # the whole defect: what the requirement is about, and what it requires
            atoms = [a for a in req.body if isinstance(a, Atom)] + ([req.head] if req.head is not None else [])
            if atoms:
                return [f"reasoner query {goal(a)}{tail}" for a in atoms]
    if f.code == "S207" and item:
        rule = rs.rules[item[1]] if item[1] < len(rs.rules) else None
        if rule is not None and rule.head is not None:
            return [f"reasoner why {goal(rule.head)}{tail}"]
    return [f"reasoner check {shlex.quote(report.rules_path)}"]
