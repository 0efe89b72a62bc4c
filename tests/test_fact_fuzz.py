"""Differential fuzz test of fact reading: one cohort, four forms, both engines.

Hypothesis builds small cohorts in the CRS vocabulary, with hostile cells mixed in (odd
numbers, control characters, empty ids, second facts of `one` predicates, unicode), and
writes each as `.facts`, JSON, long CSV (LF, CRLF or both mixed) and long Parquet. Then:

- every form is read by every path that reads it — pyDatalog whole (`load_facts`),
  pyDatalog streamed in two passes (`validate_stream`, `stream_chunks`), DuckDB over the
  Python reader's facts, DuckDB reading the CSV or Parquet itself in SQL
  (`evaluate_csv_partitioned`) — and all must give the same model, or the same error
  codes at the same places (DuckDB shows up to three examples of a kind, so its places
  are a subset of the Python reader's);
- the four forms must agree: all are read, to the same model, or all are refused (the
  codes may differ: `1e2` is a syntax error in `.facts`, a bad number in CSV).

Goals are fuzzed too: a goal naming a patient as written (`17`, `"p 1"`, a hostile
string, a `$setting`, arithmetic) is refused with a located error or answers exactly
what the facts of that patient say, on both engines.

Deterministic (`derandomize=True`) and bounded: a few dozen cohorts, under a minute.
docs/language.md ("Facts") states the rules checked here.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reasoner import check_goal, load_facts, load_rules
from reasoner.engines.pydatalog import Engine
from reasoner.language.errors import ReasonerError
from reasoner.io.facts import stream_chunks, validate_stream
from reasoner.engines.model import Model
from reasoner.engines.sql import DuckDBEngine
from reasoner.language.values import NUMBER_PATTERN, read_number

RULES = load_rules()
PY_ENGINE = Engine(RULES)
SQL_ENGINE = DuckDBEngine(RULES)
COMPARED = sorted([p for p, d in RULES.decls.items() if d.role == "input"]
                  + ["crs_grade", "hypoxia_grade", "hypotension_grade", "recommend", "dose_mg", "warning",
                     "contraindicated", "conflict"])
WIDTH = 4  # arguments of the widest input predicate the generator uses

# ----------------------------------------------------------------------------- cells
IDS = ["p1", "p2", "q7", "17", "007", "17.5", "-3", "pt 42", "pé", "Ω-9", 'p"1', "p\\1", "p,1", "P1"]
HOSTILE_IDS = ["p\n1", "p\r1", "p\x001", "", "p\u20281", "p\t1", "p\x851", "p\x1b[2J"]
ODD_NUMBERS = ["7_2", "１２", "1e2", "+72", "72.", ".5", "inf", "nan", "0x10", "-0", "9" * 400, "072",
               "72.000", "-5", "500", "7 2", "", "abc"]


def mostly(good: st.SearchStrategy, odd: st.SearchStrategy, hostile: bool) -> st.SearchStrategy:
    """`good`; in a hostile cohort, about three times in ten `odd`."""
    return st.integers(0, 9).flatmap(lambda n: odd if n in (3, 5, 7) else good) if hostile else good


def number_cell(low: float, high: float, hostile: bool) -> st.SearchStrategy[str]:
    good = st.one_of(st.integers(int(low), int(high)).map(str),
                     st.decimals(low, high, places=2, allow_nan=False, allow_infinity=False).map(str))
    return mostly(good, st.sampled_from(ODD_NUMBERS), hostile)


def fact_strategy(pred: str, hostile: bool) -> st.SearchStrategy[tuple[str, list[str]]]:
    cells = []
    for spec in RULES.decls[pred].args[1:]:
        if spec.type == "number":
            cells.append(number_cell(spec.low, spec.high, hostile))
        elif spec.type == "integer":
            cells.append(mostly(st.integers(0, 4).map(str), st.sampled_from(["2.5", "3.0", "5", "x"]), hostile))
        elif spec.type in RULES.types:
            values = list(RULES.types[spec.type].values)
            cells.append(mostly(st.sampled_from(values), st.sampled_from(
                ["nasal", values[0].upper(), values[0] + "\n", ""]), hostile))
        else:
            cells.append(mostly(st.sampled_from(["car_t_efficacy_concern", "other", "pt choice"]),
                                st.sampled_from(["x\ny", "", "a\x00"]), hostile))
    return st.tuples(st.just(pred), st.tuples(*cells).map(list))


PREDS = ["weight_kg", "temperature_c", "crs_onset", "oxygen", "hypotension", "vasopressor", "icans_grade",
         "given", "allergy", "spo2", "withheld"]
ONE_PREDS = [p for p in PREDS if RULES.decls[p].single]


@st.composite
def cohorts(draw) -> list[tuple[str, list[str]]]:
    """Facts as (predicate, cells as text), grouped by patient; half the cohorts hostile
    (odd cells, second facts of `one` predicates), half as a clinic would write them."""
    hostile = draw(st.booleans())
    ids = draw(st.lists(mostly(st.sampled_from(IDS), st.sampled_from(HOSTILE_IDS), hostile),
                        min_size=1, max_size=3, unique=True))
    rows = []
    for patient in ids:
        facts = draw(st.lists(st.one_of(*[fact_strategy(p, hostile) for p in PREDS]), min_size=1, max_size=4))
        if not hostile:  # one weight per patient
            seen: set = set()
            facts = [f for f in facts if f[0] not in ONE_PREDS or not (f[0] in seen or seen.add(f[0]))]
        if hostile and draw(st.integers(0, 4)) == 0:  # a second fact of a `one` predicate, the same or another value
            pred = draw(st.sampled_from(ONE_PREDS))
            facts += draw(st.lists(fact_strategy(pred, hostile), min_size=2, max_size=2))
        rows += [(pred, [patient] + cells) for pred, cells in facts]
    return rows


# ----------------------------------------------------------------------------- the four forms
_IDENT = re.compile(r"[a-z][A-Za-z0-9_]*")
_ONE_SYNTAX = re.compile(NUMBER_PATTERN)
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _numeric(pred: str, i: int) -> bool:
    return RULES.decls[pred].args[i].type in ("number", "integer")


def _facts_value(text: str, numeric: bool) -> str:
    """A cell as a `.facts` constant, written as a person would write that value."""
    if _IDENT.fullmatch(text) or _ONE_SYNTAX.fullmatch(text):
        return text
    if numeric and re.fullmatch(r"-?[0-9]+\.?[0-9]*[eE]?[0-9]*", text):
        return text  # 1e2, 72.: refused by the grammar, as the same cell is refused elsewhere
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _json_value(text: str, numeric: bool) -> str:
    """A cell as a JSON value: numbers as JSON numbers (in JSON's own spelling, as a JSON
    writer spells the value: 072 is 72), the rest as strings."""
    if _ONE_SYNTAX.fullmatch(text) and (numeric or _JSON_NUMBER.fullmatch(text)):
        if numeric:
            sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
            whole, _, fraction = digits.partition(".")
            return sign + (whole.lstrip("0") or "0") + (f".{fraction}" if fraction else "")
        return text
    if numeric and _JSON_NUMBER.fullmatch(text):
        return text  # 1e2: a JSON number, refused by the one number syntax
    return json.dumps(text, ensure_ascii=False)


def write_forms(rows: list[tuple[str, list[str]]], folder: Path, newline: str) -> dict[str, Path]:
    paths = {form: folder / f"cohort.{form}" for form in ("facts", "json", "csv", "parquet")}
    lines = [f"{pred}({', '.join(_facts_value(c, _numeric(pred, i)) for i, c in enumerate(cells))})."
             for pred, cells in rows]
    paths["facts"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = ['{"predicate": "%s", "args": [%s]}' % (pred, ", ".join(_json_value(c, _numeric(pred, i))
                                                                  for i, c in enumerate(cells)))
             for pred, cells in rows]
    paths["json"].write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
    with open(paths["csv"], "w", encoding="utf-8", newline="") as handle:
        header = ["predicate"] + [f"arg{i}" for i in range(1, WIDTH + 1)]
        for n, row in enumerate([header] + [[pred] + cells + [""] * (WIDTH - len(cells)) for pred, cells in rows]):
            ending = newline if newline != "mixed" else ("\r\n" if n % 2 else "\n")
            csv.writer(handle, lineterminator=ending).writerow(row)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (seq INTEGER, predicate VARCHAR, " + ", ".join(f"arg{i} VARCHAR" for i in
                                                                                range(1, WIDTH + 1)) + ")")
    for n, (pred, cells) in enumerate(rows):
        con.execute(f"INSERT INTO t VALUES ({', '.join(['?'] * (WIDTH + 2))})",
                    [n, pred] + cells + [None] * (WIDTH - len(cells)))
    con.execute(f"COPY (SELECT * EXCLUDE (seq) FROM t ORDER BY seq) TO '{paths['parquet']}' (FORMAT parquet)")
    con.close()
    return paths


# ----------------------------------------------------------------------------- reading paths
def outcome(read) -> tuple:
    """("ok", {pred: rows}) or ("error", {(code, line)}) of one way of reading."""
    try:
        tables = read()
    except ReasonerError as exc:
        return "error", {(d.code, d.span.line) for d in exc.diagnostics}
    return "ok", {pred: frozenset(tables.get(pred, ())) for pred in COMPARED}


def pydatalog_whole(path: Path) -> dict:
    return PY_ENGINE.evaluate(load_facts(RULES, [path]).facts).facts


def pydatalog_streamed(path: Path) -> dict:
    validate_stream(RULES, [path])
    model = Model()
    for chunk in stream_chunks(RULES, [path], 1):
        model.merge(PY_ENGINE.evaluate(chunk))
    return model.facts


def duckdb_over_the_loader(path: Path) -> dict:
    return SQL_ENGINE.evaluate(load_facts(RULES, [path]).facts, preds=COMPARED).facts


def duckdb_reading_itself(path: Path) -> dict:
    tables: dict = {pred: set() for pred in COMPARED}
    for result in SQL_ENGINE.evaluate_csv_partitioned([path], patients=2):
        for pred in COMPARED:
            tables[pred] |= result.tuples(pred)
    return tables


READERS = {
    "facts": [pydatalog_whole, duckdb_over_the_loader],
    "json": [pydatalog_whole],
    "csv": [pydatalog_whole, pydatalog_streamed, duckdb_reading_itself],
    "parquet": [pydatalog_whole, pydatalog_streamed, duckdb_reading_itself],
}


def same_reading(outcomes: dict[str, tuple]) -> None:
    """Every way of reading one file: the same model, or the same codes, with DuckDB's
    places among the Python reader's."""
    reference = outcomes["pydatalog_whole"]
    for name, got in outcomes.items():
        assert got[0] == reference[0], (name, got, reference)
        if got[0] == "ok":
            assert got == reference, name
        elif name.startswith("duckdb_reading"):
            assert {c for c, _ in got[1]} == {c for c, _ in reference[1]}, (name, got, reference)
            assert got[1] <= reference[1], (name, got, reference)
        else:
            assert got == reference, (name, got, reference)


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cohorts(), st.sampled_from(["\n", "\r\n", "mixed"]))
def test_every_form_and_engine_reads_a_cohort_alike(tmp_path_factory, rows, newline) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    paths = write_forms(rows, folder, newline)
    by_form = {}
    for form, path in paths.items():
        outcomes = {read.__name__: outcome(lambda: read(path)) for read in READERS[form]}
        same_reading(outcomes)
        by_form[form] = outcomes["pydatalog_whole"]
    verdicts = {form: got[0] for form, got in by_form.items()}
    assert len(set(verdicts.values())) == 1, (verdicts, by_form, rows)
    models = [got[1] for got in by_form.values() if got[0] == "ok"]
    assert all(m == models[0] for m in models), rows


