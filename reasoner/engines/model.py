"""What an evaluation produces: the materialized model every later stage reads.

Nothing after the engine talks to pyDatalog: answers, proofs and reports are computed
from a `Model` (predicate → set of tuples, plus each rule's firings with their
variable bindings), which a second engine could produce just as well.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from reasoner.plan.semantics import values_equal  # noqa: F401  (re-exported: the one definition of equality)
from reasoner.language.syntax import Atom, Const, Span, Value, Var


_DIGITS = re.compile(r"(\d+)")


@dataclass
class Firing:
    """One way a rule fired: its index in `RuleSet.rules` and the values of its variables."""

    rule_index: int
    bindings: dict[str, Value]


@dataclass
class Model:
    """Facts (input and derived) of one evaluation, with how each derived fact arose."""

    facts: dict[str, set[tuple[Value, ...]]] = field(default_factory=lambda: defaultdict(set))
    firings: dict[int, list[tuple[Value, ...]]] = field(default_factory=lambda: defaultdict(list))
    """rule index → rows of that rule's variables (order: `variables[rule index]`)."""
    variables: dict[int, tuple[str, ...]] = field(default_factory=dict)
    origins: dict[tuple[str, tuple[Value, ...]], Span] = field(default_factory=dict)
    """Where each input fact was read (file:line:col)."""
    violations: list[Firing] = field(default_factory=list)
    """Integrity constraints whose body held, with the bindings that made it hold."""
    heads: dict[int, tuple[tuple[str, Value], ...]] = field(default_factory=dict)
    """rule index → its head as ("var", name) / ("const", value) per argument."""
    aggregate_rows: dict[tuple[int, int], tuple[tuple[str, ...], list[tuple[Value, ...]]]] = \
        field(default_factory=dict)
    """(rule index, position of the aggregate in the body) → (its body's variables, the rows
    it aggregated)."""
    settings: dict[str, Value] = field(default_factory=dict)
    """The setting values the model was computed with."""
    fired_for: dict[int, int] | None = None
    """rule index → for how many patients it fired, when the engine counted that itself
    (DuckDB counts in SQL, so a cohort report need not carry every rule's firings);
    None: count from `firings`."""

    def head_of(self, rule_index: int, bindings: dict[str, Value]) -> tuple[Value, ...]:
        """The head tuple a firing of rule `rule_index` with `bindings` concluded."""
        return tuple(bindings[v] if kind == "var" else v for kind, v in self.heads[rule_index])  # type: ignore[index]

    def index(self, pred: str, position: int) -> dict[tuple, list[tuple[Value, ...]]]:
        """Rows of `pred` by the value at `position` (built on first use; for inspection
        after evaluation: `merge` drops the indexes)."""
        cache = self.__dict__.setdefault("_indexes", {})
        table = cache.get((pred, position))
        if table is None:
            table = {}
            for row in self.facts.get(pred, ()):
                if position < len(row):
                    table.setdefault((isinstance(row[position], str), row[position]), []).append(row)
            cache[(pred, position)] = table
        return table

    def tuples(self, pred: str) -> set[tuple[Value, ...]]:
        """Every tuple of `pred` in the model (a copy)."""
        return set(self.facts.get(pred, ()))

    def holds(self, pred: str, args: tuple[Value, ...]) -> bool:
        return args in self.facts.get(pred, ())

    def rule_firings(self, rule_index: int) -> Iterable[dict[str, Value]]:
        names = self.variables.get(rule_index, ())
        for row in self.firings.get(rule_index, ()):
            yield dict(zip(names, row))

    def query(self, goal: Atom) -> list[dict[str, Value]]:
        """Answers of `goal` as {variable: value}, sorted; `[{}]` for a ground goal that holds."""
        names = [a.name for a in goal.args if isinstance(a, Var) and not a.anonymous]
        out_vars = list(dict.fromkeys(names))
        answers = set()
        for row in self.facts.get(goal.pred, ()):
            if len(row) != len(goal.args):
                continue
            env: dict[str, Value] = {}
            ok = True
            for arg, value in zip(goal.args, row):
                if isinstance(arg, Const):
                    if not values_equal(arg.value, value):
                        ok = False
                        break
                elif isinstance(arg, Var) and not arg.anonymous:
                    if arg.name in env and not values_equal(env[arg.name], value):
                        ok = False
                        break
                    env[arg.name] = value
            if ok:
                answers.add(tuple(env[v] for v in out_vars))
        return [dict(zip(out_vars, row)) for row in sorted(answers, key=row_key)]

    def merge(self, other: "Model", rule_offset: int = 0) -> None:
        """Add another chunk's model to this one (chunks hold disjoint patients)."""
        self.__dict__.pop("_indexes", None)
        for pred, rows in other.facts.items():
            self.facts[pred] |= rows
        for index, rows in other.firings.items():
            self.firings[index].extend(rows)
        self.variables.update(other.variables)
        self.heads.update(other.heads)
        self.origins.update(other.origins)
        self.violations.extend(other.violations)
        self.settings.update(other.settings)
        if other.fired_for is not None:  # chunks hold disjoint patients: counts add up
            mine = self.fired_for if self.fired_for is not None else {}
            for index, n in other.fired_for.items():
                mine[index] = mine.get(index, 0) + n
            self.fired_for = mine
        for key, (names, rows) in other.aggregate_rows.items():
            if key in self.aggregate_rows:
                self.aggregate_rows[key][1].extend(rows)
            else:
                self.aggregate_rows[key] = (names, list(rows))


@functools.lru_cache(maxsize=1 << 16)  # reports sort every row: the same ids and actions recur
def value_key(v: Value) -> tuple:
    """A total order on constants: numbers by value, then strings in natural order
    (p2 before p10), so listings read the way a person expects."""
    if isinstance(v, str):
        parts = _DIGITS.split(v)
        return (1, 0.0, tuple(_digits_key(p) if i % 2 else p for i, p in enumerate(parts)), v)
    return (0, float(v), (), "")


def _digits_key(run: str) -> tuple[int, int | str]:
    """A run of digits in the order of its number: by length without leading zeros, then by
    value. Past 4,000 digits by the digits themselves (the same order), as Python will not
    turn so long a text into an int (and would take quadratic time if made to)."""
    zeros = 0
    while zeros < len(run) and unicodedata.digit(run[zeros]) == 0:  # a zero of any script
        zeros += 1
    size = len(run) - zeros
    if size <= 4000:
        return (size, int(run))
    return (size, "".join(str(unicodedata.digit(c)) for c in run))


def row_key(row: tuple[Value, ...]) -> tuple:
    return tuple(value_key(v) for v in row)
