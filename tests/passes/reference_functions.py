"""Reference functions for fusion, explain and dump tests, with the specs they are traced at.

Kept in their own module so the ``file:line`` in golden reports only changes when these
functions do. ``CASES`` maps a name to (function, argument specs, small argument specs
for running, expected kernel count).
"""

from __future__ import annotations

import syntonic as sn


@sn.jit
def chain12(x):
    y = x * 1.5
    y = y + 2.0
    y = sn.exp(y)
    y = y - x
    y = sn.tanh(y)
    y = y * y
    y = sn.sqrt(y + 1.0)
    y = sn.maximum(y, x)
    y = sn.sin(y)
    y = y / 3.0
    return sn.abs(y)


@sn.jit
def harmonize_rows(x):
    return sn.harmonize(x)


@sn.jit
def syntony_full(x):
    return sn.syntony(x, axis=None)


@sn.jit
def syntony_three_sums(x, w):
    a = sn.sum(sn.abs(x) * sn.sqrt(w))
    e = sn.sum(x * x)
    total = sn.sum(w)
    return a * a / (total * e)


@sn.jit
def dhsr(x):
    return sn.dhsr_cycle(x)


@sn.jit
def mlp(x, w, b):
    return sn.maximum(x @ w + b, 0.0)


@sn.jit
def row_normalise(x):
    m = sn.mean(x, axis=-1, keepdims=True)
    d = x - m
    v = sn.mean(d * d, axis=-1, keepdims=True)
    return d / sn.sqrt(v + 1e-5)


@sn.jit
def sum_then_total(x):
    rows = sn.sum(x, axis=1)
    return sn.sum(rows * 2.0)


@sn.jit
def transpose_computed(x):
    y = sn.exp(x)
    return y.T + 1.0


@sn.jit
def matmul_prologue(x, w):
    return (x * 2.0) @ w


@sn.jit
def sibling_reductions(x):
    return sn.sum(x, axis=-1), sn.max(x, axis=-1), x * 3.0


@sn.jit
def strided_reshape(x):
    return x.T.reshape(-1) * 2.0


@sn.jit
def dhsr_step_and_syntony(x):
    y = sn.dhsr_cycle(x)
    return y, sn.syntony(y)


def spec(text: str) -> sn.ArraySpec:
    return sn.spec(text)


# name -> (function, specs for kernel counts/explain, small specs to execute, kernel count)
CASES = {
    "chain12": (chain12, ["f32[1048576]"], ["f32[64]"], 1),
    "harmonize_rows": (harmonize_rows, ["f32[4096,4096]"], ["f32[6,9]"], 1),
    "syntony_full": (syntony_full, ["f32[1048576]"], ["f32[300]"], 1),
    "syntony_three_sums": (syntony_three_sums, ["f32[1048576]", "f32[1048576]"],
                           ["f32[200]", "f32[200]"], 1),
    "dhsr": (dhsr, ["f32[1,248]"], ["f32[1,248]"], 1),
    "mlp": (mlp, ["f32[256,1024]", "f32[1024,1024]", "f32[1024]"],
            ["f32[8,16]", "f32[16,5]", "f32[5]"], 1),
    "row_normalise": (row_normalise, ["f32[4096,4096]"], ["f32[5,7]"], 1),
    "sum_then_total": (sum_then_total, ["f32[64,32]"], ["f32[6,4]"], 2),
    "transpose_computed": (transpose_computed, ["f32[16,8]"], ["f32[3,5]"], 2),
    "matmul_prologue": (matmul_prologue, ["f32[16,8]", "f32[8,4]"], ["f32[3,5]", "f32[5,2]"], 2),
    "sibling_reductions": (sibling_reductions, ["f32[64,32]"], ["f32[6,4]"], 1),
    "strided_reshape": (strided_reshape, ["f32[16,8]"], ["f32[3,5]"], 2),
    "dhsr_step_and_syntony": (dhsr_step_and_syntony, ["f32[4,248]"], ["f32[3,248]"], 1),
}
