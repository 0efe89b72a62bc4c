"""Recommendation rows for a cohort, worked out in DuckDB.

`recommend --engine duckdb --format csv|parquet` over a large cohort: building
`report.PatientReport` objects in Python cost about 0.3 ms a patient, several times
DuckDB's own evaluation. Here the joins, grouping and ordering of a partition's report
run in SQL over its tables and firing tables; Python only names the rules and formats
the values, each distinct rule combination and value once. The rows are the bytes
`render.recommend.csv_rows(report.build_reports(...))` gives for the same partition
(tests/test_cohort.py compares them on generated cohorts). For a Parquet report,
`sql_parquet` hands the same rows, typed, to the Parquet writer as an Arrow table: the
values the CSV text reads back as (tests/test_duckdb_parquet.py compares them).

Natural order (p2 before p10) is Python's own `model.value_key`, applied once per distinct
symbol and joined back as sortable text; patients get their place from it too, except ids
of one text and one number (c0000017), which SQL puts in the same order by the number.

The rules behind a fact are a bit mask (HUGEINT): bit b for the b-th rule, in rule order,
whose head is the fact's predicate; masks group, join and unite (a choice group's rules)
as numbers, and Python names each distinct mask once.

Limits: only the CRS report vocabulary with symbols for actions, reasons, warning codes
and dose frequencies and numbers for grades and doses, and at most 127 rules concluding
each of indicated, contraindicated and warning (`sql_csv` returns None otherwise, and
the caller builds the report in Python).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

from reasoner.analysis.program import RuleSet
from reasoner.domains.crs.report import SUPPORTED, RuleNames
from reasoner.engines.model import value_key
from reasoner.engines.sql_result import SQLResult
from reasoner.io.sqltext import KEY, NUM, quote_ident, sql_string, to_python
from reasoner.language.syntax import STRENGTHS, format_value

# what each report predicate's columns must be for the SQL below (else: Python report)
_SHAPE = {"crs_grade": "sn", "hypoxia_grade": "sn", "hypotension_grade": "sn", "recommend": "ss",
          "contraindicated": "sss", "conflict": "sss", "warning": "ss", "dose_mg": "ssn", "dose_frequency": "sss"}


def sql_csv(rules: RuleSet, result: SQLResult) -> str | None:
    """The CSV text (without header) of this partition's reports, or None when the rule
    set's report predicates are typed otherwise than the CRS vocabulary.

    One pipeline of temporary tables, each step a function below: the rules behind each
    supported fact (`_support_<pred>`), the section, strength and choice group of each
    combination of them (`_section`), the recommendations and choice groups (`_rec`,
    `_grp`), each patient's grades (`_graded`), then the CSV lines, one per report
    item (the query `_items`)."""
    made = _report_tables(rules, result)
    if made is None:
        return None
    temporaries, items = made
    lines = result.con.execute(_rows_query("concat_ws(',', " + ", ".join(
        f"coalesce({f}, {chr(39) * 2})" for f in _CSV_FIELDS) + ")", items)).fetchall()
    _drop(result.con, temporaries)
    return "\n".join([line for (line,) in lines]) + "\n" if lines else ""


def sql_parquet(rules: RuleSet, result: SQLResult, sink: Any, turn: Any = contextlib.nullcontext()) -> bool:
    """This partition's report rows, in report order, handed to `sink.append` as one Arrow
    table (`render.recommend.ParquetReport` writes them to the Parquet file as they come),
    typed as `render.recommend.csv_to_parquet` reads `sql_csv`'s text: each field the
    value its CSV field reads back as, an empty one NULL, grades and doses cast from their
    text as the CSV reader casts them. False when the rule set's report predicates are
    typed otherwise than the CRS vocabulary (nothing appended).

    The rows are made first, then appended inside `with turn:` (partitions evaluated side
    by side append in partition order: `DuckDBEngine.map_partitions`). Straight from the
    query to the file: at 1,000,000 patients, keeping the rows in a DuckDB table and
    copying that to Parquet at the end cost a third more per partition and 3-4 s at the end."""
    made = _report_tables(rules, result)
    if made is None:
        return False
    temporaries, items = made
    columns = ", ".join(f"{expr} AS {name}" for expr, name in zip(_PARQUET_VALUES, CSV_COLUMNS))
    rows = result.con.sql(_rows_query(columns, items)).to_arrow_table()  # in ORDER BY's order
    _drop(result.con, temporaries)
    with turn:
        sink.append(rows)
    return True


CSV_COLUMNS = ["patient", "crs_grade", "hypoxia_grade", "hypotension_grade", "kind", "action", "reason",
               "dose_mg", "frequency", "section", "rules", "sources", "strength", "choice"]
"""The report's columns (render.recommend.CSV_COLUMNS, which tests compare with this)."""

