"""Reverse-mode gradients of >= 300 random f64 graphs (smooth ops) match finite differences.

Each hypothesis example draws a graph from tests/strategies.py restricted to smooth ops,
moderate inputs and a random cotangent per output, and compares ``vjp_graph``'s result with
central differences of ``sum(ct * f(x))`` (rtol 1e-5, atol 1e-6: central differences with
a relative step carry ~1e-8 relative error, the graphs can amplify it).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from syntonic.ad import vjp_graph
from syntonic.ir import interpret, verify
from tests.strategies import graphs, inputs_for, ir_settings

SMOOTH = ["constant", "neg", "add", "sub", "mul", "sin", "cos", "tanh", "sigmoid", "erf",
          "exp", "broadcast", "reshape", "transpose", "slice", "pad", "sum", "mean", "matmul",
          "cast"]


def objective(g, inputs, cts):
    outs = interpret(g, *inputs)
    return sum(float(np.sum(c * o)) for c, o in zip(cts, outs))


@settings(ir_settings, max_examples=300)
@given(st.data())
def test_random_graph_gradients_match_finite_differences(data):
    g = data.draw(graphs(ops=SMOOTH, dtypes=["f64"], max_ops=5))
    assume(g.params)
    # Finite differences need moderate numbers: no huge or non-finite constants.
    for op in g.ops:
        if op.name == "constant":
            value = op.attr["value"].array
            assume(np.all(np.isfinite(value)) and np.all(np.abs(value) <= 100))
    inputs = [np.asarray(np.clip(a, -2.0, 2.0)) for a in data.draw(inputs_for(g, moderate=True))]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cts = [rng.standard_normal(v.type.shape) for v in g.outputs]
    assume(np.isfinite(objective(g, inputs, cts)))
    dg = verify(vjp_graph(g, list(range(len(g.params)))))
    grads = interpret(dg, *inputs, *cts)[len(g.outputs):]
    for i, x in enumerate(inputs):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            h = 1e-6 * max(1.0, abs(x[idx]))
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[i][idx] += h
            minus[i][idx] -= h
            numeric[idx] = (objective(g, plus, cts) - objective(g, minus, cts)) / (2 * h)
        scale = max(1.0, float(np.abs(numeric).max(initial=0.0)))
        np.testing.assert_allclose(grads[i], numeric, rtol=1e-5, atol=1e-6 * scale)
