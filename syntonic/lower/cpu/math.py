"""Scalar math library in LLVM IR: exp, log, sin, cos, tanh, sigmoid, erf, sqrt, rsqrt, pow.

Every function is straight-line code (selects, no branches) so LLVM inlines it into the
kernel loop and vectorises the loop.

**f32** exp, log, tanh, sigmoid, erf, sin, cos and rsqrt compute in f32 arithmetic (8
lanes per AVX2 register): Cody-Waite range reduction with fused multiply-adds and Cephes'
single-precision minimax polynomials (erf: our own fits, see ``ERF_*_F32``); sin/cos
reduce modulo pi/2 in f64 with four pieces of 2/pi chosen by the exponent (exact products,
valid over the whole f32 range) and evaluate their polynomials in f32. Special cases
(NaN, +-inf, +-0, overflow to inf, underflow through the subnormals to 0) are selects and
match numpy's float32 functions exactly. pow on f32 still widens to f64, computes there
and rounds once (it needs log in extra precision). Measured max error on f32,
in ulps of the result, against the float64 value (``tests/lower/cpu/test_math.py``: 2**20
random bit patterns over the whole f32 range plus every f32 near the thresholds; 0.5 =
correctly rounded), AMD EPYC znver3, LLVM 22:

    function  f32 max ulp  computed in
    exp       0.97         f32
    log       0.75         f32
    tanh      1.14         f32
    sigmoid   1.97         f32
    rsqrt     1.47         f32 (1/sqrt: two roundings)
    sqrt      0.5          f32 (llvm.sqrt, correctly rounded)
    erf       1.07         f32
    sin, cos  1.54         f32 polynomials, f64 reduction (also near k pi/2, k < 2**100)
    pow       0.5          f64

**f64** (and f16, which widens to f64) cores compute in f64 (f16 rounds twice at worst by
a negligible margin); accuracy in ``tests/lower/cpu/test_math.py``'s docstring.
Polynomials of the f64 cores are Taylor series or Chebyshev interpolants computed in 400-bit
arithmetic (see ``_CONSTANTS_SOURCE``).

Argument reduction for sin/cos: f16 inputs (computed in f64) use an exact multi-word
product with 2/pi (valid over the whole f32 range); f64 inputs use a three-part Cody-Waite
reduction, accurate for |x| < 2**30 (beyond that the error grows; documented in the test).

Example::

    mod = ir.Module()
    lib = MathLib(mod)
    fn = lib.get("exp", ir.FloatType())     # declares @sn.exp.f32 (+ its f64 core)
    builder.call(fn, [x])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I64 = ir.IntType(64)

FUNCTIONS = ("exp", "log", "sin", "cos", "tanh", "sigmoid", "erf", "sqrt", "rsqrt", "pow")
ARITY = {"pow": 2}

_CONSTANTS_SOURCE = """
Generated once with mpmath at 400-bit precision:
  ERF_SMALL  = Chebyshev coefficients of erf(x)/x in t = x^2 on [0, 4]
  ERFC_LARGE = Chebyshev coefficients of x*exp(x^2)*erfc(x) in u = 1/x on [1/6, 1/2]
  PIO2_*     = pi/2 split into two 30-bit heads and a 53-bit tail
  TWO_OVER_PI_CHUNKS = 2/pi split into 26-bit pieces (x_f32 * piece is exact in f64)
