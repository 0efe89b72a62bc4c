"""The z3 encoding of a rule set for one patient (smt.py says what a proof covers).

Rule and fact text never becomes code here: every z3 term is built with z3's Python API
from the syntax tree, no SMT-LIB text is parsed, and `ModelRef.evaluate` computes a z3
term's value in a solver's model (z3's evaluation, not Python's `eval`).

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

from fractions import Fraction
import itertools
import math
from typing import Iterable

import z3

from reasoner.analysis.program import ANY, RuleSet, aggregate_keys, order_body
from reasoner.authoring.smt_formulas import (
    DEFAULT_BOUND,
    FALSE,
    FINITE_LIMIT,
    MAX_ROWS,
    SMALL_RANGE,
    UNROLL,
    Cand,
    InputEnc,
    NotCovered,
    Rel,
    RuleEnc,
    and_,
    compare,
    eq,
    fraction,
    is_sym,
    merge,
    not_,
    or_,
    real,
)
from reasoner.language.syntax import (
    Aggregate,
    Atom,
    BinOp,
    Call,
    Comparison,
    Const,
    Expr,
    Fact,
    Literal,
    Negation,
    Requirement,
    Setting,
    Value,
    Var,
    body_atoms,
)


def _exact(value: Value) -> Fraction:
    """A number as the solver reads it (the decimal written, exactly: 0.1 is 1/10)."""
    return Fraction(value).limit_denominator(10**12) if isinstance(value, float) else Fraction(value)  # type: ignore[arg-type]


def _power_of_two(value: Value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
        return False
    f = abs(_exact(value))
    return (f.numerator & (f.numerator - 1)) == 0 and (f.denominator & (f.denominator - 1)) == 0


def _settings_in(e: Comparison | Expr) -> list[Setting]:
    if isinstance(e, Setting):
        return [e]
    if isinstance(e, Comparison):
        return _settings_in(e.left) + _settings_in(e.right)
    if isinstance(e, BinOp):
        return _settings_in(e.left) + _settings_in(e.right)
    if isinstance(e, Call):
        return [s for a in e.args for s in _settings_in(a)]
    return []


def rounds(e: Expr, settings: dict[str, Value], whole: frozenset[str] = frozenset()) -> bool:
    """May `e` computed in the engine's floating point differ from `e` computed exactly, as
    the solver does (6 * 0.1 is 0.6000000000000001 in the engine, 3/5 in the solver)? A
    variable or a number alone does not: inputs and constants are rounded alike, and
    rounding keeps their order. Scaling by a power of two (8 * Kg, Kg / 2), min, max and abs
    of terms that do not round, arithmetic on constants that comes out exact, and +, - and *
    of whole numbers (the variables in `whole`: counts, inputs typed integer) do not.
    Anything else may: a proof that rests on it is no proof."""
    def const(x: Expr) -> Value | None:
        if isinstance(x, Const) and isinstance(x.value, (int, float)) and not isinstance(x.value, bool):
            return x.value
        if isinstance(x, Setting):
            return settings.get(x.name)
        return None

    def folded(x: Expr) -> tuple[float, Fraction] | None:
        """A constant expression's value in floats and exactly; None if it has a variable."""
        c = const(x)
        if c is not None:
            return float(c), _exact(c)
        if isinstance(x, BinOp):
            a, b = folded(x.left), folded(x.right)
            if a is None or b is None or (x.op == "/" and b[1] == 0):
                return None
            ops = {"+": lambda u, v: u + v, "-": lambda u, v: u - v, "*": lambda u, v: u * v, "/": lambda u, v: u / v}
            return ops[x.op](a[0], b[0]), ops[x.op](a[1], b[1])
        return None

    def integral(x: Expr) -> bool:
        if isinstance(x, Var):
            return x.name in whole
        c = const(x)
        if c is not None:
            return float(c).is_integer() and abs(c) < 2**53
        return isinstance(x, BinOp) and x.op in "+-*" and integral(x.left) and integral(x.right)

    if isinstance(e, (Var, Const, Setting)):
        return False
    if isinstance(e, Call):
        return any(rounds(a, settings, whole) for a in e.args)
    if isinstance(e, BinOp):
        value = folded(e)
        if value is not None:
            return Fraction(value[0]) != value[1]
        if integral(e):  # whole numbers as large as a patient's facts make: exact below 2**53
            return False
        if e.op in ("*", "/"):
            left, right = const(e.left), const(e.right)
            if right is not None and _power_of_two(right):
                return rounds(e.left, settings, whole)
            if e.op == "*" and left is not None and _power_of_two(left):
                return rounds(e.right, settings, whole)
        return True
    return False


