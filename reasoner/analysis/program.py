"""Rule files → a checked `RuleSet`: declarations resolved, every rule safe, typed and
stratified, each body put in an order the engine can run left to right.

Rejected here, each with `file:line:col` (codes in docs/checks.md): undeclared
predicates (with a did-you-mean), arity and type mismatches, constants outside their
declared range or enumeration, unsafe variables, negation or aggregation through
recursion, unknown sources and settings, duplicate rule ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.parse import parse_program
from reasoner.language.values import is_finite
from reasoner.language.syntax import (
    AllowDecl, Aggregate, ArgDecl, Atom, BinOp, Call, Comparison, Const, Decl, Expr, Include, Literal,
    NO_SPAN, Negation, Requirement, Rule, SectionDecl, SettingDecl, Setting, SourceDecl, Span, TypeDecl, Var,
    body_atoms, expr_vars, format_value, literal_vars,
)

BASE_TYPES = ("id", "symbol", "number", "integer")
NUMERIC = ("number", "integer")
ANY = "any"  # the type of an argument whose declaration was inferred (plain Datalog programs)


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
    except (OSError, UnicodeDecodeError) as exc:
        span = included_at or Span(str(file), 0, 0)
        diagnostics.append(Diagnostic(span, f"cannot read {file}: {exc.__class__.__name__}", "E013"))
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
                diagnostics.append(Diagnostic(statement.span, f"included file not found: {statement.path}", "E013"))
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
    problems: list[Diagnostic] = []
    decls: dict[str, Decl] = {}
    types: dict[str, TypeDecl] = {}
    sources: dict[str, SourceDecl] = {}
    settings: dict[str, SettingDecl] = {}
    rules: list[Rule] = []
    requirements: list[Requirement] = []
    sections: dict[str, str] = {}
    allows: list[AllowDecl] = []

    def unique(table: dict, key: str, item, what: str) -> None:
        if key in table:
            problems.append(Diagnostic(item.span, f"{what} {key} is already declared at {table[key].span}", "E010"))
        else:
            table[key] = item

    for s in statements:
        if isinstance(s, Decl):
            unique(decls, s.pred, s, "predicate")
        elif isinstance(s, TypeDecl):
            unique(types, s.name, s, "type")
        elif isinstance(s, SourceDecl):
            unique(sources, s.key, s, "source")
        elif isinstance(s, SettingDecl):
            unique(settings, s.name, s, "setting")
            wrong = setting_problem(s, s.value)
            if wrong:
                problems.append(Diagnostic(s.span, f"the value of setting {s.name}: {wrong}", SETTING_RANGE))
        elif isinstance(s, Requirement):
            requirements.append(s)
        elif isinstance(s, AllowDecl):
            allows.append(s)
        elif isinstance(s, SectionDecl):
            if s.span.file in sections:
                problems.append(Diagnostic(s.span, "a file has one .section", "E010"))
            sections[s.span.file] = s.title
        elif isinstance(s, Rule):
            rules.append(s)

    for t in types.values():
        if t.name in BASE_TYPES:
            problems.append(Diagnostic(t.span, f"type {t.name} is built in and cannot be redefined", "E010"))
    for d in decls.values():
        for arg in d.args:
            if arg.type not in BASE_TYPES and arg.type not in types:
                problems.append(Diagnostic(d.span, f"unknown type {arg.type}"
                                           + suggest(arg.type, list(BASE_TYPES) + list(types))
                                           + f" for argument {arg.name} of {d.pred}", "E004"))
            if arg.low is not None and arg.type not in NUMERIC:
                problems.append(Diagnostic(d.span, f"a range needs type number or integer, not {arg.type}", "E004"))

    if infer:
        _infer_declarations(rules, requirements, decls)

    seen_ids: dict[str, Rule] = {}
    for rule in rules:
        if rule.id is not None:
            if rule.id in seen_ids:
                problems.append(Diagnostic(rule.span, f"rule id {rule.id} is already used at {seen_ids[rule.id].span}",
                                           "E010"))
            else:
                seen_ids[rule.id] = rule
        for key in rule.sources:
            if key not in sources:
                problems.append(Diagnostic(rule.span, f"unknown source {key}" + suggest(key, sources), "E011"))

    ruleset = RuleSet(origin, decls, types, sources, settings, rules, requirements, sections=sections,
                      allows=allows)
    checker = _RuleChecker(ruleset)
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
    if problems and not lenient:
        raise ReasonerError(problems)
    ruleset.rules = [r for r in rules if id(r) not in faulty]
    ruleset.left_out = [r for r in rules if id(r) in faulty]
    ruleset.requirements = [q for q in requirements if id(q) not in bad_requirements]
    cyclic = _stratify(ruleset)
    if cyclic and not lenient:
        raise ReasonerError(problems + cyclic)
    if cyclic:  # leave out the rules that negate or aggregate through recursion, and try again
        spans = {d.span for d in cyclic}
        cut = [r for r in ruleset.rules if any(getattr(lit, "span", None) in spans for lit in r.body)]
        ruleset.rules = [r for r in ruleset.rules if r not in cut]
        ruleset.left_out += cut
        _stratify(ruleset)
        problems += cyclic
    ruleset.problems = problems
    _analyse_locality(ruleset)
    return ruleset


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


def suggest(name: str, candidates) -> str:
    """A did-you-mean hint: the closest spelling, or the one name this is a prefix of."""
    import difflib
    pool = sorted(candidates)
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.7)
    if not close:
        close = [c for c in pool if c.startswith(name)] if len(name) >= 3 else []
    return f" (did you mean {close[0]}?)" if len(close) == 1 or (close and close[0] != name) else ""


# ----------------------------------------------------------------------------- per-rule checks
class _RuleChecker:
    """Declarations, types and safety of one rule at a time."""

    def __init__(self, ruleset: RuleSet):
        self.rs = ruleset

    def check_rule(self, rule: Rule) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        var_types: dict[str, tuple[str, Span]] = {}
        if rule.head is not None:
            problems += self._check_atom(rule.head, var_types, head=True)
            if not rule.body:
                for arg in rule.head.args:
                    if not isinstance(arg, Const):
                        problems.append(Diagnostic(rule.head.span, f"a fact's arguments must be constants: {arg}",
                                                   "E007"))
        problems += self._check_body(rule.body, var_types)
        if problems:
            return problems
        return _safety(rule.head, rule.body, rule.span)

    def check_requirement(self, req: Requirement) -> list[Diagnostic]:
        var_types: dict[str, tuple[str, Span]] = {}
        problems = self._check_body(req.body, var_types)
        if req.head is not None:
            problems += self._check_atom(req.head, var_types, head=False)
        return problems

    def _check_body(self, body: tuple[Literal, ...], var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        for lit in body:
            if isinstance(lit, Atom):
                problems += self._check_atom(lit, var_types)
            elif isinstance(lit, Negation):
                problems += self._check_atom(lit.atom, var_types)
            elif isinstance(lit, Aggregate):
                problems += self._check_body(lit.body, var_types)
                if lit.target is not None:
                    problems += self._need_number(lit.target, var_types, "an aggregate's target")
                problems += self._bind(lit.result, "number", var_types)
        for lit in body:  # comparisons after the atoms have typed the variables
            if isinstance(lit, Comparison):
                problems += self._check_comparison(lit, var_types)
        return problems

    def _check_atom(self, atom: Atom, var_types: dict[str, tuple[str, Span]], head: bool = False) -> list[Diagnostic]:
        decl = self.rs.decls.get(atom.pred)
        if decl is None:
            return [Diagnostic(atom.span, f"undeclared predicate {atom.pred}/{atom.arity}"
                               + suggest(atom.pred, self.rs.decls), "E002")]
        if decl.arity != atom.arity:
            return [Diagnostic(atom.span, f"{atom.pred} takes {decl.arity} argument"
                               f"{'s' if decl.arity != 1 else ''} ({', '.join(a.name for a in decl.args)}), "
                               f"not {atom.arity}", "E003")]
        problems: list[Diagnostic] = []
        for arg, spec in zip(atom.args, decl.args):
            if isinstance(arg, Const):
                problem = check_value(arg.value, spec, self.rs.types)
                if problem:
                    problems.append(Diagnostic(arg.span if arg.span.line else atom.span,
                                               f"{atom.pred} argument {spec.name}: {problem}", "E004"))
            elif isinstance(arg, Var):
                problems += self._bind(arg, spec.type, var_types)
            elif isinstance(arg, Setting):
                problems += self._setting(arg)
                if spec.type not in NUMERIC + (ANY,):
                    problems.append(Diagnostic(arg.span, f"{atom.pred} argument {spec.name} is {spec.type}, "
                                               f"but ${arg.name} is a number", "E004"))
            else:  # an arithmetic expression
                if not head:
                    problems.append(Diagnostic(atom.span, f"arithmetic in a body atom is not allowed; "
                                               f"bind it first: V = {arg}", "E001"))
                elif spec.type not in NUMERIC + (ANY,):
                    problems.append(Diagnostic(atom.span, f"{atom.pred} argument {spec.name} is {spec.type}, "
                                               f"but {arg} is a number", "E004"))
                problems += self._need_number(arg, var_types, f"{atom.pred} argument {spec.name}")
        return problems

    def _bind(self, var: Var, type_name: str, var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        if var.anonymous or type_name == ANY:
            return []
        known = var_types.get(var.name)
        if known is None:
            var_types[var.name] = (type_name, var.span)
            return []
        if not self._compatible(known[0], type_name):
            return [Diagnostic(var.span, f"variable {var.name} is used as {type_name} here but as {known[0]} "
                               f"at {known[1].line}:{known[1].col}", "E004")]
        return []

    def _compatible(self, a: str, b: str) -> bool:
        if a == b or ANY in (a, b) or (a in NUMERIC and b in NUMERIC):
            return True
        if a in NUMERIC or b in NUMERIC:
            return False
        ta, tb = self.rs.types.get(a), self.rs.types.get(b)
        if ta is not None and tb is not None:
            return bool(set(ta.values) & set(tb.values))
        return True  # id, symbol and enumerations are all symbols

    def _setting(self, s: Setting) -> list[Diagnostic]:
        if s.name not in self.rs.settings:
            return [Diagnostic(s.span, f"unknown setting ${s.name}" + suggest(s.name, self.rs.settings), "E012")]
        return []

    def _need_number(self, expr: Expr, var_types: dict[str, tuple[str, Span]], where: str) -> list[Diagnostic]:
        problems: list[Diagnostic] = []
        if isinstance(expr, Const) and not isinstance(expr.value, (int, float)):
            problems.append(Diagnostic(expr.span, f"{where}: {expr} is not a number", "E004"))
        elif isinstance(expr, Setting):
            problems += self._setting(expr)
        elif isinstance(expr, Var):
            problems += self._bind(expr, "number", var_types)
        elif isinstance(expr, BinOp):
            problems += self._need_number(expr.left, var_types, where)
            problems += self._need_number(expr.right, var_types, where)
        elif isinstance(expr, Call):
            for arg in expr.args:
                problems += self._need_number(arg, var_types, where)
        return problems

    def _check_comparison(self, c: Comparison, var_types: dict[str, tuple[str, Span]]) -> list[Diagnostic]:
        arithmetic = any(isinstance(e, (BinOp, Call, Setting)) for e in (c.left, c.right))
        if c.op in ("<", "<=", ">", ">=") or arithmetic:
            return (self._need_number(c.left, var_types, f"comparison {c}")
                    + self._need_number(c.right, var_types, f"comparison {c}"))
        # = and != between plain terms: both sides must be of compatible types
        types = [self._type_of(e, var_types) for e in (c.left, c.right)]
        if None not in types and not self._compatible(types[0], types[1]):  # type: ignore[arg-type]
            return [Diagnostic(c.span, f"comparison {c} sets a {types[0]} against a {types[1]}", "E004")]
        for side, other in ((c.left, c.right), (c.right, c.left)):
            if isinstance(side, Var) and side.name not in var_types:
                t = self._type_of(other, var_types)
                if t is not None:
                    var_types[side.name] = (t, side.span)
        return []

    @staticmethod
    def _type_of(e: Expr, var_types: dict[str, tuple[str, Span]]) -> str | None:
        if isinstance(e, Const):
            return "number" if isinstance(e.value, (int, float)) else "symbol"
        if isinstance(e, Var):
            known = var_types.get(e.name)
            return known[0] if known else None
        return "number"


def check_value(value: object, spec: ArgDecl, types: dict[str, TypeDecl]) -> str | None:
    """Why `value` does not fit the declared argument, or None when it does."""
    t = spec.type
    if t == ANY:
        return None
    if t in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a{'n integer' if t == 'integer' else ' number'}, got {value!r}"
        if value != value:  # NaN
            return "not a number"
        if t == "integer" and not float(value).is_integer():
            return f"expected a whole number, got {value!r}"
        if spec.low is not None and spec.high is not None and not (spec.low <= value <= spec.high):
            unit = f" {spec.unit}" if spec.unit else ""
            return f"{value}{unit} is outside the valid range {_num(spec.low)}–{_num(spec.high)}{unit}"
        return None
    if not isinstance(value, str):
        return f"expected {'an id' if t == 'id' else 'a symbol' if t == 'symbol' else 'one of type ' + t}, got {value!r}"
    if t in types and value not in types[t].values:
        return (f"{value!r} is not a value of type {t} (one of: {', '.join(types[t].values)})"
                + suggest(value, types[t].values))
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ----------------------------------------------------------------------------- safety and order
def _safety(head: Atom | None, body: tuple[Literal, ...], span: Span) -> list[Diagnostic]:
    """Every variable of the head, of a negation and of a comparison must be bound by a
    positive literal; `order_body` finds an order that proves it or reports the rest."""
    problems: list[Diagnostic] = []
    try:
        steps = order_body(body, head=head)
    except ReasonerError as exc:
        problems += exc.diagnostics
        return problems
    bound = {name for step in steps for name in step.binds}
    if head is not None:
        for arg in head.args:
            for v in expr_vars(arg):
                if v.name not in bound:
                    what = "_ in a head" if v.anonymous else f"variable {v.name}"
                    problems.append(Diagnostic(v.span if v.span.line else head.span,
                                               f"unsafe rule: {what} is not bound by a positive body literal",
                                               "E007"))
    for lit in body:
        if isinstance(lit, Aggregate):
            try:
                order_body(lit.body)
            except ReasonerError as exc:
                problems += exc.diagnostics
            inner = body_bound_vars(lit.body)
            if lit.target is not None:
                for v in expr_vars(lit.target):
                    if v.name not in inner:
                        problems.append(Diagnostic(lit.span, f"unsafe aggregate: {v.name} is not bound inside it",
                                                   "E007"))
    return problems


def aggregate_keys(agg: Aggregate, body: tuple[Literal, ...], head: Atom | None) -> list[str]:
    """Variables of an aggregate's body that the rest of the rule also uses: its group keys."""
    outside: set[str] = set()
    for lit in body:
        if lit is not agg:
            outside |= {v.name for v in literal_vars(lit)}
    if head is not None:
        outside |= {v.name for a in head.args for v in expr_vars(a)}
    inner = []
    for lit in agg.body:
        for v in literal_vars(lit):
            if v.name in outside and v.name not in inner and not v.anonymous:
                inner.append(v.name)
    return inner