_MASK_BITS = 127
"""Rules a HUGEINT mask can stand for (its top bit is its sign)."""

_KIND_SUPPORT = {1: ("warning", None), 2: ("indicated", None), 3: ("contraindicated", None),
                 4: ("indicated", "contraindicated")}
"""An item's kind → the predicates whose rules its `combo` and `combo2` masks stand for."""

REPORT_TYPES = {c: "INTEGER" if c.endswith("grade") else "DOUBLE" if c == "dose_mg" else "VARCHAR" for c in CSV_COLUMNS}
"""The Parquet report's column types: grades whole numbers, doses numbers, the rest text."""


def _report_tables(rules: RuleSet, result: SQLResult) -> tuple[list[str], str] | None:
    """The temporary tables the report's rows are selected from (their names, to drop)
    and the query of the report's items over them (`_items`), or None when the report
    predicates are typed otherwise than the CRS vocabulary."""
    eng = result.engine
    for pred, shape in _SHAPE.items():
        if pred in eng.arity and "".join("n" if k == NUM else "s" for k in eng.kinds[pred]) != shape:
            return None
        # patients as numbers: in every report predicate, or the rows would mix numbers and ids
        if pred in eng.arity and eng.patient_coded and eng.kinds[pred][0] != KEY:
            return None
    bits = {pred: [i for i, rule in enumerate(rules.rules) if rule.head is not None and rule.head.pred == pred]
            for pred in SUPPORTED}
    if any(len(rules_of) > _MASK_BITS for rules_of in bits.values()):
        return None
    con = result.con

    def table(pred: str) -> str | None:
        return quote_ident(eng.table(pred)) if pred in eng.arity else None

    support = _support_tables(con, bits, result, table)
    _natural_table(con, table)
    names = RuleNames(rules)
    no_section_rank = _section_table(con, names, support, bits)
    _recommendation_tables(con, table, support, no_section_rank)
    _graded_table(con, result, table)
    items = _items(table, support)
    _naming_tables(con, names, result.engine.patient_coded, bits, table, support)
    return ["_graded", "_number", "_named", "_section", "_rec", "_grp", "_patient_order", "_nat",
            *support.values()], items


def _drop(con, temporaries: list[str]) -> None:
    for temporary in temporaries:
        con.execute(f"DROP TABLE {temporary}")


def _support_tables(con, bits: dict[str, list[int]], result: SQLResult,
                    table: Callable[[str], str | None]) -> dict[str, str]:
    """Predicate → the table of the rules behind each of its facts (`combo`: the mask of
    them, bit b for the rule `bits[pred][b]`), for the indicated, contraindicated and
    warning facts."""
    eng = result.engine
    present = result.firing_tables()
    # the rules behind each indicated, contraindicated and warning fact, in rule order
    support: dict[str, str] = {}
    for pred in SUPPORTED:
        arity = eng.arity.get(pred)
        if arity is None:
            continue
        cols = ", ".join(f"a{i}" for i in range(arity))
        live = [(b, i) for b, i in enumerate(bits[pred]) if f"_firing_{i}" in present]
        name = f"_support_{pred}"
        if live:
            # a mask, not the sorted list of rule numbers as text: half the time, and cheaper joins
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {_masks(eng, live, arity)}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols}, CAST(NULL AS HUGEINT) AS combo "
                        f"FROM {table(pred)} WHERE false")
        support[pred] = name
    return support


