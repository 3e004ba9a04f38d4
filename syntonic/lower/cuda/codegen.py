"""Kernel IR -> CUDA C: one translation unit per program, plus the steps that run it.

:func:`generate` is pure Python (no GPU, no CUDA import). Kernel shapes:

* **elementwise** (no reduce axes): a grid-stride loop over the points of the space; the
  phases run in order at each point.
* **rows** (reduce axes and outer axes): a grid-stride loop over rows, one block per row.
  Each thread strides over the row's inner points feeding its partial accumulators; the
  block combines them (warp shuffles ``__shfl_down_sync``, then shared memory, in a fixed
  order: deterministic) and every thread gets the final value, so the next phase (mean,
  then variance, then normalise) continues in the same block. Row stores: thread 0.
* **full reductions** (every axis reduced): per phase, a ``partial`` launch (grid-stride
  over the points, one partial per block and accumulator, written to a scratch buffer)
  and a one-block ``combine`` launch that folds the partials in index order, finishes
  the accumulators (``mean`` divides), writes them to a scratch buffer for later phases
  and does the phase's row stores. A phase boundary is a launch boundary (the grid-wide
  barrier the kernel IR asks for).
* **matmul** (a contraction, no reductions): 16x16 output tiles per 256-thread block,
  operands staged through shared memory, the epilogue phase fused after the K loop.
  A contraction inside a reduction kernel is computed per point by a K loop instead.
* **opaque** kernels are host steps (:class:`~syntonic.lower.cuda.plan.OpaqueStep`).
* **loops**: row-local ones are one kernel (:mod:`~syntonic.lower.cuda.rowloop`, which
  reuses the loops above inside one block), the others host-driven ``LoopStep`` steps.

Values: bool is ``bool`` (stored as one byte), i32 ``int``, i64 ``long long``, f32
``float``, f64 ``double``; f16 is stored as IEEE binary16 bits (``sn_half``, the layout of
``__half``) and computed in ``float``, rounded to f16 after every op that can produce a
non-f16 value (as numpy does). Integer arithmetic wraps (it runs on unsigned types).
Float sums, means and products accumulate in f64 (as the CPU backend does); max/min
follow IEEE 754-2019 maximum/minimum (NaN propagates, +0 > -0), as the registry does.

**Accuracy.** Transcendentals are CUDA's precise functions (``expf``, ``logf``, ``sinf``,
``tanhf``, ``erff``, ``powf`` and their f64 forms; never the ``__expf`` intrinsics, and
NVRTC runs without fast math, so ``/`` and ``sqrtf`` are IEEE-rounded and subnormals
are kept). The CUDA Programming Guide bounds them at 1-4 ulp for f32 (exp 2, log 1,
sin/cos 2, tanh 2, erf 2, pow 4 ulp) and 1-2 ulp for f64, within the backends'
tolerances (f32 1e-4, f64 1e-9 norm-wise). The host emulation uses the C library's
functions for the same names, so it checks structure and semantics, not these ulps.

Example::

    mod = generate(program, "f")
    print(mod.source)          # extern "C" __global__ void sn_f_k0(...) ...
    mod.steps                  # (Launch(symbol='sn_f_k0', block=256, ...), ...)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from syntonic.ir.errors import BackendError
from syntonic.ir.types import DType
from syntonic.lower.cuda.plan import (
    FULL_MAX_BLOCKS,
    Arg,
    BufferArg,
    CudaModule,
    GridArg,
    Launch,
    LoopStep,
    OpaqueStep,
    Scratch,
    ScratchArg,
    Step,
)
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Const,
    Iota,
    Kernel,
    Load,
    Program,
    Reduction,
    Store,
    check_kernel,
)
from syntonic.lower.view import View

CODEGEN_VERSION = "cuda-codegen-1"
TILE = 16  # matmul output tile (TILE x TILE threads per block)
ROW_BLOCK_MAX = 256
ELEM_BLOCK = 256

VALUE_C = {DType.bool: "bool", DType.i32: "int", DType.i64: "long long", DType.f16: "float",
           DType.f32: "float", DType.f64: "double"}
STORAGE_C = {**VALUE_C, DType.bool: "unsigned char", DType.f16: "sn_half"}
UNSIGNED_C = {DType.i32: "unsigned", DType.i64: "unsigned long long"}
_SUFFIX = {"float": "f", "double": ""}


# ----------------------------------------------------------------- scalar rules


def c_const(dt: DType, value: Any) -> str:
    """A C literal of value type `dt` (hex floats: exact; NaN/inf through bit patterns)."""
    if dt.is_bool:
        return "true" if value else "false"
    if dt.is_int:
        v = int(np.asarray(value).astype(dt.np))
        suffix = "LL" if dt is DType.i64 else ""
        lo = int(np.iinfo(dt.np).min)
        return f"({lo + 1}{suffix} - 1)" if v == lo else f"{v}{suffix}"
    return _float_lit(float(np.asarray(value).astype(dt.np)), VALUE_C[dt])


def _float_lit(v: float, ctype: str) -> str:
    f = "f" if ctype == "float" else "d"
    if math.isnan(v):
        return f"sn_nan_{f}()"
    if math.isinf(v):
        return f"sn_inf_{f}()" if v > 0 else f"(-sn_inf_{f}())"
    return f"({v.hex()}{_SUFFIX[ctype]})"


def _zero(dt: DType) -> str:
    return c_const(dt, 0)


def _fn(name: str, dt: DType) -> str:
    """The precise C math function `name` for float dtype `dt` (expf / exp)."""
    return name + ("f" if VALUE_C[dt] == "float" else "")


def _wrap(op: str, a: str, b: str, dt: DType) -> str:
    u = UNSIGNED_C[dt]
    return f"(({VALUE_C[dt]})(({u})({a}) {op} ({u})({b})))"


Rule = Callable[[list[str], dict[str, Any], tuple[DType, ...], DType], str]
RULES: dict[str, Rule] = {}
# ops whose f16 result must be rounded back to f16 (the others are exact on f16 values)
ROUNDS_F16 = {"add", "sub", "mul", "div", "pow", "exp", "log", "sqrt", "rsqrt", "sin", "cos",
              "tanh", "sigmoid", "erf"}


def _arith(op: str) -> Rule:
    def rule(a: list[str], attrs: dict, ins: tuple, out: DType) -> str:
        return f"({a[0]} {op} {a[1]})" if out.is_float else _wrap(op, a[0], a[1], out)

    return rule


RULES["add"] = _arith("+")
RULES["sub"] = _arith("-")
RULES["mul"] = _arith("*")
RULES["div"] = lambda a, attrs, ins, out: f"({a[0]} / {a[1]})"
RULES["neg"] = lambda a, attrs, ins, out: (f"(-{a[0]})" if out.is_float
                                           else _wrap("-", "0", a[0], out))
RULES["abs"] = lambda a, attrs, ins, out: (
    f"{_fn('fabs', out)}({a[0]})" if out.is_float
    else f"({a[0]} < 0 ? {_wrap('-', '0', a[0], out)} : {a[0]})")
RULES["floor"] = lambda a, attrs, ins, out: f"{_fn('floor', out)}({a[0]})"
RULES["sign"] = lambda a, attrs, ins, out: f"sn_sign({a[0]})"
RULES["rsqrt"] = lambda a, attrs, ins, out: f"({c_const(out, 1.0)} / {_fn('sqrt', out)}({a[0]}))"
RULES["sigmoid"] = lambda a, attrs, ins, out: f"sn_sigmoid({a[0]})"
RULES["pow"] = lambda a, attrs, ins, out: f"{_fn('pow', out)}({a[0]}, {a[1]})"
for _name in ("exp", "log", "sqrt", "sin", "cos", "tanh", "erf"):
    RULES[_name] = (lambda n: lambda a, attrs, ins, out: f"{_fn(n, out)}({a[0]})")(_name)


def _minmax(which: str) -> Rule:
    def rule(a: list[str], attrs: dict, ins: tuple, out: DType) -> str:
        if out.is_bool:
            return f"({a[0]} {'||' if which == 'max' else '&&'} {a[1]})"
        kind = "f" if out.is_float else "i"
        return f"sn_{kind}{which}({a[0]}, {a[1]})"

    return rule


RULES["maximum"] = _minmax("max")
RULES["minimum"] = _minmax("min")
for _name, _op in {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}.items():
    RULES[_name] = (lambda o: lambda a, attrs, ins, out: f"({a[0]} {o} {a[1]})")(_op)
RULES["select"] = lambda a, attrs, ins, out: f"({a[0]} ? {a[1]} : {a[2]})"
for _name, _op in {"bitand": "&", "bitor": "|", "bitxor": "^"}.items():
    RULES[_name] = (lambda o: lambda a, attrs, ins, out: f"({a[0]} {o} {a[1]})")(_op)


def _shift(left: bool) -> Rule:
    def rule(a: list[str], attrs: dict, ins: tuple, out: DType) -> str:
        if out.is_bool:  # reference: any positive shift of a bool gives False
            return f"({a[1]} ? false : {a[0]})"
        width = 8 * out.itemsize
        return f"sn_{'shl' if left else 'shr'}{width}({a[0]}, {a[1]})"

    return rule


RULES["shl"] = _shift(True)
RULES["shr"] = _shift(False)
RULES["cast"] = lambda a, attrs, ins, out: convert(a[0], ins[0], out)


def convert(x: str, src: DType, dst: DType) -> str:
    """numpy ``astype`` of value `x`, with the registry's defined float->int rule."""
    if src == dst:
        return x
    if dst.is_bool:
        return f"({x} != {_zero(src)})"  # NaN != 0: True, as numpy
    if dst is DType.f16:
        if src is DType.f64:
            return f"sn_rhd({x})"
        return f"sn_rh((float)({x}))"  # ints > 2**24 overflow f16 anyway: exact via float
    if dst.is_float:
        return f"(({VALUE_C[dst]})({x}))"
    if not src.is_float:  # bool/int -> int: sign-extend or wrap (modular)
        return f"(({VALUE_C[dst]})({x}))"
    # float -> int: truncate; NaN, inf and out-of-range give 0 (registry rule): in range
    # means trunc(x) in [-2^(b-1), 2^(b-1)), both bounds exact in float and double (f16
    # values are computed in float, and every finite one fits).
    hi = -float(np.iinfo(dst.np).min)
    ct = VALUE_C[src]
    t = f"{'trunc' if ct == 'double' else 'truncf'}({x})"
    return (f"(({t} >= {_float_lit(-hi, ct)} && {t} < {_float_lit(hi, ct)}) ? "
            f"({VALUE_C[dst]})({x}) : {_zero(dst)})")