def body_bound_vars(body: tuple[Literal, ...]) -> set[str]:
    """Names of the variables that the body binds (positive atoms, assignments, aggregates)."""
    return {name for step in order_body(body) for name in step.binds}


@dataclass(frozen=True)
class Step:
    """One literal of a body in evaluation order, with the variables it newly binds."""

    literal: Literal
    binds: tuple[str, ...]
    assign: str | None = None
    """For `X = expr` that binds X: the variable's name (the expression may be on either side)."""


def order_body(body: tuple[Literal, ...], first: Literal | None = None,
               initially_bound: frozenset[str] = frozenset(), head: Atom | None = None,
               as_written: bool = False, cost=None) -> list[Step]:
    """Order literals so each negation, comparison and aggregate runs once its variables
    are bound: filters as early as possible, positive atoms in the order written.
    `first` puts one positive atom first (semi-naive deltas). `as_written` keeps the
    written order wherever safety allows (for explanations a reader follows). `cost`,
    given (atom, bound variable names) → estimated rows, picks the cheapest atom next
    instead of the first written (the engine's join order from observed sizes).
    Raises ReasonerError for an unsafe body, naming the variables nothing binds."""
    bound: set[str] = set(initially_bound)
    remaining = list(body)
    steps: list[Step] = []
    if first is not None:
        remaining.remove(first)
        remaining.insert(0, first)
    agg_keys = {id(l): set(aggregate_keys(l, body, head)) for l in body if isinstance(l, Aggregate)}
    while remaining:
        chosen: Step | None = None
        for lit in remaining:  # filters and assignments first, as soon as they can run
            if isinstance(lit, Negation):
                if all(v.anonymous or v.name in bound for v in literal_vars(lit)):
                    chosen = Step(lit, ())
            elif isinstance(lit, Comparison):
                chosen = _comparison_step(lit, bound)
            elif isinstance(lit, Aggregate):
                if agg_keys[id(lit)] <= bound:
                    chosen = Step(lit, () if lit.result.name in bound else (lit.result.name,))
            elif as_written and isinstance(lit, Atom):
                chosen = Step(lit, tuple(dict.fromkeys(v.name for v in literal_vars(lit) if v.name not in bound)))
            if chosen is not None:
                break
        if chosen is None:
            atoms = [l for l in remaining if isinstance(l, Atom)]
            if cost is not None and atoms and not (first is not None and atoms[0] is first):
                atom = min(atoms, key=lambda a: cost(a, bound))
            else:
                atom = atoms[0] if atoms else None
            if atom is not None:
                names = []
                for v in literal_vars(atom):
                    if v.name not in bound and v.name not in names:
                        names.append(v.name)
                chosen = Step(atom, tuple(names))
        if chosen is None:
            lit = remaining[0]
            unbound = sorted({v.name for v in literal_vars(lit) if v.name not in bound and not v.anonymous})
            if isinstance(lit, Negation) and not unbound:
                unbound = ["_"]
            if isinstance(lit, Aggregate):
                unbound = sorted(agg_keys[id(lit)] - bound)
                msg = f"unsafe rule: the aggregate's key variable{'s' if len(unbound) > 1 else ''} " \
                      f"{', '.join(unbound)} must be bound by a positive literal outside it"
            else:
                kind = "negation" if isinstance(lit, Negation) else "comparison"
                msg = (f"unsafe rule: variable{'s' if len(unbound) > 1 else ''} {', '.join(unbound)} "
                       f"in the {kind} {lit} {'are' if len(unbound) > 1 else 'is'} not bound by a positive literal")
            raise ReasonerError.at(getattr(lit, "span", Span("<none>", 0, 0)), msg, "E007")
        remaining.remove(chosen.literal)
        bound |= set(chosen.binds)
        steps.append(chosen)
    return steps


