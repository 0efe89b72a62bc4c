"""Rule → SQL, as sqlglot expression trees: the one place the evaluation program is built.

The DuckDB engine (`sql.py`) compiles the lowered program (`plan/lowered.py`) through this module
and runs what `render` makes of it for DuckDB; `DuckDBEngine.sql_script(dialect=...)`
renders the same trees for Spark SQL and Trino. What it owns, as trees, never as text:

- the tables of the predicates (`ddl`) and a recursive component's `_delta_`/`_new_`
  tables, the rule set's own facts (`static_insert`);
- a rule body as one SELECT (`Body`): joins on the variables, constants as literals,
  `X = expr` substituted, comparisons in WHERE, negation as `NOT EXISTS`, an aggregate
  as a GROUP BY subquery over the DISTINCT rows of its body (`LEFT JOIN` and
  `COALESCE(val, 0)` for count and sum, inner join for min and max);
- arithmetic with `semantics.py`'s "no value": `a / NULLIF(b, 0E0)`, `IS NOT NULL` on an
  assignment that may lack a value, `min`/`max` wrapped in a CASE that gives NULL when
  an argument that may lack a value has none (LEAST and GREATEST skip NULLs on DuckDB
  and Spark, not on Trino: the CASE makes all three alike);
- the statements: rule, firing and constraint SELECTs (`rule_select`, `firing_select`,
  `conclusion`), `INSERT ... UNION ... EXCEPT` (`insert`; rules that conclude constants
  united per constant, `_by_constants`), `CREATE TABLE ... AS`
  (`create_as`), a semi-naive round's growth (`grow`), emptying and dropping tables.

Predicate names are user data: every table name is a quoted identifier, every value a
literal, and sqlglot quotes and escapes them for the dialect (`"a""b"` for DuckDB and
Trino, `` `a"b` `` for Spark, where it also escapes backslashes in strings). Numbers are
DOUBLE literals in E notation (`38E0`; a negative one is `-38E0`, a negation of one).

`render(tree, dialect)` is the one place the dialects differ: DuckDB gets the trees as
built; for Spark and Trino, `FSUM` (DuckDB's compensated sum, near the correctly rounded
`math.fsum` of the pyDatalog engine) becomes plain `SUM` (whose last bit may depend on
the order of the rows), temporary tables become plain tables (Spark's `CREATE TEMPORARY`
is a view), and emptying a table is `TRUNCATE TABLE` (DELETE needs Delta, Iceberg or a
Trino connector that supports it). Only the DuckDB rendering is run by the tests; the
others are checked by sqlglot's parser for that dialect.

Not here: reading and checking CSV and Parquet files (`read_csv`, `read_parquet`,
`regexp_full_match`, `TRY_CAST`, `rowid`, `unnest` of bound parameters, `FILTER`,
`EXCLUDE`, `COPY`), which is DuckDB's own I/O and stays SQL text (reasoner.io.duckdb_inputs,
`sql.py`, `sql_result.py`), built with the helpers of reasoner.io.sqltext (where the column
kinds `NUM`, `SYM` and `number_text` live too); and the report rows of `report_sql.py`.
"""
from __future__ import annotations

import itertools
from functools import reduce
from typing import Iterator, Mapping, Sequence

from sqlglot import exp
from sqlglot.errors import ErrorLevel

from reasoner.io.sqltext import KEY, NUM, SYM, number_text
from reasoner.plan.lowered import LoweredAggregate, LoweredRule
from reasoner.analysis.program import Step
from reasoner.plan.semantics import may_lack_value
from reasoner.language.syntax import Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Negation, Setting, Value, Var

DIALECTS = ("duckdb", "spark", "trino")
"""The dialects `render` writes (sqlglot's names for them)."""

_TYPE = {NUM: exp.DataType.Type.DOUBLE, SYM: exp.DataType.Type.VARCHAR, KEY: exp.DataType.Type.BIGINT}
_COMPARE = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_ARITHMETIC = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}


# ----------------------------------------------------------------------------- leaves
def ident(name: str, quoted: bool = True) -> exp.Identifier:
    """A name: quoted (a table, user data) or plain (the aliases and columns made here)."""
    return exp.Identifier(this=name, quoted=quoted)


