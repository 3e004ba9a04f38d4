"""Every differentiable registry op: reverse-mode gradients match central finite differences.

The loss is ``sum(w * op(x...))`` with fixed random weights `w`, in float64; gradients from
``vjp_graph`` (run by the interpreter) must match central differences to rtol 1e-6.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from syntonic.ad import vjp_graph
from syntonic.ad.rules import VJP_RULES, ZERO_GRADIENT
from syntonic.ir import Builder, TensorType, all_ops, interpret, verify
from syntonic.ir.registry import Trait

F64 = "f64"

# op -> (operand shapes, attrs, sampler name). Samplers keep inputs away from kinks/poles.
CASES: dict[str, tuple[list[tuple[int, ...]], dict, str]] = {
    "neg": ([(3, 4)], {}, "any"),
    "abs": ([(3, 4)], {}, "nonzero"),
    "exp": ([(3, 4)], {}, "any"),
    "log": ([(3, 4)], {}, "positive"),
    "sqrt": ([(3, 4)], {}, "positive"),
    "rsqrt": ([(3, 4)], {}, "positive"),
    "sin": ([(3, 4)], {}, "any"),
    "cos": ([(3, 4)], {}, "any"),
    "tanh": ([(3, 4)], {}, "any"),
    "sigmoid": ([(3, 4)], {}, "any"),
    "erf": ([(3, 4)], {}, "any"),
    "add": ([(3, 4), (3, 4)], {}, "any"),
    "sub": ([(3, 4), (3, 4)], {}, "any"),
    "mul": ([(3, 4), (3, 4)], {}, "any"),
    "div": ([(3, 4), (3, 4)], {}, "positive"),
    "pow": ([(3, 4), (3, 4)], {}, "positive"),
    "maximum": ([(3, 4), (3, 4)], {}, "distinct"),
    "minimum": ([(3, 4), (3, 4)], {}, "distinct"),
    "cast": ([(3, 4)], {"dtype": "f32->f64"}, "any"),
    "broadcast": ([(3, 1)], {"shape": (2, 3, 4)}, "any"),
    "reshape": ([(3, 4)], {"shape": (2, 6)}, "any"),
    "transpose": ([(2, 3, 4)], {"perm": (2, 0, 1)}, "any"),
    "slice": ([(5, 7)], {"start": (1, 0), "stop": (5, 7), "step": (2, 3)}, "any"),
    "pad": ([(2, 3)], {"low": (1, 0), "high": (0, 2), "interior": (1, 1)}, "any"),
    "sum": ([(3, 4, 2)], {"axes": (0, 2), "keepdims": False}, "any"),
    "mean": ([(3, 4)], {"axes": (1,), "keepdims": True}, "any"),
    "max": ([(3, 4)], {"axes": (1,), "keepdims": False}, "distinct"),
    "min": ([(3, 4)], {"axes": (0,), "keepdims": False}, "distinct"),
    "prod": ([(3, 4)], {"axes": (1,), "keepdims": False}, "positive"),
    "matmul": ([(2, 3, 4), (2, 4, 5)], {}, "any"),
    "select": ([(3, 4), (3, 4), (3, 4)], {}, "select"),
}

# Ops that have no gradient by definition, and ops differentiated through decomposition.
NOT_DIFFERENTIABLE = set(ZERO_GRADIENT)
RESONANT = {n for n, d in all_ops().items() if d.has(Trait.RESONANT)}
# Control flow: cond has a rule (tested in tests/frontend/test_control.py); while is
# deliberately not differentiable (its trip count is dynamic).
CONTROL = {n for n, d in all_ops().items() if d.has(Trait.CONTROL)}


def sample(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)
    if kind == "distinct":
        return rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) \
            * 0.37 + rng.uniform(0, 0.01, shape)
    return rng.standard_normal(shape)


def build(name: str, shapes, attrs, kind, rng):
    b = Builder(f"d_{name}")
    inputs = []
    params = []
    if name == "select":
        cond = rng.standard_normal(shapes[0]) > 0
        c = b.add("constant", [], {"value": cond})
        for s in shapes[1:]:
            params.append(b.param(TensorType.parse(f"f64[{','.join(map(str, s))}]")))
            inputs.append(sample(kind, s, rng))
        y = b.add("select", [c, *params])
    elif name == "cast":
        p = b.param(TensorType.parse("f64[3,4]"))
        params.append(p)
        inputs.append(sample(kind, (3, 4), rng))
        y = b.add("cast", [b.add("cast", [p], {"dtype": "f32"})], {"dtype": "f64"})
    else:
        for s in shapes:
            params.append(b.param(TensorType.parse(f"f64[{','.join(map(str, s))}]")))
            inputs.append(sample(kind, s, rng))
        y = b.add(name, params, attrs)
    w = rng.standard_normal(y.type.shape)
    wv = b.add("constant", [], {"value": w})
    loss = b.add("sum", [b.add("mul", [y, wv])], {"axes": tuple(range(y.type.rank))})
    return verify(b.build([loss])), inputs


def central_difference(g, inputs, eps=1e-6):
    grads = []
    for i, x in enumerate(inputs):
        gx = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            gx[idx] = (interpret(g, *plus)[0] - interpret(g, *minus)[0]) / (2 * eps)
        grads.append(gx)
    return grads


def differentiable_primitives():
    return sorted(n for n in all_ops()
                  if n not in NOT_DIFFERENTIABLE and n not in RESONANT and n not in CONTROL)


def test_every_differentiable_primitive_has_a_rule_and_a_case():
    missing_rule = [n for n in differentiable_primitives() if n not in VJP_RULES]
    missing_case = [n for n in differentiable_primitives() if n not in CASES]
    assert not missing_rule and not missing_case, (missing_rule, missing_case)
    assert "cond" in VJP_RULES and "while" not in VJP_RULES


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # (str hashes vary per process)
    shapes, attrs, kind = CASES[name]
    g, inputs = build(name, shapes, attrs, kind, rng)
    dg = verify(vjp_graph(g, list(range(len(g.params)))))
    out = interpret(dg, *inputs, np.float64(1.0))
    analytic = out[1:]
    # the f32 round trip of `cast` is linear but coarse (a step of ~1e-7 relative): difference
    # it with a large step, so one rounding is ~1e-6 of the difference
    numeric = central_difference(g, inputs, eps=1e-1 if name == "cast" else 1e-6)
    rtol = 1e-5 if name == "cast" else 1e-6  # the cotangent itself passes through f32
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=rtol, atol=1e-7)


def test_zero_gradient_ops_give_zero():
    b = Builder("z")
    x = b.param(TensorType.parse("f64[4]"))
    y = b.add("floor", [x])
    s = b.add("sum", [b.add("add", [y, b.add("sign", [x])])], {"axes": (0,)})
    dg = vjp_graph(b.build([s]), [0])
    _, gx = interpret(dg, np.array([0.5, -1.5, 2.2, 3.0]), np.float64(1.0))
    np.testing.assert_array_equal(gx, 0.0)


def test_vjp_graph_text_round_trips():
    rng = np.random.default_rng(1)
    g, _ = build("matmul", *CASES["matmul"], rng)
    dg = vjp_graph(g, [0, 1])
    from syntonic.ir import parse

    assert parse(str(dg)).text() == str(dg)
