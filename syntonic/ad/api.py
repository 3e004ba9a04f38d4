"""User-facing autodiff: ``sn.grad``, ``sn.value_and_grad``, ``sn.vjp``.

They work inside ``@sn.jit`` (the gradient becomes part of the traced IR and goes through
the same passes and backends) and on numpy arrays outside it. Arguments and results may be
pytrees (nested tuples, lists and dicts of arrays).

Example::

    def loss(w, x):
        return sn.mean((x @ w) ** 2)

    dw = sn.grad(loss)(w, x)                       # same pytree structure as w
    value, (dw, dx) = sn.value_and_grad(loss, argnums=(0, 1))(w, x)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.ad.transform import DifferentiationError, copy_op, vjp_graph
from syntonic.frontend import pytree
from syntonic.frontend.location import user_location, user_message
from syntonic.frontend.trace import run_eagerly
from syntonic.frontend.tracer import Trace, Tracer, current_trace, lift, tracing
from syntonic.ir.errors import TraceError
from syntonic.ir.graph import Location, Value


def _trace_sub(fn: Callable[..., Any], args: tuple[Any, ...], diff_leaves: set[int]
               ) -> tuple[Any, list[Tracer], list[Any], pytree.TreeDef, Any]:
    """Trace `fn` in a nested trace whose params are the array leaves of `args`."""
    outer = current_trace()
    assert outer is not None
    code = getattr(fn, "__code__", None)
    loc = Location(code.co_filename, code.co_firstlineno) if code else None
    sub = Trace(getattr(fn, "__name__", "f"), loc)
    flat, tree = pytree.flatten(args)
    outer_vals: list[Tracer] = []
    with tracing(sub):
        inner_args = []
        for i, leaf in enumerate(flat):
            if i in diff_leaves or isinstance(leaf, (Tracer, np.ndarray, np.generic)):
                t = lift(leaf) if not isinstance(leaf, Tracer) else leaf
                outer_vals.append(t)
                inner_args.append(Tracer(sub.builder.param(t.type, f"a{i}"), sub, t.weak))
            else:
                inner_args.append(leaf)
        result = fn(*pytree.unflatten(tree, inner_args))
    return sub, outer_vals, inner_args, tree, result


def _inline(sub_graph: Any, inputs: Sequence[Tracer]) -> list[Tracer]:
    """Replay `sub_graph` into the active trace with `inputs` for its parameters."""
    trace = current_trace()
    env: dict[Value, Value] = {}
    for p, t in zip(sub_graph.params, inputs):
        if t.trace is not trace:
            t = lift(t)  # captured from further out
        env[p] = t.value
    for op in sub_graph.ops:
        copy_op(trace.builder, op, env)
    return [Tracer(env[v], trace) for v in sub_graph.outputs]


def _normalize_argnums(argnums: int | Sequence[int], nargs: int, name: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -nargs <= n < nargs:
            raise TraceError(user_message(
                f"{name}: argnums {argnums!r} is out of range for {nargs} positional arguments",
                user_location(), "argnums counts positional arguments from 0"))
    return tuple(n % nargs for n in nums)


def _vjp_core(fn: Callable[..., Any], args: tuple[Any, ...], argnums: tuple[int, ...],
              has_aux: bool, name: str) -> tuple[Any, Any, Callable[[Any], Any]]:
    """Trace fn, build its VJP graph; return (primal out, aux, pullback) in the outer trace."""
    offsets = []
    flat_count = 0
    for a in args:
        n = len(pytree.flatten(a)[0])
        offsets.append(range(flat_count, flat_count + n))
        flat_count += n
    diff = {j for i in argnums for j in offsets[i]}
    sub, outer_vals, _, tree, result = _trace_sub(fn, args, diff)
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TraceError(user_message(
                f"{name}(has_aux=True) expects `{sub.name}` to return (output, aux)",
                user_location(), "return a 2-tuple, or drop has_aux"))
        out, aux = result
    else:
        out, aux = result, None
    out_leaves, out_tree = pytree.flatten(out)
    with tracing(sub):
        out_vals = [lift(v) for v in out_leaves]
        aux_leaves, aux_tree = pytree.flatten(aux)
        aux_vals = [lift(v) for v in aux_leaves]
    for v in out_vals:
        if not v.dtype_.is_float:
            raise TraceError(user_message(
                f"{name}: `{sub.name}` returned a {v.type} value; gradients need floating "
                "outputs", user_location(), "cast the output with .astype('f32')"))
    graph = sub.builder.build([v.value for v in out_vals] + [v.value for v in aux_vals])
    n_params = len(sub.builder.params)
    explicit = len(outer_vals)
    # param index of every leaf of the differentiated arguments (params follow leaf order)
    param_of_leaf = {}
    k = 0
    flat_args, _ = pytree.flatten(args)
    for j, leaf in enumerate(flat_args):
        if j in diff or isinstance(leaf, (Tracer, np.ndarray, np.generic)):
            param_of_leaf[j] = k
            k += 1
    wrt = [param_of_leaf[j] for j in sorted(diff)]
    for j in sorted(diff):
        t = outer_vals[param_of_leaf[j]]
        if not t.dtype_.is_float:
            raise TraceError(user_message(
                f"{name}: argument leaf {j} is {t.type}; gradients are taken with respect to "
                "floating-point arguments only", user_location(),
                "cast the argument to f32/f64, or leave it out of argnums"))
    try:
        dgraph = vjp_graph(graph, wrt, name=f"{sub.name}_vjp")
    except DifferentiationError as exc:
        raise TraceError(user_message(f"{name}: {exc}", user_location(), None)) from None
    captured = [outer for outer, _ in sub.captures]
    inputs = outer_vals + captured
    assert len(inputs) == n_params and explicit <= n_params
    n_out = len(out_vals)
    # The forward values are inlined once; the pullback inlines the VJP graph when called.
    primal = _inline(graph, inputs)
    primal_aux_vals = primal[n_out:]

    def pullback(cotangents: list[Tracer]) -> list[Tracer]:
        from syntonic.frontend import api

        # aux outputs do not affect the gradient: their cotangents are zero
        aux_cts = [api.zeros_like(v) for v in primal_aux_vals]
        results = _inline(dgraph, inputs + list(cotangents) + aux_cts)
        return results[n_out + len(aux_vals):]

    primal_out = pytree.unflatten(out_tree, primal[:n_out])
    primal_aux = pytree.unflatten(aux_tree, primal_aux_vals) if has_aux else None
    return primal_out, primal_aux, (pullback, out_tree, tree, sorted(diff), argnums, args)


def _grads_tree(grads: list[Tracer], diff: list[int], args: tuple[Any, ...],
                argnums: tuple[int, ...]) -> list[Any]:
    """Rebuild one pytree of gradients per differentiated argument."""
    by_leaf = dict(zip(diff, grads))
    out = []
    start = 0
    for i, a in enumerate(args):
        leaves, tree = pytree.flatten(a)
        if i in argnums:
            out.append(pytree.unflatten(tree, [by_leaf[start + j] for j in range(len(leaves))]))
        start += len(leaves)
    order = sorted(set(argnums))
    return [out[order.index(i)] for i in argnums]


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """A function returning ``(value, grad)`` (``((value, aux), grad)`` with has_aux).

    `fn` must return a floating scalar. `grad` has the structure of ``args[argnums]``
    (a tuple of them when `argnums` is a tuple).
    Example: ``loss, dw = sn.value_and_grad(loss_fn)(w, x)``.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        if current_trace() is None:
            return run_eagerly(wrapper, args, {})
        nums = _normalize_argnums(argnums, len(args), "value_and_grad")
        value, aux, (pullback, out_tree, _, diff, _, _) = _vjp_core(
            fn, args, nums, has_aux, "value_and_grad")
        leaves = pytree.flatten(value)[0]
        if len(leaves) != 1 or leaves[0].shape != ():
            shapes = ", ".join(str(v.type) for v in leaves)
            raise TraceError(user_message(
                f"grad needs `{getattr(fn, '__name__', 'f')}` to return one scalar, got "
                f"{shapes or 'nothing'}", user_location(),
                "reduce the output (e.g. .sum() or sn.mean(...)), or use sn.vjp for "
                "non-scalar outputs"))
        from syntonic.frontend import api

        grads = pullback([api.ones_like(leaves[0])])
        trees = _grads_tree(grads, diff, args, nums)
        g = trees[0] if isinstance(argnums, int) else tuple(trees)
        return ((value, aux) if has_aux else value), g

    return wrapper


def grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of a scalar-valued `fn`. Example: ``dw = sn.grad(loss)(w, x)``."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        (value_aux, g) = vg(*args)
        return (g, value_aux[1]) if has_aux else g

    return wrapper


def vjp(fn: Callable[..., Any], *primals: Any, has_aux: bool = False) -> Any:
    """``(out, pullback)``: `pullback(cotangent)` returns one cotangent per primal.

    Inside a trace only (use it within ``@sn.jit``). Example::

        y, pullback = sn.vjp(f, x)
        (dx,) = pullback(np.ones_like(y))
    """
    if current_trace() is None:
        raise TraceError(user_message("sn.vjp works inside a jitted function", user_location(),
                                      "call it inside @sn.jit, or use sn.grad"))
    nums = tuple(range(len(primals)))
    out, aux, (pullback, out_tree, _, diff, _, _) = _vjp_core(fn, primals, nums, has_aux, "vjp")

    def pull(cotangent: Any) -> tuple[Any, ...]:
        leaves, tree = pytree.flatten(cotangent)
        outs = pytree.flatten(out)[0]
        if tree != out_tree or len(leaves) != len(outs):
            raise TraceError(user_message("vjp: the cotangent must have the output's "
                                          "structure", user_location(), None))
        cts = [lift(c, o.dtype_) for c, o in zip(leaves, outs)]
        grads = pullback(cts)
        return tuple(_grads_tree(grads, diff, primals, nums))

    return (out, pull, aux) if has_aux else (out, pull)
