"""The DuckDB engine's answers: `SQLResult` keeps the evaluated database and gives its
tables on demand (counts, Python sets, a `Model`, DuckDB relations, Parquet or CSV
export), the violations, and the firing tables (`_firing_N`, kept by an engine made with
`firings=True`) as the pyDatalog engine's firings and as per-rule patient counts.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Collection, Iterable

import duckdb

from reasoner.engines.model import Firing, Model
from reasoner.io.sqltext import KEY, NUM, quote_ident, sql_string, to_python
from reasoner.language.syntax import Value

if TYPE_CHECKING:
    from reasoner.engines.sql import DuckDBEngine


class SQLResult:
    """The evaluated database: answers stay in DuckDB until asked for."""

    def __init__(self, engine: DuckDBEngine, con: duckdb.DuckDBPyConnection, owner: bool = True,
                 firings: set[str] | None = None):
        self.engine = engine
        self._con = con
        self._firings = firings  # the firing tables the evaluation made, when known
        self.owner = owner  # False: a partition's, closed by the generator that made it
        self.closed = False
        self.patients: int | None = None  # a partition's number of patients, when known

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self.closed:
            raise RuntimeError("this partition's result was replaced by the next partition's")
        return self._con

    def __enter__(self) -> "SQLResult":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.owner:
            self._con.close()
        self.closed = True

    def count(self, pred: str) -> int:
        (n,) = self.con.execute(f"SELECT count(*) FROM {quote_ident(self.engine.table(pred))}").fetchone()
        return n

    def _select(self, table: str, coded: list[bool], prefix: str = "a") -> str:
        """SELECT of a table's columns (`prefix`0..n-1), each patient number (a KEY column,
        `coded`) decoded to its patient id through the partition's `_keys`."""
        if not any(coded):
            return f"SELECT * FROM {quote_ident(table)}"
        columns = ", ".join(f"k{i}.key AS {prefix}{i}" if c else f"t.{prefix}{i}" for i, c in enumerate(coded))
        joins = "".join(f" LEFT JOIN _keys AS k{i} ON k{i}.code = t.{prefix}{i}" for i, c in enumerate(coded) if c)
        return f"SELECT {columns} FROM {quote_ident(table)} AS t{joins}"

    def _table_select(self, pred: str) -> str:
        eng = self.engine
        return self._select(eng.table(pred), [k == KEY for k in eng.kinds[pred]])

    def tuples(self, pred: str) -> set[tuple[Value, ...]]:
        eng = self.engine
        rows = self.con.execute(self._table_select(pred)).fetchall()
        if eng.arity[pred] == 0:
            return {()} if rows else set()
        numeric = [k == NUM for k in eng.kinds[pred]]
        if not any(numeric):
            return set(rows)
        return {tuple(to_python(v, n) for v, n in zip(row, numeric)) for row in rows}

    def violations(self) -> list[Firing]:
        out = []
        for c in self.engine.constraints:
            coded = self.engine.coded_variables(c.index, c.variables)
            rows = self.con.execute(self._select(f"_violation_{c.index}", coded, "v")).fetchall()
            for row in rows:
                values = [to_python(v, isinstance(v, float)) for v in row]
                out.append(Firing(c.index, dict(zip(c.variables, values))))
        return out

    def fill(self, model: Model, preds: Collection[str] | None = None,
             firings_of: Collection[int] | None = None) -> Model:
        """Copy answers into `model`: the facts of `preds` (default: every predicate), the
        violations, and (if the engine keeps them) the firings of the rules `firings_of`
        (default: every rule). When only some firings are copied, `model.fired_for` gets
        every rule's patient count, counted in SQL, so `--rule-counts` needs no firings."""
        for pred in self.engine.arity if preds is None else [p for p in preds if p in self.engine.arity]:
            model.facts[pred] |= self.tuples(pred)
        model.violations.extend(self.violations())
        model.settings = dict(self.engine.settings)
        if self.engine.record_firings:
            self._fill_firings(model, firings_of)
            if firings_of is not None:
                model.fired_for = self.fired_for()
        return model

    def firing_tables(self) -> set[str]:
        """The names of the firing tables this evaluation made (`_firing_N`). Known from
        the evaluation, not read from DuckDB's catalog: `duckdb_tables()` scans every
        attached database and, run while another connection detaches one, kept that
        file open (partitions side by side, reasoner/engines/sql_partitions.py)."""
        if self._firings is not None:
            return set(self._firings)
        return {name for (name,) in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, '_firing_')").fetchall()}

    def fired_for(self) -> dict[int, int]:
        """rule index → for how many patients the rule fired (violations count for
        constraints), as `report.rule_patient_counts` counts a model's firings; rules that
        never fired are left out. Needs an engine made with `firings=True`."""
        eng = self.engine
        if not eng.record_firings:
            raise ValueError("fired_for needs a DuckDBEngine made with firings=True")
        present = self.firing_tables()
        tables = [(i, f"_firing_{i}", f.variables) for i, f in sorted(eng.rule_firings.items())
                  if f"_firing_{i}" in present]
        tables += [(c.index, f"_violation_{c.index}", c.variables) for c in eng.constraints]
        counts = []
        codes = None  # a partition's patient numbers, lowest and highest (patients as numbers)
        if eng.patient_coded and tables:
            codes = self.con.execute("SELECT min(code), max(code) FROM _keys").fetchone()
        for index, table, names in tables:
            key = eng.ruleset.key_variable(eng.ruleset.rules[index])
            if key is not None and key in names:
                v = f"v{names.index(key)}"  # firing and violation columns are v0..vn
                if codes and codes[0] is not None and eng.coded_variables(index, [key])[0]:
                    # a bit per patient number: half the time of count(DISTINCT)'s hash set
                    n = f"coalesce(bit_count(bitstring_agg({v}, {codes[0]}, {codes[1]})), 0)"
                else:
                    n = f"count(DISTINCT {v})"
                counts.append(f"SELECT {index} AS rule, {n} AS n FROM {quote_ident(table)}")
            else:  # a rule about no patient in particular: it fired at all, or not
                counts.append(f"SELECT {index} AS rule, least(count(*), 1) AS n FROM {quote_ident(table)}")
        if not counts:
            return {}
        rows = self.con.execute("\nUNION ALL\n".join(counts)).fetchall()
        return {index: n for index, n in sorted(rows) if n}

    def _fill_firings(self, model: Model, only: Collection[int] | None = None) -> None:
        """Firings as the pyDatalog engine records them (no aggregate rows: no proofs)."""
        eng = self.engine
        present = self.firing_tables()
        for index, firing in eng.rule_firings.items():
            model.variables[index] = firing.variables
            model.heads[index] = firing.head
            if f"_firing_{index}" not in present or (only is not None and index not in only):
                continue
            cursor = self.con.execute(self._select(f"_firing_{index}",
                                                   eng.coded_variables(index, firing.variables), "v"))
            rows = cursor.fetchall()
            if not firing.variables:
                model.firings[index].extend(() for _ in rows)
                continue
            # only DOUBLE columns need converting (3.0 → 3); most firings have none
            doubles = [i for i, d in enumerate(cursor.description) if str(d[1]) == "DOUBLE"]
            if doubles:
                rows = [tuple(to_python(v, True) if i in doubles else v for i, v in enumerate(row))
                        for row in rows]
            model.firings[index].extend(rows)
        for v in model.violations:
            model.firings[v.rule_index].append(tuple(v.bindings.values()))
        for c in eng.constraints:
            model.variables[c.index] = c.variables

    def to_model(self, preds: Collection[str] | None = None, firings_of: Collection[int] | None = None) -> Model:
        """A `Model` of the answers (see `fill` for what `preds` and `firings_of` keep)."""
        return self.fill(Model(), preds, firings_of)

    def relation(self, pred: str) -> duckdb.DuckDBPyRelation:
        """A predicate's table as a DuckDB relation (filter, join, export with DuckDB's API)."""
        if any(k == KEY for k in self.engine.kinds[pred]):
            return self.con.sql(self._table_select(pred))
        return self.con.table(self.engine.table(pred))

    def export(self, directory: str | Path, preds: Iterable[str] | None = None, fmt: str = "parquet") -> list[Path]:
        """Write each predicate (default: the output predicates) to DIRECTORY/PRED.parquet
        (or .csv, with a header a0,a1,...)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if preds is None:
            preds = [p for p, d in self.engine.ruleset.decls.items() if d.role == "output"]
        out = []
        for pred in preds:
            path = directory / f"{pred}.{fmt}"
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
            self.con.execute(f"COPY ({self._table_select(pred)}) TO {sql_string(str(path))} ({options})")
            out.append(path)
        return out
