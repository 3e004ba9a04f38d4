"""The public op namespace (``sn.mean``, ``sn.where``, ``sn.exp`` ...) and Tracer methods.

Functions mirror numpy names and semantics. Inside ``@sn.jit`` they record IR; called on
numpy arrays outside a trace they run eagerly through the reference interpreter.

Example::

    >>> sn.mean(np.ones((2, 3), np.float32), axis=-1)
    array([1., 1.], dtype=float32)
"""

from __future__ import annotations

import builtins
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.frontend import tracer as tr
from syntonic.frontend.tracer import emit, fail, lift
from syntonic.ir.errors import DTypeError, ShapeError, TraceError, UnsupportedError
from syntonic.ir.types import DType

Array = Any  # a Tracer inside a trace, a numpy array outside


def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make `fn` also work on numpy inputs outside a trace (via the interpreter)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if tr.current_trace() is not None:
            return fn(*args, **kwargs)
        from syntonic.frontend.trace import run_eagerly

        return run_eagerly(fn, args, kwargs)

    return wrapper


# ----------------------------------------------------------------- elementwise


def _unary(name: str, float_only: bool) -> Callable[[Array], Array]:
    def op(x: Array) -> Array:
        t = lift(x)
        if float_only and not t.dtype_.is_float:
            t = lift(t, DType.f32)
        return emit(name, [t], weak=t.weak)

    op.__name__ = name
    op.__doc__ = f"Elementwise {name}. Example: ``sn.{name}(x)``."
    return eager(op)


neg = negative = _unary("neg", False)
abs = absolute = _unary("abs", False)  # noqa: A001 - numpy name
exp = _unary("exp", True)
log = _unary("log", True)
sqrt = _unary("sqrt", True)
rsqrt = _unary("rsqrt", True)
sin = _unary("sin", True)
cos = _unary("cos", True)
tanh = _unary("tanh", True)
sigmoid = _unary("sigmoid", True)
erf = _unary("erf", True)
floor = _unary("floor", True)
sign = _unary("sign", False)


@eager
def stop_gradient(x: Array) -> Array:
    """`x` itself, with a zero gradient: ``sn.grad`` does not differentiate through it (as
    ``jax.lax.stop_gradient``). Example: ``x - sn.stop_gradient(sn.max(x))``."""
    t = lift(x)
    return emit("stop_gradient", [t], weak=t.weak)


def _binary(name: str, float_only: bool = False) -> Callable[[Array, Array], Array]:
    def op(x: Array, y: Array) -> Array:
        return tr.elementwise(name, x, y, float_only=float_only)

    op.__name__ = name
    op.__doc__ = f"Elementwise {name} with numpy broadcasting. Example: ``sn.{name}(x, y)``."
    return eager(op)


add = _binary("add")
subtract = _binary("sub")
multiply = _binary("mul")
divide = true_divide = _binary("div", float_only=True)
power = _binary("pow", float_only=True)
maximum = _binary("maximum")
minimum = _binary("minimum")
equal = _binary("eq")
not_equal = _binary("ne")
less = _binary("lt")
less_equal = _binary("le")
greater = _binary("gt")
greater_equal = _binary("ge")


@eager
def square(x: Array) -> Array:
    """x * x. Example: ``sn.square(x)``."""
    return multiply(x, x)


@eager
def reciprocal(x: Array) -> Array:
    """1 / x. Example: ``sn.reciprocal(x)``."""
    return divide(1.0, x)


@eager
def floor_divide(x: Array, y: Array) -> Array:
    """floor(x / y) for floating operands. Example: ``x // 2.0``."""
    common, _ = tr.result_dtype(x, y)
    if not common.is_float:
        raise fail(UnsupportedError, f"integer floor division ({common}) is not supported",
                   "cast to a float dtype first, e.g. x.astype('f32') // 2.0")
    return floor(divide(x, y))


@eager
def mod(x: Array, y: Array) -> Array:
    """x - floor(x / y) * y (numpy's sign convention) for floating operands."""
    return subtract(x, multiply(floor_divide(x, y), y))


@eager
def clip(x: Array, a_min: Array, a_max: Array) -> Array:
    """minimum(maximum(x, a_min), a_max). Example: ``sn.clip(x, 0.0, 1.0)``."""
    return minimum(maximum(x, a_min), a_max)


