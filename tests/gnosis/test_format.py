"""`.gnosis` files: exact round trips for every dtype, nested names, metadata, mmap, the
documented byte layout, atomic writes that keep the previous file on failure."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest

import syntonic as sn
from syntonic.gnosis import format as gf

SHAPES = [(), (0,), (3,), (2, 0, 4), (2, 3, 4), (1, 248)]


def sample(dtype_name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = gf.DTYPES[dtype_name].newbyteorder("=")
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    values = rng.standard_normal(shape) * 1e3
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    arr = np.asarray(values, dtype)
    if arr.size >= 3:  # the special values must survive too
        arr.flat[:3] = [np.nan, np.inf, -0.0]
    return arr


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality, dtype and shape included (NaN payloads and -0.0 too)."""
    return (a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


@pytest.mark.parametrize("dtype_name", list(gf.DTYPES))
@pytest.mark.parametrize("mmap", [False, True])
def test_every_dtype_and_shape_round_trips_bitwise(tmp_path, dtype_name, mmap):
    tree = {f"s{i}": sample(dtype_name, shape, i) for i, shape in enumerate(SHAPES)}
    path = tmp_path / "t.gnosis"
    sn.save(path, tree)
    back = sn.load(path, mmap=mmap)
    assert list(back) == list(tree)
    for name, arr in tree.items():
        assert same(back[name], arr), name
        assert back[name].flags.writeable is not mmap


def test_nested_names_metadata_and_numpy_scalars_round_trip(tmp_path):
    tree = {
        "state": np.sin(0.37 * np.arange(248)).reshape(1, 248),
        "model": {"layer1": {"w": np.eye(3, dtype=np.float32), "b": np.zeros(3, np.float16)},
                  "layer2": {"w": np.ones((2, 2), np.int64)}},
        "scalar": np.float32(1.5),
        "flags": np.array([True, False]),
        "meta": {"cycle": 12, "name": "ouroboros é", "lr": 0.027395, "none": None,
                 "ok": True, "list": [1, "two", None, [3.5]], "big": 2**70},
        "empty": {},
    }
    path = tmp_path / "nested.gnosis"
    sn.save(path, tree)
    back = sn.load(path)
    assert back["meta"] == tree["meta"] and back["empty"] == {}
    assert same(back["model"]["layer1"]["w"], tree["model"]["layer1"]["w"])
    assert same(back["model"]["layer2"]["w"], tree["model"]["layer2"]["w"])
    assert back["scalar"].shape == () and back["scalar"].dtype == np.float32
    assert same(back["state"], tree["state"]) and same(back["flags"], tree["flags"])
    header = json.loads(_raw_header(path.read_bytes()))
    assert list(header["tensors"]) == ["state", "model.layer1.w", "model.layer1.b",
                                       "model.layer2.w", "scalar", "flags"]
    assert header["metadata"]["meta.cycle"] == 12


def test_tuples_come_back_as_lists_and_big_endian_is_stored_little(tmp_path):
    path = tmp_path / "t.gnosis"
    sn.save(path, {"x": np.arange(3, dtype=">f4"), "shape": (1, 248)})
    back = sn.load(path)
    assert back["shape"] == [1, 248]
    assert back["x"].dtype == np.float32 and back["x"].tolist() == [0.0, 1.0, 2.0]
    raw = path.read_bytes()
    start = gf._align(gf.PREFIX.size + len(_raw_header(raw)))
    assert raw[start:start + 12] == np.arange(3, dtype="<f4").tobytes()


def test_mmap_arrays_are_read_only_views_of_the_file(tmp_path):
    path = tmp_path / "m.gnosis"
    sn.save(path, {"w": np.arange(1000, dtype=np.float64)})
    back = sn.load(path, mmap=True)
    assert not back["w"].flags.writeable
    with pytest.raises(ValueError):
        back["w"][0] = 1.0
    assert back["w"][999] == 999.0
    writable = sn.load(path)["w"]
    writable[0] = 5.0  # an ordinary array, not tied to the file
    assert sn.load(path)["w"][0] == 0.0


def test_the_documented_layout(tmp_path):
    """An independent reader written from docs/gnosis.md alone."""
    path = tmp_path / "doc.gnosis"
    sn.save(path, {"a": np.arange(5, dtype=np.int32), "b": {"c": np.float64(2.5)},
                   "note": "hi"})
    raw = path.read_bytes()
    magic, version, flags, header_len, data_len = struct.unpack_from("<8sIIQQ", raw)
    assert (magic, version, flags) == (b"\x89GNOSIS\n", 1, 0)
    header = json.loads(raw[32:32 + header_len])
    data_start = -(-(32 + header_len) // 64) * 64
    assert set(raw[32 + header_len:data_start]) <= {0x20}
    assert len(raw) == data_start + data_len + 32
    assert raw[-32:] == hashlib.sha256(raw[:-32]).digest()
    assert header == {
        "tensors": {"a": {"dtype": "i32", "shape": [5], "offset": 0},
                    "b.c": {"dtype": "f64", "shape": [], "offset": 64}},
        "metadata": {"note": "hi"},
    }
    a = np.frombuffer(raw, "<i4", 5, data_start + header["tensors"]["a"]["offset"])
    assert a.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("tree, needle", [
    ({"a.b": np.zeros(1)}, "without '.'"),
    ({"": np.zeros(1)}, "non-empty"),
    ({1: np.zeros(1)}, "strings"),
    ({"x": np.array(["text"])}, "does not store"),
    ({"x": np.zeros(2, dtype=object)}, "does not store"),
    ({"x": np.zeros(2, dtype=[("a", "f4")])}, "does not store"),
    ({"x": float("nan")}, "not JSON"),
    ({"x": {1, 2}}, "not JSON"),
    ({"x": [np.zeros(2)]}, "not JSON"),
])
def test_trees_that_cannot_be_stored_raise_before_writing(tmp_path, tree, needle):
    path = tmp_path / "bad.gnosis"
    with pytest.raises(sn.GnosisError, match=needle):
        sn.save(path, tree)
    assert list(tmp_path.iterdir()) == []


def test_save_needs_a_dict(tmp_path):
    with pytest.raises(sn.GnosisError, match="dict"):
        sn.save(tmp_path / "x.gnosis", np.zeros(3))  # type: ignore[arg-type]


def test_missing_file_and_directory_are_gnosis_errors(tmp_path):
    with pytest.raises(sn.GnosisError, match="cannot read"):
        sn.load(tmp_path / "nope.gnosis")
    with pytest.raises(sn.GnosisError, match="regular file"):
        sn.load(tmp_path)
    with pytest.raises(sn.GnosisError, match="temporary file"):
        sn.save(tmp_path / "no" / "such" / "dir.gnosis", {"x": np.zeros(1)})


def test_save_through_a_symlink_replaces_its_target(tmp_path):
    target, link = tmp_path / "real.gnosis", tmp_path / "link.gnosis"
    sn.save(target, {"x": np.zeros(1)})
    link.symlink_to(target)
    sn.save(link, {"x": np.ones(1)})
    assert link.is_symlink() and sn.load(target)["x"].tolist() == [1.0]


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "fifo.gnosis"
    os.mkfifo(fifo)
    with pytest.raises(sn.GnosisError, match="regular file"):
        sn.load(fifo)  # would block forever if opened
    with pytest.raises(sn.GnosisError, match="regular file"):
        sn.load("/dev/zero", mmap=True)


def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "m.gnosis"
    sn.save(path, {"x": np.zeros(1)})
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    sn.save(path, {"x": np.ones(1)})
    assert path.stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------- atomic writes
def _half_then_fail(f, hasher, arr):
    f.write(memoryview(arr.reshape(-1).view(np.uint8))[: max(arr.nbytes // 2, 1)])
    raise OSError(28, "No space left on device")


def _fail_os(*args, **kwargs):
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize("target, replacement", [
    ("_write_tensor", _half_then_fail),
    ("fsync", _fail_os),
    ("replace", _fail_os),
])
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch,
                                                                   target, replacement):
    path = tmp_path / "keep.gnosis"
    sn.save(path, {"state": np.arange(248.0).reshape(1, 248), "cycle": 1})
    before = path.read_bytes()
    owner = gf if target.startswith("_") else gf.os
    monkeypatch.setattr(owner, target, replacement)
    with pytest.raises(sn.GnosisError, match="previous file kept"):
        sn.save(path, {"state": np.zeros((1, 248)), "cycle": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sn.load(path)["cycle"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gnosis"]
    assert gf.temp_files(path) == []


def test_an_interrupt_midway_is_reraised_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.gnosis"
    sn.save(path, {"x": np.ones(3)})
    before = path.read_bytes()

    def interrupted(f, hasher, arr):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(gf, "_write_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sn.save(path, {"x": np.zeros(3)})
    assert path.read_bytes() == before and gf.temp_files(path) == []


def test_temp_files_finds_only_leftovers_of_that_file(tmp_path):
    path = tmp_path / "a[1].gnosis"
    (tmp_path / f".a[1].gnosis.0123456789ab{gf.TEMP_SUFFIX}").write_bytes(b"x")
    (tmp_path / f".other.gnosis.0123456789ab{gf.TEMP_SUFFIX}").write_bytes(b"x")
    assert [p.name for p in gf.temp_files(path)] == [f".a[1].gnosis.0123456789ab{gf.TEMP_SUFFIX}"]


def _raw_header(raw: bytes) -> bytes:
    header_len = struct.unpack_from("<Q", raw, 16)[0]
    return raw[32:32 + header_len]


def test_save_accepts_str_paths(tmp_path):
    path = os.path.join(tmp_path, "s.gnosis")
    sn.save(path, {"x": np.zeros(2)})
    assert sn.load(path)["x"].tolist() == [0.0, 0.0]
