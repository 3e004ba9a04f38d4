"""``f.explain``: golden reports of the reference functions, and the report's structure.

Golden files live in ``tests/passes/golden/explain_<name>.txt`` (timings omitted, the
source path reduced to its file name). After an intended change, regenerate them with
``SYNTONIC_UPDATE_GOLDEN=1 python -m pytest tests/passes/test_explain.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import syntonic as sn
from syntonic.passes import PASS_NAMES
from syntonic.passes.fusion import REASONS
from tests.passes.reference_functions import CASES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SYNTONIC_UPDATE_GOLDEN") == "1"


def report(name: str) -> sn.ExplainReport:
    fn, specs, _, _ = CASES[name]
    return fn.explain(*[sn.spec(s) for s in specs])


def stable_text(r: sn.ExplainReport) -> str:
    return re.sub(r"[^\s(,]*reference_functions\.py", "reference_functions.py", r.text(times=False))


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_golden(name):
    text = stable_text(report(name))
    path = GOLDEN / f"explain_{name}.txt"
    if UPDATE or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_structure(name):
    r = report(name)
    fn, specs, _, count = CASES[name]
    low = fn.lower(*[sn.spec(s) for s in specs])
    assert len(r.kernels) == len(low.kernels) == count
    assert r.trace_ops == len(low.graphs["traced"].ops)
    assert r.optimized_ops == len(low.optimized.ops)
    for k, kernel in zip(r.kernels, low.kernels):
        assert k.name == kernel.name and k.space == kernel.space
        assert k.locations and all(re.search(r"\.py:\d+$", loc) for loc in k.locations)
        assert k.bytes_moved == k.bytes_read + k.bytes_written > 0
        assert k.writes and all(": " in w for w in k.writes)
    for b in r.boundaries:  # every fusion boundary has a documented reason
        assert b.reason in REASONS and b.explanation == REASONS[b.reason]
        assert b.reason.value in str(b)
    assert set(PASS_NAMES) | {"fusion", "kernels"} <= set(r.stage_times)
    text = str(r)
    assert "stage times (ms)" in text and f"@{fn.__name__}" in text


def test_boundaries_name_both_kernels_and_the_value():
    r = report("sum_then_total")
    (b,) = r.boundaries
    assert (b.producer, b.consumer) == (0, 1)
    assert "f32[64]" in b.value and "reduction boundary" in str(b)
    assert "read by k1" in r.kernels[0].writes[0]


def test_bytes_moved_for_a_large_row_kernel():
    r = report("harmonize_rows")
    (k,) = r.kernels
    assert k.bytes_written == 4096 * 4096 * 4
    assert k.bytes_read == 4096 * 4096 * 4 + 4096 * 4  # x and the golden profile
    assert "harmonize" in k.user_ops


def test_trace_time_is_reported_for_a_fresh_signature():
    @sn.jit
    def f(x):
        return x * 2.0

    assert "trace" in f.explain(sn.spec("f32[3]")).stage_times
    assert "trace" not in f.explain(sn.spec("f32[3]")).stage_times  # cached trace
