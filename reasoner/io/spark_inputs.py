"""Fact files read by Spark for `--engine spark`: CSV and Parquet, in both layouts of the
fact form, as one staging DataFrame of text cells and then a typed DataFrame per input
predicate.

The layouts are those of reasoner.io.duckdb_inputs: long (`predicate,arg1,...`: a header
for CSV, column names for Parquet) or per predicate (a file named after a declared
input predicate, `weight_kg.csv`, with its argument names as header or columns). Cells
are read as text, trimmed of the same blanks (`CELL_BLANKS`), a blank cell is a missing
one, and Parquet cells are cast to text as DuckDB stages them (a FLOAT column through
DOUBLE), so both engines read the same values.

Checks: the located checks with the Python reader's messages are the validator's
(reasoner.engines.spark validates local files with DuckDB's checks before Spark reads
them). What this module checks itself, in Spark, on every run (local or remote files):
each staged row's predicate is a declared input with the right number of cells, and every
cell of a number column reads as a finite number; a failure raises E034 with counts and
up to three example rows (not located by line: Spark does not keep line numbers). It is
the net under files the validator did not see (HDFS, S3) and under any difference
between the two CSV readers: nothing is dropped silently.

Each row carries `_order` (file index, then Spark's monotonically increasing id within
the file), so patients can be numbered by first mention, as DuckDB partitions them.
Nothing here imports pyspark at module import time.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from reasoner.analysis.program import RuleSet
from reasoner.io.sqltext import NUM
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import NO_SPAN, Span
from reasoner.language.values import CELL_BLANKS, shown

SPARK_INPUT = "E034"
"""A row Spark read that does not fit the declarations (Spark's own check)."""


def is_remote(path: str | Path) -> bool:
    """A path Spark reads through a Hadoop file system (hdfs://, s3a://, ...), not a local file."""
    return "://" in str(path) and not str(path).startswith("file://")


def _local(path: str | Path) -> str:
    text = str(path)
    return text[len("file://"):] if text.startswith("file://") else text


def spark_path(path: str | Path) -> str:
    """The path as Spark is to read it: a local file by its absolute path, marked `file:`,
    its glob characters escaped. Spark resolves a relative path against its own working
    folder (a Connect server's, not the client's) and a path without a scheme on the
    cluster's default file system (HDFS on many clusters); the reasoner has already read
    the local file itself, by this name, so `[`, `*` and the like are literal."""
    text = str(path)
    if is_remote(text) or (text.startswith("file:") and not text.startswith("file://")):
        return text  # a URI for Spark already (file:/x is Hadoop's own spelling)
    return "file:" + re.sub(r"([\\{}\[\]*?])", r"\\\1", str(Path(_local(text)).resolve()))


class SparkFactFiles:
    """A compiled rule set's input predicates (`arity`, `kinds` per argument) read from fact
    files by Spark."""

    def __init__(self, ruleset: RuleSet, arity: Mapping[str, int], kinds: Mapping[str, list[str]]):
        self.ruleset = ruleset
        self.arity = arity
        self.kinds = kinds

    # ------------------------------------------------------------------ layouts
    def _header(self, spark: Any, path: str) -> list[str]:
        """A file's header cells (CSV) or column names (Parquet), trimmed."""
        if path.endswith(".parquet"):
            return [c.strip(CELL_BLANKS) for c in spark.read.parquet(spark_path(path)).columns]
        if not is_remote(path):
            with open(_local(path), encoding="utf-8-sig", errors="replace", newline="") as fh:
                return [h.strip(CELL_BLANKS) for h in next(csv.reader(fh), [])]
        first = spark.read.text(path).limit(1).collect()
        line = first[0][0].lstrip("\ufeff") if first else ""
        return [h.strip(CELL_BLANKS) for h in next(csv.reader([line]), [])]

    def _layout(self, path: str, header: list[str]) -> str | None:
        """None for the long layout, else the predicate the file is named after."""
        if header[:1] == ["predicate"]:
            return None
        pred = Path(path.rstrip("/")).stem
        decl = self.ruleset.decls.get(pred)
        if decl is None or [a.name for a in decl.args] != header:
            raise ReasonerError.at(Span(path, 1, 1), "a fact file has a column `predicate` then arguments, or is "
                                   "named after a declared predicate with its argument names as header or columns",
                                   "E015")
        return pred

    def _cells(self, spark: Any, path: str, n: int, multiline: bool) -> Any:
        """The file's rows as text cells c0..c(n-1), trimmed, blanks NULL."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType, StructField, StructType
        if path.endswith(".parquet"):
            df = spark.read.parquet(spark_path(path))
            cols = []
            for i, field in enumerate(df.schema.fields[:n]):
                c = F.col(f"`{field.name}`")
                if field.dataType.typeName() == "float":  # as DuckDB stages it: the double's text
                    c = c.cast("double")
                cols.append(c.cast("string").alias(f"c{i}"))
            df = df.select(*cols)
        else:
            schema = StructType([StructField(f"c{i}", StringType()) for i in range(n)])
            df = (spark.read.option("header", "true").option("quote", '"').option("escape", '"')
                  .option("multiLine", str(multiline).lower()).option("mode", "PERMISSIVE")
                  .option("encoding", "UTF-8").option("nullValue", None).option("emptyValue", "")
                  .schema(schema).csv(spark_path(path)))
        blanks = F.lit(CELL_BLANKS)
        return df.select(*[F.nullif(F.btrim(F.col(f"c{i}"), blanks), F.lit("")).alias(f"c{i}") for i in range(n)])

    def stage(self, spark: Any, paths: Sequence[str | Path], multiline: Sequence[str] = ()) -> tuple[Any, int]:
        """Every file's rows as (`_file`, `_order`, predicate, arg1..): one DataFrame, and its
        width (1 + the most arguments any row can hold). `multiline`: CSV files read with
        quoted line breaks allowed (one task per file)."""
        from pyspark.sql import functions as F
        parts = []
        width = 1
        for index, raw in enumerate(paths):
            path = str(raw)
            header = self._header(spark, path)
            if not header:
                continue
            pred = self._layout(path, header)
            n = len(header)
            cells = self._cells(spark, path, n, _local(path) in {_local(m) for m in multiline})
            blank = " AND ".join(f"c{i} IS NULL" for i in range(n))
            cells = cells.where(f"NOT ({blank})")
            first = F.coalesce(F.col("c0"), F.lit("")) if pred is None else F.lit(pred)
            args = [F.col(f"c{i}") for i in range(1 if pred is None else 0, n)]
            width = max(width, len(args) + 1)
            parts.append((index, path, first, args, cells))
        if not parts:
            return spark.createDataFrame([], "_file string, _order struct<f:int,i:long>, predicate string"), 1
        staged = []
        for index, path, first, args, cells in parts:
            order = F.struct(F.lit(index).alias("f"), F.monotonically_increasing_id().alias("i"))
            padded = args + [F.lit(None).cast("string")] * (width - 1 - len(args))
            staged.append(cells.select(F.lit(path).alias("_file"), order.alias("_order"), first.alias("predicate"),
                                       *[c.alias(f"arg{i + 1}") for i, c in enumerate(padded)]))
        out = staged[0]
        for df in staged[1:]:
            out = out.unionByName(df)
        return out, width

    # ------------------------------------------------------------------ typed tables
    def typed(self, staged: Any, width: int, pred: str) -> Any:
        """The rows of input `pred`, typed (number columns DOUBLE), with `_order`."""
        from pyspark.sql import functions as F
        cols = []
        for i, kind in enumerate(self.kinds[pred]):
            cell = F.col(f"arg{i + 1}") if i + 1 < width else F.lit(None).cast("string")
            cols.append((cell.try_cast("double") if kind == NUM else cell).alias(f"a{i}"))
        if not cols:
            cols = [F.lit(True).alias("a0")]
        return staged.where(F.col("predicate") == pred).select(*cols, "_order")

    def check(self, staged: Any, width: int) -> None:
        """Spark's own check of the staged rows (module docstring): E034 on any misfit."""
        from pyspark.sql import functions as F
        inputs = {p: d for p, d in self.ruleset.decls.items() if d.role == "input"}
        conditions = []
        for pred, decl in sorted(inputs.items()):
            n = decl.arity
            bad = [F.col(f"arg{i}").isNull() for i in range(1, min(n + 1, width))]
            bad += [F.col(f"arg{i}").isNotNull() for i in range(n + 1, width)]
            if n >= width:
                bad.append(F.lit(True))
            for i in range(1, min(n + 1, width)):
                if self.kinds[pred][i - 1] == NUM:
                    value = F.col(f"arg{i}").try_cast("double")
                    bad.append(value.isNull() | F.isnan(value) | (F.abs(value) == float("inf")))
            wrong = bad[0]
            for b in bad[1:]:
                wrong = wrong | b
            conditions.append((F.col("predicate") == pred) & wrong)
        known = F.col("predicate").isin(sorted(inputs)) if inputs else F.lit(False)
        misfit = ~known
        for c in conditions:
            misfit = misfit | c
        rows = staged.where(misfit).drop("_order")
        examples = rows.limit(3).collect()
        if not examples:
            return
        n = rows.count()
        problems = [Diagnostic(Span(r["_file"], 0, 0), ",".join(shown(c) for c in r[1:] if c is not None)
                               + ": does not fit the declarations (an unknown or derived predicate, a wrong number "
                               "of cells, or a cell that is not a number where one is declared)", SPARK_INPUT)
                    for r in examples]
        problems.append(Diagnostic(NO_SPAN, f"{n} row{'s' if n != 1 else ''} of the cohort failed Spark's check; "
                                            "validate the files with the pyDatalog or DuckDB engine for every "
                                            "problem with its line", SPARK_INPUT))
        raise ReasonerError(problems)
