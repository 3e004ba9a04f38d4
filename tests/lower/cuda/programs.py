"""Hand-built kernel-IR programs for the CUDA backend, beyond tests/lower/cpu/programs.py.

Each covers a kernel shape the CUDA code generator lowers differently: multi-phase full
reductions (several launches), batched matmul with an epilogue, a contraction inside a
reduction kernel (the untiled K loop), opaque steps between native kernels, interior
padding and strided slices, rank-0 and empty spaces.
"""

from __future__ import annotations

from syntonic.ir.graph import Location
from syntonic.ir.types import DType, TensorType
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Buffer,
    Const,
    Contraction,
    Iota,
    Kernel,
    Load,
    Opaque,
    Operand,
    OutputRef,
    Phase,
    Program,
    Reduction,
    Role,
    SourceOp,
    Store,
)
from syntonic.lower.view import View


def _buf(i: int, dt: DType, shape: tuple[int, ...], role: Role, data=None) -> Buffer:
    return Buffer(i, TensorType(dt, shape), role, f"b{i}", data)


def full_normalize(n: int, dt: DType = DType.f32) -> Program:
    """y = (x - mean(x)) / sqrt(var(x) + 1e-5) over ALL elements (3 phases, one row);
    also stores the mean and the variance (row stores of phases 0 and 1)."""
    shape = (n,)
    v = View.contiguous(shape)
    scalar = View((), 0).broadcast(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, shape, Role.OUTPUT),
            _buf(2, dt, (), Role.OUTPUT), _buf(3, dt, (), Role.OUTPUT))
    nodes = (Load(0, v, dt), Acc(0, dt), Apply("sub", (0, 1), (), dt),
             Apply("mul", (2, 2), (), dt), Acc(1, dt), Const(1e-5, dt),
             Apply("add", (4, 5), (), dt), Apply("rsqrt", (6,), (), dt),
             Apply("mul", (2, 7), (), dt))
    phases = (
        Phase(reductions=(Reduction(0, "mean", 0, dt),), row_stores=(Store(2, scalar, 1),)),
        Phase(reductions=(Reduction(1, "mean", 3, dt),), row_stores=(Store(3, scalar, 4),)),
        Phase(stores=(Store(1, v, 8),)),
    )
    loc = Location("model.py", 42)
    k = Kernel("k_fullnorm", shape, (0,), nodes, phases,
               ops=(SourceOp("mean", loc), SourceOp("sub", Location("model.py", 43))))
    return Program("fullnorm", bufs, (0,), (OutputRef(1, TensorType(dt, shape)),
                                            OutputRef(2, TensorType(dt, ())),
                                            OutputRef(3, TensorType(dt, ()))), (k,))


def batched_matmul(b: int, m: int, k: int, n: int, dt: DType = DType.f32,
                   transpose_rhs: bool = False) -> Program:
    """tanh(x @ w) * 2 for batched operands (w optionally read transposed)."""
    space = (b, m, n)
    rhs_view = View.contiguous((b, n, k)).transpose((0, 2, 1)) if transpose_rhs \
        else View.contiguous((b, k, n))
    rhs_shape = (b, n, k) if transpose_rhs else (b, k, n)
    bufs = (_buf(0, dt, (b, m, k), Role.PARAM), _buf(1, dt, rhs_shape, Role.PARAM),
            _buf(2, dt, space, Role.OUTPUT))
    nodes = (Acc(0, dt), Apply("tanh", (0,), (), dt), Const(2.0, dt),
             Apply("mul", (1, 2), (), dt))
    c = Contraction(0, Operand(0, View.contiguous((b, m, k))), Operand(1, rhs_view), dt)
    phase = Phase(stores=(Store(2, View.contiguous(space), 3),))
    ops = (SourceOp("matmul", Location("nn.py", 7)),)
    kern = Kernel("k_bmm", space, (), nodes, (phase,), contraction=c, ops=ops)
    return Program("bmm", bufs, (0, 1), (OutputRef(2, TensorType(dt, space)),), (kern,))


def int_matmul(m: int, k: int, n: int, dt: DType = DType.i32) -> Program:
    """x @ w on integers (wrapping), no epilogue beyond the store."""
    space = (m, n)
    bufs = (_buf(0, dt, (m, k), Role.PARAM), _buf(1, dt, (k, n), Role.PARAM),
            _buf(2, dt, space, Role.OUTPUT))
    c = Contraction(0, Operand(0, View.contiguous((m, k))), Operand(1, View.contiguous((k, n))),
                    dt)
    kern = Kernel("k_imm", space, (), (Acc(0, dt),),
                  (Phase(stores=(Store(2, View.contiguous(space), 0),)),), contraction=c)
    return Program("imm", bufs, (0, 1), (OutputRef(2, TensorType(dt, space)),), (kern,))


