"""From a fusion plan to the kernel IR: buffers, one kernel per group, phases, stores.

:func:`lower_to_kernels` assigns buffers (parameters, constants that are not splats,
values a group materializes), translates each group's ops into the scalar DAG (views
from the plan become loads; splat constants immediates; ``iota`` index nodes; row
values read inside the row's kernel are hoisted nodes), and places each reduction in
the phase after the accumulators its value depends on (siblings share a phase), each
element store in the first phase where its accumulators are final, and each row
store right after the phase that finalizes its last accumulator.

Example::

    >>> prog = lower_to_kernels(fuse(optimize(g)))
    >>> print(prog)           # program @f(...), buffers, kernels
"""

from __future__ import annotations

import math
from dataclasses import field

import numpy as np

from syntonic.ir.graph import Graph, Op, Value
from syntonic.ir.registry import Trait
from syntonic.ir.types import TensorType
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Buffer,
    Const,
    Contraction,
    Iota,
    Kernel,
    Level,
    Load,
    Loop,
    Node,
    Opaque,
    Operand,
    OutputRef,
    Phase,
    Program,
    Reduction,
    Role,
    RowBlocks,
    SourceOp,
    Store,
    acc_dependencies,
)
from syntonic.lower.view import View, contiguous_strides, row_embedding, row_shapes
from syntonic.passes.fusion import FusionPlan, Group, Origin, fuse
from syntonic.passes.rowlocal import RowLocal, analyze_loop, with_rows
from syntonic.records import record


@record
class _Buffers:
    """Buffer table of a program under construction."""

    plan: FusionPlan
    list: list[Buffer] = field(default_factory=list)
    of: dict[Value, int] = field(default_factory=dict)

    def add(self, v: Value, role: Role, name: str, data: np.ndarray | None = None) -> int:
        bid = len(self.list)
        self.list.append(Buffer(bid, v.type, role, name, data))
        self.of[v] = bid
        return bid

    def get(self, root: Value) -> int:
        """The buffer holding root value `root` (a constant gets one on first use)."""
        if root not in self.of:
            op = self.plan.graph.producers().get(root)
            assert op is not None and op.name == "constant", f"no buffer for {root}"
            self.add(root, Role.CONST, "", op.attr["value"].array)
        return self.of[root]


