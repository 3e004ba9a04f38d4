"""A compiled CPU program: machine code plus the plan that runs it from Python.

:func:`compile_program` turns a kernel-IR :class:`~syntonic.lower.kernel.Program` into a
:class:`NativeProgram`, through the compile cache (:mod:`syntonic.runtime.cache`): a hit
loads object code and skips codegen and LLVM. Calling it:

* small calls whose every step is native use the generated METH_FASTCALL entry: one
  builtin call with the argument and output arrays, temporaries on the native stack;
* otherwise the general path builds a buffer table once per call and runs the steps:
  native kernels (on the thread pool from a cost of ``config.parallel_min_points``: see
  :meth:`NativeProgram.parallel`), GEMMs through numpy, opaque kernels through their
  reference rule.

Example::

    native = compile_program(program, key)
    (y,) = native(x)
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from syntonic import config
from syntonic.ir.types import DType
from syntonic.lower.cpu.constants import unpack_array
from syntonic.runtime import blas, cache, cpu
from syntonic.runtime.donation import RECYCLE_MIN_BYTES, BufferPool, Recycler, consumable
from syntonic.runtime.runner import StepRunner

WORKSPACE_LIMIT = 1 << 30  # bytes of temporaries a program keeps between calls

_loaded: dict[str, dict[str, int]] = {}
_load_lock = threading.Lock()
# A kernel's work items are independent, so its range is cut into more chunks than threads:
# a thread slowed by other work on its core leaves its unclaimed chunks to the others.
CHUNKS_PER_THREAD = 4


if TYPE_CHECKING:  # the kernel IR's ~20 dataclasses cost ~10 ms to create: a warm start
    from syntonic.lower.kernel import Program  # running cached code never needs them
    from syntonic.lower.view import View


def _view(spec: dict[str, Any]) -> View:
    from syntonic.lower.view import Dim, View

    return View(tuple(Dim(s, st, lo, hi, step) for s, st, lo, hi, step in spec["dims"]),
                spec["offset"])


def _operand_reader(spec: dict[str, Any], slot_dtypes: list[np.dtype]) -> _Operand:
    """``read(arrays)``: a GEMM operand as a numpy view of its buffer (strides and offset
    fixed at load time, so BLAS sees a transposed weight as a transpose, no copy); a
    constant operand is materialized once; masked views gather (padding reads 0)."""
    view = _view(spec["view"])
    if "const" in spec:
        data = unpack_array(spec["const"])
        value = view.gather(data)
        return _Operand(lambda arrays: value, constant=value)
    slot = spec["slot"]
    if view.masked or view.size == 0 or any(st < 0 for st in view.strides):
        return _Operand(lambda arrays: view.gather(arrays[slot].reshape(-1)))
    dt = slot_dtypes[slot]
    shape = tuple(view.shape)
    strides = tuple(st * dt.itemsize for st in view.strides)
    offset = view.offset * dt.itemsize
    return _Operand(lambda arrays: np.ndarray(shape, dt, arrays[slot], offset, strides),
                    slot=slot, offset=offset)


class _Operand:
    """A GEMM operand reader (``read(arrays)``) and where it reads: `slot` and byte
    `offset` for a view of a buffer (the step runner addresses it through the buffer
    table), or a `constant` array; neither for a gathered view (a new array per call)."""

    __slots__ = ("read", "slot", "offset", "constant")

    def __init__(self, read: Callable[[list[np.ndarray]], np.ndarray], slot: int = -1,
                 offset: int = 0, constant: np.ndarray | None = None) -> None:
        self.read = read
        self.slot, self.offset, self.constant = slot, offset, constant

    def __call__(self, arrays: list[np.ndarray]) -> np.ndarray:
        return self.read(arrays)


class NativeProgram:
    """Callable: ``native(*arrays) -> tuple of outputs``. See the module docstring."""

    def __init__(self, meta: dict[str, Any], addrs: dict[str, int],
                 program: Program | None = None,
                 replan: Callable[[], Program] | None = None) -> None:
        self.meta = meta
        plan = meta["plan"]
        self.plan = plan
        self.program = program
        self._replan = replan
        slots = plan["slots"]
        self.n_params = sum(1 for s in slots if s["kind"] == "param")
        self.param_dtypes = [np.dtype(DType[s["dtype"]].np) for s in slots
                             if s["kind"] == "param"]
        self.out_slots = [(tuple(s["shape"]), np.dtype(DType[s["dtype"]].np))
                          for s in slots if s["kind"] == "output"]
        self.temp_slots = [(tuple(s["shape"]), np.dtype(DType[s["dtype"]].np))
                           for s in slots if s["kind"] == "temp"]
        self.outputs = plan["outputs"]
        first_out = self.n_params
        # (output slot index, parameter index, parameter shape) of outputs written in
        # place of a donated parameter (see syntonic.lower.inplace)
        out_slot_info = [s for s in slots if s["kind"] == "output"]
        self._inplace = [(k, s["inplace"], tuple(slots[s["inplace"]]["shape"]))
                         for k, s in enumerate(out_slot_info) if "inplace" in s]
        self._inplace_outs = frozenset(k for k, _, _ in self._inplace)
        self._out_index = [o.get("slot", -1) - first_out for o in self.outputs]
        self._simple_outputs = all(
            "slot" in o and tuple(o["shape"]) == self.out_slots[o["slot"] - first_out][0]
            and o["slot"] - first_out == i for i, o in enumerate(self.outputs)
        ) and len(self.outputs) == len(self.out_slots)
        # every output an output slot, some reshaped (a view): (slot, shape or None)
        self._slot_views: list[tuple[int, tuple[int, ...] | None]] | None = None
        if all("slot" in o for o in self.outputs):
            self._slot_views = [
                (k, None if tuple(o["shape"]) == self.out_slots[k][0] else tuple(o["shape"]))
                for o, k in zip(self.outputs, self._out_index)]
        self.kernels = {s["symbol"]: cpu.kernel_function(addrs[s["symbol"]])
                        for s in plan["steps"] if s["kind"] == "native"}
        self._steps = plan["steps"]
        slot_dtypes = [np.dtype(DType[s["dtype"]].np) for s in slots]
        for s, after in zip(self._steps, [*self._steps[1:], None]):
            if s["kind"] == "matmul":
                s["_lhs"] = _operand_reader(s["lhs"], slot_dtypes)
                s["_rhs"] = _operand_reader(s["rhs"], slot_dtypes)
                s["_gemm"] = blas.GemmStep()
                # its epilogue may run on each row block of the GEMM (blas.matmul)
                if (after is not None and after["kind"] == "native"
                        and after["kernel"] == s["kernel"] and "row_items" in after
                        and after["items"] == slots[s["out"]]["shape"][0]
                        * after["row_items"]):
                    s["_epilogue"] = after
        cfg = config.current()
        self.min_parallel = cfg.parallel_min_points
        if cfg.cpu_threads and cfg.cpu_threads != cpu.POOL.n_threads:
            cpu.POOL = cpu.ThreadPool(cfg.cpu_threads)
        for s in self._steps:
            s["_parallel"] = s["kind"] == "native" and self.parallel(s)
        self._param_outputs = frozenset(o["param"] for o in self.outputs if "param" in o)
        self._pool: BufferPool | None = None
        # the steps as native records, once the pool hands off natively (False: they
        # cannot be; see runner.py)
        self._runner: StepRunner | Literal[False] | None = None
        self._calls = 0  # general-path calls before the support library was loaded
        self._workspace: tuple[list[np.ndarray], ctypes.Array] | None = None
        self._workspace_lock = threading.Lock()
        self._keep_workspace = sum(math.prod(s) * dt.itemsize
                                   for s, dt in self.temp_slots) <= WORKSPACE_LIMIT
        # large outputs are written into this program's dead earlier outputs (no fresh pages)
        self._recyclers = [Recycler(shape, dt)
                           if math.prod(shape) * dt.itemsize >= RECYCLE_MIN_BYTES else None
                           for shape, dt in self.out_slots]
        self._recycle = any(r is not None for r in self._recyclers)
        self.fast = None
        # hot = (fast, shape, dtype) of a single-output program whose FAST entry checks
        # its whole signature natively: `out = empty(shape, dtype); fast(*args, out) is
        # out` is then a complete call (JitFunction.__call__ uses it; see abi.py)
        self.hot: tuple[Callable[..., Any], tuple[int, ...], np.dtype] | None = None
        if "fast" in plan and cpu.fastcall_supported() and (
                not any(s["_parallel"] for s in self._steps) or cpu.POOL.n_threads == 1):
            signature = [(tuple(s["shape"]), np.dtype(DType[s["dtype"]].np)) for s in slots
                         if s["kind"] in ("param", "output")]
            self.fast = cpu.make_fastcall(addrs[plan["fast"]], plan["fast"], signature)
            if self._simple_outputs and len(self.out_slots) == 1 and not self._recycle:
                self.hot = (self.fast, *self.out_slots[0])

    def parallel(self, step: dict[str, Any]) -> bool:
        """Whether native `step` runs on the thread pool: it has more than one work item
        and its cost (points x operations per point) reaches ``parallel_min_points``, but
        never under 1/16 of that many points (a small kernel stays in the one-call native
        entry, where a pool job costs more than it saves). T1's log-softmax + loss kernel,
        2560 points x 13 operations with exp and log: 28 -> 17 us on two threads."""
        points = step["points"]
        return (step["items"] > 1 and 16 * points >= self.min_parallel
                and points * max(1, step.get("flops", 1)) >= self.min_parallel)

    # ------------------------------------------------------------ calling
    def __call__(self, *args: Any) -> tuple[np.ndarray, ...]:
        if self._inplace:  # nothing donated: the in-place outputs update copies
            return self.call_donating(args, ())
        fast = self.fast
        if fast is not None:  # it checks type, dtype, shape and layout of every argument
            outs = (self._new_outputs() if self._recycle
                    else [np.empty(shape, dt) for shape, dt in self.out_slots])
            if fast(*args, *outs) is outs[-1]:
                if self._simple_outputs:
                    return tuple(outs)
                views = self._slot_views
                if views is not None:
                    return tuple(outs[k] if s is None else outs[k].reshape(s)
                                 for k, s in views)
                return self._collect(args, outs)
        return self._general(args)

    def _new_outputs(self) -> list[np.ndarray]:
        """Arrays for the outputs of a call: large ones recycled (see ``Recycler``)."""
        return [np.empty(shape, dt) if r is None else r.take()
                for r, (shape, dt) in zip(self._recyclers, self.out_slots)]

    def call_donating(self, args: Sequence[Any], donated: Sequence[int]
                      ) -> tuple[np.ndarray, ...]:
        """Run with `args[i]` for i in `donated` given to the program (see
        :mod:`syntonic.runtime.donation`): outputs come from the memory of arrays donated
        by earlier calls, when nothing references them any more; after the run these
        donated arguments join the pool, except one returned unchanged, which is the
        output itself (no copy)."""
        pool = self._pool
        if pool is None:
            pool = self._pool = BufferPool(self.out_slots)
        outs = pool.take_all(self._inplace_outs)
        forward = frozenset(donated) & self._param_outputs
        consumed: set[int] = set()
        given = args
        if self._inplace:
            args, consumed = self._in_place(args, frozenset(donated), outs, pool)
        result = None
        fast = self.fast
        if fast is not None:
            for a, dt in zip(args, self.param_dtypes):
                if type(a) is not np.ndarray or a.dtype != dt:
                    break
            else:
                if fast(*args, *outs) is outs[-1]:
                    result = (tuple(outs) if self._simple_outputs
                              else self._collect(args, outs, forward))
        if result is None:
            result = self._general(args, outs, forward)
        for i in donated:
            if i not in forward and i not in consumed:
                pool.give(given[i])
        return result

    def _in_place(self, args: Sequence[Any], donated: frozenset[int],
                  outs: list[Any], pool: BufferPool) -> tuple[Sequence[Any], set[int]]:
        """Fill the in-place outputs of `outs`: the donated argument itself where it may
        be overwritten (:func:`~syntonic.runtime.donation.consumable`: nothing but its
        container and this call holds it), else a copy of the argument, which the program
        then reads and updates (the caller's array stays as it was). Returns the
        arguments to run with and the donated positions consumed."""
        # decided before anything else holds the arguments (the count is part of the test)
        consumed = {i for k, i, _ in self._inplace
                    if i in donated and consumable(args[i], self.out_slots[k][1])}
        run_args = args
        for k, i, shape in self._inplace:
            shape_k, dt = self.out_slots[k]
            if i in consumed:
                a = args[i]
                outs[k] = a if a.shape == shape_k else a.reshape(shape_k)
            else:
                c = pool.take(shape_k, dt)
                np.copyto(c.reshape(shape), np.asarray(args[i]), casting="same_kind")
                outs[k] = c
                if run_args is args:
                    run_args = list(args)
                run_args[i] = c.reshape(shape)
        return run_args, consumed

    def _general(self, args: Sequence[Any], outs: list[np.ndarray] | None = None,
                 forward: frozenset[int] = frozenset()) -> tuple[np.ndarray, ...]:
        params = [np.ascontiguousarray(a, dt) for a, dt in zip(args, self.param_dtypes)]
        if outs is None:
            outs = self._new_outputs()
        front = params + outs
        # Temporaries (and the buffer table that points at them) live in one workspace
        # per program, reused by every call; a call that finds it busy (another thread is
        # inside) makes its own.
        if self._workspace_lock.acquire(blocking=False):
            try:
                ws = self._workspace
                if ws is None:
                    ws = self._new_workspace(len(front))
                    if self._keep_workspace:
                        self._workspace = ws
                self._run_steps(front, *ws)
            finally:
                self._workspace_lock.release()
        else:
            self._run_steps(front, *self._new_workspace(len(front)))
        return self._collect(params, outs, forward)

    def _new_workspace(self, n_front: int) -> tuple[list[np.ndarray], ctypes.Array]:
        temps = [np.empty(shape, dt) for shape, dt in self.temp_slots]
        table = (ctypes.c_void_p * max(n_front + len(temps), 1))()
        for i, t in enumerate(temps):
            table[n_front + i] = cpu.data_pointer(t)
        return temps, table

    def _run_steps(self, front: list[np.ndarray], temps: list[np.ndarray],
                   table: ctypes.Array) -> None:
        """Run the plan's steps; `table` already points at `temps` (after `front`)."""
        pointer = cpu.data_pointer
        for i, a in enumerate(front):
            table[i] = pointer(a)
        arrays = front + temps
        addr = ctypes.addressof(table)
        pool = cpu.POOL
        runner = self._runner
        if runner is not False:  # every step in one native call (runtime/runner.py)
            if runner is None or runner.pool is not pool:
                runner = self._runner = self._make_runner(arrays, pool)
            if runner and runner.run(addr):
                return
        done = None  # an epilogue step already run with its GEMM
        for step in self._steps:
            kind = step["kind"]
            if step is done:
                continue
            if kind == "native":
                fn = self.kernels[step["symbol"]]
                if step["_parallel"]:
                    pool.run(fn, addr, step["items"], 1, CHUNKS_PER_THREAD)
                else:
                    fn(addr, 0, step["items"])
            elif kind == "matmul":
                epi = step.get("_epilogue")
                with_epi = None if epi is None else (
                    self.kernels[epi["symbol"]], addr, epi["row_items"],
                    [arrays[w] for w in epi["writes"]])
                if step["_gemm"](step["_lhs"](arrays), step["_rhs"](arrays),
                                 arrays[step["out"]], with_epi):
                    done = epi
            else:
                self._opaque(step["kernel"], arrays)

    def _make_runner(self, arrays: list[np.ndarray], pool: cpu.ThreadPool
                     ) -> StepRunner | Literal[False] | None:
        """The step runner, once the support library is loaded (None: not yet; False:
        the steps cannot run natively). A program that keeps calling without any pool
        job (small kernels, small GEMMs) starts loading the library itself at its
        ``SUPPORT_AFTER_JOBS``-th call, as a busy pool does."""
        if cpu.loaded_support() is None:
            self._calls += 1
            if self._calls < cpu.SUPPORT_AFTER_JOBS or cpu.native_support() is None:
                return None
        return StepRunner.build(self, arrays, pool) or False

    def _opaque(self, kernel_index: int, arrays: list[np.ndarray]) -> None:
        from syntonic.lower.kernel_interp import run_kernel

        if self.program is None:
            assert self._replan is not None, "an opaque step needs the kernel program"
            self.program = self._replan()
        prog = self.program
        slots = self.plan["slots"]
        flat = {s["buffer"]: arrays[i].reshape(-1) for i, s in enumerate(slots)
                if s["buffer"] >= 0}
        for b in prog.buffers:
            if b.id not in flat and b.data is not None:
                flat[b.id] = np.ascontiguousarray(b.data, b.type.dtype.np).reshape(-1)
        run_kernel(prog.kernels[kernel_index], flat, prog)

    def _collect(self, params: Any, outs: list[np.ndarray],
                 forward: frozenset[int] = frozenset()) -> tuple[np.ndarray, ...]:
        """The results; a parameter output is a copy, except the first output of a
        parameter in `forward` (donated: the array itself is returned)."""
        result = []
        forwarded: set[int] = set()
        for o, k in zip(self.outputs, self._out_index):
            shape = tuple(o["shape"])
            if "slot" in o:
                arr = outs[k]
                result.append(arr if arr.shape == shape else arr.reshape(shape))
            elif "param" in o:
                i = o["param"]
                if i in forward and i not in forwarded:
                    forwarded.add(i)
                    arr = params[i]
                    result.append(arr if arr.shape == shape else arr.reshape(shape))
                else:
                    result.append(np.array(params[i], copy=True).reshape(shape))
            else:
                result.append(unpack_array(o["const"]).reshape(shape))
        return tuple(result)

    # ------------------------------------------------------------ stages
    def text(self, stage: str) -> str:
        """``llvm`` (optimised LLVM IR) or ``asm`` (host assembly)."""
        if stage == "llvm":
            return self.meta["llvm"]
        if stage == "asm":
            from syntonic.lower.cpu.engine import get_engine

            if "asm" not in self.meta:
                self.meta["asm"] = get_engine().asm(self.meta["llvm"])
            return self.meta["asm"]
        raise KeyError(stage)


def program_key(graph_text: str, extra: str = "") -> str:
    """The compile-cache key of a traced graph (see :mod:`syntonic.runtime.cache`)."""
    import dataclasses

    # Nothing here may need LLVM or the code generator (a warm hit loads neither): the
    # host key stands for the target, and the source fingerprint covers the code
    # generator (CODEGEN_VERSION lives in a source file it hashes).
    cfg = config.current()
    runtime_only = {"dump_dir", "explain", "verify", "cache", "cache_dir", "cache_max_mb",
                    "cpu_threads", "parallel_min_points", "cpu_spin_us", "device",
                    "recycle_mb"}
    relevant = tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                     if f.name not in runtime_only)
    return cache.make_key(graph_text, repr(relevant), extra, cache.host_key(),
                          cache.source_fingerprint())


