"""Typed attribute kinds: validation, canonical form and text form.

Each op attribute has a kind. A kind turns a raw value (from the tracer or the parser)
into the canonical Python value stored on the op, and prints it back. Canonical values
are hashable so ops can be compared structurally (CSE keys).

Text forms: ``3``, ``0.618034`` (shortest round-trip float repr), ``nan``, ``-inf``,
``true``, ``none``, ``[0,1]``, ``f32``, ``dense<[1.0,2.0]>`` (tensor constants, flat in
row-major order; ``dense<1.0>`` when every element is equal).
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

import numpy as np

from syntonic.ir.errors import IRError
from syntonic.ir.types import DType, TensorType
from syntonic.records import record


class AttrKind:
    """How one kind of attribute is checked and printed."""

    name = "attr"

    def coerce(self, raw: Any, result_type: TensorType | None) -> Any:
        raise NotImplementedError

    def format(self, value: Any) -> str:
        raise NotImplementedError


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def format_float(x: float) -> str:
    """Shortest text that parses back to exactly ``x`` (Python's repr), with nan/inf."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


class IntKind(AttrKind):
    name = "int"

    def coerce(self, raw: Any, result_type: TensorType | None) -> int:
        if not _is_int(raw):
            raise IRError(f"expected an integer, got {raw!r}")
        return int(raw)

    def format(self, value: int) -> str:
        return str(value)


class FloatKind(AttrKind):
    name = "float"

    def coerce(self, raw: Any, result_type: TensorType | None) -> float:
        if isinstance(raw, (bool, np.bool_)) or not isinstance(raw, (int, float, np.number)):
            raise IRError(f"expected a number, got {raw!r}")
        return _to_float(raw)

    def format(self, value: float) -> str:
        return format_float(value)


class BoolKind(AttrKind):
    name = "bool"

    def coerce(self, raw: Any, result_type: TensorType | None) -> bool:
        if not isinstance(raw, (bool, np.bool_)):
            raise IRError(f"expected true or false, got {raw!r}")
        return bool(raw)

    def format(self, value: bool) -> str:
        return "true" if value else "false"


class IntsKind(AttrKind):
    name = "ints"

    def coerce(self, raw: Any, result_type: TensorType | None) -> tuple[int, ...]:
        if not isinstance(raw, (list, tuple)) or not all(_is_int(v) for v in raw):
            raise IRError(f"expected a list of integers such as [0,1], got {raw!r}")
        return tuple(int(v) for v in raw)

    def format(self, value: tuple[int, ...]) -> str:
        return "[" + ",".join(str(v) for v in value) + "]"


class OptionalIntKind(AttrKind):
    """An integer or ``none`` (used for ``axis``; none means the flattened tensor)."""

    name = "int?"

    def coerce(self, raw: Any, result_type: TensorType | None) -> int | None:
        if raw is None:
            return None
        return IntKind().coerce(raw, result_type)

    def format(self, value: int | None) -> str:
        return "none" if value is None else str(value)


class OptionalFloatKind(AttrKind):
    name = "float?"

    def coerce(self, raw: Any, result_type: TensorType | None) -> float | None:
        if raw is None:
            return None
        return FloatKind().coerce(raw, result_type)

    def format(self, value: float | None) -> str:
        return "none" if value is None else format_float(value)


class DTypeKind(AttrKind):
    name = "dtype"

    def coerce(self, raw: Any, result_type: TensorType | None) -> DType:
        if isinstance(raw, DType):
            return raw
        if isinstance(raw, Ident):
            return DType.parse(raw.name)
        if isinstance(raw, str):
            return DType.parse(raw)
        raise IRError(f"expected a dtype name, got {raw!r}")

    def format(self, value: DType) -> str:
        return value.value


@record(frozen=True, slots=True)
class Ident:
    """A bare identifier in attribute text (a dtype name)."""

    name: str


@record(frozen=True, slots=True)
class Dense:
    """Raw ``dense<...>`` text: a scalar (splat) or a list of scalars."""

    values: Any


@record(frozen=True, slots=True, eq=False)
class TensorValue:
    """An immutable tensor constant; equality and hash are by dtype, shape and bytes."""

    array: np.ndarray
    # its dense<...> text, made once (a graph is printed at several stages; a 1M-element
    # constant takes a fraction of a second to format)
    _text: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.array.setflags(write=False)

    def _key(self) -> tuple[Any, ...]:
        return (self.array.dtype.str, self.array.shape, self.array.tobytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorValue) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class TensorKind(AttrKind):
    """A tensor constant. Its dtype and shape come from the op's result type."""

    name = "tensor"

    def coerce(self, raw: Any, result_type: TensorType | None) -> TensorValue:
        if isinstance(raw, TensorValue):
            return raw
        if isinstance(raw, np.ndarray) and result_type is None:
            DType.from_numpy(raw.dtype)  # rejects dtypes the IR lacks
            return TensorValue(np.array(raw, order="C", copy=True))
        if result_type is None:
            raise IRError("a dense<...> attribute needs the op's result type")
        if isinstance(raw, np.ndarray):
            arr = raw
        elif isinstance(raw, Dense):
            arr = _dense_to_array(raw.values, result_type)
        else:
            raise IRError(f"expected dense<...>, got {raw!r}")
        if tuple(arr.shape) != result_type.shape:
            raise IRError(f"constant of shape {list(arr.shape)} does not match {result_type}")
        return TensorValue(np.array(arr, dtype=result_type.dtype.np, order="C", copy=True))

    def format(self, value: TensorValue) -> str:
        if not value._text:
            value._text.append(self._format(value.array))
        return value._text[0]

    @staticmethod
    def _format(arr: np.ndarray) -> str:
        dtype = DType.from_numpy(arr.dtype)
        items = arr.reshape(-1).tolist()
        if dtype.is_bool:
            texts = ["true" if v else "false" for v in items]
        elif dtype.is_int:
            texts = list(map(str, items))
        else:  # format_float of each (repr of a Python float is the same text)
            texts = list(map(repr, items))
        # A splat needs equal printed elements: -0.0 next to 0.0 is kept apart, while NaNs
        # of any sign or payload (all printed `nan`) must splat, or the text would change
        # on a second print -> parse -> print.
        if texts and texts.count(texts[0]) == len(texts):
            return f"dense<{texts[0]}>"
        return "dense<[" + ",".join(texts) + "]>"


def _check_scalar(v: Any, dtype: DType) -> Any:
    if dtype.is_bool:
        if not isinstance(v, bool):
            raise IRError(f"bool constant elements must be true/false, got {v!r}")
        return v
    if dtype.is_int:
        if not _is_int(v):
            raise IRError(f"{dtype} constant elements must be integers, got {v!r}")
        info = np.iinfo(dtype.np)
        if not info.min <= v <= info.max:
            raise IRError(f"{v} does not fit in {dtype}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise IRError(f"{dtype} constant elements must be numbers, got {v!r}")
    return _to_float(v)


def _to_float(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer literal beyond the float range
        raise IRError(f"the integer {str(v)[:24]}... is too large for a float") from None


def _dense_to_array(values: Any, t: TensorType) -> np.ndarray:
    if isinstance(values, list):
        if len(values) != t.size:
            raise IRError(f"dense<...> has {len(values)} elements but {t} needs {t.size}")
        checked = [_check_scalar(v, t.dtype) for v in values]
        with np.errstate(over="ignore"):
            return np.array(checked, dtype=t.dtype.np).reshape(t.shape)
    scalar = _check_scalar(values, t.dtype)
    try:
        with np.errstate(over="ignore"):
            return np.full(t.shape, scalar, dtype=t.dtype.np)
    except (ValueError, MemoryError) as exc:  # beyond numpy's index range or memory
        raise IRError(f"cannot build a {t} constant: {exc}") from None


INT = IntKind()
FLOAT = FloatKind()
BOOL = BoolKind()
INTS = IntsKind()
OPT_INT = OptionalIntKind()
OPT_FLOAT = OptionalFloatKind()
DTYPE = DTypeKind()
TENSOR = TensorKind()

REQUIRED = object()


@record(frozen=True, slots=True)
class AttrSpec:
    """One declared attribute of an op: its kind and default (REQUIRED if none)."""

    kind: AttrKind
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
