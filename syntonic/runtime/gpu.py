"""A compiled CUDA program: runs a :class:`~syntonic.lower.cuda.plan.CudaModule` on a device.

:class:`GpuProgram` follows the host protocol of :mod:`syntonic.lower.cuda.plan`:

* **once per signature**: NVRTC builds CUBIN for the device's own architecture and the
  PTX (:func:`build_binary`, through the compile cache: a warm process skips NVRTC), the
  module is loaded and every kernel resolved, ``Role.CONST`` buffers are uploaded, the
  temporaries and scratch buffers are taken from the pool into a per-program workspace,
  grids are computed from the SM count, and each launch's argument block is prepared (a
  ctypes array of the 8-byte argument values and the ``void*[]`` pointing at them);
* **per call**: only the pointers of the parameters and outputs are written into those
  arrays, then ``cuLaunchKernel`` per launch; outputs come from the memory pool, so a
  warm loop makes no ``cuMemAlloc``. A row-local ``while_loop`` is one plain launch
  (:mod:`syntonic.lower.cuda.rowloop`; its constants are scratch buffers with data,
  uploaded once). A ``LoopStep`` (any other ``while_loop``) is driven from the host with
  its state on the device (its cond and body sub-modules have runners of their own; one
  byte is read back per trip). An :class:`OpaqueStep` copies the buffers its
  kernel touches to the host, runs :func:`syntonic.lower.kernel_interp.run_kernel` and
  copies what it writes back (correct, slow: only ops without a kernel lowering take
  this path).

Inputs may be :class:`~syntonic.runtime.device.DeviceArray`\\ s, any object with
``__cuda_array_interface__`` (wrapped, no copy), numpy arrays or Python numbers (those
are uploaded on every call). Outputs are DeviceArrays, except when no input was on the
device: then they are downloaded and returned as numpy arrays.

Example::

    program = lower_to_kernels(fuse(run_pipeline(graph)[-1].graph))
    gp = GpuProgram(program, generate(program, program.name))
    (y,) = gp(sn.to_device(x))        # y: DeviceArray
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from syntonic.ir.errors import BackendError, TraceError
from syntonic.lower.cuda.plan import BufferArg, CudaModule, GridArg, Launch, ScratchArg
from syntonic.lower.kernel import Kernel, Program, Role
from syntonic.records import record
from syntonic.runtime import cache, cuda
from syntonic.runtime.cuda import DeviceWarning
from syntonic.runtime.device import (
    DeviceArray,
    as_device_array,
    device_pool,
    is_device_array,
    size_class,
)

DEFAULT_PTX_ARCH = "compute_90"  # for f.lower(device="cuda") when no device is known
STATIC_SHARED_LIMIT = 48 * 1024  # dynamic shared memory above this needs an opt-in


# ------------------------------------------------------------------ NVRTC + cache


@record(frozen=True)
class Binary:
    """What NVRTC built for one module and architecture."""

    cubin: bytes
    ptx: str
    arch: str  # sm_XY
    nvrtc: str  # "13.0"
    cached: bool = False  # True when it came from the compile cache


def binary_key(source: str, arch: str) -> str:
    """Compile-cache key of a module's NVRTC output: the CUDA source, the architecture,
    the NVRTC version and options, and cuda-bindings' version."""
    from syntonic.lower.cuda import nvrtc

    try:
        from cuda.bindings import __version__ as bindings_version
    except ImportError:
        bindings_version = "?"
    major, minor = nvrtc.version()
    return cache.make_key("cuda-module-1", source, arch, f"nvrtc {major}.{minor}",
                          " ".join(nvrtc.OPTIONS), str(bindings_version))


def build_binary(source: str, arch: str, name: str = "syntonic") -> Binary:
    """CUBIN for `arch` (``sm_XY``) and PTX for ``compute_XY``, from the compile cache
    when a previous process built them (cache entry: CUBIN as the object, PTX in the
    metadata)."""
    from syntonic.lower.cuda import nvrtc

    major, minor = nvrtc.version()
    key = binary_key(source, arch)
    entry = cache.get(key)
    if entry is not None and entry.meta.get("kind") == "cuda":
        return Binary(entry.obj, entry.meta["ptx"], arch, entry.meta["nvrtc"], cached=True)
    number = int(arch.removeprefix("sm_"))
    known = nvrtc.supported_archs()
    if number in known:
        cubin = nvrtc.compile_cubin(source, arch, name)
        ptx = nvrtc.compile_ptx(source, f"compute_{number}", name)
    else:  # a device newer (or older) than this NVRTC: PTX for the nearest arch below
        lower = [a for a in known if a <= number]
        if not lower:
            raise BackendError(
                f"NVRTC {major}.{minor} cannot compile for {arch} (it supports sm_"
                f"{', sm_'.join(map(str, known))}); install an nvidia-cuda-nvrtc that "
                "supports this GPU and that the driver accepts")
        cubin = b""  # the driver JIT-compiles the PTX (Device.load_module)
        ptx = nvrtc.compile_ptx(source, f"compute_{max(lower)}", name)
    version = f"{major}.{minor}"
    cache.put(key, cache.Entry({"kind": "cuda", "ptx": ptx, "arch": arch, "nvrtc": version,
                                "name": name}, cubin))
    return Binary(cubin, ptx, arch, version)


