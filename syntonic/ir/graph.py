"""SSA graph data structures: Location, Value, Op, Graph, and the Builder.

Nodes are immutable. A :class:`Value` is identified by object identity (two values of
the same type are different values); an :class:`Op` holds its operands, its canonical
attributes (a tuple of ``(name, value)`` pairs in the order the registry declares
them), its results and the user's source location.

Example::

    b = Builder("f")
    x = b.param(TensorType.parse("f32[4]"), "x")
    y = b.add("exp", [x])
    g = b.build([y])
    print(g)            # func @f(%x: f32[4]) -> (f32[4]) { %0 = exp %x : f32[4] ... }
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syntonic.ir.types import TensorType

_ids = itertools.count()


@dataclass(frozen=True, slots=True)
class Location:
    """A user source position, printed ``file:line``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    """An SSA value. Equality is identity; ``hint`` names parameters in the text form."""

    type: TensorType
    hint: str | None = None
    loc: Location | None = None
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self):  # noqa: ANN201 - DType, kept short for readability
        return self.type.dtype

    def __repr__(self) -> str:
        return f"Value({self.hint or self.id}: {self.type})"


@dataclass(frozen=True, slots=True, eq=False)
class Op:
    """One operation: ``results = name(operands) {attrs}``."""

    name: str
    operands: tuple[Value, ...]
    attrs: tuple[tuple[str, Any], ...]
    results: tuple[Value, ...]
    loc: Location | None = None
    # Closed sub-functions of control-flow ops (while: cond, body; cond: true, false).
    # A region's parameters receive values from the op's operands; it captures nothing.
    regions: tuple[Graph, ...] = ()

    def with_operands(self, operands: tuple[Value, ...]) -> Op:
        """The same op (results, attrs, regions, location) reading other operands."""
        return Op(self.name, tuple(operands), self.attrs, self.results, self.loc, self.regions)

    @property
    def result(self) -> Value:
        """The single result (most ops have exactly one)."""
        assert len(self.results) == 1, f"{self.name} has {len(self.results)} results"
        return self.results[0]

    @property
    def attr(self) -> Mapping[str, Any]:
        return dict(self.attrs)

    @property
    def opdef(self):  # noqa: ANN201 - OpDef; imported lazily to keep modules acyclic
        from syntonic.ir.registry import get_op

        return get_op(self.name)

    def __repr__(self) -> str:
        return f"Op({self.name}, {len(self.operands)} operands, {dict(self.attrs)})"


@dataclass(frozen=True, slots=True, eq=False)
class Graph:
    """A function: typed parameters, ops in a valid (topological) order, and outputs."""

    name: str
    params: tuple[Value, ...]
    ops: tuple[Op, ...]
    outputs: tuple[Value, ...]
    loc: Location | None = None

    def __str__(self) -> str:
        from syntonic.ir.printer import print_graph

        return print_graph(self)

    def text(self, locs: bool = True) -> str:
        """The text form; ``locs=False`` omits the ``loc(...)`` trailers."""
        from syntonic.ir.printer import print_graph

        return print_graph(self, locs=locs)

    def key_text(self) -> str:
        """Text that identifies the graph for a compile cache key: :meth:`text`, with
        large constants as a digest of their bytes (not parseable)."""
        from syntonic.ir.printer import print_graph

        return print_graph(self, digest=True)

    @property
    def input_types(self) -> tuple[TensorType, ...]:
        return tuple(p.type for p in self.params)

    @property
    def output_types(self) -> tuple[TensorType, ...]:
        return tuple(v.type for v in self.outputs)

    def producers(self) -> dict[Value, Op]:
        """Map each op result to the op that defines it."""
        return {r: op for op in self.ops for r in op.results}

    def users(self) -> dict[Value, list[Op]]:
        """Map each value to the ops that read it (in program order)."""
        out: dict[Value, list[Op]] = {}
        for op in self.ops:
            for v in op.operands:
                out.setdefault(v, []).append(op)
        return out


class Builder:
    """Builds a Graph op by op, inferring result types from the op registry.

    ``add`` validates the op (attributes, operand types) and raises the registry's
    :class:`~syntonic.ir.registry.InferError` for a bad combination.
    """

    def __init__(self, name: str, loc: Location | None = None) -> None:
        self.name = name
        self.loc = loc
        self.params: list[Value] = []
        self.ops: list[Op] = []

    def param(self, type: TensorType, hint: str | None = None) -> Value:
        v = Value(type, hint, self.loc)
        self.params.append(v)
        return v

    def add(
        self,
        name: str,
        operands: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        loc: Location | None = None,
        result_types: tuple[TensorType, ...] | None = None,
    ) -> Value:
        """Append one op and return its (first) result."""
        return self.add_op(name, operands, attrs, loc, result_types).results[0]

    def add_op(
        self,
        name: str,
        operands: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        loc: Location | None = None,
        result_types: tuple[TensorType, ...] | None = None,
        regions: tuple[Graph, ...] = (),
    ) -> Op:
        from syntonic.ir.registry import get_op

        opdef = get_op(name)
        operands = tuple(operands)
        canon = opdef.canonical_attrs(attrs or {}, result_types)
        types = opdef.infer_types(tuple(v.type for v in operands), dict(canon), result_types,
                                  tuple(regions))
        results = tuple(Value(t, None, loc) for t in types)
        op = Op(name, operands, canon, results, loc, tuple(regions))
        self.ops.append(op)
        return op

    def append(self, op: Op) -> Op:
        """Append an already-built op (used by passes that copy ops)."""
        self.ops.append(op)
        return op

    def build(self, outputs: Iterable[Value]) -> Graph:
        return Graph(self.name, tuple(self.params), tuple(self.ops), tuple(outputs), self.loc)
