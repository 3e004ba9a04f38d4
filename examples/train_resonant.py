"""Train a small resonant model (PrimeSyntonyGate + a DHSR layer) with GoldenMomentum.

Run: ``python examples/train_resonant.py``. The data are three noisy clusters in 16
dimensions; the model projects to 7 (a prime dimension, so the gate normalises and scales
by phi^7), runs one DHSR cycle with a learnable gain, and classifies. The resonant ops
differentiate through their decompositions; the whole step is one jitted function.
"""

from __future__ import annotations

import numpy as np

import syntonic as sn


def make_data(n: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 16)) * 2.0
    labels = rng.integers(0, 3, n).astype(np.int32)
    x = (centres[labels] + rng.standard_normal((n, 16))).astype(np.float32)
    return x, labels


def main(epochs: int = 40, seed: int = 0, verbose: bool = True) -> list[float]:
    x, y = make_data(seed=seed)
    model = sn.nn.Sequential(sn.nn.Linear(16, 7), sn.nn.PrimeSyntonyGate(),
                             sn.nn.Resonant(7), sn.nn.Linear(7, 3))
    params = model.init(seed)
    opt = sn.optim.GoldenMomentum(lr=0.01)
    state = opt.init(params)

    @sn.jit
    def step(params, state, x, y):
        loss, grads = sn.value_and_grad(lambda p: sn.nn.cross_entropy(model(p, x), y))(params)
        params, state = opt.update(grads, state, params)
        return params, state, loss

    losses = []
    for epoch in range(epochs):
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
        if verbose and (epoch % 10 == 0 or epoch == epochs - 1):
            print(f"epoch {epoch:3d}  loss {losses[-1]:.4f}")
    accuracy = float(np.mean(np.argmax(model(params, x), axis=-1) == y))
    if verbose:
        print(f"train accuracy: {accuracy:.3f}")
    return losses


if __name__ == "__main__":
    main()
