"""Graph-to-graph passes, the pipeline that orders them, and fusion into kernels.

Each pass is a function ``verb_noun(g: Graph) -> Graph`` whose docstring states what it
guarantees; :data:`PIPELINE` is the ordered table of ``(name, pass)``; :mod:`fusion`
groups the optimized graph's ops into kernels (its plan is lowered to the kernel IR by
:mod:`syntonic.lower.schedule`).
"""

from __future__ import annotations

from syntonic.passes.canonicalize import canonicalize
from syntonic.passes.cse import eliminate_common_subexpressions
from syntonic.passes.dce import eliminate_dead_code
from syntonic.passes.decompose import decompose_resonant_ops
from syntonic.passes.fold import fold_constants
from syntonic.passes.layout import simplify_layout
from syntonic.passes.pipeline import PASS_NAMES, PIPELINE, PassError, Stage, optimize, run_pipeline

__all__ = [
    "PASS_NAMES", "PIPELINE", "PassError", "Stage", "canonicalize", "decompose_resonant_ops",
    "eliminate_common_subexpressions", "eliminate_dead_code", "fold_constants", "optimize",
    "run_pipeline", "simplify_layout",
]
