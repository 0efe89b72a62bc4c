"""The solver's vocabulary, shared by the encoder (smt_encode.py) and the prover (smt.py):
the bounds and limits of the encoding (DEFAULT_BOUND, ...), what it cannot cover
(NotCovered) or covers only inexactly (`inexact`), helpers that build z3 formulas and
simplify as they go (and_, or_, not_, eq, compare), and the shapes an encoding is made of:
a relation as guarded candidates (Rel, Cand), an input predicate as fact slots (InputEnc),
a rule as guarded rows (RuleEnc).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import z3

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
    computed = [r[4:] for r in sorted(relies) if r.startswith("flt:")]
    if computed:
        out.append(f"{'; '.join(computed)}: computed in floating point by the engine and exactly by the solver "
                   "(6 * 0.1 is 0.6000000000000001 in one, 0.6 in the other), so \"none found\" is no proof")
    return out


def rounding_note(computed: list[str]) -> str:
    """Why a check satisfiable only by the engine's rounding is neither proved nor witnessed."""
    return (f"{'; '.join(computed)}: computed in floating point by the engine, which near a boundary may "
            "come out either way (6 * 0.1 is 0.6000000000000001, not 0.6), so the solver has neither a proof "
            "nor an exact witness")


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


def is_sym(t) -> bool:
    return z3.is_int(t)


def is_value(t) -> bool:
    return z3.is_int_value(t) or z3.is_rational_value(t)


def eq(a, b) -> z3.BoolRef:
    """Equality of two terms; a symbol never equals a number (docs/language.md)."""
    if is_sym(a) != is_sym(b):
        return FALSE
    if a.get_id() == b.get_id():
        return TRUE
    if is_value(a) and is_value(b):
        return FALSE  # values are hash-consed: two ids are two values
    return a == b


def compare(op: str, a, b) -> z3.BoolRef:
    if op == "=":
        return eq(a, b)
    if op == "!=":
        return not_(eq(a, b))
    if is_sym(a) or is_sym(b):
        return FALSE  # <, <=, >, >= with a string on either side are false
    if is_value(a) and is_value(b):
        x, y = fraction(a), fraction(b)
        return z3.BoolVal({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def fraction(v) -> Fraction:
    if z3.is_int_value(v):
        return Fraction(v.as_long())
    return Fraction(v.numerator_as_long(), v.denominator_as_long())


def real(value: int | float):
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


def merge(cands: list[Cand]) -> list[Cand]:
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