# Elementwise registry ops without a CUDA rule (none today) and why.
UNSUPPORTED: dict[str, str] = {}


# ----------------------------------------------------------------- reductions


def acc_ctype(r: Reduction) -> str:
    """The C type a reduction accumulates in (f64 for float sums/products)."""
    if r.dtype.is_float:
        if r.op in ("sum", "mean", "prod") or r.dtype is DType.f64:
            return "double"
        return "float"
    return UNSIGNED_C[r.dtype] if r.op in ("sum", "mean", "prod") else VALUE_C[r.dtype]


def acc_dtype(r: Reduction) -> DType:
    """The storage dtype of a partial of `r` (scratch buffers)."""
    ct = acc_ctype(r)
    if ct in ("double", "float"):
        return DType.f64 if ct == "double" else DType.f32
    return r.dtype


def _identity(r: Reduction) -> str:
    ct = acc_ctype(r)
    if r.op in ("sum", "mean"):
        return f"(({ct})0)"
    if r.op == "prod":
        return f"(({ct})1)"
    big = r.op == "min"
    if r.dtype.is_float:
        lit = _float_lit(math.inf if big else -math.inf, ct)
        return lit
    info = np.iinfo(r.dtype.np)
    return c_const(r.dtype, info.max if big else info.min)


def _combine_op(r: Reduction) -> str:
    """The functor (see the prelude) that combines two partials of `r`."""
    if r.op in ("sum", "mean"):
        return "sn_add_op()"
    if r.op == "prod":
        return "sn_mul_op()"
    kind = "f" if r.dtype.is_float else "i"
    return f"sn_{kind}{r.op}_op()"


