"""``f.explain(*args)``: a structured, printable report of how a function is compiled.

An :class:`ExplainReport` has one :class:`KernelReport` per kernel that will run (its
ops with the user's ``file:line``, iteration space, phases and bytes moved), one
:class:`BoundaryReport` per value that crosses between kernels (with its reason from
:data:`~syntonic.passes.fusion.REASONS`), the values written because the function
returns them, the trace size and the time of every stage. ``str(report)`` is the
readable form; ``report.text(times=False)`` omits the timings (stable, for golden
tests).

Example::

    >>> report = step.explain(sn.spec("f32[4096,4096]"))
    >>> len(report.kernels), report.kernels[0].space
    (1, (4096, 4096))
    >>> print(report)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from syntonic.ir.graph import Graph, Location, Value
from syntonic.lower.kernel import Kernel, Loop, Program, SourceOp
from syntonic.passes.fusion import REASONS, FusionPlan, Reason


@dataclass(frozen=True, slots=True)
class BoundaryReport:
    """A value written by kernel `producer` and read by kernel `consumer`, and why."""

    producer: int
    consumer: int
    value: str
    reason: Reason
    detail: str = ""

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]

    def __str__(self) -> str:
        text = f"k{self.producer} -> k{self.consumer}  {self.value}: {self.reason.value}"
        if self.detail:
            text += f" ({self.detail})"
        return text + f" -- {self.explanation}"


@dataclass(frozen=True, slots=True)
class KernelReport:
    """One kernel that will run."""

    index: int
    name: str
    kind: str
    space: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    phases: int
    ops: tuple[SourceOp, ...]
    user_ops: tuple[str, ...]
    bytes_read: int
    bytes_written: int
    writes: tuple[str, ...]
    boundaries: tuple[BoundaryReport, ...] = ()
    loop: tuple[str, ...] = ()  # a while loop: how it runs, and its cond/body kernels

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def locations(self) -> tuple[str, ...]:
        """The distinct user ``file:line`` of this kernel's ops."""
        return tuple(dict.fromkeys(str(op.loc) for op in self.ops if op.loc is not None))

    @property
    def iteration_space(self) -> str:
        space = f"[{','.join(map(str, self.space))}]"
        if not self.reduce_axes:
            return space
        return f"{space} reducing axes [{','.join(map(str, self.reduce_axes))}]"

    def text(self) -> str:
        head = (f"{self.name}: {self.kind} over {self.iteration_space}, "
                f"{self.phases} phase{'s' if self.phases != 1 else ''}, "
                f"{_bytes(self.bytes_moved)} moved ({_bytes(self.bytes_read)} read, "
                f"{_bytes(self.bytes_written)} written)")
        lines = [head]
        if self.user_ops:
            lines.append(f"    from: {', '.join(self.user_ops)}")
        names = ", ".join(dict.fromkeys(op.name for op in self.ops))
        lines.append(f"    ops:  {names}")
        if self.locations:
            lines.append(f"    at:   {', '.join(self.locations)}")
        for w in self.writes:
            lines.append(f"    writes {w}")
        lines.extend(f"    {line}" for line in self.loop)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ExplainReport:
    """How a function compiles: its kernels, the boundaries between them, and timings."""

    function: str
    trace_ops: int
    optimized_ops: int
    kernels: tuple[KernelReport, ...]
    boundaries: tuple[BoundaryReport, ...]
    outputs: tuple[str, ...]
    stage_times: Mapping[str, float] = field(default_factory=dict)

    @property
    def bytes_moved(self) -> int:
        return sum(k.bytes_moved for k in self.kernels)

    def text(self, times: bool = True) -> str:
        n = len(self.kernels)
        lines = [f"explain @{self.function}: {self.trace_ops} traced ops -> "
                 f"{self.optimized_ops} optimized ops -> {n} kernel{'s' if n != 1 else ''}, "
                 f"{_bytes(self.bytes_moved)} moved"]
        if times and self.stage_times:
            total = sum(self.stage_times.values())
            parts = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in self.stage_times.items())
            lines.append(f"stage times (ms): {parts}; total {total * 1e3:.2f}")
        lines.append("")
        for k in self.kernels:
            lines.append(k.text())
        lines.append("")
        if self.boundaries:
            lines.append("fusion boundaries:")
            lines.extend(f"  {b}" for b in self.boundaries)
        else:
            lines.append("fusion boundaries: none")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text()


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024**3:.2f} GiB"


def _user_ops(traced: Graph, kernel: Kernel) -> tuple[str, ...]:
    """Ops of the traced graph (the user's vocabulary) at this kernel's source lines."""
    locs: set[Location] = {op.loc for op in kernel.ops if op.loc is not None}
    found = [op.name for op in traced.ops if op.loc in locs and op.name not in (
        "constant", "broadcast")]
    return tuple(dict.fromkeys(found))


