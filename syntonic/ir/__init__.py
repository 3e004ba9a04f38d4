"""The Syntonic IR: types, op registry, graphs, text form, verifier and interpreter.

Example::

    >>> import syntonic as sn
    >>> g = sn.ir.parse(text)
    >>> sn.ir.verify(g)
    >>> sn.ir.interpret(g, x)
"""

from __future__ import annotations

from syntonic.ir.errors import (
    ControlFlowError,
    DTypeError,
    IRError,
    ShapeError,
    SyntonicError,
    TraceError,
    UnsupportedError,
)
from syntonic.ir.graph import Builder, Graph, Location, Op, Value
from syntonic.ir.interpreter import interpret
from syntonic.ir.printer import print_graph
from syntonic.ir.registry import InferError, OpDef, Trait, all_ops, get_op
from syntonic.ir.types import DType, TensorType
from syntonic.ir.verifier import verify

__all__ = [
    "Builder", "ControlFlowError", "DType", "DTypeError", "UnsupportedError", "Graph", "IRError",
    "InferError", "Location", "Op",
    "OpDef", "ShapeError", "SyntonicError", "TensorType", "TraceError", "Trait", "Value",
    "all_ops", "get_op", "interpret", "parse", "print_graph", "verify",
]


def __getattr__(name: str) -> object:
    # The parser needs lark (~30 ms to import); load it on first use of sn.ir.parse.
    if name == "parse":
        from syntonic.ir.parser import parse

        return parse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
