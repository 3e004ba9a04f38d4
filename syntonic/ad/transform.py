"""Reverse-mode differentiation of a Graph into a Graph.

``vjp_graph(g, wrt)`` returns a graph taking ``g``'s parameters followed by one cotangent
per output, and returning ``g``'s outputs followed by the cotangent of each parameter in
``wrt``. The result is ordinary IR: it prints, verifies, and goes through the same passes
and backends as any traced function.

Example::

    >>> dg = vjp_graph(g, wrt=[0])
    >>> interpret(dg, x, np.ones_like(y))   # (y, dL/dx)
"""

from __future__ import annotations

from collections.abc import Sequence

from syntonic.ad.rules import VJP_RULES, ZERO_GRADIENT, Emitter, is_differentiable_type
from syntonic.ir.errors import IRError
from syntonic.ir.graph import Builder, Graph, Op, Value
from syntonic.ir.printer import op_text
from syntonic.ir.registry import get_op


class DifferentiationError(IRError):
    """An op on the differentiated path has no reverse rule."""


def vjp_graph(g: Graph, wrt: Sequence[int], name: str | None = None) -> Graph:
    """The reverse-mode derivative of `g` with respect to the parameters `wrt`."""
    b = Builder(name or f"{g.name}_vjp", g.loc)
    env: dict[Value, Value] = {}
    for p in g.params:
        env[p] = b.param(p.type, p.hint)
    seeds = [b.param(v.type, f"ct{i}") for i, v in enumerate(g.outputs)]
    for op in g.ops:
        copy_op(b, op, env)

    needed = _on_path(g, [g.params[i] for i in wrt])
    cts: dict[Value, Value] = {}
    for v, seed in zip(g.outputs, seeds):
        if is_differentiable_type(v.type):
            _accumulate(b, cts, v, seed)
    for op in reversed(g.ops):
        gs = [cts.get(r) for r in op.results]
        if all(c is None for c in gs) or not any(x in needed for x in op.operands):
            continue
        if op.name in ZERO_GRADIENT:
            continue
        E = Emitter(b, op.loc)
        gs = [c if c is not None else E.zeros_like(env[r]) for c, r in zip(gs, op.results)]
        rule = VJP_RULES.get(op.name)
        if rule is None and op.name == "while":
            raise DifferentiationError(
                "cannot differentiate through a while_loop"
                + (f" (the loop at {op.loc})" if op.loc else "")
                + ": its trip count is only known at run time; use a Python loop over a "
                "fixed range (it is unrolled) to differentiate an iteration")
        if rule is None:
            rule = _decomposed_rule(op)
        new_cts = rule(E, op, [env[x] for x in op.operands], [env[r] for r in op.results], gs)
        for x, ct in zip(op.operands, new_cts):
            if ct is not None and x in needed and is_differentiable_type(x.type):
                _accumulate(b, cts, x, ct)

    grads = []
    for i in wrt:
        p = g.params[i]
        ct = cts.get(p)
        if ct is None:
            ct = Emitter(b, g.loc).zeros_like(env[p])
        grads.append(ct)
    return b.build([env[v] for v in g.outputs] + grads)


def copy_op(b: Builder, op: Op, env: dict[Value, Value]) -> None:
    """Append a copy of `op` to `b`, reading operands through `env`; map its results."""
    new = b.add_op(op.name, [env[x] for x in op.operands], dict(op.attrs), op.loc,
                   tuple(r.type for r in op.results), op.regions)
    for old, fresh in zip(op.results, new.results):
        env[old] = fresh


def _accumulate(b: Builder, cts: dict[Value, Value], v: Value, ct: Value) -> None:
    if ct.type != v.type:  # a rule bug, never user error
        raise AssertionError(f"cotangent {ct.type} for value of type {v.type}")
    prev = cts.get(v)
    cts[v] = ct if prev is None else b.add("add", [prev, ct], None, None)


def _on_path(g: Graph, sources: list[Value]) -> set[Value]:
    """Values that depend on any of `sources` (only these need cotangents)."""
    live = set(sources)
    for op in g.ops:
        if any(x in live for x in op.operands):
            live.update(op.results)
    return live


def _decomposed_rule(op: Op):  # noqa: ANN202 - returns a Rule
    """Differentiate an op without its own rule through its decomposition, if it has one."""
    opdef = get_op(op.name)
    decompose = getattr(opdef, "decompose", None)
    if decompose is None:
        raise DifferentiationError(
            f"no gradient rule for `{op.name}`"
            + (f" at {op.loc}" if op.loc else "")
            + f"\n  {op_text(op)}"
        )

    def rule(E: Emitter, op: Op, xs, ys, gs):  # noqa: ANN001, ANN202
        sub = Builder(f"{op.name}_decomposed", op.loc)
        params = [sub.param(x.type) for x in xs]
        outs = decompose(sub, op, params)
        inner = sub.build(list(outs) if isinstance(outs, (list, tuple)) else [outs])
        dg = vjp_graph(inner, list(range(len(xs))))
        # inline dg: its params are (operands..., cotangents...)
        env = dict(zip(dg.params, list(xs) + list(gs)))
        for inner_op in dg.ops:
            copy_op(E.b, inner_op, env)
        return [env[v] for v in dg.outputs[len(inner.outputs):]]

    return rule
