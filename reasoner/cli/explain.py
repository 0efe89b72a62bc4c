"""The commands about proofs: `why`, `why-not`, `verify`. Each imports what it uses
when it runs (tests/test_startup.py: `why` imports the explainer, not DuckDB or the
checker)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from reasoner.cli.common import (
    EXIT_BAD_INPUT, EXIT_FINDINGS, fail, format_option, load_inputs, load_rules, parse_settings, report_violations,
    rules_option, run_models, settings_option,
)
from reasoner.language.errors import ReasonerError

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet
    from reasoner.io.facts import FactSet
    from reasoner.language.syntax import Atom

PROOF_FORMATS = ("text", "json", "dot", "markdown", "html")


def goal_inputs(rules: RuleSet, paths: tuple[str, ...], goal: str) -> tuple[Atom, FactSet]:
    """The checked goal and the facts to evaluate for it (exit 2 on a problem in either).
    Every fact is checked first; when the goal names a patient of a patient-local rule
    set, only that patient's facts are evaluated (`Cohort.facts_for`)."""
    from reasoner.engines.cohort import Cohort
    from reasoner.io.goals import check_goal
    try:
        cohort = Cohort(rules, paths, None)
        atom = check_goal(rules, goal)
        return atom, cohort.facts_for(atom)
    except ReasonerError as exc:
        fail(exc)


@click.command()
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option(*PROOF_FORMATS)
@click.option("--all", "all_proofs", is_flag=True, help="Show alternative proofs, not only the shortest.")
@click.option("--max-proofs", type=click.IntRange(1), default=10, show_default=True,
              help="With --all: at most this many proofs per answer.")
@click.option("--depth", type=click.IntRange(1), default=50, show_default=True,
              help="Cut proof trees deeper than this.")
def why(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
        all_proofs: bool, max_proofs: int, depth: int) -> None:
    """Prove every answer of GOAL: the chain of rules back to the facts and sources.

    GOAL may also be the id of an integrity constraint: each of its violations is
    proved (why the constraint's body holds)."""
    from reasoner.io.goals import constraint_index
    from reasoner.proof.explain import Explainer
    from reasoner.proof.match import goal_rows
    from reasoner.render.proof import render_proofs
    rules = load_rules(rules_path)
    index = constraint_index(rules, goal)
    roots, violations = [], []
    if index is not None:
        factset = load_inputs(rules_path, facts)[1]
        for model in run_models(rules, factset, overrides):
            roots.extend(Explainer(rules, model).violations(index, depth=depth))
            violations += model.violations
    else:
        atom, factset = goal_inputs(rules, facts, goal)
        for model in run_models(rules, factset, overrides):
            explainer = Explainer(rules, model)
            violations += model.violations
            for row in goal_rows(atom, model):
                if all_proofs:
                    roots.extend(explainer.proofs(atom.pred, row, max_proofs=max_proofs, depth=depth))
                else:
                    roots.append(explainer.prove(atom.pred, row, depth=depth))
    click.echo(render_proofs(roots, rules, fmt, goal.strip()), nl=False)
    report_violations(rules, violations)


@click.command("why-not")
@click.argument("goal")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
@format_option(*PROOF_FORMATS)
@click.option("--depth", type=click.IntRange(0), default=3, show_default=True,
              help="How many derived literals deep to explain a failure.")
def why_not(goal: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...], fmt: str,
            depth: int) -> None:
    """Explain why a ground GOAL (e.g. 'recommend(p1, anakinra)') does not hold."""
    from reasoner.engines.model import Model
    from reasoner.proof.explain import Explainer
    from reasoner.render.proof import render_proofs
    from reasoner.language.syntax import Const
    rules = load_rules(rules_path)
    atom, factset = goal_inputs(rules, facts, goal)
    if not all(isinstance(a, Const) for a in atom.args):
        click.echo(f"{atom.span}: error[E016]: why-not needs a ground goal, such as recommend(p1, anakinra); "
                   f"use `reasoner query` to find values", err=True)
        sys.exit(EXIT_BAD_INPUT)
    args = tuple(a.value for a in atom.args)  # type: ignore[union-attr]
    model = Model()
    for part in run_models(rules, factset, overrides):
        model.merge(part)
    node = Explainer(rules, model).why_not(atom.pred, args, depth=depth)
    click.echo(render_proofs([node], rules, fmt, goal.strip()), nl=False)
    report_violations(rules, model.violations)


@click.command()
@click.argument("proof_file", metavar="PROOF.json")
@click.argument("facts", nargs=-1, required=True)
@rules_option
@settings_option
def verify(proof_file: str, facts: tuple[str, ...], rules_path: str | None, overrides: tuple[str, ...]) -> None:
    """Check every step of every proof in PROOF.json (from `why` or `recommend --explain`,
    --format json) against FACTS with an independent evaluator; exit 1 if any step fails
    or is unchecked (cut by --depth)."""
    from reasoner.proof.verify import read_document, run_verify
    try:
        doc = read_document(proof_file, sys.stdin.read() if proof_file == "-" else None)
        rules_set, factset = load_inputs(rules_path, facts)
        lines, ok = run_verify(proof_file, doc, rules_set, factset, parse_settings(overrides))
    except ReasonerError as exc:
        fail(exc)
    for line in lines:
        click.echo(line)
    sys.exit(0 if ok else EXIT_FINDINGS)
