"""Decomposition of resonant ops into primitive ops (the rules of SPEC-ops.md).

Each resonant op's rule lives with its registry entry (``OpDef.decompose``, defined in
:mod:`syntonic.ir.decompositions`); this pass only applies them. After it, the graph
holds primitive ops only, so dumps show the user's vocabulary in ``traced`` and the
arithmetic from ``decompose`` on.

Example::

    %0 = syntony %x : f32[]           ->   %0 = abs %x ... %9 = select %7, %8, %6 : f32[]
"""

from __future__ import annotations

import dataclasses

from syntonic.ir.errors import IRError
from syntonic.ir.graph import Builder, Graph, Value
from syntonic.ir.printer import op_text
from syntonic.ir.registry import Trait, get_op


def decompose_resonant_ops(g: Graph) -> Graph:
    """Replace every op that has a decomposition rule by the primitive ops it emits.

    Guarantees: no op with ``Trait.RESONANT`` remains (IRError naming the op if one has
    no rule); results equal the interpreter's on the original graph up to rounding (the
    reference computes resonant ops in float64; see the tolerances in docs/architecture.md);
    new ops carry the source location of the op they replace.
    """
    b = Builder(g.name, g.loc)
    b.params = list(g.params)
    env: dict[Value, Value] = {}
    for op in g.ops:
        operands = [env.get(v, v) for v in op.operands]
        opdef = get_op(op.name)
        if opdef.decompose is None:
            if opdef.has(Trait.RESONANT):
                raise IRError(f"@{g.name}: resonant op `{op.name}` has no decomposition rule"
                              f"{f' at {op.loc}' if op.loc else ''}\n  {op_text(op, g)}")
            changed = any(a is not v for a, v in zip(operands, op.operands))
            b.append(dataclasses.replace(op, operands=tuple(operands)) if changed else op)
            continue
        results = opdef.decompose(b, op, operands)
        results = tuple(results) if isinstance(results, (list, tuple)) else (results,)
        for old, new in zip(op.results, results):
            if old.type != new.type:  # a rule bug, never a user error
                raise AssertionError(f"decomposition of {op.name} gave {new.type}, "
                                     f"expected {old.type}")
            env[old] = new
    return b.build([env.get(v, v) for v in g.outputs])


__all__ = ["decompose_resonant_ops"]
