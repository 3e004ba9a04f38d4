"""Run generated CUDA C on the host: the same source, compiled by the C++ compiler.

The generated translation unit is compiled with ``g++ -O1 -std=c++20 -include emu.h``
into a shared library, with one ``extern "C" void launch_<symbol>(unsigned grid,
unsigned block, void** args)`` per kernel (``args`` as ``cuLaunchKernel``'s
kernelParams). ``emu.h`` models blocks, threads, ``__shared__`` memory,
``__syncthreads`` and warp shuffles with real threads and barriers (see the header).
:func:`run` then plays a :class:`~syntonic.lower.cuda.plan.CudaModule`'s steps the way
the device runtime does: buffers per program buffer and per scratch, launches with the
grid the step asks for (on a small pretend device), opaque steps through the kernel
interpreter. Every buffer has guard zones that are checked after the run, so an
out-of-bounds write fails loudly, and temporaries start as NaN bit patterns, so a read
of something no kernel wrote shows up in the results.

Many modules compile into ONE library (:func:`build`); libraries are cached per source
hash in a temporary directory, so a test run over hundreds of programs pays a few
compiler runs.

Example::

    mod = generate(program, "f")
    (y,) = run(program, mod, [x])
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from syntonic.ir.errors import BackendError
from syntonic.lower.cuda.plan import (
    BufferArg,
    CudaModule,
    GridArg,
    Launch,
    LoopStep,
    ScratchArg,
)
from syntonic.lower.kernel import Program, Role
from syntonic.lower.kernel_interp import checked_args, program_outputs, run_kernel
from syntonic.records import record

GUARD = 64  # elements of guard zone before and after every buffer
_GUARD_BYTE = 0x5A
_loaded: dict[str, ctypes.CDLL] = {}


def compiler() -> str | None:
    """The C++ compiler used for emulation ($CXX, else g++ on PATH), or None."""
    cxx = os.environ.get("CXX")
    if cxx and shutil.which(cxx):
        return cxx
    return shutil.which("g++")


def available() -> bool:
    """True when a C++20 compiler is found (emulation can run)."""
    return compiler() is not None


def header_path() -> Path:
    """The emulation header (package data of syntonic.lower.cuda)."""
    return Path(str(resources.files("syntonic.lower.cuda").joinpath("emu.h")))


@record
class Library:
    """A compiled emulation library: the launcher of every kernel of its modules."""

    path: Path
    lib: ctypes.CDLL

    def launcher(self, symbol: str) -> ctypes._CFuncPtr:
        fn = getattr(self.lib, f"launch_{symbol}")
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        fn.restype = None
        return fn


def library_source(modules: Sequence[CudaModule]) -> str:
    """The translation unit of `modules` plus one launcher per kernel symbol."""
    parts = [m.source for m in modules]
    parts.append("// ---- emulation launchers")
    seen: set[str] = set()
    for m in modules:
        for sym in m.symbols:
            if sym in seen:
                continue
            seen.add(sym)
            parts.append(f'extern "C" void launch_{sym}(unsigned grid, unsigned block, '
                         f"void** args) {{ sn_emu::launch({sym}, grid, block, args); }}")
    return "\n".join(parts) + "\n"


def build(modules: Sequence[CudaModule], opt: str = "-O1") -> Library:
    """Compile `modules` into one shared library (cached per source hash)."""
    cxx = compiler()
    if cxx is None:
        raise BackendError("CUDA emulation needs a C++20 compiler (g++ or $CXX); none found")
    source = library_source(modules)
    header = header_path()
    key = hashlib.sha256((source + header.read_text() + cxx + opt).encode()).hexdigest()[:24]
    cache = Path(tempfile.gettempdir()) / "syntonic-cuda-emu"
    cache.mkdir(parents=True, exist_ok=True)
    so = cache / f"lib{key}.so"
    if not so.exists():
        # per-process names, then atomic renames: concurrent test runs share the cache
        src = cache / f"{key}.{os.getpid()}.cpp"
        src.write_text(source)
        tmp = cache / f"lib{key}.{os.getpid()}.tmp.so"
        cmd = [cxx, opt, "-std=c++20", "-shared", "-fPIC", "-pthread", "-w",
               "-include", str(header), "-x", "c++", str(src), "-o", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BackendError(f"the C++ compiler rejected the emulated CUDA source {src}:\n"
                               f"{proc.stderr[-6000:]}\ncommand: {' '.join(cmd)}")
        os.replace(tmp, so)
        os.replace(src, cache / f"{key}.cpp")  # kept next to the library, for reading
    lib = _loaded.get(str(so))
    if lib is None:
        lib = _loaded[str(so)] = ctypes.CDLL(str(so))
    return Library(so, lib)


def _guarded(n: int, dtype: np.dtype, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """A buffer of `n` elements inside guard zones: (the whole array, the usable view)."""
    whole = np.empty(n + 2 * GUARD, dtype)
    whole.view(np.uint8)[...] = _GUARD_BYTE
    inner = whole[GUARD:GUARD + n]
    inner.view(np.uint8)[...] = fill
    return whole, inner


def run(program: Program, module: CudaModule, inputs: Sequence[np.ndarray], *,
        library: Library | None = None, sm_count: int = 1, block: int = 64,
        max_grid: int = 4) -> tuple[np.ndarray, ...]:
    """Execute `module` (generated from `program`) on the host; the program's outputs.

    Launches use at most `block` threads (a multiple of 32; steps with a fixed block keep
    theirs) and at most `max_grid` blocks (0: no cap), on a pretend device of `sm_count`
    SMs. Loops (:class:`~syntonic.lower.cuda.plan.LoopStep`) are driven from the host as
    the device runtime drives them. Raises BackendError on an out-of-bounds write. Same
    results contract as :func:`syntonic.lower.kernel_interp.run_program`.
    """
    arrays = checked_args(program, inputs, BackendError)
    host = _Host(library or build([module]), sm_count, block, max_grid)
    bound: dict[int, np.ndarray] = {}
    for bid, arr in zip(program.params, arrays):
        bound[bid] = host.buffer(f"b{bid}", arr.size, arr.dtype, 0)
        bound[bid][...] = arr.reshape(-1)
    flat = host.execute(program, module, bound)
    host.check(module.name)
    return program_outputs(program, flat)


class _Host:
    """Buffers (with guard zones) and the step loop of one emulated run."""

    def __init__(self, lib: Library, sm_count: int, block: int, max_grid: int) -> None:
        self.lib, self.sm_count, self.block, self.max_grid = lib, sm_count, block, max_grid
        self.wholes: list[tuple[str, np.ndarray]] = []

    def buffer(self, name: str, n: int, dtype: np.dtype, fill: int) -> np.ndarray:
        whole, inner = _guarded(n, dtype, fill)
        self.wholes.append((name, whole))
        return inner

    def execute(self, program: Program, module: CudaModule, bound: dict[int, np.ndarray]
                ) -> dict[int, np.ndarray]:
        """Run `module`'s steps with the parameters in `bound`; every buffer, flat."""
        flat = dict(bound)
        for b in program.buffers:
            if b.id in flat:
                continue
            flat[b.id] = self.buffer(f"b{b.id}", b.type.size, b.type.dtype.np, 0xFF)
            if b.role is Role.CONST:  # NaN / -1 until written, for everything else
                assert b.data is not None
                flat[b.id][...] = np.asarray(b.data, b.type.dtype.np).reshape(-1)
        scratch = {s.id: self.buffer(f"scratch{s.id}", s.size, s.dtype.np, 0xFF)
                   for s in module.scratch}
        for s in module.scratch:
            if s.data is not None:  # constants of a fused loop's sub-programs
                scratch[s.id][...] = s.data
        grids: dict[int, int] = {}
        for i, step in enumerate(module.steps):
            if isinstance(step, LoopStep):
                self.loop(program, step, flat)
            elif isinstance(step, Launch):
                grids[i] = self.launch(step, flat, scratch, grids)
            else:
                run_kernel(program.kernels[step.kernel], flat, program)
        return flat

    def launch(self, step: Launch, flat: dict[int, np.ndarray], scratch: dict[int, np.ndarray],
               grids: dict[int, int]) -> int:
        threads = step.block if step.fixed_block else min(step.block, self.block)
        grid = step.grid(self.sm_count, threads)
        if self.max_grid and step.stage != "combine":
            grid = min(grid, self.max_grid)
        if grid == 0:
            return grid
        values: list[ctypes._SimpleCData] = []
        for a in step.args:
            if isinstance(a, BufferArg):
                values.append(ctypes.c_void_p(flat[a.buffer].ctypes.data))
            elif isinstance(a, ScratchArg):
                values.append(ctypes.c_void_p(scratch[a.scratch].ctypes.data))
            elif isinstance(a, GridArg):
                values.append(ctypes.c_longlong(grids[a.step]))
            else:  # pragma: no cover - Arg is a closed union
                raise BackendError(f"unknown launch argument {a!r}")
        ptrs = (ctypes.c_void_p * max(len(values), 1))(
            *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
        self.lib.launcher(step.symbol)(grid, threads, ptrs)
        return grid

    def loop(self, program: Program, step: LoopStep, flat: dict[int, np.ndarray]) -> None:
        """The host-driven loop: state in the loop's output buffers, one read per trip."""
        loop = program.kernels[step.kernel].loop
        assert loop is not None
        n = loop.carried
        state = [flat[b] for b in loop.outputs]
        for i in range(n):
            state[i][...] = flat[loop.inputs[i]]
        consts = [flat[b] for b in loop.inputs[n:]]

        def bind(sub: Program) -> dict[int, np.ndarray]:
            return dict(zip(sub.params, [*state, *consts]))

        while True:
            cflat = self.execute(loop.cond, step.cond, bind(loop.cond))
            if not cflat[loop.cond.outputs[0].buffer][0]:
                break
            bflat = self.execute(loop.body, step.body, bind(loop.body))
            new = [bflat[o.buffer].copy() for o in loop.body.outputs]
            for i in range(n):
                state[i][...] = new[i]

    def check(self, name: str) -> None:
        for buf, whole in self.wholes:
            raw = whole.view(np.uint8)
            edge = GUARD * whole.itemsize
            if (raw[:edge] != _GUARD_BYTE).any() or (raw[raw.size - edge:] != _GUARD_BYTE
                                                     ).any():
                raise BackendError(f"module {name}: a kernel wrote outside buffer {buf}")


__all__ = ["GUARD", "Library", "available", "build", "compiler", "header_path",
           "library_source", "run"]
