"""`reasoner.language.record` against the `dataclass(frozen=True)` it stands in for: the
same equality, hash, repr, immutability, pickling and `replace`, on the same fields."""
from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, dataclass, field, fields, replace

import pytest
from hypothesis import given, strategies as st

from reasoner.language.record import Record, record
from reasoner.language.syntax import Atom, Const, Rule, Span, Var


@dataclass(frozen=True)
class FrozenNode:
    name: str
    args: tuple
    span: Span = field(default=Span("f", 1, 1), compare=False)
    note: str | None = field(default=None, repr=False)


@record
class RecordNode(Record):
    name: str
    args: tuple
    span: Span = field(default=Span("f", 1, 1), compare=False)
    note: str | None = field(default=None, repr=False)


values = st.one_of(st.integers(), st.text(max_size=3), st.floats(allow_nan=False))
nodes = st.tuples(st.text(max_size=3), st.lists(values, max_size=3).map(tuple),
                  st.integers(0, 3), st.one_of(st.none(), st.text(max_size=2)))


@given(nodes, nodes)
def test_equality_and_hash_are_a_frozen_dataclass_s(a, b) -> None:
    def both(cls, t):
        return cls(t[0], t[1], Span("f", t[2], 1), t[3])

    fa, fb, ra, rb = both(FrozenNode, a), both(FrozenNode, b), both(RecordNode, a), both(RecordNode, b)
    assert (ra == rb) == (fa == fb)
    assert (ra != rb) == (fa != fb)
    if ra == rb:
        assert hash(ra) == hash(rb)
    assert repr(ra) == repr(fa).replace("FrozenNode", "RecordNode")


def test_a_record_cannot_be_changed_after_init() -> None:
    node = RecordNode("a", (1,))
    with pytest.raises(FrozenInstanceError):
        node.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        node.other = 1  # type: ignore[attr-defined]
    with pytest.raises(FrozenInstanceError):
        del node.name
    assert node.name == "a"


def test_other_classes_and_plain_tuples_are_never_equal() -> None:
    assert RecordNode("a", ()) != ("a", ())
    assert Var("X") != Const("X")  # a variable is not the constant of the same text
    assert Var("X") == Var("X", Span("elsewhere", 9, 9))  # spans are not compared


def test_pickle_copy_and_replace_keep_the_value() -> None:
    rule = Rule(Atom("p", (Var("X"),), Span("r", 2, 1)), (Atom("q", (Var("X"), Const(3))),), "r1", ("s",), "says")
    for again in (pickle.loads(pickle.dumps(rule)), copy.deepcopy(rule), copy.copy(rule)):
        assert again == rule and hash(again) == hash(rule) and again.head.span == Span("r", 2, 1)
    changed = replace(rule, id="r2")
    assert changed.id == "r2" and changed != rule and changed.body == rule.body
    assert [f.name for f in fields(Rule)][:3] == ["head", "body", "id"]
