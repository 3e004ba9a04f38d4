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


def test_native_blocks_equal_python_blocks(monkeypatch):
    """A split GEMM runs its blocks from machine code (support library) once that is
    loaded; the blocks, so the bits, are those of the Python blocks."""
    from syntonic.runtime import cpu

    assert cpu.native_support(wait=True) is not None
    rng = np.random.default_rng(2)
    for m, k, n in ((256, 784, 512), (600, 64, 96), (40, 300, 900)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        native = np.empty((m, n), np.float32)
        blas.matmul(a, b, native)
        assert blas._native_block(blas.private_blas(), native.dtype) is not None
        with monkeypatch.context() as mp:
            mp.setattr(blas, "_native_block", lambda *_: None)
            mp.setattr(cpu, "POOL", cpu.ThreadPool(cpu.POOL.n_threads, native=False))
            python = np.empty_like(native)
            blas.matmul(a, b, python)
        assert native.tobytes() == python.tobytes()
        np.testing.assert_allclose(native, a @ b, rtol=1e-4, atol=1e-3)


def _spy_epilogues(monkeypatch) -> list[bool]:
    """Record, per GEMM step of a program, whether its epilogue ran fused (programs run
    their Python step loop here; the native step runner makes the same decisions from
    the same plan: tests/runtime/test_runner.py)."""
    from syntonic.runtime.runner import StepRunner

    monkeypatch.setattr(StepRunner, "build", staticmethod(lambda *args: None))
    fused: list[bool] = []
    real = blas.GemmStep.__call__

    def spy(self, lhs, rhs, out, epilogue=None):
        ran = real(self, lhs, rhs, out, epilogue)
        fused.append(ran)
        return ran

    monkeypatch.setattr(blas.GemmStep, "__call__", spy)
    return fused


def test_gemm_epilogue_runs_on_each_row_block(monkeypatch):
    """relu(a @ b + c) split by rows: each block applies the bias and ReLU to its own rows
    right after the GEMM; the result is that of the interpreter."""
    import syntonic as sn
    from syntonic.runtime import cpu

    assert cpu.native_support(wait=True) is not None
    rng = np.random.default_rng(3)
    a = rng.standard_normal((512, 64)).astype(np.float32)
    b = rng.standard_normal((64, 256)).astype(np.float32)
    c = rng.standard_normal(256).astype(np.float32)
    f = sn.jit(lambda a, b, c: sn.maximum(a @ b + c, 0.0), device="cpu")
    fused = _spy_epilogues(monkeypatch)
    got = f(a, b, c)
    if cpu.POOL.n_threads > 1:
        assert fused == [True]
    want = sn.jit(lambda a, b, c: sn.maximum(a @ b + c, 0.0), device="interpreter")(a, b, c)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_a_thin_k_product_wider_than_tall_splits_by_rows_for_its_epilogue(monkeypatch):
    """relu(a @ b + c) with M < N: split by rows (so the epilogue runs on each block) when
    K is thin, since the extra packing of b is then small; by columns (the epilogue after
    the whole product) when K is large."""
    import syntonic as sn
    from syntonic.runtime import cpu

    assert cpu.native_support(wait=True) is not None
    rng = np.random.default_rng(7)
    for k, expect in ((10, True), (784, False)):
        a = rng.standard_normal((256, k)).astype(np.float32)
        b = rng.standard_normal((k, 512)).astype(np.float32)
        c = rng.standard_normal(512).astype(np.float32)
        f = sn.jit(lambda a, b, c: sn.maximum(a @ b + c, 0.0), device="cpu")
        with monkeypatch.context() as mp:
            fused = _spy_epilogues(mp)
            got = f(a, b, c)
        if cpu.POOL.n_threads > 1:
            assert fused == [expect], k
        np.testing.assert_allclose(got, np.maximum(a @ b + c, 0.0), rtol=1e-4, atol=1e-3)


def test_gemm_epilogue_that_writes_an_operand_runs_after_the_whole_gemm():
    """Each row block runs the epilogue on exactly its rows, unless the epilogue writes
    memory the GEMM reads (then every block must finish first: the caller runs it)."""
    from syntonic.runtime import cpu

    assert cpu.native_support(wait=True) is not None
    rng = np.random.default_rng(4)
    a = rng.standard_normal((384, 96)).astype(np.float32)
    b = rng.standard_normal((96, 128)).astype(np.float32)
    out = np.empty((384, 128), np.float32)
    rows: list[tuple[int, int]] = []
    kernel = cpu._KERNEL_PROTO(lambda table, lo, hi: rows.append((lo, hi)))
    elsewhere = np.empty(10, np.float32)
    ran = blas.matmul(a, b, out, (kernel, 0, 3, [elsewhere]))  # 3 work items per row
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-3)
    if cpu.POOL.n_threads > 1:
        assert ran
        assert sorted(rows) == [(3 * lo, 3 * hi) for lo, hi in cpu.POOL.chunks(384, 32)]
    rows.clear()
    for written in ([b], [a[10:20]], [b.T]):  # writes an operand: not run by the GEMM
        assert not blas.matmul(a, b, out, (kernel, 0, 3, written))
        assert rows == []


def test_donated_step_with_gemm_epilogues_matches_numpy():
    """w - 0.1 * (x @ w) with w donated, repeatedly: outputs come from the memory of
    earlier donated arrays, never from an operand of the running GEMM."""
    import syntonic as sn

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((384, 384)) / 20).astype(np.float32)
    w = rng.standard_normal((384, 384)).astype(np.float32)
    f = sn.jit(lambda w, x: w - 0.1 * (x @ w), donate_argnums=(0,), device="cpu")
    want = w.astype(np.float64)
    for _ in range(6):
        w = f(w, x)
        want = want - 0.1 * (x @ want)
        np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-4)


def test_a_gemm_step_matches_matmul_and_follows_new_layouts():
    """GemmStep decides once per layout; a call with other shapes or strides decides
    again (and never reuses a stale descriptor)."""
    from syntonic.runtime import cpu

    assert cpu.native_support(wait=True) is not None
    rng = np.random.default_rng(6)
    gemm = blas.GemmStep()
    for m, k, n, ta in ((256, 128, 512, False), (512, 64, 256, True), (256, 128, 512, False),
                        (3, 4, 5, False)):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        a = a.T if ta else a
        b = rng.standard_normal((k, n)).astype(np.float32)
        got, want = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        gemm(a, b, got)
        blas.matmul(a, b, want)
        assert got.tobytes() == want.tobytes()
