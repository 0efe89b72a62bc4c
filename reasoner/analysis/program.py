"""Rule files → a checked `RuleSet`: the rule files read with their `.include`s, the
statements sorted into declarations and rules, and the rule set built by named steps
(`_build`), each body put in an order the engine can run left to right.

Rejected here, each with `file:line:col` (codes in docs/checks.md): undeclared
predicates (with a did-you-mean), arity and type mismatches, constants outside their
declared range or enumeration, unsafe variables, negation or aggregation through
recursion, unknown sources and settings, duplicate rule ids.

This module owns `RuleSet`, loading and building; the checks of one rule are in
`rulecheck`, body order in `order`, stratification and locality in `strata`, settings in
`settings`. Their public names are importable from here too (`__all__`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasoner.analysis.order import Step, aggregate_keys, body_bound_vars, order_body, step_vars
from reasoner.analysis.rulecheck import ANY, BASE_TYPES, NUMERIC, RuleChecker, check_value, suggest
from reasoner.analysis.settings import SETTING_RANGE, fill_settings, resolve_settings, setting_problem
from reasoner.analysis.strata import analyse_locality, dependencies, rule_is_local, stratify
from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.parse import parse_program
from reasoner.language.syntax import (
    AllowDecl, ArgDecl, Atom, Decl, Include, Requirement, Rule, SectionDecl, SettingDecl, SourceDecl, Span,
    TypeDecl, Var, body_atoms,
)

__all__ = [
    # this module
    "RuleSet", "bundled_rules_path", "load_rules", "resolve_rules_path", "sha256_hex",
    # rulecheck
    "ANY", "BASE_TYPES", "NUMERIC", "RuleChecker", "check_value", "suggest",
    # order
    "Step", "aggregate_keys", "body_bound_vars", "order_body", "step_vars",
    # strata
    "analyse_locality", "dependencies", "rule_is_local", "stratify",
    # settings
    "SETTING_RANGE", "fill_settings", "resolve_settings", "setting_problem",
]


@dataclass
class RuleSet:
    """A loaded, checked rule set. Immutable after `load_rules` returns it."""

    path: str
    decls: dict[str, Decl]
    types: dict[str, TypeDecl]
    sources: dict[str, SourceDecl]
    settings: dict[str, SettingDecl]
    rules: list[Rule]
    requirements: list[Requirement]
    strata: list[list[str]] = field(default_factory=list)
    """Predicates in evaluation order: each inner list is one strongly connected component."""
    recursive: set[str] = field(default_factory=set)
    """Predicates that depend on themselves."""
    patient_local: bool = True
    """Every rule joins facts of one patient only: patients may be evaluated apart."""
    nonlocal_rules: list[Rule] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    """With `load_rules(lenient=True)`: what was wrong; the rules at fault were left out."""
    sections: dict[str, str] = field(default_factory=dict)
    """Rule file → the guideline section it encodes (`.section`), in include order."""
    allows: list[AllowDecl] = field(default_factory=list)
    """Checker findings marked intended (`.allow`)."""
    left_out: list[Rule] = field(default_factory=list)
    """With `lenient`: the rules left out for their problems."""

    def __getstate__(self) -> dict:
        # The lowered plan (plan.plan_of) is derived, and its code is not in the rule-set
        # cache's key: never pickle it (cache entries, worker processes) - lower it again.
        state = dict(self.__dict__)
        state.pop("_plan", None)
        return state

    @property
    def facts_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.head is not None and not r.body]

    def rule_by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def key_index(self, pred: str) -> int | None:
        return self.decls[pred].key_index if pred in self.decls else None

    def key_variable(self, rule: Rule) -> str | None:
        """The variable that holds the patient in `rule` (the key of its head, or of its first
        keyed body atom), or None for a rule about no patient in particular."""
        atoms = ([rule.head] if rule.head is not None else []) + [a for a in rule.body if isinstance(a, Atom)]
        for atom in atoms:
            k = self.key_index(atom.pred)
            if k is not None and isinstance(atom.args[k], Var):
                return atom.args[k].name
        return None

    def section_of(self, rule: Rule) -> str:
        """The guideline section of a rule: its file's `.section`, or the file's name."""
        file = rule.span.file
        return self.sections.get(file) or Path(file).stem.replace("_", " ")

    def rule_name(self, rule: Rule) -> str:
        """The rule's id, or a stable name made of its position when it has none."""
        return rule.id or f"rule@{rule.span.file.rsplit('/', 1)[-1]}:{rule.span.line}"


# ----------------------------------------------------------------------------- loading
def bundled_rules_path(name: str = "crs") -> Path:
    """The bundled rule set `name`: inside an installed package (reasoner/rulesets/NAME),
    or in rules/NAME of a source checkout (an editable install)."""
    package = Path(__file__).resolve().parent.parent  # reasoner/
    installed = package / "rulesets" / name
    if (installed / "main.dl").is_file():
        return installed
    return package.parent / "rules" / name


