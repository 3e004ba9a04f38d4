"""Row-local ``while`` loops on CUDA run as ONE kernel, a thread block per row (rowloop.py).

The generated module is executed on the host emulation (g++ and emu.h; every program
shares one library) and compared with the reference interpreter row by row; NVRTC
compiles the source and ptxas assembles it where installed. Loops that are not row-local
keep the host-driven LoopStep.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import syntonic as sn
from syntonic.ir import resonant as R
from syntonic.lower.cuda import emulate, generate, rowloop
from syntonic.lower.cuda.plan import CudaModule, Launch, LoopStep
from syntonic.lower.kernel import Program
from syntonic.lower.schedule import lower_to_kernels
from tests.lower.cpu.test_loop import _halving  # the same row-local loop
from tests.runtime.test_cuda_runtime import fake_gpu  # noqa: F401 (the emulated driver)

pytestmark = pytest.mark.skipif(not emulate.available(),
                                reason="host emulation needs a C++20 compiler (g++)")
RNG = np.random.default_rng(11)


def _evolve(max_recursion: int):
    def f(x):
        return sn.evolve(x, max_recursion=max_recursion, threshold=0.99)

    f.__name__ = f"evolve{max_recursion}"
    return f


def _evolve_input(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Rows of very different scales, one all-zero row and one sqrt(golden weights) row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * rng.uniform(0.01, 100, (shape[0], 1))
    x[1] = 0.0  # syntony 0: never improves
    x[3] = np.sqrt(R.golden_weights(shape[1]))  # syntony 1: depth 0
    return x.astype(dtype)


def _mixer(x, w, tag):
    """A ``rows @ shared`` matmul (a second body kernel, a temporary too big for shared
    memory), a carried value passed through unchanged, an i64 counter and a per-row
    loop invariant."""
    def body(s):
        v, active, n, keep = s
        h = sn.tanh(v @ w)
        more = active & (sn.mean(h * h, axis=1) > tag[:, 0]) & (n < 30)
        return sn.where(active[:, None], h * 0.5 + tag, v), more, n + active.astype("i64"), keep

    rows = x.shape[0]
    return sn.while_loop(lambda s: sn.any(s[1]), body,
                         (x, sn.ones((rows,), "bool"), sn.zeros((rows,), "i64"), x * 2.0))


def _cube(x):
    """Rows of [4, 8]: a one-row body of four kernels, reductions over the middle axis,
    the last axis and both (several rows of a one-row kernel, one after another)."""
    def body(s):
        v, active, n = s
        nxt = v * 0.7 + sn.sum(v, axis=2)[:, :, None] * 0.01 - sn.max(v, axis=1)[:, None, :] * 0.02
        keep = active & (sn.sum(nxt * nxt, axis=(1, 2)) > 1.0)
        return sn.where(active[:, None, None], nxt, v), keep, n + active.astype("i32")

    rows = x.shape[0]
    return sn.while_loop(lambda s: sn.any(s[1]), body,
                         (x, sn.ones((rows,), "bool"), sn.zeros((rows,), "i32")))


def _anchored(x):
    """The loop's input buffer is also a loop invariant (read while the state changes)."""
    def body(s):
        v, active, n = s
        nxt = v * 0.5 + x * 0.25
        keep = active & (sn.max(sn.abs(nxt - v), axis=1) > 1e-3)
        return sn.where(active[:, None], nxt, v), keep, n + active.astype("i32")

    rows = x.shape[0]
    return sn.while_loop(lambda s: sn.any(s[1]), body,
                         (x, sn.ones((rows,), "bool"), sn.zeros((rows,), "i32")))


def _nested(x):
    """A row-local loop (evolve) inside a loop that is not row-local."""
    def outer_body(s):
        v, i = s
        state, _, _ = sn.evolve(v, max_recursion=5, threshold=0.999)
        return state * 1.5, i + 1

    return sn.while_loop(lambda s: s[1] < 2, outer_body, (x, 0))


def _counting(x):
    """Not row-local: the carried counter has no row axis."""
    return sn.while_loop(lambda s: s[1] < 5, lambda s: (s[0] * 1.5 + 1.0, s[1] + 1), (x, 0))


