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