def load_rules(path: str | Path | None = None, *, text: str | None = None,
               infer_declarations: bool = False, lenient: bool = False,
               files: list[tuple[str, str, str]] | None = None) -> RuleSet:
    """Load and check a rule set.

    `path` is a `.dl` file or a directory holding `main.dl` (default: the bundled CRS
    set). `text` parses a rule set given as a string instead. With
    `infer_declarations`, predicates without `.decl` get one inferred from their use
    (arity from the first use, arguments of type `any`): for plain Datalog programs.
    Raises `ReasonerError` listing every problem found; with `lenient` (the checker's
    mode) it returns what is sound instead, the problems in `RuleSet.problems` and the
    rules at fault left out. `files`, when given, gets every rule file read, as (path as
    read, resolved path, sha256 of the bytes parsed): what the rule-set cache is keyed by.
    """
    statements, diagnostics = [], []
    if text is not None:
        origin = str(path) if path is not None else "<rules>"
        _collect(text, origin, Path.cwd(), statements, diagnostics, set())
    else:
        file = resolve_rules_path(path)
        _collect_file(file, statements, diagnostics, set(), None, files)
        origin = str(path) if path is not None else _display(file.parent)
    if diagnostics and not lenient:
        raise ReasonerError(diagnostics)
    ruleset = _build(origin, statements, infer_declarations, lenient)
    ruleset.problems = sorted(set(diagnostics + ruleset.problems), key=Diagnostic.sort_key)
    return ruleset


def resolve_rules_path(path: str | Path | None) -> Path:
    if path is None:
        path = bundled_rules_path()
    p = Path(path)
    if p.is_dir():
        p = p / "main.dl"
    if not p.is_file():
        raise ReasonerError.at(Span(str(path), 0, 0), "no such rule file (a .dl file, or a directory with main.dl)",
                               "E013")
    return p


def _collect_file(file: Path, statements: list, diagnostics: list[Diagnostic], seen: set[Path],
                  included_at: Span | None, files: list[tuple[str, str, str]] | None = None) -> None:
    resolved = file.resolve()
    if resolved in seen:
        return  # each file once: a diamond of includes is fine, a cycle stops here
    seen.add(resolved)
    try:
        data = file.read_bytes()
        # read_text's decoding and newlines, from the bytes that are hashed below
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:  # UTF-16, Latin-1: say where, in the file itself
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        diagnostics.append(Diagnostic(Span(str(file), line, col), f"not UTF-8 text (byte 0x{data[exc.start]:02x}): "
                                      "rule files are UTF-8", "E013"))
        return
    except OSError as exc:
        span = included_at or Span(str(file), 0, 0)
        diagnostics.append(Diagnostic(span, f"cannot read {file}: {(exc.strerror or exc.__class__.__name__).lower()}",
                                      "E013"))
        return
    if files is not None:
        files.append((str(file), str(resolved), sha256_hex(data)))
    _collect(text, _display(file), file.parent, statements, diagnostics, seen, files)