def table(name: str, alias: str | None = None) -> exp.Table:
    out = exp.Table(this=ident(name))
    if alias is not None:
        out.set("alias", exp.TableAlias(this=ident(alias, False)))
    return out


def column(name: str, of: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name, False), table=ident(of, False) if of else None)


def aliased(e: exp.Expression, name: str) -> exp.Alias:
    return exp.Alias(this=e, alias=ident(name, False))


def number(value: int | float) -> exp.Expression:
    """A DOUBLE literal; a negative one is the negation of one (sqlglot's own
    `Literal.number` would rewrite `-3E0` as the integer `-3`)."""
    text = number_text(value)
    if text.startswith("-"):
        return exp.Neg(this=exp.Literal(this=text[1:], is_string=False))
    return exp.Literal(this=text, is_string=False)


def literal(value: Value) -> exp.Expression:
    return exp.Literal(this=value, is_string=True) if isinstance(value, str) else number(value)


def and_(conds: Sequence[exp.Expression]) -> exp.Expression:
    return reduce(lambda a, b: exp.And(this=a, expression=b), conds)


def _star_from(source: exp.Expression) -> exp.Select:
    return exp.Select(expressions=[exp.Star()], from_=exp.From(this=source))


# ----------------------------------------------------------------------------- a body
class Body:
    """One SELECT under construction: FROM and joins, WHERE conditions and, for every
    variable bound so far, the expression that holds its value."""

    def __init__(self, gen: "SQLGen", aliases: Iterator[int], overrides: Mapping[int, str] | None = None):
        self.gen = gen
        self.aliases = aliases
        self.overrides = overrides or {}
        self.env: dict[str, exp.Expression] = {}
        self.from_: exp.Expression | None = None
        self.joins: list[exp.Join] = []
        self.where: list[exp.Expression] = []

    def value(self, name: str) -> exp.Expression:
        """The variable's expression; each use its own copy (a node has one parent)."""
        e = self.env[name]
        if type(e) is exp.Column:  # most are: cheaper made anew than deep-copied
            return column(e.name, e.table or None)
        return e.copy()

    # ---- expressions
    def expr(self, e: Expr) -> exp.Expression:
        if isinstance(e, Var):
            return self.value(e.name)
        if isinstance(e, Const):
            return literal(e.value)
        if isinstance(e, Setting):
            out = number(self.gen.settings[e.name])  # type: ignore[arg-type]
            out.add_comments([f" ${e.name} "])
            return out
        if isinstance(e, BinOp):
            left, right = self.expr(e.left), self.expr(e.right)
            if e.op == "/":  # x / 0 has no value (semantics.py): NULL, which no comparison passes
                return exp.Paren(this=exp.Div(this=left, expression=exp.Nullif(this=right, expression=number(0))))
            return exp.Paren(this=_ARITHMETIC[e.op](this=left, expression=right))
        if isinstance(e, Call):
            args = [self.expr(a) for a in e.args]
            if e.func == "abs":
                return exp.Abs(this=args[0])
            fn = exp.Least if e.func == "min" else exp.Greatest
            # ignore_nulls: the CASE below decides what a NULL means; sqlglot adds nothing
            call = fn(this=args[0], expressions=args[1:], ignore_nulls=True)
            nullable = [a for a, arg in zip(args, e.args) if may_lack_value(arg)]
            if not nullable:
                return call
            # min and max of a missing value have none (DuckDB's LEAST would skip it)
            test = reduce(lambda a, b: exp.Or(this=a, expression=b),
                          [exp.Is(this=a.copy(), expression=exp.Null()) for a in nullable])
            return exp.Case(ifs=[exp.If(this=test, true=exp.Null())], default=call)
        raise AssertionError(f"unexpected expression {e}")

    # ---- literals
    def add(self, steps: Sequence[Step], rule: LoweredRule | None = None) -> None:
        """Add the literals of `steps` (of `rule`'s lowered body, when it has aggregates)."""
        for step in steps:
            lit = step.literal
            if isinstance(lit, Atom):
                self._atom(lit)
            elif isinstance(lit, Negation):
                self.where.append(self._negation(lit.atom))
            elif isinstance(lit, Comparison):
                self._comparison(lit, step)
            elif isinstance(lit, Aggregate):
                assert rule is not None
                self._aggregate(rule.aggregate(lit), bound=not step.binds)

    def _join(self, item: exp.Expression, conds: list[exp.Expression], kind: str = "JOIN") -> None:
        if self.from_ is None:
            if kind != "LEFT":
                self.from_ = item
                self.where.extend(conds)
                return
            # a left join needs something on its left
            one = exp.Select(expressions=[aliased(exp.Literal(this="1", is_string=False), "one")])
            self.from_ = exp.Subquery(this=one, alias=exp.TableAlias(this=ident("u", False)))
        if conds:
            self.joins.append(exp.Join(this=item, on=and_(conds), side="LEFT" if kind == "LEFT" else None))
        else:
            self.joins.append(exp.Join(this=item, kind="CROSS"))

    def _atom(self, atom: Atom) -> None:
        alias = f"t{next(self.aliases)}"
        name = self.overrides.get(id(atom)) or self.gen.table(atom.pred)
        conds: list[exp.Expression] = []
        for i, arg in enumerate(atom.args):
            col = column(f"a{i}", alias)
            if isinstance(arg, Var):
                if arg.name in self.env:
                    conds.append(exp.EQ(this=col, expression=self.value(arg.name)))
                else:
                    self.env[arg.name] = col
            else:
                conds.append(exp.EQ(this=col, expression=self.expr(arg)))
        self._join(table(name, alias), conds)

    def _negation(self, atom: Atom) -> exp.Expression:
        alias = f"n{next(self.aliases)}"
        conds = [exp.EQ(this=column(f"a{i}", alias), expression=self.expr(arg)) for i, arg in enumerate(atom.args)
                 if not (isinstance(arg, Var) and arg.anonymous)]
        sub = exp.Select(expressions=[exp.Literal(this="1", is_string=False)],
                         from_=exp.From(this=table(self.gen.table(atom.pred), alias)))
        if conds:
            sub.set("where", exp.Where(this=and_(conds)))
        return exp.Not(this=exp.Exists(this=sub))

    def _comparison(self, c: Comparison, step: Step) -> None:
        if step.assign is not None:
            target = c.left if isinstance(c.left, Var) and c.left.name == step.assign else c.right
            value = c.right if target is c.left else c.left
            self.env[step.assign] = self.expr(value)
            if may_lack_value(value):  # binding to no value fails
                self.where.append(exp.Not(this=exp.Is(this=self.value(step.assign), expression=exp.Null())))
            return
        # a NULL side (no value) makes the condition NULL, which WHERE rejects: `!=` too
        self.where.append(_COMPARE[c.op](this=self.expr(c.left), expression=self.expr(c.right)))

    def _aggregate(self, lowered: LoweredAggregate, bound: bool) -> None:
        agg, keys, inner_vars = lowered.literal, lowered.keys, lowered.variables
        inner = Body(self.gen, self.aliases)
        inner.add(lowered.steps)
        columns = [aliased(inner.value(v), f"v{j}") for j, v in enumerate(inner_vars)] \
            or [aliased(exp.Literal(this="1", is_string=False), "v0")]
        rows = inner.select(columns, distinct=True)
        col = {v: f"v{j}" for j, v in enumerate(inner_vars)}
        outputs: list[exp.Expression] = [aliased(column(col[k]), f"k{j}") for j, k in enumerate(keys)]
        if agg.func == "count":
            value: exp.Expression = exp.Count(this=exp.Star())
        elif agg.func == "sum":
            # FSUM (Kahan-Babuska): near the correctly rounded math.fsum of the pyDatalog
            # engine, far less dependent on the order of the rows (DuckDB only: `render`)
            value = exp.Anonymous(this="FSUM", expressions=[column(col[agg.target.name])])  # type: ignore[union-attr]
        else:
            fn = exp.Min if agg.func == "min" else exp.Max
            value = fn(this=column(col[agg.target.name]))  # type: ignore[union-attr]
        outputs.append(aliased(value, "val"))
        alias = f"g{next(self.aliases)}"
        sub = exp.Select(expressions=outputs, from_=exp.From(this=exp.Subquery(
            this=rows, alias=exp.TableAlias(this=ident("d", False)))))
        if keys:
            sub.set("group", exp.Group(expressions=[column(col[k]) for k in keys]))
        elif agg.func in ("min", "max"):  # min and max of nothing: no row
            sub.set("having", exp.Having(this=exp.GT(this=exp.Count(this=exp.Star()),
                                                       expression=exp.Literal(this="0", is_string=False))))
        item = exp.Subquery(this=sub, alias=exp.TableAlias(this=ident(alias, False)))
        conds: list[exp.Expression] = [exp.EQ(this=column(f"k{j}", alias), expression=self.value(k))
                                       for j, k in enumerate(keys)]
        result: exp.Expression
        if agg.func in ("count", "sum"):  # a count or sum of nothing is 0
            self._join(item, conds, "LEFT" if keys else "CROSS")
            zero = exp.Literal(this="0", is_string=False) if agg.func == "count" else number(0)
            result = exp.Coalesce(this=column("val", alias), expressions=[zero])
        else:
            self._join(item, conds, "JOIN" if keys else "CROSS")
            result = column("val", alias)
        name = agg.result.name
        if bound:
            self.where.append(exp.EQ(this=self.value(name), expression=result))
        else:
            self.env[name] = result

    # ---- the SELECT
    def select(self, columns: list[exp.Expression], distinct: bool = False) -> exp.Select:
        out = exp.Select(expressions=columns)
        if distinct:
            out.set("distinct", exp.Distinct())
        if self.from_ is not None:
            out.set("from_", exp.From(this=self.from_))
        if self.joins:
            out.set("joins", self.joins)
        if self.where:
            out.set("where", exp.Where(this=and_(self.where)))
        return out


