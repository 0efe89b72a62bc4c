"""The seeded-defect suite of `reasoner check` (issue 17): one small rule set per defect
and a clean twin that differs only where the defect is. Each defect is found by its exact
code, says whether it was proved (solver) or searched (exploration), and its witness file
reproduces it — through the engine and through its own `% run:` line; each clean twin
raises nothing. Thresholds sit on computed values (sums, products, counts), where the
search alone missed or misreported them."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from reasoner import evaluate, load_facts, load_rules
from reasoner.authoring.check import CODES, run_check, write_witnesses
from reasoner.cli import main
from reasoner.engines.model import Model

ROOT = Path(__file__).resolve().parent.parent


def ruleset(decls: str, *rules: tuple[str, str], tail: str = "") -> str:
    """A rule set with every rule annotated (so no W102-W104 noise) and one source."""
    out = ['.source g "A guideline"', decls.strip()]
    for rule_id, text in rules:
        out.append(f"@id {rule_id}\n@source g\n@says \"{rule_id}\"\n{text.strip()}")
    return "\n\n".join(out) + "\n" + tail


SCORES = """
.decl resp(p: id, r: integer[0, 4]) input one "respiratory score"
.decl circ(p: id, c: integer[0, 4]) input one "circulatory score"
.decl score(p: id, s: number) internal "the sum of the scores"
"""
SCORE_RULE = ("score.sum", "score(P, S) :- resp(P, R), circ(P, C), S = R + C.")

WEIGHT = """
.decl weight(p: id, kg: number[1, 400] "kg") input one "body weight"
.decl dose(p: id, mg: number "mg") output "the dose"
"""
DOSE_RULE = ("dose.per_kg", "dose(P, M) :- weight(P, K), M = 8 * K.")

DOSES = """
.type drug = toci | dexa
.decl given(p: id, d: drug, h: number[0, 100] "h") input at most {n} "one dose given"
.decl patient(p: id) internal "a patient"
.decl doses(p: id, n: number) internal "how many doses"
"""
COUNT_RULES = (("patient.given", "patient(P) :- given(P, _, _)."),
               ("doses.count", "doses(P, N) :- patient(P), N = count : { given(P, _, _) }."))


@dataclass
class Case:
    name: str
    defect: str
    clean: str
    code: str
    target: str
    status: str = "proved"
    shows: Callable[[Model], bool] | None = None
    """On the witness's model: the defect is there (None: no witness, a proof of absence)."""
    twin: str = "proved"
    """How the clean twin is clean: proved, or searched (recursion, a count with no bound:
    the report then names what it searched instead of proving)."""


def _violated(model: Model) -> bool:
    return bool(model.violations)


