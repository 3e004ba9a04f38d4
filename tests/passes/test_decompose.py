"""Decomposition of resonant ops: the spec's worked examples, edge cases, every op/dtype/axis.

The decomposed graph (stage ``decompose``) is interpreted and compared with the
reference interpreter on the traced graph (which computes resonant ops in float64):
relative 1e-12 in f64, 1e-5 in f32 and 1e-2 in f16 (computed in f32, rounded once).
"""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import Builder, TensorType, get_op, interpret, verify
from syntonic.ir import resonant as R
from syntonic.ir.registry import Trait, all_ops
from syntonic.passes import decompose_resonant_ops

TOL = {"f64": 1e-12, "f32": 1e-5, "f16": 1e-2}
RESONANT = sorted(n for n, d in all_ops().items() if d.has(Trait.RESONANT) and d.decompose)


def one_op(name: str, x_type: str, attrs: dict | None = None, extra: str | None = None):
    b = Builder(name)
    x = b.param(TensorType.parse(x_type), "x")
    operands = [x] + ([b.param(TensorType.parse(extra), "alpha")] if extra else [])
    out = b.add(name, operands, attrs or {})
    return b.build([out])


def decomposed(g):
    out = verify(decompose_resonant_ops(g))
    assert not any(op.opdef.has(Trait.RESONANT) for op in out.ops)
    return out


def run_both(g, *args):
    return interpret(g, *args)[0], interpret(decomposed(g), *args)[0]


def assert_close(got, want, dtype: str) -> None:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=TOL[dtype], atol=TOL[dtype])


# ------------------------------------------------------------------ spec examples

