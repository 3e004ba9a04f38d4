"""Tracing a Python function into a Graph: array specs, argument leaves, eager runs.

Example::

    >>> g = trace_function(lambda x: x * 2.0, [spec("f32[4]")])
    >>> print(g)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.frontend import pytree
from syntonic.frontend.location import located, reraise_filtered, user_message
from syntonic.frontend.tracer import Trace, Tracer, constant, tracing
from syntonic.ir.errors import DTypeError, IRError, SyntonicError, TraceError
from syntonic.ir.graph import Location
from syntonic.ir.interpreter import interpret
from syntonic.ir.types import DType, TensorType
from syntonic.records import record


@record(frozen=True, slots=True)
class ArraySpec:
    """Stands in for an array when tracing: ``sn.spec("f32[4,248]")``."""

    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> np.dtype:
        return self.type.dtype.np

    def __repr__(self) -> str:
        return f"spec({self.type})"


def spec(type_or_shape: str | Sequence[int], dtype: Any = "f32") -> ArraySpec:
    """An array stand-in for tracing. ``sn.spec("f32[4,248]")`` or ``sn.spec((4, 248), "f32")``."""
    if isinstance(type_or_shape, str):
        return ArraySpec(TensorType.parse(type_or_shape))
    return ArraySpec(TensorType(DType.coerce(dtype), tuple(int(d) for d in type_or_shape)))


@record(frozen=True, slots=True)
class _Scalar:
    """A Python scalar argument: traced as a weakly typed 0-d parameter."""

    dtype: DType


_SCALAR_TYPES = {bool: _Scalar(DType.bool), int: _Scalar(DType.i64), float: _Scalar(DType.f64)}


def _leaf_type(leaf: Any) -> tuple[TensorType, bool]:
    if isinstance(leaf, ArraySpec):
        return leaf.type, False
    if type(leaf) in _SCALAR_TYPES:
        return TensorType(_SCALAR_TYPES[type(leaf)].dtype, ()), True
    return TensorType.of(np.asarray(leaf)), False


def _output_value(v: Any, fname: str, loc: Location | None = None) -> Any:
    """The IR value of a returned leaf: a traced value, or a constant located at `loc`
    (the function's ``def`` line)."""
    if isinstance(v, Tracer):
        return v.value
    if isinstance(v, (bool, int, float, np.ndarray, np.generic)):
        with located(loc):
            return constant(v).value
    raise TraceError(
        user_message(f"`{fname}` returned a {type(v).__name__}; jitted functions return "
                     "arrays, numbers, or tuples/lists/dicts of them", None)
    )


def _positional(sig: inspect.Signature, values: dict[str, Any]) -> list[Any]:
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name in values:
            out.append(values[p.name])
        elif p.kind is p.VAR_POSITIONAL and p.name in values:
            out.extend(values[p.name])
    return out


def _keywords(sig: inspect.Signature, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name in values:
            out[p.name] = values[p.name]
        elif p.kind is p.VAR_KEYWORD and p.name in values:
            out.update(values[p.name])
    return out


def run_eagerly(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run an sn.* function on concrete inputs: trace it with arrays as params, interpret."""
    flat, tree = pytree.flatten((args, kwargs))
    trace = Trace(getattr(fn, "__name__", "eager"), None)
    params: list[Any] = []
    leaves: list[Any] = []
    with tracing(trace):
        traced = []
        for leaf in flat:
            if isinstance(leaf, (np.ndarray, np.generic)):
                arr = np.asarray(leaf)
                try:
                    t = TensorType.of(arr)
                except IRError as exc:
                    raise DTypeError(f"{getattr(fn, '__name__', 'op')}: {exc}") from None
                traced.append(Tracer(trace.builder.param(t), trace))
                params.append(arr)
            else:
                traced.append(leaf)
        a, k = pytree.unflatten(tree, traced)
        try:
            result = fn(*a, **k)
        except SyntonicError as exc:
            reraise_filtered(exc)
        out_leaves, out_tree = pytree.flatten(result)
        values = [_output_value(v, getattr(fn, "__name__", "op")) for v in out_leaves]
        leaves = values
    graph = trace.builder.build(leaves)
    outs = interpret(graph, *params)
    return pytree.unflatten(out_tree, list(outs))
