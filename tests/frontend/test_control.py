"""sn.while_loop, sn.cond and sn.evolve: IR, semantics, closures, errors, gradients."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import resonant as R

RNG = np.random.default_rng(11)


def test_while_loop_pytree_carry_and_closure():
    @sn.jit
    def f(x, limit):
        scale = x.max() * 0.0 + 2.0  # a traced value the body closes over

        def body(c):
            return {"x": c["x"] * scale, "i": c["i"] + 1}

        out = sn.while_loop(lambda c: c["i"] < limit, body, {"x": x, "i": 0})
        return out["x"], out["i"]

    x = RNG.standard_normal(4).astype(np.float32)
    y, i = f(x, 3)
    np.testing.assert_allclose(y, x * 8, rtol=1e-6)
    assert int(i) == 3 and y.dtype == np.float32
    text = str(f.trace(x, 3))
    assert "= while" in text and "cond(" in text and "body(" in text
    assert sn.ir.parse(text).text() == text


def test_while_loop_zero_iterations_and_eager():
    assert float(sn.while_loop(lambda c: c < 0.0, lambda c: c + 1.0, 5.0)) == 5.0
    assert float(sn.while_loop(lambda c: c < 10.0, lambda c: c + 3.0, 1.0)) == 10.0


def test_cond_branches_closures_and_python_bool():
    @sn.jit
    def f(x, k):
        return sn.cond(x.sum() > 0, lambda v: v * k, lambda v: -v, x)

    x = np.array([1.0, 2.0], np.float32)
    np.testing.assert_allclose(f(x, 3.0), x * 3)
    np.testing.assert_allclose(f(-x, 3.0), x)
    assert sn.cond(True, lambda: 1, lambda: 2) == 1


def test_control_flow_errors_name_the_user_line():
    x = np.ones(3, np.float32)
    with pytest.raises(sn.DTypeError, match=r"cond_fn must return one bool\[\]") as info:
        sn.jit(lambda x: sn.while_loop(lambda c: c < 3.0, lambda c: c + 1.0, x))(x)
    assert "test_control.py:" in str(info.value) and ".any()" in str(info.value)
    with pytest.raises(sn.ShapeError, match="body_fn returns"):
        sn.jit(lambda x: sn.while_loop(lambda c: c.sum() < 3.0, lambda c: c.sum(), x))(x)
    with pytest.raises(sn.TraceError, match="different types"):
        sn.jit(lambda x: sn.cond(x.sum() > 0, lambda v: v, lambda v: v.sum(), x))(x)
    with pytest.raises(sn.DTypeError, match="predicate must be a bool"):
        sn.jit(lambda x: sn.cond(x > 0, lambda v: v, lambda v: v, x))(x)


def test_bool_on_traced_value_suggests_control_flow():
    with pytest.raises(sn.ControlFlowError) as info:
        sn.jit(lambda x: x if x.sum() > 0 else -x)(np.ones(2))
    assert "sn.while_loop" in str(info.value) and "sn.cond" in str(info.value)


def test_cond_is_differentiable_and_while_is_not():
    def f(x):
        return sn.sum(sn.cond(x.sum() > 0, lambda v: sn.sin(v) * 2.0, lambda v: v * v, x))

    x = np.array([0.3, 0.5, -0.1])
    np.testing.assert_allclose(sn.grad(f)(x), 2 * np.cos(x), rtol=1e-12)
    np.testing.assert_allclose(sn.grad(f)(-x), -2 * x, rtol=1e-12)
    with pytest.raises(sn.TraceError, match="cannot differentiate through a while_loop"):
        sn.grad(lambda x: sn.sum(sn.while_loop(lambda c: c.sum() < 9, lambda c: c * 2.0, x)))(x)


# ---------------------------------------------------------------- evolve (SPEC-ops.md)


def evolve_reference(x, max_recursion=13, threshold=0.99):
    """The spec's loop, row by row, with the numpy reference ops."""
    x = np.array(x, np.float64)
    states, syntonies, depths = [], [], []
    for row in x.reshape(-1, x.shape[-1]):
        s, depth = float(R.syntony(row)), 0
        while s < threshold and depth < max_recursion:
            y = R.dhsr_cycle(row)
            s_new = float(R.syntony(y))
            if s_new > s:
                row, s, depth = y, s_new, depth + 1
            else:
                break
        states.append(row)
        syntonies.append(s)
        depths.append(depth)
    shape = x.shape[:-1]
    return (np.array(states).reshape(x.shape), np.array(syntonies).reshape(shape),
            np.array(depths, np.int32).reshape(shape))


