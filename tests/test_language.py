"""Each language feature against an answer checked by hand."""
from __future__ import annotations

import pytest

from programs import DECLS, NEGATION_CHAIN  # noqa: E402  (tests/programs.py)
from reasoner import evaluate, load_facts, load_rules, query
from reasoner.language.errors import ReasonerError



def run(rules_text: str, facts_text: str, pred: str, settings: dict | None = None) -> set:
    rules = load_rules(text=DECLS + rules_text)
    facts = load_facts(rules, text=facts_text)
    return evaluate(rules, facts, settings=settings).tuples(pred)


def test_comparison_boundaries_are_inclusive_where_written() -> None:
    rules = ".decl fever(p: id) output \"f\"\nfever(P) :- temp(P, T), T >= 38.0.\n"
    facts = "temp(a, 38.0). temp(b, 37.9). temp(c, 38). temp(d, 40.2)."
    assert run(rules, facts, "fever") == {("a",), ("c",), ("d",)}


def test_all_comparison_operators() -> None:
    rules = """
.decl r(p: id, op: symbol) output "r"
r(P, lt) :- weight(P, W), W < 70.
r(P, le) :- weight(P, W), W <= 70.
r(P, gt) :- weight(P, W), W > 70.
r(P, ge) :- weight(P, W), W >= 70.
r(P, eq) :- weight(P, W), W = 70.
r(P, ne) :- weight(P, W), W != 70.
"""
    got = run(rules, "weight(a, 70). weight(b, 71).", "r")
    assert got == {("a", "le"), ("a", "ge"), ("a", "eq"), ("b", "gt"), ("b", "ge"), ("b", "ne")}


def test_arithmetic_min_max_abs_and_division() -> None:
    rules = """
.decl dose(p: id, mg: number) output "d"
.decl half(p: id, v: number) output "h"
.decl spread(p: id, v: number) output "s"
dose(P, D) :- weight(P, W), D = min(8 * W, 800).
half(P, W / 2) :- weight(P, W).
spread(P, abs(W - 100) + max(1, 2, 3)) :- weight(P, W).
"""
    facts = "weight(a, 72). weight(b, 120). weight(c, 100)."
    assert run(rules, facts, "dose") == {("a", 576), ("b", 800), ("c", 800)}
    assert run(rules, facts, "half") == {("a", 36), ("b", 60), ("c", 50)}
    assert run(rules, facts, "spread") == {("a", 31), ("b", 23), ("c", 3)}


def test_operator_precedence_and_unary_minus() -> None:
    rules = '.decl v(p: id, x: number) output "v"\nv(P, 2 + 3 * W - -1) :- weight(P, W).\n'
    assert run(rules, "weight(a, 10).", "v") == {("a", 33)}


def test_division_by_zero_does_not_fire() -> None:
    rules = '.decl v(p: id, x: number) output "v"\nv(P, 10 / (W - 10)) :- weight(P, W).\n'
    assert run(rules, "weight(a, 10). weight(b, 12).", "v") == {("b", 5)}


def test_count_counts_rows_not_distinct_values() -> None:
    # three doses of the same size are three doses (pyDatalog's len_ would say one)
    rules = """
patient(P) :- weight(P, _).
.decl n(p: id, n: number) output "n"
n(P, N) :- patient(P), N = count : { given(P, tocilizumab, _, _) }.
"""
    facts = """weight(a, 70). weight(b, 70).
given(a, tocilizumab, 560, 2). given(a, tocilizumab, 560, 10). given(a, tocilizumab, 560, 18)."""
    assert run(rules, facts, "n") == {("a", 3), ("b", 0)}  # count of nothing is 0


def test_sum_min_max_and_empty_groups() -> None:
    rules = """
patient(P) :- weight(P, _).
.decl total(p: id, mg: number) output "t"
.decl last(p: id, h: number) output "l"
.decl first(p: id, h: number) output "f"
total(P, S) :- patient(P), S = sum M : { given(P, _, M, _) }.
last(P, H) :- patient(P), H = min X : { given(P, _, _, X) }.
first(P, H) :- patient(P), H = max X : { given(P, _, _, X) }.
"""
    facts = """weight(a, 70). weight(b, 70).
given(a, tocilizumab, 560, 20). given(a, dexamethasone, 10, 6). given(a, dexamethasone, 10, 12)."""
    assert run(rules, facts, "total") == {("a", 580), ("b", 0)}
    assert run(rules, facts, "last") == {("a", 6)}  # min of nothing: no answer
    assert run(rules, facts, "first") == {("a", 20)}


