"""sn.train.fit: resume is bit-identical, non-finite losses stop with a name, digits >= 97 %."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import syntonic as sn

ROOT = Path(__file__).resolve().parents[2]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    model = sn.nn.Sequential(sn.nn.Linear(6, 16), sn.nn.Tanh(), sn.nn.Linear(16, 3))
    loader = sn.data.DataLoader((x, y), batch_size=16, shuffle=True, seed=3)
    return model, loader


def test_resume_from_checkpoint_is_bitwise_identical(tmp_path):
    model, loader = problem()
    full = sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(1e-2), loader, epochs=4,
                        checkpoint=tmp_path / "full.gnosis", progress=False)
    ckpt = tmp_path / "part.gnosis"
    first = sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(1e-2), loader, epochs=4,
                         checkpoint=ckpt, stop_after=2, progress=False)
    assert len(first.history) == 2
    resumed = sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(1e-2), loader, epochs=4,
                           checkpoint=ckpt, resume=ckpt, progress=False)
    a = sn.frontend.pytree.named_leaves(full.params)
    b = sn.frontend.pytree.named_leaves(resumed.params)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    saved = sn.load(ckpt)
    assert int(saved["epoch"]) == 3 and "m" in saved["opt_state"]


def test_non_finite_loss_names_the_parameter():
    model, loader = problem()
    with pytest.raises(sn.train.TrainingError, match=r"non-finite .*parameter: '0\."):
        sn.train.fit(model, sn.nn.cross_entropy, sn.optim.SGD(lr=float("inf")), loader, epochs=2,
                     progress=False)


def test_resume_rejects_foreign_checkpoints(tmp_path):
    model, loader = problem()
    sn.save(tmp_path / "x.gnosis", {"weights": np.zeros(3)})
    with pytest.raises(sn.train.TrainingError, match="not a training checkpoint"):
        sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(), loader, epochs=1,
                     resume=tmp_path / "x.gnosis", progress=False)


def test_train_digits_example_reaches_97_percent(capsys):
    module = runpy.run_path(str(ROOT / "examples" / "train_digits.py"))
    accuracy = module["main"](progress=False)
    assert accuracy >= 0.97
    assert "test accuracy" in capsys.readouterr().out


def test_train_resonant_example_learns():
    module = runpy.run_path(str(ROOT / "examples" / "train_resonant.py"))
    losses = module["main"](epochs=30, verbose=False)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.1 * losses[0]
