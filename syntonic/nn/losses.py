"""Losses, numerically stable, written with sn ops (so they trace, fuse and differentiate).

Example::

    loss = sn.nn.cross_entropy(logits, labels)          # integer labels
    loss = sn.nn.cross_entropy(logits, probs)           # or class probabilities
"""

from __future__ import annotations

from typing import Any

from syntonic.frontend import api
from syntonic.nn.layers import one_hot


def _reduce(x: Any, reduction: str) -> Any:
    if reduction == "mean":
        return api.mean(x)
    if reduction == "sum":
        return api.sum(x)
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse(pred: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error. Example: ``sn.nn.mse(y, t)``."""
    d = api.subtract(pred, target)
    return _reduce(api.multiply(d, d), reduction)


def log_softmax(logits: Any, axis: int = -1) -> Any:
    """x - max - log(sum(exp(x - max))): stable for large logits. The shift by the max
    changes no value, so its gradient is stopped (it is exactly zero, and computing it
    would add a pass over the logits and rounding noise at the argmax)."""
    m = api.stop_gradient(api.max(logits, axis=axis, keepdims=True))
    shifted = api.subtract(logits, m)
    return api.subtract(shifted, api.log(api.sum(api.exp(shifted), axis=axis, keepdims=True)))


def softmax(logits: Any, axis: int = -1) -> Any:
    return api.exp(log_softmax(logits, axis))


def cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> Any:
    """Cross entropy from logits [..., C]; `target` is integer labels [...] or probabilities.

    Example: ``sn.nn.cross_entropy(model(params, x), y)``.
    """
    logp = log_softmax(logits)
    classes = logits.shape[-1]
    if str(target.dtype).startswith("int"):
        target = one_hot(target, classes, logits.dtype)
    nll = api.negative(api.sum(api.multiply(target, logp), axis=-1))
    return _reduce(nll, reduction)


def binary_cross_entropy_with_logits(logits: Any, target: Any, reduction: str = "mean") -> Any:
    """max(x,0) - x t + log(1 + exp(-|x|)): stable for large |x|."""
    loss = api.add(
        api.subtract(api.maximum(logits, 0.0), api.multiply(logits, target)),
        api.log(api.add(api.exp(api.negative(api.absolute(logits))), 1.0)),
    )
    return _reduce(loss, reduction)


def huber(pred: Any, target: Any, delta: float = 1.0, reduction: str = "mean") -> Any:
    """0.5 d^2 where |d| <= delta, else delta (|d| - delta/2)."""
    d = api.absolute(api.subtract(pred, target))
    quad = api.multiply(api.multiply(d, d), 0.5)
    lin = api.multiply(api.subtract(d, 0.5 * delta), delta)
    return _reduce(api.where(api.less_equal(d, delta), quad, lin), reduction)
