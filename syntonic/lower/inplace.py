"""Outputs that may be written into the memory of a donated parameter (input-output aliasing).

A training step reads each parameter and optimizer state tensor once more at its end, in
the kernel that computes its new value (``p - lr * m / (sqrt(v) + eps)``), and never after.
Writing the new value over the old one, point by point, then changes no result, and the
program touches one set of parameter-sized buffers instead of two (donation without
aliasing alternates between the old and the new set): half the memory footprint, and
no read-for-ownership of a second set of output lines.

:func:`inplace_outputs` finds the pairs (output buffer, donated parameter buffer) for which
this is safe, by these rules on the kernel program:

* same dtype and element count; the parameter is not itself an output, the output is
  returned once and written by exactly one kernel K (its *updater*);
* K is elementwise (no reduced axes, no loop, no opaque op), writes the output only
  through the row-major view of K's space and reads the parameter only through that same
  view (point i reads p[i] before it writes o[i]; chunks of K cover disjoint points);
* K's contraction (a GEMM epilogue kernel) does not read the parameter, and no kernel
  after K reads it;
* each parameter serves one output.

The code generator then has K load and store through the *parameter's* pointer, so LLVM
sees one address (no runtime overlap check, which would fall back to scalar code), and
the runtime passes the donated array as that output (or, when it may not write into the
argument, a copy of it: see :meth:`syntonic.runtime.native.NativeProgram.call_donating`).

Example::

    pairs = inplace_outputs(program, donated={0, 1})   # {output buffer: param buffer}
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from syntonic.lower.kernel import Load, Program
from syntonic.lower.view import View


def inplace_outputs(prog: Program, donated: Iterable[int]) -> dict[int, int]:
    """{output buffer id: parameter buffer id} that may share memory (see module doc).

    `donated` are positions in ``prog.params`` whose arguments are donated.
    """
    params = [prog.params[i] for i in sorted(set(donated)) if 0 <= i < len(prog.params)]
    if not params:
        return {}
    returned = [o.buffer for o in prog.outputs]
    writers: dict[int, list[int]] = {}
    for idx, k in enumerate(prog.kernels):
        for b in k.writes:
            writers.setdefault(b, []).append(idx)
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for out in dict.fromkeys(returned):
        if returned.count(out) != 1 or out in prog.params or len(writers.get(out, ())) != 1:
            continue
        idx = writers[out][0]
        k = prog.kernels[idx]
        if k.reduce_axes or k.loop is not None or k.opaque is not None:
            continue
        identity = View.contiguous(k.space)
        ob = prog.buffers[out]
        if ob.type.size != math.prod(k.space) or any(
                s.view != identity for s in k.stores if s.buffer == out):
            continue
        for p in params:
            pb = prog.buffers[p]
            if (p in taken or p in returned or pb.type.dtype != ob.type.dtype
                    or pb.type.size != ob.type.size):
                continue
            if k.contraction is not None and p in (k.contraction.lhs.buffer,
                                                   k.contraction.rhs.buffer):
                continue
            loads = [n for n in k.nodes if isinstance(n, Load) and n.buffer == p]
            if any(n.view != identity for n in loads):
                continue
            if any(p in later.reads for later in prog.kernels[idx + 1:]):
                continue
            pairs[out] = p
            taken.add(p)
            break
    return pairs
