"""`reasoner check`: findings for guideline authors, each with a code (docs/checks.md).

Static findings come from reading the rules. Semantic findings come first from the
solver (smt.py): what its encoding covers is *proved* — a dead rule, a constraint that
holds, a redundant rule are proofs of absence; a violation, a conflict, a failing
requirement, a value outside its range come with a witness patient that the engine has
reproduced. What the encoding does not cover (recursion, aggregates over unbounded
facts, ...) is *searched* over the representative patients of explore.py, and each such
finding says so and why. Every witness is written out as a ready-to-run fact file with
`--witness-dir`. A finding can be marked intended with `.allow CODE "TARGET" "why"` in
the rule files (TARGET: a rule id, a predicate, or `*`); it is then listed as allowed,
not counted.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from reasoner.engines.pydatalog import Engine
from reasoner.language.errors import Diagnostic
from reasoner.authoring.explore import Domain, build_domain, explore, witnesses
from reasoner.io.facts import FactSet, chunks
from reasoner.proof.match import solve
from reasoner.engines.model import Model, row_key
from reasoner.io.output import write_text
from reasoner.analysis.program import RuleSet, check_value, dependencies, load_rules, resolve_settings
from reasoner.authoring.smt import DEFAULT_BOUND, InputEnc, Prover, clash_predicates
from reasoner.language.syntax import NO_SPAN, Aggregate, Atom, Const, Fact, Negation, Rule, Span, Value, Var, body_atoms, expr_vars, format_value

# code → (severity, one-line explanation), in the style of ruff's rule catalogue
CODES: dict[str, tuple[str, str]] = {
    "E001": ("error", "syntax error: the text does not follow the grammar"),
    "E002": ("error", "undeclared predicate (or a misspelling of a declared one)"),
    "E003": ("error", "arity mismatch: a predicate used with the wrong number of arguments"),
    "E004": ("error", "type mismatch: a value or variable of the wrong type for its argument"),
    "E005": ("error", "a value outside its declared range"),
    "E006": ("error", "a value that is not one of its enumeration's values"),
    "E007": ("error", "unsafe variable: not bound by a positive literal"),
    "E008": ("error", "negation through recursion: no stratified model exists"),
    "E009": ("error", "aggregation through recursion"),
    "E010": ("error", "duplicate declaration or rule id"),
    "E011": ("error", "unknown source key in @source"),
    "E012": ("error", "unknown setting"),
    "E013": ("error", "a rule file or include that cannot be read"),
    "E014": ("error", "a fact for a derived predicate in a fact file"),
    "E015": ("error", "a fact file in the wrong form (JSON, CSV)"),
    "E016": ("error", "a goal or command input that does not fit"),
    "E017": ("error", "a second, different fact for a predicate declared `one` per patient"),
    "E018": ("error", "a proof document (reasoner verify) that cannot be read or is not valid JSON"),
    "E019": ("error", "a proof document (reasoner verify) with no proof in it"),
    "E020": ("error", "command-line usage: an unknown option, a missing argument, a value outside an option's range"),
    "E021": ("error", "an output file or folder that cannot be written (a missing folder, no permission, a full disk)"),
    "E022": ("error", "evaluation stopped at a limit: --time-limit, a recursion's round limit, DuckDB's memory"),
    "E023": ("error", "internal error: an unexpected failure inside the reasoner (please report it)"),
    "E024": ("error", "a setting's value outside its declared range, or not a plain number (--set, .setting)"),
    "W101": ("warning", "singleton variable: named once; write _ if it is meant to be ignored"),
    "W102": ("warning", "rule without @id"),
    "W103": ("warning", "rule without @source"),
    "W104": ("warning", "rule without @says"),
    "W105": ("warning", "declared predicate that no rule uses"),
    "W106": ("warning", "derived predicate that no output, constraint or requirement uses"),
    "W107": ("warning", "rule that is not patient-local: it joins facts of different patients"),
    "W108": ("warning", "source declared but cited by no rule"),
    "S201": ("error", "integrity constraint violated: a witness patient breaks it"),
    "S202": ("warning", "conflict the rule set can produce (indicated or ordered, and contraindicated)"),
    "S203": ("error", "coverage requirement (.require) fails for a witness patient"),
    "S204": ("error", "rules whose conditions overlap while their conclusions contradict"),
    "S205": ("warning", "dead rule: no patient fires it (proved), or no explored patient did (searched)"),
    "S206": ("warning", "redundant rule: everything it concludes another rule with the same head concludes too"),
    "S207": ("error", "a derived value outside its declared range, integer type or enumeration (a dose over its cap)"),
}



@dataclass
class Finding:
    code: str
    span: Span
    message: str
    target: str = ""  # a rule id or predicate name, for .allow
    witness: list[Fact] | None = None
    witness_file: str | None = None
    allowed: str | None = None
    status: str | None = None
    """Semantic findings: "proved" (the solver; a witness the engine reproduced, or a proof of
    absence) or "searched" (explore.py; `note` says what the solver did not cover)."""
    note: str = ""
    item: tuple | None = None  # what the finding is about (check.Item), for matching solver and search
    patient: str | None = None  # the witness's patient id, renamed `w` in witness files

    @property
    def severity(self) -> str:
        return CODES[self.code][0]


@dataclass
class CheckReport:
    rules_path: str
    findings: list[Finding] = field(default_factory=list)
    explored: dict = field(default_factory=dict)
    overrides: dict[str, Value] = field(default_factory=dict)
    """`--set` values the check ran with (repeated in each witness file's run line)."""

    @property
    def internal(self) -> list[str]:
        """Internal errors of the checker itself (a solver witness the engine did not
        reproduce, a search that contradicts a proof): never findings, always errors."""
        return list(self.explored.get("internal", []))

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error" and not f.allowed) + len(self.internal)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning" and not f.allowed)