@eager
def where(condition: Array, x: Array, y: Array) -> Array:
    """Elementwise select: x where condition else y (numpy ``where``, broadcasting)."""
    c = lift(condition)
    if c.dtype_ is not DType.bool:
        c = not_equal(c, 0)
    common, weak = tr.result_dtype(x, y)
    a, b = lift(x, common, weak), lift(y, common, weak)
    c, a, b = tr.broadcast_all(c, a, b)
    return emit("select", [c, a, b], weak=weak)


def _logical(x: Array, y: Array, name: str) -> Array:
    """``&``, ``|``, ``^`` on bool or integer tensors (bitwise, as in numpy)."""
    op = {"&": "bitand", "|": "bitor", "^": "bitxor"}[name]
    common, _ = tr.result_dtype(x, y)
    if common.is_float:
        raise fail(DTypeError, f"`{name}` needs bool or integer operands, got "
                   f"{tr.describe(x)} and {tr.describe(y)}",
                   "compare first, e.g. (x > 0) & (x < 1)")
    return tr.elementwise(op, x, y)


bitwise_and = eager(lambda x, y: _logical(x, y, "&"))
bitwise_or = eager(lambda x, y: _logical(x, y, "|"))
bitwise_xor = eager(lambda x, y: _logical(x, y, "^"))


@eager
def left_shift(x: Array, y: Array) -> Array:
    """Bitwise left shift of integers (shifts outside [0, width) give 0)."""
    return tr.elementwise("shl", x, y)


@eager
def right_shift_logical(x: Array, y: Array) -> Array:
    """Logical right shift of the bit pattern (zeros shifted in)."""
    return tr.elementwise("shr", x, y)


@eager
def logical_not(x: Array) -> Array:
    """Elementwise not of a bool tensor."""
    t = lift(x)
    if t.dtype_ is DType.bool:
        return equal(t, False)
    if t.dtype_.is_int:
        return bitwise_xor(t, -1)  # ~x flips every bit, as in numpy
    raise fail(DTypeError, f"`~` needs a bool or integer operand, got {t.type}",
               "compare first, e.g. ~(x > 0)")


# ------------------------------------------------------------------ casts, layout


@eager
def astype(x: Array, dtype: Any) -> Array:
    """Convert the element type. Example: ``x.astype('f32')`` or ``sn.astype(x, np.float64)``."""
    t = lift(x)
    try:
        d = DType.coerce(dtype)
    except Exception:
        raise fail(DTypeError, f"unknown dtype {dtype!r}",
                   "use one of " + ", ".join(d.name for d in DType)) from None
    return lift(t, d, False) if d != t.dtype_ else t


