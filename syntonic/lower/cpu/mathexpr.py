"""Expression helper for the math library: an IRBuilder plus constants of one float type.

Shared by the f64 cores (:mod:`syntonic.lower.cpu.math`) and the f32 cores
(:mod:`syntonic.lower.cpu.math_f32`). Every method emits straight-line code (intrinsics,
selects), so functions built with it inline into kernel loops and vectorise.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
LOG2E = 1.4426950408889634

# Per float type: (mantissa bits, exponent mask, exponent bias, the integer type of its
# bits, the power of two that scales a subnormal to a normal number).
_FORMATS = {str(F64): (52, 0x7FF, 1023, I64, 54), str(F32): (23, 0xFF, 127, I32, 23)}


class Expr:
    """Thin expression helper over an IRBuilder (scalars of one float type, f64 default)."""

    def __init__(self, b: ir.IRBuilder, narrow: bool = False, ty: ir.Type = F64) -> None:
        self.b = b
        self.mod = b.module
        # narrow: the result is rounded to f32/f16, so series stop at ~2**-34 relative
        self.narrow = narrow
        self.ty = ty  # the float type of every value built with c()/intr()

    def terms(self, full: int, narrow: int) -> int:
        return narrow if self.narrow else full

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.ty, v)

    def i(self, v: int) -> ir.Constant:
        return ir.Constant(I64, v)

    def intr(self, name: str, *args: ir.Value) -> ir.Value:
        fnty = ir.FunctionType(self.ty, [self.ty] * len(args))
        fn = self.mod.declare_intrinsic(name, [self.ty], fnty)
        return self.b.call(fn, list(args))

    def fma(self, a: ir.Value, x: ir.Value, c: ir.Value) -> ir.Value:
        return self.intr("llvm.fma", a, x, c)

    def rint(self, x: ir.Value) -> ir.Value:
        return self.intr("llvm.rint", x)

    def floor(self, x: ir.Value) -> ir.Value:
        return self.intr("llvm.floor", x)

    def fabs(self, x: ir.Value) -> ir.Value:
        return self.intr("llvm.fabs", x)

    def copysign(self, x: ir.Value, s: ir.Value) -> ir.Value:
        return self.intr("llvm.copysign", x, s)

    def sel(self, cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(cond, a, b)

    def lt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered(">", a, b)

    def eq(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("==", a, b)

    def isnan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def horner(self, x: ir.Value, coeffs: Sequence[float]) -> ir.Value:
        """sum coeffs[k] * x**k, evaluated with fused multiply-adds."""
        acc = self.c(coeffs[-1])
        for ck in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(ck))
        return acc

    def clenshaw(self, t: ir.Value, coeffs: Sequence[float]) -> ir.Value:
        """sum coeffs[k] * T_k(t) for t in [-1, 1] (Chebyshev series)."""
        b1 = self.c(0.0)
        b2 = self.c(0.0)
        t2 = self.b.fmul(t, self.c(2.0))
        for ck in reversed(coeffs[1:]):
            b1, b2 = self.b.fsub(self.fma(t2, b1, self.c(ck)), b2), b1
        return self.b.fsub(self.fma(t, b1, self.c(coeffs[0])), b2)

    def pow2(self, n: ir.Value) -> ir.Value:
        """2**n for an integer n (of the float's bit width) in the normal exponent range,
        built from the exponent bits."""
        mant, _, bias, ity, _ = _FORMATS[str(self.ty)]
        bits = self.b.shl(self.b.add(n, ir.Constant(ity, bias)), ir.Constant(ity, mant))
        return self.b.bitcast(bits, self.ty)

    def split_sqrt2(self, x: ir.Value) -> tuple[ir.Value, ir.Value]:
        """(k, m) with x = m 2**k, m in [sqrt(1/2), sqrt(2)) and k an integer of the
        float's bit width, for a positive finite x (subnormals are scaled first)."""
        b = self.b
        mant, mask, bias, ity, sub = _FORMATS[str(self.ty)]
        ic = lambda v: ir.Constant(ity, v)  # noqa: E731
        tiny = self.lt(x, self.c(2.0 ** (1 - bias)))
        xs = self.sel(tiny, b.fmul(x, self.c(2.0**sub)), x)
        bits = b.bitcast(xs, ity)
        k = b.sub(b.and_(b.lshr(bits, ic(mant)), ic(mask)), ic(bias))
        k = b.add(k, b.select(tiny, ic(-sub), ic(0)))
        m = b.bitcast(b.or_(b.and_(bits, ic((1 << mant) - 1)), ic(bias << mant)), self.ty)
        big = self.gt(m, self.c(2.0**0.5))
        m = self.sel(big, b.fmul(m, self.c(0.5)), m)
        return b.add(k, b.zext(big, ity)), m

    def log_specials(self, x: ir.Value, y: ir.Value) -> ir.Value:
        """log's value y for finite positive x, with log's special cases of x applied:
        +inf -> +inf, 0 -> -inf, negative -> NaN, NaN -> itself."""
        y = self.sel(self.eq(x, self.c(float("inf"))), x, y)
        y = self.sel(self.eq(x, self.c(0.0)), self.c(float("-inf")), y)
        y = self.sel(self.lt(x, self.c(0.0)), self.c(float("nan")), y)
        return self.sel(self.isnan(x), x, y)

    def sincos_quadrant(self, x: ir.Value, finite: ir.Value, q: ir.Value, sin_r: ir.Value,
                        cos_r: ir.Value, cos: bool) -> ir.Value:
        """sin x (or cos x) from x = r + q pi/2 (q an integer, mod 4) and sin r, cos r:
        the quadrant picks and signs the kernel; sin keeps the sign of zero; a non-finite
        x gives NaN."""
        b = self.b
        qc = lambda v: ir.Constant(q.type, v)  # noqa: E731
        if cos:
            q = b.add(q, qc(1))
        use_cos = b.trunc(b.and_(q, qc(1)), I1)
        negate = b.trunc(b.lshr(b.and_(q, qc(2)), qc(1)), I1)
        v = self.sel(use_cos, cos_r, sin_r)
        v = self.sel(negate, b.fneg(v), v)
        if not cos:
            v = self.sel(self.eq(x, self.c(0.0)), x, v)  # keep the sign of zero
        return self.sel(finite, v, self.c(float("nan")))
