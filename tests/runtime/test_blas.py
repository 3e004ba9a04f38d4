"""The runtime's GEMM (syntonic/runtime/blas.py): same products as np.matmul, row-split
over the pool deterministically, numpy's own BLAS left alone."""

from __future__ import annotations

import numpy as np
import pytest

from syntonic.runtime import blas

SHAPES = [(256, 784, 512), (256, 10, 512), (512, 256, 10), (3, 5, 7), (1, 4, 1), (70, 1, 9)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mkn", SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_matches_numpy(dtype, mkn, ta, tb):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    a, b = (a.T if ta else a), (b.T if tb else b)
    out = np.full((m, n), np.nan, dtype)
    blas.matmul(a, b, out)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, a @ b, rtol=tol, atol=tol * np.sqrt(k))
    again = np.empty_like(out)
    blas.matmul(a, b, again)
    assert again.tobytes() == out.tobytes()  # run to run: bit-identical


def test_layouts_blas_cannot_take_fall_back_to_numpy():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((40, 30)).astype(np.float32)
    a = big[::2, ::3]  # no unit stride
    b = rng.standard_normal((10, 6)).astype(np.float32)
    out = np.empty((20, 6), np.float32)
    blas.matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    iout = np.empty((3, 3), np.int32)
    blas.matmul(ints, ints.T, iout)
    np.testing.assert_array_equal(iout, ints @ ints.T)


def test_numpys_blas_thread_setting_is_untouched():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()
              if "numpy" in i["filepath"]]
    out = np.empty((64, 64), np.float32)
    blas.matmul(np.ones((64, 64), np.float32), np.ones((64, 64), np.float32), out)
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info()
             if "numpy" in i["filepath"]]
    assert before == after
    np.testing.assert_array_equal(out, 64.0)
