"""The core op registry: one declaration per op (attributes, traits, type rule, reference).

Reading guide: each ``register(OpDef(...))`` below is the single source of truth for an
op. Type rules raise :class:`InferError` with a message in user terms; reference rules
are plain numpy and define the semantics every backend is tested against. The resonant
ops (SPEC-ops.md) are registered in :mod:`syntonic.ir.ops_resonant`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from syntonic.ir.attrs import BOOL, DTYPE, INT, INTS, REQUIRED, TENSOR, AttrSpec
from syntonic.ir.registry import InferError, OpDef, Trait, register
from syntonic.ir.types import DType, TensorType

T = Trait
Types = tuple[TensorType, ...]
Attrs = Mapping[str, Any]


# --------------------------------------------------------------------------- helpers


def check_float(t: TensorType, op: str) -> None:
    if not t.dtype.is_float:
        raise InferError(
            f"{op} needs a floating-point operand (f16/f32/f64), got {t}",
            "dtype",
            f"cast first, e.g. x.astype('f32'), before calling {op}",
        )


def check_numeric(t: TensorType, op: str) -> None:
    if t.dtype.is_bool:
        raise InferError(
            f"{op} is not defined on bool tensors, got {t}",
            "dtype",
            "cast first, e.g. x.astype('i32') or x.astype('f32')",
        )


def check_axis(axis: int, rank: int, op: str) -> int:
    """Normalise a possibly negative axis; raise naming the op on a bad one."""
    if not -rank <= axis < rank:
        raise InferError(
            f"{op}: axis {axis} is out of range for a tensor of rank {rank}",
            "shape",
            f"use an axis in [{-rank}, {rank - 1}]" if rank else "a scalar has no axes",
        )
    return axis % rank


def broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """Numpy broadcasting of two shapes, or None when they do not broadcast."""
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da != db and da != 1 and db != 1:
            return None
        out.append(db if da == 1 else da)
    return tuple(reversed(out))


def _same_types(ts: Types, op: str) -> None:
    first = ts[0]
    for t in ts[1:]:
        if t.shape != first.shape:
            raise InferError(
                f"{op}: operand shapes {list(first.shape)} and {list(t.shape)} differ "
                "(the IR needs an explicit broadcast)",
                "shape",
                "broadcast one operand to the other's shape",
            )
        if t.dtype != first.dtype:
            raise InferError(
                f"{op}: operand dtypes {first.dtype} and {t.dtype} differ",
                "dtype",
                "cast one operand with .astype(...)",
            )


# ---------------------------------------------------------------- source ops


def _infer_constant(ts: Types, a: Attrs) -> TensorType:
    arr = a["value"].array
    return TensorType(DType.from_numpy(arr.dtype), tuple(arr.shape))


register(
    OpDef(
        "constant",
        (0, 0),
        (("value", AttrSpec(TENSOR)),),
        frozenset({T.SOURCE}),
        _infer_constant,
        lambda value: value.array,
        "A tensor literal: constant {value=dense<[1.0,2.0]>} : f32[2].",
    )
)


def _infer_iota(ts: Types, a: Attrs) -> TensorType:
    shape = a["shape"]
    if any(d < 0 for d in shape):
        raise InferError(f"iota: negative dimension in shape {list(shape)}", "attr")
    check_axis(a["dim"], len(shape), "iota")
    if a["dtype"].is_bool:
        raise InferError("iota cannot produce bool", "dtype")
    return TensorType(a["dtype"], tuple(shape))


def _ref_iota(shape: tuple[int, ...], dim: int, dtype: DType) -> np.ndarray:
    dim = dim % len(shape)
    idx = np.arange(shape[dim], dtype=dtype.np).reshape(
        [shape[dim] if i == dim else 1 for i in range(len(shape))]
    )
    return np.broadcast_to(idx, shape).astype(dtype.np)


register(
    OpDef(
        "iota",
        (0, 0),
        (
            ("shape", AttrSpec(INTS)),
            ("dim", AttrSpec(INT, 0)),
            ("dtype", AttrSpec(DTYPE, DType.i32)),
        ),
        frozenset({T.SOURCE}),
        _infer_iota,
        _ref_iota,
        "Indices along `dim`, broadcast over `shape`.",
    )
)


# ------------------------------------------------------------------ unary ops


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _rsqrt(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 / np.sqrt(x)).astype(x.dtype)


# name -> (numpy rule, float only?)
UNARY: dict[str, tuple[Any, bool]] = {
    "neg": (np.negative, False),
    "abs": (np.abs, False),
    "exp": (np.exp, True),
    "log": (np.log, True),
    "sqrt": (np.sqrt, True),
    "rsqrt": (_rsqrt, True),
    "sin": (np.sin, True),
    "cos": (np.cos, True),
    "tanh": (np.tanh, True),
    "sigmoid": (_sigmoid, True),
    "erf": (_erf, True),
    "floor": (np.floor, True),
    "sign": (np.sign, False),
}


def _unary_infer(name: str, float_only: bool):
    def infer(ts: Types, a: Attrs) -> TensorType:
        (check_float if float_only else check_numeric)(ts[0], name)
        return ts[0]

    return infer


def _quiet(fn):
    def run(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x)).astype(x.dtype, copy=False)

    return run


for _name, (_fn, _float_only) in UNARY.items():
    register(
        OpDef(
            _name,
            (1, 1),
            (),
            frozenset({T.ELEMENTWISE, T.UNARY}),
            _unary_infer(_name, _float_only),
            _quiet(_fn),
            f"Elementwise {_name}.",
        )
    )


register(
    OpDef(
        "stop_gradient",
        (1, 1),
        (),
        frozenset(),
        lambda ts, a: ts[0],
        lambda x: x,
        "Identity whose reverse-mode derivative is zero (JAX's stop_gradient): reverse-mode "
        "AD does not differentiate through it. Canonicalization removes it, so kernels never "
        "see it.",
    )
)


# ----------------------------------------------------------------- binary ops

def _maximum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """IEEE 754-2019 maximum: NaN propagates and +0.0 > -0.0 (np.maximum returns its first
    operand for 0.0 vs -0.0, which would make the result depend on operand order)."""
    out = np.maximum(x, y)
    if out.dtype.kind == "f":
        out = np.where((x == 0) & (y == 0), np.where(np.signbit(x), y, x), out)
    return out


def _minimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """IEEE 754-2019 minimum: NaN propagates and -0.0 < +0.0 (see _maximum)."""
    out = np.minimum(x, y)
    if out.dtype.kind == "f":
        out = np.where((x == 0) & (y == 0), np.where(np.signbit(x), x, y), out)
    return out


# name -> (numpy rule, float only?, commutative?)
BINARY: dict[str, tuple[Any, bool, bool]] = {
    "add": (np.add, False, True),
    "sub": (np.subtract, False, False),
    "mul": (np.multiply, False, True),
    "div": (np.divide, True, False),
    "pow": (np.power, True, False),
    "maximum": (_maximum, False, True),
    "minimum": (_minimum, False, True),
}


def _binary_infer(name: str, float_only: bool):
    def infer(ts: Types, a: Attrs) -> TensorType:
        _same_types(ts, name)
        (check_float if float_only else check_numeric)(ts[0], name)
        return ts[0]

    return infer


def _quiet2(fn):
    def run(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, y)).astype(x.dtype, copy=False)

    return run


for _name, (_fn, _float_only, _comm) in BINARY.items():
    register(
        OpDef(
            _name,
            (2, 2),
            (),
            frozenset({T.ELEMENTWISE, T.BINARY} | ({T.COMMUTATIVE} if _comm else set())),
            _binary_infer(_name, _float_only),
            _quiet2(_fn),
            f"Elementwise {_name} of two tensors of the same type.",
        )
    )

def _shr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logical right shift of the bit pattern (zeros shifted in); shifts >= width give 0."""
    if x.dtype == np.bool_:
        return np.where(y > 0, False, x)
    unsigned = x.view(x.dtype.str.replace("i", "u"))
    width = x.dtype.itemsize * 8
    out = np.where((y >= 0) & (y < width), unsigned >> np.clip(y, 0, width - 1).astype(
        unsigned.dtype), 0)
    return out.astype(unsigned.dtype).view(x.dtype)


