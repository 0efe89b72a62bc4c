"""The SQL of the DuckDB engine as sqlglot trees (reasoner.engines.sqlgen): every statement of the
evaluation program renders for DuckDB, Spark SQL and Trino and parses back with
sqlglot's parser for that dialect; the DuckDB rendering runs; table names and values are
quoted, never pasted (a predicate named `select`, tables named `a"b`, strings with
quotes and backslashes)."""
from __future__ import annotations

import random
import re

import duckdb
import pytest
import sqlglot

from programs import DECLS, MUTUAL_EMPTY, NEGATION_CHAIN, SAME_GENERATION  # noqa: E402  (tests/programs.py)
from test_duckdb import LANGUAGE, RECURSION, _random_program, both  # noqa: E402
from reasoner import load_facts, load_rules
from reasoner.language.errors import ReasonerError
from reasoner.engines.sql import DuckDBEngine
from reasoner.engines.sqlgen import DIALECTS, literal, render

PROGRAMS = {
    "mutual_empty": MUTUAL_EMPTY,
    "negation_chain": NEGATION_CHAIN,
    "same_generation": SAME_GENERATION,
    **{f"language_{name}": DECLS + rules for name, (rules, _) in LANGUAGE.items()},
    **{f"recursion_{name}": text for name, text in RECURSION.items()},
    "sum_min_max": DECLS + '.decl s(p: id, v: number) output "s"\n.decl m(v: number) output "m"\n'
                           "s(P, T) :- patient(P), T = sum M : { given(P, _, M, _) }.\n"
                           "m(V) :- V = max H : { given(_, _, _, H) }.\n"
                           "patient(P) :- weight(P, _).\n",
}


def _programs() -> dict[str, str]:
    out = dict(PROGRAMS)
    rng = random.Random(18)
    for i in range(40):
        text = _random_program(rng)
        try:
            load_rules(text=text)
        except ReasonerError:
            continue
        out[f"random_{i}"] = text
    return out


ALL = _programs()


def _check_parses(engine: DuckDBEngine) -> None:
    counts = {}
    for dialect in DIALECTS:
        statements = engine.sql_statements(dialect)
        counts[dialect] = len(statements)
        for sql in statements:
            try:
                sqlglot.parse_one(sql, read=dialect)
            except sqlglot.errors.ParseError as exc:  # pragma: no cover - the failure's message
                raise AssertionError(f"{dialect} does not parse:\n{sql}\n{exc}") from None
        script = engine.sql_script(dialect)
        assert script.count(";\n") == len(statements)
    assert len(set(counts.values())) == 1, counts


def _run_statements(engine: DuckDBEngine) -> duckdb.DuckDBPyConnection:
    """The DuckDB statements of sql_statements() on an empty database (no input facts)."""
    con = duckdb.connect()
    for sql in engine.sql_statements("duckdb"):
        con.execute(sql)
    return con


def test_the_crs_rules_render_and_parse_in_every_dialect() -> None:
    rules = load_rules()
    for firings in (False, True):
        engine = DuckDBEngine(rules, firings=firings)
        _check_parses(engine)
        _run_statements(engine).close()
    spark = DuckDBEngine(rules).sql_script("spark")
    assert "`crs_grade`" in spark and "FSUM" not in spark and "TEMPORARY" not in spark


@pytest.mark.parametrize("name", sorted(ALL))
def test_programs_render_and_parse_in_every_dialect(name: str) -> None:
    engine = DuckDBEngine(load_rules(text=ALL[name]))
    _check_parses(engine)
    _run_statements(engine).close()


def test_portable_forms() -> None:
    """What Spark and Trino get instead of DuckDB's own forms (docs/duckdb.md)."""
    engine = DuckDBEngine(load_rules(text=PROGRAMS["sum_min_max"] + "\n" + RECURSION["left"]))
    duck, spark, trino = (engine.sql_script(d) for d in DIALECTS)
    assert "FSUM(" in duck and "FSUM" not in spark and "FSUM" not in trino and "SUM(" in spark and "SUM(" in trino
    assert "CREATE TEMPORARY TABLE" in duck and "TEMPORARY" not in spark + trino
    assert 'DELETE FROM "_delta_reach"' in duck
    assert re.search(r"TRUNCATE TABLE\s+`_delta_reach`", spark) and re.search(r'TRUNCATE TABLE\s+"_delta_reach"', trino)
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        engine.sql_script("oracle")


def test_values_are_literals() -> None:
    """Strings with quotes and backslashes, and numbers, come back from DuckDB as written."""
    con = duckdb.connect()
    for value in ["it's", 'a"b', "back\\slash", "\\'", "x';--", "ünï", "tab\tand\nline", "", 0, -0.5, 38,
                  37.95, -1e-07, 1e300, 2 ** 52]:
        (got,) = con.execute(f"SELECT {render(literal(value))}").fetchone()
        assert got == value and type(got) is (str if isinstance(value, str) else float), (value, got)
    for dialect in DIALECTS:
        for value in ["it's", "back\\slash", "x';--"]:
            parsed = sqlglot.parse_one(f"SELECT {render(literal(value), dialect)}", read=dialect)
            assert parsed.expressions[0].name == value, (dialect, value)


