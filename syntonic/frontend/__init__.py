"""Tracing frontend: tracer values, the numpy-like op namespace and ``spec``."""

from __future__ import annotations

from syntonic.frontend import methods as _methods  # noqa: F401  (attaches Tracer operators)
from syntonic.frontend.trace import ArraySpec, spec
from syntonic.frontend.tracer import Tracer

__all__ = ["ArraySpec", "Tracer", "spec"]
