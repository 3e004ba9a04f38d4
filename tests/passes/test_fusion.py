"""Fusion: the acceptance kernel counts, the plan's invariants, and boundary reasons.

Kernel counts use ``sn.spec`` at the sizes of the acceptance criteria (nothing large is
allocated); the same functions at small sizes run through the kernel interpreter and
match the reference interpreter.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import interpret
from syntonic.lower.kernel import Acc, Apply, check_kernel
from syntonic.lower.kernel_interp import run_program
from syntonic.passes.fusion import REASONS, Reason, classify
from tests.passes.reference_functions import CASES, dhsr, harmonize_rows, mlp, row_normalise

ROOT = Path(__file__).resolve().parents[2]


def lowered(name: str, small: bool = False) -> sn.Lowered:
    fn, specs, small_specs, _ = CASES[name]
    return fn.lower(*[sn.spec(s) for s in (small_specs if small else specs)])


# ------------------------------------------------------------------ acceptance


def test_twelve_op_elementwise_chain_is_one_kernel():
    low = lowered("chain12")
    assert len(low.graphs["optimized"].ops) >= 12
    assert [k.kind for k in low.kernels] == ["elementwise"]


def test_harmonize_over_rows_of_4096x4096_is_at_most_two_kernels():
    low = harmonize_rows.lower(sn.spec("f32[4096,4096]"))
    assert len(low.kernels) <= 2
    (k,) = low.kernels
    assert k.space == (4096, 4096) and k.reduce_axes == (1,)
    assert len(k.phases) == 2  # the row energy, then the blend


def test_syntony_over_a_full_vector_is_one_kernel_with_sibling_reductions():
    for name in ("syntony_full", "syntony_three_sums"):
        low = lowered(name)
        (k,) = low.kernels
        assert k.kind == "full_reduce"
        assert len(k.phases) == 1  # all full reductions in one pass over the data
    assert len(lowered("syntony_three_sums").kernels[0].phases[0].reductions) == 3


def test_dhsr_cycle_on_1x248_is_at_most_three_kernels():
    low = dhsr.lower(sn.spec("f32[1,248]"))
    assert len(low.kernels) <= 3
    assert len(low.kernels) == 1


def test_mlp_layer_is_a_matmul_with_a_fused_bias_relu_epilogue():
    low = mlp.lower(sn.spec("f32[256,1024]"), sn.spec("f32[1024,1024]"), sn.spec("f32[1024]"))
    (k,) = low.kernels
    assert k.kind == "matmul" and k.contraction is not None
    ops = {n.op for n in k.nodes if isinstance(n, Apply)}
    assert ops == {"add", "maximum"}
    assert k.contraction.k == 1024 and k.space == (256, 1024)


def test_row_normalise_is_at_most_two_kernels():
    low = row_normalise.lower(sn.spec("f32[4096,4096]"))
    assert len(low.kernels) <= 2
    (k,) = low.kernels
    assert len(k.phases) == 3  # mean, variance, normalise: one kernel re-reading its row


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_kernel_counts(name):
    assert len(lowered(name).kernels) == CASES[name][3]


# ------------------------------------------------------------------ invariants


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_invariants_and_execution(name):
    low = lowered(name, small=True)
    plan, prog = low.plan, low.program
    g = low.optimized
    compute = [op for op in g.ops if classify(op) not in ("const", "iota", "view")]
    members = [op for grp in plan.groups for op in grp.ops]
    assert sorted(map(id, members)) == sorted(map(id, compute))  # each op in one kernel
    # reductions and matmuls are computed once: one accumulator per such op
    heavy = [op for op in compute if classify(op) in ("reduction", "matmul")]
    accs = sum(len(k.reductions) + (k.contraction is not None) for k in prog.kernels)
    assert accs == len(heavy)
    # kernels run in dependency order, and the kernel graph is acyclic
    dag = nx.DiGraph()
    written = {}
    for i, k in enumerate(prog.kernels):
        check_kernel(k)
        dag.add_node(i)
        for b in k.reads:
            if b in written:
                assert written[b] < i
                dag.add_edge(written[b], i)
        for b in k.writes:
            written[b] = i
    assert nx.is_directed_acyclic_graph(dag)
    # every value crossing kernels has a documented reason
    for b in plan.boundaries:
        assert b.reason in REASONS and b.producer < b.consumer
    crossing = {(i, j) for i, j in dag.edges}
    assert crossing <= {(b.producer, b.consumer) for b in plan.boundaries}
    # and the program computes what the traced graph computes
    fn, _, small_specs, _ = CASES[name]
    rng = np.random.default_rng(0)
    args = [np.abs(rng.normal(size=sn.spec(s).shape)).astype(np.float32) + 0.1
            for s in small_specs]
    for got, want in zip(run_program(prog, *args), interpret(low.graphs["traced"], *args)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_boundary_reasons():
    reasons = {name: {b.reason for b in lowered(name).plan.boundaries} for name in CASES}
    assert reasons["sum_then_total"] == {Reason.REDUCTION}
    assert reasons["transpose_computed"] == {Reason.LAYOUT}
    assert reasons["matmul_prologue"] == {Reason.MATMUL}
    assert reasons["strided_reshape"] == {Reason.VIEW}
    assert all(not r for name, r in reasons.items() if CASES[name][3] == 1)


def test_reductions_over_different_axes_do_not_share_a_kernel():
    @sn.jit
    def f(x):
        return sn.sum(x, axis=0), sn.sum(x, axis=1)

    low = f.lower(sn.spec("f32[8,4]"))
    assert sorted(k.reduce_axes for k in low.kernels) == [(0,), (1,)]


def test_shape_mismatch_boundary():
    @sn.jit
    def f(x, y):
        return sn.sum(x, axis=1, keepdims=True) + sn.exp(y)

    low = f.lower(sn.spec("f32[8,4]"), sn.spec("f32[8,1]"))
    assert [b.reason for b in low.plan.boundaries] == [Reason.SHAPE]


def test_size_limit_boundary():
    with sn.config.override(max_kernel_ops=4):
        low = lowered("chain12")
    assert len(low.kernels) > 1
    assert {b.reason for b in low.plan.boundaries} == {Reason.SIZE}


def test_chained_dhsr_cycles_cut_at_the_phase_limit():
    @sn.jit(static_argnames=("n",))
    def evolve(x, n):
        for _ in range(n):
            x = sn.dhsr_cycle(x)
        return x

    low = evolve.lower(sn.spec("f32[4,248]"), n=5)
    # a cycle is 3 phases: 5 cycles (15 phases) fill kernels of at most 4 phases
    assert len(low.kernels) <= 5 and max(len(k.phases) for k in low.kernels) == 4
    assert {b.reason for b in low.plan.boundaries} == {Reason.SIZE}
    with sn.config.override(max_kernel_phases=8):
        assert max(len(k.phases) for k in evolve.lower(sn.spec("f32[4,248]"), n=5).kernels) <= 8
    x = np.random.default_rng(3).normal(size=(3, 248)).astype(np.float32)
    small = evolve.lower(sn.spec("f32[3,248]"), n=3)
    np.testing.assert_allclose(run_program(small.program, x)[0],
                               interpret(small.graphs["traced"], x)[0], rtol=1e-4, atol=1e-5)


def test_elementwise_values_are_not_recomputed_across_kernels():
    @sn.jit
    def f(x):
        y = sn.exp(x)
        return y.T, sn.sum(y, axis=1)

    low = f.lower(sn.spec("f32[4,3]"))
    exps = [n for k in low.kernels for n in k.nodes if isinstance(n, Apply) and n.op == "exp"]
    assert len(exps) == 1


def test_row_values_are_hoisted_accumulators():
    (k,) = harmonize_rows.lower(sn.spec("f32[8,16]")).kernels
    levels = k.levels()
    for idx, node in enumerate(k.nodes):
        if isinstance(node, Acc):
            assert levels[idx].name == "ROW"


def test_every_reason_is_documented():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for reason in Reason:
        assert reason.value in text, reason


def test_dependency_graph_for_analysis_with_networkx():
    import networkx as nx

    import syntonic as sn

    def f(x):
        m = sn.mean(x @ x, axis=1, keepdims=True)
        return sn.exp(x - m)

    plan = sn.jit(f).lower(np.ones((8, 8), np.float32)).plan
    dg = plan.dependency_graph()
    assert isinstance(dg, nx.DiGraph) and nx.is_directed_acyclic_graph(dg)
    assert set(dg.nodes) == {g.id for g in plan.groups}
    assert len(dg.edges) >= 1 and all("reason" in d for _, _, d in dg.edges(data=True))
    order = {g.id: i for i, g in enumerate(plan.groups)}
    assert all(order[a] < order[b] for a, b in dg.edges)
