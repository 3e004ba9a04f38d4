"""The graph strategies cover the whole registry, and their dtype claims match the type rules.

A newly registered op without a generator in tests/strategies.py fails here, and so does
a generator whose ``ACCEPTS`` entry disagrees with the op's type rule.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from syntonic.ir import DType, InferError, all_ops, verify
from tests.strategies import ACCEPTS, ALL_DTYPES, GENERATORS, graphs, ir_settings, op_graphs

OPS = sorted(all_ops())


def test_every_registered_op_has_a_generator() -> None:
    missing = sorted(set(all_ops()) - set(GENERATORS))
    assert not missing, f"add graph generators for {missing} to tests/strategies.py"
    assert set(GENERATORS) == set(ACCEPTS)


def test_default_graphs_reach_every_op() -> None:
    """The unrestricted strategy (what most properties draw) produces every op."""
    seen: set[str] = set()
    fixed = settings(ir_settings, database=None, derandomize=True, phases=[Phase.generate])

    @settings(fixed, max_examples=300)
    @given(g=graphs())
    def sweep(g) -> None:  # noqa: ANN001
        seen.update(op.name for op in g.ops)

    sweep()
    # An op the sweep happened to miss must still be reachable by a longer search;
    # find() raises NoSuchExample (failing the test) when it is not.
    for name in sorted(set(all_ops()) - seen):
        found = find(
            graphs(), lambda g, name=name: any(op.name == name for op in g.ops),
            settings=settings(fixed, max_examples=3000),
        )
        seen.update(op.name for op in found.ops)
    assert seen >= set(all_ops())


@pytest.mark.parametrize("name", OPS)
@settings(ir_settings, max_examples=3)
@given(data=st.data())
def test_accepted_dtypes_match_type_rule(name: str, data: st.DataObject) -> None:
    """Each op builds for the dtypes ACCEPTS lists and is rejected (as a dtype error) for
    every other dtype, so the generators really cover "every dtype the op accepts"."""
    for dtype in ALL_DTYPES:
        if dtype in ACCEPTS[name]:
            g = data.draw(op_graphs(name, dtype), label=f"{name} {dtype}")
            verify(g)
            assert any(op.name == name for op in g.ops)
        else:
            with pytest.raises(InferError) as info:
                data.draw(op_graphs(name, dtype), label=f"{name} {dtype}")
            assert info.value.kind == "dtype", str(info.value)


@settings(ir_settings, max_examples=60)
@given(data=st.data())
def test_graphs_respect_op_and_dtype_restrictions(data: st.DataObject) -> None:
    ops = data.draw(st.sets(st.sampled_from(OPS), min_size=1, max_size=5))
    dtypes = data.draw(st.sets(st.sampled_from(ALL_DTYPES), min_size=1, max_size=3))
    if not any(ACCEPTS[name] & dtypes for name in ops):
        with pytest.raises(ValueError):
            data.draw(graphs(ops=ops, dtypes=dtypes))
        return
    g = data.draw(graphs(ops=ops, dtypes=dtypes, max_ops=4))
    verify(g)
    assert {op.name for op in g.ops} <= ops
    allowed = dtypes | {DType.bool}  # comparisons and select conditions are always bool
    if "while" in ops:
        allowed |= {DType.i32}  # generated loops carry an i32 trip counter
    for p in g.params:
        assert p.dtype in allowed
    for op in g.ops:
        for r in op.results:
            assert r.dtype in allowed, op


@settings(ir_settings, max_examples=60)
@given(g=graphs(locs=False))
def test_locs_false_means_no_locations(g) -> None:  # noqa: ANN001
    assert g.loc is None
    assert all(op.loc is None for op in g.ops)
