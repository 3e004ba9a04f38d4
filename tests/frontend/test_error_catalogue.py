"""A catalogue of common user mistakes: each error names the user's file:line and a fix."""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest

import syntonic as sn
from tests.frontend import mistakes

SOURCE = Path(mistakes.__file__)
F32 = np.ones((4, 3), np.float32)


def line_of(tag: str) -> int:
    for i, text in enumerate(SOURCE.read_text().splitlines(), start=1):
        if f"# MISTAKE: {tag}" in text:
            return i
    raise AssertionError(f"no MISTAKE tag {tag!r}")


# (function, args, expected error class, words expected in the message, words in the fix)
CASES = [
    (mistakes.if_on_traced, (F32,), sn.ControlFlowError, ["bool()", "bool[]"],
     "sn.where"),
    (mistakes.while_on_traced, (F32,), sn.ControlFlowError, ["`while_on_traced`"], "sn.where"),
    (mistakes.float_of_traced, (F32,), sn.ControlFlowError, ["float()"], "static_argnames"),
    (mistakes.range_of_traced, (F32,), sn.ControlFlowError, ["Python index or size"],
     "sn.while_loop"),
    (mistakes.broadcast_mismatch, (F32, np.ones(5, np.float32)), sn.ShapeError,
     ["f32[4,3]", "f32[5]", "broadcast"], "equal or 1"),
    (mistakes.matmul_mismatch, (F32, F32), sn.ShapeError, ["f32[4,3] @ f32[4,3]", "3 vs 4"],
     ".T"),
    (mistakes.resonant_on_int, (np.ones((2, 8), np.int32),), sn.DTypeError,
     ["harmonize", "i32[2,8]"], "astype('f32')"),
    (mistakes.unsupported_numpy_function, (F32,), sn.UnsupportedError, ["np.linalg.svd"],
     "sn.*"),
    (mistakes.unsupported_ufunc, (F32,), sn.UnsupportedError, ["np.arctan2"], "sn.*"),
    (mistakes.bad_reshape, (F32,), sn.ShapeError, ["f32[4,3]", "12 elements", "[5, 5]"],
     "same number of elements"),
    (mistakes.axis_out_of_range, (F32,), sn.ShapeError, ["axis 2", "rank 2"], "[-2, 1]"),
    (mistakes.index_out_of_range, (F32,), sn.ShapeError, ["index 10", "size 4"], "[-4, 3]"),
    (mistakes.boolean_mask_index, (F32,), sn.UnsupportedError, ["boolean indexing"],
     "sn.where"),
    (mistakes.item_assignment, (F32,), sn.UnsupportedError, ["immutable"], "sn.where"),
    (mistakes.to_numpy_inside, (F32,), sn.TraceError, ["numpy array", "`to_numpy_inside`"],
     "convert after the call"),
    (mistakes.item_inside, (F32,), sn.ControlFlowError, [".item()"], "sn.where"),
    (mistakes.bad_astype, (F32,), sn.DTypeError, ["complex64"], "f32"),
    (mistakes.where_on_int_values, (np.ones((2, 8), np.int32),), sn.DTypeError,
     ["mobius_mask", "i32[2,8]"], "astype('f32')"),
]


@pytest.mark.parametrize("fn,args,cls,words,fix", CASES, ids=[c[0].__name__ for c in CASES])
def test_mistake_names_user_line_and_fix(fn, args, cls, words, fix):
    with pytest.raises(cls) as info:
        sn.jit(fn)(*args)
    message = str(info.value)
    assert f"mistakes.py:{line_of(fn.__name__)}:" in message, message
    assert "fix:" in message and fix in message.split("fix:", 1)[1], message
    for word in words:
        assert word in message, (word, message)
    # the offending source line is quoted
    assert f"MISTAKE: {fn.__name__}" in message
    assert isinstance(info.value, sn.SyntonicError)


def test_catalogue_has_at_least_twelve_mistakes():
    assert len(CASES) >= 12
    assert len({c[0] for c in CASES}) == len(CASES)


def test_escaped_tracer_is_named():
    sn.jit(mistakes.leak)(F32)
    with pytest.raises(sn.TraceError) as info:
        sn.jit(mistakes.use_leaked)(F32)
    message = str(info.value)
    assert f"mistakes.py:{line_of('use_leaked')}:" in message
    assert "escaped" in message and "`leak`" in message
    assert "pass the value in as an argument" in message


def test_traceback_is_filtered_to_user_frames():
    with pytest.raises(sn.ShapeError) as info:
        sn.jit(mistakes.bad_reshape)(F32)
    frames = traceback.extract_tb(info.value.__traceback__)
    files = [f.filename for f in frames]
    assert any(f.endswith("mistakes.py") for f in files)
    internal = [f for f in files if "/syntonic/" in f and "/tests/" not in f]
    # Only the jit entry point that re-raised remains; no tracer/op/registry frames.
    assert len(internal) <= 1, files
    assert info.value.__cause__ is None


def test_call_site_errors_name_the_caller():
    f = sn.jit(lambda x: x * 2)
    with pytest.raises(sn.TraceError) as info:
        f("not an array")  # noqa: the caller's line is what the message must name
    assert "test_error_catalogue.py:" in str(info.value)
    assert "static_argnames" in str(info.value)
    with pytest.raises(sn.DTypeError) as info:
        f(np.ones(3, np.uint8))
    assert "uint8" in str(info.value) and "astype(np.float32)" in str(info.value)
    g = sn.jit(lambda x, n: x * n, static_argnames=("n",))
    with pytest.raises(sn.TraceError, match="hashable"):
        g(F32, [1, 2])
    with pytest.raises(sn.TraceError, match="specs only stand in"):
        f(sn.spec("f32[3]"))
