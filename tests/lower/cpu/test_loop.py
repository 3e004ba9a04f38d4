"""``while`` loops compile to a native loop on the CPU (no Python per iteration).

Each case runs the jitted function natively and through the reference interpreter, and
checks that the compiled plan has no opaque step (so the registry's reference rule of
``while`` is never called: the test replaces it with one that fails).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re

import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import registry
from syntonic.ir.registry import get_op
from syntonic.lower.kernel_interp import run_program

pytest.importorskip("llvmlite")

RNG = np.random.default_rng(7)


@contextlib.contextmanager
def no_reference_loop():
    """Fail if any ``while`` runs through its reference rule (i.e. in Python)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the while loop ran through its reference rule")

    original = get_op("while")
    registry._REGISTRY["while"] = dataclasses.replace(original, reference=refuse)
    try:
        yield
    finally:
        registry._REGISTRY["while"] = original


def _check(fn, *args, rtol=1e-12):
    native = sn.jit(fn)
    want = sn.jit(fn, device="interpreter")(*args)
    with no_reference_loop():
        got = native(*args)
    lowered = native.lower(*args)
    assert "native loop" in lowered.text("kernels")
    for g, w in zip(np.atleast_1d(got) if not isinstance(got, tuple) else got,
                    np.atleast_1d(want) if not isinstance(want, tuple) else want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol)
    return got


def test_counting_loop():
    def f(x):
        return sn.while_loop(lambda s: s[1] < 5, lambda s: (s[0] * 1.5 + 1.0, s[1] + 1), (x, 0))

    # f32: the CPU fuses x*1.5 + 1 into one FMA (one rounding), the interpreter rounds twice
    x, n = _check(f, RNG.standard_normal(37).astype(np.float32), rtol=1e-6)
    assert int(n) == 5


def test_zero_trip_loop_returns_the_initial_values():
    def f(x):
        return sn.while_loop(lambda s: s[1] > 5, lambda s: (s[0] * 2.0, s[1] + 1), (x, 0))

    x = RNG.standard_normal((3, 4))
    got, n = _check(f, x)
    np.testing.assert_array_equal(got, x)
    assert int(n) == 0


def test_swapped_passed_through_duplicated_and_constant_carried_values():
    def f(a, b):
        def body(s):
            x, y, z, w, i = s
            # y <- x (pass-through of another carried value), x <- y (swap),
            # z <- computed, w <- the same computed value (duplicate), i+1
            t = z * 0.5 + x
            return y, x, t, t, i + 1

        return sn.while_loop(lambda s: s[4] < 7, body, (a, b, a + b, b, 0))

    a = RNG.standard_normal(9)
    b = RNG.standard_normal(9)
    _check(f, a, b)


def test_loop_invariant_operands_and_constant_results():
    w = RNG.standard_normal((6, 6))

    def f(x, k):
        def body(s):
            v, i, c = s
            return np.tanh(v * k + 0.1), i + 1, sn.zeros((2,), "f64")

        v, i, c = sn.while_loop(lambda s: s[1] < 4, body, (x, 0, sn.ones((2,), "f64")))
        return v, i, c

    _check(f, w, np.float64(0.7))


def test_data_dependent_loop_with_reductions():
    def f(x):
        def cond(s):
            return sn.sum(s * s) > 1.0

        return sn.while_loop(cond, lambda s: s * 0.9, x)

    _check(f, RNG.standard_normal((8, 31)))


def test_nested_loops():
    def f(x):
        def outer_body(s):
            v, i = s
            inner = sn.while_loop(lambda t: t[1] < i + 1, lambda t: (t[0] + 1.0, t[1] + 1),
                                  (v, 0))
            return inner[0] * 0.5, i + 1

        return sn.while_loop(lambda s: s[1] < 3, outer_body, (x, 0))

    _check(f, RNG.standard_normal(5))


def test_bool_and_int_carried_values():
    def f(x):
        def body(s):
            v, active, n = s
            nxt = v * 0.5
            keep = active & (sn.abs(nxt) > 0.1)
            return sn.where(keep, nxt, v), keep, n + keep.astype("i32")

        return sn.while_loop(lambda s: sn.any(s[1]), body,
                             (x, sn.ones(x.shape, "bool"), sn.zeros(x.shape, "i32")))

    _check(f, RNG.standard_normal(64) * 10)


