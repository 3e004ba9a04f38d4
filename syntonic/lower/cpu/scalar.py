"""The CPU lowering table: one rule per elementwise registry op, on LLVM scalars.

``LOWERING[op](ctx, args, attrs, in_dtypes, out_dtype)`` returns the LLVM value of the op
applied to already-lowered scalar arguments. Semantics follow the registry's numpy
reference rules exactly (NaN propagation of ``maximum``, numpy's ``sign``, the defined
float->int ``cast``, logical shifts that give 0 outside ``[0, width)``...).
:data:`UNSUPPORTED` lists ops no CPU rule exists for, with the reason; a test checks that
every registry op is in one of the two (non-elementwise ops are handled by the kernel
structure: reductions, views, contraction).

Example::

    value = LOWERING["add"](ctx, [a, b], {}, (DType.f32, DType.f32), DType.f32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from llvmlite import ir

from syntonic.ir.types import DType
from syntonic.lower.cpu.math import MathLib
from syntonic.records import record

I1 = ir.IntType(1)
I8 = ir.IntType(8)

VALUE_TYPES: dict[DType, ir.Type] = {
    DType.bool: I1,
    DType.i32: ir.IntType(32),
    DType.i64: ir.IntType(64),
    DType.f16: ir.HalfType(),
    DType.f32: ir.FloatType(),
    DType.f64: ir.DoubleType(),
}
STORAGE_TYPES: dict[DType, ir.Type] = {**VALUE_TYPES, DType.bool: I8}


@record
class Ctx:
    """What a rule may use: the builder and the module's math library."""

    b: ir.IRBuilder
    math: MathLib

    def intrinsic(self, name: str, ty: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
        fnty = ir.FunctionType(ty, [ty] * len(args))
        return self.b.call(self.b.module.declare_intrinsic(name, [ty], fnty), list(args))


def const(dtype: DType, value: Any) -> ir.Constant:
    """An LLVM constant of `dtype` (bool as i1)."""
    ty = VALUE_TYPES[dtype]
    if dtype.is_bool:
        return ir.Constant(I1, 1 if value else 0)
    if dtype.is_int:
        return ir.Constant(ty, int(value))
    return ir.Constant(ty, float(value))


# Flags of float add/sub/mul: LLVM may fuse a multiply and an add into one FMA (rounded
# once; see the code generator's module docstring)
FLOAT_FLAGS: tuple[str, ...] = ("contract",)

Rule = Callable[[Ctx, list[ir.Value], dict[str, Any], tuple[DType, ...], DType], ir.Value]
LOWERING: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for n in names:
            LOWERING[n] = fn
        return fn

    return register


# ----------------------------------------------------------------- arithmetic


def _binop(float_op: str, int_op: str) -> Rule:
    def lower(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
        if out.is_float:  # contract: LLVM may fuse a multiply and an add into one FMA
            return getattr(ctx.b, float_op)(a[0], a[1], flags=FLOAT_FLAGS)
        return getattr(ctx.b, int_op)(a[0], a[1])

    return lower


LOWERING["add"] = _binop("fadd", "add")
LOWERING["sub"] = _binop("fsub", "sub")
LOWERING["mul"] = _binop("fmul", "mul")


@rule("div")
def _div(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    return ctx.b.fdiv(a[0], a[1])


@rule("neg")
def _neg(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    if out.is_float:
        return ctx.b.fneg(a[0])
    return ctx.b.sub(ir.Constant(a[0].type, 0), a[0])


@rule("abs")
def _abs(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    if out.is_float:
        return ctx.intrinsic("llvm.fabs", a[0].type, a)
    neg = ctx.b.sub(ir.Constant(a[0].type, 0), a[0])
    return ctx.b.select(ctx.b.icmp_signed("<", a[0], ir.Constant(a[0].type, 0)), neg, a[0])


@rule("floor")
def _floor(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    return ctx.intrinsic("llvm.floor", a[0].type, a)


@rule("sign")
def _sign(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    b, x = ctx.b, a[0]
    ty = x.type
    if out.is_float:
        one, zero = ir.Constant(ty, 1.0), ir.Constant(ty, 0.0)
        s = b.select(b.fcmp_ordered(">", x, zero), one, zero)
        s = b.select(b.fcmp_ordered("<", x, zero), ir.Constant(ty, -1.0), s)
        return b.select(b.fcmp_unordered("uno", x, x), x, s)  # nan stays nan
    zero = ir.Constant(ty, 0)
    s = b.select(b.icmp_signed(">", x, zero), ir.Constant(ty, 1), zero)
    return b.select(b.icmp_signed("<", x, zero), ir.Constant(ty, -1), s)


def _minmax_rule(which: str) -> Rule:
    def lower(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
        if out.is_float:  # numpy propagates NaN: llvm.maximum/minimum do too
            return ctx.intrinsic(f"llvm.{which}imum", a[0].type, a)
        if out.is_bool:
            return ctx.b.or_(a[0], a[1]) if which == "max" else ctx.b.and_(a[0], a[1])
        return ctx.intrinsic(f"llvm.s{which}", a[0].type, a)

    return lower


LOWERING["maximum"] = _minmax_rule("max")
LOWERING["minimum"] = _minmax_rule("min")


# --------------------------------------------------------------- transcendental


def _math_rule(name: str) -> Rule:
    def lower(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
        return ctx.b.call(ctx.math.get(name, a[0].type), a)

    return lower


for _name in ("exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "pow"):
    LOWERING[_name] = _math_rule(_name)


def _pow(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    # x ** 2 (a constant exponent, e.g. from `x ** 2`) is one multiply: x*x is the
    # correctly rounded square, which is what a correctly rounded pow returns (NaN, +-inf
    # and -0.0 included), and it vectorizes.
    y = a[1]
    if out in (DType.f32, DType.f64) and isinstance(y, ir.Constant) and y.constant == 2.0:
        return ctx.b.fmul(a[0], a[0])
    return ctx.b.call(ctx.math.get("pow", a[0].type), a)


LOWERING["pow"] = _pow


# ----------------------------------------------------------------- comparisons

_FCMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _compare_rule(name: str) -> Rule:
    def lower(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
        dt = ins[0]
        if dt.is_float:
            if name == "ne":  # numpy: nan != x is true (unordered)
                return ctx.b.fcmp_unordered("!=", a[0], a[1])
            return ctx.b.fcmp_ordered(_FCMP[name], a[0], a[1])
        if dt.is_bool:
            return ctx.b.icmp_unsigned(_FCMP[name], a[0], a[1])
        return ctx.b.icmp_signed(_FCMP[name], a[0], a[1])

    return lower


for _name in _FCMP:
    LOWERING[_name] = _compare_rule(_name)


@rule("select")
def _select(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    return ctx.b.select(a[0], a[1], a[2])


# ----------------------------------------------------------------- bitwise


LOWERING["bitand"] = lambda ctx, a, attrs, ins, out: ctx.b.and_(a[0], a[1])
LOWERING["bitor"] = lambda ctx, a, attrs, ins, out: ctx.b.or_(a[0], a[1])
LOWERING["bitxor"] = lambda ctx, a, attrs, ins, out: ctx.b.xor(a[0], a[1])


def _shift_rule(left: bool) -> Rule:
    def lower(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
        b = ctx.b
        x, y = a
        if out.is_bool:  # reference: any positive shift of a bool gives False
            return b.select(y, ir.Constant(I1, 0), x)
        width = x.type.width
        in_range = b.and_(b.icmp_signed(">=", y, ir.Constant(y.type, 0)),
                          b.icmp_signed("<", y, ir.Constant(y.type, width)))
        safe = b.select(in_range, y, ir.Constant(y.type, 0))
        shifted = b.shl(x, safe) if left else b.lshr(x, safe)
        return b.select(in_range, shifted, ir.Constant(x.type, 0))

    return lower


LOWERING["shl"] = _shift_rule(True)
LOWERING["shr"] = _shift_rule(False)


# ----------------------------------------------------------------- cast


@rule("cast")
def _cast(ctx: Ctx, a: list[ir.Value], attrs: dict, ins: tuple, out: DType) -> ir.Value:
    return convert(ctx.b, a[0], ins[0], out)


def resize_float(b: ir.IRBuilder, x: ir.Value, to: ir.Type) -> ir.Value:
    """fpext/fptrunc between float types; half <-> double goes through float."""
    if x.type == to:
        return x
    f32 = ir.FloatType()
    if isinstance(x.type, ir.HalfType) and isinstance(to, ir.DoubleType):
        return b.fpext(b.fpext(x, f32), to)
    if isinstance(x.type, ir.DoubleType) and isinstance(to, ir.HalfType):
        return b.fptrunc(b.fptrunc(x, f32), to)
    widths = {ir.HalfType: 16, ir.FloatType: 32, ir.DoubleType: 64}
    if widths[type(to)] > widths[type(x.type)]:
        return b.fpext(x, to)
    return b.fptrunc(x, to)


def convert(b: ir.IRBuilder, x: ir.Value, src: DType, dst: DType) -> ir.Value:
    """numpy ``astype`` semantics, with the registry's defined float->int rule."""
    to = VALUE_TYPES[dst]
    if src == dst:
        return x
    # f16 <-> anything but f32 goes through f32 (no compiler-rt libcalls in JIT code)
    if dst is DType.f16 and src is not DType.f32 and not src.is_bool:
        return b.fptrunc(convert(b, x, src, DType.f32), to)
    if src is DType.f16 and dst is not DType.f32 and not dst.is_bool and not dst.is_int:
        return convert(b, b.fpext(x, ir.FloatType()), DType.f32, dst)
    if dst.is_bool:
        if src.is_float:
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, 0.0))  # nan -> True
        return b.icmp_signed("!=", x, ir.Constant(x.type, 0))
    if src.is_bool:
        return b.uitofp(x, to) if dst.is_float else b.zext(x, to)
    if src.is_int and dst.is_int:
        return b.sext(x, to) if to.width > x.type.width else b.trunc(x, to)
    if src.is_int and dst.is_float:
        return b.sitofp(x, to)
    if src.is_float and dst.is_float:
        return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
    # float -> int: truncate; NaN, inf and out-of-range give 0 (registry rule): in range
    # means trunc(x) in [-2^(b-1), 2^(b-1)), bounds exact in the source type (+-inf in f16).
    with np.errstate(all="ignore"):
        hi = float(np.asarray(-float(np.iinfo(dst.np).min)).astype(src.np))
    trunc = b.module.declare_intrinsic("llvm.trunc", [x.type],
                                       ir.FunctionType(x.type, [x.type]))
    t = b.call(trunc, [x])
    ok = b.and_(b.fcmp_ordered(">=", t, ir.Constant(x.type, -hi)),
                b.fcmp_ordered("<", t, ir.Constant(x.type, hi)))
    if hi == float("inf"):  # f16: every finite value fits; -inf does not
        ok = b.and_(ok, b.fcmp_ordered("!=", t, ir.Constant(x.type, -hi)))
    safe = b.select(ok, t, ir.Constant(x.type, 0.0))
    if src is DType.f16:
        safe = b.fpext(safe, ir.FloatType())
    return b.select(ok, b.fptosi(safe, to), ir.Constant(to, 0))


# Elementwise registry ops without a CPU rule (none today) and why.
UNSUPPORTED: dict[str, str] = {}

# Non-elementwise ops are not lowered one by one: how the kernel structure covers them.
STRUCTURAL: dict[str, str] = {
    "sum": "Reduction", "mean": "Reduction", "max": "Reduction", "min": "Reduction",
    "prod": "Reduction", "broadcast": "View", "reshape": "View", "transpose": "View",
    "slice": "View", "pad": "View (masked)", "iota": "Iota node", "constant": "Const node / "
    "constant buffer", "matmul": "Contraction (numpy BLAS GEMM + native epilogue)",
    "while": "Opaque kernel (its regions run through the reference interpreter)",
    "cond": "Opaque kernel (its regions run through the reference interpreter)",
    "stop_gradient": "removed by canonicalization (an identity that only autodiff sees)",
}
