"""In-graph RNG: Threefry known answers, identical bits eager vs jit, distributions, Dropout."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.frontend.random import threefry2x32

# Known-answer vectors of Threefry-2x32-20 (Random123's kat_vectors).
KAT = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key,ctr,expected", KAT)
def test_threefry_known_answers(key, ctr, expected):
    x0, x1 = threefry2x32(np.array(key, np.int64), np.array([ctr[0]], np.int64),
                          np.array([ctr[1]], np.int64))
    assert (int(x0[0]), int(x1[0])) == expected


def test_same_bits_eagerly_and_jitted():
    key = sn.random.key(42)

    @sn.jit
    def draw(k):
        k1, k2 = sn.random.split(k)
        return sn.random.bits(k1, (3, 5)), sn.random.uniform(k2, (7,)), sn.random.normal(k, (4,))

    jb, ju, jn = draw(key)
    k1, k2 = sn.random.split(key)
    np.testing.assert_array_equal(jb, sn.random.bits(k1, (3, 5)))
    np.testing.assert_array_equal(ju, sn.random.uniform(k2, (7,)))
    np.testing.assert_array_equal(jn, sn.random.normal(key, (4,)))
    assert jb.min() >= 0 and jb.max() < 2**32


def test_distributions_and_independence():
    key = sn.random.key(1)
    a, b = sn.random.split(key)
    u = sn.random.uniform(a, (20000,))
    assert u.dtype == np.float32 and 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    n = sn.random.normal(b, (20000,), "f64")
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
    assert not np.array_equal(sn.random.bits(a, (8,)), sn.random.bits(b, (8,)))
    assert abs(sn.random.bernoulli(key, 0.25, (20000,)).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(sn.random.key(2**64 + 5), sn.random.key(5))


def test_dropout_in_graph():
    drop = sn.nn.Sequential(sn.nn.Linear(4, 64), sn.nn.Dropout(0.5))
    params = drop.init(seed=0)
    x = np.ones((8, 4), np.float32)
    f = sn.jit(lambda p, x, k: drop.apply(p, x, k))
    y1 = f(params, x, sn.random.key(0))
    y2 = f(params, x, sn.random.key(0))
    y3 = f(params, x, sn.random.key(1))
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    dense = drop.apply(params, x)  # no key: identity
    zeros = (y1 == 0).mean()
    assert 0.35 < zeros < 0.65
    np.testing.assert_allclose(y1[y1 != 0], 2 * dense[y1 != 0], rtol=1e-6)
    with pytest.raises(ValueError):
        sn.nn.Dropout(1.0)


def test_bad_keys_and_dtypes():
    with pytest.raises(sn.TraceError, match="i64\\[2\\]"):
        sn.random.uniform(np.zeros(3, np.int64), (2,))
    with pytest.raises(sn.DTypeError, match="float dtype"):
        sn.random.uniform(sn.random.key(0), (2,), "i32")
