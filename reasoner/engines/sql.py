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
too); the staging and checking of fact files below is DuckDB SQL text.

It fills `Model.facts`, `Model.violations` and `Model.settings`, not the firings:
explanations and proofs re-derive with the pyDatalog engine (reasoner.engines.pydatalog).

For large cohorts, `evaluate_csv` and `evaluate_tables` load facts in bulk and return an
`SQLResult` that keeps the answers in DuckDB (count, fetch, export to Parquet or CSV)
instead of building Python sets.
"""
from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

import duckdb
from sqlglot import exp

from reasoner.language.errors import Diagnostic, EvaluationLimit, ReasonerError
from reasoner.engines.model import Firing, Model
from reasoner.analysis.program import (
    ANY, NUMERIC, RuleSet, suggest, check_value, resolve_settings,
)
from reasoner.plan.lowered import LoweredRule, plan_of, setting_or_const
from reasoner.engines.sqlgen import NUM, SYM, SQLGen, render
from reasoner.engines.sqlgen import number_text as sql_number
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Comparison, Const, Expr, Fact, Literal, Negation, Setting, Span, Value,
    Var,
)
from reasoner.language.values import CELL_BLANKS, NUMBER_PATTERN, SQL_BAD_CHARS, read_number, shown

_NOSPAN = Span("<duckdb>", 0, 0)
_SQL_TYPE = {NUM: "DOUBLE", SYM: "VARCHAR"}
_ORDERING = ("<", "<=", ">", ">=")
_EXACT = 2 ** 53
"""Whole DOUBLEs below this come back as Python ints (every such int is exact in a double)."""


# ----------------------------------------------------------------------------- SQL text helpers
# (the staging and checking of fact files, DuckDB's own I/O, is SQL text; the evaluation
# program is built as sqlglot trees in reasoner.engines.sqlgen)
def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def to_python(value: Any, numeric: bool) -> Value:
    """A value read back from DuckDB: whole DOUBLEs become ints (pyDatalog keeps 3, DuckDB
    returns 3.0; the two are == and hash alike, ints read better)."""
    if numeric and isinstance(value, float) and value.is_integer() and -_EXACT < value < _EXACT:
        return int(value)
    return value


# ----------------------------------------------------------------------------- types
def _kind_of(value: Value) -> str:
    return SYM if isinstance(value, str) else NUM


class _Types:
    """Column types by unification: declared types, constants, arithmetic and equalities
    decide; an argument of type `any` that nothing decides is VARCHAR."""

    def __init__(self, rs: RuleSet, evidence: Mapping[tuple[str, int], str]):
        self.parent: dict[tuple, tuple] = {}
        self.kinds: dict[tuple, set[str]] = defaultdict(set)
        self.why: dict[tuple, Span] = {}
        for pred, decl in rs.decls.items():
            for i, arg in enumerate(decl.args):
                node = ("slot", pred, i)
                self._find(node)
                if arg.type in NUMERIC:
                    self._mark(node, NUM, decl.span)
                elif arg.type != ANY:
                    self._mark(node, SYM, decl.span)
        for index, rule in enumerate(rs.rules):
            scope = lambda name, index=index: ("var", index, name)  # noqa: E731
            if rule.head is not None:
                self._atom(rule.head, scope)
            self._body(rule.body, scope)
        for (pred, i), kind in evidence.items():
            self._mark(("slot", pred, i), kind, _NOSPAN)
        self.conflicts: list[Diagnostic] = []
        roots: dict[tuple, set[str]] = defaultdict(set)
        for node, kinds in self.kinds.items():
            roots[self._find(node)] |= kinds
        self.root_kinds = roots
        for root, kinds in roots.items():
            if len(kinds) > 1:
                self.conflicts.append(Diagnostic(self.why.get(root, _NOSPAN), "the DuckDB engine needs one type per "
                                                 "argument: numbers and symbols meet here (declare the types)",
                                                 "E004"))

    def kind(self, pred: str, i: int) -> str | None:
        kinds = self.root_kinds.get(self._find(("slot", pred, i)), set())
        return next(iter(kinds)) if len(kinds) == 1 else None

    def _find(self, node: tuple) -> tuple:
        parent = self.parent.setdefault(node, node)
        if parent == node:
            return node
        root = self._find(parent)
        self.parent[node] = root
        return root

    def _union(self, a: tuple, b: tuple) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[ra] = rb
            self.kinds[rb] |= self.kinds.pop(ra, set())
            if ra in self.why and rb not in self.why:
                self.why[rb] = self.why[ra]

    def _mark(self, node: tuple, kind: str, span: Span) -> None:
        root = self._find(node)
        self.kinds[root].add(kind)
        if span.line or root not in self.why:
            self.why.setdefault(root, span)

    def _expr(self, e: Expr, scope) -> tuple | str | None:
        """A node for a variable, a kind for anything else (marking arithmetic operands)."""
        if isinstance(e, Var):
            return scope(e.name)
        if isinstance(e, Const):
            return _kind_of(e.value)
        if isinstance(e, Setting):
            return NUM
        for sub in (e.left, e.right) if isinstance(e, BinOp) else e.args:  # type: ignore[union-attr]
            self._number(sub, scope)
        return NUM

    def _number(self, e: Expr, scope) -> None:
        got = self._expr(e, scope)
        if isinstance(got, tuple):
            self._mark(got, NUM, getattr(e, "span", _NOSPAN))

    def _atom(self, atom: Atom, scope) -> None:
        for i, arg in enumerate(atom.args):
            slot = ("slot", atom.pred, i)
            got = self._expr(arg, scope)
            if isinstance(got, tuple):
                self._union(slot, got)
            elif got is not None:
                self._mark(slot, got, atom.span)

    def _body(self, body: Sequence[Literal], scope) -> None:
        for lit in body:
            if isinstance(lit, Atom):
                self._atom(lit, scope)
            elif isinstance(lit, Negation):
                self._atom(lit.atom, scope)
            elif isinstance(lit, Aggregate):
                self._body(lit.body, scope)
                self._mark(scope(lit.result.name), NUM, lit.span)
                if lit.target is not None:
                    self._number(lit.target, scope)
            elif isinstance(lit, Comparison):
                if lit.op in _ORDERING:
                    self._number(lit.left, scope)
                    self._number(lit.right, scope)
                    continue
                left, right = self._expr(lit.left, scope), self._expr(lit.right, scope)
                if isinstance(left, tuple) and isinstance(right, tuple):
                    self._union(left, right)
                elif isinstance(left, tuple) and right is not None:
                    self._mark(left, right, lit.span)  # type: ignore[arg-type]
                elif isinstance(right, tuple) and left is not None:
                    self._mark(right, left, lit.span)  # type: ignore[arg-type]


def _count(result: duckdb.DuckDBPyConnection) -> int:
    """Rows an INSERT added."""
    row = result.fetchone()
    return row[0] if row else 0


# ----------------------------------------------------------------------------- the compiled plan
Make = Callable[[], exp.Select]
"""Builds a statement's SELECT tree anew: each rendering takes a fresh tree (no copies),
and a rule whose predicates stay empty is never built (one patient needs far fewer than
a cohort). The function's identity keys the rendered text (`DuckDBEngine._once`)."""

