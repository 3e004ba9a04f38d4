"""``sn.train.fit``: the training loop on the compiler, with checkpoints and resume.

One training step (forward, backward, optimizer update) is traced and compiled into one
function (:func:`~syntonic.train.step.train_step`), which reuses the parameter and
optimizer-state buffers of the previous step (donation). Every epoch ends with a
``.gnosis`` checkpoint (parameters, optimizer state, epoch, data seed); ``resume=``
continues from one and ends bit-identical to an uninterrupted run. A non-finite loss
stops training with an error naming the first non-finite parameter.

Example::

    model = sn.nn.Sequential(sn.nn.Linear(64, 128), sn.nn.ReLU(), sn.nn.Linear(128, 10))
    train = sn.data.DataLoader((x, y), batch_size=64, shuffle=True, seed=0)
    result = sn.train.fit(model, sn.nn.cross_entropy, sn.optim.Adam(1e-3), train,
                          epochs=10, eval_loader=test, checkpoint="digits.gnosis")
    result.params, result.history
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from syntonic.data.loader import DataLoader
from syntonic.frontend import api
from syntonic.frontend.pytree import named_leaves
from syntonic.gnosis.format import load, save
from syntonic.ir.errors import SyntonicError
from syntonic.nn.layers import Module
from syntonic.optim.optimizers import Optimizer
from syntonic.records import record
from syntonic.runtime.jit import jit
from syntonic.train.step import train_step


class TrainingError(SyntonicError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not fit...)."""


@record
class FitResult:
    """Final parameters and optimizer state, and one metrics dict per epoch."""

    params: Any
    opt_state: Any
    history: list[dict[str, float]] = field(default_factory=list)


def _first_non_finite(params: Any) -> str | None:
    for name, value in named_leaves(params).items():
        if not np.all(np.isfinite(value)):
            return name
    return None


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; stay usable without it
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="batch")


def fit(model: Module, loss_fn: Callable[[Any, Any], Any], optimizer: Optimizer,
        train_loader: DataLoader, epochs: int, eval_loader: DataLoader | None = None,
        params: Any = None, seed: int = 0, checkpoint: str | Path | None = None,
        resume: str | Path | None = None, stop_after: int | None = None,
        progress: bool = True) -> FitResult:
    """Train `model` for `epochs`; see the module docstring. Returns a FitResult.

    `stop_after` ends the run after that many epochs of this call (for tests and
    preemption drills); the checkpoint then holds a resumable state.
    """
    if params is None:
        params = model.init(seed)
    opt_state = optimizer.init(params)
    history: list[dict[str, float]] = []
    start = 0
    if resume is not None:
        ckpt = load(resume)
        try:
            params, opt_state = ckpt["params"], ckpt["opt_state"]
            start = int(ckpt["epoch"]) + 1
            history = list(ckpt.get("history", {}).get("epochs", []))
        except (KeyError, TypeError) as exc:
            raise TrainingError(f"{resume}: not a training checkpoint (missing {exc})") from None
        if int(ckpt.get("data_seed", train_loader.seed)) != train_loader.seed:
            raise TrainingError(f"{resume}: saved with data seed {ckpt['data_seed']}, but the "
                                f"loader uses seed {train_loader.seed}")

    # params and opt_state are donated: each step writes into the previous step's buffers
    step = train_step(model, loss_fn, optimizer)

    @jit
    def eval_step(params: Any, x: Any, y: Any) -> Any:
        logits = model(params, x)
        loss = loss_fn(logits, y)
        if str(np.dtype(y.dtype)).startswith("int") and len(logits.shape) == len(y.shape) + 1:
            correct = api.sum(api.astype(api.equal(api.argmax(logits), y), "f32"))
        else:
            correct = api.zeros((), "f32")
        return loss, correct

    done = 0
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        bar = _progress(len(train_loader), f"epoch {epoch + 1}/{epochs}", progress)
        total, count = 0.0, 0
        for x, y in train_loader.epoch(epoch):
            params, opt_state, loss = step(params, opt_state, x, y)
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                if bar is not None:
                    bar.close()
                bad = _first_non_finite(params)
                raise TrainingError(
                    f"non-finite loss ({loss_value}) in epoch {epoch + 1}"
                    + (f"; first non-finite parameter: {bad!r}" if bad else
                       "; parameters are finite, so the loss itself overflowed")
                    + " (lower the learning rate, or check the inputs)")
            total += loss_value * len(x)
            count += len(x)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}",
                                samples_s=f"{count / (time.perf_counter() - t0):.0f}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        record = {"epoch": float(epoch + 1), "train_loss": total / max(count, 1),
                  "samples_per_s": count / seconds if seconds > 0 else 0.0}
        if eval_loader is not None:
            record.update(evaluate(eval_step, params, eval_loader))
        history.append(record)
        if checkpoint is not None:
            save(checkpoint, {"params": params, "opt_state": opt_state, "epoch": epoch,
                              "data_seed": train_loader.seed, "seed": seed,
                              "history": {"epochs": history}})
        done += 1
        if stop_after is not None and done >= stop_after:
            break
    return FitResult(params, opt_state, history)


def evaluate(eval_step: Any, params: Any, loader: DataLoader) -> dict[str, float]:
    """Mean loss and accuracy (for integer labels) over a loader."""
    total, correct, count = 0.0, 0.0, 0
    for x, y in loader.epoch(0):
        loss, hits = eval_step(params, x, y)
        total += float(loss) * len(x)
        correct += float(hits)
        count += len(x)
    return {"eval_loss": total / max(count, 1), "eval_accuracy": correct / max(count, 1)}
