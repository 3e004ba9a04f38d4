"""float -> int casts at the edges of the integer range, on the interpreter and natively.

trunc(x) in [-2^(b-1), 2^(b-1)) converts; NaN, +-inf and everything outside give 0.
"""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn


def _edges(src: type, bits: int) -> np.ndarray:
    lo = -(2.0 ** (bits - 1))
    with np.errstate(all="ignore"):
        vals = [lo, -lo, lo - 0.5, lo - 1.0, lo - 1024.0, lo - 4096.0, -lo - 0.5,
                -lo - 1.0, -lo - 256.0, -lo - 2048.0, -lo + 4096.0, np.nextafter(lo, 0),
                np.nextafter(-lo, 0), 0.0, -0.0, -0.7, 0.7, np.inf, -np.inf, np.nan]
        return np.array(vals, np.float64).astype(src)


@pytest.mark.parametrize("src", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("dst,bits", [("i32", 32), ("i64", 64)])
def test_float_to_int_edges(src, dst, bits):
    x = _edges(src, bits)
    want = []
    for v in x.astype(np.float64):
        t = np.trunc(v) if np.isfinite(v) else None
        ok = t is not None and -(2.0 ** (bits - 1)) <= t < 2.0 ** (bits - 1)
        want.append(int(t) if ok else 0)
    want = np.array(want, np.int64)
    ref = sn.jit(lambda a: a.astype(dst), device="interpreter")(x)
    got = sn.jit(lambda a: a.astype(dst))(x)
    np.testing.assert_array_equal(ref.astype(np.int64), want)
    np.testing.assert_array_equal(got, ref)
    if src is not np.float16:
        assert ref[0] == np.iinfo(np.dtype(dst.replace("i", "int"))).min  # -2^(b-1) converts
