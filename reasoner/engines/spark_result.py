"""The Spark engine's answers: `SparkResult` keeps the evaluated tables in Spark and gives
them on demand, as Python sets, one `Model`, or one `Model` per partition of patients
(numbered by first mention, `size` to a partition, as the DuckDB engine partitions a
cohort), with every rule's patient count counted in Spark SQL.

A partition's rows come back in one ordered pass over a union of every table asked for
(`_part`, `_t`, cells as text), read with `toLocalIterator`: the driver holds one
partition's rows at a time, whatever the cohort's size.
"""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Collection, Iterator

from reasoner.engines.model import Firing, Model
from reasoner.io.sqltext import to_python
from reasoner.language.syntax import Value

if TYPE_CHECKING:
    from reasoner.engines.spark import Compiled


def _value(text: str | None, kind: str) -> Value:
    """A cell read back as text (module docstring) in the column's Spark type."""
    if kind == "double":
        return to_python(float(text), True)  # type: ignore[arg-type]
    if kind in ("bigint", "int", "long", "integer", "smallint", "tinyint"):
        return int(text)  # type: ignore[arg-type]
    if kind == "boolean":
        return text == "true"
    return text  # type: ignore[return-value]


def union_all(frames: list[Any]) -> Any:
    """UNION ALL of frames with the same columns, as a balanced tree: each union analyses
    the plans beneath it, so a chain of n unions costs n² where a tree costs n log n."""
    while len(frames) > 1:
        frames = [frames[i].unionByName(frames[i + 1]) if i + 1 < len(frames) else frames[i]
                  for i in range(0, len(frames), 2)]
    return frames[0]


def _row(row: Any, kinds: list[str]) -> tuple[Value, ...]:
    return tuple(to_python(v, True) if k == "double" else v for v, k in zip(row, kinds))