Entry = tuple[int, Make, frozenset]
"""(rule index, its SELECT, the predicates of its positive atoms)."""


@dataclass
class _Component:
    preds: list[str]
    recursive: bool
    rules: dict[str, list[Entry]]
    """head predicate → an entry for every rule of the component: a rule with an empty
    positive predicate is not run."""
    variants: dict[str, list[Entry]] = field(default_factory=dict)
    """Recursive: head predicate → SELECTs of the later rounds (one per recursive body atom,
    which reads `_delta_p`, needed as ("delta", p); a rule with an aggregate is run whole)."""


class _Firings:
    """A rule's firings: the SELECT DISTINCT of every variable (v0..vn), and its head."""

    def __init__(self, gen: SQLGen, rule: LoweredRule, head: tuple[tuple[str, Value], ...]):
        self.variables = rule.variables
        self.head = head  # ("var", name) or ("const", value) per head argument
        self.select: Make = lambda: gen.firing_select(rule)
        self.from_table: Make = lambda: gen.conclusion(rule, f"_firing_{rule.index}")  # its conclusions
        self._rule, self._gen = rule, gen

    @cached_property
    def conclusion(self) -> str:
        """The head's columns computed from a firing row (DuckDB SQL; report_sql reads it)."""
        return ", ".join(render(c) for c in self._gen.conclusion_columns(self._rule))


@dataclass
class _Constraint:
    index: int
    variables: tuple[str, ...]
    select: Make


