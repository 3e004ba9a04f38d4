"""These tests exercise the CPU backend: `device="auto"` functions use the CPU here even
on a machine with a GPU (the CUDA backend has its own tests in tests/lower/cuda)."""

from __future__ import annotations

import pytest

import syntonic as sn


@pytest.fixture(autouse=True)
def _cpu_backend():
    with sn.config.override(device="cpu"):
        yield
