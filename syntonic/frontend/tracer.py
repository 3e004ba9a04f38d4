"""Tracing: the active trace, Tracer values, and emitting ops with user locations.

A :class:`Tracer` stands for an IR value while a function is traced. Every op it
creates records the user's ``file:line``; a rejected op becomes a
:class:`~syntonic.ShapeError` / :class:`~syntonic.DTypeError` in user terms.
Python scalars are *weakly typed*: ``x * 2.0`` keeps ``x``'s dtype.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from syntonic.frontend.location import user_location, user_message
from syntonic.ir.errors import (
    ControlFlowError,
    DTypeError,
    ShapeError,
    TraceError,
    UnsupportedError,
)
from syntonic.ir.graph import Builder, Location
from syntonic.ir.ops import broadcast_shapes
from syntonic.ir.registry import InferError
from syntonic.ir.types import DType, TensorType, promote

Scalar = bool | int | float


class Trace:
    """One function being traced: its builder and name.

    A trace nested inside another (``sn.grad`` of a closure, later loop bodies) may use
    values of the enclosing traces: each such value is *captured* once as an extra
    parameter, recorded in ``captures`` (outer tracer, inner parameter tracer).
    """

    def __init__(self, name: str, loc: Location | None) -> None:
        self.name = name
        self.builder = Builder(name, loc)
        self.captures: list[tuple[Tracer, Tracer]] = []
        self._captured: dict[int, Tracer] = {}

    def capture(self, outer: Tracer) -> Tracer:
        inner = self._captured.get(id(outer))
        if inner is None:
            inner = Tracer(self.builder.param(outer.type, "captured"), self, outer.weak)
            self._captured[id(outer)] = inner
            self.captures.append((outer, inner))
        return inner


_local = threading.local()


def _stack() -> list[Trace]:
    st = getattr(_local, "stack", None)
    if st is None:
        st = _local.stack = []
    return st


def current_trace() -> Trace | None:
    st = _stack()
    return st[-1] if st else None


class tracing:
    """Context manager making `trace` the active trace of this thread."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    def __enter__(self) -> Trace:
        _stack().append(self.trace)
        return self.trace

    def __exit__(self, *exc: object) -> None:
        _stack().pop()


def fail(cls: type[TraceError], problem: str, fix: str | None = None) -> TraceError:
    """Build an error of class `cls` located at the user's current line."""
    return cls(user_message(problem, user_location(), fix))


def _describe(xs: Sequence[Any]) -> str:
    return ", ".join(describe(x) for x in xs)


def describe(x: Any) -> str:
    if isinstance(x, Tracer):
        return str(x.type)
    if isinstance(x, np.ndarray):
        return f"array {x.dtype}{list(x.shape)}"
    return type(x).__name__ + " " + repr(x)[:40]


# --------------------------------------------------------------------- emitting


def active_trace(operands: Sequence[Any]) -> Trace:
    """The trace new ops go to; every Tracer operand must belong to it."""
    trace = current_trace()
    stack = _stack()
    for x in operands:
        if isinstance(x, Tracer) and x.trace is not trace and x.trace not in stack:
            outer = f" in `{trace.name}`" if trace else " outside any traced function"
            raise fail(
                TraceError,
                f"a value traced in `{x.trace.name}` ({x.type}) is used{outer}: it escaped "
                "its function (stored in a global or closure?)",
                "pass the value in as an argument, or return it from the jitted function",
            )
    if trace is None:  # pragma: no cover - callers check for an active trace first
        raise fail(TraceError, "no function is being traced")
    return trace


def emit(name: str, operands: Sequence[Tracer], attrs: dict[str, Any] | None = None,
         weak: bool = False) -> Tracer:
    """Append op `name` to the active trace; map a type-rule failure to a user error."""
    return emit_op(name, operands, attrs, weak=weak)[0]


