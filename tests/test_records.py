"""``syntonic.records.record`` behaves like ``dataclasses.dataclass`` where it is used."""

from __future__ import annotations

import dataclasses
from dataclasses import field

import pytest

from syntonic.records import record, replace


def _pair(**params):
    """The same class body made a dataclass and a record with `params`."""

    def body():
        class Node:
            """A node."""

            name: str
            args: tuple = ()
            attrs: dict = field(default_factory=dict, compare=False)
            note: str | None = field(default=None, repr=False)

            def first(self) -> object:
                return self.args[0] if self.args else None

        return Node

    return dataclasses.dataclass(**params)(body()), record(**params)(body())


@pytest.mark.parametrize("params", [dict(frozen=True, slots=True), dict(),
                                    dict(frozen=True, slots=True, eq=False), dict(slots=True)])
def test_record_matches_dataclass(params) -> None:
    D, R = _pair(**params)
    d1, r1 = D("a", (1, 2)), R("a", (1, 2))
    assert repr(r1) == repr(d1)
    assert r1.first() == 1 and r1.attrs == {} and r1.note is None
    assert R("a", (1, 2)).attrs is not r1.attrs  # a fresh default per instance
    assert R.__match_args__ == D.__match_args__
    assert ("__slots__" in vars(R)) == ("__slots__" in vars(D))
    for a, b in [(("a", (1, 2)), ("a", (1, 2))), (("a", (1,)), ("a", (1, 2))),
                 (("a",), ("b",))]:
        assert (D(*a) == D(*b)) == (R(*a) == R(*b))
    # attrs is compare=False: equal either way
    assert (D("a", attrs={1: 2}) == D("a")) == (R("a", attrs={1: 2}) == R("a"))
    assert (R("a") == "a") is False and R("a").__eq__("a") is NotImplemented
    if params.get("frozen"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            r1.name = "b"
        with pytest.raises(dataclasses.FrozenInstanceError):
            del r1.name
        if params.get("eq", True):
            assert hash(R("a", (1,))) == hash(R("a", (1,)))
            assert hash(R("a", (1,))) == hash(D("a", (1,)))
    elif params.get("eq", True):
        assert R.__hash__ is None and D.__hash__ is None
        r1.name = "b"
        assert r1.name == "b"
    if not params.get("eq", True):
        assert R("a") != R("a")  # identity
    with pytest.raises(TypeError):
        R()  # the required field is missing
    with pytest.raises(TypeError):
        R("a", (), {}, None, "extra")
    assert R(name="k", note="n").note == "n"


@pytest.mark.parametrize("params", [dict(frozen=True, slots=True), dict(slots=True), dict()])
def test_copy_and_pickle(params) -> None:
    import copy
    import pickle

    global Picklable

    @record(**params)
    class Picklable:
        a: int
        b: tuple = ()

    p = Picklable(1, (2, [3]))
    for q in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q == p and q is not p and type(q) is Picklable


def test_slots_reject_other_attributes() -> None:
    _, R = _pair(slots=True)
    with pytest.raises(AttributeError):
        R("a").other = 1


def test_post_init_and_replace() -> None:
    @record(frozen=True, slots=True)
    class Span:
        lo: int
        hi: int

        def __post_init__(self) -> None:
            if self.hi < self.lo:
                raise ValueError("empty span")

    s = Span(1, 3)
    assert replace(s, hi=5) == Span(1, 5) and s.hi == 3
    with pytest.raises(ValueError, match="empty span"):
        Span(3, 1)
    with pytest.raises(TypeError, match="no fields"):
        replace(s, width=2)


def test_default_before_required_field_is_an_error() -> None:
    with pytest.raises(TypeError, match="non-default field 'b' follows a default"):
        @record
        class Bad:
            a: int = 0
            b: int


def test_recursive_repr_does_not_overflow() -> None:
    @record
    class Box:
        items: list

    b = Box([])
    b.items.append(b)
    assert repr(b) == "test_recursive_repr_does_not_overflow.<locals>.Box(items=[...])"
