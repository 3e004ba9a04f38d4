"""Tracer operators, methods, indexing and the numpy dispatch protocols.

Importing this module attaches them to :class:`~syntonic.frontend.tracer.Tracer`.
``np.exp(x)`` / ``np.mean(x)`` on a traced value record the Syntonic op;
numpy functions without an equivalent raise an error naming the call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from syntonic.frontend import api
from syntonic.frontend import resonant as res
from syntonic.frontend import tracer as tr
from syntonic.frontend.tracer import Tracer, emit, fail
from syntonic.ir.errors import ShapeError, UnsupportedError

# ------------------------------------------------------------------- operators


def _swap(fn: Any) -> Any:
    return lambda self, other: fn(other, self)


_OPERATORS = {
    "__add__": api.add, "__radd__": _swap(api.add),
    "__sub__": api.subtract, "__rsub__": _swap(api.subtract),
    "__mul__": api.multiply, "__rmul__": _swap(api.multiply),
    "__truediv__": api.divide, "__rtruediv__": _swap(api.divide),
    "__floordiv__": api.floor_divide, "__rfloordiv__": _swap(api.floor_divide),
    "__mod__": api.mod, "__rmod__": _swap(api.mod),
    "__pow__": api.power, "__rpow__": _swap(api.power),
    "__matmul__": api.matmul, "__rmatmul__": _swap(api.matmul),
    "__lt__": api.less, "__le__": api.less_equal,
    "__gt__": api.greater, "__ge__": api.greater_equal,
    "__eq__": api.equal, "__ne__": api.not_equal,
    "__and__": lambda a, b: api._logical(a, b, "&"),
    "__rand__": lambda a, b: api._logical(b, a, "&"),
    "__or__": lambda a, b: api._logical(a, b, "|"),
    "__ror__": lambda a, b: api._logical(b, a, "|"),
    "__xor__": lambda a, b: api._logical(a, b, "^"),
    "__rxor__": lambda a, b: api._logical(b, a, "^"),
    "__lshift__": api.left_shift, "__rlshift__": _swap(api.left_shift),
    "__neg__": api.negative,
    "__pos__": lambda a: a,
    "__abs__": api.absolute,
    "__invert__": api.logical_not,
}

_METHODS = {
    "mean": api.mean, "sum": api.sum, "max": api.max, "min": api.min, "prod": api.prod,
    "var": api.var, "std": api.std, "astype": api.astype, "reshape": api.reshape,
    "squeeze": api.squeeze, "ravel": api.ravel, "flatten": api.ravel, "clip": api.clip,
    "dot": api.matmul, "argmax": api.argmax, "argmin": api.argmin, "any": api.any,
    "all": api.all,
}


def _transpose_method(self: Tracer, *axes: Any) -> Tracer:
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return api.transpose(self, axes or None)


def _install() -> None:
    for name, fn in {**_OPERATORS, **_METHODS}.items():
        setattr(Tracer, name, fn)
    Tracer.transpose = _transpose_method
    Tracer.T = property(lambda self: api.transpose(self))
    Tracer.mT = property(lambda self: api.transpose(
        self, tuple(range(self.ndim - 2)) + (self.ndim - 1, self.ndim - 2)))
    Tracer.__getitem__ = getitem
    Tracer.__array_ufunc__ = array_ufunc
    Tracer.__array_function__ = array_function
    Tracer.__hash__ = object.__hash__


# -------------------------------------------------------------------- indexing


def getitem(self: Tracer, index: Any) -> Tracer:
    """Basic numpy indexing: ints, slices (step >= 1), None and Ellipsis."""
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if isinstance(it, (Tracer, np.ndarray, list)) or (
            isinstance(it, np.generic) and it.dtype == bool
        ) or isinstance(it, bool):
            raise fail(
                UnsupportedError,
                f"indexing {self.type} with {tr.describe(it)} (advanced or boolean indexing) "
                "is not supported: the result shape would depend on the data",
                "use sn.where(mask, x, 0) to mask values, or static ints/slices",
            )
        if not (it is None or it is Ellipsis or isinstance(it, (slice, int, np.integer))):
            raise fail(UnsupportedError, f"cannot index a traced value with {tr.describe(it)}",
                       "use ints, slices, None or ...")
    n_real = len([it for it in items if it is not None and it is not Ellipsis])
    if items.count(Ellipsis) > 1:
        raise fail(ShapeError, "an index can only have a single ellipsis ('...')")
    if n_real > self.ndim:
        raise fail(ShapeError, f"too many indices ({n_real}) for {self.type}",
                   f"index at most {self.ndim} axes")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items = items[:k] + (slice(None),) * (self.ndim - n_real) + items[k + 1:]
    else:
        items = items + (slice(None),) * (self.ndim - n_real)
    start, stop, step, out_shape = [], [], [], []
    axis = 0
    for it in items:
        if it is None:
            out_shape.append(1)
            continue
        dim = self.shape[axis]
        if isinstance(it, slice):
            b, e, s = it.indices(dim)
            if s <= 0:
                raise fail(UnsupportedError, f"slices with a negative step ({it}) are not "
                           "supported", "slice forward and reverse with a constant "
                           "permutation outside the jitted function")
            e = max(e, b)
            start.append(b)
            stop.append(e)
            step.append(s)
            out_shape.append(len(range(b, e, s)))
        else:
            i = int(it)
            if not -dim <= i < dim:
                raise fail(ShapeError, f"index {i} is out of bounds for axis {axis} with "
                           f"size {dim} ({self.type})", f"use an index in [{-dim}, {dim - 1}]")
            i %= dim
            start.append(i)
            stop.append(i + 1)
            step.append(1)
        axis += 1
    x = self
    if (tuple(start), tuple(stop), tuple(step)) != ((0,) * self.ndim, self.shape,
                                                    (1,) * self.ndim):
        x = emit("slice", [self], {"start": tuple(start), "stop": tuple(stop),
                                   "step": tuple(step)}, self.weak)
    return api.reshape(x, tuple(out_shape))


# --------------------------------------------------------- numpy dispatch hooks

_UFUNCS = {
    "add": api.add, "subtract": api.subtract, "multiply": api.multiply,
    "true_divide": api.divide, "divide": api.divide, "power": api.power,
    "floor_divide": api.floor_divide, "remainder": api.mod,
    "maximum": api.maximum, "minimum": api.minimum,
    "equal": api.equal, "not_equal": api.not_equal, "less": api.less,
    "less_equal": api.less_equal, "greater": api.greater, "greater_equal": api.greater_equal,
    "negative": api.negative, "absolute": api.absolute, "exp": api.exp, "log": api.log,
    "sqrt": api.sqrt, "sin": api.sin, "cos": api.cos, "tanh": api.tanh, "floor": api.floor,
    "sign": api.sign, "square": api.square, "reciprocal": api.reciprocal,
    "logical_not": api.logical_not, "invert": api.logical_not,
    "bitwise_and": api.bitwise_and, "bitwise_or": api.bitwise_or,
    "bitwise_xor": api.bitwise_xor, "left_shift": api.left_shift,
    "logical_and": api.bitwise_and, "logical_or": api.bitwise_or, "matmul": api.matmul,
    "positive": lambda x: x,
}

_FUNCTIONS = {
    np.mean: api.mean, np.sum: api.sum, np.max: api.max, np.min: api.min,
    np.amax: api.max, np.amin: api.min, np.prod: api.prod, np.var: api.var, np.std: api.std,
    np.where: api.where, np.reshape: api.reshape, np.transpose: api.transpose,
    np.matmul: api.matmul, np.dot: api.matmul, np.clip: api.clip, np.squeeze: api.squeeze,
    np.expand_dims: api.expand_dims, np.ravel: api.ravel, np.broadcast_to: api.broadcast_to,
    np.zeros_like: api.zeros_like, np.ones_like: api.ones_like, np.full_like: api.full_like,
    np.argmax: api.argmax, np.argmin: api.argmin, np.any: api.any, np.all: api.all,
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim, np.size: lambda x: x.size,
}


def _numpy_name(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "numpy"
    module = module.replace("numpy", "np", 1)
    for private in (".core.fromnumeric", "._core.fromnumeric", "._core.multiarray",
                    ".core.multiarray", ".lib._function_base_impl", "._core._multiarray_umath",
                    ".lib.function_base", "._core.numeric", ".core.numeric"):
        module = module.replace(private, "")
    module = module.replace(".linalg._linalg", ".linalg").replace(".fft._pocketfft", ".fft")
    return f"{module}.{getattr(obj, '__name__', repr(obj))}"


def _unsupported_numpy(what: str) -> UnsupportedError:
    return fail(
        UnsupportedError,
        f"{what} is not supported on traced values",
        "use the sn.* equivalent if there is one (see dir(sn)), or compute it before or "
        "after the jitted function",
    )


def array_ufunc(self: Tracer, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    fn = _UFUNCS.get(ufunc.__name__)
    if method != "__call__" or fn is None or kwargs:
        detail = f"np.{ufunc.__name__}" + (f".{method}" if method != "__call__" else "")
        if kwargs:
            detail += f" with {', '.join(kwargs)}="
        raise _unsupported_numpy(detail)
    return fn(*inputs)


def array_function(self: Tracer, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    fn = _FUNCTIONS.get(func)
    if fn is None:
        raise _unsupported_numpy(_numpy_name(func))
    return fn(*args, **kwargs)


_install()

# Re-exported so `sn.syntony` etc. resolve from one place.
RESONANT = {
    name: getattr(res, name)
    for name in ("golden_weights", "syntony", "spectral_syntony", "differentiate", "harmonize",
                 "mobius_mask", "dhsr_cycle", "prime_gate")
}
