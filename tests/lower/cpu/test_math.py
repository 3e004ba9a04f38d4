"""Accuracy of the LLVM math library against a float64 (numpy / math) reference.

Measured max error in ulps of the output type, over random inputs on wide ranges plus the
edge cases (0, -0, +-inf, nan, subnormals, huge arguments), and for f32 over 2**20 random
bit patterns (the whole f32 range) and every f32 near each formula switch or threshold.
This is the documented accuracy of the CPU backend. The bound asserted for f32 is the
issue's 4 ulp; measured (``pytest -s``, AMD EPYC znver3, LLVM 22), error of the result
against the float64 reference, in ulps of the result type (a result equal to the
correctly rounded value counts 0; the f32 table with how each function computes is in
``syntonic/lower/cpu/math.py``):

    function  f32 (whole f32 range)  f64
    exp       1.05 (f32 arithmetic)  1
    log       0.75 (f32 arithmetic)  2
    sin, cos  1.54 (incl. |x| ~ 1e38) 2 for |x| < 2**30; beyond: bounded, not accurate
    tanh      2.53 (f32 arithmetic)  3
    sigmoid   1.97 (f32 arithmetic)  2
    erf       1.07 (f32 arithmetic)  3
    sqrt      0                      0  (llvm.sqrt: correctly rounded)
    rsqrt     1.47 (f32 arithmetic)  0-1
    pow       0.5                    242 (exp(y*log x) in f64: error grows with |y log x|)
"""

from __future__ import annotations

import ctypes
import math
import re

import numpy as np
import pytest

llvmlite = pytest.importorskip("llvmlite")
from llvmlite import ir  # noqa: E402

from syntonic.lower.cpu.engine import get_engine  # noqa: E402
from syntonic.lower.cpu.math import ARITY, F32, F64, FUNCTIONS, MathLib  # noqa: E402

_TY = {np.float32: F32, np.float64: F64}
_compiled: dict[tuple[str, type], object] = {}