def ptx_arch() -> str:
    """``compute_XY`` of device 0 when CUDA is available, else ``compute_90``."""
    ok, _ = cuda.available()
    if ok:
        return "compute_" + cuda.get_device(0).arch.removeprefix("sm_")
    return DEFAULT_PTX_ARCH


def cuda_stages(program: Program, name: str | None = None
                ) -> dict[str, Callable[[], str]]:
    """The ``cuda`` and ``ptx`` stages of a program for :meth:`Lowered.add_stage`.

    Needs no GPU: ``cuda`` is the generated source (each kernel annotated with the user's
    ``file:line``), ``ptx`` is NVRTC's output for the device's arch, or ``compute_90``
    without a device. Example::

        print(f.lower(x, device="cuda").text("ptx"))
    """
    from syntonic.lower.cuda import generate, nvrtc

    state: dict[str, Any] = {}

    def module() -> CudaModule:
        if "module" not in state:
            state["module"] = generate(program, name or program.name)
        return state["module"]

    def ptx() -> str:
        return nvrtc.compile_ptx(module().source, ptx_arch(), name or program.name)

    return {"cuda": lambda: module().source, "ptx": ptx}


# ------------------------------------------------------------------ launches


class _PreparedLaunch:
    """One launch with its argument block built once: 8-byte values and ``void*[]``."""

    __slots__ = ("fn", "grid", "block", "shared", "values", "params", "addr", "dynamic",
                 "symbol")

    def __init__(self, fn: Any, symbol: str, grid: int, block: int, shared: int,
                 n_args: int) -> None:
        self.fn = fn
        self.symbol = symbol
        self.grid = grid
        self.block = block
        self.shared = shared
        n = max(n_args, 1)
        self.values = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self.values)
        self.params = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
        self.addr = ctypes.addressof(self.params)
        self.dynamic: list[tuple[int, int]] = []  # (arg index, table slot) set per call


class _Loop:
    """A host-driven ``while`` loop (a ``LoopStep``): runners for its cond and body and
    the slots of its state and loop-invariant operands in the enclosing runner."""

    __slots__ = ("kernel", "cond", "body", "inputs", "outputs", "carried", "staging")

    def __init__(self, kernel: int, cond: _Runner, body: _Runner, inputs: tuple[int, ...],
                 outputs: tuple[int, ...], carried: int, staging: list[int]) -> None:
        self.kernel = kernel
        self.cond = cond
        self.body = body
        self.inputs = inputs
        self.outputs = outputs
        self.carried = carried
        self.staging = staging  # a buffer per body output that is a body parameter


