"""The error hierarchy of Syntonic.

Every error Syntonic raises on purpose is a :class:`SyntonicError`, so user code can
catch one type. Messages name the user's ``file:line`` and, where there is one, a fix.

Example::

    try:
        sn.ir.parse("func @f( {")
    except sn.SyntonicError as err:
        print(err)        # "<text>:1:10: expected ..."
"""

from __future__ import annotations


class SyntonicError(Exception):
    """Base class of every error Syntonic raises deliberately."""


class IRError(SyntonicError):
    """Malformed IR: a parse error, or a graph that fails verification."""


class TraceError(SyntonicError):
    """A problem in user code found while tracing it (control flow, unsupported call...)."""


class ShapeError(TraceError):
    """Operand shapes that do not fit the op (broadcasting, matmul, reshape, axes)."""


class DTypeError(TraceError):
    """An operand dtype the op does not accept."""


class ControlFlowError(TraceError):
    """Python control flow (`if`, `while`, `bool()`, `float()`) on a traced value."""


class UnsupportedError(TraceError):
    """A Python or numpy feature Syntonic cannot trace (with the nearest alternative)."""


class BackendError(SyntonicError):
    """A backend failed to compile or load generated code (a Syntonic bug: please report
    it with the IR text the message shows)."""


class GnosisError(SyntonicError):
    """A ``.gnosis`` file that cannot be written or read back (truncated, corrupted, wrong
    magic or version, sizes that do not fit), or a tree that cannot be stored."""
