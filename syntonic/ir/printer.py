"""The text form of a Graph (MLIR-like). ``parse(print_graph(g))`` prints identically.

Canonical naming: parameters keep their hint (made unique and safe), op results are
numbered ``%0, %1, ...`` in program order. Attributes print in declared order and are
omitted when equal to their default. Each op line may end with ``loc("file":line)``.

Example::

    func @f(%x: f32[4]) -> (f32[]) loc("demo.py":3) {
      %0 = syntony %x : f32[] loc("demo.py":4)
      return %0
    }
"""

from __future__ import annotations

import hashlib
import json
import re

from syntonic.ir.attrs import TensorValue
from syntonic.ir.graph import Graph, Location, Op, Value
from syntonic.ir.registry import get_op

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def format_loc(loc: Location | None) -> str:
    return "" if loc is None else f" loc({json.dumps(loc.file)}:{loc.line})"


DIGEST_MIN = 64  # key text: constants of more elements print as a digest of their bytes


def format_attrs(op: Op, digest: bool = False) -> str:
    specs = get_op(op.name).attr_specs
    parts = []
    for name, value in op.attrs:
        spec = specs[name]
        if not spec.required and _equal_default(value, spec.default):
            continue
        if digest and isinstance(value, TensorValue) and value.array.size > DIGEST_MIN:
            parts.append(f"{name}=dense<sha256:{hashlib.sha256(value.array).hexdigest()}>")
            continue
        parts.append(f"{name}={spec.kind.format(value)}")
    return " {" + ", ".join(parts) + "}" if parts else ""


def _equal_default(value: object, default: object) -> bool:
    # `is` first: nan defaults and enum members compare by identity.
    return value is default or (type(value) is type(default) and value == default)


class Namer:
    """Assigns canonical text names to values."""

    def __init__(self) -> None:
        self.names: dict[Value, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def param(self, v: Value) -> str:
        base = _SAFE.sub("_", v.hint or "arg") or "arg"
        if base[0].isdigit():
            base = "a" + base
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        self.names[v] = "%" + name
        return self.names[v]

    def result(self, v: Value) -> str:
        self.names[v] = f"%{self.counter}"
        self.counter += 1
        return self.names[v]

    def __getitem__(self, v: Value) -> str:
        try:
            return self.names[v]
        except KeyError:
            return f"%<undefined {v!r}>"


def name_op(op: Op, namer: Namer) -> None:
    """Name op's results and its regions' values exactly as :func:`format_op` would,
    without formatting anything (constants can be huge)."""
    for r in op.results:
        namer.result(r)
    for region in op.regions:
        for p in region.params:
            namer.param(p)
        for inner in region.ops:
            name_op(inner, namer)


def format_op(op: Op, namer: Namer, locs: bool = True, indent: str = "  ",
              digest: bool = False) -> str:
    """One op as text; an op with regions spans several lines (regions indented)."""
    operands = ", ".join(namer[v] for v in op.operands)
    results = ", ".join(namer.result(r) for r in op.results)
    attrs = format_attrs(op, digest)
    region_lines: list[str] = []
    for name, region in zip(get_op(op.name).regions, op.regions):
        region_lines += _format_region(name, region, namer, locs, indent + "  ", digest)
    types = ", ".join(str(r.type) for r in op.results)
    text = f"{results} = {op.name}" if op.results else op.name
    if operands:
        text += " " + operands
    text += attrs + f" : {types}"
    if region_lines:
        text += " {\n" + "\n".join(region_lines) + "\n" + indent + "}"
    return text + (format_loc(op.loc) if locs else "")


def _format_region(name: str, g: Graph, namer: Namer, locs: bool, indent: str,
                   digest: bool) -> list[str]:
    params = ", ".join(f"{namer.param(p)}: {p.type}" for p in g.params)
    lines = [f"{indent}{name}({params}) {{"]
    lines += _format_body(g, namer, locs, indent + "  ", digest)
    lines.append(f"{indent}}}")
    return lines


def _format_body(g: Graph, namer: Namer, locs: bool, indent: str,
                 digest: bool = False) -> list[str]:
    lines = [indent + format_op(op, namer, locs, indent, digest) for op in g.ops]
    ret = f"{indent}return"
    if g.outputs:
        ret += " " + ", ".join(namer[v] for v in g.outputs)
    lines.append(ret)
    return lines


def print_graph(g: Graph, locs: bool = True, digest: bool = False) -> str:
    """The text form of `g`. ``digest=True`` gives a key text instead (not parseable):
    constants of more than DIGEST_MIN elements print as the SHA-256 of their bytes, so a
    compile key costs a hash, not the formatting of a large constant."""
    namer = Namer()
    params = ", ".join(f"{namer.param(p)}: {p.type}" for p in g.params)
    outs = ", ".join(str(v.type) for v in g.outputs)
    name = _SAFE.sub("_", g.name) or "f"
    if name[0].isdigit():  # the grammar's @name starts with a letter or '_'
        name = "f" + name
    header = f"func @{name}({params}) -> ({outs})"
    if locs:
        header += format_loc(g.loc)
    lines = [header + " {"]
    lines += _format_body(g, namer, locs, "  ", digest)
    lines.append("}")
    return "\n".join(lines) + "\n"


def op_text(op: Op, g: Graph | None = None) -> str:
    """One op as text, for error messages (operand names from `g` when given)."""
    namer = Namer()
    if g is not None:
        for p in g.params:
            namer.param(p)
        for other in g.ops:
            if other is op:
                break
            for r in other.results:
                namer.result(r)
    else:
        for v in op.operands:
            namer.names[v] = f"%<{v.type}>"
    return format_op(op, namer)
