"""Goals (`crs_grade(p01, G)`) checked against the declarations the way facts are."""
from __future__ import annotations

from reasoner.analysis.program import RuleSet, suggest
from reasoner.io.facts import NumberText, check_argument, literal_args
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.parse import parse_goal
from reasoner.language.syntax import Atom, BinOp, Call, Const, Setting


def check_goal(rules: RuleSet, goal: str | Atom) -> Atom:
    """Parse a goal and check it against the declarations, the way a fact is checked
    (ReasonerError, located in the goal, if it does not fit). Returns the goal with its
    constants as the engines hold them.

    Each argument is a variable or a constant: a `$setting` or arithmetic is refused
    (E016), not ignored. A constant is checked against the declared type, range and
    enumeration (E004, E005, E006), and read as the same text in a fact file would be: a
    number written where an id or a symbol is declared is that id, spelled as written
    (`weight_kg(17, K)` asks about the patient "17", `007` about "007")."""
    text = goal.strip() if isinstance(goal, str) else None
    atom = parse_goal(goal) if isinstance(goal, str) else goal
    decl = rules.decls.get(atom.pred)
    if decl is None:
        raise ReasonerError.at(atom.span, f"unknown predicate {atom.pred}/{atom.arity}"
                               + suggest(atom.pred, rules.decls), "E002")
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


def constraint_index(rules: RuleSet, goal: str) -> int | None:
    """The index in `rules.rules` of the integrity constraint whose id is `goal`, if it is one."""
    text = goal.strip()
    if "(" in text:
        return None
    for index, rule in enumerate(rules.rules):
        if rule.head is None and rules.rule_name(rule) == text:
            return index
    return None