"""

ERF_SMALL = (
    0.7415552820424018, -0.30107107338659495, 0.06899483068983156, -0.013916271264722188,
    0.0024207995224334636, -0.0003658639685848086, 4.862098443231905e-05,
    -5.749256558035685e-06, 6.113243578434765e-07, -5.8991015312958435e-08,
    5.2070090920686485e-09, -4.2329758799655433e-10, 3.188113506649175e-11,
    -2.2361550188326843e-12, 1.467329847991085e-13, -9.044001985381747e-15,
    5.254813715470919e-16, -2.887426122284945e-17, 1.5047851875576326e-18,
)
ERFC_LARGE = (
    0.5353732068438819, -0.023155412139469353, -0.0016392210759605804,
    0.00022227996277607014, -8.78999954273534e-06, -8.810395716790812e-07,
    1.8418972159404269e-07, -1.4087247661320117e-08, -2.163390848477303e-10,
    2.1064317309527063e-10, -2.979314476337555e-11, 1.8153634618564103e-12,
    1.4524503191869517e-13, -5.475907229823179e-14, 7.611811795943645e-15,
    -4.896370723709231e-16, -4.1418075055923383e-17, 1.7339829257820862e-17,
    -2.7536912315296703e-18, 2.353854474535437e-19,
)
PIO2_1, PIO2_2, PIO2_3 = 1.570796325802803, 9.920935791635221e-10, 5.170182981794105e-19
TWO_OVER_PI_CHUNKS = (
    0.6366197615861893, 1.0781392001391055e-08, 7.166494800120787e-17,
    1.110942804150016e-24, 1.0181664256805226e-32, 1.30694482387879e-40,
    8.452990338021245e-49, 1.0513359822085892e-56,
)
LN2_HI = 0.6931471803691238  # 32 significant bits: e * LN2_HI is exact for |e| < 2**21
LN2_LO = 1.9082149292705877e-10
LOG2E = 1.4426950408889634


class _E:
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


# ---------------------------------------------------------------------- f64 cores


def _exp(e: _E, x: ir.Value) -> ir.Value:
    b = e.b
    xs = e.sel(e.isnan(x), e.c(0.0), x)
    xs = e.sel(e.lt(xs, e.c(-746.0)), e.c(-746.0), xs)
    xs = e.sel(e.gt(xs, e.c(710.0)), e.c(710.0), xs)
    n = e.rint(b.fmul(xs, e.c(LOG2E)))
    neg_n = b.fneg(n)
    r = e.fma(neg_n, e.c(LN2_HI), xs)
    r = e.fma(neg_n, e.c(LN2_LO), r)
    p = e.horner(r, [1.0 / math.factorial(k) for k in range(e.terms(14, 10))])
    ni = b.fptosi(n, I64)
    n1 = b.ashr(ni, e.i(1))
    n2 = b.sub(ni, n1)  # two factors so results down to the subnormals round once
    y = b.fmul(b.fmul(p, e.pow2(n1)), e.pow2(n2), name="exp")
    return e.sel(e.isnan(x), x, y)


def _log(e: _E, x: ir.Value) -> ir.Value:
    b = e.b
    tiny = e.lt(x, e.c(2.0**-1022))
    xs = e.sel(tiny, b.fmul(x, e.c(2.0**54)), x)
    bits = b.bitcast(xs, I64)
    ex = b.sub(b.and_(b.lshr(bits, e.i(52)), e.i(0x7FF)), e.i(1023))
    ex = b.add(ex, b.select(tiny, e.i(-54), e.i(0)))
    mbits = b.or_(b.and_(bits, e.i(0x000FFFFFFFFFFFFF)), e.i(0x3FF0000000000000))
    m = b.bitcast(mbits, F64)
    big = e.gt(m, e.c(math.sqrt(2.0)))
    m = e.sel(big, b.fmul(m, e.c(0.5)), m)
    ex = b.add(ex, b.zext(big, I64))
    f = b.fsub(m, e.c(1.0))
    s = b.fdiv(f, b.fadd(f, e.c(2.0)))  # log(m) = 2 atanh(s)
    z = b.fmul(s, s)
    poly = e.horner(z, [1.0 / (2 * k + 3) for k in range(e.terms(11, 6))])
    s2 = b.fmul(s, e.c(2.0))
    logm = e.fma(b.fmul(s2, z), poly, s2)
    ef = b.sitofp(ex, F64)
    y = e.fma(ef, e.c(LN2_HI), e.fma(ef, e.c(LN2_LO), logm))
    y = e.sel(e.eq(x, e.c(math.inf)), x, y)
    y = e.sel(e.eq(x, e.c(0.0)), e.c(-math.inf), y)
    y = e.sel(e.lt(x, e.c(0.0)), e.c(math.nan), y)
    return e.sel(e.isnan(x), x, y)


def _sincos_kernels(e: _E, r: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(sin r, cos r) for |r| <= pi/4 (Taylor series to r**17 / r**20)."""
    b = e.b
    z = b.fmul(r, r)
    n = e.terms(8, 5)
    sp = e.horner(z, [(-1) ** (k + 1) / math.factorial(2 * k + 3) for k in range(n)])
    sin_r = e.fma(b.fmul(r, z), sp, r)
    cp = e.horner(z, [(-1) ** k / math.factorial(2 * k + 4) for k in range(n)])
    hz = b.fmul(z, e.c(0.5))
    w = b.fsub(e.c(1.0), hz)
    tail = e.fma(b.fmul(z, z), cp, b.fsub(b.fsub(e.c(1.0), w), hz))
    cos_r = b.fadd(w, tail)
    return sin_r, cos_r


