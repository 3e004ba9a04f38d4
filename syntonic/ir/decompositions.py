"""Decomposition rules of the resonant ops into primitive ops, exactly per SPEC-ops.md.

Each rule is ``rule(b, op, operands) -> tuple[Value, ...]``: it appends primitive ops to
the Builder `b` (all located at ``op.loc``) and returns the values that replace
``op.results``. The rules are attached to the ops' registry entries
(``OpDef.decompose``, see :mod:`syntonic.ir.ops_resonant`); the decompose pass and
autodiff both use them.

Conventions. Golden weights, the Moebius mask and every other per-position factor are
computed in float64 at compile time and become constants of the working dtype, shaped
``[1, ..., N, ..., 1]`` and broadcast along the op's axis (``axis=None`` reshapes to a
flat vector first and back after). Reductions keep dims and broadcast back. f16 inputs
are computed in f32 and rounded once at the end (the reference computes in f64; sums
of squares overflow f16 long before the result does). Zero rows follow the spec: the
syntonies are 0, differentiate and harmonize return x (a select on the row energy),
so NaN propagates exactly as in the reference.

Example::

    >>> b = Builder("f"); x = b.param(TensorType.parse("f32[4]"))
    >>> op = b.add_op("syntony", [x]); sub = Builder("g"); y = sub.param(x.type)
    >>> (s,) = get_op("syntony").decompose(sub, op, [y])   # sum, mul, div, select ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.ir import resonant as R
from syntonic.ir.graph import Builder, Location, Op, Value
from syntonic.ir.types import DType

Rule = Callable[[Builder, Op, Sequence[Value]], tuple[Value, ...]]

_PAD_MIN = 64  # vectors at least this long store only their non-zero head (see _Emit.along)
_WIDE_ATTR = 1e8  # larger (or non-finite) alpha/strength: compute in f64 (see _axis_rule)


class _Emit:
    """Appends primitive ops at one source location, with small shape helpers."""

    def __init__(self, b: Builder, loc: Location | None) -> None:
        self.b = b
        self.loc = loc

    def op(self, name: str, *xs: Value, **attrs: Any) -> Value:
        return self.b.add(name, xs, attrs or None, self.loc)

    def const(self, array: np.ndarray, dtype: DType) -> Value:
        with np.errstate(all="ignore"):
            arr = np.array(np.asarray(array).astype(dtype.np), order="C")
        return self.op("constant", value=arr)

    def scalar(self, value: float | bool, dtype: DType, shape: tuple[int, ...]) -> Value:
        """`value` broadcast to `shape` (a splat constant in canonical form)."""
        return self.bcast(self.const(np.asarray(value), dtype), shape)

    def bcast(self, v: Value, shape: tuple[int, ...]) -> Value:
        return v if v.shape == tuple(shape) else self.op("broadcast", v, shape=tuple(shape))

    def reshape(self, v: Value, shape: tuple[int, ...]) -> Value:
        return v if v.shape == tuple(shape) else self.op("reshape", v, shape=tuple(shape))

    def along(self, vec: np.ndarray, like: Value, ax: int) -> Value:
        """A per-position constant along axis `ax`, broadcast to `like`'s shape.

        A long tail of exact zeros (the golden weights underflow after ~35 positions)
        is not stored: the constant is its non-zero head, zero-padded to length N.
        """
        n = like.shape[ax]
        dtype = DType.bool if vec.dtype == np.bool_ else like.dtype
        with np.errstate(all="ignore"):
            cast = np.asarray(vec).astype(dtype.np)
        nonzero = np.flatnonzero(cast)
        head = int(nonzero[-1]) + 1 if nonzero.size else 0
        shape = tuple(n if a == ax else 1 for a in range(len(like.shape)))
        if dtype.is_float and n >= _PAD_MIN and head <= n // 2:
            short = tuple(head if a == ax else 1 for a in range(len(like.shape)))
            high = tuple(n - head if a == ax else 0 for a in range(len(like.shape)))
            zeros = (0,) * len(like.shape)
            value = self.op("pad", self.const(np.reshape(cast[:head], short), dtype),
                            low=zeros, high=high, interior=zeros)
        else:
            value = self.const(np.reshape(cast, shape), dtype)
        return self.bcast(value, like.shape)

    def ramp(self, like: Value, ax: int, dtype: DType | None = None) -> Value:
        """i / N along axis `ax` in `dtype` (from an iota, as the spec's arange(N)/N)."""
        n = like.shape[ax]
        dtype = dtype or like.dtype
        shape = tuple(n if a == ax else 1 for a in range(len(like.shape)))
        index = self.op("iota", shape=shape, dim=ax, dtype=DType.i64 if n > 2**24 else DType.i32)
        # Broadcast first: folding computes small ramps at [1..N..1] and broadcasts them;
        # a large one stays index arithmetic at the consumer's shape (no extra kernel).
        full = self.op("cast", self.bcast(index, like.shape), dtype=dtype)
        return self.op("div", full, self.scalar(float(n), dtype, like.shape))

    def row_sum(self, v: Value, ax: int, keepdims: bool = True) -> Value:
        return self.op("sum", v, axes=(ax,), keepdims=keepdims)

    def up(self, v: Value, ax: int, like: Value) -> Value:
        """A keepdims row value broadcast back over axis `ax` of `like`."""
        return self.bcast(v, like.shape)


def _working(e: _Emit, x: Value) -> Value:
    """x in the dtype the decomposition computes in (f16 -> f32)."""
    return e.op("cast", x, dtype=DType.f32) if x.dtype is DType.f16 else x


def _result(e: _Emit, y: Value, dtype: DType) -> Value:
    return e.op("cast", y, dtype=dtype) if y.dtype is not dtype else y


def _flat(e: _Emit, x: Value, axis: int | None) -> tuple[Value, int]:
    """x with the op's axis as a real axis: flattened for ``axis=None``."""
    if axis is None:
        return e.reshape(x, (x.type.size,)), 0
    return x, axis % len(x.shape)


def _safe_div(e: _Emit, num: Value, den: Value) -> Value:
    """num/den, and 0 where den == 0 (the spec's convention; NaN stays NaN)."""
    zero = e.scalar(0.0, num.dtype, num.shape)
    return e.op("select", e.op("eq", den, zero), zero, e.op("div", num, den))


# ------------------------------------------------------------- the formulas
#
# Energies, norms and the syntony ratios are *accumulated* in float64 (the reference's
# precision): squares of any f16/f32 value fit in f64, so no row overflows or underflows
# to a spurious zero row, and long rows keep their precision. Elementwise outputs are
# computed in the working dtype from those row values.


def _acc(e: _Emit, v: Value) -> Value:
    """v in the accumulation dtype (f64)."""
    return v if v.dtype is DType.f64 else e.op("cast", v, dtype=DType.f64)


def _energy(e: _Emit, x: Value, ax: int, keepdims: bool = True) -> Value:
    """sum x^2 along `ax`, accumulated in f64."""
    xa = _acc(e, x)
    return e.op("sum", e.op("mul", xa, xa), axes=(ax,), keepdims=keepdims)


def _rows_as(e: _Emit, v: Value, dtype: DType) -> Value:
    return v if v.dtype is dtype else e.op("cast", v, dtype=dtype)


def syntony_rows(e: _Emit, x: Value, ax: int, keepdims: bool) -> Value:
    """S = (sum |x| sqrt(w))^2 / (W sum x^2) along `ax` (f64); 0 where sum x^2 = 0."""
    n = x.shape[ax]
    w = R.golden_weights(n)
    xa = _acc(e, x)
    a = e.op("sum", e.op("mul", e.op("abs", xa), e.along(np.sqrt(w), xa, ax)),
             axes=(ax,), keepdims=keepdims)
    energy = _energy(e, x, ax, keepdims)
    num = e.op("mul", a, a)
    den = e.op("mul", e.scalar(float(w.sum()), DType.f64, energy.shape), energy)
    return _safe_div(e, num, den)


def spectral_rows(e: _Emit, x: Value, ax: int) -> Value:
    """S = sum w x^2 / sum x^2 along `ax` (f64); 0 where sum x^2 = 0."""
    w = R.golden_weights(x.shape[ax])
    xa = _acc(e, x)
    num = e.row_sum(e.op("mul", e.op("mul", e.along(w, xa, ax), xa), xa), ax, False)
    den = _energy(e, x, ax, False)
    return _safe_div(e, num, den)


def differentiate_rows(e: _Emit, x: Value, ax: int, alpha: float | Value) -> Value:
    """u = x (1 + alpha i/N); y = u sqrt(E/U), y = x where U = 0 (alpha: float or keepdims row)."""
    if isinstance(alpha, Value):
        alpha_b = e.bcast(_rows_as(e, alpha, x.dtype), x.shape)
        factor = e.op("add", e.scalar(1.0, x.dtype, x.shape), e.op("mul", alpha_b, e.ramp(x, ax)))
    else:  # a Python float: the factor in f64 (alpha may not fit the dtype), rounded once
        f64 = DType.f64
        scaled = e.op("mul", e.scalar(alpha, f64, x.shape), e.ramp(x, ax, f64))
        factor = _rows_as(e, e.op("add", e.scalar(1.0, f64, x.shape), scaled), x.dtype)
    u = e.op("mul", x, factor)
    energy = _energy(e, x, ax)
    u_energy = _energy(e, u, ax)
    scale = _rows_as(e, e.op("sqrt", e.op("div", energy, u_energy)), x.dtype)
    y = e.op("mul", u, e.up(scale, ax, x))
    zero = e.op("eq", u_energy, e.scalar(0.0, DType.f64, u_energy.shape))
    return e.op("select", e.up(zero, ax, x), x, y)


def harmonize_rows(e: _Emit, x: Value, ax: int, g: float, energy: Value | None = None) -> Value:
    """y = (1-g) x + g s t, t_i = sqrt(E (1-Q) w_i / W), s = sign(x) (+1 at 0); y = x where E = 0.

    g t_i is computed as sqrt(E) * c_i with the compile-time constant
    c_i = g sqrt((1-Q) w_i / W) (equal to the spec's formula up to rounding). `energy`
    is E (f64, keepdims) when the caller already has it.
    """
    c = R.harmonize_profile(x.shape[ax], g)
    if energy is None:
        energy = _energy(e, x, ax)
    root = _rows_as(e, e.op("sqrt", energy), x.dtype)
    t = e.op("mul", e.up(root, ax, x), e.along(c, x, ax))
    positive = e.op("ge", x, e.scalar(0.0, x.dtype, x.shape))
    st = e.op("select", positive, t, e.op("neg", t))
    y = e.op("add", e.op("mul", e.scalar(1.0 - g, x.dtype, x.shape), x), st)
    zero = e.op("eq", energy, e.scalar(0.0, DType.f64, energy.shape))
    return e.op("select", e.up(zero, ax, x), x, y)


def mobius_rows(e: _Emit, x: Value, ax: int) -> Value:
    """x where i+1 is square-free, else exactly 0 (a select: NaN there becomes 0)."""
    keep = e.along(R.mobius_keep(x.shape[ax]), x, ax)
    return e.op("select", keep, x, e.scalar(0.0, x.dtype, x.shape))


# ------------------------------------------------------------- rules per op


def _wide_attribute(attrs: dict[str, Any]) -> bool:
    """True when a float attribute is non-finite or too large for f32 arithmetic."""
    values = [attrs.get(k) for k in ("alpha", "strength")]
    return any(v is not None and not abs(v) <= _WIDE_ATTR for v in values)


def _axis_rule(body: Callable[[_Emit, Value, int, dict[str, Any]], Value],
               shape_preserving: bool) -> Rule:
    """Wrap a formula on (x, axis) with the dtype and ``axis=None`` conventions.

    The working dtype is x's (f32 for f16), or f64 when an attribute (alpha, strength)
    is non-finite or larger than 1e8: known at compile time, and then f32 arithmetic
    could overflow where the float64 reference does not.
    """

    def rule(b: Builder, op: Op, operands: Sequence[Value]) -> tuple[Value, ...]:
        e = _Emit(b, op.loc)
        attrs = op.attr
        x0 = operands[0]
        work = _working(e, x0)
        if _wide_attribute(attrs) and work.dtype is not DType.f64:
            work = e.op("cast", work, dtype=DType.f64)
        x, ax = _flat(e, work, attrs.get("axis", -1))
        extra = {"operands": operands[1:], **attrs}
        y = body(e, x, ax, extra)
        if shape_preserving:
            y = e.reshape(y, x0.shape)
        return (_result(e, y, op.results[0].dtype),)

    return rule


def _alpha_row(e: _Emit, alpha: Value, x: Value, ax: int) -> Value:
    """A per-row alpha (x's shape without the axis) as a keepdims row of x's dtype."""
    a = _rows_as(e, alpha, x.dtype)
    keep = tuple(1 if k == ax else d for k, d in enumerate(x.shape))
    return e.reshape(a, keep)


def _golden_weights(b: Builder, op: Op, operands: Sequence[Value]) -> tuple[Value, ...]:
    e = _Emit(b, op.loc)
    attrs = op.attr
    return (e.const(R.golden_weights(attrs["n"]), attrs["dtype"]),)


def _differentiate(e: _Emit, x: Value, ax: int, a: dict[str, Any]) -> Value:
    if a["operands"]:
        return differentiate_rows(e, x, ax, _alpha_row(e, a["operands"][0], x, ax))
    return differentiate_rows(e, x, ax, float(a["alpha"]))


def _dhsr(e: _Emit, x: Value, ax: int, a: dict[str, Any]) -> Value:
    """differentiate -> Moebius -> harmonize in three passes over a row: syntony; the
    differentiated energy U = sum u^2 together with its kept part K = sum_kept u^2; the
    output. The harmonize energy is (E/U) K: the energy of the masked, rescaled row in
    exact arithmetic (in floating point closer to the float64 reference than a sum of the
    rounded row). alpha = (1 - S) phi^-2 >= 0, so U = 0 only for an all-zero row, where
    u = x and the scale 1 gives differentiate's y = x."""
    s0 = syntony_rows(e, x, ax, keepdims=True)
    one = e.scalar(1.0, s0.dtype, s0.shape)
    alpha = e.op("mul", e.op("sub", one, s0), e.scalar(R.PHI_INV2, s0.dtype, s0.shape))
    alpha_b = e.bcast(_rows_as(e, alpha, x.dtype), x.shape)
    factor = e.op("add", e.scalar(1.0, x.dtype, x.shape), e.op("mul", alpha_b, e.ramp(x, ax)))
    u = e.op("mul", x, factor)
    ua = _acc(e, u)
    uq = e.op("mul", ua, ua)
    u_energy = e.row_sum(uq, ax)
    kept = e.op("select", e.along(R.mobius_keep(x.shape[ax]), uq, ax), uq,
                e.scalar(0.0, DType.f64, uq.shape))
    ratio = e.op("select", e.op("eq", u_energy, e.scalar(0.0, DType.f64, u_energy.shape)),
                 e.scalar(1.0, DType.f64, u_energy.shape),
                 e.op("div", _energy(e, x, ax), u_energy))
    scale = _rows_as(e, e.op("sqrt", ratio), x.dtype)
    m = mobius_rows(e, e.op("mul", u, e.up(scale, ax, x)), ax)
    return harmonize_rows(e, m, ax, R.PHI_INV, e.op("mul", ratio, e.row_sum(kept, ax)))


def _prime_gate(b: Builder, op: Op, operands: Sequence[Value]) -> tuple[Value, ...]:
    x0 = operands[0]
    d = x0.shape[-1]
    if d not in R.PRIME_DIMS:
        return (x0,)  # y = x outside PRIME_DIMS
    e = _Emit(b, op.loc)
    x = _working(e, x0)
    ax = len(x.shape) - 1
    norm = e.op("sqrt", _energy(e, x, ax))
    den = e.op("maximum", norm, e.scalar(R.PRIME_GATE_EPS, DType.f64, norm.shape))
    den = _rows_as(e, den, x.dtype)
    y = e.op("mul", e.op("div", x, e.up(den, ax, x)),
             e.scalar(R.prime_gate_scale(d), x.dtype, x.shape))
    return (_result(e, y, x0.dtype),)


RULES: dict[str, Rule] = {
    "golden_weights": _golden_weights,
    "syntony": _axis_rule(lambda e, x, ax, a: syntony_rows(e, x, ax, keepdims=False), False),
    "spectral_syntony": _axis_rule(lambda e, x, ax, a: spectral_rows(e, x, ax), False),
    "differentiate": _axis_rule(_differentiate, True),
    "harmonize": _axis_rule(lambda e, x, ax, a: harmonize_rows(e, x, ax, a["strength"]), True),
    "mobius_mask": _axis_rule(lambda e, x, ax, a: mobius_rows(e, x, ax), True),
    "dhsr_cycle": _axis_rule(_dhsr, True),
    "prime_gate": _prime_gate,
}


__all__ = ["RULES", "differentiate_rows", "harmonize_rows", "mobius_rows", "spectral_rows",
           "syntony_rows"]
