"""Golden tests of the graph passes: IR text in -> pass -> IR text out.

Each case also runs both graphs on inputs full of special values (NaN, +-inf, -0.0,
subnormals, extreme integers) and checks the results are bit-identical: the rules
claim exactness, so they must be exact there too.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from syntonic.ir import interpret, parse, verify
from syntonic.passes import (
    canonicalize,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    simplify_layout,
)
from tests.strategies import same_bits

PASSES = {
    "canonicalize": canonicalize,
    "fold": fold_constants,
    "layout": simplify_layout,
    "cse": eliminate_common_subexpressions,
    "dce": eliminate_dead_code,
}


def ir(body: str, params: str = "%x: f32[4]", results: str = "f32[4]") -> str:
    lines = textwrap.dedent(body).strip("\n")
    inner = textwrap.indent(lines, "  ")
    return f"func @f({params}) -> ({results}) {{\n{inner}\n}}\n"


F32 = np.array([1.5, -0.0, np.nan, -np.inf], np.float32)
F32_B = np.array([0.0, np.inf, 1e-45, -3.0], np.float32)
I32 = np.array([2**31 - 1, -(2**31), 0, -7], np.int32)

# (pass, name, input IR, expected IR, arguments)
CASES = [
    ("canonicalize", "mul_one", ir("""
        %0 = constant {value=dense<1.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = mul %1, %x : f32[4]
        return %2"""), ir("return %x"), [F32]),
    ("canonicalize", "add_negative_zero", ir("""
        %0 = constant {value=dense<-0.0>} : f32[4]
        %1 = add %x, %0 : f32[4]
        return %1"""), ir("return %x"), [F32]),
    ("canonicalize", "add_positive_zero_is_kept", ir("""
        %0 = constant {value=dense<0.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = add %x, %1 : f32[4]
        return %2"""), ir("""
        %0 = constant {value=dense<0.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = add %x, %1 : f32[4]
        return %2"""), [F32]),
    ("canonicalize", "sub_positive_zero", ir("""
        %0 = constant {value=dense<0.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = sub %x, %1 : f32[4]
        return %2"""), ir("return %x"), [F32]),
    ("canonicalize", "integer_add_zero", ir("""
        %0 = constant {value=dense<0>} : i32[]
        %1 = broadcast %0 {shape=[4]} : i32[4]
        %2 = add %1, %x : i32[4]
        return %2""", "%x: i32[4]", "i32[4]"), ir("return %x", "%x: i32[4]", "i32[4]"), [I32]),
    ("canonicalize", "double_negation", ir("""
        %0 = neg %x : f32[4]
        %1 = neg %0 : f32[4]
        return %1"""), ir("return %x"), [F32]),
    ("canonicalize", "mul_minus_one", ir("""
        %0 = constant {value=dense<-1.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = mul %x, %1 : f32[4]
        %3 = neg %2 : f32[4]
        return %3"""), ir("return %x"), [F32]),
    ("canonicalize", "div_by_power_of_two", ir("""
        %0 = constant {value=dense<4.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = div %x, %1 : f32[4]
        return %2"""), ir("""
        %0 = constant {value=dense<0.25>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = mul %x, %1 : f32[4]
        return %2"""), [np.array([3.0, 1e-45, -np.inf, 7e37], np.float32)]),
    ("canonicalize", "abs_of_neg", ir("""
        %0 = neg %x : f32[4]
        %1 = abs %0 : f32[4]
        %2 = abs %1 : f32[4]
        return %2"""), ir("""
        %0 = abs %x : f32[4]
        return %0"""), [F32]),
    ("canonicalize", "sub_of_negation", ir("""
        %0 = neg %y : f32[4]
        %1 = sub %x, %0 : f32[4]
        return %1""", "%x: f32[4], %y: f32[4]"), ir("""
        %0 = add %x, %y : f32[4]
        return %0""", "%x: f32[4], %y: f32[4]"), [F32, F32_B]),
    ("canonicalize", "constants_go_right", ir("""
        %0 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %1 = maximum %0, %x : f32[4]
        return %1"""), ir("""
        %0 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %1 = maximum %x, %0 : f32[4]
        return %1"""), [F32]),
    ("canonicalize", "integer_reassociation", ir("""
        %0 = constant {value=dense<[1,2,3,4]>} : i32[4]
        %1 = add %x, %0 : i32[4]
        %2 = constant {value=dense<[10,20,30,40]>} : i32[4]
        %3 = add %1, %2 : i32[4]
        return %3""", "%x: i32[4]", "i32[4]"), ir("""
        %0 = constant {value=dense<[1,2,3,4]>} : i32[4]
        %1 = constant {value=dense<[10,20,30,40]>} : i32[4]
        %2 = add %0, %1 : i32[4]
        %3 = add %x, %2 : i32[4]
        return %3""", "%x: i32[4]", "i32[4]"), [I32]),
    ("canonicalize", "float_reassociation_is_kept", ir("""
        %0 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %1 = add %x, %0 : f32[4]
        %2 = add %1, %0 : f32[4]
        return %2"""), ir("""
        %0 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %1 = add %x, %0 : f32[4]
        %2 = add %1, %0 : f32[4]
        return %2"""), [F32]),
    ("canonicalize", "select_same_and_known", ir("""
        %0 = gt %x, %x : bool[4]
        %1 = select %0, %x, %x : f32[4]
        %2 = constant {value=dense<true>} : bool[]
        %3 = broadcast %2 {shape=[4]} : bool[4]
        %4 = neg %1 : f32[4]
        %5 = select %3, %4, %x : f32[4]
        return %5"""), ir("""
        %0 = neg %x : f32[4]
        return %0"""), [F32]),
    ("canonicalize", "broadcast_of_broadcast_and_identities", ir("""
        %0 = broadcast %x {shape=[1,4]} : f32[1,4]
        %1 = broadcast %0 {shape=[3,4]} : f32[3,4]
        %2 = reshape %1 {shape=[3,4]} : f32[3,4]
        %3 = transpose %2 {perm=[0,1]} : f32[3,4]
        %4 = cast %3 {dtype=f32} : f32[3,4]
        return %4""", results="f32[3,4]"), ir("""
        %0 = broadcast %x {shape=[3,4]} : f32[3,4]
        return %0""", results="f32[3,4]"), [F32]),
    ("canonicalize", "splat_constant", ir("""
        %0 = constant {value=dense<2.5>} : f32[4]
        %1 = mul %x, %0 : f32[4]
        return %1"""), ir("""
        %0 = constant {value=dense<2.5>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = mul %x, %1 : f32[4]
        return %2"""), [F32]),
    ("canonicalize", "max_over_unit_axis", ir("""
        %0 = max %x {axes=[1]} : f32[4]
        %1 = sum %x {axes=[1]} : f32[4]
        %2 = add %0, %1 : f32[4]
        return %2""", "%x: f32[4,1]"), ir("""
        %0 = reshape %x {shape=[4]} : f32[4]
        %1 = sum %x {axes=[1]} : f32[4]
        %2 = add %0, %1 : f32[4]
        return %2""", "%x: f32[4,1]"), [F32.reshape(4, 1)]),
    ("fold", "constant_subgraph", ir("""
        %0 = constant {value=dense<[1.0,4.0,9.0,16.0]>} : f32[4]
        %1 = sqrt %0 : f32[4]
        %2 = sum %1 {axes=[0], keepdims=true} : f32[1]
        %3 = broadcast %2 {shape=[4]} : f32[4]
        %4 = mul %x, %3 : f32[4]
        return %4"""), ir("""
        %0 = constant {value=dense<10.0>} : f32[]
        %1 = broadcast %0 {shape=[4]} : f32[4]
        %2 = mul %x, %1 : f32[4]
        return %2"""), [F32]),
    ("fold", "elementwise_at_the_small_shape", ir("""
        %0 = constant {value=dense<[0.0,1.0]>} : f32[2]
        %1 = broadcast %0 {shape=[1000,2]} : f32[1000,2]
        %2 = exp %1 : f32[1000,2]
        return %2""", "", "f32[1000,2]"), ir("""
        %0 = constant {value=dense<[1.0,2.7182819843292236]>} : f32[2]
        %1 = broadcast %0 {shape=[1000,2]} : f32[1000,2]
        return %1""", "", "f32[1000,2]"), []),
    ("fold", "small_iota_folds_large_does_not", ir("""
        %0 = iota {shape=[3]} : i32[3]
        %1 = cast %0 {dtype=f32} : f32[3]
        %2 = iota {shape=[100000]} : i32[100000]
        %3 = cast %2 {dtype=f32} : f32[100000]
        return %1, %3""", "", "f32[3], f32[100000]"), ir("""
        %0 = constant {value=dense<[0.0,1.0,2.0]>} : f32[3]
        %1 = iota {shape=[100000]} : i32[100000]
        %2 = cast %1 {dtype=f32} : f32[100000]
        return %0, %2""", "", "f32[3], f32[100000]"), []),
    ("layout", "transpose_chains", ir("""
        %0 = transpose %x {perm=[1,2,0]} : f32[3,4,2]
        %1 = transpose %0 {perm=[2,0,1]} : f32[2,3,4]
        %2 = transpose %x {perm=[0,2,1]} : f32[2,4,3]
        return %1, %2""", "%x: f32[2,3,4]", "f32[2,3,4], f32[2,4,3]"), ir("""
        %0 = transpose %x {perm=[0,2,1]} : f32[2,4,3]
        return %x, %0""", "%x: f32[2,3,4]", "f32[2,3,4], f32[2,4,3]"),
     [np.arange(24, dtype=np.float32).reshape(2, 3, 4)]),
    ("layout", "unit_axis_transpose_is_a_reshape", ir("""
        %0 = transpose %x {perm=[1,0,2]} : f32[1,3,4]
        return %0""", "%x: f32[3,1,4]", "f32[1,3,4]"), ir("""
        %0 = reshape %x {shape=[1,3,4]} : f32[1,3,4]
        return %0""", "%x: f32[3,1,4]", "f32[1,3,4]"),
     [np.arange(12, dtype=np.float32).reshape(3, 1, 4)]),
    ("layout", "reshape_and_slice_chains", ir("""
        %0 = reshape %x {shape=[2,6]} : f32[2,6]
        %1 = reshape %0 {shape=[3,4]} : f32[3,4]
        %2 = slice %x {start=[1], stop=[12], step=[2]} : f32[6]
        %3 = slice %2 {start=[1], stop=[6], step=[2]} : f32[3]
        return %1, %3""", "%x: f32[12]", "f32[3,4], f32[3]"), ir("""
        %0 = reshape %x {shape=[3,4]} : f32[3,4]
        %1 = slice %x {start=[3], stop=[12], step=[4]} : f32[3]
        return %0, %1""", "%x: f32[12]", "f32[3,4], f32[3]"),
     [np.arange(12, dtype=np.float32)]),
    ("layout", "empty_slice_of_slice_stays_in_bounds", ir("""
        %0 = slice %x {start=[0], stop=[3], step=[2]} : f32[2]
        %1 = slice %0 {start=[2], stop=[2], step=[1]} : f32[0]
        return %1""", "%x: f32[3]", "f32[0]"), ir("""
        %0 = slice %x {start=[3], stop=[3], step=[2]} : f32[0]
        return %0""", "%x: f32[3]", "f32[0]"),
     [np.arange(3, dtype=np.float32)]),
    ("layout", "broadcast_of_leading_reshape", ir("""
        %0 = reshape %x {shape=[1,4]} : f32[1,4]
        %1 = broadcast %0 {shape=[3,4]} : f32[3,4]
        return %1""", results="f32[3,4]"), ir("""
        %0 = broadcast %x {shape=[3,4]} : f32[3,4]
        return %0""", results="f32[3,4]"), [F32]),
    ("cse", "structurally_equal_ops", ir("""
        %0 = mul %x, %x : f32[4]
        %1 = mul %x, %x : f32[4]
        %2 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %3 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %4 = add %0, %2 : f32[4]
        %5 = add %1, %3 : f32[4]
        %6 = sub %4, %5 : f32[4]
        return %6"""), ir("""
        %0 = mul %x, %x : f32[4]
        %1 = constant {value=dense<[1.0,2.0,3.0,4.0]>} : f32[4]
        %2 = add %0, %1 : f32[4]
        %3 = sub %2, %2 : f32[4]
        return %3"""), [F32]),
    ("dce", "unused_ops", ir("""
        %0 = exp %x : f32[4]
        %1 = neg %x : f32[4]
        %2 = sin %0 : f32[4]
        return %1"""), ir("""
        %0 = neg %x : f32[4]
        return %0"""), [F32]),
]


@pytest.mark.parametrize("pass_name, name, before, after, args", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_pass_golden(pass_name, name, before, after, args):
    g = verify(parse(before))
    out = verify(eliminate_dead_code(PASSES[pass_name](g)))
    assert out.text(locs=False) == parse(after).text(locs=False)
    with np.errstate(all="ignore"):
        want = interpret(g, *args)
        got = interpret(out, *args)
    for a, b in zip(got, want):
        assert same_bits(a, b), f"{name}: {a!r} vs {b!r}"


def test_passes_state_their_guarantee():
    for fn in PASSES.values():
        assert fn.__doc__ and "Guarantees" in fn.__doc__, fn.__name__


def test_every_canonicalization_rule_has_its_algebra_in_a_comment():
    import importlib
    import inspect

    module = importlib.import_module("syntonic.passes.canonicalize")

    for r in module.RULES:
        comments = [line for line in inspect.getsource(r.fn).splitlines()
                    if line.strip().startswith("#")]
        assert any("->" in line for line in comments), r.name


def test_fold_respects_the_size_limit():
    import syntonic as sn

    g = parse(ir("""
        %0 = constant {value=dense<[1.0,2.0]>} : f32[2]
        %1 = reshape %0 {shape=[2,1]} : f32[2,1]
        %2 = broadcast %1 {shape=[2,20000]} : f32[2,20000]
        %3 = transpose %2 {perm=[1,0]} : f32[20000,2]
        return %3""", "", "f32[20000,2]"))
    with sn.config.override(fold_limit=1000):
        out = fold_constants(g)
    assert "transpose" in out.text()
    assert "transpose" not in fold_constants(g).text()


def test_ops_on_empty_tensors_fold_so_no_kernel_reads_an_empty_buffer():
    # dhsr_cycle along a zero-length axis became a CUDA row kernel that hoisted a load of
    # its (empty, null on the device) input out of a zero-trip loop: a segfault on the
    # emulated device, an illegal address on a GPU. Such ops read no data: they fold.
    import syntonic as sn
    from syntonic.lower.schedule import lower_to_kernels
    from syntonic.passes.fusion import fuse
    from syntonic.passes.pipeline import run_pipeline

    g = parse(ir("""
        %0 = sum %x {axes=[1], keepdims=true} : f64[0,1]
        %1 = dhsr_cycle %0 {axis=-2} : f64[0,1]
        %2 = sum %x {axes=[0]} : f64[3]
        %3 = mean %x {axes=[0]} : f64[3]
        return %1, %2, %3""", "%x: f64[0,3]", "f64[0,1], f64[3], f64[3]"))
    program = lower_to_kernels(fuse(run_pipeline(g)[-1].graph))
    param = program.params[0]
    assert program.kernels and all(param not in k.reads for k in program.kernels)
    x = np.zeros((0, 3))
    want = interpret(g, x)
    for dev in ("interpreter", "cpu"):
        got = sn.jit(lambda x: (sn.dhsr_cycle(sn.sum(x, axis=1, keepdims=True), axis=-2),
                                sn.sum(x, axis=0), sn.mean(x, axis=0)), device=dev)(x)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    # max of nothing stays an error (not folded into a value)
    with pytest.raises(sn.ShapeError, match="empty axis"):
        sn.jit(lambda x: sn.max(x, axis=0), device="cpu")(x)