def step_vars(steps: list[Step] | tuple[Step, ...]) -> list[str]:
    """The variables an ordered body binds, in the order it binds them."""
    names: list[str] = []
    for step in steps:
        for name in step.binds:
            if name not in names:
                names.append(name)
    return names


def _comparison_step(c: Comparison, bound: set[str]) -> Step | None:
    left_free = [v.name for v in expr_vars(c.left) if v.name not in bound]
    right_free = [v.name for v in expr_vars(c.right) if v.name not in bound]
    if not left_free and not right_free:
        return Step(c, ())
    if c.op == "=":
        if isinstance(c.left, Var) and not c.left.anonymous and left_free == [c.left.name] and not right_free:
            return Step(c, (c.left.name,), assign=c.left.name)
        if isinstance(c.right, Var) and not c.right.anonymous and right_free == [c.right.name] and not left_free:
            return Step(c, (c.right.name,), assign=c.right.name)
    return None


# ----------------------------------------------------------------------------- stratification
def dependencies(ruleset: RuleSet) -> dict[str, set[tuple[str, str]]]:
    """head predicate → {(body predicate, 'pos'|'neg'|'agg')}."""
    deps: dict[str, set[tuple[str, str]]] = {p: set() for p in ruleset.decls}
    for rule in ruleset.rules:
        if rule.head is None:
            continue
        edges = deps.setdefault(rule.head.pred, set())
        for lit in rule.body:
            if isinstance(lit, Atom):
                edges.add((lit.pred, "pos"))
            elif isinstance(lit, Negation):
                edges.add((lit.atom.pred, "neg"))
            elif isinstance(lit, Aggregate):
                for atom in body_atoms(lit.body):
                    edges.add((atom.pred, "agg"))
    return deps