def _reduce_f64(e: _E, xs: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) with x = r + quadrant*pi/2; Cody-Waite, good for |x| < 2**30."""
    b = e.b
    j = e.rint(b.fmul(xs, e.c(2.0 / math.pi)))
    nj = b.fneg(j)
    r = e.fma(nj, e.c(PIO2_1), xs)
    r = e.fma(nj, e.c(PIO2_2), r)
    r = e.fma(nj, e.c(PIO2_3), r)
    return r, _quadrant(e, j)


def _reduce_wide(e: _E, xs: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) for an f64 holding an f32 value, exact-ish over the whole f32 range.

    x * (2/pi) is summed piecewise mod 4: each x*chunk is exact in f64 (24 + 26 bits), and
    its remainder mod 4 (in [-2, 2]) is exact too, so huge x lose nothing.
    """
    b = e.b
    f = e.c(0.0)
    for chunk in TWO_OVER_PI_CHUNKS:
        t = b.fmul(xs, e.c(chunk))
        t = e.fma(e.rint(b.fmul(t, e.c(0.25))), e.c(-4.0), t)
        f = b.fadd(f, t)
    f = e.fma(e.rint(b.fmul(f, e.c(0.25))), e.c(-4.0), f)
    j = e.rint(f)
    r = b.fmul(b.fsub(f, j), e.c(math.pi / 2))
    return r, _quadrant(e, j)


def _quadrant(e: _E, j: ir.Value) -> ir.Value:
    """j mod 4 as an i64 (computed in floating point: j may exceed the i64 range)."""
    q = e.fma(e.floor(e.b.fmul(j, e.c(0.25))), e.c(-4.0), j)
    return e.b.fptosi(q, I64)


def _sincos(e: _E, x: ir.Value, cos: bool, wide: bool) -> ir.Value:
    b = e.b
    finite = e.lt(e.fabs(x), e.c(math.inf))
    xs = e.sel(finite, x, e.c(0.0))
    r, q = _reduce_wide(e, xs)
    if not wide:  # f64: Cody-Waite where it is accurate, the bounded wide form beyond
        r_cw, q_cw = _reduce_f64(e, xs)
        near = e.lt(e.fabs(xs), e.c(2.0**30))
        r = e.sel(near, r_cw, r)
        q = b.select(near, q_cw, q)
    if cos:
        q = b.add(q, e.i(1))
    sin_r, cos_r = _sincos_kernels(e, r)
    use_cos = b.trunc(b.and_(q, e.i(1)), I1)
    negate = b.trunc(b.lshr(b.and_(q, e.i(2)), e.i(1)), I1)
    v = e.sel(use_cos, cos_r, sin_r)
    v = e.sel(negate, b.fneg(v), v)
    if not cos:
        v = e.sel(e.eq(x, e.c(0.0)), x, v)  # keep the sign of zero
    return e.sel(finite, v, e.c(math.nan))


def _expm1_nonpos(e: _E, y: ir.Value) -> ir.Value:
    """exp(y) - 1 for y <= 0 without cancellation near 0."""
    b = e.b
    n = e.terms(19, 13)
    taylor = b.fmul(y, e.horner(y, [1.0 / math.factorial(k + 1) for k in range(n)]))
    direct = b.fsub(_exp(e, y), e.c(1.0))
    return e.sel(e.gt(y, e.c(-1.0)), taylor, direct)


def _tanh(e: _E, x: ir.Value) -> ir.Value:
    b = e.b
    y = b.fmul(e.fabs(x), e.c(-2.0))
    em = _expm1_nonpos(e, y)
    t = b.fdiv(b.fneg(em), b.fadd(em, e.c(2.0)))
    return e.copysign(t, x)


def _sigmoid(e: _E, x: ir.Value) -> ir.Value:
    b = e.b
    ex = _exp(e, b.fneg(e.fabs(x)))  # in (0, 1]: no overflow, subnormal results kept
    num = e.sel(e.lt(x, e.c(0.0)), ex, e.c(1.0))
    return b.fdiv(num, b.fadd(e.c(1.0), ex))


