"""GEMM for the CPU runtime: single-threaded BLAS calls, split over syntonic's own pool.

numpy's OpenBLAS runs a GEMM on its own worker threads, which busy-wait for a long time
after each call. Inside a compiled program those spinning threads compete with
syntonic's pool (the fused epilogues, the next kernels) and, on a machine shared with other
work, with everything else: a train step's GEMMs then take many times their idle time.
So programs run their GEMMs on a *private* instance of numpy's OpenBLAS, loaded from a
copy of the library (a second ``dlopen`` of the same file would return numpy's instance)
and set to one thread; :func:`matmul` splits a large product (along its larger side) into
one block per pool thread (see :class:`~syntonic.runtime.cpu.ThreadPool`). numpy's own
BLAS, and its thread setting, are untouched.

Anything unexpected (no OpenBLAS under numpy, another platform, a symbol missing, the
copy failing, a dtype other than f32/f64, a layout BLAS cannot take) falls back to
``np.matmul``. The blocks depend only on the shape and the pool's thread count, so results
are bit-identical from run to run (as with OpenBLAS's own threads, a different thread
count may round differently).

Example::

    matmul(lhs, rhs, out)          # out[...] = lhs @ rhs
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from syntonic.runtime import cpu

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
SPLIT_MIN_FLOPS = 1 << 20  # products smaller than this run in one call (no split)
SPLIT_GRAIN = 32  # rows (columns) per block at least


class _Blas:
    """``sgemm``/``dgemm`` (CBLAS, row-major) of one OpenBLAS instance."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, suffix: str, index: Any) -> None:
        self.lib = lib
        self.index_bits = 8 * ctypes.sizeof(index)
        self.gemm: dict[np.dtype, Callable[..., None]] = {}
        self.address: dict[np.dtype, int] = {}  # of each gemm (for the native blocks)
        for dt, letter, scalar in ((np.dtype(np.float32), "s", ctypes.c_float),
                                   (np.dtype(np.float64), "d", ctypes.c_double)):
            fn = getattr(lib, f"{prefix}cblas_{letter}gemm{suffix}")
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, index, index, index,
                           scalar, ctypes.c_void_p, index, ctypes.c_void_p, index, scalar,
                           ctypes.c_void_p, index]
            fn.restype = None
            self.gemm[dt] = fn
            self.address[dt] = ctypes.cast(fn, ctypes.c_void_p).value or 0


_lock = threading.Lock()
_private: _Blas | None = None
_tried = False


def private_blas() -> _Blas | None:
    """The single-threaded private OpenBLAS instance, or None where there is none."""
    global _private, _tried
    if _tried:
        return _private
    with _lock:
        if not _tried:
            try:
                _private = _load_private()
            except Exception:  # noqa: BLE001 - any surprise: use np.matmul
                _private = None
            _tried = True
    return _private


def _numpy_openblas() -> Path | None:
    """The OpenBLAS shared library numpy has loaded (Linux: from /proc/self/maps)."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure numpy's BLAS is loaded
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "openblas" in Path(path).name.lower() and path.startswith("/"):
            return Path(path)
    return None


def _load_private() -> _Blas | None:
    src = _numpy_openblas()
    if src is None:
        return None
    stat = src.stat()
    folder = Path(tempfile.gettempdir()) / f"syntonic-blas-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    copy = folder / f"{src.stem}-{stat.st_size}-{stat.st_mtime_ns}{src.suffix}"
    if not copy.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, copy)  # atomic: concurrent processes see a whole file
    lib = ctypes.CDLL(str(copy), mode=os.RTLD_LOCAL)
    for prefix, suffix, index in (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64),
                                  ("", "", ctypes.c_int)):
        setter = f"{prefix}openblas_set_num_threads{suffix}"
        if hasattr(lib, setter) and hasattr(lib, f"{prefix}cblas_sgemm{suffix}"):
            getattr(lib, setter)(1)
            return _Blas(lib, prefix, suffix, index)
    return None


def _blas_layout(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) for a 2-D operand, or None if BLAS can't."""
    item = a.itemsize
    s0, s1 = a.strides
    m, n = a.shape
    if (s1 == item or n == 1) and s0 % item == 0 and s0 // item >= max(n, 1):
        return NO_TRANS, s0 // item
    if (s0 == item or m == 1) and s1 % item == 0 and s1 // item >= max(m, 1):
        return TRANS, s1 // item
    return None