class DuckDBEngine:
    """A rule set compiled to SQL, evaluated on an in-process DuckDB database.

    `evaluate(facts)` returns a `Model` like `reasoner.engines.pydatalog.Engine.evaluate` (facts,
    violations and settings; no firings). Each call runs in a fresh in-memory database.
    """

    def __init__(self, ruleset: RuleSet, settings: dict[str, float] | None = None, *,
                 max_iterations: int = 100_000, time_limit: float | None = None,
                 threads: int | None = None, memory_limit: str | None = None, firings: bool = False):
        self.ruleset = ruleset
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
        rs = self.ruleset
        plan = plan_of(rs)
        types = _Types(rs, self._evidence)
        if types.conflicts:
            raise ReasonerError(types.conflicts)
        self._types = types
        self.arity: dict[str, int] = {p: d.arity for p, d in rs.decls.items()}
        self.kinds: dict[str, list[str]] = {
            p: [types.kind(p, i) or SYM for i in range(n)] for p, n in self.arity.items()}
        self._tables: dict[str, str] = {}
        lower: dict[str, int] = defaultdict(int)
        for pred in sorted(self.arity):  # DuckDB matches names case-insensitively
            lower[pred.lower()] += 1
            n = lower[pred.lower()]
            self._tables[pred] = pred if n == 1 else f"{pred}__{n}"
        self._gen = gen = SQLGen(self._tables, self.kinds, self.settings)
        self._rendered: dict[tuple, Any] = {}  # statement → its DuckDB text, rendered once
        self._static: dict[str, list[tuple[Value, ...]]] = defaultdict(list)
        by_head: dict[str, list[int]] = defaultdict(list)
        self._constraints: list[_Constraint] = []
        self._firings: dict[int, _Firings] = {}
        for index, rule in enumerate(rs.rules):
            if rule.head is not None and not rule.body:
                args = tuple(a.value if isinstance(a, Const) else self.settings[a.name]  # type: ignore[union-attr]
                             for a in rule.head.args)
                if args not in self._static[rule.head.pred]:
                    self._static[rule.head.pred].append(args)
            elif rule.head is None:
                lowered = plan.rules[index]
                self._constraints.append(_Constraint(index, lowered.variables,
                                                 lambda r=lowered: gen.firing_select(r)))
            else:
                by_head[rule.head.pred].append(index)
                if self.record_firings:
                    self._firings[index] = self._firing_select(plan.rules[index])
        self._components: list[_Component] = []
        for comp in plan.components:
            component = _Component(list(comp.preds), comp.recursive, {})
            for pred in comp.preds:
                lowered = [plan.rules[i] for i in by_head[pred]]
                component.rules[pred] = [(r.index, lambda r=r: gen.rule_select(r), r.needs)
                                         for r in lowered]
                if comp.recursive:
                    component.variants[pred] = self._variants(lowered)
            self._components.append(component)

    def _firing_select(self, rule: LoweredRule) -> _Firings:
        """The rule's firings: the DISTINCT values of all its variables, in the plan's
        row layout (as every engine lists them)."""
        assert rule.head is not None
        head = tuple(("var", a.name) if isinstance(a, Var) else ("const", setting_or_const(a, self.settings))
                     for a in rule.head)
        return _Firings(self._gen, rule, head)

    def _variants(self, rules: list[LoweredRule]) -> list[Entry]:
        gen = self._gen
        out: list[Entry] = []
        for rule in rules:
            if rule.aggregates:  # aggregates range over lower strata: such a rule runs whole
                out.append((rule.index, lambda rule=rule: gen.rule_select(rule), rule.needs))
            for variant in rule.variants:
                out.append((rule.index, lambda rule=rule, variant=variant: gen.rule_select(
                    rule, {id(variant.atom): "_delta_" + gen.table(variant.atom.pred)}, variant.steps),
                    rule.needs | {("delta", variant.atom.pred)}))
        return out

    def table(self, pred: str) -> str:
        return self._tables[pred]

    def _may_hold_rows(self, pred: str) -> bool:
        """Before its rules run: input facts or facts of the rule set."""
        decl = self.ruleset.decls.get(pred)
        return pred in self._static or decl is None or decl.role == "input"

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
                    kind = _kind_of(row[i])
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

    def _ddl_trees(self, temp: bool = False) -> list:
        recursive = [p for c in self._components if c.recursive for p in c.preds]
        return self._gen.ddl(sorted(self.arity), recursive, temp)

    def _ddl(self, temp: bool = False) -> list[str]:
        return self._once(("ddl", temp), lambda: [render(t) for t in self._ddl_trees(temp)])

    def _static_trees(self) -> list:
        return [self._gen.static_insert(pred, rows) for pred, rows in self._static.items()]

    def _static_sql(self) -> list[str]:
        return self._once(("static",), lambda: [render(t) for t in self._static_trees()])

    def _insert(self, target: str, selects: Sequence[Make], minus: str | None) -> str:
        """INSERT the distinct rows of the rules' SELECTs, less those already in `minus`
        (None: the target is still empty, nothing to subtract)."""
        key = ("insert", target, tuple(id(s) for s in selects), minus)  # they live as long as the engine
        return self._once(key, lambda: render(self._gen.insert(target, [make() for make in selects], minus)))

    def _grow_sql(self, pred: str) -> list[str]:
        """The last round's new rows become the delta and join the predicate's table."""
        return self._once(("grow", pred), lambda: [render(t) for t in self._gen.grow(self.table(pred))])

    def _firing_create(self, index: int) -> str:
        return self._once(("firing", index), lambda: render(
            self._gen.create_as(f"_firing_{index}", self._firings[index].select(), temp=True)))

    def _violation_create(self, c: _Constraint) -> str:
        return self._once(("violation", c.index), lambda: render(
            self._gen.create_as(f"_violation_{c.index}", c.select())))

    def _rule_comment(self, index: int) -> str:
        rule = self.ruleset.rules[index]
        where = f"{Path(rule.span.file).name}:{rule.span.line}" if rule.span.line else ""
        name = self.ruleset.rule_name(rule)
        text = str(rule).replace("\n", " ")
        return f"-- {name}{' (' + where + ')' if where and rule.id else ''}: {text}"

    def _script(self, dialect: str) -> list[tuple[str, str]]:
        """The evaluation program in order: ("comment", text) and ("sql", statement)
        items, statements rendered for `dialect` (one of `sqlgen.DIALECTS`)."""
        rs, gen = self.ruleset, self._gen
        out: list[tuple[str, str]] = []

        def comment(text: str) -> None:
            out.append(("comment", text))

        def sql(tree: exp.Expression) -> None:
            out.append(("sql", render(tree, dialect, pretty=True)))

        comment(f"-- rule set {rs.path}, compiled by reasoner.engines.sqlgen for {dialect}"
                + (f" (DuckDB {duckdb.__version__})" if dialect == "duckdb" else " (not run: checked by sqlglot)"))
        comment("-- settings: " + (", ".join(f"${k} = {v}" for k, v in sorted(self.settings.items())) or "none"))
        comment("")
        comment("-- one table per predicate")
        for tree in self._ddl_trees():
            sql(tree)
        comment("")
        comment("-- input facts: one INSERT per input predicate here")
        comment("")
        comment("-- facts of the rule set")
        for tree in self._static_trees():
            sql(tree)
        for comp in self._components:
            comment("")
            if not comp.recursive:
                (pred,) = comp.preds
                for i, _, _ in comp.rules[pred]:
                    comment(self._rule_comment(i))
                minus = self.table(pred) if self._may_hold_rows(pred) else None
                sql(gen.insert(self.table(pred), [make() for _, make, _ in comp.rules[pred]], minus))
                continue
            comment(f"-- recursive component {', '.join(comp.preds)}: semi-naive, driven from Python")
            comment("-- round 0: every rule over the full tables; then each predicate P grows by _new_P")
            for pred in comp.preds:
                t = self.table(pred)
                for i, _, _ in comp.rules[pred]:
                    comment(self._rule_comment(i))
                sql(gen.insert("_new_" + t, [make() for _, make, _ in comp.rules[pred]], t))
                for tree in gen.grow(t):
                    sql(tree)
            comment("-- repeat while the last round added rows: all _new_ tables first, then grow")
            for pred in comp.preds:
                t = self.table(pred)
                if comp.variants[pred]:
                    sql(gen.insert("_new_" + t, [make() for _, make, _ in comp.variants[pred]], t))
            for pred in comp.preds:
                for tree in gen.grow(self.table(pred)):
                    sql(tree)
            comment("-- end of the loop")
        if self._constraints:
            comment("")
            comment("-- integrity constraints: every row is a violation")
            for c in self._constraints:
                comment(self._rule_comment(c.index))
                sql(gen.create_as(f"_violation_{c.index}", c.select()))
        return out

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

    def _run(self, con: duckdb.DuckDBPyConnection, nonempty: set) -> None:
        """Everything after the input facts are in their tables (`nonempty`: the predicates
        that hold a row)."""
        started = time.monotonic()
        for statement in self._static_sql():
            con.execute(statement)
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
                continue
            (pred,) = comp.preds
            live = [(index, tree) for index, tree, needs in comp.rules[pred] if needs <= nonempty]
            minus = self.table(pred) if pred in nonempty else None
            if self.record_firings:  # the firings first; the conclusions from them
                for index, _ in live:
                    con.execute(self._firing_create(index))
                live = [(index, self._firings[index].from_table) for index, _ in live]
            if live and _count(con.execute(self._insert(self.table(pred), [tree for _, tree in live], minus))):
                nonempty.add(pred)
        for c in self._constraints:
            con.execute(self._violation_create(c))

    def _fixpoint(self, con: duckdb.DuckDBPyConnection, comp: _Component, started: float, nonempty: set) -> None:
        def round_(entries: Mapping[str, list[Entry]]) -> int:
            for pred in comp.preds:
                live = [tree for _, tree, needs in entries[pred] if needs <= nonempty]
                if live:
                    con.execute(self._insert("_new_" + self.table(pred), live, self.table(pred)))
            added = 0
            for pred in comp.preds:
                delete_delta, fill_delta, grow, delete_new = self._grow_sql(pred)
                con.execute(delete_delta)
                n = _count(con.execute(fill_delta))
                con.execute(grow)
                con.execute(delete_new)
                nonempty.discard(("delta", pred))
                if n:
                    nonempty.update({pred, ("delta", pred)})
                added += n
            return added

        new = round_(comp.rules)
        for _ in range(self.max_iterations):
            if not new:
                return
            self._check_time(started)
            new = round_(comp.variants)
        raise EvaluationLimit(f"recursion did not reach a fixpoint in {self.max_iterations} rounds")

    def _check_time(self, started: float) -> None:
        if self.time_limit is not None and time.monotonic() - started > self.time_limit:
            raise EvaluationLimit(f"evaluation stopped after {self.time_limit:g} s (time limit)")

    # ------------------------------------------------------------------ loading
    def _load_rows(self, con: duckdb.DuckDBPyConnection, pred: str, rows: Sequence[Sequence[Value]]) -> int:
        """Bulk insert Python tuples: one list per column, unnested in SQL (executemany is slow)."""
        if not rows:
            return 0
        t = quote_ident(self.table(pred))
        arity = self.arity[pred]
        if arity == 0:
            return _count(con.execute(f"INSERT INTO {t} SELECT TRUE EXCEPT SELECT * FROM {t}"))
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
        casts = ", ".join(f"unnest(${i + 1}::{_SQL_TYPE[k]}[]) AS a{i}" for i, k in enumerate(self.kinds[pred]))
        return _count(con.execute(f"INSERT INTO {t} SELECT DISTINCT * FROM (SELECT {casts}) AS f "
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
                    cols = ", ".join(f"CAST(#{i + 1} AS {_SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred]))
                    if _count(con.execute(f"INSERT INTO {t} SELECT DISTINCT {cols or 'TRUE'} "
                                          f"FROM {quote_ident(view)} EXCEPT SELECT * FROM {t}")):
                        nonempty.add(pred)
                    con.unregister(view)
            if check:
                problems = self._check_loaded(con)
                if problems:
                    raise ReasonerError([Diagnostic(Span("<tables>", 0, 0), p.message
                                                    + (f" ({p.n} such {p.unit}s)" if p.n > 1 else ""), p.code)
                                         for p in problems])
            self._run(con, nonempty)
        except BaseException:
            con.close()
            raise
        return SQLResult(self, con)

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
            nonempty = self._load_csv(con, paths, check)
            con.execute("DROP TABLE _staging")
            self._run(con, nonempty)
        except BaseException:
            con.close()
            raise
        return SQLResult(self, con)

    def evaluate_csv_partitioned(self, paths: Sequence[str | Path] | str | Path, *, patients: int = 50_000,
                                 check: bool = True, memory_limit: str = "512MB") -> Iterator["SQLResult"]:
        """`evaluate_csv` for cohorts larger than memory: one `SQLResult` per partition of
        `patients` patients, numbered in the order the files first mention them.

        The files are read and checked whole first (so a problem anywhere raises before
        any partition is yielded), into a database file in a temporary folder; each
        partition then runs the rule set over its own patients' rows, with DuckDB held to
        `memory_limit`. A result is valid until the next one is asked for. A rule set that
        is not patient-local (or whose patient keys differ in type) runs as one partition.
        """
        import shutil
        import tempfile
        folder = tempfile.mkdtemp(prefix="reasoner-duckdb-")
        con = None
        try:
            con = self.connect(str(Path(folder) / "cohort.duckdb"), memory_limit)
            nonempty = self._load_csv(con, paths, check)
            sizes = self._partition(con, patients)
            parts = len(sizes)
            con.execute("DROP TABLE _staging")
            keyed = set(self._keyed_inputs()) if parts else set()
            shared = {p for p, d in self.ruleset.decls.items() if d.role == "input" and p not in keyed}
            for part in range(max(parts, 1)):
                here = set(nonempty - keyed)
                for pred in sorted(keyed):
                    t = self.table(pred)
                    if _count(con.execute(f"INSERT INTO {quote_ident(t)} SELECT * EXCLUDE (_part) "
                                          f"FROM {quote_ident('_all_' + t)} WHERE _part = {part}")):
                        here.add(pred)
                self._run(con, here)
                result = SQLResult(self, con, owner=False)
                result.patients = sizes[part] if sizes else None
                yield result
                result.closed = True
                self._clear(con, keep=shared)
        finally:
            if con is not None:
                con.close()
            shutil.rmtree(folder, ignore_errors=True)

    def _keyed_inputs(self) -> dict[str, int]:
        """Input predicates that hold a patient: predicate → position of the patient."""
        out = {}
        for pred, decl in self.ruleset.decls.items():
            k = self.ruleset.key_index(pred)
            if decl.role == "input" and k is not None and pred in self.arity:
                out[pred] = k
        return out

    def _partition(self, con: duckdb.DuckDBPyConnection, size: int) -> list[int]:
        """Number the patients by first mention in the staged files (`size` to a
        partition) and move each keyed input table's rows to `_all_<table>` with their
        partition. Returns the patients in each partition, [] when the cohort cannot be split."""
        keyed = self._keyed_inputs()
        kinds = {self.kinds[p][k] for p, k in keyed.items()}
        if not self.ruleset.patient_local or not keyed or len(kinds) != 1:
            return []
        (kind,) = kinds
        width = len(con.execute("SELECT * FROM _staging LIMIT 0").description) - 1
        by_position: dict[int, list[str]] = defaultdict(list)
        for pred, k in keyed.items():
            if k + 1 < width:
                by_position[k].append(pred)
        mentions = " UNION ALL ".join(
            f"SELECT TRY_CAST(arg{k + 1} AS {_SQL_TYPE[kind]}) AS key, rowid AS r FROM _staging "
            f"WHERE predicate IN ({', '.join(sql_string(p) for p in sorted(preds))})"
            for k, preds in sorted(by_position.items()))
        if not mentions:
            return []
        con.execute(f"CREATE TABLE _patients AS SELECT key, (row_number() OVER (ORDER BY first) - 1) // {size} "
                    f"AS part FROM (SELECT key, min(r) AS first FROM ({mentions}) AS m WHERE key IS NOT NULL "
                    f"GROUP BY key) AS f")
        sizes = [n for _, n in con.execute("SELECT part, count(*) FROM _patients GROUP BY part ORDER BY part")
                 .fetchall()]
        for pred, k in sorted(keyed.items()):
            t = self.table(pred)
            con.execute(f"CREATE TABLE {quote_ident('_all_' + t)} AS SELECT t.*, p.part AS _part "
                        f"FROM {quote_ident(t)} AS t JOIN _patients AS p ON t.a{k} = p.key")
            con.execute(f"DELETE FROM {quote_ident(t)}")
        con.execute("DROP TABLE _patients")
        return sizes or [0]

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

    def _load_csv(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str | Path] | str | Path,
                  check: bool) -> set:
        """Stage the files in `_staging` (kept for the caller to drop), check them, and
        fill the input tables; returns the predicates that hold rows."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        nonempty: set = set()
        width = 0
        staged: list[tuple[str, int, str | None]] = []  # (path, columns, predicate of a per-predicate file)
        typed: list[Diagnostic] = []  # Parquet cells whose column type no id or symbol can have
        column_types: dict[str, list[str]] = {}  # a Parquet file's column types
        numeric_in: dict[int, list[str]] = defaultdict(list)  # staged position → Parquet files typed numeric there
        for path in paths:
            if _is_parquet(path):
                header = self._parquet_header(con, str(path))
                pred = None if header[:1] == ["predicate"] else Path(path).stem
                if check:
                    typed += self._check_parquet_types(con, str(path), pred)
                types = [str(t).upper() for _, t, *_ in
                         con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(str(path))})").fetchall()]
                column_types[str(path)] = types
                for j, sql_type in enumerate(types):
                    if _is_numeric_type(sql_type):  # a typed number: its text is DuckDB's, not the one syntax
                        numeric_in[j + (pred is not None)].append(str(path))
                staged.append((str(path), len(header), pred))
                width = max(width, len(header) + (pred is not None))
                continue
            try:  # DuckDB reads the rest; bad bytes further on are its to report, by line
                with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
                    header = [h.strip(CELL_BLANKS) for h in next(csv.reader(fh), [])]
            except OSError as exc:
                raise ReasonerError.at(Span(str(path), 0, 0), f"cannot read: {exc.strerror or exc}", "E015") from None
            except csv.Error as exc:
                raise ReasonerError.at(Span(str(path), 1, 1), f"malformed CSV: {exc}", "E015") from None
            if not header:
                continue
            pred = None
            if header[0] != "predicate":
                pred = Path(path).stem
                decl = self.ruleset.decls.get(pred)
                if decl is None:
                    raise ReasonerError.at(Span(str(path), 1, 1), "a fact CSV starts with the header "
                                           "predicate,arg1,arg2,... or is named after a declared predicate "
                                           "(weight_kg.csv) with its argument names as header"
                                           + suggest(pred, self.ruleset.decls), "E015")
                expected = [a.name for a in decl.args]
                if header != expected:
                    raise ReasonerError.at(Span(str(path), 1, 1), f"{pred}.csv needs the header "
                                           f"{','.join(expected)}, not {','.join(header)}", "E015")
            staged.append((str(path), len(header), pred))
            width = max(width, len(header) + (pred is not None))
        cols = ", ".join(["file VARCHAR", "predicate VARCHAR"] + [f"arg{i} VARCHAR" for i in range(1, width)])
        con.execute(f"CREATE TABLE _staging ({cols})")
        for path, n, pred in staged:
            cells = [f"NULLIF({_trim(f'c{i}')}, '')" for i in range(n)]
            first = f"coalesce({_trim('c0')}, '')" if pred is None else sql_string(pred)
            if pred is None:
                cells = cells[1:]
            select = ", ".join([sql_string(path), first] + cells + ["NULL"] * (width - 1 - len(cells)))
            if _is_parquet(path):
                try:
                    con.execute(f"INSERT INTO _staging SELECT {select} FROM "
                                f"({_parquet_text(path, n, column_types[path])}) WHERE {_not_blank(n)}")
                except duckdb.Error as exc:  # a corrupt page: the file's problem, not a crash
                    if isinstance(exc, (duckdb.InterruptException, duckdb.OutOfMemoryException)):
                        raise
                    raise ReasonerError.at(Span(path, 0, 0), f"cannot read Parquet: {str(exc).splitlines()[0]}",
                                           "E015") from None
                continue
            try:
                con.execute(_staging_insert(path, select, n, parallel=True))
            except duckdb.Error as exc:
                # DuckDB names a line but says little: the Python reader says what is wrong
                found = _python_diagnosis(path, self.ruleset)
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
        dirty: set[tuple[str, int]] = set()  # (predicate, position) with a bad cell
        problems = self._check_staging(con, width, numeric_in, dirty) if check else []
        for pred in sorted(self.arity):
            t = quote_ident(self.table(pred))
            if self.arity[pred] >= width:
                continue
            if check:  # a cell found bad above is left out, not an error here
                values = [self._valid_cell(pred, i, numeric_in) if (pred, i + 1) in dirty
                          else f"TRY_CAST(arg{i + 1} AS {_SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred])]
            else:
                values = [f"CAST(arg{i + 1} AS {_SQL_TYPE[k]})" for i, k in enumerate(self.kinds[pred])]
            where = f"predicate = {sql_string(pred)}"
            if check:
                where += "".join(f" AND {v} IS NOT NULL" for v in values)
            if _count(con.execute(f"INSERT INTO {t} SELECT DISTINCT {', '.join(values) or 'TRUE'} "
                                  f"FROM _staging WHERE {where}")):
                nonempty.add(pred)
        if check:
            problems += self._check_loaded(con, texts=False)  # staging checked the text
            if problems:
                for path, _, _ in staged:  # a NUL byte: DuckDB reads it, Python's csv before 3.11 does not
                    if not _is_parquet(path) and con.execute(
                            f"SELECT 1 FROM _staging WHERE file = {sql_string(path)} AND contains(concat("
                            f"{', '.join(['predicate'] + [f'arg{i}' for i in range(1, width)])}), chr(0)) LIMIT 1"
                            ).fetchone():
                        found = _python_diagnosis(path, self.ruleset)
                        if found and any(d.code == "E015" for d in found):
                            raise ReasonerError(found) from None
            if problems or typed:
                raise ReasonerError(sorted(self._locate(problems, staged) + typed, key=Diagnostic.sort_key))
        return nonempty

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

    def _check_parquet_types(self, con: duckdb.DuckDBPyConnection, path: str, pred: str | None) -> list[Diagnostic]:
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
                       dirty: set[tuple[str, int]] | None = None) -> list["_Problem"]:
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

        aggregates = ["count(*)"] + [f"count(arg{i})" for i in positions]
        for at, test in ((numeric_at, not_number), (text_at, bad_text)):
            for i in positions:
                if at[i]:
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
            out.append(_Problem(code, f"{','.join(shown(c) for c in (row[1],) + cells)}: {what}", n, "row", row[1],
                                cells=cells, file=row[0]))
        return out

    @staticmethod
    def _failed(con: duckdb.DuckDBPyConnection, table: str, checks: list[tuple[str, str, str]],
                columns: str) -> list[tuple[tuple[str, str, int], tuple]]:
        """Count every check's failures in one scan of TABLE; up to 3 example rows of each."""
        if not checks:
            return []
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, _, _ in checks)
                             + f" FROM {table}").fetchone()
        out = []
        for (cond, what, code), n in zip(checks, counts):
            if n:
                for row in con.execute(f"SELECT {columns} FROM {table} WHERE {cond} LIMIT 3").fetchall():
                    out.append(((code, what, n), row))
        return out

    def _check_loaded(self, con: duckdb.DuckDBPyConnection, texts: bool = True) -> list["_Problem"]:
        """Whole numbers, ranges, text, enumerations and `one`, over the loaded input tables.
        A fact is reported for its first problem only, in argument order, and a fact with a
        problem does not count towards `one`: as the Python reader reports them."""
        problems: list[_Problem] = []
        rs = self.ruleset
        for pred, decl in rs.decls.items():
            if decl.role != "input":
                continue
            checks: list[tuple[str, str, str]] = []
            for i, spec in enumerate(decl.args):
                col = f"a{i}"
                where = f"{pred} argument {spec.name}"
                if spec.type == "integer":
                    checks.append((f"{col} <> floor({col})", f"{where}: expected a whole number", "E004"))
                if spec.type in NUMERIC and spec.low is not None and spec.high is not None:
                    unit = f" {spec.unit}" if spec.unit else ""
                    checks.append((f"{col} < {sql_number(spec.low)} OR {col} > {sql_number(spec.high)}",
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
            firsts = [(f"({cond}) AND NOT coalesce({' OR '.join(f'({c})' for c, _, _ in checks[:j])}, false)"
                       if j else cond, what, code) for j, (cond, what, code) in enumerate(checks)]
            kinds = self.kinds[pred]
            for (code, what, n), row in self._failed(con, quote_ident(self.table(pred)), firsts, "*"):
                fact = Fact(pred, tuple(to_python(v, k == NUM) for v, k in zip(row, kinds)))
                text = str(fact) if str(fact).isprintable() else shown(str(fact))
                problems.append(_Problem(code, f"{text}: {what}", n, "fact", pred, values=fact.args))
            k = decl.key_index
            if decl.single and k is not None:
                sound = f"WHERE NOT coalesce({' OR '.join(f'({c})' for c, _, _ in checks)}, false)" if checks else ""
                rows = con.execute(f"SELECT a{k}, count(*) FROM {quote_ident(self.table(pred))} {sound} "
                                   f"GROUP BY a{k} HAVING count(*) > 1 LIMIT 3").fetchall()
                for key, n in rows:  # the message names the first fact once _locate has found it
                    problems.append(_Problem("E017", f"{pred} holds one fact per patient; {shown(str(key))} has {n} "
                                             "different ones", 0, "", pred, key=(k, key)))
        return problems

    def _locate(self, problems: list["_Problem"], staged: list[tuple[str, int, str | None]]) -> list[Diagnostic]:
        """Diagnostics at the line of each example: one pass over the files, in Python (only
        when something is wrong), stopping when every example is found."""
        from reasoner.io.facts import typed_fact, validate_fact
        lines: dict[int, Span] = {}
        messages: dict[int, str] = {}
        first_fact: dict[int, Fact] = {}
        todo = set(range(len(problems)))
        paths = [path for path, _, _ in staged]
        for path, width, file_pred in staged:
            if not todo:
                break
            for line, row in _numbered_rows(path, width):
                if file_pred is not None:
                    row = [file_pred] + row
                if not row or not row[0].strip(CELL_BLANKS):
                    continue
                pred = row[0].strip(CELL_BLANKS)
                cells = tuple(c.strip(CELL_BLANKS) for c in row[1:] if c.strip(CELL_BLANKS))
                taken: set[tuple[str, str]] = set()  # two examples of one check are two rows
                for j in sorted(todo):
                    p = problems[j]
                    if p.pred != pred or (p.file is not None and p.file != path) or (p.code, p.message) in taken:
                        continue
                    if p.cells is not None:
                        hit = cells == p.cells
                    elif p.values is not None:
                        hit = _same_values(cells, p.values)
                    else:  # `one`: the first fact that differs from the patient's first, as Python says
                        index, key = p.key  # type: ignore[misc]
                        hit = False
                        if len(cells) > index and cells[index] == key:
                            fact = typed_fact(self.ruleset, pred, list(cells), Span(path, line, 1))
                            if isinstance(fact, Fact):
                                fact = validate_fact(self.ruleset, fact)
                            if isinstance(fact, Fact):
                                seen = first_fact.setdefault(j, fact)
                                hit = seen.args != fact.args
                                if hit:
                                    messages[j] = (f"{pred} holds one fact per patient; {seen} is already stated "
                                                   f"at {seen.span}")
                    if hit:
                        lines[j] = Span(path, line, 1)
                        todo.discard(j)
                        taken.add((p.code, p.message))
                        if j not in messages:  # the Python reader's words for the same row
                            full = [c.strip(CELL_BLANKS) for c in row[1:]]
                            while file_pred is None and full and full[-1] == "":
                                full.pop()
                            said = typed_fact(self.ruleset, pred, full, lines[j])
                            if isinstance(said, Fact):
                                said = validate_fact(self.ruleset, said)
                            if isinstance(said, Diagnostic) and said.code == p.code:
                                messages[j] = said.message
        out = []
        for j, p in enumerate(problems):
            span = lines.get(j, Span(p.file or (paths[0] if len(paths) == 1 else "<csv>"), 0, 0))
            count = f" ({p.n} such {p.unit}s)" if p.n > 1 else ""
            out.append(Diagnostic(span, messages.get(j, p.message) + count, p.code))
        return sorted(out, key=Diagnostic.sort_key)


_TEXT_OR_INTEGER = {"VARCHAR", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                    "UINTEGER", "UBIGINT", "UHUGEINT"}
"""Parquet column types whose cells read as the same id or symbol in both engines."""


def _is_parquet(path: str | Path) -> bool:
    return Path(path).suffix == ".parquet"


def _parquet_text(path: str, n: int, types: Sequence[str] | None = None) -> str:
    """A Parquet fact file's columns as text `c0..c(n-1)`, in file order: the same cells
    the CSV reader stages, so one set of checks serves both (38.0 reads as '38.0'). A
    FLOAT (single precision) column goes through DOUBLE, so its text is the double the
    Python reader gets (72.1 as a float is 72.0999984741211)."""
    def cell(i: int) -> str:
        if types is not None and i < len(types) and types[i] in ("FLOAT", "REAL", "FLOAT4"):
            return f"CAST(CAST(#{i + 1} AS DOUBLE) AS VARCHAR) AS c{i}"
        return f"CAST(#{i + 1} AS VARCHAR) AS c{i}"
    return f"SELECT {', '.join(cell(i) for i in range(n))} FROM read_parquet({sql_string(path)})"


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


def _numbered_rows(path: str, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of a staged file after its header: CSV lines as the csv module counts
    them; Parquet rows counted from 1, as the Python reader places them."""
    if not _is_parquet(path):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            while True:
                line = reader.line_num + 1  # where the row starts, as the Python reader places it
                row = next(reader, None)
                if row is None:
                    return
                yield line, row
    con = duckdb.connect()
    try:
        types = [str(t).upper() for _, t, *_ in
                 con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(path)})").fetchall()]
        result = con.execute(_parquet_text(path, width, types))
        line = 0
        for batch in iter(lambda: result.fetchmany(10_000), []):
            for row in batch:
                line += 1
                yield line, ["" if c is None else c for c in row]
    finally:
        con.close()


def _firing_table(index: int) -> str:
    return quote_ident(f"_firing_{index}")


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


def _python_diagnosis(path: str, ruleset: RuleSet, limit: int = 20) -> list[Diagnostic]:
    """The first problems the Python fact reader finds in a CSV file DuckDB could not read."""
    from reasoner.io.facts import OneFacts, stream_file
    found: list[Diagnostic] = []
    one = OneFacts(ruleset)
    for item in stream_file(path, ruleset):  # checked facts, and the problems of the others
        if isinstance(item, Diagnostic):
            found.append(item)
            if len(found) == limit:
                return found
        else:
            one.add(item)
    return found + one.problems()[:limit - len(found)]


@dataclass
class _Problem:
    code: str
    message: str
    n: int
    unit: str
    pred: str
    cells: tuple[str, ...] | None = None
    values: tuple[Value, ...] | None = None
    key: tuple[int, Value] | None = None
    file: str | None = None


def _same_values(cells: tuple[str, ...], values: tuple[Value, ...]) -> bool:
    if len(cells) != len(values):
        return False
    for cell, value in zip(cells, values):
        if isinstance(value, str):
            if cell != value:
                return False
        else:
            try:
                if read_number(cell) != value:
                    return False
            except ValueError:
                return False
    return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class SQLResult:
    """The evaluated database: answers stay in DuckDB until asked for."""

    def __init__(self, engine: DuckDBEngine, con: duckdb.DuckDBPyConnection, owner: bool = True):
        self.engine = engine
        self._con = con
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

    def tuples(self, pred: str) -> set[tuple[Value, ...]]:
        eng = self.engine
        rows = self.con.execute(f"SELECT * FROM {quote_ident(eng.table(pred))}").fetchall()
        if eng.arity[pred] == 0:
            return {()} if rows else set()
        numeric = [k == NUM for k in eng.kinds[pred]]
        if not any(numeric):
            return set(rows)
        return {tuple(to_python(v, n) for v, n in zip(row, numeric)) for row in rows}

    def violations(self) -> list[Firing]:
        out = []
        for c in self.engine._constraints:
            rows = self.con.execute(f"SELECT * FROM {quote_ident(f'_violation_{c.index}')}").fetchall()
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

    def _firing_tables(self) -> set[str]:
        return {name for (name,) in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, '_firing_')").fetchall()}

    def fired_for(self) -> dict[int, int]:
        """rule index → for how many patients the rule fired (violations count for
        constraints), as `report.rule_patient_counts` counts a model's firings; rules that
        never fired are left out. Needs an engine made with `firings=True`."""
        eng = self.engine
        if not eng.record_firings:
            raise ValueError("fired_for needs a DuckDBEngine made with firings=True")
        present = self._firing_tables()
        tables = [(i, f"_firing_{i}", f.variables) for i, f in sorted(eng._firings.items())
                  if f"_firing_{i}" in present]
        tables += [(c.index, f"_violation_{c.index}", c.variables) for c in eng._constraints]
        counts = []
        for index, table, names in tables:
            key = eng.ruleset.key_variable(eng.ruleset.rules[index])
            if key is not None and key in names:
                counts.append(f"SELECT {index} AS rule, count(DISTINCT v{names.index(key)}) AS n "
                              f"FROM {quote_ident(table)}")  # firing and violation columns are v0..vn
            else:  # a rule about no patient in particular: it fired at all, or not
                counts.append(f"SELECT {index} AS rule, least(count(*), 1) AS n FROM {quote_ident(table)}")
        if not counts:
            return {}
        rows = self.con.execute("\nUNION ALL\n".join(counts)).fetchall()
        return {index: n for index, n in sorted(rows) if n}

    def _fill_firings(self, model: Model, only: Collection[int] | None = None) -> None:
        """Firings as the pyDatalog engine records them (no aggregate rows: no proofs)."""
        eng = self.engine
        present = self._firing_tables()
        for index, firing in eng._firings.items():
            model.variables[index] = firing.variables
            model.heads[index] = firing.head
            if f"_firing_{index}" not in present or (only is not None and index not in only):
                continue
            cursor = self.con.execute(f"SELECT * FROM {_firing_table(index)}")
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
        for c in eng._constraints:
            model.variables[c.index] = c.variables

    def to_model(self, preds: Collection[str] | None = None, firings_of: Collection[int] | None = None) -> Model:
        """A `Model` of the answers (see `fill` for what `preds` and `firings_of` keep)."""
        return self.fill(Model(), preds, firings_of)

    def relation(self, pred: str) -> duckdb.DuckDBPyRelation:
        """A predicate's table as a DuckDB relation (filter, join, export with DuckDB's API)."""
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
            self.con.execute(f"COPY {quote_ident(self.engine.table(pred))} TO {sql_string(str(path))} ({options})")
            out.append(path)
        return out


def write_fact_csv(path: str | Path, facts: Iterable[Fact]) -> None:
    """Facts to the long CSV layout that `evaluate_csv` (and `load_facts`) read."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        rows = [[f.pred, *[repr(a) if isinstance(a, float) else a for a in f.args]] for f in facts]
        width = max((len(r) for r in rows), default=1)
        writer = csv.writer(fh)
        writer.writerow(["predicate"] + [f"arg{i}" for i in range(1, width)])
        writer.writerows(rows)
