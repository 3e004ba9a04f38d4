"""Differential tests of the CPU backend against the kernel-IR interpreter."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import syntonic as sn  # noqa: E402
from syntonic.ir.registry import Trait, all_ops  # noqa: E402
from syntonic.ir.types import DType  # noqa: E402
from syntonic.lower.cpu.scalar import LOWERING, STRUCTURAL, UNSUPPORTED  # noqa: E402
from syntonic.lower.kernel_interp import run_program  # noqa: E402
from syntonic.runtime import cache  # noqa: E402
from syntonic.runtime.native import compile_program  # noqa: E402
from tests.lower.cpu import programs as P  # noqa: E402

RNG = np.random.default_rng(7)
TOL = {DType.f16: 2e-3, DType.f32: 2e-6, DType.f64: 1e-13}


@pytest.fixture(autouse=True)
def _no_disk_cache(tmp_path):
    with cache.configure(mode="off", dir=tmp_path):
        yield


def _native(prog):
    import hashlib

    key = hashlib.sha256(prog.text().encode() + str(id(prog)).encode()).hexdigest()
    return compile_program(prog, key)


def _data(dt: DType, shape, positive: bool = False) -> np.ndarray:
    if dt.is_bool:
        return RNG.random(shape) > 0.5
    if dt.is_int:
        return RNG.integers(-50, 50, shape).astype(dt.np)
    x = RNG.standard_normal(shape) * 3
    if positive:
        x = np.abs(x) + 0.1
    return x.astype(dt.np)


def _check(prog, *args, tol=None):
    want = run_program(prog, *args)
    got = _native(prog)(*args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.dtype.kind == "f":
            t = tol if tol is not None else TOL[DType.from_numpy(w.dtype)]
            np.testing.assert_allclose(g, w, rtol=t, atol=t, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


def test_every_elementwise_op_has_a_rule_or_a_reason() -> None:
    for name, op in all_ops().items():
        if op.has(Trait.ELEMENTWISE):
            assert name in LOWERING or name in UNSUPPORTED, name
        elif not op.has(Trait.RESONANT):
            assert name in STRUCTURAL, f"{name}: not covered by the CPU kernel structure"


_UNARY_FLOAT = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid",
                "erf", "floor", "sign"]
_FLOATS = [DType.f16, DType.f32, DType.f64]
_INTS = [DType.i32, DType.i64]


@pytest.mark.parametrize("dt", _FLOATS, ids=str)
@pytest.mark.parametrize("op", _UNARY_FLOAT)
def test_unary_float(op: str, dt: DType) -> None:
    positive = op in ("log", "sqrt", "rsqrt")
    x = _data(dt, (3, 37), positive)
    if dt is not DType.f16:
        x[0, :4] = [np.nan, np.inf, -np.inf, 0.0] if not positive else [np.nan, np.inf, 0, 1]
    _check(P.elementwise(op, dt, (3, 37)), x, tol=4e-3 if dt is DType.f16 else None)


@pytest.mark.parametrize("dt", _INTS, ids=str)
@pytest.mark.parametrize("op", ["neg", "abs", "sign"])
def test_unary_int(op: str, dt: DType) -> None:
    _check(P.elementwise(op, dt, (50,)), _data(dt, (50,)))


_BIN_ANY = ["add", "sub", "mul", "maximum", "minimum"]


@pytest.mark.parametrize("dt", _FLOATS + _INTS, ids=str)
@pytest.mark.parametrize("op", _BIN_ANY + ["div", "pow"])
def test_binary(op: str, dt: DType) -> None:
    if op in ("div", "pow") and not dt.is_float:
        pytest.skip("float only")
    x, y = _data(dt, (4, 33), op == "pow"), _data(dt, (4, 33))
    if dt.is_float and op != "pow":
        x[0, 0] = np.nan
    _check(P.elementwise(op, dt, (4, 33), arity=2), x, y, tol=5e-3 if dt is DType.f16 else None)


@pytest.mark.parametrize("dt", [DType.bool, DType.i32, DType.i64], ids=str)
@pytest.mark.parametrize("op", ["bitand", "bitor", "bitxor", "shl", "shr"])
def test_bitwise(op: str, dt: DType) -> None:
    x = _data(dt, (64,))
    y = _data(dt, (64,)) if dt.is_bool else RNG.integers(-3, 70, 64).astype(dt.np)
    _check(P.elementwise(op, dt, (64,), arity=2), x, y)


@pytest.mark.parametrize("dt", _FLOATS + _INTS + [DType.bool], ids=str)
@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_compare(op: str, dt: DType) -> None:
    x, y = _data(dt, (40,)), _data(dt, (40,))
    if dt.is_float:
        x[:3] = [np.nan, 1.0, np.inf]
        y[:3] = [1.0, 1.0, np.nan]
    elif not dt.is_bool:
        y[:5] = x[:5]
    _check(P.elementwise(op, dt, (40,), arity=2, out_dt=DType.bool), x, y)


@pytest.mark.parametrize("src", _FLOATS + _INTS + [DType.bool], ids=str)
@pytest.mark.parametrize("dst", _FLOATS + _INTS + [DType.bool], ids=str)
def test_cast(src: DType, dst: DType) -> None:
    x = _data(src, (64,))
    if src.is_float:
        x = (x * 1e9).astype(src.np) if src is not DType.f16 else x
        x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    _check(P.elementwise("cast", src, (64,), out_dt=dst, attrs=(("dtype", dst),)), x)


def test_select() -> None:
    _check(P.select_program((7, 9)), _data(DType.f32, (7, 9)), _data(DType.f32, (7, 9)))


@pytest.mark.parametrize("dt", _FLOATS, ids=str)
def test_row_normalize_multi_phase(dt: DType) -> None:
    x = _data(dt, (16, 300))
    _check(P.row_normalize(16, 300, dt), x, tol=1e-2 if dt is DType.f16 else 1e-5)


@pytest.mark.parametrize("dt", _FLOATS + _INTS, ids=str)
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("axes", [(1,), (0,), (0, 1)], ids=str)
def test_reductions(op: str, dt: DType, axes) -> None:
    if op == "mean" and not dt.is_float:
        pytest.skip("mean is float only")
    shape = (6, 10)
    x = _data(dt, shape)
    if op == "prod" and dt.is_float:
        x = (np.abs(x) * 0.5 + 0.6).astype(dt.np)
    if op == "prod" and dt.is_int:
        x = RNG.integers(-3, 4, shape).astype(dt.np)
    _check(P.reduce_program(op, dt, shape, axes), x,
           tol=2e-2 if dt is DType.f16 else 1e-5)


def test_full_reduction_accuracy_2_24() -> None:
    """f32 sums over 2**24 elements stay within 1e-6 relative (f32 blocks, then f64)."""
    n = 1 << 24
    x = np.full(n, 0.1, np.float32)
    y = RNG.random(n, dtype=np.float32)
    (got,) = _native(P.full_reduce(n))(x, y)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    exact = (xd @ yd) / np.sqrt((xd @ xd) * (yd @ yd))
    assert abs(float(got) - exact) <= 1e-6 * abs(exact)


def test_matmul_epilogue() -> None:
    x, w, b = _data(DType.f32, (8, 16)), _data(DType.f32, (16, 12)), _data(DType.f32, (12,))
    _check(P.mlp(8, 16, 12), x, w, b, tol=1e-5)


def test_views_masks_iota_constants() -> None:
    _check(P.views_program(), _data(DType.f32, (5, 4)))


def test_long_elementwise_loops_interleave_four_vector_iterations() -> None:
    """Modules whose kernels are all elementwise over long rows get 4 interleaved vector
    iterations per loop trip, others 2 (codegen.interleave_for); the engine applies it."""
    import re

    from syntonic.lower.cpu.codegen import LONG_LOOP, interleave_for, lower_program
    from syntonic.lower.cpu.engine import get_engine

    long = lower_program(P.elementwise("tanh", DType.f32, (1 << 20,)))
    assert long.interleave == 4
    assert lower_program(P.elementwise("tanh", DType.f32, (64, 248))).interleave == 2
    assert lower_program(P.reduce_program("sum", DType.f32, (64, 4096), (1,))).interleave == 2
    assert interleave_for([]) == 2 and interleave_for([LONG_LOOP, 0]) == 2
    for il in (2, 4):
        art = get_engine().compile(long.llvm_ir, "il", long.symbols, interleave=il)
        kernel = art.optimized_ir[art.optimized_ir.index("_k0("):].split("\n}\n")[0]
        assert len(re.findall(r"load <8 x float>", kernel)) == il
    x = _data(DType.f32, (1 << 20,))
    np.testing.assert_allclose(_native(P.elementwise("tanh", DType.f32, (1 << 20,)))(x)[0],
                               np.tanh(x), rtol=2e-7, atol=1e-7)


def test_large_elementwise_uses_pool_and_is_deterministic() -> None:
    prog = P.elementwise("tanh", DType.f32, (1 << 20,))
    x = _data(DType.f32, (1 << 20,))
    native = _native(prog)
    a = native(x)[0]
    b = native(x)[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, np.tanh(x), rtol=2e-7, atol=1e-7)


def test_non_contiguous_argument_takes_the_general_path() -> None:
    prog = P.elementwise("exp", DType.f32, (10,))
    x = np.linspace(0, 1, 20, dtype=np.float32)[::2]
    np.testing.assert_allclose(_native(prog)(x)[0], np.exp(x), rtol=1e-6)


def test_multiply_add_contracts_to_fma_within_one_rounding():
    # float ops carry `contract`: x * 1.5 + 1 is one FMA on a host that has it, rounded
    # once, so it is within half an ulp of the exact value (numpy rounds twice)
    import llvmlite.binding as llvm

    f = sn.jit(lambda x: x * 1.5 + 1.0, device="cpu")
    x = np.random.default_rng(3).standard_normal(4099).astype(np.float32)
    llvm_ir = f.lower(x).text("llvm")
    assert re.search(r"fmul contract <\d+ x float>", llvm_ir)
    if "+fma" in llvm.get_host_cpu_features().flatten():
        assert "vfmadd" in f.lower(x).text("asm")
        exact = x.astype(np.float64) * 1.5 + 1.0
        ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
        assert (np.abs(f(x) - exact) <= 0.5 * ulp).all()


@pytest.mark.parametrize("dtype", ["bool", "i32", "i64", "f16", "f32", "f64"])
def test_non_splat_constants_of_every_dtype_are_bit_exact(dtype: str) -> None:
    # constants are emitted as their bytes (one i8 array) and read through a typed pointer
    dt = DType[dtype]
    c = _data(dt, (3, 1001))
    if dt.is_float:
        c.reshape(-1)[:4] = [np.nan, -0.0, np.inf, -np.inf]
    x = _data(dt, (3, 1001))
    f = sn.jit(lambda x: sn.where(x == x, c, x) if dt.is_float else (x == c if dt.is_bool
                                                                      else x * 0 + c),
               device="cpu")
    got = f(x)
    want = np.where(x == x, c, x) if dt.is_float else (x == c if dt.is_bool else c)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
