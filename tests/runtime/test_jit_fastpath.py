"""The hot call path of ``sn.jit``: one native call checks the whole signature.

After a call, a jitted function remembers that signature's native entry; the next call
allocates the output and calls the entry, which accepts only exactly matching arrays.
Everything else (other shapes/dtypes, non-arrays, keywords, nested traces) must still take
the general path and give the same results as before.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import syntonic as sn  # noqa: E402


def _f(x):
    return sn.tanh(x * 0.5 + 0.1) * x - 1.0


def _want(x):
    return np.tanh(x * 0.5 + 0.1) * x - 1.0


def test_hot_path_is_used_and_exact() -> None:
    f = sn.jit(_f, device="cpu")
    x = np.linspace(-3, 3, 248, dtype=np.float32)
    first = f(x)
    assert f._hot is not None
    again = f(x)
    assert again is not first and again.dtype == np.float32 and again.shape == (248,)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(again, _want(x), rtol=1e-5, atol=1e-6)


def test_other_signatures_and_arguments_take_the_general_path() -> None:
    f = sn.jit(_f, device="cpu")
    x = np.linspace(-3, 3, 248, dtype=np.float32)
    f(x)
    for arg in (np.linspace(-3, 3, 100, dtype=np.float32),  # shape
                np.linspace(-3, 3, 248),  # dtype
                np.linspace(-3, 3, 496, dtype=np.float32)[::2],  # strided
                np.linspace(-3, 3, 248, dtype=np.float32).reshape(8, 31),  # rank
                np.float32(0.5)):  # not an ndarray
        got = f(arg)
        want = _want(np.asarray(arg, got.dtype))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f(x=x), _want(x), rtol=1e-5, atol=1e-6)  # keywords
    with pytest.raises(sn.SyntonicError):
        f(x, x)  # wrong argument count reaches the binder and its error
    assert f.cache_size == 5


def test_nested_call_in_a_trace_still_inlines() -> None:
    inner = sn.jit(_f, device="cpu")
    x = np.linspace(-1, 1, 248, dtype=np.float32)
    inner(x)  # hot now

    @sn.jit(device="cpu")
    def outer(y):
        return inner(y) + inner(x)  # x: a concrete array inside the trace

    g = outer.trace(sn.spec("f32[248]"))
    assert g.text().count("tanh") == 2  # both calls inlined, none run natively
    np.testing.assert_allclose(outer(x), 2 * _want(x), rtol=1e-5, atol=1e-6)


def test_multi_output_and_donating_functions_have_no_hot_path() -> None:
    two = sn.jit(lambda x: (x + 1.0, x * 2.0), device="cpu")
    x = np.ones(8, np.float32)
    a, b = two(x)
    a, b = two(x)
    assert two._hot is None and a[0] == 2.0 and b[0] == 2.0


@pytest.mark.parametrize("first", ["trace", "lower", "explain"])
def test_entry_made_before_any_call_is_found_by_the_cheap_key(first, monkeypatch) -> None:
    # a multi-output function has no hot path: each call looks its entry up by the cheap
    # key of the arrays; an entry that trace/lower/explain made must be found that way too
    f = sn.jit(lambda x: (x * 2.0, x + 1.0), device="cpu")
    x = np.ones((4, 248), np.float32)
    getattr(f, first)(x)
    f(x)
    calls = []
    real = f._signature
    monkeypatch.setattr(f, "_signature", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, b = f(x)
    assert calls == []  # the signature was not bound again
    np.testing.assert_array_equal(a, x * 2.0)
    np.testing.assert_array_equal(b, x + 1.0)


def test_multi_output_results_keep_their_shapes_and_structure() -> None:
    # outputs written to slots of another shape (a keepdims sum returned squeezed) come
    # back as views of the right shape; a flat tuple is returned as is, nested trees
    # are rebuilt
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    flat = sn.jit(lambda x: (x * 2.0, sn.squeeze(sn.sum(x, axis=1, keepdims=True), 1)),
                  device="cpu")
    nested = sn.jit(lambda x: {"a": x + 1.0, "b": [sn.sum(x, axis=0)]}, device="cpu")
    for _ in range(2):  # the first call compiles, the second takes the fast path
        a, s = flat(x)
        assert type(flat(x)) is tuple and s.shape == (3,)
        np.testing.assert_array_equal(a, x * 2.0)
        np.testing.assert_array_equal(s, x.sum(axis=1))
        tree = nested(x)
        assert set(tree) == {"a", "b"} and isinstance(tree["b"], list)
        np.testing.assert_array_equal(tree["b"][0], x.sum(axis=0))
