"""Why fusion puts a boundary between two kernels: the documented list, and the record.

Every value written by one kernel and read by another gets a :class:`Boundary` with a
:class:`Reason`; :data:`REASONS` explains each (docs/architecture.md has the same table).
"""

from __future__ import annotations

import enum

from syntonic.ir.graph import Op, Value
from syntonic.records import record


class Reason(enum.StrEnum):
    """Why a value is materialized between two kernels (see :data:`REASONS`)."""

    REDUCTION = "reduction boundary"
    SHAPE = "shape mismatch"
    LAYOUT = "layout change of a computed value"
    MATMUL = "non-fusable op (matmul)"
    OPAQUE = "non-fusable op"
    LOOP = "loop boundary"
    VIEW = "non-affine view"
    CYCLE = "cycle"
    SIZE = "size limit"
    OUTPUT = "graph output needed"


REASONS: dict[Reason, str] = {
    Reason.REDUCTION: "the consumer reduces, or reads a reduced value, over a different "
    "iteration space or different axes than the producer's kernel",
    Reason.SHAPE: "producer and consumer iterate over different shapes",
    Reason.LAYOUT: "a transpose/reshape/broadcast/slice/pad of a value computed in the "
    "kernel would need re-indexing (computed values are not recomputed through views)",
    Reason.MATMUL: "matmul reads its operands from memory (no prologue fusion); only "
    "elementwise epilogues over its output join its kernel",
    Reason.OPAQUE: "the op has no kernel lowering and runs on whole buffers through its "
    "reference rule",
    Reason.LOOP: "a while loop reads and writes whole buffers: it carries them from one "
    "iteration to the next (its cond and body are fused on their own; explain lists their "
    "kernels under the loop)",
    Reason.VIEW: "a reshape of a strided view is not a view; the value is materialized by "
    "a copy kernel first",
    Reason.CYCLE: "fusing would make two kernels depend on each other",
    Reason.SIZE: "the kernel would exceed config.max_kernel_ops, max_kernel_buffers or "
    "max_kernel_phases (each phase re-reads the kernel's inputs and recomputes its "
    "elementwise values)",
    Reason.OUTPUT: "the function returns the value, so it is written to memory",
}


@record(frozen=True, slots=True)
class Boundary:
    """`value`, computed by group `producer`, is read by `op` in group `consumer`."""

    producer: int
    consumer: int
    value: Value
    op: Op | None
    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        text = f"k{self.producer} -> k{self.consumer}: {self.reason.value}"
        return text + (f" ({self.detail})" if self.detail else "")


__all__ = ["REASONS", "Boundary", "Reason"]
