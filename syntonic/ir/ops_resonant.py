"""Registry entries of the resonant ops of SPEC-ops.md.

They stay first-class in traced IR (a dump shows the user's vocabulary) and are
decomposed into primitive ops by a pass. Reference rules live in
:mod:`syntonic.ir.resonant` and compute in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from syntonic.ir import resonant as R
from syntonic.ir.attrs import DTYPE, FLOAT, INT, OPT_FLOAT, OPT_INT, AttrSpec
from syntonic.ir.decompositions import RULES as DECOMPOSE
from syntonic.ir.ops import check_axis, check_float
from syntonic.ir.registry import InferError, OpDef, Trait, register
from syntonic.ir.types import DType, TensorType

Types = tuple[TensorType, ...]
Attrs = Mapping[str, Any]
RES = frozenset({Trait.RESONANT})
AXIS = ("axis", AttrSpec(OPT_INT, -1))


def _row_shape(t: TensorType, axis: int | None, op: str) -> tuple[int, ...]:
    """Shape of `t` with the op's axis removed (scalar for axis=None)."""
    check_float(t, op)
    if axis is None:
        return ()
    if t.rank == 0:
        raise InferError(
            f"{op} needs at least one axis, got the scalar {t}", "shape",
            f"pass axis=None to treat the tensor as flat, or give {op} a vector",
        )
    ax = check_axis(axis, t.rank, op)
    return t.shape[:ax] + t.shape[ax + 1 :]


def _reduce_rows(op: str):
    def infer(ts: Types, a: Attrs) -> TensorType:
        return ts[0].with_shape(_row_shape(ts[0], a["axis"], op))

    return infer


def _same_as_x(op: str):
    def infer(ts: Types, a: Attrs) -> TensorType:
        _row_shape(ts[0], a.get("axis", -1), op)
        return ts[0]

    return infer


def _infer_golden(ts: Types, a: Attrs) -> TensorType:
    if a["n"] < 0:
        raise InferError(f"golden_weights: n must be >= 0, got {a['n']}", "attr")
    if not a["dtype"].is_float:
        raise InferError(f"golden_weights: dtype must be floating, got {a['dtype']}", "dtype")
    return TensorType(a["dtype"], (a["n"],))


register(
    OpDef(
        "golden_weights",
        (0, 0),
        (("n", AttrSpec(INT)), ("dtype", AttrSpec(DTYPE, DType.f32))),
        frozenset({Trait.SOURCE, Trait.RESONANT}),
        _infer_golden,
        lambda n, dtype: R.golden_weights(n),
        "The golden measure w_i = exp(-i^2/phi), i < n.",
        decompose=DECOMPOSE["golden_weights"],
    )
)

register(
    OpDef(
        "syntony", (1, 1), (AXIS,), RES, _reduce_rows("syntony"), R.syntony,
        "(sum |x| sqrt(w))^2 / (W sum x^2) along `axis`; 0 for a zero row.",
        decompose=DECOMPOSE["syntony"],
    )
)
register(
    OpDef(
        "spectral_syntony", (1, 1), (AXIS,), RES, _reduce_rows("spectral_syntony"),
        R.spectral_syntony,
        "sum w x^2 / sum x^2 along `axis`; 0 for a zero row.",
        decompose=DECOMPOSE["spectral_syntony"],
    )
)


def _infer_differentiate(ts: Types, a: Attrs) -> TensorType:
    x = ts[0]
    rows = _row_shape(x, a["axis"], "differentiate")
    if len(ts) == 2:
        if a["alpha"] is not None:
            raise InferError(
                "differentiate takes alpha either as an attribute or as an operand, not both",
                "attr",
            )
        alpha = ts[1]
        if alpha.dtype != x.dtype or alpha.shape != rows:
            raise InferError(
                f"differentiate: a per-row alpha must be {x.with_shape(rows)} "
                f"(x's shape without the axis), got {alpha}",
                "shape",
                "pass one alpha per row, or a Python float",
            )
    elif a["alpha"] is None:
        raise InferError("differentiate needs alpha (an attribute or an operand)", "attr")
    return x


def _ref_differentiate(x: np.ndarray, alpha_t: np.ndarray | None = None, *,
                       alpha: float | None, axis: int | None) -> np.ndarray:
    return R.differentiate(x, alpha if alpha_t is None else alpha_t, axis)


register(
    OpDef(
        "differentiate",
        (1, 2),
        (("alpha", AttrSpec(OPT_FLOAT, None)), AXIS),
        RES,
        _infer_differentiate,
        _ref_differentiate,
        "u = x(1 + alpha i/N), rescaled to x's energy along `axis`.",
        decompose=DECOMPOSE["differentiate"],
    )
)
register(
    OpDef(
        "harmonize", (1, 1), (("strength", AttrSpec(FLOAT, R.PHI_INV)), AXIS), RES,
        _same_as_x("harmonize"), R.harmonize,
        "Pull each row toward the golden profile of the same energy less Q.",
        decompose=DECOMPOSE["harmonize"],
    )
)
register(
    OpDef(
        "mobius_mask", (1, 1), (AXIS,), RES, _same_as_x("mobius_mask"), R.mobius_mask,
        "Zero positions i where i+1 is not square-free.",
        decompose=DECOMPOSE["mobius_mask"],
    )
)
register(
    OpDef(
        "dhsr_cycle", (1, 1), (AXIS,), RES, _same_as_x("dhsr_cycle"), R.dhsr_cycle,
        "harmonize(mobius_mask(differentiate(x, (1 - syntony(x)) phi^-2)), phi^-1).",
        decompose=DECOMPOSE["dhsr_cycle"],
    )
)


def _infer_prime_gate(ts: Types, a: Attrs) -> TensorType:
    _row_shape(ts[0], -1, "prime_gate")
    return ts[0]


register(
    OpDef(
        "prime_gate", (1, 1), (), RES, _infer_prime_gate, R.prime_gate,
        "For a last-axis size d in PRIME_DIMS: x / max(|x|_2, 1e-12) * b(d); else x.",
        decompose=DECOMPOSE["prime_gate"],
    )
)
