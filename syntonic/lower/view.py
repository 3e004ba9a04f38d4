"""Views: how a kernel's iteration index addresses a buffer (strides, offset, masks).

A :class:`View` maps an index ``i = (i_0, ..., i_{r-1})`` of its shape to one element of a
flat, contiguous buffer. Each dimension ``k`` has a stride and an optional mask
``lo <= i_k < hi and (i_k - lo) % step == 0``; along a masked dimension the source
coordinate is ``(i_k - lo) // step``. So

    offset(i) = view.offset + sum_k ((i_k - lo_k) // step_k) * stride_k
    valid(i)  = all_k (lo_k <= i_k < hi_k and (i_k - lo_k) % step_k == 0)

and a load through the view reads ``buffer[offset(i)]`` where valid and ``0`` elsewhere.
An unmasked dimension has ``lo = 0, hi = size, step = 1`` (then the term is
``i_k * stride_k``). Broadcasting is a zero stride; transposition permutes dimensions;
``slice`` scales strides and moves the offset; ``pad`` adds masks (zero fill, as the
``pad`` op). ``reshape`` succeeds when the strides allow it (as numpy's no-copy reshape);
otherwise the view op returns ``None`` and fusion materializes the value first.

Each layout op of the registry that can be a view has one rule in :data:`VIEW_RULES`
(keyed by op name, as backends key their lowering tables).

Example::

    >>> v = View.contiguous((4, 3)).transpose((1, 0))
    >>> v.shape, v.strides
    ((3, 4), (1, 3))
    >>> str(View.contiguous((4, 3)).broadcast((2, 4, 3)))
    '[3*i1 + i2]'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from syntonic.records import record


@record(frozen=True, slots=True)
class Dim:
    """One dimension of a view: its size, stride (elements) and mask ``lo:hi:step``."""

    size: int
    stride: int
    lo: int = 0
    hi: int | None = None  # None: the dimension's size (unmasked upper bound)
    step: int = 1

    @property
    def upper(self) -> int:
        return self.size if self.hi is None else self.hi

    @property
    def masked(self) -> bool:
        return self.lo != 0 or self.step != 1 or self.upper < self.size

    @property
    def empty(self) -> bool:
        """True when no index of this dimension is valid (a view of only padding)."""
        return self.upper <= self.lo

    def valid_at(self, i: int) -> bool:
        return self.lo <= i < self.upper and (i - self.lo) % self.step == 0

    def coord(self, i: int) -> int:
        return (i - self.lo) // self.step


def _plain(size: int, stride: int) -> Dim:
    return Dim(size, stride)


def _invalid(size: int) -> Dim:
    return Dim(size, 0, 0, 0, 1)


@record(frozen=True, slots=True)
class View:
    """A strided, optionally masked map from an index of ``shape`` to a buffer element."""

    dims: tuple[Dim, ...]
    offset: int = 0

    # ------------------------------------------------------------------ basics
    @staticmethod
    def contiguous(shape: Sequence[int]) -> View:
        """The row-major view of a buffer of `shape`."""
        strides = contiguous_strides(shape)
        return View(tuple(_plain(d, s) for d, s in zip(shape, strides)), 0)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.dims)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(d.stride for d in self.dims)

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def masked(self) -> bool:
        """True when some index reads padding (the load needs a guard)."""
        return any(d.masked for d in self.dims)

    @property
    def is_contiguous(self) -> bool:
        """True when the view is the row-major layout of its shape at offset 0."""
        return not self.masked and self.offset == 0 and all(
            d.stride == s or d.size == 1
            for d, s in zip(self.dims, contiguous_strides(self.shape))
        )

    def depends_on(self, axis: int) -> bool:
        """True when the element read changes with index `axis` (stride or mask)."""
        d = self.dims[axis]
        return d.size > 1 and (d.stride != 0 or d.masked)

    def element(self, index: Sequence[int]) -> int | None:
        """The buffer offset of `index`, or None where it reads padding (reference rule)."""
        off = self.offset
        for d, i in zip(self.dims, index):
            if not d.valid_at(i):
                return None
            off += d.coord(i) * d.stride
        return off

    # ------------------------------------------------------------ view ops
    def broadcast(self, shape: Sequence[int]) -> View:
        """Numpy broadcasting to `shape` (dimensions aligned on the right)."""
        shape = tuple(shape)
        lead = len(shape) - self.rank
        dims = [_plain(n, 0) for n in shape[:lead]]
        offset = self.offset
        for d, n in zip(self.dims, shape[lead:]):
            if d.size == n:
                dims.append(d)
            elif d.valid_at(0):  # a size-1 dimension repeated: its one element, or padding
                offset += d.coord(0) * d.stride
                dims.append(_plain(n, 0))
            else:
                dims.append(_invalid(n))
        return View(tuple(dims), offset)

    def transpose(self, perm: Sequence[int]) -> View:
        """Result dimension k is this view's dimension perm[k]."""
        return View(tuple(self.dims[p] for p in perm), self.offset)

    def slice(self, start: Sequence[int], stop: Sequence[int], step: Sequence[int]) -> View:
        """Static strided slice ``start:stop:step`` per dimension (step >= 1)."""
        dims = []
        offset = self.offset
        for d, b, e, s in zip(self.dims, start, stop, step):
            m = len(range(b, e, s))
            if not d.masked:
                offset += b * d.stride
                dims.append(_plain(m, d.stride * s))
                continue
            new, delta = _slice_masked(d, b, s, m)
            dims.append(new)
            offset += delta
        return View(tuple(dims), offset)

    def pad(self, low: Sequence[int], high: Sequence[int], interior: Sequence[int]) -> View:
        """Zero padding as the ``pad`` op: `low`/`high` before/after, `interior` between."""
        dims = []
        for d, lo_p, hi_p, it in zip(self.dims, low, high, interior):
            n = d.size
            size = lo_p + hi_p + n + max(n - 1, 0) * it
            if n == 0 or d.empty:
                dims.append(_invalid(size))
                continue
            gap = it + 1
            lo = lo_p + gap * d.lo
            hi = lo_p + gap * (d.upper - 1) + 1
            dims.append(Dim(size, d.stride, lo, hi, gap * d.step))
        return View(tuple(dims), self.offset)

    def reshape(self, shape: Sequence[int]) -> View | None:
        """Row-major reshape without moving data, or None when the strides forbid it."""
        shape = tuple(shape)
        if math.prod(shape) == 0:
            return View(tuple(_plain(n, 0) for n in shape), self.offset)
        offset = self.offset
        old: list[Dim] = []
        for d in self.dims:
            if d.size != 1:
                old.append(d)
            elif d.valid_at(0):
                offset += d.coord(0) * d.stride
            else:
                return None  # a padded size-1 dimension: keep it simple, materialize
        new_sizes = [n for n in shape if n != 1]
        out: list[Dim] = []
        i = j = 0
        while i < len(old) and j < len(new_sizes):
            i2, j2 = i + 1, j + 1
            p_old, p_new = old[i].size, new_sizes[j]
            while p_old != p_new:
                if p_old < p_new:
                    p_old *= old[i2].size
                    i2 += 1
                else:
                    p_new *= new_sizes[j2]
                    j2 += 1
            chunk = old[i:i2]
            sizes = new_sizes[j:j2]
            if len(chunk) == 1 and len(sizes) == 1:
                out.append(chunk[0])
            else:
                if any(d.masked for d in chunk):
                    return None
                for a, b in zip(chunk, chunk[1:]):
                    if a.stride != b.stride * b.size:
                        return None
                stride = chunk[-1].stride
                part = []
                for n in reversed(sizes):
                    part.append(_plain(n, stride))
                    stride *= n
                out.extend(reversed(part))
            i, j = i2, j2
        it = iter(out)
        dims = tuple(_plain(1, 0) if n == 1 else next(it) for n in shape)
        return View(dims, offset)

    def apply(self, op_name: str, attrs: Mapping[str, Any]) -> View | None:
        """Apply the layout op `op_name` (see :data:`VIEW_RULES`); None if not a view."""
        rule = VIEW_RULES.get(op_name)
        return None if rule is None else rule(self, attrs)

    # ------------------------------------------------------------ numpy side
    def gather(self, flat: np.ndarray) -> np.ndarray:
        """Read the view from a flat buffer (padding reads as 0). Used by the interpreter."""
        if not self.masked:
            if self.size == 0:
                return np.zeros(self.shape, flat.dtype)
            base = flat[self.offset:]
            strides = tuple(s * flat.itemsize for s in self.strides)
            return np.lib.stride_tricks.as_strided(base, self.shape, strides, writeable=False)
        offsets, valid = self.offsets()
        safe = np.where(valid, offsets, 0)
        if flat.size == 0:
            return np.zeros(self.shape, flat.dtype)
        return np.where(valid, flat[safe], np.zeros((), flat.dtype))

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Buffer offsets and validity of every index, as arrays broadcastable to shape."""
        r = self.rank
        off: Any = np.full((1,) * r, self.offset, dtype=np.int64)
        valid: Any = np.ones((1,) * r, dtype=bool)
        for k, d in enumerate(self.dims):
            idx = np.arange(d.size, dtype=np.int64).reshape([d.size if a == k else 1
                                                             for a in range(r)])
            rel = idx - d.lo
            off = off + (rel // d.step) * d.stride
            if d.masked:
                valid = valid & (idx >= d.lo) & (idx < d.upper) & (rel % d.step == 0)
        return np.broadcast_to(off, self.shape), np.broadcast_to(valid, self.shape)

    # ------------------------------------------------------------ text
    def index_text(self, names: Sequence[str] | None = None) -> str:
        """The offset as an expression of the index names, plus a guard when masked."""
        names = list(names) if names is not None else [f"i{k}" for k in range(self.rank)]
        terms = []
        guards = []
        for d, n in zip(self.dims, names):
            if d.size == 1 and not d.masked:
                continue
            coord = n
            if d.masked:
                rel = f"({n}-{d.lo})" if d.lo else n
                coord = f"{rel}/{d.step}" if d.step != 1 else rel
                guards.append(f"{d.lo}<={n}<{d.upper}")
                if d.step != 1:
                    guards.append(f"{rel}%{d.step}==0")
            if d.stride == 0:
                continue
            terms.append(coord if d.stride == 1 else f"{d.stride}*{coord}")
        if self.offset or not terms:
            terms.append(str(self.offset))
        text = " + ".join(terms)
        if guards:
            text += " if " + " && ".join(guards)
        return f"[{text}]"

    def __str__(self) -> str:
        return self.index_text()


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major strides (in elements) of `shape`."""
    strides = []
    acc = 1
    for n in reversed(tuple(shape)):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _slice_masked(d: Dim, b: int, s: int, m: int) -> tuple[Dim, int]:
    """Slice ``b::s`` (m elements) of a masked dimension: the new Dim and offset change."""
    if d.empty or m == 0:
        return _invalid(m), 0
    # Valid new indices j satisfy lo <= b + s*j < hi and (b + s*j - lo) % step == 0:
    # an arithmetic progression j = j0 + period*t, whose coordinates are affine in t.
    first = max(0, -((b - d.lo) // s))  # ceil((lo - b) / s)
    period = d.step // math.gcd(s, d.step)
    j0 = next((j for j in range(first, first + period) if (b + s * j - d.lo) % d.step == 0),
              None)
    hi = min(m, max(0, -((b - d.upper) // s)))  # ceil((hi - b) / s)
    if j0 is None or j0 >= hi:
        return _invalid(m), 0
    c0 = (b + s * j0 - d.lo) // d.step
    dc = s * period // d.step
    return Dim(m, d.stride * dc, j0, hi, period), c0 * d.stride


def row_shapes(space: tuple[int, ...], axes: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """(outer shape, keepdims row shape) of a space reduced over `axes`."""
    outer = tuple(d for a, d in enumerate(space) if a not in axes)
    keep = tuple(1 if a in axes else d for a, d in enumerate(space))
    return outer, keep


def row_embedding(space: tuple[int, ...], axes: tuple[int, ...]) -> View:
    """The view of a row value (flat order = outer index) over the whole space."""
    outer, keep = row_shapes(space, axes)
    view = View.contiguous(outer).reshape(keep)
    assert view is not None
    return view.broadcast(space)


def same_map(a: View, b: View) -> bool:
    """True when two views read the same element at every index (unmasked)."""
    if a.shape != b.shape or a.masked or b.masked or a.offset != b.offset:
        return False
    return all(x.stride == y.stride or x.size == 1 for x, y in zip(a.dims, b.dims))


ViewRule = Callable[[View, Mapping[str, Any]], "View | None"]

# One rule per layout op that is a view (op name -> rule). Layout ops missing here are
# not views: fusion gives them their own kernel through the registry's reference rule.
VIEW_RULES: dict[str, ViewRule] = {
    "broadcast": lambda v, a: v.broadcast(a["shape"]),
    "reshape": lambda v, a: v.reshape(a["shape"]),
    "transpose": lambda v, a: v.transpose(a["perm"]),
    "slice": lambda v, a: v.slice(a["start"], a["stop"], a["step"]),
    "pad": lambda v, a: v.pad(a["low"], a["high"], a["interior"]),
}


__all__ = ["VIEW_RULES", "Dim", "View", "contiguous_strides", "row_embedding", "row_shapes",
           "same_map"]
