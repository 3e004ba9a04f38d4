"""f32 cores of the math library: computed in f32 arithmetic, branch-free.

8 lanes per AVX2 register instead of 4: Cody-Waite range reduction with fused
multiply-adds, Cephes' single-precision minimax polynomials (exp/tanh and erf: our own
fits), special cases as selects. sin/cos reduce modulo pi/2 in f64 (exact products with
pieces of 2/pi) and evaluate their polynomials in f32. The measured accuracy of every
function is the table in :mod:`syntonic.lower.cpu.math`;
:class:`~syntonic.lower.cpu.math.MathLib` picks these cores for f32 through
:data:`F32_CORES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from syntonic.lower.cpu.mathexpr import F32, F64, I32, LOG2E, Expr

# (e**r - 1 - r) / r**2 on |r| <= ln2/2 to degree 4 (Cephes' expf takes degree 5), fitted
# for the relative error of e**r - 1 (tanh needs it near 0): 1.7e-8 with the coefficients
# rounded to f32 (Lawson-reweighted least squares on 4000 Chebyshev nodes,
# numpy.linalg.lstsq, mpmath reference)
EXPM1_F32 = (0.5, 0.1666654348373413, 0.04166682809591293, 0.0083664795383811,
             0.0013905279338359833)
LN2_HI_F32 = 0.693145751953125  # 16 significant bits: n * LN2_HI_F32 is exact
LN2_LO_F32 = 1.428606765330187e-06
LOG_F32 = (3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1,
           1.4249322787e-1, -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1,
           7.0376836292e-2)  # (log(1+f) - f + f**2/2) / f**3 on sqrt(1/2)-1 <= f < sqrt(2)-1

# Least-squares fits in f64 (relative weights, Lawson-reweighted towards minimax, 4000
# Chebyshev nodes; numpy.linalg.lstsq), coefficients rounded to f32:
ERF_C0_HI, ERF_C0_LO = 1.128379225730896, -5.8635382771399236e-08  # 2/sqrt(pi) = hi + lo
ERF_SMALL_F32 = (-0.37612637877464294, 0.11283751577138901, -0.02686152793467045,
                 0.005204104818403721, -0.0008156634867191315, 8.358556078746915e-05)
# (erf(x)/x - 2/sqrt(pi)) / x**2 in t = x**2 on [0, 1]: 3.5e-8 relative
ERF_LARGE_F32 = (0.3059529960155487, 0.3822837769985199, -0.17239490151405334,
                 0.043767042458057404, 0.023337863385677338, -0.04694566875696182,
                 0.04307528957724571, -0.02689528837800026, 0.005811932031065226,
                 0.025932552292943, -0.036744602024555206)
# erfc(x) * exp(x**2) in v = 1/x - 0.625 on x in [1, 4]: 1.4e-8 relative


SHIFTER = 12582912.0  # 1.5 * 2**23: adding it rounds |v| < 2**22 to an integer
SHIFTER_BITS = 0x4B400000  # its bits: v + SHIFTER has the bits SHIFTER_BITS + rint(v)


def _round_shifted(e: Expr, x: ir.Value, k: float) -> tuple[ir.Value, ir.Value]:
    """(n, n as an i32) for n = rint(x * k), |n| < 2**22, from fma(x, k, 1.5 * 2**23):
    the exact product rounded once, and the integer read from the sum's low bits rather
    than converted (cheaper than rint + fptosi, and a NaN gives some integer, not LLVM's
    poison, so NaN needs no select before it: it propagates through the arithmetic)."""
    b = e.b
    shifted = e.fma(x, e.c(k), e.c(SHIFTER))
    n = b.fsub(shifted, e.c(SHIFTER))
    return n, b.sub(b.bitcast(shifted, I32), I32(SHIFTER_BITS))


def _expm1_reduced(e: Expr, x: ir.Value, n: ir.Value) -> ir.Value:
    """e**r - 1 for r = x - n ln2 (Cody-Waite with FMA: n * LN2_HI_F32 is exact), |r| <=
    ~ln2/2, by the degree-6 polynomial r + r**2 P(r)."""
    b = e.b
    neg_n = b.fneg(n)
    r = e.fma(neg_n, e.c(LN2_HI_F32), x)
    r = e.fma(neg_n, e.c(LN2_LO_F32), r)
    r2 = b.fmul(r, r)
    c = [e.c(v) for v in EXPM1_F32]
    # Estrin's scheme: a shorter dependency chain than Horner's (W1, which is
    # latency-bound, ran 5-10 % faster)
    lo = e.fma(c[1], r, c[0])
    hi = e.fma(c[4], r2, e.fma(c[3], r, c[2]))
    return e.fma(e.fma(hi, r2, lo), r2, r)


def _exp_f32(e: Expr, x: ir.Value) -> ir.Value:
    """e**x = 2**n e**r, times 2**n in two factors so that subnormal results are rounded
    once. x is clamped to [-104, 89] (e**-104 < 2**-150 rounds to 0, e**89 > FLT_MAX
    overflows to inf); a NaN passes the clamps and propagates."""
    b = e.b
    xs = e.sel(e.lt(x, e.c(-104.0)), e.c(-104.0), x)
    xs = e.sel(e.gt(xs, e.c(89.0)), e.c(89.0), xs)
    n, ni = _round_shifted(e, xs, LOG2E)  # in [-150, 129]
    p = b.fadd(_expm1_reduced(e, xs, n), e.c(1.0))
    n1 = b.ashr(ni, I32(1))
    return b.fmul(b.fmul(p, e.pow2(n1)), e.pow2(b.sub(ni, n1)), name="exp")


def _log_f32(e: Expr, x: ir.Value) -> ir.Value:
    """log x = k ln2 + log(1+f) with 1+f in [sqrt(1/2), sqrt(2)); subnormals scaled first."""
    b = e.b
    k, m = e.split_sqrt2(x)
    f = b.fsub(m, e.c(1.0))  # exact (Sterbenz)
    z = b.fmul(f, f)
    kf = b.sitofp(k, F32)
    y = b.fmul(b.fmul(f, z), e.horner(f, LOG_F32))
    y = e.fma(kf, e.c(LN2_LO_F32), y)
    y = e.fma(z, e.c(-0.5), y)
    return e.log_specials(x, e.fma(kf, e.c(LN2_HI_F32), b.fadd(f, y)))


def _tanh_f32(e: Expr, x: ir.Value) -> ir.Value:
    """tanh x = m / (m + 2) with m = e**2|x| - 1 (expm1), and x's sign.

    One formula over the whole range, no select between a small-|x| polynomial and an
    exp form: m = 2**n (1 + q) - 1 = fma(2**n, q, 2**n - 1) with q = e**r - 1 keeps full
    relative accuracy as |x| -> 0 (n = 0: m = q), down through the subnormals (m = 2|x|,
    the quotient |x| exactly). |x| is clamped to 9.5 (tanh(9.5) rounds to 1), so
    0 <= n <= 28; a NaN passes the clamp and propagates.
    """
    b = e.b
    a = e.fabs(x)
    a = e.sel(e.gt(a, e.c(9.5)), e.c(9.5), a)
    u = b.fadd(a, a)
    n, ni = _round_shifted(e, u, LOG2E)
    s = e.pow2(ni)
    m = e.fma(s, _expm1_reduced(e, u, n), b.fsub(s, e.c(1.0)))
    return e.copysign(b.fdiv(m, b.fadd(m, e.c(2.0))), x)  # tanh(-0.0) = -0.0


def _sigmoid_f32(e: Expr, x: ir.Value) -> ir.Value:
    b = e.b
    ex = _exp_f32(e, b.fneg(e.fabs(x)))  # in (0, 1]: no overflow, subnormal results kept
    num = e.sel(e.lt(x, e.c(0.0)), ex, e.c(1.0))
    return b.fdiv(num, b.fadd(e.c(1.0), ex))


# 2/pi = sum(TWO_OVER_PI_26[k] * 2**(-26(k+1))): consecutive, truncated 26-bit pieces, so
# an f32 times a piece is exact in f64 and pieces below a product's integer bits vanish
# mod 4 (computed from pi to 400 bits with integer arithmetic (Machin's formula)).
TWO_OVER_PI_26 = (0x28BE60D, 0x2E4E441, 0x14A7F09, 0x357D1F5, 0xD37703, 0x1B62959,
                  0x24F10E4)
SIN_F32 = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)  # (sin r - r) / r**3
COS_F32 = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)
# (cos r - 1 + r**2/2) / r**4; both Cephes, in z = r**2 on |r| <= pi/4


def _reduce_pio2_f32(e64: Expr, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) with x = r + (quadrant + 4k) pi/2, |r| <= ~pi/4, r as an f64, for a
    finite f32 x (Payne-Hanek with four pieces of 2/pi chosen by x's exponent).

    x * piece is exact in f64; the pieces whose products are multiples of 4 are skipped
    (s of them, s = (exponent - 25) // 26, by selects: s <= 3 for f32), so four products
    cover the 24 + 2 integer bits and ~50 fraction bits that matter. The two leading ones
    are reduced mod 4 exactly; r = ((t0 - j) + t1 + p2 + p3) pi/2 with j the nearest
    integer loses no leading bits.
    """
    b = e64.b
    xd = b.fpext(x, F64)
    ex = b.sub(b.and_(b.lshr(b.bitcast(x, I32), I32(23)), I32(0xFF)), I32(127))
    skip = b.sdiv(b.sub(ex, I32(25)), I32(26))
    skip = b.select(b.icmp_signed("<", skip, I32(0)), I32(0), skip)
    pieces = [c * 2.0 ** (-26 * (k + 1)) for k, c in enumerate(TWO_OVER_PI_26)]
    prods = []
    for k in range(4):
        piece = e64.c(pieces[k + 3])
        for s in (2, 1, 0):
            piece = b.select(b.icmp_signed("==", skip, I32(s)), e64.c(pieces[k + s]), piece)
        prods.append(b.fmul(xd, piece))

    def mod4(v: ir.Value) -> ir.Value:
        return e64.fma(e64.rint(b.fmul(v, e64.c(0.25))), e64.c(-4.0), v)

    t0, t1 = mod4(prods[0]), mod4(prods[1])
    j = e64.rint(b.fadd(b.fadd(t0, t1), prods[2]))  # p2 may reach +-0.5: it counts
    frac = b.fadd(b.fadd(b.fadd(b.fsub(t0, j), t1), prods[2]), prods[3])
    r = b.fmul(frac, e64.c(math.pi / 2))
    return r, b.and_(b.fptosi(j, I32), I32(3))


