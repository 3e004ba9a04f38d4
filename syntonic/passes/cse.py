"""Common-subexpression elimination: structurally equal ops compute once.

Ops are immutable and their attributes hashable, so the key ``(name, operands, attrs,
result types)`` (operands after replacement) turns CSE into a dictionary lookup. All ops
are pure, so any two with the same key compute the same values.

Example::

    %0 = mul %x, %x : f32[4]
    %1 = mul %x, %x : f32[4]          ->   %0 = mul %x, %x ; %1 = add %0, %0
    %2 = add %0, %1 : f32[4]
"""

from __future__ import annotations

import dataclasses
from typing import Any

from syntonic.ir.graph import Builder, Graph, Op, Value


def op_key(op: Op) -> tuple[Any, ...]:
    """The structural identity of an op (its operands compared by identity)."""
    regions = tuple(id(r) for r in getattr(op, "regions", ()))  # bodies compared by identity
    return (op.name, tuple(id(v) for v in op.operands), op.attrs,
            tuple(r.type for r in op.results), regions)


def eliminate_common_subexpressions(g: Graph) -> Graph:
    """Keep the first of every set of structurally equal ops; reroute uses of the others.

    Guarantees: results unchanged; no two ops with equal :func:`op_key` remain; op order
    and source locations of the kept ops are preserved.
    """
    b = Builder(g.name, g.loc)
    b.params = list(g.params)
    env: dict[Value, Value] = {}
    seen: dict[tuple[Any, ...], Op] = {}
    for op in g.ops:
        operands = tuple(env.get(v, v) for v in op.operands)
        if operands != op.operands:
            op = dataclasses.replace(op, operands=operands)
        key = op_key(op)
        first = seen.get(key)
        if first is not None:
            for old, new in zip(op.results, first.results):
                env[old] = new
            continue
        seen[key] = op
        b.append(op)
    return b.build([env.get(v, v) for v in g.outputs])


__all__ = ["eliminate_common_subexpressions", "op_key"]