def _finalize(r: Reduction, a: str, count: int) -> str:
    """The final value (value type of r.dtype) of accumulator variable `a`."""
    if r.op == "mean":
        a = f"({a} / {_float_lit(float(count), 'double')})"
    if r.dtype is DType.f16:
        return f"sn_rhd({a})" if acc_ctype(r) == "double" else a
    return f"(({VALUE_C[r.dtype]})({a}))"


# ----------------------------------------------------------------- the prelude

# Helpers every module starts with (guarded, so several modules can share one source).
# f16 conversions are PTX instructions, so the source needs no header (NVRTC's wheel has
# no cuda_fp16.h); the host emulation (emu.h, SN_EMULATION) defines them in C++.
PRELUDE = r"""#ifndef SN_PRELUDE_1
#define SN_PRELUDE_1
typedef unsigned short sn_half;  // IEEE binary16 bits (the layout of __half)
#ifndef SN_EMULATION
__device__ __forceinline__ float sn_h2f(sn_half h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ sn_half sn_f2h(float f) {
  sn_half h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ sn_half sn_d2h(double d) {
  sn_half h; asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d)); return h; }
#endif
__device__ __forceinline__ float sn_rh(float x) { return sn_h2f(sn_f2h(x)); }
__device__ __forceinline__ float sn_rhd(double x) { return sn_h2f(sn_d2h(x)); }
__device__ __forceinline__ float sn_inf_f() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float sn_nan_f() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ double sn_inf_d() { return __longlong_as_double(0x7ff0000000000000LL); }
__device__ __forceinline__ double sn_nan_d() { return __longlong_as_double(0x7ff8000000000000LL); }
__device__ __forceinline__ bool sn_signbit(float x) { return __float_as_int(x) < 0; }
__device__ __forceinline__ bool sn_signbit(double x) { return __double_as_longlong(x) < 0; }
// IEEE 754-2019 maximum/minimum (the registry's rule): NaN propagates, +0 > -0.
template <class T> __device__ __forceinline__ T sn_fmax(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return sn_signbit(a) ? b : a;
  return a > b ? a : b;
}
template <class T> __device__ __forceinline__ T sn_fmin(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return sn_signbit(a) ? a : b;
  return a < b ? a : b;
}
template <class T> __device__ __forceinline__ T sn_imax(T a, T b) { return a > b ? a : b; }
template <class T> __device__ __forceinline__ T sn_imin(T a, T b) { return a < b ? a : b; }
template <class T> __device__ __forceinline__ T sn_sign(T x) {  // numpy sign: NaN stays
  return x != x ? x : (x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : (T)0));
}
__device__ __forceinline__ float sn_sigmoid(float x) {
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
__device__ __forceinline__ double sn_sigmoid(double x) {
  const double e = exp(-fabs(x));
  return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
// Logical shifts of the bit pattern; amounts outside [0, width) give 0 (registry rule).
__device__ __forceinline__ int sn_shl32(int x, int y) {
  return (y >= 0 && y < 32) ? (int)((unsigned)x << y) : 0; }
__device__ __forceinline__ int sn_shr32(int x, int y) {
  return (y >= 0 && y < 32) ? (int)((unsigned)x >> y) : 0; }
__device__ __forceinline__ long long sn_shl64(long long x, long long y) {
  return (y >= 0 && y < 64) ? (long long)((unsigned long long)x << y) : 0; }
__device__ __forceinline__ long long sn_shr64(long long x, long long y) {
  return (y >= 0 && y < 64) ? (long long)((unsigned long long)x >> y) : 0; }
struct sn_add_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return a + b; } };
struct sn_mul_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return a * b; } };
struct sn_fmax_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return sn_fmax(a, b); } };
struct sn_fmin_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return sn_fmin(a, b); } };
struct sn_imax_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return sn_imax(a, b); } };
struct sn_imin_op { template <class T> __device__ __forceinline__ T operator()(T a, T b) const {
  return sn_imin(a, b); } };
// Reduce v over the block (blockDim.x a multiple of 32, every thread calling); every thread
// gets the result. sm: 33 elements of shared memory. The order is fixed: deterministic.
template <class T, class Op> __device__ T sn_block_reduce(T v, Op op, T* sm) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if (nw == 1) return __shfl_sync(0xffffffffu, v, 0);  // one warp: no shared memory
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = sm[lane < nw ? lane : 0];
    for (unsigned o = 16; o > 0; o >>= 1) {
      const T other = __shfl_down_sync(0xffffffffu, w, o);
      if (lane + o < nw) w = op(w, other);
    }
    if (lane == 0) sm[32] = w;
  }
  __syncthreads();
  const T r = sm[32];
  __syncthreads();
  return r;
}
#endif  // SN_PRELUDE_1"""