def _masks(eng: Any, live: list[tuple[int, int]], arity: int) -> str:
    """SELECT of each fact concluded by the rules `live` ((bit, rule index)) and the mask
    of those that concluded it (`a0.., combo`), from their firing tables: every firing,
    duplicates too, as `bit_or` does not count them (a DISTINCT per rule cost a fifth
    more). Grouped per constant where every rule sets a column to one (`indicated(P,
    tocilizumab)`): facts of different constants differ, and a group is grouped by the
    patient alone, not by the patient and a text (0.13 -> 0.07 s for indicated, 100,000
    patients)."""
    heads = [eng.rule_firings[i].head for _, i in live]
    common = [j for j in range(arity) if all(h[j][0] == "const" for h in heads)]
    rest = [j for j in range(arity) if j not in common]
    if not rest or any(len({isinstance(h[j][1], str) for h in heads}) > 1 for j in common):
        common, rest = [], list(range(arity))  # nothing to group by, or texts and numbers meet
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for (b, i), head in zip(live, heads):
        groups.setdefault(tuple(head[j][1] for j in common), []).append((b, i))
    selects = []
    for members in groups.values():
        firings = [eng.rule_firings[i] for _, i in members]
        parts = " UNION ALL ".join(
            f"SELECT {', '.join(f.conclusion_columns[j] + f' AS a{j}' for j in rest)}, "
            f"CAST(1 AS HUGEINT) << {b} AS bit FROM _firing_{i}" for (b, i), f in zip(members, firings))
        columns = ", ".join(f"{firings[0].conclusion_columns[j]} AS a{j}" if j in common else f"a{j}"
                            for j in range(arity))
        selects.append(f"SELECT {columns}, bit_or(bit) AS combo FROM ({parts}) AS u "
                       f"GROUP BY {', '.join(f'a{j}' for j in rest)}")
    return " UNION ALL ".join(selects)


def _natural_table(con, table: Callable[[str], str | None]) -> None:
    """`_nat`: the place in natural order (`model.value_key`, as the Python report sorts)
    of every symbol the report sorts by (frequencies, warning codes, actions and reasons
    of contraindications and conflicts), as zero-padded text that sorts bytewise. They
    are few distinct values in many rows: sorted once, in Python."""
    columns = [("dose_frequency", 2), ("warning", 1), ("contraindicated", 1), ("contraindicated", 2),
               ("conflict", 1), ("conflict", 2)]
    values = " UNION ".join(f"SELECT a{i} AS v FROM {table(pred)}" for pred, i in columns if table(pred) is not None)
    symbols = [v for (v,) in con.execute(values).fetchall()] if values else []
    _table(con, "_nat", "v VARCHAR, key VARCHAR", [symbols, _natural_places(symbols)])


def _natural_places(values: list[str]) -> list[str]:
    """Each value's place in `model.value_key` order, as text that sorts bytewise."""
    places = [""] * len(values)
    for place, i in enumerate(sorted(range(len(values)), key=lambda i: value_key(values[i]))):
        places[i] = f"{place:09d}"
    return places


def _section_table(con, names: RuleNames, support: dict[str, str], bits: dict[str, list[int]]) -> int:
    """`_section`: the guideline section (and its rank), strength and choice group of each
    combination of rules behind an indicated fact. Returns the rank of no section."""
    combos = [c for (c,) in con.execute(f"SELECT DISTINCT combo FROM {support['indicated']} "
                                        "WHERE combo IS NOT NULL").fetchall()]
    indices = [_indices(c, bits["indicated"]) for c in combos]
    sections = [names.section(rules) for rules in indices]
    strengths = [names.strength(rules) for rules in indices]
    _table(con, "_section", "combo HUGEINT, section VARCHAR, rank INTEGER, strength VARCHAR, srank INTEGER, "
           "choice VARCHAR",
           [[str(c) for c in combos], sections, [names.rank(title) for title in sections], strengths,
            [None if s is None else STRENGTHS.index(s) for s in strengths],
            [names.choice(rules) for rules in indices]])
    return names.rank("")