EVOLVE = [  # (shape, dtype, max_recursion)
    ((37, 24), np.float32, 13),
    ((37, 24), np.float64, 13),
    ((20, 248), np.float32, 13),
    ((20, 248), np.float64, 1),
    ((5, 7), np.float64, 0),
    ((5, 7), np.float32, 13),
]
ROWS = 9
_HALVING_ARGS = (RNG.standard_normal((ROWS, 40)) * np.geomspace(0.5, 1000, ROWS)[:, None],
                 RNG.standard_normal(40), RNG.standard_normal((ROWS, 40)))
OTHER = {  # name: (function, arguments, rtol)
    "halving": (_halving, _HALVING_ARGS, 1e-12),
    "halving_f16": (_halving, tuple(a.astype(np.float16) for a in _HALVING_ARGS), 2e-2),
    "mixer": (_mixer, (RNG.standard_normal((ROWS, 150)), RNG.standard_normal((150, 150)) / 6,
                       RNG.uniform(0.05, 0.6, (ROWS, 1))), 1e-12),
    "cube": (_cube, (RNG.standard_normal((7, 4, 8)) * np.geomspace(0.3, 50, 7)[:, None, None],),
             1e-12),
    "anchored": (_anchored, (RNG.standard_normal((6, 10)) * np.geomspace(0.01, 100, 6)[:, None],),
                 1e-12),
    "nested": (_nested, (RNG.standard_normal((6, 30)),), 1e-12),
}


def _evolve_id(case) -> str:
    shape, dtype, mr = case
    return f"{'x'.join(map(str, shape))}-{np.dtype(dtype).name}-mr{mr}"


def _compile(fn, *args, name: str = "") -> tuple[Program, CudaModule]:
    """The kernel program and CUDA module of fn (`name`: unique within one library)."""
    program = lower_to_kernels(sn.jit(fn).lower(*args).plan)
    return program, generate(program, name or fn.__name__)


@pytest.fixture(scope="module")
def built():
    """Every test program and module, and ONE emulation library for all of them."""
    progs: dict[str, tuple[Program, CudaModule, tuple]] = {}
    for case in EVOLVE:
        shape, dtype, mr = case
        x = _evolve_input(shape, dtype, 0)
        key = _evolve_id(case)
        progs[key] = (*_compile(_evolve(mr), x, name=key.replace("-", "_")), (x,))
    for name, (fn, args, _) in OTHER.items():
        progs[name] = (*_compile(fn, *args, name=name), args)
    return progs, emulate.build([m for _, m, _ in progs.values()])


def _loop_steps(program: Program, module: CudaModule) -> list:
    (idx,) = [i for i, k in enumerate(program.kernels) if k.loop is not None]
    return [s for s in module.steps if getattr(s, "kernel", None) == idx]


def _assert_rows_close(got: np.ndarray, want: np.ndarray, rtol: float, what: str) -> None:
    """Each row within rtol of the row's largest magnitude (an all-zero row: exactly)."""
    got, want = np.asarray(got), np.asarray(want)
    for r in range(want.shape[0]):
        scale = float(np.max(np.abs(want[r]))) if want[r].size else 0.0
        np.testing.assert_allclose(got[r], want[r], rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{what}, row {r}")


@pytest.mark.parametrize("case", EVOLVE, ids=_evolve_id)
def test_evolve_runs_as_one_kernel_and_matches_the_interpreter_row_by_row(case, built):
    shape, dtype, mr = case
    progs, lib = built
    program, module, _ = progs[_evolve_id(case)]
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    ref = sn.jit(_evolve(mr), device="interpreter")
    for seed in (0, 1):
        x = _evolve_input(shape, dtype, seed)
        got = emulate.run(program, module, [x], library=lib)
        want = ref(x)
        np.testing.assert_array_equal(got[2], np.asarray(want[2]), err_msg="depth")
        _assert_rows_close(got[1], want[1], rtol, "syntony")
        _assert_rows_close(got[0], want[0], rtol, "state")
        depth = np.asarray(got[2]).reshape(-1)
        assert depth[3] == 0 and depth.max() <= mr  # golden row: done before any trip


def _check_other(name: str, built) -> tuple[np.ndarray, ...]:
    progs, lib = built
    program, module, args = progs[name]
    fn, _, rtol = OTHER[name]
    got = emulate.run(program, module, list(args), library=lib)
    want = sn.jit(fn, device="interpreter")(*args)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w, float), rtol=rtol,
                                   atol=rtol * 1e-2, err_msg=f"output {i}")
    return got