def _shl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Left shift (bits shifted out are lost); shifts >= width give 0."""
    if x.dtype == np.bool_:
        return np.where(y > 0, False, x)
    width = x.dtype.itemsize * 8
    unsigned = x.view(x.dtype.str.replace("i", "u"))
    out = np.where((y >= 0) & (y < width), unsigned << np.clip(y, 0, width - 1).astype(
        unsigned.dtype), 0)
    return out.astype(unsigned.dtype).view(x.dtype)


# name -> (numpy rule, commutative?). Integer and bool operands only.
BITWISE: dict[str, tuple[Any, bool]] = {
    "bitand": (np.bitwise_and, True),
    "bitor": (np.bitwise_or, True),
    "bitxor": (np.bitwise_xor, True),
    "shl": (_shl, False),
    "shr": (_shr, False),
}


def _bitwise_infer(name: str):
    def infer(ts: Types, a: Attrs) -> TensorType:
        _same_types(ts, name)
        if ts[0].dtype.is_float:
            raise InferError(f"{name} needs integer or bool operands, got {ts[0]}", "dtype",
                             "bitwise operations apply to i32/i64/bool tensors")
        return ts[0]

    return infer


for _name, (_fn, _comm) in BITWISE.items():
    register(
        OpDef(
            _name,
            (2, 2),
            (),
            frozenset({T.ELEMENTWISE, T.BINARY} | ({T.COMMUTATIVE} if _comm else set())),
            _bitwise_infer(_name),
            _quiet2(_fn),
            f"Elementwise {_name} on the bit patterns of integer/bool tensors"
            + (" (logical: zeros shifted in; shifts outside [0, width) give 0)."
               if _name in ("shl", "shr") else "."),
        )
    )


COMPARISONS: dict[str, Any] = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}


def _compare_infer(name: str):
    def infer(ts: Types, a: Attrs) -> TensorType:
        _same_types(ts, name)
        return ts[0].with_dtype(DType.bool)

    return infer


for _name, _fn in COMPARISONS.items():
    register(
        OpDef(
            _name,
            (2, 2),
            (),
            frozenset({T.ELEMENTWISE, T.BINARY, T.COMPARISON}
                      | ({T.COMMUTATIVE} if _name in ("eq", "ne") else set())),
            _compare_infer(_name),
            _fn,
            f"Elementwise comparison {_name}, producing bool.",
        )
    )


def _infer_select(ts: Types, a: Attrs) -> TensorType:
    cond, x, y = ts
    if cond.dtype is not DType.bool:
        raise InferError(
            f"select: the condition must be bool, got {cond}",
            "dtype",
            "compare to get a bool mask, e.g. sn.where(x > 0, a, b)",
        )
    _same_types((x, y), "select")
    if cond.shape != x.shape:
        raise InferError(
            f"select: condition shape {list(cond.shape)} differs from {list(x.shape)}",
            "shape",
            "broadcast the condition to the values' shape",
        )
    return x


register(
    OpDef(
        "select",
        (3, 3),
        (),
        frozenset({T.ELEMENTWISE}),
        _infer_select,
        lambda c, x, y: np.where(c, x, y),
        "select %c, %a, %b: a where c else b (numpy where).",
    )
)


def _ref_cast(x: np.ndarray, dtype: DType) -> np.ndarray:
    with np.errstate(all="ignore"):
        if dtype.is_int and x.dtype.kind == "f":
            # float -> int truncates toward zero; NaN/inf/out of range become 0 (defined here,
            # so every backend agrees instead of inheriting C's undefined behaviour).
            # In range: trunc(x) in [-2^(b-1), 2^(b-1)); both bounds are powers of two,
            # exact in every float type (or +-inf in f16, whose finite values all fit).
            hi = -float(np.iinfo(dtype.np).min)
            t = np.trunc(np.where(np.isfinite(x), x, 0))
            ok = np.isfinite(x) & (t >= -hi) & (t < hi)
            return np.where(ok, t, 0).astype(dtype.np)
        return x.astype(dtype.np)


register(
    OpDef(
        "cast",
        (1, 1),
        (("dtype", AttrSpec(DTYPE)),),
        frozenset({T.ELEMENTWISE, T.UNARY}),
        lambda ts, a: ts[0].with_dtype(a["dtype"]),
        _ref_cast,
        "Convert the element type. float->int truncates; NaN/inf/out-of-range give 0.",
    )
)


# ----------------------------------------------------------------- layout ops


def _infer_broadcast(ts: Types, a: Attrs) -> TensorType:
    src, shape = ts[0].shape, tuple(a["shape"])
    if any(d < 0 for d in shape):
        raise InferError(f"broadcast: negative dimension in shape {list(shape)}", "attr")
    if len(src) > len(shape) or broadcast_shapes(src, shape) != shape:
        raise InferError(
            f"cannot broadcast shape {list(src)} to {list(shape)}",
            "shape",
            "shapes broadcast when, aligned on the right, each dimension is equal or 1",
        )
    return ts[0].with_shape(shape)


register(
    OpDef(
        "broadcast",
        (1, 1),
        (("shape", AttrSpec(INTS)),),
        frozenset({T.LAYOUT}),
        _infer_broadcast,
        lambda x, shape: np.broadcast_to(x, shape).copy(),
        "Numpy broadcasting of the operand to `shape` (dimensions aligned on the right).",
    )
)


def _infer_reshape(ts: Types, a: Attrs) -> TensorType:
    shape = tuple(a["shape"])
    if any(d < 0 for d in shape) or math.prod(shape) != ts[0].size:
        raise InferError(
            f"cannot reshape {ts[0]} ({ts[0].size} elements) to {list(shape)}",
            "shape",
            "the new shape must have the same number of elements (use -1 for one inferred "
            "dimension)",
        )
    return ts[0].with_shape(shape)


register(
    OpDef(
        "reshape",
        (1, 1),
        (("shape", AttrSpec(INTS)),),
        frozenset({T.LAYOUT}),
        _infer_reshape,
        lambda x, shape: np.reshape(x, shape),
        "Row-major reshape to `shape` (same number of elements).",
    )
)


def _infer_transpose(ts: Types, a: Attrs) -> TensorType:
    perm = tuple(a["perm"])
    if sorted(perm) != list(range(ts[0].rank)):
        raise InferError(
            f"transpose: perm {list(perm)} is not a permutation of the {ts[0].rank} axes "
            f"of {ts[0]}",
            "shape",
            f"give each of the axes 0..{ts[0].rank - 1} exactly once",
        )
    return ts[0].with_shape(tuple(ts[0].shape[p] for p in perm))


register(
    OpDef(
        "transpose",
        (1, 1),
        (("perm", AttrSpec(INTS)),),
        frozenset({T.LAYOUT}),
        _infer_transpose,
        lambda x, perm: np.transpose(x, perm),
        "Permute axes: result axis i is operand axis perm[i].",
    )
)


def _infer_slice(ts: Types, a: Attrs) -> TensorType:
    t = ts[0]
    start, stop, step = a["start"], a["stop"], a["step"]
    if not len(start) == len(stop) == len(step) == t.rank:
        raise InferError(
            f"slice: start/stop/step need one entry per axis of {t}", "attr"
        )
    shape = []
    for axis, (b, e, s, d) in enumerate(zip(start, stop, step, t.shape)):
        if s <= 0 or not 0 <= b <= d or not b <= e <= d:
            raise InferError(
                f"slice: axis {axis} range {b}:{e}:{s} is invalid for dimension {d}",
                "shape",
                "slices in the IR use 0 <= start <= stop <= dim and step >= 1",
            )
        shape.append(len(range(b, e, s)))
    return t.with_shape(tuple(shape))


register(
    OpDef(
        "slice",
        (1, 1),
        (("start", AttrSpec(INTS)), ("stop", AttrSpec(INTS)), ("step", AttrSpec(INTS))),
        frozenset({T.LAYOUT}),
        _infer_slice,
        lambda x, start, stop, step: x[tuple(map(slice, start, stop, step))].copy(),
        "Static strided slice, one start:stop:step per axis (step >= 1).",
    )
)


def _infer_pad(ts: Types, a: Attrs) -> TensorType:
    t = ts[0]
    low, high, interior = a["low"], a["high"], a["interior"]
    if not len(low) == len(high) == len(interior) == t.rank:
        raise InferError(f"pad: low/high/interior need one entry per axis of {t}", "attr")
    if any(v < 0 for v in (*low, *high, *interior)):
        raise InferError(f"pad: negative padding {list(low)}/{list(high)}/{list(interior)}",
                         "attr", "padding amounts are >= 0 (use slice to crop)")
    shape = tuple(
        lo + hi + d + max(d - 1, 0) * it for lo, hi, it, d in zip(low, high, interior, t.shape)
    )
    return t.with_shape(shape)


def _ref_pad(x: np.ndarray, low: tuple[int, ...], high: tuple[int, ...],
             interior: tuple[int, ...]) -> np.ndarray:
    shape = _infer_pad((TensorType.of(x),), {"low": low, "high": high,
                                              "interior": interior}).shape
    out = np.zeros(shape, dtype=x.dtype)
    index = tuple(slice(lo, lo + (d - 1) * (it + 1) + 1 if d else lo, it + 1)
                  for lo, it, d in zip(low, interior, x.shape))
    out[index] = x
    return out


register(
    OpDef(
        "pad",
        (1, 1),
        (("low", AttrSpec(INTS)), ("high", AttrSpec(INTS)), ("interior", AttrSpec(INTS))),
        frozenset({T.LAYOUT}),
        _infer_pad,
        _ref_pad,
        "Zero padding: `low`/`high` zeros before/after each axis, `interior` between elements "
        "(the transpose of slice).",
    )
)


# ----------------------------------------------------------------- reductions


def _reduce_infer(name: str):
    def infer(ts: Types, a: Attrs) -> TensorType:
        t = ts[0]
        axes = a["axes"]
        if list(axes) != sorted(set(axes)) or any(not 0 <= ax < t.rank for ax in axes):
            raise InferError(
                f"{name}: axes {list(axes)} must be distinct, sorted and within 0..{t.rank - 1}"
                f" for {t}",
                "shape",
                f"use axes inside the tensor's {t.rank} dimensions",
            )
        if name == "mean":
            check_float(t, name)
        else:
            check_numeric(t, name)
        if name in ("max", "min") and any(t.shape[ax] == 0 for ax in axes):
            raise InferError(f"{name} of an empty axis has no identity ({t})", "shape")
        keep = a["keepdims"]
        shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape) if keep or i not in axes)
        return t.with_shape(shape)

    return infer


REDUCTIONS: dict[str, Any] = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "prod": np.prod,
}


def _reduce_ref(fn):
    def run(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        if fn is np.mean and any(x.shape[a] == 0 for a in axes):
            # the mean of nothing is NaN (0/0), without numpy's "empty slice" warning
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)
                          if keepdims or i not in axes)
            return np.full(shape, np.nan, dtype=x.dtype)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims)).astype(x.dtype)

    return run


for _name, _fn in REDUCTIONS.items():
    register(
        OpDef(
            _name,
            (1, 1),
            (("axes", AttrSpec(INTS)), ("keepdims", AttrSpec(BOOL, False))),
            frozenset({T.REDUCTION}),
            _reduce_infer(_name),
            _reduce_ref(_fn),
            f"Reduce with {_name} over `axes` (sorted, non-negative).",
        )
    )


# ------------------------------------------------------------------ contraction


def _infer_matmul(ts: Types, a: Attrs) -> TensorType:
    x, y = ts
    if x.dtype != y.dtype:
        raise InferError(
            f"matmul: operand dtypes {x.dtype} and {y.dtype} differ", "dtype",
            "cast one operand with .astype(...)",
        )
    check_numeric(x, "matmul")
    if x.rank < 2 or y.rank != x.rank:
        raise InferError(
            f"matmul needs two operands of equal rank >= 2 in the IR, got {x} and {y}",
            "shape",
        )
    if x.shape[:-2] != y.shape[:-2]:
        raise InferError(
            f"matmul: batch dimensions {list(x.shape[:-2])} and {list(y.shape[:-2])} differ",
            "shape",
        )
    if x.shape[-1] != y.shape[-2]:
        raise InferError(
            f"matmul: inner dimensions differ: {x} @ {y} ({x.shape[-1]} vs {y.shape[-2]})",
            "shape",
            "the last axis of the left operand must equal the second-to-last of the right "
            "(transpose one operand with .T?)",
        )
    return x.with_shape(x.shape[:-1] + (y.shape[-1],))


register(
    OpDef(
        "matmul",
        (2, 2),
        (),
        frozenset({T.CONTRACTION}),
        _infer_matmul,
        lambda x, y: np.matmul(x, y),
        "Matrix product over the last two axes; leading (batch) axes must match.",
    )
)

# The resonant ops live in their own module; importing it registers them.
import syntonic.ir.ops_control  # noqa: E402,F401
import syntonic.ir.ops_resonant  # noqa: E402,F401

__all__ = [
    "BINARY", "BITWISE", "COMPARISONS", "REDUCTIONS", "UNARY", "REQUIRED", "broadcast_shapes",
]
