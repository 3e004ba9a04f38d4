"""``while`` loops on CUDA: host-driven, state on the device, run on the host emulation.

The generated module has one LoopStep per loop whose cond and body kernels live in the
same source; the emulation drives it the way the device runtime does. Row-local loops
(evolve) are one fused kernel instead (test_rowloop.py); here the fusion is switched off
so that their host-driven form stays tested too.
"""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.lower.cuda import emulate, generate, rowloop
from syntonic.lower.cuda.plan import LoopStep
from syntonic.lower.schedule import lower_to_kernels

pytestmark = pytest.mark.skipif(not emulate.available(),
                                reason="host emulation needs a C++20 compiler (g++)")
RNG = np.random.default_rng(3)


def counting(x):
    return sn.while_loop(lambda s: s[1] < 5, lambda s: (s[0] * 1.5 + 1.0, s[1] + 1), (x, 0))


def swapping(a, b):
    def body(s):
        x, y, z, w, i = s
        t = z * 0.5 + x
        return y, x, t, t, i + 1

    return sn.while_loop(lambda s: s[4] < 7, body, (a, b, a + b, b, 0))


def nested(x):
    def outer_body(s):
        v, i = s
        inner = sn.while_loop(lambda t: t[1] < i + 1, lambda t: (t[0] + 1.0, t[1] + 1), (v, 0))
        return inner[0] * 0.5, i + 1

    return sn.while_loop(lambda s: s[1] < 3, outer_body, (x, 0))


def evolve(x):
    return sn.evolve(x, max_recursion=13, threshold=0.99)


CASES = [
    (counting, (RNG.standard_normal(37).astype(np.float32),), 1e-6),
    (swapping, (RNG.standard_normal(9), RNG.standard_normal(9)), 1e-12),
    (nested, (RNG.standard_normal(5),), 1e-12),
    (evolve, (RNG.standard_normal((20, 248)),), 1e-12),
]


@pytest.fixture(autouse=True)
def host_driven(monkeypatch):
    """Every loop host-driven (no row-local loop fused into one kernel)."""
    monkeypatch.setattr(rowloop, "row_programs", lambda k: None)


@pytest.mark.parametrize("fn,args,rtol", CASES, ids=[c[0].__name__ for c in CASES])
def test_loops_on_emulated_cuda(fn, args, rtol):
    program = lower_to_kernels(sn.jit(fn).lower(*args).plan)
    module = generate(program, fn.__name__)
    loops = [s for s in module.steps if isinstance(s, LoopStep)]
    assert loops and all(s.cond.steps and s.body.steps for s in loops)
    assert all(sym in module.source for sym in module.symbols)
    got = emulate.run(program, module, list(args))
    want = sn.jit(fn, device="interpreter")(*args)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=rtol, atol=1e-12)


def test_loop_modules_compile_with_nvrtc():
    from syntonic.lower.cuda import nvrtc

    if not nvrtc.available():
        pytest.skip("NVRTC (the cuda extra) is not installed")
    for fn, args, _ in CASES:
        program = lower_to_kernels(sn.jit(fn).lower(*args).plan)
        module = generate(program, fn.__name__)
        ptx = nvrtc.compile_ptx(module.source)
        for sym in module.symbols:
            assert f".entry {sym}(" in ptx
