"""The reference interpreter: runs a Graph with numpy, op by op, per the registry.

It is the oracle every backend is tested against. Inputs must match the parameter
types exactly (dtype and shape); results are numpy arrays of the declared types.

Example::

    >>> interpret(g, np.ones((4, 248), np.float32))
    (array(...),)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from syntonic.ir.errors import IRError
from syntonic.ir.graph import Graph, Value
from syntonic.ir.registry import get_op
from syntonic.ir.types import TensorType


def interpret(g: Graph, *args: Any) -> tuple[np.ndarray, ...]:
    """Evaluate `g` on numpy arrays (or scalars); returns a tuple, one array per output."""
    if len(args) != len(g.params):
        raise IRError(f"@{g.name} takes {len(g.params)} arguments, got {len(args)}")
    env: dict[Value, np.ndarray] = {}
    for i, (p, a) in enumerate(zip(g.params, args)):
        arr = np.asarray(a)
        try:
            t = TensorType.of(arr)
        except IRError as exc:
            raise IRError(f"@{g.name} argument {i}: {exc}") from None
        if t != p.type:
            raise IRError(f"@{g.name} argument {i} is {t} but the parameter is {p.type}")
        env[p] = arr
    for op in g.ops:
        opdef = get_op(op.name)
        # Overflow, 0/0 and invalid operations have defined IEEE results here; the
        # caller's np.seterr/np.errstate (e.g. all="raise") must not change them.
        with np.errstate(all="ignore"):
            outs = opdef.evaluate([env[v] for v in op.operands], dict(op.attrs), op.regions)
        for r, out in zip(op.results, outs):
            arr = np.asarray(out)
            with np.errstate(all="ignore"):
                arr = arr.astype(r.type.dtype.np, copy=False)
            if arr.shape != r.type.shape:  # a registry bug, never a user error
                raise AssertionError(f"{op.name} gave shape {arr.shape}, expected {r.type}")
            env[r] = arr
    return tuple(env[v] for v in g.outputs)
