"""print -> parse -> print is byte-identical, and the parsed graph means the same thing.

Random valid graphs of every op and dtype (tests/strategies.py), with and without
``loc(...)`` trailers; float attributes and constants must survive the text exactly.
"""

from __future__ import annotations

import math
import struct
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir import Builder, DType, Graph, Location, TensorType, interpret, parse, verify
from syntonic.ir.attrs import TensorValue
from syntonic.ir.registry import all_ops
from tests.strategies import (
    ALL_DTYPES,
    ODD_FILES,
    arrays,
    assert_same_results,
    graphs,
    inputs_for,
    ir_settings,
    locations,
    op_graphs,
    same_bits,
    shapes,
)

OPS = sorted(all_ops())


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _same_attr(a: Any, b: Any) -> bool:
    """Attribute equality that is exact for floats (sign of zero) and NaN-tolerant."""
    if isinstance(a, TensorValue) and isinstance(b, TensorValue):
        return same_bits(a.array, b.array)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or _float_bits(a) == _float_bits(b)
    return type(a) is type(b) and a == b


def assert_same_graph(g: Graph, h: Graph, locs: bool = True) -> None:
    """Structural equality of two graphs, value by value (up to renaming)."""
    assert [p.type for p in g.params] == [p.type for p in h.params]
    assert len(g.ops) == len(h.ops)
    names = dict(zip(g.params, h.params))
    for a, b in zip(g.ops, h.ops):
        assert a.name == b.name
        assert [names[v] for v in a.operands] == list(b.operands), a.name
        assert [n for n, _ in a.attrs] == [n for n, _ in b.attrs], a.name
        for (name, va), (_, vb) in zip(a.attrs, b.attrs):
            assert _same_attr(va, vb), f"{a.name} attribute {name}: {va!r} != {vb!r}"
        assert [r.type for r in a.results] == [r.type for r in b.results]
        assert b.loc == (a.loc if locs else None)
        names.update(zip(a.results, b.results))
    assert [names[v] for v in g.outputs] == list(h.outputs)
    assert h.loc == (g.loc if locs else None)


