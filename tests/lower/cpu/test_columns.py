"""Reductions over leading axes (column sums) run in column mode: vectorized across columns.

Every case is checked against the interpreter; the plan must use column mode (a work item
is COLUMNS consecutive columns), including ragged last blocks.
"""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.lower.cpu.codegen import COLUMNS, plan_loops
from syntonic.lower.schedule import lower_to_kernels
from tests.passes.test_semantics import assert_agrees

RNG = np.random.default_rng(11)


def _column_kernels(fn, x):
    program = lower_to_kernels(sn.jit(fn).lower(x).plan)
    return [k for k in program.kernels if plan_loops(k).columns]


CASES = [
    ("sum", lambda x: sn.sum(x, axis=0)),
    ("mean+1", lambda x: sn.mean(x, axis=0) + 1.0),
    ("max", lambda x: sn.max(x * 2.0, axis=0)),
    ("min-abs", lambda x: sn.min(sn.abs(x), axis=0, keepdims=True)),
    ("prod", lambda x: sn.prod(x * 0.01 + 1.0, axis=0)),
    ("two sums", lambda x: (sn.sum(x, axis=0), sn.sum(x * x, axis=0))),
]


@pytest.mark.parametrize("shape", [(256, 512), (7, 17), (3, 2), (5, 33)])
@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_column_reductions_match_the_interpreter(shape, name, fn):
    x = RNG.standard_normal(shape).astype(np.float32)
    assert _column_kernels(fn, x), "expected a column-mode kernel"
    got = sn.jit(fn)(x)
    want = sn.jit(fn, device="interpreter")(x)
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", ["int32", "int64", "float64", "float16"])
def test_column_reductions_of_other_dtypes(dtype):
    x = (RNG.standard_normal((9, 3, 21)) * 100).astype(dtype)
    fn = lambda x: (sn.sum(x, axis=(0, 1)), sn.max(x, axis=(0, 1)))  # noqa: E731
    assert _column_kernels(fn, x)
    got = sn.jit(fn)(x)
    want = sn.jit(fn, device="interpreter")(x)
    for g, w in zip(got, want):  # integer sums wrap identically; floats within the
        assert_agrees(g, w, f"{dtype} column reduction")  # documented tolerance


def test_column_mode_splits_columns_into_blocks():
    x = np.ones((4, 3 * COLUMNS + 5), np.float32)
    (k,) = _column_kernels(lambda x: sn.sum(x, axis=0), x)
    assert plan_loops(k).items(k.space) == 4


# ------------------------------------------------------------------ split full reductions

SPLIT_CASES = [
    ("cosine", lambda x: sn.sum(x * sn.cos(x)) / sn.sqrt(sn.sum(x * x)
                                                        * sn.sum(sn.cos(x) ** 2))),
    ("max-with-nan", lambda x: sn.max(sn.where(x > 3.5, np.float32(np.nan), x))),
    ("min", lambda x: sn.min(x)),
    ("mean", lambda x: sn.mean(x)),
    ("prod", lambda x: sn.prod(1.0 + x.astype("f64") * 1e-6)),  # numpy's f32 prod drifts
    ("int-sum-wraps", lambda x: sn.sum((x * 1e6).astype("i32"))),
    ("2d", lambda x: sn.sum(x.reshape(2, -1) ** 2)),  # 2 chunks: the first axis is short
]


@pytest.mark.parametrize("n", [1 << 16, 100_002 * 3, 1 << 20])
@pytest.mark.parametrize("name,fn", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_full_reductions_match_the_interpreter(n, name, fn):
    from syntonic.lower.cpu.codegen import split_parts

    x = RNG.standard_normal(n).astype(np.float32)
    program = lower_to_kernels(sn.jit(fn).lower(x).plan)
    assert any(split_parts(k) > 1 for k in program.kernels)
    got = sn.jit(fn)(x)
    want = sn.jit(fn, device="interpreter")(x)
    assert_agrees(np.asarray(got), np.asarray(want), name)
    again = sn.jit(fn)(x)
    np.testing.assert_array_equal(got, again)  # deterministic run to run
