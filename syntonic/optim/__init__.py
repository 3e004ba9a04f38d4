"""Optimizers (SGD, Adam, AdamW, GoldenMomentum) and learning-rate schedules."""

from __future__ import annotations

from syntonic.optim.optimizers import (
    SGD,
    Adam,
    AdamW,
    GoldenMomentum,
    Optimizer,
    constant,
    cosine,
    warmup,
)
