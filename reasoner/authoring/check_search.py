"""The search's findings: what the solver left undecided (or, with `--search always`,
everything, as a cross-check), from explored patients (explore.py): violations, conflicts,
failing requirements, values out of range, dead and redundant rules, each for the smallest
explored patient that shows it. A finding the solver decided the other way is an internal
error, never a finding.
"""
from __future__ import annotations

from reasoner.analysis.program import RuleSet
from reasoner.authoring.check_codes import Finding
from reasoner.authoring.check_items import (
    Item,
    concluding_rules,
    head_problem,
    item_label,
    ranged_positions,
    requirement_failures,
)
from reasoner.authoring.explore import explore
from reasoner.authoring.explore_domain import Domain, build_domain
from reasoner.authoring.explore_witness import witnesses
from reasoner.authoring.vocabulary import CONFLICT, has_conflicts
from reasoner.engines.model import Model, row_key
from reasoner.engines.pydatalog import Engine
from reasoner.io.facts import FactSet, chunks
from reasoner.language.syntax import Fact, Value, format_value


def searched_findings(rs: RuleSet, settings: dict[str, Value], budget: int, per_rule: int,
                      decided: dict[Item, str], undecided: dict[Item, str],
                      skipped: frozenset | set = frozenset()) -> tuple[list[Finding], dict]:
    """Findings from explored patients (covering, then targeted, then a second round of
    targeted witnesses for rules still silent) for the items not in `decided`; a finding
    against what the solver decided is an internal error (stats["internal"])."""
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
    found += _redundant(rs, model, fired, {item[1] for item in skipped if item[0] == "rule" and len(item) > 1})
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
        internal.append(f"the search contradicts the solver on {item_label(rs, group)}: {f.message}")
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
        concluded = concluding_rules(rs, model, rule, bindings)
        if len(concluded) >= 2:
            out.append(Finding("S204", rule.span, f"rules {' and '.join(concluded)} apply to the same patient and "
                               f"their conclusions contradict ({rs.rule_name(rule)})", rs.rule_name(rule),
                               patients[pid], item=("constraint", index), patient=pid))
    return out



def _conflicts(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    if not has_conflicts(rs):
        return []
    groups: dict[tuple, list[str]] = {}
    for row in model.tuples(CONFLICT):
        pid = _patient_of(rs, CONFLICT, row)
        if pid in patients:
            groups.setdefault(tuple(v for i, v in enumerate(row) if i != rs.key_index(CONFLICT)), []).append(pid)
    out = []
    decl = rs.decls[CONFLICT]
    for key, pids in sorted(groups.items(), key=lambda kv: row_key(kv[0])):
        pid = _smallest(pids, patients)
        what = ", ".join(format_value(v) for v in key)
        out.append(Finding("S202", decl.span, f"the rule set can produce {CONFLICT}({what}) "
                           f"({len(pids)} explored patients)", CONFLICT, patients[pid], item=("conflict", key),
                           patient=pid))
    return out



def _requirements(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    for j, req in enumerate(rs.requirements):
        failing = requirement_failures(req, model, lambda v: v in patients)
        if failing:
            pid = _smallest([p for p, _ in failing], patients)
            detail = dict(failing)[pid]
            target = req.head.pred if req.head else "none"
            out.append(Finding("S203", req.span, f"requirement \"{req.text}\" fails for {len(failing)} explored "
                               f"patients; e.g. {detail}", target, patients[pid], item=("require", j),
                               patient=pid))
    return out



def _ranges(rs: RuleSet, model: Model, patients: dict[str, list[Fact]]) -> list[Finding]:
    out = []
    for index, rule in enumerate(rs.rules):
        if rule.head is None or not rule.body or not ranged_positions(rs, rule) or index not in model.heads:
            continue
        bad: dict[str, str] = {}
        for b in model.rule_firings(index):
            head = model.head_of(index, b)
            pid = _patient_of(rs, rule.head.pred, head)
            if pid is None or pid not in patients or pid in bad:
                continue
            problem = head_problem(rs, rule.head.pred, head)
            if problem is not None:
                bad[pid] = problem
        if bad:
            pid = _smallest(list(bad), patients)
            name = rs.rule_name(rule)
            out.append(Finding("S207", rule.span, f"rule {name} concludes a value outside its declaration for "
                               f"{len(bad)} explored patients; e.g. {bad[pid]}", name, patients[pid],
                               item=("range", index), patient=pid))
    return out


def _redundant(rs: RuleSet, model: Model, fired: set[int], skipped: set[int]) -> list[Finding]:
    """Rules each of whose conclusions another rule concluded too, on the explored patients.
    Not said of a rule whose head is recursive (the others may conclude its facts only
    through the facts it gave: without it, none), nor on the word of a rule left out of the
    checks for an error it depends on."""
    producers: dict[tuple, set[int]] = {}
    for index in fired:
        rule = rs.rules[index]
        if rule.head is None or index not in model.heads or index in skipped:
            continue
        for b in model.rule_firings(index):
            producers.setdefault((rule.head.pred, model.head_of(index, b)), set()).add(index)
    out = []
    for index in sorted(fired):
        rule = rs.rules[index]
        if rule.head is None or index not in model.heads or rule.head.pred in rs.recursive:
            continue
        mine = {(rule.head.pred, model.head_of(index, b)) for b in model.rule_firings(index)}
        if mine and all(len(producers[f]) > 1 for f in mine):
            others = sorted({rs.rule_name(rs.rules[j]) for f in mine for j in producers[f] if j != index})
            out.append(Finding("S206", rule.span, f"rule {rs.rule_name(rule)} concluded nothing, for any of the "
                               f"explored patients, that {', '.join(others[:3])} did not conclude too",
                               rs.rule_name(rule), item=("redundant", index)))
    return out
