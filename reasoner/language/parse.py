"""Text → syntax tree, for rule files and fact files, with lark (grammar.lark).

The grammar is LALR(1) so that a cohort's fact file parses in linear time; lark gives
each token its line and column, which every later stage reports errors with. Plain
fact files and goals are also read without lark, to the same nodes (`_fast_atoms`), so a
one-patient command need not import it. Text is data here: nothing in it is ever executed.
"""
from __future__ import annotations

import bisect
import re
import threading
from itertools import count
from typing import TYPE_CHECKING, Any, Callable

from reasoner.language.errors import Diagnostic, ReasonerError
from reasoner.language.values import read_number
from reasoner.language.syntax import (
    AllowDecl, Aggregate, ArgDecl, Atom, BinOp, Call, Comparison, Const, Decl, Expr, Fact, Include,
    Literal, Negation, Requirement, Rule, SectionDecl, SettingDecl, Setting, SourceDecl, Span, Statement, STRENGTHS,
    TypeDecl, Var,
)

if TYPE_CHECKING:
    from lark import Lark, Token
    from lark.exceptions import UnexpectedInput

# How lark's terminal names read in an error message.
_TERMINAL_WORDS = {
    "IDENT": "a name", "VAR": "a variable", "NUMBER": "a number", "STRING": "a quoted string",
    "DOT": "'.'", "COMMA": "','", "LPAR": "'('", "RPAR": "')'", "COLON": "':'",
    "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'", "COMPOP": "a comparison",
    "ADDOP": "'+' or '-'", "MULOP": "'*' or '/'", "SETTING": "a $setting", "BANG": "'!'",
    "ROLE": "input, output or internal", "IF": "':-'", "MINUS": "'-'",
    "EQUAL": "'='", "VBAR": "'|'", "AGG": "count or sum", "MINMAX": "min or max",
    "ANN_ID": "@id", "ANN_SOURCE": "@source", "ANN_STRENGTH": "@strength", "ANN_CHOICE": "@choice", "REQKIND": "one or some",
    "AT_MOST": "at most N",
    "FOR": "'for'", "NONE": "'none'", "FUNC": "abs",
}


MAX_NESTING = 200
"""The deepest expression a rule may hold (`X + X + ... + X` with 200 operators; a rule
needs a handful)."""


_PARSERS = threading.local()
"""Each thread's parsers: a parser and its tree builder hold the file being parsed while
they parse, so two threads must never share one (see `_parser`)."""


def _parser(start: str) -> tuple[Lark, "_Build"]:
    """This thread's parser for `start`, made on first use in the thread."""
    cache = _PARSERS.__dict__.setdefault("by_start", {})
    if start not in cache:
        cache[start] = _new_parser(start)
    return cache[start]


def _new_parser(start: str) -> tuple[Lark, "_Build"]:
    # The tree is built inline (transformer= in the constructor): about twice as fast as
    # building lark's tree first, which matters for cohort fact files. cache=True keeps
    # the LALR tables in the temp directory so a one-patient run does not rebuild them.
    # lark is imported here, when first needed: a one-patient fact file and a plain goal
    # take the fast path below and never need it (30-50 ms of a command's start).
    from importlib import resources

    from lark import Lark, Transformer
    grammar = resources.files("reasoner.language").joinpath("grammar.lark").read_text(encoding="utf-8")
    builder = type("_LarkBuild", (_Build, Transformer), {})("<text>")
    parser = Lark(grammar, start=start, parser="lalr", transformer=builder, maybe_placeholders=True,
                  cache=True)
    return parser, builder


def parse_program(text: str, file: str) -> list[Statement]:
    """Parse a rule file into statements. Raises ReasonerError with every syntax error."""
    return _parse(text, file, "program")


def parse_facts(text: str, file: str) -> list[Fact]:
    """Parse a fact file (ground atoms only). Raises ReasonerError on a syntax error."""
    fast = _fast_atoms(text, file, goal=False)
    if fast is not None:
        return fast  # type: ignore[return-value]
    return _parse(text, file, "facts")


