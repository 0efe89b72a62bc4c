"""A third engine: the rule set compiled to Spark SQL and run by Apache Spark (`--engine spark`).

The statements are the DuckDB engine's: the lowered program (`plan/lowered.py`) built
as sqlglot trees by `reasoner.engines.sqlgen` and rendered with dialect "spark"; the
column kinds are `sql_types.ColumnTypes`'. No rule is translated here; what differs is
how the statements are run (docs/spark.md):

- a predicate's table is a DataFrame (persisted, memory and disk) registered as a
  temporary view under a name made here (`p3_crs_grade`), so rule SELECTs resolve it;
  an INSERT's source query (`SQLGen.insert(...).expression`) gives the rows a
  statement adds, cast to the declared column types;
- strata run in order; a non-recursive predicate is the distinct union of its rules'
  SELECTs (and its facts); a recursive component is the semi-naive loop of the DuckDB
  engine, driven from here: round 0 runs every rule, later rounds the variants over
  the last round's new rows (`_delta_` views), each round's tables checkpointed
  (lineage cut) and counted, until a round adds nothing, at most `max_iterations`;
- firings (`firings=True`) are `_firing_N` tables, the DISTINCT rows of every variable,
  from which the conclusions are computed; constraints are `_violation_N` tables;
- input tables are repartitioned by the patient key when the rule set is patient-local,
  so the joins on it stay within a partition.

The answers stay in Spark (`SparkResult`) until asked for: as Python sets, as one
`Model`, or as one `Model` per partition of patients numbered by first mention, the way
`--engine duckdb` partitions a cohort, so reports built from them are the same bytes.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

from reasoner.analysis.program import RuleSet, resolve_settings
from reasoner.engines.model import Model
from reasoner.engines.spark_result import SparkResult, union_all
from reasoner.engines.sql_plan import check_time_limit, semi_naive, variant_entries
from reasoner.engines.sql_types import ColumnTypes, kind_of
from reasoner.engines.sqlgen import SQLGen, render
from reasoner.io.spark_inputs import SparkFactFiles, is_remote
from reasoner.io.sqltext import NUM, SYM
from reasoner.language.errors import ReasonerError
from reasoner.language.syntax import Fact, Span, Value, Var
from reasoner.plan.lowered import LoweredRule, plan_of, setting_or_const

_NOSPAN = Span("<spark>", 0, 0)
_SPARK_TYPE = {NUM: "double", SYM: "string"}

Make = Callable[[], Any]
Entry = tuple[int, Make, frozenset]
"""(rule index, a builder of its SELECT tree, the predicates of its positive atoms)."""


@dataclass
class _Component:
    preds: list[str]
    recursive: bool
    rules: dict[str, list[Entry]]
    variants: dict[str, list[Entry]] = field(default_factory=dict)


@dataclass
class Compiled:
    """What a run needs of the compiled rule set (read by `SparkResult`)."""

    ruleset: RuleSet
    settings: dict[str, Value]
    arity: dict[str, int]
    kinds: dict[str, list[str]]
    tables: dict[str, str]
    constraints: list[tuple[int, tuple[str, ...]]]
    """(rule index, its variables) of every integrity constraint."""
    firings: dict[int, tuple[tuple[str, ...], tuple]]
    """rule index → (its firing row's variables, its head as ("var"/"const", value) pairs)."""
    record_firings: bool


class SparkEngine:
    """A rule set compiled to Spark SQL. `evaluate(facts)` returns a `Model` like the other
    engines; `evaluate_files(paths)` and `evaluate_tables(rows)` return a `SparkResult`."""

    def __init__(self, ruleset: RuleSet, settings: dict[str, float] | None = None, *, spark: Any = None,
                 max_iterations: int = 100_000, time_limit: float | None = None, firings: bool = False):
        self.ruleset = ruleset
        self.settings: dict[str, Value] = resolve_settings(ruleset, settings)
        self.max_iterations = max_iterations
        self.time_limit = time_limit
        self.record_firings = firings
        self._spark = spark
        self._evidence: dict[tuple[str, int], str] = {}
        self._compile()

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from reasoner.engines.spark_session import session
            self._spark = session()
        if not self.__dict__.get("_configured"):
            # Spark 4.x's constraint propagation fails on a UNION of checkpointed tables
            # ("key not found: a1#..." in UnionBase.rewriteConstraints) and is costly on
            # plans of many joins; the rules need none of its inferred filters
            self._spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
            self._configured = True
        return self._spark

    # ------------------------------------------------------------------ compiling
    def _compile(self) -> None:
        rs = self.ruleset
        plan = plan_of(rs)
        types = ColumnTypes(rs, self._evidence)
        if types.conflicts:
            raise ReasonerError(types.conflicts)
        self._types = types
        arity = {p: d.arity for p, d in rs.decls.items()}
        kinds = {p: [types.kind(p, i) or SYM for i in range(n)] for p, n in arity.items()}
        # names made here, never the predicate's own: a view name is parsed by Spark, and
        # Spark matches names case-insensitively
        tables = {p: f"p{i}_{re.sub(r'[^A-Za-z0-9_]', '_', p)}" for i, p in enumerate(sorted(arity))}
        self._gen = gen = SQLGen(tables, kinds, self.settings)
        self._static: dict[str, list[tuple[Value, ...]]] = defaultdict(list)
        by_head: dict[str, list[int]] = defaultdict(list)
        constraints: list[tuple[int, tuple[str, ...]]] = []
        firings: dict[int, tuple[tuple[str, ...], tuple]] = {}
        self._lowered: dict[int, LoweredRule] = {}
        for index, rule in enumerate(rs.rules):
            if rule.head is not None and not rule.body:
                args = tuple(setting_or_const(a, self.settings) for a in rule.head.args)
                if args not in self._static[rule.head.pred]:
                    self._static[rule.head.pred].append(args)  # type: ignore[arg-type]
                continue
            lowered = self._lowered[index] = plan.rules[index]
            if rule.head is None:
                constraints.append((index, lowered.variables))
                continue
            by_head[rule.head.pred].append(index)
            if self.record_firings:
                head = tuple(("var", a.name) if isinstance(a, Var) else ("const", setting_or_const(a, self.settings))
                             for a in lowered.head or ())
                firings[index] = (lowered.variables, head)
        self._components = []
        for comp in plan.components:
            component = _Component(list(comp.preds), comp.recursive, {})
            for pred in comp.preds:
                rules = [plan.rules[i] for i in by_head[pred]]
                component.rules[pred] = [(r.index, lambda r=r: gen.rule_select(r), r.needs) for r in rules]
                if comp.recursive:
                    component.variants[pred] = variant_entries(self._gen, rules)
            self._components.append(component)
        self.compiled = Compiled(rs, self.settings, arity, kinds, tables, constraints, firings, self.record_firings)

    def table(self, pred: str) -> str:
        return self.compiled.tables[pred]

    def sql(self, tree: Any) -> Any:
        """A statement tree rendered for Spark and handed to it (a lazy DataFrame)."""
        return self.spark.sql(render(tree, "spark"))

    # ------------------------------------------------------------------ running
    def _typed(self, pred: str, df: Any) -> Any:
        """`df`'s columns a0.. cast to the predicate's column types (as an INSERT casts)."""
        from pyspark.sql import functions as F
        kinds = self.compiled.kinds[pred]
        if not kinds:
            return df.select(F.lit(True).alias("a0"))
        df = df.toDF(*[f"a{i}" for i in range(len(df.columns))])  # by position, as INSERT reads them
        return df.select(*[F.col(f"a{i}").cast(_SPARK_TYPE[k]).alias(f"a{i}") for i, k in enumerate(kinds)])

    def _empty(self, pred: str) -> Any:
        kinds = self.compiled.kinds[pred]
        schema = ", ".join(f"a{i} {_SPARK_TYPE[k]}" for i, k in enumerate(kinds)) or "a0 boolean"
        empty = self.__dict__.setdefault("_empties", {})
        if schema not in empty:
            empty[schema] = self.spark.createDataFrame([], schema)
        return empty[schema]

    def _keep(self, name: str, df: Any, eager: bool = False) -> Any:
        """A table registered as a view, its lineage cut: a view holds its whole logical
        plan, so without the cut each stratum's plan would hold every stratum's beneath
        it (Spark's analyzer then runs out of memory on the CRS rule set). A local
        checkpoint is computed once, at its first use (`eager`: now), and kept by the
        executors in memory and on disk."""
        df = df.localCheckpoint(eager=eager)
        df.createOrReplaceTempView(name)
        return df

    def _possible(self, present: Collection[str]) -> set:
        """The predicates that can hold a row, given the inputs that do (`present`) and the
        rule set's facts: a rule one of whose positive atoms can hold none is never run
        (one patient needs far fewer statements than a cohort; no Spark job decides it)."""
        maybe = set(present) | set(self._static)
        for comp in self._components:
            grew = True
            while grew:  # a recursive component: until nothing more can hold rows
                grew = False
                for pred in comp.preds:
                    if pred not in maybe and any(needs <= maybe for _, _, needs in comp.rules[pred]):
                        maybe.add(pred)
                        grew = comp.recursive
        return maybe

    def _run(self, inputs: Mapping[str, Any]) -> SparkResult:
        """Every stratum over the input tables (`inputs`: predicate → typed DataFrame)."""
        started = time.monotonic()
        spark = self.spark
        c = self.compiled
        maybe = self._possible(inputs)
        tables: dict[str, Any] = {}
        for pred in sorted(c.arity):
            df = inputs.get(pred)
            df = self._empty(pred) if df is None else self._typed(pred, df)
            if self._static.get(pred):
                rows = [tuple(float(v) if k == NUM else v for v, k in zip(row, c.kinds[pred])) or (True,)
                        for row in self._static[pred]]
                df = df.unionByName(spark.createDataFrame(rows, df.schema)).distinct()
            df.createOrReplaceTempView(self.table(pred))  # inputs are leaves: nothing to cut
            tables[pred] = df
        firings: dict[int, Any] = {}
        for comp in self._components:
            self._check_time(started)
            if not maybe & set(comp.preds):
                continue
            if comp.recursive:
                self._fixpoint(comp, tables, started, maybe)
                for pred in comp.preds if self.record_firings else ():
                    for index, _, needs in comp.rules[pred]:
                        if needs <= maybe:
                            firings[index] = self._keep(f"_firing_{index}", self.sql(
                                self._gen.firing_select(self._lowered[index])))
                continue
            (pred,) = comp.preds
            entries = [e for e in comp.rules[pred] if e[2] <= maybe]
            if self.record_firings:  # the firings first; the conclusions from them
                for index, _, _ in entries:
                    firings[index] = self._keep(f"_firing_{index}", self.sql(
                        self._gen.firing_select(self._lowered[index])))
                selects = [self._gen.conclusion(self._lowered[index], f"_firing_{index}") for index, _, _ in entries]
            else:
                selects = [make() for _, make, _ in entries]
            if not selects:
                continue
            new = self._typed(pred, self.sql(self._gen.insert(self.table(pred), selects, None).expression))
            if pred in self._static or pred in inputs:
                new = tables[pred].unionByName(new).distinct()
            tables[pred] = self._keep(self.table(pred), new)
        violations = {}
        for index, _ in c.constraints:
            lowered = self._lowered[index]
            select = self.sql(self._gen.firing_select(lowered))
            violations[index] = self._keep(f"_violation_{index}", select) if lowered.needs <= maybe \
                else select.limit(0)
        return SparkResult(c, spark, tables, firings, violations)

    def _fixpoint(self, comp: _Component, tables: dict[str, Any], started: float, maybe: set) -> None:
        nonempty = {("delta", p) for p in comp.preds} | maybe

        def round_(entries: Mapping[str, list[Entry]]) -> int:
            news = {}
            for pred in comp.preds:
                live = [make() for _, make, needs in entries[pred] if needs <= nonempty]
                if live:
                    t = self.table(pred)
                    news[pred] = self._typed(pred, self.sql(self._gen.insert("_new_" + t, live, t).expression))
            added = 0
            for pred in comp.preds:
                t = self.table(pred)
                delta = self._keep("_delta_" + t, news[pred] if pred in news else self._empty(pred), eager=True)
                n = delta.count()
                nonempty.discard(("delta", pred))
                if n:
                    nonempty.add(("delta", pred))
                    tables[pred] = self._keep(t, tables[pred].unionByName(delta), eager=True)
                added += n
            return added

        semi_naive(round_, comp.rules, comp.variants, self.max_iterations, lambda: self._check_time(started))

    def _check_time(self, started: float) -> None:
        check_time_limit(started, self.time_limit)

    # ------------------------------------------------------------------ loading
    def learn(self, grouped: Mapping[str, Iterable[tuple[Value, ...]]]) -> None:
        """Types of `any` arguments only the facts decide (as the DuckDB engine learns them)."""
        news: dict[tuple[str, int], str] = {}
        for pred, rows in grouped.items():
            if pred not in self.compiled.arity:
                continue
            open_ = [i for i in range(self.compiled.arity[pred]) if self._types.kind(pred, i) is None]
            for row in rows if open_ else ():
                for i in open_:
                    kind = kind_of(row[i])
                    if news.setdefault((pred, i), kind) != kind:
                        raise ReasonerError.at(_NOSPAN, f"the Spark engine needs one type per argument: {pred} "
                                               f"argument {i + 1} holds both numbers and symbols", "E004")
        if news:
            self._evidence.update(news)
            self._compile()

    def _frame(self, pred: str, rows: Sequence[tuple[Value, ...]], orders: Sequence[int]) -> Any:
        """Python rows as a typed DataFrame with `_order` (where each was first given)."""
        kinds = self.compiled.kinds[pred]
        data = []
        for row, order in zip(rows, orders):
            values = []
            for i, (v, k) in enumerate(zip(row, kinds)):
                if k == NUM:
                    if isinstance(v, str) or isinstance(v, bool):
                        raise ReasonerError.at(_NOSPAN, f"{pred} argument {i + 1} must be a number", "E004")
                    values.append(float(v))
                elif not isinstance(v, str):
                    raise ReasonerError.at(_NOSPAN, f"{pred} argument {i + 1} must be a symbol", "E004")
                else:
                    values.append(v)
            data.append(tuple(values or [True]) + ((0, order),))
        cols = ", ".join(f"a{i} {_SPARK_TYPE[k]}" for i, k in enumerate(kinds)) or "a0 boolean"
        return self.spark.createDataFrame(data, f"{cols}, _order struct<f:int,i:long>")

    def evaluate_tables(self, tables: Mapping[str, Sequence[tuple[Value, ...]]],
                        orders: Mapping[str, Sequence[int]] | None = None) -> SparkResult:
        """Evaluate over facts given per predicate as lists of tuples (checked values)."""
        frames = {}
        for pred, rows in tables.items():
            if pred not in self.compiled.arity:
                raise ReasonerError.at(_NOSPAN, f"unknown predicate {pred}", "E002")
            frames[pred] = self._frame(pred, rows, (orders or {}).get(pred) or range(len(rows)))
        return self._evaluate_frames(frames)

    def _evaluate_frames(self, frames: Mapping[str, Any]) -> SparkResult:
        """The patients (numbered by first mention) and the run over `frames` (with `_order`)."""
        from pyspark.sql import functions as F
        keyed = self._keyed_inputs()
        mentions = [frames[p].select(F.col(f"a{k}").alias("key"), "_order") for p, k in sorted(keyed.items())
                    if p in frames]
        inputs = {}
        local = self.ruleset.patient_local and keyed
        for pred, df in frames.items():
            df = df.drop("_order")
            if local and pred in keyed:  # the joins on the patient stay within a partition
                df = df.repartition(F.col(f"a{keyed[pred]}"))
            inputs[pred] = df
        result = self._run(inputs)
        if local and mentions and len({self.compiled.kinds[p][k] for p, k in keyed.items()}) == 1:
            result.set_patients(union_all(mentions).groupBy("key").agg(F.min("_order").alias("first")))
        return result

    def _keyed_inputs(self) -> dict[str, int]:
        out = {}
        for pred, decl in self.ruleset.decls.items():
            k = self.ruleset.key_index(pred)
            if decl.role == "input" and k is not None and pred in self.compiled.arity:
                out[pred] = k
        return out

    def evaluate(self, facts: Iterable[Fact], *, preds: Collection[str] | None = None,
                 firings_of: Collection[int] | None = None) -> Model:
        """Evaluate over checked facts; a `Model` as `DuckDBEngine.evaluate` gives."""
        model = Model()
        grouped: dict[str, dict[tuple[Value, ...], int]] = defaultdict(dict)
        for n, fact in enumerate(facts):
            grouped[fact.pred].setdefault(fact.args, n)
            model.origins.setdefault((fact.pred, fact.args), fact.span)
        self.learn(grouped)
        known = {p: rows for p, rows in grouped.items() if p in self.compiled.arity}
        result = self.evaluate_tables({p: list(rows) for p, rows in known.items()},
                                      {p: list(rows.values()) for p, rows in known.items()})
        try:
            result.fill(model, preds, firings_of)
        finally:
            result.close()
        for pred, rows in grouped.items():  # facts of predicates no rule mentions
            if pred not in self.compiled.arity and (preds is None or pred in preds):
                model.facts[pred] |= set(rows)
        return model

    def evaluate_files(self, paths: Sequence[str | Path], *, validate: bool = True) -> SparkResult:
        """Evaluate over CSV and Parquet fact files (either layout), read by Spark. With
        `validate`, local files are first checked by the DuckDB engine's checks (the same
        located messages as every engine; not distributed); Spark's own check runs always."""
        paths = [str(p) for p in paths]
        multiline: list[str] = []
        if validate:
            multiline = validate_locally(self.ruleset, [p for p in paths if not is_remote(p)])
        reader = SparkFactFiles(self.ruleset, self.compiled.arity, self.compiled.kinds)
        staged, width = reader.stage(self.spark, paths, multiline)
        staged = self._keep("_staging", staged)
        reader.check(staged, width)
        present = {row[0] for row in staged.select("predicate").distinct().collect()}
        frames = {p: reader.typed(staged, width, p) for p, d in self.ruleset.decls.items()
                  if d.role == "input" and p in self.compiled.arity and p in present}
        return self._evaluate_frames(frames)


def validate_locally(ruleset: RuleSet, paths: Sequence[str]) -> list[str]:
    """Check local fact files with the DuckDB engine's checks (reasoner.io.duckdb_inputs),
    in a database file in a temporary folder held to 512 MB: every problem raises
    `ReasonerError` with the messages and lines every engine gives. Returns the CSV files
    with a quoted line break (Spark reads those whole, one task per file)."""
    import shutil
    import tempfile

    from reasoner.engines.sql import DuckDBEngine
    if not paths:
        return []
    engine = DuckDBEngine(ruleset)
    folder = tempfile.mkdtemp(prefix="reasoner-spark-check-")
    try:
        con = engine.connect(str(Path(folder) / "check.duckdb"), "512MB")
        try:
            engine.inputs().load(con, [p[len("file://"):] if p.startswith("file://") else p for p in paths], True)
            width = len(con.execute("SELECT * FROM _staging LIMIT 0").description)
            cells = ", ".join(["predicate"] + [f"arg{i}" for i in range(1, width - 1)])
            rows = con.execute(f"SELECT DISTINCT file FROM _staging WHERE regexp_matches(concat_ws('', {cells}), "
                               "'[\\r\\n]')").fetchall()
            return [file for (file,) in rows]
        finally:
            con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

