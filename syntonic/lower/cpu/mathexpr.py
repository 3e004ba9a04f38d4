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
        """2**n for an i64 n in [-1022, 1023] (built from the exponent bits)."""
        bits = self.b.shl(self.b.add(n, self.i(1023)), self.i(52))
        return self.b.bitcast(bits, F64)
