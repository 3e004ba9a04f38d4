"""SYNTONIC_DUMP / SYNTONIC_EXPLAIN act on ordinary compiling calls, not only f.lower()."""

from __future__ import annotations

import numpy as np

import syntonic as sn


def test_dump_and_explain_on_first_call(tmp_path, capsys):
    @sn.jit
    def f(x):
        return sn.harmonize(x * 2.0)

    with sn.config.override(dump_dir=str(tmp_path), explain=True):
        f(np.ones((2, 8), np.float32))
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert any("traced" in n for n in files) and any("kernels" in n for n in files)
    assert "explain @f" in capsys.readouterr().err
    f(np.ones((2, 8), np.float32))  # cached: nothing announced again
    with sn.config.override(explain=True):
        f(np.ones((2, 8), np.float32))
    assert "explain" not in capsys.readouterr().err
