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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasoner.analysis.program import RuleSet, load_rules
    from reasoner.engines.model import Model
    from reasoner.engines.pydatalog import Engine
    from reasoner.engines.run import evaluate, evaluate_chunks, query
    from reasoner.io.facts import FactSet, load_facts
    from reasoner.io.goals import check_goal
    from reasoner.language.errors import Diagnostic, EvaluationLimit, ReasonerError

__all__ = [
    "Diagnostic", "Engine", "EvaluationLimit", "FactSet", "Model", "ReasonerError", "RuleSet",
    "evaluate", "evaluate_chunks", "load_facts", "load_rules", "query", "check_goal",
]

# The public API, imported when first used, not with the package: `reasoner --help`
# needs none of it, and `reasoner query` no checker, explainer or DuckDB. Modules of the
# package never import from here (tests/test_layout.py): each imports what it uses.
_LAZY = {
    "Engine": "engines.pydatalog", "Diagnostic": "language.errors", "EvaluationLimit": "language.errors",
    "ReasonerError": "language.errors", "FactSet": "io.facts", "chunks": "io.facts", "load_facts": "io.facts",
    "Model": "engines.model", "parse_goal": "language.parse", "RuleSet": "analysis.program",
    "load_rules": "analysis.program", "Atom": "language.syntax", "evaluate": "engines.run",
    "evaluate_chunks": "engines.run", "query": "engines.run", "check_goal": "io.goals",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