def _recommendation_tables(con, table: Callable[[str], str | None], support: dict[str, str],
                           no_section_rank: int) -> None:
    """`_rec`: each recommendation with its rules, section, strength, dose and frequency;
    `_grp`: each choice group of a patient."""
    dose = f"(SELECT a0, a1, max(a2) AS mg FROM {table('dose_mg')} GROUP BY a0, a1)" if table("dose_mg") else \
        "(SELECT CAST(NULL AS VARCHAR) AS a0, CAST(NULL AS VARCHAR) AS a1, CAST(NULL AS DOUBLE) AS mg WHERE false)"
    # string_agg(a2, '; ' ORDER BY natural order), as a list sorted per group: [key, a2]
    # lists compare as the ORDER BY does, without an ordered aggregate's per-group sort
    freq = (f"(SELECT f.a0, f.a1, array_to_string(list_transform(list_sort(list([n.key, f.a2])), lambda x: x[2]), "
            f"'; ') AS f FROM {table('dose_frequency')} AS f JOIN _nat AS n ON n.v = f.a2 "
            "GROUP BY f.a0, f.a1)") if table("dose_frequency") else \
        "(SELECT CAST(NULL AS VARCHAR) AS a0, CAST(NULL AS VARCHAR) AS a1, CAST(NULL AS VARCHAR) AS f WHERE false)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rec AS SELECT r.a0 AS p, r.a1 AS action, s.combo, "
        f"coalesce(sec.rank, {no_section_rank}) AS rank, coalesce(sec.section, '') AS section, sec.strength, "
        f"sec.srank, sec.choice, d.mg, fr.f AS freq FROM {table('recommend')} AS r "
        f"LEFT JOIN {support['indicated']} AS s ON s.a0 = r.a0 AND s.a1 = r.a1 "
        f"LEFT JOIN _section AS sec ON sec.combo = s.combo "
        f"LEFT JOIN {dose} AS d ON d.a0 = r.a0 AND d.a1 = r.a1 "
        f"LEFT JOIN {freq} AS fr ON fr.a0 = r.a0 AND fr.a1 = r.a1")
    # a choice group is one item ("one of: a, b"), in the section of its options ranked
    # last, as strong as its strongest option, behind the union of their rules
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _grp AS SELECT p, choice, 'one of: ' || string_agg(action, ', ' ORDER BY action) "
        "AS label, max(rank) AS rank, arg_max(section, rank) AS section, min(srank) AS srank, "
        "bit_or(combo) AS combo FROM _rec WHERE choice IS NOT NULL GROUP BY p, choice")


def _graded_table(con, result: SQLResult, table: Callable[[str], str | None]) -> None:
    """`_graded`: each patient of the report (one with a grade, a recommendation, a
    contraindication, a conflict, a warning or a `patient` fact) and its grades."""
    eng = result.engine
    patients = " UNION ".join(f"SELECT a0 AS p FROM {table(p)}" for p in
                              ("crs_grade", "recommend", "contraindicated", "conflict", "warning", "patient")
                              if table(p) is not None and eng.arity[p] >= 1)

    def grade(pred: str) -> str:
        return f"(SELECT a0, min(a1) AS g FROM {table(pred)} GROUP BY a0)" if table(pred) else \
            "(SELECT CAST(NULL AS VARCHAR) AS a0, CAST(NULL AS DOUBLE) AS g WHERE false)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _graded AS SELECT pts.p, g.g AS crs, h.g AS hypoxia, "
                f"t.g AS hypotension FROM ({patients}) AS pts "
                f"LEFT JOIN {grade('crs_grade')} AS g ON g.a0 = pts.p "
                f"LEFT JOIN {grade('hypoxia_grade')} AS h ON h.a0 = pts.p "
                f"LEFT JOIN {grade('hypotension_grade')} AS t ON t.a0 = pts.p")


