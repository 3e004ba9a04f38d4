"""Canonicalization: small algebraic ``pattern -> replacement`` rules, each exact.

Every rule keeps the interpreter's results bit for bit (NaN payloads aside), so it is
safe on any input: rules that are only true for real numbers are not here (``x*0 -> 0``
fails for inf/NaN; ``x+0 -> x`` fails for x = -0.0 with +0.0; float reassociation
changes rounding). The algebra of each rule is in its comment. Constants go to the
right of commutative ops; splat constants become ``broadcast`` of a scalar constant, the
form later stages recognise as an immediate.

Example::

    >>> print(canonicalize(parse('''func @f(%x: f32[4]) -> (f32[4]) {
    ...   %0 = constant {value=dense<1.0>} : f32[4]
    ...   %1 = mul %0, %x : f32[4]
    ...   %2 = neg %1 : f32[4]
    ...   %3 = neg %2 : f32[4]
    ...   return %3
    ... }''')).text(locs=False))
    func @f(%x: f32[4]) -> (f32[4]) {
      return %x
    }
"""

from __future__ import annotations

import numpy as np

from syntonic.ir.graph import Graph, Op, Value
from syntonic.ir.registry import Trait
from syntonic.passes.rewrite import Rewriter, Rule, rewrite, rule

# ------------------------------------------------------------ operand order


@rule(traits=[Trait.COMMUTATIVE])
def constants_to_the_right(r: Rewriter, op: Op) -> Value | None:
    # c op x -> x op c   (op commutative: exact)
    x, y = op.operands
    if r.constant(x) is not None and r.constant(y) is None:
        return r.emit(op.name, [y, x], op.attr, op.loc)
    return None


# ------------------------------------------------------------ identities


@rule("stop_gradient")
def drop_stop_gradient(r: Rewriter, op: Op) -> Value | None:
    # stop_gradient(x) -> x   (an identity; it only matters to autodiff, done at trace time)
    return op.operands[0]


def _zero_addend(r: Rewriter, v: Value) -> bool:
    """v is a zero that can be added without changing any x (floats: only -0.0)."""
    if v.dtype.is_float:
        return r.is_splat(v, 0.0, negative_zero=True)
    return r.is_splat(v, 0)


@rule("add")
def add_zero(r: Rewriter, op: Op) -> Value | None:
    # x + 0 -> x   (integers; floats only for -0.0, since -0.0 + +0.0 = +0.0)
    x, y = op.operands
    if _zero_addend(r, y):
        return x
    if _zero_addend(r, x):
        return y
    return None


@rule("sub")
def sub_zero(r: Rewriter, op: Op) -> Value | None:
    # x - 0 -> x   (integers; floats for +0.0: x - +0.0 = x, also for x = -0.0)
    x, y = op.operands
    zero = r.is_splat(y, 0.0, negative_zero=False) if y.dtype.is_float else r.is_splat(y, 0)
    return x if zero else None


@rule("mul")
def mul_one(r: Rewriter, op: Op) -> Value | None:
    # x * 1 -> x
    x, y = op.operands
    if r.is_splat(y, 1):
        return x
    if r.is_splat(x, 1):
        return y
    return None


@rule("mul")
def mul_minus_one(r: Rewriter, op: Op) -> Value | None:
    # x * -1 -> neg(x)   (floats: sign flip; integers: wraps like neg)
    x, y = op.operands
    if not y.dtype.is_bool and r.is_splat(y, -1):
        return r.emit("neg", [x], None, op.loc)
    return None


@rule("div")
def div_one(r: Rewriter, op: Op) -> Value | None:
    # x / 1 -> x ;  x / -1 -> neg(x)
    x, y = op.operands
    if r.is_splat(y, 1):
        return x
    if r.is_splat(y, -1):
        return r.emit("neg", [x], None, op.loc)
    return None


@rule("div")
def div_power_of_two(r: Rewriter, op: Op) -> Value | None:
    # x / 2^k -> x * 2^-k   (both are the correctly rounded value of x * 2^-k)
    x, y = op.operands
    c = r.splat(y)
    if c is None or not np.isfinite(c) or c == 0:
        return None
    mantissa, _ = np.frexp(c)
    inv = np.asarray(1, dtype=y.dtype.np) / c
    if abs(mantissa) != 0.5 or inv == 0 or not np.isfinite(inv) or inv * c != 1:
        return None
    scale = r.emit("broadcast", [r.constant_like(np.asarray(inv), op.loc)], {"shape": y.shape},
                   op.loc)
    return r.emit("mul", [x, scale], None, op.loc)


@rule("neg")
def double_negation(r: Rewriter, op: Op) -> Value | None:
    # neg(neg(x)) -> x
    inner = r.producer(op.operands[0])
    return inner.operands[0] if inner is not None and inner.name == "neg" else None


@rule("abs")
def abs_of_sign_change(r: Rewriter, op: Op) -> Value | None:
    # abs(neg(x)) -> abs(x) ;  abs(abs(x)) -> abs(x)
    inner = r.producer(op.operands[0])
    if inner is None:
        return None
    if inner.name == "neg":
        return r.emit("abs", [inner.operands[0]], None, op.loc)
    if inner.name == "abs":
        return op.operands[0]
    return None


