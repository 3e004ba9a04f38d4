"""Large outputs are recycled (runtime/donation.Recycler): a call writes into a dead
earlier output of the same program instead of fresh pages, and never into an array, or a
view of one, that the caller still holds."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import syntonic as sn
from syntonic.runtime import donation

N = 1 << 19  # f32: 2 MiB, above RECYCLE_MIN_BYTES


@pytest.fixture(autouse=True)
def _cpu_backend():
    with sn.config.override(device="cpu"):
        yield


def body(x):
    return sn.tanh(x) * 2.0 + x


def reference(x: np.ndarray) -> np.ndarray:
    return (np.tanh(x.astype(np.float64)) * 2.0 + x).astype(np.float32)


def inputs(k: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.standard_normal(N).astype(np.float32) for _ in range(k)]


def check(y: np.ndarray, x: np.ndarray) -> None:
    np.testing.assert_allclose(y, reference(x), rtol=2e-6, atol=1e-6)


def test_a_loop_allocates_no_output_after_warm_up():
    assert N * 4 >= donation.RECYCLE_MIN_BYTES
    f = sn.jit(body)
    xs = inputs(6)
    y = f(xs[0])
    y = f(xs[1])  # two arrays now alternate: `y` holds one during each call
    seen = set()
    tracemalloc.start()
    try:
        for x in xs[2:]:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            y = f(x)
            grown = tracemalloc.get_traced_memory()[1] - before
            assert grown < N * 4 // 8, grown
            check(y, x)
            seen.add(y.ctypes.data)
    finally:
        tracemalloc.stop()
    assert len(seen) == 2


def test_without_recycling_every_call_allocates_its_output():
    """The measurement above is sensitive: with a zero budget each call allocates."""
    with sn.config.override(recycle_mb=0):
        f = sn.jit(body)
        xs = inputs(3)
        y = f(xs[0])
        y = f(xs[1])
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            y = f(xs[2])
            grown = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        check(y, xs[2])
        assert grown >= N * 4


def test_results_the_caller_holds_are_never_overwritten():
    f = sn.jit(body)
    xs = inputs(8)
    kept = f(xs[0])
    view = f(xs[1])[3:]  # only a view of the second result survives
    nested = [f(xs[2])]  # held inside a container
    for x in xs[3:]:
        check(f(x), x)  # results dropped at once: these are recycled
    check(kept, xs[0])
    np.testing.assert_allclose(view, reference(xs[1])[3:], rtol=2e-6, atol=1e-6)
    check(nested[0], xs[2])
    pointers = {kept.ctypes.data, view.base.ctypes.data, nested[0].ctypes.data}
    assert len(pointers) == 3
    assert f(xs[3]).ctypes.data not in pointers


def test_small_outputs_keep_the_one_call_hot_path():
    small = sn.jit(body)
    x = inputs(1)[0][:248].copy()
    small(x)
    small(x)
    assert small._hot is not None  # np.empty + one native call, no recycler


def test_the_budget_bounds_the_arrays_tracked_across_programs():
    f, g, h = sn.jit(body), sn.jit(lambda x: x * 3.0), sn.jit(lambda x: x - 1.0)
    x = inputs(1)[0]
    with sn.config.override(recycle_mb=5):  # two 2 MiB arrays
        for fn in (f, g, h, f, g, h):
            fn(x)
            assert 0 < donation._tracked[0] <= 5 << 20
        f(x)
    with sn.config.override(recycle_mb=1):  # less than one output: nothing is tracked
        before = donation._tracked[0]
        y = g(x)
        assert donation._tracked[0] <= before
        np.testing.assert_array_equal(y, x * np.float32(3.0))


def test_concurrent_callers_get_their_own_results():
    f = sn.jit(body)
    xs = inputs(4)
    refs = [reference(x) for x in xs]
    f(xs[0])
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(6):
                y = f(xs[k])
                np.testing.assert_allclose(y, refs[k], rtol=2e-6, atol=1e-6)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
