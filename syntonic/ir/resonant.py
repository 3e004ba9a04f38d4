"""Constants and numpy reference semantics of the resonant ops (SPEC-ops.md).

Everything here computes in float64 along one axis moved last; the interpreter casts
results to the op's result dtype. These functions are the oracle for every backend.

Example::

    >>> round(float(syntony(np.array([1.0, 2.0, 3.0, 4.0]))), 12)
    0.263679400904
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

PHI = (1.0 + math.sqrt(5.0)) / 2.0
PHI_INV = PHI - 1.0
PHI_INV2 = 1.0 - PHI_INV
Q = 0.027395146920
PRIME_DIMS = frozenset({3, 4, 5, 7, 11, 13, 17, 23, 29, 43, 47})
PRIME_GATE_EPS = 1e-12
PRIME_GATE_DIM4_FACTOR = 0.78615


@lru_cache(maxsize=64)
def _golden(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.float64)
    w = np.exp(-(i * i) / PHI)
    w.setflags(write=False)
    return w


def golden_weights(n: int) -> np.ndarray:
    """w_i = exp(-i^2/phi) for i < n, float64."""
    return _golden(n)


@lru_cache(maxsize=64)
def _squarefree_mask(n: int) -> np.ndarray:
    """mask[i] is True iff i+1 is square-free (Moebius(i+1) != 0), by a sieve."""
    keep = np.ones(n, dtype=bool)
    k = 2
    while k * k <= n:
        keep[k * k - 1 :: k * k] = False
        k += 1
    keep.setflags(write=False)
    return keep


def mobius_keep(n: int) -> np.ndarray:
    return _squarefree_mask(n)


def harmonize_profile(n: int, g: float) -> np.ndarray:
    """c_i = g sqrt((1-Q) w_i / W): harmonize's target g t_i for a row of energy 1, so
    g t_i = sqrt(E) c_i (float64, length n)."""
    w = golden_weights(n)
    with np.errstate(all="ignore"):
        return g * np.sqrt((1.0 - Q) * w / w.sum()) if n else np.zeros(0)


def prime_gate_scale(d: int) -> float:
    """b(d) = phi^d, times 0.78615 for d = 4; 1.0 (identity) outside PRIME_DIMS."""
    if d not in PRIME_DIMS:
        return 1.0
    b = PHI**d
    return b * PRIME_GATE_DIM4_FACTOR if d == 4 else b


def _last(x: np.ndarray, axis: int | None) -> tuple[np.ndarray, callable]:
    """Move `axis` last (flatten for None); return it and the function undoing that."""
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        shape = x.shape
        return x.reshape(-1), lambda y: y.reshape(shape)
    return np.moveaxis(x, axis, -1), lambda y: np.moveaxis(y, -1, axis)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den, and 0 where den == 0 (NaN stays NaN)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / np.where(den == 0, 1.0, den)
    return np.where(den == 0, 0.0, out)


def _syntony_last(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    w = golden_weights(n)
    num = np.sum(np.abs(x) * np.sqrt(w), axis=-1) ** 2
    den = w.sum() * np.sum(x * x, axis=-1)
    return _safe_div(num, den)


def syntony(x: np.ndarray, axis: int | None = -1) -> np.ndarray:
    xm, _ = _last(x, axis)
    return np.asarray(_syntony_last(xm))


def spectral_syntony(x: np.ndarray, axis: int | None = -1) -> np.ndarray:
    xm, _ = _last(x, axis)
    w = golden_weights(xm.shape[-1])
    return np.asarray(_safe_div(np.sum(w * xm * xm, axis=-1), np.sum(xm * xm, axis=-1)))


def _differentiate_last(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    ramp = np.arange(n, dtype=np.float64) / n
    u = x * (1.0 + np.asarray(alpha, dtype=np.float64)[..., None] * ramp)
    e = np.sum(x * x, axis=-1, keepdims=True)
    uu = np.sum(u * u, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = u * np.sqrt(e / np.where(uu == 0, 1.0, uu))
    return np.where(uu == 0, x, y)


def differentiate(x: np.ndarray, alpha: object = 0.0, axis: int | None = -1) -> np.ndarray:
    xm, back = _last(x, axis)
    return back(_differentiate_last(xm, np.asarray(alpha, dtype=np.float64)))


def _harmonize_last(x: np.ndarray, g: float) -> np.ndarray:
    n = x.shape[-1]
    w = golden_weights(n)
    e = np.sum(x * x, axis=-1, keepdims=True)
    t = np.sqrt(e * (1.0 - Q) * w / w.sum()) if n else np.zeros_like(x)
    s = np.where(x >= 0, 1.0, -1.0)
    y = (1.0 - g) * x + g * s * t
    return np.where(e == 0, x, y)


def harmonize(x: np.ndarray, strength: float = PHI_INV, axis: int | None = -1) -> np.ndarray:
    xm, back = _last(x, axis)
    return back(_harmonize_last(xm, strength))


def mobius_mask(x: np.ndarray, axis: int | None = -1) -> np.ndarray:
    xm, back = _last(x, axis)
    return back(np.where(mobius_keep(xm.shape[-1]), xm, 0.0))


def dhsr_cycle(x: np.ndarray, axis: int | None = -1) -> np.ndarray:
    xm, back = _last(x, axis)
    alpha = (1.0 - _syntony_last(xm)) * PHI_INV2
    d = _differentiate_last(xm, alpha)
    m = np.where(mobius_keep(xm.shape[-1]), d, 0.0)
    return back(_harmonize_last(m, PHI_INV))


def prime_gate(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    if d not in PRIME_DIMS:
        return x
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return x / np.maximum(norm, PRIME_GATE_EPS) * prime_gate_scale(d)
