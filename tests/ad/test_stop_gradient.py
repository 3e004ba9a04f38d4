"""sn.stop_gradient: an identity that reverse-mode AD does not differentiate through."""

from __future__ import annotations

import numpy as np

import syntonic as sn


def test_value_is_the_operand_and_gradient_is_zero() -> None:
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(sn.stop_gradient(x), x)  # eagerly
    f = sn.jit(sn.value_and_grad(lambda x: sn.sum(x * sn.stop_gradient(x))), device="cpu")
    value, grad = f(x)
    assert value == np.sum(x * x)
    np.testing.assert_array_equal(grad, x)  # d/dx (x * c) with c = x held constant
    g = sn.jit(sn.grad(lambda x: sn.sum(sn.stop_gradient(sn.exp(x)))), device="cpu")
    np.testing.assert_array_equal(g(x), np.zeros_like(x))


def test_it_is_gone_before_fusion() -> None:
    f = sn.jit(lambda x: sn.stop_gradient(x) * 2.0)
    low = f.lower(sn.spec("f32[8]"))
    assert " = stop_gradient " in low.text("traced")
    assert " = stop_gradient " not in low.text("optimized")
    np.testing.assert_array_equal(f(np.ones(8, np.float32)), 2.0)


def test_log_softmax_gradient_is_softmax_minus_one_hot() -> None:
    """The max shift of log-softmax is stopped: the cross-entropy gradient is exactly the
    analytic one, ties at the max included, and large logits stay finite."""
    z = np.array([[1.0, 3.0, 3.0], [0.0, 0.0, 5.0], [1e4, -1e4, 0.0]])
    y = np.array([1, 0, 2], np.int32)
    g = sn.jit(sn.grad(lambda z: sn.nn.cross_entropy(z, y)), device="cpu")(z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    want = (e / e.sum(axis=1, keepdims=True) - np.eye(3)[y]) / len(y)
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15)
    # one max (the forward shift), no tie count for its gradient
    optimized = sn.jit(sn.grad(lambda z: sn.nn.cross_entropy(z, y))).lower(z).text(
        "optimized")
    assert optimized.count(" = max ") == 1