def compile_graph(graph: Any, donated: Sequence[int] = ()) -> NativeProgram:
    """Compile a traced (verified) Graph for the CPU: passes, fusion, codegen, LLVM.

    Keyed on the traced IR, so a cache hit runs none of those stages (the kernel program
    is rebuilt only if an opaque kernel needs it). `donated` (parameter positions) lets
    outputs be written into donated parameters (:mod:`syntonic.lower.inplace`).
    """

    def build() -> Program:  # imports here: a cache hit loads no pass (nor networkx)
        from syntonic.lower.schedule import lower_to_kernels
        from syntonic.passes.fusion import fuse
        from syntonic.passes.pipeline import run_pipeline

        return lower_to_kernels(fuse(run_pipeline(graph)[-1].graph))

    extra = f"donated={sorted(donated)}" if donated else ""
    return compile_program(None, program_key(graph.key_text(), extra), build,
                           donated=donated)


def compile_program(program: Program | None, key: str,
                    build: Callable[[], Program] | None = None,
                    annotate: Callable[[str], str] | None = None,
                    donated: Sequence[int] = ()) -> NativeProgram:
    """Compile (or fetch from the cache) the program for `key`.

    `program` may be None when `build` can make it: on a cache hit it is then built only
    if an opaque step needs it. `annotate` may post-process the optimised LLVM text (e.g.
    to add user source lines). `donated`: see :func:`compile_graph` (part of `key`).
    """
    entry = cache.get(key)
    if entry is None:
        from syntonic.lower.cpu.codegen import lower_program
        from syntonic.lower.cpu.engine import get_engine

        if program is None:
            assert build is not None
            program = build()
        from syntonic.lower.inplace import inplace_outputs

        lowered = lower_program(program, f"{program.name}_{key[:12]}",
                                inplace_outputs(program, donated))
        engine = get_engine()
        art = engine.compile(lowered.llvm_ir, program.name, lowered.symbols,
                             vectorize=not _bit_mixing(program),
                             interleave=lowered.interleave)
        llvm_text = annotate_llvm(art.optimized_ir, program, lowered.plan)
        if annotate:
            llvm_text = annotate(llvm_text)
        meta = {"plan": lowered.plan, "symbols": list(lowered.symbols), "llvm": llvm_text,
                "kernels": program.text(), "name": program.name,
                "target": engine.target_key}
        entry = cache.Entry(meta, art.obj)
        addrs = load_new(key, entry)
        with _load_lock:
            _loaded[key] = addrs
    else:
        with _load_lock:
            addrs = _loaded.get(key)
            if addrs is None:
                addrs = _load_code(entry)
                _loaded[key] = addrs
    meta = dict(entry.meta)
    meta["plan"] = _copy_plan(meta["plan"])
    return NativeProgram(meta, addrs, program, build)