# ----------------------------------------------------------------------------- goals
GOAL_IDS = st.one_of(st.sampled_from(IDS), st.sampled_from(HOSTILE_IDS),
                     st.sampled_from(["$toci_max_mg", "$nosuch", "1 + 16", "abs(-17)", '"p\\q"', "1e2", "-(3)"]))


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True), GOAL_IDS, st.booleans())
def test_a_goal_names_a_patient_as_a_fact_file_would(tmp_path_factory, ids, asked, raw) -> None:
    """`weight_kg(ID, K)` over a CSV cohort: the weights of the patient whose cell reads
    ID, on both engines, or a located refusal — never a silent wrong answer."""
    folder = tmp_path_factory.mktemp("goal")
    path = folder / "cohort.csv"
    rows = [["predicate", "arg1", "arg2"]] + [["weight_kg", p, str(60 + n)] for n, p in enumerate(ids)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    if asked in IDS or asked in HOSTILE_IDS:  # the id as a .facts file writes it: bare when it can be, or quoted
        escaped = asked.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        written = _facts_value(asked, False) if raw else f'"{escaped}"'
    else:
        written = asked  # a setting, arithmetic, an unknown escape, 1e2
    goal = f"weight_kg({written}, K)"
    try:
        atom = check_goal(RULES, goal)
    except ReasonerError as exc:
        assert all(d.code in ("E001", "E004", "E016") and d.span.line == 1 and d.span.col >= 1
                   for d in exc.diagnostics), (goal, str(exc))
        assert asked not in IDS, (goal, str(exc))  # every id of a fact file can be asked about
        return
    assert asked in IDS or asked == "-(3)", goal  # -(3) is the constant -3: the patient "-3"
    expected = [{"K": 60 + ids.index(atom.args[0].value)}] if atom.args[0].value in ids else []
    if asked in IDS:
        assert atom.args[0].value == asked, goal
    facts = load_facts(RULES, [path]).facts
    assert PY_ENGINE.evaluate(facts).query(atom) == expected, goal
    assert SQL_ENGINE.evaluate(facts, preds=["weight_kg"]).query(atom) == expected, goal


@pytest.mark.parametrize("goal,code", [
    ("crs_grade(p01, 5 + 5)", "E016"), ("crs_grade(p01, $nosuch)", "E016"), ("crs_grade(p01, $toci_max_mg)", "E016"),
    ("crs_grade(p01, 9)", "E005"), ("weight_kg(p01, heavy)", "E004"), ("recommend(p01, tocilizumb)", "E006"),
    ('weight_kg("p\\n1", K)', "E004"), ('weight_kg("p\\q", K)', "E001"), ("weight_kg(17.0, K)", None),
])
def test_goal_arguments_are_checked_like_facts(goal: str, code: str | None) -> None:
    if code is None:
        assert check_goal(RULES, goal).args[0].value == "17.0"  # the id as written, as a CSV cell
        return
    with pytest.raises(ReasonerError) as err:
        check_goal(RULES, goal)
    (first,) = err.value.diagnostics
    assert first.code == code and first.span.line == 1 and first.span.col > 1, str(err.value)


def test_the_number_syntax_is_the_same_in_python_and_in_duckdb() -> None:
    """One pattern, read by Python's `re` and by DuckDB's RE2: the same verdict on every
    odd spelling, and the same value where both take it."""
    con = duckdb.connect()
    for text in ODD_NUMBERS + ["72", "-3", "037", "37.5", "0.0001", "1" * 309, "1" * 308]:
        try:
            python = read_number(text)
        except ValueError:
            python = None
        (sql,) = con.execute(f"SELECT CASE WHEN regexp_full_match($1, '{NUMBER_PATTERN}') AND "
                             "coalesce(isfinite(TRY_CAST($1 AS DOUBLE)), false) THEN TRY_CAST($1 AS DOUBLE) END",
                             [text]).fetchone()
        assert (python is None) == (sql is None), text
        if python is not None:
            assert float(python) == sql, text


def test_cells_are_trimmed_and_text_is_checked_alike_for_every_code_point() -> None:
    """DuckDB's `trim()` and the Python reader's `strip(CELL_BLANKS)`, and the control
    characters of `SQL_BAD_CHARS` (RE2) and of the Python check, agree on every character."""
    from reasoner.language.values import CELL_BLANKS, SQL_BAD_CHARS, text_problem
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    con = duckdb.connect()
    rows = con.execute(f"SELECT trim(s) = 'a', regexp_matches(s, '{SQL_BAD_CHARS}') FROM (SELECT unnest($1) AS s)",
                       [[c + "a" + c for c in chars]]).fetchall()
    for c, (trimmed, bad) in zip(chars, rows):
        assert trimmed == ((c + "a" + c).strip(CELL_BLANKS) == "a"), hex(ord(c))
        assert bad == ("control" in (text_problem("a" + c + "a", "id") or "")
                       or "separator" in (text_problem("a" + c + "a", "id") or "")), hex(ord(c))
