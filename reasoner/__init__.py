"""A clinical guideline reasoner: guideline statements as Datalog rules over patient facts.

The Python API, stage by stage::

    from reasoner import load_rules, load_facts, evaluate
    rules = load_rules("rules/crs")                 # parse + check (ReasonerError if bad)
    facts = load_facts(rules, ["facts/p01.facts"])  # parse + check against the declarations
    model = evaluate(rules, facts)                  # pyDatalog derives the model
    model.tuples("recommend")                       # {("p1", "tocilizumab"), ...}
    query(rules, facts, "crs_grade(P, G)")          # [{"P": "p1", "G": 3}]
"""
from __future__ import annotations

from typing import Iterator

from .engine import DEFAULT_CHUNK, Engine
from .errors import Diagnostic, EvaluationLimit, ReasonerError
from .facts import FactSet, chunks, load_facts
from .model import Model
from .parse import parse_goal
from .program import RuleSet, load_rules
from .syntax import Atom

__all__ = [
    "Diagnostic", "Engine", "EvaluationLimit", "FactSet", "Model", "ReasonerError", "RuleSet",
    "evaluate", "evaluate_chunks", "load_facts", "load_rules", "query", "check_goal",
]


def evaluate_chunks(rules: RuleSet, facts: FactSet, *, settings: dict[str, float] | None = None,
                    chunk_size: int = DEFAULT_CHUNK, engine: Engine | None = None) -> Iterator[Model]:
    """Evaluate patient by patient chunk; yields one model per chunk (memory stays flat)."""
    engine = engine or Engine(rules, settings)
    for chunk in chunks(rules, facts, chunk_size):
        yield engine.evaluate(chunk)


def evaluate(rules: RuleSet, facts: FactSet, *, settings: dict[str, float] | None = None,
             chunk_size: int = DEFAULT_CHUNK) -> Model:
    """Evaluate the rule set over all the facts and return one model."""
    model = Model()
    for part in evaluate_chunks(rules, facts, settings=settings, chunk_size=chunk_size):
        model.merge(part)
    return model


def check_goal(rules: RuleSet, goal: str | Atom) -> Atom:
    """Parse a goal and check it against the declarations (ReasonerError if it does not fit)."""
    atom = parse_goal(goal) if isinstance(goal, str) else goal
    decl = rules.decls.get(atom.pred)
    if decl is None:
        from .program import _suggest
        raise ReasonerError.at(atom.span, f"unknown predicate {atom.pred}/{atom.arity}"
                               + _suggest(atom.pred, rules.decls), "E002")
    if decl.arity != atom.arity:
        raise ReasonerError.at(atom.span, f"{atom.pred} takes {decl.arity} arguments "
                               f"({', '.join(a.name for a in decl.args)}), not {atom.arity}", "E003")
    return atom


def query(rules: RuleSet, facts: FactSet, goal: str | Atom, *,
          settings: dict[str, float] | None = None) -> list[dict]:
    """Answers of `goal` over the facts, sorted: a list of {variable: value}."""
    atom = check_goal(rules, goal)
    answers: list[dict] = []
    for part in evaluate_chunks(rules, facts, settings=settings):
        answers.extend(part.query(atom))
    from .model import row_key
    return sorted(answers, key=lambda a: row_key(tuple(a.values())))
