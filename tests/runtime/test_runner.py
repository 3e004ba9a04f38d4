"""The step runner: a program's kernels and GEMMs in one native call (runtime/runner.py)
give the bits of the Python step loop."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import syntonic as sn  # noqa: E402
from syntonic.runtime import cpu, native  # noqa: E402
from syntonic.runtime.runner import StepRunner  # noqa: E402


@pytest.fixture()
def native_pool(monkeypatch, request) -> cpu.ThreadPool:
    """cpu.POOL replaced by a pool with its native hand-off attached; its program entry
    counted in ``pool.program_calls``."""
    threads, spin_us = request.param
    assert cpu.native_support(wait=True) is not None
    pool = cpu.ThreadPool(threads, spin_us=spin_us)
    assert pool._attach() is not None
    calls: list[int] = []
    real = pool.handoff.program

    def counted(*args):
        calls.append(args[3])  # the step it starts at
        return real(*args)

    pool.handoff.program = counted
    pool.program_calls = calls
    monkeypatch.setattr(cpu, "POOL", pool)
    return pool


def _programs(f) -> list[native.NativeProgram]:
    return [entry.native() for entry in set(f._cache.values())]


def _mlp_steps(steps: int, use_runner: bool) -> tuple[dict, list[float]]:
    model = sn.nn.Sequential(sn.nn.Linear(64, 128), sn.nn.ReLU(), sn.nn.Linear(128, 128),
                             sn.nn.ReLU(), sn.nn.Linear(128, 10))
    opt = sn.optim.Adam(1e-2)
    step = sn.train.train_step(model, sn.nn.cross_entropy, opt, device="cpu")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 64)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    params = model.init(3)
    state = opt.init(params)
    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    (program,) = _programs(step)
    assert isinstance(program._runner, StepRunner) == use_runner
    return params, losses


@pytest.mark.parametrize("native_pool", [(2, 200), (3, 0)], indirect=True,
                         ids=["2-threads-spinning", "3-threads-sleeping"])
def test_a_train_step_runs_natively_with_the_bits_of_the_python_loop(native_pool,
                                                                     monkeypatch):
    """Forward, backward and Adam (GEMMs split over the pool, epilogues on their row
    blocks, donated parameters): the runner's parameters after 4 steps are bitwise those
    of the Python step loop. With workers that sleep after every job the runner hands
    back to Python to wake them and resumes after that step."""
    got, losses = _mlp_steps(4, use_runner=True)
    runs = list(native_pool.program_calls)
    with monkeypatch.context() as m:  # the Python step loop
        m.setattr(StepRunner, "build", staticmethod(lambda *args: None))
        want, want_losses = _mlp_steps(4, use_runner=False)
    assert losses == want_losses and losses[-1] < losses[0]
    want = sn.frontend.pytree.named_leaves(want)
    for name, a in sn.frontend.pytree.named_leaves(got).items():
        assert a.tobytes() == want[name].tobytes(), name
    assert runs.count(0) == 4  # one native call per step (and resumptions)
    if native_pool.handoff.slots[cpu.SPIN] == 0:  # sleeping workers: resumed mid-program
        assert any(start > 0 for start in runs)


@pytest.mark.parametrize("native_pool", [(2, 200)], indirect=True)
def test_an_epilogue_that_writes_a_gemm_operand_waits_for_the_whole_gemm(native_pool):
    """w - 0.1 * (x @ w) with w donated: the epilogue writes w in place, which the GEMM
    reads, so the runner must not run it on the row blocks (checked per call on the
    buffer table); without donation it does, and both match float64 numpy."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((384, 384)) / 20).astype(np.float32)
    w0 = rng.standard_normal((384, 384)).astype(np.float32)
    for donate in ((0,), ()):
        f = sn.jit(lambda w, x: w - 0.1 * (x @ w), donate_argnums=donate, device="cpu")
        w, want = w0.copy(), w0.astype(np.float64)
        for _ in range(5):
            w = f(w, x)
            want = want - 0.1 * (x @ want)
            np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-4)
        (program,) = _programs(f)
        assert isinstance(program._runner, StepRunner)
        (rec,) = [r for r in program._runner.records if r[0] == 1]  # the GEMM's record
        assert rec[10] != 0 and rec[13] > 0  # an epilogue that may be fused, with a check


