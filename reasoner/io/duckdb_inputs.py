"""Fact files read by DuckDB: CSV and Parquet staged as text cells, checked in SQL, and
loaded into a compiled rule set's input tables (the bulk path of
`DuckDBEngine.evaluate_csv`, reasoner.engines.sql).

Owns: the `_staging` table of text cells (`file, predicate, arg1..`) and reading CSV
(`read_csv`, all columns VARCHAR) and Parquet (cells cast to text, as the Python reader
reads them) into it; the layouts of the fact form from headers and column names; the SQL
checks of staged cells (unknown and derived predicates, arity, the one number syntax,
control characters) and of loaded rows (whole numbers, ranges, text, enumerations,
`one`); the type checks of Parquet columns; locating each problem's example rows by
line, in Python; and the Python fact reader's diagnosis of a CSV file DuckDB cannot
read. The checks say what reasoner.io.facts says, so both engines refuse the same files
with the same messages. `write_fact_csv` writes the long CSV layout read here.

The rule set's tables are given (`FactFiles(ruleset, arity, kinds, tables)`): what a
compiled engine decides (column kinds, table names), nothing of the engine itself.
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import duckdb

from reasoner.analysis.program import ANY, NUMERIC, RuleSet, check_value, suggest
from reasoner.io.duckdb_lines import Problem, is_parquet, locate, parquet_text, python_diagnosis
from reasoner.io.sqltext import NUM, SQL_TYPE, SYM, count_added, number_text, quote_ident, sql_string, to_python
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.syntax import Fact, Span
from reasoner.language.values import CELL_BLANKS, NUMBER_PATTERN, SQL_BAD_CHARS, shown


@dataclass
class _Staged:
    """The fact files read into `_staging`, by what their headers or columns say."""
    files: list[tuple[str, int, str | None]] = field(default_factory=list)
    """(path, columns, predicate of a per-predicate file)"""
    width: int = 0
    """`_staging`'s columns: file and predicate, then arg1..arg(width-1)."""
    typed: list[Diagnostic] = field(default_factory=list)
    """Parquet cells whose column type no id or symbol can have."""
    column_types: dict[str, list[str]] = field(default_factory=dict)
    """A Parquet file's column types."""
    numeric_in: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Staged position → Parquet files typed numeric there."""
    mistyped: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    """Predicate → (Parquet file, staged position) whose cells are refused for their
    column's type (`typed`): those rows are not loaded, as the Python reader loads none."""

    def add(self, path: str, n: int, pred: str | None) -> None:
        self.files.append((path, n, pred))
        self.width = max(self.width, n + (pred is not None))


