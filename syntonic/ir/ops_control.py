"""Structured control flow: ``while`` and ``cond``, ops that carry closed regions.

Regions are Graphs that capture nothing: every value a region reads arrives through its
parameters, which receive the op's operands. This keeps SSA flat and makes regions
printable, verifiable and differentiable like functions.

``%r... = while %init..., %const... {carried=N}`` with regions ``cond`` and ``body``: both
take (carried..., consts...); ``cond`` returns ``bool[]``; ``body`` returns the next carried
values. ``%r... = cond %pred, %arg...`` with regions ``true`` and ``false``, both taking the
args and returning values of the same types.

Example (text form)::

    %1 = while %x, %n {carried=1} : f32[4] {
      cond(%x_1: f32[4], %n_1: f32[]) { ... return %b }
      body(%x_2: f32[4], %n_2: f32[]) { ... return %y }
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from syntonic.ir.attrs import INT, AttrSpec
from syntonic.ir.registry import InferError, OpDef, Trait, register
from syntonic.ir.types import DType, TensorType

CONTROL = Trait.CONTROL
Types = tuple[TensorType, ...]


def _signature(region: Any) -> tuple[Types, Types]:
    return tuple(p.type for p in region.params), tuple(v.type for v in region.outputs)


def _fmt(types: Types) -> str:
    return "(" + ", ".join(map(str, types)) + ")"


def _infer_while(ts: Types, a: Mapping[str, Any]) -> Types:
    n = a["carried"]
    if not 1 <= n <= len(ts):
        raise InferError(f"while: carried={n} but the op has {len(ts)} operands (a loop "
                         "carries at least one value)", "attr")
    cond, body = a["__regions__"]
    carried = ts[:n]
    for name, region in (("cond", cond), ("body", body)):
        params, _ = _signature(region)
        if params != ts:
            raise InferError(
                f"while: the {name} region takes {_fmt(params)} but the operands are {_fmt(ts)}",
                "shape")
    _, cond_out = _signature(cond)
    if cond_out != (TensorType(DType.bool, ()),):
        raise InferError(
            f"while: the cond region must return one bool[] (got {_fmt(cond_out)})", "dtype",
            "reduce a per-row predicate first, e.g. sn.max(active) or (x < t).any()")
    _, body_out = _signature(body)
    if body_out != carried:
        raise InferError(
            f"while: the body returns {_fmt(body_out)} but the loop carries {_fmt(carried)}",
            "shape", "the body must return values of the same shapes and dtypes it receives")
    return carried


def _ref_while(*arrays: np.ndarray, regions: tuple[Any, ...], carried: int) -> tuple:
    from syntonic.ir.interpreter import interpret

    cond, body = regions
    state = list(arrays[:carried])
    consts = list(arrays[carried:])
    while bool(interpret(cond, *state, *consts)[0]):
        state = list(interpret(body, *state, *consts))
    return tuple(state)


register(
    OpDef(
        "while",
        (0, 1 << 20),
        (("carried", AttrSpec(INT)),),
        frozenset({CONTROL}),
        _infer_while,
        _ref_while,
        "Loop: while cond(carried, consts): carried = body(carried, consts).",
        regions=("cond", "body"),
    )
)


def _infer_cond(ts: Types, a: Mapping[str, Any]) -> Types:
    if not ts or ts[0] != TensorType(DType.bool, ()):
        got = str(ts[0]) if ts else "nothing"
        raise InferError(f"cond: the predicate must be bool[], got {got}", "dtype",
                         "reduce the predicate to one bool first")
    args = ts[1:]
    true, false = a["__regions__"]
    outs = []
    for name, region in (("true", true), ("false", false)):
        params, out = _signature(region)
        if params != args:
            raise InferError(
                f"cond: the {name} branch takes {_fmt(params)} but receives {_fmt(args)}",
                "shape")
        outs.append(out)
    if not outs[0]:
        raise InferError("cond: the branches must return at least one value", "attr")
    if outs[0] != outs[1]:
        raise InferError(
            f"cond: the branches return different types: {_fmt(outs[0])} and {_fmt(outs[1])}",
            "shape", "both branches must return values of the same shapes and dtypes")
    return outs[0]


def _ref_cond(pred: np.ndarray, *args: np.ndarray, regions: tuple[Any, ...]) -> tuple:
    from syntonic.ir.interpreter import interpret

    return tuple(interpret(regions[0] if bool(pred) else regions[1], *args))


register(
    OpDef(
        "cond",
        (1, 1 << 20),
        (),
        frozenset({CONTROL}),
        _infer_cond,
        _ref_cond,
        "Branch: true(args) if pred else false(args).",
        regions=("true", "false"),
    )
)