CASES = [
    # ---- S201: a constraint on a sum, a product, a count
    Case("constraint on a sum",
         ruleset(SCORES, SCORE_RULE, ("check.score", ":- score(_, S), S > 7.")),
         ruleset(SCORES, SCORE_RULE, ("check.score", ":- score(_, S), S > 8.")),
         "S201", "check.score", shows=_violated),
    Case("constraint on a product",
         ruleset(WEIGHT, DOSE_RULE, ("check.cap", ":- dose(_, M), M > 800.")),
         ruleset(WEIGHT.replace("[1, 400]", "[1, 100]"), DOSE_RULE, ("check.cap", ":- dose(_, M), M > 800.")),
         "S201", "check.cap", shows=_violated),
    Case("constraint on a count",
         ruleset(DOSES.format(n=5), *COUNT_RULES, ("check.doses", ":- doses(_, N), N > 4.")),
         ruleset(DOSES.format(n=4), *COUNT_RULES, ("check.doses", ":- doses(_, N), N > 4.")),
         "S201", "check.doses", shows=_violated),
    # ---- S202: indicated and contraindicated, with and without a conflict predicate
    Case("conflict predicate",
         ruleset(SCORES + """
.type drug = toci
.type reason = allergy
.decl allergy(p: id, d: drug) input "allergy"
.decl indicated(p: id, a: drug) output "indicated"
.decl contraindicated(p: id, a: drug, r: reason) output "contraindicated"
.decl conflict(p: id, a: drug, r: reason) output "conflict"
""", SCORE_RULE, ("indicated.toci", "indicated(P, toci) :- score(P, S), S >= 6."),
                 ("contra.allergy", "contraindicated(P, D, allergy) :- allergy(P, D)."),
                 ("conflict.indicated", "conflict(P, A, R) :- indicated(P, A), contraindicated(P, A, R).")),
         ruleset(SCORES + """
.type drug = toci
.type reason = allergy
.decl allergy(p: id, d: drug) input "allergy"
.decl indicated(p: id, a: drug) output "indicated"
.decl contraindicated(p: id, a: drug, r: reason) output "contraindicated"
.decl conflict(p: id, a: drug, r: reason) output "conflict"
""", SCORE_RULE, ("indicated.toci", "indicated(P, toci) :- score(P, S), S >= 6, !allergy(P, toci)."),
                 ("contra.allergy", "contraindicated(P, D, allergy) :- allergy(P, D)."),
                 ("conflict.indicated", "conflict(P, A, R) :- indicated(P, A), contraindicated(P, A, R)."),
                 tail='.allow S205 "conflict.indicated" "kept for when an indication ignores a contraindication"\n'),
         "S202", "conflict", shows=lambda m: ("w", "toci", "allergy") in m.tuples("conflict")),
    Case("indicated and contraindicated, no conflict predicate",
         ruleset(WEIGHT + """
.type drug = toci
.type reason = over_cap
.decl indicated(p: id, a: drug) output "indicated"
.decl contraindicated(p: id, a: drug, r: reason) output "contraindicated"
""", DOSE_RULE, ("indicated.toci", "indicated(P, toci) :- weight(P, K), K >= 50."),
                 ("contra.cap", "contraindicated(P, toci, over_cap) :- dose(P, M), M > 800.")),
         ruleset(WEIGHT + """
.type drug = toci
.type reason = over_cap
.decl indicated(p: id, a: drug) output "indicated"
.decl contraindicated(p: id, a: drug, r: reason) output "contraindicated"
""", DOSE_RULE, ("indicated.toci", "indicated(P, toci) :- weight(P, K), K >= 50, K <= 100."),
                 ("contra.cap", "contraindicated(P, toci, over_cap) :- dose(P, M), M > 800.")),
         "S202", "indicated",
         shows=lambda m: bool(m.tuples("indicated") & {(p, a) for p, a, _ in m.tuples("contraindicated")})),
    # ---- S203: a coverage gap on a sum
    Case("requirement gap on a sum",
         ruleset(SCORES + '.decl grade(p: id, g: integer[0, 1]) output "grade"\n', SCORE_RULE,
                 ("grade.one", "grade(P, 1) :- score(P, S), S >= 5."),
                 ("grade.zero", "grade(P, 0) :- score(P, S), S < 4."),
                 tail='.require one grade(P, _) for score(P, _) "every scored patient has one grade"\n'),
         ruleset(SCORES + '.decl grade(p: id, g: integer[0, 1]) output "grade"\n', SCORE_RULE,
                 ("grade.one", "grade(P, 1) :- score(P, S), S >= 5."),
                 ("grade.zero", "grade(P, 0) :- score(P, S), S < 5."),
                 tail='.require one grade(P, _) for score(P, _) "every scored patient has one grade"\n'),
         "S203", "grade", shows=lambda m: bool(m.tuples("score")) and not m.tuples("grade")),
    # ---- S204 (with its S201): two rules whose conclusions contradict at S = 5
    Case("overlapping rules",
         ruleset(SCORES + """
.type level = high | low
.decl level(p: id, l: level) output "level"
""", SCORE_RULE, ("level.high", "level(P, high) :- score(P, S), S >= 5."),
                 ("level.low", "level(P, low) :- score(P, S), S <= 5."),
                 ("check.level", ":- level(P, high), level(P, low).")),
         ruleset(SCORES + """
.type level = high | low
.decl level(p: id, l: level) output "level"
""", SCORE_RULE, ("level.high", "level(P, high) :- score(P, S), S >= 5."),
                 ("level.low", "level(P, low) :- score(P, S), S < 5."),
                 ("check.level", ":- level(P, high), level(P, low).")),
         "S204", "check.level", shows=_violated),
    # ---- S205: dead rules on a sum, a product and a count; their twins are live
    Case("dead rule on a sum",
         ruleset(SCORES + '.decl alarm(p: id) output "alarm"\n', SCORE_RULE,
                 ("alarm.score", "alarm(P) :- score(P, S), S > 8.")),
         ruleset(SCORES + '.decl alarm(p: id) output "alarm"\n', SCORE_RULE,
                 ("alarm.score", "alarm(P) :- score(P, S), S > 7.")),
         "S205", "alarm.score"),
    Case("dead rule on a product",
         ruleset(WEIGHT + '.decl heavy(p: id) output "heavy"\n', DOSE_RULE,
                 ("heavy.dose", "heavy(P) :- dose(P, M), M > 3200.")),
         ruleset(WEIGHT + '.decl heavy(p: id) output "heavy"\n', DOSE_RULE,
                 ("heavy.dose", "heavy(P) :- dose(P, M), M >= 3200.")),
         "S205", "heavy.dose"),
    Case("dead rule on a count",
         ruleset(DOSES.format(n=3) + '.decl many(p: id) output "many doses"\n', *COUNT_RULES,
                 ("many.doses", "many(P) :- doses(P, N), N >= 4.")),
         ruleset(DOSES.format(n=4) + '.decl many(p: id) output "many doses"\n', *COUNT_RULES,
                 ("many.doses", "many(P) :- doses(P, N), N >= 4.")),
         "S205", "many.doses"),
    # ---- S206: a rule subsumed by another, through a product
    Case("redundant rule through a product",
         ruleset(WEIGHT + """
.decl frail(p: id) input "frail"
.decl high_dose(p: id) output "a high dose"
""", DOSE_RULE, ("high.dose", "high_dose(P) :- dose(P, M), M > 800."),
                 ("high.weight", "high_dose(P) :- weight(P, K), K > 150, frail(P).")),
         ruleset(WEIGHT + """
.decl frail(p: id) input "frail"
.decl high_dose(p: id) output "a high dose"
""", DOSE_RULE, ("high.dose", "high_dose(P) :- dose(P, M), M > 800."),
                 ("high.weight", "high_dose(P) :- weight(P, K), K > 50, frail(P).")),
         "S206", "high.weight"),
    # ---- S207: a derived value outside its declaration: a product over its cap, a sum, a count
    Case("dose over its cap",
         ruleset(WEIGHT.replace('mg: number "mg"', 'mg: number[0, 800] "mg"'), DOSE_RULE),
         ruleset(WEIGHT.replace('mg: number "mg"', 'mg: number[0, 800] "mg"'),
                 ("dose.per_kg", "dose(P, M) :- weight(P, K), M = min(8 * K, 800).")),
         "S207", "dose.per_kg", shows=lambda m: any(mg > 800 for _, mg in m.tuples("dose"))),
    Case("sum outside its range",
         ruleset(SCORES.replace("s: number", "s: integer[0, 6]"), SCORE_RULE,
                 ("check.uses_score", ":- score(_, S), S < 0.")),
         ruleset(SCORES.replace("s: number", "s: integer[0, 6]").replace("[0, 4]", "[0, 3]"), SCORE_RULE,
                 ("check.uses_score", ":- score(_, S), S < 0.")),
         "S207", "score.sum", shows=lambda m: any(s > 6 for _, s in m.tuples("score"))),
    Case("count outside its range",
         ruleset(DOSES.format(n=5).replace("n: number", "n: integer[0, 4]"), *COUNT_RULES,
                 ("check.uses_doses", ":- doses(_, N), N < 0.")),
         ruleset(DOSES.format(n=4).replace("n: number", "n: integer[0, 4]"), *COUNT_RULES,
                 ("check.uses_doses", ":- doses(_, N), N < 0.")),
         "S207", "doses.count", shows=lambda m: any(n > 4 for _, n in m.tuples("doses"))),
    # ---- searched: what the encoding does not cover (recursion, a count with no declared bound)
    Case("violation through recursion",
         ruleset("""
.type node = a | b | c
.decl edge(p: id, x: node, y: node) input "an edge"
.decl starts(p: id, x: node) internal "a node an edge starts from"
.decl reach(p: id, x: node, y: node) internal "reachable"
""", ("starts", "starts(P, X) :- edge(P, X, _)."),
                 ("reach.edge", "reach(P, X, Y) :- edge(P, X, Y)."),
                 ("reach.step", "reach(P, X, Z) :- reach(P, X, Y), edge(P, Y, Z)."),
                 ("check.acyclic", ":- reach(_, X, X)."),
                 ("check.starts", ":- reach(P, X, _), !starts(P, X).")),
         ruleset("""
.type node = a | b | c
.decl edge(p: id, x: node, y: node) input "an edge"
.decl starts(p: id, x: node) internal "a node an edge starts from"
.decl reach(p: id, x: node, y: node) internal "reachable"
""", ("starts", "starts(P, X) :- edge(P, X, _)."),
                 ("reach.edge", "reach(P, X, Y) :- edge(P, X, Y)."),
                 ("reach.step", "reach(P, X, Z) :- reach(P, X, Y), edge(P, Y, Z)."),
                 ("check.starts", ":- reach(P, X, _), !starts(P, X).")),
         "S201", "check.acyclic", shows=_violated, twin="searched"),  # a witness of the unrolled recursion
    Case("dead rule through recursion (searched)",
         ruleset("""
.type node = a | b | c
.decl edge(p: id, x: node, y: node) input "an edge"
.decl reach(p: id, x: node, y: node) internal "reachable"
.decl loop_without_edge(p: id) output "a loop at a with no edge from a"
""", ("reach.edge", "reach(P, X, Y) :- edge(P, X, Y)."),
                 ("reach.step", "reach(P, X, Z) :- reach(P, X, Y), edge(P, Y, Z)."),
                 ("loop.a", "loop_without_edge(P) :- reach(P, a, a), !edge(P, a, _).")),
         ruleset("""
.type node = a | b | c
.decl edge(p: id, x: node, y: node) input "an edge"
.decl reach(p: id, x: node, y: node) internal "reachable"
.decl loop_without_edge(p: id) output "a loop at a with no edge from a to itself"
""", ("reach.edge", "reach(P, X, Y) :- edge(P, X, Y)."),
                 ("reach.step", "reach(P, X, Z) :- reach(P, X, Y), edge(P, Y, Z)."),
                 ("loop.a", "loop_without_edge(P) :- reach(P, a, a), !edge(P, a, a).")),
         "S205", "loop.a", status="searched", twin="searched"),
    Case("count with no declared bound",
         ruleset(DOSES.replace(" at most {n}", ""), *COUNT_RULES, ("check.doses", ":- doses(_, N), N > 2.")),
         ruleset(DOSES.replace(" at most {n}", ""), *COUNT_RULES, ("check.doses", ":- doses(_, N), N < 0.")),
         "S201", "check.doses", shows=_violated, twin="searched"),
]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _unallowed(report) -> list:
    return [f for f in report.findings if not f.allowed]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_seeded_defect_is_found_proved_and_reproduced(case: Case, tmp_path: Path) -> None:
    path = _write(tmp_path, "defect.dl", case.defect)
    report = run_check(path, budget=300)
    assert report.internal == []
    found = _unallowed(report)
    assert [f for f in found if f.code[0] in "EW"] == [], found  # the rule set itself is well formed
    hits = [f for f in found if f.code == case.code and f.target == case.target]
    assert hits, [(f.code, f.target, f.message) for f in found]
    finding = hits[0]
    assert finding.status == case.status
    if case.status == "searched":
        assert finding.note  # says what the solver did not cover
    if case.shows is None:
        assert finding.witness is None  # a proof of absence has no witness
        return
    assert finding.witness
    write_witnesses(report, tmp_path / "witnesses")
    rs = load_rules(path)
    facts = load_facts(rs, [finding.witness_file])  # valid input for its own rule set
    assert case.shows(evaluate(rs, facts)), finding.witness
    text = Path(finding.witness_file).read_text(encoding="utf-8")
    runs = [line[len("% run: "):] for line in text.splitlines() if line.startswith("% run: ")]
    assert runs
    for run in runs:
        argv = shlex.split(run)
        assert argv[0] == "reasoner" and "--rules" in argv and str(path) in argv
        result = CliRunner().invoke(main, argv[1:])
        assert result.exit_code in (0, 1), (run, result.output)
        assert result.output.strip()
        if case.code in ("S201", "S204"):
            assert case.target in result.output or "violat" in result.output.lower()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_clean_twin_raises_nothing(case: Case, tmp_path: Path) -> None:
    report = run_check(_write(tmp_path, "clean.dl", case.clean), budget=300)
    assert report.internal == []
    assert _unallowed(report) == [], [(f.code, f.target, f.status, f.message) for f in _unallowed(report)]
    if case.twin == "proved":  # clean by proof, not by a search that found nothing
        assert "search" not in report.explored and not report.explored["undecided"], report.explored["undecided"]
    else:  # the report says what was searched, not proved, and why
        assert report.explored["search"] and report.explored["undecided"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_solver_and_search_agree(case: Case, tmp_path: Path) -> None:
    """The cross-check: the search run over everything never contradicts a proof."""
    for name, text in (("defect.dl", case.defect), ("clean.dl", case.clean)):
        report = run_check(_write(tmp_path, name, text), budget=300, search="always")
        assert report.internal == [], report.internal


def test_the_search_alone_misses_what_the_solver_proves(tmp_path: Path) -> None:
    """Why the solver: thresholds on computed values that the search alone missed."""
    missed = 0
    for case in CASES:
        if case.status != "proved" or case.code not in ("S201", "S207"):
            continue
        report = run_check(_write(tmp_path, "defect.dl", case.defect), budget=300, solver=False)
        if not any(f.code == case.code and f.target == case.target for f in report.findings):
            missed += 1
    assert missed >= 2


def test_dead_predicate_and_bounds_are_said(tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "dead rule on a count")
    report = run_check(_write(tmp_path, "defect.dl", case.defect), budget=300)
    dead = next(f for f in report.findings if f.code == "S205")
    assert "given ≤ 3 (declared)" in dead.note
    assert report.explored["solver"]["bounds"] == {"given": (3, "declared")}


def test_a_dead_rule_names_the_condition_nothing_concludes(tmp_path: Path) -> None:
    # the note said "no rule concludes crs_active" of a rule concluding crs_active; a rule
    # whose condition has no rule at all got no reason
    text = _blind('.decl t(p: id, c: number[30, 45] "C") input "temperature"',
                  '.decl fever(p: id) internal "fever"', '.decl sepsis(p: id) internal "sepsis"',
                  '.decl active(p: id) internal "active"', '.decl treat(p: id) output "treat"',
                  "R fever.none | Never. | fever(P) :- t(P, C), C > 50.",
                  "R active.fever | Active with fever. | active(P) :- fever(P).",
                  "R treat.sepsis | Treat sepsis. | treat(P) :- t(P, _), sepsis(P).",
                  "R treat.active | Treat the active. | treat(P) :- active(P).")
    report = run_check(_write(tmp_path, "why_dead.dl", text), budget=300)
    dead = {f.target: f.message for f in report.findings if f.code == "S205"}
    assert "its condition sepsis holds for no patient: no rule concludes it" in dead["treat.sepsis"]
    assert "its condition fever holds for no patient: every rule concluding it is dead" in dead["active.fever"]
    assert "its condition active holds for no patient" in dead["treat.active"]
    assert "(" not in dead["fever.none"].split(":", 1)[1]  # dead by its own comparison: no condition named


def test_the_only_base_of_a_loop_is_not_called_redundant(tmp_path: Path) -> None:
    # the loop concludes every has_weight fact the base rule concludes, but only because
    # the base gave it first: without the base rule nothing is concluded at all
    text = _blind('.decl w(p: id, kg: number[1, 400] "kg") input "weight"',
                  '.decl has_weight(p: id) output "a weight is known"', '.decl weighed(p: id) internal "weighed"',
                  "R weight.base | A weight on record. | has_weight(P) :- w(P, _).",
                  "R weight.loop | Weighed means known. | has_weight(P) :- weighed(P).",
                  "R weight.back | Known means weighed. | weighed(P) :- has_weight(P).")
    report = run_check(_write(tmp_path, "loop.dl", text), budget=300)
    assert not [f for f in report.findings if f.code == "S206" and f.target == "weight.base"], report.findings


def test_a_conflict_names_its_rules_at_the_one_that_contraindicates(tmp_path: Path) -> None:
    # S202 sat at `.decl conflict` and named no rule: a new contraindication for every
    # grade 3 patient (a seeded defect) read the same as the bundled allergy conflicts
    case = next(c for c in CASES if c.name == "conflict predicate")
    report = run_check(_write(tmp_path, "conflict.dl", case.defect), budget=300)
    s202 = next(f for f in report.findings if f.code == "S202")
    assert s202.message == ("the rule set can produce conflict(toci, allergy) (contraindicated by contra.allergy; "
                            "indicated by indicated.toci; conflict by conflict.indicated)"), s202.message
    text = (tmp_path / "conflict.dl").read_text().splitlines()
    assert text[s202.span.line - 1].startswith("contraindicated(P, D, allergy)") or \
        text[s202.span.line - 1].startswith("@id contra.allergy")


def test_every_semantic_code_is_seeded() -> None:
    seeded = {c.code for c in CASES} | {"S201"}  # S201 comes with every S204
    assert {code for code in CODES if code.startswith("S")} <= seeded


def test_bound_declaration_is_checked() -> None:
    from reasoner.language.errors import ReasonerError
    for bad in ('.decl g(p: id, x: number) output at most 3 "x"', '.decl g(p: id, x: number) input one at most 3 "x"',
                '.decl g(p: id, x: number) input at most 0 "x"'):
        with pytest.raises(ReasonerError) as exc:
            load_rules(text=bad)
        assert exc.value.diagnostics[0].code == "E001"
    assert load_rules(text='.decl g(p: id, x: number) input at most 3 "x"').decls["g"].bound == 3


# ---- the blind tester's findings (rule sets written from docs/checks.md alone)
def _blind(*lines: str) -> str:
    """A rule set in the blind tester's form: `R id | says | rule` lines are annotated rules."""
    out = ['.source g "test guideline"']
    for line in lines:
        if line.startswith("R "):
            rid, says, rule = [x.strip() for x in line[2:].split("|", 2)]
            out += [f"@id {rid}", "@source g", f'@says "{says}"', rule]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


COUNT_DEFAULT = (  # d06: no `at most` on dose_given (default bound 3), but the overlap needs 4 doses
    '.decl enrolled(p: id) input "on the ward"',
    '.decl dose_given(p: id, h: number[0, 100] "h") input "a dose given h hours ago"',
    '.decl doses(p: id, n: number) internal "doses given"',
    '.decl may_give(p: id) output "another dose may be given"',
    '.decl max_reached(p: id) output "4 doses given"',
    "R count.doses | Count the doses. | doses(P, N) :- enrolled(P), N = count : { dose_given(P, _) }.",
    "R dose.may | Under 4 doses another may be given. | may_give(P) :- doses(P, N), N <= 4.",
    "R dose.max | 4 doses is the maximum. | max_reached(P) :- doses(P, N), N >= 4.",
    "R check.max | Never may-give at the maximum. | :- may_give(P), max_reached(P).",
)


def test_count_threshold_beyond_the_default_bound(tmp_path: Path) -> None:
    """d06: the default bound covers the thresholds the count is compared with (through
    doses(P, N)): the violation at 4 doses is found, dose.max is live, and the clean twin is
    searched (not proved), saying so, without calling the search exhaustive."""
    from reasoner.render.findings import render
    report = run_check(_write(tmp_path, "d06.dl", _blind(*COUNT_DEFAULT)), budget=300)
    assert report.internal == []
    codes = {(f.code, f.target, f.status) for f in report.findings}
    assert ("S201", "check.max", "proved") in codes and ("S204", "check.max", "proved") in codes
    assert not any(f.code == "S205" for f in report.findings), codes
    s201 = next(f for f in report.findings if f.code == "S201")
    assert sum(1 for f in s201.witness if f.pred == "dose_given") == 4
    assert report.explored["solver"]["bounds"]["dose_given"] == (5, "default")
    text = render(report, "text")
    assert "dose_given ≤ 5 facts (the default bound 3, raised to cover the facts one rule joins and the thresholds" in text

    twin = _blind(*[x.replace("N <= 4.", "N < 4.") for x in COUNT_DEFAULT])
    report = run_check(_write(tmp_path, "d06_twin.dl", twin), budget=300)
    assert report.internal == [] and _unallowed(report) == [], _unallowed(report)
    assert "constraint check.max" in report.explored["undecided"]  # searched, and says why
    text = render(report, "text")
    assert "(exhaustive)" not in text and "not exhaustive: patients with several facts of dose_given" in text

    direct = _blind(*COUNT_DEFAULT[:2], COUNT_DEFAULT[4],  # the count compared in the rule itself
                    "R dose.max | 4 doses. | max_reached(P) :- enrolled(P), N = count : { dose_given(P, _) }, N >= 4.")
    report = run_check(_write(tmp_path, "direct.dl", direct), budget=300)
    assert report.internal == [] and not any(f.code == "S205" for f in report.findings), report.findings


JOIN_FOUR = (  # four different devices joined in one body: 4 facts of one predicate, none declared
    '.type device = room_air | blow_by | nasal_cannula | facemask | high_flow',
    '.decl oxygen(p: id, d: device, l: number[0, 80] "L/min") input "oxygen support"',
    '.decl many_devices(p: id) output "four devices at once"',
    '.decl flagged(p: id) output "flagged for review"',
    "R devices.four | Four devices. | many_devices(P) :- oxygen(P, A, _), oxygen(P, B, _), oxygen(P, C, _), "
    "oxygen(P, D, _), A != B, A != C, A != D, B != C, B != D, C != D.",
    "R devices.flag | Four devices are flagged. | flagged(P) :- many_devices(P).",
    "R check.four | Never four devices. | :- flagged(P).",
)


def test_a_rule_joining_more_facts_than_the_default_bound_is_not_proved_dead(tmp_path: Path) -> None:
    # Found by a seeded-defect review: with 3 oxygen facts per patient, a body joining 4
    # "proved" the rule dead and the constraint on it to hold. The bound is raised to the
    # facts one rule joins, through derived atoms too (flagged uses many_devices).
    from reasoner.render.findings import render
    report = run_check(_write(tmp_path, "join4.dl", _blind(*JOIN_FOUR)), budget=300)
    assert report.internal == []
    assert report.explored["solver"]["bounds"]["oxygen"] == (4, "default")
    assert not any(f.code == "S205" for f in report.findings), report.findings
    s201 = next(f for f in report.findings if f.code == "S201")
    assert s201.status == "proved" and sum(1 for f in s201.witness if f.pred == "oxygen") == 4
    assert "oxygen ≤ 4 facts (the default bound 3, raised to cover the facts one rule joins" in render(report, "text")


ROUNDING = (  # a grade computed with 0.1: exact for the solver, rounded by the engine
    '.type device = nasal_cannula | facemask',
    '.decl oxygen(p: id, d: device, l: number[0, 15] "L/min") input one "oxygen"',
    '.decl low_flow(p: id) output "low-flow oxygen"',
    "R flow.low | Up to 6 L/min is low flow. | low_flow(P) :- oxygen(P, _, L), L * 0.1 <= 0.6.",
    "R check.six | 6 L/min is low flow. | :- oxygen(P, _, 6), !low_flow(P).",
)


def test_a_proof_never_rests_on_arithmetic_the_engine_rounds(tmp_path: Path) -> None:
    # Found by a seeded-defect review: L * 0.1 <= 0.6 holds at L = 6 for exact rationals,
    # not in floating point (0.6000000000000001): the constraint was "proved to hold" while
    # the engine breaks it at 6 L/min. Now the solver may not use exactness there: the item
    # is searched, and the search finds the violation.
    report = run_check(_write(tmp_path, "round.dl", _blind(*ROUNDING)), budget=300)
    assert report.internal == []
    s201 = [f for f in report.findings if f.code == "S201"]
    assert s201 and s201[0].status == "searched", report.findings
    assert any(f.pred == "oxygen" and f.args[2] == 6 for f in s201[0].witness)
    assert "floating point" in " ".join(report.explored["undecided"].values())
    # the same with a power of two (L * 0.5 <= 3) rounds nowhere: proved to hold
    exact = _blind(*[x.replace("L * 0.1 <= 0.6", "L * 0.5 <= 3") for x in ROUNDING])
    report = run_check(_write(tmp_path, "exact.dl", exact), budget=300)
    assert report.internal == [] and _unallowed(report) == [] and not report.explored.get("undecided")


def test_one_is_per_patient_when_rules_join_patients(tmp_path: Path) -> None:
    """d23: with a rule joining two patients, all facts are one state, but `one` stays one
    fact per patient: two patients with score 5 fire the rule (no false "proved dead")."""
    from reasoner.render.findings import render
    text = _blind('.decl score(p: id, s: number[0, 10]) input one "score"',
                  '.decl same_score(p: id, q: id) output "two patients with the same score"',
                  "R same | Same score. | same_score(P, Q) :- score(P, S), score(Q, S), P != Q.")
    report = run_check(_write(tmp_path, "d23.dl", text), budget=300)
    assert report.internal == []
    assert [(f.code, f.target) for f in _unallowed(report)] == [("W107", "same")]
    assert report.explored["solver"]["live"] == 1
    shown = render(report, "text")
    assert "no patient key" not in shown and "joins facts of different patients (W107)" in shown
    assert "in the whole fact base" in shown


@pytest.mark.parametrize("name, text, code", [
    ("d17", ('.type drug = x | y', '.decl enrolled(p: id) input "on the ward"',
             '.decl allergy(p: id, d: drug) input "allergy"', '.decl safe(p: id) output "no allergy at all"',
             "R safe | No allergy at all. | safe(P) :- enrolled(P), !allergy(P, D)."), "E007"),
    ("d18", ('.decl enrolled(p: id) input "on the ward"', '.decl watchful(p: id) input "watchful waiting"',
             '.decl treat(p: id) output "treat"', '.decl observe(p: id) output "observe"',
             "R treat | Treat unless observed. | treat(P) :- enrolled(P), !observe(P).",
             "R observe | Observe unless treated. | observe(P) :- enrolled(P), watchful(P), !treat(P)."), "E008"),
    ("d19", ('.decl enrolled(p: id) input "on the ward"', '.decl item(p: id, n: number) internal "an item"',
             '.decl total(p: id, n: number) output "count of items"',
             "R item.base | Zero is an item. | item(P, 0) :- enrolled(P).",
             "R item.rec | A total is an item. | item(P, N) :- total(P, N).",
             "R total | Count items. | total(P, N) :- enrolled(P), N = count : { item(P, _) }."), "E009"),
    ("d20", ('.type drug = x | y', '.decl weight_kg(p: id, kg: number[1, 200] "kg") input one "body weight"',
             '.decl allergy(p: id, d: drug) input "allergy"', '.decl odd(p: id) output "odd"',
             "R odd | Odd. | odd(P) :- weight_kg(P, X), allergy(P, X)."), "E004"),
])
def test_errors_first_no_warnings_from_rules_left_out(name: str, text: tuple, code: str, tmp_path: Path) -> None:
    """d17-d20: a rule left out for an error still cites its source and uses its predicates
    (no W106, W108), and what depends on it gets no semantic finding (no false S205); the
    report says the semantic checks covered only the rest."""
    from reasoner.render.findings import render
    report = run_check(_write(tmp_path, f"{name}.dl", _blind(*text)), budget=300)
    assert report.internal == []
    assert {f.code for f in report.findings} == {code}, [(f.code, f.message) for f in report.findings]
    assert "Errors first:" in render(report, "text")


def test_conflict_and_requirement_messages_show_values_and_run_lines(tmp_path: Path) -> None:
    """d08, d14, d16: S202 names the two facts with the witness's values, at the rule; S203 says
    what fails with which values; the witness run lines show the whole defect."""
    d08 = _blind('.decl age(p: id, y: number[18, 100] "years") input one "age"',
                 '.decl weight_kg(p: id, kg: number[30, 200] "kg") input one "weight"',
                 '.decl creatinine(p: id, s: number[0.2, 10] "mg/dL") input one "serum creatinine"',
                 '.decl crcl(p: id, c: number "mL/min") internal "creatinine clearance"',
                 '.decl indicated(p: id) output "drug x indicated"',
                 '.decl contraindicated(p: id) output "drug x contraindicated (renal)"',
                 "R renal.crcl | Cockcroft-Gault. | crcl(P, C) :- age(P, Y), weight_kg(P, K), creatinine(P, S), "
                 "C = (140 - Y) * K / (72 * S).",
                 "R ind.x | 30 or more: drug x. | indicated(P) :- crcl(P, C), C >= 30.",
                 "R contra.x | Under 30: no drug x. | contraindicated(P) :- crcl(P, C), C <= 30.")
    report = run_check(_write(tmp_path, "d08.dl", d08), budget=300)
    s202 = next(f for f in report.findings if f.code == "S202")
    assert s202.message.startswith("indicated(w) (rule ind.x) and contraindicated(w) (rule contra.x) hold together")
    assert s202.span.line == d08.splitlines().index("@id ind.x") + 1  # at the rule (its annotations first)

    d14 = _blind('.type level = low | high', '.decl score(p: id, s: integer[0, 10]) input one "score"',
                 '.decl patient(p: id) internal "has a score"', '.decl risk(p: id, l: level) output "risk level"',
                 "R pat | A score makes a patient. | patient(P) :- score(P, _).",
                 "R risk.low | Up to 5 is low. | risk(P, low) :- score(P, S), S <= 5.",
                 "R risk.high | 5 or more is high. | risk(P, high) :- score(P, S), S >= 5.",
                 '.require one risk(P, _) for patient(P) "exactly one risk level"')
    d16 = _blind('.decl score_a(p: id, s: number[0, 10]) input one "score A"',
                 '.decl score_b(p: id, s: number[0, 10]) input one "score B"',
                 '.decl low(p: id) output "low"', '.decl high(p: id) output "high"',
                 "R low.sum | A + B under 10 is low. | low(P) :- score_a(P, A), score_b(P, B), A + B < 10.",
                 "R high.both | A 5+ and B 4+ is high. | high(P) :- score_a(P, A), score_b(P, B), A >= 5, B >= 4.",
                 '.require none low(P), high(P) "never low and high"')
    expect = {"d14": ("2 risk answers: risk(w, high), risk(w, low) (it requires exactly one risk(w, _))",
                      ["'patient(w)'", "'risk(w, L)'"], ["high", "low"]),
              "d16": ("low(w) and high(w) hold together, which it rules out", ["'low(w)'", "'high(w)'"], ["true"])}
    for name, text in (("d14", d14), ("d16", d16)):
        path = _write(tmp_path, f"{name}.dl", text)
        report = run_check(path, budget=300)
        s203 = next(f for f in report.findings if f.code == "S203")
        message, goals, shown = expect[name]
        assert message in s203.message, s203.message
        write_witnesses(report, tmp_path / name)
        runs = [line[len("% run: "):] for line in Path(s203.witness_file).read_text().splitlines()
                if line.startswith("% run: ")]
        assert [shlex.split(r)[2] for r in runs] == [shlex.split(g)[0] for g in goals], runs
        outputs = [CliRunner().invoke(main, shlex.split(r)[1:]).output for r in runs]
        for word in shown:
            assert any(word in out.split() for out in outputs), outputs