# ----------------------------------------------------------------------------- statements
class SQLGen:
    """Statement trees for one compiled rule set: its table names (`tables`, predicate →
    table), column kinds and settings."""

    def __init__(self, tables: Mapping[str, str], kinds: Mapping[str, Sequence[str]], settings: Mapping[str, Value]):
        self.tables = tables
        self.kinds = kinds
        self.settings = settings

    def table(self, pred: str) -> str:
        return self.tables[pred]

    def _body(self, rule: LoweredRule, overrides: Mapping[int, str] | None = None,
              steps: Sequence[Step] | None = None) -> Body:
        body = Body(self, itertools.count(), overrides)
        body.add(rule.steps if steps is None else steps, rule)
        return body

    def rule_select(self, rule: LoweredRule, overrides: Mapping[int, str] | None = None,
                    steps: Sequence[Step] | None = None) -> exp.Select:
        """A rule's conclusions (the head's columns a0..), its body in `steps`' order;
        `overrides` reads some atoms (by id) from other tables (`_delta_p`)."""
        assert rule.head is not None
        body = self._body(rule, overrides, steps)
        columns = [aliased(body.expr(arg), f"a{i}") for i, arg in enumerate(rule.head)]
        return body.select(columns or [aliased(exp.true(), "a0")])

    def firing_select(self, rule: LoweredRule) -> exp.Select:
        """A rule's firings, or a constraint's violations: the distinct rows of all its
        variables, as v0..vn in the plan's row layout.

        DISTINCT only where a row can repeat (`may_repeat`): every table is a set, so a
        join of them projected on every variable of its atoms gives each row once; an
        assignment, an aggregate (one row per group, joined on its group) and a negation
        add none. DISTINCT over every column was a tenth of the evaluation's time."""
        body = self._body(rule)
        columns = [aliased(body.value(v), f"v{j}") for j, v in enumerate(rule.variables)]
        return body.select(columns or [aliased(exp.true(), "v0")], distinct=may_repeat(rule))

    def conclusion_columns(self, rule: LoweredRule) -> list[exp.Expression]:
        """The head's columns computed from a firing row (v0..vn)."""
        assert rule.head is not None
        at = {v: f"v{j}" for j, v in enumerate(rule.variables)}
        out: list[exp.Expression] = []
        for arg in rule.head:
            if isinstance(arg, Var):
                out.append(column(at[arg.name]))
            else:
                out.append(literal(arg.value if isinstance(arg, Const) else self.settings[arg.name]))  # type: ignore
        return out or [exp.true()]

    def conclusion(self, rule: LoweredRule, firing_table: str) -> exp.Select:
        """The rule's conclusions read from its firing table."""
        return exp.Select(expressions=self.conclusion_columns(rule), from_=exp.From(this=table(firing_table)))

    def insert(self, target: str, selects: Sequence[exp.Query], minus: str | None,
               distinct: bool = False) -> exp.Insert:
        """INSERT the distinct rows of `selects` into `target`, less those already in the
        table `minus` (None: the target is still empty, nothing to subtract); `distinct`:
        the one SELECT gives no row twice, so it needs no DISTINCT. Like every statement
        here, it takes the trees it is given as its own parts."""
        parts = list(selects)  # taken over, not copied: a tree has one parent
        grouped = _by_constants(parts) if minus is None and len(parts) > 1 else None
        if grouped is not None:
            return exp.Insert(this=table(target), expression=grouped)
        union = reduce(lambda a, b: exp.Union(this=a, expression=b, distinct=True), parts)
        if minus is None and len(parts) > 1:
            source: exp.Query = union
        elif minus is None and distinct and len(parts) == 1:
            source = parts[0]
        else:
            sub = exp.Subquery(this=union, alias=exp.TableAlias(this=ident("r", False)))
            source = _star_from(sub)
            if minus is None:
                source.set("distinct", exp.Distinct())
            else:
                source = exp.Except(this=source, expression=_star_from(table(minus)), distinct=True)
        return exp.Insert(this=table(target), expression=source)

    def create_as(self, name: str, select: exp.Query, temp: bool = False) -> exp.Create:
        out = exp.Create(this=table(name), kind="TABLE", expression=select)
        if temp:
            out.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
        return out

    def create(self, pred: str, temp: bool = False) -> exp.Create:
        """The table of a predicate: a0..an-1 typed by kind; a predicate without
        arguments has one BOOLEAN column holding TRUE when it holds."""
        kinds = self.kinds[pred]
        cols = [exp.ColumnDef(this=ident(f"a{i}", False), kind=exp.DataType(this=_TYPE[k]))
                for i, k in enumerate(kinds)] \
            or [exp.ColumnDef(this=ident("a0", False), kind=exp.DataType(this=exp.DataType.Type.BOOLEAN))]
        out = exp.Create(this=exp.Schema(this=table(self.table(pred)), expressions=cols), kind="TABLE")
        if temp:
            out.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
        return out

    def ddl(self, preds: Sequence[str], recursive: Sequence[str], temp: bool = False) -> list[exp.Create]:
        """Every predicate's table, then `_delta_p` and `_new_p` for the predicates of
        recursive components (empty copies of p)."""
        out = [self.create(pred, temp) for pred in preds]
        for pred in recursive:
            t = self.table(pred)
            empty = _star_from(table(t))
            empty.set("limit", exp.Limit(expression=exp.Literal(this="0", is_string=False)))
            out += [self.create_as(prefix + t, empty, temp=True) for prefix in ("_delta_", "_new_")]
        return out

    def static_insert(self, pred: str, rows: Sequence[Sequence[Value]]) -> exp.Insert:
        """The rule set's own facts of `pred`."""
        t = self.table(pred)
        values = exp.Values(expressions=[exp.Tuple(expressions=[literal(v) for v in row] or [exp.true()])
                                         for row in rows], alias=exp.TableAlias(this=ident("v", False)))
        source = _star_from(values)
        source.set("distinct", exp.Distinct())
        return exp.Insert(this=table(t), expression=exp.Except(this=source, expression=_star_from(table(t)),
                                                                 distinct=True))

    def empty(self, name: str) -> exp.Delete:
        return exp.Delete(this=table(name))

    def drop(self, name: str) -> exp.Drop:
        return exp.Drop(tables=[table(name)], kind="TABLE", exists=True)

    def grow(self, t: str) -> list[exp.Expression]:
        """A semi-naive round's end for the table `t`: the last round's new rows become
        the delta and join the table."""
        delta, new = "_delta_" + t, "_new_" + t
        return [self.empty(delta), exp.Insert(this=table(delta), expression=_star_from(table(new))),
                exp.Insert(this=table(t), expression=_star_from(table(new))), self.empty(new)]