def _norm_axis(axis: int, rank: int, what: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise fail(TraceError, f"{what}: axis must be an int, got {axis!r}")
    if not -rank <= axis < rank:
        raise fail(ShapeError, f"{what}: axis {axis} is out of range for a tensor of rank {rank}",
                   f"use an axis in [{-rank}, {rank - 1}]" if rank else "a scalar has no axes")
    return int(axis) % rank


@eager
def reshape(x: Array, *shape: Any) -> Array:
    """Row-major reshape; one dimension may be -1. Example: ``x.reshape(4, -1)``."""
    t = lift(x)
    dims = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if not builtins.all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise fail(TraceError, f"reshape: the shape must be ints, got {tuple(dims)!r}",
                   "use a tuple of ints such as (4, -1)")
    dims = [int(d) for d in dims]
    unknown = [i for i, d in enumerate(dims) if d == -1]
    known = math.prod(d for d in dims if d != -1)
    if len(unknown) > 1 or builtins.any(d < -1 for d in dims):
        raise fail(ShapeError, f"reshape: invalid shape {tuple(dims)}",
                   "give non-negative sizes and at most one -1")
    if unknown:
        if known == 0 or t.size % known:
            raise fail(ShapeError, f"cannot reshape {t.type} ({t.size} elements) to "
                       f"{tuple(dims)}", "the sizes must multiply to the element count")
        dims[unknown[0]] = t.size // known
    if tuple(dims) == t.shape:
        return t
    return emit("reshape", [t], {"shape": tuple(dims)}, t.weak)


@eager
def transpose(x: Array, axes: Sequence[int] | None = None) -> Array:
    """Permute axes (reverse them by default). Example: ``x.T``, ``sn.transpose(x, (1, 0))``."""
    t = lift(x)
    if axes is None:
        perm = tuple(reversed(range(t.ndim)))
    else:
        perm = tuple(_norm_axis(a, t.ndim, "transpose") for a in axes)
    if perm == tuple(range(t.ndim)) and len(perm) == t.ndim:
        return t
    return emit("transpose", [t], {"perm": perm}, t.weak)


@eager
def broadcast_to(x: Array, shape: Sequence[int]) -> Array:
    """Numpy ``broadcast_to``. Example: ``sn.broadcast_to(m, (4, 248))``."""
    t = lift(x)
    return emit("broadcast", [t], {"shape": tuple(int(d) for d in shape)}, t.weak) \
        if tuple(shape) != t.shape else t


@eager
def squeeze(x: Array, axis: int | Sequence[int] | None = None) -> Array:
    """Remove axes of size 1 (all of them, or the given ones)."""
    t = lift(x)
    if axis is None:
        axes = [i for i, d in enumerate(t.shape) if d == 1]
    else:
        axes = [_norm_axis(a, t.ndim, "squeeze")
                for a in ((axis,) if isinstance(axis, int) else axis)]
        bad = [a for a in axes if t.shape[a] != 1]
        if bad:
            raise fail(ShapeError, f"squeeze: axis {bad[0]} of {t.type} has size "
                       f"{t.shape[bad[0]]}, not 1")
    return reshape(t, tuple(d for i, d in enumerate(t.shape) if i not in axes))


@eager
def expand_dims(x: Array, axis: int) -> Array:
    """Insert an axis of size 1 at `axis`."""
    t = lift(x)
    ax = _norm_axis(axis, t.ndim + 1, "expand_dims")
    return reshape(t, t.shape[:ax] + (1,) + t.shape[ax:])


@eager
def ravel(x: Array) -> Array:
    """Flatten to one dimension (row-major)."""
    return reshape(x, (-1,))


# ------------------------------------------------------------------ reductions


def _axes(axis: Any, rank: int, what: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(rank))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = sorted({_norm_axis(a, rank, what) for a in items})
    if len(axes) != len(items):
        raise fail(ShapeError, f"{what}: repeated axis in {axis!r}")
    return tuple(axes)


def _reduction(name: str) -> Callable[..., Array]:
    def op(x: Array, axis: Any = None, keepdims: bool = False) -> Array:
        t = lift(x)
        if name == "mean" and not t.dtype_.is_float:
            t = lift(t, DType.f32)
        elif t.dtype_ is DType.bool and name in ("sum", "prod"):
            t = lift(t, DType.i32)
        elif t.dtype_ is DType.bool:
            t = lift(t, DType.i32)
            out = op(t, axis, keepdims)
            return not_equal(out, 0)
        axes = _axes(axis, t.ndim, name)
        if name in ("max", "min"):
            empty = [a for a in axes if t.shape[a] == 0]
            if empty:
                raise fail(ShapeError, f"{name} over the empty axis {empty[0]} of {t.type}",
                           "max/min of nothing is undefined; check the slice or axis")
        return emit(name, [t], {"axes": axes, "keepdims": bool(keepdims)}, t.weak)

    op.__name__ = name
    op.__doc__ = (f"Reduce with {name} over `axis` (None: all). "
                  f"Example: ``sn.{name}(x, axis=-1, keepdims=True)``.")
    return eager(op)


sum = _reduction("sum")  # noqa: A001 - numpy name
mean = _reduction("mean")
max = amax = _reduction("max")  # noqa: A001
min = amin = _reduction("min")  # noqa: A001
prod = _reduction("prod")


@eager
def var(x: Array, axis: Any = None, keepdims: bool = False) -> Array:
    """Population variance, mean((x - mean(x))^2)."""
    m = mean(x, axis=axis, keepdims=True)
    d = subtract(x, m)
    return mean(multiply(d, d), axis=axis, keepdims=keepdims)


@eager
def std(x: Array, axis: Any = None, keepdims: bool = False) -> Array:
    """Population standard deviation."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


# ---------------------------------------------------------------- contraction


@eager
def matmul(x: Array, y: Array) -> Array:
    """Matrix product with numpy semantics (1-D operands, batch broadcasting)."""
    common, weak = tr.result_dtype(x, y)
    if common is DType.bool:
        common = DType.i32
    a, b = lift(x, common, weak), lift(y, common, weak)
    if a.ndim == 0 or b.ndim == 0:
        raise fail(ShapeError, f"matmul of a scalar: {a.type} @ {b.type}",
                   "use * for scalar multiplication")
    squeeze_left = a.ndim == 1
    squeeze_right = b.ndim == 1
    if squeeze_left:
        a = reshape(a, (1, a.shape[0]))
    if squeeze_right:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        raise fail(
            ShapeError,
            f"matmul: inner dimensions differ: {lift(x).type} @ {lift(y).type} "
            f"({a.shape[-1]} vs {b.shape[-2]})",
            "the last axis of the left operand must equal the second-to-last of the right "
            "(transpose one operand with .T?)",
        )
    batch = tr.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if batch is None:
        raise fail(ShapeError, f"matmul: batch dimensions of {a.type} and {b.type} do not "
                   "broadcast")
    a = tr.broadcast_to(a, batch + a.shape[-2:])
    b = tr.broadcast_to(b, batch + b.shape[-2:])
    out = emit("matmul", [a, b], weak=weak)
    if squeeze_left or squeeze_right:
        shape = out.shape[:-2]
        shape += () if squeeze_left else (out.shape[-2],)
        shape += () if squeeze_right else (out.shape[-1],)
        out = reshape(out, shape)
    return out


dot = matmul


# --------------------------------------------------------------------- creation


def _creation_dtype(dtype: Any, default: DType) -> DType:
    if dtype is None:
        return default
    try:
        return DType.coerce(dtype)
    except Exception:
        raise fail(DTypeError, f"unknown dtype {dtype!r}",
                   "use one of " + ", ".join(d.name for d in DType)) from None


@eager
def full(shape: Sequence[int], fill_value: Any, dtype: Any = None) -> Array:
    """A tensor of `shape` filled with `fill_value` (a constant broadcast)."""
    d = _creation_dtype(dtype, tr.dtype_and_weakness(fill_value)[0])
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return tr.broadcast_to(tr.constant(fill_value, d), shape)


@eager
def zeros(shape: Sequence[int], dtype: Any = "f32") -> Array:
    """A tensor of zeros. Example: ``sn.zeros((4, 248))``."""
    return full(shape, 0, dtype)


@eager
def ones(shape: Sequence[int], dtype: Any = "f32") -> Array:
    """A tensor of ones. Example: ``sn.ones((4, 248))``."""
    return full(shape, 1, dtype)


@eager
def zeros_like(x: Array, dtype: Any = None) -> Array:
    t = lift(x)
    return full(t.shape, 0, dtype or t.dtype_)


@eager
def ones_like(x: Array, dtype: Any = None) -> Array:
    t = lift(x)
    return full(t.shape, 1, dtype or t.dtype_)


@eager
def full_like(x: Array, fill_value: Any, dtype: Any = None) -> Array:
    t = lift(x)
    return full(t.shape, fill_value, dtype or t.dtype_)


@eager
def arange(n: int, dtype: Any = "i32") -> Array:
    """0, 1, ..., n-1 (the `iota` op). Example: ``sn.arange(248, 'f32')``."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise fail(TraceError, f"arange needs a static non-negative int, got {n!r}")
    d = _creation_dtype(dtype, DType.i32)
    if d.is_bool:
        raise fail(DTypeError, "arange cannot produce bool")
    return emit("iota", [], {"shape": (int(n),), "dim": 0, "dtype": d})


@eager
def iota(shape: Sequence[int], dim: int = 0, dtype: Any = "i32") -> Array:
    """Indices along `dim`, broadcast over `shape`."""
    d = _creation_dtype(dtype, DType.i32)
    return emit("iota", [], {"shape": tuple(shape), "dim": dim, "dtype": d})


@eager
def argmax(x: Array, axis: int = -1) -> Array:
    """Index of the first maximum along `axis` (i32). Example: ``sn.argmax(logits)``."""
    t = lift(x)
    ax = _norm_axis(axis, t.ndim, "argmax")
    m = max(t, axis=ax, keepdims=True)
    n = t.shape[ax]
    idx = iota(t.shape, dim=ax, dtype="i32")
    # NaN counts as the maximum (numpy's convention): its position is where t != t
    hit = _logical(equal(t, m), not_equal(t, t), "|") if t.dtype_.is_float else equal(t, m)
    return min(where(hit, idx, n), axis=ax)


@eager
def argmin(x: Array, axis: int = -1) -> Array:
    """Index of the first minimum along `axis` (i32)."""
    return argmax(negative(x), axis)


@eager
def any(x: Array, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """True where any element along `axis` is true (non-zero)."""
    t = lift(x)
    t = t if t.dtype_ is DType.bool else not_equal(t, 0)
    return max(t, axis=axis, keepdims=keepdims)


@eager
def all(x: Array, axis: Any = None, keepdims: bool = False) -> Array:  # noqa: A001
    """True where every element along `axis` is true (non-zero)."""
    t = lift(x)
    t = t if t.dtype_ is DType.bool else not_equal(t, 0)
    return min(t, axis=axis, keepdims=keepdims)
