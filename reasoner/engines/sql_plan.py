"""The DuckDB engine's compiled plan: a rule set turned into the statements it runs
(`SQLPlan`), and that plan as SQL text to read (`SQLPlan.script`).

Compiling decides each predicate's table name and column types
(`reasoner.engines.sql_types`), the order of the components (`reasoner.plan.lowered`),
and for each component the SELECT of every rule, the semi-naive variants of a
recursive one, each rule's firings and each integrity constraint. The SELECTs are
sqlglot trees built by `reasoner.engines.sqlgen`, kept as functions that build them anew
(a rule whose tables stay empty is never built). Running the plan, loading facts and
partitioning a cohort are `reasoner.engines.sql.DuckDBEngine`'s.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Mapping, Sequence

import duckdb
from sqlglot import exp

from reasoner.analysis.program import RuleSet
from reasoner.engines.sql_types import ColumnTypes
from reasoner.engines.sqlgen import SQLGen, render
from reasoner.io.sqltext import KEY, SYM
from reasoner.language.errors import EvaluationLimit, ReasonerError
from reasoner.language.syntax import Const, Value, Var
from reasoner.plan.lowered import LoweredRule, plan_of, setting_or_const

Make = Callable[[], exp.Select]
"""Builds a statement's SELECT tree anew: each rendering takes a fresh tree (no copies),
and a rule whose predicates stay empty is never built (one patient needs far fewer than
a cohort). The function's identity keys the rendered text (the engine's cache of rendered statements)."""

Entry = tuple[int, Make, frozenset]
"""(rule index, its SELECT, the predicates of its positive atoms)."""



def variant_entries(gen: "SQLGen", rules: list[LoweredRule]) -> list[Entry]:
    """A recursive component's semi-naive round: each rule once per recursive atom, that
    atom read from its `_delta_` table (the last round's new rows); a rule with an
    aggregate runs whole (aggregates range over lower strata). Every SQL engine's loop."""
    out: list[Entry] = []
    for rule in rules:
        if rule.aggregates:
            out.append((rule.index, lambda rule=rule: gen.rule_select(rule), rule.needs))
        for variant in rule.variants:
            out.append((rule.index, lambda rule=rule, variant=variant: gen.rule_select(
                rule, {id(variant.atom): "_delta_" + gen.table(variant.atom.pred)}, variant.steps),
                rule.needs | {("delta", variant.atom.pred)}))
    return out


def semi_naive(round_: Callable[[Mapping[str, list[Entry]]], int], rules: Mapping[str, list[Entry]],
               variants: Mapping[str, list[Entry]], max_iterations: int, check_time: Callable[[], None]) -> None:
    """Every SQL engine's recursive loop: `round_(rules)` over the full tables, then
    `round_(variants)` (the semi-naive round) until a round adds nothing (`round_`
    returns the rows it added), at most `max_iterations` rounds."""
    new = round_(rules)
    for _ in range(max_iterations):
        if not new:
            return
        check_time()
        new = round_(variants)
    raise EvaluationLimit(f"recursion did not reach a fixpoint in {max_iterations} rounds")


def check_time_limit(started: float, time_limit: float | None) -> None:
    """Raise EvaluationLimit once `time_limit` seconds have passed since `started`
    (time.monotonic()); checked between statements."""
    if time_limit is not None and time.monotonic() - started > time_limit:
        raise EvaluationLimit(f"evaluation stopped after {time_limit:g} s (time limit)")


@dataclass
class Component:
    """A component of the plan: its predicates, and the SELECTs that fill them."""

    preds: list[str]
    recursive: bool
    rules: dict[str, list[Entry]]
    """head predicate → an entry for every rule of the component: a rule with an empty
    positive predicate is not run."""
    variants: dict[str, list[Entry]] = field(default_factory=dict)
    """Recursive: head predicate → SELECTs of the later rounds (one per recursive body atom,
    which reads `_delta_p`, needed as ("delta", p); a rule with an aggregate is run whole)."""


class Firings:
    """A rule's firings: the SELECT DISTINCT of every variable (v0..vn), and its head."""

    def __init__(self, gen: SQLGen, rule: LoweredRule, head: tuple[tuple[str, Value], ...]):
        self.variables = rule.variables
        self.head = head  # ("var", name) or ("const", value) per head argument
        self.select: Make = lambda: gen.firing_select(rule)
        self.from_table: Make = lambda: gen.conclusion(rule, f"_firing_{rule.index}")  # its conclusions
        self._rule, self._gen = rule, gen

    @cached_property
    def distinct_conclusions(self) -> bool:
        """Whether no two firings conclude the same fact: the head keeps every variable. A
        firing table is a set (`SQLGen.firing_select`), so its conclusions then are one."""
        kept = {name for kind, name in self.head if kind == "var"}
        return bool(self.variables) and kept >= set(self.variables)

    @cached_property
    def conclusion_columns(self) -> list[str]:
        """Each head column computed from a firing row (DuckDB SQL; report_sql reads them)."""
        return [render(c) for c in self._gen.conclusion_columns(self._rule)]


@dataclass
class Constraint:
    """An integrity constraint: its rule index, variables and SELECT (each row a violation)."""

    index: int
    variables: tuple[str, ...]
    select: Make


class SQLPlan:
    """A rule set compiled for the DuckDB engine: tables, column kinds, and what to run."""

    def __init__(self, ruleset: RuleSet, settings: Mapping[str, Value], evidence: dict[tuple[str, int], str],
                 record_firings: bool, patient_codes: Mapping[str, int] | None = None):
        self.ruleset = ruleset
        self.settings = settings
        self.record_firings = record_firings
        rs = ruleset
        plan = plan_of(rs)
        types = ColumnTypes(rs, evidence)
        if types.conflicts:
            raise ReasonerError(types.conflicts)
        self.types = types
        self.arity: dict[str, int] = {p: d.arity for p, d in rs.decls.items()}
        # with `patient_codes` (keyed input → its patient's position), the columns that
        # can only hold patients hold their numbers instead (KEY)
        self.coded = types.patient_classes(patient_codes) if patient_codes else set()
        self.kinds: dict[str, list[str]] = {
            p: [KEY if types.in_classes(("slot", p, i), self.coded) else types.kind(p, i) or SYM for i in range(n)]
            for p, n in self.arity.items()}
        self.tables: dict[str, str] = {}
        lower: dict[str, int] = defaultdict(int)
        for pred in sorted(self.arity):  # DuckDB matches names case-insensitively
            lower[pred.lower()] += 1
            n = lower[pred.lower()]
            self.tables[pred] = pred if n == 1 else f"{pred}__{n}"
        self.gen = gen = SQLGen(self.tables, self.kinds, self.settings)
        self.static: dict[str, list[tuple[Value, ...]]] = defaultdict(list)
        by_head: dict[str, list[int]] = defaultdict(list)
        self.constraints: list[Constraint] = []
        self.firings: dict[int, Firings] = {}
        seen: set[tuple[str, tuple[Value, ...]]] = set()
        for index, rule in enumerate(rs.rules):
            if rule.head is not None and not rule.body:
                args = tuple(a.value if isinstance(a, Const) else self.settings[a.name]  # type: ignore[union-attr]
                             for a in rule.head.args)
                if (rule.head.pred, args) not in seen:  # a set: a program may state 50,000 facts
                    seen.add((rule.head.pred, args))
                    self.static[rule.head.pred].append(args)
            elif rule.head is None:
                lowered = plan.rules[index]
                self.constraints.append(Constraint(index, lowered.variables,
                                                 lambda r=lowered: gen.firing_select(r)))
            else:
                by_head[rule.head.pred].append(index)
                if self.record_firings:
                    self.firings[index] = self._firing_select(plan.rules[index])
        self.components: list[Component] = []
        for comp in plan.components:
            component = Component(list(comp.preds), comp.recursive, {})
            for pred in comp.preds:
                lowered = [plan.rules[i] for i in by_head[pred]]
                component.rules[pred] = [(r.index, lambda r=r: gen.rule_select(r), r.needs)
                                         for r in lowered]
                if comp.recursive:
                    component.variants[pred] = variant_entries(self.gen, lowered)
            self.components.append(component)

    def coded_variables(self, index: int, names: Sequence[str]) -> list[bool]:
        """Which of rule `index`'s variables hold patient numbers (KEY), in `names`' order."""
        return [bool(self.coded) and self.types.in_classes(("var", index, name), self.coded) for name in names]

    def _firing_select(self, rule: LoweredRule) -> Firings:
        """The rule's firings: the DISTINCT values of all its variables, in the plan's
        row layout (as every engine lists them)."""
        assert rule.head is not None
        head = tuple(("var", a.name) if isinstance(a, Var) else ("const", setting_or_const(a, self.settings))
                     for a in rule.head)
        return Firings(self.gen, rule, head)

    def table(self, pred: str) -> str:
        return self.tables[pred]

    def may_hold_rows(self, pred: str) -> bool:
        """Before its rules run: input facts or facts of the rule set."""
        decl = self.ruleset.decls.get(pred)
        return pred in self.static or decl is None or decl.role == "input"


    def ddl_trees(self, temp: bool = False) -> list:
        recursive = [p for c in self.components if c.recursive for p in c.preds]
        return self.gen.ddl(sorted(self.arity), recursive, temp)

    def static_trees(self) -> list:
        return [self.gen.static_insert(pred, rows) for pred, rows in self.static.items()]


    def rule_comment(self, index: int) -> str:
        rule = self.ruleset.rules[index]
        where = f"{Path(rule.span.file).name}:{rule.span.line}" if rule.span.line else ""
        name = self.ruleset.rule_name(rule)
        text = str(rule).replace("\n", " ")
        return f"-- {name}{' (' + where + ')' if where and rule.id else ''}: {text}"

    def script(self, dialect: str) -> list[tuple[str, str]]:
        """The evaluation program in order: ("comment", text) and ("sql", statement)
        items, statements rendered for `dialect` (one of `sqlgen.DIALECTS`)."""
        rs, gen = self.ruleset, self.gen
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
        for tree in self.ddl_trees():
            sql(tree)
        comment("")
        comment("-- input facts: one INSERT per input predicate here")
        comment("")
        comment("-- facts of the rule set")
        for tree in self.static_trees():
            sql(tree)
        for comp in self.components:
            comment("")
            if not comp.recursive:
                (pred,) = comp.preds
                for i, _, _ in comp.rules[pred]:
                    comment(self.rule_comment(i))
                minus = self.table(pred) if self.may_hold_rows(pred) else None
                sql(gen.insert(self.table(pred), [make() for _, make, _ in comp.rules[pred]], minus))
                continue
            comment(f"-- recursive component {', '.join(comp.preds)}: semi-naive, driven from Python")
            comment("-- round 0: every rule over the full tables; then each predicate P grows by _new_P")
            for pred in comp.preds:
                t = self.table(pred)
                for i, _, _ in comp.rules[pred]:
                    comment(self.rule_comment(i))
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
        if self.constraints:
            comment("")
            comment("-- integrity constraints: every row is a violation")
            for c in self.constraints:
                comment(self.rule_comment(c.index))
                sql(gen.create_as(f"_violation_{c.index}", c.select()))
        return out

