"""Buffer donation: memory of dead donated arguments becomes the next call's outputs.

``sn.jit(f, donate_argnums=...)`` lets a compiled program keep the arrays passed in donated
positions after the call. They go into the program's :class:`BufferPool`, keyed by element
count and dtype, and the *next* call takes its output buffers from the pool instead of
allocating. A training loop ``params, state = step(params, state, x)`` then alternates
between two sets of parameter-sized buffers and allocates none per step.

Invariant (why this never gives a wrong answer): an array is handed out as an output only
when no Python object other than the pool references it or the ndarray that owns its
memory (checked with the reference count at the moment it is taken). So an output can
never alias an argument of the same call, nor any array the caller can still read; a
donated array that the caller keeps is simply not reused. Outputs of one call are written
while the inputs of that call are only read, so kernels need no aliasing analysis.

One exception, decided by the compiler: an output that updates a donated parameter point
by point (:mod:`syntonic.lower.inplace`) is written into that parameter during the call,
when :func:`consumable` says nothing but its pytree container and the call hold it;
otherwise the program updates a copy (``NativeProgram._in_place``).

Example::

    pool = BufferPool([((512, 512), np.dtype(np.float32))])
    out = pool.take((512, 512), np.dtype(np.float32))   # np.empty: the pool is empty
    pool.give(w)                                        # w: a donated, dead-soon array
    out = pool.take((512, 512), np.dtype(np.float32))   # w's memory, if nothing holds w
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np

Key = tuple[int, np.dtype]


def _refs_when_dead() -> tuple[int, int]:
    """Reference counts `_pop_dead` sees for an array (and its memory owner) nobody holds.

    Measured on this interpreter with the same code shape as the check, rather than
    assumed, so a Python that counts borrowed references differently stays correct.
    """
    owner = np.empty(2)
    free = [owner.reshape(1, 2)]
    del owner
    cand = free.pop()
    base = cand.base
    return sys.getrefcount(cand), sys.getrefcount(base)


def _pop_dead(free: list[np.ndarray]) -> np.ndarray | None:
    """Pop arrays from `free` until one is unreferenced elsewhere; None if none is."""
    while free:
        cand = free.pop()
        if sys.getrefcount(cand) > _DEAD_REFS:
            continue  # the caller still holds it (or a view of it): never reuse
        base = cand.base
        if base is None or sys.getrefcount(base) <= _DEAD_BASE_REFS:
            return cand
    return None


_DEAD_REFS, _DEAD_BASE_REFS = _refs_when_dead()


def consumable(a: Any, dtype: np.dtype) -> bool:
    """True when a program may write its output into donated argument `a` (in place):
    a plain, writeable, aligned, C-contiguous ndarray of `dtype` owning its memory, held
    by nothing but one container (the pytree it was passed in) and the call's own list of
    arguments. An array the caller also holds directly, a view, or an array passed twice
    is never overwritten (its output goes to a copy)."""
    if type(a) is not np.ndarray or a.dtype != dtype or a.base is not None:
        return False
    flags = a.flags  # (a flags object holds a reference to its array: gone before counting)
    ok = flags.owndata and flags.c_contiguous and flags.writeable and flags.aligned
    del flags
    return bool(ok) and _refs(a) <= _CONSUMABLE_REFS


def _refs(a: Any) -> int:
    return sys.getrefcount(a)


def _probe(a: Any, dtype: np.dtype) -> int:  # the frame shape of ``consumable``
    return _refs(a)


def _refs_when_consumable() -> int:
    """The count ``consumable`` sees for an array held by one dict and the argument list,
    passed as ``consumable(args[i], dtype)`` (measured on this interpreter, not assumed)."""
    arr = np.empty(1)
    holder = {"a": arr}
    args = [arr]
    del arr
    seen = _probe(args[0], np.dtype(np.float64))
    assert holder  # the container stays alive while counting
    return seen


_CONSUMABLE_REFS = _refs_when_consumable()


def poolable(a: Any) -> bool:
    """True for arrays whose memory the pool may own: a plain, writeable, C-contiguous,
    aligned ndarray that owns its memory or views all of an ndarray that does (memory
    owned by something else, e.g. bytes or a memory map, is never taken)."""
    if type(a) is not np.ndarray:
        return False
    flags = a.flags
    if not (flags.c_contiguous and flags.writeable and flags.aligned):
        return False
    base = a.base
    if base is None:
        return bool(flags.owndata)
    return (type(base) is np.ndarray and base.base is None and bool(base.flags.owndata)
            and base.nbytes == a.nbytes and base.flags.c_contiguous)


class BufferPool:
    """Dead donated arrays, by (element count, dtype), waiting to become outputs.

    `slots` are the (shape, dtype) of the outputs the pool serves; it keeps at most as
    many arrays per key as there are such outputs, and ignores arrays no output can use.
    Thread-safe: ``take`` pops before it checks, so two threads never get one array.
    """

    def __init__(self, slots: Iterable[tuple[tuple[int, ...], np.dtype]]) -> None:
        keys = [((math.prod(shape), np.dtype(dtype)), tuple(shape)) for shape, dtype in slots]
        self.capacity: dict[Key, int] = {}
        for key, _ in keys:
            self.capacity[key] = self.capacity.get(key, 0) + 1
        self._free: dict[Key, list[np.ndarray]] = {k: [] for k in self.capacity}
        # per slot: its free list, shape and dtype (for take_all)
        self._slots = [(self._free[key], shape, key[1]) for key, shape in keys]

    def take_all(self, skip: frozenset[int] = frozenset()) -> list[Any]:
        """``[take(shape, dtype) for each slot]``, cheaper; None at the positions in
        `skip`."""
        out: list[Any] = []
        for k, (free, shape, dtype) in enumerate(self._slots):
            if k in skip:
                out.append(None)
                continue
            arr = _pop_dead(free) if free else None
            if arr is None:
                arr = np.empty(shape, dtype)
            elif arr.shape != shape:
                arr = arr.reshape(shape)
            out.append(arr)
        return out

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A C-contiguous array of `shape`: a dead pooled one, else a new np.empty."""
        free = self._free.get((math.prod(shape), dtype))
        if free:
            arr = _pop_dead(free)
            if arr is not None:
                return arr if arr.shape == shape else arr.reshape(shape)
        return np.empty(shape, dtype)

    def give(self, a: Any) -> None:
        """Keep donated `a` for a later ``take`` (ignored when it cannot serve one)."""
        if not poolable(a):
            return
        free = self._free.get((a.size, a.dtype))
        if free is None or len(free) >= self.capacity[(a.size, a.dtype)]:
            return
        for held in free:
            if held is a:
                return
        free.append(a)

    def __len__(self) -> int:
        return sum(len(v) for v in self._free.values())


