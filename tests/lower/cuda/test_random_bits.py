"""The in-graph RNG gives identical bits on the interpreter, the CPU and emulated CUDA.

(``normal`` agrees to rounding: it applies log and cos, which each backend's math
library rounds in its own way.)

The generator (Threefry-2x32, syntonic/frontend/random.py) is built from integer IR ops,
so every backend computes the same bits by construction; this runs the compiled
programs through each backend's real code (LLVM on the CPU, the generated CUDA C on the
host emulation) and compares bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn
from syntonic.lower.cuda import emulate, generate
from syntonic.lower.schedule import lower_to_kernels

pytestmark = pytest.mark.skipif(not emulate.available(),
                                reason="host emulation needs a C++20 compiler (g++)")


def draw(k):
    k1, k2, k3 = sn.random.split(k, 3)
    return (sn.random.bits(k1, (5, 37)), sn.random.uniform(k2, (300,)),
            sn.random.normal(k3, (64,), "f64"), sn.random.bernoulli(k, 0.3, (129,)),
            sn.random.split(k2, 4))


@pytest.mark.parametrize("seed", [0, 1, 2**31 + 7, 2**64 - 1])
def test_rng_bits_identical_on_every_backend(seed):
    key = sn.random.key(seed)
    want = sn.jit(draw, device="interpreter")(key)
    cpu = sn.jit(draw, device="cpu")(key)
    program = lower_to_kernels(sn.jit(draw).lower(key).plan)
    cuda = emulate.run(program, generate(program, "rng"), [key])
    flat_want = [np.asarray(w) for w in want]
    for got in (cpu, cuda):
        assert len(got) == len(flat_want)
        for i, (g, w) in enumerate(zip(got, flat_want)):
            assert g.dtype == w.dtype and g.shape == w.shape
            if i == 2:  # normal(): Box-Muller's log/cos come from each backend's math library
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
            else:  # bits, uniform, bernoulli, split: integer and exact ops only
                np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))


@pytest.mark.parametrize("src", ["f16", "f32", "f64"])
@pytest.mark.parametrize("dst", ["i32", "i64"])
def test_float_to_int_cast_edges_on_emulated_cuda(src, dst):
    from tests.lower.cpu.test_cast_bounds import _edges

    x = _edges(np.dtype(src.replace("f", "float")).type, 32 if dst == "i32" else 64)
    fn = sn.jit(lambda a: a.astype(dst))
    want = sn.jit(lambda a: a.astype(dst), device="interpreter")(x)
    program = lower_to_kernels(fn.lower(x).plan)
    (got,) = emulate.run(program, generate(program, "cast"), [x])
    np.testing.assert_array_equal(got, want)
