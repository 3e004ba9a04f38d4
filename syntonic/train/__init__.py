"""The training loop (``sn.train.fit``)."""

from __future__ import annotations

from syntonic.train.fit import FitResult, TrainingError, fit

__all__ = ["FitResult", "TrainingError", "fit"]
