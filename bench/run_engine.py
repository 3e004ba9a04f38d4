"""Engine benchmarks (issues 7 and 10): the DHSR evolve loop and one DHSR cycle on the CPU.

Run ``python bench/run_engine.py`` (``--quick`` skips the 65536-row case); it writes the
section between two ``<!-- ENGINE -->`` lines of bench/README.md and leaves the rest alone.
All f32. Peers, in this same process: numpy (the loop written with numpy array code, as in
SPEC-ops.md, on f32 arrays), ``jax.jit`` (``lax.while_loop``; skipped if jax is not
installed), torch eager and ``torch.compile`` (when torch is installed). Times are the
best of several back-to-back calls on resident inputs after a warm-up; ratios are peer
time / syntonic time (> 1: syntonic is faster).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import syntonic as sn  # noqa: E402
from bench.common import replace_section  # noqa: E402
from bench.run_cpu import _machine, best, jax_call  # noqa: E402

try:
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    jax.config.update("jax_platforms", "cpu")
except ImportError:  # pragma: no cover - bench extra not installed
    jax = None

try:  # not a declared dependency: `pip install torch` adds its columns
    import torch  # noqa: E402
except ImportError:  # pragma: no cover
    torch = None

PHI = (1.0 + math.sqrt(5.0)) / 2.0
PHI_INV = PHI - 1.0
Q = 0.027395146920
MAX_RECURSION = 13
THRESHOLD = 0.99


# --------------------------------------------------------------------- numpy peer


def _constants(n: int) -> dict[str, np.ndarray]:
    i = np.arange(n, dtype=np.float64)
    w = np.exp(-(i * i) / PHI)
    keep = np.ones(n, bool)
    k = 2
    while k * k <= n:
        keep[k * k - 1:: k * k] = False
        k += 1
    f32 = np.float32
    return {"w": w.astype(f32), "sqrt_w": np.sqrt(w).astype(f32), "wsum": f32(w.sum()),
            "ramp": (i / n).astype(f32), "keep": keep,
            "profile": np.sqrt((1.0 - Q) * w / w.sum()).astype(f32)}


def np_syntony(x: np.ndarray, c: dict) -> np.ndarray:
    num = np.sum(np.abs(x) * c["sqrt_w"], axis=-1) ** 2
    den = c["wsum"] * np.sum(x * x, axis=-1)
    return np.where(den == 0, np.float32(0), num / np.where(den == 0, np.float32(1), den))


def np_dhsr(x: np.ndarray, c: dict) -> np.ndarray:
    alpha = (np.float32(1) - np_syntony(x, c)) * np.float32(1 - PHI_INV)
    u = x * (np.float32(1) + alpha[:, None] * c["ramp"])
    e = np.sum(x * x, axis=-1, keepdims=True)
    uu = np.sum(u * u, axis=-1, keepdims=True)
    d = np.where(uu == 0, x, u * np.sqrt(e / np.where(uu == 0, np.float32(1), uu)))
    m = np.where(c["keep"], d, np.float32(0))
    em = np.sum(m * m, axis=-1, keepdims=True)
    g = np.float32(PHI_INV)
    y = (np.float32(1) - g) * m + g * np.where(m >= 0, np.float32(1), np.float32(-1)) \
        * np.sqrt(em) * c["profile"]
    return np.where(em == 0, m, y)


def np_evolve(x: np.ndarray, c: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np_syntony(x, c)
    depth = np.zeros(s.shape, np.int32)
    active = s < THRESHOLD
    while active.any():
        y = np_dhsr(x, c)
        s_new = np_syntony(y, c)
        accept = active & (s_new > s)
        x = np.where(accept[:, None], y, x)
        s = np.where(accept, s_new, s)
        depth += accept
        active = accept & (s < THRESHOLD) & (depth < MAX_RECURSION)
    return x, s, depth


# ------------------------------------------------------- jax and torch peers


def array_fns(xp: Any, n: int) -> tuple[Callable, Callable, Callable]:
    """(syntony, dhsr, step) written once with an array library's numpy-like functions
    (``jax.numpy`` or ``torch``, which both take ``axis``/``keepdims``); ``step`` is one
    iteration of the evolve loop on the carry (x, s, depth, active)."""
    c = {k: xp.asarray(v) for k, v in _constants(n).items()}

    def syntony(x):
        num = xp.sum(xp.abs(x) * c["sqrt_w"], axis=-1) ** 2
        den = c["wsum"] * xp.sum(x * x, axis=-1)
        return xp.where(den == 0, 0.0, num / xp.where(den == 0, 1.0, den))

    def dhsr(x):
        alpha = (1.0 - syntony(x)) * (1 - PHI_INV)
        u = x * (1.0 + alpha[:, None] * c["ramp"])
        e = xp.sum(x * x, axis=-1, keepdims=True)
        uu = xp.sum(u * u, axis=-1, keepdims=True)
        d = xp.where(uu == 0, x, u * xp.sqrt(e / xp.where(uu == 0, 1.0, uu)))
        m = xp.where(c["keep"], d, 0.0)
        em = xp.sum(m * m, axis=-1, keepdims=True)
        y = (1 - PHI_INV) * m + PHI_INV * xp.where(m >= 0, 1.0, -1.0) * xp.sqrt(em) \
            * c["profile"]
        return xp.where(em == 0, m, y)

    def step(x, s, depth, active):
        y = dhsr(x)
        s_new = syntony(y)
        accept = active & (s_new > s)
        x = xp.where(accept[:, None], y, x)
        s = xp.where(accept, s_new, s)
        depth = depth + accept  # int32 + bool stays int32
        return x, s, depth, accept & (s < THRESHOLD) & (depth < MAX_RECURSION)

    return syntony, dhsr, step


def jax_fns(n: int) -> tuple[Callable, Callable]:
    """``jax.jit`` of the loop (``lax.while_loop``) and of one cycle."""
    syntony, dhsr, step = array_fns(jnp, n)

    def evolve(x):
        s = syntony(x)
        carry = (x, s, jnp.zeros(s.shape, jnp.int32), s < THRESHOLD)
        x, s, depth, _ = jax.lax.while_loop(lambda c: jnp.any(c[3]), lambda c: step(*c),
                                            carry)
        return x, s, depth

    return jax.jit(evolve), jax.jit(dhsr)


def torch_fns(n: int) -> dict[str, Callable]:
    """torch eager and torch.compile (inductor, C++ on the CPU) versions of the loop and
    of one cycle; the compiled loop is a Python loop over a compiled step (torch has no
    traced while loop), so it syncs once per iteration for ``active.any()``."""
    syntony, dhsr, step = array_fns(torch, n)

    def looped(step_fn: Callable, init: Callable) -> Callable:
        def evolve(x):
            s = init(x)
            carry = (x, s, torch.zeros(s.shape, dtype=torch.int32), s < THRESHOLD)
            while bool(carry[3].any()):
                carry = step_fn(*carry)
            return carry[:3]
        return evolve

    compiled_step, compiled_syntony = torch.compile(step), torch.compile(syntony)
    return {"torch": looped(step, syntony), "torch.compile": looped(compiled_step,
                                                                     compiled_syntony),
            "torch_dhsr": dhsr, "torch.compile_dhsr": torch.compile(dhsr)}


# --------------------------------------------------------------------- syntonic


@sn.jit
def sn_evolve(x):
    return sn.evolve(x, max_recursion=MAX_RECURSION, threshold=THRESHOLD)


@sn.jit
def sn_dhsr(x):
    return sn.dhsr_cycle(x)


# --------------------------------------------------------------------- driver


def run(quick: bool) -> list[tuple[str, dict[str, float], str]]:
    rows = []
    shapes = [(1, 248), (4096, 248)] + ([] if quick else [(65536, 248)])
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        c = _constants(shape[1])
        state, s, depth = sn_evolve(x)
        ref = np_evolve(x, c)
        agree = float(np.mean(depth == ref[2]))
        note = f"depths {np.bincount(depth).tolist()}; depth agrees with numpy on " \
               f"{agree:.0%} of rows"
        repeat = 6 if shape[0] > 10000 else 10
        number = 1 if shape[0] > 10000 else 5  # back-to-back calls per timed sample
        times = {"syntonic": best(lambda x=x: sn_evolve(x), repeat, number),
                 "numpy": best(lambda x=x, c=c: np_evolve(x, c), max(2, repeat // 3))}
        if jax is not None:
            jev, _ = jax_fns(shape[1])
            times["jax"] = best(jax_call(lambda a, f=jev: f(a)[0], x), repeat, number)
        if torch is not None:
            tf, tx = torch_fns(shape[1]), torch.from_numpy(x)
            for peer in ("torch.compile", "torch"):
                times[peer] = best(lambda f=tf[peer], a=tx: f(a), max(2, repeat // 2),
                                   number if shape[0] < 10000 else 1)
        rows.append((f"evolve f32{list(shape)}", times, note))
    for shape in [(4096, 248)]:
        x = rng.standard_normal(shape).astype(np.float32)
        c = _constants(shape[1])
        times = {"syntonic": best(lambda x=x: sn_dhsr(x), 20, 5),
                 "numpy": best(lambda x=x, c=c: np_dhsr(x, c), 5)}
        if jax is not None:
            _, jd = jax_fns(shape[1])
            times["jax"] = best(jax_call(jd, x), 20, 5)
        if torch is not None:
            tf, tx = torch_fns(shape[1]), torch.from_numpy(x)
            for peer in ("torch.compile", "torch"):
                times[peer] = best(lambda f=tf[f"{peer}_dhsr"], a=tx: f(a), 20, 5)
        rows.append((f"dhsr_cycle f32{list(shape)}", times, ""))
    return rows


def _fmt(t: float) -> str:
    return f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} µs"


def report(rows: list[tuple[str, dict[str, float], str]]) -> str:
    peers = ["numpy", "jax", "torch.compile", "torch"]
    lines = [
        "## Engine (CPU): evolve loop and DHSR cycle",
        "",
        "Command: `python bench/run_engine.py` (rewrites only this section).",
        "",
        f"Machine: {_machine()}; load average {os.getloadavg()[0]:.2f} at the end.",
        "",
        "evolve = `sn.evolve(x, max_recursion=13, threshold=0.99)` (one compiled `while` "
        "loop); the numpy peer is the same loop written with numpy array code, the jax "
        "peer `lax.while_loop` under `jax.jit`, the torch peers the same code with torch "
        "ops, eager and under `torch.compile` (a Python loop over a compiled step: torch "
        "has no traced while loop; columns shown when torch is installed, "
        "`pip install torch`). Ratio = peer / syntonic.",
        "",
        "| workload | syntonic | " + " | ".join(peers) + " | notes |",
        "|---|---|" + "---|" * len(peers) + "---|",
    ]
    for name, t, note in rows:
        cells = [f"{_fmt(t[p])} ({t[p] / t['syntonic']:.2f}x)" if p in t else "n/a"
                 for p in peers]
        lines.append(f"| {name} | {_fmt(t['syntonic'])} | " + " | ".join(cells)
                     + f" | {note} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 65536-row case")
    ap.add_argument("--out", default=str(ROOT / "bench" / "README.md"))
    args = ap.parse_args()
    section = report(run(args.quick))
    print(section)
    replace_section(Path(args.out), "ENGINE", section)


if __name__ == "__main__":
    main()
