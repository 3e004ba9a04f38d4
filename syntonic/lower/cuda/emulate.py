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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from syntonic.ir.errors import BackendError
from syntonic.ir.types import TensorType
from syntonic.lower.cuda.plan import BufferArg, CudaModule, GridArg, Launch, ScratchArg
from syntonic.lower.kernel import Program, Role
from syntonic.lower.kernel_interp import run_kernel

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


@dataclass
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
    SMs. Raises BackendError on an out-of-bounds write. Same results contract as
    :func:`syntonic.lower.kernel_interp.run_program`.
    """
    if len(inputs) != len(program.params):
        raise BackendError(f"program @{program.name} takes {len(program.params)} arguments, "
                           f"got {len(inputs)}")
    lib = library or build([module])
    wholes: dict[str, np.ndarray] = {}
    flat: dict[int, np.ndarray] = {}
    for i, (bid, arg) in enumerate(zip(program.params, inputs)):
        want = program.buffers[bid].type
        arr = np.asarray(arg)
        if TensorType.of(arr) != want:
            raise BackendError(f"argument {i} is {TensorType.of(arr)}, expected {want}")
        whole, flat[bid] = _guarded(arr.size, arr.dtype, 0)
        flat[bid][...] = arr.reshape(-1)
        wholes[f"b{bid}"] = whole
    for b in program.buffers:
        if b.id in flat:
            continue
        whole, flat[b.id] = _guarded(b.type.size, b.type.dtype.np, 0xFF)  # NaN / -1
        wholes[f"b{b.id}"] = whole
        if b.role is Role.CONST:
            assert b.data is not None
            flat[b.id][...] = np.asarray(b.data, b.type.dtype.np).reshape(-1)
    scratch: dict[int, np.ndarray] = {}
    for s in module.scratch:
        wholes[f"scratch{s.id}"], scratch[s.id] = _guarded(s.size, s.dtype.np, 0xFF)
    grids: dict[int, int] = {}
    for i, step in enumerate(module.steps):
        if not isinstance(step, Launch):
            run_kernel(program.kernels[step.kernel], flat, program)
            continue
        threads = step.block if step.fixed_block else min(step.block, block)
        grid = step.grid(sm_count, threads)
        if max_grid and step.stage != "combine":
            grid = min(grid, max_grid)
        grids[i] = grid
        if grid == 0:
            continue
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
        lib.launcher(step.symbol)(grid, threads, ptrs)
    for name, whole in wholes.items():
        raw = whole.view(np.uint8)
        edge = GUARD * whole.itemsize
        if (raw[:edge] != _GUARD_BYTE).any() or (raw[raw.size - edge:] != _GUARD_BYTE).any():
            raise BackendError(f"module {module.name}: a kernel wrote outside buffer {name}")
    return tuple(flat[o.buffer].reshape(o.type.shape).copy() for o in program.outputs)


__all__ = ["GUARD", "Library", "available", "build", "compiler", "header_path",
           "library_source", "run"]
