"""Structured control flow in traced code: ``sn.while_loop`` and ``sn.cond``.

Both trace their functions once into closed regions of a ``while`` / ``cond`` op. Values
the functions close over (traced values of the enclosing function) become extra operands,
so closures work. Loop-carried values and branch results are pytrees.

Example::

    def step(carry):
        x, i = carry
        return sn.dhsr_cycle(x), i + 1

    x, n = sn.while_loop(lambda c: (sn.syntony(c[0]) < 0.99).all() & (c[1] < 13), step,
                         (x, 0))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from syntonic.frontend import pytree
from syntonic.frontend.api import eager
from syntonic.frontend.location import user_location
from syntonic.frontend.tracer import Trace, Tracer, emit_op, fail, lift, tracing
from syntonic.ir.errors import DTypeError, ShapeError, TraceError
from syntonic.ir.graph import Graph, Value
from syntonic.ir.types import DType, TensorType


def _trace_region(name: str, fn: Callable[..., Any], args: list[Tracer], tree: pytree.TreeDef,
                  call_as_tuple: bool) -> tuple[Trace, list[Tracer], Any]:
    """Trace fn(args) in a nested trace; return the trace, its params and fn's result."""
    sub = Trace(name, user_location())
    with tracing(sub):
        params = [Tracer(sub.builder.param(a.type, f"{name}{i}"), sub, a.weak)
                  for i, a in enumerate(args)]
        structured = pytree.unflatten(tree, params)
        result = fn(*structured) if call_as_tuple else fn(structured)
        leaves, out_tree = pytree.flatten(result)
        # a value of an enclosing trace returned as is becomes a capture of this region
        outs = [lift(v) if not isinstance(v, Tracer) or v.trace is sub else sub.capture(v)
                for v in leaves]
    return sub, params, (outs, out_tree)


def _close(sub: Trace, params: list[Tracer], outs: list[Tracer], consts: list[Tracer]
           ) -> Graph:
    """The region graph with params (own params..., every const in `consts` order)."""
    by_outer = {id(outer): inner for outer, inner in sub.captures}
    const_params: list[Value] = []
    for c in consts:
        inner = by_outer.get(id(c))
        const_params.append(inner.value if inner is not None else Value(c.type, "unused"))
    g = sub.builder.build([o.value for o in outs])
    return Graph(g.name, tuple(p.value for p in params) + tuple(const_params), g.ops,
                 g.outputs, g.loc)


def _union_captures(*subs: Trace) -> list[Tracer]:
    seen: dict[int, Tracer] = {}
    for s in subs:
        for outer, _ in s.captures:
            seen.setdefault(id(outer), outer)
    return list(seen.values())


@eager
def while_loop(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any], init: Any) -> Any:
    """Repeat ``carry = body_fn(carry)`` while ``cond_fn(carry)`` is true; return the carry.

    `init` is a pytree of arrays/numbers; `body_fn` must return the same structure, shapes
    and dtypes; `cond_fn` returns a scalar bool (reduce per-row conditions with
    ``.any()`` / ``.all()``). The loop compiles to one native loop; it is not
    differentiable (use a Python loop over a fixed range for that).
    """
    leaves, tree = pytree.flatten(init)
    if not leaves:
        raise fail(TraceError, "while_loop needs at least one carried value",
                   "pass the loop state as `init`")
    carried = [lift(x) for x in leaves]
    carried = [lift(x, x.dtype_, False) if x.weak else x for x in carried]
    cond_sub, cond_params, (cond_out, _) = _trace_region("cond", cond_fn, carried, tree, False)
    if len(cond_out) != 1 or cond_out[0].type != TensorType(DType.bool, ()):
        got = ", ".join(str(o.type) for o in cond_out)
        raise fail(DTypeError, f"while_loop: cond_fn must return one bool[] scalar, got {got}",
                   "reduce a per-row condition with .any() or .all(), e.g. (s < t).any()")
    body_sub, body_params, (body_out, body_tree) = _trace_region("body", body_fn, carried, tree,
                                                                 False)
    if body_tree != tree:
        raise fail(TraceError, "while_loop: body_fn returned a different structure than init",
                   "return the carry with the same nesting (tuple/list/dict) as init")
    fixed = []
    with tracing(body_sub):
        for i, (o, c) in enumerate(zip(body_out, carried)):
            if o.type != c.type:
                if o.shape == c.shape and o.weak:
                    o = lift(o, c.dtype_)
                else:
                    raise fail(DTypeError if o.shape == c.shape else ShapeError,
                               f"while_loop: body_fn returns {o.type} for carried value {i}, "
                               f"which is {c.type}",
                               "keep every carried value's shape and dtype fixed (cast with "
                               ".astype(...) if needed)")
            fixed.append(o)
    consts = _union_captures(cond_sub, body_sub)
    cond_g = _close(cond_sub, cond_params, cond_out, consts)
    body_g = _close(body_sub, body_params, fixed, consts)
    results = emit_op("while", carried + consts, {"carried": len(carried)}, (cond_g, body_g))
    return pytree.unflatten(tree, results)


@eager
def cond(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
         *operands: Any) -> Any:
    """``true_fn(*operands)`` if pred else ``false_fn(*operands)``, decided at run time.

    Both branches are traced and must return the same structure, shapes and dtypes. A
    Python bool `pred` simply calls one branch. Differentiable.
    """
    if isinstance(pred, (bool, np.bool_)):
        return true_fn(*operands) if pred else false_fn(*operands)
    p = lift(pred)
    if p.type != TensorType(DType.bool, ()):
        raise fail(DTypeError, f"cond: the predicate must be a bool[] scalar, got {p.type}",
                   "compare and reduce first, e.g. sn.cond((x > 0).all(), f, g, x)")
    leaves, tree = pytree.flatten(operands)
    args = [lift(x) for x in leaves]
    subs, params, outs, trees = [], [], [], []
    for name, fn in (("true", true_fn), ("false", false_fn)):
        sub, ps, (out, out_tree) = _trace_region(name, fn, args, tree, True)
        subs.append(sub)
        params.append(ps)
        outs.append(out)
        trees.append(out_tree)
    if trees[0] != trees[1] or [o.type for o in outs[0]] != [o.type for o in outs[1]]:
        a = ", ".join(str(o.type) for o in outs[0])
        b = ", ".join(str(o.type) for o in outs[1])
        raise fail(TraceError, f"cond: the branches return different types: ({a}) and ({b})",
                   "make both branches return the same structure, shapes and dtypes")
    if not outs[0]:
        raise fail(TraceError, "cond: the branches return nothing", "return a value")
    consts = _union_captures(*subs)
    regions = tuple(_close(s, ps, o, consts) for s, ps, o in zip(subs, params, outs))
    results = emit_op("cond", [p, *args, *consts], {}, regions)
    return pytree.unflatten(trees[0], results)
