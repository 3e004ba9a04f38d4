"""The IR verifier: SSA form, types and shapes, and attributes, checked op by op.

Errors name the op (as IR text), the offending value and the user's source location.

Example::

    >>> verify(g)   # returns g unchanged, or raises IRError
"""

from __future__ import annotations

from syntonic.ir.errors import IRError
from syntonic.ir.graph import Graph, Op, Value
from syntonic.ir.printer import Namer, format_op, name_op
from syntonic.ir.registry import get_op


def verify(g: Graph) -> Graph:
    """Check `g`; return it unchanged or raise IRError describing the first problem."""
    namer = Namer()
    defined: set[Value] = set()
    for p in g.params:
        if p in defined:
            raise IRError(f"@{g.name}: parameter {namer[p]} appears twice")
        namer.param(p)
        defined.add(p)
    for op in g.ops:
        _verify_op(g, op, defined, namer)
    for i, v in enumerate(g.outputs):
        if v not in defined:
            raise IRError(f"@{g.name}: output {i} ({v.type}) is not defined in the function")
    return g


def _where(op: Op) -> str:
    return f" at {op.loc}" if op.loc else ""


def _verify_op(g: Graph, op: Op, defined: set[Value], namer: Namer) -> None:
    try:
        opdef = get_op(op.name)
    except IRError as exc:
        raise IRError(f"@{g.name}: {exc}{_where(op)}") from None
    for i, v in enumerate(op.operands):
        if v not in defined:
            raise IRError(
                f"@{g.name}: operand {i} of `{op.name}` ({v.type}) is used before it is "
                f"defined{_where(op)} (SSA: define every value before its use)"
            )
    start = namer.counter

    def text() -> str:
        # Rendered only for an error (constants can be huge), numbered as a dump would.
        namer.counter = start
        return _safe_text(op, namer)

    try:
        canon = opdef.canonical_attrs(dict(op.attrs), tuple(r.type for r in op.results))
        if tuple(name for name, _ in canon) != tuple(name for name, _ in op.attrs):
            raise IRError("attributes are not in canonical order")
        types = opdef.infer_types(tuple(v.type for v in op.operands), dict(canon), None,
                                  op.regions)
    except IRError as exc:
        raise IRError(f"@{g.name}: invalid op{_where(op)}: {exc}\n  {text()}") from None
    for name, region in zip(opdef.regions, op.regions):
        try:
            verify(region)
        except IRError as exc:
            raise IRError(f"@{g.name}: in the {name} region of `{op.name}`{_where(op)}: "
                          f"{exc}") from None
    actual = tuple(r.type for r in op.results)
    if types != actual:
        want = ", ".join(map(str, types))
        raise IRError(
            f"@{g.name}: result type of `{op.name}`{_where(op)} is "
            f"{', '.join(map(str, actual))} but the op produces {want}\n  {text()}"
        )
    for r in op.results:
        if r in defined:
            raise IRError(f"@{g.name}: value {namer[r]} is defined twice{_where(op)}\n  {text()}")
        defined.add(r)
    # Name the results (and a region's values) exactly as the printer numbers them.
    namer.counter = start
    name_op(op, namer)


def _safe_text(op: Op, namer: Namer) -> str:
    try:
        return format_op(op, namer)
    except Exception:  # noqa: BLE001 - a malformed op must still be reported
        return f"{op.name} <unprintable attributes>"
