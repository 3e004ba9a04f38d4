"""The kernel IR shared by the CPU and CUDA backends: one :class:`Kernel` per fused group.

A :class:`Program` is what a compiled function runs: buffers (parameters, constants,
temporaries, outputs) and kernels in order. Backends lower each kernel without re-deriving
fusion: everything they need is explicit here.

**Iteration space.** A kernel iterates over ``space`` (a shape, rank r). ``reduce_axes``
split it into *outer* axes (independent rows: parallel) and *inner* axes (reduced). A
pure elementwise kernel has no reduce axes (every index is its own row); a row
reduction reduces trailing (or any) axes; a full reduction reduces every axis (one row).

**Scalar expression DAG.** ``nodes`` are SSA scalar nodes in topological order; an
argument is the index of an earlier node. Node kinds: :class:`Load` (a buffer element
through a :class:`~syntonic.lower.view.View` of the whole space, 0 where the view is
masked), :class:`Const`, :class:`Iota` (an index value), :class:`Acc` (an accumulator's
final value) and :class:`Apply` (one ELEMENTWISE op of the registry, by name, with its
attributes; backends lower it from their per-op table). Every node has a level
(:class:`Level`): CONST (same everywhere), ROW (depends on the outer index only: hoist
it out of the inner loop) or ELEM.

**Phases.** Per outer index, the phases run in order. A phase loops over the inner
index (once when there are no reduce axes) and, at each point, feeds its
:class:`Reduction` accumulators (several = a multi-output reduction) and performs its
``stores``; after the loop the accumulators are final and its ``row_stores`` (values of
level ROW) are written once per row. A node reading ``Acc(k)`` may only be used after
the phase that computes accumulator k, so multi-phase kernels (mean, then variance,
then normalise) re-read their inputs in each phase and recompute the cheap elementwise
nodes they need: that is the recompute policy inside a kernel. For a kernel whose
space has one row (full reductions), a phase boundary is a grid-wide barrier.

Semantically (and literally, in :mod:`syntonic.lower.kernel_interp`)::

    for o in outer(space):                          # parallel
        if contraction: acc[c] = sum_k lhs[..., m, k] * rhs[..., k, n]    (per element)
        for phase in phases:
            for r in inner(space):                  # one iteration without reduce axes
                i = (o, r)
                for red in phase.reductions: acc[red.acc] <- red.op(acc, value(red.value, i))
                for st in phase.stores:      buf[st.buffer][st.view(i)] = value(st.value, i)
            for st in phase.row_stores:      buf[st.buffer][st.view(o, 0)] = value(st.value, o)

A reduction's ``op`` is the registry reduction it implements (``sum``, ``mean``, ``max``,
``min``, ``prod``): ``mean`` is a sum divided by the number of reduced elements.
A :class:`Contraction` (matmul) computes its accumulator per element of the space
``[..., M, N]`` from two buffer operands; the epilogue (bias, activation) is the phase.
An :class:`Opaque` kernel runs one registry op through its reference rule (no backend
lowers it; it exists so that any graph still runs). A ``while`` op is also lowered to a
:class:`Loop` (its cond and body regions as sub-programs), which backends run as a native
loop.

Example (``print(program)``)::

    kernel @k0_harmonize space=[4096,4096] reduce=[1] (rows [4096] x inner [4096])
      ...
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import field
from typing import Any

import numpy as np

from syntonic.ir.errors import IRError
from syntonic.ir.graph import Location
from syntonic.ir.types import DType, TensorType
from syntonic.lower.view import View
from syntonic.records import record


class Level(enum.IntEnum):
    """Where a node varies: nowhere, per row (outer index), or per element."""

    CONST = 0
    ROW = 1
    ELEM = 2


# ------------------------------------------------------------------ nodes


@record(frozen=True, slots=True)
class Load:
    """``buffer[view(i)]``, or 0 where the view is masked (padding)."""

    buffer: int
    view: View
    dtype: DType


@record(frozen=True, slots=True)
class Const:
    """A scalar immediate (bool, int or float of `dtype`)."""

    value: Any
    dtype: DType


@record(frozen=True, slots=True)
class Iota:
    """An index as a value: ``(view.offset(i) // div) % mod`` cast to dtype; 0 if masked.

    A contiguous iota of shape S along dim d has value ``(flat // stride_d) % S[d]`` at
    flat position ``flat``; the view carries any layout ops applied to it.
    """

    view: View
    div: int
    mod: int
    dtype: DType


@record(frozen=True, slots=True)
class Acc:
    """The final value of accumulator `acc` (a Reduction's or the Contraction's)."""

    acc: int
    dtype: DType


@record(frozen=True, slots=True)
class Apply:
    """One elementwise registry op (``add``, ``exp``, ``select``, ``cast`` ...) on earlier nodes."""

    op: str
    args: tuple[int, ...]
    attrs: tuple[tuple[str, Any], ...]
    dtype: DType

    @property
    def attr(self) -> dict[str, Any]:
        return dict(self.attrs)


Node = Load | Const | Iota | Acc | Apply


# ------------------------------------------------------------------ structure

# The registry reductions a Reduction may name, with the elementwise registry op that
# combines two partial results (backends split and combine reductions with it). ``mean``
# is a ``sum`` divided by the number of reduced elements when the accumulator is final.
REDUCTION_COMBINE: dict[str, str] = {
    "sum": "add",
    "mean": "add",
    "max": "maximum",
    "min": "minimum",
    "prod": "mul",
}


@record(frozen=True, slots=True)
class Reduction:
    """Accumulator `acc` = registry reduction `op` of node `value` over the inner axes."""

    acc: int
    op: str
    value: int
    dtype: DType


@record(frozen=True, slots=True)
class Operand:
    """A matmul operand: a buffer read through a view of the operand's own shape."""

    buffer: int
    view: View


@record(frozen=True, slots=True)
class Contraction:
    """``acc[..., m, n] = sum_k lhs[..., m, k] * rhs[..., k, n]`` over the kernel space."""

    acc: int
    lhs: Operand
    rhs: Operand
    dtype: DType

    @property
    def k(self) -> int:
        """The contracted length."""
        return self.lhs.view.shape[-1]


@record(frozen=True, slots=True)
class Store:
    """``buffer[view(i)] = node value``; the view maps the kernel space, never masked."""

    buffer: int
    view: View
    value: int


@record(frozen=True, slots=True)
class Phase:
    """One loop over the inner index: reductions and stores, then the row stores."""

    reductions: tuple[Reduction, ...] = ()
    stores: tuple[Store, ...] = ()
    row_stores: tuple[Store, ...] = ()


@record(frozen=True, slots=True)
class SourceOp:
    """A graph op a kernel implements, for reports and source annotations."""

    name: str
    loc: Location | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.loc})" if self.loc else self.name


