"""f32 sums over short rows accumulate in f32 (16 vector partial sums); longer ones the same
way block by block (SHORT_F32_SUM elements), each block's sum then added in f64."""

from __future__ import annotations

import re

import numpy as np
import pytest

import syntonic as sn
from syntonic.lower.cpu.codegen import SHORT_F32_SUM

RNG = np.random.default_rng(11)
EPS = np.finfo(np.float32).eps


def _kernel_ir(f, x) -> str:
    text = f.lower(x).text("llvm")
    return text[text.index("_k0("):]


def row_sum(x):
    return sn.sum(x * x - 0.5, axis=1)


def test_short_rows_accumulate_in_f32_and_long_rows_in_f32_blocks_then_f64():
    short = _kernel_ir(sn.jit(row_sum), np.zeros((64, 248), np.float32))
    assert re.search(r"fadd reassoc (contract )?<8 x float>", short)
    assert "double" not in short.split("ret void")[0]
    long = _kernel_ir(sn.jit(row_sum), np.zeros((4, 4 * SHORT_F32_SUM), np.float32))
    long = long.split("\n}\n")[0]  # the kernel function
    assert re.search(r"fadd reassoc (contract )?<8 x float>", long)  # within a block
    assert re.search(r"fpext float %\S+ to double", long)  # the block's sum, once
    assert re.search(r"fadd reassoc (contract )?double", long)
    assert "x double>" not in long  # no per-element conversion any more


@pytest.mark.parametrize("n", [2 * SHORT_F32_SUM, 4 * SHORT_F32_SUM + 37, 1 << 16])
def test_long_f32_row_sums_stay_within_the_same_bound(n):
    rows = max(4, (1 << 18) // n)
    x = (RNG.standard_normal((rows, n)) * RNG.uniform(0.1, 1e3, (rows, 1))).astype(np.float32)
    got = np.asarray(sn.jit(lambda x: (sn.sum(x, axis=1), sn.mean(x, axis=1)))(x))
    exact = x.astype(np.float64).sum(axis=1)
    bound = 32 * EPS * np.abs(x.astype(np.float64)).sum(axis=1)
    assert (np.abs(got[0] - exact) <= bound).all()
    assert (np.abs(got[1] - exact / n) <= bound / n + EPS * np.abs(exact / n)).all()
    full = np.asarray(sn.jit(lambda x: sn.sum(x))(x[0]))  # one row, split across threads
    assert abs(float(full) - exact[0]) <= bound[0]


@pytest.mark.parametrize("n", [7, 248, SHORT_F32_SUM])
def test_short_f32_row_sums_stay_within_the_bound(n):
    x = (RNG.standard_normal((512, n)) * RNG.uniform(0.1, 1e3, (512, 1))).astype(np.float32)
    got = np.asarray(sn.jit(lambda x: (sn.sum(x, axis=1), sn.mean(x, axis=1)))(x))
    exact = x.astype(np.float64).sum(axis=1)
    bound = 32 * EPS * np.abs(x.astype(np.float64)).sum(axis=1)
    assert (np.abs(got[0] - exact) <= bound).all()
    assert (np.abs(got[1] - exact / n) <= bound / n + EPS * np.abs(exact / n)).all()