def _erf(e: _E, x: ir.Value) -> ir.Value:
    b = e.b
    a = e.fabs(x)
    small_arg = e.sel(e.gt(a, e.c(2.0)), e.c(2.0), a)
    t = b.fmul(small_arg, small_arg)
    small_c = ERF_SMALL[: e.terms(len(ERF_SMALL), 13)]
    small = b.fmul(small_arg, e.clenshaw(e.fma(t, e.c(0.5), e.c(-1.0)), small_c))
    al = e.sel(e.lt(a, e.c(2.0)), e.c(2.0), a)
    al = e.sel(e.gt(al, e.c(6.0)), e.c(6.0), al)
    u = b.fdiv(e.c(1.0), al)
    g = e.clenshaw(e.fma(u, e.c(6.0), e.c(-2.0)), ERFC_LARGE[: e.terms(len(ERFC_LARGE), 12)])
    erfc = b.fmul(b.fmul(_exp(e, b.fneg(b.fmul(al, al))), g), u)
    large = b.fsub(e.c(1.0), erfc)
    y = e.sel(e.gt(a, e.c(2.0)), large, small)
    y = e.copysign(y, x)
    return e.sel(e.isnan(x), x, y)


def _pow(e: _E, x: ir.Value, y: ir.Value) -> ir.Value:
    b = e.b
    ax = e.fabs(x)
    r = _exp(e, b.fmul(y, _log(e, ax)))
    fy = e.floor(y)
    y_int = e.eq(fy, y)
    half = b.fmul(y, e.c(0.5))
    y_odd = b.and_(y_int, b.fcmp_ordered("!=", e.floor(half), half))
    x_neg = b.icmp_signed("<", b.bitcast(x, I64), e.i(0))
    r = e.sel(b.and_(x_neg, y_odd), b.fneg(r), r)
    bad = b.and_(e.lt(x, e.c(0.0)), b.not_(y_int))
    bad = b.and_(bad, e.gt(x, e.c(-math.inf)))
    r = e.sel(bad, e.c(math.nan), r)
    one = e.c(1.0)
    unit_inf = b.and_(e.eq(ax, one), e.eq(e.fabs(y), e.c(math.inf)))
    r = e.sel(unit_inf, one, r)
    r = e.sel(e.eq(x, one), one, r)
    return e.sel(e.eq(y, e.c(0.0)), one, r)


def _rsqrt(e: _E, x: ir.Value) -> ir.Value:
    return e.b.fdiv(e.c(1.0), e.intr("llvm.sqrt", x))


def _sqrt(e: _E, x: ir.Value) -> ir.Value:
    return e.intr("llvm.sqrt", x)


# ---------------------------------------------------------------------- f32 cores
# Computed in f32 arithmetic (8 lanes per AVX2 register instead of 4), with fused
# multiply-adds; polynomials are Cephes' single-precision minimax fits.

I32 = ir.IntType(32)
EXP_F32 = (5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3,
           1.3981999507e-3, 1.9875691500e-4)  # (e**r - 1 - r) / r**2 on |r| <= ln2/2
LN2_HI_F32 = 0.693145751953125  # 16 significant bits: n * LN2_HI_F32 is exact
LN2_LO_F32 = 1.428606765330187e-06
LOG_F32 = (3.3333331174e-1, -2.4999993993e-1, 2.0000714765e-1, -1.6668057665e-1,
           1.4249322787e-1, -1.2420140846e-1, 1.1676998740e-1, -1.1514610310e-1,
           7.0376836292e-2)  # (log(1+f) - f + f**2/2) / f**3 on sqrt(1/2)-1 <= f < sqrt(2)-1
TANH_F32 = (-3.33332819422e-1, 1.33314422036e-1, -5.37397155531e-2, 2.06390887954e-2,
            -5.70498872745e-3)  # (tanh(x) - x) / x**3 in z = x**2 on |x| < 0.625

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


def _pow2_f32(e: _E, n: ir.Value) -> ir.Value:
    """2**n for an i32 n in [-126, 127] (built from the exponent bits)."""
    bits = e.b.shl(e.b.add(n, I32(127)), I32(23))
    return e.b.bitcast(bits, F32)


