""">= 1000 random fused graphs per run agree between native CPU code and the interpreter.

Graphs come from the shared hypothesis strategies (tests/strategies.py); each hypothesis
example draws a batch of graphs that are lowered into ONE LLVM module, so the run pays a
few LLVM compiles instead of a thousand. Tolerances are those of the pass semantics test
(tests/passes/test_semantics.py, documented in docs/architecture.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("llvmlite")

from syntonic.ir import interpret  # noqa: E402
from syntonic.lower.cpu.codegen import lower_programs  # noqa: E402
from syntonic.lower.cpu.engine import get_engine  # noqa: E402
from syntonic.runtime.native import NativeProgram  # noqa: E402
from tests.passes.test_semantics import (  # noqa: E402
    PRIMITIVE,
    SETTINGS,
    assert_agrees,
    lower_quietly,
)
from tests.strategies import graph_cases  # noqa: E402

BATCH = 50
_counter = [0]


def _check_batch(cases: list) -> None:
    progs = [lower_quietly(g) for g, _ in cases]
    _counter[0] += 1
    names = [f"rg{_counter[0]}_{i}" for i in range(len(progs))]
    text, lowered = lower_programs(progs, names)
    symbols = tuple(s for lw in lowered for s in lw.symbols)
    eng = get_engine()
    from syntonic.runtime.native import _bit_mixing

    vectorize = not any(_bit_mixing(p) for p in progs)
    art = eng.compile(text, f"batch{_counter[0]}", symbols, vectorize=vectorize)
    addrs = eng.load(art.obj, symbols)
    for (g, args), prog, lw in zip(cases, progs, lowered):
        native = NativeProgram({"plan": lw.plan, "llvm": ""}, addrs, prog)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = interpret(g, *args)
            got = native(*args)
        assert len(got) == len(want)
        for i, (a, w) in enumerate(zip(got, want)):
            assert_agrees(a, w, f"output {i} of native code for\n{g}\n")


@settings(max_examples=14, **SETTINGS)
@given(st.lists(graph_cases(PRIMITIVE, None, False), min_size=BATCH, max_size=BATCH))
def test_primitive_graphs_native_vs_interpreter(cases):
    _check_batch(cases)


@settings(max_examples=7, **SETTINGS)
@given(st.lists(graph_cases(None, ["f16", "f32", "f64", "bool", "i32"], True), min_size=BATCH,
                max_size=BATCH))
def test_resonant_graphs_native_vs_interpreter(cases):
    _check_batch(cases)


def test_graph_count_is_at_least_1000() -> None:
    assert (14 + 7) * BATCH >= 1000
    assert np.isfinite(BATCH)
