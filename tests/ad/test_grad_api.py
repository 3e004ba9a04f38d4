"""sn.grad / sn.value_and_grad / sn.vjp: pytrees, argnums, aux, jit, closures, errors."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn

RNG = np.random.default_rng(7)


def loss(params, x):
    h = sn.tanh(x @ params["w"] + params["b"])
    return sn.mean(h * h)


def numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        p, m = x.copy(), x.copy()
        p[idx] += eps
        m[idx] -= eps
        g[idx] = (f(p) - f(m)) / (2 * eps)
    return g


def test_grad_of_pytree_matches_finite_differences():
    params = {"w": RNG.standard_normal((3, 2)), "b": RNG.standard_normal(2)}
    x = RNG.standard_normal((4, 3))
    g = sn.grad(loss)(params, x)
    assert set(g) == {"w", "b"} and g["w"].shape == (3, 2)
    np.testing.assert_allclose(
        g["w"], numeric_grad(lambda w: float(loss({"w": w, "b": params["b"]}, x)), params["w"]),
        rtol=1e-6)
    np.testing.assert_allclose(
        g["b"], numeric_grad(lambda b: float(loss({"w": params["w"], "b": b}, x)), params["b"]),
        rtol=1e-6)


def test_value_and_grad_inside_jit_traces_gradient_ir():
    @sn.jit
    def step(params, x):
        value, g = sn.value_and_grad(loss)(params, x)
        return value, {k: params[k] - 0.1 * g[k] for k in params}

    params = {"w": RNG.standard_normal((3, 2)), "b": RNG.standard_normal(2)}
    x = RNG.standard_normal((4, 3))
    value, new = step(params, x)
    np.testing.assert_allclose(value, loss(params, x), rtol=1e-12)
    eager = sn.grad(loss)(params, x)
    np.testing.assert_allclose(new["w"], params["w"] - 0.1 * eager["w"], rtol=1e-12)
    text = str(step.trace(params, x))
    assert "matmul" in text and "tanh" in text and sn.ir.parse(text).text() == text


def test_argnums_tuple_and_has_aux():
    def f(a, b):
        y = sn.sum(a * b * b)
        return y, {"y2": y * 2}

    a, b = RNG.standard_normal(3), RNG.standard_normal(3)
    (value, aux), (ga, gb) = sn.value_and_grad(f, argnums=(0, 1), has_aux=True)(a, b)
    np.testing.assert_allclose(ga, b * b, rtol=1e-12)
    np.testing.assert_allclose(gb, 2 * a * b, rtol=1e-12)
    np.testing.assert_allclose(aux["y2"], 2 * value)
    gb_only, aux2 = sn.grad(f, argnums=1, has_aux=True)(a, b)
    np.testing.assert_allclose(gb_only, 2 * a * b, rtol=1e-12)


def test_closure_over_traced_values_is_captured():
    @sn.jit
    def f(x, s):
        return sn.grad(lambda y: sn.sum(sn.sin(y) * s))(x)

    x, s = RNG.standard_normal(5), RNG.standard_normal(5)
    np.testing.assert_allclose(f(x, s), np.cos(x) * s, rtol=1e-12)


def test_vjp_inside_jit():
    @sn.jit
    def f(x, ct):
        y, pull = sn.vjp(lambda v: sn.exp(v) * 2.0, x)
        (dx,) = pull(ct)
        return y, dx

    x, ct = RNG.standard_normal(4), RNG.standard_normal(4)
    y, dx = f(x, ct)
    np.testing.assert_allclose(dx, 2 * np.exp(x) * ct, rtol=1e-12)


def test_second_order_gradient():
    d2 = sn.grad(sn.grad(lambda x: sn.sum(x * x * x)))
    x = RNG.standard_normal(3)
    with pytest.raises(sn.TraceError, match="one scalar"):
        d2(x)  # grad of a vector-valued function is an error...
    hess_diag = sn.grad(lambda x: sn.sum(sn.grad(lambda y: sn.sum(y * y * y))(x)))(x)
    np.testing.assert_allclose(hess_diag, 6 * x, rtol=1e-12)  # ...but grad of its sum works


def test_errors_name_the_problem():
    with pytest.raises(sn.TraceError, match="one scalar"):
        sn.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(sn.TraceError, match="floating-point arguments"):
        sn.grad(lambda x: sn.sum(x.astype("f64")))(np.ones(3, np.int32))
    with pytest.raises(sn.TraceError, match="out of range"):
        sn.grad(lambda x: sn.sum(x), argnums=2)(np.ones(3))
    with pytest.raises(sn.TraceError, match="inside a jitted function"):
        sn.vjp(lambda x: x, np.ones(3))
