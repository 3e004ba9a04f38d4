"""The native call path: METH_FASTCALL entry, buffer tables, the thread pool."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("llvmlite")
from llvmlite import ir  # noqa: E402

from syntonic.lower.cpu import abi  # noqa: E402
from syntonic.lower.cpu.engine import get_engine  # noqa: E402
from syntonic.runtime import cpu  # noqa: E402

N = 1000


def _library(temp: int = 0) -> dict[str, int]:
    """kernel: out[i] = x[i] * 2 + 1 over [start, stop) (via a temp when temp > 0)."""
    mod = ir.Module(name="native_test")
    f32 = ir.FloatType()
    i64 = ir.IntType(64)
    k = abi.declare_kernel(mod, "k")
    table, start, stop = k.args
    entry = k.append_basic_block("entry")
    loop = k.append_basic_block("loop")
    done = k.append_basic_block("done")
    b = ir.IRBuilder(entry)
    x = abi.load_buffer(b, table, 0, f32, "x")
    out = abi.load_buffer(b, table, 1, f32, "out")
    b.cbranch(b.icmp_signed("<", start, stop), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64, name="i")
    i.add_incoming(start, entry)
    v = b.fadd(b.fmul(b.load(b.gep(x, [i])), f32(2.0)), f32(1.0))
    b.store(v, b.gep(out, [i]))
    nxt = b.add(i, i64(1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, stop), loop, done)
    b.position_at_end(done)
    b.ret_void()
    run = abi.declare_run(mod, "run")
    rb = ir.IRBuilder(run.append_basic_block("entry"))
    rb.call(k, [run.args[0], i64(0), i64(N)])
    rb.ret_void()
    abi.emit_fastcall(mod, "fast", run, n_args=2, temp_bytes=[temp] if temp else [])
    eng = get_engine()
    art = eng.compile(str(mod), "native_test", ("k", "run", "fast"))
    return eng.load(art.obj, art.symbols)


@pytest.fixture(scope="module")
def lib() -> dict[str, int]:
    return _library(temp=4096)


def test_layout_probe() -> None:
    assert cpu.fastcall_supported()


def test_fastcall_runs_and_returns_output(lib: dict[str, int]) -> None:
    fast = cpu.make_fastcall(lib["fast"], "fast")
    x = np.arange(N, dtype=np.float32)
    out = np.empty_like(x)
    before = sys.getrefcount(out)
    for _ in range(100):
        r = fast(x, out)
        assert r is out
        del r
    assert sys.getrefcount(out) == before  # the returned reference is balanced
    np.testing.assert_array_equal(out, x * 2 + 1)


def test_fastcall_rejects_non_contiguous(lib: dict[str, int]) -> None:
    fast = cpu.make_fastcall(lib["fast"], "fast")
    x = np.arange(2 * N, dtype=np.float32)[::2]
    out = np.zeros(N, np.float32)
    assert fast(x, out) is x
    assert not out.any()


def test_pool_split_is_deterministic_and_complete(lib: dict[str, int]) -> None:
    pool = cpu.ThreadPool(3)
    kernel = cpu.kernel_function(lib["k"])
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    out = np.zeros_like(x)
    table = cpu.table_of([x, out])
    for _ in range(20):
        pool.run(kernel, ctypes_address(table), N)
    np.testing.assert_array_equal(out, x * 2 + 1)
    assert pool.chunks(N) == pool.chunks(N)
    assert [hi - lo for lo, hi in pool.chunks(10)] == [3, 3, 4]
    assert pool.chunks(10, grain=8) == [(0, 10)]


def ctypes_address(table: object) -> int:
    import ctypes

    return ctypes.addressof(table)


def test_fastcall_checks_the_whole_signature_natively(lib: dict[str, int]) -> None:
    """With a signature the entry itself rejects anything but exactly-typed, correctly
    shaped, contiguous ndarrays (returning its first argument, or `self` for a wrong
    argument count), so callers need no Python-side checks."""
    f32 = np.dtype(np.float32)
    fast = cpu.make_fastcall(lib["fast"], "fast", [((N,), f32), ((N,), f32)])
    x = np.arange(N, dtype=np.float32)
    out = np.zeros(N, np.float32)
    assert fast(x, out) is out
    np.testing.assert_array_equal(out, x * 2 + 1)

    class Sub(np.ndarray):
        pass

    rejected = [
        (x.astype(np.float64), out),  # dtype
        (x.astype(">f4"), out),  # byte order
        (x[:-1].copy(), out),  # shape
        (x.reshape(10, 100), out),  # ndim
        (x.view(Sub), out),  # a subclass is not exactly an ndarray
        ([0.0] * N, out),  # not an array at all: only its type is read
        (1.5, out),
        (x, out[::-1]),  # non-contiguous output
    ]
    ro = np.zeros(N, np.float32)
    ro.flags.writeable = False
    rejected.append((x, ro))  # read-only output
    for args in rejected:
        out[:] = 0
        assert fast(*args) is args[0]
        assert not out.any()
    assert fast(x) is not x  # wrong argument count: `self` comes back
    assert fast(x, out, out) is not out
    assert fast() is not None


def test_layout_probe_reads_every_field_the_entry_reads() -> None:
    from syntonic.lower.cpu import layout

    a = np.zeros((2, 7), np.float32)
    assert cpu.fastcall_supported()
    exp = cpu.expectations([((2, 7), a.dtype)])
    assert exp[0] == id(np.ndarray) and list(exp[1:4]) == [a.dtype.num, 2, 4]
    assert list(exp[4:]) == [2, 7]
    assert layout.ARRAY_FLAGS_OFFSET == abi.ARRAY_FLAGS_OFFSET


@pytest.fixture(scope="module")
def support() -> dict[str, int]:
    addrs = cpu.native_support(wait=True)
    assert addrs is not None, "the runtime support library did not build"
    return addrs


@pytest.mark.parametrize("spin_us", [200, 0])  # 0: every worker sleeps, each job wakes it
@pytest.mark.parametrize("threads", [2, 3, 5])
def test_native_handoff_runs_every_chunk_once(lib: dict[str, int], support: dict[str, int],
                                              threads: int, spin_us: int) -> None:
    pool = cpu.ThreadPool(threads, spin_us=spin_us)
    kernel = cpu.kernel_function(lib["k"])
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    out = np.zeros_like(x)
    table = cpu.table_of([x, out])
    pool.run(kernel, ctypes_address(table), N)
    assert pool.handoff is not None  # the job went through machine code
    np.testing.assert_array_equal(out, x * 2 + 1)
    for size in (threads, N - 1, 7):  # many jobs back to back, odd splits
        out[:] = 0
        for _ in range(200):
            pool.run(kernel, ctypes_address(table), size)
        np.testing.assert_array_equal(out[:size], x[:size] * 2 + 1)
        assert not out[size:].any()


def test_native_handoff_splits_like_chunks(support: dict[str, int]) -> None:
    """Python callables go through a thunk; the ranges each thread gets are exactly
    ``chunks``, whichever thread takes them, and an exception in one is raised by run."""
    pool = cpu.ThreadPool(3, spin_us=50)
    seen: list[tuple[int, int]] = []
    for total in (3, 10, 1001):
        seen.clear()
        pool.run(lambda t, lo, hi: seen.append((lo, hi)), 0, total)
        assert pool.handoff is not None
        assert sorted(seen) == pool.chunks(total)

    def bad(t: int, lo: int, hi: int) -> None:
        if lo > 0:
            raise ValueError("chunk failed")

    with pytest.raises(cpu.BackendError, match="chunk failed"):
        pool.run(bad, 0, 30)
    seen.clear()
    pool.run(lambda t, lo, hi: seen.append((lo, hi)), 0, 30)  # the pool still works
    assert sorted(seen) == pool.chunks(30)


def test_python_handoff_still_works(lib: dict[str, int]) -> None:
    pool = cpu.ThreadPool(3, native=False)
    kernel = cpu.kernel_function(lib["k"])
    x = np.arange(N, dtype=np.float32)
    out = np.zeros_like(x)
    table = cpu.table_of([x, out])
    pool.run(kernel, ctypes_address(table), N)
    assert pool.handoff is None
    np.testing.assert_array_equal(out, x * 2 + 1)


def test_the_support_library_is_loaded_only_by_a_busy_pool(monkeypatch) -> None:
    """A process that hands the pool a few jobs (a script, one call) never builds the
    support library; the SUPPORT_AFTER_JOBS-th job starts loading it."""
    asked: list[int] = []
    monkeypatch.setattr(cpu, "_support", None)
    monkeypatch.setattr(cpu, "native_support", lambda wait=False: asked.append(1))
    pool = cpu.ThreadPool(2)
    seen: list[tuple[int, int]] = []
    for _ in range(cpu.SUPPORT_AFTER_JOBS - 1):
        pool.run(lambda t, lo, hi: seen.append((lo, hi)), 0, 10)
    assert asked == [] and pool.handoff is None
    pool.run(lambda t, lo, hi: seen.append((lo, hi)), 0, 10)
    assert asked == [1]
    assert sorted(seen) == sorted(pool.chunks(10) * cpu.SUPPORT_AFTER_JOBS)


@pytest.mark.parametrize("native", [True, False])
def test_more_chunks_than_threads_cover_the_range_once(support: dict[str, int],
                                                       native: bool) -> None:
    pool = cpu.ThreadPool(3, native=native)
    assert len(pool.chunks(100, per_thread=4)) == 12
    assert pool.chunks(5, per_thread=4) == [(k, k + 1) for k in range(5)]
    seen: list[tuple[int, int]] = []
    for _ in range(3):
        seen.clear()
        pool.run(lambda t, lo, hi: seen.append((lo, hi)), 0, 100, 1, 4)
        assert sorted(seen) == pool.chunks(100, per_thread=4)
    assert cpu.ThreadPool(1).chunks(100, per_thread=4) == [(0, 100)]


def test_kernels_go_to_the_pool_by_cost_not_by_points_alone() -> None:
    """A kernel runs on the thread pool when points x operations per point reaches
    ``parallel_min_points``: a costly row kernel over 4096 points does, a single operation
    over as many points does not, and a tiny kernel stays in the one-call native entry
    however costly its points; results match numpy either way."""
    import syntonic as sn

    rng = np.random.default_rng(8)
    x = rng.standard_normal((256, 16)).astype(np.float32)

    def costly(x):
        z = sn.exp(x - x.max(axis=-1, keepdims=True))
        return sn.tanh(z / z.sum(axis=-1, keepdims=True)) * 0.5 + sn.sigmoid(x) * x

    cases = ((costly, x, True), (lambda x: x * 2.0, x, False),
             (costly, x[:8], False))
    for fn, arg, pooled in cases:
        f = sn.jit(fn, device="cpu")
        got = f(arg)
        program = next(iter(f._cache.values())).native()
        steps = [s for s in program._steps if s["kind"] == "native"]
        assert any(s["_parallel"] for s in steps) == pooled
        assert (program.fast is None) == pooled
        want = sn.jit(fn, device="interpreter")(arg)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