# ------------------------------------------------------------------ large outputs

RECYCLE_MIN_BYTES = 1 << 20
"""Outputs at least this large are recycled (:class:`Recycler`); smaller ones come from
``np.empty`` (malloc reuses their memory itself)."""


class Recycler:
    """The last few outputs of one large output slot, handed out again once dead.

    A fresh large array is fresh pages from the kernel: writing a 64 MB output faults in
    16384 zeroed pages, 5-9 ms on top of the kernel's own ~12 ms (W1). A program instead
    remembers the last `keep` arrays it returned for the slot; when one is referenced by
    nothing else any more (not by the caller, nor by any view of it: the same reference
    count test as the donation pool's), the next call writes into it again. With
    ``y = f(x)`` in a loop the previous result is still bound to ``y`` during the call, so
    two arrays alternate.

    All recyclers together track at most ``SYNTONIC_RECYCLE_MB`` (default 1024; 0: none)
    bytes of arrays, the least recently used recycler giving up its oldest first, so a
    process that stops calling a program does not keep its dead outputs for long. A
    tracked array the caller still uses is only referenced, never touched.

    Example::

        r = Recycler((4096, 4096), np.dtype(np.float32))
        a = r.take()      # np.empty
        del a
        b = r.take()      # the same memory, already mapped
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, keep: int = 2) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(self.shape) * self.dtype.itemsize
        self.keep = keep
        self._recent: list[np.ndarray] = []

    def take(self) -> np.ndarray:
        """A C-contiguous array of the slot's shape: a dead tracked one, else new."""
        with _recycle_lock:
            recent = self._recent
            arr = None
            for k in range(len(recent)):
                if sys.getrefcount(recent[k]) <= _RECENT_DEAD_REFS:
                    arr = recent.pop(k)
                    break
            _lru.pop(id(self), None)
            _lru[id(self)] = weakref.ref(self)
            if arr is None:
                arr = np.empty(self.shape, self.dtype)
                if self.nbytes <= _budget():
                    _tracked[0] += self.nbytes
                    recent.append(arr)
                    if len(recent) > self.keep:
                        self._drop_oldest()
                    _evict()
            else:
                recent.append(arr)
            return arr

    def _drop_oldest(self) -> None:
        self._recent.pop(0)
        _tracked[0] -= self.nbytes

    def release(self) -> None:
        """Stop tracking every array (their memory goes back when nothing else holds
        them)."""
        with _recycle_lock:
            while self._recent:
                self._drop_oldest()
            _lru.pop(id(self), None)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown: module globals are gone
            pass


def _recent_dead_refs() -> int:
    """The count ``Recycler.take`` sees for a tracked array nobody else holds (measured
    with the same code shape on this interpreter, not assumed)."""
    recent = [np.empty(1)]
    for k in range(len(recent)):
        return sys.getrefcount(recent[k])
    return 0


_RECENT_DEAD_REFS = _recent_dead_refs()
_recycle_lock = threading.RLock()
# insertion order = least recently used first; weak: a program's recyclers die with it
_lru: dict[int, weakref.ref[Recycler]] = {}
_tracked = [0]  # bytes of arrays all recyclers track


def _budget() -> int:
    from syntonic import config

    return max(config.current().recycle_mb, 0) << 20


def _evict() -> None:
    """Drop the oldest tracked arrays of the least recently used recyclers until all of
    them track at most the budget."""
    budget = _budget()
    for ref in list(_lru.values()):
        rec = ref()
        if rec is None:
            continue
        while _tracked[0] > budget and rec._recent:
            rec._drop_oldest()
        if _tracked[0] <= budget:
            return