def test_aggregate_with_condition_and_setting() -> None:
    rules = """
.setting window = 24 "hours counted"
patient(P) :- weight(P, _).
.decl recent(p: id, n: number) output "n"
recent(P, N) :- patient(P), N = count : { given(P, tocilizumab, _, H), H < $window }.
"""
    facts = "weight(a, 70). given(a, tocilizumab, 560, 2). given(a, tocilizumab, 560, 30)."
    assert run(rules, facts, "recent") == {("a", 1)}
    assert run(rules, facts, "recent", settings={"window": 48}) == {("a", 2)}


def test_stratified_negation_with_anonymous_variable() -> None:
    # "no allergy to anything" must not depend on which drug: the _ is existential
    rules = """
patient(P) :- weight(P, _).
.decl any_allergy_free(p: id) output "x"
any_allergy_free(P) :- patient(P), !allergy(P, _).
"""
    facts = "weight(a, 70). weight(b, 70). allergy(b, tocilizumab)."
    assert run(rules, facts, "any_allergy_free") == {("a",)}


def test_negation_of_a_predicate_with_no_facts_at_all() -> None:
    rules = """
patient(P) :- weight(P, _).
.decl ok(p: id, d: drug) output "x"
ok(P, tocilizumab) :- patient(P), !allergy(P, tocilizumab).
"""
    assert run(rules, "weight(a, 70).", "ok") == {("a", "tocilizumab")}


def test_negation_chain_over_three_strata() -> None:
    rules_set = load_rules(text=NEGATION_CHAIN)
    model = evaluate(rules_set, load_facts(rules_set, text="node(n1). node(n2). node(n3)."))
    assert model.tuples("a") == {("n2",), ("n3",)}
    assert model.tuples("b") == {("n1",)}
    assert model.tuples("c") == {("n2",), ("n3",)}


def test_quoted_strings_equal_identifiers_and_escape() -> None:
    rules = '.decl r(p: id) output "r"\nr(P) :- weight(P, _), P = "pt 1".\n'
    assert run(rules, 'weight("pt 1", 70). weight(p2, 70).', "r") == {("pt 1",)}
    rules2 = '.decl r(p: id) output "r"\nr(P) :- weight(P, _), P = "p2".\n'
    assert run(rules2, 'weight(p2, 70).', "r") == {("p2",)}


def test_head_constants_and_facts_in_rule_files() -> None:
    rules = """
.decl anti_cytokine(d: drug) internal "drugs that mask fever"
anti_cytokine(tocilizumab).
anti_cytokine(dexamethasone).
.decl masked(p: id, d: drug) output "m"
masked(P, D) :- given(P, D, _, _), anti_cytokine(D).
"""
    facts = "given(a, antipyretic, 500, 1). given(a, tocilizumab, 560, 2)."
    assert run(rules, facts, "masked") == {("a", "tocilizumab")}


def test_integrity_constraint_violations_are_reported() -> None:
    rules = """
.decl two(p: id) output "x"
@id no_two_devices
@says "A patient has one oxygen device at a time."
:- oxygen(P, D1, _), oxygen(P, D2, _), D1 != D2.
"""
    rules_set = load_rules(text=DECLS + rules)
    facts = load_facts(rules_set, text="oxygen(a, facemask, 5). oxygen(a, nasal_cannula, 2). oxygen(b, facemask, 5).")
    model = evaluate(rules_set, facts)
    assert {v.bindings["P"] for v in model.violations} == {"a"}


def test_query_answers_sorted_and_ground_goals() -> None:
    rules_set = load_rules(text=DECLS + '.decl fever(p: id) output "f"\nfever(P) :- temp(P, T), T >= 38.\n')
    facts = load_facts(rules_set, text="temp(p10, 39). temp(p2, 38.5). temp(p1, 36).")
    assert query(rules_set, facts, "temp(P, T)") == [{"P": "p1", "T": 36}, {"P": "p2", "T": 38.5},
                                                     {"P": "p10", "T": 39}]
    assert query(rules_set, facts, "fever(p2)") == [{}]
    assert query(rules_set, facts, "fever(p1)") == []
    assert query(rules_set, facts, "temp(P, 39)") == [{"P": "p10"}]


