"""The DuckDB engine's column types: one kind per predicate argument, NUM (DOUBLE) or SYM
(VARCHAR), found by unification over the rule set (`ColumnTypes`), with the kinds that
only the facts decide given as evidence (`kind_of` of a fact's value).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

from reasoner.analysis.program import ANY, NUMERIC, RuleSet
from reasoner.io.sqltext import NUM, SYM
from reasoner.language.errors import Diagnostic
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Comparison, Const, Expr, Literal, Negation, Setting, Span, Value, Var,
)

_NOSPAN = Span("<duckdb>", 0, 0)
_ORDERING = ("<", "<=", ">", ">=")


def kind_of(value: Value) -> str:
    return SYM if isinstance(value, str) else NUM


class ColumnTypes:
    """Column types by unification: declared types, constants, arithmetic and equalities
    decide; an argument of type `any` that nothing decides is VARCHAR."""

    def __init__(self, rs: RuleSet, evidence: Mapping[tuple[str, int], str]):
        self.rs = rs
        self.parent: dict[tuple, tuple] = {}
        self.kinds: dict[tuple, set[str]] = defaultdict(set)
        self.why: dict[tuple, Span] = {}
        self._given: list[tuple] = []  # nodes given a value by a constant or a setting
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

    def patient_classes(self, keyed: Mapping[str, int]) -> set[tuple]:
        """The classes of columns that may hold patient numbers instead of patient ids
        (`sqltext.KEY`): each class of a keyed input's patient column whose values can
        only come from such columns. A class that a constant or a setting reaches, or an
        input column that is not a patient's, holds text the numbers cannot stand for,
        and is left out (with every class it meets: a class is one set of values)."""
        roots = {self._find(("slot", pred, k)) for pred, k in keyed.items()}
        given = {self._find(node) for node in self._given}
        for pred, decl in self.rs.decls.items():
            if decl.role != "input":
                continue
            for i in range(decl.arity):
                root = self._find(("slot", pred, i))
                if root in roots and keyed.get(pred) != i:
                    given.add(root)
        return {root for root in roots if root not in given and self.root_kinds.get(root) == {SYM}}

    def in_classes(self, node: tuple, classes: set[tuple]) -> bool:
        """Whether a slot (`("slot", pred, i)`) or a rule's variable (`("var", index,
        name)`) is in one of `classes`."""
        return node in self.parent and self._find(node) in classes

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
            return kind_of(e.value)
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
            if isinstance(arg, (Const, Setting)):
                self._given.append(slot)
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
                for side in (left, right):
                    if isinstance(side, tuple) and not (isinstance(left, tuple) and isinstance(right, tuple)):
                        self._given.append(side)  # compared with a constant or an expression
                if isinstance(left, tuple) and isinstance(right, tuple):
                    self._union(left, right)
                elif isinstance(left, tuple) and right is not None:
                    self._mark(left, right, lit.span)  # type: ignore[arg-type]
                elif isinstance(right, tuple) and left is not None:
                    self._mark(right, left, lit.span)  # type: ignore[arg-type]
