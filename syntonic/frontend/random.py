"""Counter-based random numbers in the graph: Threefry-2x32 (20 rounds) from IR ops.

Keys are ``i64[2]`` arrays holding two 32-bit words. Everything is built from integer IR
ops (add, bitand, bitxor, shl, shr on i64 holding 32-bit values), so the interpreter, the
CPU backend and the CUDA backend produce identical bits by construction.

Example::

    key = sn.random.key(0)
    k1, k2 = sn.random.split(key)
    x = sn.random.normal(k1, (4, 248))
    mask = sn.random.bernoulli(k2, 0.9, (4, 248))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from syntonic.frontend import api
from syntonic.frontend.tracer import fail
from syntonic.ir.errors import DTypeError, SyntonicError, TraceError
from syntonic.ir.types import DType

MASK = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def key(seed: int) -> np.ndarray:
    """A key from a Python int seed (any size; the low 64 bits are used)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"sn.random.key needs an int seed, got {seed!r}")
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([s >> 32, s & MASK], dtype=np.int64)


def _u32(x: Any) -> Any:
    return api.bitwise_and(x, MASK)


def _rotl(x: Any, r: int) -> Any:
    return _u32(api.bitwise_or(api.left_shift(x, r), api.right_shift_logical(x, 32 - r)))


def threefry2x32(k: Any, x0: Any, x1: Any) -> tuple[Any, Any]:
    """Threefry-2x32 (20 rounds) of counter words (x0, x1) under key k (i64[2])."""
    k0, k1 = k[0], k[1]
    ks = (k0, k1, api.bitwise_xor(api.bitwise_xor(k0, k1), _PARITY))
    x0 = _u32(api.add(x0, ks[0]))
    x1 = _u32(api.add(x1, ks[1]))
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = _u32(api.add(x0, x1))
            x1 = api.bitwise_xor(_rotl(x1, r), x0)
        x0 = _u32(api.add(x0, ks[(i + 1) % 3]))
        x1 = _u32(api.add(api.add(x1, ks[(i + 2) % 3]), i + 1))
    return x0, x1


def _check_key(k: Any) -> Any:
    k = api.astype(k, "i64") if str(np.dtype(k.dtype)) != "int64" else k
    if tuple(k.shape) != (2,):
        raise fail(TraceError, f"a random key is i64[2], got shape {tuple(k.shape)}",
                   "make keys with sn.random.key(seed) and sn.random.split(key)")
    return k


def _counter(n: int) -> Any:
    return api.arange(n, "i64")


def split(k: Any, num: int = 2) -> Any:
    """`num` independent keys, shape [num, 2]. Example: ``k1, k2 = sn.random.split(key)``."""
    k = _check_key(k)
    ids = _counter(num)
    a, b = threefry2x32(k, api.full((num,), 1, "i64"), ids)  # counter word 0 = 1: split
    return _stack2(a, b)


def _stack2(a: Any, b: Any) -> Any:
    """[n] and [n] -> [n, 2] without a concatenate op: place each in its column and add."""
    n = a.shape[0]
    col = api.iota((n, 2), dim=1, dtype="i64")
    a2 = api.broadcast_to(api.reshape(a, (n, 1)), (n, 2))
    b2 = api.broadcast_to(api.reshape(b, (n, 1)), (n, 2))
    return api.where(api.equal(col, 0), a2, b2)


def bits(k: Any, shape: Sequence[int]) -> Any:
    """Uniform 32-bit words (in i64) of `shape`."""
    k = _check_key(k)
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    y0, _ = threefry2x32(k, api.full((n,), 0, "i64"), _counter(n))
    return api.reshape(y0, shape)


def uniform(k: Any, shape: Sequence[int] = (), dtype: Any = "f32", minval: float = 0.0,
            maxval: float = 1.0) -> Any:
    """Uniform floats in [minval, maxval). 23 random mantissa bits for f16/f32, 32 for f64."""
    try:
        d = DType.coerce(dtype)
    except SyntonicError:
        d = None
    if d is None or not d.is_float:
        raise fail(DTypeError, f"uniform needs a float dtype, got {dtype!r}", "use 'f32'")
    b = bits(k, shape)
    if d is DType.f64:
        unit = api.multiply(api.astype(b, "f64"), 2.0**-32)
    else:
        unit = api.astype(api.multiply(api.astype(api.right_shift_logical(b, 9), "f32"),
                                       2.0**-23), d)
    return api.add(api.multiply(unit, maxval - minval), minval)


def normal(k: Any, shape: Sequence[int] = (), dtype: Any = "f32") -> Any:
    """Standard normal samples (Box-Muller on two uniform streams)."""
    keys = split(k, 2)
    u1 = uniform(keys[0], shape, "f64")
    u2 = uniform(keys[1], shape, "f64")
    r = api.sqrt(api.multiply(api.log(api.subtract(1.0, u1)), -2.0))  # 1 - u1 is in (0, 1]
    z = api.multiply(r, api.cos(api.multiply(u2, 2.0 * math.pi)))
    return api.astype(z, dtype)


def bernoulli(k: Any, p: float, shape: Sequence[int] = ()) -> Any:
    """bool samples, True with probability p."""
    return api.less(uniform(k, shape, "f64"), p)
