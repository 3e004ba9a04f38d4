"""examples/dhsr_evolve.py: the compiled evolve loop equals its body stepped from Python."""

from __future__ import annotations

import runpy
import warnings
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dhsr_evolve.py"


def test_dhsr_evolve_example_runs(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runpy.run_path(str(EXAMPLE), run_name="__main__")  # asserts equality itself
    out = capsys.readouterr().out
    assert "one state: state [1, 248]" in out and "batch: state [4096, 248]" in out
    assert "step  3: mean syntony 0.992388, 0 rows active" in out  # the spec's example
    assert "native loop on the CPU" in out
    assert "row-local: each row runs the whole loop on its own" in out