def _exp_f32(e: _E, x: ir.Value) -> ir.Value:
    """e**x: x = n ln2 + r (Cody-Waite with FMA), e**r by a degree-7 polynomial, times
    2**n in two factors so that subnormal results are rounded once."""
    b = e.b
    xs = e.sel(e.isnan(x), e.c(0.0), x)
    xs = e.sel(e.lt(xs, e.c(-104.0)), e.c(-104.0), xs)  # e**-104 < 2**-150: rounds to 0
    xs = e.sel(e.gt(xs, e.c(89.0)), e.c(89.0), xs)  # e**89 > FLT_MAX: overflows to inf
    n = e.rint(b.fmul(xs, e.c(LOG2E)))
    neg_n = b.fneg(n)
    r = e.fma(neg_n, e.c(LN2_HI_F32), xs)
    r = e.fma(neg_n, e.c(LN2_LO_F32), r)
    p = e.fma(e.horner(r, EXP_F32), b.fmul(r, r), r)
    p = b.fadd(p, e.c(1.0))
    ni = b.fptosi(n, I32)  # in [-150, 129]
    n1 = b.ashr(ni, I32(1))
    y = b.fmul(b.fmul(p, _pow2_f32(e, n1)), _pow2_f32(e, b.sub(ni, n1)), name="exp")
    return e.sel(e.isnan(x), x, y)


def _log_f32(e: _E, x: ir.Value) -> ir.Value:
    """log x = k ln2 + log(1+f) with 1+f in [sqrt(1/2), sqrt(2)); subnormals scaled first."""
    b = e.b
    tiny = e.lt(x, e.c(2.0**-126))
    xs = e.sel(tiny, b.fmul(x, e.c(2.0**23)), x)
    bits = b.bitcast(xs, I32)
    k = b.sub(b.and_(b.lshr(bits, I32(23)), I32(0xFF)), I32(127))
    k = b.add(k, b.select(tiny, I32(-23), I32(0)))
    m = b.bitcast(b.or_(b.and_(bits, I32(0x007FFFFF)), I32(0x3F800000)), F32)  # [1, 2)
    big = e.gt(m, e.c(math.sqrt(2.0)))
    m = e.sel(big, b.fmul(m, e.c(0.5)), m)
    k = b.add(k, b.zext(big, I32))
    f = b.fsub(m, e.c(1.0))  # exact (Sterbenz)
    z = b.fmul(f, f)
    kf = b.sitofp(k, F32)
    y = b.fmul(b.fmul(f, z), e.horner(f, LOG_F32))
    y = e.fma(kf, e.c(LN2_LO_F32), y)
    y = e.fma(z, e.c(-0.5), y)
    y = e.fma(kf, e.c(LN2_HI_F32), b.fadd(f, y))
    y = e.sel(e.eq(x, e.c(math.inf)), x, y)
    y = e.sel(e.eq(x, e.c(0.0)), e.c(-math.inf), y)
    y = e.sel(e.lt(x, e.c(0.0)), e.c(math.nan), y)
    return e.sel(e.isnan(x), x, y)


def _tanh_f32(e: _E, x: ir.Value) -> ir.Value:
    """tanh x: an odd polynomial for |x| < 0.625, else 1 - 2/(e**2|x| + 1) with x's sign.

    e**2|x| needs none of exp's special cases: |x| is clamped to 9.5 (tanh(9.5) rounds
    to 1 and NaN clamps too), so 2|x| = n ln2 + r with 0 <= n <= 28 and one 2**n factor
    is exact; NaN takes the polynomial, which propagates it.
    """
    b = e.b
    a = e.fabs(x)
    z = b.fmul(x, x)
    small = e.fma(b.fmul(e.horner(z, TANH_F32), z), a, a)  # keeps subnormals
    two_a = b.fmul(e.sel(e.lt(a, e.c(9.5)), a, e.c(9.5)), e.c(2.0))  # NaN -> 19
    n = e.rint(b.fmul(two_a, e.c(LOG2E)))
    r = e.fma(b.fneg(n), e.c(LN2_HI_F32), two_a)
    r = e.fma(b.fneg(n), e.c(LN2_LO_F32), r)
    p = b.fadd(e.fma(e.horner(r, EXP_F32), b.fmul(r, r), r), e.c(1.0))
    w = b.fmul(p, _pow2_f32(e, b.fptosi(n, I32)))
    large = b.fsub(e.c(1.0), b.fdiv(e.c(2.0), b.fadd(w, e.c(1.0))))
    y = e.sel(b.fcmp_unordered("<", a, e.c(0.625)), small, large)
    return e.copysign(y, x)  # odd function; tanh(-0.0) = -0.0


def _sigmoid_f32(e: _E, x: ir.Value) -> ir.Value:
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


def _reduce_pio2_f32(e64: _E, x: ir.Value) -> tuple[ir.Value, ir.Value]:
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


