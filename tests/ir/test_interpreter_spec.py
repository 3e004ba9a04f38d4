"""The reference interpreter reproduces SPEC-ops.md: every worked example, to 1e-12 (f64).

Each example is a one-op graph built with the Builder and run by ``interpret``. Edge
cases and the axis variants are checked against the spec's formulas, written out again
here per row in plain numpy (independently of syntonic.ir.resonant).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from syntonic.ir import Builder, DType, IRError, TensorType, interpret

PHI = (1 + math.sqrt(5)) / 2
PHI_INV = 0.6180339887498948
PHI_INV2 = 0.3819660112501051
Q = 0.027395146920
PRIME_DIMS = {3, 4, 5, 7, 11, 13, 17, 23, 29, 43, 47}
TOL = 1e-12


def run(op: str, *xs: Any, **attrs: Any) -> np.ndarray:
    """Interpret a one-op graph: `op` applied to f64 parameters holding `xs`."""
    b = Builder(op)
    arrays = [np.asarray(x, dtype=np.float64) for x in xs]
    params = [b.param(TensorType(DType.f64, a.shape), f"x{i}") for i, a in enumerate(arrays)]
    y = b.add(op, params, attrs)
    (out,) = interpret(b.build([y]), *arrays)
    assert out.dtype == np.float64
    return out


def close(got: np.ndarray, want: Any) -> None:
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=TOL, atol=TOL)


# ------------------------------------------------------------------ worked examples

X = [1.0, 2.0, 3.0, 4.0]


def test_constants_match_the_spec_table() -> None:
    from syntonic.ir import resonant

    assert resonant.PHI == pytest.approx(1.618033988749895, abs=1e-15)
    assert resonant.PHI_INV == pytest.approx(PHI_INV, abs=1e-15)
    assert resonant.PHI_INV2 == pytest.approx(PHI_INV2, abs=1e-15)
    assert resonant.Q == Q
    assert set(resonant.PRIME_DIMS) == PRIME_DIMS


def test_golden_weights_n4() -> None:
    b = Builder("g")
    w = b.add("golden_weights", [], {"n": 4, "dtype": DType.f64})
    (out,) = interpret(b.build([w]))
    assert out.dtype == np.float64 and out.shape == (4,)
    close(out, [1, 0.5390030827240446, 0.08440438236269693, 0.0038399117333669103])


def test_syntony_example() -> None:
    close(run("syntony", X), 0.26367940090438513)


def test_spectral_syntony_example() -> None:
    close(run("spectral_syntony", X), 0.13256967866314404)


def test_differentiate_example() -> None:
    want = [0.7717081694263093, 1.736343381209196, 2.8939056353486596, 4.244394931844701]
    close(run("differentiate", X, alpha=0.5), want)
    # The same alpha given per row, as an operand.
    close(run("differentiate", X, 0.5), want)


def test_harmonize_default_strength() -> None:
    close(run("harmonize", X),
          [2.9990304318349783, 2.6852977413266577, 1.906218903274958, 1.690035731790826])


def test_harmonize_strength_one() -> None:
    close(run("harmonize", X, strength=1.0),
          [4.234499183254375, 3.1088350378800653, 1.230225009246746, 0.26239930123977845])


def test_mobius_mask_one_to_twelve() -> None:
    out = run("mobius_mask", np.arange(1.0, 13.0))
    close(out, [1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11, 0])


def test_mobius_mask_zeroed_positions_below_30() -> None:
    out = run("mobius_mask", np.ones(30))
    assert [i for i in range(30) if out[i] == 0] == [3, 7, 8, 11, 15, 17, 19, 23, 24, 26, 27]


def test_dhsr_cycle_example_and_its_syntony() -> None:
    y = run("dhsr_cycle", X)
    close(y, [2.0324237274204506, 1.9530654950807422, 1.6166756897497994, 0.10563538865557573])
    close(run("syntony", y), 0.9036941509005479)


def test_prime_gate_examples() -> None:
    close(run("prime_gate", [[1, 2, 2], [0, 0, 0]]),
          [[1.4120226591665965, 2.824045318333193, 2.824045318333193], [0, 0, 0]])
    close(run("prime_gate", [[1, 1, 1, 1]]), [[2.694176130383595] * 4])


# ------------------------------------------------------------------ edge cases

ROW_OPS = ["syntony", "spectral_syntony"]
SHAPE_OPS = ["harmonize", "differentiate", "mobius_mask", "dhsr_cycle"]


@pytest.mark.parametrize("op", ROW_OPS)
def test_zero_rows_have_syntony_zero(op: str) -> None:
    x = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -0.0, 0.0]])
    out = run(op, x)
    assert out[0] == 0 and out[2] == 0 and not np.isnan(out).any()


@pytest.mark.parametrize("attrs", [{}, {"strength": 1.0}, {"strength": 0.25}])
def test_harmonize_returns_zero_rows_unchanged(attrs: dict[str, Any]) -> None:
    x = np.array([[0.0, -0.0, 0.0], [1.0, 2.0, 3.0]])
    out = run("harmonize", x, **attrs)
    assert np.array_equal(np.signbit(out[0]), np.signbit(x[0])) and not out[0].any()


@pytest.mark.parametrize("alpha", [0.5, -1.0, 3.0])
def test_differentiate_returns_zero_rows_unchanged(alpha: float) -> None:
    x = np.array([[0.0, -0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    out = run("differentiate", x, alpha=alpha)
    assert np.array_equal(np.signbit(out[0]), np.signbit(x[0])) and not out[0].any()
    assert not np.isnan(out).any()


def test_differentiate_returns_x_where_u_vanishes() -> None:
    # alpha = -N/i makes u_i = 0: for x = e_i, U = 0 although E = 1, so y = x.
    e2 = np.array([0.0, 0.0, 1.0, 0.0])
    assert np.array_equal(run("differentiate", e2, alpha=-2.0), e2)


def test_harmonize_propagates_nan_per_row() -> None:
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    out = run("harmonize", x)
    assert np.isnan(out[0]).all()
    assert not np.isnan(out[1]).any()


def test_mobius_mask_turns_nan_at_masked_positions_into_zero() -> None:
    x = np.full(12, np.nan)
    out = run("mobius_mask", x)
    masked = [3, 7, 8, 11]
    assert all(out[i] == 0 and not np.signbit(out[i]) for i in masked)
    assert np.isnan(np.delete(out, masked)).all()


def test_prime_gate_is_identity_outside_prime_dims() -> None:
    for d in (1, 2, 6, 8, 10, 12, 248):
        x = np.arange(2.0 * d).reshape(2, d)
        assert np.array_equal(run("prime_gate", x), x)


@pytest.mark.parametrize("d", sorted(PRIME_DIMS))
def test_prime_gate_scale_for_each_prime_dim(d: int) -> None:
    x = np.arange(1.0, d + 1)
    b = PHI**d * (0.78615 if d == 4 else 1.0)
    close(run("prime_gate", x), x / np.linalg.norm(x) * b)


# ---------------------------------------------- the spec's formulas, one row at a time


def golden(n: int) -> np.ndarray:
    return np.array([math.exp(-i * i / PHI) for i in range(n)])


def spec_syntony(x: np.ndarray) -> float:
    w = golden(len(x))
    e = float(np.sum(x * x))
    if e == 0:
        return 0.0
    return float(np.sum(np.abs(x) * np.sqrt(w)) ** 2 / (w.sum() * e))


def spec_spectral(x: np.ndarray) -> float:
    e = float(np.sum(x * x))
    return 0.0 if e == 0 else float(np.sum(golden(len(x)) * x * x) / e)


def spec_differentiate(x: np.ndarray, alpha: float) -> np.ndarray:
    n = len(x)
    u = x * (1 + alpha * np.arange(n) / n)
    uu = float(np.sum(u * u))
    return x if uu == 0 else u * math.sqrt(float(np.sum(x * x)) / uu)


def spec_harmonize(x: np.ndarray, g: float = PHI_INV) -> np.ndarray:
    w = golden(len(x))
    e = float(np.sum(x * x))
    if e == 0:
        return x
    t = np.sqrt(e * (1 - Q) * w / w.sum())
    s = np.where(x >= 0, 1.0, -1.0)
    return (1 - g) * x + g * s * t


def spec_mobius(x: np.ndarray) -> np.ndarray:
    def squarefree(k: int) -> bool:
        return all(k % (p * p) for p in range(2, math.isqrt(k) + 1))

    return np.array([v if squarefree(i + 1) else 0.0 for i, v in enumerate(x)])


def spec_dhsr(x: np.ndarray) -> np.ndarray:
    alpha = (1 - spec_syntony(x)) * PHI_INV2
    return spec_harmonize(spec_mobius(spec_differentiate(x, alpha)), PHI_INV)


def along(fn: Callable[..., Any], x: np.ndarray, axis: int | None, *per_row: np.ndarray,
          **kw: Any) -> np.ndarray:
    """Apply a per-row spec function along `axis` (None: the flattened tensor)."""
    if axis is None:
        flat = fn(x.reshape(-1), *[float(a) for a in per_row], **kw)
        r = np.asarray(flat, dtype=np.float64)
        return r if r.ndim == 0 else r.reshape(x.shape)
    moved = np.moveaxis(x, axis, -1)
    lead = moved.shape[:-1]
    rows = [fn(moved[idx], *[float(a[idx]) for a in per_row], **kw) for idx in np.ndindex(lead)]
    if rows and np.ndim(rows[0]) == 0:
        return np.array(rows, dtype=np.float64).reshape(lead)
    out = np.array(rows, dtype=np.float64).reshape(moved.shape)
    return np.moveaxis(out, -1, axis)


finite = st.floats(-10, 10, allow_subnormal=False)
tensors = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite
)


def _axes(x: np.ndarray) -> st.SearchStrategy[int | None]:
    return st.sampled_from([None, *range(-x.ndim, x.ndim)])


SPEC_ROW = {"syntony": spec_syntony, "spectral_syntony": spec_spectral}
SPEC_SHAPE = {"harmonize": spec_harmonize, "mobius_mask": spec_mobius, "dhsr_cycle": spec_dhsr}


@pytest.mark.parametrize("op", sorted(SPEC_ROW) + sorted(SPEC_SHAPE))
@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_axis_variants_match_spec_formula(op: str, data: st.DataObject) -> None:
    x = data.draw(tensors)
    axis = data.draw(_axes(x))
    fn = SPEC_ROW.get(op) or SPEC_SHAPE[op]
    want = along(fn, x, axis)
    got = run(op, x, axis=axis)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_harmonize_strength_matches_spec_formula(data: st.DataObject) -> None:
    x = data.draw(tensors)
    axis = data.draw(_axes(x))
    g = data.draw(st.floats(-2, 2))
    np.testing.assert_allclose(run("harmonize", x, strength=g, axis=axis),
                               along(spec_harmonize, x, axis, g=g), rtol=1e-9, atol=1e-9)


@settings(deadline=None, max_examples=80)
@given(data=st.data())
def test_differentiate_alpha_attr_and_operand_match_spec(data: st.DataObject) -> None:
    x = data.draw(tensors)
    axis = data.draw(_axes(x))
    rows = () if axis is None else np.moveaxis(x, axis, -1).shape[:-1]
    alpha = data.draw(hnp.arrays(np.float64, rows, elements=st.floats(-3, 3)))
    got = run("differentiate", x, alpha, axis=axis)
    np.testing.assert_allclose(got, along(spec_differentiate, x, axis, alpha),
                               rtol=1e-9, atol=1e-9)
    a = float(data.draw(st.floats(-3, 3)))
    np.testing.assert_allclose(run("differentiate", x, alpha=a, axis=axis),
                               along(spec_differentiate, x, axis, np.full(rows, a)),
                               rtol=1e-9, atol=1e-9)


@settings(deadline=None, max_examples=40)
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.sampled_from(
    sorted(PRIME_DIMS | {1, 2, 6})
)), elements=finite))
def test_prime_gate_matches_spec_formula(x: np.ndarray) -> None:
    d = x.shape[-1]
    if d in PRIME_DIMS:
        b = PHI**d * (0.78615 if d == 4 else 1.0)
        norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
        want = x / np.maximum(norm, 1e-12) * b
    else:
        want = x
    np.testing.assert_allclose(run("prime_gate", x), want, rtol=1e-12, atol=1e-12)


def test_axis_none_on_a_scalar() -> None:
    close(run("syntony", 3.0, axis=None), 1.0)
    close(run("harmonize", -2.0, axis=None, strength=1.0), spec_harmonize(np.array([-2.0]), 1.0))


@pytest.mark.parametrize("dtype", [DType.f16, DType.f32])
@pytest.mark.parametrize("op", ["syntony", "harmonize", "dhsr_cycle"])
def test_narrow_floats_give_the_f64_result_rounded(op: str, dtype: DType) -> None:
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -0.25, 2.0, 0.0]])
    b = Builder("f")
    p = b.param(TensorType(dtype, x.shape), "x")
    (out,) = interpret(b.build([b.add(op, [p])]), x.astype(dtype.np))
    assert out.dtype == dtype.np
    want = run(op, x.astype(dtype.np).astype(np.float64)).astype(dtype.np)
    assert np.array_equal(out, want)


RESONANT_UNARY = ["syntony", "spectral_syntony", "harmonize", "mobius_mask", "dhsr_cycle",
                  "prime_gate"]


@pytest.mark.parametrize("dtype", [DType.bool, DType.i32, DType.i64])
@pytest.mark.parametrize("op", RESONANT_UNARY + ["differentiate"])
def test_integer_input_is_rejected(op: str, dtype: DType) -> None:
    b = Builder("f")
    x = b.param(TensorType(dtype, (2, 4)), "x")
    attrs = {"alpha": 0.5} if op == "differentiate" else {}
    with pytest.raises(IRError) as info:
        b.add(op, [x], attrs)
    assert op in str(info.value) and str(dtype) in str(info.value)


@pytest.mark.parametrize("dtype", [DType.bool, DType.i32, DType.i64])
def test_golden_weights_rejects_non_float_dtype(dtype: DType) -> None:
    with pytest.raises(IRError, match="golden_weights"):
        Builder("f").add("golden_weights", [], {"n": 4, "dtype": dtype})
