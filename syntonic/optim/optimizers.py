"""Optimizers as pure functions: ``init(params) -> state``, ``update(grads, state, params)``.

Both trace into a jitted training step (so the update fuses with the gradient), and run
eagerly on numpy arrays. Learning rates may be floats or schedules (``step -> lr``).

Example::

    opt = sn.optim.Adam(lr=1e-3)
    state = opt.init(params)

    @sn.jit(donate_argnums=(0, 1))     # reuse the params/state buffers every step
    def step(params, state, x, y):
        loss, grads = sn.value_and_grad(loss_fn)(params, x, y)
        params, state = opt.update(grads, state, params)
        return params, state, loss

(``sn.train.train_step(model, loss_fn, opt)`` builds this step.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from syntonic.frontend import api
from syntonic.frontend.pytree import tree_map
from syntonic.ir.resonant import PHI_INV

Schedule = Callable[[Any], Any]


def constant(lr: float) -> Schedule:
    """The same learning rate at every step."""
    return lambda step: lr


def warmup(lr: float, steps: int) -> Schedule:
    """Linear warm-up: lr * min(1, (step + 1) / steps)."""
    return lambda step: api.multiply(api.minimum(api.divide(api.add(step, 1.0), steps), 1.0), lr)


def cosine(lr: float, total_steps: int, final_lr: float = 0.0) -> Schedule:
    """Cosine decay from lr to final_lr over total_steps, then flat."""

    def schedule(step: Any) -> Any:
        t = api.divide(api.minimum(step, float(total_steps)), float(total_steps))
        c = api.multiply(api.add(api.cos(api.multiply(t, math.pi)), 1.0), 0.5)
        return api.add(api.multiply(c, lr - final_lr), final_lr)

    return schedule


def _lr(lr: float | Schedule, step: Any) -> Any:
    return lr(step) if callable(lr) else lr


def _like(scalar: Any, p: Any) -> Any:
    """A scalar hyper-parameter in the parameter's dtype (so f32 params stay f32)."""
    return scalar if isinstance(scalar, (int, float)) else api.astype(scalar, np.dtype(p.dtype))


def _zeros(params: Any) -> Any:
    return tree_map(lambda p: np.zeros(np.shape(p), dtype=np.dtype(p.dtype)), params)


class Optimizer:
    """Base: subclasses implement ``init`` and ``update``."""

    def init(self, params: Any) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, grads: Any, state: dict[str, Any], params: Any) -> tuple[Any, dict]:
        raise NotImplementedError


class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(self, lr: float | Schedule = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, \
            weight_decay

    def init(self, params: Any) -> dict[str, Any]:
        state: dict[str, Any] = {"step": np.zeros((), np.float64)}
        if self.momentum:
            state["velocity"] = _zeros(params)
        return state

    def update(self, grads: Any, state: dict[str, Any], params: Any) -> tuple[Any, dict]:
        lr = _lr(self.lr, state["step"])
        if self.weight_decay:
            grads = tree_map(lambda g, p: api.add(g, api.multiply(p, self.weight_decay)),
                             grads, params)
        new_state: dict[str, Any] = {"step": api.add(state["step"], 1.0)}
        if self.momentum:
            vel = tree_map(lambda v, g: api.add(api.multiply(v, self.momentum), g),
                           state["velocity"], grads)
            new_state["velocity"] = vel
            if self.nesterov:
                grads = tree_map(lambda g, v: api.add(g, api.multiply(v, self.momentum)),
                                 grads, vel)
            else:
                grads = vel
        params = tree_map(lambda p, d: api.subtract(p, api.multiply(d, _like(lr, p))),
                          params, grads)
        return params, new_state


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay adds L2 to the gradient."""

    decoupled = False

    def __init__(self, lr: float | Schedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.lr, self.b1, self.b2, self.eps, self.weight_decay = lr, b1, b2, eps, weight_decay

    def init(self, params: Any) -> dict[str, Any]:
        return {"step": np.zeros((), np.float64), "m": _zeros(params), "v": _zeros(params)}

    def update(self, grads: Any, state: dict[str, Any], params: Any) -> tuple[Any, dict]:
        step = api.add(state["step"], 1.0)
        lr = _lr(self.lr, state["step"])
        if self.weight_decay and not self.decoupled:
            grads = tree_map(lambda g, p: api.add(g, api.multiply(p, self.weight_decay)),
                             grads, params)
        m = tree_map(lambda m, g: api.add(api.multiply(m, self.b1),
                                          api.multiply(g, 1.0 - self.b1)), state["m"], grads)
        v = tree_map(lambda v, g: api.add(api.multiply(v, self.b2),
                                          api.multiply(api.multiply(g, g), 1.0 - self.b2)),
                     state["v"], grads)
        # lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
        c1 = api.subtract(1.0, api.power(self.b1, step))
        c2 = api.subtract(1.0, api.power(self.b2, step))
        lr_t = api.multiply(api.divide(api.sqrt(c2), c1), lr)

        def apply(p: Any, m: Any, v: Any) -> Any:
            upd = api.divide(m, api.add(api.sqrt(v), self.eps))
            new = api.subtract(p, api.multiply(upd, _like(lr_t, p)))
            if self.weight_decay and self.decoupled:
                decay = (lr * self.weight_decay if isinstance(lr, (int, float))
                         else _like(api.multiply(lr, self.weight_decay), p))
                new = api.subtract(new, api.multiply(p, decay))
            return new

        params = tree_map(apply, params, m, v)
        return params, {"step": step, "m": m, "v": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    decoupled = True

    def __init__(self, lr: float | Schedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(lr, b1, b2, eps, weight_decay)


class GoldenMomentum(Optimizer):
    """v <- beta v + g;  w <- w - lr v  with beta = 1/phi, lr = 0.027395 (SPEC-ops.md)."""

    def __init__(self, lr: float | Schedule = 0.027395, beta: float = PHI_INV) -> None:
        self.lr, self.beta = lr, beta

    def init(self, params: Any) -> dict[str, Any]:
        return {"step": np.zeros((), np.float64), "velocity": _zeros(params)}

    def update(self, grads: Any, state: dict[str, Any], params: Any) -> tuple[Any, dict]:
        lr = _lr(self.lr, state["step"])
        vel = tree_map(lambda v, g: api.add(api.multiply(v, self.beta), g),
                       state["velocity"], grads)
        params = tree_map(lambda p, v: api.subtract(p, api.multiply(v, _like(lr, p))),
                          params, vel)
        return params, {"step": api.add(state["step"], 1.0), "velocity": vel}