def _items(table: Callable[[str], str | None], support: dict[str, str]) -> str:
    """The query of the report's lines (`_items`): one row per grade line (a patient),
    warning, recommendation, choice group and its options, contraindication and conflict,
    with its sort keys. A query the rows are selected from, not a table: writing its
    743,000 rows a partition of 100,000 patients to a table and reading them back cost
    a quarter of the report."""
    strength_of = "CASE " + " ".join(f"WHEN g.srank = {i} THEN '{s}'" for i, s in enumerate(STRENGTHS)) + " END"
    blank = "CAST(NULL AS VARCHAR)"
    # kind, kname, rank, k1..k4 (sort keys), action, reason, mg, freq, section, combo, combo2, strength, choice
    items = [f"SELECT p, 0 AS kind, 'grade' AS kname, 0 AS rank, {blank} AS k1, {blank} AS k2, {blank} AS k3, "
             f"{blank} AS k4, {blank} AS action, {blank} AS reason, CAST(NULL AS DOUBLE) AS mg, {blank} AS freq, "
             f"{blank} AS section, CAST(NULL AS HUGEINT) AS combo, CAST(NULL AS HUGEINT) AS combo2, "
             f"{blank} AS strength, {blank} AS choice FROM _graded"]
    if "warning" in support:
        items.append(
            f"SELECT w.a0, 1, 'warning', 0, n.key, w.a1, NULL, NULL, w.a1, NULL, NULL, NULL, '', s.combo, "
            f"NULL, NULL, NULL FROM {table('warning')} AS w JOIN _nat AS n ON n.v = w.a1 "
            f"LEFT JOIN {support['warning']} AS s ON s.a0 = w.a0 AND s.a1 = w.a1")
    items.append("SELECT p, 2, 'recommend', rank, action, NULL, NULL, NULL, action, NULL, mg, freq, section, combo, "
                 "NULL, strength, NULL FROM _rec WHERE choice IS NULL")
    items.append(f"SELECT p, 2, 'recommend', rank, label, '', NULL, NULL, label, NULL, NULL, NULL, section, combo, "
                 f"NULL, {strength_of}, choice FROM _grp AS g")
    items.append("SELECT r.p, 2, 'option', g.rank, g.label, r.action, NULL, NULL, r.action, NULL, r.mg, r.freq, "
                 "r.section, r.combo, NULL, r.strength, r.choice FROM _rec AS r "
                 "JOIN _grp AS g ON g.p = r.p AND g.choice = r.choice")
    items.append(
        f"SELECT c.a0, 3, 'contraindicated', 0, n1.key, c.a1, n2.key, c.a2, c.a1, c.a2, NULL, NULL, "
        f"'', s.combo, NULL, NULL, NULL FROM {table('contraindicated')} AS c "
        f"JOIN _nat AS n1 ON n1.v = c.a1 JOIN _nat AS n2 ON n2.v = c.a2 "
        f"LEFT JOIN {support['contraindicated']} AS s ON s.a0 = c.a0 AND s.a1 = c.a1 AND s.a2 = c.a2")
    items.append(
        f"SELECT c.a0, 4, 'conflict', 0, n1.key, c.a1, n2.key, c.a2, c.a1, c.a2, NULL, NULL, '', "
        f"c.icombo, c.xcombo, NULL, NULL FROM {_conflicts(table, support)} AS c "
        f"JOIN _nat AS n1 ON n1.v = c.a1 JOIN _nat AS n2 ON n2.v = c.a2")
    return " UNION ALL ".join(items)


def _conflicts(table: Callable[[str], str | None], support: dict[str, str]) -> str:
    """Each conflict with the rules behind its indicated (`i.combo`) and its
    contraindicated fact (`x.combo`)."""
    return (f"(SELECT c.a0, c.a1, c.a2, i.combo AS icombo, x.combo AS xcombo FROM {table('conflict')} AS c "
            f"LEFT JOIN {support['indicated']} AS i ON i.a0 = c.a0 AND i.a1 = c.a1 "
            f"LEFT JOIN {support['contraindicated']} AS x ON x.a0 = c.a0 AND x.a1 = c.a1 AND x.a2 = c.a2)")


