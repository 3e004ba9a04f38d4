"""``x ** 2`` lowers to one multiply on the CPU: the correctly rounded square."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_square_is_exact_and_keeps_special_values(dtype):
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30, -1e30, 1e-30, 3.5, -1.1]
    rng = np.random.default_rng(5)
    x = np.concatenate([np.array(specials), rng.standard_normal(5000) * 1e10]).astype(dtype)
    f = sn.jit(lambda x: x ** 2)
    got = f(x)
    with np.errstate(over="ignore", under="ignore"):
        want = x * x  # the correctly rounded square
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[:10]).any()
    ref = sn.jit(lambda x: x ** 2, device="interpreter")(x)  # numpy's pow: within 1 ulp
    np.testing.assert_allclose(got, ref, rtol=2 * np.finfo(dtype).eps)
    assert "fmul" in f.lower(x).text("llvm")