LOOSE = "rounding_allowed"
"""The solver constant of Encoder.loose: one name, so that the encoders of two versions
(`reasoner diff`) share it."""

ROUNDING = Fraction(1, 10**9)
"""The relative error a value computed in floating point is allowed in a proof: a few
operations on doubles are off by about 1e-16; this is generous on purpose."""


class Encoder:
    """Builds the formulas; knows nothing of findings."""

    def __init__(self, rs: RuleSet, settings: dict[str, Value], default_bound: int = DEFAULT_BOUND,
                 names: Iterable[str] = (), needs: dict[str, int] | None = None):
        """`names`: symbols to code besides the rule set's own, so that two encoders (the two
        versions `reasoner diff` compares) give every symbol the same code and their input
        slots, named alike, are the same solver constants. `needs`: the facts per input
        predicate the default bound is raised to (explore_domain.Domain.needs; by default this
        rule set's): two encoders that share slots must share it too."""
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
        self.axioms: list[z3.BoolRef] = []
        """Facts about the rounding functions (`_computed`), true of every patient: never a
        row's condition, which a solver could make false to leave a row out."""
        self.axioms_given = 0
        self.loose = z3.Bool(LOOSE)
        """True: what the engine computes in floating point may round (`rounds`) - a comparison
        near its boundary may come out either way, a computed value may be off by a relative
        ROUNDING. Proofs are asked with it true (so they hold whatever the rounding), witnesses
        with it false (exact values, which the engine then reproduces or not)."""
        from reasoner.authoring.explore_domain import build_domain
        self.needs = build_domain(rs, settings).needs if needs is None else needs
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
        else:  # the default, raised to what the count and sum thresholds over it need (explore_domain.py)
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
                        self.base.append(v >= real(arg.low))
                    if arg.high is not None:
                        self.base.append(v <= real(arg.high))
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
        return Rel(pred, merge(cands), frozenset(relies))

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
        whole = self._whole(rule.body)
        for conds, env in rows:
            if rule.head is not None:
                args = tuple(self._computed(a, env, conds, whole, relies) for a in rule.head.args)
                heads.append(Cand(and_(conds), args))
            out_rows.append((and_(conds), env))
        return RuleEnc(out_rows, merge(heads), frozenset(relies))

    # ---- terms
    def term(self, e: Expr, env: dict, conds: list):
        if isinstance(e, Var):
            if e.name not in env:
                raise NotCovered(f"variable {e.name} is not bound")
            return env[e.name]
        if isinstance(e, Const):
            if isinstance(e.value, str):
                return z3.IntVal(self.code[e.value])
            return real(e.value)
        if isinstance(e, Setting):
            return real(self.settings[e.name])  # type: ignore[arg-type]
        if isinstance(e, BinOp):
            a, b = self.term(e.left, env, conds), self.term(e.right, env, conds)
            if is_sym(a) or is_sym(b):
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
            if any(is_sym(a) for a in args):
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
                whole = self._whole(body)  # once per literal, not per row
                loose = rounds(lit.left, self.settings, whole) or rounds(lit.right, self.settings, whole)
                for conds, env in rows:
                    c2 = list(conds)
                    if step.assign is not None:
                        other = lit.right if isinstance(lit.left, Var) and lit.left.name == step.assign else lit.left
                        new.append((c2, {**env, step.assign: self._computed(other, env, c2, whole, relies)}))
                    else:
                        left, right = self.term(lit.left, env, c2), self.term(lit.right, env, c2)
                        f = compare(lit.op, left, right)
                        if loose:
                            f = self._loosely(lit, f, left, right, relies)
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
        if agg.func == "sum" and not self._sums_integers(agg):  # 0.1 + 0.2 is not 0.3 in floating point
            relies.add(f"flt:{agg}")
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

    def _rounded(self, e: Comparison | Expr, sort, *values) -> z3.ExprRef:
        """How the engine's rounding comes out for `e` at these exact values: unknown, but the
        same wherever the same computation meets the same values (the engine is deterministic),
        in both versions `reasoner diff` compares."""
        used = sorted({x.name for x in _settings_in(e)})
        key = f"rounding[{e}]" + "".join(f"[{n}={self.settings.get(n)}]" for n in used)
        return z3.Function(key, *([z3.RealSort()] * len(values)), sort)(*values)

    def _loosely(self, lit: Comparison, exact: z3.BoolRef, left, right, relies: set[str]) -> z3.BoolRef:
        """A comparison the engine's rounding may decide the other way: with `loose`, either
        way when its two sides are within ROUNDING of each other."""
        relies.add(f"flc:{lit}")
        scale = z3.If(left >= 0, left, -left) + z3.If(right >= 0, right, -right)
        near = z3.And(left - right <= z3.RealVal(ROUNDING) * scale, right - left <= z3.RealVal(ROUNDING) * scale)
        return z3.If(z3.And(self.loose, near), self._rounded(lit, z3.BoolSort(), left, right), exact)

    def _computed(self, e: Expr, env: dict, conds: list, whole: frozenset[str], relies: set[str]):
        """The term of a value a rule computes (an assignment, a head argument): with `loose`,
        anywhere within ROUNDING of the exact value when the engine may round it."""
        value = self.term(e, env, conds)
        if not rounds(e, self.settings, whole):
            return value
        relies.add(f"flc:{e}")
        off = self._rounded(e, z3.RealSort(), value)
        size = z3.If(value >= 0, value, -value)
        self.axioms.append(z3.If(self.loose, z3.And(off <= z3.RealVal(ROUNDING) * size,
                                                    -off <= z3.RealVal(ROUNDING) * size), off == 0))
        return value + off

    def _whole(self, body: tuple[Literal, ...]) -> frozenset[str]:
        """Variables of `body` that hold whole numbers: counts, and arguments declared integer
        (of an input, checked when read; of a derived predicate, checked by S207, which says
        when a rule puts a fraction there)."""
        out = {lit.result.name for lit in body if isinstance(lit, Aggregate) and lit.func == "count"}
        for lit in body:
            if isinstance(lit, Atom) and lit.pred in self.rs.decls:
                decl = self.rs.decls[lit.pred]
                out |= {x.name for x, arg in zip(lit.args, decl.args) if isinstance(x, Var) and arg.type == "integer"}
        return frozenset(out)

    def _sums_integers(self, agg: Aggregate) -> bool:
        """Does the sum add whole numbers only (an input argument typed integer), which floating
        point adds exactly?"""
        if not isinstance(agg.target, Var):
            return False
        places = [(a.pred, i) for a in agg.body if isinstance(a, Atom)
                  for i, x in enumerate(a.args) if isinstance(x, Var) and x.name == agg.target.name]
        return bool(places) and all(
            p in self.rs.decls and self.rs.decls[p].role == "input" and self.rs.decls[p].args[i].type == "integer"
            for p, i in places)

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
                if not z3.is_true(model.evaluate(present, model_completion=True)):
                    continue
                values: list[Value] = []
                for arg, t in zip(decl.args, args):
                    values.append(self.value(model.evaluate(t, model_completion=True), pid, arg.type == "integer"))
                facts.append(Fact(pred, tuple(values)))
        return facts

    def value(self, v, pid: str, integer: bool = False) -> Value:
        if z3.is_int_value(v):
            return self.decode_symbol(v.as_long(), pid)
        f = fraction(v)
        if f.denominator == 1:
            return int(f)
        return float(f)
