"""Solver-backed semantic checks: the rule set unfolded, for one patient, into formulas
over a bounded set of symbolic input facts, decided by z3.

Limits first (what "proved" means, and what is left to the search of explore.py):
- Bounded patients. A proof covers every patient whose input facts stay within the
  bounds: a predicate declared `one` has at most 1 fact; a predicate whose arguments
  all come from finite domains (the patient key, enumerations, integer ranges of at most
  SMALL_RANGE values) is encoded exactly, one Boolean per possible fact; `at most N`
  (docs/language.md) gives N facts; any other input predicate gets DEFAULT_BOUND facts.
  Every result says which bounds it relied on (`relies`).
- `count` and `sum` are exact only over facts whose number is exact or declared (`one`,
  finite, `at most N`); over a predicate with the default bound (raised to what the
  thresholds compared with the count or sum need: explore.Domain.needs) a witness is
  real but "none found" is no proof, and the item is searched.
- With all facts as one state (not patient-local), `one` is one fact per patient key.
- Recursive predicates, and everything that reads them, are not encoded: searched.
- Arguments of the inferred type `any` are not encoded: searched.
- One patient at a time when the rule set is patient-local and has a patient key;
  otherwise all facts are one state and patient keys are symbols like any other.
- Numbers are exact rationals in the solver and floats in the engine: every witness is
  run through the engine before it is reported (check.py), and one that does not
  reproduce its finding is an internal error, never a finding.
- A division by an expression that can be 0 gives no value: the row does not fire (as
  docs/language.md says); the engines let such a value through `!=` and min/max.
- Strings the rules never mention are fresh names (s1, s2, ...) in witnesses.
- A solver call that runs out of time (TIMEOUT_MS) leaves its item to search.

The encoding, in the order a reader meets it below:
- symbols are Int codes (every constant of the rule set has one; larger codes are fresh
  names); numbers are Real (with IsInt for `integer`).
- an input predicate is a list of fact *slots*: (present: Bool, arguments: terms
  constrained to the declared type, range or enumeration); present slots come first
  and two present slots differ, so the slots are a set of facts.
- every relation is a list of *candidates* (guard: Bool, arguments: terms): p(t) holds
  iff some candidate's guard holds and its arguments equal t (`Rel.holds`). Input slots
  are candidates; a rule's candidates are the rows of its body, joined in the engine's
  order (program.order_body): an atom that binds new variables expands into its
  relation's candidates, an atom whose variables are all bound becomes its membership
  formula, a negation the negated membership formula of a lower stratum, a comparison
  a formula, an assignment binds its variable to a term; `count`/`sum` are sums of ite
  over the aggregate body's rows (each distinct row once), `min`/`max` a fold of ite.
  Candidates of one relation with the same argument terms are merged (guards or-ed).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import z3

from reasoner.analysis.program import ANY, RuleSet, aggregate_keys, order_body
from reasoner.language.syntax import (
    Aggregate, Atom, BinOp, Call, Comparison, Const, Expr, Fact, Literal, Negation, Requirement, Setting,
    Value, Var, body_atoms,
)

DEFAULT_BOUND = 3
"""Facts per patient of an input predicate that declares no bound and is not finite."""
FINITE_LIMIT = 64
"""An input predicate with at most this many possible facts per patient gets one Boolean per fact."""
SMALL_RANGE = 16
"""An integer argument with at most this many values is a finite domain."""
TIMEOUT_MS = 20_000
"""Per solver call; a call that runs out leaves its item to search."""
MAX_ROWS = 50_000
"""A rule whose unfolding has more rows than this is left to search."""
UNROLL = 3
"""Recursive rules are unrolled this many times: enough for witnesses, never a proof of absence."""

TRUE, FALSE = z3.BoolVal(True), z3.BoolVal(False)


class NotCovered(Exception):
    """What the encoding does not cover, and why (said in every searched finding)."""


def inexact(relies) -> list[str]:
    """Why an encoding is an under-approximation: its witnesses are real (the engine
    checks them), its "no witness" is no proof."""
    out = []
    for r in sorted(relies):
        if r.startswith("rec:"):
            out.append(f"{r[4:]} is recursive (the solver unrolls it {UNROLL} times: its witnesses are real, "
                       "its \"none found\" is no proof)")
        elif r.startswith("cnt:"):
            out.append(f"a count or sum over {r[4:]}, which declares no bound on facts per patient (the solver "
                       "tries as many facts as the thresholds compared with it need, but a patient may have more; "
                       "declare `at most N` to have it proved)")
    return out


# ----------------------------------------------------------------------------- formula helpers
def and_(xs) -> z3.BoolRef:
    out = []
    for x in xs:
        if z3.is_false(x):
            return FALSE
        if not z3.is_true(x):
            out.append(x)
    return TRUE if not out else out[0] if len(out) == 1 else z3.And(*out)


def or_(xs) -> z3.BoolRef:
    out = []
    for x in xs:
        if z3.is_true(x):
            return TRUE
        if not z3.is_false(x):
            out.append(x)
    return FALSE if not out else out[0] if len(out) == 1 else z3.Or(*out)


def not_(x) -> z3.BoolRef:
    return FALSE if z3.is_true(x) else TRUE if z3.is_false(x) else z3.Not(x)


def _is_sym(t) -> bool:
    return z3.is_int(t)


def _is_value(t) -> bool:
    return z3.is_int_value(t) or z3.is_rational_value(t)


def eq(a, b) -> z3.BoolRef:
    """Equality of two terms; a symbol never equals a number (docs/language.md)."""
    if _is_sym(a) != _is_sym(b):
        return FALSE
    if a.get_id() == b.get_id():
        return TRUE
    if _is_value(a) and _is_value(b):
        return FALSE  # values are hash-consed: two ids are two values
    return a == b


def compare(op: str, a, b) -> z3.BoolRef:
    if op == "=":
        return eq(a, b)
    if op == "!=":
        return not_(eq(a, b))
    if _is_sym(a) or _is_sym(b):
        return FALSE  # <, <=, >, >= with a string on either side are false
    if _is_value(a) and _is_value(b):
        x, y = _fraction(a), _fraction(b)
        return z3.BoolVal({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _fraction(v) -> Fraction:
    if z3.is_int_value(v):
        return Fraction(v.as_long())
    return Fraction(v.numerator_as_long(), v.denominator_as_long())


def _real(value: int | float):
    return z3.RealVal(Fraction(value).limit_denominator(10**12) if isinstance(value, float) else value)


# ----------------------------------------------------------------------------- relations
@dataclass
class Cand:
    guard: z3.BoolRef
    args: tuple


@dataclass
class Rel:
    """A relation as candidates: p(t) holds iff some candidate's guard holds and its args equal t."""

    pred: str
    cands: list[Cand]
    relies: frozenset[str] = frozenset()
    """Input predicates encoded with a bound (declared or default) that this relation reads, and
    what makes it inexact: `rec:P` (P recursive, unrolled UNROLL times), `cnt:P` (a count or sum
    over P, which has the default bound)."""
    _memo: dict = field(default_factory=dict, repr=False)

    def holds(self, args: tuple) -> z3.BoolRef:
        """Membership of `args` (None: any value, for `_`)."""
        key = tuple(None if a is None else a.get_id() for a in args)
        f = self._memo.get(key)
        if f is None:
            f = or_(and_([c.guard] + [eq(a, v) for a, v in zip(args, c.args) if a is not None]) for c in self.cands)
            self._memo[key] = f
        return f


