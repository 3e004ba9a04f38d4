"""Runtime: compiled-function objects and the call path (ties frontend, passes, backends)."""

from __future__ import annotations

from syntonic.runtime.jit import JitFunction, jit

__all__ = ["JitFunction", "jit"]
