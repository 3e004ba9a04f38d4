"""Graphviz pictures: dot text with kernels as clusters; render needs the optional extra."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest

import syntonic as sn
from tests.passes.reference_functions import CASES, matmul_prologue


def test_dot_has_one_cluster_per_kernel():
    low = matmul_prologue.lower(sn.spec("f32[4,3]"), sn.spec("f32[3,2]"))
    dot = low.to_dot()
    assert dot.startswith('digraph "matmul_prologue" {') and dot.rstrip().endswith("}")
    assert dot.count("subgraph cluster_k") == len(low.kernels) == 2
    assert "k1_matmul: matmul [4,2]" in dot
    assert dot.count("{") == dot.count("}")
    assert "p0 -> n" in dot and "-> out0" in dot


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_stage_draws(name):
    fn, _, small, _ = CASES[name]
    low = fn.lower(*[sn.spec(s) for s in small])
    for stage in ("traced", "decompose", "optimized", "kernels"):
        dot = low.to_dot(stage)
        bare = re.sub(r'"(\\.|[^"\\])*"', '""', dot)  # braces outside quoted labels
        assert bare.count("{") == bare.count("}")
        assert ("subgraph cluster_k" in dot) == (stage in ("optimized", "kernels"))


def test_quotes_in_locations_are_escaped():
    low = CASES["chain12"][0].lower(sn.spec("f32[4]"))
    assert '\\"' not in low.to_dot() or low.to_dot().count('"') % 2 == 0


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is not None
                    and shutil.which("dot") is not None, reason="graphviz is installed")
def test_render_without_graphviz_is_a_clear_error(tmp_path):
    low = matmul_prologue.lower(sn.spec("f32[4,3]"), sn.spec("f32[3,2]"))
    with pytest.raises(sn.SyntonicError, match="graphviz|Graphviz"):
        low.render(tmp_path / "k.png")


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is None or shutil.which("dot") is None,
                    reason="needs the graphviz package and the dot program")
def test_render_with_graphviz(tmp_path):
    low = matmul_prologue.lower(sn.spec("f32[4,3]"), sn.spec("f32[3,2]"))
    out = low.render(tmp_path / "k.svg")
    assert out.exists() and out.read_text().lstrip().startswith("<")
