"""Minimal pytrees: nested tuples, lists and dicts (sorted keys) of leaves.

Example::

    >>> leaves, tree = flatten({"b": 1, "a": (2, 3)})
    >>> leaves
    [2, 3, 1]
    >>> unflatten(tree, [20, 30, 10])
    {'a': (20, 30), 'b': 10}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TreeDef:
    """The structure of a pytree: ``kind`` is 'leaf', 'tuple', 'list', 'dict' or 'none'."""

    kind: str
    children: tuple[TreeDef, ...] = ()
    keys: tuple[Any, ...] = ()

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)


LEAF = TreeDef("leaf")


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    if isinstance(tree, tuple) and not hasattr(tree, "_fields"):
        return TreeDef("tuple", tuple(_flatten(t, leaves) for t in tree))
    if isinstance(tree, list):
        return TreeDef("list", tuple(_flatten(t, leaves) for t in tree))
    if isinstance(tree, dict):
        keys = tuple(sorted(tree))
        return TreeDef("dict", tuple(_flatten(tree[k], leaves) for k in keys), keys)
    if tree is None:
        return TreeDef("none")
    leaves.append(tree)
    return LEAF


def unflatten(tree: TreeDef, leaves: list[Any]) -> Any:
    it = iter(leaves)
    out = _unflatten(tree, it)
    return out


def _unflatten(tree: TreeDef, it: Any) -> Any:
    if tree.kind == "leaf":
        return next(it)
    if tree.kind == "none":
        return None
    items = [_unflatten(c, it) for c in tree.children]
    if tree.kind == "tuple":
        return tuple(items)
    if tree.kind == "list":
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