def _constant_key(e: exp.Expression) -> tuple[str, object] | None:
    """A SELECT column's value if it is a literal (a number as its value, so that 8E0 and
    8.0E0 are one), else None."""
    if isinstance(e, exp.Alias):
        e = e.this
    negative = isinstance(e, exp.Neg)
    if negative:
        e = e.this
    if not isinstance(e, exp.Literal):
        return None
    if e.is_string:
        return None if negative else ("s", e.this)
    try:
        return ("n", -float(e.this) if negative else float(e.this))
    except ValueError:
        return None


def _by_constants(parts: list[exp.Query]) -> exp.Query | None:
    """The distinct rows of the UNION of `parts`, deduplicated per value of the columns
    every part sets to a constant: `recommend(P, tocilizumab)` from five rules and
    `recommend(P, dexamethasone)` from two cannot share a row, so each group is made
    distinct over its other columns alone and the groups are put together with UNION
    ALL. Over 37 rules concluding `indicated(P, action)` a partition's statement took
    half the time: hashing a patient number instead of a number and a text. None when no
    column is a constant in every part, or every column is (nothing left to group)."""
    if not all(isinstance(p, exp.Select) for p in parts):
        return None
    width = len(parts[0].expressions)
    if any(len(p.expressions) != width for p in parts):
        return None
    keys = [[_constant_key(e) for e in p.expressions] for p in parts]
    common = [i for i in range(width) if all(k[i] is not None for k in keys)]
    rest = [i for i in range(width) if i not in common]
    # a column where texts and numbers meet: the table's type may make them equal; left alone
    if not common or not rest or any(len({k[i][0] for k in keys}) > 1 for i in common):  # type: ignore[index]
        return None
    groups: dict[tuple, list[int]] = {}
    for j, k in enumerate(keys):
        groups.setdefault(tuple(k[i] for i in common), []).append(j)
    if len(groups) == 1:
        return None
    out: list[exp.Query] = []
    for members in groups.values():
        # the group's constants, as its first part writes them, before its columns are replaced
        constants = {i: parts[members[0]].expressions[i].unalias().copy() for i in common}
        inner: list[exp.Query] = []
        for j in members:
            select = parts[j]
            select.set("expressions", [aliased(select.expressions[i].unalias(), f"c{i}") for i in rest])
            inner.append(select)
        rows = reduce(lambda a, b: exp.Union(this=a, expression=b, distinct=True), inner)
        if len(inner) == 1:
            rows.set("distinct", exp.Distinct())
        columns = [constants[i] if i in constants else column(f"c{i}", "g") for i in range(width)]
        out.append(exp.Select(expressions=columns, from_=exp.From(
            this=exp.Subquery(this=rows, alias=exp.TableAlias(this=ident("g", False))))))
    return reduce(lambda a, b: exp.Union(this=a, expression=b, distinct=False), out)