def test_a_predicate_named_select() -> None:
    """SQL keywords as predicate names: quoted identifiers, same answers as pyDatalog."""
    rules = load_rules(text="""
.decl select(a: symbol, n: number) input "s"
.decl from(a: symbol) input "f"
.decl where(a: symbol, n: number) output "w"
.decl group(a: symbol) output "g"
.decl order(a: symbol, n: number) output "o"
where(X, N) :- select(X, N), !from(X).
group(X) :- from(X), !where(X, _).
order(X, C) :- from(X), C = count : { select(X, _) }.
""")
    reference, model = both(rules, "select(a, 1). select(b, 2). select(c, 3). from(b). from(d).")
    assert model.tuples("where") == {("a", 1), ("c", 3)}
    assert model.tuples("group") == {("b",), ("d",)}
    assert model.tuples("order") == {("b", 1), ("d", 0)}
    _check_parses(DuckDBEngine(rules))


HOSTILE = {
    "language_quoted_strings_and_facts_in_rules": LANGUAGE["quoted_strings_and_facts_in_rules"][1],
    "language_aggregate_bound_result_and_inner_division": LANGUAGE["aggregate_bound_result_and_inner_division"][1],
    "language_integrity_constraints": LANGUAGE["integrity_constraints"][1],
    "recursion_doubly": "edge(a, b). edge(b, c). edge(c, a). edge(c, d).",
    "same_generation": "parent(c1, p1). parent(c2, p1). parent(g1, c1). parent(g2, c2).",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_table_names(name: str) -> None:
    """Every table renamed to something a careless f-string would break on: the engine's
    answers do not change (the rule language cannot spell these names, but the quoting
    must not depend on that)."""
    rules = load_rules(text=ALL[name])
    facts = load_facts(rules, text=HOSTILE[name]).facts
    plain = DuckDBEngine(rules, firings=True).evaluate(facts)
    engine = DuckDBEngine(rules, firings=True)
    for i, pred in enumerate(sorted(engine._tables)):  # before anything is built or rendered
        engine._tables[pred] = ['a"b', "select", "x'; DROP TABLE t; --", "back\\slash", 'q""'][i % 5] + f" {i}"
    hostile = engine.evaluate(facts)
    assert hostile.facts == plain.facts and sorted(map(repr, hostile.violations)) == sorted(map(repr, plain.violations))
    assert {i: set(rows) for i, rows in hostile.firings.items()} == {i: set(rows) for i, rows in plain.firings.items()}
    assert any(plain.facts.values())
    _check_parses(engine)


def test_firing_tables_are_sets_where_no_distinct_is_asked() -> None:
    """A firing table is the set of its rule's variable rows. DISTINCT is left out where a
    join of sets cannot repeat a row (`may_repeat`): a firing row keeps every variable,
    `_`'s too, so only a rule without variables needs it. Checked in DuckDB over facts
    that would repeat a row if a column were left out."""
    from reasoner.engines.sqlgen import may_repeat
    from reasoner.plan.lowered import plan_of
    rules = load_rules(text=DECLS + '.decl fed(p: id) output "fed"\n.decl fed_with(p: id, d: drug) output "fd"\n'
                       '.decl any_weight() output "w"\n'
                       "fed(P) :- given(P, _, _, _).\n"
                       "fed_with(P, D) :- given(P, D, M, H), weight(P, W).\n"
                       "any_weight() :- weight(_, 70).\n")
    plan = plan_of(rules)
    repeats = {rules.rules[i].head.pred: may_repeat(r) for i, r in plan.rules.items()}
    assert repeats == {"fed": False, "fed_with": False, "any_weight": False}
    facts = load_facts(rules, text="given(p1, tocilizumab, 8, 1).\ngiven(p1, tocilizumab, 8, 9).\n"
                                   "given(p1, dexamethasone, 10, 2).\nweight(p1, 70).\nweight(p2, 70).\n")
    engine = DuckDBEngine(rules, firings=True)
    result = engine.evaluate_tables({"given": [f.args for f in facts.facts if f.pred == "given"],
                                     "weight": [f.args for f in facts.facts if f.pred == "weight"]}, check=False)
    try:
        assert len(result.firing_tables()) == 3
        for table in sorted(result.firing_tables()):
            rows, distinct = result.con.execute(
                f'SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT * FROM "{table}")) FROM "{table}"').fetchone()
            assert rows == distinct, table
        fed = next(i for i, r in enumerate(rules.rules) if r.head is not None and r.head.pred == "fed")
        assert result.con.execute(f"SELECT count(*) FROM _firing_{fed}").fetchone()[0] == 3  # one per dose
        assert result.fired_for()[fed] == 1  # one patient
    finally:
        result.close()


def test_a_rule_whose_head_keeps_every_variable_concludes_without_distinct() -> None:
    """The one rule of a predicate whose head keeps every variable of its firing row
    concludes a set already (a firing table is one), so its INSERT has no DISTINCT; a
    head that leaves a variable out, repeats one or computes one keeps it. Checked on
    facts where a DISTINCT left out wrongly would put a fact in twice."""
    rules = load_rules(text=DECLS + '.decl fed_with(p: id, d: drug) output "fd"\n.decl fed(p: id) output "fed"\n'
                       '.decl twice(p: id, q: id) output "t"\n.decl heavier(p: id, kg: number) output "h"\n'
                       "fed_with(P, D) :- given(P, D, M, H), M > 0, weight(P, W).\n"
                       "fed(P) :- given(P, _, _, _).\n"
                       "twice(P, P) :- weight(P, W).\n"
                       "heavier(P, W + 1) :- weight(P, W), given(P, _, _, _).\n")
    engine = DuckDBEngine(rules, firings=True)
    distinct = {rules.rules[i].head.pred: f.distinct_conclusions for i, f in engine.rule_firings.items()}
    assert distinct == {"fed_with": False, "fed": False, "twice": False, "heavier": False}
    rules = load_rules(text=DECLS + '.decl dosed(p: id, d: drug, mg: number, h: number) output "d"\n'
                       '.decl fed(p: id) output "fed"\n'
                       "dosed(P, D, M, H) :- given(P, D, M, H), weight(P, W), W > 50.\n"
                       "fed(P) :- given(P, _, _, _).\n")
    engine = DuckDBEngine(rules, firings=True)
    distinct = {rules.rules[i].head.pred: f.distinct_conclusions for i, f in engine.rule_firings.items()}
    assert distinct == {"dosed": False, "fed": False}  # dosed leaves W out: two weights, one dose
    rules = load_rules(text=DECLS + '.decl dosed(p: id, d: drug, mg: number, h: number) output "d"\n'
                       "dosed(P, D, M, H) :- given(P, D, M, H), !allergy(P, D).\n")
    engine = DuckDBEngine(rules, firings=True)
    assert [f.distinct_conclusions for f in engine.rule_firings.values()] == [True]
    facts = load_facts(rules, text="given(p1, tocilizumab, 8, 1).\ngiven(p1, tocilizumab, 8, 9).\n"
                                   "given(p2, dexamethasone, 10, 2).\nallergy(p2, dexamethasone).\n")
    result = engine.evaluate_tables({"given": [f.args for f in facts.facts if f.pred == "given"],
                                     "allergy": [f.args for f in facts.facts if f.pred == "allergy"]}, check=False)
    try:
        assert result.count("dosed") == 2 and result.tuples("dosed") == {("p1", "tocilizumab", 8, 1),
                                                                        ("p1", "tocilizumab", 8, 9)}
    finally:
        result.close()


def test_rules_concluding_constants_are_made_distinct_per_constant() -> None:
    """The rules of a predicate that all set a column to a constant are united per
    constant (`_by_constants`): each group made distinct over the other columns, the
    groups put together with UNION ALL, since rows of different constants differ. No
    fact twice, the answers pyDatalog's; a column that is a variable in one rule is no
    such column, and 8 and 8.0 are one constant."""
    from reasoner.engines.sqlgen import _by_constants, _constant_key, number
    program = DECLS + (
        '.decl flag(p: id, level: number, why: symbol) output "f"\n'
        "flag(P, 1, fever) :- temp(P, C), C >= 38.\n"
        "flag(P, 1, fever) :- temp(P, C), C >= 39.\n"
        "flag(P, 2, fever) :- temp(P, C), C >= 40.\n"
        "flag(P, 1, oxygen) :- oxygen(P, D, L), L > 0.\n"
        "flag(P, 1, oxygen) :- oxygen(P, D, L), L >= 6.\n")
    facts = "temp(p1, 40.5).\ntemp(p2, 38).\noxygen(p1, nasal_cannula, 6).\noxygen(p3, facemask, 2).\n"
    rules = load_rules(text=program)
    engine = DuckDBEngine(rules, firings=True)
    with engine.evaluate_tables({"temp": [("p1", 40.5), ("p2", 38.0)],
                                 "oxygen": [("p1", "nasal_cannula", 6.0), ("p3", "facemask", 2.0)]}) as result:
        assert result.count("flag") == len(result.tuples("flag")) == 5
    both(rules, facts)
    # what is grouped: a column constant in every rule, texts and numbers apart
    selects = [sqlglot.parse_one(sql) for sql in ("SELECT v0, 8E0 FROM a", "SELECT v0, 8.0E0 FROM b",
                                                  "SELECT v0, 9E0 FROM c")]
    grouped = _by_constants(selects)
    assert grouped is not None and render(grouped).count("UNION ALL") == 1  # 8 and 8.0 are one group
    assert _constant_key(number(-3)) == ("n", -3.0) and _constant_key(literal("a")) == ("s", "a")
    assert _by_constants([sqlglot.parse_one(sql) for sql in ("SELECT v0, 'a' FROM a", "SELECT v0, v1 FROM b")]) is None
    assert _by_constants([sqlglot.parse_one(sql) for sql in ("SELECT v0, 'a' FROM a", "SELECT v0, 'a' FROM b")]) is None
    assert _by_constants([sqlglot.parse_one(sql) for sql in ("SELECT v0, '8' FROM a", "SELECT v0, 8E0 FROM b")]) is None
