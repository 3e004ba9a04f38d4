"""``@record``: the subset of :func:`dataclasses.dataclass` Syntonic uses, cheaper to create.

On Python 3.11, ``@dataclass(frozen=True, slots=True)`` compiles six generated methods
from source for every class (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__``, ``__delattr__``): 0.6-1.1 ms a class on the 2-core CI machine, about
40 ms of a cold process's first compile for the 37 classes of the compiler. A record
compiles only its ``__init__`` (keyword defaults and factories as a dataclass has them);
``__eq__``, ``__hash__``, ``__repr__`` and the frozen guards are shared functions over an
``operator.attrgetter`` of the fields.

Same behaviour as the dataclass for what is supported: fields are the class's annotations
in order, a plain default or a :func:`dataclasses.field` (``default``,
``default_factory``, ``repr``, ``compare``); ``eq`` compares instances of exactly the
same class field by field (``NotImplemented`` otherwise); a frozen record with ``eq`` is
hashable (``hash`` of the compared fields), a mutable one with ``eq`` is not, and
``eq=False`` keeps identity; ``frozen`` raises :class:`dataclasses.FrozenInstanceError`
on assignment; ``slots`` gives ``__slots__``; ``__post_init__`` runs after ``__init__``;
``__match_args__`` is set. Not supported (use :func:`dataclasses.dataclass`): inheritance
from another record, ``ClassVar``/``InitVar``, ordering, ``dataclasses.fields`` and
``dataclasses.replace`` (use :func:`replace`). Slotted records copy and pickle.

Example::

    @record(frozen=True, slots=True)
    class Load:
        buffer: int
        view: str = "row"

    Load(3) == Load(3, "row")        # True; hash(Load(3)) works; Load(3).buffer = 4 raises
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def record(cls: type[T] | None = None, /, *, frozen: bool = False, slots: bool = False,
           eq: bool = True) -> Any:
    """Make `cls` a record (see the module docstring); use like ``@dataclass(...)``."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen, slots, eq)

    return wrap if cls is None else wrap(cls)


def replace(obj: T, **changes: Any) -> T:
    """A copy of record `obj` with `changes` (like :func:`dataclasses.replace`)."""
    cls = type(obj)
    kwargs = {name: getattr(obj, name) for name in cls.__record_fields__}
    unknown = set(changes) - set(kwargs)
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    kwargs.update(changes)
    return cls(**kwargs)


class _Field:
    __slots__ = ("name", "default", "factory", "repr", "compare")

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.default, self.factory, self.repr, self.compare = value, _MISSING, True, True
        if isinstance(value, dataclasses.Field):
            self.default, self.factory = value.default, value.default_factory
            self.repr, self.compare = value.repr, value.compare


def _build(cls: type[T], frozen: bool, slots: bool, eq: bool) -> type[T]:
    body = cls.__dict__
    names = list(body.get("__annotations__", {}))
    fields = [_Field(n, body.get(n, _MISSING)) for n in names]
    ns = {k: v for k, v in body.items() if k not in ("__dict__", "__weakref__")}
    for f in fields:
        ns.pop(f.name, None)
        if not slots and f.default is not _MISSING:
            ns[f.name] = f.default  # a dataclass keeps plain defaults as class attributes
    ns["__init__"] = _init(cls, fields, frozen, "__post_init__" in body)
    ns["__repr__"] = _repr([f.name for f in fields if f.repr])
    ns["__match_args__"] = tuple(names)
    ns["__record_fields__"] = tuple(names)
    if eq:
        key = _getter([f.name for f in fields if f.compare])
        ns["__eq__"] = _eq(key)
        ns["__hash__"] = _hash(key) if frozen else None
    if frozen:
        ns["__setattr__"], ns["__delattr__"] = _frozen_setattr, _frozen_delattr
    if slots:
        ns["__slots__"] = tuple(names)
        ns["__getstate__"], ns["__setstate__"] = _getstate, _setstate  # copy and pickle
    new = type(cls)(cls.__name__, cls.__bases__, ns)
    new.__qualname__ = cls.__qualname__
    return new


def _init(cls: type, fields: list[_Field], frozen: bool, post: bool) -> Callable[..., None]:
    """The one compiled method: a keyword-compatible ``__init__`` like the dataclass's."""
    params, lines = [], []
    env: dict[str, Any] = {"__set": object.__setattr__}
    for f in fields:
        if f.factory is not _MISSING:
            env[f"__f_{f.name}"] = f.factory
            params.append(f"{f.name}=__missing")
            value = f"__f_{f.name}() if {f.name} is __missing else {f.name}"
        elif f.default is not _MISSING:
            env[f"__d_{f.name}"] = f.default
            params.append(f"{f.name}=__d_{f.name}")
            value = f.name
        else:
            if params and "=" in params[-1]:
                raise TypeError(f"{cls.__name__}: non-default field {f.name!r} follows a "
                                "default field")
            params.append(f.name)
            value = f.name
        lines.append(f"__set(self, {f.name!r}, {value})" if frozen
                     else f"self.{f.name} = {value}")
    if post:
        lines.append("self.__post_init__()")
    env["__missing"] = _MISSING
    src = (f"def __init__(self, {', '.join(params)}):\n "
           + ("\n ".join(lines) or "pass") + "\n")
    exec(compile(src, f"<record {cls.__qualname__}>", "exec"), env)  # noqa: S102
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


def _eq(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _repr(names: list[str]) -> Callable[[Any], str]:
    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, n) for n in self.__record_fields__]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self.__record_fields__, state):
        object.__setattr__(self, name, value)


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
