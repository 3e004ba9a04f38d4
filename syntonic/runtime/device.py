"""Device arrays: ``sn.to_device``, ``DeviceArray``, ``__cuda_array_interface__`` both ways.

A :class:`DeviceArray` is a contiguous (row-major) array in the memory of one CUDA
device: ``shape``, ``dtype``, ``size``, ``nbytes``, ``.numpy()`` (a copy to the host) and
``__cuda_array_interface__`` (version 3), so CuPy, PyTorch, Numba and PyCUDA read it
without a copy (``cupy.asarray(a)``, ``torch.as_tensor(a, device="cuda")``).

The other way, :func:`as_device_array` wraps any object with ``__cuda_array_interface__``
(a CuPy array, a CUDA torch tensor ...) without copying: it checks the dtype, that the
array is C-contiguous (``strides`` None or row-major) and has no mask, and says what is
wrong otherwise. Jitted functions accept such objects directly.

Memory comes from a per-device :class:`MemoryPool`: free lists by size class, so the
outputs of a jitted call in a loop reuse the blocks of the previous call's dropped
outputs and no ``cuMemAlloc`` happens per call once warm. All work runs on the legacy
default stream, so a block returned to the pool is reused in stream order.

Example::

    x = sn.to_device(np.ones((4, 248), np.float32))
    y = step(x)              # runs on the GPU, y is a DeviceArray
    print(y.numpy()[0, :4])
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from syntonic.ir.errors import BackendError, DTypeError, IRError, TraceError
from syntonic.ir.types import DType
from syntonic.runtime import cuda

SMALL_LIMIT = 1 << 20  # up to 1 MiB: power-of-two size classes
MIN_BLOCK = 512  # bytes; also keeps every block 256-byte aligned for vector loads


def size_class(nbytes: int) -> int:
    """The block size serving `nbytes`: a power of two up to 1 MiB, above that the
    next multiple of 1/8 of the enclosing power of two (at most 12.5% slack)."""
    n = max(nbytes, MIN_BLOCK)
    p = 1 << (n - 1).bit_length()
    if p <= SMALL_LIMIT:
        return p
    step = p // 8
    return -(-n // step) * step


class _Block:
    """One pooled allocation; returns itself to its pool when the last user drops it."""

    __slots__ = ("pool", "ptr", "size", "__weakref__")

    def __init__(self, pool: MemoryPool, ptr: int, size: int) -> None:
        self.pool = pool
        self.ptr = ptr
        self.size = size

    def __del__(self) -> None:
        pool = self.pool
        if pool is not None and self.ptr:
            pool._release(self.ptr, self.size)


class MemoryPool:
    """A caching allocator for one device: free lists by :func:`size_class`.

    ``alloc`` takes a free block of the right class or calls ``cuMemAlloc``; when that
    runs out of memory, the cached free blocks are freed and the allocation retried.
    ``stats()`` counts driver allocations, so tests can check that a warm loop makes
    none. Example::

        pool = sn.device_pool()
        before = pool.stats()["driver_allocs"]
    """

    def __init__(self, device: cuda.Device) -> None:
        self.device = device
        self._free: dict[int, list[int]] = {}
        # re-entrant: the garbage collector may free a block (``_Block.__del__``) while
        # this thread holds the lock inside ``alloc``
        self._lock = threading.RLock()
        self.driver_allocs = 0
        self.reuses = 0
        self.in_use_bytes = 0
        self.cached_bytes = 0

    def alloc(self, nbytes: int) -> _Block:
        """A block of at least `nbytes` bytes (contents undefined)."""
        return self.alloc_class(size_class(nbytes))

    def alloc_class(self, size: int) -> _Block:
        """A block of exactly `size` bytes, a :func:`size_class` (precomputed by callers
        on a hot path)."""
        with self._lock:
            free = self._free.get(size)
            if free:
                ptr = free.pop()
                self.reuses += 1
                self.cached_bytes -= size
                self.in_use_bytes += size
                return _Block(self, ptr, size)
        ptr = self.device.mem_alloc_or_none(size)
        if ptr is None:
            self.empty_cache()
            ptr = self.device.mem_alloc_or_none(size)
            if ptr is None:
                raise BackendError(
                    f"CUDA device {self.device.ordinal} is out of memory allocating "
                    f"{size} bytes ({self.in_use_bytes} bytes in use by Syntonic arrays); "
                    "drop references to device arrays you no longer need")
        with self._lock:
            self.driver_allocs += 1
            self.in_use_bytes += size
        return _Block(self, ptr, size)

    def _release(self, ptr: int, size: int) -> None:
        try:
            with self._lock:
                self._free.setdefault(size, []).append(ptr)
                self.in_use_bytes -= size
                self.cached_bytes += size
        except Exception:  # noqa: BLE001 - interpreter shutdown: the driver frees all
            pass

    def empty_cache(self) -> None:
        """Give every cached free block back to the driver (``cuMemFree``)."""
        with self._lock:
            blocks = [(p, s) for s, ptrs in self._free.items() for p in ptrs]
            self._free.clear()
            self.cached_bytes = 0
        for ptr, _ in blocks:
            self.device.mem_free(ptr)

    def stats(self) -> dict[str, int]:
        """``driver_allocs`` (cuMemAlloc calls), ``reuses``, ``in_use_bytes``,
        ``cached_bytes``."""
        with self._lock:
            return {"driver_allocs": self.driver_allocs, "reuses": self.reuses,
                    "in_use_bytes": self.in_use_bytes, "cached_bytes": self.cached_bytes}


_pools: dict[int, MemoryPool] = {}
_pools_lock = threading.Lock()


def device_pool(device: int = 0) -> MemoryPool:
    """The memory pool of CUDA device `device` (BackendError without a GPU)."""
    pool = _pools.get(device)
    if pool is None:
        dev = cuda.device_for(device)
        with _pools_lock:
            pool = _pools.get(device)
            if pool is None:
                pool = _pools[device] = MemoryPool(dev)
    return pool


# ------------------------------------------------------------------ arrays


class DeviceArray:
    """A C-contiguous array in CUDA device memory. Create with :func:`to_device`.

    ``shape``, ``dtype`` (a numpy dtype), ``size``, ``nbytes``, ``ndim``, ``ptr`` (the
    device address), ``.numpy()`` and ``__cuda_array_interface__`` (v3). Arrays are
    values: Syntonic never writes into an array it returned (other libraries reading it
    through the interface may). Example::

        d = sn.to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
        d.shape, d.dtype, d.numpy()
    """

    __slots__ = ("shape", "dtype", "ptr", "device", "_owner", "__weakref__")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, ptr: int, device: int,
                 owner: Any) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ptr = int(ptr)
        self.device = device
        self._owner = owner  # keeps the memory alive: a pool block or a foreign array

    @classmethod
    def _wrap(cls, shape: tuple[int, ...], dtype: np.dtype, ptr: int, device: int,
              owner: Any) -> DeviceArray:
        """The constructor without conversions, for the call path (types already right)."""
        arr = object.__new__(cls)
        arr.shape = shape
        arr.dtype = dtype
        arr.ptr = ptr
        arr.device = device
        arr._owner = owner
        return arr

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        # stream 1: our work is queued on the legacy default stream; a consumer on
        # another stream synchronises with it before reading.
        return {"shape": self.shape, "typestr": self.dtype.str, "descr": [("", self.dtype.str)],
                "data": (self.ptr, False), "strides": None, "version": 3,
                "stream": 1 if self.size else None}

    def numpy(self) -> np.ndarray:
        """A host copy (waits for the kernels that write this array)."""
        out = np.empty(self.shape, self.dtype)
        if self.size:
            cuda.device_for(self.device).dtoh(out.ctypes.data, self.ptr, self.nbytes)
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a DeviceArray lives on the GPU: converting it to numpy "
                             "copies (use .numpy())")
        out = self.numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def reshape(self, *shape: int | tuple[int, ...]) -> DeviceArray:
        """The same memory seen with another shape (no copy)."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        new = tuple(int(s) for s in shape)  # type: ignore[arg-type]
        if -1 in new:
            known = math.prod(s for s in new if s != -1)
            new = tuple(self.size // max(known, 1) if s == -1 else s for s in new)
        if math.prod(new) != self.size:
            raise TraceError(f"cannot reshape a DeviceArray of shape {self.shape} "
                             f"({self.size} elements) to {new}")
        return DeviceArray(new, self.dtype, self.ptr, self.device, self._owner)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device=cuda:"
                f"{self.device})")


