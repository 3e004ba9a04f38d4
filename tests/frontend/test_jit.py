"""@sn.jit: tracing per signature, caching, numpy-style tracer behaviour, results vs numpy."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def test_traces_once_per_signature_and_caches():
    calls = []

    @sn.jit
    def f(x):
        calls.append(1)
        return x * 2.0

    a = rand(4, 3)
    np.testing.assert_allclose(f(a), a * 2)
    f(rand(4, 3))
    assert len(calls) == 1 and f.cache_size == 1
    f(rand(5, 3))
    f(rand(4, 3).astype(np.float64))
    assert len(calls) == 3 and f.cache_size == 3
    f(x=rand(4, 3))  # keyword call hits the same signature
    assert len(calls) == 3


def test_static_args_key_the_cache_and_unroll_loops():
    @sn.jit(static_argnames=("steps",))
    def run(x, steps):
        for _ in range(steps):
            x = sn.dhsr_cycle(x)
        return x

    x = np.abs(rand(2, 16)) + 0.1
    g2 = run.trace(x, steps=2)
    assert [op.name for op in g2.ops].count("dhsr_cycle") == 2
    assert [op.name for op in run.trace(x, steps=3).ops].count("dhsr_cycle") == 3
    expected = sn.dhsr_cycle(sn.dhsr_cycle(x))
    np.testing.assert_allclose(run(x, steps=2), expected, rtol=1e-6)


def test_operators_methods_and_indexing_match_numpy():
    @sn.jit
    def f(x, y):
        a = (x * 2 + 1) / (y.T @ y + 3.0)[:4, :3]
        b = -abs(x) ** 2 - x // 1.5 + x % 2.0
        c = x[1:, ::2] + x[None, 0, :2].reshape(1, 2)
        d = x.reshape(-1)[::3]
        e = (x > 0) & (x < 1) | ~(x == 0)
        return a, b, c, d, e, x.mean(axis=-1, keepdims=True), x.max(0), x.sum(), x.T.shape[0]

    x, y = rand(4, 3), rand(5, 4)
    a, b, c, d, e, m, mx, s, n = f(x, y)
    np.testing.assert_allclose(a, (x * 2 + 1) / (y.T @ y + 3.0)[:4, :3], rtol=1e-5)
    np.testing.assert_allclose(b, -np.abs(x) ** 2 - x // 1.5 + x % 2.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, x[1:, ::2] + x[None, 0, :2].reshape(1, 2))
    np.testing.assert_allclose(d, x.reshape(-1)[::3])
    np.testing.assert_array_equal(e, (x > 0) & (x < 1) | ~(x == 0))
    np.testing.assert_allclose(m, x.mean(axis=-1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(mx, x.max(0))
    np.testing.assert_allclose(s, x.sum(), rtol=1e-5)
    assert int(n) == 3


def test_numpy_functions_dispatch_to_syntonic_ops():
    @sn.jit
    def f(x):
        return np.exp(x) + np.sqrt(np.abs(x)), np.mean(x, axis=0), np.where(x > 0, x, 0.0)

    x = rand(3, 4)
    a, b, c = f(x)
    np.testing.assert_allclose(a, np.exp(x) + np.sqrt(np.abs(x)), rtol=1e-6)
    np.testing.assert_allclose(b, np.mean(x, axis=0), rtol=1e-6)
    np.testing.assert_allclose(c, np.where(x > 0, x, 0.0))
    names = [op.name for op in f.trace(x).ops]
    assert {"exp", "sqrt", "abs", "mean", "select", "gt"} <= set(names)


def test_python_scalars_are_weakly_typed():
    @sn.jit
    def f(x, s):
        return x * s + 1, x.astype("i32") + 2

    x = rand(3)
    out, ints = f(x, 2.5)
    assert out.dtype == np.float32 and ints.dtype == np.int32
    np.testing.assert_allclose(out, x * np.float32(2.5) + 1, rtol=1e-6)
    g = f.trace(x, 2.5)
    assert str(g.params[1].type) == "f64[]"  # the scalar arrives as f64, then is cast


def test_promotion_follows_numpy_for_arrays():
    @sn.jit
    def f(a, b):
        return a + b, a / 2

    out, half = f(np.ones(3, np.float32), np.ones(3, np.float64))
    assert out.dtype == np.float64
    assert f(np.ones(3, np.int32), np.ones(3, np.int32))[1].dtype == np.float32


def test_pytree_arguments_and_outputs():
    @sn.jit
    def f(params, x):
        y = x @ params["w"] + params["b"]
        return {"y": y, "stats": (y.mean(), y.max())}

    p = {"w": rand(3, 2), "b": rand(2)}
    x = rand(4, 3)
    out = f(p, x)
    np.testing.assert_allclose(out["y"], x @ p["w"] + p["b"], rtol=1e-5)
    assert set(out) == {"y", "stats"} and len(out["stats"]) == 2


def test_trace_with_specs_allocates_nothing_and_is_reusable():
    @sn.jit
    def f(x, w):
        return sn.harmonize(x @ w)

    g = f.trace(sn.spec("f32[4096,4096]"), sn.spec((4096, 248), "f32"))
    assert str(g.output_types[0]) == "f32[4096,248]"
    assert sn.ir.parse(str(g)).text() == str(g)
    sn.ir.verify(g)


def test_nested_jit_is_inlined():
    inner = sn.jit(lambda x: sn.syntony(x))

    @sn.jit
    def outer(x):
        return inner(x) * 2.0

    x = np.abs(rand(2, 8))
    g = outer.trace(x)
    assert "syntony" in [op.name for op in g.ops]
    np.testing.assert_allclose(outer(x), sn.syntony(x) * 2, rtol=1e-6)


def test_ops_record_user_locations():
    @sn.jit
    def f(x):
        y = x + 1.0
        return sn.harmonize(y)

    g = f.trace(rand(2, 4))
    lines = {op.name: op.loc for op in g.ops}
    assert lines["harmonize"].file.endswith("test_jit.py")
    assert lines["harmonize"].line == lines["add"].line + 1
    assert g.loc.line == lines["add"].line - 2  # the decorator line (co_firstlineno)
    assert f'loc("{lines["add"].file}":{lines["add"].line})' in str(g)


def test_eager_resonant_ops_match_reference_on_numpy_inputs():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert abs(float(sn.syntony(x)) - 0.26367940090438513) < 1e-12
    np.testing.assert_allclose(sn.harmonize(x), [2.9990304318349783, 2.6852977413266577,
                                                  1.906218903274958, 1.690035731790826],
                               rtol=1e-12)
    rows = np.stack([x, 2 * x])
    per_row = sn.differentiate(rows, np.array([0.5, 0.5]))
    np.testing.assert_allclose(per_row[0], sn.differentiate(x, 0.5), rtol=1e-12)
    np.testing.assert_allclose(sn.differentiate(rows, np.array([[0.5], [0.5]])), per_row)


def test_device_argument_is_validated():
    with pytest.raises(sn.SyntonicError, match="unknown device"):
        sn.jit(lambda x: x, device="tpu")
    from syntonic.runtime import cuda

    if not cuda.available()[0]:  # without a GPU: one clear error at the first call
        with pytest.raises(sn.SyntonicError, match="CUDA|cuda"):
            sn.jit(lambda x: x + 1.0, device="cuda")(np.ones(2))
    with pytest.raises(sn.TraceError, match="does not take"):
        sn.jit(lambda x: x, static_argnames=("y",))


def test_returning_an_input_or_a_constant():
    f = sn.jit(lambda x: (x, 3.0, np.arange(3)))
    x = rand(2)
    a, b, c = f(x)
    np.testing.assert_array_equal(a, x)
    assert float(b) == 3.0 and list(c) == [0, 1, 2]


def test_unflattener_matches_unflatten_on_every_node_kind() -> None:
    from syntonic.frontend import pytree

    trees = [
        {"b": (1,), "a": [2, None, {"z": 3, "y": ()}], "c": {}},
        ((4,), [], None, 5),
        6,
        None,
        {(1, 2): 7, (0, 1): 8},  # keys no expression can spell: the generic path
        [{"x": [9, (10, 11)]}],
    ]
    for tree in trees:
        leaves, td = pytree.flatten(tree)
        fresh = [object() for _ in leaves]
        assert pytree.unflattener(td)(fresh) == pytree.unflatten(td, fresh)
        assert pytree.unflattener(td)(leaves) == tree


def test_pytree_calls_take_the_tree_key_path(monkeypatch) -> None:
    """A call with pytrees of arrays finds its program by one pass over the leaves
    (no signature binding); a different structure or a Python scalar still traces."""
    f = sn.jit(lambda p, x: {"y": p["w"] * x + p["b"][0], "n": (p["b"][1] + 1.0,)},
               device="cpu")
    p = {"w": np.full(3, 2.0, np.float32), "b": [np.ones(3, np.float32),
                                                 np.zeros((), np.float32)]}
    x = np.arange(3, dtype=np.float32)
    first = f(p, x)
    bound: list[int] = []
    real = type(f)._signature

    def spy(self, *a, **k):
        bound.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(type(f), "_signature", spy)
    again = f(p, x)
    assert bound == []
    np.testing.assert_array_equal(again["y"], x * 2 + 1)
    np.testing.assert_array_equal(first["y"], again["y"])
    assert again["n"][0] == 1.0
    p2 = dict(p, extra=np.ones(3, np.float32))  # another structure: traced anew
    np.testing.assert_array_equal(f(p2, x)["y"], x * 2 + 1)
    assert bound and f.cache_size == 2
    bound.clear()
    p3 = {"w": p["w"], "b": [p["b"][0], 0.0]}  # a Python float leaf: the binding path
    np.testing.assert_array_equal(f(p3, x)["y"], x * 2 + 1)
    assert bound


_TABLE = np.arange(-3, 4, dtype=np.int32)


def _returns_a_capture(x):
    return x * 2.0, _TABLE


def test_a_returned_captured_array_is_located_at_the_def_line_not_the_caller():
    """A function that returns a captured array as is traces to the same IR from any call
    site (the constant sits at the function's ``def`` line), so the compile-cache key does
    not depend on where it was called from."""
    import inspect

    x = np.ones(4, np.float32)
    first = str(sn.jit(_returns_a_capture).trace(x))
    second = str(sn.jit(_returns_a_capture).trace(x))  # another line
    assert first == second
    line = inspect.getsourcelines(_returns_a_capture)[1]
    (const,) = [ln for ln in first.splitlines() if "dense<[-3," in ln]
    assert const.endswith(f'test_jit.py":{line})')
