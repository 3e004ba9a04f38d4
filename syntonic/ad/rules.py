"""Reverse-mode (VJP) rules, one per differentiable op, written in IR ops.

A rule receives an :class:`Emitter` (a Builder that stamps the op's source location on
everything it creates), the forward op, its operand and result values (in the new graph)
and the cotangent of each result (``None`` = zero). It returns one cotangent per operand,
``None`` where the operand gets no gradient (integer/bool operands, conditions, indices).

Zero-gradient ops (documented behaviour): comparisons, ``floor``, ``sign``, ``iota``,
``constant``, casts to or from integer/bool types, and ``select``'s condition. Ties in
``maximum``/``minimum`` split the gradient equally; ``max``/``min`` reductions split it
equally between tied maxima. ``prod``'s rule divides by x (inf/nan at zeros).

Example::

    >>> sorted(VJP_RULES)[:3]
    ['abs', 'add', 'broadcast']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.ir.graph import Builder, Location, Op, Value
from syntonic.ir.types import DType, TensorType


class Emitter:
    """Builds gradient ops at one source location, with small numpy-like helpers."""

    def __init__(self, builder: Builder, loc: Location | None) -> None:
        self.b = builder
        self.loc = loc

    def op(self, name: str, *operands: Value, **attrs: Any) -> Value:
        return self.b.add(name, list(operands), attrs or None, self.loc)

    def full(self, type: TensorType, value: float) -> Value:
        c = self.op("constant", value=np.array(value, dtype=type.dtype.np))
        return c if type.shape == () else self.op("broadcast", c, shape=type.shape)

    def scalar_like(self, like: Value, value: float) -> Value:
        return self.full(like.type, value)

    def mul(self, a: Value, b: Value) -> Value:
        return self.op("mul", a, b)

    def add(self, a: Value, b: Value) -> Value:
        return self.op("add", a, b)

    def sub(self, a: Value, b: Value) -> Value:
        return self.op("sub", a, b)

    def div(self, a: Value, b: Value) -> Value:
        return self.op("div", a, b)

    def neg(self, a: Value) -> Value:
        return self.op("neg", a)

    def scale(self, a: Value, k: float) -> Value:
        return self.mul(a, self.scalar_like(a, k))

    def select(self, c: Value, a: Value, b: Value) -> Value:
        return self.op("select", c, a, b)

    def zeros_like(self, v: Value) -> Value:
        return self.scalar_like(v, 0.0)

    def sum_to(self, g: Value, shape: tuple[int, ...]) -> Value:
        """Sum `g` over the axes numpy broadcasting added to reach g.shape from `shape`."""
        out_shape = g.type.shape
        lead = len(out_shape) - len(shape)
        axes = list(range(lead)) + [
            lead + i for i, d in enumerate(shape) if d == 1 and out_shape[lead + i] != 1
        ]
        if axes:
            g = self.op("sum", g, axes=tuple(axes), keepdims=True)
        if g.type.shape != shape:
            g = self.op("reshape", g, shape=shape)
        return g

    def unreduce(self, g: Value, x_type: TensorType, axes: Sequence[int]) -> Value:
        """Broadcast a reduced cotangent back over the reduced `axes` of x."""
        keep = tuple(1 if i in axes else d for i, d in enumerate(x_type.shape))
        if g.type.shape != keep:
            g = self.op("reshape", g, shape=keep)
        if keep != x_type.shape:
            g = self.op("broadcast", g, shape=x_type.shape)
        return g


Cts = list[Value | None]
Rule = Callable[[Emitter, Op, Sequence[Value], Sequence[Value], Sequence[Value | None]], Cts]
VJP_RULES: dict[str, Rule] = {}

# Ops whose operands never receive a gradient.
ZERO_GRADIENT = frozenset({"stop_gradient",
                           "eq", "ne", "lt", "le", "gt", "ge", "floor", "sign", "iota",
                           "bitand", "bitor", "bitxor", "shl", "shr",
                           "constant", "golden_weights"})


def vjp(*names: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for n in names:
            VJP_RULES[n] = fn
        return fn

    return register


def _single(fn: Callable[[Emitter, Value, Value, Value, Op], Value | None]) -> Rule:
    """Adapt a one-operand, one-result rule ``(E, x, y, g, op) -> dx``."""

    def rule(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
             gs: Sequence[Value | None]) -> Cts:
        return [fn(E, xs[0], ys[0], gs[0], op)]

    return rule


# ----------------------------------------------------------------- elementwise

vjp("neg")(_single(lambda E, x, y, g, op: E.neg(g)))
vjp("abs")(_single(lambda E, x, y, g, op: E.mul(g, E.op("sign", x))))
vjp("exp")(_single(lambda E, x, y, g, op: E.mul(g, y)))
vjp("log")(_single(lambda E, x, y, g, op: E.div(g, x)))
vjp("sqrt")(_single(lambda E, x, y, g, op: E.div(E.scale(g, 0.5), y)))
# d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
vjp("rsqrt")(_single(lambda E, x, y, g, op: E.mul(E.scale(g, -0.5), E.mul(y, E.mul(y, y)))))
vjp("sin")(_single(lambda E, x, y, g, op: E.mul(g, E.op("cos", x))))
vjp("cos")(_single(lambda E, x, y, g, op: E.neg(E.mul(g, E.op("sin", x)))))
# tanh' = 1 - y^2
vjp("tanh")(_single(lambda E, x, y, g, op: E.mul(g, E.sub(E.scalar_like(y, 1.0), E.mul(y, y)))))
# sigmoid' = y (1 - y)
vjp("sigmoid")(_single(
    lambda E, x, y, g, op: E.mul(g, E.mul(y, E.sub(E.scalar_like(y, 1.0), y)))))
# erf' = 2/sqrt(pi) exp(-x^2)
vjp("erf")(_single(lambda E, x, y, g, op: E.mul(
    E.scale(g, 2.0 / math.sqrt(math.pi)), E.op("exp", E.neg(E.mul(x, x))))))


@vjp("cast")
def _cast(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
          gs: Sequence[Value | None]) -> Cts:
    if not (xs[0].dtype.is_float and ys[0].dtype.is_float):
        return [None]
    return [E.op("cast", gs[0], dtype=xs[0].dtype)]


@vjp("add", "sub")
def _add_sub(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
             gs: Sequence[Value | None]) -> Cts:
    g = gs[0]
    return [g, g if op.name == "add" else E.neg(g)]


@vjp("mul")
def _mul(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
         gs: Sequence[Value | None]) -> Cts:
    a, b = xs
    return [E.mul(gs[0], b), E.mul(gs[0], a)]


@vjp("div")
def _div(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
         gs: Sequence[Value | None]) -> Cts:
    # d(a/b) = da/b - a db/b^2 = da/b - y db/b
    a, b = xs
    ga = E.div(gs[0], b)
    return [ga, E.neg(E.mul(ga, ys[0]))]


@vjp("pow")
def _pow(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
         gs: Sequence[Value | None]) -> Cts:
    # d(a^b)/da = b a^(b-1);  d(a^b)/db = y log(a), with log(0) replaced by 0 (as JAX does)
    a, b = xs
    g = gs[0]
    ga = E.mul(g, E.mul(b, E.op("pow", a, E.sub(b, E.scalar_like(b, 1.0)))))
    zero = E.zeros_like(a)
    safe = E.select(E.op("eq", a, zero), E.scalar_like(a, 1.0), a)
    gb = E.mul(g, E.mul(ys[0], E.op("log", safe)))
    return [ga, gb]


@vjp("maximum", "minimum")
def _extremum(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
              gs: Sequence[Value | None]) -> Cts:
    a, b = xs
    g = gs[0]
    wins = E.op("gt" if op.name == "maximum" else "lt", a, b)
    tie = E.op("eq", a, b)
    half = E.scale(g, 0.5)
    zero = E.zeros_like(g)
    ga = E.select(wins, g, E.select(tie, half, zero))
    gb = E.select(wins, zero, E.select(tie, half, g))
    return [ga, gb]


@vjp("select")
def _select(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
            gs: Sequence[Value | None]) -> Cts:
    c = xs[0]
    g = gs[0]
    zero = E.zeros_like(g)
    return [None, E.select(c, g, zero), E.select(c, zero, g)]


# -------------------------------------------------------------------- layout


@vjp("broadcast")
def _broadcast(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
               gs: Sequence[Value | None]) -> Cts:
    return [E.sum_to(gs[0], xs[0].type.shape)]


@vjp("reshape")
def _reshape(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
             gs: Sequence[Value | None]) -> Cts:
    return [E.op("reshape", gs[0], shape=xs[0].type.shape)]


@vjp("transpose")
def _transpose(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
               gs: Sequence[Value | None]) -> Cts:
    perm = dict(op.attrs)["perm"]
    inverse = tuple(int(i) for i in np.argsort(perm))
    return [E.op("transpose", gs[0], perm=inverse)]


@vjp("slice")
def _slice(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
           gs: Sequence[Value | None]) -> Cts:
    a = dict(op.attrs)
    low, high, interior = [], [], []
    for b, s, d, n in zip(a["start"], a["step"], xs[0].type.shape, ys[0].type.shape):
        used = (n - 1) * s + 1 if n else 0
        low.append(b if n else 0)
        interior.append(s - 1)
        high.append(d - (b if n else 0) - used)
    return [E.op("pad", gs[0], low=tuple(low), high=tuple(high), interior=tuple(interior))]


@vjp("pad")
def _pad(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
         gs: Sequence[Value | None]) -> Cts:
    a = dict(op.attrs)
    shape = xs[0].type.shape
    start = tuple(a["low"])
    step = tuple(i + 1 for i in a["interior"])
    stop = tuple(lo + (d - 1) * st + 1 if d else lo for lo, d, st in zip(start, shape, step))
    return [E.op("slice", gs[0], start=start, stop=stop, step=step)]


# ---------------------------------------------------------------- reductions


@vjp("sum", "mean")
def _sum_mean(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
              gs: Sequence[Value | None]) -> Cts:
    axes = dict(op.attrs)["axes"]
    g = E.unreduce(gs[0], xs[0].type, axes)
    if op.name == "mean":
        count = math.prod(xs[0].type.shape[a] for a in axes)
        g = E.scale(g, 1.0 / count) if count else g
    return [g]


@vjp("max", "min")
def _max_min(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
             gs: Sequence[Value | None]) -> Cts:
    axes = dict(op.attrs)["axes"]
    x = xs[0]
    y = E.unreduce(ys[0], x.type, axes)
    hit = E.op("cast", E.op("eq", x, y), dtype=x.dtype)
    ties = E.unreduce(E.op("sum", hit, axes=tuple(axes), keepdims=True), x.type, axes)
    g = E.unreduce(gs[0], x.type, axes)
    return [E.div(E.mul(g, hit), ties)]


@vjp("prod")
def _prod(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
          gs: Sequence[Value | None]) -> Cts:
    axes = dict(op.attrs)["axes"]
    x = xs[0]
    g = E.unreduce(gs[0], x.type, axes)
    y = E.unreduce(ys[0], x.type, axes)
    return [E.div(E.mul(g, y), x)]


# --------------------------------------------------------------- contraction


def _swap_last(E: Emitter, v: Value) -> Value:
    r = v.type.rank
    return E.op("transpose", v, perm=tuple(range(r - 2)) + (r - 1, r - 2))


@vjp("matmul")
def _matmul(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
            gs: Sequence[Value | None]) -> Cts:
    a, b = xs
    g = gs[0]
    return [E.op("matmul", g, _swap_last(E, b)), E.op("matmul", _swap_last(E, a), g)]


def is_differentiable_type(t: TensorType) -> bool:
    return t.dtype in (DType.f16, DType.f32, DType.f64)


# ------------------------------------------------------------------ control flow


@vjp("cond")
def _cond(E: Emitter, op: Op, xs: Sequence[Value], ys: Sequence[Value],
          gs: Sequence[Value | None]) -> Cts:
    # The gradient is a cond over the branches' own VJP graphs: each takes (args...,
    # cotangents...) and returns one cotangent per arg.
    from syntonic.ad.transform import vjp_graph
    from syntonic.ir.graph import Graph

    args = list(xs[1:])
    branches = []
    for region in op.regions:
        dr = vjp_graph(region, list(range(len(args))), name=f"{region.name}_vjp")
        n_out = len(region.outputs)
        branches.append(Graph(dr.name, dr.params, dr.ops, dr.outputs[n_out:], dr.loc))
    grads = E.b.add_op("cond", [xs[0], *args, *gs], None, E.loc, None, tuple(branches))
    return [None, *grads.results]
