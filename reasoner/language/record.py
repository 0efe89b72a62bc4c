"""`record`: an immutable value class (the syntax tree's nodes, spans, the lowered plan),
with the meaning of `dataclass(frozen=True)` at a fraction of its cost at import.

Why not `dataclass(frozen=True)` itself: on Python 3.11 it compiles six functions per
class with `exec` when the module is imported (`__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`), about 0.5 ms a class; the syntax tree and the
plan are some thirty classes that every command imports, which was a tenth of a
one-patient `reasoner query` (issue 21). A record lets `dataclass` compile only its
`__init__` and takes the other five from `Record`, written once here: equality and hash
over the fields compared (`field(compare=False)` is honoured, as are `repr=False` and
`hash=`), the same `repr`, and no assignment or deletion after `__init__` (raising
`dataclasses.FrozenInstanceError`, as a frozen dataclass does).

`dataclasses.fields`, `replace`, `asdict`, pattern matching and pickling work as on any
dataclass. Limits: a record cannot define `__post_init__` assignments (it is frozen
from its first assignment of each field) and does not support `order=True`.
"""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from operator import attrgetter
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Record:
    """The shared methods of every `record` class."""

    __slots__ = ()
    _compared: Callable[[Any], Any]  # the compared fields' values, as a tuple
    _hashed: Callable[[Any], Any]
    _shown: tuple[str, ...]

    def __eq__(self, other: object) -> Any:
        if other.__class__ is self.__class__:
            return self._compared(self) == self._compared(other)  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._hashed(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{self.__class__.__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        # __init__ assigns each field once; anything after that is a mutation. Straight
        # into __dict__: every node built (a fact read, a rule parsed) passes here
        fields_set = self.__dict__
        if name in fields_set or name not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        fields_set[name] = value

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getter(names: list[str]) -> Callable[[Any], tuple]:
    if not names:
        return lambda _: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)  # several names: a tuple already


def record(cls: type[T]) -> type[T]:
    """Make `cls` (a subclass of `Record`, fields annotated as for a dataclass) an
    immutable value class: `dataclass(frozen=True)`'s meaning, one compiled function."""
    cls = dataclass(eq=False, repr=False)(cls)
    compared = [f.name for f in fields(cls) if f.compare]  # type: ignore[arg-type]
    cls._compared = staticmethod(_getter(compared))  # type: ignore[attr-defined]
    cls._hashed = staticmethod(_getter([f.name for f in fields(cls)  # type: ignore[arg-type,attr-defined]
                                        if (f.compare if f.hash is None else f.hash)]))
    cls._shown = tuple(f.name for f in fields(cls) if f.repr)  # type: ignore[arg-type,attr-defined]
    return cls
