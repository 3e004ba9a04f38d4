""">= 200 random fused graphs per run (260) agree: emulated CUDA vs the interpreter.

Graphs come from the shared hypothesis strategies (tests/strategies.py), primitive and
resonant sets, through the whole pipeline (passes, fusion, kernel IR), then the CUDA
code generator; each hypothesis example is a batch whose sources are compiled into ONE
emulation library (one g++ run) and, where NVRTC is installed, compiled to PTX in one
NVRTC call. Results are compared with ``syntonic.ir.interpret`` on the traced graph with
the tolerances of the pass semantics test (tests/passes/test_semantics.py).
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir import interpret
from syntonic.lower.cuda import emulate, generate, nvrtc
from tests.passes.test_semantics import PRIMITIVE, SETTINGS, assert_agrees, lower_quietly
from tests.strategies import graph_cases

if not emulate.available():  # pragma: no cover - CI images have g++
    pytest.skip("CUDA emulation needs a C++20 compiler (g++ or $CXX)", allow_module_level=True)

BATCH = 60
PRIMITIVE_GRAPHS = 120
RESONANT_GRAPHS = 60
KERNEL_GRAPHS = 80
# Graphs rich in what makes CUDA kernels differ (reductions, matmul, views, iota): the
# plain primitive set mostly gives elementwise kernels.
KERNEL_OPS = ["sum", "mean", "max", "min", "prod", "matmul", "exp", "add", "mul", "sub", "div",
              "maximum", "tanh", "cast", "select", "gt", "broadcast", "transpose", "reshape",
              "slice", "pad", "iota"]
_counter = [0]


def _check_batch(cases: list) -> None:
    progs = [lower_quietly(g) for g, _ in cases]
    _counter[0] += 1
    mods = [generate(p, f"rg{_counter[0]}_{i}") for i, p in enumerate(progs)]
    lib = emulate.build(mods)
    if nvrtc.available():
        nvrtc.compile_ptx("".join(m.source for m in mods), "compute_75", "random-batch")
    for n, ((g, args), prog, mod) in enumerate(zip(cases, progs, mods)):
        # the graphs are small: every other one runs on one-warp blocks and a single block,
        # so the grid-stride loops and the one-warp block reduction run too
        block, grid = (64, 4) if n % 2 else (32, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = interpret(g, *args)
            got = emulate.run(prog, mod, args, library=lib, block=block, max_grid=grid)
        assert len(got) == len(want)
        for i, (a, w) in enumerate(zip(got, want)):
            assert_agrees(a, w, f"output {i} of emulated CUDA for\n{g}\n")


def _collect(strategy: st.SearchStrategy, n: int) -> list:
    """`n` examples drawn by hypothesis (one graph per example: a batch as ONE example
    would overrun hypothesis's buffer and be discarded again and again)."""
    found: list = []

    @settings(max_examples=n, **SETTINGS)
    @given(strategy)
    def collect(case):
        found.append(case)

    collect()
    return found


def _check_all(cases: list) -> None:
    for start in range(0, len(cases), BATCH):
        _check_batch(cases[start:start + BATCH])


def test_primitive_graphs_emulated_cuda_vs_interpreter() -> None:
    cases = _collect(graph_cases(PRIMITIVE, None, False), PRIMITIVE_GRAPHS)
    assert len(cases) >= PRIMITIVE_GRAPHS * 0.9
    _check_all(cases)


def test_resonant_graphs_emulated_cuda_vs_interpreter() -> None:
    cases = _collect(graph_cases(None, ["f16", "f32", "f64", "bool", "i32"], True), RESONANT_GRAPHS)
    assert len(cases) >= RESONANT_GRAPHS * 0.9
    _check_all(cases)


def test_reduction_and_matmul_graphs_emulated_cuda_vs_interpreter() -> None:
    rich = graph_cases(KERNEL_OPS, None, False, min_ops=5) \
        | graph_cases(KERNEL_OPS, None, False, min_ops=3, focus="matmul")
    cases = _collect(rich, KERNEL_GRAPHS)
    assert len(cases) >= KERNEL_GRAPHS * 0.9
    _check_all(cases)


def test_graph_count_is_at_least_200() -> None:
    assert PRIMITIVE_GRAPHS + RESONANT_GRAPHS + KERNEL_GRAPHS >= 200
