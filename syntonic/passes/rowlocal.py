"""Row-local ``while`` loops: which loops can run row block by row block, and how.

A loop is *row-local* when every carried value has a leading row axis of one length R
and each row's next value depends only on that row: elementwise ops, reductions over
other axes, broadcasts of per-row values, row-preserving reshapes/transposes/slices,
``row @ shared`` matmuls. Its predicate must be ``any(flag)`` of a carried per-row bool
``flag``, and the body must leave a row whose flag is false unchanged (each carried
result is the carried value itself, ``select(c, new, old)`` or, for integers,
``old + cast(c)``, where ``c`` is false wherever the flag is: the flag itself, or a
``bitand`` with it), with the flag staying false. Then running the loop on each block of
rows until the block's own rows are all inactive gives exactly the result of running it
on all rows until every row is inactive: extra iterations leave finished rows as they
are. That is what lets the CPU backend give each thread its own rows for the whole loop
(rows stay in cache across iterations) and stop each block on its own predicate.

:func:`analyze_loop` says whether a loop qualifies (or why not, naming the op and its
``file:line``); :func:`with_rows` rebuilds a region graph for a block of rows.

Example::

    info = analyze_loop(cond, body, carried=4)
    if isinstance(info, RowLocal):
        block_body = with_rows(body, info.row_params, info.rows, 64)
"""

from __future__ import annotations

from syntonic.ir.graph import Builder, Graph, Op, Value
from syntonic.ir.registry import Trait
from syntonic.ir.types import TensorType
from syntonic.records import record


@record(frozen=True, slots=True)
class RowLocal:
    """A row-local loop: `rows` rows; `row_params[i]` says if region param i has them."""

    rows: int
    row_params: tuple[bool, ...]
    flag: int  # the carried per-row bool whose any() is the loop predicate


class _NotRowLocal(Exception):
    pass


def _where(op: Op) -> str:
    return f" at {op.loc}" if op.loc is not None else ""


def _classify(g: Graph, row_params: tuple[bool, ...], rows: int,
              allow_cross: bool) -> tuple[set[Value], set[Value]]:
    """The values of `g` indexed by row, and (if `allow_cross`) those reduced across rows.

    Raises _NotRowLocal naming the first op that mixes rows.
    """
    row: set[Value] = {p for p, r in zip(g.params, row_params) if r}
    cross: set[Value] = set()

    def is_row(v: Value) -> bool:
        return v in row

    for op in g.ops:
        name = op.name
        ins = [is_row(v) for v in op.operands]
        out = op.results[0]
        if any(v in cross for v in op.operands):
            if allow_cross and op.opdef.has(Trait.ELEMENTWISE) and not any(ins):
                cross.add(out)
                continue
            raise _NotRowLocal(f"{name}{_where(op)} uses a value reduced across rows")
        if op.opdef.has(Trait.CONTROL):
            raise _NotRowLocal(f"a nested {name}{_where(op)}")
        if not any(ins):
            # A value computed without per-row inputs is the same in every row unless it
            # has data along a leading axis of length `rows`; a broadcast or iota that
            # adds that axis is rebuilt for a block of rows.
            if out.shape and out.shape[0] == rows:
                if name == "iota" and op.attr["dim"] % len(out.shape) != 0:
                    row.add(out)
                elif name == "broadcast" and (op.operands[0].type.rank < out.type.rank
                                              or op.operands[0].shape[0] == 1):
                    row.add(out)
                elif name in ("iota", "broadcast", "constant"):
                    raise _NotRowLocal(f"{name}{_where(op)} has one entry per row")
            continue
        if op.opdef.has(Trait.ELEMENTWISE):
            if not all(ins):
                raise _NotRowLocal(f"{name}{_where(op)} combines a per-row value with a "
                                   f"value that is not indexed by row")
            row.add(out)
        elif op.opdef.has(Trait.REDUCTION):
            if 0 in op.attr["axes"]:
                if not allow_cross:
                    raise _NotRowLocal(f"{name}{_where(op)} reduces across rows")
                cross.add(out)
            else:
                row.add(out)
        elif name == "broadcast":
            src = op.operands[0]
            if src.type.rank != out.type.rank:
                raise _NotRowLocal(f"broadcast{_where(op)} moves the row axis")
            row.add(out)
        elif name == "reshape":
            src = op.operands[0]
            if not out.shape or out.shape[0] != rows or src.shape[0] != rows:
                raise _NotRowLocal(f"reshape{_where(op)} changes the row axis")
            row.add(out)
        elif name == "transpose":
            if op.attr["perm"][0] != 0:
                raise _NotRowLocal(f"transpose{_where(op)} moves the row axis")
            row.add(out)
        elif name == "slice":
            a = op.attr
            if (a["start"][0], a["stop"][0], a["step"][0]) != (0, rows, 1):
                raise _NotRowLocal(f"slice{_where(op)} selects rows")
            row.add(out)
        elif name == "pad":
            a = op.attr
            if (a["low"][0], a["high"][0], a["interior"][0]) != (0, 0, 0):
                raise _NotRowLocal(f"pad{_where(op)} pads the row axis")
            row.add(out)
        elif name == "matmul":
            lhs, rhs = ins
            if not lhs or rhs or op.operands[0].type.rank != 2:
                raise _NotRowLocal(f"matmul{_where(op)} is not (rows @ shared)")
            row.add(out)
        else:
            raise _NotRowLocal(f"{name}{_where(op)} is not row-local")
    return row, cross


