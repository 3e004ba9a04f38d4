"""Every registry op, lowered to the kernel IR, runs like the reference interpreter.

One parametrized differential test over the whole registry (small graphs that contain
the op, from ``tests.strategies.op_graphs``), plus programs with special shapes: empty
axes, scalars, padding, opaque ops and copy kernels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syntonic as sn
from syntonic.ir import interpret
from syntonic.ir.registry import all_ops
from syntonic.lower.kernel_interp import run_program
from syntonic.lower.schedule import lower_to_kernels
from syntonic.passes import run_pipeline
from syntonic.passes.fusion import fuse
from tests.passes.test_semantics import assert_agrees
from tests.strategies import inputs_for, op_graphs


@pytest.mark.parametrize("name", sorted(all_ops()))
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_op_through_the_kernel_ir(name, data):
    g = data.draw(op_graphs(name))
    args = data.draw(inputs_for(g, moderate=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = interpret(g, *args)
        prog = lower_to_kernels(fuse(run_pipeline(g)[-1].graph))
        got = run_program(prog, *args)
    for i, (a, b) in enumerate(zip(got, want)):
        assert_agrees(a, b, f"{name} output {i}")


def run_both(fn, *args):
    low = fn.lower(*args)
    return run_program(low.program, *args), interpret(low.graphs["traced"], *args), low


def test_empty_reduced_axis_keeps_per_row_values():
    @sn.jit
    def f(x, y):
        return sn.sum(x, axis=1) + y

    x, y = np.zeros((3, 0), np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    got, want, _ = run_both(f, x, y)
    np.testing.assert_array_equal(got[0], want[0])


def test_scalars_and_zero_size_outputs():
    @sn.jit
    def f(x, s):
        return x * s, sn.sum(x * 0.0, axis=0)

    x, s = np.zeros((0, 2), np.float32), np.array(2.5, np.float32)
    got, want, _ = run_both(f, x, s)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_copy_kernels_for_views_returned_and_strided_reshapes():
    @sn.jit
    def f(x):
        return x.T, sn.broadcast_to(x[0], (3, 4)), x.T.reshape(-1) + 1.0

    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    got, want, low = run_both(f, x)
    assert [k.kind for k in low.kernels].count("elementwise") == len(low.kernels)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_pad_of_a_parameter_is_a_masked_load():
    from syntonic.ir import Builder, TensorType

    b = Builder("p")
    x = b.param(TensorType.parse("f32[3]"), "x")
    y = b.add("pad", [x], {"low": [1], "high": [1], "interior": [1]})
    z = b.add("mul", [y, y])
    g = b.build([z])
    prog = lower_to_kernels(fuse(run_pipeline(g)[-1].graph))
    (k,) = prog.kernels
    assert any(getattr(n, "view", None) is not None and n.view.masked for n in k.nodes)
    arg = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(run_program(prog, arg)[0], interpret(g, arg)[0])


def test_argument_checks():
    low = sn.jit(lambda x: x + 1.0).lower(sn.spec("f32[2]"))
    with pytest.raises(sn.IRError, match="takes 1 arguments"):
        run_program(low.program)
    with pytest.raises(sn.IRError, match="expected f32\\[2\\]"):
        run_program(low.program, np.zeros(3, np.float32))
