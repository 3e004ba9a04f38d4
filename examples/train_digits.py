"""Train an MLP on scikit-learn's bundled digits data set (no download) and print accuracy.

Run: ``python examples/train_digits.py``. The whole training step (forward, backward,
Adam update) is one jitted Syntonic function; a checkpoint is written every epoch.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import syntonic as sn


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = 360
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def main(epochs: int = 30, seed: int = 0, progress: bool = True) -> float:
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    model = sn.nn.Sequential(sn.nn.Linear(64, 128), sn.nn.ReLU(), sn.nn.Linear(128, 10))
    train = sn.data.DataLoader((x_train, y_train), batch_size=64, shuffle=True, seed=seed)
    test = sn.data.DataLoader((x_test, y_test), batch_size=360)
    with tempfile.TemporaryDirectory() as tmp:
        result = sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(lr=3e-3), train,
                              epochs=epochs, eval_loader=test, seed=seed,
                              checkpoint=Path(tmp) / "digits.gnosis", progress=progress)
    last = result.history[-1]
    print(f"epochs: {epochs}  train loss: {last['train_loss']:.4f}  "
          f"test loss: {last['eval_loss']:.4f}  test accuracy: {last['eval_accuracy']:.4f}")
    return last["eval_accuracy"]


if __name__ == "__main__":
    main(progress=sys.stderr.isatty())