def _buffer_text(prog: Program, bid: int) -> str:
    b = prog.buffers[bid]
    name = f" {b.name}" if b.name else ""
    return f"b{bid}{name} {b.type}"


def build_report(function: str, traced: Graph, optimized: Graph, plan: FusionPlan,
                 prog: Program, buffer_of: Mapping[Value, int],
                 stage_times: Mapping[str, float]) -> ExplainReport:
    """Assemble the report from the compile artifacts (`buffer_of`: value -> buffer id)."""
    boundaries = tuple(
        BoundaryReport(b.producer, b.consumer, _value_text(prog, buffer_of, b.value), b.reason,
                       b.detail)
        for b in plan.boundaries
    )
    returned = {o.buffer for o in prog.outputs}
    kernels = []
    for k, kernel in enumerate(prog.kernels):
        writes = []
        for bid in kernel.writes:
            why = [Reason.OUTPUT.value] if bid in returned else []
            why += [f"{b.reason.value} (read by k{b.consumer})" for b in plan.boundaries
                    if b.producer == k and buffer_of.get(b.value) == bid]
            writes.append(f"{_buffer_text(prog, bid)}: "
                          f"{', '.join(dict.fromkeys(why)) or _unread(kernel)}")
        read = sum(prog.buffers[b].nbytes for b in kernel.reads)
        written = sum(prog.buffers[b].nbytes for b in kernel.writes)
        kernels.append(KernelReport(
            k, kernel.name, kernel.kind, kernel.space, kernel.reduce_axes,
            len(kernel.phases), kernel.ops, _user_ops(traced, kernel), read, written,
            tuple(writes), tuple(b for b in boundaries if b.consumer == k),
            _loop_lines(kernel),
        ))
    outputs = tuple(f"output {i}: {_buffer_text(prog, o.buffer)}"
                    for i, o in enumerate(prog.outputs))
    return ExplainReport(function, len(traced.ops), len(optimized.ops), tuple(kernels),
                         boundaries, outputs, dict(stage_times))


def _unread(kernel: Kernel) -> str:
    return "a loop result nothing reads" if kernel.loop is not None else \
        "read by a later kernel"


def _loop_lines(kernel: Kernel) -> tuple[str, ...]:
    """For a while loop: how the CPU runs it, then its cond and body kernels."""
    loop = kernel.loop
    if loop is None:
        return ()
    from syntonic.lower.cpu.codegen import native_loop

    def count(p: Program) -> str:
        return f"{len(p.kernels)} kernel{'s' if len(p.kernels) != 1 else ''}"

    native = native_loop(loop)
    how = ("native loop on the CPU (no Python per iteration)" if native else
           "runs through its reference rule on the CPU (a cond or body kernel is a matmul "
           "or has no kernel lowering)")
    lines = [f"loop: {loop.carried} carried values; cond {count(loop.cond)}, body "
             f"{count(loop.body)}; {how}"]
    rb = loop.row_blocks
    if rb is not None:
        lines.append(f"row-local: {rb.n_blocks} blocks of {rb.block} rows run the whole loop "
                     f"in parallel, each until its own rows are done")
    else:
        lines.append(f"not row-local: {loop.not_row_local}")
    lines.append(_cuda_loop_line(loop))
    for label, sub in (("cond", loop.cond), ("body", loop.body)):
        for sk in sub.kernels:
            names = ", ".join(dict.fromkeys(op.name for op in sk.ops))
            space = f"[{','.join(map(str, sk.space))}]"
            if sk.reduce_axes:
                space += f" reducing axes [{','.join(map(str, sk.reduce_axes))}]"
            lines.append(f"  {label} {sk.name}: {sk.kind} over {space}, {len(sk.phases)} "
                         f"phase{'s' if len(sk.phases) != 1 else ''}; ops: {names}")
    return tuple(lines)


def _cuda_loop_line(loop: Loop) -> str:
    """How the CUDA backend runs `loop`: one fused kernel, or driven by the host."""
    from syntonic.lower.cuda.rowloop import fusable

    if fusable(loop):
        return ("CUDA: one kernel, one thread block per row, each row loops until its own "
                "flag is false")
    return ("CUDA: host-driven (per iteration the host launches cond, reads its one-byte "
            "predicate, then launches the body)")


def _value_text(prog: Program, buffer_of: Mapping[Value, int], value: Value) -> str:
    bid = buffer_of.get(value)
    text = f"b{bid} {value.type}" if bid is not None else str(value.type)
    return text + (f" from {value.loc}" if value.loc else "")


__all__ = ["BoundaryReport", "ExplainReport", "KernelReport", "build_report"]