def test_evolve_matches_spec_example():
    x = np.sin(0.37 * np.arange(248)).reshape(1, 248)
    state, s, depth = sn.evolve(x)
    assert abs(float(s[0]) - 0.9923882341447539) < 1e-12 and int(depth[0]) == 3
    np.testing.assert_allclose(state[0, :4], [4.566274256899415, 3.3693224608489767,
                                              1.3579115080278923, 0.1760455541528966],
                               rtol=1e-12)


@pytest.mark.parametrize("max_recursion", [0, 1, 2, 13])
def test_evolve_jitted_matches_reference_on_100_random_states(max_recursion):
    x = RNG.standard_normal((100, 24))
    x[0] = 0.0  # all-zero row: syntony 0, never improves
    x[1] = np.sqrt(R.golden_weights(24))  # syntony 1: stops at depth 0
    x[2] = np.abs(RNG.standard_normal(24)) * np.exp(-np.arange(24) / 3)  # evolves a while
    f = sn.jit(lambda x: sn.evolve(x, max_recursion=max_recursion, threshold=0.999))
    state, s, depth = f(x)
    ref_state, ref_s, ref_depth = evolve_reference(x, max_recursion, 0.999)
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_allclose(s, ref_s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state, ref_state, rtol=1e-12, atol=1e-15)
    assert depth[0] == 0 and depth[1] == 0
    if max_recursion:
        assert depth.max() <= max_recursion and (depth > 0).any()
    graph = f.trace(x)
    assert [op.name for op in graph.ops].count("while") == 1


def test_evolve_f32_batch():
    x = RNG.standard_normal((64, 248)).astype(np.float32)
    state, s, depth = sn.jit(sn.evolve)(x)
    ref_state, ref_s, ref_depth = evolve_reference(x)
    assert state.dtype == np.float32 and depth.dtype == np.int32
    agree = depth == ref_depth  # f32 rounding may flip a borderline accept/stop decision
    assert agree.mean() > 0.95
    np.testing.assert_allclose(s[agree], ref_s[agree], rtol=1e-4)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e37])
def test_evolve_f32_rows_of_extreme_magnitude(scale):
    # f32 rows sum their squares in f32 after scaling to unit rms: no overflow/underflow
    x = (RNG.standard_normal((8, 248)) * scale).astype(np.float32)
    state, s, depth = sn.jit(lambda x: sn.evolve(x, max_recursion=13, threshold=0.99))(x)
    ref_state, ref_s, ref_depth = evolve_reference(x.astype(np.float64), 13, 0.99)
    np.testing.assert_array_equal(depth, ref_depth)
    np.testing.assert_allclose(s, ref_s, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state, np.float64) / scale, ref_state / scale,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_recursion": -1}, "max_recursion must be a non-negative int"),
    ({"max_recursion": 2.5}, "max_recursion must be a non-negative int"),
    ({"threshold": "high"}, "threshold must be a Python number"),
    ({"threshold": None}, "threshold must be a Python number"),
])
def test_evolve_rejects_bad_arguments(kwargs, match):
    with pytest.raises(sn.TraceError, match=match):
        sn.evolve(np.ones((2, 4)), **kwargs)
    with pytest.raises(sn.DTypeError, match="floating-point"):
        sn.evolve(np.ones((2, 4), np.int32))