class _KernelBuilder:
    """Builds one kernel's node DAG (hash-consed) and its phases."""

    def __init__(self, plan: FusionPlan, bufs: _Buffers, grp: Group) -> None:
        self.plan = plan
        self.bufs = bufs
        self.grp = grp
        self.space = grp.space
        self.axes = grp.reduce_axes
        self.nodes: list[Node] = []
        self.interned: dict[Node, int] = {}
        self.value_node: dict[Value, int] = {}
        self.reductions: list[Reduction] = []
        self.contraction: Contraction | None = None
        self.producers = plan.graph.producers()

    def node(self, n: Node) -> int:
        idx = self.interned.get(n)
        if idx is None:
            idx = len(self.nodes)
            self.nodes.append(n)
            self.interned[n] = idx
        return idx

    def read(self, origin: Origin, shape: tuple[int, ...], level: Level) -> int:
        """A node reading `origin` (seen with `shape`) at the consumer's level."""
        root = origin.root
        if root in self.value_node:
            return self.value_node[root]
        view = origin.view
        if level is Level.ROW and self.axes:
            _, keep = row_shapes(self.space, self.axes)
            reshaped = view.reshape(keep)
            assert reshaped is not None, "fusion admitted a row read that is not a view"
            view = reshaped.broadcast(self.space)
        else:
            assert shape == self.space, f"fusion admitted a read of {shape} in {self.space}"
        op = self.producers.get(root)
        if op is not None and op.name == "constant":
            arr = op.attr["value"].array
            if arr.size == 1 and not view.masked:
                return self.node(Const(arr.reshape(-1)[0].item(), root.dtype))
        if op is not None and op.name == "iota":
            a = op.attr
            dim = a["dim"] % len(a["shape"])
            div = contiguous_strides(a["shape"])[dim]
            return self.node(Iota(view, div, a["shape"][dim], root.dtype))
        return self.node(Load(self.bufs.get(root), view, root.dtype))

    def add_op(self, op: Op) -> None:
        level = self.grp.levels[op.results[0]]
        res = op.results[0]
        if op.name == "matmul":
            lhs, rhs = (self.plan.origin(op, i) for i in range(2))
            acc = len(self.reductions)
            self.contraction = Contraction(
                acc,
                Operand(self.bufs.get(lhs.root), lhs.view),
                Operand(self.bufs.get(rhs.root), rhs.view),
                res.dtype,
            )
            self.value_node[res] = self.node(Acc(acc, res.dtype))
        elif op.opdef.has(Trait.REDUCTION):
            value = self.read(self.plan.origin(op, 0), op.operands[0].shape, Level.ELEM)
            acc = len(self.reductions)
            self.reductions.append(Reduction(acc, op.name, value, res.dtype))
            self.value_node[res] = self.node(Acc(acc, res.dtype))
        else:
            args = tuple(self.read(self.plan.origin(op, i), v.shape, level)
                         for i, v in enumerate(op.operands))
            self.value_node[res] = self.node(Apply(op.name, args, op.attrs, res.dtype))

    def build(self, name: str) -> Kernel:
        grp = self.grp
        if grp.copy_of is not None:
            src = self.plan.copy_sources.get(grp.copy_of) or self.plan.origins[grp.copy_of]
            self.value_node[grp.copy_of] = self.read(src, grp.copy_of.shape, Level.ELEM)
        for op in grp.ops:
            self.add_op(op)
        deps = acc_dependencies(Kernel(name, self.space, self.axes, tuple(self.nodes)))
        depth: dict[int, int] = {}
        for r in self.reductions:  # reductions appear in dependency order
            depth[r.acc] = max((depth[a] + 1 for a in deps[r.value] if a in depth), default=0)
        if self.contraction is not None:
            depth[self.contraction.acc] = -1
        n_phases = max(depth.values(), default=-1) + 1
        stores: list[tuple[int, Store, bool]] = []
        for v in grp.outputs:
            node = self.value_node[v]
            if grp.levels[v] is Level.ROW and self.axes:
                p = max((depth[a] for a in deps[node]), default=0)
                stores.append((max(p, 0), Store(self.bufs.of[v], row_embedding(self.space,
                                                                                self.axes),
                                                node), True))
            else:
                p = max((depth[a] + 1 for a in deps[node]), default=0)
                view = View.contiguous(v.shape).reshape(self.space)
                assert view is not None and v.type.size == math.prod(self.space)
                stores.append((p, Store(self.bufs.of[v], view, node), False))
        n_phases = max([n_phases, 1] + [p + 1 for p, _, _ in stores])
        phases = []
        for p in range(n_phases):
            phases.append(Phase(
                tuple(r for r in self.reductions if depth[r.acc] == p),
                tuple(st for q, st, row in stores if q == p and not row),
                tuple(st for q, st, row in stores if q == p and row),
            ))
        ops = tuple(SourceOp(op.name, op.loc) for op in grp.ops)
        if grp.copy_of is not None:
            ops = self.copy_ops(grp.copy_of)
        return Kernel(name, self.space, self.axes, tuple(self.nodes), tuple(phases),
                      self.contraction, None, ops)

    def copy_ops(self, v: Value) -> tuple[SourceOp, ...]:
        """The view ops (or iota) a copy kernel applies, from its source to `v`."""
        src = self.plan.copy_sources.get(v) or self.plan.origins[v]
        chain = []
        cur = v
        while cur is not src.root:
            op = self.producers.get(cur)
            if op is None:
                break
            chain.append(SourceOp(op.name, op.loc))
            if not op.operands:
                break
            cur = op.operands[0]
        return tuple(reversed(chain)) or (SourceOp("copy"),)


def _kernel_name(index: int, grp: Group) -> str:
    if grp.copy_of is not None:
        return f"k{index}_copy"
    main = next((op for op in grp.ops if op.name == "matmul"), None)
    main = main or next((op for op in grp.ops if op.opdef.has(Trait.REDUCTION)), None)
    main = main or (grp.ops[0] if grp.ops else None)
    return f"k{index}_{main.name if main else 'kernel'}"


def _opaque_kernel(name: str, grp: Group, plan: FusionPlan, bufs: _Buffers) -> Kernel:
    (op,) = grp.ops
    origins = [plan.origin(op, i) for i in range(len(op.operands))]
    opaque = Opaque(op.name, op.attrs, tuple(bufs.get(o.root) for o in origins),
                    tuple(bufs.of[r] for r in op.results),
                    tuple(v.type for v in op.operands), tuple(getattr(op, "regions", ())))
    loop = _loop(name, op, opaque) if op.name == "while" else None
    return Kernel(name, op.results[0].shape, (), (), (), None, opaque,
                  (SourceOp(op.name, op.loc),), loop)


