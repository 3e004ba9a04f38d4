"""Tracing frontend: ``jit``, ``spec`` and the numpy-like op namespace."""

from __future__ import annotations

from syntonic.frontend import methods as _methods  # noqa: F401  (attaches Tracer operators)
from syntonic.frontend.jit import ArraySpec, JitFunction, jit, spec
from syntonic.frontend.tracer import Tracer

__all__ = ["ArraySpec", "JitFunction", "Tracer", "jit", "spec"]
