"""Hand-built kernel-IR programs covering each kernel shape the CPU backend lowers."""

from __future__ import annotations

import numpy as np

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
    Operand,
    OutputRef,
    Phase,
    Program,
    Reduction,
    Role,
    Store,
)
from syntonic.lower.view import View


def _buf(i: int, dt: DType, shape: tuple[int, ...], role: Role, data=None) -> Buffer:
    return Buffer(i, TensorType(dt, shape), role, f"b{i}", data)


def elementwise(op: str, dt: DType, shape: tuple[int, ...], arity: int = 1,
                out_dt: DType | None = None, attrs: tuple = ()) -> Program:
    """out = op(x[, y]) over `shape`."""
    out_dt = out_dt or dt
    bufs = [_buf(i, dt, shape, Role.PARAM) for i in range(arity)]
    bufs.append(_buf(arity, out_dt, shape, Role.OUTPUT))
    v = View.contiguous(shape)
    nodes = [Load(i, v, dt) for i in range(arity)]
    nodes.append(Apply(op, tuple(range(arity)), attrs, out_dt))
    k = Kernel(f"k_{op}", shape, (), tuple(nodes), (Phase(stores=(Store(arity, v, arity),)),))
    return Program(op, tuple(bufs), tuple(range(arity)),
                   (OutputRef(arity, TensorType(out_dt, shape)),), (k,))


def select_program(shape: tuple[int, ...]) -> Program:
    """out = select(x > y, x, y * 2)."""
    dt = DType.f32
    v = View.contiguous(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, shape, Role.PARAM),
            _buf(2, dt, shape, Role.OUTPUT))
    nodes = (Load(0, v, dt), Load(1, v, dt), Apply("gt", (0, 1), (), DType.bool),
             Const(2.0, dt), Apply("mul", (1, 3), (), dt), Apply("select", (2, 0, 4), (), dt))
    k = Kernel("k_sel", shape, (), nodes, (Phase(stores=(Store(2, v, 5),)),))
    return Program("sel", bufs, (0, 1), (OutputRef(2, TensorType(dt, shape)),), (k,))


def row_normalize(rows: int, n: int, dt: DType = DType.f32) -> Program:
    """y = (x - mean) / sqrt(var + 1e-5) per row; also returns the row means (multi-phase)."""
    shape = (rows, n)
    v = View.contiguous(shape)
    row_view = View.contiguous((rows, 1)).broadcast(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, shape, Role.OUTPUT),
            _buf(2, dt, (rows, 1), Role.OUTPUT))
    nodes = (
        Load(0, v, dt),                                  # 0 x
        Acc(0, dt),                                      # 1 mean
        Apply("sub", (0, 1), (), dt),                    # 2 x - mean
        Apply("mul", (2, 2), (), dt),                    # 3 d^2
        Acc(1, dt),                                      # 4 var
        Const(1e-5, dt),                                 # 5
        Apply("add", (4, 5), (), dt),                    # 6
        Apply("rsqrt", (6,), (), dt),                    # 7
        Apply("mul", (2, 7), (), dt),                    # 8 y
    )
    phases = (
        Phase(reductions=(Reduction(0, "mean", 0, dt),), row_stores=(Store(2, row_view, 1),)),
        Phase(reductions=(Reduction(1, "mean", 3, dt),)),
        Phase(stores=(Store(1, v, 8),)),
    )
    k = Kernel("k_norm", shape, (1,), nodes, phases)
    return Program("norm", bufs, (0,), (OutputRef(1, TensorType(dt, shape)),
                                        OutputRef(2, TensorType(dt, (rows,)))), (k,))