@pytest.mark.parametrize("name", ["halving", "halving_f16", "mixer", "cube", "anchored"])
def test_row_local_loops_stop_each_row_on_its_own(name, built):
    got = _check_other(name, built)
    assert len(set(np.asarray(got[2]).tolist())) > 1  # rows stopped at different counts


def test_a_row_local_loop_inside_a_host_driven_loop(built):
    """The fused kernel is a launch of the outer loop's body module (its scratch, with
    the constants' data, belongs to that module)."""
    progs, _ = built
    _, module, _ = progs["nested"]
    (outer,) = module.steps
    assert isinstance(outer, LoopStep)
    assert [s.stage for s in outer.body.launches].count("rowloop") == 1
    assert any(s.data is not None for s in outer.body.scratch)
    _check_other("nested", built)


def test_grid_and_block_size_do_not_change_the_results(built):
    """More rows than blocks (grid-stride) and any block size: the same bits."""
    progs, lib = built
    program, module, (x,) = progs[_evolve_id(EVOLVE[2])]
    runs = [emulate.run(program, module, [x], library=lib, block=b, max_grid=g)
            for b, g in ((32, 1), (256, 0))]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_temporaries_in_global_scratch(monkeypatch):
    """With no temporary in shared memory, every one is a per-row slice of scratch."""
    monkeypatch.setattr(rowloop, "SHARED_TEMP_BYTES", -1)
    fn, args, _ = OTHER["halving"]
    program, module = _compile(fn, *args)
    assert any("per row" in s.what for s in module.scratch)
    assert "__shared__ unsigned char sn_s" not in module.source
    got = emulate.run(program, module, list(args))
    want = sn.jit(fn, device="interpreter")(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-14)


def test_the_evolve_loop_is_one_launch_and_other_loops_stay_host_driven(built):
    progs, _ = built
    for key in map(_evolve_id, EVOLVE):
        program, module, _ = progs[key]
        (step,) = _loop_steps(program, module)
        assert isinstance(step, Launch) and step.stage == "rowloop", key
        assert step.work == program.kernels[step.kernel].loop.row_blocks.rows
        assert not any(isinstance(s, LoopStep) for s in module.steps)
        assert any(s.data is not None for s in module.scratch)  # golden weights
    x = RNG.standard_normal(6)
    program, module = _compile(_counting, x)
    (step,) = _loop_steps(program, module)
    assert isinstance(step, LoopStep)
    assert not any(isinstance(s, Launch) and s.stage == "rowloop" for s in module.launches)
    (got,) = emulate.run(program, module, [x])[:1]
    np.testing.assert_allclose(got, sn.jit(_counting, device="interpreter")(x)[0], rtol=1e-12)


def _kernel_source(module: CudaModule, symbol: str) -> str:
    start = module.source.index(f'extern "C" __global__ void {symbol}(')
    return module.source[start:module.source.index("\n}\n", start)]


def _modules(program: Program, module: CudaModule):
    """(program, module) of `module` and of every loop sub-module in it."""
    yield program, module
    for step in module.steps:
        if isinstance(step, LoopStep):
            loop = program.kernels[step.kernel].loop
            yield from _modules(loop.cond, step.cond)
            yield from _modules(loop.body, step.body)


