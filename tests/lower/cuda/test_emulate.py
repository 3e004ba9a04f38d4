"""Every op, dtype and kernel shape: the generated CUDA C, executed on the host (emu.h),
agrees with the kernel-IR interpreter. All programs share one emulation library."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from syntonic.lower.cuda import emulate, generate
from syntonic.lower.kernel_interp import run_program
from tests.lower.cuda.cases import all_cases, check

if not emulate.available():  # pragma: no cover - CI images have g++
    pytest.skip("CUDA emulation needs a C++20 compiler (g++ or $CXX)", allow_module_level=True)

CASES = all_cases()


@pytest.fixture(scope="module")
def modules():
    mods = {c.id: generate(c.program, f"e{i}") for i, c in enumerate(CASES)}
    return mods, emulate.build(list(mods.values()))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_emulated_cuda_matches_the_kernel_interpreter(case, modules) -> None:
    mods, lib = modules
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = run_program(case.program, *case.args)
    got = emulate.run(case.program, mods[case.id], case.args, library=lib)
    check(case, got, want)


def test_full_reductions_are_deterministic_and_grid_independent_within_tolerance(modules):
    """Same grid: the same bits every run; another grid: another fixed order, close."""
    mods, lib = modules
    case = next(c for c in CASES if c.id == "full-reduce-cosine-100000")
    runs = [emulate.run(case.program, mods[case.id], case.args, library=lib, max_grid=3)[0]
            for _ in range(3)]
    assert all(r.tobytes() == runs[0].tobytes() for r in runs)
    other = emulate.run(case.program, mods[case.id], case.args, library=lib, max_grid=7,
                        block=128)[0]
    np.testing.assert_allclose(other, runs[0], rtol=1e-6)


def test_many_blocks_and_rows_per_block(modules):
    """Grid-stride loops: fewer blocks than rows / points, and more blocks than work."""
    mods, lib = modules
    for cid in ("row-normalize-f32", "matmul-odd", "large-elementwise-tanh"):
        case = next(c for c in CASES if c.id == cid)
        want = run_program(case.program, *case.args)
        for grid, block in ((1, 32), (16, 128), (2, 256)):
            got = emulate.run(case.program, mods[cid], case.args, library=lib, max_grid=grid,
                              block=block)
            check(case, got, want)


def test_an_out_of_bounds_write_is_caught() -> None:
    """The guard zones around buffers catch a kernel that writes past its buffer."""
    from syntonic.ir.errors import BackendError
    from tests.lower.cpu import programs as P

    prog = P.elementwise("neg", P.DType.f32, (8,))
    mod = generate(prog, "oob")
    bad = re.sub(r"b1\[(\w+)\] =", r"b1[\1 + 5] =", mod.source)
    assert bad != mod.source
    broken = type(mod)(mod.name, bad, mod.steps, mod.scratch)
    with pytest.raises(BackendError, match="outside buffer b1"):
        emulate.run(prog, broken, [np.ones(8, np.float32)], max_grid=1)
