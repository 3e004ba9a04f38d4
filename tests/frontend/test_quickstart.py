"""The quickstart example traces to IR that shows `broadcast` and the resonant ops by name."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

import syntonic as sn

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def test_quickstart_ir_shows_broadcast_and_resonant_ops():
    module = runpy.run_path(str(EXAMPLE))
    text = str(module["dhsr_step"].trace(sn.spec("f32[1,248]")))
    lines = text.splitlines()
    ops = [ln.split("=")[1].split()[0] for ln in lines if " = " in ln]
    assert ops == ["mean", "broadcast", "sub", "harmonize", "mobius_mask", "syntony"]
    assert "broadcast %0 {shape=[1,248]} : f32[1,248]" in text
    assert 'loc("' in text and "quickstart.py" in text
    assert sn.ir.parse(text).text() == text


def test_quickstart_runs_and_matches_the_reference(capsys):
    module = runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "func @dhsr_step" in out and "syntony after" in out
    state = np.sin(0.37 * np.arange(248, dtype=np.float32)).reshape(1, 248)
    y, s = module["dhsr_step"](state)
    centred = state.astype(np.float64) - state.mean(axis=-1, keepdims=True)
    ref = sn.mobius_mask(sn.harmonize(centred))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, sn.syntony(ref), rtol=1e-5)
