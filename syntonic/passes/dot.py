"""Graphviz ``dot`` text of a graph, with each fused kernel drawn as a cluster.

Plain text (no dependency on the graphviz package): parameters are ellipses, ops are
boxes labelled ``%n = op`` with their type and ``file:line``, outputs are double circles.
With a :class:`~syntonic.passes.fusion.FusionPlan` the compute ops of each kernel sit in
a ``subgraph cluster_kN``; free ops (constants, iota, views), which every kernel reading
them recomputes, are drawn dashed outside the clusters.

Example::

    >>> print(graph_to_dot(g, plan))
    digraph "f" {
      ...
      subgraph cluster_k0 { label="k0_sum: reduce [4,248] over [1]"; ... }
    }
"""

from __future__ import annotations

from syntonic.ir.graph import Graph, Op, Value
from syntonic.ir.printer import Namer, format_attrs
from syntonic.passes.fusion import FusionPlan, classify

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _op_label(op: Op, names: Namer) -> str:
    results = ", ".join(names.result(r) for r in op.results)
    attrs = _short(format_attrs(op).strip())
    lines = [f"{results} = {op.name}"]
    if attrs:
        lines.append(attrs)
    lines.append(", ".join(str(r.type) for r in op.results))
    if op.loc is not None:
        lines.append(str(op.loc))
    return "\n".join(lines)


def graph_to_dot(g: Graph, plan: FusionPlan | None = None, kernel_names: list[str] | None = None
                 ) -> str:
    """The dot text of `g`; with `plan`, kernels as clusters (named by `kernel_names`)."""
    names = Namer()
    node_of: dict[Value, str] = {}
    lines = [f"digraph {_quote(g.name)} {{",
             "  rankdir=TB;",
             '  node [shape=box, fontname="monospace", fontsize=10];',
             '  edge [fontname="monospace", fontsize=9];']
    for i, p in enumerate(g.params):
        node_of[p] = f"p{i}"
        label = f"{names.param(p)}\n{p.type}"
        lines.append(f"  p{i} [label={_quote(label)}, shape=ellipse];")
    member: dict[Op, int] = {}
    if plan is not None:
        producers = g.producers()
        for grp in plan.groups:
            for op in grp.ops:
                member[op] = grp.id
            if grp.copy_of is not None and grp.copy_of in producers:
                member.setdefault(producers[grp.copy_of], grp.id)
    op_lines: dict[int | None, list[str]] = {}
    for k, op in enumerate(g.ops):
        node = f"n{k}"
        for r in op.results:
            node_of[r] = node
        label = _op_label(op, names)
        free = plan is not None and classify(op) in ("const", "iota", "view")
        style = ', style=dashed, color="#888888"' if free else ""
        op_lines.setdefault(member.get(op), []).append(
            f"    {node} [label={_quote(label)}{style}];")
    lines.extend(line[2:] for line in op_lines.pop(None, []))
    if plan is not None:
        for grp in plan.groups:
            title = kernel_names[grp.id] if kernel_names else f"k{grp.id}"
            space = ",".join(map(str, grp.space))
            desc = f"{title}: {grp.kind} [{space}]"
            if grp.reduce_axes:
                desc += f" over [{','.join(map(str, grp.reduce_axes))}]"
            color = _COLORS[grp.id % len(_COLORS)]
            lines.append(f"  subgraph cluster_k{grp.id} {{")
            lines.append(f"    label={_quote(desc)}; style=rounded; color={_quote(color)};")
            lines.extend(op_lines.get(grp.id, []))
            lines.append("  }")
    for k, op in enumerate(g.ops):
        for v in op.operands:
            if v in node_of:
                lines.append(f"  {node_of[v]} -> n{k};")
    for i, v in enumerate(g.outputs):
        lines.append(f"  out{i} [label={_quote(f'output {i}')}, shape=doublecircle];")
        if v in node_of:
            lines.append(f"  {node_of[v]} -> out{i};")
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["graph_to_dot"]
