"""Views: random chains of layout ops read exactly what the registry's reference rules give."""

from __future__ import annotations

import math
from itertools import islice

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir.registry import get_op
from syntonic.lower.view import VIEW_RULES, Dim, View, contiguous_strides


@st.composite
def view_op(draw, shape: tuple[int, ...]) -> tuple[str, dict]:
    kind = draw(st.sampled_from(sorted(VIEW_RULES)))
    rank = len(shape)
    if kind == "broadcast":
        lead = tuple(draw(st.lists(st.integers(0, 3), max_size=1)))
        return kind, {"shape": lead + tuple(draw(st.integers(0, 3)) if d == 1 else d
                                            for d in shape)}
    if kind == "transpose":
        return kind, {"perm": tuple(draw(st.permutations(range(rank))))}
    if kind == "slice":
        start, stop, step = [], [], []
        for d in shape:
            b = draw(st.integers(0, d))
            start.append(b)
            stop.append(draw(st.integers(b, d)))
            step.append(draw(st.integers(1, 3)))
        return kind, {"start": start, "stop": stop, "step": step}
    if kind == "pad":
        amounts = st.lists(st.integers(0, 2), min_size=rank, max_size=rank)
        return kind, {"low": draw(amounts), "high": draw(amounts), "interior": draw(amounts)}
    n = math.prod(shape)
    if n == 0:
        return kind, {"shape": (0, draw(st.integers(0, 3)))}
    dims, rem = [], n
    while rem > 1 and len(dims) < 3:
        d = draw(st.sampled_from([k for k in range(1, rem + 1) if rem % k == 0]))
        dims.append(d)
        rem //= d
    if rem > 1:
        dims.append(rem)
    dims += [1] * draw(st.integers(0, 1))
    return kind, {"shape": tuple(draw(st.permutations(dims)))}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_view_chains_match_the_reference_rules(data):
    shape = tuple(data.draw(st.lists(st.integers(0, 4), max_size=3)))
    array = np.arange(1, math.prod(shape) + 1, dtype=np.float64).reshape(shape)
    flat = array.reshape(-1)
    view = View.contiguous(shape)
    for _ in range(data.draw(st.integers(1, 5))):
        kind, attrs = data.draw(view_op(array.shape))
        array = get_op(kind).reference(array, **attrs)
        new = view.apply(kind, attrs)
        if new is None:  # not a view: the op must be a reshape that numpy cannot do in place
            assert kind == "reshape"
            flat = np.ascontiguousarray(array).reshape(-1)
            view = View.contiguous(array.shape)
            continue
        view = new
        assert view.shape == array.shape
        np.testing.assert_array_equal(view.gather(flat), array)
        for index in islice(np.ndindex(*array.shape), 12):
            e = view.element(index)
            assert (0.0 if e is None else flat[e]) == array[index]


def test_reshape_is_refused_only_when_strides_forbid_it():
    t = View.contiguous((3, 4)).transpose((1, 0))
    assert t.reshape((12,)) is None  # a transposed matrix is not flat in memory
    assert t.reshape((2, 2, 3)) is not None  # splitting one axis is fine
    b = View.contiguous((4,)).broadcast((3, 4))
    assert b.reshape((3, 2, 2)).strides == (0, 2, 1)


def test_pad_is_a_masked_view():
    v = View.contiguous((3,)).pad((1,), (2,), (1,))
    assert v.shape == (8,) and v.masked
    np.testing.assert_array_equal(v.gather(np.array([7.0, 8.0, 9.0])),
                                  [0, 7, 0, 8, 0, 9, 0, 0])
    assert str(v) == "[(i0-1)/2 if 1<=i0<6 && (i0-1)%2==0]"
    assert View.contiguous((4, 3)).transpose((1, 0)).strides == (1, 3)


def test_text_and_levels_of_views():
    row = View.contiguous((4,)).reshape((4, 1)).broadcast((4, 8))
    assert str(row) == "[i0]"
    assert str(View.contiguous((2, 3)).slice((1, 0), (2, 3), (1, 2))) == "[2*i1 + 3]"
    assert row.depends_on(0) and not row.depends_on(1)
    assert contiguous_strides((2, 3, 4)) == (12, 4, 1)
    assert View.contiguous((2, 3)).is_contiguous and not row.is_contiguous
    assert Dim(4, 1, 0, 0).empty and not Dim(4, 1).masked