def full_reduce(n: int, dt: DType = DType.f32) -> Program:
    """cosine(x, y) = sum(xy) / sqrt(sum(xx) * sum(yy)) in one pass (3 accumulators)."""
    shape = (n,)
    v = View.contiguous(shape)
    out_v = View.contiguous(()).broadcast(shape) if False else View(
        tuple(), 0).broadcast(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, shape, Role.PARAM),
            _buf(2, dt, (), Role.OUTPUT))
    nodes = (Load(0, v, dt), Load(1, v, dt), Apply("mul", (0, 1), (), dt),
             Apply("mul", (0, 0), (), dt), Apply("mul", (1, 1), (), dt),
             Acc(0, dt), Acc(1, dt), Acc(2, dt), Apply("mul", (6, 7), (), dt),
             Apply("sqrt", (8,), (), dt), Apply("div", (5, 9), (), dt))
    phases = (Phase(reductions=(Reduction(0, "sum", 2, dt), Reduction(1, "sum", 3, dt),
                                Reduction(2, "sum", 4, dt)),
                    row_stores=(Store(2, out_v, 10),)),)
    k = Kernel("k_cos", shape, (0,), nodes, phases)
    return Program("cos", bufs, (0, 1), (OutputRef(2, TensorType(dt, ())),), (k,))


def reduce_program(op: str, dt: DType, shape: tuple[int, ...], axes: tuple[int, ...]
                   ) -> Program:
    """out = op(x, axes, keepdims=True)."""
    out_shape = tuple(1 if a in axes else d for a, d in enumerate(shape))
    v = View.contiguous(shape)
    out_v = View.contiguous(out_shape).broadcast(shape)
    bufs = (_buf(0, dt, shape, Role.PARAM), _buf(1, dt, out_shape, Role.OUTPUT))
    nodes = (Load(0, v, dt), Acc(0, dt))
    k = Kernel(f"k_{op}", shape, axes, nodes,
               (Phase(reductions=(Reduction(0, op, 0, dt),), row_stores=(Store(1, out_v, 1),)),))
    return Program(op, bufs, (0,), (OutputRef(1, TensorType(dt, out_shape)),), (k,))


def mlp(m: int, k: int, n: int, dt: DType = DType.f32) -> Program:
    """relu(x @ w + b): GEMM + fused epilogue."""
    space = (m, n)
    bufs = (_buf(0, dt, (m, k), Role.PARAM), _buf(1, dt, (k, n), Role.PARAM),
            _buf(2, dt, (n,), Role.PARAM), _buf(3, dt, space, Role.OUTPUT))
    bias = View.contiguous((n,)).broadcast(space)
    nodes = (Acc(0, dt), Load(2, bias, dt), Apply("add", (0, 1), (), dt), Const(0.0, dt),
             Apply("maximum", (2, 3), (), dt))
    c = Contraction(0, Operand(0, View.contiguous((m, k))), Operand(1, View.contiguous((k, n))),
                    dt)
    kern = Kernel("k_mlp", space, (), nodes,
                  (Phase(stores=(Store(3, View.contiguous(space), 4),)),), contraction=c)
    return Program("mlp", bufs, (0, 1, 2), (OutputRef(3, TensorType(dt, space)),), (kern,))


def views_program() -> Program:
    """Transposed, padded (masked) and sliced loads, an iota and a constant buffer."""
    dt = DType.f32
    space = (6, 5)
    xt = View.contiguous((5, 4)).transpose((1, 0)).pad((1, 0), (1, 0), (0, 0))  # (6, 5)
    cst = np.arange(5, dtype=np.float32) * 0.5
    bufs = (_buf(0, dt, (5, 4), Role.PARAM), _buf(1, dt, (5,), Role.CONST, cst),
            _buf(2, dt, space, Role.OUTPUT))
    iota = Iota(View.contiguous(space), 5, 6, DType.i32)
    nodes = (Load(0, xt, dt), Load(1, View.contiguous((5,)).broadcast(space), dt), iota,
             Apply("cast", (2,), (("dtype", DType.f32),), dt), Apply("add", (0, 1), (), dt),
             Apply("mul", (4, 3), (), dt))
    k = Kernel("k_views", space, (), nodes, (Phase(stores=(Store(2, View.contiguous(space), 5),)),))
    return Program("views", bufs, (0,), (OutputRef(2, TensorType(dt, space)),), (k,))
