"""Multi-phase row kernels keep costly elementwise values in a row cache instead of
recomputing them in a later phase (codegen.CACHE_MIN_OPS)."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.lower.cpu.codegen import CACHE_MAX_BYTES, _KernelEmitter
from syntonic.lower.kernel import Apply
from syntonic.lower.schedule import lower_to_kernels
from tests.passes.test_semantics import assert_agrees

RNG = np.random.default_rng(5)


def softish(x):
    """Three phases: a costly y, its row sum, a centred sum of squares, then y scaled."""
    y = sn.exp(sn.tanh(x * 0.5 + 0.25)) * x - sn.sqrt(sn.abs(x) + 1.0)
    m = sn.mean(y, axis=-1, keepdims=True)
    v = sn.mean((y - m) ** 2, axis=-1, keepdims=True)
    return (y - m) / sn.sqrt(v + 1e-6), sn.sum(y * y, axis=-1)


def _plan(fn, x):
    program = lower_to_kernels(sn.jit(fn).lower(x).plan)
    (k,) = [k for k in program.kernels if len(k.phases) >= 2]
    return k, _KernelEmitter(None, k, "t_k0", None).cache_plan  # planning needs no module


def test_the_costly_value_is_cached_and_cheap_ones_are_recomputed():
    k, plan = _plan(softish, np.zeros((8, 248), np.float32))
    ops = {k.nodes[v].op for v in plan}
    assert plan and all(isinstance(k.nodes[v], Apply) for v in plan)
    assert ops <= {"sub", "mul"}  # y itself (a sub of two chains), not its parts
    assert set(plan.values()) == {0}  # stored by the first phase
    _, none = _plan(lambda x: (x - sn.mean(x, axis=-1, keepdims=True)) * 2.0,
                    np.zeros((8, 248), np.float32))
    assert none == {}  # x - mean is one op: recomputing is cheaper than a store and load


@pytest.mark.parametrize("shape", [(64, 248), (3, 7), (2, 1), (4, CACHE_MAX_BYTES // 4 + 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cached_rows_match_the_interpreter(shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    got = sn.jit(softish, device="cpu")(x)
    want = sn.jit(softish, device="interpreter")(x)
    for g, w in zip(got, want):
        assert_agrees(g, w, f"softish {shape} {dtype.__name__}")
