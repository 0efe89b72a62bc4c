"""`reasoner check`: findings for guideline authors, each with a code (docs/checks.md).

Static findings come from reading the rules; semantic findings from running the rule
set over the representative patients of explore.py as one batch. Every semantic
finding carries a witness patient, written out as a ready-to-run fact file with
`--witness-dir`. A finding can be marked intended with `.allow CODE "TARGET" "why"` in
the rule files (TARGET: a rule id, a predicate, or `*`); it is then listed as allowed,
not counted.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .engine import Engine
from .errors import Diagnostic
from .explore import Domain, build_domain, explore, witnesses
from .facts import FactSet, chunks
from .match import solve
from .model import Model, row_key
from .program import RuleSet, dependencies, load_rules
from .syntax import NO_SPAN, Aggregate, Atom, Fact, Negation, Rule, Span, Value, Var, body_atoms, expr_vars, format_value

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
    "W101": ("warning", "singleton variable: named once; write _ if it is meant to be ignored"),
    "W102": ("warning", "rule without @id"),
    "W103": ("warning", "rule without @source"),
    "W104": ("warning", "rule without @says"),
    "W105": ("warning", "declared predicate that no rule uses"),
    "W106": ("warning", "derived predicate that no output, constraint or requirement uses"),
    "W107": ("warning", "rule that is not patient-local: it joins facts of different patients"),
    "W108": ("warning", "source declared but cited by no rule"),
    "S201": ("error", "integrity constraint violated by an explored patient"),
    "S202": ("warning", "conflict the rule set can produce (indicated or ordered, and contraindicated)"),
    "S203": ("error", "coverage requirement (.require) fails for an explored patient"),
    "S204": ("error", "rules whose conditions overlap while their conclusions contradict"),
    "S205": ("warning", "dead rule: fires for no explored patient"),
    "S206": ("warning", "redundant rule: everything it concludes another rule with the same head concludes too"),
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

    @property
    def severity(self) -> str:
        return CODES[self.code][0]


@dataclass
class CheckReport:
    rules_path: str
    findings: list[Finding] = field(default_factory=list)
    explored: dict[str, int | str | bool] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error" and not f.allowed)

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
    cited = {s for r in rs.rules for s in r.sources}
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
    deps = dependencies(rs)
    roots = {p for p, d in rs.decls.items() if d.role == "output"}
    for rule in rs.rules:
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
def semantic_findings(rs: RuleSet, settings: dict[str, Value] | None = None, budget: int = 3000,
                      per_rule: int = 3) -> tuple[list[Finding], dict]:
    settings = {**{n: s.value for n, s in rs.settings.items()}, **(settings or {})}
    domain: Domain = build_domain(rs, settings)
    covering = explore(rs, domain, budget)
    targeted = witnesses(rs, domain, settings, per_rule)
    patients = {**covering.patients, **targeted.patients}
    how = {**covering.how, **targeted.how}
    model = _evaluate(rs, patients, settings)
    fired = _fired_rules(rs, model)
    # a second round of witnesses for rules still silent, with more candidates each
    silent = [i for i, r in enumerate(rs.rules) if r.body and r.head is not None and i not in fired]
    if silent:
        extra = witnesses(rs, domain, settings, per_rule=12, rules=silent)
        extra.patients = {f"{k}b": [Fact(f.pred, tuple(f"{k}b" if a == k else a for a in f.args), f.span)
                                    for f in v] for k, v in extra.patients.items()}
        extra.how = {f"{k}b": v for k, v in extra.how.items()}
        more = _evaluate(rs, extra.patients, settings)
        model.merge(more)
        patients.update(extra.patients)
        how.update(extra.how)
        fired = _fired_rules(rs, model)
    stats = {"patients": len(patients), "covering_patients": covering.covering_rows,
             "sampled_patients": covering.sampled_rows,
             "targeted_patients": len(patients) - covering.covering_rows - covering.sampled_rows,
             "dimensions": covering.dimensions,
             "space": covering.space, "exhaustive": covering.exhaustive,
             "pairs_covered": covering.pairs[0], "pairs": covering.pairs[1]}
    findings: list[Finding] = []
    findings += _violations(rs, model, patients)
    findings += _conflicts(rs, model, patients)
    findings += _requirements(rs, model, patients)
    for index, rule in enumerate(rs.rules):
        if rule.body and index not in fired:
            kind = "integrity constraint" if rule.head is None else "rule"
            if rule.head is None:
                continue  # a constraint that never fires is a constraint that holds
            findings.append(Finding("S205", rule.span, f"dead {kind} {rs.rule_name(rule)}: it fired for none of the "
                                    f"{len(patients)} explored patients", rs.rule_name(rule)))
    findings += _redundant(rs, model, patients, fired)
    return findings, stats


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
                           patients[pid]))
        concluded = _concluding_rules(rs, model, rule, bindings)
        if len(concluded) >= 2:
            out.append(Finding("S204", rule.span, f"rules {' and '.join(concluded)} apply to the same patient and "
                               f"their conclusions contradict ({rs.rule_name(rule)})", rs.rule_name(rule),
                               patients[pid]))
    return out


def _concluding_rules(rs: RuleSet, model: Model, constraint: Rule, bindings: dict) -> list[str]:
    """The rules that concluded the facts a violated constraint matched."""
    from .match import Unbound, eval_expr
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
                           f"({len(pids)} explored patients)", "conflict", patients[pid]))
    return out


def _requirements(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    for req in rs.requirements:
        failing: list[tuple[str, str]] = []
        for env in solve(req.body, {}, model, model.settings, None):
            pid = next((str(v) for v in env.values() if str(v) in patients), None)
            if pid is None:
                continue
            if req.kind == "none":
                failing.append((pid, "holds"))
                continue
            assert req.head is not None
            n = len({tuple(row) for row in _matches(req.head, env, model)})
            if (req.kind == "one" and n != 1) or (req.kind == "some" and n == 0):
                failing.append((pid, f"has {n} {req.head.pred} answers"))
        if failing:
            pid = _smallest([p for p, _ in failing], patients)
            detail = dict(failing)[pid]
            target = req.head.pred if req.head else "none"
            out.append(Finding("S203", req.span, f"requirement \"{req.text}\" fails for {len(failing)} explored "
                               f"patients; e.g. {pid} {detail}", target, patients[pid]))
    return out


def _matches(atom: Atom, env: dict, model: Model) -> list[tuple]:
    from .match import match_atom
    return [tuple(e[a.name] if isinstance(a, Var) else a.value for a in atom.args)  # type: ignore[union-attr]
            for e in match_atom(atom, env, model, model.settings)]


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
                               rs.rule_name(rule)))
    return out


# ----------------------------------------------------------------------------- the whole check
def run_check(path: str | Path | None, semantic: bool = True, budget: int = 3000,
              settings: dict[str, Value] | None = None) -> CheckReport:
    rs = load_rules(path, lenient=True)
    report = CheckReport(rs.path)
    report.findings = static_findings(rs)
    if semantic:  # the lenient load left out what was unsound; the rest can still be explored
        findings, stats = semantic_findings(rs, settings, budget)
        report.findings += findings
        report.explored = stats
    for f in report.findings:
        for allow in rs.allows:
            if allow.code == f.code and allow.target in ("*", f.target):
                f.allowed = allow.reason
    report.findings.sort(key=lambda f: (f.span.file, f.span.line, f.span.col, f.code, f.message))
    return report


def write_witnesses(report: CheckReport, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in report.findings:
        if not f.witness:
            continue
        n += 1
        slug = re.sub(r"[^a-z0-9]+", "_", (f.target or "finding").lower()).strip("_")[:40]
        path = directory / f"{f.code}-{n:03d}-{slug}.facts"
        original = _patient_of_facts(f.witness)
        lines = [f"% witness for {f.code} ({CODES[f.code][1]})", f"% {f.message}",
                 f"% run: reasoner recommend {path}", ""]
        for fact in sorted(f.witness, key=lambda x: (x.pred, row_key(x.args))):
            args = tuple("w" if a == original else a for a in fact.args)
            lines.append(str(Fact(fact.pred, args)) + ".")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        f.witness_file = str(path)


def _patient_of_facts(facts: list[Fact]) -> Value | None:
    counts: Counter[Value] = Counter(a for f in facts for a in f.args if isinstance(a, str))
    return counts.most_common(1)[0][0] if counts else None


def diagnostics_to_findings(diagnostics: list[Diagnostic]) -> list[Finding]:
    return [Finding(d.code, d.span if d.span != NO_SPAN else Span("<rules>", 0, 0), d.message) for d in diagnostics]
