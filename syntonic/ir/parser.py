"""Parse the IR text form (``grammar.lark``) back into a verified Graph.

Every failure, syntactic or semantic, raises :class:`IRError` with ``line:column``.

Example::

    >>> g = parse('func @f(%x: f32[4]) -> (f32[4]) {\\n  %0 = exp %x : f32[4]\\n  return %0\\n}')
    >>> [op.name for op in g.ops]
    ['exp']
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from syntonic.ir.attrs import Dense, Ident
from syntonic.ir.errors import IRError
from syntonic.ir.graph import Builder, Graph, Location, Value
from syntonic.ir.registry import get_op
from syntonic.ir.types import TensorType

_MAX_TEXT = 256 * 1024 * 1024


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(text: str, source: str = "<text>") -> Graph:
    """Parse one ``func`` into a Graph; raises IRError with ``source:line:column``."""
    if not isinstance(text, str):
        raise IRError(f"parse expects IR text (str), got {type(text).__name__}")
    if len(text) > _MAX_TEXT:
        raise IRError(f"{source}: IR text of {len(text)} characters is too large to parse")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise IRError(f"{source}:{exc.line}:{exc.column}: {_describe(exc, text)}") from None
    except LarkError as exc:  # pragma: no cover - lark's other errors are grammar bugs
        raise IRError(f"{source}:1:1: cannot parse IR text: {exc}") from None
    try:
        return _Reader(source).func(tree.children[0])
    except _At as exc:
        raise IRError(f"{source}:{exc.line}:{exc.column}: {exc.message}") from None
    except RecursionError:
        raise IRError(f"{source}:1:1: IR text is nested too deeply") from None


def _describe(exc: UnexpectedInput, text: str) -> str:
    tok = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or getattr(tok, "type", None) == "$END":
        return "unexpected end of text (missing closing '}' or 'return'?)"
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "end of text"
        return f"unexpected character {ch!r}"
    expected = sorted(getattr(exc, "expected", ()) or ())
    what = f"unexpected {tok!r}" if tok is not None else "unexpected input"
    if expected:
        what += f" (expected one of: {', '.join(expected[:8])})"
    return what


class _At(Exception):
    """A semantic error at a tree position; turned into IRError by parse()."""

    def __init__(self, node: Tree | Token, message: str) -> None:
        meta = node if isinstance(node, Token) else getattr(node, "meta", None)
        self.line = getattr(meta, "line", 1) or 1
        self.column = getattr(meta, "column", 1) or 1
        self.message = message


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.env: dict[str, Value] = {}

    def func(self, node: Tree) -> Graph:
        name_tok, *rest = node.children
        params = [c for c in rest if isinstance(c, Tree) and c.data == "param"]
        types = [c for c in rest if isinstance(c, Token) and c.type == "TYPE"]
        loc_nodes = [c for c in rest if isinstance(c, Tree) and c.data == "loc"]
        stmts = [c for c in rest if isinstance(c, Tree) and c.data == "stmt"]
        ret = next(c for c in rest if isinstance(c, Tree) and c.data == "ret")
        loc = self.loc(loc_nodes[0]) if loc_nodes else None
        b = Builder(name_tok[1:], loc)
        for p in params:
            vtok, ttok = p.children
            self.define(vtok, b.param(self.type(ttok), vtok[1:]))
        for s in stmts:
            self.stmt(b, s)
        outputs = [self.use(t) for t in ret.children if t is not None]
        declared = [self.type(t) for t in types]
        actual = [v.type for v in outputs]
        if declared != actual:
            raise _At(
                ret,
                f"return types ({', '.join(map(str, actual))}) differ from the declared "
                f"({', '.join(map(str, declared))})",
            )
        return b.build(outputs)

    def region(self, node: Tree) -> Graph:
        """A closed region: a fresh scope whose only inputs are its parameters."""
        name_tok, *rest = node.children
        inner = _Reader(self.source)
        b = Builder(str(name_tok))
        for p in rest:
            if isinstance(p, Tree) and p.data == "param":
                vtok, ttok = p.children
                inner.define(vtok, b.param(inner.type(ttok), vtok[1:]))
            elif isinstance(p, Tree) and p.data == "stmt":
                inner.stmt(b, p)
            elif isinstance(p, Tree) and p.data == "ret":
                outputs = [inner.use(t) for t in p.children if t is not None]
        return b.build(outputs)

    def stmt(self, b: Builder, node: Tree) -> None:
        results: list[Token] = []
        operands: list[Token] = []
        types: list[TensorType] = []
        attrs: dict[str, Any] = {}
        regions: list[Graph] = []
        region_names: list[Token] = []
        loc = None
        name = None
        for c in node.children:
            if c is None:
                continue
            if isinstance(c, Token) and c.type == "VALUE":
                (operands if name is not None else results).append(c)
            elif isinstance(c, Token) and c.type == "IDENT":
                name = c
            elif isinstance(c, Token) and c.type == "TYPE":
                types.append(self.type(c))
            elif c.data == "attrdict":
                attrs = self.attrdict(c)
            elif c.data == "regions":
                for r in c.children:
                    region_names.append(r.children[0])
                    regions.append(self.region(r))
            elif c.data == "loc":
                loc = self.loc(c)
        try:
            opdef = get_op(str(name))
        except IRError as exc:
            raise _At(name, str(exc)) from None
        got = tuple(str(t) for t in region_names)
        if got != opdef.regions:
            want = ", ".join(opdef.regions) or "no regions"
            raise _At(node, f"{name} takes regions ({want}), got ({', '.join(got)})")
        if len(results) != len(types):
            raise _At(node, f"{len(results)} results but {len(types)} result types")
        args = [self.use(t) for t in operands]
        try:
            op = b.add_op(str(name), args, attrs, loc, tuple(types), tuple(regions))
        except IRError as exc:
            raise _At(node, f"{name}: {exc}") from None
        for tok, v in zip(results, op.results):
            self.define(tok, v)

    def type(self, tok: Token) -> TensorType:
        try:
            return TensorType.parse(str(tok).replace(" ", ""))
        except IRError as exc:
            raise _At(tok, str(exc)) from None

    def define(self, tok: Token, v: Value) -> None:
        if str(tok) in self.env:
            raise _At(tok, f"value {tok} is defined twice (SSA values are defined once)")
        self.env[str(tok)] = v

    def use(self, tok: Token) -> Value:
        try:
            return self.env[str(tok)]
        except KeyError:
            raise _At(tok, f"value {tok} is used before it is defined") from None

    def loc(self, node: Tree) -> Location:
        s, line = node.children
        try:
            return Location(json.loads(s), int(line))
        except ValueError as exc:
            raise _At(s, f"bad loc string: {exc}") from None

    def attrdict(self, node: Tree) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in node.children:
            if a is None:
                continue
            key, val = a.children
            if str(key) in out:
                raise _At(key, f"attribute {key} given twice")
            out[str(key)] = self.value(val)
        return out

    def value(self, node: Tree) -> Any:
        kind = node.data
        if kind == "number":
            return _number(node.children[0])
        if kind == "true":
            return True
        if kind == "false":
            return False
        if kind == "none":
            return None
        if kind == "ident":
            name = str(node.children[0])
            return Ident(name)
        if kind == "list":
            return [self.value(c) for c in node.children if c is not None]
        if kind == "dense":
            inner = self.value(node.children[0])
            if isinstance(inner, list) and any(isinstance(v, list) for v in inner):
                raise _At(node, "dense<...> takes a flat list in row-major order")
            return Dense(inner)
        raise _At(node, f"unexpected attribute value {kind}")  # pragma: no cover


def _number(tok: Token) -> int | float:
    text = str(tok)
    if any(c in text for c in ".eEin"):  # '.', exponent, inf, nan
        return float(text)
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise _At(tok, f"the integer {text[:24]}... has too many digits") from None