def emit_op(name: str, operands: Sequence[Tracer], attrs: dict[str, Any] | None = None,
            regions: tuple[Any, ...] = (), weak: bool = False) -> list[Tracer]:
    """Like :func:`emit` for any op: regions (control flow) and every result."""
    trace = active_trace(operands)
    operands = [t if t.trace is trace else trace.capture(t) for t in operands]
    loc = user_location()
    try:
        op = trace.builder.add_op(name, [t.value for t in operands], attrs, loc, None, regions)
    except InferError as exc:
        cls = {"shape": ShapeError, "dtype": DTypeError}.get(exc.kind, TraceError)
        problem = f"`{name}`: {exc.message} (operands: {_describe(operands) or 'none'})"
        raise cls(user_message(problem, loc, exc.fix)) from None
    return [Tracer(v, trace, weak) for v in op.results]


def constant(value: Any, dtype: DType | None = None, weak: bool = False) -> Tracer:
    """A constant op holding `value` (a Python scalar or numpy array)."""
    arr = np.asarray(value)
    if dtype is None:
        dtype = _dtype_of_array(arr)
    with np.errstate(all="ignore"):
        cast = arr.astype(dtype.np)
    if dtype.is_int and arr.dtype.kind in "iu" and not np.array_equal(cast, arr):
        raise fail(DTypeError, f"the integer constant {value!r} does not fit in {dtype}",
                   "use a wider dtype such as i64")
    return emit("constant", [], {"value": cast}, weak)


def _dtype_of_array(arr: np.ndarray) -> DType:
    try:
        return DType.from_numpy(arr.dtype)
    except Exception:
        raise fail(
            DTypeError,
            f"arrays of dtype {arr.dtype} are not supported",
            "convert first, e.g. np.asarray(a, np.float32); supported: "
            + ", ".join(d.name for d in DType),
        ) from None


# ------------------------------------------------------------ typing and lifting


def is_scalar(x: Any) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def dtype_and_weakness(x: Any) -> tuple[DType, bool]:
    if isinstance(x, Tracer):
        return x.dtype_, x.weak
    if isinstance(x, bool):
        return DType.bool, True
    if isinstance(x, int):
        return (DType.i32 if -(2**31) <= x < 2**31 else DType.i64), True
    if isinstance(x, float):
        return DType.f32, True
    if isinstance(x, (np.ndarray, np.generic)):
        return _dtype_of_array(np.asarray(x)), False
    raise fail(
        TraceError,
        f"cannot use a {type(x).__name__} ({describe(x)}) in a traced computation",
        "use numpy arrays, traced values or Python numbers",
    )


def _weak_join(strong: DType, weak: DType) -> DType:
    """A weak (Python scalar) dtype joins a strong one without widening it."""
    if weak.is_float and not strong.is_float:
        return DType.f32
    if weak.is_int and strong.is_bool:
        return DType.i32
    return strong


def result_dtype(*xs: Any) -> tuple[DType, bool]:
    """Common dtype of operands (numpy/JAX-like, Python scalars weak); and weakness."""
    infos = [dtype_and_weakness(x) for x in xs]
    strong = [d for d, w in infos if not w]
    weak = [d for d, w in infos if w]
    if strong:
        out = strong[0]
        for d in strong[1:]:
            out = promote(out, d)
        for d in weak:
            out = _weak_join(out, d)
        return out, False
    out = weak[0]
    for d in weak[1:]:
        out = promote(out, d)
    return out, True


def lift(x: Any, dtype: DType | None = None, weak: bool = False) -> Tracer:
    """`x` as a Tracer of `dtype` (constants for scalars/arrays, casts for tracers)."""
    if isinstance(x, Tracer):
        active_trace([x])
        if dtype is None or x.dtype_ == dtype:
            return x
        return emit("cast", [x], {"dtype": dtype}, weak)
    if dtype is None:
        dtype, weak = dtype_and_weakness(x)
    return constant(x, dtype, weak)


def broadcast_to(x: Tracer, shape: tuple[int, ...]) -> Tracer:
    if x.shape == tuple(shape):
        return x
    return emit("broadcast", [x], {"shape": tuple(shape)}, x.weak)


