"""``sn.evolve``: the DHSR evolve loop of SPEC-ops.md as one ``while`` loop whose body is
one kernel of two passes over a row.

Written with the ops, an iteration (``y = dhsr_cycle(x)``, ``S' = syntony(y)``, accept)
passes over a row for: syntony of x, the differentiated energy, the harmonize energy,
the output, syntony of y, the accept select. Here the loop carries each row's syntony S
and energy E = sum x^2 (float64) from the iteration that produced the row, and an
iteration is

1. with alpha = (1 - S) phi^-2 and u = x (1 + alpha i/N): the sums U = sum u^2, its kept
   part K = sum_kept u^2 (the Moebius keep mask) and H = sum_kept |u| sqrt(w_i);
2. the output row and the accept select.

Between the two, S(y) and E(y) follow in closed form: with m = mobius(u sqrt(E/U)) and
harmonize's t_i = sqrt(E_m) c_i, c_i = kappa sqrt(w_i) >= 0, every output element has
|y_i| = (1-g)|m_i| + t_i (g = 1/phi), so

    sum sqrt(w_i) |y_i| = (1-g) sqrt(E/U) H + sqrt(E_m) kappa W,
    sum y_i^2 = ((1-g)^2 + kappa^2 W) E_m + 2 (1-g) kappa sqrt(E/U) sqrt(E_m) H,

with E_m = (E/U) K, the energy of the masked, rescaled row in exact arithmetic. All
terms are non-negative (no cancellation), so these are closer to the float64 reference
than sums over the rounded row. f16 rows (computed in f32) are rounded far more coarsely
than these sums, so there S(y) and E(y) are summed over the rounded row in a third pass.

f32 rows (and f16 ones) accumulate the sums in f32, on the row scaled by 1/rms of x
(clamped to [2^-100, 2^100]): squares of any f32 row then neither overflow nor
underflow, and a 248-long sum is within ~1e-6 relative (the CPU backend sums short f32
rows in f32 with 16 partial sums), at twice the vector lanes of float64. f64 rows sum
in f64. Rows are independent and only a row's own values are read, so the loop is
row-local (:mod:`syntonic.passes.rowlocal`): the CPU runs it block of rows by block of
rows in cache. The semantics are the spec's; only the rounding of the row sums differs
from composing the ops. Harmonize's "y = x where E = 0" is not needed: such a row has
syntony 0 after the step and is never accepted.

Example::

    state, s, depth = sn.evolve(x, max_recursion=13, threshold=0.99)
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from syntonic.frontend import api
from syntonic.frontend.control import while_loop
from syntonic.frontend.tracer import Tracer
from syntonic.ir import resonant as R
from syntonic.ir.types import DType

F64 = DType.f64


@lru_cache(maxsize=16)
def _profiles(n: int) -> dict[str, Any]:
    """Per-position float64 constants of an n-long row (as the op decompositions use)."""
    w = R.golden_weights(n)
    return {"sqrt_w": np.sqrt(w), "ramp": np.arange(n, dtype=np.float64) / max(n, 1),
            "keep": R.mobius_keep(n), "c": R.harmonize_profile(n, R.PHI_INV),
            "W": float(w.sum()),
            # c_i = kappa sqrt(w_i) (harmonize_profile)
            "kappa": R.PHI_INV * math.sqrt((1.0 - R.Q) / float(w.sum())) if n else 0.0}


def _syntony(a: Tracer, e: Tracer, p: dict[str, Any]) -> Tracer:
    """The spec's S = A^2 / (W E), 0 where E = 0 (float64 row values)."""
    den = e * p["W"]
    return api.where(den == 0.0, 0.0, (a * a) / den)


def _initial(x: Tracer, p: dict[str, Any]) -> tuple[Tracer, Tracer]:
    """(S, E) of each row of x (keepdims), summed in float64."""
    v = api.astype(x, F64)
    e = api.sum(v * v, axis=-1, keepdims=True)
    return _syntony(api.sum(api.abs(v) * p["sqrt_w"], axis=-1, keepdims=True), e, p), e


def _row_scale(x: Tracer, e: Tracer, work: DType) -> tuple[Any, Any]:
    """(inv, inv^2): the f32 row factor 1/rms of x clamped to [2^-100, 2^100] (work dtype,
    broadcast over the row) and its square (f64 row value); (1, 1) for f64 rows."""
    if work is F64:
        return 1.0, 1.0
    n = x.shape[-1]
    rms = api.sqrt(api.broadcast_to(e, x.shape) * (1.0 / max(n, 1)))
    inv = api.where(rms > 0.0, 1.0 / rms, 1.0)
    inv = api.astype(api.minimum(api.maximum(inv, 2.0 ** -100), 2.0 ** 100), work)
    # the row's factor as a (trivial) reduction of the broadcast one: a row value of this
    # kernel (computed at [R,1] it would be a kernel of its own)
    return inv, api.astype(api.max(inv, axis=-1, keepdims=True), F64) ** 2


