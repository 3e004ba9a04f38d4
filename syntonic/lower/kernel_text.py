"""Text form of the kernel IR (for dumps, ``f.lower(...).text("kernels")`` and reports).

Each phase prints the nodes it needs that were not printed before, then its reductions,
stores and row stores. Node lines end with their level when it is not ELEM. Large
constant buffers print their first values only. The text is for people; it is not
parsed back.

Example::

    kernel @k0 reduce space=[4,8] reduce=[1]  (rows [4] x inner [8])
      ops: mul, sum, sqrt (model.py:3)
      phase 0:
        %0 = load b0[8*i0 + i1] : f32
        %1 = mul %0, %0 : f32
        acc0 = sum %1 : f32
      phase 0 rows:
        %2 = acc0 : f32                                   // row
        %3 = sqrt %2 : f32                                // row
        store b1[i0] <- %3
"""

from __future__ import annotations

import numpy as np

from syntonic.ir.attrs import format_float
from syntonic.ir.types import DType
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Const,
    Iota,
    Kernel,
    Level,
    Load,
    Program,
    Role,
    Store,
)

_MAX_VALUES = 8


def format_value(value: object, dtype: DType) -> str:
    if dtype.is_bool:
        return "true" if value else "false"
    if dtype.is_int:
        return str(int(value))  # type: ignore[call-overload]
    return format_float(float(value))  # type: ignore[arg-type]


def _attr_text(attrs: tuple[tuple[str, object], ...]) -> str:
    if not attrs:
        return ""
    return " {" + ", ".join(f"{k}={v}" for k, v in attrs) + "}"


def format_node(idx: int, node: object) -> str:
    if isinstance(node, Load):
        body = f"load b{node.buffer}{node.view}"
    elif isinstance(node, Const):
        body = f"const {format_value(node.value, node.dtype)}"
    elif isinstance(node, Iota):
        body = f"iota {node.view} // {node.div} % {node.mod}"
    elif isinstance(node, Acc):
        body = f"acc{node.acc}"
    elif isinstance(node, Apply):
        args = ", ".join(f"%{a}" for a in node.args)
        body = f"{node.op} {args}{_attr_text(node.attrs)}"
    else:  # pragma: no cover - every node kind is handled above
        body = repr(node)
    return f"%{idx} = {body} : {node.dtype}"  # type: ignore[attr-defined]


def _store_text(st: Store) -> str:
    return f"store b{st.buffer}{st.view} <- %{st.value}"


def format_kernel(k: Kernel) -> str:
    head = f"kernel @{k.name} {k.kind} space=[{','.join(map(str, k.space))}]"
    if k.reduce_axes:
        head += f" reduce=[{','.join(map(str, k.reduce_axes))}]"
        head += f"  (rows [{','.join(map(str, k.outer_shape))}] x inner " \
                f"[{','.join(map(str, k.inner_shape))}])"
    lines = [head]
    if k.ops:
        names = ", ".join(dict.fromkeys(op.name for op in k.ops))
        locs = ", ".join(dict.fromkeys(str(op.loc) for op in k.ops if op.loc))
        lines.append(f"  ops: {names}" + (f" ({locs})" if locs else ""))
    lines.append("  reads " + (", ".join(f"b{b}" for b in k.reads) or "nothing")
                 + "; writes " + (", ".join(f"b{b}" for b in k.writes) or "nothing"))
    if k.loop is not None:
        lp = k.loop
        ins = ", ".join(f"b{b}" for b in lp.inputs)
        outs = ", ".join(f"b{b}" for b in lp.outputs)
        lines.append(f"  {outs} = while {ins} {{carried={lp.carried}}}   // native loop")
        rb = lp.row_blocks
        lines.append(f"  row-local: blocks of {rb.block} rows (of {rb.rows}); row params "
                     f"{[i for i, r in enumerate(rb.row_params) if r]}" if rb is not None
                     else f"  not row-local: {lp.not_row_local}")
        for label, sub in (("cond", lp.cond), ("body", lp.body)):
            lines.append(f"  {label}:")
            lines += ["    " + line if line else "" for line in sub.text().splitlines()]
        return "\n".join(lines) + "\n"
    if k.opaque is not None:
        o = k.opaque
        ins = ", ".join(f"b{b}" for b in o.inputs)
        outs = ", ".join(f"b{b}" for b in o.outputs)
        regions = f" ({len(o.regions)} regions)" if o.regions else ""
        lines.append(f"  {outs} = {o.op} {ins}{_attr_text(o.attrs)}{regions}   // reference rule")
        return "\n".join(lines) + "\n"
    levels = k.levels()
    printed: set[int] = set()

    def emit_nodes(roots: list[int], indent: str) -> None:
        for idx in k.needed(roots):
            if idx in printed:
                continue
            printed.add(idx)
            text = indent + format_node(idx, k.nodes[idx])
            if levels[idx] is not Level.ELEM:
                text = f"{text:<58} // {levels[idx].name.lower()}"
            lines.append(text)

    if k.contraction is not None:
        c = k.contraction
        names_l = [f"j{a}" for a in range(c.lhs.view.rank)]
        lines.append(
            f"  acc{c.acc} = matmul b{c.lhs.buffer}{c.lhs.view.index_text(names_l)}, "
            f"b{c.rhs.buffer}{c.rhs.view.index_text(names_l)} : {c.dtype}  (k={c.k})"
        )
    for p, phase in enumerate(k.phases):
        lines.append(f"  phase {p}:")
        emit_nodes([r.value for r in phase.reductions] + [s.value for s in phase.stores],
                   "    ")
        for r in phase.reductions:
            lines.append(f"    acc{r.acc} = {r.op} %{r.value} : {r.dtype}")
        for st in phase.stores:
            lines.append("    " + _store_text(st))
        if phase.row_stores:
            lines.append(f"  phase {p} rows:")
            emit_nodes([s.value for s in phase.row_stores], "    ")
            for st in phase.row_stores:
                lines.append("    " + _store_text(st))
    return "\n".join(lines) + "\n"


def _data_text(data: np.ndarray, dtype: DType) -> str:
    flat = data.reshape(-1)
    vals = [format_value(v, dtype) for v in flat[:_MAX_VALUES].tolist()]
    more = f", ... ({flat.size} values)" if flat.size > _MAX_VALUES else ""
    return "[" + ", ".join(vals) + more + "]"


def format_program(prog: Program) -> str:
    params = ", ".join(f"b{b}: {prog.buffers[b].type}" for b in prog.params)
    outs = ", ".join(
        f"b{o.buffer}" + (f" as {o.type}" if o.type != prog.buffers[o.buffer].type else "")
        for o in prog.outputs
    )
    lines = [f"program @{prog.name}({params}) -> ({outs})"]
    for b in prog.buffers:
        text = f"  b{b.id:<3} {b.role.value:<6} {b.type}"
        if b.name:
            text += f"  {b.name}"
        if b.role is Role.CONST and b.data is not None:
            text += " = " + _data_text(b.data, b.type.dtype)
        lines.append(text)
    lines.append(f"  {len(prog.kernels)} kernel(s)")
    out = "\n".join(lines) + "\n"
    for k in prog.kernels:
        out += "\n" + format_kernel(k)
    return out


__all__ = ["format_kernel", "format_node", "format_program", "format_value"]
