"""The compile pipeline: an ordered table of named graph-to-graph passes.

Reading :data:`PIPELINE` top to bottom is the table of contents of what happens to a
traced graph before fusion. :func:`run_pipeline` runs it, verifies the IR after every
pass (``config.verify``) and keeps every stage's graph and time, so dumps and
``f.lower(...).text(stage)`` can show each one.

Example::

    >>> stages = run_pipeline(f.trace(sn.spec("f32[4,248]")))
    >>> [s.name for s in stages]
    ['traced', 'decompose', 'canonicalize', 'fold', 'layout', 'cse', 'dce']
    >>> optimized = stages[-1].graph
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from syntonic import config
from syntonic.ir.errors import IRError
from syntonic.ir.graph import Graph
from syntonic.ir.verifier import verify
from syntonic.passes.canonicalize import canonicalize
from syntonic.passes.cse import eliminate_common_subexpressions
from syntonic.passes.dce import eliminate_dead_code
from syntonic.passes.decompose import decompose_resonant_ops
from syntonic.passes.fold import fold_constants
from syntonic.passes.layout import simplify_layout
from syntonic.records import record

PassFn = Callable[[Graph], Graph]

PIPELINE: tuple[tuple[str, PassFn], ...] = (
    ("decompose", decompose_resonant_ops),  # resonant ops -> primitive ops (SPEC-ops.md)
    ("canonicalize", canonicalize),  # exact algebraic identities, canonical operand order
    ("fold", fold_constants),  # constant subgraphs -> constants (via the interpreter)
    ("layout", simplify_layout),  # transpose/reshape/slice/broadcast chains
    ("cse", eliminate_common_subexpressions),  # structurally equal ops computed once
    ("dce", eliminate_dead_code),  # ops no output needs
)

PASS_NAMES: tuple[str, ...] = tuple(name for name, _ in PIPELINE)


class PassError(IRError):
    """A pass produced IR that does not verify (a Syntonic bug; the message has the pass)."""


@record(frozen=True, slots=True)
class Stage:
    """One stage of compilation: its name, its graph and how long the pass took."""

    name: str
    graph: Graph
    seconds: float = 0.0


def run_pipeline(g: Graph, passes: Sequence[tuple[str, PassFn]] = PIPELINE,
                 check: bool | None = None) -> list[Stage]:
    """Run `passes` on `g`; return ``[traced, <one Stage per pass>]``.

    With `check` (default: ``config.current().verify``) the IR is verified after every
    pass and a failure raises :class:`PassError` naming the pass.
    """
    if check is None:
        check = config.current().verify
    stages = [Stage("traced", g)]
    for name, fn in passes:
        start = time.perf_counter()
        out = in_regions(fn)(g)
        seconds = time.perf_counter() - start
        if check:
            try:
                verify(out)
            except IRError as exc:
                raise PassError(f"pass `{name}` produced invalid IR: {exc}") from None
        stages.append(Stage(name, out, seconds))
        g = out
    return stages


def in_regions(fn: PassFn) -> PassFn:
    """`fn` applied to a graph and, recursively, to the region graphs of its ops."""

    def run(g: Graph) -> Graph:
        out = fn(g)
        if not any(getattr(op, "regions", ()) for op in out.ops):
            return out
        ops = tuple(
            dataclasses.replace(op, regions=tuple(run(r) for r in op.regions))
            if getattr(op, "regions", ()) else op
            for op in out.ops
        )
        return dataclasses.replace(out, ops=ops)

    return run


def optimize(g: Graph) -> Graph:
    """The graph after the whole pipeline."""
    return run_pipeline(g)[-1].graph


__all__ = ["PASS_NAMES", "PIPELINE", "PassError", "PassFn", "Stage", "optimize", "run_pipeline"]
