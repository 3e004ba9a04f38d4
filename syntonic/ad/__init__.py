"""Reverse-mode autodiff on the IR: rules per op, the graph transform, and the user API."""

from __future__ import annotations

from syntonic.ad.api import grad, value_and_grad, vjp
from syntonic.ad.transform import DifferentiationError, vjp_graph

__all__ = ["DifferentiationError", "grad", "value_and_grad", "vjp", "vjp_graph"]