def matmul_row_sum(m: int, k: int, n: int, full: bool = False) -> Program:
    """sum(x @ w, axis=1) (or over both axes): a contraction inside a reduction kernel
    (the untiled K loop)."""
    dt = DType.f32
    space = (m, n)
    out_shape = (1, 1) if full else (m, 1)
    out_v = View.contiguous(out_shape).broadcast(space)
    bufs = (_buf(0, dt, (m, k), Role.PARAM), _buf(1, dt, (k, n), Role.PARAM),
            _buf(2, dt, out_shape, Role.OUTPUT))
    c = Contraction(0, Operand(0, View.contiguous((m, k))), Operand(1, View.contiguous((k, n))),
                    dt)
    nodes = (Acc(0, dt), Acc(1, dt))
    kern = Kernel("k_mmsum", space, (0, 1) if full else (1,), nodes,
                  (Phase(reductions=(Reduction(1, "sum", 0, dt),),
                         row_stores=(Store(2, out_v, 1),)),), contraction=c)
    return Program("mmsum", bufs, (0, 1), (OutputRef(2, TensorType(dt, out_shape)),), (kern,))


def with_opaque(rows: int, n: int) -> Program:
    """exp(x) -> opaque sum over axis 1 (reference rule on the host) -> + 1."""
    dt = DType.f32
    shape = (rows, n)
    v = View.contiguous(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, shape, Role.TEMP),
            _buf(2, dt, (rows,), Role.TEMP), _buf(3, dt, (rows,), Role.OUTPUT))
    k0 = Kernel("k0_exp", shape, (), (Load(0, v, dt), Apply("exp", (0,), (), dt)),
                (Phase(stores=(Store(1, v, 1),)),))
    k1 = Kernel("k1_sum", (rows,), opaque=Opaque("sum", (("axes", (1,)), ("keepdims", False)),
                                                 (1,), (2,)))
    r = View.contiguous((rows,))
    k2 = Kernel("k2_add", (rows,), (), (Load(2, r, dt), Const(1.0, dt),
                                        Apply("add", (0, 1), (), dt)),
                (Phase(stores=(Store(3, r, 2),)),))
    return Program("opq", bufs, (0,), (OutputRef(3, TensorType(dt, (rows,))),), (k0, k1, k2))


def strided_views() -> Program:
    """Interior padding (pad with step), a strided slice of it, broadcast and iota."""
    dt = DType.f64
    space = (4, 7)
    padded = View.contiguous((3, 3)).pad((1, 0), (0, 1), (0, 2))  # (4, 3 + 2*2 + 1 = 8)
    sliced = padded.slice((0, 1), (4, 8), (1, 1))  # (4, 7)
    col = View.contiguous((7,)).broadcast(space)
    bufs = (_buf(0, dt, (3, 3), Role.PARAM), _buf(1, dt, (7,), Role.PARAM),
            _buf(2, dt, space, Role.OUTPUT), _buf(3, DType.i64, space, Role.OUTPUT))
    iota = Iota(View.contiguous((7, 4)).transpose((1, 0)), 4, 7, DType.i64)
    nodes = (Load(0, sliced, dt), Load(1, col, dt), Apply("add", (0, 1), (), dt), iota)
    k = Kernel("k_strided", space, (), nodes,
               (Phase(stores=(Store(2, View.contiguous(space), 2),
                              Store(3, View.contiguous(space), 3))),))
    return Program("strided", bufs, (0, 1), (OutputRef(2, TensorType(dt, space)),
                                             OutputRef(3, TensorType(DType.i64, space))), (k,))


def scalar_program() -> Program:
    """A rank-0 space: out = x * x + 1 on f32[]."""
    dt = DType.f32
    v = View((), 0)
    bufs = (_buf(0, dt, (), Role.PARAM), _buf(1, dt, (), Role.OUTPUT))
    nodes = (Load(0, v, dt), Apply("mul", (0, 0), (), dt), Const(1.0, dt),
             Apply("add", (1, 2), (), dt))
    k = Kernel("k_scalar", (), (), nodes, (Phase(stores=(Store(1, v, 3),)),))
    return Program("scalar", bufs, (0,), (OutputRef(1, TensorType(dt, ())),), (k,))
