"""``sn.train.train_step``: one compiled training step (forward, backward, update).

The step is one jitted function, so the forward pass, its gradient and the optimizer
update compile into one native program (the update fuses into the epilogues of the
weight-gradient GEMMs). Parameters and optimizer state are *donated*: the caller gives
them up at every call and the program writes the next call's results into their memory,
so after the first two steps a step allocates no parameter-sized arrays (see
:func:`syntonic.jit`, "Donation").

Example::

    step = sn.train.train_step(model, sn.nn.cross_entropy, sn.optim.Adam(1e-3))
    for x, y in loader.epoch(0):
        params, opt_state, loss = step(params, opt_state, x, y)  # old ones: donated
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syntonic.ad.api import value_and_grad
from syntonic.nn.layers import Module
from syntonic.optim.optimizers import Optimizer
from syntonic.runtime.jit import JitFunction, jit


def train_step(model: Module | Callable[[Any, Any], Any], loss_fn: Callable[[Any, Any], Any],
               optimizer: Optimizer, donate: bool = True, device: str = "auto"
               ) -> JitFunction:
    """``step(params, opt_state, x, y) -> (params, opt_state, loss)``, jitted.

    `model(params, x)` gives the predictions, `loss_fn(pred, y)` the scalar loss. With
    `donate` (the default) params and opt_state are donated: do not use the arrays you
    pass after the call, use the returned ones.
    """

    def step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
        loss, grads = value_and_grad(lambda p: loss_fn(model(p, x), y))(params)
        params, opt_state = optimizer.update(grads, opt_state, params)
        return params, opt_state, loss

    return jit(step, device=device, donate_argnums=(0, 1) if donate else ())