def parse_goal(text: str, file: str = "<goal>") -> Atom:
    """Parse a query goal such as `crs_grade(P, G)` (a trailing '.' is optional)."""
    stripped = text.strip()
    if not stripped:
        raise ReasonerError.at(Span(file, 1, 1), "an empty goal: a goal is one atom such as crs_grade(P, G)", "E016")
    if not stripped.endswith("."):
        stripped += "."
    fast = _fast_atoms(stripped, file, goal=True)
    if fast is not None and len(fast) == 1:
        return fast[0]  # type: ignore[return-value]
    statements = _parse(stripped, file, "program")
    if len(statements) != 1 or not isinstance(statements[0], Rule) or statements[0].body \
            or statements[0].head is None:
        raise ReasonerError.at(Span(file, 1, 1), f"a goal is one atom such as crs_grade(P, G), not {text!r}",
                               "E016")
    rule = statements[0]
    assert rule.head is not None
    return rule.head


# ----------------------------------------------------------------------------- the fast path
# Fact files and goals are mostly plain atoms: `weight_kg(p1, 72).`, `crs_grade(P, G)`.
# Those are read here without lark, to the very nodes lark's parse builds (the same
# values, variables and spans; tests/test_startup.py compares the two on every fact file
# and goal of the repository and on generated ones). Anything else - a syntax error,
# an escape in a string, a number lark rejects, a keyword, arithmetic, a setting - makes
# the fast path give up (None), and lark parses the text, with its error messages.
_FAST_TOKEN = re.compile(r'(?P<ws>[ \t\f\r\n]+|%[^\n]*)|(?P<ident>[a-z][A-Za-z0-9_]*)|(?P<var>[A-Z_][A-Za-z0-9_]*)'
                         r'|(?P<number>[0-9]+(?:\.[0-9]+)?)|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<punct>[(),.-])')
_KEYWORDS_IN_EXPRESSIONS = frozenset({"min", "max", "abs"})  # lexed as calls inside a rule's atom, not names


def _fast_tokens(text: str) -> list[tuple[str, str, int]] | None:
    """(kind, text, position) of each token of `text` but blanks, a punctuation mark being
    its own kind; None when something is not a token of the fast path."""
    tokens: list[tuple[str, str, int]] = []
    pos, end = 0, len(text)
    match = _FAST_TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            return None
        kind = m.lastgroup
        if kind != "ws":
            tok = m.group()
            tokens.append((tok if kind == "punct" else kind, tok, pos))  # type: ignore[arg-type]
        pos = m.end()
    return tokens


