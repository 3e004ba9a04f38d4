"""Native CPU execution: calling compiled code from Python, and the thread pool.

Two ways into machine code, chosen per call by size:

* **fast path** (small work): a CPython ``METH_FASTCALL`` builtin made around the
  generated FAST entry (see :mod:`syntonic.lower.cpu.abi`). The call costs about as much
  as calling any builtin; the GIL stays held (the work is short).
* **pool path** (large work): each kernel's range of work items is split into one
  contiguous chunk per thread; the calling thread and the persistent workers claim the
  chunks in turn and run them through ctypes (which releases the GIL, so the chunks run
  in parallel). The split depends only on the size and the thread count, so results are
  bit-identical from run to run.

Example::

    fast = make_fastcall(addr, "f")         # a builtin: fast(x, out) -> out
    POOL.run(kernel_addr, table, total=4096)
"""

from __future__ import annotations

import ctypes
import itertools
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from syntonic.ir.errors import BackendError
from syntonic.lower.cpu.support import SEQ, SLEEPING, SPIN, ctrl_slots

KernelFn = Callable[[int, int, int], None]
SUPPORT_AFTER_JOBS = 64  # pool jobs through Python before the native hand-off is loaded
_KERNEL_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
_RUN_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# sn_rt_program(ctrl, steps, n_steps, start, table, n_workers) -> resume step + 1, or 0
PROGRAM_PROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                                 ctypes.c_int64)
METH_FASTCALL = 0x0080


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_PyCFunction_NewEx = ctypes.pythonapi.PyCFunction_NewEx
_PyCFunction_NewEx.restype = ctypes.py_object
_PyCFunction_NewEx.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
_keepalive: list[object] = []  # method defs must outlive their builtins (never freed)


def make_fastcall(addr: int, name: str,
                  signature: Sequence[tuple[tuple[int, ...], np.dtype]] | None = None
                  ) -> Callable[..., np.ndarray]:
    """A Python builtin calling the METH_FASTCALL function at `addr`.

    `signature` is the (shape, dtype) of each argument (parameters, then outputs); the
    entry checks every argument against it natively (see :mod:`syntonic.lower.cpu.abi`),
    so a call with anything else returns its first argument instead of the output.
    Without it only the argument count, the array type and the layout are checked.
    """
    mdef = _MethodDef(name.encode(), addr, METH_FASTCALL, None)
    _keepalive.append(mdef)
    return _PyCFunction_NewEx(ctypes.addressof(mdef), expectations(signature), None)


def expectations(signature: Sequence[tuple[tuple[int, ...], np.dtype]] | None
                 ) -> np.ndarray:
    """The ``self`` array of a FAST entry: what it checks each argument against."""
    if signature is None:
        return np.array([id(np.ndarray)] + [-1] * 3 * 64, np.int64)  # any shape/dtype
    head = [id(np.ndarray)]
    dims: list[int] = []
    start = 1 + 3 * len(signature)
    for shape, dtype in signature:
        head += [np.dtype(dtype).num, len(shape), start + len(dims)]
        dims += list(shape)
    return np.array(head + dims, np.int64)


def kernel_function(addr: int) -> KernelFn:
    """A ctypes callable ``f(table_address, start, stop)`` (releases the GIL)."""
    return _KERNEL_PROTO(addr)


def function_address(fn: ctypes._CFuncPtr) -> int:  # type: ignore[name-defined]
    """The machine address of ctypes function `fn` (inverse of :func:`kernel_function`)."""
    return ctypes.c_void_p.from_buffer(fn).value or 0


def run_function(addr: int) -> Callable[[int], None]:
    """A ctypes callable ``f(table_address)`` (releases the GIL)."""
    return _RUN_PROTO(addr)


_fastcall_ok: bool | None = None


def fastcall_supported() -> bool:
    """True when this interpreter's object layouts are those the FAST entry assumes.

    Checks ``ob_refcnt`` at offset 0 and ``PyArrayObject.data``/``.flags`` at 16/64 on
    live objects; on any mismatch (another Python build, a future numpy) callers use ctypes.
    """
    global _fastcall_ok
    if _fastcall_ok is None:
        _fastcall_ok = _probe_layout()
    return _fastcall_ok


