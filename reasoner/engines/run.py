"""The plain entry points: evaluate a rule set over facts, chunk by chunk or whole, and
answer a goal. The command line and the public API (`reasoner.evaluate`, ...) use these."""
from __future__ import annotations

from typing import Iterator

from reasoner.analysis.program import RuleSet
from reasoner.engines import DEFAULT_CHUNK
from reasoner.engines.model import Model, row_key
from reasoner.engines.pydatalog import Engine
from reasoner.io.facts import FactSet, chunks
from reasoner.io.goals import check_goal
from reasoner.language.syntax import Atom


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


def query(rules: RuleSet, facts: FactSet, goal: str | Atom, *,
          settings: dict[str, float] | None = None) -> list[dict]:
    """Answers of `goal` over the facts, sorted: a list of {variable: value}."""
    atom = check_goal(rules, goal)
    answers: list[dict] = []
    for part in evaluate_chunks(rules, facts, settings=settings):
        answers.extend(part.query(atom))
    return sorted(answers, key=lambda a: row_key(tuple(a.values())))
