"""FluxBridge per SPEC-ops.md: the worked example, exact ASCII round trips up to dim bytes,
the documented behaviour for control, non-ASCII and long inputs; the M11 check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import syntonic as sn
from syntonic.gnosis import decode, emit_text, encode, m11_stable

PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)


def slot_value(byte: int) -> float:
    return (byte - 127) / 128 * sn.PHI_INV


def test_spec_example():
    x = encode("Hello, Syntonic!")
    assert x.shape == (1, 248) and x.dtype == np.float64
    assert x[0, :3].tolist() == [-0.2655614795409705, -0.1255381539648224,
                                 -0.09173942020506252]
    assert not x[0, 16:].any()


@settings(max_examples=300, deadline=None)
@given(text=st.text(PRINTABLE, max_size=248))
def test_printable_ascii_up_to_dim_bytes_round_trips_exactly(text):
    assert decode(encode(text)) == text
    assert emit_text(encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=248))
def test_any_bytes_up_to_dim_decode_to_their_printable_ascii(data):
    assert decode(encode(data)) == "".join(chr(b) for b in data if 32 <= b <= 126)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=700), dim=st.integers(1, 300))
def test_encode_adds_into_slot_k_mod_dim_in_order(data, dim):
    expected = np.zeros((1, dim))
    for k, b in enumerate(data):
        expected[0, k % dim] += slot_value(b)
    assert encode(data, dim).tobytes() == expected.tobytes()


def test_control_characters_and_non_ascii_are_dropped_by_decode():
    assert decode(encode("line one\nline\ttwo\x7f")) == "line onelinetwo"
    assert decode(encode("café ∑ ok")) == "caf  ok"  # UTF-8 bytes >= 128 never come back
    assert encode("é")[0, :2].tolist() == [slot_value(0xC3), slot_value(0xA9)]
    assert decode(np.zeros((1, 248))) == ""  # untouched slots decode to DEL (127)


def test_long_inputs_fold_modulo_dim_and_do_not_round_trip():
    x = encode("a" * 249)
    assert x.shape == (1, 248)
    assert x[0, 0] == slot_value(ord("a")) * 2 and x[0, 1] == slot_value(ord("a"))
    assert decode(x) != "a" * 249 and len(decode(x)) <= 248
    assert encode("abc", dim=2)[0].tolist() == [slot_value(97) + slot_value(99), slot_value(98)]


def test_decode_reads_any_shape_in_c_order_and_drops_non_finite():
    x = np.concatenate([encode("ab"), encode("cd")])
    assert decode(x) == "abcd"
    assert decode([[np.nan, np.inf, -np.inf, slot_value(ord("z"))]]) == "z"
    assert decode(encode("hi").astype(np.float32)) == "hi"


def test_round_half_even_at_the_boundary():
    # v/phi^-1*128 + 127 = 65.5 exactly rounds to 66 ('B'), 66.5 rounds to 66 too
    assert decode([(65.5 - 127) / 128 * sn.PHI_INV]) == "B"
    assert decode([(66.5 - 127) / 128 * sn.PHI_INV]) == "B"


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "248"])
def test_bad_dim_is_an_error(bad):
    with pytest.raises(sn.GnosisError, match="dim"):
        encode("x", bad)


def test_bad_text_is_an_error():
    with pytest.raises(sn.GnosisError, match="str or bytes"):
        encode(42)  # type: ignore[arg-type]
    with pytest.raises(sn.GnosisError, match="UTF-8"):
        encode("\ud800")


def test_surrogate_escaped_text_encodes_its_original_bytes():
    text = b"ok\xff".decode("utf-8", errors="surrogateescape")
    assert encode(text).tobytes() == encode(b"ok\xff").tobytes()


def test_m11_stable():
    assert m11_stable(np.ones(2046))
    x = np.zeros(4096)
    assert m11_stable(x)
    x[2046] = 1e-9
    assert not m11_stable(x)
    x[2046] = -9e-10
    assert m11_stable(x)
    x[2046] = np.nan
    assert not m11_stable(x)
    y = np.zeros((2, 2047))
    y[1, 0] = 1.0  # flat position 2047, not 2046
    assert m11_stable(y)
    y[0, 2046] = 1.0
    assert not m11_stable(y)
    assert m11_stable(np.zeros((1, 248))) is True