def _native(name: str, dtype: type):
    """A ctypes function ``f(x, y, out, n)`` applying math function `name` elementwise."""
    key = (name, dtype)
    if key in _compiled:
        return _compiled[key]
    ty = _TY[dtype]
    mod = ir.Module(name=f"test_{name}")
    lib = MathLib(mod)
    ptr = ty.as_pointer()
    i64 = ir.IntType(64)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, i64]), "kernel")
    x, y, out, n = fn.args
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("loop")
    done = fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, i64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(i64(0), entry)
    args = [b.load(b.gep(x, [i]))]
    if ARITY.get(name, 1) == 2:
        args.append(b.load(b.gep(y, [i])))
    b.store(b.call(lib.get(name, ty), args), b.gep(out, [i]))
    nxt = b.add(i, i64(1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    eng = get_engine()
    art = eng.compile(str(mod), f"test_{name}", ("kernel",))
    addr = eng.load(art.obj, art.symbols)["kernel"]
    cfn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_int64)(addr)

    def run(xa: np.ndarray, ya: np.ndarray | None = None) -> np.ndarray:
        xa = np.ascontiguousarray(xa, dtype)
        ya = xa if ya is None else np.ascontiguousarray(ya, dtype)
        o = np.empty_like(xa)
        cfn(xa.ctypes.data, ya.ctypes.data, o.ctypes.data, xa.size)
        return o

    _compiled[key] = (run, art)
    return _compiled[key]


def _reference(name: str, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(xd)
        if name == "log":
            return np.log(xd)
        if name == "sin":
            return np.sin(xd)
        if name == "cos":
            return np.cos(xd)
        if name == "tanh":
            return np.tanh(xd)
        if name == "sigmoid":
            e = np.exp(-np.abs(xd))
            return np.where(xd >= 0, 1 / (1 + e), e / (1 + e))
        if name == "erf":
            return np.vectorize(math.erf, otypes=[np.float64])(xd)
        if name == "sqrt":
            return np.sqrt(xd)
        if name == "rsqrt":
            return 1 / np.sqrt(xd)
        if name == "pow":
            return np.power(xd, y.astype(np.float64))
    raise KeyError(name)


def ulp_error(got: np.ndarray, ref64: np.ndarray, dtype: type) -> float:
    """Max |got - ref| in ulps of `dtype` at the reference (nan/inf must match exactly)."""
    ref = ref64.astype(dtype)
    both_nan = np.isnan(got) & np.isnan(ref)
    same = (got == ref) | both_nan
    bad_special = ~same & (~np.isfinite(ref) | ~np.isfinite(got))
    assert not bad_special.any(), (
        f"special values differ: got {got[bad_special][:5]} want {ref[bad_special][:5]}")
    finite = np.isfinite(ref64) & ~same
    if not finite.any():
        return 0.0
    info = np.finfo(dtype)
    r = np.abs(ref64[finite])
    # ulp of the reference in the output type (subnormals: the smallest spacing)
    exp = np.floor(np.log2(np.maximum(r, info.tiny)))
    ulp = np.exp2(exp - (info.nmant))
    err = np.abs(got[finite].astype(np.float64) - ref64[finite]) / ulp
    return float(err.max())


def _inputs(name: str, dtype: type, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    info = np.finfo(dtype)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, info.tiny / 4,
                     -info.tiny / 4, info.max, -info.max, 1.0, -1.0, 0.5, 2.0], dtype)
    n = 20000
    wide = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 3, n)).astype(dtype)
    if name == "exp":
        body = rng.uniform(-110 if dtype is np.float32 else -750,
                           90 if dtype is np.float32 else 710, n).astype(dtype)
    elif name in ("log", "sqrt", "rsqrt"):
        body = np.abs(wide) * 10.0 ** rng.uniform(-30, 30, n).astype(dtype)
    elif name in ("sin", "cos"):
        hi = 38 if dtype is np.float32 else 9  # f64: documented domain |x| < 2**30
        body = (rng.standard_normal(n) * 10.0 ** rng.uniform(-5, hi, n)).astype(dtype)
        if dtype is np.float64:
            edge = edge[np.abs(edge) < 2**30]
            body = body[np.abs(body) < 2**30]
    else:
        body = wide
    x = np.concatenate([edge, body, wide]).astype(dtype)
    if name == "pow":
        y = (rng.standard_normal(x.size) * 4).astype(dtype)
        y[: edge.size] = np.array([0, 1, 2, 3, -1, -2, 0.5, np.inf, -np.inf, np.nan, 3, 2,
                                   -3, 1.5][: edge.size], dtype)
        return x, y
    return (x,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_accuracy(name: str, dtype: type) -> None:
    rng = np.random.default_rng(1234)
    run, _ = _native(name, dtype)
    args = _inputs(name, dtype, rng)
    got = run(*args)
    ref = _reference(name, args[0], args[1] if len(args) > 1 else None)
    err = ulp_error(got, ref, dtype)
    print(f"{name:8s} {np.dtype(dtype).name}: max {err:.2f} ulp")
    limit = 4.0 if dtype is np.float32 else _F64_LIMITS.get(name, 4.0)
    assert err <= limit, f"{name} {dtype}: {err} ulp"


_F64_LIMITS = {"pow": 2048.0}


def test_f64_sincos_huge_arguments_stay_bounded() -> None:
    """Beyond |x| = 2**30 the f64 reduction loses accuracy but results stay in [-1, 1]."""
    x = np.array([2.0**31, 1e15, 1e300, -1.7e308], np.float64)
    for name in ("sin", "cos"):
        run, _ = _native(name, np.float64)
        got = run(x)
        assert np.all(np.abs(got) <= 1.0), got


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "erf", "sin", "cos"])
def test_vectorizes(name: str) -> None:
    """The loop over a math call vectorises in f32 lanes (the point of writing the f32
    cores branch-free in f32 arithmetic): no widening to double remains (sin/cos: only
    their argument reduction)."""
    _, art = _native(name, np.float32)
    assert re.search(r"<\d+ x float>", art.optimized_ir), name
    if name not in ("sin", "cos"):
        assert "double" not in art.optimized_ir, name


