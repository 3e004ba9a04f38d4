"""A numpy interpreter of the kernel IR: the semantic reference for the backends.

It executes a :class:`~syntonic.lower.kernel.Program` kernel by kernel, phase by phase,
exactly as the kernel IR specifies (loads through views with padding, accumulators
readable only after their phase, row stores once per row), vectorized over the
iteration space with numpy. Elementwise nodes and reductions run through the registry's
reference rules, so a program agrees with the graph interpreter on the graph it came
from up to the summation order of floating-point reductions.

Example::

    >>> prog = lower_to_kernels(optimized_graph)        # syntonic.lower.schedule
    >>> run_program(prog, np.ones((4, 248), np.float32))
    (array(...),)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from syntonic.ir.errors import IRError
from syntonic.ir.registry import get_op
from syntonic.ir.types import TensorType
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Const,
    Iota,
    Kernel,
    Load,
    Program,
    Role,
    Store,
    check_kernel,
)
from syntonic.lower.view import Dim, View


def checked_args(prog: Program, args: Sequence[Any], error: type[Exception] = IRError
                 ) -> list[np.ndarray]:
    """`args` as arrays, one per parameter of `prog`, each of its parameter's type (else
    `error` naming the argument). Shared by every host-side runner of a program."""
    if len(args) != len(prog.params):
        raise error(f"program @{prog.name} takes {len(prog.params)} arguments, got {len(args)}")
    out = []
    for i, (bid, arg) in enumerate(zip(prog.params, args)):
        want = prog.buffers[bid].type
        arr = np.asarray(arg)
        if TensorType.of(arr) != want:
            raise error(f"program @{prog.name} argument {i} is {TensorType.of(arr)}, "
                        f"expected {want}")
        out.append(arr)
    return out


def program_outputs(prog: Program, flat: Mapping[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The outputs of `prog` (copies, with the outputs' shapes) from its flat buffers."""
    return tuple(flat[o.buffer].reshape(o.type.shape).copy() for o in prog.outputs)


def run_program(prog: Program, *args: Any) -> tuple[np.ndarray, ...]:
    """Run `prog` on numpy arrays (one per parameter); returns one array per output."""
    flat: dict[int, np.ndarray] = {
        bid: np.ascontiguousarray(arr).reshape(-1)
        for bid, arr in zip(prog.params, checked_args(prog, args))}
    for b in prog.buffers:
        if b.role is Role.CONST:
            assert b.data is not None
            flat[b.id] = np.ascontiguousarray(b.data, b.type.dtype.np).reshape(-1)
        elif b.role is not Role.PARAM:
            flat[b.id] = np.zeros(b.type.size, b.type.dtype.np)
    for k in prog.kernels:
        run_kernel(k, flat, prog)
    return program_outputs(prog, flat)


def run_kernel(k: Kernel, flat: dict[int, np.ndarray], prog: Program) -> None:
    """Execute one kernel on the flat buffers `flat` (buffer id -> 1-D array)."""
    check_kernel(k)
    if k.loop is not None:
        _run_loop(k, flat, prog)
        return
    if k.opaque is not None:
        _run_opaque(k, flat, prog)
        return
    env: dict[int, np.ndarray] = {}
    accs: dict[int, np.ndarray] = {}
    if k.contraction is not None:
        c = k.contraction
        lhs = c.lhs.view.gather(flat[c.lhs.buffer])
        rhs = c.rhs.view.gather(flat[c.rhs.buffer])
        with np.errstate(all="ignore"):
            accs[c.acc] = np.asarray(np.matmul(lhs, rhs)).astype(c.dtype.np, copy=False)
    for phase in k.phases:
        # Nodes are evaluated afresh in every phase (the recompute the IR specifies).
        env = {}
        for r in phase.reductions:
            value = np.broadcast_to(_eval(k, r.value, env, accs, flat), k.space)
            ref = get_op(r.op)
            out = ref.evaluate([value], {"axes": k.reduce_axes, "keepdims": True})[0]
            with np.errstate(all="ignore"):
                accs[r.acc] = np.asarray(out).astype(r.dtype.np, copy=False)
        for st in phase.stores:
            _store(st, _eval(k, st.value, env, accs, flat), k, flat, ())
        for st in phase.row_stores:
            _store(st, _eval(k, st.value, env, accs, flat), k, flat, k.reduce_axes)