def _probe_layout() -> bool:
    import sys

    from syntonic.lower.cpu import layout as abi

    def at(base: int, offset: int, ctype: type) -> int:
        return ctype.from_address(base + offset).value

    try:
        a = np.zeros((3, 5), np.float32)
        base = id(a)
        descr = at(base, abi.ARRAY_DESCR_OFFSET, ctypes.c_void_p)
        dims = at(base, abi.ARRAY_DIMS_OFFSET, ctypes.c_void_p)
        ok = (at(base, abi.ARRAY_DATA_OFFSET, ctypes.c_void_p) == a.ctypes.data
              and at(base, abi.ARRAY_FLAGS_OFFSET, ctypes.c_int32) == a.flags.num
              and at(base, abi.OB_TYPE_OFFSET, ctypes.c_void_p) == id(np.ndarray)
              and at(base, abi.ARRAY_ND_OFFSET, ctypes.c_int32) == 2
              and (ctypes.c_int64 * 2).from_address(dims)[:] == [3, 5]
              and descr == id(a.dtype)
              and at(descr, abi.DESCR_TYPE_NUM_OFFSET, ctypes.c_int32) == a.dtype.num
              and at(descr, abi.DESCR_BYTEORDER_OFFSET, ctypes.c_char) == b"=")
        if not ok:
            return False
        before = ctypes.c_ssize_t.from_address(base).value
        return before == sys.getrefcount(a) - 1
    except Exception:  # noqa: BLE001 - any surprise means: do not use the fast path
        return False


