"""Dtypes and tensor types of the IR.

A :class:`TensorType` is a dtype plus a static shape; it prints as ``f32[4,248]`` and a
scalar as ``f32[]``. Types are immutable and hashable, so they can key caches.

Example::

    >>> t = TensorType.parse("f32[4,248]")
    >>> t.shape, t.dtype.name, str(t)
    ((4, 248), 'f32', 'f32[4,248]')
"""

from __future__ import annotations

import enum
import math
import re

import numpy as np

from syntonic.ir.errors import IRError
from syntonic.records import record


class DType(enum.Enum):
    """Element types. The value is the name used in the text form."""

    bool = "bool"
    i32 = "i32"
    i64 = "i64"
    f16 = "f16"
    f32 = "f32"
    f64 = "f64"

    @property
    def np(self) -> np.dtype:
        """The numpy dtype with the same bits."""
        return _NP[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in (DType.i32, DType.i64)

    @property
    def is_bool(self) -> bool:
        return self is DType.bool

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def rank(self) -> int:
        """Position in the promotion lattice bool < i32 < i64 < f16 < f32 < f64."""
        return _ORDER.index(self)

    @staticmethod
    def from_numpy(dtype: object) -> DType:
        """The DType of a numpy dtype; raises IRError for dtypes the IR lacks."""
        try:
            return _FROM_NP[np.dtype(dtype)]
        except (KeyError, TypeError) as exc:
            supported = ", ".join(d.name for d in DType)
            raise IRError(f"dtype {dtype} is not supported (supported: {supported})") from exc

    @staticmethod
    def parse(name: str) -> DType:
        try:
            return DType(name)
        except ValueError as exc:
            supported = ", ".join(d.name for d in DType)
            raise IRError(f"unknown dtype {name!r} (expected one of {supported})") from exc

    @staticmethod
    def coerce(obj: object) -> DType:
        """A DType from a DType, a name ('f32', 'float32') or a numpy dtype/type."""
        if isinstance(obj, DType):
            return obj
        if isinstance(obj, str) and obj in DType.__members__:
            return DType[obj]
        if obj is float:
            return DType.f64
        if obj is int:
            return DType.i64
        if obj is bool:
            return DType.bool
        try:
            return DType.from_numpy(np.dtype(obj))  # type: ignore[arg-type]
        except (TypeError, IRError):
            supported = ", ".join(d.name for d in DType)
            raise IRError(f"unknown dtype {obj!r} (supported: {supported})") from None

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.value}"


_NP = {
    DType.bool: np.dtype(np.bool_),
    DType.i32: np.dtype(np.int32),
    DType.i64: np.dtype(np.int64),
    DType.f16: np.dtype(np.float16),
    DType.f32: np.dtype(np.float32),
    DType.f64: np.dtype(np.float64),
}
_FROM_NP = {v: k for k, v in _NP.items()}
_ORDER = [DType.bool, DType.i32, DType.i64, DType.f16, DType.f32, DType.f64]


def promote(a: DType, b: DType) -> DType:
    """The common dtype of two tensor operands (the larger in the lattice)."""
    return a if a.rank >= b.rank else b


_TYPE_RE = re.compile(r"^\s*(bool|i32|i64|f16|f32|f64)\[\s*((?:\d+\s*(?:,\s*\d+\s*)*)?)\]\s*$")


@record(frozen=True, slots=True)
class TensorType:
    """A dtype and a static shape."""

    dtype: DType
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, DType):
            raise IRError(f"tensor type dtype must be a DType, got {self.dtype!r}")
        for d in self.shape:
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                raise IRError(f"tensor dimensions must be non-negative ints, got {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(str(d) for d in self.shape)}]"

    @staticmethod
    def parse(text: str) -> TensorType:
        """Parse ``f32[4,248]``; raises IRError naming the text otherwise."""
        m = _TYPE_RE.match(text)
        if m is None:
            raise IRError(
                f"malformed tensor type {text!r}: expected DTYPE[d0,d1,...] such as f32[4,248] "
                f"or f32[] for a scalar, with DTYPE one of {', '.join(d.name for d in DType)}"
            )
        dims = m.group(2).strip()
        try:
            shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise IRError(
                f"malformed tensor type {text[:24]!r}...: a dimension has too many digits"
            ) from None
        return TensorType(DType(m.group(1)), shape)

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        return TensorType(DType.from_numpy(array.dtype), tuple(int(d) for d in array.shape))