Epilogue = tuple[Callable[..., None], int, int, list[np.ndarray]]


def matmul(lhs: np.ndarray, rhs: np.ndarray, out: np.ndarray,
           epilogue: Epilogue | None = None) -> bool:
    """``out[...] = lhs @ rhs`` for the program's GEMM steps (see the module docstring).

    `epilogue` = (kernel, table, items per row, arrays it writes): the GEMM's elementwise
    epilogue, whose work items ``[r * items, (r + 1) * items)`` cover row r of `out`. When
    the product is split by rows (and the support library is loaded), each block runs the
    epilogue on its rows right after computing them, in cache; it does so only if the
    epilogue writes no memory the GEMM reads (a donated buffer may be both). Returns True
    if the epilogue ran (the caller runs it otherwise).
    """
    plan = _Plan.make(lhs, rhs, out, epilogue is not None)
    if plan is None:
        np.matmul(lhs, rhs, out=out)
        return False
    return plan.run(lhs, rhs, out, epilogue)


class _Plan:
    """How :func:`matmul` computes a product: decided from the operands' shapes, strides
    and dtypes, the pool's thread count and whether the support library is loaded."""

    @staticmethod
    def make(lhs: np.ndarray, rhs: np.ndarray, out: np.ndarray,
             epilogue: bool = False) -> _Plan | None:
        """The plan, or None where only ``np.matmul`` can (no private BLAS, another dtype
        or layout, an empty operand); `epilogue`: the product has a row epilogue."""
        blas = private_blas() if lhs.ndim == rhs.ndim == out.ndim == 2 else None
        dt = out.dtype
        if (blas is None or dt not in blas.gemm or lhs.dtype != dt or rhs.dtype != dt
                or not out.flags.c_contiguous or 0 in lhs.shape or 0 in rhs.shape):
            return None
        la, lb = _blas_layout(lhs), _blas_layout(rhs)
        if la is None or lb is None:
            return None
        return _Plan(blas, dt, la, lb, lhs.shape[0], rhs.shape[1], lhs.shape[1], epilogue)

    def __init__(self, blas: _Blas, dt: np.dtype, la: tuple[int, int], lb: tuple[int, int],
                 m: int, n: int, k: int, epilogue: bool = False) -> None:
        (ta, lda), (tb, ldb) = la, lb
        self.fn = blas.gemm[dt]
        self.call = (ta, tb, m, n, k, lda, ldb)
        self.item = dt.itemsize
        # Split the larger of M and N: each block packs all of the other operand again,
        # so the smaller one is the one duplicated. A row epilogue runs on each block
        # (in cache) only when split by rows, which is worth packing more of op(B) only
        # while that extra is small next to the output (a thin K: the N=512, K=10 input
        # gradient; measured). Row i of op(A) / column j of op(B) starts `step` bytes
        # after the previous one.
        self.by_rows = m >= n or (epilogue and 8 * k * (n - m) <= m * n)
        self.side = m if self.by_rows else n
        step = ((lda if ta == NO_TRANS else 1) if self.by_rows
                else (1 if tb == NO_TRANS else ldb))
        self.step = step * self.item
        # one block per thread, fixed by the shape and thread count (so are the bits);
        # more blocks would pack the other operand once more each
        self.split = 2 * m * n * k >= SPLIT_MIN_FLOPS and cpu.POOL.n_threads > 1
        self.native = _native_block(blas, dt) if self.split else None
        self._address = blas.address.get(dt, 0)
        if self.native is not None:  # the blocks run from machine code (lower/cpu/support)
            self.desc = self.descriptor()
            self.slots = (ctypes.c_int64 * self.desc.size).from_buffer(self.desc)
            self.address = ctypes.addressof(self.slots)

    def descriptor(self) -> np.ndarray:
        """A new block descriptor of this product (``support.GEMM_FIELDS``; operand
        addresses and epilogue still 0)."""
        ta, tb, m, n, k, lda, ldb = self.call
        return np.array([self._address, ta, tb, m, n, k, lda, ldb, 0, 0, 0, self.by_rows,
                         self.step, self.item, 0, 0, 0], np.int64)

    def chunks(self) -> int:
        """How many blocks the product runs as (1: one call)."""
        return cpu.POOL._count(self.side, SPLIT_GRAIN) if self.split else 1

    def run(self, lhs: np.ndarray, rhs: np.ndarray, out: np.ndarray,
            epilogue: Epilogue | None) -> bool:
        """Compute the product (True: the epilogue ran too). Not reentrant: a plan shared
        between threads must be run under a lock (its descriptor is written here)."""
        pointer = cpu.data_pointer
        a0, b0, c0 = pointer(lhs), pointer(rhs), pointer(out)
        fn, item, step = self.fn, self.item, self.step
        ta, tb, m, n, k, lda, ldb = self.call
        if not self.split:
            fn(ROW_MAJOR, ta, tb, m, n, k, 1.0, a0, lda, b0, ldb, 0.0, c0, n)
            return False
        if self.native is not None:
            d = self.slots
            d[8], d[9], d[10] = a0, b0, c0
            fused = (epilogue is not None and self.by_rows
                     and not _overlaps(epilogue[3], (lhs, rhs)))
            if fused:
                kernel, d[15], d[16], _ = epilogue
                d[14] = cpu.function_address(kernel)
            else:
                d[14] = 0
            cpu.POOL.run(self.native, self.address, self.side, grain=SPLIT_GRAIN)
            return fused

        by_rows = self.by_rows

        def block(_table: int, lo: int, hi: int) -> None:  # rows/columns [lo, hi)
            if by_rows:
                fn(ROW_MAJOR, ta, tb, hi - lo, n, k, 1.0, a0 + lo * step, lda, b0, ldb, 0.0,
                   c0 + lo * n * item, n)
            else:
                fn(ROW_MAJOR, ta, tb, m, hi - lo, k, 1.0, a0, lda, b0 + lo * step, ldb, 0.0,
                   c0 + lo * item, n)

        cpu.POOL.run(block, 0, self.side, grain=SPLIT_GRAIN)
        return False


