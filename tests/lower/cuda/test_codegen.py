"""The CUDA code generator without any compiler: coverage, annotations, launch plans."""

from __future__ import annotations

import subprocess
import sys

from syntonic.ir.graph import Location
from syntonic.ir.registry import Trait, all_ops
from syntonic.ir.types import DType
from syntonic.lower.cuda import GridArg, Launch, OpaqueStep, generate
from syntonic.lower.cuda.codegen import RULES, UNSUPPORTED
from syntonic.lower.cuda.plan import FULL_MAX_BLOCKS, BufferArg, ScratchArg
from syntonic.lower.kernel import SourceOp
from tests.lower.cpu import programs as P
from tests.lower.cuda import programs as C
from tests.lower.cuda.cases import all_cases


def test_every_elementwise_op_has_a_rule_or_a_reason() -> None:
    for name, op in all_ops().items():
        if op.has(Trait.ELEMENTWISE):
            assert name in RULES or name in UNSUPPORTED, name


def test_generate_needs_no_cuda_package() -> None:
    code = ("import sys; from syntonic.lower.cuda import generate; "
            "from tests.lower.cpu import programs as P; generate(P.mlp(2, 3, 4), 'x'); "
            "assert not any(m.startswith('cuda') for m in sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernels_are_annotated_with_the_users_file_and_line() -> None:
    src = generate(C.full_normalize(10), "fn").source
    head, _, _ = src.partition('extern "C" __global__ void sn_fn_k0_p0(')
    assert head.rstrip().splitlines()[-1] == "// source: mean (model.py:42), sub (model.py:43)"


def test_odd_file_names_cannot_break_the_comment() -> None:
    prog = P.elementwise("exp", DType.f32, (4,))
    k = prog.kernels[0]
    odd = SourceOp("exp", Location('a\\\nb"\u00e9\ud800.py', 3))
    prog2 = type(prog)(prog.name, prog.buffers, prog.params, prog.outputs,
                       (type(k)(k.name, k.space, k.reduce_axes, k.nodes, k.phases, ops=(odd,)),))
    src = generate(prog2, "odd").source
    line = next(ln for ln in src.splitlines() if ln.startswith("// source: exp"))
    assert line.isascii() and "\\" not in line and "<U+000A>" in line and ":3)" in line
    src.encode("ascii")


def test_full_reduction_phases_become_partial_and_combine_launches() -> None:
    mod = generate(C.full_normalize(1000), "fn")
    stages = [s.stage for s in mod.steps if isinstance(s, Launch)]
    assert stages == ["partial", "combine", "partial", "combine", "partial"]
    for i, s in enumerate(mod.steps):
        if isinstance(s, Launch) and s.stage == "combine":
            assert s.args[-1] == GridArg(i - 1) and s.grid(132) == 1
            assert any(isinstance(a, ScratchArg) for a in s.args)
        if isinstance(s, Launch) and s.stage == "partial":
            assert s.max_blocks == FULL_MAX_BLOCKS
    partials = [sc for sc in mod.scratch if sc.size == FULL_MAX_BLOCKS]
    assert len(partials) == 2 and all(sc.dtype is DType.f64 for sc in partials)


def test_row_reductions_are_one_launch_with_block_per_row() -> None:
    mod = generate(P.row_normalize(16, 300), "rn")
    (step,) = mod.steps
    assert isinstance(step, Launch) and step.stage == "rows" and step.work == 16
    assert step.block == 256 and step.args == (BufferArg(0), BufferArg(1), BufferArg(2))
    assert "__shfl_down_sync" in mod.source and "__syncthreads" in mod.source
    small = generate(P.reduce_program("sum", DType.f32, (100, 10), (1,)), "s").steps[0]
    assert isinstance(small, Launch) and small.block == 32


def test_matmul_is_tiled_with_a_fused_epilogue() -> None:
    mod = generate(P.mlp(33, 17, 19), "mm")
    (step,) = mod.steps
    assert isinstance(step, Launch) and step.stage == "matmul" and step.fixed_block
    assert step.work == 3 * 2 and step.block == 256
    assert "__shared__ float ta[16][17]" in mod.source and "sn_fmax(" in mod.source


def test_opaque_kernels_are_host_steps_in_program_order() -> None:
    mod = generate(C.with_opaque(3, 4), "op")
    assert [type(s).__name__ for s in mod.steps] == ["Launch", "OpaqueStep", "Launch"]
    assert mod.steps[1] == OpaqueStep(1)
    assert mod.symbols == ("sn_op_k0", "sn_op_k2")


def test_grid_policy() -> None:
    step = generate(P.elementwise("exp", DType.f32, (10_000_000,)), "big").steps[0]
    assert isinstance(step, Launch)
    assert step.grid(132) == 132 * (2048 // 256) * 2  # two waves, then grid-stride
    assert step.grid(1, block=64) == 64
    tiny = generate(P.elementwise("exp", DType.f32, (5,)), "t").steps[0]
    assert isinstance(tiny, Launch) and tiny.grid(132) == 1
    empty = generate(P.elementwise("exp", DType.f32, (0, 3)), "e").steps[0]
    assert isinstance(empty, Launch) and empty.grid(132) == 0


def test_precise_math_only_and_wide_indices_only_when_needed() -> None:
    src = generate(P.elementwise("exp", DType.f32, (8,)), "x").source
    assert "expf(" in src and "__expf" not in src
    assert "for (int t" in src
    big = generate(P.elementwise("exp", DType.f32, (1 << 31,)), "y").source
    assert "for (long long t" in big


def test_symbols_are_unique_across_all_test_modules() -> None:
    seen: set[str] = set()
    for i, case in enumerate(all_cases()):
        mod = generate(case.program, f"u{i}")
        assert not seen & set(mod.symbols)
        seen |= set(mod.symbols)