def _const_zero(g: Graph, v: Value) -> bool:
    prods = g.producers()
    op = prods.get(v)
    while op is not None and op.name == "broadcast":
        op = prods.get(op.operands[0])
    if op is None or op.name != "constant":
        return False
    arr = op.attr["value"].array
    return arr.size >= 1 and not arr.any()


def _any_flag(cond: Graph) -> int:
    """The index of the carried param whose any() the cond returns (else _NotRowLocal)."""
    prods = cond.producers()
    out = cond.outputs[0]
    op = prods.get(out)
    if op is not None and op.name in ("ne", "gt") and _const_zero(cond, op.operands[1]):
        op = prods.get(op.operands[0])
    if op is None or op.name != "max" or len(op.attr["axes"]) != op.operands[0].type.rank:
        raise _NotRowLocal("the loop predicate is not any() of a per-row flag")
    v = op.operands[0]
    inner = prods.get(v)
    if inner is not None and inner.name == "cast" and inner.operands[0].type.dtype.is_bool:
        v = inner.operands[0]
    if v not in cond.params or not v.type.dtype.is_bool:
        raise _NotRowLocal("the loop predicate is not any() of a carried per-row flag")
    return cond.params.index(v)


def _check_fixed_points(body: Graph, flag: int, carried: int) -> None:
    """Rows whose flag is false must come out of the body unchanged, flag still false."""
    prods = body.producers()
    p = body.params[flag]

    def false_when_off(v: Value) -> bool:
        if v is p:
            return True
        op = prods.get(v)
        if op is None:
            return False
        if op.name in ("broadcast", "reshape"):
            return false_when_off(op.operands[0])
        if op.name == "bitand":
            return any(false_when_off(x) for x in op.operands)
        if op.name == "select":  # select(c, a, b): false if c -> a false-when-off, else b
            return false_when_off(op.operands[1]) and false_when_off(op.operands[2])
        return False

    for i in range(carried):
        old = body.params[i]
        new = body.outputs[i]
        if new is old:
            continue
        op = prods.get(new)
        ok = False
        if i == flag and false_when_off(new):
            ok = True
        elif op is not None and op.name == "select":
            c, _, other = op.operands
            ok = other is old and false_when_off(c)
        elif op is not None and op.name == "add" and not new.type.dtype.is_float:
            a, b = op.operands
            inc = b if a is old else a if b is old else None
            cast = prods.get(inc) if inc is not None else None
            ok = cast is not None and cast.name == "cast" and false_when_off(cast.operands[0])
        if not ok:
            where = f" (computed at {op.loc})" if op is not None and op.loc else ""
            raise _NotRowLocal(f"carried value {i}{where} may change in rows whose flag is "
                               f"false (write it as where(flag, new, old))")


def analyze_loop(cond: Graph, body: Graph, carried: int) -> RowLocal | str:
    """A :class:`RowLocal` for a row-local loop, or the reason it is not one."""
    types = [p.type for p in body.params]
    if carried == 0 or any(t.rank == 0 for t in types[:carried]):
        return "a carried value has no row axis"
    rows = types[0].shape[0]
    if rows < 2 or any(t.shape[0] != rows for t in types[:carried]):
        return "the carried values do not share a leading row axis"
    row_params = tuple(i < carried or (t.rank > 0 and t.shape[0] == rows)
                       for i, t in enumerate(types))
    try:
        flag = _any_flag(cond)
        if types[flag].rank == 0:
            raise _NotRowLocal("the loop flag has no row axis")
        _classify(cond, row_params, rows, allow_cross=True)
        row, _ = _classify(body, row_params, rows, allow_cross=False)
        missing = [i for i, v in enumerate(body.outputs) if v not in row]
        if missing:
            raise _NotRowLocal(f"carried value {missing[0]} is not computed per row")
        _check_fixed_points(body, flag, carried)
    except _NotRowLocal as exc:
        return str(exc)
    return RowLocal(rows, row_params, flag)


def with_rows(g: Graph, row_params: tuple[bool, ...], rows: int, block: int) -> Graph:
    """`g` rebuilt for `block` rows instead of `rows` (a row-local region graph)."""
    row, _ = _classify(g, row_params, rows, allow_cross=True)
    b = Builder(g.name, g.loc)
    env: dict[Value, Value] = {}
    for p, r in zip(g.params, row_params):
        t = TensorType(p.type.dtype, (block, *p.type.shape[1:])) if r else p.type
        env[p] = b.param(t, p.hint)
    for op in g.ops:
        attrs = dict(op.attrs)
        if op.results[0] in row:
            if op.name in ("broadcast", "reshape", "iota"):
                attrs["shape"] = [block, *attrs["shape"][1:]]
            elif op.name == "slice":
                attrs["stop"] = [block, *attrs["stop"][1:]]
        new = b.add_op(op.name, [env[x] for x in op.operands], attrs, op.loc, None,
                       op.regions)
        for old, fresh in zip(op.results, new.results):
            env[old] = fresh
    return b.build([env[v] for v in g.outputs])


__all__ = ["RowLocal", "analyze_loop", "with_rows"]
