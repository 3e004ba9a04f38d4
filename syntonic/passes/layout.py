"""Layout simplification: collapse chains of transposes, reshapes, slices and broadcasts.

Each rule is exact (layout ops only move elements). The point is fewer, simpler views
for fusion: a transpose that only moves unit dimensions is a reshape (free on any
buffer); two transposes are one; ``broadcast(reshape(x))`` where the reshape only adds
leading unit dimensions is ``broadcast(x)``.

Example::

    %0 = transpose %x {perm=[1,0]} : f32[3,2]
    %1 = transpose %0 {perm=[1,0]} : f32[2,3]        ->   (uses of %1 read %x)
"""

from __future__ import annotations

from syntonic.ir.graph import Graph, Op, Value
from syntonic.passes.canonicalize import broadcast_of_broadcast, layout_identity
from syntonic.passes.rewrite import Rewriter, Rule, rewrite, rule


@rule("transpose")
def transpose_of_transpose(r: Rewriter, op: Op) -> Value | None:
    # transpose(transpose(x, p), q) -> transpose(x, [p[q[k]] for k])
    inner = r.producer(op.operands[0])
    if inner is None or inner.name != "transpose":
        return None
    p, q = inner.attr["perm"], op.attr["perm"]
    return r.emit("transpose", [inner.operands[0]], {"perm": tuple(p[k] for k in q)}, op.loc)


@rule("transpose")
def transpose_of_unit_axes(r: Rewriter, op: Op) -> Value | None:
    # transpose keeping the order of the non-unit axes -> reshape (same row-major order)
    x = op.operands[0]
    perm = op.attr["perm"]
    moved = [p for p in perm if x.shape[p] != 1]
    if moved != sorted(moved):
        return None
    return r.emit("reshape", [x], {"shape": op.results[0].shape}, op.loc)


@rule("reshape")
def reshape_of_reshape(r: Rewriter, op: Op) -> Value | None:
    # reshape(reshape(x, s1), s2) -> reshape(x, s2)
    inner = r.producer(op.operands[0])
    if inner is None or inner.name != "reshape":
        return None
    return r.emit("reshape", [inner.operands[0]], op.attr, op.loc)


@rule("slice")
def slice_of_slice(r: Rewriter, op: Op) -> Value | None:
    # x[b1::s1][b2::s2] -> x[b1 + s1*b2 :: s1*s2]
    inner = r.producer(op.operands[0])
    if inner is None or inner.name != "slice":
        return None
    a, b = inner.attr, op.attr
    start, stop, step = [], [], []
    for b1, s1, b2, s2, n, d in zip(a["start"], a["step"], b["start"], b["step"],
                                    op.results[0].shape, inner.operands[0].shape):
        first = b1 + s1 * b2
        if not n:  # an empty axis: b2 may sit at the inner result's end, past x's
            first = min(first, d)
        st = s1 * s2
        start.append(first)
        step.append(st)
        stop.append(first + st * (n - 1) + 1 if n else first)
    return r.emit("slice", [inner.operands[0]],
                  {"start": start, "stop": stop, "step": step}, op.loc)


@rule("broadcast")
def broadcast_of_leading_reshape(r: Rewriter, op: Op) -> Value | None:
    # broadcast(reshape(x, [1,...,1] + x.shape), s) -> broadcast(x, s)   (numpy aligns right)
    inner = r.producer(op.operands[0])
    if inner is None or inner.name != "reshape":
        return None
    x = inner.operands[0]
    shape = inner.results[0].shape
    lead = len(shape) - len(x.shape)
    if lead < 0 or shape[lead:] != x.shape or any(d != 1 for d in shape[:lead]):
        return None
    return r.emit("broadcast", [x], op.attr, op.loc)


RULES: tuple[Rule, ...] = (
    layout_identity,
    transpose_of_transpose,
    transpose_of_unit_axes,
    reshape_of_reshape,
    slice_of_slice,
    broadcast_of_leading_reshape,
    broadcast_of_broadcast,
)


def simplify_layout(g: Graph) -> Graph:
    """Collapse layout-op chains (:data:`RULES`).

    Guarantees: results unchanged bit for bit; no chain of two transposes, two
    reshapes or two slices remains, and no transpose that only moves unit axes.
    """
    return rewrite(g, RULES)


__all__ = ["RULES", "simplify_layout"]