class _Runner:
    """The device buffers and prepared steps of one (program, module) pair.

    Constants are uploaded and temporaries and scratch buffers taken from the pool once
    (the workspace); the slots in `dynamic` (the root program's parameters and outputs, a
    loop sub-program's parameters) are bound by the caller before :meth:`run`.
    """

    def __init__(self, owner: GpuProgram, program: Program, module: CudaModule,
                 dynamic: set[int]) -> None:
        self.owner = owner
        self.program = program
        self.module = module
        bufs = program.buffers
        self.table: list[int] = [0] * (len(bufs) + len(module.scratch))
        for b in bufs:
            if b.id in dynamic:
                continue
            if b.role is Role.CONST:
                assert b.data is not None
                host = np.ascontiguousarray(b.data, b.type.dtype.np).reshape(-1)
                self.table[b.id] = owner._upload_owned(host)
            else:  # temporaries, and the outputs of a loop sub-program
                self.table[b.id] = owner._alloc_owned(b.type.nbytes)
        for s in module.scratch:
            if s.data is not None:  # constants of a fused row-local loop
                host = np.ascontiguousarray(s.data, s.dtype.np).reshape(-1)
                self.table[len(bufs) + s.id] = owner._upload_owned(host)
            else:
                self.table[len(bufs) + s.id] = owner._alloc_owned(s.nbytes)
        self.dynamic = dynamic
        self.steps = self._prepare()

    def _prepare(self) -> list[Any]:
        """Prepared launches, opaque kernel indices (ints) and loops, in step order."""
        owner = self.owner
        dev = owner.device
        n_bufs = len(self.program.buffers)
        grids: dict[int, int] = {}
        steps: list[Any] = []
        for index, step in enumerate(self.module.steps):
            if hasattr(step, "cond") and hasattr(step, "body"):  # a LoopStep
                steps.append(self._loop(step))
                continue
            if not isinstance(step, Launch):
                steps.append(step.kernel)
                continue
            block = step.block
            if block > dev.max_threads_per_block:
                if step.fixed_block:
                    raise BackendError(
                        f"kernel {step.symbol} of @{self.program.name} needs blocks of "
                        f"{block} threads; {dev.name} allows {dev.max_threads_per_block}")
                block = max(32, dev.max_threads_per_block // 32 * 32)
            grid = step.grid(dev.sm_count, block)
            grids[index] = grid
            fn = owner.cu_module.function(step.symbol)
            if step.shared_bytes > STATIC_SHARED_LIMIT:
                drv = cuda.driver()
                attr = drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
                cuda.check(drv.cuFuncSetAttribute(fn, attr, step.shared_bytes),
                           f"cuFuncSetAttribute({step.symbol}, max dynamic shared memory)")
            prep = _PreparedLaunch(fn, step.symbol, grid, block, step.shared_bytes,
                                   len(step.args))
            for i, arg in enumerate(step.args):
                if isinstance(arg, GridArg):
                    if arg.step not in grids:
                        raise BackendError(f"launch {step.symbol} reads the grid of step "
                                           f"{arg.step}, which is not an earlier launch")
                    prep.values[i] = grids[arg.step]
                    continue
                assert isinstance(arg, BufferArg | ScratchArg)
                slot = arg.buffer if isinstance(arg, BufferArg) else n_bufs + arg.scratch
                if slot in self.dynamic:
                    prep.dynamic.append((i, slot))
                else:
                    prep.values[i] = self.table[slot]
            steps.append(prep)
        return steps

    def _loop(self, step: Any) -> _Loop:
        loop = self.program.kernels[step.kernel].loop
        assert loop is not None, f"loop step of kernel {step.kernel} without a Loop"
        cond = _Runner(self.owner, loop.cond, step.cond, set(loop.cond.params))
        body = _Runner(self.owner, loop.body, step.body, set(loop.body.params))
        staging = []
        for o in loop.body.outputs[:loop.carried]:
            role = loop.body.buffers[o.buffer].role
            nbytes = loop.body.buffers[o.buffer].type.nbytes
            staging.append(self.owner._alloc_owned(nbytes) if role is Role.PARAM else 0)
        return _Loop(step.kernel, cond, body, loop.inputs, loop.outputs, loop.carried,
                     staging)

    def bind(self, ptrs: list[int]) -> None:
        """Point the parameters at `ptrs` (device pointers, in parameter order)."""
        for bid, ptr in zip(self.program.params, ptrs):
            self.table[bid] = ptr

    def run(self) -> None:
        table = self.table
        owner = self.owner
        for step in self.steps:
            if type(step) is _PreparedLaunch:
                values = step.values
                for i, slot in step.dynamic:
                    values[i] = table[slot]
                if step.grid:
                    cuda.launch(step.fn, step.grid, step.block, step.shared, step.addr)
                    owner.launches += 1
            elif type(step) is _Loop:
                self._run_loop(step)
            else:
                self._opaque(step)

    def _run_loop(self, loop: _Loop) -> None:
        """``state = inputs[:n]; while cond(state, consts): state = body(state, consts)``;
        the state lives in the loop's output buffers; one byte per trip is read back."""
        dev = self.owner.device
        table = self.table
        n = loop.carried
        state = [table[b] for b in loop.outputs]
        consts = [table[b] for b in loop.inputs[n:]]
        sizes = [self.program.buffers[b].type.nbytes for b in loop.outputs]
        for i in range(n):
            dev.dtod(state[i], table[loop.inputs[i]], sizes[i])
        cond, body = loop.cond, loop.body
        flag = np.zeros(1, np.bool_)
        cond_out = cond.program.outputs[0].buffer
        while True:
            cond.bind([*state, *consts])
            cond.run()
            dev.dtoh(flag.ctypes.data, cond.table[cond_out], 1)
            if not flag[0]:
                break
            body.bind([*state, *consts])
            body.run()
            outs = body.program.outputs[:n]
            srcs = [body.table[o.buffer] for o in outs]
            for i in range(n):  # a carried value passed through: stage it first
                if loop.staging[i]:
                    dev.dtod(loop.staging[i], srcs[i], sizes[i])
                    srcs[i] = loop.staging[i]
            for i in range(n):
                if srcs[i] != state[i]:
                    dev.dtod(state[i], srcs[i], sizes[i])

    def _opaque(self, kernel_index: int) -> None:
        """Run a kernel by its reference rule on host copies of the buffers it touches."""
        from syntonic.lower.kernel_interp import run_kernel

        dev = self.owner.device
        prog = self.program
        k = prog.kernels[kernel_index]
        reads, writes = _opaque_io(k, prog)
        flat: dict[int, np.ndarray] = {}
        for b in prog.buffers:
            if b.role is Role.CONST:
                flat[b.id] = np.ascontiguousarray(b.data, b.type.dtype.np).reshape(-1)
            elif b.id in reads or b.id in writes:
                host = np.empty(b.type.size, b.type.dtype.np)
                dev.dtoh(host.ctypes.data, self.table[b.id], host.nbytes)
                flat[b.id] = host
        run_kernel(k, flat, prog)
        for bid in writes:
            host = np.ascontiguousarray(flat[bid])
            dev.htod(self.table[bid], host.ctypes.data, host.nbytes)


class GpuProgram:
    """Callable: ``gpu_program(*args) -> tuple of outputs``. See the module docstring."""

    def __init__(self, program: Program, module: CudaModule, device: int = 0) -> None:
        self.program = program
        self.module = module
        self.device_index = device
        dev = cuda.device_for(device)
        self.device = dev
        self.pool = device_pool(device)
        self.binary = build_binary(module.source, dev.arch, program.name)
        self.cu_module = dev.load_module(self.binary.cubin, self.binary.ptx,
                                         f"@{program.name}")
        self._lock = threading.Lock()
        self._keep: list[Any] = []  # const and workspace blocks, alive with the program
        self.launches = 0  # launches issued, for tests and benchmarks
        bufs = program.buffers
        self.n_params = len(program.params)
        self._param_types = [bufs[b].type for b in program.params]
        self._param_keys = [(np.dtype(t.dtype.np), t.shape) for t in self._param_types]
        # (buffer, shape, dtype, pool size class or 0 for an empty buffer) per output
        self._out_specs = [(b.id, b.type.shape, np.dtype(b.type.dtype.np),
                            size_class(b.type.nbytes) if b.type.nbytes else 0)
                           for b in bufs if b.role is Role.OUTPUT]
        dynamic = set(program.params) | {spec[0] for spec in self._out_specs}
        self._root = _Runner(self, program, module, dynamic)
        self._table = self._root.table

    # ------------------------------------------------------------ memory
    def _alloc_owned(self, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        block = self.pool.alloc(nbytes)
        self._keep.append(block)
        return block.ptr

    def _upload_owned(self, host: np.ndarray) -> int:
        ptr = self._alloc_owned(host.nbytes)
        self.device.htod(ptr, host.ctypes.data, host.nbytes)
        return ptr

    @property
    def _steps(self) -> list[Any]:
        return self._root.steps

    # ------------------------------------------------------------ calling
    def __call__(self, *args: Any) -> tuple[Any, ...]:
        if len(args) != self.n_params:
            raise TraceError(f"@{self.program.name} takes {self.n_params} argument(s), "
                             f"got {len(args)}")
        self.device.activate()
        on_device = False
        inputs: list[DeviceArray] = []
        for i, a in enumerate(args):
            if type(a) is DeviceArray and (a.dtype, a.shape) == self._param_keys[i] \
                    and a.device == self.device_index:
                inputs.append(a)  # the common case, checked inline
                on_device = True
            else:
                on_device = on_device or is_device_array(a)
                inputs.append(self._input(i, a))
        index = self.device_index
        alloc = self.pool.alloc_class
        with self._lock:
            table = self._table
            for bid, arr in zip(self.program.params, inputs):
                table[bid] = arr.ptr
            outs: dict[int, DeviceArray] = {}
            for bid, shape, dtype, size in self._out_specs:
                if size:
                    block = alloc(size)
                    outs[bid] = DeviceArray._wrap(shape, dtype, block.ptr, index, block)
                else:
                    outs[bid] = DeviceArray._wrap(shape, dtype, 0, index, None)
                table[bid] = outs[bid].ptr
            self._root.run()
            result = self._collect(inputs, outs)
        if on_device:
            return result
        return tuple(r.numpy() for r in result)

    def _new(self, shape: tuple[int, ...], dtype: Any) -> DeviceArray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes == 0:
            return DeviceArray(shape, dtype, 0, self.device_index, None)
        block = self.pool.alloc(nbytes)
        return DeviceArray(shape, dtype, block.ptr, self.device_index, block)

    def _input(self, i: int, a: Any) -> DeviceArray:
        want = self._param_types[i]
        if is_device_array(a):
            arr = as_device_array(a, self.device_index, f"argument {i}")
            if arr.dtype != want.dtype.np or arr.shape != want.shape:
                raise TraceError(f"argument {i} of @{self.program.name} is "
                                 f"{arr.dtype}{list(arr.shape)}; the compiled program "
                                 f"expects {want}")
            if arr.device != self.device_index:
                raise TraceError(f"argument {i} of @{self.program.name} is on CUDA device "
                                 f"{arr.device}, the program runs on device "
                                 f"{self.device_index}; copy it with sn.to_device(x.numpy(), "
                                 f"device={self.device_index})")
            return arr
        host = np.asarray(a, want.dtype.np, order="C")
        if host.shape != want.shape:
            raise TraceError(f"argument {i} of @{self.program.name} has shape "
                             f"{list(host.shape)}; the compiled program expects {want}")
        arr = self._new(host.shape, host.dtype)
        self.device.htod(arr.ptr, host.ctypes.data, host.nbytes)
        return arr

    def _collect(self, inputs: list[DeviceArray], outs: dict[int, DeviceArray]
                 ) -> tuple[DeviceArray, ...]:
        prog = self.program
        result: list[DeviceArray] = []
        for o in prog.outputs:
            buf = prog.buffers[o.buffer]
            shape = o.type.shape
            if buf.role is Role.OUTPUT:
                arr = outs[o.buffer]
                result.append(arr if arr.shape == shape else arr.reshape(shape))
                continue
            # a parameter, constant or temporary: return a copy (outputs are values)
            if buf.role is Role.PARAM:
                src = inputs[prog.params.index(o.buffer)].ptr
            else:
                src = self._table[o.buffer]
            copy = self._new(shape, o.type.dtype.np)
            self.device.dtod(copy.ptr, src, copy.nbytes)
            result.append(copy)
        return tuple(result)

    def call_donating(self, args: list[Any], donated: Any) -> tuple[Any, ...]:
        """Donation is a CPU-side optimisation; on the GPU outputs come from the pool."""
        return self(*args)

    # ------------------------------------------------------------ stages
    def text(self, stage: str) -> str:
        """``cuda`` (the generated source) or ``ptx`` (for the device's arch)."""
        if stage == "cuda":
            return self.module.source
        if stage == "ptx":
            return self.binary.ptx
        raise KeyError(stage)


def _opaque_io(k: Kernel, prog: Program) -> tuple[set[int], set[int]]:
    """Buffers an opaque kernel reads and writes; a loop is given every buffer."""
    if k.loop is None:
        return set(k.reads), set(k.writes)
    every = {b.id for b in prog.buffers if b.role is not Role.CONST}
    return every, {b.id for b in prog.buffers if b.role in (Role.TEMP, Role.OUTPUT)}


# ------------------------------------------------------------------ device selection

# (defined in runtime/cuda.py so that choosing the CPU never imports the CUDA backend)
reset_reported = cuda.reset_reported
use_cuda = cuda.use_cuda
user_stacklevel = cuda.user_stacklevel


# ------------------------------------------------------------------ from a graph


def compile_graph_gpu(graph: Any, device: int = 0) -> GpuProgram:
    """Compile a traced (verified) Graph for CUDA device `device`: passes, fusion, CUDA C,
    NVRTC (through the compile cache), module load."""
    from syntonic.lower.cuda import generate
    from syntonic.lower.schedule import lower_to_kernels
    from syntonic.passes.fusion import fuse
    from syntonic.passes.pipeline import run_pipeline

    cuda.require()
    program = lower_to_kernels(fuse(run_pipeline(graph)[-1].graph))
    return GpuProgram(program, generate(program, program.name), device)


__all__ = ["Binary", "DeviceWarning", "GpuProgram", "binary_key", "build_binary",
           "compile_graph_gpu", "cuda_stages", "ptx_arch", "reset_reported", "use_cuda"]