def empty(shape: tuple[int, ...], dtype: Any, device: int = 0) -> DeviceArray:
    """An uninitialised DeviceArray from the pool."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes == 0:
        return DeviceArray(shape, dt, 0, device, None)
    block = device_pool(device).alloc(nbytes)
    return DeviceArray(shape, dt, block.ptr, device, block)


def to_device(array: Any, device: int = 0) -> DeviceArray:
    """Copy a numpy array (or anything ``np.asarray`` takes) to CUDA device `device`.

    A DeviceArray or an object with ``__cuda_array_interface__`` is returned wrapped, not
    copied. Without a usable GPU this raises one BackendError saying why (no ``cuda``
    extra, no driver, no device). Example::

        x = sn.to_device(np.random.rand(4, 248).astype(np.float32))
    """
    if isinstance(array, DeviceArray):
        return array
    if hasattr(array, "__cuda_array_interface__"):
        return as_device_array(array, device)
    host = np.asarray(array, order="C")
    _check_dtype(host.dtype, "sn.to_device")
    cuda.require()
    out = empty(host.shape, host.dtype, device)
    if out.nbytes:
        cuda.get_device(device).htod(out.ptr, host.ctypes.data, out.nbytes)
    return out


def is_device_array(obj: Any) -> bool:
    """True for a DeviceArray or any object exposing ``__cuda_array_interface__``."""
    return isinstance(obj, DeviceArray) or hasattr(obj, "__cuda_array_interface__")


def _check_dtype(dt: np.dtype, what: str) -> DType:
    try:
        return DType.from_numpy(dt)
    except IRError:
        raise DTypeError(f"{what}: dtype {dt} is not supported by Syntonic (supported: "
                         f"{', '.join(d.name for d in DType)}); convert the array first, "
                         "e.g. x.astype(np.float32)") from None


def as_device_array(obj: Any, device: int = 0, name: str = "argument") -> DeviceArray:
    """Wrap an object with ``__cuda_array_interface__`` (v0-v3) without copying.

    Checks: a supported dtype, no mask, C-contiguous (``strides`` None or the row-major
    strides; strides of size-1 axes are ignored). Raises DTypeError / TraceError naming
    `name` and what to do. If the producer names a stream other than the legacy default,
    the call waits for that stream before Syntonic's kernels read the data. Example::

        y = step(cupy_array)            # wraps it: no copy
    """
    if isinstance(obj, DeviceArray):
        return obj
    try:
        cai = obj.__cuda_array_interface__
    except Exception as exc:  # noqa: BLE001 - the producer's property failed
        raise TraceError(f"{name}: reading __cuda_array_interface__ of a "
                         f"{type(obj).__name__} failed ({exc})") from None
    if not isinstance(cai, dict) or "shape" not in cai or "typestr" not in cai \
            or "data" not in cai:
        raise TraceError(f"{name}: the __cuda_array_interface__ of a {type(obj).__name__} "
                         "is malformed (it needs 'shape', 'typestr' and 'data')")
    shape = tuple(int(s) for s in cai["shape"])
    try:
        dt = np.dtype(cai["typestr"])
    except TypeError:
        raise DTypeError(f"{name}: unknown typestr {cai['typestr']!r} in the "
                         f"__cuda_array_interface__ of a {type(obj).__name__}") from None
    _check_dtype(dt, f"{name} (a {type(obj).__name__} on the GPU)")
    if dt.byteorder == ">":
        raise DTypeError(f"{name}: big-endian device data ({cai['typestr']}) is not "
                         "supported")
    if cai.get("mask") is not None:
        raise TraceError(f"{name}: masked CUDA arrays (a 'mask' in "
                         "__cuda_array_interface__) are not supported; fill the masked "
                         "values and pass the plain array")
    strides = cai.get("strides")
    if strides is not None and not _c_contiguous(shape, tuple(strides), dt.itemsize):
        want = _c_strides(shape, dt.itemsize)
        raise TraceError(
            f"{name}: the {type(obj).__name__} is not C-contiguous (shape {list(shape)}, "
            f"strides {list(strides)} bytes; row-major would be {list(want)}); make a "
            "contiguous copy first, e.g. cupy.ascontiguousarray(x) or x.contiguous()")
    data = cai["data"]
    ptr = int(data[0]) if isinstance(data, tuple | list) else int(data)
    if ptr == 0 and math.prod(shape) != 0:
        raise TraceError(f"{name}: the __cuda_array_interface__ of a {type(obj).__name__} "
                         "has a null data pointer")
    if ptr % dt.itemsize:
        raise TraceError(f"{name}: the {type(obj).__name__}'s data pointer {ptr:#x} is not "
                         f"aligned to its {dt.itemsize}-byte elements; make an aligned copy "
                         "first (e.g. cupy.ascontiguousarray(x.copy()))")
    stream = cai.get("stream")
    if stream not in (None, 1) and cai.get("version", 0) >= 3:
        if stream == 0:
            raise TraceError(f"{name}: __cuda_array_interface__ 'stream' is 0, which the "
                             "protocol disallows (use 1 for the legacy default stream)")
        cuda.stream_wait(int(stream))
    return DeviceArray(shape, dt, ptr, device, obj)


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    out = []
    acc = itemsize
    for s in reversed(shape):
        out.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(out))


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> bool:
    if len(strides) != len(shape):
        return False
    if math.prod(shape) == 0:
        return True
    want = _c_strides(shape, itemsize)
    return all(s <= 1 or st == w for s, st, w in zip(shape, strides, want))


__all__ = ["DeviceArray", "MemoryPool", "as_device_array", "device_pool", "empty",
           "is_device_array", "size_class", "to_device"]
