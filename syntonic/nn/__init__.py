"""Neural-network modules and losses on the Syntonic compiler (functional core)."""

from __future__ import annotations

from syntonic.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    Module,
    PrimeSyntonyGate,
    ReLU,
    Resonant,
    Sequential,
    Sigmoid,
    Tanh,
    one_hot,
)
from syntonic.nn.losses import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber,
    log_softmax,
    mse,
    softmax,
)