def _naming_tables(con, names: RuleNames, coded: bool, bits: dict[str, list[int]],
                   table: Callable[[str], str | None], support: dict[str, str]) -> None:
    """`_number` (each distinct number and its text as Python writes it), `_named` (the
    rules and sources of each combination of rules, worked out in Python once per
    distinct value) and `_patient_order` (each patient's id, place, CSV field and grades; with
    `coded`, the patients are numbers, decoded through `_keys`): joined back in SQL by
    `_rows_query`."""
    numbers = con.execute("SELECT DISTINCT v FROM (SELECT crs AS v FROM _graded UNION SELECT hypoxia FROM _graded "
                          "UNION SELECT hypotension FROM _graded UNION SELECT mg FROM _rec) AS n "
                          "WHERE v IS NOT NULL").fetchall()
    _table(con, "_number", "v DOUBLE, text VARCHAR", [[v for (v,) in numbers],
                                                       [format_value(to_python(v, True)) for (v,) in numbers]])
    # every combination an item of each kind may have (0: no rule), from the tables the items are made of
    combos = ([f"SELECT 1 AS kind, combo, NULL AS combo2 FROM {support['warning']}"] if "warning" in support else []) + [
        "SELECT 2, combo, NULL FROM _rec", "SELECT 2, combo, NULL FROM _grp",
        f"SELECT 3, combo, NULL FROM {support['contraindicated']}",
        f"SELECT 4, icombo, xcombo FROM {_conflicts(table, support)} AS c",
        "SELECT kind, NULL, NULL FROM (VALUES (1), (2), (3)) AS k(kind)"]
    pairs = con.execute(f"SELECT DISTINCT kind, coalesce(combo, 0), coalesce(combo2, 0) FROM "
                        f"({' UNION ALL '.join(combos)}) AS c").fetchall()
    # a conflict's rules: the indicated fact's, then the contraindicated one's
    named = [names.named(_indices(c, bits[_KIND_SUPPORT[k][0]])
                         + (_indices(c2, bits[_KIND_SUPPORT[k][1]]) if _KIND_SUPPORT[k][1] else []))
             for k, c, c2 in pairs]
    _table(con, "_named", "kind INTEGER, combo HUGEINT, combo2 HUGEINT, rules VARCHAR, sources VARCHAR",
           [[k for k, _, _ in pairs], [str(c) for _, c, _ in pairs], [str(c2) for _, _, c2 in pairs],
            [" ".join(n) for n, _ in named], [" ".join(s) for _, s in named]])
    # each patient's place in natural order and CSV field, once per patient; the rows then
    # sort on a number
    _sorted_patients(con, "SELECT g.p, k.key FROM _graded AS g JOIN _keys AS k ON k.code = g.p"
                     if coded else "SELECT p, p AS key FROM _graded", coded)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _patient_order AS SELECT s.p, s.key, {_csv_field('s.key')} AS field, "
                "s.ord, g.crs, g.hypoxia, g.hypotension FROM _patients_sorted AS s JOIN _graded AS g ON g.p = s.p")
    con.execute("DROP TABLE _patients_sorted")


_ONE_NUMBER = r"\P{Nd}*[0-9]{1,18}"
"""RE2: an id whose only digits end it, at most 18 of them (a BIGINT): `model.value_key`
splits it into its text and one number."""
_TEXT_PART = r"^\P{Nd}*"
"""RE2: an id's text before its first digit (a digit of any script, as Python's re counts them)."""


