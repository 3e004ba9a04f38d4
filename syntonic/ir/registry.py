"""The op registry: one :class:`OpDef` per op, read by every other part of Syntonic.

An OpDef declares the op's name, operand count, typed attributes, traits (so passes
match on classes of ops, not on hand-kept lists), its type/shape rule and its numpy
reference semantics. Later stages (decomposition, autodiff, backends) register their
own per-op rules keyed by the op name.

Example::

    >>> from syntonic.ir.registry import get_op
    >>> get_op("harmonize").traits >= {Trait.RESONANT}
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from syntonic.ir.attrs import AttrSpec
from syntonic.ir.errors import IRError
from syntonic.ir.types import TensorType


class Trait:
    """Op classes that passes match on."""

    ELEMENTWISE = "elementwise"  # result[i] depends only on operands[i]; shapes all equal
    UNARY = "unary"
    BINARY = "binary"
    COMMUTATIVE = "commutative"
    COMPARISON = "comparison"  # produces bool
    REDUCTION = "reduction"  # reduces `axes`
    LAYOUT = "layout"  # moves data without arithmetic (reshape, transpose, broadcast, slice)
    SOURCE = "source"  # no operands (constant, iota, golden_weights)
    RESONANT = "resonant"  # first-class op of SPEC-ops.md, decomposed by a pass
    CONTRACTION = "contraction"  # matmul
    CONTROL = "control"  # carries regions (while, cond)


class InferError(IRError):
    """An op's type rule rejected its operands or attributes.

    ``kind`` is ``"shape"``, ``"dtype"`` or ``"attr"``; ``fix`` is a suggestion in user
    terms. Callers add the location (the verifier, the parser, the tracer).
    """

    def __init__(self, message: str, kind: str = "shape", fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.fix = fix


InferFn = Callable[
    [tuple[TensorType, ...], Mapping[str, Any]], "TensorType | tuple[TensorType, ...]"
]
RefFn = Callable[..., Any]
DecomposeFn = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class OpDef:
    """Everything the IR knows about one op."""

    name: str
    arity: tuple[int, int]
    attrs: tuple[tuple[str, AttrSpec], ...]
    traits: frozenset[str]
    infer: InferFn
    reference: RefFn
    doc: str = ""
    # Names of the op's regions in order (control flow), e.g. ("cond", "body").
    regions: tuple[str, ...] = ()
    # Rewrites the op into primitive ops: ``decompose(builder, op, operands) -> results``
    # (used by the decompose pass and by autodiff); None for primitive ops.
    decompose: DecomposeFn | None = None

    def has(self, trait: str) -> bool:
        return trait in self.traits

    @property
    def attr_specs(self) -> dict[str, AttrSpec]:
        return dict(self.attrs)

    def canonical_attrs(
        self, raw: Mapping[str, Any], result_types: tuple[TensorType, ...] | None = None
    ) -> tuple[tuple[str, Any], ...]:
        """Check and normalise attributes; fill defaults; keep the declared order."""
        specs = self.attr_specs
        unknown = sorted(set(raw) - set(specs))
        if unknown:
            known = ", ".join(specs) or "none"
            raise InferError(
                f"{self.name} has no attribute {unknown[0]!r} (its attributes: {known})", "attr"
            )
        rt = result_types[0] if result_types else None
        out = []
        for name, spec in self.attrs:
            if name in raw:
                try:
                    value = spec.kind.coerce(raw[name], rt)
                except InferError:
                    raise
                except IRError as exc:
                    raise InferError(f"{self.name} attribute {name}: {exc}", "attr") from None
            elif spec.required:
                raise InferError(f"{self.name} needs the attribute {name!r}", "attr")
            else:
                value = spec.default
            out.append((name, value))
        return tuple(out)

    def infer_types(
        self,
        operand_types: tuple[TensorType, ...],
        attrs: Mapping[str, Any],
        declared: tuple[TensorType, ...] | None = None,
        regions: tuple[Any, ...] = (),
    ) -> tuple[TensorType, ...]:
        """Result types of the op; checks arity, regions and any declared (parsed) types."""
        lo, hi = self.arity
        n = len(operand_types)
        if not lo <= n <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise InferError(f"{self.name} takes {want} operands, got {n}", "attr")
        if len(regions) != len(self.regions):
            want = ", ".join(self.regions) or "no regions"
            raise InferError(f"{self.name} takes {want}, got {len(regions)} regions", "attr")
        if self.regions:
            result = self.infer(operand_types, {**attrs, "__regions__": regions})
        else:
            result = self.infer(operand_types, attrs)
        types = result if isinstance(result, tuple) else (result,)
        if declared is not None and tuple(declared) != types:
            got = ", ".join(str(t) for t in declared)
            want = ", ".join(str(t) for t in types)
            raise InferError(f"{self.name} is declared to produce {got} but produces {want}")
        return types

    def evaluate(
        self, arrays: list[np.ndarray], attrs: Mapping[str, Any], regions: tuple[Any, ...] = ()
    ) -> tuple[np.ndarray, ...]:
        """Run the numpy reference rule (no type checks; see the interpreter)."""
        if self.regions:
            out = self.reference(*arrays, regions=regions, **attrs)
        else:
            out = self.reference(*arrays, **attrs)
        return out if isinstance(out, tuple) else (out,)


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name!r} registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    """Every registered op, by name, in registration order."""
    _ensure_loaded()
    return dict(_REGISTRY)


def _ensure_loaded() -> None:
    if not _REGISTRY:
        import syntonic.ir.ops  # noqa: F401  (registers the core ops)
