"""Syntonic: a compiler-style graph framework with first-class resonant ops.

Example::

    import numpy as np
    import syntonic as sn

    @sn.jit
    def step(x):
        centred = x - x.mean(axis=-1, keepdims=True)
        return sn.harmonize(centred), sn.syntony(x)

    y, s = step(np.random.rand(1, 248).astype(np.float32))
    print(step.trace(sn.spec("f32[1,248]")))   # the typed IR
"""

from __future__ import annotations

from syntonic import ir
from syntonic.frontend import ArraySpec, Tracer, spec
from syntonic.frontend.api import (
    abs,
    absolute,
    add,
    all,
    amax,
    amin,
    any,
    arange,
    argmax,
    argmin,
    astype,
    broadcast_to,
    clip,
    cos,
    divide,
    dot,
    equal,
    erf,
    exp,
    expand_dims,
    floor,
    floor_divide,
    full,
    full_like,
    greater,
    greater_equal,
    iota,
    less,
    less_equal,
    log,
    logical_not,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mod,
    multiply,
    neg,
    negative,
    not_equal,
    ones,
    ones_like,
    power,
    prod,
    ravel,
    reciprocal,
    reshape,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    squeeze,
    std,
    stop_gradient,
    subtract,
    sum,
    tanh,
    transpose,
    true_divide,
    var,
    where,
    zeros,
    zeros_like,
)
from syntonic.frontend.resonant import (
    PHI,
    PHI_INV,
    PHI_INV2,
    PRIME_DIMS,
    Q,
    dhsr_cycle,
    differentiate,
    evolve,
    golden_weights,
    harmonize,
    mobius_mask,
    prime_gate,
    spectral_syntony,
    syntony,
)
from syntonic.ir.errors import (
    ControlFlowError,
    DTypeError,
    IRError,
    ShapeError,
    SyntonicError,
    TraceError,
    UnsupportedError,
)
from syntonic.ir.types import DType
from syntonic.runtime import JitFunction, jit

bool_ = DType.bool
i32 = DType.i32
i64 = DType.i64
f16 = DType.f16
f32 = DType.f32
f64 = DType.f64

__version__ = "0.1.0"

from syntonic import (  # noqa: E402
    data,  # noqa: E402
    nn,
    optim,
    train,  # noqa: E402
)
from syntonic.ad import grad, value_and_grad, vjp  # noqa: E402  (autodiff)
from syntonic.frontend import random  # noqa: E402

# .gnosis persistence (syntonic/gnosis); appended after the core API on purpose.
from syntonic.gnosis import load, save  # noqa: E402
from syntonic.ir.errors import GnosisError  # noqa: E402

# isort: split
# Compile stages, fusion reports and configuration (passes, fusion, kernel IR).
from syntonic import config  # noqa: E402

# ExplainReport and Lowered load on first use (module __getattr__ below): they import
# the passes and networkx (~120 ms), which running cached code never needs.

# isort: split
from syntonic.frontend.control import cond, while_loop  # noqa: E402

# isort: split
# CUDA runtime: device arrays, availability, device selection (cuda-bindings is lazy).
from syntonic.ir.errors import BackendError  # noqa: E402
from syntonic.runtime.cuda import DeviceWarning  # noqa: E402
from syntonic.runtime.cuda import available as cuda_available  # noqa: E402
from syntonic.runtime.device import (  # noqa: E402
    DeviceArray,
    as_device_array,
    device_pool,
    to_device,
)

_LAZY = {"ExplainReport": "syntonic.runtime.explain", "Lowered": "syntonic.runtime.lowered"}
# sn.cache: the compile cache (info(), clear(), wait(), configure()); loaded on first use
_LAZY_MODULES = {"cache": "syntonic.runtime.cache"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
