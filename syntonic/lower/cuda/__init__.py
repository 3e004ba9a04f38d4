"""CUDA backend: kernel IR -> CUDA C (:mod:`codegen`) -> PTX/CUBIN through NVRTC (:mod:`nvrtc`).

:func:`generate` needs no GPU and no CUDA package; :mod:`nvrtc` imports ``cuda.bindings``
lazily; :mod:`emulate` runs the generated source on the host (the C++ compiler and the
``emu.h`` header) so it is tested without a GPU. :mod:`plan` describes what a host does
to run a :class:`CudaModule`; :mod:`rowloop` fuses a row-local ``while`` loop into one
kernel.
"""

from __future__ import annotations

from syntonic.lower.cuda.codegen import CODEGEN_VERSION, generate
from syntonic.lower.cuda.plan import (
    BufferArg,
    CudaModule,
    GridArg,
    Launch,
    OpaqueStep,
    Scratch,
    ScratchArg,
    Step,
)

__all__ = ["CODEGEN_VERSION", "BufferArg", "CudaModule", "GridArg", "Launch", "OpaqueStep",
           "Scratch", "ScratchArg", "Step", "generate"]