def _sincos_f32(e: _E, x: ir.Value, cos: bool) -> ir.Value:
    """sin/cos: exact-ish reduction in f64 (above), polynomials in f32."""
    b = e.b
    finite = e.lt(e.fabs(x), e.c(math.inf))
    xs = e.sel(finite, x, e.c(0.0))  # inf/NaN would make the reduction poison
    r64, q = _reduce_pio2_f32(_E(b, narrow=True, ty=F64), xs)
    r = b.fptrunc(r64, F32)
    z = b.fmul(r, r)
    sin_r = e.fma(b.fmul(e.horner(z, SIN_F32), z), r, r)
    cos_r = e.fma(b.fmul(z, z), e.horner(z, COS_F32), e.fma(z, e.c(-0.5), e.c(1.0)))
    if cos:
        q = b.add(q, I32(1))
    use_cos = b.trunc(b.and_(q, I32(1)), I1)
    negate = b.trunc(b.lshr(b.and_(q, I32(2)), I32(1)), I1)
    v = e.sel(use_cos, cos_r, sin_r)
    v = e.sel(negate, b.fneg(v), v)
    if not cos:
        v = e.sel(e.eq(x, e.c(0.0)), x, v)  # keep the sign of zero
    return e.sel(finite, v, e.c(math.nan))


def _erf_f32(e: _E, x: ir.Value) -> ir.Value:
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


_F32_CORES: dict[str, Callable[..., ir.Value]] = {
    "sin": lambda e, x: _sincos_f32(e, x, cos=False),
    "cos": lambda e, x: _sincos_f32(e, x, cos=True),
    "erf": _erf_f32,
    "exp": _exp_f32,
    "log": _log_f32,
    "tanh": _tanh_f32,
    "sigmoid": _sigmoid_f32,
    "rsqrt": _rsqrt,
}


_CORES: dict[str, Callable[..., ir.Value]] = {
    "exp": _exp,
    "log": _log,
    "sin": lambda e, x: _sincos(e, x, cos=False, wide=False),
    "cos": lambda e, x: _sincos(e, x, cos=True, wide=False),
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "erf": _erf,
    "pow": _pow,
    "rsqrt": _rsqrt,
    "sqrt": _sqrt,
}
# f32/f16 inputs are exact in f64; sin/cos may use the full-range reduction for them.
_NARROW_CORES: dict[str, Callable[..., ir.Value]] = {
    "sin": lambda e, x: _sincos(e, x, cos=False, wide=True),
    "cos": lambda e, x: _sincos(e, x, cos=True, wide=True),
}
_TYPE_NAMES = {F16: "f16", F32: "f32", F64: "f64"}


class MathLib:
    """Declares the math functions a module uses, each once, as inlinable LLVM functions."""

    def __init__(self, module: ir.Module) -> None:
        self.module = module
        self._fns: dict[tuple[str, str], ir.Function] = {}

    def get(self, name: str, ty: ir.Type) -> ir.Function:
        """The function ``name`` on scalars of float type ``ty`` (defined on first use)."""
        tname = _TYPE_NAMES[ty]
        key = (name, tname)
        fn = self._fns.get(key)
        if fn is not None:
            return fn
        if name not in _CORES:
            raise KeyError(f"no math function {name!r}")
        nargs = ARITY.get(name, 1)
        fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * nargs), f"sn.{name}.{tname}")
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        fn.attributes.add("nounwind")
        builder = ir.IRBuilder(fn.append_basic_block("entry"))
        e = _E(builder, narrow=ty is not F64)
        args = list(fn.args)
        for i, a in enumerate(args):
            a.name = "xy"[i]
        if name == "sqrt" and ty is not F16:
            out = builder.call(self.module.declare_intrinsic("llvm.sqrt", [ty]), args)
        elif ty is F32 and name in _F32_CORES:
            out = _F32_CORES[name](_E(builder, narrow=True, ty=F32), *args)
        elif ty is F64:
            out = _CORES[name](e, *args)
        else:
            # half <-> double goes through float: LLVM would call compiler-rt's
            # __truncdfhf2, which a JIT-loaded object cannot resolve.
            wide = [builder.fpext(builder.fpext(a, F32) if ty is F16 else a, F64)
                    for a in args]
            core = _NARROW_CORES.get(name, _CORES[name])
            out = builder.fptrunc(core(e, *wide), F32)
            if ty is F16:
                out = builder.fptrunc(out, F16)
        builder.ret(out)
        self._fns[key] = fn
        return fn