class GemmStep:
    """One GEMM step of a compiled program: :func:`matmul` with its plan made once. The
    plan depends only on the operands' shapes, strides and dtypes, which a program's step
    keeps from call to call (checked, with the thread count and the support library);
    later calls write the data pointers into the plan's descriptor and post the blocks:
    ~2 us of Python where :func:`matmul` takes ~10.

    Example::

        gemm = GemmStep()
        gemm(lhs, rhs, out)            # out[...] = lhs @ rhs, as matmul(lhs, rhs, out)
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._plan: _Plan | None = None
        self._lock = threading.Lock()  # callers on several threads share the plan

    def __call__(self, lhs: np.ndarray, rhs: np.ndarray, out: np.ndarray,
                 epilogue: Epilogue | None = None) -> bool:
        key = (lhs.shape, lhs.strides, lhs.dtype, rhs.shape, rhs.strides, rhs.dtype,
               out.shape, out.strides, out.dtype, cpu.POOL.n_threads, cpu.loaded_support(),
               epilogue is None)
        with self._lock:
            if key != self._key:
                self._key, self._plan = key, _Plan.make(lhs, rhs, out, epilogue is not None)
            if self._plan is None:
                np.matmul(lhs, rhs, out=out)
                return False
            return self._plan.run(lhs, rhs, out, epilogue)


def _overlaps(written: list[np.ndarray], read: tuple[np.ndarray, ...]) -> bool:
    """Whether any array in `written` may share memory with one in `read` (byte ranges)."""
    spans = [_span(a) for a in read]
    for w in written:
        lo, hi = _span(w)
        if any(lo < b_hi and b_lo < hi for b_lo, b_hi in spans):
            return True
    return False


def _span(a: np.ndarray) -> tuple[int, int]:
    lo = hi = cpu.data_pointer(a)
    for n, st in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


_blocks: dict[str, Callable[..., None]] = {}


def _native_block(blas: _Blas, dt: np.dtype) -> Callable[..., None] | None:
    """The support library's GEMM block for `dt` and this BLAS's index width, if loaded."""
    name = f"sn_rt_gemm_{'s' if dt == np.float32 else 'd'}{blas.index_bits}"
    fn = _blocks.get(name)
    if fn is None:
        addrs = cpu.loaded_support()  # loaded by the pool once it is busy
        if addrs is None or not blas.address.get(dt):
            return None
        fn = _blocks[name] = cpu.kernel_function(addrs[name])
    return fn