class SparkResult:
    """The evaluated tables: predicate → DataFrame, rule index → firing DataFrame,
    constraint index → violation DataFrame."""

    def __init__(self, compiled: Compiled, spark: Any, tables: dict[str, Any], firings: dict[int, Any],
                 violation_tables: dict[int, Any]):
        self.compiled = compiled
        self.spark = spark
        self.tables = tables
        self.firing_tables = firings
        self.violation_tables = violation_tables
        self.patients: Any = None
        """(key, first): every patient and its first mention; None when the cohort is one partition."""

    def __enter__(self) -> "SparkResult":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what Spark keeps of this evaluation (persisted tables)."""
        for df in [*self.tables.values(), *self.firing_tables.values(), *self.violation_tables.values()]:
            df.unpersist()

    def set_patients(self, patients: Any) -> None:
        self.patients = patients

    # ------------------------------------------------------------------ whole answers
    def count(self, pred: str) -> int:
        return self.tables[pred].count()

    def tuples(self, pred: str) -> set[tuple[Value, ...]]:
        df = self.tables[pred]
        rows = df.collect()
        if self.compiled.arity[pred] == 0:
            return {()} if rows else set()
        kinds = [f.dataType.simpleString() for f in df.schema.fields]
        return {_row(r, kinds) for r in rows}

    def violations(self) -> list[Firing]:
        out = []
        for index, variables in self.compiled.constraints:
            df = self.violation_tables[index]
            kinds = [f.dataType.simpleString() for f in df.schema.fields]
            for r in sorted(df.collect(), key=repr):
                out.append(Firing(index, dict(zip(variables, _row(r, kinds)))))
        return out

    def fill(self, model: Model, preds: Collection[str] | None = None,
             firings_of: Collection[int] | None = None) -> Model:
        """Copy answers into `model`, as `SQLResult.fill` does: the facts of `preds` (default:
        every predicate), the violations, and (an engine made with `firings=True`) the
        firings of `firings_of` (default: every rule), with every rule's patient count when
        `firings_of` is given. One Spark job brings them all back."""
        c = self.compiled
        firings = (set(c.firings) if firings_of is None else set(firings_of)) if c.record_firings else None
        (whole,) = self._models(None, preds, firings)
        model.settings = dict(c.settings)
        for pred, rows in whole.facts.items():
            model.facts[pred] |= rows
        model.violations.extend(whole.violations)
        if c.record_firings:
            model.variables.update(whole.variables)
            model.heads.update(whole.heads)
            for index, rows in whole.firings.items():
                model.firings[index].extend(rows)
            if firings_of is not None:
                model.fired_for = whole.fired_for
        return model

    def to_model(self, preds: Collection[str] | None = None, firings_of: Collection[int] | None = None) -> Model:
        return self.fill(Model(), preds, firings_of)

    # ------------------------------------------------------------------ partitions of patients
    def _parts(self, size: int) -> Any:
        """(key, _part) of every patient, `size` to a partition in first-mention order."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        order = Window.orderBy("first")
        return (self.patients.select("key", ((F.row_number().over(order) - 1) / size).cast("int").alias("_part"))
                .persist())

    def _key_column(self, kind: str, ident: Any) -> str | None:
        """The column holding the patient in a table (None: a table about no patient)."""
        rs = self.compiled.ruleset
        if kind == "pred":
            k = rs.key_index(ident)
            return f"a{k}" if k is not None else None
        variables = self.compiled.firings[ident][0] if kind == "firing" else dict(self.compiled.constraints)[ident]
        key = rs.key_variable(rs.rules[ident])
        return f"v{variables.index(key)}" if key is not None and key in variables else None

    def _keyed_rows(self, wanted: list[tuple[str, Any, Any]], width: int) -> Any:
        """One DataFrame of every wanted table's rows: (`_key` as text or NULL, `_t` its
        index in `wanted`, cells c0.. as text)."""
        from pyspark.sql import functions as F
        pieces = []
        for j, (kind, ident, df) in enumerate(wanted):
            key = self._key_column(kind, ident)
            cells = [F.col(col).cast("string") for col in df.columns]
            cells += [F.lit(None).cast("string")] * (width - len(cells))
            pieces.append(df.select(F.col(key).cast("string").alias("_key") if key else F.lit(None).cast("string")
                                    .alias("_key"), F.lit(j).alias("_t"), *[x.alias(f"c{i}") for i, x in enumerate(cells)]))
        return union_all(pieces)

    def _parted(self, rows: Any, parts: Any) -> Any:
        """`rows` with `_part`: its patient's partition (one join for every table), 0 for a
        row about no patient."""
        from pyspark.sql import functions as F
        if parts is None:
            return rows.withColumn("_part", F.lit(0))
        keys = parts.select(F.col("key").cast("string").alias("_pk"), "_part")
        joined = rows.join(keys, rows["_key"] == keys["_pk"], "left")
        return joined.withColumn("_part", F.coalesce(F.col("_part"), F.lit(0))).drop("_pk")

    def fired_for(self, parts: Any = None) -> dict[int, dict[int, int]]:
        """partition → rule index → for how many patients the rule fired (violations for
        constraints), counted in Spark SQL as `SQLResult.fired_for` counts in DuckDB; rules
        that never fired are left out. Without `parts`, everything is partition 0."""
        from pyspark.sql import functions as F
        items = [("firing", i, df) for i, df in sorted(self.firing_tables.items())]
        items += [("violation", i, df) for i, df in sorted(self.violation_tables.items())]
        out: dict[int, dict[int, int]] = defaultdict(dict)
        if not items:
            return out
        pieces = []
        for kind, index, df in items:
            key = self._key_column(kind, index)
            pieces.append(df.select(F.lit(index).alias("rule"), F.lit(key is not None).alias("keyed"),
                                    (F.col(key).cast("string") if key else F.lit(None).cast("string")).alias("_key")))
        counted = self._parted(union_all(pieces), parts).groupBy("_part", "rule", "keyed").agg(
            F.countDistinct("_key").alias("nk"), F.count(F.lit(1)).alias("n"))
        for part, rule, keyed, nk, n in counted.collect():
            value = nk if keyed else min(n, 1)
            if value:
                out[part][rule] = value
        return out

    def models(self, size: int, reads: Collection[str] | None, firings_of: Collection[int] | None) -> Iterator[Model]:
        """One `Model` per partition of `size` patients: the facts of `reads` (None: every
        predicate), the firings of `firings_of` (None: none) with every rule's patient count,
        and the violations; a rule set that is not patient-local is one partition."""
        return self._models(size, reads, firings_of)

    def _models(self, size: int | None, reads: Collection[str] | None,
                firings_of: Collection[int] | None) -> Iterator[Model]:
        from pyspark.sql import functions as F
        parts = self._parts(size) if self.patients is not None and size is not None else None
        c = self.compiled
        wanted: list[tuple[str, Any, Any]] = [("pred", p, self.tables[p]) for p in sorted(c.arity)
                                              if reads is None or p in reads]
        if firings_of is not None:
            wanted += [("firing", i, self.firing_tables[i]) for i in sorted(firings_of) if i in self.firing_tables]
        wanted += [("violation", i, df) for i, df in sorted(self.violation_tables.items())]
        kinds = {j: [f.dataType.simpleString() for f in df.schema.fields] for j, (_, _, df) in enumerate(wanted)}
        width = max([len(k) for k in kinds.values()] + [1])
        counts = self.fired_for(parts) if firings_of is not None else {}
        n_parts = parts.agg(F.max("_part")).first()[0] if parts is not None else 0
        rows: Iterator[Any] = iter(())
        if wanted:
            rows_df = self._parted(self._keyed_rows(wanted, width), parts).drop("_key")
            # sorted as orderBy sorts (ranges of (_part, _t), each range sorted), but in about
            # four ranges per partition of patients rather than spark.sql.shuffle.partitions:
            # each range is one task's result, which the driver keeps in its block manager
            # until read. At 1,000,000 patients, 8 ranges of ~125,000 patients' rows each
            # were lost from a 2 GB driver ("TaskResultLost") and the run failed.
            ranges = 4 * ((n_parts or 0) + 1)
            rows = rows_df.repartitionByRange(ranges, "_part", "_t").sortWithinPartitions("_part", "_t") \
                .select("_part", "_t", *[f"c{i}" for i in range(width)]).toLocalIterator(prefetchPartitions=True)
        pending = next(rows, None)
        for part in range(0 if n_parts is None else n_parts + 1):
            model = self._empty_model(firings_of)
            while pending is not None and pending[0] == part:
                kind, ident, _ = wanted[pending[1]]
                values = tuple(_value(x, k) for x, k in zip(pending[2:], kinds[pending[1]]))
                self._add(model, kind, ident, values)
                pending = next(rows, None)
            if firings_of is not None:
                model.fired_for = counts.get(part, {})
            yield model
        if parts is not None:
            parts.unpersist()

    def _empty_model(self, firings_of: Collection[int] | None) -> Model:
        model = Model()
        model.settings = dict(self.compiled.settings)
        if firings_of is not None:
            for index, (variables, head) in self.compiled.firings.items():
                model.variables[index] = variables
                model.heads[index] = head
            for index, variables in self.compiled.constraints:
                model.variables[index] = variables
        return model

    def _add(self, model: Model, kind: str, ident: Any, values: tuple[Value, ...]) -> None:
        if kind == "pred":
            model.facts[ident].add(() if self.compiled.arity[ident] == 0 else values)
        elif kind == "firing":
            model.firings[ident].append(values if self.compiled.firings[ident][0] else ())
        else:
            variables = dict(self.compiled.constraints)[ident]
            model.violations.append(Firing(ident, dict(zip(variables, values))))
            if model.variables:
                model.firings[ident].append(values)
