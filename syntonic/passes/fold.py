"""Constant folding: ops whose operands are all constants become constants.

Values are computed by the reference interpreter (so folding is exact by definition).
An elementwise op whose operands are broadcasts of equally shaped constants is folded
at the small shape and broadcast again (``exp(broadcast(c)) -> broadcast(exp(c))``), so
splats and per-row constants stay small. ``broadcast`` itself is never folded (it is
free in a kernel), sources (``constant``, ``iota``) stay as they are, and nothing larger
than ``config.fold_limit`` elements is created. An op on empty tensors (an empty result,
or only empty operands: ``sum`` over a zero-length axis) folds too: it reads no data.

Example::

    %0 = constant {value=dense<2.0>} : f32[]
    %1 = sqrt %0 : f32[]                  ->   %0 = constant {value=dense<1.4142135623730951>}
"""

from __future__ import annotations

import numpy as np

from syntonic import config
from syntonic.ir.graph import Builder, Graph, Op, Value
from syntonic.ir.interpreter import interpret
from syntonic.ir.registry import Trait, get_op
from syntonic.passes.canonicalize import broadcast_of_broadcast, layout_identity, splat_constant
from syntonic.passes.rewrite import Rewriter, Rule, rewrite, rule


def _evaluate(op: Op, arrays: list[np.ndarray], shapes_from: list[Value]) -> np.ndarray:
    """Run `op` on `arrays` through the interpreter (a one-op graph)."""
    b = Builder("fold")
    params = [b.param(v.type.with_shape(a.shape)) for v, a in zip(shapes_from, arrays)]
    out = b.add(op.name, params, op.attr)
    return interpret(b.build([out]), *arrays)[0]


def _source_value(r: Rewriter, v: Value) -> np.ndarray | None:
    """v's value if it is a constant, or an iota of at most fold_limit elements."""
    producer = r.producer(v)
    if producer is None:
        return None
    if producer.name == "constant":
        return producer.attr["value"].array
    if producer.name == "iota" and v.type.size <= config.current().fold_limit:
        return _evaluate(producer, [], [])
    return None


def _small_operands(r: Rewriter, op: Op) -> list[np.ndarray] | None:
    """Constant operands as arrays of one common small shape (broadcast sources), or None.

    A small ``iota`` counts as a constant here, so index arithmetic (``cast(iota) / n``)
    folds; a bare iota stays an index computed inside kernels.
    """
    sources: list[np.ndarray] = []
    for v in op.operands:
        producer = r.producer(v)
        if producer is None:
            return None
        value = _source_value(r, v)
        if value is None and producer.name == "broadcast":
            value = _source_value(r, producer.operands[0])
        if value is None:
            return None
        sources.append(np.asarray(value))
    shapes = {a.shape for a in sources if a.size != 1 or a.ndim}
    if len(shapes) > 1:
        return None
    return sources


@rule(traits=[Trait.ELEMENTWISE])
def fold_elementwise(r: Rewriter, op: Op) -> Value | None:
    # op(broadcast(c1, S), ..., broadcast(ck, S)) -> broadcast(op(c1, ..., ck), S)
    # op(c1, ..., ck) -> constant      (values from the interpreter)
    sources = _small_operands(r, op)
    if sources is None:
        return None
    out = op.results[0]
    shape = max((a.shape for a in sources), key=len)
    if any(a.shape != shape for a in sources):
        sources = [np.broadcast_to(a.reshape(a.shape), shape) if a.shape != shape else a
                   for a in sources]
    if np.prod(shape, dtype=np.int64) > config.current().fold_limit:
        return None
    if shape != out.shape and not _broadcasts_to(shape, out.shape):
        return None
    arrays = [np.array(a, order="C") for a in sources]
    value = _evaluate(op, arrays, list(op.operands))
    folded = r.constant_like(value, op.loc)
    if folded.shape == out.shape:
        return folded
    return r.emit("broadcast", [folded], {"shape": out.shape}, op.loc)


def _broadcasts_to(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    if len(small) > len(big):
        return False
    tail = big[len(big) - len(small):]
    return all(a == b or a == 1 for a, b in zip(small, tail))


@rule(traits=[Trait.REDUCTION, Trait.LAYOUT, Trait.CONTRACTION])
def fold_other(r: Rewriter, op: Op) -> Value | None:
    # f(constants...) -> constant   (reductions, layout ops except broadcast, matmul)
    if op.name == "broadcast" or len(op.results) != 1:
        return None
    out = op.results[0]
    if out.type.size > config.current().fold_limit:
        return None
    arrays = [r.constant(v) for v in op.operands]
    if any(a is None for a in arrays):
        return None
    concrete = [np.array(a, order="C") for a in arrays if a is not None]
    value = _evaluate(op, concrete, list(op.operands))
    return r.constant_like(value, op.loc)


@rule(traits=[Trait.ELEMENTWISE, Trait.REDUCTION, Trait.LAYOUT, Trait.CONTRACTION])
def fold_empty(r: Rewriter, op: Op) -> Value | None:
    # An op with an empty result, or whose operands are all empty, computes no data from
    # its inputs: its value is a constant (an empty one; or e.g. sum over an empty axis ->
    # zeros). So no kernel is left that reads, or hoists a load from, an empty buffer
    # (on CUDA its pointer is null).
    if len(op.results) != 1 or not op.operands:
        return None
    out = op.results[0]
    if out.type.size == 0:
        return r.constant_like(np.empty(out.shape, out.dtype.np), op.loc)
    if all(v.type.size == 0 for v in op.operands) and out.type.size <= config.current(
            ).fold_limit:
        empties = [np.empty(v.shape, v.dtype.np) for v in op.operands]
        try:
            value = _evaluate(op, empties, list(op.operands))
        except Exception:  # noqa: BLE001 - not defined on empty input: leave it as it is
            return None
        return r.constant_like(value, op.loc)
    return None


# Folded values are put in canonical form by the canonicalization rules for constants.
RULES: tuple[Rule, ...] = (
    fold_empty, fold_elementwise, fold_other, splat_constant, broadcast_of_broadcast,
    layout_identity,
)


def fold_constants(g: Graph) -> Graph:
    """Replace every op computable from constants alone by its value.

    Guarantees: results unchanged (values come from the interpreter); no constant
    above ``config.current().fold_limit`` elements is created; broadcasts of constants
    are kept (folded at the source shape); resonant ops are left alone (decompose first).
    """
    return rewrite(g, RULES)


def is_foldable(name: str) -> bool:
    """True for ops this pass can fold (not sources, not resonant ops)."""
    traits = get_op(name).traits
    return not (Trait.SOURCE in traits or Trait.RESONANT in traits)


__all__ = ["RULES", "fold_constants", "is_foldable"]