def _random_f32_bits(n: int, seed: int) -> np.ndarray:
    """`n` f32 values from uniformly random bit patterns (every binade, subnormals, NaN
    payloads, infinities equally likely per pattern) plus the special values."""
    bits = np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64)
    x = bits.astype(np.uint32).view(np.float32)
    info = np.finfo(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny,
                        info.smallest_subnormal, -info.smallest_subnormal, info.max,
                        -info.max, 1.0, -1.0, 88.72283, 88.72284, -103.97208, -103.97209,
                        -87.33655, 0.625, -0.625, 1e-30, -1e-30], np.float32)
    return np.concatenate([special, x])


@pytest.mark.parametrize("name", [f for f in FUNCTIONS if ARITY.get(f, 1) == 1])
def test_f32_random_bit_patterns(name: str) -> None:
    """2**20 random f32 bit patterns: max error <= 4 ulp against float64 rounded to f32,
    and the special cases (NaN, +-inf, +-0, overflow, underflow) exactly those of numpy's
    float32 functions (the interpreter's semantics)."""
    x = _random_f32_bits(1 << 20, seed=FUNCTIONS.index(name))
    run, _ = _native(name, np.float32)
    got = run(x)
    err = ulp_error(got, _reference(name, x, None), np.float32)
    print(f"{name:8s} f32 random bits: max {err:.2f} ulp")
    assert err <= 4.0, f"{name}: {err} ulp"
    numpy_f32 = {"exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos,
                 "tanh": np.tanh, "sqrt": np.sqrt}.get(name)
    if numpy_f32 is not None:
        with np.errstate(all="ignore"):
            want = numpy_f32(x)
        special = ~np.isfinite(want) | (want == 0)
        np.testing.assert_array_equal(got[special], want[special])
        signed = special & ~np.isnan(want)  # the sign of a NaN means nothing
        np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "erf"])
def test_f32_dense_near_thresholds(name: str) -> None:
    """Every f32 around the places where a select switches formulas or the result
    overflows / underflows / turns subnormal."""
    points = {"exp": [88.72283, -87.33655, -103.97208, -0.3465736, 0.3465736],
              "log": [0.70710677, 1.4142135, 1.0, 1.1754944e-38, 3.3e38],
              "tanh": [0.625, -0.625, 20.0, 9.0, 9.5, 1e-4, 0.0624744],
              "sigmoid": [-87.33655, -103.97, 0.0, 20.0, -20.0],
              "erf": [1.0, -1.0, 3.9192, 4.0, 1e-3, 1.2e-38]}[name]
    base = np.array(points, np.float32).view(np.int32)
    offsets = np.arange(-20000, 20001, dtype=np.int32)
    x = (base[:, None] + offsets[None, :]).ravel().view(np.float32)
    run, _ = _native(name, np.float32)
    err = ulp_error(run(x), _reference(name, x, None), np.float32)
    assert err <= 4.0, f"{name}: {err} ulp"


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_f32_sincos_near_multiples_of_half_pi(name: str) -> None:
    """The f32 values closest to k*pi/2 (k up to 2**100) and their neighbours: the results
    are tiny or near +-1, so the reduction must keep r's leading bits."""
    rng = np.random.default_rng(7)
    k = np.concatenate([np.arange(1, 20000), rng.integers(1, 2**62, 20000).astype(np.float64),
                        2.0 ** rng.uniform(62, 100, 5000)])
    base = (k * (np.pi / 2)).astype(np.float32).view(np.int32)
    x = (base[:, None] + np.arange(-3, 4, dtype=np.int32)[None, :]).ravel().view(np.float32)
    x = x[np.isfinite(x)]
    run, _ = _native(name, np.float32)
    err = ulp_error(run(x), _reference(name, x, None), np.float32)
    print(f"{name} near k*pi/2: max {err:.2f} ulp")
    assert err <= 4.0, f"{name}: {err} ulp"