X4 = np.array([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("name, attrs, expected", [
    ("syntony", {}, 0.26367940090438513),
    ("spectral_syntony", {}, 0.13256967866314404),
    ("differentiate", {"alpha": 0.5},
     [0.7717081694263093, 1.736343381209196, 2.8939056353486596, 4.244394931844701]),
    ("harmonize", {},
     [2.9990304318349783, 2.6852977413266577, 1.906218903274958, 1.690035731790826]),
    ("harmonize", {"strength": 1.0},
     [4.234499183254375, 3.1088350378800653, 1.230225009246746, 0.26239930123977845]),
    ("dhsr_cycle", {},
     [2.0324237274204506, 1.9530654950807422, 1.6166756897497994, 0.10563538865557573]),
])
def test_spec_worked_examples(name, attrs, expected):
    g = decomposed(one_op(name, "f64[4]", attrs))
    np.testing.assert_allclose(interpret(g, X4)[0], expected, rtol=1e-13)


def test_spec_mobius_example_and_zeroed_positions():
    g = decomposed(one_op("mobius_mask", "f64[30]"))
    x = np.arange(1.0, 31.0)
    y = interpret(g, x)[0]
    np.testing.assert_array_equal(y[:12], [1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11, 0])
    assert sorted(np.flatnonzero(y == 0)) == [3, 7, 8, 11, 15, 17, 19, 23, 24, 26, 27]


def test_spec_prime_gate_examples():
    g = decomposed(one_op("prime_gate", "f64[2,3]"))
    y = interpret(g, np.array([[1.0, 2, 2], [0, 0, 0]]))[0]
    np.testing.assert_allclose(y, [[1.4120226591665965, 2.824045318333193,
                                    2.824045318333193], [0, 0, 0]], rtol=1e-13)
    g4 = decomposed(one_op("prime_gate", "f64[1,4]"))
    np.testing.assert_allclose(interpret(g4, np.ones((1, 4)))[0], [[2.694176130383595] * 4],
                               rtol=1e-13)


def test_dhsr_cycle_example_syntony():
    g = decomposed(one_op("dhsr_cycle", "f64[4]"))
    y = interpret(g, X4)[0]
    s = interpret(decomposed(one_op("syntony", "f64[4]")), y)[0]
    assert abs(float(s) - 0.9036941509005479) < 1e-13


# ------------------------------------------------------------------ edge cases


def test_zero_rows():
    x = np.zeros((2, 5))
    x[1] = [1, 2, 3, 4, 5]
    for name, attrs in [("syntony", {}), ("spectral_syntony", {})]:
        y = interpret(decomposed(one_op(name, "f64[2,5]", attrs)), x)[0]
        assert y[0] == 0.0
    for name, attrs in [("harmonize", {}), ("differentiate", {"alpha": 0.7}),
                        ("dhsr_cycle", {})]:
        y = interpret(decomposed(one_op(name, "f64[2,5]", attrs)), x)[0]
        np.testing.assert_array_equal(y[0], x[0])  # zero row: y = x, exactly


def test_nan_propagates_in_harmonize_and_mobius_selects():
    x = np.array([[1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    want, got = run_both(one_op("harmonize", "f64[2,4]"), x)
    assert np.all(np.isnan(got[0])) and np.all(np.isnan(want[0]))
    np.testing.assert_allclose(got[1], want[1], rtol=1e-13)
    m = interpret(decomposed(one_op("mobius_mask", "f64[1,8]")),
                  np.full((1, 8), np.nan))[0]
    assert m[0, 3] == 0.0 and m[0, 7] == 0.0  # a select: NaN at masked positions -> 0
    assert np.isnan(m[0, 0])


def test_empty_axis_and_scalar_with_axis_none():
    for name in ("harmonize", "mobius_mask", "syntony"):
        g = one_op(name, "f32[3,0]")
        want, got = run_both(g, np.zeros((3, 0), np.float32))
        np.testing.assert_array_equal(got, want)
    want, got = run_both(one_op("syntony", "f64[]", {"axis": None}), np.array(2.0))
    assert_close(got, want, "f64")


# ------------------------------------------------------------------ every op


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16"])
@pytest.mark.parametrize("axis", [-1, 0, None])
@pytest.mark.parametrize("name", [n for n in RESONANT if n not in ("golden_weights",)])
def test_decomposition_matches_reference(name, axis, dtype):
    rng = np.random.default_rng(abs(hash((name, axis, dtype))) % 2**32)
    shape = (3, 5, 7)
    attrs: dict = {} if name == "prime_gate" else {"axis": axis}
    extra = None
    if name == "differentiate":
        if axis == 0:
            extra = f"{dtype}[5,7]"  # one alpha per row
        else:
            attrs["alpha"] = 0.37
    g = one_op(name, f"{dtype}[{','.join(map(str, shape))}]", attrs, extra)
    x = rng.normal(size=shape).astype(np.dtype(dtype.replace("f", "float")))
    x[0, 1] = 0.0  # a zero row along the last axis
    args = [x] + ([rng.normal(size=(5, 7)).astype(x.dtype)] if extra else [])
    want, got = run_both(g, *args)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert_close(got, want, dtype)


@pytest.mark.parametrize("d", sorted(R.PRIME_DIMS) + [6, 8])
def test_prime_gate_every_dimension(d):
    rng = np.random.default_rng(d)
    want, got = run_both(one_op("prime_gate", f"f64[2,{d}]"), rng.normal(size=(2, d)))
    assert_close(got, want, "f64")


@pytest.mark.parametrize("n", [0, 1, 4, 40, 300])
def test_golden_weights_become_constants(n):
    g = decomposed(one_op_golden(n))
    np.testing.assert_array_equal(interpret(g)[0], R.golden_weights(n).astype(np.float32))
    assert [op.name for op in g.ops] == ["constant"]


def one_op_golden(n: int):
    b = Builder("w")
    return b.build([b.add("golden_weights", [], {"n": n, "dtype": sn.f32})])


def test_long_golden_profiles_store_only_their_nonzero_head():
    g = decomposed(one_op("syntony", "f32[100000]"))
    sizes = [op.results[0].type.size for op in g.ops if op.name == "constant"]
    assert max(sizes) < 64  # exp(-i^2/phi) underflows after a few dozen positions
    assert any(op.name == "pad" for op in g.ops)


def test_decomposed_ops_keep_the_source_location():
    @sn.jit
    def f(x):
        return sn.harmonize(x)

    traced = f.trace(sn.spec("f32[2,8]"))
    (loc,) = {op.loc for op in traced.ops}
    assert {op.loc for op in decomposed(traced).ops} == {loc}


def test_every_resonant_op_has_a_rule_in_its_registry_entry():
    for name, d in all_ops().items():
        if d.has(Trait.RESONANT):
            assert callable(d.decompose), name
    assert get_op("add").decompose is None
