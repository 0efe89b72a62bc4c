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
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from .engine import Engine
    from .errors import Diagnostic, EvaluationLimit, ReasonerError
    from .facts import FactSet, load_facts
    from .model import Model
    from .program import RuleSet, load_rules
    from .syntax import Atom

__all__ = [
    "Diagnostic", "Engine", "EvaluationLimit", "FactSet", "Model", "ReasonerError", "RuleSet",
    "evaluate", "evaluate_chunks", "load_facts", "load_rules", "query", "check_goal",
]

DEFAULT_CHUNK = 50
"""Patients per chunk: pyDatalog's cost per row grows with the facts it holds (measured best near 50)."""

# Imported when first used, not with the package: `reasoner --help` needs none of them,
# and `reasoner query` no checker, explainer or DuckDB (each command imports what it uses).
_LAZY = {
    "Engine": "engine", "Diagnostic": "errors", "EvaluationLimit": "errors", "ReasonerError": "errors",
    "FactSet": "facts", "chunks": "facts", "load_facts": "facts", "Model": "model", "parse_goal": "parse",
    "RuleSet": "program", "load_rules": "program", "Atom": "syntax",
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


def evaluate_chunks(rules: RuleSet, facts: FactSet, *, settings: dict[str, float] | None = None,
                    chunk_size: int = DEFAULT_CHUNK, engine: Engine | None = None) -> Iterator[Model]:
    """Evaluate patient by patient chunk; yields one model per chunk (memory stays flat)."""
    from .engine import Engine
    from .facts import chunks
    engine = engine or Engine(rules, settings)
    for chunk in chunks(rules, facts, chunk_size):
        yield engine.evaluate(chunk)


def evaluate(rules: RuleSet, facts: FactSet, *, settings: dict[str, float] | None = None,
             chunk_size: int = DEFAULT_CHUNK) -> Model:
    """Evaluate the rule set over all the facts and return one model."""
    from .model import Model
    model = Model()
    for part in evaluate_chunks(rules, facts, settings=settings, chunk_size=chunk_size):
        model.merge(part)
    return model


def check_goal(rules: RuleSet, goal: str | Atom) -> Atom:
    """Parse a goal and check it against the declarations, the way a fact is checked
    (ReasonerError, located in the goal, if it does not fit). Returns the goal with its
    constants as the engines hold them.

    Each argument is a variable or a constant: a `$setting` or arithmetic is refused
    (E016), not ignored. A constant is checked against the declared type, range and
    enumeration (E004, E005, E006), and read as the same text in a fact file would be: a
    number written where an id or a symbol is declared is that id, spelled as written
    (`weight_kg(17, K)` asks about the patient "17", `007` about "007")."""
    from .errors import Diagnostic, ReasonerError
    from .facts import NumberText, check_argument, literal_args
    from .parse import parse_goal
    from .syntax import Atom, BinOp, Call, Const, Setting
    text = goal.strip() if isinstance(goal, str) else None
    atom = parse_goal(goal) if isinstance(goal, str) else goal
    decl = rules.decls.get(atom.pred)
    if decl is None:
        from .program import _suggest
        raise ReasonerError.at(atom.span, f"unknown predicate {atom.pred}/{atom.arity}"
                               + _suggest(atom.pred, rules.decls), "E002")
    if decl.arity != atom.arity:
        raise ReasonerError.at(atom.span, f"{atom.pred} takes {decl.arity} arguments "
                               f"({', '.join(a.name for a in decl.args)}), not {atom.arity}", "E003")
    problems: list[Diagnostic] = []
    args = list(atom.args)
    written: list | None = None
    for i, (arg, spec) in enumerate(zip(atom.args, decl.args)):
        if isinstance(arg, Setting):
            known = "" if arg.name in rules.settings else " (no such setting)"
            problems.append(Diagnostic(arg.span, f"a goal's arguments are variables and constants, not the setting "
                                       f"${arg.name}{known}: write its value", "E016"))
        elif isinstance(arg, (BinOp, Call)):
            problems.append(Diagnostic(arg.span, "a goal's arguments are variables and constants, not arithmetic: "
                                       "write the value", "E016"))
        elif isinstance(arg, Const):
            value = arg.value
            if not isinstance(value, str) and text is not None:
                if written is None:
                    line = atom.span.line
                    starts = [0] + [k + 1 for k, c in enumerate(text) if c == "\n"]
                    written = literal_args(text, starts[line - 1] + atom.span.col - 1) if 0 < line <= len(starts) \
                        else []
                if i < len(written) and written[i] is not None:
                    value = NumberText(written[i])  # type: ignore[assignment]
            checked = check_argument(value, spec, rules)
            if isinstance(checked, tuple):
                problem, code = checked
                problems.append(Diagnostic(arg.span, f"{atom.pred} argument {spec.name}: {problem}", code))
            else:
                args[i] = Const(checked, arg.span)
    if problems:
        raise ReasonerError(problems)
    return Atom(atom.pred, tuple(args), atom.span)


def query(rules: RuleSet, facts: FactSet, goal: str | Atom, *,
          settings: dict[str, float] | None = None) -> list[dict]:
    """Answers of `goal` over the facts, sorted: a list of {variable: value}."""
    atom = check_goal(rules, goal)
    answers: list[dict] = []
    for part in evaluate_chunks(rules, facts, settings=settings):
        answers.extend(part.query(atom))
    from .model import row_key
    return sorted(answers, key=lambda a: row_key(tuple(a.values())))