def _stratify(ruleset: RuleSet) -> list[Diagnostic]:
    deps = dependencies(ruleset)
    components = _tarjan(sorted(deps), {p: sorted(q for q, _ in e) for p, e in deps.items()})
    where = {p: i for i, comp in enumerate(components) for p in comp}
    problems: list[Diagnostic] = []
    for rule in ruleset.rules:
        if rule.head is None:
            continue
        head_comp = where[rule.head.pred]
        for lit in rule.body:
            if isinstance(lit, Negation) and where.get(lit.atom.pred) == head_comp:
                problems.append(Diagnostic(lit.span, f"negation through recursion: {rule.head.pred} depends on "
                                           f"!{lit.atom.pred}, which depends on {rule.head.pred} (cyclic negation; "
                                           "the program has no stratified model)", "E008"))
            if isinstance(lit, Aggregate) and any(where.get(a.pred) == head_comp for a in body_atoms(lit.body)):
                problems.append(Diagnostic(lit.span, f"aggregation through recursion: {rule.head.pred} aggregates "
                                           f"over predicates that depend on {rule.head.pred}", "E009"))
    ruleset.strata = components
    ruleset.recursive = set()
    for comp in components:
        if len(comp) > 1 or any(q == comp[0] for q, _ in deps.get(comp[0], ())):
            ruleset.recursive |= set(comp)
    return problems