class ThreadPool:
    """Persistent workers that share the chunks of a kernel's range with the caller.

    The chunks are fixed by the size and the thread count (so are the results); who runs
    which is not: each thread (the caller included) claims the next unclaimed chunk, and
    the caller waits only for chunks other threads claimed. A worker the OS wakes late
    (a shared machine: the second core busy for a while) thus costs nothing: the caller
    has run its chunks meanwhile, and the worker finds none left. ``run`` is synchronous
    and holds a lock, so concurrent callers take turns (each call still uses every core).

    Two hand-offs, the same chunks:

    * **native** (once the runtime support library is loaded, see :func:`native_support`):
      the job is posted in a control block and claimed with atomics, all in machine code
      with the GIL released. A worker spins for ``cpu_spin_us`` (200 us) after its last
      job before it sleeps on its semaphore, so the back-to-back jobs of a program (a
      GEMM, its epilogue, the next GEMM) reach a running thread: ~1 us, where a wake-up
      through a semaphore and the GIL costs 50-100 us.
    * **Python** (until then, or with ``native=False``): a semaphore per worker.
    """

    def __init__(self, n_threads: int | None = None, native: bool = True,
                 spin_us: float | None = None) -> None:
        self.n_threads = max(1, n_threads or os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._want_native = native
        self._spin_us = spin_us
        self._python_jobs = 0
        self.handoff: _Handoff | None = None

    def _ensure_workers(self) -> None:
        while len(self._workers) < self.n_threads - 1:
            self._workers.append(_Worker(len(self._workers) + 1, self))

    def chunks(self, total: int, grain: int = 1, per_thread: int = 1) -> list[tuple[int, int]]:
        """The deterministic split of ``[0, total)`` into at most n_threads * per_thread
        chunks."""
        n = self._count(total, grain, per_thread)
        edges = [total * k // n for k in range(n + 1)]
        return [(edges[k], edges[k + 1]) for k in range(n) if edges[k] < edges[k + 1]]

    def _count(self, total: int, grain: int, per_thread: int = 1) -> int:
        if self.n_threads == 1:
            return 1
        return max(1, min(self.n_threads * per_thread, total // max(grain, 1)))

    def run(self, kernel: KernelFn, table: int, total: int, grain: int = 1,
            per_thread: int = 1) -> None:
        """Run ``kernel(table, start, stop)`` over ``[0, total)`` on all threads.

        `kernel` is a ctypes function (run from machine code) or any Python callable.
        `per_thread` > 1 cuts more chunks than threads: a thread that falls behind (a
        core busy with other work) then leaves its unclaimed chunks to the others.
        """
        n = self._count(total, grain, per_thread)
        if n <= 1:
            kernel(table, 0, total)
            return
        handoff = self.handoff
        if handoff is None and self._want_native:
            handoff = self._attach()
        if handoff is not None:
            self._run_native(handoff, kernel, table, total, n)
            return
        job = _Job(kernel, table, self.chunks(total, grain, per_thread))
        with self._lock:
            self._ensure_workers()
            for w in self._workers[: n - 1]:
                w.submit(job)
            job.work()
            job.finished.wait()
        if job.error is not None:
            raise BackendError(f"a worker thread failed: {job.error!r}") from job.error

    def _attach(self) -> _Handoff | None:
        """The native hand-off, once the support library is there (never waits for it).

        A process starts loading (or building) the library only at its SUPPORT_AFTER_JOBS-th
        pool job: a short-lived one (a script, a single call) never pays for it."""
        addrs = _support
        if addrs is None:
            self._python_jobs += 1
            if self._python_jobs < SUPPORT_AFTER_JOBS:
                return None
            addrs = native_support(wait=False)
            if addrs is None:
                return None
        with self._lock:
            if self.handoff is None:
                spin = self._spin_us
                if spin is None:
                    from syntonic import config

                    spin = config.current().cpu_spin_us
                self._ensure_workers()
                # published last: a worker that sees it finds the control block complete
                self.handoff = _Handoff(addrs, len(self._workers), spin)
            return self.handoff

    def _run_native(self, handoff: _Handoff, kernel: KernelFn, table: int, total: int,
                    n: int) -> None:
        error: list[BaseException] = []
        if isinstance(kernel, ctypes._CFuncPtr):  # type: ignore[attr-defined]
            fn = function_address(kernel)
            keep = None
        else:  # a Python callable: through a ctypes thunk (it takes the GIL per chunk)
            def guarded(t: int, lo: int, hi: int, kernel: KernelFn = kernel) -> None:
                try:
                    kernel(t, lo, hi)
                except BaseException as exc:  # noqa: BLE001 - raised by run()
                    error.append(exc)
            keep = _KERNEL_PROTO(guarded)
            fn = function_address(keep)
        with self._lock:
            workers = self._workers
            seq = handoff.run(handoff.ctrl, fn, table, total, n, len(workers))
            if seq:  # some workers were asleep: wake them, then take part
                self._wake(handoff)
                handoff.finish(handoff.ctrl, seq)
        del keep
        if error:
            raise BackendError(f"a worker thread failed: {error[0]!r}") from error[0]

    def _wake(self, handoff: _Handoff) -> None:
        """Wake the workers the last posted job found asleep."""
        slots = handoff.slots
        for i, w in enumerate(self._workers):
            if slots[SLEEPING + 8 * i + 1]:
                w.wake()

    def run_steps(self, steps: int, n_steps: int, table: int) -> bool:
        """Run a program's step records (``sn_rt_program``, :mod:`syntonic.runtime.runner`)
        at address `steps` over buffer table `table`: every kernel and GEMM in one native
        call, their pool jobs on this pool. False (nothing run) without the native
        hand-off: the caller then runs the steps itself."""
        handoff = self.handoff
        if handoff is None:
            return False
        with self._lock:
            n_workers = len(self._workers)
            start = 0
            while True:
                resume = handoff.program(handoff.ctrl, steps, n_steps, start, table,
                                         n_workers)
                if resume == 0:
                    return True
                # a job found workers asleep: wake them, take part, go on after it
                self._wake(handoff)
                handoff.finish(handoff.ctrl, int(handoff.slots[SEQ]))
                start = resume - 1


class _Handoff:
    """The native hand-off: the support functions and the pool's control block."""

    def __init__(self, addrs: dict[str, int], n_workers: int, spin_us: float) -> None:
        i64, vp = ctypes.c_int64, ctypes.c_void_p
        self.run = ctypes.CFUNCTYPE(i64, vp, i64, i64, i64, i64, i64)(addrs["sn_rt_run"])
        self.finish = ctypes.CFUNCTYPE(None, vp, i64)(addrs["sn_rt_finish"])
        self.worker = ctypes.CFUNCTYPE(i64, vp, i64, i64)(addrs["sn_rt_worker"])
        self.program = PROGRAM_PROTO(addrs["sn_rt_program"])
        n = ctrl_slots(n_workers)
        raw = np.zeros(n + 8, np.int64)  # + 8: room to align the block to 64 bytes
        skip = (-raw.ctypes.data % 64) // 8
        self.slots = raw[skip: skip + n]
        self.ctrl = self.slots.ctypes.data
        self.slots[SPIN] = _spin_iterations(addrs["sn_rt_spin"], spin_us)
        for w in range(n_workers):
            self.slots[SLEEPING + 8 * w] = 1  # every worker starts blocked on its semaphore


def _spin_iterations(spin_addr: int, spin_us: float) -> int:
    """Idle-loop iterations that take about `spin_us` microseconds on this CPU."""
    if spin_us <= 0:
        return 0
    spin = ctypes.CFUNCTYPE(None, ctypes.c_int64)(spin_addr)
    n, best = 4096, float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        spin(n)
        best = min(best, time.perf_counter() - t0)
    per_us = n / max(best * 1e6, 1e-3)
    return max(1, int(per_us * spin_us))


class _Job:
    """One Python-hand-off ``run``: chunks claimed in turn; ``finished`` is set when all
    have run."""

    def __init__(self, kernel: KernelFn, table: int, parts: list[tuple[int, int]]) -> None:
        self.kernel, self.table, self.parts = kernel, table, parts
        self._claim = itertools.count()
        self._lock = threading.Lock()
        self._done = 0
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        n = len(self.parts)
        i = next(self._claim)  # atomic under the GIL
        while i < n:
            lo, hi = self.parts[i]
            try:
                self.kernel(self.table, lo, hi)
            except BaseException as exc:  # noqa: BLE001 - raised by run()
                self.error = exc
            with self._lock:
                self._done += 1
                if self._done == n:
                    self.finished.set()
            i = next(self._claim)


class _Worker:
    """A pool thread: blocks on its semaphore; once woken it runs a Python job, or spins
    in the native hand-off (claiming jobs there) until it has been idle a while."""

    def __init__(self, index: int, pool: ThreadPool) -> None:
        self._go = threading.Semaphore(0)
        self._job: _Job | None = None
        self._pool = pool
        self._index = index - 1  # its slot in the native control block
        self._thread = threading.Thread(target=self._loop, name=f"syntonic-cpu-{index}",
                                        daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._job = job
        self._go.release()

    def wake(self) -> None:
        self._go.release()

    def _loop(self) -> None:
        seen = 0
        while True:
            self._go.acquire()
            job, self._job = self._job, None
            if job is not None:  # a late wake-up may find its chunks all taken: harmless
                job.work()
            handoff = self._pool.handoff
            if handoff is not None:
                seen = handoff.worker(handoff.ctrl, self._index, seen)


_support_lock = threading.Lock()
_support: dict[str, int] | None = None
_support_thread: threading.Thread | None = None
_support_error: BaseException | None = None


def loaded_support() -> dict[str, int] | None:
    """The support functions' addresses if already loaded (never loads them)."""
    return _support


def native_support(wait: bool = False) -> dict[str, int] | None:
    """Addresses of the runtime support functions (:mod:`syntonic.lower.cpu.support`),
    or None while they are not loaded.

    The first call loads them from the compile cache, or starts compiling them on a
    background thread (once per cache: ~60 ms of LLVM) and returns None; `wait` blocks
    until they are there. A failure leaves the Python hand-off in place (None forever).
    """
    global _support, _support_thread
    if _support is not None:
        return _support
    with _support_lock:
        if _support is not None or _support_error is not None:
            return _support
        if _support_thread is None:
            from syntonic.lower.cpu.support import support_ir
            from syntonic.runtime import cache
            from syntonic.runtime.native import _load_code

            text = support_ir(platform.machine())
            key = cache.make_key(text, "runtime support", cache.host_key(),
                                 cache.source_fingerprint())
            entry = cache.get(key)
            if entry is not None:
                _support = _load_code(entry)
                return _support
            _support_thread = threading.Thread(target=_build_support, args=(text, key),
                                               name="syntonic-support", daemon=True)
            _support_thread.start()
        thread = _support_thread
    if wait:
        thread.join()
    return _support


def _build_support(text: str, key: str) -> None:
    """Compile the support library (LLVM IR `text`), cache it under `key`, load it."""
    global _support, _support_error
    try:
        from syntonic.lower.cpu.engine import get_engine
        from syntonic.lower.cpu.support import SYMBOLS
        from syntonic.runtime import cache
        from syntonic.runtime.native import load_new

        engine = get_engine()
        art = engine.compile(text, "runtime support", SYMBOLS, vectorize=False)
        addrs = load_new(key, cache.Entry({"symbols": list(SYMBOLS), "name": "runtime support",
                                           "llvm": art.optimized_ir,
                                           "target": engine.target_key}, art.obj))
        with _support_lock:
            _support = addrs
    except Exception as exc:  # noqa: BLE001 - the Python hand-off stays
        _support_error = exc


POOL = ThreadPool()


def table_of(arrays: Sequence[np.ndarray]) -> ctypes.Array:
    """A buffer table (array of data pointers) for `arrays` (keep it alive while used)."""
    return (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])


_VOID_P = ctypes.c_void_p


def data_pointer(a: np.ndarray) -> int:
    """The data pointer of ndarray `a`: read from the array object (PyArrayObject.data at
    offset 16, which :func:`fastcall_supported` checks), else through ``a.ctypes.data``,
    which costs ~8x more (it builds a helper object per call)."""
    if _fastcall_ok or (_fastcall_ok is None and fastcall_supported()):
        return _VOID_P.from_address(id(a) + 16).value or 0
    return a.ctypes.data
