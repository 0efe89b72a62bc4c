"""A second engine: the rule set compiled to SQL and run in-process on DuckDB.

`--engine duckdb` (docs/duckdb.md says how rules map to SQL, and what is verified):

- one table per predicate, columns a0..an-1: VARCHAR for id, symbol and enumeration
  arguments, DOUBLE for number and integer ones (whole results come back as Python ints);
- strata run in `RuleSet.strata` order; each non-recursive predicate is one
  `INSERT INTO p rule1 UNION rule2 ...` (set semantics; `EXCEPT SELECT * FROM p` when p
  may already hold rows);
- a recursive component runs as a semi-naive loop driven from Python: round 0 runs every
  rule over the full tables, later rounds join one recursive atom with the last round's
  new rows (`_delta_p`) until a round adds nothing;
- a rule body becomes one SELECT: positive atoms are joins, constants and repeated
  variables equalities, `X = expr` an expression substituted for X, negation a
  `NOT EXISTS` (positions holding `_` unconstrained), an aggregate a GROUP BY subquery
  over the DISTINCT rows of its body's variables, LEFT JOINed for count and sum (nothing
  counts 0) and inner-joined for min and max (nothing gives no row);
- integrity constraints are SELECTs over their bodies; each row is a violation.

The statements of the evaluation are sqlglot trees built by `reasoner.engines.sqlgen` and rendered
once per engine for DuckDB (`sql_script(dialect=...)` renders them for Spark SQL and Trino
too); the column types come from `reasoner.engines.sql_types`. Compiling the rule set into
them (and the plan as SQL text) is `reasoner.engines.sql_plan.SQLPlan`.

This module owns `DuckDBEngine`: running the plan's strata and fixpoints, loading Python
values and data frames, and partitioning a cohort. Reading and checking CSV and
Parquet fact files is `reasoner.io.duckdb_inputs` (DuckDB SQL text, with the helpers of
`reasoner.io.sqltext`); the evaluated database is `reasoner.engines.sql_result.SQLResult`.

It fills `Model.facts`, `Model.violations` and `Model.settings`, not the firings:
explanations and proofs re-derive with the pyDatalog engine (reasoner.engines.pydatalog).

For large cohorts, `evaluate_csv` and `evaluate_tables` load facts in bulk and return an
`SQLResult` that keeps the answers in DuckDB (count, fetch, export to Parquet or CSV)
instead of building Python sets.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

import duckdb

from reasoner.language.errors import ReasonerError
from reasoner.engines.model import Model
from reasoner.engines.sql_result import SQLResult
from reasoner.engines.sql_plan import (Component, Constraint, Entry, Firings, Make, SQLPlan, check_time_limit,
                                       semi_naive)
from reasoner.engines.sql_types import kind_of
from reasoner.analysis.program import RuleSet, resolve_settings
from reasoner.io.duckdb_inputs import FactFiles
from reasoner.io.sqltext import NUM, SQL_TYPE, count_added, quote_ident, sql_string
from reasoner.engines.sqlgen import render
from reasoner.language.syntax import Fact, Span, Value

_NOSPAN = Span("<duckdb>", 0, 0)
_STATIC_AS_TEXT = 1_000
"""Up to this many facts in the rule set, they are inserted by the statements
`sql_script` shows; more go in bulk (`DuckDBEngine._load_static`)."""


class DuckDBEngine:
    """A rule set compiled to SQL, evaluated on an in-process DuckDB database.

    `evaluate(facts)` returns a `Model` like `reasoner.engines.pydatalog.Engine.evaluate` (facts,
    violations and settings; no firings). Each call runs in a fresh in-memory database.
    """

    def __init__(self, ruleset: RuleSet, settings: dict[str, float] | None = None, *,
                 max_iterations: int = 100_000, time_limit: float | None = None,
                 threads: int | None = None, memory_limit: str | None = None, firings: bool = False,
                 patient_codes: Mapping[str, int] | None = None):
        self.ruleset = ruleset
        self._patient_codes = patient_codes  # a cohort's partitions: see `with_patient_codes`
        self.record_firings = firings  # each rule's firings in `_firing_N` tables, for reports and counts
        self.settings: dict[str, Value] = resolve_settings(ruleset, settings)
        self.max_iterations = max_iterations
        self.time_limit = time_limit
        self.threads = threads
        self.memory_limit = memory_limit
        self._evidence: dict[tuple[str, int], str] = {}
        self._compile()

    # ------------------------------------------------------------------ compiling
    def _compile(self) -> None:
        plan = SQLPlan(self.ruleset, self.settings, self._evidence, self.record_firings, self._patient_codes)
        self._plan = plan
        self._types = plan.types
        self.arity: dict[str, int] = plan.arity
        self.kinds: dict[str, list[str]] = plan.kinds
        self._tables = plan.tables
        self._gen = plan.gen
        self._static = plan.static
        self._constraints = plan.constraints
        self._firings = plan.firings
        self._components = plan.components
        self._rendered: dict[tuple, Any] = {}  # statement → its DuckDB text, rendered once

    def table(self, pred: str) -> str:
        return self._tables[pred]

    def with_patient_codes(self, keyed: Mapping[str, int]) -> "DuckDBEngine | None":
        """This rule set compiled for a cohort's partitions (`sql_partitions`), where a
        patient is a number (BIGINT: joins, groups and DISTINCTs on it are several times
        cheaper than on text): the columns that can only hold patients (`keyed`: input →
        its patient's position) are KEY columns, and a partition's `SQLResult` decodes
        them through its `_keys (code, key)` table. None when no column qualifies."""
        coded = DuckDBEngine(self.ruleset, dict(self.settings), max_iterations=self.max_iterations,
                             time_limit=self.time_limit, threads=self.threads, memory_limit=self.memory_limit,
                             firings=self.record_firings, patient_codes=keyed)
        if not coded._plan.coded:
            return None
        if self._evidence:  # types the facts decided (plain Datalog): the same here
            coded._evidence.update(self._evidence)
            coded._compile()
        return coded

    @property
    def patient_coded(self) -> bool:
        """Whether patients are numbers in this engine's tables (`with_patient_codes`)."""
        return bool(self._plan.coded)

    def coded_variables(self, index: int, names: Sequence[str]) -> list[bool]:
        """Which of rule `index`'s variables hold patient numbers."""
        return self._plan.coded_variables(index, names)

    def inputs(self) -> FactFiles:
        """The input tables, to fill from fact files and check (reasoner.io.duckdb_inputs)."""
        return FactFiles(self.ruleset, self.arity, self.kinds, self._tables)

    @property
    def constraints(self) -> list[Constraint]:
        """The integrity constraints: rule index, variables and SELECT of each."""
        return self._constraints

    @property
    def rule_firings(self) -> dict[int, Firings]:
        """rule index → its firings' SELECT and head (an engine made with `firings=True`)."""
        return self._firings

    def _learn(self, grouped: Mapping[str, Iterable[tuple[Value, ...]]]) -> None:
        """Types of `any` arguments that only the facts decide: recompile when facts bring
        news (plain Datalog programs; declared rule sets never need it)."""
        news: dict[tuple[str, int], str] = {}
        for pred, rows in grouped.items():
            if pred not in self.arity:
                continue
            open_ = [i for i in range(self.arity[pred]) if self._types.kind(pred, i) is None]
            for row in rows if open_ else ():
                for i in open_:
                    kind = kind_of(row[i])
                    if news.setdefault((pred, i), kind) != kind:
                        raise ReasonerError.at(_NOSPAN, f"the DuckDB engine needs one type per argument: {pred} "
                                               f"argument {i + 1} holds both numbers and symbols", "E004")
        if news:
            self._evidence.update(news)
            self._compile()

    # ------------------------------------------------------------------ the statements
    def _once(self, key: tuple, make: Callable[[], Any]) -> Any:
        """A statement's DuckDB text (or a list of them), rendered from its tree on first
        use: sqlglot's rendering costs far more than a dictionary look-up."""
        out = self._rendered.get(key)
        if out is None:
            out = self._rendered[key] = make()
        return out

    def _ddl(self, temp: bool = False) -> list[str]:
        return self._once(("ddl", temp), lambda: [render(t) for t in self._plan.ddl_trees(temp)])

    def _static_sql(self) -> list[str]:
        return self._once(("static",), lambda: [render(t) for t in self._plan.static_trees()])

    def _load_static(self, con: duckdb.DuckDBPyConnection) -> None:
        """The rule set's own facts into their tables: as rendered INSERTs (`sql_script`'s),
        unless a predicate has thousands of them (a program that states its data as
        facts), which go in bulk: a VALUES list of 50,000 rows takes sqlglot and DuckDB's
        parser a minute."""
        if sum(len(rows) for rows in self._static.values()) > _STATIC_AS_TEXT:
            try:
                for pred, rows in self._static.items():
                    self._load_rows(con, pred, rows)
                return
            except ReasonerError:  # a number where a symbol is declared: as the statements cast it
                for pred in self._static:
                    con.execute(f"DELETE FROM {quote_ident(self.table(pred))}")
        for statement in self._static_sql():
            con.execute(statement)

    def _insert(self, target: str, selects: Sequence[Make], minus: str | None, distinct: bool = False) -> str:
        """INSERT the distinct rows of the rules' SELECTs, less those already in `minus`
        (None: the target is still empty, nothing to subtract); `distinct`: one SELECT
        that gives no row twice."""
        key = ("insert", target, tuple(id(s) for s in selects), minus, distinct)  # they live as long as the engine
        return self._once(key, lambda: render(self._gen.insert(target, [make() for make in selects], minus,
                                                               distinct)))

    def _grow_sql(self, pred: str) -> list[str]:
        """The last round's new rows become the delta and join the predicate's table."""
        return self._once(("grow", pred), lambda: [render(t) for t in self._gen.grow(self.table(pred))])

    def _firing_create(self, index: int) -> str:
        return self._once(("firing", index), lambda: render(
            self._gen.create_as(f"_firing_{index}", self._firings[index].select(), temp=True)))

    def _violation_create(self, c: Constraint) -> str:
        # TEMP: each connection to a cohort's database keeps its own (sql_partitions)
        return self._once(("violation", c.index), lambda: render(
            self._gen.create_as(f"_violation_{c.index}", c.select(), temp=True)))

    def _script(self, dialect: str) -> list[tuple[str, str]]:
        return self._plan.script(dialect)

    def sql_script(self, dialect: str = "duckdb") -> str:
        """The whole evaluation as one SQL script, to read, for `dialect`: "duckdb" (what
        this engine runs), "spark" or "trino" (sqlglot's rendering of the same trees, not
        run here; docs/duckdb.md says what differs). A recursive component's loop is
        spelled out as comments around the statements Python repeats."""
        return "\n".join(text + ";" if kind == "sql" else text for kind, text in self._script(dialect)) + "\n"

    def sql_statements(self, dialect: str = "duckdb") -> list[str]:
        """The statements of `sql_script(dialect)`, in order, without comments (a
        recursive component's loop once)."""
        return [text for kind, text in self._script(dialect) if kind == "sql"]

    # ------------------------------------------------------------------ running
    def connect(self, database: str = ":memory:", memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A database with this rule set's tables: in memory, or in the file `database`
        (whose folder also takes what DuckDB spills when over its memory limit)."""
        config: dict[str, Any] = {}
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit or memory_limit:
            config["memory_limit"] = self.memory_limit or memory_limit
        if database != ":memory:":
            config["temp_directory"] = str(Path(database).parent / "spill")
        con = duckdb.connect(database, config=config)
        # in a database file, the tables the rules fill are TEMP: never logged or
        # checkpointed to the file (they are emptied for every partition), spilled only
        # when over the memory limit
        for statement in self._ddl(temp=database != ":memory:"):
            con.execute(statement)
        return con

    def _run(self, con: duckdb.DuckDBPyConnection, nonempty: set) -> set[str]:
        """Everything after the input facts are in their tables (`nonempty`: the predicates
        that hold a row). Returns the names of the firing tables it made."""
        started = time.monotonic()
        made: set[str] = set()
        self._load_static(con)
        nonempty |= set(self._static)
        for comp in self._components:
            self._check_time(started)
            if comp.recursive:
                self._fixpoint(con, comp, started, nonempty)
                # every firing over the final tables: the union of what each round found
                for pred in comp.preds if self.record_firings else ():
                    for index, _, needs in comp.rules[pred]:
                        if needs <= nonempty:
                            con.execute(self._firing_create(index))
                            made.add(f"_firing_{index}")
                continue
            (pred,) = comp.preds
            live = [(index, tree) for index, tree, needs in comp.rules[pred] if needs <= nonempty]
            minus = self.table(pred) if pred in nonempty else None
            distinct = False  # the one rule's conclusions are a set already
            if self.record_firings:  # the firings first; the conclusions from them
                for index, _ in live:
                    con.execute(self._firing_create(index))
                    made.add(f"_firing_{index}")
                distinct = len(live) == 1 and self._firings[live[0][0]].distinct_conclusions
                live = [(index, self._firings[index].from_table) for index, _ in live]
            if live and count_added(con.execute(self._insert(self.table(pred), [tree for _, tree in live], minus,
                                                             distinct))):
                nonempty.add(pred)
        for c in self._constraints:
            con.execute(self._violation_create(c))
        return made

    def _fixpoint(self, con: duckdb.DuckDBPyConnection, comp: Component, started: float, nonempty: set) -> None:
        def round_(entries: Mapping[str, list[Entry]]) -> int:
            for pred in comp.preds:
                live = [tree for _, tree, needs in entries[pred] if needs <= nonempty]
                if live:
                    con.execute(self._insert("_new_" + self.table(pred), live, self.table(pred)))
            added = 0
            for pred in comp.preds:
                delete_delta, fill_delta, grow, delete_new = self._grow_sql(pred)
                con.execute(delete_delta)
                n = count_added(con.execute(fill_delta))
                con.execute(grow)
                con.execute(delete_new)
                nonempty.discard(("delta", pred))
                if n:
                    nonempty.update({pred, ("delta", pred)})
                added += n
            return added

        semi_naive(round_, comp.rules, comp.variants, self.max_iterations, lambda: self._check_time(started))

    def _check_time(self, started: float) -> None:
        check_time_limit(started, self.time_limit)

    # ------------------------------------------------------------------ loading
    def _load_rows(self, con: duckdb.DuckDBPyConnection, pred: str, rows: Sequence[Sequence[Value]]) -> int:
        """Bulk insert Python tuples: one list per column, unnested in SQL (executemany is slow)."""
        if not rows:
            return 0
        t = quote_ident(self.table(pred))
        arity = self.arity[pred]
        if arity == 0:
            return count_added(con.execute(f"INSERT INTO {t} SELECT TRUE EXCEPT SELECT * FROM {t}"))
        params = []
        for i, kind in enumerate(self.kinds[pred]):
            column = [row[i] for row in rows]
            if kind == NUM:
                try:
                    column = [float(v) for v in column]  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise ReasonerError.at(_NOSPAN, f"{pred} argument {i + 1} must be a number", "E004") from None
            elif any(not isinstance(v, str) for v in column):
                raise ReasonerError.at(_NOSPAN, f"{pred} argument {i + 1} must be a symbol", "E004")
            params.append(column)
        casts = ", ".join(f"unnest(${i + 1}::{SQL_TYPE[k]}[]) AS a{i}" for i, k in enumerate(self.kinds[pred]))
        return count_added(con.execute(f"INSERT INTO {t} SELECT DISTINCT * FROM (SELECT {casts}) AS f "
                                  f"EXCEPT SELECT * FROM {t}", params))

    # ------------------------------------------------------------------ evaluating
    def evaluate(self, facts: Iterable[Fact], *, preds: Collection[str] | None = None,
                 firings_of: Collection[int] | None = None) -> Model:
        """Evaluate over `facts` (checked input facts, e.g. `load_facts(...).facts`); `preds`
        and `firings_of` narrow what the model gets, as in `SQLResult.fill`."""
        model = Model()
        model.settings = dict(self.settings)
        grouped: dict[str, dict[tuple[Value, ...], None]] = defaultdict(dict)
        for fact in facts:
            grouped[fact.pred].setdefault(fact.args, None)
            model.origins.setdefault((fact.pred, fact.args), fact.span)
        self._learn(grouped)
        with self.evaluate_tables({p: list(rows) for p, rows in grouped.items() if p in self.arity},
                                  check=False) as result:
            result.fill(model, preds, firings_of)
        for pred, rows in grouped.items():  # facts of predicates no rule mentions
            if pred not in self.arity and (preds is None or pred in preds):
                model.facts[pred] |= set(rows)
        return model

    def evaluate_tables(self, tables: Mapping[str, Any], *, check: bool = True) -> "SQLResult":
        """Evaluate over facts given per predicate: a list of tuples, or anything DuckDB can
        scan (a pyarrow Table, a pandas or polars DataFrame) with the predicate's columns in
        order. With `check`, values are checked against the declarations in SQL."""
        con = self.connect()
        nonempty: set = set()
        try:
            for pred, data in tables.items():
                if pred not in self.arity:
                    raise ReasonerError.at(_NOSPAN, f"unknown predicate {pred}", "E002")
                if isinstance(data, (list, tuple)):
                    if self._load_rows(con, pred, data):
                        nonempty.add(pred)
                else:
                    view = f"_input_{self.table(pred)}"
                    con.register(view, data)
                    t = quote_ident(self.table(pred))
                    cols = ", ".join(f"CAST(#{i + 1} AS {SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred]))
                    if count_added(con.execute(f"INSERT INTO {t} SELECT DISTINCT {cols or 'TRUE'} "
                                          f"FROM {quote_ident(view)} EXCEPT SELECT * FROM {t}")):
                        nonempty.add(pred)
                    con.unregister(view)
            if check:
                self.inputs().check_tables(con)
            made = self._run(con, nonempty)
        except BaseException:
            con.close()
            raise
        return SQLResult(self, con, firings=made)

    def evaluate_csv(self, paths: Sequence[str | Path] | str | Path, *, check: bool = True) -> "SQLResult":
        """Evaluate over fact files, CSV or Parquet, read by DuckDB's readers: the bulk path
        for large cohorts. The two layouts of the fact form: long (header or columns
        `predicate,arg1,...`, one fact of any predicate per row) or per predicate (a file
        named after it, `weight_kg.csv` or `.parquet`, with the declared argument names
        `p,kg` as header or columns; Parquet cells are read as text, like CSV cells).
        With `check`, facts are checked against the declarations in SQL (unknown or derived
        predicates, arity, numbers, ranges, enumerations, `one`); problems raise
        `ReasonerError` with up to 3 examples of each kind, located by line."""
        con = self.connect()
        try:
            nonempty = self.inputs().load(con, paths, check)
            con.execute("DROP TABLE _staging")
            made = self._run(con, nonempty)
        except BaseException:
            con.close()
            raise
        return SQLResult(self, con, firings=made)

    def evaluate_csv_partitioned(self, paths: Sequence[str | Path] | str | Path, *, patients: int = 50_000,
                                 check: bool = True, memory_limit: str | None = None) -> Iterator["SQLResult"]:
        """`evaluate_csv` for cohorts larger than memory: one `SQLResult` per partition of
        `patients` patients, numbered in the order the files first mention them.

        The files are read and checked whole first (so a problem anywhere raises before
        any partition is yielded), into a database file in a temporary folder; each
        partition then runs the rule set over its own patients' rows, with DuckDB held to
        `memory_limit` (None: `sql_partitions.default_memory_limit()`, from the machine's
        memory). A result is valid until the next one is asked for. A rule set that is not
        patient-local (or whose patient keys differ in type) runs as one partition.
        """
        from reasoner.engines.sql_partitions import partitions
        return partitions(self, [paths] if isinstance(paths, (str, Path)) else paths, patients, check, memory_limit)

    def map_partitions(self, paths: Sequence[str | Path] | str | Path, task: Callable[[SQLResult, Any], Any], *,
                       patients: int = 50_000, workers: int = 2, check: bool = True,
                       memory_limit: str | None = None) -> Iterator[Any]:
        """`task(result, turn)` applied to each partition of `evaluate_csv_partitioned`,
        `workers` partitions at a time (threads, each with its own connection to the
        cohort's database), the outputs yielded in partition order. Inside the task,
        `with turn:` runs after every earlier partition's task has passed its own turn
        (reasoner.engines.sql_partitions). The result is valid only during the task."""
        from reasoner.engines.sql_partitions import map_partitions
        return map_partitions(self, [paths] if isinstance(paths, (str, Path)) else paths, task, patients, workers,
                              check, memory_limit)

    def _keyed_inputs(self) -> dict[str, int]:
        """Input predicates that hold a patient: predicate → position of the patient."""
        out = {}
        for pred, decl in self.ruleset.decls.items():
            k = self.ruleset.key_index(pred)
            if decl.role == "input" and k is not None and pred in self.arity:
                out[pred] = k
        return out

    def _number_patients(self, con: duckdb.DuckDBPyConnection, size: int) -> dict[str, int]:
        """Number the patients by first mention in the staged files, `size` to a partition,
        into `_patients (key, part, code)` (`code`: the patient's number, from 0); returns
        the input predicates that hold a patient (predicate → its position), whose rows
        the loading then puts in `_all_<table>` with their patient's number. {} (and
        no table) when the cohort cannot be split: the rule set is not patient-local, or
        its patient keys differ in type."""
        keyed = self._keyed_inputs()
        kinds = {self.kinds[p][k] for p, k in keyed.items()}
        if not self.ruleset.patient_local or not keyed or len(kinds) != 1:
            return {}
        (kind,) = kinds
        width = len(con.execute("SELECT * FROM _staging LIMIT 0").description) - 1
        by_position: dict[int, list[str]] = defaultdict(list)
        for pred, k in keyed.items():
            if k + 1 < width:
                by_position[k].append(pred)
        mentions = " UNION ALL ".join(
            f"SELECT TRY_CAST(arg{k + 1} AS {SQL_TYPE[kind]}) AS key, rowid AS r FROM _staging "
            f"WHERE predicate IN ({', '.join(sql_string(p) for p in sorted(preds))})"
            for k, preds in sorted(by_position.items()))
        if not mentions:
            return {}
        con.execute(f"CREATE TABLE _patients AS SELECT key, n // {size} AS part, n AS code FROM (SELECT key, "
                    f"row_number() OVER (ORDER BY first) - 1 AS n FROM (SELECT key, min(r) AS first "
                    f"FROM ({mentions}) AS m WHERE key IS NOT NULL GROUP BY key) AS f) AS numbered")
        return keyed

    def _clear(self, con: duckdb.DuckDBPyConnection, keep: set[str]) -> None:
        """Empty every table a partition filled (all but `keep`), for the next one."""
        def statements() -> list[str]:
            gen = self._gen
            trees = [gen.empty(self.table(pred)) for pred in sorted(self.arity) if pred not in keep]
            trees += [gen.empty(prefix + self.table(pred)) for comp in self._components if comp.recursive
                      for pred in comp.preds for prefix in ("_delta_", "_new_")]
            trees += [gen.drop(f"_violation_{c.index}") for c in self._constraints]
            trees += [gen.drop(f"_firing_{index}") for index in self._firings]
            return [render(t) for t in trees]
        for statement in self._once(("clear", frozenset(keep)), statements):
            con.execute(statement)

