"""The DHSR evolve loop, compiled: one state [1, 248] and a batch [4096, 248].

Run it with ``python examples/dhsr_evolve.py``. ``sn.evolve`` is one compiled ``while``
loop (per row: differentiate with alpha from the syntony deficit, Möbius mask, harmonize,
accept only if syntony improved, stop at the threshold or at max_recursion). To print
syntony per step, the example also compiles the loop *body* (``evolve_body``, what
``sn.evolve`` runs per iteration) as a function and steps it from Python; the one-call
loop must land on exactly the same state.
"""

from __future__ import annotations

import time

import numpy as np

import syntonic as sn
from syntonic.frontend.evolve import evolve_body, evolve_init

MAX_RECURSION = 13
THRESHOLD = 0.99


@sn.jit
def evolve(state):
    """The whole loop in one native call: returns (state, syntony, depth)."""
    return sn.evolve(state, max_recursion=MAX_RECURSION, threshold=THRESHOLD)


@sn.jit
def init(state):
    """The loop's initial carry: (state, syntony, depth, active, energy) per row."""
    return evolve_init(state, MAX_RECURSION, THRESHOLD)


@sn.jit
def step(carry):
    """One iteration of the loop (the body of sn.evolve), for printing each step."""
    return evolve_body(carry, MAX_RECURSION, THRESHOLD)


def stepwise(state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    carry = init(state)
    k = 0
    while True:
        s, active = carry[1], carry[3]
        print(f"  step {k:2d}: mean syntony {float(np.mean(s)):.6f}, "
              f"{int(active.sum())} rows active")
        if not active.any():
            break
        carry = step(carry)
        k += 1
    state, s, depth = carry[0], carry[1][..., 0].astype(state.dtype), carry[2][..., 0]
    return state, s, depth


def run(name: str, state: np.ndarray) -> None:
    print(f"{name}: state {list(state.shape)} {state.dtype}")
    want = stepwise(state)
    got = evolve(state)
    t0 = time.perf_counter()
    got = evolve(state)
    ms = (time.perf_counter() - t0) * 1e3
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    print(f"  one compiled call: depth {np.bincount(got[2]).nonzero()[0].tolist()}, "
          f"syntony {float(got[1].min()):.6f}..{float(got[1].max()):.6f}, {ms:.2f} ms\n")


def main() -> None:
    one = np.sin(0.37 * np.arange(248, dtype=np.float32)).reshape(1, 248)
    run("one state", one)
    batch = np.random.default_rng(0).standard_normal((4096, 248)).astype(np.float32)
    run("batch", batch)
    print(evolve.explain(batch).text(times=False).split("fusion boundaries")[0].rstrip())


if __name__ == "__main__":
    main()