@record(frozen=True, slots=True)
class Opaque:
    """A kernel that runs registry op `op` on whole buffers through its reference rule."""

    op: str
    attrs: tuple[tuple[str, Any], ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    input_types: tuple[TensorType, ...] = ()  # how the op sees each input (a reshape)
    regions: tuple[Any, ...] = ()  # the op's region graphs (control flow), if any


@record(frozen=True, slots=True, eq=False)
class RowBlocks:
    """A row-local loop (:mod:`syntonic.passes.rowlocal`) split into blocks of rows.

    Each block of `block` rows (the last one `rows % block` rows, run by the `tail_*`
    programs) runs the whole loop on its own rows until its own rows are all inactive.
    The block programs are the regions rebuilt for that many rows; `row_params[i]` says
    whether region parameter i (carried values first) is indexed by row (the block reads
    its rows) or shared (read whole).
    """

    rows: int
    block: int
    row_params: tuple[bool, ...]
    cond: Program
    body: Program
    tail_cond: Program | None = None
    tail_body: Program | None = None

    @property
    def n_blocks(self) -> int:
        return -(-self.rows // self.block)

    @property
    def scratch_bytes(self) -> int:
        """Bytes of a block's own buffers (temporaries and sub-program outputs of the
        block programs, plus staging as large as the carried values): what a CPU thread
        keeps on its stack per block."""
        total = 0
        for prog in (self.cond, self.body):
            for buf in prog.buffers:
                if buf.role is not Role.PARAM and buf.role is not Role.CONST:
                    total += buf.type.nbytes
            if prog is self.body:  # staging for carried values passed through
                total += sum(prog.buffers[p].type.nbytes for p in prog.params)
        return total


# A CPU thread runs a block of a row-local loop with the block's temporaries on its
# stack; a block needing more than this (rows of millions of elements) runs as one whole
# loop instead, with temporaries in the program's workspace (threads have stacks of a few
# MiB). See cpu_row_blocks.
BLOCK_STACK_LIMIT = 1 << 20


def cpu_row_blocks(loop: Loop) -> RowBlocks | None:
    """`loop.row_blocks` if the CPU runs the loop block by block, else None (not
    row-local, or a block's temporaries would not fit on a thread's stack)."""
    rb = loop.row_blocks
    if rb is None or rb.scratch_bytes > BLOCK_STACK_LIMIT:
        return None
    return rb


@record(frozen=True, slots=True, eq=False)
class Loop:
    """A ``while`` op lowered to two sub-programs that backends run as a native loop.

    ``state = inputs[:carried]; while cond(state, consts)[0]: state = body(state, consts)``,
    then the final state is written to `outputs`. `cond` and `body` are programs
    whose parameters are the carried values followed by the loop-invariant operands
    (``inputs[carried:]``); `cond` returns one ``bool[]``, `body` the next carried values.
    A kernel with a loop also keeps its :class:`Opaque` form (the reference rule), so a
    backend that cannot compile a sub-program still runs the loop.
    """

    cond: Program
    body: Program
    carried: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    row_blocks: RowBlocks | None = None  # set when the loop is row-local
    not_row_local: str = ""  # otherwise, why not


@record(frozen=True, slots=True)
class Kernel:
    """One fused kernel. See the module docstring for the semantics."""

    name: str
    space: tuple[int, ...]
    reduce_axes: tuple[int, ...] = ()
    nodes: tuple[Node, ...] = ()
    phases: tuple[Phase, ...] = ()
    contraction: Contraction | None = None
    opaque: Opaque | None = None
    ops: tuple[SourceOp, ...] = ()
    loop: Loop | None = None

    # ---------------------------------------------------------- derived facts
    @property
    def kind(self) -> str:
        """``elementwise``, ``reduce`` (rows), ``full_reduce``, ``matmul``, ``loop`` or
        ``opaque``."""
        if self.loop is not None:
            return "loop"
        if self.opaque is not None:
            return "opaque"
        if self.contraction is not None:
            return "matmul"
        if any(p.reductions for p in self.phases):
            return "full_reduce" if not self.outer_axes else "reduce"
        return "elementwise"

    @property
    def outer_axes(self) -> tuple[int, ...]:
        return tuple(a for a in range(len(self.space)) if a not in self.reduce_axes)

    @property
    def outer_shape(self) -> tuple[int, ...]:
        return tuple(self.space[a] for a in self.outer_axes)

    @property
    def inner_shape(self) -> tuple[int, ...]:
        return tuple(self.space[a] for a in self.reduce_axes)

    @property
    def reductions(self) -> tuple[Reduction, ...]:
        return tuple(r for p in self.phases for r in p.reductions)

    @property
    def stores(self) -> tuple[Store, ...]:
        return tuple(s for p in self.phases for s in (*p.stores, *p.row_stores))

    @property
    def reads(self) -> tuple[int, ...]:
        """Buffers this kernel reads, sorted."""
        found = {n.buffer for n in self.nodes if isinstance(n, Load)}
        if self.contraction is not None:
            found |= {self.contraction.lhs.buffer, self.contraction.rhs.buffer}
        if self.opaque is not None:
            found |= set(self.opaque.inputs)
        return tuple(sorted(found))

    @property
    def writes(self) -> tuple[int, ...]:
        """Buffers this kernel writes, sorted."""
        found = {s.buffer for s in self.stores}
        if self.opaque is not None:
            found |= set(self.opaque.outputs)
        return tuple(sorted(found))

    def levels(self) -> tuple[Level, ...]:
        """The level of every node (CONST, ROW or ELEM)."""
        out: list[Level] = []
        contraction = self.contraction.acc if self.contraction else None
        for n in self.nodes:
            if isinstance(n, Const):
                out.append(Level.CONST)
            elif isinstance(n, (Load, Iota)):
                out.append(self.view_level(n.view))
            elif isinstance(n, Acc):
                out.append(Level.ELEM if n.acc == contraction else Level.ROW)
            else:
                out.append(max((out[a] for a in n.args), default=Level.CONST))
        return tuple(out)

    def view_level(self, view: View) -> Level:
        """CONST if the view reads one element, ROW if only outer axes move it, else ELEM."""
        axes = [a for a in range(view.rank) if view.depends_on(a)]
        if not axes:
            return Level.CONST
        if self.reduce_axes and not any(a in self.reduce_axes for a in axes):
            return Level.ROW
        return Level.ELEM

    def needed(self, roots: list[int]) -> list[int]:
        """Indices of the nodes `roots` depend on (inclusive), in topological order."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            k = stack.pop()
            if k in seen:
                continue
            seen.add(k)
            node = self.nodes[k]
            if isinstance(node, Apply):
                stack.extend(node.args)
        return sorted(seen)

    def acc_phase(self) -> dict[int, int]:
        """Accumulator -> index of the phase that finalizes it (-1: the contraction)."""
        out = {r.acc: p for p, ph in enumerate(self.phases) for r in ph.reductions}
        if self.contraction is not None:
            out[self.contraction.acc] = -1
        return out

    @property
    def flops_per_point(self) -> int:
        """Apply nodes evaluated per iteration point (a rough cost measure)."""
        return sum(1 for n in self.nodes if isinstance(n, Apply))

    def __str__(self) -> str:
        from syntonic.lower.kernel_text import format_kernel

        return format_kernel(self)


# ------------------------------------------------------------------ programs


class Role(enum.StrEnum):
    """What a buffer is for."""

    PARAM = "param"  # an argument of the function (read only)
    CONST = "const"  # a compile-time constant (``data``)
    TEMP = "temp"  # written by one kernel, read by later ones
    OUTPUT = "output"  # returned (maybe also read by later kernels)


@record(frozen=True, slots=True, eq=False)
class Buffer:
    """A contiguous (row-major) tensor in memory."""

    id: int
    type: TensorType
    role: Role
    name: str = ""
    data: np.ndarray | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        return self.type.nbytes

    def __str__(self) -> str:
        return f"b{self.id}"


@record(frozen=True, slots=True)
class OutputRef:
    """A function output: a buffer, seen with `type` (a reshape keeps the bytes)."""

    buffer: int
    type: TensorType


@record(frozen=True, slots=True, eq=False)
class Program:
    """Buffers, the kernels that run in order, and which buffers are the outputs."""

    name: str
    buffers: tuple[Buffer, ...]
    params: tuple[int, ...]
    outputs: tuple[OutputRef, ...]
    kernels: tuple[Kernel, ...]

    def buffer(self, id: int) -> Buffer:
        return self.buffers[id]

    def __iter__(self) -> Iterator[Kernel]:
        return iter(self.kernels)

    def __len__(self) -> int:
        return len(self.kernels)

    def text(self) -> str:
        from syntonic.lower.kernel_text import format_program

        return format_program(self)

    def __str__(self) -> str:
        return self.text()


# ------------------------------------------------------------------ checks


def check_kernel(k: Kernel) -> None:
    """Raise IRError unless `k` is well formed (the kernel IR's verifier).

    Checks: node arguments precede their users; views cover the space; stores are
    unmasked; accumulators are read only after their phase; row stores hold values of
    level ROW or CONST; at most one of contraction/opaque.
    """
    def bad(msg: str) -> IRError:
        return IRError(f"kernel {k.name}: {msg}")

    if any(a not in range(len(k.space)) for a in k.reduce_axes):
        raise bad(f"reduce axes {list(k.reduce_axes)} outside the space {list(k.space)}")
    if k.opaque is not None:
        return
    accs = k.acc_phase()
    for idx, n in enumerate(k.nodes):
        if isinstance(n, Apply) and any(not 0 <= a < idx for a in n.args):
            raise bad(f"node %{idx} ({n.op}) reads a later or missing node")
        if isinstance(n, (Load, Iota)) and n.view.shape != k.space:
            raise bad(f"node %{idx} has a view of shape {list(n.view.shape)}, "
                      f"not the space {list(k.space)}")
        if isinstance(n, Acc) and n.acc not in accs:
            raise bad(f"node %{idx} reads accumulator {n.acc}, which nothing computes")
    levels = k.levels()
    acc_of = _acc_dependencies(k)
    for p, phase in enumerate(k.phases):
        roots = [r.value for r in phase.reductions] + [s.value for s in phase.stores]
        for root in roots:
            for a in acc_of[root]:
                if accs[a] >= p:
                    raise bad(f"phase {p} reads accumulator {a} before it is final")
        for st in phase.row_stores:
            if levels[st.value] > Level.ROW:
                raise bad(f"row store of %{st.value}, which varies along the reduced axes")
            if any(accs[a] > p for a in acc_of[st.value]):
                raise bad(f"row store in phase {p} reads an accumulator finalized later")
        for st in (*phase.stores, *phase.row_stores):
            if st.view.masked or st.view.shape != k.space:
                raise bad(f"store to b{st.buffer} through an invalid view {st.view}")
    if k.contraction is not None:
        c = k.contraction
        lhs, rhs = c.lhs.view.shape, c.rhs.view.shape
        if lhs[:-2] != k.space[:-2] or rhs[:-2] != k.space[:-2] or lhs[-1] != rhs[-2] \
                or (lhs[-2], rhs[-1]) != k.space[-2:]:
            raise bad(f"matmul operands {list(lhs)} @ {list(rhs)} do not fit {list(k.space)}")


def _acc_dependencies(k: Kernel) -> list[frozenset[int]]:
    """For each node, the accumulators it (transitively) reads."""
    out: list[frozenset[int]] = []
    for n in k.nodes:
        if isinstance(n, Acc):
            out.append(frozenset({n.acc}))
        elif isinstance(n, Apply):
            out.append(frozenset().union(*(out[a] for a in n.args)))
        else:
            out.append(frozenset())
    return out


def acc_dependencies(k: Kernel) -> list[frozenset[int]]:
    """For each node of `k`, the accumulators it reads (directly or through other nodes)."""
    return _acc_dependencies(k)


def space_size(k: Kernel) -> int:
    return math.prod(k.space)


__all__ = [
    "BLOCK_STACK_LIMIT", "Acc", "Apply", "Buffer", "Const", "Contraction", "Iota", "Kernel",
    "Level", "Load", "Node", "Loop", "Opaque", "Operand", "OutputRef", "Phase", "Program",
    "REDUCTION_COMBINE", "Reduction", "Role", "RowBlocks", "SourceOp", "Store",
    "acc_dependencies", "check_kernel", "cpu_row_blocks", "space_size",
]
