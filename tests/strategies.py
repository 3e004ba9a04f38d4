"""Hypothesis strategies for random *valid* IR graphs and numpy inputs that fit them.

Every op of :func:`syntonic.ir.registry.all_ops` has a generator in :data:`GENERATORS`
and a declared set of operand dtypes it accepts in :data:`ACCEPTS` (a test checks both
against the registry, so a newly registered op without a generator fails). Graphs chain
several ops (later ops read earlier results), return several values, carry odd source
locations, and keep shapes small (dims 0..6) so properties run fast.

Example::

    from hypothesis import given, strategies as st
    from tests.strategies import graphs, inputs_for

    @given(st.data())
    def test_something(data):
        g = data.draw(graphs(dtypes=["f32", "f64"], max_ops=6))
        args = data.draw(inputs_for(g, moderate=True))
        ...

Conventions: ``dtypes`` restricts every dtype the generator *chooses* (parameters,
constants, iota/cast/golden_weights targets, op operands). Comparisons still produce
bool and ``select`` still reads a bool condition, and generated ``while`` loops carry an
i32 trip counter, whatever ``dtypes`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from syntonic.ir import Builder, DType, Graph, Location, TensorType, Value
from syntonic.ir.registry import all_ops
from syntonic.ir.resonant import PRIME_DIMS

ALL_DTYPES: tuple[DType, ...] = tuple(DType)
FLOATS = frozenset({DType.f16, DType.f32, DType.f64})
INTS = frozenset({DType.i32, DType.i64})
NUMERIC = INTS | FLOATS
ANY = frozenset(ALL_DTYPES)

MAX_SIDE = 6
MAX_SIZE = 48

# Base settings for IR properties: graphs are cheap but not instant to draw.
ir_settings = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------ leaf strategies

# File names that stress the loc("...") escaping: quotes, backslashes, newlines, control
# characters, non-ASCII, a lone surrogate, and text that looks like IR.
ODD_FILES = (
    "model.py",
    "",
    'a "quoted" name.py',
    "C:\\Users\\dev\\model.py",
    "trailing\\",
    '\\"',
    "tab\there\nnewline.py",
    "\x00\x01\x1f\x7f",
    "ünïcødé/φ/π.py",
    "日本語.py",
    "emoji 🎵.py",
    "\ud800lone-surrogate.py",
    'loc("x.py":3) }',
    "// not a comment",
)


def locations() -> st.SearchStrategy[Location]:
    """Source locations with odd file names and line numbers up to 2**63."""
    files = st.sampled_from(ODD_FILES) | st.text(max_size=12)
    lines = st.integers(0, 10_000) | st.just(2**63)
    return st.builds(Location, files, lines)


@cache
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    # Strategies are cached: building and validating them dominates drawing small graphs.
    return st.integers(lo, hi)


@cache
def _sampled(options: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(options)


def graph_names() -> st.SearchStrategy[str]:
    """Function names, including ones the printer must sanitise."""
    return st.sampled_from(["f", "main", "_", "1abc", "", "a-b.c", "ünï", "f 2"]) | st.text(
        max_size=6
    )


def param_hints() -> st.SearchStrategy[str | None]:
    """Parameter hints: duplicates, digits, empty, non-ASCII, or none."""
    return st.none() | st.sampled_from(["x", "x", "x_1", "0", "a0", "arg", "", "é", "%y"]) | (
        st.text(max_size=4)
    )


@cache
def shapes(
    min_rank: int = 0,
    max_rank: int = 3,
    min_side: int = 0,
    max_side: int = MAX_SIDE,
    max_size: int = MAX_SIZE,
) -> st.SearchStrategy[tuple[int, ...]]:
    """Small static shapes; the element count stays <= max_size (or is 0)."""
    return _shapes(min_rank, max_rank, min_side, max_side, max_size)


@st.composite
def _shapes(
    draw: Callable[..., Any],
    min_rank: int = 0,
    max_rank: int = 3,
    min_side: int = 0,
    max_side: int = MAX_SIDE,
    max_size: int = MAX_SIZE,
) -> tuple[int, ...]:
    rank = draw(_ints(min_rank, max_rank))
    dims: list[int] = []
    size = 1
    for _ in range(rank):
        limit = max_side if size == 0 else max(min_side, min(max_side, max_size // size))
        d = draw(_ints(min_side, limit))
        dims.append(d)
        size *= d
    return tuple(dims)


def _float_elements(dtype: np.dtype, moderate: bool) -> st.SearchStrategy[float]:
    width = dtype.itemsize * 8
    if moderate:
        return st.floats(-100.0, 100.0, width=width)
    return st.floats(width=width)


@lru_cache(maxsize=4096)
def arrays(t: TensorType, moderate: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Arrays of type `t`. By default every value: nan (any payload/sign), +-inf, -0.0,
    subnormals, extreme floats and the full integer range; ``moderate`` keeps to
    finite values in [-100, 100]."""
    dt = t.dtype.np
    if t.dtype.is_float:
        plain = hnp.arrays(dt, t.shape, elements=_float_elements(dt, moderate))
        if moderate:
            return plain
        # Raw bit patterns reach NaN payloads and signs that float strategies rarely do.
        bits = hnp.arrays(np.dtype(f"u{dt.itemsize}"), t.shape).map(lambda a: a.view(dt))
        return plain | bits
    if t.dtype.is_int and moderate:
        return hnp.arrays(dt, t.shape, elements=st.integers(-100, 100))
    return hnp.arrays(dt, t.shape)


