"""``f.explain(*args).overhead``: the per-call overhead of the compiled call.

CPU: measured on concrete arrays (calls timed, then the kernels alone), "not measured"
for ``sn.spec`` arguments, never in ``text(times=False)``; the measurement leaves the
caller's arrays, the function's cache and its results alone. CUDA: the static facts on
the emulated device (the fake driver of ``test_cuda_runtime``), checked against what a
call really does; no numbers without a real GPU. No test asserts an absolute time.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import syntonic as sn
from syntonic.runtime import explain
from syntonic.runtime.explain import OverheadReport
from tests.runtime import test_cuda_runtime as cuda_tests

fake_gpu = cuda_tests.fake_gpu  # the emulated CUDA device (a fixture)

X = np.linspace(-1.0, 1.0, 1024, dtype=np.float32)


def _small(x):
    return sn.exp(x) * 0.5 + 1.0


def _measured(fn, *args) -> OverheadReport:
    """The overhead of a small call; measured again (at most twice) if machine noise made
    the kernels look as slow as the call (the machine is shared)."""
    for _ in range(3):
        o = fn.explain(*args).overhead
        assert o is not None and o.measured
        if 0 < o.overhead_us < o.call_us:
            return o
    return o


def test_cpu_overhead_is_measured_and_smaller_than_the_call():
    f = sn.jit(_small, device="cpu")
    o = _measured(f, X)
    assert o.device == "cpu"
    assert o.call_us > 0 and o.kernels_us > 0
    assert 0 < o.overhead_us < o.call_us
    assert o.overhead_us == pytest.approx(o.call_us - o.kernels_us)
    assert o.samples >= 1 and o.batch >= 1
    assert any("METH_FASTCALL" in fact for fact in o.facts)
    assert any("1 output allocated per call" in fact for fact in o.facts)


def test_the_line_is_in_the_printed_report():
    f = sn.jit(_small, device="cpu")
    r = f.explain(X)
    text = str(r)
    assert re.search(r"per-call overhead \(cpu\): (\d+\.\d\d µs|~0 µs \(within timing noise\))"
                     r" over the kernels \(call \d+\.\d\d µs, kernels \d+\.\d\d µs; "
                     r"best of \d+ x \d+ calls?\)", text), text
    # it follows the stage times, before the kernels
    assert text.index("stage times") < text.index("per-call overhead") < text.index("k0_")


def test_times_false_omits_the_overhead_and_its_numbers():
    f = sn.jit(_small, device="cpu")
    r = f.explain(X)
    assert r.overhead is not None and r.overhead.measured
    stable = r.text(times=False)
    assert "per-call overhead" not in stable and "µs" not in stable
    assert stable == dataclasses.replace(r, overhead=None).text(times=False)  # goldens
    facts = r.text(times=False, overhead=True)
    assert "per-call overhead (cpu): measured (times omitted)" in facts
    assert "µs" not in facts and "best of" not in facts
    assert r.overhead.facts[0] in facts


def test_abstract_arguments_are_not_measured_and_compile_nothing():
    f = sn.jit(_small, device="cpu")
    r = f.explain(sn.spec("f32[1024]"))
    o = r.overhead
    assert o is not None and not o.measured and o.call_us is None and o.overhead_us is None
    assert o.not_measured == "abstract arguments"
    assert "per-call overhead (cpu): not measured (abstract arguments)" in str(r)
    (entry,) = set(f._cache.values())
    assert entry._native is None  # no compile: nothing would have run
    f(X)  # once compiled, the facts name the entry a call takes
    o = f.explain(sn.spec("f32[1024]")).overhead
    assert not o.measured and any("METH_FASTCALL" in fact for fact in o.facts)


def test_measuring_changes_no_result_and_no_cache_state():
    calls = []

    def g(x, y):
        calls.append(1)  # traced once per signature
        return x * y + 1.0, (x - y).sum()

    f = sn.jit(g, device="cpu")
    y = X * 0.5 + 0.25
    x_before, y_before = X.copy(), y.copy()
    f(X, y)
    hot = f._hot
    o = f.explain(X, y).overhead
    assert o.measured and len(calls) == 1 and f.cache_size == 1
    assert f._hot is hot
    np.testing.assert_array_equal(X, x_before)
    np.testing.assert_array_equal(y, y_before)
    a, b = f(X, y)
    np.testing.assert_allclose(a, X * y + 1.0, rtol=1e-6)
    np.testing.assert_allclose(b, (X - y).sum(), rtol=1e-5, atol=1e-5)
    assert any("pytree" in fact for fact in o.facts)
    assert any("cached key" in fact for fact in o.facts)  # called first: the fast key


def test_a_scalar_argument_takes_the_buffer_table_path():
    f = sn.jit(lambda x, s: (x * s, x + s), device="cpu")
    o = f.explain(X, 2.0).overhead
    assert o.measured and o.call_us > 0
    assert any("buffer table" in fact and "one native call" in fact for fact in o.facts)
    assert any("binding the arguments" in fact for fact in o.facts)


def test_donated_arguments_stay_with_the_caller():
    f = sn.jit(lambda w, g: w - 0.1 * g, donate_argnums=(0,), device="cpu")
    w, g = np.ones(256, np.float32), np.full(256, 2.0, np.float32)
    o = f.explain(w, g).overhead
    assert o.measured
    assert any("donation pool" in fact for fact in o.facts)
    (entry,) = set(f._cache.values())
    assert entry._native._pool is None  # the caller's arrays never joined the pool
    np.testing.assert_array_equal(w, np.ones(256, np.float32))


def test_the_interpreter_is_not_measured():
    f = sn.jit(_small, device="interpreter")
    o = f.explain(X).overhead
    assert o.device == "interpreter" and not o.measured
    assert "not measured (reference interpreter)" in o.text()


def test_batches_are_capped_by_time():
    def timed(per_call):
        return lambda n: n * per_call

    n, samples = explain._batch_size(timed(1e-6))  # a 1 µs call: many calls, many batches
    assert n == 200 and samples == explain.MAX_SAMPLES
    n, samples = explain._batch_size(timed(0.02))  # 20 ms: one call per batch, 3 batches
    assert n == 1 and samples == 3
    n, samples = explain._batch_size(timed(0.5))  # 0.5 s: a single timed call
    assert (n, samples) == (1, 1)


def test_gpu_static_facts_on_the_emulated_device(fake_gpu):
    f = sn.jit(lambda x: (x * 2.0).sum() + x.max())
    xd = sn.to_device(X)
    o = f.explain(xd).overhead
    assert o.device == "cuda" and not o.measured and o.not_measured == "no GPU"
    assert "per-call overhead (cuda): not measured (no GPU)" in o.text()
    m = re.match(r"(\d+) kernel launch(es)? per call", o.facts[0])
    assert m, o.facts
    f(xd)  # warm
    launched, allocs = len(fake_gpu.launched), fake_gpu.allocs
    f(xd)
    assert len(fake_gpu.launched) - launched == int(m.group(1))  # what a call launches
    assert fake_gpu.allocs == allocs  # outputs from the pool: no cuMemAlloc once warm
    assert any("pooled device allocator" in fact for fact in o.facts)
    assert any(fact.startswith("launch arguments packed once per signature; per call")
               for fact in o.facts)
    assert not any("uploaded per call" in fact for fact in o.facts)  # device inputs
    assert any("uploaded per call" in fact for fact in f.explain(X).overhead.facts)


def test_gpu_facts_for_abstract_arguments_need_no_compile(fake_gpu):
    f = sn.jit(lambda x: sn.exp(x) * 0.5)
    o = f.explain(sn.spec("f32[64]")).overhead
    assert o.device == "cuda" and o.not_measured == "abstract arguments"
    assert o.facts[0] == "1 kernel launch per call"
    assert fake_gpu.loaded == []  # no module was built or loaded


def test_a_slow_call_is_run_once_and_not_timed(monkeypatch):
    # explain stays quick on big inputs: a call slower than SLOW_S is not repeated
    calls = []
    f = sn.jit(_small, device="cpu")
    f(X)
    monkeypatch.setattr(explain, "SLOW_S", 0.0)
    real = f.__class__.__call__
    monkeypatch.setattr(f.__class__, "__call__",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    o = f.explain(X).overhead
    assert not o.measured and "one call takes" in o.not_measured
    assert len(calls) == 1
    assert "per-call overhead (cpu): not measured (one call takes" in str(f.explain(X))


def test_facts_of_a_signature_first_traced_by_explain():
    f = sn.jit(lambda x: (x * 2.0, x + 1.0), device="cpu")  # multi-output: no hot path
    facts = f.explain(X).overhead.facts
    assert any("on the first call" in fact and "cached key" in fact for fact in facts)
    facts = f.explain(X).overhead.facts  # the first explain's calls made the cheap key
    assert any(fact.startswith("inputs checked by a cached key") for fact in facts)


def test_a_general_path_call_times_the_programs_own_steps(monkeypatch):
    """A program without the one-call entry (a GEMM with its epilogue here) has its kernel
    time measured by running its own steps (the schedule, fused epilogues and step runner
    of the call), not kernels called one by one."""
    from syntonic.runtime import native

    counts = {"steps": 0, "calls": 0}
    real_steps, real_general = native.NativeProgram._run_steps, native.NativeProgram._general

    def steps(self, *args):
        counts["steps"] += 1
        return real_steps(self, *args)

    def general(self, *args, **kwargs):
        counts["calls"] += 1
        return real_general(self, *args, **kwargs)

    monkeypatch.setattr(native.NativeProgram, "_run_steps", steps)
    monkeypatch.setattr(native.NativeProgram, "_general", general)
    a = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32)
    f = sn.jit(lambda a, b: sn.maximum(a @ b + 1.0, 0.0), device="cpu")
    o = f.explain(a, a).overhead
    assert o.measured and o.kernels_us > 0
    assert "program's steps" in o.method
    assert counts["steps"] > counts["calls"] > 0  # the steps also ran outside calls
