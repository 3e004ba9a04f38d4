"""Minimal pytrees: nested tuples, lists and dicts (sorted keys) of leaves.

Example::

    >>> leaves, tree = flatten({"b": 1, "a": (2, 3)})
    >>> leaves
    [2, 3, 1]
    >>> unflatten(tree, [20, 30, 10])
    {'a': (20, 30), 'b': 10}
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple


class TreeDef(NamedTuple):
    """The structure of a pytree: ``kind`` is 'leaf', 'tuple', 'list', 'dict' or 'none'.

    A named tuple (hashable, compared by value) rather than a dataclass: a compiled
    function flattens its arguments on every call, and a tuple is ~5x cheaper to build.
    """

    kind: str
    children: tuple[TreeDef, ...] = ()
    keys: tuple[Any, ...] = ()

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)


LEAF = TreeDef("leaf")
NONE = TreeDef("none")


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    t = type(tree)
    if t is tuple or (isinstance(tree, tuple) and not hasattr(tree, "_fields")):
        return TreeDef("tuple", tuple([_flatten(c, leaves) for c in tree]))
    if t is list or isinstance(tree, list):
        return TreeDef("list", tuple([_flatten(c, leaves) for c in tree]))
    if t is dict or isinstance(tree, dict):
        keys = tuple(sorted(tree))
        return TreeDef("dict", tuple([_flatten(tree[k], leaves) for k in keys]), keys)
    if tree is None:
        return NONE
    leaves.append(tree)
    return LEAF


def unflatten(tree: TreeDef, leaves: list[Any]) -> Any:
    it = iter(leaves)
    out = _unflatten(tree, it)
    return out


def unflattener(tree: TreeDef) -> Any:
    """A function ``leaves -> pytree`` for the fixed structure `tree`: one generated
    expression (``({'b': L[0], 'w': L[1]}, L[2])``), several times faster than
    :func:`unflatten` on every call of a compiled function. Dict keys that are not plain
    str/int/float/bool fall back to :func:`unflatten`.

    Example::

        >>> unflattener(flatten({"w": 1, "b": (2, 3)})[1])([10, 20, 30])
        {'b': (10, 20), 'w': 30}
    """
    counter = itertools.count()

    def expr(t: TreeDef) -> str | None:
        if t.kind == "leaf":
            return f"L[{next(counter)}]"
        if t.kind == "none":
            return "None"
        parts = [expr(c) for c in t.children]
        if None in parts:
            return None
        if t.kind == "tuple":
            return "(" + "".join(f"{p}, " for p in parts) + ")"
        if t.kind == "list":
            return "[" + ", ".join(parts) + "]"  # type: ignore[arg-type]
        if not all(type(k) in (str, int, float, bool) for k in t.keys):
            return None
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(t.keys, parts)) + "}"

    body = expr(tree)
    if body is None:
        return lambda leaves: unflatten(tree, leaves)
    return eval(f"lambda L: {body}", {})  # noqa: S307 - generated from the treedef only


def _unflatten(tree: TreeDef, it: Any) -> Any:
    kind = tree.kind
    if kind == "leaf":
        return next(it)
    if kind == "none":
        return None
    items = [_unflatten(c, it) for c in tree.children]
    if kind == "tuple":
        return tuple(items)
    if kind == "list":
        return items
    return dict(zip(tree.keys, items))


def tree_map(fn: Any, tree: Any, *rest: Any) -> Any:
    """Apply `fn` leaf-wise to one or more pytrees of the same structure.

    Example::

        >>> tree_map(lambda a, b: a + b, {"w": 1}, {"w": 2})
        {'w': 3}
    """
    leaves, td = flatten(tree)
    others = []
    for r in rest:
        rl, rtd = flatten(r)
        if rtd != td:
            raise ValueError("tree_map: pytrees have different structures")
        others.append(rl)
    return unflatten(td, [fn(*xs) for xs in zip(leaves, *others)])


def named_leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path: ``{"encoder": {"weight": w}} -> {"encoder.weight": w}``."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for k in sorted(tree):
            out.update(named_leaves(tree[k], f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(named_leaves(v, f"{prefix}{i}."))
    elif tree is not None:
        out[prefix[:-1]] = tree
    return out
