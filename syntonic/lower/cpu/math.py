"""Scalar math library in LLVM IR: exp, log, sin, cos, tanh, sigmoid, erf, sqrt, rsqrt, pow.

Every function is straight-line code (selects, no branches) so LLVM inlines it into the
kernel loop and vectorises the loop.

**f32** exp, log, tanh, sigmoid, erf, sin, cos and rsqrt compute in f32 arithmetic (8
lanes per AVX2 register): Cody-Waite range reduction with fused multiply-adds and Cephes'
single-precision minimax polynomials (exp, tanh, erf: our own fits), in :mod:`.math_f32`; sin/cos
reduce modulo pi/2 in f64 with four pieces of 2/pi chosen by the exponent (exact products,
valid over the whole f32 range) and evaluate their polynomials in f32. Special cases
(NaN, +-inf, +-0, overflow to inf, underflow through the subnormals to 0) are selects and
match numpy's float32 functions exactly. pow on f32 still widens to f64, computes there
and rounds once (it needs log in extra precision). Measured max error on f32,
in ulps of the result, against the float64 value (``tests/lower/cpu/test_math.py``: 2**20
random bit patterns over the whole f32 range plus every f32 near the thresholds; a result
equal to the correctly rounded value counts 0), AMD EPYC znver3, LLVM 22:

    function  f32 max ulp  computed in
    exp       1.05         f32 (0.99 on random bits; 1.05 every f32 in [-104, 89] checked)
    log       0.75         f32
    tanh      2.53         f32 (2.24 on random bits; 2.53 every f32 checked)
    sigmoid   1.97         f32 (1.95 on random bit patterns)
    rsqrt     1.47         f32 (1/sqrt: two roundings)
    sqrt      0            f32 (llvm.sqrt, correctly rounded)
    erf       1.07         f32
    sin, cos  1.54         f32 polynomials, f64 reduction (also near k pi/2, k < 2**100)
    pow       0.5          f64 (then rounded: rare double roundings)

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
    fn = lib.get("exp", ir.FloatType())     # declares @sn.exp.f32 (its f32 core)
    builder.call(fn, [x])
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from syntonic.lower.cpu.math_f32 import F32_CORES
from syntonic.lower.cpu.mathexpr import F16, F32, F64, I64, LOG2E, Expr

__all__ = ["ARITY", "F16", "F32", "F64", "FUNCTIONS", "MathLib"]

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


# ---------------------------------------------------------------------- f64 cores


def _exp(e: Expr, x: ir.Value) -> ir.Value:
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


def _log(e: Expr, x: ir.Value) -> ir.Value:
    b = e.b
    ex, m = e.split_sqrt2(x)
    f = b.fsub(m, e.c(1.0))
    s = b.fdiv(f, b.fadd(f, e.c(2.0)))  # log(m) = 2 atanh(s)
    z = b.fmul(s, s)
    poly = e.horner(z, [1.0 / (2 * k + 3) for k in range(e.terms(11, 6))])
    s2 = b.fmul(s, e.c(2.0))
    logm = e.fma(b.fmul(s2, z), poly, s2)
    ef = b.sitofp(ex, F64)
    return e.log_specials(x, e.fma(ef, e.c(LN2_HI), e.fma(ef, e.c(LN2_LO), logm)))


def _sincos_kernels(e: Expr, r: ir.Value) -> tuple[ir.Value, ir.Value]:
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


def _reduce_f64(e: Expr, xs: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, quadrant) with x = r + quadrant*pi/2; Cody-Waite, good for |x| < 2**30."""
    b = e.b
    j = e.rint(b.fmul(xs, e.c(2.0 / math.pi)))
    nj = b.fneg(j)
    r = e.fma(nj, e.c(PIO2_1), xs)
    r = e.fma(nj, e.c(PIO2_2), r)
    r = e.fma(nj, e.c(PIO2_3), r)
    return r, _quadrant(e, j)


def _reduce_wide(e: Expr, xs: ir.Value) -> tuple[ir.Value, ir.Value]:
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


def _quadrant(e: Expr, j: ir.Value) -> ir.Value:
    """j mod 4 as an i64 (computed in floating point: j may exceed the i64 range)."""
    q = e.fma(e.floor(e.b.fmul(j, e.c(0.25))), e.c(-4.0), j)
    return e.b.fptosi(q, I64)


def _sincos(e: Expr, x: ir.Value, cos: bool, wide: bool) -> ir.Value:
    b = e.b
    finite = e.lt(e.fabs(x), e.c(math.inf))
    xs = e.sel(finite, x, e.c(0.0))
    r, q = _reduce_wide(e, xs)
    if not wide:  # f64: Cody-Waite where it is accurate, the bounded wide form beyond
        r_cw, q_cw = _reduce_f64(e, xs)
        near = e.lt(e.fabs(xs), e.c(2.0**30))
        r = e.sel(near, r_cw, r)
        q = b.select(near, q_cw, q)
    sin_r, cos_r = _sincos_kernels(e, r)
    return e.sincos_quadrant(x, finite, q, sin_r, cos_r, cos)


def _expm1_nonpos(e: Expr, y: ir.Value) -> ir.Value:
    """exp(y) - 1 for y <= 0 without cancellation near 0."""
    b = e.b
    n = e.terms(19, 13)
    taylor = b.fmul(y, e.horner(y, [1.0 / math.factorial(k + 1) for k in range(n)]))
    direct = b.fsub(_exp(e, y), e.c(1.0))
    return e.sel(e.gt(y, e.c(-1.0)), taylor, direct)


def _tanh(e: Expr, x: ir.Value) -> ir.Value:
    b = e.b
    y = b.fmul(e.fabs(x), e.c(-2.0))
    em = _expm1_nonpos(e, y)
    t = b.fdiv(b.fneg(em), b.fadd(em, e.c(2.0)))
    return e.copysign(t, x)


def _sigmoid(e: Expr, x: ir.Value) -> ir.Value:
    b = e.b
    ex = _exp(e, b.fneg(e.fabs(x)))  # in (0, 1]: no overflow, subnormal results kept
    num = e.sel(e.lt(x, e.c(0.0)), ex, e.c(1.0))
    return b.fdiv(num, b.fadd(e.c(1.0), ex))


def _erf(e: Expr, x: ir.Value) -> ir.Value:
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


def _pow(e: Expr, x: ir.Value, y: ir.Value) -> ir.Value:
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


def _rsqrt(e: Expr, x: ir.Value) -> ir.Value:
    return e.b.fdiv(e.c(1.0), e.intr("llvm.sqrt", x))


def _sqrt(e: Expr, x: ir.Value) -> ir.Value:
    return e.intr("llvm.sqrt", x)


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
        e = Expr(builder, narrow=ty is not F64)
        args = list(fn.args)
        for i, a in enumerate(args):
            a.name = "xy"[i]
        if name == "sqrt" and ty is not F16:
            out = builder.call(self.module.declare_intrinsic("llvm.sqrt", [ty]), args)
        elif ty is F32 and name in F32_CORES:
            out = F32_CORES[name](Expr(builder, narrow=True, ty=F32), *args)
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
