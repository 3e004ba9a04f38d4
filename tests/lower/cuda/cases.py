"""Every hand-built test program of the CUDA backend, with its inputs and tolerance.

One list serves the emulation test (all programs in one emulation library), the NVRTC
test (all sources in one PTX compile) and the codegen tests. Ops and dtypes mirror
tests/lower/cpu/test_codegen.py: every elementwise op on every dtype it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from syntonic.ir.types import DType
from syntonic.lower.kernel import Program
from tests.lower.cpu import programs as P
from tests.lower.cuda import programs as C

FLOATS = [DType.f16, DType.f32, DType.f64]
INTS = [DType.i32, DType.i64]
ALL = FLOATS + INTS + [DType.bool]
UNARY_FLOAT = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid",
               "erf", "floor", "sign"]
BINARY = ["add", "sub", "mul", "maximum", "minimum", "div", "pow"]
TOL = {DType.f16: 4e-3, DType.f32: 2e-6, DType.f64: 1e-13}


@dataclass(frozen=True)
class Case:
    """A program, its arguments and the float tolerance (None: per-dtype default)."""

    id: str
    program: Program
    args: tuple[np.ndarray, ...]
    tol: float | None = None


def data(rng: np.random.Generator, dt: DType, shape, positive: bool = False) -> np.ndarray:
    if dt.is_bool:
        return rng.random(shape) > 0.5
    if dt.is_int:
        return rng.integers(-50, 50, shape).astype(dt.np)
    x = rng.standard_normal(shape) * 3
    if positive:
        x = np.abs(x) + 0.1
    return x.astype(dt.np)


def _specials(x: np.ndarray, values: list[float]) -> np.ndarray:
    x = x.copy()
    with np.errstate(all="ignore"):
        x.reshape(-1)[:len(values)] = np.asarray(values).astype(x.dtype)
    return x


@cache
def all_cases() -> tuple[Case, ...]:
    rng = np.random.default_rng(11)
    out: list[Case] = []

    def add(id_: str, prog: Program, *args: np.ndarray, tol: float | None = None) -> None:
        out.append(Case(id_, prog, tuple(args), tol))

    for op in UNARY_FLOAT:
        for dt in FLOATS:
            positive = op in ("log", "sqrt", "rsqrt")
            x = data(rng, dt, (3, 37), positive)
            spec = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 89.0, -104.0] if dt is not \
                DType.f16 else [np.nan, np.inf, -np.inf, 0.0, -0.0, 6e-8, 11.0, -11.0]
            if positive:
                spec = [np.nan, np.inf, 0.0, 1.0, -1.0]
            add(f"unary-{op}-{dt}", P.elementwise(op, dt, (3, 37)), _specials(x, spec))
    for op in ["neg", "abs", "sign"]:
        for dt in INTS:
            x = _specials(data(rng, dt, (50,)), [np.iinfo(dt.np).min, np.iinfo(dt.np).max, 0])
            add(f"unary-{op}-{dt}", P.elementwise(op, dt, (50,)), x)
    for op in BINARY:
        for dt in FLOATS + INTS:
            if op in ("div", "pow") and not dt.is_float:
                continue
            x, y = data(rng, dt, (4, 33), op == "pow"), data(rng, dt, (4, 33))
            if dt.is_float and op != "pow":
                x = _specials(x, [np.nan, 0.0, -0.0, np.inf, 1.0])
                y = _specials(y, [1.0, -0.0, 0.0, np.inf, np.nan])
            if dt.is_int:
                x = _specials(x, [np.iinfo(dt.np).max, np.iinfo(dt.np).min])
                y = _specials(y, [7, -3])
            add(f"binary-{op}-{dt}", P.elementwise(op, dt, (4, 33), arity=2), x, y)
    for op in ["bitand", "bitor", "bitxor", "shl", "shr"]:
        for dt in [DType.bool, DType.i32, DType.i64]:
            x = data(rng, dt, (64,))
            y = data(rng, dt, (64,)) if dt.is_bool else rng.integers(-3, 70, 64).astype(dt.np)
            add(f"bitwise-{op}-{dt}", P.elementwise(op, dt, (64,), arity=2), x, y)
    for op in ["eq", "ne", "lt", "le", "gt", "ge"]:
        for dt in ALL:
            x, y = data(rng, dt, (40,)), data(rng, dt, (40,))
            if dt.is_float:
                x = _specials(x, [np.nan, 1.0, np.inf, 0.0])
                y = _specials(y, [1.0, 1.0, np.nan, -0.0])
            elif not dt.is_bool:
                y[:5] = x[:5]
            add(f"compare-{op}-{dt}", P.elementwise(op, dt, (40,), arity=2, out_dt=DType.bool),
                x, y)
    for src in ALL:
        for dst in ALL:
            x = data(rng, src, (64,))
            if src.is_float:
                x = (x * 1e9).astype(src.np) if src is not DType.f16 else x * 1000
                x = _specials(x, [np.nan, np.inf, -np.inf, -0.0, 2.5, -2.5, 3e9, -3e9, 1e19,
                                  65519.0, 65520.0, 1e-6, 0.1])
            elif src.is_int:
                x = _specials(x, [np.iinfo(src.np).min, np.iinfo(src.np).max, 0, 65519, 65521,
                                  2049, 16777217])
            add(f"cast-{src}-{dst}", P.elementwise("cast", src, (64,), out_dt=dst,
                                                    attrs=(("dtype", dst),)), x)
    add("select", P.select_program((7, 9)), data(rng, DType.f32, (7, 9)),
        data(rng, DType.f32, (7, 9)))
    for dt in FLOATS:
        add(f"row-normalize-{dt}", P.row_normalize(16, 300, dt), data(rng, dt, (16, 300)),
            tol=1e-2 if dt is DType.f16 else 1e-5)
        add(f"full-normalize-{dt}", C.full_normalize(1000, dt), data(rng, dt, (1000,)),
            tol=1e-2 if dt is DType.f16 else 1e-5)
    for op in ["sum", "mean", "max", "min", "prod"]:
        for dt in FLOATS + INTS:
            if op == "mean" and not dt.is_float:
                continue
            for axes in [(1,), (0,), (0, 1)]:
                shape = (6, 10)
                x = data(rng, dt, shape)
                if op == "prod" and dt.is_float:
                    x = (np.abs(x) * 0.5 + 0.6).astype(dt.np)
                if op == "prod" and dt.is_int:
                    x = rng.integers(-3, 4, shape).astype(dt.np)
                if dt.is_float and op in ("max", "min") and axes == (1,):
                    x[2, 3] = np.nan  # NaN propagates through max/min reductions
                add(f"reduce-{op}-{dt}-{''.join(map(str, axes))}",
                    P.reduce_program(op, dt, shape, axes), x,
                    tol=2e-2 if dt is DType.f16 else 1e-5)
    for n in [1, 63, 64, 65, 1000, 100_000]:
        add(f"full-reduce-cosine-{n}", P.full_reduce(n), data(rng, DType.f32, (n,)),
            data(rng, DType.f32, (n,)), tol=1e-5)
    add("full-reduce-max-int64-77", P.reduce_program("max", DType.i64, (7, 11), (0, 1)),
        rng.integers(-2**62, 2**62, (7, 11)))
    add("full-reduce-sum-i32-wraps", P.reduce_program("sum", DType.i32, (300,), (0,)),
        rng.integers(2**30, 2**31 - 1, (300,)).astype(np.int32))
    add("reduce-sum-empty-rows", P.reduce_program("sum", DType.f32, (3, 0), (1,)),
        np.zeros((3, 0), np.float32))
    add("reduce-mean-empty", P.reduce_program("mean", DType.f64, (0,), (0,)),
        np.zeros((0,), np.float64))
    add("empty-elementwise", P.elementwise("exp", DType.f32, (0, 4)), np.zeros((0, 4), np.float32))
    add("matmul-epilogue", P.mlp(8, 16, 12), data(rng, DType.f32, (8, 16)),
        data(rng, DType.f32, (16, 12)), data(rng, DType.f32, (12,)), tol=1e-5)
    add("matmul-odd", P.mlp(33, 17, 19), data(rng, DType.f32, (33, 17)),
        data(rng, DType.f32, (17, 19)), data(rng, DType.f32, (19,)), tol=1e-5)
    add("matmul-f64-k0", P.mlp(5, 0, 3, DType.f64), np.zeros((5, 0)), np.zeros((0, 3)),
        data(rng, DType.f64, (3,)))
    add("matmul-batched-transposed", C.batched_matmul(3, 17, 20, 9, transpose_rhs=True),
        data(rng, DType.f32, (3, 17, 20)), data(rng, DType.f32, (3, 9, 20)), tol=1e-5)
    add("matmul-batched-f16", C.batched_matmul(2, 5, 40, 18, DType.f16),
        data(rng, DType.f16, (2, 5, 40)) * 0.2, data(rng, DType.f16, (2, 40, 18)) * 0.2,
        tol=2e-2)
    add("matmul-int-wraps", C.int_matmul(9, 21, 10),
        rng.integers(-2**31, 2**31, (9, 21)).astype(np.int32),
        rng.integers(-2**31, 2**31, (21, 10)).astype(np.int32))
    add("matmul-inside-row-reduction", C.matmul_row_sum(7, 13, 10),
        data(rng, DType.f32, (7, 13)), data(rng, DType.f32, (13, 10)), tol=1e-5)
    add("matmul-inside-full-reduction", C.matmul_row_sum(6, 11, 9, full=True),
        data(rng, DType.f32, (6, 11)), data(rng, DType.f32, (11, 9)), tol=1e-5)
    add("views-masks-iota-constants", P.views_program(), data(rng, DType.f32, (5, 4)))
    add("views-interior-pad-slice", C.strided_views(), data(rng, DType.f64, (3, 3)),
        data(rng, DType.f64, (7,)))
    add("opaque-between-kernels", C.with_opaque(5, 9), data(rng, DType.f32, (5, 9)), tol=1e-5)
    add("rank0", C.scalar_program(), np.asarray(1.5, np.float32))
    add("large-elementwise-tanh", P.elementwise("tanh", DType.f32, (1 << 16,)),
        data(rng, DType.f32, (1 << 16,)))
    return tuple(out)


def check(case: Case, got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    """Outputs agree: exact for bool/int, within the case's tolerance for floats."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        if w.dtype.kind == "f":
            t = case.tol if case.tol is not None else TOL[DType.from_numpy(w.dtype)]
            np.testing.assert_allclose(g, w, rtol=t, atol=t, equal_nan=True, err_msg=case.id)
        else:
            np.testing.assert_array_equal(g, w, err_msg=case.id)