class FactFiles:
    """A compiled rule set's input tables, filled from fact files and checked in SQL.

    `arity`, `kinds` (NUM or SYM per argument) and `tables` (predicate → table name) are
    the engine's; a `FactFiles` is cheap, made anew for each load."""

    def __init__(self, ruleset: RuleSet, arity: Mapping[str, int], kinds: Mapping[str, list[str]],
                 tables: Mapping[str, str]):
        self.ruleset = ruleset
        self.arity = arity
        self.kinds = kinds
        self._tables = tables
        self._loaded: dict[str, str] = {}  # predicate → the table its rows were loaded into, if not its own
        self._split: dict[str, int] = {}  # predicate loaded to `_all_<table>` → its patient's position there
        self._staged_rows: dict[str, str] = {}  # predicate → its staged rows, typed, with their row in the files

    def table(self, pred: str) -> str:
        return self._tables[pred]

    # ------------------------------------------------------------------ loading
    def load(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str | Path] | str | Path,
             check: bool, split: Callable[[duckdb.DuckDBPyConnection], Mapping[str, int]] | None = None) -> set:
        """Stage the files in `_staging` (kept for the caller to drop), check them, and
        fill the input tables; returns the predicates that hold rows.

        `split(con)`, for a cohort evaluated in partitions, numbers the patients from
        `_staging` into a table `_patients (key, part, code)` and returns the input
        predicates to split (predicate → position of the patient): their rows go to
        `_all_<table>` with the patient's number `_code` in place of the patient, not
        to their own table (in the same statement: filling the tables, then copying them
        with their partitions, cost a second pass). Without the patient's id: at 1,000,000
        patients, writing the ids to the database file a second time cost 2 s of the 12 s
        the loading took; `_patients` gives a code's id back."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        staged = self._read_layouts(con, paths, check)
        self._stage(con, staged)
        dirty: set[tuple[str, int]] = set()  # (predicate, position) with a bad cell
        problems = self._check_staging(con, staged.width, staged.numeric_in, dirty) if check else []
        nonempty = self._fill(con, staged, check, dirty, split(con) if split else {})
        if check:
            self._raise_problems(con, staged, problems)
        return nonempty

    def check_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        """Check the input tables filled from Python values or data frames
        (`DuckDBEngine.evaluate_tables`): problems raise `ReasonerError`, at `<tables>`."""
        problems = self.check_loaded(con)
        if problems:
            raise ReasonerError([Diagnostic(Span("<tables>", 0, 0), p.message
                                            + (f" ({p.n} such {p.unit}s)" if p.n > 1 else ""), p.code)
                                 for p in problems])

    def _read_layouts(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str | Path], check: bool) -> _Staged:
        """Each file's layout from its header (CSV) or column names (Parquet), checked."""
        staged = _Staged()
        for path in paths:
            if is_parquet(path):
                self._read_parquet_layout(con, str(path), check, staged)
                continue
            header = _csv_header(path)
            if not header:
                continue
            pred = None
            if header[0] != "predicate":
                pred = self._csv_predicate(str(path), header)
            staged.add(str(path), len(header), pred)
        return staged

    def _read_parquet_layout(self, con: duckdb.DuckDBPyConnection, path: str, check: bool, staged: _Staged) -> None:
        header = self._parquet_header(con, path)
        pred = None if header[:1] == ["predicate"] else Path(path).stem
        if check:
            staged.typed += self._check_parquet_types(con, path, pred, staged.mistyped)
        types = [str(t).upper() for _, t, *_ in
                 con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(path)})").fetchall()]
        staged.column_types[path] = types
        for j, sql_type in enumerate(types):
            if _is_numeric_type(sql_type):  # a typed number: its text is DuckDB's, not the one syntax
                staged.numeric_in[j + (pred is not None)].append(path)
        staged.add(path, len(header), pred)

    def _csv_predicate(self, path: str, header: list[str]) -> str:
        """The predicate of a per-predicate CSV file, named after it, with its argument
        names as header."""
        pred = Path(path).stem
        decl = self.ruleset.decls.get(pred)
        if decl is None:
            raise ReasonerError.at(Span(path, 1, 1), "a fact CSV starts with the header "
                                   "predicate,arg1,arg2,... or is named after a declared predicate "
                                   "(weight_kg.csv) with its argument names as header"
                                   + suggest(pred, self.ruleset.decls), "E015")
        expected = [a.name for a in decl.args]
        if header != expected:
            raise ReasonerError.at(Span(path, 1, 1), f"{pred}.csv needs the header "
                                   f"{','.join(expected)}, not {','.join(header)}", "E015")
        return pred

    def _stage(self, con: duckdb.DuckDBPyConnection, staged: _Staged) -> None:
        """Create `_staging` and read every file's cells into it, trimmed, blanks NULL."""
        width = staged.width
        cols = ", ".join(["file VARCHAR", "predicate VARCHAR"] + [f"arg{i} VARCHAR" for i in range(1, width)])
        con.execute(f"CREATE TABLE _staging ({cols})")
        for path, n, pred in staged.files:
            cells = [f"NULLIF({_trim(f'c{i}')}, '')" for i in range(n)]
            first = f"coalesce({_trim('c0')}, '')" if pred is None else sql_string(pred)
            if pred is None:
                cells = cells[1:]
            select = ", ".join([sql_string(path), first] + cells + ["NULL"] * (width - 1 - len(cells)))
            if is_parquet(path):
                _stage_parquet(con, path, select, n, staged.column_types[path])
            else:
                self._stage_csv(con, path, select, n)

    def _stage_csv(self, con: duckdb.DuckDBPyConnection, path: str, select: str, n: int) -> None:
        try:
            con.execute(_staging_insert(path, select, n, parallel=True))
        except duckdb.Error as exc:
            # DuckDB names a line but says little: the Python reader says what is wrong
            found = python_diagnosis(path, self.ruleset)
            if found:
                raise ReasonerError(found) from None
            # valid CSV the parallel reader refuses: a quoted line break (read sequentially),
            # CRLF and LF line ends mixed (read without DuckDB's strict mode; the Python
            # reader, which found nothing wrong above, vouches for the file)
            for parallel, strict in ((False, True), (False, False)):
                try:
                    con.execute(f"DELETE FROM _staging WHERE file = {sql_string(path)}")
                    con.execute(_staging_insert(path, select, n, parallel=parallel, strict=strict))
                    break
                except duckdb.Error:
                    continue
            else:
                line = re.search(r"on Line: (\d+)", str(exc))
                raise ReasonerError.at(Span(path, int(line.group(1)) if line else 0, 1),
                                       str(exc).splitlines()[0], "E015") from None

    def _fill(self, con: duckdb.DuckDBPyConnection, staged: _Staged, check: bool,
              dirty: set[tuple[str, int]], keyed: Mapping[str, int]) -> set:
        """Each input table from its staged rows, typed (those of `keyed` predicates to
        `_all_<table>`, the patient as its number); returns the predicates that hold rows."""
        nonempty: set = set()
        self._loaded = {pred: "_all_" + self.table(pred) for pred in keyed}
        self._split = dict(keyed)
        # a statement per predicate the files hold: each scans the staged predicates (a
        # rule set's ~50 derived predicates, scanned for nothing, cost ~1 s at 10 million rows)
        present = {p for (p,) in con.execute("SELECT DISTINCT predicate FROM _staging").fetchall()}
        for pred in sorted(self.arity):
            if (self.arity[pred] >= staged.width or pred not in present) and pred not in keyed:
                continue
            where = f"predicate = {sql_string(pred)}"
            if self.arity[pred] >= staged.width or pred not in present:  # made empty, with its columns
                values = [f"CAST(NULL AS {SQL_TYPE[k]})" for k in self.kinds[pred]]
                where = "false"
            elif check:  # a cell found bad above is left out, not an error here
                values = [self._valid_cell(pred, i, staged.numeric_in) if (pred, i + 1) in dirty
                          else f"TRY_CAST(arg{i + 1} AS {SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred])]
            else:
                values = [f"CAST(arg{i + 1} AS {SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred])]
            if check and where != "false":
                where += "".join(f" AND {v} IS NOT NULL" for v in values)
                # a row with a cell too many, or a typed Parquet cell an id cannot be, is that
                # problem alone, as in Python: not loaded, not checked further
                where += "".join(f" AND arg{j} IS NULL" for j in range(self.arity[pred] + 1, staged.width))
                where += "".join(f" AND NOT (file = {sql_string(path)} AND arg{i} IS NOT NULL)"
                                 for path, i in staged.mistyped.get(pred, ()))
                typed = ", ".join(["rowid AS _row"] + [f"{v} AS a{i}" for i, v in enumerate(values)])
                self._staged_rows[pred] = f"SELECT {typed} FROM _staging WHERE {where}"
            if pred in keyed:
                columns = "".join(f"{v} AS a{i}, " for i, v in enumerate(values) if i != keyed[pred])
                statement = (f"CREATE TABLE {quote_ident(self._loaded[pred])} AS SELECT DISTINCT {columns}"
                             f"p.code AS _code FROM _staging JOIN _patients AS p "
                             f"ON p.key = {values[keyed[pred]]} "
                             f"WHERE {where}")
            else:
                statement = (f"INSERT INTO {quote_ident(self.table(pred))} SELECT DISTINCT "
                             f"{', '.join(values) or 'TRUE'} FROM _staging WHERE {where}")
            if count_added(con.execute(statement)):
                nonempty.add(pred)
        return nonempty

    def _raise_problems(self, con: duckdb.DuckDBPyConnection, staged: _Staged, problems: list[Problem]) -> None:
        """The problems of the staged cells, those of the loaded rows and of the Parquet
        column types, located by line, as one `ReasonerError` (nothing wrong: returns)."""
        width = staged.width
        problems += self.check_loaded(con, texts=False)  # staging checked the text
        if problems:
            for path, _, _ in staged.files:  # a NUL byte: DuckDB reads it, Python's csv before 3.11 does not
                if not is_parquet(path) and con.execute(
                        f"SELECT 1 FROM _staging WHERE file = {sql_string(path)} AND contains(concat("
                        f"{', '.join(['predicate'] + [f'arg{i}' for i in range(1, width)])}), chr(0)) LIMIT 1"
                        ).fetchone():
                    found = python_diagnosis(path, self.ruleset)
                    if found and any(d.code == "E015" for d in found):
                        raise ReasonerError(found) from None
        if problems or staged.typed:
            raise ReasonerError(sorted(locate(self.ruleset, problems, staged.files) + staged.typed, key=Diagnostic.sort_key))

    # ------------------------------------------------------------------ checking in SQL
    def _parquet_header(self, con: duckdb.DuckDBPyConnection, path: str) -> list[str]:
        """A Parquet fact file's column names, checked for one of the two layouts with the
        Python reader's messages."""
        try:
            header = [d[0] for d in con.execute(f"SELECT * FROM read_parquet({sql_string(path)}) LIMIT 0").description]
        except duckdb.Error as exc:
            raise ReasonerError.at(Span(path, 0, 0), f"cannot read Parquet: {str(exc).splitlines()[0]}",
                                   "E015") from None
        if header[:1] != ["predicate"]:
            decl = self.ruleset.decls.get(Path(path).stem)
            if decl is None or [a.name for a in decl.args] != header:
                raise ReasonerError.at(Span(path, 0, 0), "a Parquet fact file has a column `predicate` then "
                                       "arguments, or is named after a declared predicate with its argument names "
                                       "as columns", "E015")
        return header

    def _check_parquet_types(self, con: duckdb.DuckDBPyConnection, path: str, pred: str | None,
                             mistyped: dict[str, list[tuple[str, int]]]) -> list[Diagnostic]:
        """Cells of a typed Parquet column (DOUBLE, BOOLEAN, DATE, ...) where an id or a
        symbol is declared. Staging reads every cell as text, which would turn 17.0 into
        the id "17.0"; the Python reader refuses such a cell, and so does this check."""
        columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(path)})").fetchall()
        decls = self.ruleset.decls
        out: list[Diagnostic] = []
        for j, (name, sql_type, *_) in enumerate(columns):
            i = j if pred is None else j + 1  # argument position (1-based) this column holds
            if i == 0 or str(sql_type).upper() in _TEXT_OR_INTEGER:
                continue
            preds = [p for p, d in decls.items() if d.role == "input" and i <= d.arity and self.kinds[p][i - 1] != NUM]
            if pred is not None:
                preds = [p for p in preds if p == pred]
            if not preds:
                continue
            which = sql_string(pred) if pred is not None else 'trim(CAST("predicate" AS VARCHAR))'
            where = f"{which} IN ({', '.join(sql_string(p) for p in preds)}) AND {quote_ident(name)} IS NOT NULL"
            source = f"read_parquet({sql_string(path)}, file_row_number = true) WHERE {where}"
            (n,) = con.execute(f"SELECT count(*) FROM {source}").fetchone()
            for p in preds if n else ():
                mistyped[p].append((path, i))
            rows = con.execute(f"SELECT file_row_number + 1, {which}, {quote_ident(name)} FROM {source} "
                               "ORDER BY file_row_number LIMIT 3").fetchall() if n else []
            for row_number, p, value in rows:
                why = check_value(value, decls[p].args[i - 1], self.ruleset.types)
                count = f" ({n} such rows)" if n > 1 else ""
                out.append(Diagnostic(Span(path, row_number, 1), f"{p} argument {decls[p].args[i - 1].name}: "
                                      f"{why}{count}", "E004"))
        return out

    def _valid_cell(self, pred: str, i: int, numeric_in: Mapping[int, list[str]]) -> str:
        """Argument i of `pred` from its staged cell, typed: NULL where the cell breaks the
        rules of reasoner.language.values (not a number in the one syntax, text with a control
        character), as `_check_staging` reports it."""
        cell = f"arg{i + 1}"
        if self.kinds[pred][i] == NUM:
            return f"(CASE WHEN {_number_ok(cell, numeric_in.get(i + 1, []))} THEN TRY_CAST({cell} AS DOUBLE) END)"
        if self.ruleset.decls[pred].args[i].type != ANY:
            return f"(CASE WHEN NOT regexp_matches({cell}, {sql_string(SQL_BAD_CHARS)}) THEN {cell} END)"
        return f"TRY_CAST({cell} AS VARCHAR)"

    def _check_staging(self, con: duckdb.DuckDBPyConnection, width: int,
                       numeric_in: Mapping[int, list[str]] | None = None,
                       dirty: set[tuple[str, int]] | None = None) -> list[Problem]:
        """Unknown and derived predicates, arity, cells that are not numbers in the one
        number syntax, ids and symbols with control characters (reasoner.language.values): one scan
        grouped by predicate finds them, a query per kind of problem found shows examples."""
        decls = self.ruleset.decls
        numeric_in = numeric_in or {}
        positions = range(1, width)
        numeric_at = {i: [p for p, d in decls.items() if d.role == "input" and i <= d.arity
                          and self.kinds[p][i - 1] == NUM] for i in positions}
        text_at = {i: [p for p, d in decls.items() if d.role == "input" and i <= d.arity
                       and self.kinds[p][i - 1] == SYM and d.args[i - 1].type != ANY] for i in positions}

        def not_number(i: int) -> str:
            return f"arg{i} IS NOT NULL AND NOT {_number_ok(f'arg{i}', numeric_in.get(i, []))}"

        def bad_text(i: int) -> str:
            return f"arg{i} IS NOT NULL AND regexp_matches(arg{i}, {sql_string(SQL_BAD_CHARS)})"

        screened = {i: self._screen(con, i, numeric_at[i], text_at[i], numeric_in.get(i, [])) for i in positions}
        aggregates = ["count(*)"] + [f"count(arg{i})" for i in positions]
        for j, (at, test) in enumerate(((numeric_at, not_number), (text_at, bad_text))):
            for i in positions:
                if at[i] and screened[i][j]:
                    preds = ", ".join(sql_string(p) for p in at[i])
                    aggregates.append(f"count(*) FILTER (WHERE predicate IN ({preds}) AND {test(i)})")
                else:
                    aggregates.append("0")
        summary = con.execute(f"SELECT predicate, {', '.join(aggregates)} FROM _staging GROUP BY predicate").fetchall()
        checks: list[tuple[str, str, str]] = []  # (condition, what is wrong, code)
        for row in sorted(summary, key=lambda r: r[0]):
            pred, total = row[0], row[1]
            filled, non_numbers, bad_texts = row[2:1 + width], row[1 + width:2 * width], row[2 * width:]
            where = f"predicate = {sql_string(pred)}"
            decl = decls.get(pred)
            if decl is None:
                checks.append((where, f"unknown predicate {shown(pred)}" + suggest(pred, [
                    p for p, d in decls.items() if d.role == "input"]), "E002"))
                continue
            if decl.role != "input":
                checks.append((where, f"{pred} is derived by the rules ({decl.role}); a fact file states input "
                               "predicates only", "E014"))
                continue
            n = decl.arity
            missing = [f"arg{i} IS NULL" for i in range(1, min(n + 1, width))]
            extra = [f"arg{i} IS NOT NULL" for i in range(n + 1, width)]
            bad = " OR ".join(missing + extra) if n < width else "TRUE"
            if n >= width or any(filled[i - 1] != total for i in range(1, n + 1)) or any(filled[n:]):
                checks.append((f"{where} AND ({bad})", f"{pred} takes {n} argument{'s' if n != 1 else ''} "
                               f"({', '.join(a.name for a in decl.args)})", "E003"))
                where += f" AND NOT ({bad})"  # a row of the wrong length is reported for that alone, as in Python
            for i in range(1, min(n + 1, width)):
                if (non_numbers[i - 1] or bad_texts[i - 1]) and dirty is not None:
                    dirty.add((pred, i))
                if non_numbers[i - 1] and self.kinds[pred][i - 1] == NUM:
                    checks.append((f"{where} AND {not_number(i)}",
                                   f"{pred} argument {decl.args[i - 1].name}: expected a number in the one number "
                                   "syntax (ASCII digits, an optional - and one .; no exponent)", "E004"))
                if bad_texts[i - 1] and self.kinds[pred][i - 1] == SYM:
                    checks.append((f"{where} AND {bad_text(i)}", f"{pred} argument {decl.args[i - 1].name}: "
                                   "holds a control character or line separator", "E004"))
        args = ", ".join(f"arg{i}" for i in positions) or "NULL"
        out = []
        for (code, what, n), row in self._failed(con, "_staging", checks, f"file, predicate, {args}"):
            cells = tuple(c for c in row[2:] if c is not None)
            out.append(Problem(code, f"{','.join(shown(c) for c in (row[1],) + cells)}: {what}", n, "row", row[1],
                                cells=cells, file=row[0]))
        return out

    @staticmethod
    def _screen(con: duckdb.DuckDBPyConnection, i: int, numeric: list[str], text: list[str],
                typed_files: Sequence[str]) -> tuple[bool, bool]:
        """Whether staged position `i` may hold a cell that is not a number where
        `numeric` predicates take one, or text with a bad character where `text`
        predicates take it: the tests of `_check_staging`, run once per distinct cell.

        Why: the regular expressions cost ~0.5 s per position over 10 million cells, and a
        cohort's cells repeat (1,335 distinct values at 10 million rows, a million at the
        patient's position); a clean position then needs no per-predicate count."""
        if not numeric and not text:
            return False, False

        def among(preds: list[str]) -> str:
            return f"predicate IN ({', '.join(sql_string(p) for p in preds)})" if preds else "false"
        cell = f"arg{i}"
        keys = [f"{cell}", f"{among(numeric)} AS n", f"{among(text)} AS t"] + (["file"] if typed_files else [])
        bad_number, bad_text = con.execute(
            f"SELECT count(*) FILTER (WHERE n AND NOT {_number_ok(cell, typed_files)}), "
            f"count(*) FILTER (WHERE t AND regexp_matches({cell}, {sql_string(SQL_BAD_CHARS)})) "
            f"FROM (SELECT DISTINCT {', '.join(keys)} FROM _staging WHERE {cell} IS NOT NULL) AS cells").fetchone()
        return bool(bad_number), bool(bad_text)

    def _with_patient(self, pred: str, table: str) -> str:
        """`pred`'s loaded rows with every argument: an `_all_` table's patient codes
        looked up in `_patients` (`table` itself for the other predicates)."""
        k = self._split.get(pred)
        if k is None:
            return table
        columns = ", ".join(f"p.key AS a{i}" if i == k else f"t.a{i}" for i in range(self.arity[pred]))
        return (f"(SELECT {columns}, t._code FROM {table} AS t JOIN _patients AS p "
                f"ON p.code = t._code) AS {table}")

    @staticmethod
    def _failed(con: duckdb.DuckDBPyConnection, table: str, checks: list[tuple[str, str, str]],
                columns: str, examples: Callable[[str], str] | None = None) -> list[tuple[tuple[str, str, int], tuple]]:
        """Count every check's failures in one scan of TABLE; up to 3 example rows of each:
        TABLE's first (staged files: in file order), or those of the query
        `examples(condition)`."""
        if not checks:
            return []
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, _, _ in checks)
                             + f" FROM {table}").fetchone()
        out = []
        for (cond, what, code), n in zip(checks, counts):
            if n:
                query = examples(cond) if examples else f"SELECT {columns} FROM {table} WHERE {cond} LIMIT 3"
                for row in con.execute(query).fetchall():
                    out.append(((code, what, n), row))
        return out

    def check_loaded(self, con: duckdb.DuckDBPyConnection, texts: bool = True) -> list[Problem]:
        """Whole numbers, ranges, text, enumerations and `one`, over the loaded input tables.
        A fact is reported for its first problem only, in argument order, and a fact with a
        problem does not count towards `one`: as the Python reader reports them."""
        problems: list[Problem] = []
        rs = self.ruleset
        for pred, decl in rs.decls.items():
            if decl.role != "input":
                continue
            checks: list[tuple[str, str, str]] = []
            split = self._split.get(pred)  # the patient's position, where its code stands for it
            patient_checked = False
            for i, spec in enumerate(decl.args):
                col = f"a{i}"
                where = f"{pred} argument {spec.name}"
                before = len(checks)
                if spec.type == "integer":
                    checks.append((f"{col} <> floor({col})", f"{where}: expected a whole number", "E004"))
                if spec.type in NUMERIC and spec.low is not None and spec.high is not None:
                    unit = f" {spec.unit}" if spec.unit else ""
                    checks.append((f"{col} < {number_text(spec.low)} OR {col} > {number_text(spec.high)}",
                                   f"{where}: outside the valid range {_num(spec.low)}–{_num(spec.high)}{unit}",
                                   "E005"))
                if texts and spec.type not in NUMERIC and spec.type != ANY:  # the text rules of reasoner.language.values
                    checks.append((f"{col} = '' OR {col} <> trim({col}) OR regexp_matches({col}, "
                                   f"{sql_string(SQL_BAD_CHARS)})", f"{where}: an empty {spec.type}, or one that "
                                   "begins or ends with a space or holds a control character", "E004"))
                if spec.type in rs.types:
                    values = rs.types[spec.type].values
                    checks.append((f"{col} NOT IN ({', '.join(sql_string(v) for v in values)})",
                                   f"{where}: not a value of type {spec.type} (one of: {', '.join(values)})", "E006"))
                patient_checked |= i == split and len(checks) > before
            firsts = [(f"({cond}) AND NOT coalesce({' OR '.join(f'({c})' for c, _, _ in checks[:j])}, false)"
                       if j else cond, what, code) for j, (cond, what, code) in enumerate(checks)]
            kinds = self.kinds[pred]
            table = quote_ident(self._loaded.get(pred, self.table(pred)))
            whole = self._with_patient(pred, table)  # every argument, a patient's id looked up from its code
            counted = whole if patient_checked else table  # the ids only where a check reads them
            arguments = ", ".join(f"a{i}" for i in range(decl.arity)) or "*"
            staged = self._staged_rows.get(pred)

            def examples(cond: str) -> str:
                if staged is not None:  # the first rows in the files, as the Python reader meets them
                    return f"SELECT {arguments} FROM ({staged}) AS s WHERE {cond} ORDER BY _row LIMIT 3"
                # tables filled from Python: the same examples every run
                return f"SELECT {arguments} FROM {whole} WHERE {cond} ORDER BY ALL LIMIT 3"
            for (code, what, n), row in self._failed(con, counted, firsts, arguments, examples):
                fact = Fact(pred, tuple(to_python(v, k == NUM) for v, k in zip(row, kinds)))
                text = str(fact) if str(fact).isprintable() else shown(str(fact))
                problems.append(Problem(code, f"{text}: {what}", n, "fact", pred, values=fact.args))
            k = decl.key_index
            if decl.single and k is not None:
                sound = f"WHERE NOT coalesce({' OR '.join(f'({c})' for c, _, _ in checks)}, false)" if checks else ""
                if k == split and not patient_checked:  # grouped by the patient's code, its id looked up after
                    found = (f"SELECT p.key, f.n, f.g FROM (SELECT _code AS g, count(*) AS n FROM {table} {sound} "
                             "GROUP BY g HAVING count(*) > 1) AS f JOIN _patients AS p ON p.code = f.g")
                else:
                    found = (f"SELECT a{k}, count(*), a{k} FROM {counted} {sound} "
                             f"GROUP BY a{k} HAVING count(*) > 1")
                first = con.execute(f"{found} ORDER BY 3 LIMIT 3").fetchall()
                if first and staged is not None:
                    # the first three rows in the files that differ from their patient's first
                    # fact (a patient may give several): the Python reader reports each there
                    facts = ", ".join(f"a{i}" for i in range(decl.arity))
                    first = con.execute(
                        f"SELECT a{k}, count(DISTINCT f) OVER (PARTITION BY a{k}) AS n, _row FROM "
                        f"(SELECT a{k}, _row, row({facts}) AS f, first_value(row({facts})) OVER "
                        f"(PARTITION BY a{k} ORDER BY _row) AS f0 FROM ({staged}) AS s {sound}) AS w "
                        f"QUALIFY f <> f0 ORDER BY _row LIMIT 3").fetchall()
                for key, n, _ in first:  # else the first three by code (first mention) or by id
                    # the message names the first fact once _locate has found it
                    problems.append(Problem("E017", f"{pred} holds one fact per patient; {shown(str(key))} has {n} "
                                             "different ones", 0, "", pred, key=(k, key)))
        return problems