def test_loop_with_matmul_body_falls_back_and_stays_correct():
    w = RNG.standard_normal((4, 4)) * 0.3

    def f(x):
        return sn.while_loop(lambda s: s[1] < 3, lambda s: (s[0] @ w, s[1] + 1), (x, 0))

    x = RNG.standard_normal((2, 4))
    got = sn.jit(f)(x)
    want = sn.jit(f, device="interpreter")(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    assert "native loop" in sn.jit(f).lower(x).text("kernels")


def test_kernel_interpreter_runs_the_loop_sub_programs():
    def f(x):
        return sn.while_loop(lambda s: s[1] < 4, lambda s: (s[0] * 2.0 - 1.0, s[1] + 1), (x, 0))

    x = RNG.standard_normal(11)
    prog = sn.jit(f).lower(x)
    from syntonic.lower.schedule import lower_to_kernels

    program = lower_to_kernels(prog.plan)
    (k,) = program.kernels
    assert k.kind == "loop" and k.loop is not None and k.loop.carried == 2
    got = run_program(program, x)
    want = sn.jit(f, device="interpreter")(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    assert int(got[1]) == 4


def test_evolve_runs_natively_and_matches_the_interpreter():
    x = RNG.standard_normal((100, 248))
    for depth in (0, 1, 2, 13):
        f = sn.jit(lambda x, d=depth: sn.evolve(x, max_recursion=d, threshold=0.99))
        want = sn.jit(lambda x, d=depth: sn.evolve(x, max_recursion=d, threshold=0.99),
                      device="interpreter")(x)
        with no_reference_loop():
            got = f(x)
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ row-local loops


def _loop_kernel(fn, *args):
    from syntonic.lower.schedule import lower_to_kernels

    program = lower_to_kernels(sn.jit(fn).lower(*args).plan)
    (k,) = [k for k in program.kernels if k.loop is not None]
    return program, k


def _halving(x, w, target):
    """Per row: halve (towards a shared profile w) until the row's energy is small."""
    def body(s):
        v, active, n = s
        nxt = v * 0.5 + w * 0.01 + target * 0.001
        keep = active & (sn.sum(nxt * nxt, axis=1) > 1.0)
        upd = active[:, None]
        return sn.where(upd, nxt, v), keep, n + active.astype("i32")

    rows = x.shape[0]
    return sn.while_loop(lambda s: sn.any(s[1]), body,
                         (x, sn.ones((rows,), "bool"), sn.zeros((rows,), "i32")))


@pytest.mark.parametrize("rows", [2, 64, 131, 300])
def test_row_local_loop_runs_in_blocks_and_matches(rows):
    x = RNG.standard_normal((rows, 40)) * np.geomspace(0.5, 1000, rows)[:, None]
    w = RNG.standard_normal(40)
    target = RNG.standard_normal((rows, 40))
    got = _check(_halving, x, w, target)
    assert len(set(np.asarray(got[2]).tolist())) > 1  # rows stopped at different counts
    program, k = _loop_kernel(_halving, x, w, target)
    rb = k.loop.row_blocks
    assert rb is not None and rb.rows == rows
    assert rb.row_params[:3] == (True, True, True)
    # the kernel interpreter runs the block programs: same answer
    from syntonic.lower.kernel_interp import run_program as run_kernels

    ref = sn.jit(_halving, device="interpreter")(x, w, target)
    for a, b in zip(run_kernels(program, x, w, target), ref):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_row_local_evolve_with_a_tail_block():
    # rows of 24: several rows per block (see ROW_BLOCK_BYTES); 131 rows: blocks + a tail
    x = RNG.standard_normal((131, 24)).astype(np.float32)
    f = lambda x: sn.evolve(x, max_recursion=13, threshold=0.99)  # noqa: E731
    _, k = _loop_kernel(f, x)
    rb = k.loop.row_blocks
    assert rb is not None and rb.tail_body is not None and rb.rows % rb.block
    want = sn.jit(f, device="interpreter")(x)
    with no_reference_loop():
        got = sn.jit(f)(x)
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6)


def test_explain_says_whether_a_loop_is_row_local_and_why_not():
    x = np.zeros((64, 248), np.float32)
    text = sn.jit(lambda x: sn.evolve(x)).explain(x).text(times=False)
    assert "row-local: each row runs the whole loop on its own" in text  # ~1 KiB rows
    assert re.search(r"body k0_\w+: reduce over \[64,248\]", text)  # the one body kernel
    assert "body k1" not in text

    def leaky(x):  # the body changes rows whose flag is already false
        def body(s):
            v, active = s
            nxt = v * 0.5
            return nxt, active & (sn.sum(nxt * nxt, axis=1) > 1.0)

        return sn.while_loop(lambda s: sn.any(s[1]), body,
                             (x, sn.ones((x.shape[0],), "bool")))

    text = sn.jit(leaky).explain(RNG.standard_normal((8, 3))).text(times=False)
    assert "not row-local: carried value 0" in text and "test_loop.py" in text
    _check(leaky, RNG.standard_normal((8, 3)) * 10)

    def mixing(x):  # rows depend on each other through the mean over rows
        def body(s):
            v, active, n = s
            nxt = v - sn.mean(v, axis=0) * 0.5
            keep = active & (sn.sum(nxt, axis=1) > 1.0) & (n < 5)
            return sn.where(active[:, None], nxt, v), keep, n + active.astype("i32")

        rows = x.shape[0]
        return sn.while_loop(lambda s: sn.any(s[1]), body,
                             (x, sn.ones((rows,), "bool"), sn.zeros((rows,), "i32")))

    text = sn.jit(mixing).explain(RNG.standard_normal((8, 3))).text(times=False)
    assert "not row-local: mean" in text and "reduces across rows" in text
    _check(mixing, RNG.standard_normal((8, 3)) * 10)


@pytest.mark.parametrize("shape,max_recursion,threshold", [
    ((37, 24), 13, 0.999), ((64, 248), 2, 0.9999), ((5, 7), 13, 0.99)])
def test_row_local_evolve_row_by_row_on_many_random_batches(shape, max_recursion, threshold):
    from syntonic.ir import resonant as R

    def f(x):
        return sn.evolve(x, max_recursion=max_recursion, threshold=threshold)

    native = sn.jit(f)
    ref = sn.jit(f, device="interpreter")
    _, k = _loop_kernel(f, np.zeros(shape))
    assert k.loop.row_blocks is not None
    seen_zero = seen_max = seen_top = False
    for batch in range(34):
        rng = np.random.default_rng(batch)
        x = rng.standard_normal(shape) * rng.uniform(0.01, 100, (shape[0], 1))
        x[rng.integers(shape[0])] = 0.0  # all-zero row: syntony 0, never improves
        x[rng.integers(shape[0])] = np.sqrt(R.golden_weights(shape[1]))  # syntony 1: depth 0
        with no_reference_loop():
            got = native(x)
        want = ref(x)
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-15)
        depth = np.asarray(got[2])
        seen_zero |= bool((depth == 0).any())
        seen_max |= bool((depth == max_recursion).any())
        seen_top |= bool(((depth > 0) & (depth < max_recursion)).any())
    assert seen_zero and (seen_max if max_recursion == 2 else seen_top)