def _loop(name: str, op: Op, opaque: Opaque) -> Loop:
    """A ``while`` op's regions as sub-programs (each region fused and scheduled alone).

    The regions were optimized with the enclosing graph (the pipeline recurses into them).
    """
    cond, body = opaque.regions
    carried = int(op.attr["carried"])
    info = analyze_loop(cond, body, carried)
    blocks = _row_blocks(cond, body, carried, info) if isinstance(info, RowLocal) else None
    return Loop(lower_to_kernels(fuse(cond)), lower_to_kernels(fuse(body)), carried,
                opaque.inputs, opaque.outputs, blocks, info if isinstance(info, str) else "")


# Rows per block of a row-local loop: as few as make the block's carried rows take about
# this many bytes. A row carrying at least that much (an evolve row of 248 f32 and its
# row values: ~1 KiB) is a block of its own: it loops until its own flag is false and a
# finished row does no more work (blocks of 64 such rows ran ~6.7x slower on a batch
# where 1 row in 32 evolves for 10+ iterations and the rest stop at once, and no faster
# when all rows stop together). Short rows are grouped so that each iteration's cond
# call, body call and buffer swaps are spread over about this much data.
ROW_BLOCK_BYTES = 1024


def _row_blocks(cond: Graph, body: Graph, carried: int, info: RowLocal) -> RowBlocks:
    row_bytes = sum(p.type.nbytes // info.rows for p in body.params[:carried])
    block = max(1, min(info.rows, ROW_BLOCK_BYTES // max(row_bytes, 1)))
    for b in range(block, block // 2, -1):  # prefer a divisor of the rows: no tail
        if info.rows % b == 0:
            block = b
            break

    def program(g: Graph, rows: int) -> Program:
        return lower_to_kernels(fuse(with_rows(g, info.row_params, info.rows, rows)))

    tail = info.rows % block
    return RowBlocks(info.rows, block, info.row_params, program(cond, block),
                     program(body, block), program(cond, tail) if tail else None,
                     program(body, tail) if tail else None)


def lower_to_kernels(plan: FusionPlan) -> Program:
    """The kernel-IR program for a fusion plan.

    Guarantees: one kernel per group, in the plan's order; every kernel passes
    :func:`~syntonic.lower.kernel.check_kernel`; parameters are buffers ``b0..``; a
    function output is a buffer seen with the output's type (equal size, row-major).
    """
    return lower_with_buffers(plan)[0]


def lower_with_buffers(plan: FusionPlan) -> tuple[Program, dict[Value, int]]:
    """:func:`lower_to_kernels`, plus the buffer of every materialized graph value."""
    g = plan.graph
    bufs = _Buffers(plan)
    for p in g.params:
        bufs.add(p, Role.PARAM, f"%{p.hint}" if p.hint else "")
    returned = {o.root for o in plan.output_origins}
    for grp in plan.groups:
        for v in grp.outputs:
            role = Role.OUTPUT if v in returned else Role.TEMP
            bufs.add(v, role, _value_name(v, g.outputs))
    kernels = []
    for k, grp in enumerate(plan.groups):
        name = _kernel_name(k, grp)
        if grp.kind == "opaque":
            kernels.append(_opaque_kernel(name, grp, plan, bufs))
        else:
            kernels.append(_KernelBuilder(plan, bufs, grp).build(name))
    outputs = tuple(OutputRef(bufs.get(o.root), v.type)
                    for o, v in zip(plan.output_origins, g.outputs))
    for o, v in zip(plan.output_origins, g.outputs):
        assert math.prod(v.shape) == bufs.list[bufs.of[o.root]].type.size
    prog = Program(g.name, tuple(bufs.list), tuple(bufs.of[p] for p in g.params), outputs,
                   tuple(kernels))
    return prog, dict(bufs.of)


def _value_name(v: Value, outputs: tuple[Value, ...]) -> str:
    idx = [i for i, o in enumerate(outputs) if o is v]
    return f"out{idx[0]}" if idx else ""


def buffer_type(prog: Program, bid: int) -> TensorType:
    return prog.buffers[bid].type


__all__ = ["buffer_type", "lower_to_kernels", "lower_with_buffers"]
