"""Malformed `.gnosis` bytes: every truncation and bit flip, forged headers with huge sizes,
garbage JSON (with a valid checksum) -> always `sn.GnosisError`, never a crash, never an
allocation beyond the file size."""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import syntonic as sn
from syntonic.gnosis import format as gf

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
U64 = st.integers(0, 2**64 - 1)


def valid_bytes() -> bytes:
    """A small but complete file: two tensors, nested names, metadata."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.gnosis"
        sn.save(path, {"state": np.linspace(-1, 1, 12).reshape(1, 12),
                       "w": {"b": np.array([1, 2], np.int32)}, "cycle": 7, "tag": "x"})
        return path.read_bytes()


VALID = valid_bytes()


def forge(header: bytes, data: bytes = b"", *, version: int = 1, flags: int = 0,
          header_len: int | None = None, data_len: int | None = None,
          digest: bool = True) -> bytes:
    """Bytes laid out as docs/gnosis.md says, with any fields we like and a valid checksum."""
    hl = len(header) if header_len is None else header_len
    dl = len(data) if data_len is None else data_len
    head = struct.pack("<8sIIQQ", gf.MAGIC, version, flags, hl, dl) + header
    head += b" " * (-len(head) % 64)
    body = head + data
    return body + (hashlib.sha256(body).digest() if digest else b"")


def header_json(tensors: object, metadata: object = None) -> bytes:
    return json.dumps({"tensors": tensors, "metadata": metadata or {}}).encode()


def load_bytes(path: Path, raw: bytes, mmap: bool = False) -> dict:
    path.write_bytes(raw)
    return sn.load(path, mmap=mmap)


def fails(path: Path, raw: bytes, match: str | None = None, mmap: bool = False) -> None:
    with pytest.raises(sn.GnosisError, match=match):
        load_bytes(path, raw, mmap)


def test_the_fixture_file_is_valid(tmp_path):
    tree = load_bytes(tmp_path / "v.gnosis", VALID)
    assert tree["cycle"] == 7 and tree["w"]["b"].tolist() == [1, 2]


@pytest.mark.parametrize("mmap", [False, True])
def test_every_truncation_is_an_error(tmp_path, mmap):
    path = tmp_path / "t.gnosis"
    for n in range(len(VALID)):
        with pytest.raises(sn.GnosisError, match="truncated|not a .gnosis"):
            load_bytes(path, VALID[:n], mmap)


def test_every_single_bit_flip_is_an_error(tmp_path):
    path = tmp_path / "f.gnosis"
    for i in range(len(VALID)):
        for bit in range(8):
            raw = bytearray(VALID)
            raw[i] ^= 1 << bit
            fails(path, bytes(raw))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                      min_size=1, max_size=8),
       cut=st.integers(0, len(VALID)), tail=st.binary(max_size=64), mmap=st.booleans())
def test_random_corruption_is_an_error(tmp_path, edits, cut, tail, mmap):
    raw = bytearray(VALID)
    for i, value in edits:
        raw[i] = value
    mutated = bytes(raw[:cut]) + tail
    assume(mutated != VALID)
    fails(tmp_path / "r.gnosis", mutated, mmap=mmap)


@FUZZ
@given(header_len=U64, data_len=U64, extra=st.binary(max_size=256))
def test_huge_or_wrong_sizes_in_the_prefix_are_errors(tmp_path, header_len, data_len, extra):
    raw = forge(b"", extra, header_len=header_len, data_len=data_len)
    assume(not (header_len == 0 and data_len == len(extra)))
    fails(tmp_path / "h.gnosis", raw)


def test_wrong_magic_version_flags_and_trailing_bytes(tmp_path):
    path = tmp_path / "w.gnosis"
    fails(path, b"PK\x03\x04" + VALID[4:], "not a .gnosis file")
    fails(path, b"", "truncated")
    fails(path, gf.MAGIC[:5], "truncated")
    fails(path, forge(header_json({}), version=2), "version 2")
    fails(path, forge(header_json({}), version=0), "version 0")
    fails(path, forge(header_json({}), flags=1), "flags")
    fails(path, VALID + b"\0", "trailing")
    fails(path, forge(header_json({}), digest=False) + b"\0" * 32, "checksum")


def test_oversized_header_is_refused_before_reading_it(tmp_path):
    raw = forge(b"", header_len=gf.MAX_HEADER_BYTES + 1)
    fails(tmp_path / "o.gnosis", raw, "limit")


@pytest.mark.parametrize("shape, offset", [
    ([2**40, 2**40], 0),
    ([2**62], 0),
    ([0, 2**62], 0),
    ([2**31] * 3, 0),
    ([1] * 65, 0),
    ([4], 2**63),
    ([4], 57),
    ([9], 0),
])
def test_tensor_sizes_beyond_the_file_are_errors_without_allocating(tmp_path, shape, offset):
    raw = forge(header_json({"x": {"dtype": "f64", "shape": shape, "offset": offset}}),
                b"\0" * 64)
    path = tmp_path / "s.gnosis"
    path.write_bytes(raw)
    tracemalloc.start()
    try:
        with pytest.raises(sn.GnosisError):
            sn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def _short_id(value: object) -> str | None:
    if isinstance(value, bytes):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    return None


@pytest.mark.parametrize("header, needle", [
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "exactly the keys"),
    (b'{"tensors": {}}', "exactly the keys"),
    (b'{"tensors": [], "metadata": {}}', "exactly the keys"),
    (b'{"tensors": {}, "metadata": {}, "x": 1}', "exactly the keys"),
    (b'{"tensors": {}, "tensors": {}, "metadata": {}}', "duplicate"),
    (b'{"tensors": {}, "metadata": {"x": NaN}}', "not valid JSON"),
    (b'{"tensors": {}, "metadata": {"x": Infinity}}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (header_json({"x": 1}), "expected an object"),
    (header_json({"x": {"dtype": "f128", "shape": [], "offset": 0}}), "unknown dtype"),
    (header_json({"x": {"dtype": ["f64"], "shape": [], "offset": 0}}), "unknown dtype"),
    (header_json({"x": {"dtype": "f64", "shape": [True], "offset": 0}}), "shape"),
    (header_json({"x": {"dtype": "f64", "shape": [-1], "offset": 0}}), "shape"),
    (header_json({"x": {"dtype": "f64", "shape": [1.0], "offset": 0}}), "shape"),
    (header_json({"x": {"dtype": "f64", "shape": 3, "offset": 0}}), "shape"),
    (header_json({"x": {"dtype": "f64", "shape": [], "offset": -8}}), "offset"),
    (header_json({"x": {"dtype": "f64", "shape": [], "offset": 0.0}}), "offset"),
    (header_json({"x": {"dtype": "f64", "shape": [], "offset": 0, "z": 1}}), "expected"),
    (header_json({"": {"dtype": "f64", "shape": [], "offset": 0}}), "invalid name"),
    (header_json({"a..b": {"dtype": "f64", "shape": [], "offset": 0}}), "invalid name"),
    (header_json({"a": {"dtype": "f64", "shape": [], "offset": 0},
                  "a.b": {"dtype": "f64", "shape": [], "offset": 0}}), "nests"),
    (header_json({"a.b": {"dtype": "f64", "shape": [], "offset": 0},
                  "a": {"dtype": "f64", "shape": [], "offset": 0}}), "twice"),
    (header_json({"a": {"dtype": "f64", "shape": [], "offset": 0}}, {"a": 1}), "twice"),
], ids=_short_id)
def test_malformed_headers_with_valid_checksums_are_errors(tmp_path, header, needle):
    fails(tmp_path / "j.gnosis", forge(header, b"\0" * 64), needle)


def _entry_is_valid(entry: object, data_len: int) -> bool:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "offset"}:
        return False
    dtype, shape, offset = entry["dtype"], entry["shape"], entry["offset"]
    if not isinstance(dtype, str) or dtype not in gf.DTYPES:
        return False
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return False
    if type(offset) is not int or offset < 0:
        return False
    return int(np.prod(shape, dtype=object)) * gf.DTYPES[dtype].itemsize + offset <= data_len


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=12,
)
DIMS = st.integers(-2, 4) | st.integers(0, 2**70) | st.just(True) | st.floats(0, 3)
ENTRY = st.fixed_dictionaries({
    "dtype": st.sampled_from([*gf.DTYPES, "f128", "float32", ""]) | JSON,
    "shape": st.lists(DIMS, max_size=5) | JSON,
    "offset": st.integers(-8, 80) | st.integers(0, 2**70) | JSON,
}) | JSON


@FUZZ
@given(entry=ENTRY, metadata=st.dictionaries(st.text(max_size=6), JSON, max_size=3),
       mmap=st.booleans())
def test_fuzzed_tensor_entries_load_or_raise_gnosis_error(tmp_path, entry, metadata, mmap):
    raw = forge(header_json({"x": entry}, metadata), b"\x01" * 64)
    try:
        tree = load_bytes(tmp_path / "e.gnosis", raw, mmap)
    except sn.GnosisError:
        return
    assert _entry_is_valid(entry, 64)
    assert tree["x"].shape == tuple(entry["shape"])


@FUZZ
@given(header=st.binary(max_size=200))
def test_garbage_headers_are_errors(tmp_path, header):
    try:
        parsed = json.loads(header)
        assume(not (isinstance(parsed, dict) and set(parsed) == {"tensors", "metadata"}))
    except ValueError:
        pass
    fails(tmp_path / "g.gnosis", forge(header, b"\0" * 64))
