"""Every registered op runs in the reference interpreter and agrees with its type rule.

Parametrized over ``all_ops()``: an op added to the registry is exercised automatically
(its generator lives in tests/strategies.py). Each op's reference rule is evaluated
directly, so a rule whose raw result has the wrong shape or kind fails here even though
the interpreter would cast it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir import Trait, all_ops, get_op, interpret, verify
from syntonic.ir.graph import Graph, Value
from tests.strategies import (
    assert_same_results,
    graphs,
    inputs_for,
    ir_settings,
    op_graphs,
    same_bits,
)

OPS = sorted(all_ops())


def test_registry_entries_are_well_formed() -> None:
    for name, opdef in all_ops().items():
        assert opdef.name == name
        lo, hi = opdef.arity
        assert 0 <= lo <= hi
        assert opdef.doc, f"{name} has no doc line"
        assert get_op(name) is opdef
        if opdef.has(Trait.SOURCE):
            assert opdef.arity == (0, 0), name
        if opdef.has(Trait.BINARY):
            assert opdef.arity == (2, 2), name
        if opdef.has(Trait.UNARY):
            assert opdef.arity == (1, 1), name
        names = [n for n, _ in opdef.attrs]
        assert len(names) == len(set(names)), f"{name} declares an attribute twice"


def _all_results(g: Graph) -> Graph:
    """`g` returning every op result, so the interpreter checks each of them."""
    outs = tuple(r for op in g.ops for r in op.results)
    return Graph(g.name, g.params, g.ops, outs, g.loc)


def _kind(dtype: np.dtype) -> str:
    return {"b": "bool", "i": "int", "u": "int", "f": "float"}[dtype.kind]


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.parametrize("name", OPS)
@settings(ir_settings, max_examples=12)
@given(data=st.data())
def test_reference_rule_matches_type_rule(name: str, data: st.DataObject) -> None:
    g = verify(data.draw(op_graphs(name)))
    args = data.draw(inputs_for(g))
    env: dict[Value, np.ndarray] = dict(zip(g.params, args))
    for op in g.ops:
        opdef = get_op(op.name)
        operands = [env[v] for v in op.operands]
        with np.errstate(all="ignore"):
            raw = opdef.evaluate(operands, dict(op.attrs), op.regions)
        assert len(raw) == len(op.results)
        for out, r in zip(raw, op.results):
            out = np.asarray(out)
            assert out.shape == r.type.shape, f"{op.name}: {out.shape} vs {r.type}"
            if opdef.has(Trait.RESONANT):
                # Resonant reference rules compute in float64 (SPEC-ops.md); the
                # interpreter narrows to the result dtype.
                assert _kind(out.dtype) == _kind(r.type.dtype.np), op.name
            else:
                assert out.dtype == r.type.dtype.np, f"{op.name}: {out.dtype} vs {r.type}"
            with np.errstate(all="ignore"):
                env[r] = out.astype(r.type.dtype.np, copy=False)
        _check_traits(op.name, operands, op, raw)
    got = interpret(_all_results(g), *args)
    for value, array in zip(_all_results(g).outputs, got):
        assert array.dtype == value.type.dtype.np and array.shape == value.type.shape
    assert_same_results(got, [env[v] for v in _all_results(g).outputs])


def _check_traits(name: str, operands: list[np.ndarray], op, raw) -> None:  # noqa: ANN001
    opdef = get_op(name)
    if opdef.has(Trait.ELEMENTWISE):
        for x in operands:
            assert x.shape == op.results[0].type.shape, f"{name} is elementwise"
    if opdef.has(Trait.COMMUTATIVE):
        with np.errstate(all="ignore"):
            swapped = opdef.evaluate(operands[::-1], dict(op.attrs))
        assert same_bits(np.asarray(swapped[0]), np.asarray(raw[0])), f"{name} is commutative"
    if opdef.has(Trait.COMPARISON):
        assert np.asarray(raw[0]).dtype == np.bool_


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@settings(ir_settings, max_examples=150)
@given(data=st.data())
def test_interpreter_ignores_the_callers_numpy_error_state(data: st.DataObject) -> None:
    """Overflow, 0/0 and invalid values are defined IEEE results in the reference
    semantics, so a caller running under ``np.errstate(all="raise")`` (or
    ``np.seterr``) must get the same arrays, not a FloatingPointError."""
    g = data.draw(graphs())
    args = data.draw(inputs_for(g))
    with np.errstate(all="ignore"):
        want = interpret(g, *args)
    with np.errstate(all="raise"):
        got = interpret(g, *args)
    assert_same_results(got, want)
