"""Modules: a functional core (``init(seed) -> params``, ``apply(params, x)``).

Parameters are nested dicts, so they have dotted names (``"0.weight"``) for ``.gnosis``
files, compose with ``sn.jit`` and ``sn.grad``, and carry no hidden state. Initialisation is
deterministic from a seed and follows the usual fan-in scheme (PyTorch's default for
Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias).

Example::

    model = sn.nn.Sequential(sn.nn.Linear(784, 128), sn.nn.ReLU(), sn.nn.Linear(128, 10))
    params = model.init(seed=0)
    logits = model.apply(params, x)          # or model(params, x)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from syntonic.frontend import api, resonant

Params = dict[str, Any]


class Module:
    """Base class: subclasses define ``init_params(rng)`` and ``apply(params, x)``."""

    def init(self, seed: int = 0, dtype: Any = np.float32) -> Params:
        """Deterministic parameters from `seed` (numpy arrays of `dtype`)."""
        rng = np.random.default_rng(seed)
        return _cast_tree(self.init_params(rng), np.dtype(dtype))

    def init_params(self, rng: np.random.Generator) -> Params:
        return {}

    def apply(self, params: Params, x: Any) -> Any:
        raise NotImplementedError

    def __call__(self, params: Params, x: Any) -> Any:
        return self.apply(params, x)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not isinstance(v, (list, Module)))
        return f"{type(self).__name__}({fields})"


def _cast_tree(tree: Any, dtype: np.dtype) -> Any:
    if isinstance(tree, dict):
        return {k: _cast_tree(v, dtype) for k, v in tree.items()}
    return np.asarray(tree, dtype=dtype)


class Linear(Module):
    """y = x @ weight + bias, weight of shape [in_features, out_features]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        self.in_features = in_features
        self.out_features = out_features
        self.bias = bias

    def init_params(self, rng: np.random.Generator) -> Params:
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        p = {"weight": rng.uniform(-bound, bound, (self.in_features, self.out_features))}
        if self.bias:
            p["bias"] = rng.uniform(-bound, bound, (self.out_features,))
        return p

    def apply(self, params: Params, x: Any) -> Any:
        y = api.matmul(x, params["weight"])
        return api.add(y, params["bias"]) if self.bias else y


class Sequential(Module):
    """Layers applied in order; parameters keyed "0", "1", ... (layers without params omitted)."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def init_params(self, rng: np.random.Generator) -> Params:
        out = {}
        for i, layer in enumerate(self.layers):
            p = layer.init_params(rng)
            if p:
                out[str(i)] = p
        return out

    def apply(self, params: Params, x: Any, key: Any = None) -> Any:
        """Apply the layers; `key` (optional) is split among the Dropout layers."""
        droppers = [i for i, layer in enumerate(self.layers) if isinstance(layer, Dropout)]
        keys = {}
        if key is not None and droppers:
            from syntonic.frontend import random

            split = random.split(key, len(droppers))
            keys = {i: split[j] for j, i in enumerate(droppers)}
        for i, layer in enumerate(self.layers):
            p = params.get(str(i), {})
            x = layer.apply(p, x, keys.get(i)) if i in keys else layer.apply(p, x)
        return x

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class ReLU(Module):
    def apply(self, params: Params, x: Any) -> Any:
        return api.maximum(x, 0.0)


class GELU(Module):
    """Exact GELU: x/2 (1 + erf(x / sqrt 2))."""

    def apply(self, params: Params, x: Any) -> Any:
        return api.multiply(api.multiply(x, 0.5),
                            api.add(api.erf(api.multiply(x, 1.0 / math.sqrt(2.0))), 1.0))


class Tanh(Module):
    def apply(self, params: Params, x: Any) -> Any:
        return api.tanh(x)


class Sigmoid(Module):
    def apply(self, params: Params, x: Any) -> Any:
        return api.sigmoid(x)


class LayerNorm(Module):
    """Normalise the last axis to zero mean / unit variance, then scale and shift."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        self.dim = dim
        self.eps = eps

    def init_params(self, rng: np.random.Generator) -> Params:
        return {"weight": np.ones(self.dim), "bias": np.zeros(self.dim)}

    def apply(self, params: Params, x: Any) -> Any:
        mu = api.mean(x, axis=-1, keepdims=True)
        d = api.subtract(x, mu)
        var = api.mean(api.multiply(d, d), axis=-1, keepdims=True)
        y = api.multiply(d, api.rsqrt(api.add(var, self.eps)))
        return api.add(api.multiply(y, params["weight"]), params["bias"])


class Embedding(Module):
    """Rows of a [num, dim] table picked by integer ids (a one-hot matmul, so it fuses)."""

    def __init__(self, num_embeddings: int, dim: int) -> None:
        self.num_embeddings = num_embeddings
        self.dim = dim

    def init_params(self, rng: np.random.Generator) -> Params:
        return {"weight": rng.standard_normal((self.num_embeddings, self.dim))}

    def apply(self, params: Params, ids: Any) -> Any:
        table = params["weight"]
        hot = one_hot(ids, self.num_embeddings, np.dtype(table.dtype))
        return api.matmul(hot, table)


def one_hot(ids: Any, n: int, dtype: Any = "f32") -> Any:
    """[..., n] with 1 at each id. Example: ``one_hot(labels, 10)``."""
    ids = api.astype(ids, "i32")
    shape = tuple(getattr(ids, "shape", ()))
    classes = api.iota(shape + (n,), dim=len(shape), dtype="i32")
    hit = api.equal(api.expand_dims(ids, -1), classes)
    return api.astype(hit, dtype)


class Dropout(Module):
    """Zero each element with probability `rate` and scale the rest by 1/(1-rate).

    Random bits come from the in-graph generator: pass a key (``sn.random.key(seed)`` or a
    split of one) to train; without a key the layer is the identity (evaluation).
    Example: ``y = drop.apply({}, x, key=k)``.
    """

    def __init__(self, rate: float) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def apply(self, params: Params, x: Any, key: Any = None) -> Any:
        if key is None or self.rate == 0.0:
            return x
        from syntonic.frontend import random

        keep = random.bernoulli(key, 1.0 - self.rate, tuple(x.shape))
        return api.where(keep, api.multiply(x, 1.0 / (1.0 - self.rate)), 0.0)


class PrimeSyntonyGate(Module):
    """sn.prime_gate on the last axis: normalise and scale by phi^d for prime dims d."""

    def apply(self, params: Params, x: Any) -> Any:
        return resonant.prime_gate(x)


class Resonant(Module):
    """One DHSR cycle per call (optionally `steps` cycles), with a learnable output gain."""

    def __init__(self, dim: int, steps: int = 1) -> None:
        self.dim = dim
        self.steps = steps

    def init_params(self, rng: np.random.Generator) -> Params:
        return {"gain": np.ones(self.dim)}

    def apply(self, params: Params, x: Any) -> Any:
        for _ in range(self.steps):
            x = resonant.dhsr_cycle(x)
        return api.multiply(x, params["gain"])
