"""sn.jit and the disk cache: a hit after a process restart, a miss after editing the
function body or a helper it calls (issue 5 acceptance)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("llvmlite")

ROOT = Path(__file__).resolve().parents[2]

_PROGRAM = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np
    import syntonic as sn
    from syntonic.runtime import cache

    def helper(x):
        return x * {helper_const}

    @sn.jit
    def f(x):
        return sn.tanh(helper(x)) + {body_const}

    y = f(np.ones(64, np.float32))
    info = cache.info()
    print(float(y[0]), info["disk_hits"], info["misses"])
""")


def _run(tmp: Path, helper_const: float, body_const: float) -> tuple[float, int, int]:
    env = dict(os.environ, SYNTONIC_CACHE_DIR=str(tmp), SYNTONIC_CACHE="rw",
               SYNTONIC_DEVICE="cpu")  # the CPU cache, also on a machine with a GPU
    script = _PROGRAM.format(root=str(ROOT), helper_const=helper_const,
                             body_const=body_const)
    path = tmp / "prog.py"
    path.write_text(script)
    out = subprocess.run([sys.executable, str(path)], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def test_hit_after_restart_and_miss_after_edits(tmp_path: Path) -> None:
    first = _run(tmp_path, 2.0, 1.0)
    assert first[1:] == (0, 1)  # cold: one miss
    again = _run(tmp_path, 2.0, 1.0)
    assert again[1:] == (1, 0) and again[0] == first[0]  # restart: disk hit
    body = _run(tmp_path, 2.0, 3.0)
    assert body[1:] == (0, 1) and body[0] != first[0]  # body edited: miss
    helper = _run(tmp_path, 0.5, 1.0)
    assert helper[1:] == (0, 1) and helper[0] != first[0]  # helper edited: miss


def test_a_large_captured_constant_keys_the_cache_by_its_bytes(tmp_path: Path) -> None:
    # The compile key prints large constants as a digest of their bytes (not their text):
    # the same function capturing another array of the same shape must miss, and the
    # same bytes must hit.
    import numpy as np

    import syntonic as sn
    from syntonic.ir.printer import DIGEST_MIN
    from syntonic.runtime import cache

    def make(w):
        return sn.jit(lambda x: x * w + 1.0, device="cpu")

    rng = np.random.default_rng(3)
    w1 = rng.standard_normal(DIGEST_MIN * 50).astype(np.float32)
    w2 = w1.copy()
    w2[-1] += 1.0  # one element differs, deep inside the constant
    x = np.ones_like(w1)
    with cache.configure(mode="rw", dir=tmp_path):
        f1 = make(w1)
        key_text = f1.trace(x).key_text()
        assert "sha256:" in key_text and len(key_text) < 4000
        assert len(f1.trace(x).text()) > 10 * len(key_text)
        np.testing.assert_array_equal(f1(x), w1 + 1.0)
        misses = cache.info()["misses"]
        np.testing.assert_array_equal(make(w2)(x), w2 + 1.0)
        assert cache.info()["misses"] == misses + 1
        np.testing.assert_array_equal(make(w1.copy())(x), w1 + 1.0)
        assert cache.info()["misses"] == misses + 1