def _merge(cands: list[Cand]) -> list[Cand]:
    """One candidate per distinct argument terms, guards or-ed."""
    by: dict[tuple, list] = {}
    for c in cands:
        if z3.is_false(c.guard):
            continue
        key = tuple(a.get_id() for a in c.args)
        if key in by:
            by[key][0].append(c.guard)
        else:
            by[key] = [[c.guard], c.args]
    return [Cand(or_(gs), args) for gs, args in by.values()]


@dataclass
class InputEnc:
    """How one input predicate is encoded: its slots, and the bound behind them."""

    pred: str
    slots: list[tuple[z3.BoolRef, tuple]]  # (present, argument terms)
    bound: int
    source: str  # one | finite | declared | default
    kind: str  # booleans (one per possible fact) | slots

    @property
    def exact(self) -> bool:
        return self.source in ("one", "finite")


@dataclass
class RuleEnc:
    rows: list[tuple[z3.BoolRef, dict]]  # (guard, variable → term)
    heads: list[Cand]  # per row: the head's terms (empty for a constraint)
    relies: frozenset[str]

    @property
    def fires(self) -> z3.BoolRef:
        return or_(g for g, _ in self.rows)


# ----------------------------------------------------------------------------- the encoder
class Encoder:
    """Builds the formulas; knows nothing of findings."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], default_bound: int = DEFAULT_BOUND,
                 names: Iterable[str] = ()):
        """`names`: symbols to code besides the rule set's own, so that two encoders (the two
        versions `reasoner diff` compares) give every symbol the same code and their input
        slots, named alike, are the same solver constants."""
        self.rs = rs
        self.settings = settings
        self.default_bound = default_bound
        self.extra_names = frozenset(names)
        self.patient_mode = rs.patient_local and any(
            d.role == "input" and d.key_index is not None for d in rs.decls.values())
        self._symbols()
        self.base: list[z3.BoolRef] = []
        self.numeric_inputs: list = []  # Real terms of input slots (for round witnesses)
        self.presents: list[z3.BoolRef] = []
        from reasoner.authoring.explore import build_domain
        self.needs = build_domain(rs, settings).needs
        self.inputs: dict[str, InputEnc | NotCovered] = {}
        self.by_head: dict[str, list[int]] = {}
        for i, rule in enumerate(rs.rules):
            if rule.head is not None:
                self.by_head.setdefault(rule.head.pred, []).append(i)
        for pred, decl in rs.decls.items():
            if decl.role == "input":
                try:
                    self.inputs[pred] = self._encode_input(pred)
                except NotCovered as exc:
                    self.inputs[pred] = exc
        self._rels: dict[tuple, Rel | NotCovered] = {}
        self._rules: dict[tuple, RuleEnc | NotCovered] = {}
        self.component = {p: frozenset(c) for c in rs.strata for p in c}

    # ---- symbols
    def _symbols(self) -> None:
        strings: set[str] = set()
        for t in self.rs.types.values():
            strings |= set(t.values)

        def visit(e: Expr) -> None:
            if isinstance(e, Const) and isinstance(e.value, str):
                strings.add(e.value)
            elif isinstance(e, BinOp):
                visit(e.left), visit(e.right)
            elif isinstance(e, Call):
                for a in e.args:
                    visit(a)

        def visit_body(body) -> None:
            for a in body_atoms(body):
                for x in a.args:
                    visit(x)
            for lit in body:
                if isinstance(lit, Comparison):
                    visit(lit.left), visit(lit.right)
                elif isinstance(lit, Aggregate):
                    visit_body(lit.body)

        for rule in self.rs.rules:
            if rule.head is not None:
                for x in rule.head.args:
                    visit(x)
            visit_body(rule.body)
        for req in self.rs.requirements:
            visit_body(req.body)
            if req.head is not None:
                for x in req.head.args:
                    visit(x)
        self.names = sorted(strings | self.extra_names)
        self.code = {s: i for i, s in enumerate(self.names)}
        self.patient_code = len(self.names)
        self.fresh_from = len(self.names) + 1
        self.patient = z3.IntVal(self.patient_code)

    def sym(self, s: str):
        return z3.IntVal(self.code[s]) if s in self.code else None

    def decode_symbol(self, code: int, pid: str) -> str:
        if code == self.patient_code and self.patient_mode:
            return pid
        if 0 <= code < len(self.names):
            return self.names[code]
        n = code - self.fresh_from + 1 if code >= self.fresh_from else abs(code) + 1000
        name = f"s{n}"
        while name in self.code:
            name += "x"
        return name

    # ---- inputs
    def _domain(self, pred: str, i: int) -> list | None:
        decl = self.rs.decls[pred]
        arg = decl.args[i]
        if self.patient_mode and i == decl.key_index:
            return [self.patient]
        if arg.type in self.rs.types:
            return [z3.IntVal(self.code[v]) for v in self.rs.types[arg.type].values]
        if arg.type == "integer" and arg.low is not None and arg.high is not None:
            lo, hi = math.ceil(arg.low), math.floor(arg.high)
            if hi - lo + 1 <= SMALL_RANGE:
                return [z3.RealVal(v) for v in range(lo, hi + 1)]
        return None

    def _encode_input(self, pred: str) -> InputEnc:
        decl = self.rs.decls[pred]
        if any(a.type == ANY for a in decl.args):
            raise NotCovered(f"{pred} has arguments of no declared type")
        domains = [self._domain(pred, i) for i in range(decl.arity)]
        size = math.prod(len(d) for d in domains) if all(d is not None for d in domains) else None
        declared = getattr(decl, "bound", None)
        # `one` is one fact per patient: with all facts as one state (not patient-local), one
        # per value of the patient key, with as many patients as the default bound allows
        per_key = decl.single and not self.patient_mode and decl.key_index is not None
        if decl.single and not per_key:
            bound, source = 1, "one"
        elif size is not None and (declared is None or declared >= size):
            bound, source = size, "finite"
        elif declared is not None:
            bound, source = declared, "declared"
        else:  # the default, raised to what the count and sum thresholds over it need (explore.py)
            bound, source = max(self.default_bound, self.needs.get(pred, 0)), "default"
        if size is not None and size <= FINITE_LIMIT and not decl.single:  # (never per_key: ids are not finite)
            slots = []
            for values in itertools.product(*domains):
                present = z3.Bool(f"{pred}({', '.join(str(v) for v in values)})")
                slots.append((present, tuple(values)))
            if bound < size:
                self.base.append(z3.AtMost(*[p for p, _ in slots], bound))
            self.presents += [p for p, _ in slots]
            return InputEnc(pred, slots, bound, "finite" if bound >= size else source, "booleans")
        slots = []
        for j in range(bound):
            present = z3.Bool(f"{pred}#{j + 1}")
            args = []
            for i, (arg, dom) in enumerate(zip(decl.args, domains)):
                if dom is not None and len(dom) == 1:
                    args.append(dom[0])
                    continue
                numeric = arg.type in ("number", "integer")
                v = (z3.Real if numeric else z3.Int)(f"{pred}#{j + 1}.{arg.name}")
                if dom is not None:
                    self.base.append(or_(v == d for d in dom))
                elif numeric:
                    if arg.low is not None:
                        self.base.append(v >= _real(arg.low))
                    if arg.high is not None:
                        self.base.append(v <= _real(arg.high))
                    if arg.type == "integer":
                        self.base.append(z3.IsInt(v))
                else:
                    self.base.append(v >= 0)
                if numeric:
                    self.numeric_inputs.append(v)
                args.append(v)
            slots.append((present, tuple(args)))
            self.presents.append(present)
        for j in range(1, len(slots)):  # present slots first; two present slots are two facts
            self.base.append(z3.Implies(slots[j][0], slots[j - 1][0]))
        for (p, a), (q, b) in itertools.combinations(slots, 2):
            differ = or_(not_(eq(x, y)) for x, y in zip(a, b)) if not per_key else \
                not_(eq(a[decl.key_index], b[decl.key_index]))  # two facts are two patients
            if not z3.is_true(differ):
                self.base.append(z3.Implies(z3.And(p, q), differ))
        return InputEnc(pred, slots, bound, source, "slots")

    def bounded_inputs(self) -> list[InputEnc]:
        return [e for e in self.inputs.values() if isinstance(e, InputEnc) and not e.exact]

    # ---- relations
    def rel(self, pred: str, depth: int | None = None) -> Rel:
        """The relation of `pred`; a recursive one unrolled `depth` times (default UNROLL)."""
        if pred in self.rs.recursive:
            depth = UNROLL if depth is None else depth
        else:
            depth = None
        got = self._rels.get((pred, depth))
        if isinstance(got, NotCovered):
            raise got
        if got is not None:
            return got
        try:
            got = self._build_rel(pred, depth)
        except NotCovered as exc:
            self._rels[(pred, depth)] = exc
            raise
        self._rels[(pred, depth)] = got
        return got

    def _build_rel(self, pred: str, depth: int | None) -> Rel:
        cands: list[Cand] = []
        relies: set[str] = {f"rec:{pred}"} if depth is not None else set()
        enc = self.inputs.get(pred)
        if isinstance(enc, NotCovered):
            raise enc
        if enc is not None:
            cands += [Cand(p, args) for p, args in enc.slots]
            if not enc.exact:
                relies.add(pred)
        for index in self.by_head.get(pred, []) if depth != 0 else []:
            r = self.rule(index, depth)
            cands += r.heads
            relies |= r.relies
        return Rel(pred, _merge(cands), frozenset(relies))

    def rule(self, index: int, depth: int | None = None) -> RuleEnc:
        """A rule's rows; for a recursive rule, with the atoms of its own component unrolled
        `depth - 1` times (default UNROLL)."""
        head = self.rs.rules[index].head
        if head is not None and head.pred in self.rs.recursive:
            depth = UNROLL if depth is None else depth
        else:
            depth = None
        got = self._rules.get((index, depth))
        if isinstance(got, NotCovered):
            raise got
        if got is not None:
            return got
        try:
            got = self._build_rule(index, depth)
        except NotCovered as exc:
            self._rules[(index, depth)] = exc
            raise
        self._rules[(index, depth)] = got
        return got

    def _build_rule(self, index: int, depth: int | None) -> RuleEnc:
        rule = self.rs.rules[index]
        relies: set[str] = set()
        inner = None
        if depth is not None:  # atoms of the head's own component: one unrolling less
            assert rule.head is not None
            inner = (self.component[rule.head.pred], depth - 1)
        if not rule.body:
            assert rule.head is not None
            conds: list = []
            args = tuple(self.term(a, {}, conds) for a in rule.head.args)
            return RuleEnc([(and_(conds), {})], [Cand(and_(conds), args)], frozenset())
        rows = self.join(rule.body, rule.head, {}, relies, self.rs.rule_name(rule), inner)
        out_rows, heads = [], []
        for conds, env in rows:
            if rule.head is not None:
                args = tuple(self.term(a, env, conds) for a in rule.head.args)
                heads.append(Cand(and_(conds), args))
            out_rows.append((and_(conds), env))
        return RuleEnc(out_rows, _merge(heads), frozenset(relies))

    # ---- terms
    def term(self, e: Expr, env: dict, conds: list):
        if isinstance(e, Var):
            if e.name not in env:
                raise NotCovered(f"variable {e.name} is not bound")
            return env[e.name]
        if isinstance(e, Const):
            if isinstance(e.value, str):
                return z3.IntVal(self.code[e.value])
            return _real(e.value)
        if isinstance(e, Setting):
            return _real(self.settings[e.name])  # type: ignore[arg-type]
        if isinstance(e, BinOp):
            a, b = self.term(e.left, env, conds), self.term(e.right, env, conds)
            if _is_sym(a) or _is_sym(b):
                raise NotCovered(f"arithmetic on a symbol: {e}")
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            zero = eq(b, z3.RealVal(0))
            if z3.is_true(zero):
                conds.append(FALSE)
                return z3.RealVal(0)
            if not z3.is_false(zero):
                conds.append(not_(zero))
            return a / b
        if isinstance(e, Call):
            args = [self.term(a, env, conds) for a in e.args]
            if any(_is_sym(a) for a in args):
                raise NotCovered(f"arithmetic on a symbol: {e}")
            if e.func == "abs":
                return z3.If(args[0] >= 0, args[0], -args[0])
            acc = args[0]
            for a in args[1:]:
                acc = z3.If(a < acc, a, acc) if e.func == "min" else z3.If(a > acc, a, acc)
            return acc
        raise NotCovered(f"not an expression: {e!r}")

    # ---- bodies
    def join(self, body: tuple[Literal, ...], head: Atom | None, env0: dict, relies: set[str],
             where: str, inner: tuple | None = None) -> list[tuple[list, dict]]:
        """The rows of a body: (conditions, variable → term), joined in the engine's order.
        `inner` = (component, depth): atoms of that recursive component at that unrolling."""

        def get_rel(pred: str) -> Rel:
            if inner is not None and pred in inner[0]:
                return self.rel(pred, inner[1])
            return self.rel(pred)

        steps = order_body(body, initially_bound=frozenset(env0), head=head)
        rows: list[tuple[list, dict]] = [([], dict(env0))]
        for step in steps:
            lit = step.literal
            new: list[tuple[list, dict]] = []
            if isinstance(lit, Atom):
                rel = get_rel(lit.pred)
                relies |= rel.relies
                if not step.binds:
                    for conds, env in rows:
                        c2 = list(conds)
                        f = rel.holds(tuple(self.term(a, env, c2) for a in lit.args))
                        if not z3.is_false(f):
                            new.append((c2 + [f], env))
                else:
                    for conds, env in rows:
                        for cand in rel.cands:
                            row = self._unify(lit, cand, conds, env)
                            if row is not None:
                                new.append(row)
            elif isinstance(lit, Negation):
                rel = get_rel(lit.atom.pred)
                relies |= rel.relies
                for conds, env in rows:
                    c2 = list(conds)
                    args = tuple(None if isinstance(a, Var) and a.anonymous else self.term(a, env, c2)
                                 for a in lit.atom.args)
                    f = not_(rel.holds(args))
                    if not z3.is_false(f):
                        new.append((c2 + [f], env))
            elif isinstance(lit, Comparison):
                for conds, env in rows:
                    c2 = list(conds)
                    if step.assign is not None:
                        other = lit.right if isinstance(lit.left, Var) and lit.left.name == step.assign else lit.left
                        new.append((c2, {**env, step.assign: self.term(other, env, c2)}))
                    else:
                        f = compare(lit.op, self.term(lit.left, env, c2), self.term(lit.right, env, c2))
                        if not z3.is_false(f):
                            new.append((c2 + [f], env))
            else:
                for conds, env in rows:
                    row = self._aggregate(lit, body, head, conds, env, relies, where)
                    if row is not None:
                        new.append(row)
            rows = new
            if len(rows) > MAX_ROWS:
                raise NotCovered(f"the unfolding of {where} has more than {MAX_ROWS} rows")
        return rows

    def _unify(self, atom: Atom, cand: Cand, conds: list, env: dict) -> tuple[list, dict] | None:
        c2 = list(conds) + [cand.guard]
        env2 = dict(env)
        for a, v in zip(atom.args, cand.args):
            if isinstance(a, Var) and a.name not in env2:
                env2[a.name] = v
                continue
            f = eq(self.term(a, env2, c2), v)
            if z3.is_false(f):
                return None
            if not z3.is_true(f):
                c2.append(f)
        return c2, env2

    def _aggregate(self, agg: Aggregate, body, head, conds: list, env: dict, relies: set[str],
                   where: str) -> tuple[list, dict] | None:
        keys = aggregate_keys(agg, body, head)
        inner_env = {k: env[k] for k in keys if k in env}
        inner_relies: set[str] = set()
        inner = self.join(agg.body, None, inner_env, inner_relies, where)
        relies |= inner_relies
        if agg.func in ("count", "sum"):
            default = sorted(p for p in inner_relies
                             if isinstance(self.inputs.get(p), InputEnc) and self.inputs[p].source == "default")
            relies |= {f"cnt:{p}" for p in default}  # fewer facts than a patient may have: inexact
        guards, targets, idents = [], [], []
        names = sorted({n for _, e in inner for n in e} - set(inner_env))
        for c, e in inner:
            c2 = list(c)
            if agg.target is not None:
                targets.append(self.term(agg.target, e, c2))
            guards.append(and_(c2))
            idents.append(tuple(e[n] for n in names))
        c_out = list(conds)
        if agg.func in ("count", "sum"):
            single_input = self._rows_are_facts(agg.body)
            firsts = []
            for j in range(len(inner)):
                dups = [] if single_input else [
                    and_([guards[i]] + [eq(a, b) for a, b in zip(idents[i], idents[j])]) for i in range(j)]
                firsts.append(and_([guards[j], not_(or_(dups))]))
            if agg.func == "count":
                parts = [z3.If(f, z3.RealVal(1), z3.RealVal(0)) for f in firsts if not z3.is_false(f)]
            else:
                parts = [z3.If(f, t, z3.RealVal(0)) for f, t in zip(firsts, targets) if not z3.is_false(f)]
            value = z3.Sum(*parts) if len(parts) > 1 else parts[0] if parts else z3.RealVal(0)
        else:
            if not inner:
                return None
            acc, any_ = targets[0], guards[0]
            for g, t in zip(guards[1:], targets[1:]):
                better = t < acc if agg.func == "min" else t > acc
                acc = z3.If(and_([g, or_([not_(any_), better])]), t, acc)
                any_ = or_([any_, g])
            value = acc
            c_out.append(any_)
        name = agg.result.name
        if name in env:
            f = eq(env[name], value)
            if z3.is_false(f):
                return None
            c_out.append(f)
            return c_out, env
        return c_out, {**env, name: value}

    def _rows_are_facts(self, body: tuple[Literal, ...]) -> bool:
        """One positive atom, of an input predicate, and only filters besides: distinct rows
        are distinct facts, which the slots already are."""
        atoms = [lit for lit in body if isinstance(lit, Atom)]
        return (len(atoms) == 1 and atoms[0].pred in self.inputs and not self.by_head.get(atoms[0].pred)
                and not any(isinstance(lit, Aggregate) for lit in body))

    # ---- requirements
    def requirement(self, req: Requirement, relies: set[str]) -> z3.BoolRef:
        """The formula "this requirement fails for the patient"."""
        rows = self.join(req.body, None, {}, relies, f"requirement \"{req.text}\"")
        if req.kind == "none":
            return or_(and_(c) for c, _ in rows)
        assert req.head is not None
        rel = self.rel(req.head.pred)
        relies |= rel.relies
        fails = []
        for conds, env in rows:
            c2 = list(conds)
            pattern = [None if isinstance(a, Var) and a.name not in env else self.term(a, env, c2)
                       for a in req.head.args]
            # head-only named variables must agree with themselves: p(X, X)
            matched = []
            for cand in rel.cands:
                local: dict[str, object] = {}
                cs = [cand.guard]
                for a, p, v in zip(req.head.args, pattern, cand.args):
                    if p is not None:
                        cs.append(eq(p, v))
                    elif isinstance(a, Var) and not a.anonymous:
                        if a.name in local:
                            cs.append(eq(local[a.name], v))  # type: ignore[arg-type]
                        else:
                            local[a.name] = v
                m = and_(cs)
                if not z3.is_false(m):
                    matched.append((m, cand.args))
            if req.kind == "some":
                fail = not_(or_(m for m, _ in matched))
            else:
                firsts = []
                for j, (m, args) in enumerate(matched):
                    dups = [and_([mi] + [eq(a, b) for a, b in zip(ai, args)]) for mi, ai in matched[:j]]
                    firsts.append(and_([m, not_(or_(dups))]))
                n = z3.Sum(*[z3.If(f, 1, 0) for f in firsts]) if len(firsts) > 1 else (
                    z3.If(firsts[0], 1, 0) if firsts else z3.IntVal(0))
                fail = n != 1
            fails.append(and_(c2 + [fail]))
        return or_(fails)

    # ---- witnesses
    def decode(self, model: z3.ModelRef, pid: str) -> list[Fact]:
        facts: list[Fact] = []
        for pred, enc in self.inputs.items():
            if isinstance(enc, NotCovered):
                continue
            decl = self.rs.decls[pred]
            for present, args in enc.slots:
                if not z3.is_true(model.eval(present, model_completion=True)):
                    continue
                values: list[Value] = []
                for arg, t in zip(decl.args, args):
                    values.append(self.value(model.eval(t, model_completion=True), pid, arg.type == "integer"))
                facts.append(Fact(pred, tuple(values)))
        return facts

    def value(self, v, pid: str, integer: bool = False) -> Value:
        if z3.is_int_value(v):
            return self.decode_symbol(v.as_long(), pid)
        f = _fraction(v)
        if f.denominator == 1:
            return int(f)
        return float(f)


# ----------------------------------------------------------------------------- the checks
@dataclass
class Outcome:
    """One item the solver decided (or could not).

    kind: rule (live/dead), constraint, require, range, conflict, clash, redundant.
    status: proved (unsatisfiable: dead, holds, in range, redundant), witness (satisfiable,
    with a witness the engine reproduced), uncovered (the encoding does not cover it:
    `detail` says why), internal (the solver's witness did not reproduce: an internal error).
    """

    kind: str
    index: int | None
    status: str
    detail: str = ""
    witness: list[Fact] | None = None
    value: tuple = ()
    relies: tuple[str, ...] = ()
    evidence: object = None
    """What the engine showed on the witness (the validator's answer)."""


Validator = Callable[[str, "int | None", tuple, list[Fact]], "object"]
"""(kind, index, value, witness facts) → truthy when the engine reproduces the claim. For
kind "rule" it returns the set of rule indexes that fired (all marked live at once)."""


class Prover:
    """Runs every check the encoding covers; asks `validate` (the engine) about each witness."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], validate: Validator,
                 default_bound: int = DEFAULT_BOUND, timeout_ms: int = TIMEOUT_MS, pid: str = "w",
                 names: Iterable[str] = ()):
        self.rs = rs
        self.enc = Encoder(rs, settings, default_bound, names)
        self.validate = validate
        self.pid = pid
        self.solver = z3.Solver()
        self.solver.set("timeout", timeout_ms)
        self.solver.add(*self.enc.base)
        self.skip: set[tuple] = set()
        """Items not to decide, as check.py names them: ("rule", i), ("constraint", i), ("require", j),
        ("range", i), ("conflict",), ("clash",) (they depend on rules left out for errors)."""
        self.calls = 0
        self.trivial = 0
        """Checks decided without a solver call: the encoding simplified their formula to false."""
        self.seconds = 0.0

    # ---- solver calls
    def _check(self, *formulas) -> z3.CheckSatResult:
        t0 = time.perf_counter()
        self.calls += 1
        r = self.solver.check(*formulas) if formulas else self.solver.check()
        self.seconds += time.perf_counter() - t0
        self._last = r
        return r

    def _witnesses(self, formula: z3.BoolRef, minimise: bool, grids=(1, 10, 100, None)) -> Iterator[list[Fact]]:
        """Witness candidates for a satisfiable formula: round numbers first (whole, tenths,
        hundredths, then any), each with as few facts as the solver finds."""
        tried: set[tuple] = set()
        for grid in grids:
            self.solver.push()
            try:
                self.solver.add(formula)
                if grid is not None:
                    self.solver.add(*[z3.IsInt(x * grid) for x in self.enc.numeric_inputs])
                if self._check() != z3.sat:
                    continue
                model = self._minimise() if minimise else self.solver.model()
                facts = self.enc.decode(model, self.pid)
            finally:
                self.solver.pop()
            key = tuple(sorted(str(f) for f in facts))
            if key not in tried:
                tried.add(key)
                yield facts

    def _minimise(self) -> z3.ModelRef:
        """A model with fewer facts: a binary search on the number of present facts."""
        model = self.solver.model()
        presents = self.enc.presents
        if not presents:
            return model
        high = sum(1 for p in presents if z3.is_true(model.eval(p, model_completion=True)))
        low = 0
        best = model
        while low < high:
            mid = (low + high) // 2
            if self._check(z3.AtMost(*presents, mid)) == z3.sat:
                best = self.solver.model()
                high = sum(1 for p in presents if z3.is_true(best.eval(p, model_completion=True)))
            else:
                low = mid + 1
        return best

    def decide(self, kind: str, index: int | None, formula: z3.BoolRef, relies, value: tuple = (),
               minimise: bool = True, validate: Validator | None = None, eager: bool = False) -> Outcome:
        """unsat → proved; sat → the first witness the engine reproduces (or internal). An
        inexact encoding (recursion unrolled, a count over too few facts) proves nothing by
        unsat and may propose witnesses the engine rejects: both leave the item to search."""
        approx = inexact(relies)
        relies = tuple(sorted(r for r in relies if ":" not in r))
        if eager and not z3.is_false(formula):  # mostly satisfiable (rules are mostly live): witness first
            for facts in self._witnesses(formula, minimise, grids=(1,)):
                got = (validate or self.validate)(kind, index, value, facts)
                if got:
                    return Outcome(kind, index, "witness", witness=facts, value=value, relies=relies, evidence=got)
        if z3.is_false(formula):
            self.trivial += 1  # decided by the encoding itself: the formula simplified to false
        if z3.is_false(formula) or self._check(formula) == z3.unsat:
            if approx:
                return Outcome(kind, index, "uncovered", "; ".join(approx), value=value, relies=relies)
            return Outcome(kind, index, "proved", relies=relies)
        r = self._last
        if r != z3.sat:
            return Outcome(kind, index, "uncovered", f"the solver gave no answer within {TIMEOUT_MS // 1000} s",
                           relies=relies)
        tried = []
        for facts in self._witnesses(formula, minimise):
            got = (validate or self.validate)(kind, index, value, facts)
            if got:
                return Outcome(kind, index, "witness", witness=facts, value=value, relies=relies, evidence=got)
            tried.append(facts)
        if approx:
            return Outcome(kind, index, "uncovered", "; ".join(approx), value=value, relies=relies)
        return Outcome(kind, index, "internal", "no witness of the solver reproduced in the engine: "
                       + " ".join(f"{f}." for f in (tried[0] if tried else [])), value=value, relies=relies)

    # ---- the items
    def rules(self) -> list[Outcome]:
        """Every rule with a body: live (a witness fires it in the engine) or proved dead;
        every integrity constraint: violated (a witness) or proved to hold."""
        out: dict[int, Outcome] = {}
        live: dict[int, list[Fact]] = {}
        for index, rule in enumerate(self.rs.rules):
            if not rule.body or ("constraint" if rule.head is None else "rule", index) in self.skip:
                continue
            try:
                enc = self.enc.rule(index)
            except NotCovered as exc:
                out[index] = Outcome("constraint" if rule.head is None else "rule", index, "uncovered", str(exc))
                continue
            if rule.head is None:
                out[index] = self.decide("constraint", index, enc.fires, enc.relies)
                continue
            if index in live:
                out[index] = Outcome("rule", index, "witness", witness=live[index], relies=tuple(sorted(enc.relies)))
                continue
            fired_with: set[int] = set()

            def fires(kind, i, value, facts, _index=index) -> bool:
                fired = self.validate("rule", _index, (), facts) or set()
                if _index in fired:
                    fired_with.update(fired)
                    return True
                return False

            o = self.decide("rule", index, enc.fires, enc.relies, minimise=False, validate=fires, eager=True)
            if o.status == "witness" and fired_with:
                for j in fired_with:
                    live.setdefault(j, o.witness)  # type: ignore[arg-type]
            out[index] = o
        return [out[i] for i in sorted(out)]

    def requirements(self) -> list[Outcome]:
        out = []
        for j, req in enumerate(self.rs.requirements):
            if ("require", j) in self.skip:
                continue
            relies: set[str] = set()
            try:
                f = self.enc.requirement(req, relies)
            except NotCovered as exc:
                out.append(Outcome("require", j, "uncovered", str(exc)))
                continue
            out.append(self.decide("require", j, f, relies))
        return out

    def ranges(self) -> list[Outcome]:
        """A derived value outside its declared range, integer type or enumeration."""
        out = []
        for index, rule in enumerate(self.rs.rules):
            if rule.head is None or not rule.body or ("range", index) in self.skip:
                continue
            decl = self.rs.decls.get(rule.head.pred)
            if decl is None or decl.role == "input":
                continue
            checks = []
            for i, arg in enumerate(decl.args):
                if arg.type in ("number", "integer") and (arg.low is not None or arg.type == "integer"):
                    checks.append(i)
                elif arg.type in self.rs.types:
                    checks.append(i)
            if not checks:
                continue
            try:
                enc = self.enc.rule(index)
            except NotCovered as exc:
                out.append(Outcome("range", index, "uncovered", str(exc)))
                continue
            for i in checks:
                arg = decl.args[i]
                outside = []
                for head in enc.heads:
                    t = head.args[i]
                    if arg.type in self.rs.types:
                        bad = and_(not_(eq(t, z3.IntVal(self.enc.code[v]))) for v in self.rs.types[arg.type].values)
                    elif _is_sym(t):
                        bad = TRUE
                    else:
                        parts = []
                        if arg.low is not None:
                            parts.append(compare("<", t, _real(arg.low)))
                        if arg.high is not None:
                            parts.append(compare(">", t, _real(arg.high)))
                        if arg.type == "integer":
                            parts.append(FALSE if _is_value(t) and _fraction(t).denominator == 1 else z3.Not(z3.IsInt(t)))
                        bad = or_(parts)
                    outside.append(and_([head.guard, bad]))
                out.append(self.decide("range", index, or_(outside), enc.relies, value=(i,)))
        return out

    def tuples(self, kind: str, rel_cands: list[tuple[z3.BoolRef, tuple]], relies, limit: int = 100) -> list[Outcome]:
        """Every distinct value tuple that some candidate can produce, each with a witness;
        then a proof that there is no other (or an outcome that says the search stopped)."""
        out: list[Outcome] = []
        found: list[tuple] = []
        decoded: list[tuple] = []
        while len(found) < limit:
            fresh = []
            for guard, args in rel_cands:
                new = and_([guard] + [not_(and_(eq(a, b) for a, b in zip(args, t))) for t in found])
                fresh.append(new)
            f = or_(fresh)
            if z3.is_false(f):
                break
            r = self._check(f)
            if r == z3.unsat:
                break
            if r != z3.sat:
                out.append(Outcome(kind, None, "uncovered", f"the solver gave no answer within {TIMEOUT_MS // 1000} s"))
                return out
            model = self.solver.model()
            hit = next((args for (guard, args), g in zip(rel_cands, fresh)
                        if z3.is_true(model.eval(g, model_completion=True))), None)
            if hit is None:
                break
            t = tuple(model.eval(a, model_completion=True) for a in hit)
            found.append(t)
            value = tuple(self.enc.value(v, self.pid) for v in t)
            decoded.append(value)
            formula = or_(and_([guard] + [eq(a, b) for a, b in zip(args, t)]) for guard, args in rel_cands)
            out.append(self.decide(kind, None, formula, relies, value=value))
        if inexact(relies):  # the list may be incomplete: the search looks for more
            out.append(Outcome(kind, None, "uncovered", "; ".join(inexact(relies))))
        return out

    def conflicts(self) -> list[Outcome]:
        """Every conflict tuple the rule set can produce (without the patient key)."""
        if "conflict" not in self.rs.decls or ("conflict",) in self.skip:
            return []
        try:
            rel = self.enc.rel("conflict")
        except NotCovered as exc:
            return [Outcome("conflict", None, "uncovered", str(exc))]
        k = self.rs.key_index("conflict") if self.enc.patient_mode else None
        cands = [(c.guard, tuple(a for i, a in enumerate(c.args) if i != k)) for c in rel.cands]
        return self.tuples("conflict", cands, rel.relies)

    def clashes(self) -> list[Outcome]:
        """indicated(P, A, ...) and contraindicated(P, A, ..., R...) together (matched on
        indicated's arguments), and no conflict(P, A, R...) that says so."""
        pair = clash_predicates(self.rs)
        if pair is None or ("clash",) in self.skip:
            return []
        ind_pred, contra_pred = pair
        try:
            ind, contra = self.enc.rel(ind_pred), self.enc.rel(contra_pred)
            conflict = self.enc.rel("conflict") if "conflict" in self.rs.decls else None
        except NotCovered as exc:
            return [Outcome("clash", None, "uncovered", str(exc))]
        n = self.rs.decls[ind_pred].arity
        k = self.rs.key_index(contra_pred) if self.enc.patient_mode else None
        conflict_ok = (conflict is not None and self.rs.decls["conflict"].arity == self.rs.decls[contra_pred].arity)
        cands = []
        for ci in ind.cands:
            for cj in contra.cands:
                same = and_(eq(a, b) for a, b in zip(ci.args, cj.args[:n]))
                g = and_([ci.guard, cj.guard, same])
                if z3.is_false(g):
                    continue
                if conflict_ok:
                    g = and_([g, not_(conflict.holds(cj.args))])  # type: ignore[union-attr]
                cands.append((g, tuple(a for i, a in enumerate(cj.args) if i != k)))
        relies = ind.relies | contra.relies | (conflict.relies if conflict is not None else frozenset())
        return self.tuples("clash", cands, relies)

    def redundant(self, live: set[int]) -> list[Outcome]:
        """A live rule whose every conclusion another rule with the same head concludes too:
        proved when "it concludes something no other rule does" is unsatisfiable."""
        out = []
        for pred, indexes in self.enc.by_head.items():
            bodied = [i for i in indexes if self.rs.rules[i].body]
            if len(indexes) < 2:
                continue
            for index in bodied:
                if index not in live:
                    continue
                try:
                    mine = self.enc.rule(index)
                    others = Rel(pred, [c for j in indexes if j != index for c in self.enc.rule(j).heads])
                    relies = mine.relies | frozenset(p for j in indexes if j != index for p in self.enc.rule(j).relies)
                except NotCovered as exc:
                    out.append(Outcome("redundant", index, "uncovered", str(exc)))
                    continue
                f = or_(and_([h.guard, not_(others.holds(h.args))]) for h in mine.heads)
                if inexact(relies):  # only a witness counts: a conclusion of its own, in the engine
                    o = self.decide("unique", index, f, relies, minimise=False)
                    out.append(Outcome("redundant", index, "witness" if o.status == "witness" else "uncovered",
                                       o.detail, relies=o.relies))
                    continue
                if z3.is_false(f):
                    self.trivial += 1
                r = self._check(f) if not z3.is_false(f) else z3.unsat
                if r == z3.unsat:  # named: the other rules whose conclusions can meet this one's
                    overlap = tuple(j for j in indexes if j != index and any(
                        not z3.is_false(and_(eq(a, b) for a, b in zip(h.args, c.args)))
                        for h in mine.heads for c in self.enc.rule(j).heads))
                    out.append(Outcome("redundant", index, "proved", relies=tuple(sorted(relies)), value=overlap))
                elif r == z3.sat:  # it concludes something no other rule does (no witness needed)
                    out.append(Outcome("redundant", index, "witness", relies=tuple(sorted(relies))))
                else:
                    out.append(Outcome("redundant", index, "uncovered",
                                       f"the solver gave no answer within {TIMEOUT_MS // 1000} s"))
        return out


def clash_predicates(rs: RuleSet) -> tuple[str, str] | None:
    """`indicated` and `contraindicated`, when both are declared and indicated's arguments
    line up with contraindicated's first ones."""
    if "indicated" not in rs.decls or "contraindicated" not in rs.decls:
        return None
    a, b = rs.decls["indicated"], rs.decls["contraindicated"]
    if a.arity > b.arity:
        return None
    return "indicated", "contraindicated"