def may_repeat(rule: LoweredRule) -> bool:
    """Whether the join of a rule's body, over tables that are sets, can give one row of
    its variables twice: only when a column of a positive atom holds a variable the row
    leaves out (the lowered rule's rows keep even `_`'s, so none today), or when the row
    has no variables at all (a rule or constraint over constants)."""
    kept = set(rule.variables)
    return not kept or any(isinstance(arg, Var) and arg.name not in kept for lit in rule.body
                           if isinstance(lit, Atom) for arg in lit.args)


# ----------------------------------------------------------------------------- rendering
def _portable(node: exp.Expression) -> exp.Expression:
    """What Spark SQL and Trino get instead of DuckDB's own forms (module docstring)."""
    if isinstance(node, exp.Anonymous) and node.name.upper() == "FSUM":
        return exp.Sum(this=node.expressions[0])
    if isinstance(node, exp.Create) and node.args.get("properties") is not None:
        node.set("properties", None)  # only TEMPORARY is ever set
        return node
    if isinstance(node, exp.Delete) and node.args.get("where") is None:
        return exp.TruncateTable(expressions=[node.this])
    return node


def render(tree: exp.Expression, dialect: str = "duckdb", pretty: bool = False) -> str:
    """A statement's SQL text for `dialect` (one of DIALECTS); anything sqlglot cannot
    write for the dialect raises rather than being dropped with a warning. The tree is
    rendered as it is, not copied first: a statement's tree is built for one rendering."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: one of {', '.join(DIALECTS)}")
    if dialect != "duckdb":
        tree = tree.transform(_portable, copy=False)
    return tree.sql(dialect=dialect, pretty=pretty, unsupported_level=ErrorLevel.RAISE, copy=False)