# ----------------------------------------------------------------- emission helpers


class _Writer:
    """Indented C lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    @contextmanager
    def block(self, head: str) -> Iterator[None]:
        self(f"{head} {{" if head else "{")
        self.depth += 1
        yield
        self.depth -= 1
        self("}")

    def text(self) -> str:
        return "\n".join(self.lines)


class _Scope:
    """C names of node values (and of the index coordinates) valid at a point of the code."""

    def __init__(self, parent: _Scope | None, coords: dict[int, str] | None = None) -> None:
        self.parent = parent
        self.names: dict[int, str] = {}
        self.coords = dict(coords if coords is not None else (parent.coords if parent else {}))

    def find(self, idx: int) -> str | None:
        s: _Scope | None = self
        while s is not None:
            if idx in s.names:
                return s.names[idx]
            s = s.parent
        return None


def _comment(text: str) -> str:
    """`text` made safe for a ``//`` comment (printable ASCII, no backslash)."""
    return "".join(c if 32 <= ord(c) < 127 and c != "\\" else f"<U+{ord(c):04X}>" for c in text)


def _symbol(name: str) -> str:
    return "sn_" + "".join(c if c.isascii() and c.isalnum() else "_" for c in name)


def row_block(inner: int) -> int:
    """Threads per block for rows of `inner` points: a power of two in [32, 256]."""
    return min(ROW_BLOCK_MAX, max(32, 1 << max(inner - 1, 0).bit_length()))


def _view_extent(view: View) -> int:
    return view.offset + sum(max(d.size - 1, 0) * abs(d.stride) for d in view.dims) + 1


# ----------------------------------------------------------------- the generator


def generate(program: Program, name: str) -> CudaModule:
    """The CUDA C translation unit of `program` and its steps (see the module docstring).

    Kernel symbols are ``sn_<name>_k<i>`` (plus ``_p<phase>`` / ``_c<phase>`` for the
    launches of a full reduction), so modules of different names can share one source.
    Raises BackendError for an op without a rule.
    """
    gen = _ModuleGen(program, _symbol(name))
    return gen.run(name)


class _ModuleGen:
    def __init__(self, prog: Program, prefix: str, out: _Writer | None = None) -> None:
        self.prog = prog
        self.prefix = prefix
        self.out = out or _Writer()
        self.steps: list[Step] = []
        self.scratch: list[Scratch] = []

    def run(self, name: str) -> CudaModule:
        self.out(f"// Syntonic CUDA module {_comment(name)} ({CODEGEN_VERSION})")
        self.out(PRELUDE)
        self.kernels()
        return CudaModule(name, self.out.text() + "\n", tuple(self.steps), tuple(self.scratch))

    def kernels(self) -> None:
        from syntonic.lower.cuda import rowloop

        for idx, k in enumerate(self.prog.kernels):
            check_kernel(k)
            rows = rowloop.row_programs(k) if k.loop is not None else None
            if rows is not None:  # row-local: one kernel, a thread block per row
                rowloop.emit(self, idx, k, rows)
                continue
            if k.loop is not None:  # host-driven; its sub-programs' kernels go here too
                subs = []
                for tag, sub in (("c", k.loop.cond), ("b", k.loop.body)):
                    gen = _ModuleGen(sub, f"{self.prefix}_k{idx}{tag}", self.out)
                    gen.kernels()
                    subs.append(CudaModule(f"{sub.name}", "", tuple(gen.steps),
                                           tuple(gen.scratch)))
                self.steps.append(LoopStep(idx, subs[0], subs[1]))
                continue
            if k.opaque is not None:
                self.steps.append(OpaqueStep(idx))
                continue
            _KernelGen(self, idx, k).emit()

    def new_scratch(self, dtype: DType, size: int, what: str,
                    data: np.ndarray | None = None) -> int:
        self.scratch.append(Scratch(len(self.scratch), dtype, size, what, data))
        return len(self.scratch) - 1