def _interpret_quietly(g: Graph, args: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interpret(g, *args)


def _check_roundtrip(g: Graph, args: tuple[np.ndarray, ...]) -> None:
    verify(g)
    text = str(g)
    h = parse(text)
    assert str(h) == text
    verify(h)
    assert_same_graph(g, h)

    bare = g.text(locs=False)
    assert ' loc("' not in bare  # (a graph may be named "loc": `func @loc(`)
    h_bare = parse(bare)
    assert h_bare.text(locs=False) == bare
    assert str(h_bare) == bare  # nothing to print: every loc is gone
    assert_same_graph(g, h_bare, locs=False)
    # Dropping the trailers is the only difference between the two forms.
    assert h.text(locs=False) == bare

    assert_same_results(_interpret_quietly(h, args), _interpret_quietly(g, args))


@settings(ir_settings, max_examples=300)
@given(data=st.data())
def test_roundtrip_random_graphs(data: st.DataObject) -> None:
    g = data.draw(graphs())
    _check_roundtrip(g, data.draw(inputs_for(g)))


@pytest.mark.parametrize("name", OPS)
@settings(ir_settings, max_examples=8)
@given(data=st.data())
def test_roundtrip_each_op(name: str, data: st.DataObject) -> None:
    g = data.draw(op_graphs(name))
    _check_roundtrip(g, data.draw(inputs_for(g)))


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@settings(ir_settings, max_examples=25)
@given(data=st.data())
def test_roundtrip_each_dtype(dtype: DType, data: st.DataObject) -> None:
    g = data.draw(graphs(dtypes=[dtype], max_ops=5))
    _check_roundtrip(g, data.draw(inputs_for(g)))


@settings(ir_settings, max_examples=200)
@given(strength=st.floats(), alpha=st.floats())
def test_float_attributes_roundtrip_exactly(strength: float, alpha: float) -> None:
    b = Builder("f")
    x = b.param(TensorType.parse("f64[2,3]"), "x")
    y = b.add("harmonize", [x], {"strength": strength})
    z = b.add("differentiate", [y], {"alpha": alpha, "axis": 0})
    h = parse(str(b.build([z])))
    assert _same_attr(h.ops[0].attr["strength"], strength)
    assert _same_attr(h.ops[1].attr["alpha"], alpha)


@pytest.mark.parametrize("dtype", [DType.f16, DType.f32, DType.f64], ids=str)
@settings(ir_settings, max_examples=100)
@given(data=st.data())
def test_float_constants_roundtrip_bit_exactly(dtype: DType, data: st.DataObject) -> None:
    """Every bit pattern except NaN payloads survives: -0.0, subnormals, max, +-inf."""
    t = TensorType(dtype, data.draw(shapes(0, 2)))
    value = data.draw(arrays(t))
    b = Builder("f")
    g = b.build([b.add("constant", [], {"value": value})])
    text = str(g)
    h = parse(text)
    assert str(h) == text
    assert same_bits(h.ops[0].attr["value"].array, value)


@pytest.mark.parametrize(
    "values",
    [
        [float("nan"), -float("nan")],
        [float("nan"), float("nan"), -float("nan")],
        [-0.0, 0.0],
        [0.0, -0.0, 0.0],
    ],
    ids=["nan,-nan", "nan,nan,-nan", "-0,0", "0,-0,0"],
)
@pytest.mark.parametrize("dtype", [DType.f16, DType.f32, DType.f64], ids=str)
def test_constant_splats_print_stably(values: list[float], dtype: DType) -> None:
    """NaNs of different sign print alike, so they must also be a splat; zeros must not."""
    b = Builder("f")
    g = b.build([b.add("constant", [], {"value": np.array(values, dtype.np)})])
    text = str(g)
    assert str(parse(text)) == text


@pytest.mark.parametrize("file", ODD_FILES)
def test_odd_file_names_roundtrip(file: str) -> None:
    b = Builder("f", Location(file, 1))
    x = b.param(TensorType.parse("f32[3]"), "x")
    y = b.add("exp", [x], loc=Location(file, 7))
    z = b.add("syntony", [y], loc=Location(file + file, 2**63))
    g = b.build([z, y])
    h = parse(str(g))
    assert str(h) == str(g)
    assert h.loc == Location(file, 1)
    assert [op.loc for op in h.ops] == [Location(file, 7), Location(file + file, 2**63)]


@settings(ir_settings, max_examples=100)
@given(loc=locations())
def test_random_locations_roundtrip(loc: Location) -> None:
    b = Builder("f", loc)
    x = b.param(TensorType.parse("f32[]"), "x")
    g = b.build([b.add("neg", [x], loc=loc)])
    h = parse(str(g))
    assert str(h) == str(g)
    assert h.loc == loc and h.ops[0].loc == loc


@pytest.mark.parametrize("name", ["1abc", "9", "", "a-b", "ünï", "f 2", "_0"])
def test_any_function_name_prints_parseably(name: str) -> None:
    b = Builder(name)
    x = b.param(TensorType.parse("i32[2]"), "x")
    g = b.build([x])
    text = str(g)
    assert str(parse(text)) == text


def test_param_names_are_made_unique_and_safe() -> None:
    b = Builder("f")
    hints = ["x", "x", "x_1", "0", "a0", None, "", "é", "%y"]
    params = [b.param(TensorType.parse("f32[]"), h) for h in hints]
    g = b.build(params)
    text = str(g)
    h = parse(text)
    assert str(h) == text
    header = text.splitlines()[0]
    names = [part.split(":")[0].strip() for part in header[header.index("(") + 1 :].split(",")]
    names = names[: len(hints)]
    assert len(set(names)) == len(hints), header


def test_no_outputs_roundtrips() -> None:
    b = Builder("f")
    b.param(TensorType.parse("bool[0,3]"), "x")
    g = b.build([])
    assert "-> ()" in str(g)
    assert str(parse(str(g))) == str(g)


def test_repeated_outputs_roundtrip() -> None:
    b = Builder("f")
    y = b.param(TensorType.parse("i64[]"), "y")
    g = b.build([y, y, y])
    h = parse(str(g))
    assert str(h) == str(g)
    assert h.outputs == (h.params[0],) * 3
