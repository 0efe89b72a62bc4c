"""The solver's findings (smt.py): each item its encoding covers, proved (a dead rule, a
constraint that holds, a redundant rule: proofs of absence, with the bounds they relied on)
or shown by a witness patient the engine has reproduced (a violation, a conflict, a failing
requirement, a value outside its range). A witness the engine does not reproduce is an
internal error, never a finding; what the encoding does not cover is left undecided, with
the reason, for the search (check_search.py).
"""
from __future__ import annotations


from reasoner.analysis.program import RuleSet
from reasoner.authoring.check_codes import Finding
from reasoner.authoring.check_items import (
    Item,
    concluding_rules,
    item_label,
    items,
    out_of_range,
    requirement_failures,
)
from reasoner.authoring.smt import Outcome, Prover
from reasoner.authoring.smt_formulas import InputEnc
from reasoner.authoring.vocabulary import CONFLICT, clash_predicates, has_conflicts
from reasoner.engines.model import Model
from reasoner.engines.pydatalog import Engine
from reasoner.language.syntax import Atom, Fact, Span, Value, format_value


def solver_findings(rs: RuleSet, settings: dict[str, Value], default_bound: int, skipped: set[Item] = frozenset()
                    ) -> tuple[list[Finding], dict, dict[Item, str], dict[Item, str]]:
    """(findings, stats, decided: item → "found" | "absent" | "dead", undecided: item → why)."""
    run = _SolverRun(rs, settings, default_bound, skipped)
    live = run.rules()
    run.requirements()
    run.ranges()
    run.conflicts_and_clashes()
    run.redundant(live)
    return run.finish()


