"""The rewriting engine behind the canonicalize, fold and layout passes.

A :class:`Rule` is a small function ``rule(r, op) -> Value | None``: it looks at one op
whose operands are already rewritten and returns the value that replaces the op's
result (an existing value, or one built with :meth:`Rewriter.emit`), or None to keep
the op. Rules declare which ops they look at by name or by trait, so the engine only
calls the relevant ones. Ops that rules emit are simplified by the same rules before
they are appended, so one forward sweep reaches a fixed point for rules that only
shrink the graph.

Example::

    @rule("neg")
    def double_negation(r: Rewriter, op: Op) -> Value | None:
        # neg(neg(x)) -> x
        inner = r.producer(op.operands[0])
        return inner.operands[0] if inner is not None and inner.name == "neg" else None

    g2 = Rewriter(g, [double_negation]).run()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from syntonic.ir.graph import Builder, Graph, Location, Op, Value
from syntonic.ir.registry import get_op
from syntonic.records import record

RuleFn = Callable[["Rewriter", Op], "Value | None"]


@record(frozen=True, slots=True)
class Rule:
    """A rewrite rule and the ops it applies to (op names and/or traits)."""

    fn: RuleFn
    names: frozenset[str] = frozenset()
    traits: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.fn.__name__

    def applies(self, op: Op) -> bool:
        if op.name in self.names:
            return True
        return bool(self.traits) and bool(self.traits & get_op(op.name).traits)

    def __call__(self, r: Rewriter, op: Op) -> Value | None:
        return self.fn(r, op)


def rule(*names: str, traits: Iterable[str] = ()) -> Callable[[RuleFn], Rule]:
    """Decorator: the function is a rule for ops `names` and ops with any of `traits`."""

    def wrap(fn: RuleFn) -> Rule:
        return Rule(fn, frozenset(names), frozenset(traits))

    return wrap


class Rewriter:
    """Rebuilds a graph op by op, applying `rules` to every op (old and newly emitted)."""

    def __init__(self, g: Graph, rules: Sequence[Rule]) -> None:
        self.g = g
        self.rules = tuple(rules)
        self.b = Builder(g.name, g.loc)
        self.b.params = list(g.params)
        self.env: dict[Value, Value] = {}
        self._producer: dict[Value, Op] = {}
        self.changed = False
        self._depth = 0

    # ------------------------------------------------------------- queries
    def producer(self, v: Value) -> Op | None:
        """The op of the new graph that defines `v` (None for a parameter)."""
        return self._producer.get(v)

    def constant(self, v: Value) -> np.ndarray | None:
        """`v`'s value when it is a constant or a broadcast of one (read-only), else None."""
        op = self._producer.get(v)
        if op is None:
            return None
        if op.name == "constant":
            return op.attr["value"].array
        if op.name == "broadcast":
            inner = self.constant(op.operands[0])
            if inner is not None:
                return np.broadcast_to(inner, v.shape)
        return None

    def splat(self, v: Value) -> Any | None:
        """The single element of a constant whose elements are all bit-equal, else None."""
        op = self._producer.get(v)
        if op is not None and op.name == "broadcast":
            return self.splat(op.operands[0])  # never materialise the broadcast
        arr = self.constant(v)
        if arr is None or arr.size == 0:
            return None
        flat = np.ascontiguousarray(arr).reshape(-1)
        if arr.size > 1:
            bits = flat.view(f"u{flat.itemsize}")
            if not (bits == bits[0]).all():
                return None
        return flat[0]

    def is_splat(self, v: Value, value: float, negative_zero: bool | None = None) -> bool:
        """True when `v` is a constant of all `value` (for 0: optionally of a given sign)."""
        s = self.splat(v)
        if s is None or not s == value:  # noqa: SIM201 - numpy scalars, NaN-safe
            return False
        if negative_zero is not None and value == 0 and v.dtype.is_float:
            return bool(np.signbit(s)) == negative_zero
        return True

    # ------------------------------------------------------------- building
    def emit(self, name: str, operands: Sequence[Value], attrs: Mapping[str, Any] | None = None,
             loc: Location | None = None) -> Value:
        """Build a new op (types inferred), simplify it with the rules, return its result."""
        op = self.b.add_op(name, operands, attrs, loc)
        self.b.ops.pop()  # _place appends it, unless a rule replaces it
        return self._place(op)

    def constant_like(self, array: np.ndarray, loc: Location | None) -> Value:
        """A constant op holding `array` (its dtype and shape)."""
        return self.emit("constant", [], {"value": np.array(array, order="C")}, loc)

    def _place(self, op: Op) -> Value:
        """Try the rules on `op`; append it when none fires. Returns the op's value."""
        if self._depth < 64:
            self._depth += 1
            try:
                for r in self.rules:
                    if r.applies(op):
                        out = r(self, op)
                        if out is not None:
                            if out.type != op.results[0].type:  # a rule bug, never user input
                                raise AssertionError(f"rule {r.name} changed the type of "
                                                     f"{op.name}: {op.results[0].type} -> "
                                                     f"{out.type}")
                            self.changed = True
                            return out
            finally:
                self._depth -= 1
        self.b.append(op)
        for res in op.results:
            self._producer[res] = op
        return op.results[0] if op.results else None  # type: ignore[return-value]

    def run(self) -> Graph:
        """Rewrite every op of the input graph; return the new graph."""
        for op in self.g.ops:
            operands = tuple(self.env.get(v, v) for v in op.operands)
            new = op if operands == op.operands else dataclasses.replace(op, operands=operands)
            if len(op.results) != 1:
                self.b.append(new)
                for res in new.results:
                    self._producer[res] = new
                continue
            out = self._place(new)
            if out is not op.results[0]:
                self.env[op.results[0]] = out
        outputs = [self.env.get(v, v) for v in self.g.outputs]
        return self.b.build(outputs)


def rewrite(g: Graph, rules: Sequence[Rule], max_sweeps: int = 4) -> Graph:
    """Apply `rules` in forward sweeps until nothing changes (at most `max_sweeps`)."""
    for _ in range(max_sweeps):
        rw = Rewriter(g, rules)
        g = rw.run()
        if not rw.changed:
            break
    return g


__all__ = ["Rewriter", "Rule", "rewrite", "rule"]
