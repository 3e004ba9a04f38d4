"""The kernel IR: hand-built kernels, the checker, levels, phases and the text form."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import TensorType
from syntonic.ir.registry import Trait, all_ops
from syntonic.lower.kernel import (
    REDUCTION_COMBINE,
    Acc,
    Apply,
    Buffer,
    Const,
    Contraction,
    Iota,
    Kernel,
    Level,
    Load,
    Operand,
    OutputRef,
    Phase,
    Program,
    Reduction,
    Role,
    Store,
    check_kernel,
)
from syntonic.lower.kernel_interp import run_program
from syntonic.lower.view import View, row_embedding

F32 = sn.f32
S = (4, 8)
FULL = View.contiguous(S)
ROWS = row_embedding(S, (1,))


def norm_kernel() -> Kernel:
    """y = x / sqrt(sum(x*x)) per row, and the norms."""
    nodes = (Load(0, FULL, F32), Apply("mul", (0, 0), (), F32), Acc(0, F32),
             Apply("sqrt", (2,), (), F32), Apply("div", (0, 3), (), F32))
    phases = (Phase(reductions=(Reduction(0, "sum", 1, F32),)),
              Phase(stores=(Store(1, FULL, 4),), row_stores=(Store(2, ROWS, 3),)))
    return Kernel("k0_norm", S, (1,), nodes, phases)


def program(kernels, extra=()) -> Program:
    bufs = (Buffer(0, TensorType(F32, S), Role.PARAM, "%x"),
            Buffer(1, TensorType(F32, S), Role.OUTPUT),
            Buffer(2, TensorType(F32, (4,)), Role.OUTPUT), *extra)
    return Program("f", bufs, (0,), (OutputRef(1, bufs[1].type), OutputRef(2, bufs[2].type)),
                   tuple(kernels))


def test_a_two_phase_row_kernel_runs():
    k = norm_kernel()
    check_kernel(k)
    assert k.kind == "reduce" and k.outer_shape == (4,) and k.inner_shape == (8,)
    assert k.levels() == (Level.ELEM, Level.ELEM, Level.ROW, Level.ROW, Level.ELEM)
    assert k.reads == (0,) and k.writes == (1, 2)
    x = np.random.default_rng(0).normal(size=S).astype(np.float32)
    y, n = run_program(program([k]), x)
    np.testing.assert_allclose(n, np.sqrt((x * x).sum(1)), rtol=1e-6)
    np.testing.assert_allclose(y, x / n[:, None], rtol=1e-6)


def test_kernel_text():
    text = str(norm_kernel())
    assert text.splitlines()[0] == \
        "kernel @k0_norm reduce space=[4,8] reduce=[1]  (rows [4] x inner [8])"
    assert "acc0 = sum %1 : f32" in text and "store b2[i0] <- %3" in text
    assert "// row" in text
    prog = program([norm_kernel()]).text()
    assert prog.startswith("program @f(b0: f32[4,8]) -> (b1, b2)")


@pytest.mark.parametrize("broken, message", [
    (lambda k: Kernel(k.name, k.space, k.reduce_axes, k.nodes,
                      (Phase(reductions=k.phases[0].reductions, stores=k.phases[1].stores),)),
     "before it is final"),
    (lambda k: Kernel(k.name, k.space, k.reduce_axes, k.nodes,
                      (k.phases[0], Phase(row_stores=(Store(1, FULL, 4),)))),
     "varies along the reduced axes"),
    (lambda k: Kernel(k.name, k.space, k.reduce_axes,
                      (Load(0, View.contiguous((8, 4)), F32), *k.nodes[1:]), k.phases),
     "not the space"),
    (lambda k: Kernel(k.name, k.space, (2,), k.nodes, k.phases), "outside the space"),
    (lambda k: Kernel(k.name, k.space, k.reduce_axes,
                      (*k.nodes[:4], Apply("div", (0, 9), (), F32)), k.phases),
     "later or missing"),
])
def test_checker_rejects_malformed_kernels(broken, message):
    with pytest.raises(sn.IRError, match=message):
        check_kernel(broken(norm_kernel()))


def test_contraction_with_a_transposed_operand_and_an_epilogue():
    w_view = View.contiguous((3, 5)).transpose((1, 0))  # w is stored [3,5], used as [5,3]
    nodes = (Acc(0, F32), Const(1.0, F32), Apply("add", (0, 1), (), F32))
    k = Kernel("k0_matmul", (4, 3), (), nodes,
               (Phase(stores=(Store(2, View.contiguous((4, 3)), 2),)),),
               Contraction(0, Operand(0, View.contiguous((4, 5))), Operand(1, w_view), F32))
    check_kernel(k)
    assert k.kind == "matmul" and k.contraction.k == 5
    bufs = (Buffer(0, TensorType(F32, (4, 5)), Role.PARAM), Buffer(1, TensorType(F32, (3, 5)),
            Role.PARAM), Buffer(2, TensorType(F32, (4, 3)), Role.OUTPUT))
    prog = Program("mm", bufs, (0, 1), (OutputRef(2, bufs[2].type),), (k,))
    rng = np.random.default_rng(1)
    a, w = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(run_program(prog, a, w)[0], a @ w.T + 1, rtol=1e-5)
    assert "acc0 = matmul b0[5*j0 + j1], b1[j0 + 5*j1]" in str(k)


def test_masked_loads_and_iota():
    space = (6,)
    padded = View.contiguous((3,)).pad((1,), (2,), (0,))
    nodes = (Load(0, padded, F32), Iota(View.contiguous(space), 1, 6, F32),
             Apply("add", (0, 1), (), F32))
    k = Kernel("k0_add", space, (), nodes, (Phase(stores=(Store(1, View.contiguous(space), 2),)),))
    bufs = (Buffer(0, TensorType(F32, (3,)), Role.PARAM), Buffer(1, TensorType(F32, space),
                                                                 Role.OUTPUT))
    prog = Program("p", bufs, (0,), (OutputRef(1, bufs[1].type),), (k,))
    out = run_program(prog, np.array([10.0, 20.0, 30.0], np.float32))[0]
    np.testing.assert_array_equal(out, [0, 11, 22, 33, 4, 5])
    assert "if 1<=i0<4" in str(k)


def test_reduction_table_covers_the_registry_reductions():
    for name, d in all_ops().items():
        if d.has(Trait.REDUCTION) and "axes" in dict(d.attrs):
            assert name in REDUCTION_COMBINE, name
    for combine in REDUCTION_COMBINE.values():
        assert all_ops()[combine].has(Trait.ELEMENTWISE)


def test_outputs_may_alias_parameters_and_constants():
    @sn.jit
    def f(x):
        return x, x.reshape(-1), sn.prime_gate(x)  # prime_gate is x for d = 6

    low = f.lower(sn.spec("f32[2,6]"))
    assert low.kernels == ()
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    a, b, c = run_program(low.program, x)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x.reshape(-1))
    np.testing.assert_array_equal(c, x)
