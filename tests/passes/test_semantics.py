"""The whole compile pipeline preserves semantics, on random graphs (hypothesis).

Per run: 700 random graphs of the primitive ops (every dtype, arbitrary inputs with
NaN, infinities, -0.0, subnormals and extreme values), and 400 random graphs of every
op including the resonant ones (f16/f32/f64, moderate inputs in [-100, 100]). Each is
checked three ways against the reference interpreter on the *traced* graph: the graph
after the whole pass pipeline, and the kernel-IR program built from it, run by the
kernel interpreter.

Tolerances (documented in docs/architecture.md, "Semantics and tolerances"):

- bool and integer outputs: exact.
- float outputs: NaN in exactly the same places, the same infinities, and otherwise
  ``|got - want| <= rtol * max(1, max |want|)`` per output (a norm-wise bound), with
  rtol = 1e-9 (f64), 1e-4 (f32), 2e-2 (f16) for graphs with resonant ops (their reference
  computes in float64, the decomposition in the graph's dtype; f16 in f32), and the
  same bounds for primitive graphs, whose only differences come from the summation
  order of floating-point reductions in numpy (in practice they agree bit for bit).
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syntonic.ir import interpret
from syntonic.ir.registry import Trait, all_ops
from syntonic.lower.kernel_interp import run_program
from syntonic.lower.schedule import lower_to_kernels
from syntonic.passes import run_pipeline
from syntonic.passes.fusion import fuse
from tests.strategies import graphs, inputs_for

PRIMITIVE = [n for n, d in all_ops().items() if not d.has(Trait.RESONANT)]
RTOL = {np.dtype(np.float16): 2e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}

SETTINGS = dict(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def assert_agrees(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Same dtype and shape; exact for bool/int; NaN/inf exact and norm-wise close for floats."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    if got.dtype.kind != "f":
        assert np.array_equal(got, want), f"{what}:\n{got!r}\nvs\n{want!r}"
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w)), f"{what}: NaN differ\n{got!r}\n{want!r}"
    inf = np.isinf(g) | np.isinf(w)
    assert np.array_equal(g[inf], w[inf]), f"{what}: infinities differ\n{got!r}\n{want!r}"
    ok = ~np.isnan(w) & ~inf
    scale = max(1.0, float(np.max(np.abs(w[ok]), initial=0.0)))
    err = float(np.max(np.abs(g[ok] - w[ok]), initial=0.0))
    assert err <= RTOL[got.dtype] * scale, f"{what}: error {err} > {RTOL[got.dtype]} * " \
                                           f"{scale}\n{got!r}\nvs\n{want!r}"


def lower_quietly(g):
    """The kernel program of graph `g` (pipeline unverified, numpy warnings silenced): how
    the backends' random-graph tests lower a case."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return lower_to_kernels(fuse(run_pipeline(g, check=False)[-1].graph))


def check_graph(g, args) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice"
        want = interpret(g, *args)
        optimized = run_pipeline(g, check=True)[-1].graph
        after = interpret(optimized, *args)
        program = lower_to_kernels(fuse(optimized))
        kernels = run_program(program, *args)
    assert len(after) == len(kernels) == len(want)
    for i, (a, k, w) in enumerate(zip(after, kernels, want)):
        assert_agrees(a, w, f"output {i} after the pipeline")
        assert_agrees(k, w, f"output {i} through the kernel IR")


@settings(max_examples=700, **SETTINGS)
@given(st.data())
def test_primitive_graphs_keep_their_results(data):
    g = data.draw(graphs(ops=PRIMITIVE, max_ops=8))
    args = data.draw(inputs_for(g))
    check_graph(g, args)


@settings(max_examples=400, **SETTINGS)
@given(st.data())
def test_graphs_with_resonant_ops_keep_their_results(data):
    g = data.draw(graphs(dtypes=["f16", "f32", "f64", "bool", "i32"], max_ops=6))
    args = data.draw(inputs_for(g, moderate=True))
    check_graph(g, args)


@settings(max_examples=60, **SETTINGS)
@given(st.data())
def test_every_stage_of_random_graphs_verifies_and_reparses(data):
    from syntonic.ir import parse, verify

    g = data.draw(graphs(max_ops=6))
    for stage in run_pipeline(g):
        text = stage.graph.text()
        again = verify(parse(text))
        assert again.text() == text, stage.name
