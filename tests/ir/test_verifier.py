"""verify() rejects malformed graphs with an IRError naming the op and its file:line.

Malformed graphs cannot come out of the Builder or the parser, so they are assembled
here from the frozen dataclasses directly, the way a buggy pass would produce them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings

from syntonic.ir import Builder, Graph, IRError, Location, Op, TensorType, Value, verify
from syntonic.ir.attrs import TensorValue
from tests.strategies import graphs, ir_settings

F4 = TensorType.parse("f32[4]")
LOC = Location("model.py", 12)


def _graph(*, loc: Location | None = LOC) -> tuple[Graph, Value, list[Op]]:
    b = Builder("step")
    x = b.param(F4, "x")
    b.add("exp", [x], loc=Location("model.py", 10))
    b.add("harmonize", [b.ops[0].result], {"strength": 0.5}, loc=loc)
    b.add("syntony", [b.ops[1].result], loc=Location("model.py", 14))
    g = b.build([b.ops[2].result, b.ops[1].result])
    return g, x, list(g.ops)


def _replace(g: Graph, ops: list[Op], outputs: tuple[Value, ...] | None = None) -> Graph:
    return Graph(g.name, g.params, tuple(ops), g.outputs if outputs is None else outputs, g.loc)


def _message(g: Graph) -> str:
    with pytest.raises(IRError) as info:
        verify(g)
    return str(info.value)


def test_valid_graph_passes_and_is_returned() -> None:
    g, _, _ = _graph()
    assert verify(g) is g


@settings(ir_settings, max_examples=100)
@given(g=graphs())
def test_generated_graphs_verify(g: Graph) -> None:
    assert verify(g) is g


@pytest.mark.parametrize("loc", [LOC, None], ids=["with-loc", "no-loc"])
def test_use_before_def(loc: Location | None) -> None:
    g, _, ops = _graph(loc=loc)
    ops[0], ops[1] = ops[1], ops[0]  # harmonize now reads exp's result before exp runs
    message = _message(_replace(g, ops))
    assert "harmonize" in message and "before it is defined" in message
    assert ("model.py:12" in message) == (loc is not None)


def test_operand_from_another_graph() -> None:
    g, _, ops = _graph()
    stranger = Value(F4, "y")
    ops[1] = dataclasses.replace(ops[1], operands=(stranger,))
    message = _message(_replace(g, ops))
    assert "harmonize" in message and "model.py:12" in message


@pytest.mark.parametrize("loc", [LOC, None], ids=["with-loc", "no-loc"])
def test_value_defined_twice(loc: Location | None) -> None:
    g, _, ops = _graph(loc=loc)
    # A second op that redefines harmonize's result.
    again = dataclasses.replace(ops[1], results=(ops[0].result,))
    message = _message(_replace(g, [ops[0], again, ops[2]]))
    assert "harmonize" in message and "defined twice" in message
    assert ("model.py:12" in message) == (loc is not None)


def test_result_that_is_a_parameter_is_defined_twice() -> None:
    g, x, ops = _graph()
    ops[1] = dataclasses.replace(ops[1], results=(x,))
    message = _message(_replace(g, ops))
    assert "defined twice" in message and "model.py:12" in message


@pytest.mark.parametrize("loc", [LOC, None], ids=["with-loc", "no-loc"])
def test_wrong_result_type(loc: Location | None) -> None:
    g, _, ops = _graph(loc=loc)
    wrong = Value(TensorType.parse("f64[4]"))
    ops[1] = dataclasses.replace(ops[1], results=(wrong,))
    message = _message(_replace(g, ops))
    assert "harmonize" in message and "f64[4]" in message and "f32[4]" in message
    assert ("model.py:12" in message) == (loc is not None)


@pytest.mark.parametrize(
    "attrs, words",
    [
        ((("strength", "strong"), ("axis", -1)), ["strength", "expected a number"]),
        ((("strength", 0.5), ("axis", 3)), ["axis 3", "out of range"]),
        ((("strength", 0.5), ("axis", -1), ("gain", 2.0)), ["no attribute", "gain"]),
        ((("axis", -1), ("strength", 0.5)), ["canonical order"]),
        ((("strength", 0.5),), ["canonical order"]),  # the axis default was not filled in
        ((("strength", True), ("axis", -1)), ["strength"]),
    ],
    ids=["type", "range", "unknown", "order", "missing", "bool-for-float"],
)
def test_bad_attributes(attrs: tuple[tuple[str, object], ...], words: list[str]) -> None:
    g, _, ops = _graph()
    ops[1] = dataclasses.replace(ops[1], attrs=attrs)
    message = _message(_replace(g, ops))
    assert "harmonize" in message and "model.py:12" in message
    for word in words:
        assert word in message, message


def test_missing_required_attribute() -> None:
    b = Builder("f")
    x = b.param(F4, "x")
    y = b.add("broadcast", [x], {"shape": [2, 4]}, loc=LOC)
    g = b.build([y])
    broken = _replace(g, [dataclasses.replace(g.ops[0], attrs=())])
    message = _message(broken)
    assert "broadcast" in message and "shape" in message and "model.py:12" in message


def test_constant_whose_value_does_not_match_its_type() -> None:
    b = Builder("f")
    c = b.add("constant", [], {"value": np.zeros(3, np.float32)}, loc=LOC)
    g = b.build([c])
    op = dataclasses.replace(g.ops[0], attrs=(("value", TensorValue(np.zeros(4, np.float32))),))
    message = _message(_replace(g, [op]))
    assert "constant" in message and "model.py:12" in message


def test_wrong_operand_count() -> None:
    g, x, ops = _graph()
    ops[0] = dataclasses.replace(ops[0], operands=(x, x))
    message = _message(_replace(g, ops))
    assert "exp" in message and "model.py:10" in message


def test_unknown_op() -> None:
    g, _, ops = _graph()
    ops[2] = dataclasses.replace(ops[2], name="resonate")
    message = _message(_replace(g, ops))
    assert "resonate" in message and "model.py:14" in message


@pytest.mark.parametrize("which", [0, 1])
def test_output_not_defined(which: int) -> None:
    g, _, ops = _graph()
    stray = Value(TensorType.parse("f32[]"))
    outputs = list(g.outputs)
    outputs[which] = stray
    message = _message(_replace(g, ops, tuple(outputs)))
    assert f"output {which}" in message and "not defined" in message and "@step" in message


def test_output_of_a_dropped_op() -> None:
    g, _, ops = _graph()
    message = _message(_replace(g, ops[:2]))  # syntony's result is still returned
    assert "output 0" in message


def test_parameter_listed_twice() -> None:
    g, x, ops = _graph()
    message = _message(Graph(g.name, (x, x), g.ops, g.outputs, g.loc))
    assert "parameter" in message and "twice" in message


def test_message_shows_the_op_as_ir_text() -> None:
    g, _, ops = _graph()
    wrong = Value(TensorType.parse("f64[4]"))
    ops[1] = dataclasses.replace(ops[1], results=(wrong,))
    message = _message(_replace(g, ops))
    assert "= harmonize %0 {strength=0.5}" in message


def test_verifying_formats_no_constant_and_names_as_the_printer(monkeypatch) -> None:
    # A loop region full of constants: verify() numbers its values without printing them
    # (printing a 1M-element mask took seconds per pass), and an error after the loop
    # still names values exactly as the printed graph does.
    import syntonic as sn
    from syntonic.ir.attrs import TensorKind

    x = np.ones((2, 300), np.float32)
    g = sn.jit(lambda x: sn.evolve(x, max_recursion=2)).trace(x)
    assert any(op.regions for op in g.ops)
    formatted: list[int] = []
    real = TensorKind._format
    monkeypatch.setattr(TensorKind, "_format",
                        staticmethod(lambda arr: formatted.append(arr.size) or real(arr)))
    assert verify(g) is g
    assert formatted == []
    last = g.ops[-1]
    wrong = Value(TensorType(last.result.type.dtype, (7,)))
    bad = _replace(g, [*g.ops[:-1], dataclasses.replace(last, results=(wrong,))])
    line = [t for t in g.text().splitlines() if t.startswith("  %")][-1]  # the last op
    assert f"= {last.name} " in line
    assert line.split(" : ")[0].strip() in _message(bad)


def test_a_tensor_constant_is_formatted_once() -> None:
    from syntonic.ir.attrs import TensorKind

    value = TensorValue(np.array([0.1, -0.0, np.nan, np.inf, 3.0], np.float32))
    text = TensorKind().format(value)
    assert text == "dense<[0.10000000149011612,-0.0,nan,inf,3.0]>"
    assert value._text == [text] and TensorKind().format(value) is text
    assert TensorKind().format(TensorValue(np.array([True, True]))) == "dense<true>"
    assert TensorKind().format(TensorValue(np.array([3, -4], np.int64))) == "dense<[3,-4]>"