def test_a_program_with_an_opaque_step_keeps_the_python_loop(monkeypatch):
    """Steps the runner cannot describe leave the program on the Python loop."""
    step = {"kind": "opaque", "kernel": 0}

    class Fake:
        _steps = [step]
        kernels: dict = {}

    assert StepRunner.build(Fake(), [], cpu.POOL) is None


def test_a_small_program_runs_natively_without_the_pool(monkeypatch):
    """A train step too small for any pool job (small GEMMs, serial kernels) also runs
    in one native call, straight, without the pool's hand-off; same bits as the Python
    loop."""
    assert cpu.native_support(wait=True) is not None
    monkeypatch.setattr(cpu, "POOL", cpu.ThreadPool(2))  # a pool that never attached
    model = sn.nn.Sequential(sn.nn.Linear(16, 32), sn.nn.ReLU(), sn.nn.Linear(32, 4))
    opt = sn.optim.Adam(1e-2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y = rng.integers(0, 4, 8).astype(np.int32)
    results = []
    for native_steps in (True, False):
        with monkeypatch.context() as m:
            if not native_steps:
                m.setattr(StepRunner, "build", staticmethod(lambda *args: None))
            step = sn.train.train_step(model, sn.nn.cross_entropy, opt, device="cpu")
            params = model.init(0)
            state = opt.init(params)
            for _ in range(3):
                params, state, _loss = step(params, state, x, y)
            (program,) = _programs(step)
            assert isinstance(program._runner, StepRunner) == native_steps
            if native_steps:
                assert program._runner.serial and cpu.POOL.handoff is None
            results.append(sn.frontend.pytree.named_leaves(params))
    for name, a in results[0].items():
        assert a.tobytes() == results[1][name].tobytes(), name


def test_a_program_that_keeps_calling_loads_the_support_library(monkeypatch):
    """Without pool jobs nothing else would load the support library: a program starts
    loading it at its SUPPORT_AFTER_JOBS-th call (never before, so one-off calls never
    pay for it), then describes its steps for the runner."""
    asked: list[int] = []
    real = cpu.native_support(wait=True)
    monkeypatch.setattr(cpu, "_support", None)

    def load(wait=False):
        asked.append(1)
        monkeypatch.setattr(cpu, "_support", real)
        return real

    monkeypatch.setattr(cpu, "native_support", load)
    monkeypatch.setattr(cpu, "POOL", cpu.ThreadPool(2))
    a = np.ones((8, 8), np.float32)
    f = sn.jit(lambda a, b: sn.maximum(a @ b, 0.0) + 1.0, device="cpu")
    for _ in range(cpu.SUPPORT_AFTER_JOBS - 1):
        f(a, a)
    (program,) = _programs(f)
    assert asked == [] and program._runner is None
    f(a, a)
    assert asked == [1] and isinstance(program._runner, StepRunner)
    np.testing.assert_allclose(f(a, a), np.maximum(a @ a, 0.0) + 1.0)


def test_threads_sharing_a_small_program_get_their_own_results(monkeypatch):
    """A directly called runner writes its GEMM descriptors per call: threads calling
    one program at once take turns (each result is its own product)."""
    import threading

    assert cpu.native_support(wait=True) is not None
    monkeypatch.setattr(cpu, "POOL", cpu.ThreadPool(2))
    f = sn.jit(lambda a, b: sn.maximum(a @ b, 0.0) + 1.0, device="cpu")
    rng = np.random.default_rng(4)
    mats = [rng.standard_normal((64, 64)).astype(np.float32) for _ in range(4)]
    f(mats[0], mats[0])
    (program,) = _programs(f)
    program._calls = cpu.SUPPORT_AFTER_JOBS  # the runner at the next call
    f(mats[0], mats[0])
    assert isinstance(program._runner, StepRunner) and program._runner.serial
    wrong: list[int] = []

    def work(k: int) -> None:
        a = mats[k]
        want = np.maximum(a @ a, 0.0) + 1.0
        for _ in range(500):
            if not np.allclose(f(a, a), want, rtol=1e-4, atol=1e-3):
                wrong.append(k)
                return

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