# ----------------------------------------------------------------------------- static
def static_findings(rs: RuleSet) -> list[Finding]:
    out = [Finding(d.code, d.span, d.message) for d in rs.problems]
    used: set[str] = set()
    for rule in rs.rules:
        out += _singletons(rule, rs)
        name = rs.rule_name(rule)
        if rule.body or rule.head is None:  # facts of the rule set need no annotations
            if rule.id is None:
                out.append(Finding("W102", rule.span, f"rule {rule} has no @id", name))
            if not rule.sources:
                out.append(Finding("W103", rule.span, f"rule {name} has no @source", name))
            if rule.says is None:
                out.append(Finding("W104", rule.span, f"rule {name} has no @says sentence", name))
        if rule.head is not None:
            used.add(rule.head.pred)
        for atom in body_atoms(rule.body):
            used.add(atom.pred)
    for req in rs.requirements:
        used |= {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
    for rule in rs.left_out:  # reported already; their predicates are not "unused"
        used |= {a.pred for a in body_atoms(rule.body)} | ({rule.head.pred} if rule.head else set())
    for pred, decl in rs.decls.items():
        if pred not in used:
            out.append(Finding("W105", decl.span, f"{pred} is declared ({decl.role}) but no rule uses it", pred))
    out += _unused_derived(rs)
    for rule in rs.nonlocal_rules:
        out.append(Finding("W107", rule.span, f"rule {rs.rule_name(rule)} joins facts of different patients: "
                           "patients cannot be evaluated apart", rs.rule_name(rule)))
    cited = {s for r in rs.rules + rs.left_out for s in r.sources}  # a rule left out for an error still cites
    for key, src in rs.sources.items():
        if key not in cited:
            out.append(Finding("W108", src.span, f"source {key} is cited by no rule", key))
    return out


def _singletons(rule: Rule, rs: RuleSet) -> list[Finding]:
    counts: Counter[str] = Counter()
    first: dict[str, Span] = {}
    exprs = list(rule.head.args) if rule.head else []

    def visit(body: tuple) -> None:
        for lit in body:
            if isinstance(lit, Atom):
                exprs.extend(lit.args)
            elif isinstance(lit, Negation):
                exprs.extend(lit.atom.args)
            elif isinstance(lit, Aggregate):
                exprs.append(lit.result)
                if lit.target is not None:
                    exprs.append(lit.target)
                visit(lit.body)
            else:
                exprs.extend([lit.left, lit.right])

    visit(rule.body)
    for e in exprs:
        for v in expr_vars(e):
            if not v.anonymous:
                counts[v.name] += 1
                first.setdefault(v.name, v.span if v.span.line else rule.span)
    return [Finding("W101", first[name], f"variable {name} appears only once in rule {rs.rule_name(rule)}; "
                    f"write _ (or _{name}) if it is meant to be ignored", rs.rule_name(rule))
            for name, n in sorted(counts.items()) if n == 1 and not name.startswith("_")]


def _unused_derived(rs: RuleSet) -> list[Finding]:
    """Derived predicates that nothing uses, counting uses by every rule as written: a rule
    left out for an error (E004, E007, E008, E009, ...) still uses what its body names."""
    deps = dependencies(rs)
    for rule in rs.left_out:
        if rule.head is not None:
            deps.setdefault(rule.head.pred, set()).update((a.pred, "pos") for a in body_atoms(rule.body))
    roots = {p for p, d in rs.decls.items() if d.role == "output"}
    for rule in rs.rules + rs.left_out:
        if rule.head is None:
            roots |= {a.pred for a in body_atoms(rule.body)}
    for req in rs.requirements:
        roots |= {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
    seen, stack = set(roots), list(roots)
    while stack:
        for q, _kind in deps.get(stack.pop(), ()):
            if q not in seen:
                seen.add(q)
                stack.append(q)
    derived = {r.head.pred for r in rs.rules if r.head is not None and r.body}
    return [Finding("W106", rs.decls[p].span, f"{p} is derived, but no output, constraint or requirement uses it", p)
            for p in sorted(derived - seen) if p in rs.decls]


# ----------------------------------------------------------------------------- semantic
# Items the semantic checks decide, as keys: ("rule", i) live or dead, ("constraint", i),
# ("require", j), ("range", i), ("redundant", i), ("conflict",), ("clash",). The solver
# (smt.py) decides what its encoding covers; the search of explore.py takes the rest.
Item = tuple


def semantic_findings(rs: RuleSet, settings: dict[str, Value] | None = None, budget: int = 3000,
                      per_rule: int = 3, solver: bool = True, search: str = "auto",
                      default_bound: int = DEFAULT_BOUND) -> tuple[list[Finding], dict]:
    """Solver first; the search for what it left undecided (`search`: auto), for everything
    as a cross-check (always: a search finding against a solver proof is an internal
    error), or never."""
    settings = {**{n: s.value for n, s in rs.settings.items()}, **(settings or {})}
    findings: list[Finding] = []
    skipped = _not_checked(rs)
    stats: dict = {"internal": []}
    if rs.left_out:
        stats["left_out"] = {"rules": [rs.rule_name(r) for r in rs.left_out],
                             "not_checked": [_item_label(rs, item) for item in _items(rs) if item in skipped]}
    decided: dict[Item, str] = {}  # item → what the solver proved ("absent": no finding, "found")
    undecided: dict[Item, str] = {}
    if solver:
        found, solver_stats, decided, undecided = _solver_findings(rs, settings, default_bound, skipped)
        findings += found
        stats["solver"] = solver_stats
        stats["internal"] += solver_stats.pop("internal")
    else:
        undecided = {item: "the solver was not run (--no-solver)" for item in _items(rs) if item not in skipped}
    if search == "always" or (search == "auto" and undecided):
        found, explored = _searched_findings(rs, settings, budget, per_rule, decided, undecided)
        found = [f for f in found if _group(f.item) not in skipped]
        findings += found
        stats["internal"] += explored.pop("internal")
        stats.update(explored)
    stats["undecided"] = {_item_label(rs, item): reason for item, reason in undecided.items()}
    return findings, stats


def _group(item: Item | None) -> Item:
    item = item or ()
    return (item[0],) if item and item[0] in ("conflict", "clash") else item


def _not_checked(rs: RuleSet) -> set[Item]:
    """The items the semantic checks leave alone because they depend on a rule left out for
    an error (E004, E007, E008, E009, ...): with that rule missing, a live rule would look
    dead, a violated constraint would look satisfied. Semantic findings are about the rest,
    the part of the rule set the errors do not touch."""
    if not rs.left_out:
        return set()
    tainted = {r.head.pred for r in rs.left_out if r.head is not None}
    changed = True
    while changed:
        changed = False
        for rule in rs.rules:
            if rule.head is not None and rule.head.pred not in tainted and \
                    any(a.pred in tainted for a in body_atoms(rule.body)):
                tainted.add(rule.head.pred)
                changed = True
    out: set[Item] = set()
    for item in _items(rs):
        if item[0] == "require":
            req = rs.requirements[item[1]]
            reads = {a.pred for a in body_atoms(req.body)} | ({req.head.pred} if req.head else set())
        elif item[0] == "conflict":
            reads = {"conflict"}
        elif item[0] == "clash":
            reads = set(clash_predicates(rs) or ())
        else:
            reads = {a.pred for a in body_atoms(rs.rules[item[1]].body)}
        if reads & tainted:
            out.add(item)
            if item[0] == "rule":
                out.add(("redundant", item[1]))
    return out


def _items(rs: RuleSet) -> list[Item]:
    """Every item a semantic check decides (ranges, redundancy and clashes where they apply)."""
    out: list[Item] = []
    for i, rule in enumerate(rs.rules):
        if rule.body:
            out.append(("constraint", i) if rule.head is None else ("rule", i))
            if rule.head is not None and _ranged_positions(rs, rule):
                out.append(("range", i))
    out += [("require", j) for j in range(len(rs.requirements))]
    if "conflict" in rs.decls:
        out.append(("conflict",))
    if clash_predicates(rs) is not None:
        out.append(("clash",))
    return out


def _item_label(rs: RuleSet, item: Item) -> str:
    kind = item[0]
    if kind in ("rule", "constraint", "range", "redundant"):
        name = rs.rule_name(rs.rules[item[1]])
        return {"rule": f"rule {name}", "constraint": f"constraint {name}", "range": f"the range of {name}'s "
                "conclusions", "redundant": f"redundancy of {name}"}[kind]
    if kind == "require":
        return f"requirement \"{rs.requirements[item[1]].text}\""
    return "conflicts" if kind == "conflict" else "indicated and contraindicated together"


def _ranged_positions(rs: RuleSet, rule: Rule) -> list[int]:
    decl = rs.decls.get(rule.head.pred) if rule.head is not None else None
    if decl is None or decl.role == "input":
        return []
    return [i for i, a in enumerate(decl.args)
            if (a.type in ("number", "integer") and (a.low is not None or a.type == "integer")) or a.type in rs.types]


def _bounds_note(solver_stats: dict, relies: tuple[str, ...]) -> str:
    """The bounds a proof of absence relied on, said with it."""
    if not relies:
        return ""
    bounds = solver_stats["bounds"]
    declared = [f"{p} ≤ {bounds[p][0]}" for p in relies if p in bounds and bounds[p][1] == "declared"]
    default = [f"{p} ≤ {bounds[p][0]}" for p in relies if p in bounds and bounds[p][1] != "declared"]
    parts = ([f"{', '.join(declared)} (declared)"] if declared else []) + (
        [f"{', '.join(default)} (the default bound; declare `at most N`)"] if default else [])
    return f"for every patient with at most: {'; '.join(parts)} facts" if parts else ""


# ---- the solver
class _Reproducer:
    """Runs a solver witness through the engine and says whether the engine shows the claim:
    a witness that does not reproduce is an internal error, never a finding."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], patient_mode: bool, pid: str):
        self.rs = rs
        self.engine = Engine(rs, settings)
        self.patient_mode = patient_mode
        self.pid = pid

    def full(self, pred: str, value: tuple) -> tuple:
        k = self.rs.key_index(pred) if self.patient_mode else None
        return value if k is None else value[:k] + (self.pid,) + value[k:]

    def __call__(self, kind: str, index: int | None, value: tuple, facts: list[Fact]):
        model = self.engine.evaluate([Fact(f.pred, f.args, _WITNESS) for f in facts])
        rs = self.rs
        if kind == "rule":
            return {i for i, rows in model.firings.items() if rows}
        if kind == "constraint":
            hits = [v.bindings for v in model.violations if v.rule_index == index]
            return (model, hits[0]) if hits else None
        if kind == "require":
            fails = _requirement_failures(rs.requirements[index], model, lambda v: True)  # type: ignore[index]
            return fails[0][1] if fails else None
        if kind == "range":
            return _out_of_range(rs, model, index, value[0])  # type: ignore[arg-type]
        if kind == "unique":  # rule `index` concludes something no other rule does
            pred = rs.rules[index].head.pred  # type: ignore[index,union-attr]
            others = {model.head_of(j, b) for j, r in enumerate(rs.rules) if j != index and j in model.heads
                      and r.head is not None and r.head.pred == pred for b in model.rule_firings(j)}
            return any(model.head_of(index, b) not in others for b in model.rule_firings(index)) or None  # type: ignore[arg-type]
        if kind == "conflict":
            return model.holds("conflict", self.full("conflict", value)) or None
        if kind == "clash":
            ind, contra = clash_predicates(rs)  # type: ignore[misc]
            row = self.full(contra, value)
            ok = model.holds(contra, row) and model.holds(ind, row[:rs.decls[ind].arity])
            if "conflict" in rs.decls and rs.decls["conflict"].arity == len(row):
                ok = ok and not model.holds("conflict", row)
            return model if ok else None  # the model: which rules concluded the two
        raise ValueError(kind)


_WITNESS = Span("<witness>", 0, 0)


def _solver_findings(rs: RuleSet, settings: dict[str, Value], default_bound: int, skipped: set[Item] = frozenset()
                     ) -> tuple[list[Finding], dict, dict[Item, str], dict[Item, str]]:
    import time
    started = time.perf_counter()
    prover = Prover(rs, settings, validate=lambda *a: None, default_bound=default_bound)
    prover.skip = set(skipped)
    pid = prover.pid = next(p for p in ("w", "w_", "w__", "witness") if p not in prover.enc.code)
    reproduce = _Reproducer(rs, settings, prover.enc.patient_mode, pid)
    prover.validate = reproduce
    findings: list[Finding] = []
    decided: dict[Item, str] = {}
    undecided: dict[Item, str] = {}
    internal: list[str] = []
    bounds = {e.pred: (e.bound, e.source) for e in prover.enc.inputs.values() if isinstance(e, InputEnc)}
    stats: dict = {"bounds": {p: b for p, b in bounds.items() if b[1] in ("declared", "default")},
                   "patient_mode": prover.enc.patient_mode, "live": 0, "dead": 0, "constraints_hold": 0,
                   "requirements_hold": 0, "ranges_hold": 0, "redundant": 0}

    def undecide(item: Item, o) -> None:
        if o.status == "internal":
            internal.append(f"{_item_label(rs, item)}: {o.detail}")
            undecided[item] = "the solver's witness did not reproduce in the engine (an internal error)"
        else:
            undecided[item] = o.detail

    def proved(item: Item, code: str, span: Span, message: str, target: str, o, witness=None) -> None:
        findings.append(Finding(code, span, message, target, witness, status="proved", item=item,
                                patient=pid if witness else None,
                                note="" if witness else _bounds_note(stats, o.relies)))

    live: set[int] = set()
    by_pred: dict[str, list[int]] = {}
    for o in prover.rules():
        rule = rs.rules[o.index]  # type: ignore[index]
        name = rs.rule_name(rule)
        item = (o.kind, o.index)
        if item in skipped:
            continue
        if o.status in ("uncovered", "internal"):
            undecide(item, o)
            continue
        decided[item] = "found" if o.status == "witness" else "absent"
        if o.kind == "rule":
            by_pred.setdefault(rule.head.pred, []).append(o.index)  # type: ignore[union-attr]
            if o.status == "witness":
                live.add(o.index)  # type: ignore[arg-type]
                stats["live"] += 1
            else:
                stats["dead"] += 1
                decided[item] = "dead"
                proved(item, "S205", rule.span, f"dead rule {name}: no patient fires it", name, o)
        elif o.status == "proved":
            stats["constraints_hold"] += 1
        else:
            model, bindings = o.evidence
            proved(item, "S201", rule.span, f"constraint {name} is violated" + (f" ({rule.says})" if rule.says else ""),
                   name, o, o.witness)
            concluded = _concluding_rules(rs, model, rule, bindings)
            if len(concluded) >= 2:
                proved(item, "S204", rule.span, f"rules {' and '.join(concluded)} apply to the same patient and their "
                       f"conclusions contradict ({name})", name, o, o.witness)
    for pred, indexes in by_pred.items():  # a derived predicate no rule can conclude
        every = [i for i, r in enumerate(rs.rules) if r.head is not None and r.head.pred == pred]
        if indexes == every and not any(i in live for i in every) and len(every) > 1 and \
                not any(r.head is not None and r.head.pred == pred for r in rs.left_out):
            for f in findings:
                if f.code == "S205" and f.item and f.item[1] in every:
                    f.message += f" (no rule concludes {pred})"
    for o in prover.requirements():
        item = ("require", o.index)
        req = rs.requirements[o.index]  # type: ignore[index]
        if item in skipped:
            continue
        if o.status in ("uncovered", "internal"):
            undecide(item, o)
            continue
        decided[item] = "found" if o.status == "witness" else "absent"
        if o.status == "proved":
            stats["requirements_hold"] += 1
        else:
            target = req.head.pred if req.head else "none"
            proved(item, "S203", req.span, f"requirement \"{req.text}\" fails: {o.evidence}",
                   target, o, o.witness)
    by_range: dict[int, list] = {}
    for o in prover.ranges():
        by_range.setdefault(o.index, []).append(o)  # type: ignore[arg-type]
    for index, outs in by_range.items():
        item = ("range", index)
        rule = rs.rules[index]
        if item in skipped:
            continue
        bad = [o for o in outs if o.status in ("uncovered", "internal")]
        if bad:
            undecide(item, bad[0])
        else:
            decided[item] = "absent"
        for o in outs:
            if o.status == "witness":
                decided[item] = "found"
                name = rs.rule_name(rule)
                proved(item, "S207", rule.span, f"rule {name} concludes a value outside its declaration: {o.evidence}",
                       name, o, o.witness)
        if item in decided and decided[item] == "absent":
            stats["ranges_hold"] += 1
    for kind, outs in (("conflict", prover.conflicts()), ("clash", prover.clashes())):
        item = (kind,)
        if kind == "conflict" and "conflict" not in rs.decls or kind == "clash" and clash_predicates(rs) is None:
            continue
        if item in skipped:
            continue
        bad = [o for o in outs if o.status in ("uncovered", "internal")]
        if bad:
            undecide(item, bad[0])
        else:
            decided[item] = "found" if outs else "absent"
        for o in outs:
            if o.status != "witness":
                continue
            what = ", ".join(format_value(v) for v in o.value)
            decided[(kind, o.value)] = "found"
            if kind == "conflict":
                proved(("conflict", o.value), "S202", rs.decls["conflict"].span,
                       f"the rule set can produce conflict({what})", "conflict", o, o.witness)
            else:  # the two facts as the witness has them (its patient included), at the rules that concluded them
                ind, contra = clash_predicates(rs)  # type: ignore[misc]
                row = reproduce.full(contra, o.value)
                ind_fact, contra_fact = Fact(ind, row[:rs.decls[ind].arity]), Fact(contra, row)
                model = o.evidence
                by = {p: _concluded_by(rs, model, f.pred, f.args) for p, f in ((ind, ind_fact), (contra, contra_fact))}
                span = next((rs.rules[i].span for i in by[ind]), rs.decls[ind].span)
                said = lambda p: (f" (rule {', '.join(rs.rule_name(rs.rules[i]) for i in by[p])})"  # noqa: E731
                                  if by[p] else "")
                proved(("clash", o.value), "S202", span,
                       f"{ind_fact}{said(ind)} and {contra_fact}{said(contra)} hold together"
                       + (", and no conflict says so" if "conflict" in rs.decls else
                          " (the rule set declares no conflict predicate)"), ind, o, o.witness)
    for o in prover.redundant(live):
        item = ("redundant", o.index)
        if item in skipped:
            continue
        if o.status in ("uncovered", "internal"):
            undecide(item, o)
            continue
        decided[item] = "found" if o.status == "proved" else "absent"
        if o.status == "proved":
            rule = rs.rules[o.index]  # type: ignore[index]
            name = rs.rule_name(rule)
            others = [rs.rule_name(rs.rules[j]) for j in o.value]
            stats["redundant"] += 1
            who = (others[0] + " concludes" if len(others) == 1 else
                   ", ".join(others[:3]) + (" and others" if len(others) > 3 else "") + " conclude")
            proved(item, "S206", rule.span, f"redundant rule {name}: everything it concludes, {who} too", name, o)
    for item in _items(rs):  # an item the solver never got to (its rule was not covered)
        if item not in decided and item not in undecided and item not in skipped:
            undecided[item] = "not encoded"
    stats.update(calls=prover.calls, trivial=prover.trivial, default_bound=prover.enc.default_bound,
                 whole_state_reason=_whole_state_reason(rs, prover.enc.patient_mode), solver_seconds=round(prover.seconds, 2),
                 seconds=round(time.perf_counter() - started, 2), internal=internal)
    return findings, stats, decided, undecided


def _concluded_by(rs: RuleSet, model, pred: str, args: tuple) -> list[int]:
    """The rules that concluded pred(args) in a model."""
    if not isinstance(model, Model):
        return []
    return [i for i, r in enumerate(rs.rules) if r.head is not None and r.head.pred == pred and i in model.heads
            and any(model.head_of(i, b) == args for b in model.rule_firings(i))]


def _whole_state_reason(rs: RuleSet, patient_mode: bool) -> str | None:
    """Why the solver treats all facts as one state (None: one patient at a time)."""
    if patient_mode:
        return None
    if not rs.patient_local:
        names = ", ".join(rs.rule_name(r) for r in rs.nonlocal_rules[:3])
        return (f"rule {names} joins facts of different patients (W107), so patients are not evaluated apart; "
                "`one` is one fact per patient key")
    return "no input predicate has an argument typed `id` (no patient key)"


# ---- the search (explore.py): what the solver left undecided, or everything as a cross-check
def _searched_findings(rs: RuleSet, settings: dict[str, Value], budget: int, per_rule: int,
                       decided: dict[Item, str], undecided: dict[Item, str]) -> tuple[list[Finding], dict]:
    domain: Domain = build_domain(rs, settings)
    covering = explore(rs, domain, budget)
    targeted = witnesses(rs, domain, settings, per_rule)
    patients = {**covering.patients, **targeted.patients}
    model = _evaluate(rs, patients, settings)
    fired = _fired_rules(rs, model)
    # a second round of witnesses for rules still silent, with more candidates each
    silent = [i for i, r in enumerate(rs.rules) if r.body and r.head is not None and i not in fired]
    if silent:
        extra = witnesses(rs, domain, settings, per_rule=12, rules=silent)
        extra.patients = {f"{k}b": [Fact(f.pred, tuple(f"{k}b" if a == k else a for a in f.args), f.span)
                                    for f in v] for k, v in extra.patients.items()}
        more = _evaluate(rs, extra.patients, settings)
        model.merge(more)
        patients.update(extra.patients)
        fired = _fired_rules(rs, model)
    stats = {"search": True, "patients": len(patients), "covering_patients": covering.covering_rows,
             "sampled_patients": covering.sampled_rows,
             "targeted_patients": len(patients) - covering.covering_rows - covering.sampled_rows,
             "dimensions": covering.dimensions,
             "space": covering.space, "exhaustive": covering.exhaustive,
             # the product gives each input predicate one fact at most: several facts only in targeted witnesses
             "several_facts": sorted(p for p, d in rs.decls.items()
                                     if d.role == "input" and d.key_index is not None and not d.single and d.arity > 1),
             "most_facts": {p: n for p in domain.counts for n in [max(domain.counts[p], default=1)]
                            if p in rs.decls and rs.decls[p].role == "input"},
             "pairs_covered": covering.pairs[0], "pairs": covering.pairs[1]}
    found: list[Finding] = []
    found += _violations(rs, model, patients)
    found += _conflicts(rs, model, patients)
    found += _requirements(rs, model, patients)
    found += _ranges(rs, model, patients)
    for index, rule in enumerate(rs.rules):
        if rule.body and rule.head is not None and index not in fired:
            found.append(Finding("S205", rule.span, f"dead rule {rs.rule_name(rule)}: it fired for none of the "
                                 f"{len(patients)} explored patients", rs.rule_name(rule), item=("rule", index)))
    found += _redundant(rs, model, patients, fired)
    internal: list[str] = []
    out: list[Finding] = []
    for f in found:
        item = f.item or ()
        group = (item[0],) if item and item[0] in ("conflict", "clash") else item
        if group not in decided:
            if item not in decided:  # (a conflict the solver found before it stopped is not repeated)
                f.status = "searched"
                f.note = undecided.get(group) or (
                    "the solver was not run (--no-solver)" if not decided and all(
                        "not run" in why for why in undecided.values()) else "the solver did not decide it")
                out.append(f)
            continue
        if f.code in ("S205", "S206") or decided.get(item) == "found":
            continue  # the search missing what the solver found is no contradiction
        internal.append(f"the search contradicts the solver on {_item_label(rs, group)}: {f.message}")
    for index in fired:  # a rule the solver proved dead that fired for an explored patient
        if decided.get(("rule", index)) == "dead":
            internal.append(f"the search contradicts the solver: rule {rs.rule_name(rs.rules[index])} fired for an "
                            "explored patient but was proved dead")
    stats["internal"] = internal
    return out, stats


def _evaluate(rs: RuleSet, patients: dict[str, list[Fact]], settings: dict[str, Value]) -> Model:
    engine = Engine(rs, settings)
    model = Model()
    facts = FactSet([f for pid in patients for f in patients[pid]])
    for chunk in chunks(rs, facts, 250):
        model.merge(engine.evaluate(chunk))
    return model


def _fired_rules(rs: RuleSet, model: Model) -> set[int]:
    return {i for i, rows in model.firings.items() if rows}


def _patient_of(rs: RuleSet, pred: str, row: tuple) -> str | None:
    k = rs.key_index(pred)
    return str(row[k]) if k is not None else None


def _smallest(pids: list[str], patients: dict[str, list[Fact]]) -> str:
    return min(pids, key=lambda p: (len(patients.get(p, [])), row_key((p,))))


def _violations(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    by_rule: dict[int, list[tuple[str, dict]]] = {}
    for v in model.violations:
        pid = next((str(x) for x in v.bindings.values() if str(x) in patients), None)
        if pid is not None:
            by_rule.setdefault(v.rule_index, []).append((pid, v.bindings))
    for index, found in sorted(by_rule.items()):
        rule = rs.rules[index]
        pid = _smallest([p for p, _ in found], patients)
        bindings = next(b for p, b in found if p == pid)
        out.append(Finding("S201", rule.span, f"constraint {rs.rule_name(rule)} is violated"
                           + (f" ({rule.says})" if rule.says else "")
                           + f" for {len({p for p, _ in found})} explored patients", rs.rule_name(rule),
                           patients[pid], item=("constraint", index), patient=pid))
        concluded = _concluding_rules(rs, model, rule, bindings)
        if len(concluded) >= 2:
            out.append(Finding("S204", rule.span, f"rules {' and '.join(concluded)} apply to the same patient and "
                               f"their conclusions contradict ({rs.rule_name(rule)})", rs.rule_name(rule),
                               patients[pid], item=("constraint", index), patient=pid))
    return out


def _concluding_rules(rs: RuleSet, model: Model, constraint: Rule, bindings: dict) -> list[str]:
    """The rules that concluded the facts a violated constraint matched."""
    from reasoner.proof.match import Unbound, eval_expr
    wanted = set()
    for atom in constraint.body:
        if isinstance(atom, Atom):
            try:
                wanted.add((atom.pred, tuple(eval_expr(a, bindings, model.settings) for a in atom.args)))
            except Unbound:
                continue
    names: list[str] = []
    for index, rule in enumerate(rs.rules):
        if rule.head is None or index not in model.heads:
            continue
        for b in model.rule_firings(index):
            if (rule.head.pred, model.head_of(index, b)) in wanted:
                name = rs.rule_name(rule)
                if name not in names:
                    names.append(name)
    return names


def _conflicts(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    if "conflict" not in rs.decls:
        return []
    groups: dict[tuple, list[str]] = {}
    for row in model.tuples("conflict"):
        pid = _patient_of(rs, "conflict", row)
        if pid in patients:
            groups.setdefault(tuple(v for i, v in enumerate(row) if i != rs.key_index("conflict")), []).append(pid)
    out = []
    decl = rs.decls["conflict"]
    for key, pids in sorted(groups.items(), key=lambda kv: row_key(kv[0])):
        pid = _smallest(pids, patients)
        what = ", ".join(format_value(v) for v in key)
        out.append(Finding("S202", decl.span, f"the rule set can produce conflict({what}) "
                           f"({len(pids)} explored patients)", "conflict", patients[pid], item=("conflict", key),
                           patient=pid))
    return out


def _requirement_failures(req, model: Model, is_patient) -> list[tuple[str, str]]:
    """(patient, what fails) for each solution of the requirement's body that breaks it."""
    failing: list[tuple[str, str]] = []
    for env in solve(req.body, {}, model, model.settings, None):
        pid = next((str(v) for v in env.values() if is_patient(str(v))), None)
        if pid is None:
            continue
        body = " and ".join(_shown(a, env) for a in req.body if isinstance(a, Atom))
        if req.kind == "none":
            failing.append((pid, f"{body} {'hold' if ' and ' in body else 'holds'} together, which it rules out"))
            continue
        assert req.head is not None
        rows = sorted({tuple(row) for row in _matches(req.head, env, model)}, key=row_key)
        n = len(rows)
        wanted = "exactly one" if req.kind == "one" else "at least one"
        if (req.kind == "one" and n != 1) or (req.kind == "some" and n == 0):
            answers = ", ".join(str(Fact(req.head.pred, r)) for r in rows[:4]) + (" ..." if n > 4 else "")
            failing.append((pid, f"{body} holds, with {'no' if n == 0 else n} {req.head.pred} "
                                 f"{'answer' if n == 1 else 'answers'}{': ' + answers if n else ''} "
                                 f"(it requires {wanted} {_shown(req.head, env)})"))
    return failing


def _shown(atom: Atom, env: dict) -> str:
    """An atom with the values a solution gives its variables (`_` where it gives none)."""
    args = []
    for a in atom.args:
        if isinstance(a, Var):
            args.append(format_value(env[a.name]) if a.name in env else "_" if a.anonymous else a.name)
        elif isinstance(a, Const):
            args.append(format_value(a.value))
        else:
            args.append(str(a))
    return f"{atom.pred}({', '.join(args)})"


def _requirements(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    for j, req in enumerate(rs.requirements):
        failing = _requirement_failures(req, model, lambda v: v in patients)
        if failing:
            pid = _smallest([p for p, _ in failing], patients)
            detail = dict(failing)[pid]
            target = req.head.pred if req.head else "none"
            out.append(Finding("S203", req.span, f"requirement \"{req.text}\" fails for {len(failing)} explored "
                               f"patients; e.g. {detail}", target, patients[pid], item=("require", j),
                               patient=pid))
    return out


def _matches(atom: Atom, env: dict, model: Model) -> list[tuple]:
    from reasoner.proof.match import match_atom
    return [tuple(e[a.name] if isinstance(a, Var) else a.value for a in atom.args)  # type: ignore[union-attr]
            for e in match_atom(atom, env, model, model.settings)]


def _head_problem(rs: RuleSet, pred: str, head: tuple, position: int | None = None) -> str | None:
    """`p(...): arg why` when a concluded tuple breaks its predicate's declaration."""
    decl = rs.decls[pred]
    for i, (value, spec) in enumerate(zip(head, decl.args)):
        if position is not None and i != position:
            continue
        if isinstance(value, float) and value != value:
            problem: str | None = "is not a number (a division by zero)"
        else:
            problem = check_value(value, spec, rs.types)
        if problem is not None:
            return f"{Fact(pred, head)}: {spec.name} {problem}"
    return None


def _out_of_range(rs: RuleSet, model: Model, index: int, position: int | None = None) -> str | None:
    """A conclusion of rule `index` outside its predicate's declaration, or None."""
    rule = rs.rules[index]
    if rule.head is None or index not in model.heads:
        return None
    for b in model.rule_firings(index):
        problem = _head_problem(rs, rule.head.pred, model.head_of(index, b), position)
        if problem is not None:
            return problem
    return None


def _ranges(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    for index, rule in enumerate(rs.rules):
        if rule.head is None or not rule.body or not _ranged_positions(rs, rule) or index not in model.heads:
            continue
        bad: dict[str, str] = {}
        for b in model.rule_firings(index):
            head = model.head_of(index, b)
            pid = _patient_of(rs, rule.head.pred, head)
            if pid is None or pid not in patients or pid in bad:
                continue
            problem = _head_problem(rs, rule.head.pred, head)
            if problem is not None:
                bad[pid] = problem
        if bad:
            pid = _smallest(list(bad), patients)
            name = rs.rule_name(rule)
            out.append(Finding("S207", rule.span, f"rule {name} concludes a value outside its declaration for "
                               f"{len(bad)} explored patients; e.g. {bad[pid]}", name, patients[pid],
                               item=("range", index), patient=pid))
    return out


def _redundant(rs: RuleSet, model: Model, patients: dict[str, list[Fact]], fired: set[int]) -> list[Finding]:
    producers: dict[tuple, set[int]] = {}
    for index in fired:
        rule = rs.rules[index]
        if rule.head is None or index not in model.heads:
            continue
        for b in model.rule_firings(index):
            producers.setdefault((rule.head.pred, model.head_of(index, b)), set()).add(index)
    out = []
    for index in sorted(fired):
        rule = rs.rules[index]
        if rule.head is None or index not in model.heads:
            continue
        mine = {(rule.head.pred, model.head_of(index, b)) for b in model.rule_firings(index)}
        if mine and all(len(producers[f]) > 1 for f in mine):
            others = sorted({rs.rule_name(rs.rules[j]) for f in mine for j in producers[f] if j != index})
            out.append(Finding("S206", rule.span, f"rule {rs.rule_name(rule)} concluded nothing, for any of the "
                               f"explored patients, that {', '.join(others[:3])} did not conclude too",
                               rs.rule_name(rule), item=("redundant", index)))
    return out


# ----------------------------------------------------------------------------- the whole check
def run_check(path: str | Path | None, semantic: bool = True, budget: int = 3000,
              settings: dict[str, Value] | None = None, solver: bool = True, search: str = "auto",
              default_bound: int = DEFAULT_BOUND) -> CheckReport:
    """Static findings, then the solver, then the search for what the solver left undecided
    (`search`: auto; always runs both and reports any disagreement as an internal error;
    never). `solver=False` is the search alone, as before the solver."""
    rs = load_rules(path, lenient=True)
    overrides = dict(settings or {})
    if any(p.code in ("E001", "E013") for p in rs.problems):  # a file that did not parse: the finding says so,
        settings = {n: v for n, v in (settings or {}).items() if n in rs.settings}  # its settings are not known
    settings = resolve_settings(rs, settings)  # an unknown setting or a value out of range: E012, E024
    report = CheckReport(rs.path, overrides=overrides)
    report.findings = static_findings(rs)
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


def _patient_of_facts(facts: list[Fact]) -> Value | None:
    counts: Counter[Value] = Counter(a for f in facts for a in f.args if isinstance(a, str))
    return counts.most_common(1)[0][0] if counts else None


def diagnostics_to_findings(diagnostics: list[Diagnostic]) -> list[Finding]:
    return [Finding(d.code, d.span if d.span != NO_SPAN else Span("<rules>", 0, 0), d.message) for d in diagnostics]
