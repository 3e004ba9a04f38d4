"""Gradients of the resonant ops (through their decompositions) match finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from syntonic.ad import vjp_graph
from syntonic.ir import Builder, TensorType, interpret, verify
from tests.ad.test_vjp_rules import central_difference

CASES = {
    "syntony": ({"axis": -1}, (3, 7)),
    "syntony_flat": ({"axis": None}, (2, 5)),
    "spectral_syntony": ({"axis": 0}, (6, 3)),
    "differentiate": ({"alpha": 0.7, "axis": -1}, (3, 8)),
    "harmonize": ({"strength": 0.4, "axis": -1}, (2, 9)),
    "mobius_mask": ({"axis": -1}, (2, 12)),
    "dhsr_cycle": ({"axis": -1}, (3, 11)),
    "prime_gate": ({}, (4, 5)),
    "prime_gate_dim4": ({}, (2, 4)),
}


def build(name, attrs, shape, rng):
    op = name.replace("_flat", "").replace("_dim4", "")
    b = Builder(f"d_{name}")
    x = b.param(TensorType.parse(f"f64[{shape[0]},{shape[1]}]"))
    y = b.add(op, [x], attrs)
    w = b.add("constant", [], {"value": rng.standard_normal(y.type.shape)})
    loss = b.add("sum", [b.add("mul", [y, w])], {"axes": tuple(range(y.type.rank))})
    # inputs away from 0, where |x| and sign(x) have kinks
    inputs = [rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)]
    return verify(b.build([loss])), inputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_resonant_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    attrs, shape = CASES[name]
    g, inputs = build(name, attrs, shape, rng)
    dg = verify(vjp_graph(g, [0]))
    analytic = interpret(dg, *inputs, np.float64(1.0))[1]
    numeric = central_difference(g, inputs)[0]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_differentiate_gradient_with_respect_to_per_row_alpha():
    rng = np.random.default_rng(5)
    b = Builder("d_alpha")
    x = b.param(TensorType.parse("f64[3,6]"))
    a = b.param(TensorType.parse("f64[3]"))
    y = b.add("differentiate", [x, a], {"axis": -1})
    w = b.add("constant", [], {"value": rng.standard_normal((3, 6))})
    loss = b.add("sum", [b.add("mul", [y, w])], {"axes": (0, 1)})
    g = verify(b.build([loss]))
    inputs = [rng.uniform(0.2, 1.5, (3, 6)), rng.uniform(0.1, 0.9, 3)]
    out = interpret(verify(vjp_graph(g, [0, 1])), *inputs, np.float64(1.0))
    numeric = central_difference(g, inputs)
    np.testing.assert_allclose(out[1], numeric[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out[2], numeric[1], rtol=1e-6, atol=1e-8)