def test_include_reads_each_file_once(tmp_path) -> None:
    (tmp_path / "decls.dl").write_text('.decl e(a: symbol, b: symbol) input "e"\n')
    (tmp_path / "a.dl").write_text('.include "decls.dl"\n.decl r(a: symbol) output "r"\nr(X) :- e(X, _).\n')
    (tmp_path / "main.dl").write_text('.include "decls.dl"\n.include "a.dl"\n')
    rules = load_rules(tmp_path)
    assert rules.rules and "r" in rules.decls
    assert evaluate(rules, load_facts(rules, text="e(x, y).")).tuples("r") == {("x",)}


def test_chunked_evaluation_equals_one_chunk() -> None:
    rules = load_rules(text=DECLS + """
patient(P) :- weight(P, _).
.decl n(p: id, n: number) output "n"
n(P, N) :- patient(P), N = count : { given(P, _, _, _) }.
""")
    text = "\n".join(f"weight(p{i}, {50 + i}). given(p{i}, tocilizumab, {i}, 1)." for i in range(23))
    facts = load_facts(rules, text=text)
    one = evaluate(rules, facts, chunk_size=1000).tuples("n")
    many = evaluate(rules, facts, chunk_size=4).tuples("n")
    assert one == many and len(one) == 23


def test_state_does_not_leak_between_rule_sets() -> None:
    first = load_rules(text=DECLS + '.decl f(p: id) output "f"\nf(P) :- temp(P, T), T > 38.\n')
    second = load_rules(text=DECLS + '.decl f(p: id) output "f"\nf(P) :- temp(P, T), T > 40.\n')
    facts_text = "temp(a, 39)."
    assert evaluate(first, load_facts(first, text=facts_text)).tuples("f") == {("a",)}
    assert evaluate(second, load_facts(second, text=facts_text)).tuples("f") == set()
    assert evaluate(first, load_facts(first, text=facts_text)).tuples("f") == {("a",)}


def test_fact_file_forms_json_and_csv(tmp_path) -> None:
    rules = load_rules(text=DECLS)
    (tmp_path / "a.json").write_text('[{"predicate": "weight", "args": ["p1", 72]},\n'
                                     ' {"predicate": "oxygen", "args": ["p1", "facemask", 5.5]}]')
    (tmp_path / "b.csv").write_text("predicate,arg1,arg2,arg3\nweight,p2,80,\noxygen,p2,nasal_cannula,4\n")
    facts = load_facts(rules, [tmp_path])
    model = evaluate(rules, facts)
    assert model.tuples("weight") == {("p1", 72), ("p2", 80)}
    assert model.tuples("oxygen") == {("p1", "facemask", 5.5), ("p2", "nasal_cannula", 4)}


def test_unknown_setting_override_is_rejected() -> None:
    rules = load_rules(text=DECLS)
    with pytest.raises(ReasonerError, match="unknown setting"):
        evaluate(rules, load_facts(rules, text=""), settings={"nope": 1})


def test_names_that_begin_with_a_keyword_are_plain_names() -> None:
    rules = """
.decl max_dose(p: id, mg: number) output "m"
.decl count_of(p: id, n: number) output "c"
max_dose(P, min_w) :- weight(P, min_w).
count_of(P, N) :- weight(P, _), N = count : { given(P, _, _, _) }.
"""
    with pytest.raises(ReasonerError):  # min_w is a constant, not a number: a type error, not a parse error
        run(rules, "weight(a, 70).", "max_dose")
    rules = rules.replace("max_dose(P, min_w) :- weight(P, min_w).", "max_dose(P, W) :- weight(P, W), max_w(W).")
    rules = '.decl max_w(w: number) input "x"\n' + rules
    assert run(rules, "weight(a, 70). max_w(70).", "max_dose") == {("a", 70)}
    assert run(rules, "weight(a, 70). max_w(70).", "count_of") == {("a", 0)}


def test_rule_files_parse_in_many_threads_at_once() -> None:
    """The parser holds the file it is parsing: each thread has its own, so concurrent
    loads never mix up files, spans or variable names (issue 18: a shared lark
    transformer reset on every parse)."""
    from concurrent.futures import ThreadPoolExecutor

    from reasoner.language.parse import parse_program

    def load(i: int) -> tuple[str, int, str]:
        text = "\n" * (i % 7) + f"p{i}(X) :- q(X, _), r(_). % {i}\n"
        [rule] = parse_program(text, f"file{i}.dl")
        return rule.span.file, rule.span.line, " ".join(v.name for a in rule.body for v in a.args)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(load, range(400)))
    assert results == [(f"file{i}.dl", i % 7 + 1, "X _#1 _#2") for i in range(400)]