def load_new(key: str, entry: cache.Entry) -> dict[str, int]:
    """Load just compiled object code (`entry`, without a library) and cache it.

    The code goes into LLVM's MCJIT (1-2 ms); the shared library a later process will
    dlopen is linked (~12 ms) and the entry written to disk in the background
    (:func:`syntonic.runtime.cache.put`), so neither is part of a cold first call.
    """
    from syntonic.lower.cpu.engine import get_engine

    engine = get_engine()
    addrs = engine.load(entry.obj, tuple(entry.meta["symbols"]), b"")
    cache.put(key, entry, finish=_linked if engine.pic else None)
    return addrs


def _linked(entry: cache.Entry) -> cache.Entry:
    from syntonic.lower.cpu.engine import get_engine

    return entry._replace(lib=get_engine().link(entry.obj) or b"")


def _load_code(entry: cache.Entry) -> dict[str, int]:
    """Symbol addresses of an entry's machine code: dlopen its shared library (no LLVM
    needed), else load its object code into LLVM's MCJIT."""
    symbols = tuple(entry.meta["symbols"])
    if entry.lib:
        from syntonic.lower.cpu import sharedlib

        try:
            return sharedlib.load(entry.lib, symbols)
        except OSError:
            pass  # e.g. temporary files may not be executable here: MCJIT takes the object
    from syntonic.lower.cpu.engine import get_engine

    return get_engine().load(entry.obj, symbols, b"")


