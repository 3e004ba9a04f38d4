"""The step runner: every step of a CPU program in one native call.

A :class:`~syntonic.runtime.native.NativeProgram` that is not run through its one-call
native entry (its kernels use the thread pool, or it has GEMMs) runs a list of steps:
kernels, some on the pool, and GEMMs through the private BLAS, each with an optional
epilogue on its row blocks. From Python that costs a few microseconds per step (a ctypes
call, a pool job posted from Python, a GEMM's descriptor filled in); a training step has
two dozen of them. Once the support library is loaded (see
:func:`syntonic.runtime.cpu.native_support`), the program's steps become records for
``sn_rt_program`` (:mod:`syntonic.lower.cpu.support`) and a call runs them all in machine
code with the GIL released: the same kernels, the same chunks, the same GEMM blocks and
the same epilogue decisions as the Python loop, so the same bits. Pool jobs need the
pool's native hand-off; a program without any (small kernels, unsplit GEMMs) is called
directly (``serial``).

A program whose steps cannot all be described this way (an opaque kernel, a GEMM that
only ``np.matmul`` can do, a gathered GEMM operand) keeps the Python loop.

Example::

    runner = StepRunner.build(program, arrays, cpu.POOL)   # None: use the Python loop
    if runner is not None and runner.run(table_address):
        ...                                                # every step has run
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from syntonic.lower.cpu.support import GEMM_STEP, KERNEL_STEP, STEP_FIELDS
from syntonic.runtime import blas, cpu

if TYPE_CHECKING:
    from syntonic.runtime.native import NativeProgram

__all__ = ["StepRunner"]

_REC = len(STEP_FIELDS)
_F = {name: i for i, name in enumerate(STEP_FIELDS) if name}


class StepRunner:
    """The step records of one program for one pool (see the module docstring)."""

    def __init__(self, records: np.ndarray, keep: list[Any], pool: cpu.ThreadPool) -> None:
        self.records = records
        self.address = records.ctypes.data
        self.n_steps = len(records)
        self.pool = pool
        self._keep = keep  # descriptors, overlap lists, constant operands
        # no step is a pool job: called directly (no pool, no control block), under a
        # lock of its own: the GEMM descriptors in the records are written per call
        # (a pooled run is serialized by the pool's lock)
        self.serial = bool((records[:, _F["n"]] <= 1).all())
        addrs = cpu.loaded_support()
        self._direct = None if addrs is None else cpu.PROGRAM_PROTO(addrs["sn_rt_program"])
        self._lock = threading.Lock()

    @staticmethod
    def build(program: NativeProgram, arrays: list[np.ndarray],
              pool: cpu.ThreadPool) -> StepRunner | None:
        """The records of `program`'s steps, with `arrays` the buffers of one call (for
        the GEMMs' layouts: a program's buffers keep their shapes and strides from call
        to call), or None if a step cannot be run natively."""
        from syntonic.runtime.native import CHUNKS_PER_THREAD

        steps = program._steps
        records = np.zeros((len(steps), _REC), np.int64)
        keep: list[Any] = []
        for i, step in enumerate(steps):
            rec = records[i]
            if step["kind"] == "native":
                n = pool._count(step["items"], 1, CHUNKS_PER_THREAD) if step["_parallel"] else 1
                fn = cpu.function_address(program.kernels[step["symbol"]])
                rec[[_F["kind"], _F["fn"], _F["total"], _F["n"]]] = (
                    KERNEL_STEP, fn, step["items"], n)
            elif step["kind"] == "matmul":
                if not _gemm_record(rec, step, program, arrays, keep):
                    return None
            else:
                return None
        return StepRunner(records, keep, pool)

    def run(self, table: int) -> bool:
        """Run every step over buffer table `table` (an address); False if a step needs
        the pool and the pool has no native hand-off (then nothing ran)."""
        if self.serial and self._direct is not None:
            with self._lock:
                return self._direct(None, self.address, self.n_steps, 0, table, 0) == 0
        return self.pool.run_steps(self.address, self.n_steps, table)


def _gemm_record(rec: np.ndarray, step: dict[str, Any], program: NativeProgram,
                 arrays: list[np.ndarray], keep: list[Any]) -> bool:
    """Fill the record of GEMM `step`; False if it cannot run natively."""
    lhs_op, rhs_op = step["_lhs"], step["_rhs"]
    lhs, rhs, out = lhs_op(arrays), rhs_op(arrays), arrays[step["out"]]
    epi = step.get("_epilogue")
    plan = blas._Plan.make(lhs, rhs, out, epi is not None)
    if plan is None:
        return False
    block = blas._native_block(blas.private_blas(), out.dtype)
    if block is None:
        return False
    desc = plan.descriptor()
    keep.append(desc)
    rec[_F["kind"]], rec[_F["fn"]] = GEMM_STEP, cpu.function_address(block)
    rec[_F["desc"]] = desc.ctypes.data
    rec[_F["total"]], rec[_F["n"]] = plan.side, plan.chunks()
    for name, op, arr in (("lhs", lhs_op, lhs), ("rhs", rhs_op, rhs)):
        if op.constant is not None:
            keep.append(op.constant)
            rec[_F[f"{name}_slot"]], rec[_F[f"{name}_offset"]] = -1, cpu.data_pointer(arr)
        elif op.slot >= 0:
            rec[_F[f"{name}_slot"]], rec[_F[f"{name}_offset"]] = op.slot, op.offset
        else:
            return False  # gathered: a new array per call
    rec[_F["out_slot"]] = step["out"]
    if epi is not None and plan.split and plan.by_rows:  # as _Plan.run would fuse it
        rec[_F["epi"]] = cpu.function_address(program.kernels[epi["symbol"]])
        rec[_F["epi_items"]] = epi["row_items"]
        # the epilogue must not write what the GEMM reads (a donated buffer may be both):
        # checked per call on the table's addresses, whole buffers
        read = [op.slot for op in (lhs_op, rhs_op) if op.slot >= 0]
        pairs = np.array([(w, arrays[w].nbytes, r, arrays[r].nbytes)
                          for w in epi["writes"] for r in read], np.int64).reshape(-1, 4)
        keep.append(pairs)
        rec[_F["pairs"]], rec[_F["n_pairs"]] = pairs.ctypes.data, len(pairs)
    return True
