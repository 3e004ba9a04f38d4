"""Modules and losses: shapes, deterministic init, numpy-equivalent outputs, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import syntonic as sn
from syntonic.frontend.pytree import named_leaves

RNG = np.random.default_rng(3)


def test_mlp_params_have_dotted_names_and_deterministic_init():
    model = sn.nn.Sequential(sn.nn.Linear(8, 16), sn.nn.ReLU(), sn.nn.Linear(16, 4))
    p1, p2 = model.init(seed=5), model.init(seed=5)
    names = named_leaves(p1)
    assert sorted(names) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    for k in names:
        np.testing.assert_array_equal(names[k], named_leaves(p2)[k])
        assert names[k].dtype == np.float32
    assert not np.array_equal(model.init(seed=6)["0"]["weight"], p1["0"]["weight"])
    bound = 1 / math.sqrt(8)
    assert np.abs(p1["0"]["weight"]).max() <= bound


def test_modules_match_numpy_and_jit():
    x = RNG.standard_normal((5, 8)).astype(np.float32)
    model = sn.nn.Sequential(sn.nn.Linear(8, 6), sn.nn.GELU(), sn.nn.LayerNorm(6),
                             sn.nn.Tanh(), sn.nn.Linear(6, 3), sn.nn.Sigmoid())
    params = model.init(seed=1)
    out = sn.jit(model.apply)(params, x)
    p = params
    h = x @ p["0"]["weight"] + p["0"]["bias"]
    from math import erf

    h = 0.5 * h * (1 + np.vectorize(erf)(h / np.sqrt(2)))
    mu = h.mean(-1, keepdims=True)
    var = ((h - mu) ** 2).mean(-1, keepdims=True)
    h = (h - mu) / np.sqrt(var + 1e-5) * p["2"]["weight"] + p["2"]["bias"]
    h = np.tanh(h) @ p["4"]["weight"] + p["4"]["bias"]
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-h)), rtol=1e-5, atol=1e-6)


def test_embedding_and_one_hot():
    emb = sn.nn.Embedding(10, 4)
    params = emb.init(seed=0)
    ids = np.array([[1, 3], [9, 0]])
    out = sn.jit(emb.apply)(params, ids)
    np.testing.assert_allclose(out, params["weight"][ids], rtol=1e-6)


def test_resonant_layers():
    x = np.abs(RNG.standard_normal((2, 7))) + 0.1
    np.testing.assert_allclose(sn.nn.PrimeSyntonyGate()({}, x), sn.prime_gate(x))
    layer = sn.nn.Resonant(7, steps=2)
    np.testing.assert_allclose(layer(layer.init(dtype=np.float64), x),
                               sn.dhsr_cycle(sn.dhsr_cycle(x)), rtol=1e-12)


def log_softmax_np(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_losses_match_numpy_and_are_stable():
    logits = RNG.standard_normal((6, 5)) * 3
    labels = RNG.integers(0, 5, 6)
    ce = sn.nn.cross_entropy(logits, labels)
    np.testing.assert_allclose(ce, -log_softmax_np(logits)[np.arange(6), labels].mean(),
                               rtol=1e-12)
    probs = np.eye(5)[labels]
    np.testing.assert_allclose(sn.nn.cross_entropy(logits, probs), ce, rtol=1e-12)
    huge = np.array([[1000.0, -1000.0, 0.0]])
    assert np.isfinite(sn.nn.cross_entropy(huge, np.array([1])))
    x, t = RNG.standard_normal(8) * 50, (RNG.random(8) > 0.5).astype(np.float64)
    bce = sn.nn.binary_cross_entropy_with_logits(x, t)
    ref = np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))
    np.testing.assert_allclose(bce, ref, rtol=1e-12)
    a, b = RNG.standard_normal(10) * 2, RNG.standard_normal(10)
    d = np.abs(a - b)
    np.testing.assert_allclose(sn.nn.huber(a, b), np.where(d <= 1, 0.5 * d * d, d - 0.5).mean(),
                               rtol=1e-12)
    np.testing.assert_allclose(sn.nn.mse(a, b, reduction="sum"), ((a - b) ** 2).sum(),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        sn.nn.mse(a, b, reduction="avg")


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    logits = RNG.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    g = sn.grad(lambda z: sn.nn.cross_entropy(z, labels))(logits)
    np.testing.assert_allclose(g, (np.exp(log_softmax_np(logits)) - np.eye(3)[labels]) / 4,
                               rtol=1e-10)
