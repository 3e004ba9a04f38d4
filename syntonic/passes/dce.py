"""Dead-code elimination: drop ops whose results no output needs.

Every op is pure, so an op is live exactly when an output depends on it.

Example::

    %0 = exp %x : f32[4]              (unused)   ->   removed
"""

from __future__ import annotations

from syntonic.ir.graph import Graph, Value


def eliminate_dead_code(g: Graph) -> Graph:
    """Remove ops no output depends on.

    Guarantees: results unchanged; every remaining op has a result that (transitively)
    reaches an output; parameters are kept (they are the signature); order is preserved.
    """
    live: set[Value] = set(g.outputs)
    kept = []
    for op in reversed(g.ops):
        if any(r in live for r in op.results):
            kept.append(op)
            live.update(op.operands)
    if len(kept) == len(g.ops):
        return g
    return Graph(g.name, g.params, tuple(reversed(kept)), g.outputs, g.loc)


__all__ = ["eliminate_dead_code"]
