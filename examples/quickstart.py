"""Quickstart: one DHSR step on a [1, 248] state, traced, inspected and run.

Run it with ``python examples/quickstart.py``. It prints the typed IR that Syntonic
traced from ``dhsr_step`` (note the explicit ``broadcast`` and the resonant ops by
name), then runs the step and prints the syntony before and after.
"""

from __future__ import annotations

import numpy as np

import syntonic as sn


@sn.jit
def dhsr_step(state):
    """Centre the state, harmonize it, keep square-free dimensions, measure syntony."""
    centred = state - state.mean(axis=-1, keepdims=True)  # mean -> broadcast -> sub
    harmonized = sn.harmonize(centred, strength=sn.PHI_INV)
    masked = sn.mobius_mask(harmonized)
    return masked, sn.syntony(masked)


def main() -> None:
    state = np.sin(0.37 * np.arange(248, dtype=np.float32)).reshape(1, 248)
    print("Traced IR of dhsr_step:\n")
    print(dhsr_step.trace(sn.spec("f32[1,248]")))
    before = sn.syntony(state)
    new_state, after = dhsr_step(state)
    print(f"syntony before: {float(before[0]):.6f}")
    print(f"syntony after:  {float(after[0]):.6f}")
    print(f"state[0, :4] -> {np.array2string(new_state[0, :4], precision=5)}")


if __name__ == "__main__":
    main()