class _KernelGen:
    """Emits the kernel(s) of one kernel-IR kernel and appends its launch steps."""

    def __init__(self, mod: _ModuleGen, idx: int, k: Kernel) -> None:
        self.m = mod
        self.idx = idx
        self.k = k
        self.symbol = f"{mod.prefix}_k{idx}"
        self.w = mod.out
        space = k.space
        extents = [math.prod(space)]
        views = [n.view for n in k.nodes if isinstance(n, (Load, Iota))]
        views += [s.view for s in k.stores]
        if k.contraction is not None:
            views += [k.contraction.lhs.view, k.contraction.rhs.view]
        extents += [_view_extent(v) for v in views]
        self.ix = "int" if max(extents) < 2**30 else "long long"
        self.inner = set(k.reduce_axes) if k.reduce_axes else set(range(len(space)))
        self.varying = self._varying()
        self.shared: dict[str, str] = {}  # acc C type -> shared array name

    # ------------------------------------------------------------ analysis
    def _varying(self) -> list[bool]:
        out: list[bool] = []
        c = self.k.contraction.acc if self.k.contraction else None
        for n in self.k.nodes:
            if isinstance(n, (Load, Iota)):
                out.append(any(n.view.depends_on(a) for a in self.inner))
            elif isinstance(n, Acc):
                out.append(n.acc == c)
            elif isinstance(n, Apply):
                out.append(any(out[a] for a in n.args))
            else:
                out.append(False)
        return out

    def describe(self, what: str = "") -> None:
        """Writes the kernel's comment lines (`what` before its name)."""
        ops = ", ".join(str(op) for op in self.k.ops) or "(no source ops)"
        self.w(f"// {what}{_comment(self.k.name)} [{self.k.kind}] space={list(self.k.space)} "
               f"reduce={list(self.k.reduce_axes)}")
        self.w(f"// source: {_comment(ops)}")

    def header(self, symbol: str, extra: list[str], bounds: int = 0) -> str:
        """Writes the kernel's comment lines and returns its signature (open a block on it)."""
        self.w("")
        self.describe()
        lb = f"__launch_bounds__({bounds}) " if bounds else ""
        params = [self.buffer_param(b) for b in self.buffers()] + extra
        return f'extern "C" __global__ void {lb}{symbol}({", ".join(params)})'

    def buffers(self) -> list[int]:
        return sorted(set(self.k.reads) | set(self.k.writes))

    def buffer_args(self) -> list[Arg]:
        return [BufferArg(b) for b in self.buffers()]

    def buffer_param(self, bid: int) -> str:
        ct = STORAGE_C[self.m.prog.buffers[bid].type.dtype]
        const = "" if bid in self.k.writes else "const "
        return f"{const}{ct}* __restrict__ b{bid}"

    # ------------------------------------------------------------ dispatch
    def emit(self) -> None:
        k = self.k
        if k.contraction is not None and not k.reductions:
            self.emit_matmul()
        elif k.reductions and k.outer_axes:
            self.emit_rows()
        elif k.reductions:
            self.emit_full()
        else:
            self.emit_elementwise()

    def launch(self, symbol: str, args: list[Arg], block: int, work: int, per_block: int,
               stage: str, **kw: Any) -> int:
        self.m.steps.append(Launch(self.idx, symbol, tuple(args), block, work, per_block, stage,
                                   **kw))
        return len(self.m.steps) - 1

    # ------------------------------------------------------------ coordinates
    def decompose(self, var: str, axes: list[int], scope: _Scope) -> None:
        """Coordinates of `axes` (row-major) from the flat index `var`.

        When `axes` are the whole space, `var` is also its flat index (coordinate key -1):
        a contiguous view then reads at `var` without recombining the coordinates.
        """
        if axes == list(range(len(self.k.space))):
            scope.coords[-1] = var
        live = [a for a in axes if self.k.space[a] != 1]
        for a in axes:
            scope.coords[a] = "0"
        rest = var
        for j, a in enumerate(reversed(live)):
            n = self.k.space[a]
            if j == len(live) - 1:
                self.w(f"const {self.ix} i{a} = {rest};")
            else:
                self.w(f"const {self.ix} i{a} = {rest} % {n};")
                self.w(f"const {self.ix} q{a} = {rest} / {n};")
                rest = f"q{a}"
            scope.coords[a] = f"i{a}"

    def offset(self, view: View, coords: dict[int, str]) -> tuple[str, str | None]:
        """C expressions for the element offset of `view` and its validity (None: valid)."""
        if -1 in coords and view.shape == self.k.space and view.is_contiguous:
            return coords[-1], None
        terms = [str(view.offset)] if view.offset else []
        guards: list[str] = []
        for a, d in enumerate(view.dims):
            if (d.size == 1 or d.stride == 0) and not d.masked:
                continue
            i = coords.get(a, "0")
            coord = i
            if d.masked:
                rel = f"({i} - {d.lo})" if d.lo else i
                guards.append(f"{i} >= {d.lo} && {i} < {d.upper}")
                if d.step != 1:
                    guards.append(f"{rel} % {d.step} == 0")
                    rel = f"({rel} / {d.step})"
                coord = rel
            if d.stride != 0:
                terms.append(coord if d.stride == 1 else f"{coord} * {d.stride}")
        off = " + ".join(terms) or "0"
        return off, (" && ".join(f"({g})" for g in guards) if guards else None)

    # ------------------------------------------------------------ values
    def val(self, idx: int, scope: _Scope) -> str:
        found = scope.find(idx)
        if found is not None:
            return found
        node = self.k.nodes[idx]
        if isinstance(node, Const):
            return c_const(node.dtype, node.value)
        if isinstance(node, Acc):
            if self.k.contraction is not None and node.acc == self.k.contraction.acc \
                    and not self.tiled:
                return self.inline_dot(idx, scope)
            return f"acc{node.acc}"
        if isinstance(node, Load):
            expr = self.load(node.buffer, node.view, node.dtype, scope.coords)
        elif isinstance(node, Iota):
            off, valid = self.offset(node.view, scope.coords)
            expr = f"(({off}) / {max(node.div, 1)}) % {max(node.mod, 1)}"
            if valid:
                expr = f"(({valid}) ? ({expr}) : 0)"
            expr = f"(({VALUE_C[node.dtype]})({expr}))"
        elif isinstance(node, Apply):
            rule = RULES.get(node.op)
            if rule is None:
                raise BackendError(f"the CUDA backend has no rule for op {node.op!r} "
                                   f"(kernel {self.k.name})")
            args = [self.val(a, scope) for a in node.args]
            ins = tuple(self.k.nodes[a].dtype for a in node.args)
            expr = rule(args, node.attr, ins, node.dtype)
            if node.dtype is DType.f16 and node.op in ROUNDS_F16:
                expr = f"sn_rh({expr})"
        else:  # pragma: no cover - every node kind is handled above
            raise BackendError(f"unknown kernel node {node!r}")
        name = f"v{idx}"
        self.w(f"const {VALUE_C[node.dtype]} {name} = {expr};")
        scope.names[idx] = name
        return name

    def load(self, bid: int, view: View, dt: DType, coords: dict[int, str]) -> str:
        off, valid = self.offset(view, coords)
        raw = f"b{bid}[{off}]"
        if dt.is_bool:
            raw = f"({raw} != 0)"
        elif dt is DType.f16:
            raw = f"sn_h2f({raw})"
        return f"(({valid}) ? {raw} : {_zero(dt)})" if valid else raw

    def store(self, st: Store, scope: _Scope) -> None:
        value = self.val(st.value, scope)
        off, _ = self.offset(st.view, scope.coords)
        dt = self.m.prog.buffers[st.buffer].type.dtype
        if dt.is_bool:
            value = f"(unsigned char)({value})"
        elif dt is DType.f16:
            value = f"sn_f2h({value})"
        self.w(f"b{st.buffer}[{off}] = {value};")

    def hoist(self, roots: list[int], scope: _Scope) -> None:
        """Compute in `scope` the values `roots` need that do not vary with the inner index."""
        for idx in self.k.needed(roots):
            if not self.varying[idx] and not isinstance(self.k.nodes[idx], (Const, Acc)):
                self.val(idx, scope)

    def smem(self, ct: str) -> str:
        """The shared array block reductions of C type `ct` use (declared at kernel start)."""
        return self.shared[ct]

    def declare_shared(self, reds: list[Reduction]) -> None:
        self.shared = {}
        for r in reds:
            ct = acc_ctype(r)
            if ct not in self.shared:
                name = f"sm{len(self.shared)}"
                self.shared[ct] = name
                self.w(f"__shared__ {ct} {name}[33];")

    def accumulate(self, r: Reduction, scope: _Scope) -> None:
        v = f"({acc_ctype(r)})({self.val(r.value, scope)})"
        if r.op in ("sum", "mean"):
            self.w(f"a{r.acc} = a{r.acc} + {v};")
        elif r.op == "prod":
            self.w(f"a{r.acc} = a{r.acc} * {v};")
        else:
            self.w(f"a{r.acc} = {_combine_op(r)}(a{r.acc}, {v});")

    def block_reduce(self, r: Reduction) -> None:
        ct = acc_ctype(r)
        self.w(f"a{r.acc} = sn_block_reduce(a{r.acc}, {_combine_op(r)}, {self.smem(ct)});")

    # ------------------------------------------------------------ elementwise
    tiled = False

    def emit_elementwise(self) -> None:
        n = math.prod(self.k.space)
        ix = self.ix
        with self.w.block(self.header(self.symbol, [])):
            self.elementwise_loop(f"({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x",
                                  f"({ix})gridDim.x * ({ix})blockDim.x")
        self.launch(self.symbol, self.buffer_args(), ELEM_BLOCK, n, ELEM_BLOCK, "elementwise")

    def elementwise_loop(self, start: str, stride: str) -> None:
        """Every point of the space, from `start` in steps of `stride` (grid or block)."""
        ix = self.ix
        n = math.prod(self.k.space)
        with self.w.block(f"for ({ix} t = {start}; t < {n}; t += {stride})"):
            top = _Scope(None)
            self.decompose("t", list(range(len(self.k.space))), top)
            self.phases_at_point(top)

    def phases_at_point(self, top: _Scope) -> None:
        """Every phase at one point of a kernel without reduce axes (fresh values each)."""
        for phase in self.k.phases:
            with self.w.block(""):
                scope = _Scope(top)
                for st in (*phase.stores, *phase.row_stores):
                    self.store(st, scope)

    # ------------------------------------------------------------ rows
    def emit_rows(self) -> None:
        with self.w.block(self.header(self.symbol, [])):
            self.rows_loop("blockIdx.x", "gridDim.x")
        inner = math.prod(self.k.inner_shape)
        self.launch(self.symbol, self.buffer_args(), row_block(inner),
                    math.prod(self.k.outer_shape), 1, "rows")

    def rows_loop(self, start: str, stride: str) -> None:
        """The rows from `start` in steps of `stride`, each reduced by the whole block."""
        k = self.k
        self.declare_shared(list(k.reductions))
        with self.w.block(f"for ({self.ix} row = {start}; row < {math.prod(k.outer_shape)}; "
                          f"row += {stride})"):
            row_scope = _Scope(None)
            self.decompose("row", list(k.outer_axes), row_scope)
            for a in k.reduce_axes:
                row_scope.coords[a] = "0"
            for phase in k.phases:
                self.phase_rows(phase, row_scope, math.prod(k.inner_shape))

    def phase_rows(self, phase: Any, row_scope: _Scope, inner: int) -> None:
        roots = [r.value for r in phase.reductions] + [s.value for s in phase.stores]
        self.hoist(roots, row_scope)
        for r in phase.reductions:
            self.w(f"{acc_ctype(r)} a{r.acc} = {_identity(r)};")
        if roots:
            with self.w.block(f"for ({self.ix} r = threadIdx.x; r < {inner}; "
                              f"r += blockDim.x)"):
                scope = _Scope(row_scope)
                self.decompose("r", list(self.k.reduce_axes), scope)
                r = len(self.k.space)
                if self.k.reduce_axes == tuple(range(r - len(self.k.reduce_axes), r)):
                    scope.coords[-1] = f"(row * {inner} + r)"  # trailing axes: row-major
                for r in phase.reductions:
                    self.accumulate(r, scope)
                for st in phase.stores:
                    self.store(st, scope)
        for r in phase.reductions:
            self.block_reduce(r)
            self.w(f"const {VALUE_C[r.dtype]} acc{r.acc} = {_finalize(r, f'a{r.acc}', inner)};")
        if phase.row_stores:
            with self.w.block("if (threadIdx.x == 0)"):
                scope = _Scope(row_scope)
                for st in phase.row_stores:
                    self.store(st, scope)

    # ------------------------------------------------------------ full reductions
    def emit_full(self) -> None:
        k = self.k
        n = math.prod(k.space)
        finals: dict[int, int] = {}
        for p, phase in enumerate(k.phases):
            earlier = dict(finals)
            parts = {r.acc: self.m.new_scratch(acc_dtype(r), FULL_MAX_BLOCKS,
                                               f"{k.name} partials of acc {r.acc}")
                     for r in phase.reductions}
            for r in phase.reductions:
                fin_dt = DType.f32 if r.dtype is DType.f16 else r.dtype
                finals[r.acc] = self.m.new_scratch(fin_dt, 1, f"{k.name} acc {r.acc}")
            fin_params = [f"const {STORAGE_C[self._fin_dtype(a)]}* __restrict__ f{a}"
                          for a in earlier]
            fin_args: list[Arg] = [ScratchArg(s) for s in earlier.values()]
            part_step = -1
            if phase.reductions or phase.stores or (phase.row_stores and not phase.reductions):
                sym = f"{self.symbol}_p{p}"
                params = fin_params + [f"{acc_ctype(r)}* __restrict__ s{r.acc}"
                                       for r in phase.reductions]
                with self.w.block(self.header(sym, params)):
                    self.partial_body(phase, earlier, n)
                args = self.buffer_args() + fin_args + [ScratchArg(parts[r.acc])
                                                        for r in phase.reductions]
                part_step = self.launch(sym, args, ELEM_BLOCK, n, ELEM_BLOCK * 4, "partial",
                                        max_blocks=FULL_MAX_BLOCKS)
            if phase.reductions:
                sym = f"{self.symbol}_c{p}"
                params = fin_params + [f"const {acc_ctype(r)}* __restrict__ s{r.acc}"
                                       for r in phase.reductions]
                params += [f"{STORAGE_C[self._fin_dtype(r.acc, r)]}* __restrict__ f{r.acc}"
                           for r in phase.reductions]
                with self.w.block(self.header(sym, params + ["long long n_part"])):
                    self.combine_body(phase, earlier, n)
                args = self.buffer_args() + fin_args
                args += [ScratchArg(parts[r.acc]) for r in phase.reductions]
                args += [ScratchArg(finals[r.acc]) for r in phase.reductions]
                args.append(GridArg(part_step))
                self.launch(sym, args, ELEM_BLOCK, 1, 1, "combine", max_blocks=1)

    def _fin_dtype(self, acc: int, r: Reduction | None = None) -> DType:
        r = r or next(x for x in self.k.reductions if x.acc == acc)
        return DType.f32 if r.dtype is DType.f16 else r.dtype

    def read_finals(self, earlier: dict[int, int]) -> None:
        for a in earlier:
            r = next(x for x in self.k.reductions if x.acc == a)
            self.w(f"const {VALUE_C[r.dtype]} acc{a} = f{a}[0];")

    def partial_body(self, phase: Any, earlier: dict[int, int], n: int) -> None:
        self.declare_shared(list(phase.reductions))
        self.read_finals(earlier)
        top = _Scope(None)
        for a in range(len(self.k.space)):
            top.coords[a] = "0"
        roots = [r.value for r in phase.reductions] + [s.value for s in phase.stores]
        self.hoist(roots, top)
        for r in phase.reductions:
            self.w(f"{acc_ctype(r)} a{r.acc} = {_identity(r)};")
        ix = self.ix
        start = f"({ix})blockIdx.x * ({ix})blockDim.x + ({ix})threadIdx.x"
        with self.w.block(f"for ({ix} t = {start}; t < {n}; t += ({ix})gridDim.x * "
                          f"({ix})blockDim.x)"):
            scope = _Scope(top)
            self.decompose("t", list(range(len(self.k.space))), scope)
            for r in phase.reductions:
                self.accumulate(r, scope)
            for st in phase.stores:
                self.store(st, scope)
        for r in phase.reductions:
            self.block_reduce(r)
        if phase.reductions:
            with self.w.block("if (threadIdx.x == 0)"):
                for r in phase.reductions:
                    self.w(f"s{r.acc}[blockIdx.x] = a{r.acc};")
        elif phase.row_stores:
            with self.w.block("if (blockIdx.x == 0 && threadIdx.x == 0)"):
                scope = _Scope(top)
                for st in phase.row_stores:
                    self.store(st, scope)

    def combine_body(self, phase: Any, earlier: dict[int, int], n: int) -> None:
        self.declare_shared(list(phase.reductions))
        self.read_finals(earlier)
        for r in phase.reductions:
            self.w(f"{acc_ctype(r)} a{r.acc} = {_identity(r)};")
        with self.w.block("for (long long i = threadIdx.x; i < n_part; i += blockDim.x)"):
            for r in phase.reductions:
                self.w(f"a{r.acc} = {_combine_op(r)}(a{r.acc}, s{r.acc}[i]);")
        for r in phase.reductions:
            self.block_reduce(r)
            self.w(f"const {VALUE_C[r.dtype]} acc{r.acc} = {_finalize(r, f'a{r.acc}', n)};")
        with self.w.block("if (threadIdx.x == 0)"):
            for r in phase.reductions:
                self.w(f"f{r.acc}[0] = acc{r.acc};")
            scope = _Scope(None)
            for a in range(len(self.k.space)):
                scope.coords[a] = "0"
            for st in phase.row_stores:
                self.store(st, scope)

    # ------------------------------------------------------------ contraction
    def operand(self, which: str, coords: dict[int, str]) -> str:
        c = self.k.contraction
        assert c is not None
        op = c.lhs if which == "lhs" else c.rhs
        return self.load(op.buffer, op.view, c.dtype, coords)

    def mm_ctype(self) -> str:
        c = self.k.contraction
        assert c is not None
        if c.dtype.is_float:
            return "double" if c.dtype is DType.f64 else "float"
        return UNSIGNED_C[c.dtype]

    def inline_dot(self, idx: int, scope: _Scope) -> str:
        """The contraction accumulator at the current point, by a K loop (untiled)."""
        c = self.k.contraction
        assert c is not None
        r = len(self.k.space)
        ct = self.mm_ctype()
        self.w(f"{ct} d{idx} = 0;")
        with self.w.block(f"for ({self.ix} kk = 0; kk < {c.k}; ++kk)"):
            base = {a: scope.coords.get(a, "0") for a in range(r - 2)}
            lhs = self.operand("lhs", {**base, r - 2: scope.coords.get(r - 2, "0"), r - 1: "kk"})
            rhs = self.operand("rhs", {**base, r - 2: "kk", r - 1: scope.coords.get(r - 1, "0")})
            self.w(f"d{idx} = d{idx} + ({ct})({lhs}) * ({ct})({rhs});")
        name = f"v{idx}"
        fin = f"sn_rh((float)d{idx})" if c.dtype is DType.f16 else f"(({VALUE_C[c.dtype]})d{idx})"
        self.w(f"const {VALUE_C[c.dtype]} {name} = {fin};")
        scope.names[idx] = name
        return name

    def emit_matmul(self) -> None:
        k = self.k
        c = k.contraction
        assert c is not None
        self.tiled = True
        r = len(k.space)
        m_, n_ = k.space[-2], k.space[-1]
        batch = math.prod(k.space[:-2])
        tm, tn = -(-m_ // TILE), -(-n_ // TILE)
        tiles = batch * tm * tn
        ct, ix = self.mm_ctype(), self.ix
        with self.w.block(self.header(self.symbol, [], bounds=TILE * TILE)):
            self.w(f"__shared__ {ct} ta[{TILE}][{TILE + 1}];")
            self.w(f"__shared__ {ct} tb[{TILE}][{TILE + 1}];")
            self.w(f"const int tx = threadIdx.x % {TILE}, ty = threadIdx.x / {TILE};")
            with self.w.block(f"for ({ix} tile = blockIdx.x; tile < {tiles}; "
                              f"tile += gridDim.x)"):
                self.w(f"const {ix} tn = tile % {tn}, tq = tile / {tn};")
                self.w(f"const {ix} tm = tq % {tm}, bt = tq / {tm};")
                top = _Scope(None)
                self.decompose("bt", list(range(r - 2)), top)
                self.w(f"const {ix} i{r - 2} = tm * {TILE} + ty, i{r - 1} = tn * {TILE} + tx;")
                top.coords[r - 2], top.coords[r - 1] = f"i{r - 2}", f"i{r - 1}"
                self.w(f"{ct} acc = 0;")
                with self.w.block(f"for ({ix} k0 = 0; k0 < {c.k}; k0 += {TILE})"):
                    base = {a: top.coords[a] for a in range(r - 2)}
                    la = self.operand("lhs", {**base, r - 2: f"i{r - 2}", r - 1: "(k0 + tx)"})
                    lb = self.operand("rhs", {**base, r - 2: "(k0 + ty)", r - 1: f"i{r - 1}"})
                    self.w(f"ta[ty][tx] = (i{r - 2} < {m_} && k0 + tx < {c.k}) ? "
                           f"({ct})({la}) : ({ct})0;")
                    self.w(f"tb[ty][tx] = (k0 + ty < {c.k} && i{r - 1} < {n_}) ? "
                           f"({ct})({lb}) : ({ct})0;")
                    self.w("__syncthreads();")
                    with self.w.block(f"for (int kk = 0; kk < {TILE}; ++kk)"):
                        self.w("acc = acc + ta[ty][kk] * tb[kk][tx];")
                    self.w("__syncthreads();")
                with self.w.block(f"if (i{r - 2} < {m_} && i{r - 1} < {n_})"):
                    fin = "sn_rh((float)acc)" if c.dtype is DType.f16 else \
                        f"(({VALUE_C[c.dtype]})acc)"
                    self.w(f"const {VALUE_C[c.dtype]} acc{c.acc} = {fin};")
                    self.phases_at_point(top)
        self.launch(self.symbol, self.buffer_args(), TILE * TILE, tiles, 1, "matmul",
                    fixed_block=True)


__all__ = ["CODEGEN_VERSION", "RULES", "UNSUPPORTED", "convert", "generate"]