def _sincos_f32(e: Expr, x: ir.Value, cos: bool) -> ir.Value:
    """sin/cos: exact-ish reduction in f64 (above), polynomials in f32."""
    b = e.b
    finite = e.lt(e.fabs(x), e.c(math.inf))
    xs = e.sel(finite, x, e.c(0.0))  # inf/NaN would make the reduction poison
    r64, q = _reduce_pio2_f32(Expr(b, narrow=True, ty=F64), xs)
    r = b.fptrunc(r64, F32)
    z = b.fmul(r, r)
    sin_r = e.fma(b.fmul(e.horner(z, SIN_F32), z), r, r)
    cos_r = e.fma(b.fmul(z, z), e.horner(z, COS_F32), e.fma(z, e.c(-0.5), e.c(1.0)))
    return e.sincos_quadrant(x, finite, q, sin_r, cos_r, cos)


def _erf_f32(e: Expr, x: ir.Value) -> ir.Value:
    """erf x: x (c0 + x**2 Q(x**2)) for |x| < 1; else 1 - e**-x**2 G(1/x), G = erfc(x) e**x**2 (the
    rounding of x**2 only perturbs erfc <= 0.16 relatively, ~0.2 ulp of erf); erf(x)
    rounds to +-1 beyond |x| = 3.92, so |x| is clamped to 4 there."""
    b = e.b
    a = e.fabs(x)
    t = b.fmul(x, x)
    tail = e.fma(t, e.horner(t, ERF_SMALL_F32), e.c(ERF_C0_LO))
    small = e.fma(a, e.c(ERF_C0_HI), b.fmul(a, tail))  # 2/sqrt(pi) in two parts
    al = e.sel(e.lt(a, e.c(1.0)), e.c(1.0), a)
    al = e.sel(e.gt(al, e.c(4.0)), e.c(4.0), al)  # NaN stays NaN
    v = b.fsub(b.fdiv(e.c(1.0), al), e.c(0.625))
    g = e.horner(v, ERF_LARGE_F32)
    ex = _exp_f32(e, b.fneg(b.fmul(al, al)))
    large = e.fma(b.fneg(ex), g, e.c(1.0))
    y = e.sel(e.lt(a, e.c(1.0)), small, large)  # NaN takes `large`: NaN
    return e.copysign(y, x)


def _rsqrt_f32(e: Expr, x: ir.Value) -> ir.Value:
    """1/sqrt(x): two correctly rounded operations (<= 1.5 ulp)."""
    return e.b.fdiv(e.c(1.0), e.intr("llvm.sqrt", x))


F32_CORES: dict[str, Callable[..., ir.Value]] = {
    "sin": lambda e, x: _sincos_f32(e, x, cos=False),
    "cos": lambda e, x: _sincos_f32(e, x, cos=True),
    "erf": _erf_f32,
    "exp": _exp_f32,
    "log": _log_f32,
    "tanh": _tanh_f32,
    "sigmoid": _sigmoid_f32,
    "rsqrt": _rsqrt_f32,
}
