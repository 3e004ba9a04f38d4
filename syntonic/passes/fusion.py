"""Fusion: group the optimized graph's ops into kernels, with a reason for every boundary.

The result is a :class:`FusionPlan` (groups in execution order, the values each group
materializes, and :class:`Boundary` records); :mod:`syntonic.lower.schedule` turns it
into the kernel IR. The dependency graph between groups is a small :class:`DepGraph` (the
compile path does not import networkx: its import alone costs ~130 ms of a cold compile);
:meth:`FusionPlan.dependency_graph` gives it to users as a ``networkx.DiGraph``.

**What fuses.** Ops are classified by their registry traits. *Free* ops are never
kernels of their own: constants (buffers, or immediates when splat), ``iota`` (an index
expression) and layout ops that are views (:data:`~syntonic.lower.view.VIEW_RULES`:
broadcast, reshape, transpose, slice, pad), which become the index maps of loads. Compute
ops are visited in program order and join a producer's group when that is legal:

- elementwise ops join a group whose iteration space is their shape (chains of
  elementwise ops and broadcasts of loaded values become one kernel);
- a reduction joins the group of its elementwise producers (prologue); its result is a
  *row* value of the group; elementwise consumers of row values, and consumers that
  broadcast a row value back over the same space, join as the epilogue (so
  mean -> sub -> square -> mean -> div is one kernel with three phases);
- reductions over the same space and axes share a kernel; sibling groups over the same
  space that read a common input are merged at the end (multi-output kernels);
- a matmul starts a kernel; elementwise consumers over its output space join it as the
  epilogue.

**Recompute policy.** Constants, ``iota`` and views are recomputed (re-indexed) in every
kernel that reads them. Inside a kernel, each phase re-reads its inputs and recomputes
the elementwise values it needs (no materialized temporaries between phases).
Elementwise values computed in one kernel are never recomputed by another, and
reductions and matmuls are computed exactly once. A kernel has at most
``config.max_kernel_phases`` phases, which bounds that recompute.

**Boundaries.** Whenever a value crosses from one group to another, the plan records
why, from :data:`~syntonic.passes.reasons.REASONS`.

Example::

    >>> plan = fuse(optimize(row_normalise.trace(sn.spec("f32[4096,4096]"))))
    >>> [(g.kind, g.space, g.reduce_axes) for g in plan.groups]
    [('reduce', (4096, 4096), (1,))]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from typing import Any

from syntonic import config
from syntonic.ir.graph import Graph, Op, Value
from syntonic.ir.registry import Trait, get_op
from syntonic.lower.kernel import REDUCTION_COMBINE, Level
from syntonic.lower.view import VIEW_RULES, View, row_embedding, row_shapes, same_map
from syntonic.passes.reasons import REASONS, Boundary, Reason
from syntonic.records import record


def classify(op: Op) -> str:
    """``const``, ``iota``, ``view``, ``elementwise``, ``reduction``, ``matmul`` or ``opaque``."""
    d = get_op(op.name)
    if len(op.results) != 1:
        return "opaque"
    if op.name == "constant":
        return "const"
    if op.name == "iota":
        return "iota"
    if d.has(Trait.LAYOUT) and op.name in VIEW_RULES:
        return "view"
    if d.has(Trait.ELEMENTWISE):
        return "elementwise"
    if d.has(Trait.REDUCTION) and op.name in REDUCTION_COMBINE:
        return "reduction"
    if d.has(Trait.CONTRACTION) and op.name == "matmul":
        return "matmul"
    return "opaque"


@record(frozen=True, slots=True)
class Origin:
    """How a value is read: `view` (over the value's shape) of the contiguous `root`."""

    root: Value
    view: View


@record(frozen=True, slots=True)
class Group:
    """One future kernel: its iteration space, member ops and the values it writes."""

    id: int
    kind: str  # elementwise | reduce | matmul | opaque | copy
    space: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    ops: tuple[Op, ...]
    levels: Mapping[Value, Level]
    outputs: tuple[Value, ...]
    copy_of: Value | None = None  # copy groups: the value they materialize


@record(frozen=True, slots=True)
class FusionPlan:
    """Groups in execution order, how every value is read, and every boundary."""

    graph: Graph
    groups: tuple[Group, ...]
    origins: Mapping[Value, Origin]
    boundaries: tuple[Boundary, ...]
    reads: Mapping[tuple[Op, int], Origin] = field(default_factory=dict)
    copy_sources: Mapping[Value, Origin] = field(default_factory=dict)
    output_origins: tuple[Origin, ...] = ()
    output_reasons: Mapping[Value, Reason] = field(default_factory=dict)

    def origin(self, op: Op, index: int) -> Origin:
        """How operand `index` of `op` is read (its root buffer and view)."""
        return self.reads.get((op, index)) or self.origins[op.operands[index]]

    def group_of(self, v: Value) -> Group | None:
        """The group that writes root value `v` (None for parameters and constants)."""
        for g in self.groups:
            if v in g.outputs:
                return g
        return None

    def dependency_graph(self) -> Any:
        """The kernels and their data dependencies as a ``networkx.DiGraph``, for analysis.

        Nodes are group ids (attributes ``kind``, ``space``, ``ops``); an edge a -> b per
        boundary, with its ``reason`` and the ``value`` text. Example::

            g = f.lower(x).plan.dependency_graph()
            networkx.dag_longest_path(g)      # the critical chain of kernels
        """
        import networkx as nx

        dg = nx.DiGraph()
        for grp in self.groups:
            dg.add_node(grp.id, kind=grp.kind, space=grp.space,
                        ops=tuple(op.name for op in grp.ops))
        for b in self.boundaries:
            dg.add_edge(b.producer, b.consumer, reason=b.reason.value, value=str(b.value.type))
        return dg


# ------------------------------------------------------------------ planning state


@record
class _G:
    id: int
    kind: str
    space: tuple[int, ...]
    axes: tuple[int, ...] | None
    ops: list[Op] = field(default_factory=list)
    level: dict[Value, Level] = field(default_factory=dict)
    # first phase whose inner loop can use the value (reductions raise it by one)
    avail: dict[Value, int] = field(default_factory=dict)
    reads: set[Value] = field(default_factory=set)
    copy_of: Value | None = None


@record(frozen=True, slots=True)
class _Use:
    value: Value
    origin: Origin
    owner: int | None  # group that computes origin.root, or None (param/constant/iota)


@record(frozen=True, slots=True)
class _Fit:
    space: tuple[int, ...]
    axes: tuple[int, ...] | None
    level: Level
    avail: int = 0


@record(frozen=True, slots=True)
class _No:
    reason: Reason
    detail: str = ""


class DepGraph:
    """A directed graph of group ids (the few operations fusion needs, in the stdlib)."""

    def __init__(self) -> None:
        self._succ: dict[int, set[int]] = {}
        self._pred: dict[int, set[int]] = {}

    def add_node(self, n: int) -> None:
        self._succ.setdefault(n, set())
        self._pred.setdefault(n, set())

    def add_edge(self, a: int, b: int) -> None:
        self.add_node(a)
        self.add_node(b)
        self._succ[a].add(b)
        self._pred[b].add(a)

    def remove_node(self, n: int) -> None:
        for s in self._succ.pop(n, ()):
            self._pred[s].discard(n)
        for p in self._pred.pop(n, ()):
            self._succ[p].discard(n)

    def has_edge(self, a: int, b: int) -> bool:
        return b in self._succ.get(a, ())

    def successors(self, n: int) -> Iterator[int]:
        return iter(sorted(self._succ[n]))

    def predecessors(self, n: int) -> Iterator[int]:
        return iter(sorted(self._pred[n]))

    def edges(self) -> list[tuple[int, int]]:
        return sorted((a, b) for a, bs in self._succ.items() for b in bs)

    def has_path(self, a: int, b: int) -> bool:
        """Is `b` reachable from `a` (a == b counts)?"""
        stack, seen = [a], {a}
        while stack:
            x = stack.pop()
            if x == b:
                return True
            for s in self._succ[x]:
                if s not in seen:
                    seen.add(s)
                    stack.append(s)
        return False

    def topological_order(self, key: Callable[[int], Any]) -> list[int]:
        """Kahn's algorithm taking the smallest `key` among the ready nodes (a
        deterministic order: groups run in the order of their first op when they can)."""
        indeg = {n: len(p) for n, p in self._pred.items()}
        ready = [(key(n), n) for n, d in indeg.items() if d == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for s in self._succ[n]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, (key(s), s))
        if len(order) != len(indeg):
            raise AssertionError("fusion built a cyclic dependency graph")
        return order


class _Planner:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.cfg = config.current()
        self.kind = {op: classify(op) for op in g.ops}
        self.producer = g.producers()
        self.origins: dict[Value, Origin] = {}
        self.to_copy: dict[Value, Reason] = {}  # values that become roots via copy groups
        self.owner: dict[Value, int] = {}  # root value -> group id (before find)
        self.groups: dict[int, _G] = {}
        self.parent: dict[int, int] = {}
        self.dep = DepGraph()
        self.records: list[tuple[Value, Op | None, int, Reason, str]] = []
        self.output_reasons: dict[Value, Reason] = {}
        self.reads_of: dict[tuple[Op, int], Origin] = {}
        self.position = {op: i for i, op in enumerate(g.ops)}
        self.source_origins: dict[Value, Origin] = {}
        self._next = 0

    # ---------------------------------------------------------- groups
    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def new_group(self, kind: str, space: tuple[int, ...], axes: tuple[int, ...] | None) -> _G:
        grp = _G(self._next, kind, space, axes)
        self._next += 1
        self.groups[grp.id] = grp
        self.parent[grp.id] = grp.id
        self.dep.add_node(grp.id)
        return grp

    def owner_of(self, root: Value) -> int | None:
        gid = self.owner.get(root)
        return None if gid is None else self.find(gid)

    def use(self, v: Value) -> _Use:
        """How a consumer placed now reads `v` (through a copy kernel where there is one)."""
        if v in self.to_copy:
            if v not in self.owner:
                self.make_copy(v, self.to_copy[v])
            return _Use(v, Origin(v, View.contiguous(v.shape)), self.owner_of(v))
        origin = self.origins[v]
        if origin.root in self.to_copy and origin.root not in self.owner:
            self.make_copy(origin.root, self.to_copy[origin.root])
        return _Use(v, origin, self.owner_of(origin.root))

    def make_copy(self, v: Value, reason: Reason) -> None:
        """A copy group that writes `v` (a view or iota result) to its own buffer."""
        src = self.source_origins.get(v, self.origins[v])
        src_owner = None if src.root is v else self.owner_of(src.root)
        grp = self.new_group("copy", v.shape, None)
        grp.copy_of = v
        grp.level[v] = Level.ELEM
        self.owner[v] = grp.id
        grp.reads.add(src.root)
        if src_owner is not None:
            self.dep.add_edge(src_owner, grp.id)
            self.records.append((src.root, None, grp.id, reason, "copy kernel"))

    def merge_into(self, keep: int, other: int) -> None:
        a, b = self.groups[keep], self.groups.pop(other)
        a.ops.extend(b.ops)
        a.level.update(b.level)
        a.avail.update(b.avail)
        a.reads |= b.reads
        self.parent[other] = keep
        for p in list(self.dep.predecessors(other)):
            if p != keep:
                self.dep.add_edge(p, keep)
        for s in list(self.dep.successors(other)):
            if s != keep:
                self.dep.add_edge(keep, s)
        self.dep.remove_node(other)

    # ---------------------------------------------------------- views
    def trace_views(self) -> None:
        """Origin of every value; non-composable view chains get a copy point."""
        for p in self.g.params:
            self.origins[p] = Origin(p, View.contiguous(p.shape))
        for op in self.g.ops:
            if self.kind[op] != "view":
                for r in op.results:
                    self.origins[r] = Origin(r, View.contiguous(r.shape))
                continue
            src = op.operands[0]
            origin = self.origins[src]
            view = origin.view.apply(op.name, op.attr)
            if view is None:  # reshape of a strided view: materialize the operand first
                self.to_copy.setdefault(src, Reason.VIEW)
                self.source_origins[src] = origin
                origin = Origin(src, View.contiguous(src.shape))
                view = origin.view.apply(op.name, op.attr)
                assert view is not None
            self.origins[op.result] = Origin(origin.root, view)

    # ---------------------------------------------------------- legality
    def use_level(self, u: _Use, grp_level: Level, space: tuple[int, ...],
                  axes: tuple[int, ...] | None) -> Level | _No:
        """The level at which a consumer in the merged group reads an in-group value."""
        v, view, root = u.value, u.origin.view, u.origin.root
        if grp_level is Level.ELEM:
            if v.shape == space and root.shape == space and view.is_contiguous:
                return Level.ELEM
            names = self.chain_names(v)
            return _No(Reason.LAYOUT, f"{'/'.join(names) or 'view'} of a value computed in "
                       "the kernel")
        assert axes is not None
        outer, _ = row_shapes(space, axes)
        if view.is_contiguous and v.type.size == math.prod(outer):
            return Level.ROW
        if v.shape == space and same_map(view, row_embedding(space, axes)):
            return Level.ELEM
        return _No(Reason.REDUCTION, "a reduced value is broadcast along other axes than "
                   "the reduced ones")

    def chain_names(self, v: Value) -> list[str]:
        names = []
        while v in self.producer and self.kind[self.producer[v]] == "view":
            names.append(self.producer[v].name)
            v = self.producer[v].operands[0]
        return list(reversed(names))

    def fit(self, c: Op, uses: list[_Use], members: list[int]) -> _Fit | _No:
        """Can `c` join the union of groups `members`? Its level there, or why not."""
        gs = [self.groups[m] for m in members]
        kinds = {grp.kind for grp in gs}
        if kinds & {"opaque", "copy"}:
            return _No(Reason.OPAQUE)
        spaces = {grp.space for grp in gs}
        if len(spaces) > 1:
            a, b = sorted(spaces)[:2]
            return _No(Reason.SHAPE, f"iteration spaces {list(a)} and {list(b)}")
        space = gs[0].space
        axes_set = {grp.axes for grp in gs if grp.axes is not None}
        if len(axes_set) > 1:
            return _No(Reason.REDUCTION, "the kernels reduce different axes")
        axes = next(iter(axes_set)) if axes_set else None
        if sum(grp.kind == "matmul" for grp in gs) > 1:
            return _No(Reason.MATMUL, "one matmul per kernel")
        if "matmul" in kinds and "reduce" in kinds:
            return _No(Reason.MATMUL, "a matmul and a reduction in one kernel")
        for a, b in ((a, b) for a in members for b in members if a != b):
            if self.dep.has_edge(a, b):
                found = self.edge_reason(a, b)
                return _No(found.reason, found.detail) if found else _No(Reason.CYCLE)
        levels: list[Level] = []
        avail = 0
        for u in uses:
            if u.owner in members:
                grp = self.groups[u.owner]
                lvl = self.use_level(u, grp.level[u.origin.root], space, axes)
                if isinstance(lvl, _No):
                    return lvl
                levels.append(lvl)
                avail = max(avail, grp.avail.get(u.origin.root, 0))
        # A value used in an inner loop (an element value, a reduction's operand) needs
        # phase `avail`; row values may also be finished after the last phase.
        too_late = _No(Reason.SIZE, f"more than max_kernel_phases="
                       f"{self.cfg.max_kernel_phases} phases")
        kind = self.kind[c]
        if kind == "reduction":
            if avail >= self.cfg.max_kernel_phases:
                return too_late
            if "matmul" in kinds:
                return _No(Reason.MATMUL, "a matmul result is reduced by another kernel")
            if levels != [Level.ELEM]:
                return _No(Reason.REDUCTION, "reduces an already reduced value")
            red_axes = tuple(c.attr["axes"])
            if axes is not None and axes != red_axes:
                return _No(Reason.REDUCTION, f"reduces axes {list(red_axes)}, the kernel "
                           f"reduces {list(axes)}")
            return self.check_limits(c, uses, members,
                                     _Fit(space, red_axes, Level.ROW, avail + 1))
        level = Level.ELEM if Level.ELEM in levels else Level.ROW
        if avail >= self.cfg.max_kernel_phases + (level is Level.ROW):
            return too_late
        if level is Level.ROW:
            assert axes is not None
            _, keep = row_shapes(space, axes)
            for u in uses:
                if u.owner not in members and u.origin.view.reshape(keep) is None:
                    return _No(Reason.LAYOUT, "an input cannot be read per row")
        return self.check_limits(c, uses, members, _Fit(space, axes, level, avail))

    def check_limits(self, c: Op, uses: list[_Use], members: list[int], fit: _Fit) -> _Fit | _No:
        n_ops = sum(len(self.groups[m].ops) for m in members) + 1
        reads = set().union(*(self.groups[m].reads for m in members))
        reads |= {u.origin.root for u in uses if u.owner not in members}
        if n_ops > self.cfg.max_kernel_ops:
            return _No(Reason.SIZE, f"{n_ops} ops > max_kernel_ops={self.cfg.max_kernel_ops}")
        if len(reads) + 1 > self.cfg.max_kernel_buffers:
            return _No(Reason.SIZE, f"{len(reads) + 1} buffers > max_kernel_buffers="
                       f"{self.cfg.max_kernel_buffers}")
        ext = {u.owner for u in uses if u.owner is not None and u.owner not in members}
        if self.creates_cycle(set(members), ext):
            return _No(Reason.CYCLE)
        return fit

    def creates_cycle(self, members: set[int], ext: set[int]) -> bool:
        """Would the union of `members` (reading from `ext`) close a cycle?"""
        stack = [s for m in members for s in self.dep.successors(m) if s not in members]
        seen: set[int] = set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            if x in ext:
                return True
            for s in self.dep.successors(x):
                if s in members:
                    return True
                stack.append(s)
        return False

    def edge_reason(self, src: int, dst: int) -> _No | None:
        for value, _op, consumer, reason, detail in self.records:
            owner = self.owner_of(value)
            if owner == src and self.find(consumer) == dst:
                return _No(reason, detail)
        return None

    # ---------------------------------------------------------- placing ops
    def place(self, c: Op) -> None:
        kind = self.kind[c]
        if kind in ("matmul", "opaque"):
            self.place_alone(c, kind)
            return
        uses = [self.use(v) for v in c.operands]
        for i, u in enumerate(uses):
            self.reads_of[(c, i)] = u.origin
        candidates = list(dict.fromkeys(
            u.owner for u in uses
            if u.owner is not None and self.groups[u.owner].kind not in ("copy", "opaque")))
        tries: list[list[int]] = ([candidates] if len(candidates) > 1 else [])
        tries += [[m] for m in candidates]
        failures: dict[int, _No] = {}
        chosen: tuple[list[int], _Fit] | None = None
        for members in tries:
            result = self.fit(c, uses, members)
            if isinstance(result, _Fit):
                chosen = (members, result)
                break
            for m in members:
                failures.setdefault(m, result)
        if chosen is None:
            if kind == "reduction":
                fit = _Fit(c.operands[0].shape, tuple(c.attr["axes"]), Level.ROW, 1)
            else:
                fit = _Fit(c.results[0].shape, None, Level.ELEM)
            chosen = ([], fit)
        members, fit = chosen
        gid = self.join(c, uses, members, fit)
        for u in uses:
            if u.owner is None or u.owner in members:
                continue
            why = failures.get(u.owner)
            if why is None:
                other_kind = self.groups[u.owner].kind
                why = _No(Reason.VIEW, "read from a copy kernel")
                if other_kind == "opaque":
                    why = _No(Reason.LOOP, "result of a while loop") \
                        if self.groups[u.owner].ops[0].name == "while" \
                        else _No(Reason.OPAQUE, "its producer has no kernel lowering")
            self.records.append((u.origin.root, c, gid, why.reason, why.detail))

    def join(self, c: Op, uses: list[_Use], members: list[int], fit: _Fit) -> int:
        matmul = any(self.groups[m].kind == "matmul" for m in members)
        if members:
            keep = members[0]
            for m in members[1:]:
                self.merge_into(keep, m)
            grp = self.groups[keep]
        else:
            grp = self.new_group("elementwise", fit.space, None)
        grp.space, grp.axes = fit.space, fit.axes
        grp.kind = "matmul" if matmul else ("reduce" if fit.axes is not None else "elementwise")
        grp.ops.append(c)
        grp.level[c.results[0]] = fit.level
        grp.avail[c.results[0]] = fit.avail
        self.owner[c.results[0]] = grp.id
        for u in uses:
            if u.owner in members:
                continue
            grp.reads.add(u.origin.root)
            if u.owner is not None:
                self.dep.add_edge(u.owner, grp.id)
        return grp.id

    def place_alone(self, c: Op, kind: str) -> None:
        """A matmul or opaque op: its own group; operands read from memory."""
        for v in c.operands:  # operands an opaque op or matmul cannot read as a view
            u = self.use(v)
            root = u.origin.root
            needs_copy = root in self.producer and self.kind[self.producer[root]] == "iota"
            if kind == "opaque":
                needs_copy = needs_copy or not (u.origin.view.is_contiguous
                                                and v.type.size == root.type.size)
            if needs_copy and v not in self.owner:
                self.source_origins[v] = u.origin
                self.to_copy[v] = Reason.OPAQUE
                self.make_copy(v, Reason.OPAQUE)
        uses = [self.use(v) for v in c.operands]
        for i, u in enumerate(uses):
            self.reads_of[(c, i)] = u.origin
        out = c.results[0]
        grp = self.new_group(kind, out.shape, None)
        grp.ops.append(c)
        for r in c.results:
            grp.level[r] = Level.ELEM
            self.owner[r] = grp.id
        reason = Reason.MATMUL if kind == "matmul" else \
            Reason.LOOP if c.name == "while" else Reason.OPAQUE
        for u in uses:
            grp.reads.add(u.origin.root)
            if u.owner is not None:
                self.dep.add_edge(u.owner, grp.id)
                self.records.append((u.origin.root, c, grp.id, reason, c.name))

    # ---------------------------------------------------------- whole graph
    def merge_siblings(self) -> None:
        """Merge groups over the same space that read a common input (multi-output)."""
        ids = sorted(self.groups)
        for i, a in enumerate(ids):
            if a not in self.groups:
                continue
            for b in ids[i + 1:]:
                if b not in self.groups or a not in self.groups:
                    continue
                ga, gb = self.groups[a], self.groups[b]
                if ga.kind not in ("elementwise", "reduce") or gb.kind not in (
                        "elementwise", "reduce"):
                    continue
                if ga.space != gb.space or not self.shared_inputs(ga, gb):
                    continue
                if ga.axes is not None and gb.axes is not None and ga.axes != gb.axes:
                    continue
                if len(ga.ops) + len(gb.ops) > self.cfg.max_kernel_ops:
                    continue
                if len(ga.reads | gb.reads) + 2 > self.cfg.max_kernel_buffers:
                    continue
                if self.dep.has_path(a, b) or self.dep.has_path(b, a):
                    continue
                axes = ga.axes if ga.axes is not None else gb.axes
                self.merge_into(a, b)
                ga.axes = axes
                ga.kind = "reduce" if axes is not None else "elementwise"

    def shared_inputs(self, a: _G, b: _G) -> set[Value]:
        """Inputs both groups read, other than scalars and index values."""
        out = set()
        for r in a.reads & b.reads:
            op = self.producer.get(r)
            if op is not None and self.kind[op] in ("const", "iota") and r.type.size <= 1:
                continue
            out.add(r)
        return out

    def plan(self) -> FusionPlan:
        self.trace_views()
        for op in self.g.ops:
            if self.kind[op] not in ("const", "iota", "view"):
                self.place(op)
        self.output_origins: list[Origin] = []
        for o in self.g.outputs:
            u = self.use(o)
            root = u.origin.root
            is_iota = root in self.producer and self.kind[self.producer[root]] == "iota"
            reshape_only = u.origin.view.is_contiguous and o.type.size == root.type.size
            if (is_iota or not reshape_only) and o not in self.owner:
                self.source_origins[o] = u.origin
                self.to_copy[o] = Reason.OUTPUT
                self.make_copy(o, Reason.OUTPUT)
                u = self.use(o)
            self.output_origins.append(u.origin)
            self.output_reasons[o] = Reason.OUTPUT
        self.merge_siblings()
        return self.finish()

    def finish(self) -> FusionPlan:
        outputs: dict[int, list[Value]] = {gid: [] for gid in self.groups}

        def materialize(root: Value) -> None:
            gid = self.owner_of(root)
            if gid is not None and root not in outputs[gid]:
                outputs[gid].append(root)

        for gid, grp in self.groups.items():
            for op in grp.ops:
                for i in range(len(op.operands)):
                    root = self.reads_of[(op, i)].root
                    if self.owner_of(root) != gid:
                        materialize(root)
            if grp.kind == "opaque":  # the reference rule writes every result
                for r in grp.ops[0].results:
                    materialize(r)
            if grp.copy_of is not None:
                src = self.source_origins.get(grp.copy_of, self.origins[grp.copy_of])
                materialize(src.root)
                materialize(grp.copy_of)
        for origin in self.output_origins:
            materialize(origin.root)
        first = {gid: min(self.position[op] for op in grp.ops) if grp.ops else -1
                 for gid, grp in self.groups.items()}
        order = self.dep.topological_order(key=lambda n: (first[n], n))
        renumber = {gid: k for k, gid in enumerate(order)}
        groups = []
        for gid in order:
            grp = self.groups[gid]
            ops = tuple(sorted(grp.ops, key=self.position.__getitem__))
            groups.append(Group(renumber[gid], grp.kind, grp.space,
                                grp.axes if grp.axes is not None else (), ops,
                                dict(grp.level), tuple(outputs[gid]), grp.copy_of))
        boundaries: dict[tuple[int, int, int], Boundary] = {}
        for value, op, consumer, reason, detail in self.records:
            src = self.owner_of(value)
            dst = self.find(consumer)
            if src is None or src == dst:
                continue
            key = (renumber[src], renumber[dst], value.id)
            boundaries.setdefault(key, Boundary(renumber[src], renumber[dst], value, op,
                                                reason, detail))
        ordered = tuple(sorted(boundaries.values(), key=lambda b: (b.consumer, b.producer)))
        return FusionPlan(self.g, tuple(groups), dict(self.origins), ordered,
                          dict(self.reads_of), dict(self.source_origins),
                          tuple(self.output_origins), dict(self.output_reasons))


def fuse(g: Graph) -> FusionPlan:
    """Group the ops of the optimized graph `g` into kernels.

    Guarantees: every compute op is in exactly one group; groups are in a valid
    execution order (the group dependency graph is acyclic); every value read by a
    group other than its producer's is materialized by that producer and has a
    :class:`Boundary` with a reason; reductions and matmuls are never duplicated.
    """
    return _Planner(g).plan()


__all__ = ["REASONS", "Boundary", "FusionPlan", "Group", "Origin", "Reason", "classify", "fuse"]