def _sorted_patients(con, patients: str, coded: bool) -> None:
    """`_patients_sorted (p, key, ord)`: the `patients` (`p`, its id `key`) and each one's
    place in `model.value_key` order, the Python report's.

    Ids of one text and one number (c0000017, p12) with the same text sort by the number,
    then the id: value_key's order, in SQL. Any other ids are sorted in Python (value_key
    for 100,000 ids cost 0.35 s a partition; a natural-order key built with regular
    expressions in SQL ten times that)."""
    (others, texts) = con.execute(
        f"SELECT count(*) FILTER (WHERE NOT regexp_full_match(key, {sql_string(_ONE_NUMBER)})), "
        f"count(DISTINCT regexp_extract(key, {sql_string(_TEXT_PART)})) FROM ({patients}) AS pts").fetchone()
    if not others and texts <= 1:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _patients_sorted AS SELECT p, key, CAST(row_number() OVER ("
                    f"ORDER BY CAST(regexp_extract(key, '[0-9]+$') AS BIGINT), key) - 1 AS INTEGER) AS ord "
                    f"FROM ({patients}) AS pts")
        return
    rows = con.execute(patients).fetchall()
    rows.sort(key=lambda row: value_key(row[1]))
    _table(con, "_patients_sorted", f"p {'BIGINT' if coded else 'VARCHAR'}, key VARCHAR, ord INTEGER",
           [[p for p, _ in rows], [key for _, key in rows], list(range(len(rows)))])


def _fields(numbers: str) -> str:
    """The `_number` table with each number's CSV field."""
    return f"(SELECT v, text, {_csv_field('text')} AS field FROM {numbers})"


def _indices(mask: int | None, rules_of: list[int]) -> list[int]:
    """The rule indices, in rule order, of a mask over `rules_of` (bit b: `rules_of[b]`)."""
    return [rule for b, rule in enumerate(rules_of) if mask and mask >> b & 1]


def _table(con, name: str, columns: str, values: list[list]) -> None:
    """A temporary table filled from Python lists, one per column: made into Arrow arrays
    and scanned by DuckDB (bound as list parameters and unnested, 50,000 patients took
    0.1 s a partition)."""
    import pyarrow as pa
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")
    if values[0]:
        view = f"_py{name}"
        con.register(view, pa.table({f"c{i}": pa.array(column) for i, column in enumerate(values)}))
        try:
            con.execute(f"INSERT INTO {name} SELECT * FROM {view}")
        finally:
            con.unregister(view)


def _quoted_by_csv() -> str:
    """The characters that make Python's csv writer (as render.recommend uses it) quote a
    field: ',', '"' and newline, and carriage return in some Python versions."""
    import csv
    import io
    quoted = ""
    for c in (",", '"', "\n", "\r"):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([f"a{c}b"])
        quoted += c if out.getvalue().startswith('"') else ""
    return quoted


_QUOTED = _quoted_by_csv()


def _csv_field(expr: str) -> str:
    """SQL writing a field as Python's csv writer does (NULL as an empty field): `contains`
    per character, several times faster than a regular expression's character class."""
    found = " OR ".join(f"contains({expr}, {'chr(' + str(ord(c)) + ')' if c in chr(10) + chr(13) else repr(c)})"
                        for c in _QUOTED)
    return (f"(CASE WHEN {found} THEN '\"' || replace({expr}, '\"', '\"\"') || '\"' "
            f"ELSE coalesce({expr}, '') END)")


def _rows_query(select: str, items: str) -> str:
    """The report's rows, in report order, each as `select` over the `items` (`i`), the
    patient (`o`: its id is `o.key`), the numbers' texts and fields (`c`, `h`, `t`: grades, `m`: dose) and
    the rules and sources of the item's rule combination (`n`)."""
    return (
        f"SELECT {select} FROM ({items}) AS i JOIN _patient_order AS o ON o.p = i.p "
        f"LEFT JOIN {_fields('_number')} AS c ON c.v = o.crs LEFT JOIN {_fields('_number')} AS h ON h.v = o.hypoxia "
        f"LEFT JOIN {_fields('_number')} AS t ON t.v = o.hypotension "
        f"LEFT JOIN {_fields('_number')} AS m ON m.v = i.mg "
        "LEFT JOIN (SELECT kind, combo, combo2, rules AS raw_rules, sources AS raw_sources, " + _csv_field("rules")
        + " AS rules, " + _csv_field("sources") + " AS sources FROM _named) AS n ON i.kind > 0 "
        "AND n.kind = i.kind AND n.combo = coalesce(i.combo, 0) AND n.combo2 = coalesce(i.combo2, 0) "
        "ORDER BY o.ord, i.kind, i.rank, i.k1, i.k2, i.k3, i.k4")


# Each column's CSV field (NULL: an empty field), in CSV_COLUMNS order.
_CSV_FIELDS = ["o.field", "c.field", "h.field", "t.field", "i.kname", _csv_field("i.action"), _csv_field("i.reason"),
               "m.field", _csv_field("i.freq"), _csv_field("i.section"), "n.rules", "n.sources", "i.strength",
               _csv_field("i.choice")]

# Each column's value as DuckDB's CSV reader gives back that field, typed as
# render.recommend.csv_to_parquet reads it: an empty field NULL, grades and doses cast
# from the text Python wrote (the reader's cast: a grade written 2.5 reads as 3).
_PARQUET_VALUES = ["nullif(o.key, '')", "CAST(c.text AS INTEGER)", "CAST(h.text AS INTEGER)",
                   "CAST(t.text AS INTEGER)", "i.kname", "nullif(i.action, '')", "nullif(i.reason, '')",
                   "CAST(m.text AS DOUBLE)", "nullif(i.freq, '')", "nullif(i.section, '')", "nullif(n.raw_rules, '')",
                   "nullif(n.raw_sources, '')", "nullif(i.strength, '')", "nullif(i.choice, '')"]