def _span_at(text: str, file: str, many: bool) -> Callable[[int], Span]:
    """position → `Span` in `text`: counted from the start for a few tokens, by bisecting
    the line starts (found once) for `many`."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)] if many else None

    def span(at: int) -> Span:
        if line_starts is None:
            line = text.count("\n", 0, at) + 1
            return Span(file, line, at - (text.rfind("\n", 0, at) + 1) + 1)
        line = bisect.bisect_right(line_starts, at)
        return Span(file, line, at - line_starts[line - 1] + 1)
    return span


def _fast_atoms(text: str, file: str, goal: bool) -> list[Atom] | list[Fact] | None:
    """Ground facts (`goal=False`, a fact file's grammar) or one atom with variables and
    constants (`goal=True`, a rule file's grammar), each ended by '.'; None for anything else."""
    tokens = _fast_tokens(text)
    if tokens is None:
        return None
    span = _span_at(text, file, many=len(tokens) > 64)

    out: list = []
    fresh = count(1)
    i, n = 0, len(tokens)
    try:
        while i < n:
            if i + 1 >= n or tokens[i][0] != "ident" or tokens[i + 1][0] != "(":
                return None
            name, name_at = tokens[i][1], tokens[i][2]
            i += 2
            args: list = []
            if i < n and tokens[i][0] == ")":
                i += 1
            else:
                while True:
                    if i >= n:
                        return None
                    kind, tok, at = tokens[i]
                    if kind == "-":  # a negative number: `-` NUMBER, nothing else
                        if i + 1 >= n or tokens[i + 1][0] != "number":
                            return None
                        number_at = tokens[i + 1][2]
                        where = span(number_at)
                        if not goal:  # the fact grammar's negative_number: one column left of the digits
                            where = Span(file, where.line, max(where.col - 1, 1))
                        args.append(Const(-_number(tokens[i + 1][1], where), where))
                        i += 2
                    elif kind == "number":
                        where = span(at)
                        args.append(Const(_number(tok, where), where))
                        i += 1
                    elif kind == "ident":
                        if goal and tok in _KEYWORDS_IN_EXPRESSIONS:
                            return None
                        args.append(Const(tok, span(at)))
                        i += 1
                    elif kind == "string":
                        if "\\" in tok:
                            return None  # escapes: lark's path checks and reports them
                        args.append(Const(tok[1:-1], span(at)))
                        i += 1
                    elif kind == "var" and goal:
                        args.append(Var(f"_#{next(fresh)}" if tok == "_" else tok, span(at)))
                        i += 1
                    else:
                        return None
                    if i >= n:
                        return None
                    if tokens[i][0] == ")":
                        i += 1
                        break
                    if tokens[i][0] != ",":
                        return None
                    i += 1
            if i >= n or tokens[i][0] != ".":
                return None
            i += 1
            where = span(name_at)
            if goal:
                out.append(Atom(name, tuple(args), where))
            else:
                out.append(Fact(name, tuple(a.value for a in args), where))
    except ReasonerError:
        return None  # a number out of range: lark's path reports it
    return out


def _parse(text: str, file: str, start: str) -> Any:
    from lark.exceptions import UnexpectedInput, VisitError
    parser, builder = _parser(start)
    builder.reset(file)
    try:
        return parser.parse(text)
    except UnexpectedInput as exc:
        raise ReasonerError([_syntax_diagnostic(exc, text, file, _terminal_words(parser))]) from None
    except VisitError as exc:  # a semantic problem found while building the tree
        if isinstance(exc.orig_exc, ReasonerError):
            raise exc.orig_exc from None
        raise


def _terminal_words(parser: Lark) -> dict[str, str]:
    """How each terminal reads in a message: the named ones from _TERMINAL_WORDS, the
    anonymous ones (lark numbers them `__ANON_n` in grammar order) by their own text."""
    words = dict(_TERMINAL_WORDS)
    for term in parser.terminals:
        if term.name not in words and term.pattern.type == "str":
            words[term.name] = repr(term.pattern.value)
        elif term.name.startswith("__ANON"):  # a regexp of plain text, such as \.include
            plain = re.sub(r"\\(.)", r"\1", term.pattern.value)
            words[term.name] = repr(plain) if re.fullmatch(r"[@.:\-\w]+", plain) else term.name.lower()
    return words


def _syntax_diagnostic(exc: UnexpectedInput, text: str, file: str,
                       words: dict[str, str] | None = None) -> Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
    words = words or _TERMINAL_WORDS
    line, col = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "end of file"
        message = f"unexpected character {char!r}"
    elif isinstance(exc, UnexpectedEOF):
        message = "unexpected end of file (a statement is missing its final '.'?)"
        line, col = _end_position(text)
    elif isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            message = "unexpected end of file (a statement is missing its final '.'?)"
            line, col = _end_position(text)
        else:
            message = f"unexpected {exc.token.value!r}"
            last = exc.token_history[-1] if getattr(exc, "token_history", None) else None
            if "DOT" in exc.expected and last is not None and last.end_line is not None \
                    and exc.token.line > last.end_line:
                # the statement ended at a line's end without its '.': say so where the '.' goes,
                # not at the next statement lark tripped over
                return Diagnostic(Span(file, last.end_line, last.end_column),
                                  f"missing '.' at the end of this statement? (the next line, "
                                  f"{exc.token.line}, goes on with {exc.token.value!r})", "E001")
        expected = sorted({words.get(name, name.lower()) for name in exc.expected})
        if expected and len(expected) <= 8:
            message += "; expected " + ", ".join(expected)
    else:
        message = "syntax error"
    return Diagnostic(Span(file, line, col), message, "E001")


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _unquote(token: str) -> str:
    return unescape(token[1:-1])


def unescape(body: str) -> str:
    """The text of a quoted string without its quotes: `\\"` → `"`, `\\n` → newline."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _number(text: str, span: Span | None = None) -> int | float:
    """A NUMBER token's value, in the one number syntax of every format (reasoner.language.values):
    a number too large for a double is an error at `span`, not a traceback."""
    try:
        return read_number(text)
    except ValueError as exc:
        raise ReasonerError.at(span or Span("<number>", 0, 0), f"{text[:20]}{'...' if len(text) > 20 else ''}: {exc}",
                               "E001") from None


_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = '"\\nt'


class _Build:
    """Turns lark's parse tree into syntax.py nodes (with lark's Transformer mixed in by
    `_parser`, so that this module loads without lark)."""

    def __init__(self, file: str):
        super().__init__()
        self.reset(file)

    def reset(self, file: str) -> None:
        self.file = file
        self._fresh = count(1)
        self._depth: dict[int, int] = {}

    def _nested(self, node: Expr, *parts: Any) -> Expr:
        """`node`, whose operands are `parts`, if it nests no deeper than MAX_NESTING: every
        later stage walks an expression recursively, and Python's stack is finite."""
        depth = 1 + max((self._depth.get(id(p), 0) for p in parts if isinstance(p, (BinOp, Call))), default=0)
        if depth > MAX_NESTING:
            raise ReasonerError.at(_span_of(node), f"an expression nested more than {MAX_NESTING} operations deep: "
                                   "split it over several rules", "E001")
        self._depth[id(node)] = depth
        return node

    def _span(self, token: Token) -> Span:
        return Span(self.file, token.line or 0, token.column or 0)

    # ---- terms and expressions
    def var(self, children: list[Token]) -> Var:
        (tok,) = children
        name = str(tok)
        if name == "_":  # each `_` a fresh variable, named so no rule can spell it (`_Y` is a named variable)
            name = f"_#{next(self._fresh)}"
        return Var(name, self._span(tok))

    def symbol(self, children: list[Token]) -> Const:
        (tok,) = children
        return Const(str(tok), self._span(tok))

    def string(self, children: list[Token]) -> Const:
        (tok,) = children
        for m in _ESCAPE.finditer(tok, 1, len(tok) - 1):  # an unknown escape is an error, never dropped
            if m.group(1) not in _ESCAPES:
                escape = m.group() if m.group().isprintable() else repr(m.group())
                raise ReasonerError.at(Span(self.file, tok.line or 0, (tok.column or 0) + m.start()),
                                       f"unknown escape {escape} in a string: the escapes are \\\" \\\\ \\n \\t "
                                       "(\\\\ for a backslash)", "E001")
        return Const(_unquote(str(tok)), self._span(tok))

    def number(self, children: list[Token]) -> Const:
        (tok,) = children
        return Const(_number(str(tok), self._span(tok)), self._span(tok))

    def negative_number(self, children: list[Token]) -> Const:
        (tok,) = children
        span = Span(self.file, tok.line or 0, max((tok.column or 1) - 1, 1))
        return Const(-_number(str(tok), span), span)

    def signed_number(self, children: list[Token]) -> Const:
        (tok,) = children
        return Const(_number(str(tok), self._span(tok)), self._span(tok))

    def setting(self, children: list[Token]) -> Setting:
        (tok,) = children
        return Setting(str(tok)[1:], self._span(tok))

    def binop(self, children: list[Any]) -> Expr:
        left, op, right = children
        return self._nested(BinOp(str(op), left, right, _span_of(left)), left, right)

    def negate(self, children: list[Any]) -> Expr:
        (inner,) = children
        if isinstance(inner, Const) and isinstance(inner.value, (int, float)):
            return Const(-inner.value, inner.span)
        return self._nested(BinOp("-", Const(0, _span_of(inner)), inner, _span_of(inner)), inner)

    def call(self, children: list[Any]) -> Call:
        func, *args = children
        if str(func) == "abs" and len(args) != 1:
            raise ReasonerError.at(self._span(func), "abs takes one argument", "E001")
        if str(func) in ("min", "max") and len(args) < 2:
            raise ReasonerError.at(self._span(func), f"{func} takes two or more arguments", "E001")
        return self._nested(Call(str(func), tuple(args), self._span(func)), *args)

    # ---- literals
    def atom(self, children: list[Any]) -> Atom:
        name, *args = children
        args = [a for a in args if a is not None]
        return Atom(str(name), tuple(args), self._span(name))

    def negation(self, children: list[Any]) -> Negation:
        atom = children[-1]  # `!p(...)` or `not p(...)`
        return Negation(atom, atom.span)

    def comparison(self, children: list[Any]) -> Comparison:
        left, op, right = children
        return Comparison(str(op), left, right, _span_of(left))

    def aggregate_term(self, children: list[Any]) -> tuple[str, Var | None, tuple[Literal, ...], Span]:
        func, target, body = children
        target_var = Var(str(target), self._span(target)) if target is not None else None
        return (str(func), target_var, body, self._span(func))

    def aggregate(self, children: list[Any]) -> Aggregate:
        result, op, (func, target, body, span) = children
        if not isinstance(result, Var) or result.anonymous or str(op) != "=":
            raise ReasonerError.at(_span_of(result), "an aggregate is written `V = count : { ... }` "
                                   "with a named variable V on the left", "E001")
        if func in ("sum", "min", "max") and target is None:
            raise ReasonerError.at(span, f"{func} needs a variable to aggregate: `V = {func} X : {{ ... }}`",
                                   "E001")
        if func == "count" and target is not None:
            raise ReasonerError.at(span, "count takes no variable: `N = count : { ... }`", "E001")
        for lit in body:
            if isinstance(lit, Aggregate):  # no engine evaluates it: every stage would fail later, unlocated
                raise ReasonerError.at(lit.span, "an aggregate inside an aggregate: give the inner one a rule "
                                       "of its own and use its head here", "E001")
        return Aggregate(result, func, target, body, _span_of(result))

    def body(self, children: list[Literal]) -> tuple[Literal, ...]:
        return tuple(children)

    # ---- clauses
    def ann_id(self, children: list[Token]) -> tuple[str, str, Span]:
        (tok,) = children
        return ("id", str(tok)[3:].strip(), self._span(tok))

    def ann_source(self, children: list[Token]) -> tuple[str, str, Span]:
        (tok,) = children
        return ("source", str(tok)[7:].strip(), self._span(tok))

    def ann_says(self, children: list[Token]) -> tuple[str, str, Span]:
        (tok,) = children
        return ("says", _unquote(str(tok)), self._span(tok))

    def ann_strength(self, children: list[Token]) -> tuple[str, str, Span]:
        (tok,) = children
        value = str(tok)[9:].strip()
        if value not in STRENGTHS:
            raise ReasonerError.at(self._span(tok), f"@strength is one of {', '.join(STRENGTHS)}, not {value!r}",
                                   "E001")
        return ("strength", value, self._span(tok))

    def ann_choice(self, children: list[Token]) -> tuple[str, str, Span]:
        (tok,) = children
        return ("choice", str(tok)[7:].strip(), self._span(tok))

    def fact_clause(self, children: list[Any]) -> tuple[Atom | None, tuple[Literal, ...], Span]:
        (head,) = children
        return (head, (), head.span)

    def rule_clause(self, children: list[Any]) -> tuple[Atom | None, tuple[Literal, ...], Span]:
        head, body = children
        return (head, body, head.span)

    def constraint_clause(self, children: list[Any]) -> tuple[Atom | None, tuple[Literal, ...], Span]:
        (body,) = children
        return (None, body, _span_of(body[0]))

    def clause(self, children: list[Any]) -> Rule:
        *annotations, (head, body, span) = children
        rule_id, says, sources, source_spans = None, None, [], []
        single: dict[str, str] = {}
        problems = []
        for kind, value, ann_span in annotations:
            if kind in ("strength", "choice"):
                if kind in single:
                    problems.append(Diagnostic(ann_span, f"a rule has one @{kind}", "E001"))
                single[kind] = value
            elif kind == "id":
                if rule_id is not None:
                    problems.append(Diagnostic(ann_span, "a rule has one @id", "E001"))
                rule_id = value
            elif kind == "says":
                if says is not None:
                    problems.append(Diagnostic(ann_span, "a rule has one @says", "E001"))
                says = value
            else:
                keys = [s.strip() for s in value.split(",")]
                sources += keys
                source_spans += [ann_span] * len(keys)
        if problems:
            raise ReasonerError(problems)
        if annotations:
            span = annotations[0][2]
        return Rule(head, body, rule_id, tuple(sources), says, span, single.get("strength"), single.get("choice"),
                    tuple(source_spans))

    # ---- directives
    def include(self, children: list[Token]) -> Include:
        (path,) = children
        return Include(_unquote(str(path)), self._span(path))

    def type_decl(self, children: list[Token]) -> TypeDecl:
        name, *values = children
        seen: set[str] = set()
        for v in values:
            if str(v) in seen:  # a slip, or a second value meant: never silently one
                raise ReasonerError.at(self._span(v), f"{v} is already a value of type {name}", "E010")
            seen.add(str(v))
        return TypeDecl(str(name), tuple(str(v) for v in values), self._span(name))

    def arg_decl(self, children: list[Any]) -> ArgDecl:
        name, type_name, bounds, unit = children
        low = high = None
        if bounds is not None:
            low, high = bounds
        return ArgDecl(str(name), str(type_name), low, high, _unquote(str(unit)) if unit is not None else None)

    def range(self, children: list[Const]) -> tuple[float, float]:
        low, high = children
        if low.value > high.value:  # type: ignore[operator]
            raise ReasonerError.at(low.span, f"empty range [{low}, {high}]", "E001")
        return (low.value, high.value)  # type: ignore[return-value]

    def decl(self, children: list[Any]) -> Decl:
        name, *rest = children
        role, single, at_most, bound, description = rest[-5], rest[-4], rest[-3], rest[-2], rest[-1]
        if single is not None and str(single) != "one":
            raise ReasonerError.at(self._span(single), f"after the role, only `one` may follow, not {single}", "E001")
        limit = None
        if bound is not None:
            value = _number(str(bound))
            if str(role) != "input" or single is not None or not float(value).is_integer() or value < 1:
                raise ReasonerError.at(self._span(at_most), "`at most N` takes a whole number N >= 1, after the role "
                                       "`input` and instead of `one`", "E001")
            limit = int(value)
        args = tuple(a for a in rest[:-5] if a is not None)
        return Decl(str(name), args, str(role), _unquote(str(description)) if description is not None else "",
                    self._span(name), single=single is not None, bound=limit)

    def source_decl(self, children: list[Token]) -> SourceDecl:
        key, text = children
        return SourceDecl(str(key), _unquote(str(text)), self._span(key))

    def allow_decl(self, children: list[Token]) -> AllowDecl:
        code, target, reason = children
        return AllowDecl(str(code), _unquote(str(target)), _unquote(str(reason)), self._span(code))

    def section_decl(self, children: list[Token]) -> SectionDecl:
        (title,) = children
        return SectionDecl(_unquote(str(title)), self._span(title))

    def setting_decl(self, children: list[Any]) -> SettingDecl:
        name, value, bounds, *texts = children
        # `"REASON"`, or after a range `"UNIT" "REASON"`: a unit only ever follows a range
        most = 2 if bounds is not None else 1
        if len(texts) > most:
            raise ReasonerError.at(self._span(texts[most]), "a .setting takes a range, a unit after the range and "
                                   "one reason: `.setting NAME = VALUE [LO, HI] \"UNIT\" \"REASON\"`", "E001")
        unit = _unquote(str(texts[0])) if len(texts) == 2 else None
        reason = _unquote(str(texts[-1])) if texts else ""
        low, high = bounds if bounds is not None else (None, None)
        return SettingDecl(str(name), value.value, reason, self._span(name), low=low, high=high, unit=unit)

    def requirement(self, children: list[Any]) -> Requirement:
        kind, head, body, text = children
        return Requirement(str(kind), head, body, _unquote(str(text)), self._span(kind))

    def forbid_requirement(self, children: list[Any]) -> Requirement:
        body, text = children
        return Requirement("none", None, body, _unquote(str(text)), _span_of(body[0]))

    def program(self, children: list[Statement]) -> list[Statement]:
        return list(children)

    # ---- fact files
    def fact(self, children: list[Any]) -> Fact:
        name, *values = children
        return Fact(str(name), tuple(v.value for v in values if v is not None), self._span(name))

    def facts(self, children: list[Fact]) -> list[Fact]:
        return list(children)


def _span_of(node: Any) -> Span:
    span = getattr(node, "span", None)
    return span if isinstance(span, Span) else Span("<none>", 0, 0)