def test_nothing_the_loop_writes_is_read_through_the_read_only_cache(built):
    """``const __restrict__`` lets the compiler load through the read-only data cache
    (``ld.global.nc``), which does not see writes made earlier in the same kernel (the
    previous iteration's): in the fused loop only constants and loop invariants may be
    declared so."""
    progs, _ = built
    seen = 0
    for key, (root, root_module, _) in progs.items():
        for program, module in _modules(root, root_module):
            for step in module.steps:
                if not isinstance(step, Launch) or step.stage != "rowloop":
                    continue
                loop = program.kernels[step.kernel].loop
                written = set(loop.outputs)  # the inputs are only read
                consts = {f"sn_x{s.id}" for s in module.scratch if s.data is not None}
                text = _kernel_source(root_module, step.symbol)
                for m in re.finditer(r"([\w ]+)\* __restrict__ (\w+)(?: = ([^;]+))?", text):
                    seen += 1
                    target = (m.group(3) or m.group(2)).strip("(")
                    g = re.match(r"sn_g(\d+)", target)
                    ok = target in consts or (g is not None and int(g.group(1)) not in written)
                    assert "const" in m.group(1).split() and ok, (key, m.group(0))
    assert seen


def test_a_kernel_a_block_cannot_run_keeps_the_loop_host_driven(monkeypatch):
    """A one-row kernel without an in-block form (an opaque op): LoopStep, and explain
    says so."""
    monkeypatch.setattr(rowloop, "_in_block", lambda k: False)
    x = np.zeros((8, 24))
    program, module = _compile(_evolve(13), x)
    (step,) = _loop_steps(program, module)
    assert isinstance(step, LoopStep)
    text = sn.jit(_evolve(13)).explain(x).text(times=False)
    assert "row-local: " in text and "CUDA: host-driven" in text


@pytest.mark.parametrize("rows,threads", [(20, 256), (1024, 128), (4096, 32)])
def test_many_rows_get_fewer_threads_each(rows, threads):
    """The loop is latency-bound: with many rows, more rows in flight beat wide blocks."""
    program, module = _compile(_evolve(13), np.zeros((rows, 248), np.float32))
    (step,) = _loop_steps(program, module)
    assert (step.stage, step.block, step.work) == ("rowloop", threads, rows)


def test_explain_says_how_cuda_runs_a_loop():
    x = np.zeros((16, 24), np.float32)
    text = sn.jit(_evolve(13)).explain(x).text(times=False)
    assert ("CUDA: one kernel, one thread block per row, each row loops until its own flag "
            "is false") in text
    text = sn.jit(_counting).explain(np.zeros(4)).text(times=False)
    assert "CUDA: host-driven" in text and "one kernel" not in text


def test_nvrtc_compiles_and_ptxas_assembles_the_loop_kernels(built):
    pytest.importorskip("cuda.bindings")
    from syntonic.lower.cuda import nvrtc
    from tests.lower.cuda.test_nvrtc import PTX_ARCH, _ptxas

    if not nvrtc.available():
        pytest.skip("NVRTC does not load")
    progs, _ = built
    modules = [m for _, m, _ in progs.values()]
    ptx = nvrtc.compile_ptx("".join(m.source for m in modules), PTX_ARCH, "rowloops")
    for m in modules:
        for s in m.launches:
            assert f".entry {s.symbol}(" in ptx
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("ptxas not found")
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rowloops.ptx"
        path.write_text(ptx)
        for sm in ("sm_75", "sm_90"):
            proc = subprocess.run([ptxas, f"-arch={sm}", str(path), "-o", os.devnull],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_runtime_launches_the_fused_loop_once(fake_gpu):  # noqa: F811 (the fixture)
    """GpuProgram on the emulated driver: constants uploaded from scratch data, the loop
    one plain launch per call."""
    from syntonic.runtime import gpu
    from tests.runtime.test_cuda_runtime import _compare, _program

    x = _evolve_input((6, 24), np.float64, 2)
    graph, program = _program(_evolve(13), x)
    module = generate(program, program.name)
    gp = gpu.GpuProgram(program, module)
    before = len(fake_gpu.launched)
    _compare(graph, gp(x), (x,))
    symbols = [s for s, _, _ in fake_gpu.launched[before:]]
    assert len(symbols) == len(module.launches)
    assert sum(1 for s in module.launches if s.stage == "rowloop") == 1

