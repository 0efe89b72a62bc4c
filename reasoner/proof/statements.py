"""How a proof step states what it saw: a literal with its values filled in (`weight_kg(p01, 72)`),
a comparison as a statement that is true whether or not it holds
(`T = 37.9; 37.9 ≥ 38.0 is false`), an aggregate with how many rows it counted, a
head's computed arguments with their values. `StepText` holds the rule set and model
these read; the provers (`why`, `whynot`) build on it.
"""
from __future__ import annotations

from reasoner.proof.match import Env, Unbound, compare, eval_expr
from reasoner.proof.tree import fact_text
from reasoner.engines.model import Model, row_key, values_equal
from reasoner.plan.semantics import has_value
from reasoner.analysis.program import RuleSet, fill_settings
from reasoner.language.errors import EvaluationLimit
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Rule, Setting, Value, Var, format_value,
)


MAX_STEPS = 300_000
"""Steps an explanation may take (a derivation or a rule tried): seconds, not hours."""


class StepText:
    """The text of proof steps over one model."""

    def __init__(self, ruleset: RuleSet, model: Model):
        self.rs = ruleset
        self.model = model
        self.settings = model.settings
        self.steps = 0

    def _step(self) -> None:
        """One more step of an explanation; past MAX_STEPS, EvaluationLimit (E022): `why
        --all` and `why-not` over dense recursive rules can grow exponentially with --depth."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise EvaluationLimit(f"the explanation stopped after {MAX_STEPS:,} steps: the rules' derivations of "
                                  "this goal are too many to list; use a smaller --depth (or --max-proofs)")

    def _says(self, index: int) -> str | None:
        """Rule `index`'s sentence as this run reads it (its `$settings` as values)."""
        says = self.rs.rules[index].says
        return fill_settings(says, self.settings) if says else None

    def _head_values(self, rule: Rule, bindings: Env) -> str:
        """The head's computed arguments with their values: `V * 2 = 3 * 2 = 6`."""
        if rule.head is None:
            return ""
        parts = []
        for arg in rule.head.args:
            if isinstance(arg, (BinOp, Call)):
                try:
                    parts.append(f"{arg} = {substituted(arg, bindings, self.settings)} = "
                                 f"{format_value(eval_expr(arg, bindings, self.settings))}")
                except (Unbound, TypeError):
                    continue
        return "; ".join(parts)

    def _ground(self, atom: Atom, env: Env) -> tuple[Value, ...]:
        return tuple(eval_expr(a, env, self.settings) for a in atom.args)

    def _partial(self, atom: Atom, env: Env) -> tuple:
        out = []
        for a in atom.args:
            try:
                out.append(eval_expr(a, env, self.settings))
            except Unbound:
                out.append(None)
        return tuple(out)

    def _pattern(self, atom: Atom, env: Env) -> str:
        parts = []
        for a in atom.args:
            try:
                parts.append(format_value(eval_expr(a, env, self.settings)))
            except Unbound:
                parts.append("_" if isinstance(a, Var) and a.anonymous else str(a))
        return f"{atom.pred}({', '.join(parts)})"

    def _nearby(self, pred: str, partial: tuple) -> str:
        """Facts of the same predicate for the same patient: what *is* known."""
        k = self.rs.key_index(pred)
        if k is None or k >= len(partial) or partial[k] is None:
            return ""
        rows = sorted((r for r in self.model.facts.get(pred, ()) if values_equal(r[k], partial[k])), key=row_key)
        if not rows:
            return f"; no {pred} fact at all for {format_value(partial[k])}"
        return "; known: " + ", ".join(fact_text(pred, r) for r in rows[:3])

    def _comparison_values(self, lit: Comparison, env: Env) -> str:
        """The comparison with its values, as a statement that is true whether or not the
        comparison holds: `T = 37.9; 37.9 ≥ 38.0 is false`, `Mg = min(8 * 72, 800) = 576, not 500`."""
        missing = [self._no_value(e, env) for e in (lit.left, lit.right)]
        if any(missing):  # no comparison holds with a side that has no value (semantics.py)
            return "; ".join(m for m in missing if m) + ", so the condition fails"
        try:
            left, right = eval_expr(lit.left, env, self.settings), eval_expr(lit.right, env, self.settings)
        except Unbound as exc:
            return f"{lit}: {exc} has no value"
        holds = compare(lit.op, left, right)
        if lit.op == "=":
            for var, expr, value, other in ((lit.left, lit.right, left, right), (lit.right, lit.left, right, left)):
                if isinstance(var, Var) and not isinstance(expr, (Var, Const)):
                    text = f"{var.name} = {substituted(expr, env, self.settings)} = {format_value(other)}"
                    return text if holds else f"{text}, not {format_value(value)}"
        op = {"<=": "≤", ">=": "≥", "!=": "≠"}.get(lit.op, lit.op)
        if holds and isinstance(lit.left, Var) and isinstance(lit.right, Const):  # the common filter, as a true chain
            return f"{lit.left.name} = {format_value(left)} {op} {format_value(right)}"
        sides = [self._side(e, env) for e in (lit.left, lit.right) if not isinstance(e, Const)]
        verdict = f"{format_value(left)} {op} {format_value(right)} {'holds' if holds else 'is false'}"
        return "; ".join(sides + [verdict])

    def _no_value(self, e: Expr, env: Env) -> str:
        """`1 / (W - 100) = 1 / (100 - 100) has no value (it divides by zero)` when `e` is
        computable from `env` and has no value; "" otherwise."""
        try:
            if has_value(eval_expr(e, env, self.settings)):
                return ""
        except Unbound:
            return ""
        return f"{e} = {substituted(e, env, self.settings)} has no value{self._why_no_value(e, env)}"

    def _why_no_value(self, e: Expr, env: Env) -> str:
        if isinstance(e, BinOp):
            if e.op == "/" and has_value(divisor := eval_expr(e.right, env, self.settings)) and divisor == 0:
                return " (it divides by zero)"
            return self._why_no_value(e.left, env) or self._why_no_value(e.right, env)
        if isinstance(e, Call):
            return next((w for a in e.args if (w := self._why_no_value(a, env))), "")
        return ""

    def _side(self, e: Expr, env: Env) -> str:
        value = format_value(eval_expr(e, env, self.settings))
        if isinstance(e, Var):
            return f"{e.name} = {value}"
        if isinstance(e, Setting):
            return f"${e.name} = {value}"
        return f"{e} = {substituted(e, env, self.settings)} = {value}"

    def _aggregate_values(self, lit: Aggregate, env: Env, rows: list[Env]) -> str:
        value = env.get(lit.result.name)
        what = "row" if lit.func == "count" else "value"
        return f"{lit.result.name} = {format_value(value) if value is not None else '?'} " \
               f"({lit.func} over {len(rows)} {what}{'s' if len(rows) != 1 else ''})"


def substituted(e: Expr, env: Env, settings: dict[str, Value]) -> str:
    """An expression with its variables and settings replaced by their values, with the
    parentheses its structure needs: `(W - 10) / 2` → `(72 - 10) / 2`."""
    def sub(x: Expr) -> Expr:
        if isinstance(x, Var) and x.name in env:
            return Const(env[x.name])
        if isinstance(x, Setting) and x.name in settings:
            return Const(settings[x.name])
        if isinstance(x, BinOp):
            return BinOp(x.op, sub(x.left), sub(x.right))
        if isinstance(x, Call):
            return Call(x.func, tuple(sub(a) for a in x.args))
        return x
    return str(sub(e))