def broadcast_all(*xs: Tracer) -> list[Tracer]:
    """Explicit numpy broadcasting of every operand to the common shape."""
    shape: tuple[int, ...] | None = ()
    for x in xs:
        shape = broadcast_shapes(shape, x.shape)
        if shape is None:
            raise fail(
                ShapeError,
                "operands could not be broadcast together: "
                + " and ".join(str(t.type) for t in xs),
                "shapes broadcast when, aligned on the right, each dimension is equal or 1; "
                "reshape an operand (e.g. x[:, None]) or transpose it",
            )
    return [broadcast_to(x, shape) for x in xs]


def elementwise(name: str, *xs: Any, dtype: DType | None = None,
                float_only: bool = False) -> Tracer:
    """Lift, promote and broadcast operands, then emit elementwise op `name`."""
    common, weak = result_dtype(*xs)
    if dtype is not None:
        common = dtype
    if float_only and not common.is_float:
        common = DType.f32
    ts = broadcast_all(*[lift(x, common, weak) for x in xs])
    return emit(name, ts, weak=weak and name not in _BOOL_OPS)


_BOOL_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})


# ----------------------------------------------------------------------- Tracer

_CONTROL_FIX = (
    "use sn.where(cond, a, b) to choose values elementwise, sn.cond(pred, f, g, *args) to "
    "branch, sn.while_loop(cond_fn, body_fn, init) for a data-dependent loop, or mark the "
    "deciding argument static with sn.jit(static_argnames=(...))"
)


class Tracer:
    """A traced tensor value. Supports numpy-style operators, methods and indexing."""

    __slots__ = ("value", "trace", "weak")
    __array_priority__ = 1000

    def __init__(self, value: Any, trace: Trace, weak: bool = False) -> None:
        self.value = value
        self.trace = trace
        self.weak = weak

    # -- static facts ---------------------------------------------------------
    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    @property
    def dtype_(self) -> DType:
        return self.value.type.dtype

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (so ``x.dtype == np.float32`` works as in numpy)."""
        return self.value.type.dtype.np

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return self.value.type.size

    def __len__(self) -> int:
        if not self.shape:
            raise fail(TraceError, "len() of a scalar traced value", "scalars have no length")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tracer({self.type})"

    __hash__ = object.__hash__

    # -- concretisation: impossible while tracing -----------------------------
    def _concrete(self, what: str) -> ControlFlowError:
        return fail(
            ControlFlowError,
            f"{what} needs a concrete value, but this {self.type} value is only known when "
            f"the compiled function `{self.trace.name}` runs",
            _CONTROL_FIX,
        )

    def __bool__(self) -> bool:
        raise self._concrete("Python `if`/`while`/`and`/`or`/bool() on a traced value")

    def __float__(self) -> float:
        raise self._concrete("float() of a traced value")

    def __int__(self) -> int:
        raise self._concrete("int() of a traced value")

    def __index__(self) -> int:
        raise self._concrete("using a traced value as a Python index or size")

    def __complex__(self) -> complex:
        raise self._concrete("complex() of a traced value")

    def item(self) -> Any:
        raise self._concrete(".item() of a traced value")

    def tolist(self) -> Any:
        raise self._concrete(".tolist() of a traced value")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise fail(
            TraceError,
            f"cannot convert a traced value ({self.type}) to a numpy array inside the jitted "
            f"function `{self.trace.name}` (np.asarray / np.array / a numpy call without a "
            "Syntonic equivalent)",
            "keep the computation in sn.* / numpy operations on the traced value, or return "
            "it and convert after the call",
        )

    def __iter__(self):  # noqa: ANN204
        if not self.shape:
            raise fail(TraceError, "iteration over a scalar traced value",
                       "scalars cannot be iterated")
        return (self[i] for i in range(self.shape[0]))

    def __setitem__(self, key: Any, value: Any) -> None:
        raise fail(
            UnsupportedError,
            f"item assignment on a traced value ({self.type}): traced values are immutable",
            "build the new value instead, e.g. x = sn.where(mask, new_value, x)",
        )

    # numpy protocol hooks and operators are attached by syntonic.frontend.api.