_BIT_OPS = frozenset({"shl", "shr", "bitand", "bitor", "bitxor"})


def _bit_mixing(program: Program) -> bool:
    """True for programs with integer bit operations (see Engine.optimize), loop bodies
    included; logical and/or/xor of bools does not count."""
    from syntonic.lower.kernel import Apply

    for k in program.kernels:
        if k.loop is not None and (_bit_mixing(k.loop.cond) or _bit_mixing(k.loop.body)):
            return True
        if any(isinstance(n, Apply) and n.op in _BIT_OPS and not n.dtype.is_bool
               for n in k.nodes):
            return True
    return False


def annotate_llvm(text: str, program: Program, plan: dict[str, Any]) -> str:
    """Put each kernel's source ops (with the user's file:line) above its definition."""
    notes: dict[str, list[str]] = {}
    for step in plan["steps"]:
        if step["kind"] != "native":
            continue
        k = program.kernels[step["kernel"]]
        lines = [f"; kernel {k.name}: {k.kind} over {list(k.space)}"]
        lines += [f";   {op}" for op in k.ops]
        notes[step["symbol"]] = lines
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("define "):
            for symbol, lines in notes.items():
                if f"@{symbol}(" in line or f'@"{symbol}"(' in line:
                    out.extend(lines)
                    break
        out.append(line)
    return "\n".join(out) + "\n"


def _copy_plan(plan: dict[str, Any]) -> dict[str, Any]:
    out = dict(plan)
    out["steps"] = [dict(s) for s in plan["steps"]]
    return out