def _tarjan(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components, dependencies first (iterative: deep programs are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges.get(nxt, []))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))
    return out


# ----------------------------------------------------------------------------- locality
def _analyse_locality(ruleset: RuleSet) -> None:
    """A rule is patient-local when every keyed atom in it uses one variable as the key
    (the head's, if the head is keyed). Then patients never join, and can be run apart."""
    ruleset.nonlocal_rules = [r for r in ruleset.rules if not rule_is_local(ruleset, r)]
    ruleset.patient_local = not ruleset.nonlocal_rules


SETTING_RANGE = "E024"
"""A setting's value (the rule set's own, or one given with `--set`) that is not a finite
number inside the setting's declared range."""


def setting_problem(decl: SettingDecl, value: object) -> str | None:
    """What is wrong with `value` for the setting `decl` (None: nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not is_finite(value):  # nan, inf, or an int larger than any double
        if isinstance(value, int):
            return f"{str(value)[:20]}... is too large for a number (more than a double holds)"
        return f"{value!r} is not a finite number"
    if decl.low is not None and not decl.low <= value <= decl.high:  # type: ignore[operator]
        return f"{format_value(value)} is outside its range {decl.range_text()}"
    return None


def resolve_settings(ruleset: RuleSet, overrides: dict | None) -> dict:
    """The rule set's settings with `overrides` applied. Every problem is an error, not
    located in a file (the values come from `--set` or the caller): an unknown name
    (E012, with the known ones), a value that is not a finite number inside the setting's
    declared range (E024, naming the range, its unit and where it is declared)."""
    values = {name: s.value for name, s in ruleset.settings.items()}
    problems = []
    for name, value in (overrides or {}).items():
        decl = ruleset.settings.get(name)
        if decl is None:
            problems.append(Diagnostic(NO_SPAN, f"unknown setting {name}" + suggest(name, values)
                                       + f" (known: {', '.join(sorted(values)) or 'none'})", "E012"))
            continue
        wrong = setting_problem(decl, value)
        if wrong:
            problems.append(Diagnostic(NO_SPAN, f"setting {name}: {wrong} (declared at {decl.span})", SETTING_RANGE))
            continue
        values[name] = value
    if problems:
        raise ReasonerError(problems)
    return values


def rule_is_local(ruleset: RuleSet, rule: Rule) -> bool:
    atoms = ([rule.head] if rule.head is not None else []) + body_atoms(rule.body)
    keys = set()
    for atom in atoms:
        k = ruleset.key_index(atom.pred)
        if k is None:
            continue
        arg = atom.args[k]
        keys.add(arg.name if isinstance(arg, Var) and not arg.anonymous else f"#{id(arg)}")
    if rule.head is not None and ruleset.key_index(rule.head.pred) is None and keys:
        return False  # a patient-free conclusion drawn from patient facts mixes patients
    return len(keys) <= 1