def _eval(k: Kernel, idx: int, env: dict[int, np.ndarray], accs: dict[int, np.ndarray],
          flat: dict[int, np.ndarray]) -> np.ndarray:
    if idx in env:
        return env[idx]
    node = k.nodes[idx]
    if isinstance(node, Load):
        out = _compact(node.view).gather(flat[node.buffer])
    elif isinstance(node, Const):
        out = np.asarray(node.value, dtype=node.dtype.np)
    elif isinstance(node, Iota):
        offsets, valid = _compact(node.view).offsets()
        out = np.where(valid, (offsets // node.div) % max(node.mod, 1), 0).astype(node.dtype.np)
    elif isinstance(node, Acc):
        out = accs[node.acc]
    elif isinstance(node, Apply):
        args = [_eval(k, a, env, accs, flat) for a in node.args]
        if len(args) > 1:
            args = list(np.broadcast_arrays(*args))
        res = get_op(node.op).evaluate(args, node.attr)[0]
        with np.errstate(all="ignore"):
            out = np.asarray(res).astype(node.dtype.np, copy=False)
    else:  # pragma: no cover - every node kind is handled above
        raise IRError(f"unknown kernel node {node!r}")
    env[idx] = out
    return out


def _store(st: Store, value: np.ndarray, k: Kernel, flat: dict[int, np.ndarray],
           once_axes: tuple[int, ...]) -> None:
    """Write `value` through the store's view; `once_axes` are written at index 0 only."""
    view = st.view
    if once_axes:
        view = View(tuple(Dim(1, d.stride) if a in once_axes else d
                          for a, d in enumerate(view.dims)), view.offset)
    full = np.broadcast_to(value, view.shape)
    if view.size == 0:
        return
    buf = flat[st.buffer]
    strides = tuple(s * buf.itemsize for s in view.strides)
    target = np.lib.stride_tricks.as_strided(buf[view.offset:], view.shape, strides)
    target[...] = full


def _compact(view: View) -> View:
    """The view with every dimension it does not depend on (zero stride) of size 1.

    The values are the same along such a dimension, so arrays stay small and a value
    that varies per row keeps its rows even when the reduced axes are empty.
    """
    return View(tuple(Dim(1, 0) if d.stride == 0 and not d.masked else d
                      for d in view.dims), view.offset)


def _run_loop(k: Kernel, flat: dict[int, np.ndarray], prog: Program) -> None:
    """A :class:`~syntonic.lower.kernel.Loop`: its sub-programs, run as the loop says."""
    loop = k.loop
    assert loop is not None
    n = loop.carried
    args = [flat[b].reshape(loop.body.buffers[loop.body.params[i]].type.shape)
            for i, b in enumerate(loop.inputs)]
    rb = loop.row_blocks
    if rb is None:
        final = _iterate(loop.cond, loop.body, args, n)
    else:  # each block of rows runs the loop on its own rows (see RowBlocks)
        parts = []
        for r0 in range(0, rb.rows, rb.block):
            rows = min(rb.block, rb.rows - r0)
            cond, body = (rb.cond, rb.body) if rows == rb.block else (rb.tail_cond,
                                                                       rb.tail_body)
            assert cond is not None and body is not None
            block = [a[r0:r0 + rows] if r else a for a, r in zip(args, rb.row_params)]
            parts.append(_iterate(cond, body, block, n))
        final = [np.concatenate([p[i] for p in parts]) for i in range(n)]
    for b, value in zip(loop.outputs, final):
        flat[b][...] = value.reshape(-1)


def _iterate(cond: Program, body: Program, args: list[np.ndarray], carried: int
             ) -> list[np.ndarray]:
    state, consts = list(args[:carried]), list(args[carried:])
    while bool(run_program(cond, *state, *consts)[0]):
        state = list(run_program(body, *state, *consts))
    return state


def _run_opaque(k: Kernel, flat: dict[int, np.ndarray], prog: Program) -> None:
    assert k.opaque is not None
    o = k.opaque
    types = o.input_types or tuple(prog.buffers[b].type for b in o.inputs)
    arrays = [flat[b].reshape(t.shape) for b, t in zip(o.inputs, types)]
    outs = get_op(o.op).evaluate(arrays, dict(o.attrs), o.regions)
    for b, out in zip(o.outputs, outs):
        with np.errstate(all="ignore"):
            flat[b][...] = np.asarray(out).astype(prog.buffers[b].type.dtype.np).reshape(-1)


__all__ = ["checked_args", "program_outputs", "run_kernel", "run_program"]
