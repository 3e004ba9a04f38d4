"""The training loop (``sn.train.fit``) and its compiled step (``sn.train.train_step``)."""

from __future__ import annotations

from syntonic.train.fit import FitResult, TrainingError, fit
from syntonic.train.step import train_step

__all__ = ["FitResult", "TrainingError", "fit", "train_step"]