def test_row_blocks_prefetch_the_next_rows():
    # a block of a row-local loop prefetches the next block's carried rows (inputs, and
    # its output rows for writing) so that one-row blocks do not wait for memory
    x = RNG.standard_normal((64, 248)).astype(np.float32)
    f = sn.jit(lambda x: sn.evolve(x, max_recursion=13, threshold=0.99), device="cpu")
    llvm_ir = f.lower(x).text("llvm")
    assert re.search(r"call void @llvm\.prefetch\.p0\(ptr [^,]+, i32 0, i32 3, i32 1\)", llvm_ir)
    assert re.search(r"call void @llvm\.prefetch\.p0\(ptr [^,]+, i32 1, i32 3, i32 1\)", llvm_ir)
    want = sn.jit(lambda x: sn.evolve(x, max_recursion=13, threshold=0.99),
                  device="interpreter")(x)
    got = f(x)
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6)


def test_row_blocks_too_big_for_a_thread_stack_run_as_one_loop(monkeypatch):
    # rows of hundreds of thousands of elements: a block's temporaries would not fit on
    # a pool thread's stack (rows of millions crashed), so the CPU runs the whole loop
    from syntonic.lower import kernel

    x = RNG.standard_normal((2, 300_000)).astype(np.float32)
    f = sn.jit(lambda x: sn.evolve(x, max_recursion=2, threshold=0.99), device="cpu")
    _, k = _loop_kernel(f, x)
    assert k.loop.row_blocks is not None and kernel.cpu_row_blocks(k.loop) is None
    assert "exceed a CPU thread's stack budget" in f.explain(x).text(times=False)
    got = f(x)
    want = sn.jit(lambda x: sn.evolve(x, max_recursion=2, threshold=0.99),
                  device="interpreter")(x)
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    # the same small loop, with the budget lowered, gives the block-by-block result
    y = RNG.standard_normal((37, 24))
    g = sn.jit(lambda x: sn.evolve(x, max_recursion=13, threshold=0.999), device="cpu")
    blocked = g(y)
    monkeypatch.setattr(kernel, "BLOCK_STACK_LIMIT", 0)
    whole = sn.jit(lambda x: sn.evolve(x, max_recursion=13, threshold=0.999),
                   device="cpu")(y)
    for a, b in zip(blocked, whole):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
