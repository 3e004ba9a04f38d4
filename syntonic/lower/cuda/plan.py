"""What a host does to run a generated CUDA module: launches, opaque steps, scratch buffers.

A :class:`CudaModule` is one CUDA C translation unit plus the steps that run it, in
program order. The host (the device runtime, or :mod:`syntonic.lower.cuda.emulate`)

1. allocates one device buffer per program buffer: parameters are the caller's arrays,
   ``Role.CONST`` buffers are uploaded once from ``Buffer.data``, temporaries and outputs
   are allocated (contents undefined: every kernel writes what it stores before anything
   reads it), plus one buffer per :class:`Scratch` (``size`` elements of ``dtype``,
   uploaded once from ``Scratch.data`` when it has data);
2. runs the steps in order: a :class:`Launch` calls ``cuLaunchKernel`` on ``symbol``
   with ``grid = launch.grid(sm_count)`` blocks (skip the launch when it is 0) of
   ``launch.block`` threads, ``launch.shared_bytes`` of dynamic shared memory and the
   arguments ``launch.args`` in order (see :data:`Arg`: a device pointer per buffer or
   scratch, an ``int64`` per :class:`GridArg`); an :class:`OpaqueStep` runs program
   kernel ``kernel`` on the host through its reference rule
   (:func:`syntonic.lower.kernel_interp.run_kernel`), after copying the buffers it reads
   to the host and before copying the buffers it writes back;
3. returns the program outputs (``Program.outputs``: a buffer seen with a type).

Every launch of one kernel is independent of the device's block scheduling: results
depend only on ``(grid, block)``, and full reductions combine their block partials in a
fixed order, so a run is deterministic for a given device (a different SM count gives a
different grid, hence a different but still deterministic summation order).

Example::

    mod = generate(program, "f")
    for step in mod.steps:
        if isinstance(step, Launch):
            grid = step.grid(sm_count=132)
            ...  # cuLaunchKernel(fn[step.symbol], grid, 1, 1, step.block, 1, 1, ...)
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from syntonic.ir.types import DType
from syntonic.records import record

# Upper bound on the blocks of a full reduction's partial pass: the partials buffer of
# each accumulator has this many elements, so its size does not depend on the device.
FULL_MAX_BLOCKS = 1024
# Threads an SM keeps resident (every architecture from sm_75 on has at least 1024).
THREADS_PER_SM = 2048


@record(frozen=True, slots=True)
class Scratch:
    """A device temporary shared by the steps (not a program buffer): `size` x `dtype`.

    With `data` (`size` elements) the host uploads it once and no step writes it: the
    constants of a fused row-local loop's sub-programs, which are no program buffers.
    """

    id: int
    dtype: DType
    size: int
    what: str = ""
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


@record(frozen=True, slots=True)
class BufferArg:
    """A device pointer to program buffer `buffer` (``Program.buffers[buffer]``)."""

    buffer: int


@record(frozen=True, slots=True)
class ScratchArg:
    """A device pointer to scratch buffer `scratch` (``CudaModule.scratch[scratch]``)."""

    scratch: int


@record(frozen=True, slots=True)
class GridArg:
    """An ``int64``: the number of blocks the host launched for step `step` (its index)."""

    step: int


Arg = BufferArg | ScratchArg | GridArg


@record(frozen=True, slots=True)
class Launch:
    """One kernel launch (a 1-D grid of 1-D blocks).

    ``stage`` says what the launch does: ``elementwise`` (grid-stride over points),
    ``rows`` (grid-stride over rows, one block per row), ``matmul`` (grid-stride over
    output tiles), ``partial`` (a full reduction's first pass: grid-stride over the points,
    one partial per block and accumulator), ``combine`` (one block that folds the
    partials of the launch before it in a fixed order and finishes the phase) or
    ``rowloop`` (a whole row-local ``while`` loop: grid-stride over rows, each block
    iterating its row until the row's own predicate is false; see
    :mod:`~syntonic.lower.cuda.rowloop`).
    ``work`` is the number of independent units (points, rows, tiles); ``per_block`` how
    many units one block covers in one pass. ``block`` may be lowered by a host (e.g. the
    emulator) to any multiple of 32 unless ``fixed_block`` is set.
    """

    kernel: int
    symbol: str
    args: tuple[Arg, ...]
    block: int
    work: int
    per_block: int
    stage: str
    max_blocks: int = 0  # 0: only the device bounds the grid
    fixed_block: bool = False
    shared_bytes: int = 0

    def grid(self, sm_count: int, block: int | None = None) -> int:
        """Blocks to launch on a device with `sm_count` SMs (0: nothing to do, skip).

        Enough blocks for about two waves of resident threads, never more than the work
        needs (nor ``max_blocks``); the kernels loop (grid-stride) over what is left.
        """
        if self.work <= 0:
            return 0
        block = block or self.block
        want = -(-self.work // max(self.per_block, 1))
        cap = max(1, sm_count) * max(1, THREADS_PER_SM // block) * 2
        if self.max_blocks:
            cap = min(cap, self.max_blocks)
        return max(1, min(want, cap))


@record(frozen=True, slots=True)
class OpaqueStep:
    """Run program kernel `kernel` on the host through its reference rule."""

    kernel: int


@record(frozen=True)
class LoopStep:
    """A ``while`` loop (program kernel `kernel`, a :class:`~syntonic.lower.kernel.Loop`),
    driven by the host with the state on the device.

    `cond` and `body` are the modules of the loop's sub-programs; their kernels are in
    the enclosing module's source (one module load), their buffers and scratch are their
    own. The host copies the initial carried values into the loop's output buffers (the
    state), then repeatedly runs `cond` on the state, reads its ``bool[]`` result (one
    byte per iteration: the only transfer), and, while it is true, runs `body` and takes
    its results as the new state (a buffer the body wrote is swapped in, not copied).
    """

    kernel: int
    cond: CudaModule
    body: CudaModule


Step = Launch | OpaqueStep | LoopStep


@record(frozen=True)
class CudaModule:
    """The CUDA C source of a program and the steps that run it (see the module doc)."""

    name: str
    source: str
    steps: tuple[Step, ...]
    scratch: tuple[Scratch, ...] = ()

    @property
    def symbols(self) -> tuple[str, ...]:
        """The ``extern "C" __global__`` kernels of ``source``, in launch order."""
        return tuple(dict.fromkeys(s.symbol for s in self.launches))

    @property
    def launches(self) -> tuple[Launch, ...]:
        """Every launch, those of loop sub-modules included."""
        out: list[Launch] = []
        for s in self.steps:
            if isinstance(s, Launch):
                out.append(s)
            elif isinstance(s, LoopStep):
                out += [*s.cond.launches, *s.body.launches]
        return tuple(out)


__all__ = ["FULL_MAX_BLOCKS", "Arg", "BufferArg", "CudaModule", "GridArg", "Launch",
           "LoopStep", "OpaqueStep", "Scratch", "ScratchArg", "Step"]
