"""The resonant ops of SPEC-ops.md as user functions (``sn.harmonize``, ``sn.syntony`` ...).

Each records one first-class IR op (decomposed later by a pass) and works eagerly on
numpy arrays outside a trace.

Example::

    >>> float(sn.syntony(np.array([1.0, 2.0, 3.0, 4.0])))
    0.26367940090438513
"""

from __future__ import annotations

from typing import Any

import numpy as np

from syntonic.frontend import tracer as tr
from syntonic.frontend.api import Array, eager
from syntonic.frontend.tracer import emit, fail, lift
from syntonic.ir.errors import DTypeError, ShapeError, TraceError
from syntonic.ir.resonant import PHI, PHI_INV, PHI_INV2, PRIME_DIMS, Q  # noqa: F401
from syntonic.ir.types import DType


def _float_input(x: Array, op: str) -> tr.Tracer:
    t = lift(x)
    if not t.dtype_.is_float:
        raise fail(
            DTypeError,
            f"`{op}` needs a floating-point tensor (f16/f32/f64), got {t.type}",
            f"cast first: sn.{op}(x.astype('f32'))",
        )
    return t


def _axis(axis: Any, op: str) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise fail(TraceError, f"`{op}`: axis must be an int or None, got {axis!r}")
    return int(axis)


@eager
def golden_weights(n: int, dtype: Any = "f32") -> Array:
    """The golden measure w_i = exp(-i^2/phi), i < n. Example: ``sn.golden_weights(248)``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise fail(TraceError, f"golden_weights needs a static non-negative int n, got {n!r}")
    return emit("golden_weights", [], {"n": int(n), "dtype": DType.coerce(dtype)})


@eager
def syntony(x: Array, axis: int | None = -1) -> Array:
    """Alignment of |x| with the golden profile along `axis`, in [0, 1]."""
    t = _float_input(x, "syntony")
    return emit("syntony", [t], {"axis": _axis(axis, "syntony")})


@eager
def spectral_syntony(x: Array, axis: int | None = -1) -> Array:
    """Energy fraction of x under the golden measure along `axis`."""
    t = _float_input(x, "spectral_syntony")
    return emit("spectral_syntony", [t], {"axis": _axis(axis, "spectral_syntony")})


@eager
def differentiate(x: Array, alpha: Any, axis: int | None = -1) -> Array:
    """Amplify high modes by ``1 + alpha i/N`` and restore each row's energy.

    `alpha` is a Python float or one value per row (x's shape without `axis`).
    Example: ``sn.differentiate(x, 0.5)``.
    """
    t = _float_input(x, "differentiate")
    ax = _axis(axis, "differentiate")
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        return emit("differentiate", [t], {"alpha": float(alpha), "axis": ax})
    a = lift(alpha, t.dtype_, False)
    axn = None if ax is None else ax % max(t.ndim, 1)
    rows = () if axn is None else t.shape[:axn] + t.shape[axn + 1 :]
    if axn is not None and a.ndim == t.ndim and a.shape[axn] == 1:
        from syntonic.frontend.api import squeeze

        a = squeeze(a, axn)  # a keepdims-style alpha such as [B,1]
    if a.shape != rows:
        if tr.broadcast_shapes(a.shape, rows) != rows:
            raise fail(
                ShapeError,
                f"`differentiate`: alpha {a.type} does not fit the rows of {t.type} "
                f"(one alpha per row is {list(rows)})",
                "pass a Python float, or one alpha per row",
            )
        a = tr.broadcast_to(a, rows)
    return emit("differentiate", [t, a], {"axis": ax})


@eager
def harmonize(x: Array, strength: float = PHI_INV, axis: int | None = -1) -> Array:
    """Pull each row toward the golden profile of the same energy (less Q)."""
    t = _float_input(x, "harmonize")
    if not isinstance(strength, (int, float)) or isinstance(strength, bool):
        raise fail(TraceError, f"`harmonize`: strength must be a Python float, got "
                   f"{tr.describe(strength)}", "pass a number such as 0.618")
    return emit("harmonize", [t], {"strength": float(strength), "axis": _axis(axis, "harmonize")})


@eager
def mobius_mask(x: Array, axis: int | None = -1) -> Array:
    """Zero the positions i whose i+1 is not square-free."""
    t = _float_input(x, "mobius_mask")
    return emit("mobius_mask", [t], {"axis": _axis(axis, "mobius_mask")})


@eager
def dhsr_cycle(x: Array, axis: int | None = -1) -> Array:
    """One differentiate -> Moebius -> harmonize step with alpha from the syntony deficit."""
    t = _float_input(x, "dhsr_cycle")
    return emit("dhsr_cycle", [t], {"axis": _axis(axis, "dhsr_cycle")})


@eager
def prime_gate(x: Array) -> Array:
    """PrimeSyntonyGate on the last axis: normalise and scale by phi^d for prime dims d."""
    t = _float_input(x, "prime_gate")
    return emit("prime_gate", [t])


@eager
def evolve(x: Array, max_recursion: int = 13, threshold: float = 0.99) -> Any:
    """The DHSR evolve loop of SPEC-ops.md; rows (along the last axis) evolve independently.

    Per row: S = syntony(x), depth = 0; while S < threshold and depth < max_recursion:
    y = dhsr_cycle(x), S' = syntony(y); if S' > S accept (x <- y, S <- S', depth += 1),
    else stop that row. Returns ``(state, syntony, depth)`` with depth as i32. One
    ``while`` op: the loop runs in compiled code, not in Python.

    Example: ``state, s, depth = sn.evolve(x, max_recursion=13, threshold=0.99)``.
    """
    from syntonic.frontend.evolve import evolve_loop

    if not isinstance(max_recursion, (int, np.integer)) or max_recursion < 0:
        raise fail(TraceError, f"evolve: max_recursion must be a non-negative int, got "
                   f"{max_recursion!r}")
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or isinstance(
            threshold, bool):
        raise fail(TraceError, f"evolve: threshold must be a Python number, got "
                   f"{threshold!r}", "pass a number such as 0.99")
    t = _float_input(x, "evolve")
    if t.ndim == 0:
        raise fail(TraceError, "evolve needs at least one axis (the state dimension)")
    return evolve_loop(t, int(max_recursion), float(threshold))
