"""``sn.evolve``: the DHSR evolve loop of SPEC-ops.md as one ``while`` loop whose body
makes three passes over a row instead of six.

Written with the ops, an iteration (``y = dhsr_cycle(x)``, ``S' = syntony(y)``, accept)
passes over a row for: syntony of x, the differentiated energy, the harmonize energy,
the output, syntony of y, the accept select. Here the loop carries each row's syntony S
and energy E = sum x^2 (float64) from the pass that produced the row, so an iteration is

1. with alpha = (1 - S) phi^-2: u = x (1 + alpha i/N), U = sum u^2 and its kept part
   K = sum_kept u^2 (k the Moebius keep mask), both float64;
2. y = harmonize(mobius(u sqrt(E/U))), whose harmonize energy is (E/U) K (the energy of
   the masked, rescaled row in exact arithmetic: closer to the float64 reference than a
   sum of the rounded row), and syntony and energy of y;
3. the accept select.

Rows are independent and only a row's own values are read, so the loop is row-local
(:mod:`syntonic.passes.rowlocal`): the CPU runs it block of rows by block of rows in
cache. The semantics are the spec's; only the rounding of the row sums differs from
composing the ops. Harmonize's "y = x where E = 0" is not needed: such a row has
syntony 0 after the step and is never accepted.

Example::

    state, s, depth = sn.evolve(x, max_recursion=13, threshold=0.99)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from syntonic.frontend import api
from syntonic.frontend.control import while_loop
from syntonic.frontend.tracer import Tracer
from syntonic.ir import resonant as R
from syntonic.ir.types import DType


@lru_cache(maxsize=16)
def _profiles(n: int) -> dict[str, Any]:
    """Per-position float64 constants of an n-long row (as the op decompositions use)."""
    w = R.golden_weights(n)
    with np.errstate(all="ignore"):
        c = R.PHI_INV * np.sqrt((1.0 - R.Q) * w / w.sum()) if n else np.zeros(0)
    return {"sqrt_w": np.sqrt(w), "ramp": np.arange(n, dtype=np.float64) / max(n, 1),
            "keep": R.mobius_keep(n), "c": c, "W": float(w.sum())}


def _syntony_energy(x: Tracer, p: dict[str, Any]) -> tuple[Tracer, Tracer]:
    """(S, E) of each row of x in float64, keepdims: the spec's syntony (0 where E = 0)
    and sum x^2."""
    v = api.astype(x, DType.f64)
    a = api.sum(api.abs(v) * p["sqrt_w"], axis=-1, keepdims=True)
    e = api.sum(v * v, axis=-1, keepdims=True)
    den = e * p["W"]
    return api.where(den == 0.0, 0.0, (a * a) / den), e


def _cycle(x: Tracer, s: Tracer, e: Tracer, p: dict[str, Any], work: DType) -> Tracer:
    """dhsr_cycle(x) given each row's syntony s and energy e (float64, keepdims)."""
    # s broadcast first: alpha is then a per-row value of the same kernel (a computed
    # [R,1] value broadcast over the row would be a fusion boundary)
    alpha = (1.0 - api.broadcast_to(s, x.shape)) * R.PHI_INV2
    u = api.astype(x, work) * (1.0 + api.astype(alpha, work) * p["ramp"].astype(work.np))
    uq = api.astype(u, DType.f64) ** 2
    u_energy = api.sum(uq, axis=-1, keepdims=True)
    kept = api.sum(api.where(p["keep"], uq, 0.0), axis=-1, keepdims=True)
    ratio = api.where(u_energy == 0.0, 1.0, e / u_energy)  # U = 0: an all-zero row, y = x
    scale = api.astype(api.sqrt(ratio), work)
    root = api.astype(api.sqrt(ratio * kept), work)
    m = api.where(p["keep"], u * scale, 0.0)
    t = root * p["c"].astype(work.np)
    y = (1.0 - R.PHI_INV) * m + api.where(m >= 0.0, t, -t)
    return api.astype(y, x.dtype_)


def evolve_loop(t: Tracer, max_recursion: int, threshold: float) -> Any:
    """The loop of :func:`syntonic.frontend.resonant.evolve` on a float tensor `t`
    (f16 computes in f32; the state keeps t's dtype). Row values are carried with a
    kept last axis of 1, so they broadcast over the row inside one kernel."""
    p = _profiles(t.shape[-1])
    work = DType.f32 if t.dtype_ is DType.f16 else t.dtype_
    s0, e0 = _syntony_energy(t, p)
    depth0 = api.zeros(s0.shape, "i32")
    active0 = api.bitwise_and(api.less(s0, threshold), max_recursion > 0)

    def keep_going(carry: Any) -> Any:
        return api.any(carry[3])

    def step(carry: Any) -> Any:
        state, s, depth, active, e = carry
        y = _cycle(state, s, e, p, work)
        s_new, e_new = _syntony_energy(y, p)
        accept = api.bitwise_and(active, api.greater(s_new, s))
        state = api.where(accept, y, state)
        s = api.where(accept, s_new, s)
        e = api.where(accept, e_new, e)
        depth = api.add(depth, api.astype(accept, "i32"))
        active = api.bitwise_and(accept, api.bitwise_and(api.less(s, threshold),
                                                         api.less(depth, int(max_recursion))))
        return state, s, depth, active, e

    state, s, depth, _, _ = while_loop(keep_going, step, (t, s0, depth0, active0, e0))
    return state, api.astype(api.squeeze(s, -1), t.dtype_), api.squeeze(depth, -1)