def _csv_header(path: str | Path) -> list[str]:
    """A CSV fact file's header cells, trimmed ([] for an empty file)."""
    try:  # DuckDB reads the rest; bad bytes further on are its to report, by line
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            return [h.strip(CELL_BLANKS) for h in next(csv.reader(fh), [])]
    except OSError as exc:
        raise ReasonerError.at(Span(str(path), 0, 0), f"cannot read: {exc.strerror or exc}", "E015") from None
    except csv.Error as exc:
        raise ReasonerError.at(Span(str(path), 1, 1), f"malformed CSV: {exc}", "E015") from None


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: str, select: str, n: int, types: list[str]) -> None:
    try:
        con.execute(f"INSERT INTO _staging SELECT {select} FROM "
                    f"({parquet_text(path, n, types)}) WHERE {_not_blank(n)}")
    except duckdb.Error as exc:  # a corrupt page: the file's problem, not a crash
        if isinstance(exc, (duckdb.InterruptException, duckdb.OutOfMemoryException)):
            raise
        raise ReasonerError.at(Span(path, 0, 0), f"cannot read Parquet: {str(exc).splitlines()[0]}",
                               "E015") from None


_TEXT_OR_INTEGER = {"VARCHAR", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                    "UINTEGER", "UBIGINT", "UHUGEINT"}
"""Parquet column types whose cells read as the same id or symbol in both engines."""