def _collect(text: str, name: str, base: Path, statements: list, diagnostics: list[Diagnostic],
             seen: set[Path], files: list[tuple[str, str, str]] | None = None) -> None:
    try:
        parsed = parse_program(text, name)
    except ReasonerError as exc:
        diagnostics.extend(exc.diagnostics)
        return
    for statement in parsed:
        if isinstance(statement, Include):
            target = base / statement.path
            if not target.is_file():
                what = ("is a folder, not a rule file" if target.is_dir() else "is not a regular file (a device?)"
                        if target.exists() else "not found")
                diagnostics.append(Diagnostic(statement.span, f"included file {what}: {statement.path}", "E013"))
                continue
            _collect_file(target, statements, diagnostics, seen, statement.span, files)
        else:
            statements.append(statement)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data`, in hex: with the interpreter's own implementation where it
    has one (hashlib's loads OpenSSL, 3-6 ms of a one-patient command's start)."""
    try:
        from _sha256 import sha256  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython 3.12 and later
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


# ----------------------------------------------------------------------------- building
def _build(origin: str, statements: list, infer: bool, lenient: bool = False) -> RuleSet:
    """The checked rule set of parsed `statements`, step by step. Raises ReasonerError with
    every problem found; with `lenient`, the rules at fault are left out instead."""
    problems: list[Diagnostic] = []
    ruleset = _gather(origin, statements, problems)
    _check_declarations(ruleset, problems)
    if infer:
        _infer_declarations(ruleset.rules, ruleset.requirements, ruleset.decls)
    _check_ids_and_sources(ruleset, problems)
    _check_rules(ruleset, problems)
    if problems and not lenient:
        raise ReasonerError(problems)
    _stratify_or_cut(ruleset, problems, lenient)
    ruleset.problems = problems
    analyse_locality(ruleset)
    return ruleset


def _gather(origin: str, statements: list, problems: list[Diagnostic]) -> RuleSet:
    """Sort the statements into a rule set's tables, each name declared once (E010)."""
    ruleset = RuleSet(origin, {}, {}, {}, {}, [], [])
    for s in statements:
        if isinstance(s, Decl):
            _declare_once(ruleset.decls, s.pred, s, "predicate", problems)
        elif isinstance(s, TypeDecl):
            _declare_once(ruleset.types, s.name, s, "type", problems)
        elif isinstance(s, SourceDecl):
            _declare_once(ruleset.sources, s.key, s, "source", problems)
        elif isinstance(s, SettingDecl):
            _declare_once(ruleset.settings, s.name, s, "setting", problems)
            wrong = setting_problem(s, s.value)
            if wrong:
                problems.append(Diagnostic(s.span, f"the value of setting {s.name}: {wrong}", SETTING_RANGE))
        elif isinstance(s, Requirement):
            ruleset.requirements.append(s)
        elif isinstance(s, AllowDecl):
            ruleset.allows.append(s)
        elif isinstance(s, SectionDecl):
            if s.span.file in ruleset.sections:
                problems.append(Diagnostic(s.span, "a file has one .section", "E010"))
            ruleset.sections[s.span.file] = s.title
        elif isinstance(s, Rule):
            ruleset.rules.append(s)
    return ruleset


def _declare_once(table: dict, key: str, item, what: str, problems: list[Diagnostic]) -> None:
    if key in table:
        problems.append(Diagnostic(item.span, f"{what} {key} is already declared at {table[key].span}", "E010"))
    else:
        table[key] = item


def _check_declarations(ruleset: RuleSet, problems: list[Diagnostic]) -> None:
    """Types: no built-in one redefined, every argument's type known, ranges on numbers only."""
    types = ruleset.types
    for t in types.values():
        if t.name in BASE_TYPES:
            problems.append(Diagnostic(t.span, f"type {t.name} is built in and cannot be redefined", "E010"))
    for d in ruleset.decls.values():
        for arg in d.args:
            if arg.type not in BASE_TYPES and arg.type not in types:
                problems.append(Diagnostic(d.span, f"unknown type {arg.type}"
                                           + suggest(arg.type, list(BASE_TYPES) + list(types))
                                           + f" for argument {arg.name} of {d.pred}", "E004"))
            if arg.low is not None and arg.type not in NUMERIC:
                problems.append(Diagnostic(d.span, f"a range needs type number or integer, not {arg.type}", "E004"))


def _check_ids_and_sources(ruleset: RuleSet, problems: list[Diagnostic]) -> None:
    """Rule ids used once (E010), every source a rule cites declared (E011)."""
    seen_ids: dict[str, Rule] = {}
    for rule in ruleset.rules:
        if rule.id is not None:
            if rule.id in seen_ids:
                problems.append(Diagnostic(rule.span, f"rule id {rule.id} is already used at {seen_ids[rule.id].span}",
                                           "E010"))
            else:
                seen_ids[rule.id] = rule
        for i, key in enumerate(rule.sources):
            if key not in ruleset.sources:  # at its @source line (the rule's span is its first annotation)
                where = rule.source_spans[i] if i < len(rule.source_spans) else rule.span
                problems.append(Diagnostic(where, f"unknown source {key}" + suggest(key, ruleset.sources), "E011"))


def _check_rules(ruleset: RuleSet, problems: list[Diagnostic]) -> None:
    """Every rule and requirement checked (`RuleChecker`); those at fault left out."""
    checker = RuleChecker(ruleset)
    rules, requirements = ruleset.rules, ruleset.requirements
    faulty: set[int] = set()
    for rule in rules:
        found = checker.check_rule(rule)
        if found:
            faulty.add(id(rule))
        problems += found
    bad_requirements = set()
    for req in requirements:
        found = checker.check_requirement(req)
        if found:
            bad_requirements.add(id(req))
        problems += found
    ruleset.rules = [r for r in rules if id(r) not in faulty]
    ruleset.left_out = [r for r in rules if id(r) in faulty]
    ruleset.requirements = [q for q in requirements if id(q) not in bad_requirements]


def _stratify_or_cut(ruleset: RuleSet, problems: list[Diagnostic], lenient: bool) -> None:
    """Stratify; negation or aggregation through recursion is an error, or with `lenient`
    the rules doing it are left out and the rest stratified again."""
    cyclic = stratify(ruleset)
    if cyclic and not lenient:
        raise ReasonerError(problems + cyclic)
    if cyclic:
        spans = {d.span for d in cyclic}
        cut = [r for r in ruleset.rules if any(getattr(lit, "span", None) in spans for lit in r.body)]
        ruleset.rules = [r for r in ruleset.rules if r not in cut]
        ruleset.left_out += cut
        stratify(ruleset)
        problems += cyclic


def _infer_declarations(rules: list[Rule], requirements: list[Requirement], decls: dict[str, Decl]) -> None:
    def visit(atom: Atom, role: str) -> None:
        if atom.pred not in decls:
            args = tuple(ArgDecl(f"a{i}", ANY) for i in range(atom.arity))
            decls[atom.pred] = Decl(atom.pred, args, role, "(inferred)", atom.span)

    for rule in rules:
        if rule.head is not None:
            visit(rule.head, "output")
    for rule in rules:
        for atom in body_atoms(rule.body):
            visit(atom, "input")

