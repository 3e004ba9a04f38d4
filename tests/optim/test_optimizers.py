"""Optimizers: exact updates vs hand-written numpy, schedules, and a converging jitted step."""

from __future__ import annotations

import math

import numpy as np

import syntonic as sn


def test_golden_momentum_matches_spec_example():
    opt = sn.optim.GoldenMomentum()
    state = {"step": np.zeros((), np.float64), "velocity": np.array([0.5, -0.5])}
    w, s = opt.update(np.array([0.1, 0.2]), state, np.array([1.0, 2.0]))
    np.testing.assert_allclose(w, [0.9887949794390983, 2.002986520560902], rtol=1e-15)
    np.testing.assert_allclose(s["velocity"], [0.40901699437494743, -0.10901699437494744],
                               rtol=1e-15)


def adam_reference(p, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if wd and not decoupled:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        new = p - lr_t * m / (np.sqrt(v) + eps)
        if wd and decoupled:
            new = new - lr * wd * p
        p = new
    return p


def run(opt, p, grads):
    state = opt.init(p)
    for g in grads:
        p, state = opt.update(g, state, p)
    return p, state


def test_adam_adamw_sgd_match_numpy():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p, _ = run(sn.optim.Adam(lr=0.1), p0, grads)
    np.testing.assert_allclose(p, adam_reference(p0, grads, 0.1, 0.9, 0.999, 1e-8), rtol=1e-6)
    p, _ = run(sn.optim.AdamW(lr=0.1, weight_decay=0.1), p0, grads)
    np.testing.assert_allclose(
        p, adam_reference(p0, grads, 0.1, 0.9, 0.999, 1e-8, 0.1, decoupled=True), rtol=1e-6)
    p, _ = run(sn.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), p0, grads)
    ref, v = p0.copy(), np.zeros(5)
    for g in grads:
        g = g + 0.01 * ref
        v = 0.9 * v + g
        ref = ref - 0.1 * (g + 0.9 * v)
    np.testing.assert_allclose(p, ref, rtol=1e-12)


def test_schedules():
    assert sn.optim.constant(0.3)(np.float64(7)) == 0.3
    np.testing.assert_allclose(sn.optim.warmup(1.0, 4)(np.float64(1.0)), 0.5)
    np.testing.assert_allclose(sn.optim.warmup(1.0, 4)(np.float64(10.0)), 1.0)
    cos = sn.optim.cosine(1.0, 10, final_lr=0.1)
    np.testing.assert_allclose(cos(np.float64(0.0)), 1.0)
    np.testing.assert_allclose(cos(np.float64(5.0)), 0.55)
    np.testing.assert_allclose(cos(np.float64(20.0)), 0.1)


def test_jitted_train_step_converges_on_linear_regression():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    true_w = np.array([[1.5], [-2.0], [0.5]], np.float32)
    y = x @ true_w
    model = sn.nn.Linear(3, 1)
    opt = sn.optim.Adam(lr=0.1)
    params = model.init(seed=0)
    state = opt.init(params)

    @sn.jit
    def step(params, state, x, y):
        loss, grads = sn.value_and_grad(lambda p: sn.nn.mse(model(p, x), y))(params)
        params, state = opt.update(grads, state, params)
        return params, state, loss

    losses = []
    for _ in range(150):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    assert step.cache_size == 1
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(params["weight"], true_w, atol=2e-2)
