"""Outputs written into donated parameters (syntonic/lower/inplace.py): which pairs the
analysis allows, and that the runtime writes into a donated array only when nothing but its
container holds it (a copy is updated otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.frontend.pytree import flatten, tree_map
from syntonic.lower.inplace import inplace_outputs
from syntonic.lower.schedule import lower_to_kernels
from syntonic.passes.fusion import fuse
from syntonic.passes.pipeline import run_pipeline


@pytest.fixture(autouse=True)
def _cpu_backend():
    with sn.config.override(device="cpu"):
        yield


def program_of(fn, *args):
    graph = sn.jit(fn).trace(*args)
    return lower_to_kernels(fuse(run_pipeline(graph)[-1].graph))


def pairs(fn, *args, donated=(0,)) -> dict[int, int]:
    prog = program_of(fn, *args)
    found = inplace_outputs(prog, donated)
    # as (output position, parameter position), independent of buffer numbering
    outs = [o.buffer for o in prog.outputs]
    return {outs.index(o): prog.params.index(p) for o, p in found.items()}


W = np.ones((64, 32), np.float32)
G = np.ones((64, 32), np.float32)


def test_an_elementwise_update_is_written_in_place():
    assert pairs(lambda w, g: w - 0.1 * g, W, G) == {0: 0}
    # both donated: each parameter serves one output
    assert pairs(lambda w, g: (w - 0.1 * g, g * 0.9), W, G, donated=(0, 1)) == {0: 0, 1: 1}


def test_unsafe_updates_are_not_written_in_place():
    sq = np.ones((32, 32), np.float32)
    # the update reads the parameter transposed: point i reads another element
    assert pairs(lambda w, g: w.T - 0.1 * g, sq, sq) == {}
    # a later kernel reads the parameter after the update has run
    assert pairs(lambda w, g: (w - 0.1 * g, sn.sum(w * w)), W, G) == {}
    # the parameter is returned as well
    assert pairs(lambda w, g: (w - 0.1 * g, w), W, G) == {}
    # a reduction writes the output (rows re-read the parameter in later phases)
    assert pairs(lambda w, g: w - sn.max(w, axis=1, keepdims=True), W, G) == {}
    # not donated, or another dtype / size
    assert pairs(lambda w, g: w - 0.1 * g, W, G, donated=()) == {}
    assert pairs(lambda w, g: (w - 0.1 * g).astype(np.float64), W, G) == {}
    assert pairs(lambda w, g: sn.sum(w - 0.1 * g, axis=0), W, G) == {}


def test_a_gemm_epilogue_that_reads_the_parameter_in_its_gemm_is_not_in_place():
    x = np.ones((32, 32), np.float32)
    w = np.ones((32, 32), np.float32)
    assert pairs(lambda w, x: w - 0.1 * (x @ w), w, x) == {}
    assert pairs(lambda w, x: w - 0.1 * (x @ x), w, x) == {0: 0}


def _update(p, g):
    return tree_map(lambda a, b: a - 0.5 * b, p, g)


def test_pytree_donated_arrays_are_updated_in_place_and_match_numpy():
    f = sn.jit(_update, donate_argnums=(0,))
    rng = np.random.default_rng(0)
    p = {"a": rng.standard_normal((300, 40)).astype(np.float32),
         "b": [rng.standard_normal(40).astype(np.float32)]}
    g = tree_map(np.ones_like, p)
    want = tree_map(lambda a: a.astype(np.float64), p)
    addresses = None
    for _ in range(4):
        p = f(p, g)
        want = tree_map(lambda a, b: a - 0.5 * b, want, g)
        for got, ref in zip(flatten(p)[0], flatten(want)[0]):
            np.testing.assert_allclose(got, ref, rtol=1e-6)
        del got, ref  # (a variable holding a leaf would keep it from being overwritten)
        now = [a.ctypes.data for a in flatten(p)[0]]
        if addresses is not None:
            assert now == addresses  # the same memory, step after step: updated in place
        addresses = now


def test_an_array_the_caller_still_holds_is_never_overwritten():
    f = sn.jit(_update, donate_argnums=(0,))
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    kept = a  # the caller holds the leaf itself, not just the container
    p = {"a": a}
    g = {"a": np.ones((3, 4), np.float32)}
    del a
    out = f(p, g)
    np.testing.assert_array_equal(kept, np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(out["a"], kept - 0.5)
    assert not np.shares_memory(out["a"], kept)
    # the same array in two donated leaves: neither is written in place
    shared = np.ones(4, np.float32)
    q = f({"x": shared, "y": shared}, {"x": np.ones(4, np.float32),
                                      "y": np.ones(4, np.float32)})
    np.testing.assert_array_equal(shared, np.ones(4, np.float32))
    np.testing.assert_array_equal(q["x"], 0.5)
    np.testing.assert_array_equal(q["y"], 0.5)


def test_explain_never_writes_the_callers_arrays():
    model = sn.nn.Sequential(sn.nn.Linear(16, 8), sn.nn.ReLU(), sn.nn.Linear(8, 4))
    opt = sn.optim.Adam(1e-2)
    step = sn.train.train_step(model, sn.nn.cross_entropy, opt)
    params = model.init(0)
    state = opt.init(params)
    before = tree_map(np.copy, (params, state))
    x = np.ones((8, 16), np.float32)
    y = np.zeros(8, np.int32)
    step.explain(params, state, x, y)
    for got, ref in zip(flatten((params, state))[0], flatten(before)[0]):
        np.testing.assert_array_equal(got, ref)


def test_a_program_with_in_place_outputs_called_without_donation_copies():
    """The compiled program of a donating function, run without donating (as explain's
    kernel timing or a direct call would), updates copies."""
    f = sn.jit(_update, donate_argnums=(0,))
    p = {"a": np.full((8, 8), 2.0, np.float32)}
    g = {"a": np.ones((8, 8), np.float32)}
    f(p, g)
    entry = next(iter(f._cache.values()))
    program = entry.native()
    assert program._inplace
    keep = np.full((8, 8), 2.0, np.float32)
    (out,) = program(keep, g["a"])
    np.testing.assert_array_equal(keep, 2.0)
    np.testing.assert_array_equal(out, 1.5)
