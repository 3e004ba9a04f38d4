"""Dtypes and tensor types: text round trip, rejection of malformed text, coercion."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir import DType, IRError, TensorType
from tests.strategies import ALL_DTYPES, ir_settings

type_values = st.builds(
    TensorType,
    st.sampled_from(ALL_DTYPES),
    st.lists(st.integers(0, 2**40), max_size=6).map(tuple),
)


@settings(ir_settings, max_examples=300)
@given(t=type_values)
def test_str_parse_roundtrip(t: TensorType) -> None:
    text = str(t)
    assert TensorType.parse(text) == t
    assert str(TensorType.parse(text)) == text
    assert " " not in text


@pytest.mark.parametrize(
    "text, dtype, shape",
    [
        ("f32[4,248]", DType.f32, (4, 248)),
        ("f32[]", DType.f32, ()),
        ("bool[0]", DType.bool, (0,)),
        ("i64[1,0,3]", DType.i64, (1, 0, 3)),
        ("f16[ 2 , 3 ]", DType.f16, (2, 3)),
        ("  i32[7]  ", DType.i32, (7,)),
    ],
)
def test_parse_examples(text: str, dtype: DType, shape: tuple[int, ...]) -> None:
    t = TensorType.parse(text)
    assert (t.dtype, t.shape) == (dtype, shape)
    assert t.rank == len(shape)
    assert t.size == int(np.prod(shape))
    assert t.nbytes == t.size * dtype.np.itemsize


@pytest.mark.parametrize(
    "text",
    [
        "", "f32", "f32[", "f32]", "[4]", "f33[4]", "float32[4]", "F32[4]", "f32[4,]",
        "f32[,4]", "f32[-1]", "f32[4.0]", "f32[4][4]", "f32[a]", "f32(4)", "f32 [4]",
        "f32[4] x", "f32[1e3]", "f32[0x10]", "i32[" + "9" * 5000 + "]",
    ],
    ids=lambda text: text if len(text) < 20 else text[:16] + "...",
)
def test_malformed_types_raise_irerror(text: str) -> None:
    with pytest.raises(IRError) as info:
        TensorType.parse(text)
    assert "f32[4,248]" in str(info.value) or "type" in str(info.value)


@settings(ir_settings, max_examples=300)
@given(text=st.text(max_size=20))
def test_parse_arbitrary_text_raises_only_irerror(text: str) -> None:
    try:
        t = TensorType.parse(text)
    except IRError:
        return
    assert TensorType.parse(str(t)) == t


@pytest.mark.parametrize("shape", [(-1,), (2, -3), (1.5,), (True,), ("3",)])
def test_invalid_shapes_are_rejected(shape: tuple[object, ...]) -> None:
    with pytest.raises(IRError):
        TensorType(DType.f32, shape)  # type: ignore[arg-type]


def test_dtype_field_must_be_a_dtype() -> None:
    with pytest.raises(IRError):
        TensorType("f32", (4,))  # type: ignore[arg-type]


def test_types_are_hashable_values() -> None:
    a, b = TensorType.parse("f32[2,3]"), TensorType(DType.f32, (2, 3))
    assert a == b and hash(a) == hash(b)
    assert a != TensorType.parse("f64[2,3]") and a != TensorType.parse("f32[3,2]")
    assert a.with_dtype(DType.i32) == TensorType.parse("i32[2,3]")
    assert a.with_shape((6,)) == TensorType.parse("f32[6]")


@pytest.mark.parametrize(
    "obj, dtype",
    [
        ("bool", DType.bool), ("i32", DType.i32), ("i64", DType.i64), ("f16", DType.f16),
        ("f32", DType.f32), ("f64", DType.f64),
        ("float32", DType.f32), ("float64", DType.f64), ("float16", DType.f16),
        ("int32", DType.i32), ("int64", DType.i64),
        (np.float32, DType.f32), (np.float64, DType.f64), (np.float16, DType.f16),
        (np.int32, DType.i32), (np.int64, DType.i64), (np.bool_, DType.bool),
        (np.dtype("float32"), DType.f32), (np.dtype("<i8"), DType.i64), (np.dtype("?"), DType.bool),
        (float, DType.f64), (int, DType.i64), (bool, DType.bool),
        (DType.f16, DType.f16),
    ],
)
def test_coerce(obj: object, dtype: DType) -> None:
    assert DType.coerce(obj) is dtype


@pytest.mark.parametrize(
    "obj", ["f128", "F32", "", "u8", np.uint8, np.complex64, np.float128, 3, object()]
)
def test_coerce_rejects_unsupported(obj: object) -> None:
    with pytest.raises(IRError) as info:
        DType.coerce(obj)
    assert "f32" in str(info.value)  # the message lists what is supported


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_dtype_names_and_numpy_agree(dtype: DType) -> None:
    assert DType.parse(dtype.value) is dtype
    assert str(dtype) == dtype.value
    assert DType.from_numpy(dtype.np) is dtype
    assert dtype.itemsize == dtype.np.itemsize
    kinds = {"b": "is_bool", "i": "is_int", "f": "is_float"}
    for kind, prop in kinds.items():
        assert getattr(dtype, prop) == (dtype.np.kind == kind)


def test_promotion_order() -> None:
    from syntonic.ir.types import promote

    order = [DType.bool, DType.i32, DType.i64, DType.f16, DType.f32, DType.f64]
    assert [d.rank for d in order] == list(range(len(order)))
    for a in order:
        for b in order:
            assert promote(a, b) is (a if a.rank >= b.rank else b)


def test_bad_dtype_name() -> None:
    with pytest.raises(IRError, match="f65"):
        DType.parse("f65")


def test_of_array() -> None:
    assert TensorType.of(np.zeros((2, 0, 3), np.float16)) == TensorType.parse("f16[2,0,3]")
    with pytest.raises(IRError):
        TensorType.of(np.zeros(3, np.uint8))