@rule("sub")
def sub_of_negation(r: Rewriter, op: Op) -> Value | None:
    # x - neg(y) -> x + y   (IEEE subtraction is addition of the negation)
    x, y = op.operands
    inner = r.producer(y)
    if inner is not None and inner.name == "neg":
        return r.emit("add", [x, inner.operands[0]], None, op.loc)
    return None


@rule("add")
def add_of_negation(r: Rewriter, op: Op) -> Value | None:
    # x + neg(y) -> x - y ;  neg(y) + x -> x - y
    x, y = op.operands
    for a, b in ((x, y), (y, x)):
        inner = r.producer(b)
        if inner is not None and inner.name == "neg":
            return r.emit("sub", [a, inner.operands[0]], None, op.loc)
    return None


@rule("add", "mul")
def reassociate_integer_constants(r: Rewriter, op: Op) -> Value | None:
    # (x + c1) + c2 -> x + (c1 + c2) ;  (x * c1) * c2 -> x * (c1 * c2)
    # integers only: wrapping two's-complement arithmetic is associative, floats are not
    x, c2 = op.operands
    if not x.dtype.is_int or r.constant(c2) is None:
        return None
    inner = r.producer(x)
    if inner is None or inner.name != op.name or r.constant(inner.operands[1]) is None:
        return None
    c = r.emit(op.name, [inner.operands[1], c2], None, op.loc)
    return r.emit(op.name, [inner.operands[0], c], None, op.loc)


@rule("select")
def select_known(r: Rewriter, op: Op) -> Value | None:
    # select(c, x, x) -> x ;  select(true, x, y) -> x ;  select(false, x, y) -> y
    c, x, y = op.operands
    if x is y:
        return x
    s = r.splat(c)
    if s is None:
        return None
    return x if bool(s) else y


@rule("cast")
def cast_to_same_type(r: Rewriter, op: Op) -> Value | None:
    # cast(x: T, T) -> x
    x = op.operands[0]
    return x if x.dtype is op.attr["dtype"] else None


# ------------------------------------------------------------ layout identities


@rule("broadcast", "reshape", "transpose", "slice", "pad")
def layout_identity(r: Rewriter, op: Op) -> Value | None:
    # broadcast/reshape/transpose/slice/pad that changes nothing -> x
    x = op.operands[0]
    if x.type != op.results[0].type:
        return None
    a = op.attr
    if op.name == "transpose" and tuple(a["perm"]) != tuple(range(len(x.shape))):
        return None
    if op.name == "slice" and any(s != 1 and d > 1 for s, d in zip(a["step"], x.shape)):
        return None
    if op.name == "pad" and any(a["interior"]) and any(d > 1 for d in x.shape):
        return None
    return x


@rule("broadcast")
def broadcast_of_broadcast(r: Rewriter, op: Op) -> Value | None:
    # broadcast(broadcast(x, s1), s2) -> broadcast(x, s2)
    inner = r.producer(op.operands[0])
    if inner is not None and inner.name == "broadcast":
        return r.emit("broadcast", [inner.operands[0]], op.attr, op.loc)
    return None


@rule("constant")
def splat_constant(r: Rewriter, op: Op) -> Value | None:
    # constant [c, c, ..., c] : T[S] -> broadcast(constant c : T[], S)
    arr = op.attr["value"].array
    if arr.ndim == 0 or arr.size == 0:
        return None
    flat = arr.reshape(-1)
    if flat.tobytes() != flat[:1].tobytes() * flat.size:
        return None
    scalar = r.constant_like(flat[0].reshape(()), op.loc)
    return r.emit("broadcast", [scalar], {"shape": arr.shape}, op.loc)


# ------------------------------------------------------------ reductions


@rule(traits=[Trait.REDUCTION])
def reduce_unit_axes(r: Rewriter, op: Op) -> Value | None:
    # max/min/prod over axes of size 1 -> reshape(x)  (one element: the element itself)
    # sum too for integers; not for floats: numpy's sum adds +0.0 (so -0.0 -> +0.0)
    x = op.operands[0]
    if any(x.shape[a] != 1 for a in op.attr["axes"]):
        return None
    if op.name not in ("max", "min", "prod") and not (op.name == "sum" and x.dtype.is_int):
        return None
    out = op.results[0]
    return x if out.shape == x.shape else r.emit("reshape", [x], {"shape": out.shape}, op.loc)


RULES: tuple[Rule, ...] = (
    drop_stop_gradient,
    constants_to_the_right,
    add_zero,
    sub_zero,
    mul_one,
    mul_minus_one,
    div_one,
    div_power_of_two,
    double_negation,
    abs_of_sign_change,
    sub_of_negation,
    add_of_negation,
    reassociate_integer_constants,
    select_known,
    cast_to_same_type,
    layout_identity,
    broadcast_of_broadcast,
    splat_constant,
    reduce_unit_axes,
)


def canonicalize(g: Graph) -> Graph:
    """Apply the exact algebraic rules of :data:`RULES` until none fires.

    Guarantees: the interpreter's results are unchanged bit for bit (NaN payloads
    aside); no op is added except to replace a more expensive one (``x*-1 -> neg x``,
    ``x/2^k -> x*2^-k``) or to put a splat constant in ``broadcast(scalar)`` form.
    """
    return rewrite(g, RULES)


__all__ = ["RULES", "canonicalize"]
