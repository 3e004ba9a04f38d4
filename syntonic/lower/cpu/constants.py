"""Constant arrays in a CPU program's plan (its JSON metadata in the compile cache).

A captured weight used as a GEMM operand, or a captured array returned as is, travels in
the plan as its raw little-endian bytes in base64: ~4/3 of its size, encoded and decoded
at memory speed (a list of numbers took ~5x the bytes and seconds each way for a 16 MB
weight). Kept apart from :mod:`codegen` so the runtime reads them without llvmlite.

Example::

    packed = pack_array(np.eye(3, dtype=np.float32))    # JSON-able dict
    unpack_array(packed)                                 # the array again
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

__all__ = ["pack_array", "unpack_array"]


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """`a` as a JSON-able dict: dtype, shape and its raw little-endian bytes in base64.
    Inverse: :func:`unpack_array`."""
    a = np.ascontiguousarray(a)
    little = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"dtype": a.dtype.str.lstrip("<>=|"), "shape": list(a.shape),
            "b64": base64.b64encode(little.tobytes()).decode("ascii")}


def unpack_array(packed: dict[str, Any]) -> np.ndarray:
    """The array :func:`pack_array` packed (a new, writable, native-order array)."""
    dt = np.dtype(packed["dtype"]).newbyteorder("<")
    raw = np.frombuffer(base64.b64decode(packed["b64"]), dt)
    return raw.astype(dt.newbyteorder("="), copy=True).reshape(packed["shape"])