def _step(x: Tracer, s: Tracer, e: Tracer, p: dict[str, Any], work: DType
          ) -> tuple[Tracer, Tracer, Tracer]:
    """(y, S(y), E(y)) with y = dhsr_cycle(x), given x's syntony s and energy e (f32 and
    f64 rows: S(y) and E(y) come from the sums of the first pass, see :func:`_step_sums`)."""
    if x.dtype_ is not work:  # f16: the syntony of the rounded row
        return _step_rounded(x, s, e, p, work)
    g = R.PHI_INV
    const = lambda name: p[name].astype(work.np)  # noqa: E731
    # s broadcast first, so alpha is a row value of this kernel
    alpha = (1.0 - api.broadcast_to(s, x.shape)) * R.PHI_INV2
    inv, inv2 = _row_scale(x, e, work)
    v = x * (inv + api.astype(alpha, work) * inv * const("ramp"))  # u / rms
    vk = api.where(p["keep"], v, 0.0)
    u_energy = api.astype(api.sum(v * v, axis=-1, keepdims=True), F64)
    kept = api.astype(api.sum(vk * vk, axis=-1, keepdims=True), F64)
    head = api.astype(api.sum(api.abs(vk) * const("sqrt_w"), axis=-1, keepdims=True), F64)
    ratio = api.where(u_energy == 0.0, 1.0, e * inv2 / u_energy)  # U = 0: all-zero row
    scale = api.sqrt(ratio)  # m = vk scale (scaled by 1/rms), m / rms in the sums
    root = api.sqrt(ratio * kept)  # sqrt(harmonize energy) / rms
    kappa, w_sum = p["kappa"], p["W"]
    # |y_i| = (1-g)|m_i| + root c_i and c_i = kappa sqrt(w_i): S(y) and E(y) in closed form
    a = (1.0 - g) * scale * head + root * (kappa * w_sum)
    ey = ((1.0 - g) ** 2 + kappa * kappa * w_sum) * ratio * kept \
        + (2.0 * (1.0 - g) * kappa) * scale * root * head
    m = vk * api.astype(scale / api.astype(inv, F64), work)
    t = api.astype(root / api.astype(inv, F64), work) * const("c")
    y = api.astype((1.0 - g) * m + api.where(m >= 0.0, t, -t), x.dtype_)
    return y, _syntony(a, ey, p), ey / inv2


def _step_rounded(x: Tracer, s: Tracer, e: Tracer, p: dict[str, Any], work: DType
                  ) -> tuple[Tracer, Tracer, Tracer]:
    """:func:`_step` for rows stored narrower than `work` (f16): S(y) and E(y) are summed
    over the rounded row y in a third pass (its rounding is far above that of the sums)."""
    const = lambda name: p[name].astype(work.np)  # noqa: E731
    alpha = (1.0 - api.broadcast_to(s, x.shape)) * R.PHI_INV2
    u = api.astype(x, work) * (1.0 + api.astype(alpha, work) * const("ramp"))
    inv, inv2 = _row_scale(x, e, work)
    vq = (u * inv) ** 2
    u_energy = api.astype(api.sum(vq, axis=-1, keepdims=True), F64)
    kept = api.astype(api.sum(api.where(p["keep"], vq, 0.0), axis=-1, keepdims=True), F64)
    ratio = api.where(u_energy == 0.0, 1.0, e * inv2 / u_energy)  # U = 0: all-zero row
    scale = api.astype(api.sqrt(ratio), work)
    root = api.astype(api.sqrt(ratio * kept / inv2), work)
    m = api.where(p["keep"], u * scale, 0.0)
    t = root * const("c")
    y = api.astype((1.0 - R.PHI_INV) * m + api.where(m >= 0.0, t, -t), x.dtype_)
    w = api.astype(y, work) * inv
    a = api.astype(api.sum(api.abs(w) * const("sqrt_w"), axis=-1, keepdims=True), F64)
    ey = api.astype(api.sum(w * w, axis=-1, keepdims=True), F64)
    return y, _syntony(a, ey, p), ey / inv2


def evolve_init(t: Tracer, max_recursion: int, threshold: float) -> tuple[Tracer, ...]:
    """The loop's initial carry ``(state, syntony, depth, active, energy)``; row values
    keep a last axis of 1 so that they broadcast over the row inside one kernel."""
    s0, e0 = _initial(t, _profiles(t.shape[-1]))
    active0 = api.bitwise_and(api.less(s0, threshold), max_recursion > 0)
    return t, s0, api.zeros(s0.shape, "i32"), active0, e0


def evolve_body(carry: tuple[Tracer, ...], max_recursion: int, threshold: float
                ) -> tuple[Tracer, ...]:
    """One iteration of the loop on a carry from :func:`evolve_init` (f16 computes in
    f32; the state keeps its dtype)."""
    state, s, depth, active, e = carry
    work = DType.f32 if state.dtype_ is DType.f16 else state.dtype_
    y, s_new, e_new = _step(state, s, e, _profiles(state.shape[-1]), work)
    accept = api.bitwise_and(active, api.greater(s_new, s))
    state = api.where(accept, y, state)
    s = api.where(accept, s_new, s)
    e = api.where(accept, e_new, e)
    depth = api.add(depth, api.astype(accept, "i32"))
    active = api.bitwise_and(accept, api.bitwise_and(api.less(s, threshold),
                                                     api.less(depth, int(max_recursion))))
    return state, s, depth, active, e


def evolve_loop(t: Tracer, max_recursion: int, threshold: float) -> Any:
    """The loop of :func:`syntonic.frontend.resonant.evolve` on a float tensor `t`."""
    state, s, depth, _, _ = while_loop(
        lambda carry: api.any(carry[3]),
        lambda carry: evolve_body(carry, max_recursion, threshold),
        evolve_init(t, max_recursion, threshold))
    return state, api.astype(api.squeeze(s, -1), t.dtype_), api.squeeze(depth, -1)