def _is_numeric_type(sql_type: str) -> bool:
    return sql_type in _TEXT_OR_INTEGER - {"VARCHAR"} or sql_type in ("FLOAT", "REAL", "FLOAT4", "DOUBLE") \
        or sql_type.startswith("DECIMAL")


def _trim(cell: str) -> str:
    """A staged cell trimmed as the Python reader trims it: DuckDB's `trim()` takes exactly
    the Unicode space separators, reasoner.language.values.CELL_BLANKS (a test checks every one)."""
    return f"trim({cell})"


def _number_ok(cell: str, typed_files: Sequence[str] = ()) -> str:
    """SQL: the staged cell is a number in the one syntax (reasoner.language.values) and finite; a
    cell of a Parquet column typed as a number only needs to be finite."""
    syntax = f"regexp_full_match({cell}, {sql_string(NUMBER_PATTERN)})"
    if typed_files:
        syntax = f"({syntax} OR file IN ({', '.join(sql_string(f) for f in typed_files)}))"
    return f"({syntax} AND coalesce(isfinite(TRY_CAST({cell} AS DOUBLE)), false))"


def _staging_insert(path: str, select: str, n: int, parallel: bool, strict: bool = True) -> str:
    """Read one fact CSV of `n` columns, all as text, into `_staging` (blank rows skipped)."""
    names = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n))
    return (f"INSERT INTO _staging SELECT {select} FROM read_csv({sql_string(path)}, header = false, skip = 1, "
            f"columns = {{{names}}}, delim = ',', quote = '\"', escape = '\"', null_padding = true, "
            f"auto_detect = false, parallel = {str(parallel).lower()}"
            f"{'' if strict else ', strict_mode = false'}) WHERE {_not_blank(n)}")


def _not_blank(n: int) -> str:
    """A staged row with a cell that is not blank (blank rows are skipped, as in CSV)."""
    return " OR ".join(f"NULLIF({_trim(f'c{i}')}, '') IS NOT NULL" for i in range(n))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def write_fact_csv(path: str | Path, facts: Iterable[Fact]) -> None:
    """Facts to the long CSV layout that `evaluate_csv` (and `load_facts`) read."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        rows = [[f.pred, *[repr(a) if isinstance(a, float) else a for a in f.args]] for f in facts]
        width = max((len(r) for r in rows), default=1)
        writer = csv.writer(fh)
        writer.writerow(["predicate"] + [f"arg{i}" for i in range(1, width)])
        writer.writerows(rows)