def inputs_for(g: Graph, moderate: bool = False) -> st.SearchStrategy[tuple[np.ndarray, ...]]:
    """A tuple of numpy arrays, one per parameter of `g`, of exactly its type."""
    return st.tuples(*(arrays(p.type, moderate) for p in g.params))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bits, except that any NaN equals any NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        ua = a.view(f"u{a.dtype.itemsize}")
        ub = b.view(f"u{b.dtype.itemsize}")
        return bool(np.all((ua == ub) | (np.isnan(a) & np.isnan(b))))
    return bool(np.array_equal(a, b))


def assert_same_results(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    """Assert two interpreter results agree exactly (NaN == NaN)."""
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert same_bits(a, b), f"output {i} differs:\n{a!r}\nvs\n{b!r}"


_MAYBE_LOC = st.none() | locations()
_HINTS = param_hints()
# Float attributes: every float (nan, +-inf, -0.0, subnormals) plus a few plain values.
_FLOAT_ATTR = st.floats() | st.sampled_from([1.0, 0.0, 0.5, -1.0])

# ------------------------------------------------------------------ graph building


class GraphDraw:
    """Graph-building state shared by the per-op generators.

    ``pool`` holds every value defined so far; operands are taken from it when one of
    the right type exists (so ops chain) or made fresh (a parameter or a constant).
    """

    def __init__(
        self,
        draw: Callable[..., Any],
        builder: Builder,
        ops: Iterable[str],
        dtypes: Iterable[DType],
        locs: bool,
    ) -> None:
        self.draw = draw
        self.b = builder
        self.ops = frozenset(ops)
        self.dtypes = tuple(dtypes)
        self.locs = locs
        self.pool: list[Value] = []

    def loc(self) -> Location | None:
        return self.draw(_MAYBE_LOC) if self.locs else None

    def add(
        self, name: str, operands: Sequence[Value], attrs: dict[str, Any] | None = None
    ) -> Value:
        v = self.b.add(name, operands, attrs or {}, self.loc())
        self.pool.append(v)
        return v

    def fresh(self, t: TensorType) -> Value:
        """A new value of type `t`: a parameter, or a constant when constants are allowed."""
        if "constant" in self.ops and self.draw(_ints(0, 3)) == 0:
            return self.add("constant", [], {"value": self.draw(arrays(t))})
        v = self.b.param(t, self.draw(_HINTS))
        self.pool.append(v)
        return v

    def operand(
        self,
        dtype: DType,
        shape: tuple[int, ...] | None = None,
        min_rank: int = 0,
        max_rank: int = 3,
    ) -> Value:
        """An existing value of this dtype (and shape / rank range), or a fresh one."""
        if shape is not None:
            cands = [v for v in self.pool if v.dtype is dtype and v.shape == shape]
        else:
            cands = [
                v for v in self.pool
                if v.dtype is dtype and min_rank <= v.type.rank <= max_rank
                and v.type.size <= MAX_SIZE
            ]
        k = self.draw(_ints(0, len(cands)))
        if k < len(cands):
            return cands[k]
        if shape is None:
            shape = self.draw(shapes(min_rank, max_rank))
        return self.fresh(TensorType(dtype, shape))

    def pick_dtype(self, allowed: Iterable[DType]) -> DType:
        """A dtype from `allowed`, often one that already has values (to chain ops)."""
        allowed_list = [d for d in ALL_DTYPES if d in set(allowed)]
        present = [d for d in allowed_list if any(v.dtype is d for v in self.pool)]
        if present and self.draw(st.booleans()):
            return self.draw(_sampled(tuple(present)))
        return self.draw(_sampled(tuple(allowed_list)))

    def axis(self, rank: int) -> int | None:
        """A resonant-op axis: -1 (the default), None, or any valid axis."""
        if rank == 0:
            return None
        return self.draw(_sampled((-1, None, *range(-rank, rank))))


Generator = Callable[[GraphDraw, DType], Value]


def _gen_constant(c: GraphDraw, dt: DType) -> Value:
    t = TensorType(dt, c.draw(shapes()))
    return c.add("constant", [], {"value": c.draw(arrays(t))})


def _gen_iota(c: GraphDraw, dt: DType) -> Value:
    shape = c.draw(shapes(1, 3))
    dim = c.draw(_ints(-len(shape), len(shape) - 1))
    return c.add("iota", [], {"shape": list(shape), "dim": dim, "dtype": dt})


def _unary(name: str) -> Generator:
    def gen(c: GraphDraw, dt: DType) -> Value:
        return c.add(name, [c.operand(dt)])

    return gen


def _binary(name: str) -> Generator:
    def gen(c: GraphDraw, dt: DType) -> Value:
        x = c.operand(dt)
        y = c.operand(dt, x.shape)
        return c.add(name, [x, y])

    return gen


def _gen_select(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    y = c.operand(dt, x.shape)
    cond = c.operand(DType.bool, x.shape)
    return c.add("select", [cond, x, y])


def _gen_cast(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    return c.add("cast", [x], {"dtype": c.draw(_sampled(c.dtypes))})


def _gen_broadcast(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    lead = c.draw(shapes(0, 1 if x.type.rank >= 2 else 2, max_side=4))
    dims = [c.draw(_ints(0, 4)) if d == 1 else d for d in x.shape]
    return c.add("broadcast", [x], {"shape": [*lead, *dims]})


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _gen_reshape(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    n = x.type.size
    if n == 0:
        dims = list(c.draw(shapes(1, 3)))
        dims[c.draw(_ints(0, len(dims) - 1))] = 0
    else:
        dims, rem = [], n
        while rem > 1 and len(dims) < 3:
            d = c.draw(_sampled(tuple(_divisors(rem))))
            dims.append(d)
            rem //= d
        if rem > 1:
            dims.append(rem)
        dims += [1] * c.draw(_ints(0, 1))
        dims = list(c.draw(st.permutations(dims)))
    return c.add("reshape", [x], {"shape": dims})


def _gen_transpose(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    perm = c.draw(st.permutations(range(x.type.rank)))
    return c.add("transpose", [x], {"perm": list(perm)})


def _gen_slice(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    start, stop, step = [], [], []
    for d in x.shape:
        b = c.draw(_ints(0, d))
        start.append(b)
        stop.append(c.draw(_ints(b, d)))
        step.append(c.draw(_ints(1, 3)))
    return c.add("slice", [x], {"start": start, "stop": stop, "step": step})


def _gen_pad(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    amounts = st.lists(_ints(0, 2), min_size=x.type.rank, max_size=x.type.rank)
    attrs = {"low": c.draw(amounts), "high": c.draw(amounts), "interior": c.draw(amounts)}
    return c.add("pad", [x], attrs)


def _reduction(name: str) -> Generator:
    def gen(c: GraphDraw, dt: DType) -> Value:
        x = c.operand(dt)
        rank = x.type.rank
        axes = sorted(c.draw(st.sets(_ints(0, rank - 1)))) if rank else []
        if name in ("max", "min"):  # no identity: an empty axis is a type error
            axes = [ax for ax in axes if x.shape[ax] != 0]
        attrs: dict[str, Any] = {"axes": axes}
        if c.draw(st.booleans()):
            attrs["keepdims"] = c.draw(st.booleans())
        return c.add(name, [x], attrs)

    return gen


def _gen_matmul(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt, min_rank=2, max_rank=4)
    n = c.draw(_ints(0, 5))
    y = c.operand(dt, x.shape[:-2] + (x.shape[-1], n))
    return c.add("matmul", [x, y])


def _gen_golden_weights(c: GraphDraw, dt: DType) -> Value:
    return c.add("golden_weights", [], {"n": c.draw(_ints(0, 12)), "dtype": dt})


def _along_axis(name: str, extra: Callable[[GraphDraw], dict[str, Any]] | None = None) -> Generator:
    def gen(c: GraphDraw, dt: DType) -> Value:
        x = c.operand(dt)
        attrs = {"axis": c.axis(x.type.rank)}
        if extra is not None:
            attrs.update(extra(c))
        return c.add(name, [x], attrs)

    return gen


def _harmonize_attrs(c: GraphDraw) -> dict[str, Any]:
    strength = c.draw(st.none() | _FLOAT_ATTR)
    return {} if strength is None else {"strength": strength}


def _gen_differentiate(c: GraphDraw, dt: DType) -> Value:
    x = c.operand(dt)
    axis = c.axis(x.type.rank)
    if c.draw(st.booleans()):
        alpha = c.draw(_FLOAT_ATTR)
        return c.add("differentiate", [x], {"alpha": alpha, "axis": axis})
    if axis is None:
        rows: tuple[int, ...] = ()
    else:
        ax = axis % x.type.rank
        rows = x.shape[:ax] + x.shape[ax + 1 :]
    alpha_v = c.operand(dt, rows)
    return c.add("differentiate", [x, alpha_v], {"axis": axis})


def _gen_prime_gate(c: GraphDraw, dt: DType) -> Value:
    if c.draw(st.booleans()):
        x = c.operand(dt, min_rank=1)
    else:
        d = c.draw(_sampled(tuple(sorted(PRIME_DIMS))))
        lead = c.draw(shapes(0, 1, max_side=2))
        x = c.operand(dt, lead + (d,))
    return c.add("prime_gate", [x])


def _step(c: GraphDraw, b: Builder, x: Value) -> Value:
    """One random same-type update of `x` inside a region."""
    if x.dtype is DType.bool:
        name = c.draw(_sampled(("eq", "ne", "bitxor")))
        y = b.add(name, [x, x], None, c.loc())
        return y if y.dtype is DType.bool else b.add("ne", [x, x], None, c.loc())
    name = c.draw(_sampled(("add", "sub", "mul", "neg", "abs")))
    return b.add(name, [x] if name in ("neg", "abs") else [x, x], None, c.loc())


def _gen_while(c: GraphDraw, dt: DType) -> Value:
    """A bounded loop carrying x and a counter i: runs while i < n and -3 <= i < 3.

    The counter's start and the limit n are ordinary operands (parameters or constants);
    the bounds live in the cond region, so the loop runs at most 6 times for any inputs.
    """
    x = c.operand(dt)
    counter = TensorType(DType.i32, ())
    start = c.operand(DType.i32, ())
    limit = c.operand(DType.i32, ())
    types = (x.type, counter, counter)
    cb = Builder("cond")
    cx, ci, cn = (cb.param(t, h) for t, h in zip(types, ("x", "i", "n")))
    lo = cb.add("constant", [], {"value": np.array(-3, np.int32)}, c.loc())
    hi = cb.add("constant", [], {"value": np.array(3, np.int32)}, c.loc())
    ok = cb.add("bitand", [cb.add("lt", [ci, cn], None, c.loc()),
                           cb.add("lt", [ci, hi], None, c.loc())], None, c.loc())
    ok = cb.add("bitand", [ok, cb.add("ge", [ci, lo], None, c.loc())], None, c.loc())
    cond = cb.build([ok])
    bb = Builder("body")
    bx, bi, bn = (bb.param(t, h) for t, h in zip(types, ("x", "i", "n")))
    one = bb.add("constant", [], {"value": np.ones((), np.int32)}, c.loc())
    body = bb.build([_step(c, bb, bx), bb.add("add", [bi, one], None, c.loc())])
    op = c.b.add_op("while", [x, start, limit], {"carried": 2}, c.loc(), None, (cond, body))
    c.pool.extend(op.results)
    return op.results[0]


def _gen_cond(c: GraphDraw, dt: DType) -> Value:
    pred = c.operand(DType.bool, ())
    x = c.operand(dt)
    branches = []
    for name in ("true", "false"):
        rb = Builder(name)
        p = rb.param(x.type, "x")
        out = p if c.draw(st.booleans()) else _step(c, rb, p)
        branches.append(rb.build([out]))
    op = c.b.add_op("cond", [pred, x], {}, c.loc(), None, tuple(branches))
    c.pool.extend(op.results)
    return op.results[0]


def _table() -> tuple[dict[str, Generator], dict[str, frozenset[DType]]]:
    gens: dict[str, Generator] = {}
    accepts: dict[str, frozenset[DType]] = {}

    def put(name: str, gen: Generator, dts: frozenset[DType]) -> None:
        gens[name] = gen
        accepts[name] = dts

    put("constant", _gen_constant, ANY)
    put("iota", _gen_iota, NUMERIC)
    for name in ("neg", "abs", "sign"):
        put(name, _unary(name), NUMERIC)
    put("stop_gradient", _unary("stop_gradient"), ANY)
    for name in ("exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf", "floor"):
        put(name, _unary(name), FLOATS)
    for name in ("add", "sub", "mul", "maximum", "minimum"):
        put(name, _binary(name), NUMERIC)
    for name in ("div", "pow"):
        put(name, _binary(name), FLOATS)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        put(name, _binary(name), ANY)
    for name in ("bitand", "bitor", "bitxor", "shl", "shr"):
        put(name, _binary(name), INTS | {DType.bool})
    put("select", _gen_select, ANY)
    put("cast", _gen_cast, ANY)
    put("broadcast", _gen_broadcast, ANY)
    put("reshape", _gen_reshape, ANY)
    put("transpose", _gen_transpose, ANY)
    put("slice", _gen_slice, ANY)
    put("pad", _gen_pad, ANY)
    for name in ("sum", "max", "min", "prod"):
        put(name, _reduction(name), NUMERIC)
    put("mean", _reduction("mean"), FLOATS)
    put("matmul", _gen_matmul, NUMERIC)
    put("golden_weights", _gen_golden_weights, FLOATS)
    for name in ("syntony", "spectral_syntony", "mobius_mask", "dhsr_cycle"):
        put(name, _along_axis(name), FLOATS)
    put("harmonize", _along_axis("harmonize", _harmonize_attrs), FLOATS)
    put("differentiate", _gen_differentiate, FLOATS)
    put("prime_gate", _gen_prime_gate, FLOATS)
    put("while", _gen_while, ANY)
    put("cond", _gen_cond, ANY)
    return gens, accepts


GENERATORS, ACCEPTS = _table()


def _op_names(ops: Iterable[str] | None) -> list[str]:
    names = list(all_ops()) if ops is None else list(ops)
    missing = [n for n in names if n not in GENERATORS]
    if missing:
        raise ValueError(f"no graph generator for op(s) {missing}; add one to tests/strategies.py")
    return names


@st.composite
def graphs(
    draw: Callable[..., Any],
    ops: Iterable[str] | None = None,
    dtypes: Iterable[DType | str] | None = None,
    max_ops: int = 8,
    *,
    min_ops: int = 1,
    locs: bool = True,
    focus: str | None = None,
    focus_dtype: DType | str | None = None,
) -> Graph:
    """Random valid graphs of `min_ops..max_ops` chosen ops (plus helper constants).

    ``ops`` limits the ops drawn (default: every registered op); ``dtypes`` the dtypes
    chosen. ``focus`` forces one step to be that op; ``focus_dtype`` forces its operand
    dtype even when the op does not accept it (then the Builder raises InferError, which
    is how tests check that ``ACCEPTS`` matches the type rules). ``locs=False`` leaves
    every location None.
    """
    names = _op_names(ops)
    allowed = tuple(ALL_DTYPES if dtypes is None else (DType.coerce(d) for d in dtypes))
    usable = [n for n in names if ACCEPTS[n] & set(allowed)]
    if focus is not None:
        _op_names([focus])
    elif not usable:
        raise ValueError(f"none of the ops {names} accepts any of the dtypes {allowed}")
    b = Builder(draw(graph_names()), draw(st.none() | locations()) if locs else None)
    c = GraphDraw(draw, b, names, allowed, locs)
    n = draw(_ints(min_ops, max(min_ops, max_ops)))
    focus_at = draw(_ints(0, n - 1)) if focus is not None else -1
    last = None
    for i in range(n):
        if i == focus_at:
            name = focus
            if focus_dtype is not None:
                dt = DType.coerce(focus_dtype)
            else:
                dt = c.pick_dtype(ACCEPTS[name] & set(allowed) or ACCEPTS[name])
        elif usable:
            name = draw(_sampled(tuple(usable)))
            dt = c.pick_dtype(ACCEPTS[name] & set(allowed))
        else:
            continue
        last = GENERATORS[name](c, dt)
    assert last is not None
    extra = draw(st.lists(st.sampled_from(c.pool), max_size=3))
    return b.build([last, *extra])


def op_graphs(
    name: str, dtype: DType | str | None = None, locs: bool = True
) -> st.SearchStrategy[Graph]:
    """Small graphs (1-3 ops) that always contain `name` (with operand dtype `dtype`)."""
    return graphs(ops=[name, "constant"], max_ops=3, locs=locs, focus=name, focus_dtype=dtype)


__all__ = [
    "ACCEPTS", "ALL_DTYPES", "FLOATS", "GENERATORS", "GraphDraw", "INTS", "NUMERIC", "ODD_FILES",
    "arrays", "assert_same_results", "graph_names", "graphs", "inputs_for", "ir_settings",
    "locations", "op_graphs", "param_hints", "same_bits", "shapes",
]


@st.composite
def graph_cases(draw: Callable[..., Any], ops: Iterable[str] | None = None,
                dtypes: Iterable[DType | str] | None = None, moderate: bool = False,
                min_ops: int = 1, focus: str | None = None) -> tuple[Graph, list[np.ndarray]]:
    """A random graph (`ops`, else `dtypes`) and inputs for it: the cases the backends'
    random-graph tests compare with the interpreter."""
    kw = {"ops": ops} if ops else {"dtypes": dtypes}
    g = draw(graphs(max_ops=max(8, min_ops + 4), min_ops=min_ops, focus=focus, **kw))
    return g, draw(inputs_for(g, moderate=moderate))