class _SolverRun:
    """One run of the prover over a rule set, in steps (one per kind of item), collecting
    findings, what it decided and what it left undecided."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], default_bound: int, skipped: set[Item]):
        self.rs = rs
        self.skipped = skipped
        prover = self.prover = Prover(rs, settings, validate=lambda *a: None, default_bound=default_bound)
        prover.skip = set(skipped)
        self.pid = prover.pid = next(p for p in ("w", "w_", "w__", "witness") if p not in prover.enc.code)
        self.reproduce = _Reproducer(rs, settings, prover.enc.patient_mode, self.pid)
        prover.validate = self.reproduce
        self.findings: list[Finding] = []
        self.decided: dict[Item, str] = {}
        self.undecided: dict[Item, str] = {}
        self.internal: list[str] = []
        bounds = {e.pred: (e.bound, e.source) for e in prover.enc.inputs.values() if isinstance(e, InputEnc)}
        self.stats: dict = {"bounds": {p: b for p, b in bounds.items() if b[1] in ("declared", "default")},
                            "patient_mode": prover.enc.patient_mode, "live": 0, "dead": 0, "constraints_hold": 0,
                            "requirements_hold": 0, "ranges_hold": 0, "redundant": 0}

    def undecide(self, item: Item, o: Outcome) -> None:
        if o.status == "internal":
            self.internal.append(f"{item_label(self.rs, item)}: {o.detail}")
            self.undecided[item] = "the solver's witness did not reproduce in the engine (an internal error)"
        else:
            self.undecided[item] = o.detail

    def proved(self, item: Item, code: str, span: Span, message: str, target: str, o: Outcome, witness=None) -> None:
        self.findings.append(Finding(code, span, message, target, witness, status="proved", item=item,
                                     patient=self.pid if witness else None,
                                     note="" if witness else _bounds_note(self.stats, o.relies)))

    def rules(self) -> set[int]:
        """Rules live or proved dead (S205), constraints violated (S201, S204) or proved to
        hold; the indexes of the live rules."""
        rs, stats = self.rs, self.stats
        live: set[int] = set()
        by_pred: dict[str, list[int]] = {}
        for o in self.prover.rules():
            rule = rs.rules[o.index]  # type: ignore[index]
            name = rs.rule_name(rule)
            item = (o.kind, o.index)
            if not self.settled(item, o, found="witness"):
                continue
            if o.kind == "rule":
                by_pred.setdefault(rule.head.pred, []).append(o.index)  # type: ignore[union-attr,arg-type]
                if o.status == "witness":
                    live.add(o.index)  # type: ignore[arg-type]
                    stats["live"] += 1
                else:
                    stats["dead"] += 1
                    self.decided[item] = "dead"
                    self.proved(item, "S205", rule.span, f"dead rule {name}: no patient fires it", name, o)
            elif o.status == "proved":
                stats["constraints_hold"] += 1
            else:
                model, bindings = o.evidence  # type: ignore[misc]
                self.proved(item, "S201", rule.span, f"constraint {name} is violated"
                            + (f" ({rule.says})" if rule.says else ""), name, o, o.witness)
                concluded = concluding_rules(rs, model, rule, bindings)
                if len(concluded) >= 2:
                    self.proved(item, "S204", rule.span, f"rules {' and '.join(concluded)} apply to the same patient "
                                f"and their conclusions contradict ({name})", name, o, o.witness)
        # why a dead rule is dead, where it shows: a condition on a derived predicate that no
        # live rule concludes (no rule at all, or only dead ones), named by that predicate
        concluded = {rs.rules[i].head.pred for i in live}  # type: ignore[union-attr]
        left_out = {r.head.pred for r in rs.left_out if r.head is not None}
        for f in self.findings:
            if f.code != "S205" or not f.item:
                continue
            never = sorted({lit.pred for lit in rs.rules[f.item[1]].body if isinstance(lit, Atom)
                            and rs.decls.get(lit.pred) is not None and rs.decls[lit.pred].role != "input"
                            and lit.pred not in concluded and lit.pred not in left_out})
            if never:
                rules_for = {p: any(r.head is not None and r.head.pred == p for r in rs.rules) for p in never}
                f.message += " (" + "; ".join(
                    f"its condition {p} holds for no patient: {'every rule concluding it is dead' if rules_for[p] else 'no rule concludes it'}"
                    for p in never) + ")"
        return live

    def settled(self, item: tuple, o: Outcome, found: str) -> bool:
        """Record what the solver decided about `item` ("found" when its outcome's status is
        `found`, else "absent"); False when the item is skipped or the solver could not
        decide it (then it is left to the search, with the reason)."""
        if item in self.skipped:
            return False
        if o.status in ("uncovered", "internal"):
            self.undecide(item, o)
            return False
        self.decided[item] = "found" if o.status == found else "absent"
        return True

    def settled_group(self, item: tuple, outs: list[Outcome], found: bool) -> bool:
        """As `settled`, for an item decided by several outcomes (its witnesses are read
        after): undecided when any of them is; False only when the item is skipped."""
        if item in self.skipped:
            return False
        bad = [o for o in outs if o.status in ("uncovered", "internal")]
        if bad:
            self.undecide(item, bad[0])
        else:
            self.decided[item] = "found" if found else "absent"
        return True

    def requirements(self) -> None:
        """Requirements failing for a witness (S203) or proved to hold."""
        for o in self.prover.requirements():
            item = ("require", o.index)
            req = self.rs.requirements[o.index]  # type: ignore[index]
            if not self.settled(item, o, found="witness"):
                continue
            if o.status == "proved":
                self.stats["requirements_hold"] += 1
            else:
                target = req.head.pred if req.head else "none"
                self.proved(item, "S203", req.span, f"requirement \"{req.text}\" fails: {o.evidence}",
                            target, o, o.witness)

    def ranges(self) -> None:
        """Rules concluding a value outside its declaration (S207), or proved not to."""
        by_range: dict[int, list] = {}
        for o in self.prover.ranges():
            by_range.setdefault(o.index, []).append(o)  # type: ignore[arg-type]
        for index, outs in by_range.items():
            item = ("range", index)
            rule = self.rs.rules[index]
            if not self.settled_group(item, outs, found=False):
                continue
            for o in outs:
                if o.status == "witness":
                    self.decided[item] = "found"
                    name = self.rs.rule_name(rule)
                    self.proved(item, "S207", rule.span, f"rule {name} concludes a value outside its declaration: "
                                f"{o.evidence}", name, o, o.witness)
            if item in self.decided and self.decided[item] == "absent":
                self.stats["ranges_hold"] += 1

    def conflicts_and_clashes(self) -> None:
        """Every conflict tuple the rule set can produce, and every clash (S202), each with a witness."""
        rs = self.rs
        for kind, outs in (("conflict", self.prover.conflicts()), ("clash", self.prover.clashes())):
            item = (kind,)
            if kind == "conflict" and not has_conflicts(rs) or kind == "clash" and clash_predicates(rs) is None:
                continue
            if not self.settled_group(item, outs, found=bool(outs)):
                continue
            for o in outs:
                if o.status != "witness":
                    continue
                what = ", ".join(format_value(v) for v in o.value)
                self.decided[(kind, o.value)] = "found"
                if kind == "conflict":
                    span, said = self._conflict_sides(o)
                    self.proved(("conflict", o.value), "S202", span,
                                f"the rule set can produce {CONFLICT}({what}){said}", CONFLICT, o, o.witness)
                else:
                    self._clash(o)

    def _conflict_sides(self, o: Outcome) -> tuple[Span, str]:
        """Where a conflict comes from: the rule that contraindicates (the finding's place)
        and the rules on each side, named; the conflict declaration when they are unknown."""
        rs = self.rs
        sides = clash_predicates(rs)
        if sides is None or rs.decls[sides[1]].arity != len(self.reproduce.full(CONFLICT, o.value)):
            return rs.decls[CONFLICT].span, ""
        ind, contra = sides
        row = self.reproduce.full(contra, o.value)
        by = {p: _concluded_by(rs, o.evidence, p, r) for p, r in ((ind, row[:rs.decls[ind].arity]), (contra, row),
                                                                  (CONFLICT, self.reproduce.full(CONFLICT, o.value)))}
        named = [f"{p} by {', '.join(rs.rule_name(rs.rules[i]) for i in by[p])}" for p in (contra, ind, CONFLICT)
                 if by[p]]
        span = next((rs.rules[i].span for i in by[contra]), rs.decls[CONFLICT].span)
        return span, f" ({'; '.join(named)})" if named else ""

    def _clash(self, o: Outcome) -> None:
        """A clash: the two facts as the witness has them (its patient included), at the rules that concluded them."""
        rs = self.rs
        ind, contra = clash_predicates(rs)  # type: ignore[misc]
        row = self.reproduce.full(contra, o.value)
        ind_fact, contra_fact = Fact(ind, row[:rs.decls[ind].arity]), Fact(contra, row)
        model = o.evidence
        by = {p: _concluded_by(rs, model, f.pred, f.args) for p, f in ((ind, ind_fact), (contra, contra_fact))}
        span = next((rs.rules[i].span for i in by[ind]), rs.decls[ind].span)
        said = lambda p: (f" (rule {', '.join(rs.rule_name(rs.rules[i]) for i in by[p])})"  # noqa: E731
                          if by[p] else "")
        self.proved(("clash", o.value), "S202", span,
                    f"{ind_fact}{said(ind)} and {contra_fact}{said(contra)} hold together"
                    + (", and no conflict says so" if has_conflicts(rs) else
                       " (the rule set declares no conflict predicate)"), ind, o, o.witness)

    def redundant(self, live: set[int]) -> None:
        """Live rules proved redundant (S206): everything they conclude, others conclude too."""
        rs = self.rs
        for o in self.prover.redundant(live):
            item = ("redundant", o.index)
            if not self.settled(item, o, found="proved"):
                continue
            if o.status == "proved":
                rule = rs.rules[o.index]  # type: ignore[index]
                name = rs.rule_name(rule)
                others = [rs.rule_name(rs.rules[j]) for j in o.value]
                self.stats["redundant"] += 1
                who = (others[0] + " concludes" if len(others) == 1 else
                       ", ".join(others[:3]) + (" and others" if len(others) > 3 else "") + " conclude")
                self.proved(item, "S206", rule.span, f"redundant rule {name}: everything it concludes, {who} too",
                            name, o)

    def finish(self) -> tuple[list[Finding], dict, dict[Item, str], dict[Item, str]]:
        """Items the solver never got to (their rule was not covered) are undecided; the stats."""
        prover = self.prover
        for item in items(self.rs):
            if item not in self.decided and item not in self.undecided and item not in self.skipped:
                self.undecided[item] = "not encoded"
        self.stats.update(calls=prover.calls, trivial=prover.trivial, default_bound=prover.enc.default_bound,
                          whole_state_reason=_whole_state_reason(self.rs, prover.enc.patient_mode),
                          internal=self.internal)  # no timings: the same rule set gives the same bytes
        return self.findings, self.stats, self.decided, self.undecided


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
            fails = requirement_failures(rs.requirements[index], model, lambda v: True)  # type: ignore[index]
            return fails[0][1] if fails else None
        if kind == "range":
            return out_of_range(rs, model, index, value[0])  # type: ignore[arg-type]
        if kind == "unique":  # rule `index` concludes something no other rule does
            pred = rs.rules[index].head.pred  # type: ignore[index,union-attr]
            others = {model.head_of(j, b) for j, r in enumerate(rs.rules) if j != index and j in model.heads
                      and r.head is not None and r.head.pred == pred for b in model.rule_firings(j)}
            return any(model.head_of(index, b) not in others for b in model.rule_firings(index)) or None  # type: ignore[arg-type]
        if kind == "conflict":  # the model: which rules concluded its two sides
            return model if model.holds(CONFLICT, self.full(CONFLICT, value)) else None
        if kind == "clash":
            ind, contra = clash_predicates(rs)  # type: ignore[misc]
            row = self.full(contra, value)
            ok = model.holds(contra, row) and model.holds(ind, row[:rs.decls[ind].arity])
            if CONFLICT in rs.decls and rs.decls[CONFLICT].arity == len(row):
                ok = ok and not model.holds(CONFLICT, row)
            return model if ok else None  # the model: which rules concluded the two
        raise ValueError(kind)


_WITNESS = Span("<witness>", 0, 0)


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

