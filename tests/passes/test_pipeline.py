"""The pipeline table, verification between passes, stages, dumps and configuration."""

from __future__ import annotations

import inspect

import pytest

import syntonic as sn
from syntonic.config import Config
from syntonic.ir import Graph, parse, verify
from syntonic.passes import PASS_NAMES, PIPELINE, PassError, run_pipeline
from syntonic.runtime.lowered import GRAPH_STAGES
from tests.passes.reference_functions import CASES, dhsr, harmonize_rows


def test_pipeline_is_an_ordered_table_of_named_passes():
    assert PASS_NAMES == ("decompose", "canonicalize", "fold", "layout", "cse", "dce")
    for name, fn in PIPELINE:
        params = list(inspect.signature(fn).parameters)
        assert len(params) == 1, name
        assert fn.__doc__ and "Guarantees" in fn.__doc__, name


def test_stages_are_traced_each_pass_optimized_kernels():
    low = dhsr.lower(sn.spec("f32[1,248]"))
    # graph stages, the kernel IR, then the CPU backend's stages
    assert low.stages == ["traced", *PASS_NAMES, "optimized", "kernels", "llvm", "asm"]
    assert tuple(low.graphs) == GRAPH_STAGES
    assert "dhsr_cycle" in low.text("traced")
    assert "dhsr_cycle" not in low.text("decompose")
    assert low.text("kernels").startswith("program @dhsr")
    assert low.text("optimized") == low.text("dce")


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_graph_stage_reparses_verifies_and_prints_identically(name):
    fn, specs, _, _ = CASES[name]
    low = fn.lower(*[sn.spec(s) for s in specs[:3]])
    for stage in GRAPH_STAGES:
        text = low.text(stage)
        again = verify(parse(text))
        assert again.text() == text, stage


def test_verification_between_passes_names_the_broken_pass():
    def drop_first_op(g: Graph) -> Graph:
        return Graph(g.name, g.params, g.ops[1:], g.outputs, g.loc)

    g = harmonize_rows.trace(sn.spec("f32[2,8]"))
    with pytest.raises(PassError, match="pass `broken`"):
        run_pipeline(g, [*PIPELINE, ("broken", drop_first_op)])
    stages = run_pipeline(g, [("broken", drop_first_op)], check=False)
    assert stages[-1].name == "broken"


def test_dump_dir_writes_one_file_per_stage(tmp_path):
    with sn.config.override(dump_dir=str(tmp_path)):
        low = harmonize_rows.lower(sn.spec("f32[4,8]"))
    (folder,) = tmp_path.iterdir()
    files = sorted(folder.iterdir())
    assert [f.name.split("-", 1)[1] for f in files] == [f"{s}.txt" for s in low.stages]
    for f, stage in zip(files, low.stages):
        assert f.read_text() == low.text(stage)
        if stage in GRAPH_STAGES:
            verify(parse(f.read_text()))


def test_no_dumps_without_the_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with sn.config.override(dump_dir=None):
        harmonize_rows.lower(sn.spec("f32[4,8]"))
    assert list(tmp_path.iterdir()) == []


def test_explain_setting_prints_the_report_when_lowering(capsys):
    with sn.config.override(explain=True):
        harmonize_rows.lower(sn.spec("f32[4,8]"))
    err = capsys.readouterr().err
    assert "explain @harmonize_rows" in err and "1 kernel" in err
    harmonize_rows.lower(sn.spec("f32[4,8]"))
    assert capsys.readouterr().err == ""


def test_config_reads_the_environment_once_and_overrides_nest():
    env = {"SYNTONIC_DUMP": "/tmp/d", "SYNTONIC_EXPLAIN": "1", "SYNTONIC_VERIFY": "0",
           "SYNTONIC_FOLD_LIMIT": "10", "SYNTONIC_MAX_KERNEL_OPS": "7"}
    cfg = Config.from_env(env)
    assert (cfg.dump_dir, cfg.explain, cfg.verify, cfg.fold_limit, cfg.max_kernel_ops) == \
        ("/tmp/d", True, False, 10, 7)
    assert Config.from_env({}) == Config()
    assert Config.from_env({"SYNTONIC_EXPLAIN": "off"}).explain is False
    with pytest.raises(sn.SyntonicError, match="not an integer"):
        Config.from_env({"SYNTONIC_FOLD_LIMIT": "many"})
    before = sn.config.current()
    with sn.config.override(explain=True) as outer:
        assert outer.explain and sn.config.current().explain
        with sn.config.override(fold_limit=3):
            assert sn.config.current().fold_limit == 3 and sn.config.current().explain
        assert sn.config.current().fold_limit == before.fold_limit
    assert sn.config.current() == before
    with pytest.raises(sn.SyntonicError, match="unknown config setting"):
        with sn.config.override(dumps="x"):
            pass
    hash(sn.config.current())  # frozen: usable in cache keys


def test_passes_do_not_read_the_environment():
    from pathlib import Path

    root = Path(sn.__file__).parent
    for package in ("passes", "lower"):
        for path in (root / package).glob("*.py"):
            assert "os.environ" not in path.read_text(), path


def test_lowered_errors_and_extra_stages():
    low = harmonize_rows.lower(sn.spec("f32[4,8]"))
    with pytest.raises(sn.SyntonicError, match="unknown stage 'cuda'"):
        low.text("cuda")
    calls = []
    low.add_stage("cuda", lambda: calls.append(1) or "// cuda text")
    assert low.stages[-1] == "cuda"
    assert low.text("cuda") == "// cuda text" and low.text("cuda") and calls == [1]
    with pytest.raises(sn.SyntonicError):
        low.add_stage("llvm", lambda: "")  # the CPU backend's stage exists already
    with pytest.raises(sn.SyntonicError):
        low.add_stage("kernels", lambda: "")
    with pytest.raises(sn.SyntonicError, match="not a graph stage"):
        low.graph("kernels")
    assert "1 kernel(s)" in repr(low)
