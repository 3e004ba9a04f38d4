"""The ``.gnosis`` file format: named tensors plus JSON metadata, checksummed, atomic.

Layout (all integers little-endian; ``docs/gnosis.md`` is the full description)::

    0   magic        8 bytes   b"\\x89GNOSIS\\n"
    8   version      u32       1
    12  flags        u32       0 (reserved)
    16  header_len   u64       bytes of the JSON header
    24  data_len     u64       bytes of the data section
    32  header       JSON (UTF-8), then spaces up to a multiple of 64 bytes
    D   data         raw little-endian C-order tensor bytes, each at a 64-byte-aligned offset
    D+data_len       SHA-256 (32 bytes) of every byte before it

A *tree* is a nested ``dict`` with ``str`` keys. Its numpy arrays (and numpy scalars, as
0-d arrays) are stored as tensors; its other leaves (``str``, ``int``, ``float``, ``bool``,
``None``, lists) are stored as JSON metadata. Both are named by their dotted path, so keys
may not contain ``"."``. ``load`` returns the same tree (tuples come back as lists).

Saving is atomic: the file is written to a temporary file in the same directory, flushed
and fsync'ed, renamed over the target with ``os.replace`` and the directory fsync'ed, so a
crash at any moment leaves either the old file or the new one. Loading never executes
code and bounds every size by the file size; anything malformed raises ``GnosisError``.

Example::

    sn.save("run.gnosis", {"state": np.zeros((1, 248)), "meta": {"cycle": 12}})
    tree = sn.load("run.gnosis")            # {"state": array(...), "meta": {"cycle": 12}}
    view = sn.load("run.gnosis", mmap=True) # read-only arrays backed by the file
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap as _mmap
import os
import secrets
import stat
import struct
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from syntonic.ir.errors import GnosisError

MAGIC = b"\x89GNOSIS\n"
VERSION = 1
PREFIX = struct.Struct("<8sIIQQ")  # magic, version, flags, header_len, data_len
DIGEST_SIZE = 32  # SHA-256
ALIGN = 64
MAX_HEADER_BYTES = 16 * 1024 * 1024  # names and metadata; tensors live in the data section
MAX_NDIM = 64
MAX_ARRAY_BYTES = 2**62  # numpy's own limit is just below 2**63
TEMP_SUFFIX = ".gnosis-tmp"

# dtype name in the header -> little-endian numpy dtype
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in [
        ("bool", "?"), ("i8", "i1"), ("i16", "i2"), ("i32", "i4"), ("i64", "i8"),
        ("u8", "u1"), ("u16", "u2"), ("u32", "u4"), ("u64", "u8"),
        ("f16", "f2"), ("f32", "f4"), ("f64", "f8"), ("c64", "c8"), ("c128", "c16"),
    ]
}
_NAME_OF = {(d.kind, d.itemsize): name for name, d in DTYPES.items()}

Tree = dict[str, Any]


# ---------------------------------------------------------------------------- saving
def save(path: str | os.PathLike[str], tree: Mapping[str, Any]) -> None:
    """Write `tree` to `path` as a ``.gnosis`` file, atomically.

    Arrays become tensors, other leaves JSON metadata (see the module docstring). On any
    failure the previous file at `path`, if there was one, is left untouched.

    Example::

        sn.save("w.gnosis", {"layer1": {"w": np.eye(3, dtype=np.float32)}, "step": 100})
    """
    path = Path(os.fspath(path))
    if path.is_symlink():  # replace the file the link points to, not the link
        path = Path(os.path.realpath(path))
    tensors, metadata = _flatten(tree)
    entries: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, arr in tensors:
        entries[name] = {"dtype": _NAME_OF[(arr.dtype.kind, arr.dtype.itemsize)],
                         "shape": list(arr.shape), "offset": offset}
        offset = _align(offset + arr.nbytes)
    data_len = offset
    try:
        header = json.dumps({"tensors": entries, "metadata": metadata}, allow_nan=False,
                            ensure_ascii=True, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise GnosisError(f"{path}: metadata is not JSON: {exc} (store NaN/inf and "
                          "other non-JSON values as numpy arrays)") from None
    if len(header) > MAX_HEADER_BYTES:
        raise GnosisError(f"{path}: the header would be {len(header)} bytes, over the "
                          f"{MAX_HEADER_BYTES}-byte limit (too many names or too much "
                          "metadata; store large values as arrays)")
    prefix = PREFIX.pack(MAGIC, VERSION, 0, len(header), data_len)
    padding = b" " * (_align(PREFIX.size + len(header)) - PREFIX.size - len(header))
    _write_atomically(path, prefix + header + padding, tensors, entries, data_len)


def _write_atomically(path: Path, head: bytes, tensors: list[tuple[str, np.ndarray]],
                      entries: dict[str, dict[str, Any]], data_len: int) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o644
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise GnosisError(f"{path}: cannot create a temporary file in {directory}: "
                          f"{exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            hasher = hashlib.sha256()
            _write(f, hasher, head)
            written = 0
            for name, arr in tensors:
                gap = entries[name]["offset"] - written
                _write(f, hasher, b"\0" * gap)
                _write_tensor(f, hasher, arr)
                written += gap + arr.nbytes
            _write(f, hasher, b"\0" * (data_len - written))
            f.write(hasher.digest())
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise GnosisError(f"{path}: writing failed, previous file kept: "
                              f"{exc.strerror or exc}") from exc
        raise
    _fsync_directory(directory)


def _write(f: BinaryIO, hasher: Any, data: bytes | memoryview) -> None:
    f.write(data)
    hasher.update(data)


def _write_tensor(f: BinaryIO, hasher: Any, arr: np.ndarray) -> None:
    """Write one tensor's raw bytes without copying more than numpy must."""
    if arr.size:
        _write(f, hasher, memoryview(arr.reshape(-1).view(np.uint8)))


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some platforms cannot open directories, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files that interrupted saves to `path` left behind (safe to delete only
    when no other process is saving to `path`). Example: ``for t in temp_files(p): t.unlink()``.
    """
    p = Path(os.fspath(path))
    directory = p.parent if str(p.parent) else Path(".")
    return sorted(directory.glob(f".{_glob_escape(p.name)}.*{TEMP_SUFFIX}"))


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _flatten(tree: Mapping[str, Any]) -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    if not isinstance(tree, Mapping):
        raise GnosisError(f"sn.save needs a dict of arrays and metadata, got "
                          f"{type(tree).__name__}")
    tensors: list[tuple[str, np.ndarray]] = []
    metadata: dict[str, Any] = {}

    def walk(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or not key or "." in key:
                raise GnosisError(f"key {key!r} under {prefix or 'the root'!r}: keys must be "
                                  "non-empty strings without '.' (dots join nested names)")
            name = prefix + key
            if isinstance(value, Mapping):
                if value:
                    walk(value, name + ".")
                else:
                    metadata[name] = {}
            elif isinstance(value, (np.ndarray, np.generic)):
                tensors.append((name, _tensor(name, np.asarray(value))))
            else:
                metadata[name] = value

    walk(tree, "")
    return tensors, metadata


def _tensor(name: str, arr: np.ndarray) -> np.ndarray:
    key = (arr.dtype.kind, arr.dtype.itemsize)
    if key not in _NAME_OF or arr.dtype.fields is not None:
        raise GnosisError(f"tensor {name!r} has dtype {arr.dtype}, which .gnosis does not "
                          f"store (supported: {', '.join(DTYPES)})")
    return np.asarray(arr, dtype=DTYPES[_NAME_OF[key]], order="C")  # keeps 0-d


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


# --------------------------------------------------------------------------- loading
def load(path: str | os.PathLike[str], mmap: bool = False) -> Tree:
    """Read a ``.gnosis`` file back into the tree that was saved.

    The checksum is always verified. With ``mmap=True`` the arrays are read-only views of
    a memory map of the file (nothing is copied; the map lives as long as the arrays do);
    otherwise they are ordinary writable arrays. Any malformed file raises ``GnosisError``.

    Example::

        tree = sn.load("run.gnosis")
        state = tree["state"]
    """
    path = Path(os.fspath(path))
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device lie
            raise GnosisError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data_start, header_len, data_len = _check_prefix(path, f.read(PREFIX.size), size)
            if mmap:
                buf: Any = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
            else:
                buf = bytearray(size)
                f.seek(0)
                got = f.readinto(buf)
                if got != size:
                    raise GnosisError(f"{path}: truncated while reading ({got} of {size} "
                                      "bytes); was it being written by another program?")
    except OSError as exc:
        raise GnosisError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    view = memoryview(buf)
    body = size - DIGEST_SIZE
    if hashlib.sha256(view[:body]).digest() != bytes(view[body:]):
        raise GnosisError(f"{path}: checksum mismatch: the file is corrupted")
    header = _parse_header(path, bytes(view[PREFIX.size:PREFIX.size + header_len]))
    tree: Tree = {}
    for name, arr in _tensors(path, header, buf, data_start, data_len, mmap):
        _insert(path, tree, name, arr)
    for name, value in header["metadata"].items():
        _insert(path, tree, name, value)
    return tree


def _check_prefix(path: Path, prefix: bytes, size: int) -> tuple[int, int, int]:
    """Validate magic, version and sizes against the file size; return the data offset."""
    if len(prefix) < 8 or not prefix.startswith(MAGIC):
        if MAGIC.startswith(prefix[:8]):
            raise GnosisError(f"{path}: truncated: {size} bytes is shorter than the "
                              f"{PREFIX.size}-byte .gnosis prefix")
        raise GnosisError(f"{path}: not a .gnosis file (magic {prefix[:8]!r}, expected "
                          f"{MAGIC!r})")
    if len(prefix) < PREFIX.size:
        raise GnosisError(f"{path}: truncated: {size} bytes is shorter than the "
                          f"{PREFIX.size}-byte .gnosis prefix")
    _, version, flags, header_len, data_len = PREFIX.unpack(prefix)
    if version != VERSION:
        raise GnosisError(f"{path}: unsupported .gnosis version {version} (this Syntonic "
                          f"reads version {VERSION})")
    if flags != 0:
        raise GnosisError(f"{path}: unsupported .gnosis flags {flags:#x} (expected 0)")
    if header_len > MAX_HEADER_BYTES:
        raise GnosisError(f"{path}: header length {header_len} is over the "
                          f"{MAX_HEADER_BYTES}-byte limit: the file is corrupted")
    data_start = _align(PREFIX.size + header_len)
    expected = data_start + data_len + DIGEST_SIZE
    if expected > size:
        raise GnosisError(f"{path}: truncated: the prefix promises {expected} bytes "
                          f"(header {header_len}, data {data_len}), the file has {size}")
    if expected < size:
        raise GnosisError(f"{path}: {size - expected} unexpected trailing bytes after the "
                          "checksum: the file is corrupted")
    return data_start, header_len, data_len


def _parse_header(path: Path, raw: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate key in a JSON object")
        return out

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates,
                            parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise GnosisError(f"{path}: the header is not valid JSON: {exc}") from None
    if (not isinstance(header, dict) or set(header) != {"tensors", "metadata"}
            or not isinstance(header["tensors"], dict)
            or not isinstance(header["metadata"], dict)):
        raise GnosisError(f"{path}: the header must be a JSON object with exactly the keys "
                          "'tensors' and 'metadata' (both objects)")
    return header


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _tensors(path: Path, header: dict[str, Any], buf: Any, data_start: int, data_len: int,
             mmap: bool) -> Iterator[tuple[str, np.ndarray]]:
    for name, entry in header["tensors"].items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "offset"}:
            raise GnosisError(f"{where}: expected an object with keys dtype, shape, offset")
        dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise GnosisError(f"{where}: unknown dtype {entry['dtype']!r}")
        shape, offset = entry["shape"], entry["offset"]
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise GnosisError(f"{where}: shape must be a list of at most {MAX_NDIM} "
                              f"non-negative ints, got {_short(shape)}")
        if type(offset) is not int or offset < 0:
            raise GnosisError(f"{where}: offset must be a non-negative int, got "
                              f"{_short(offset)}")
        nonzero = math.prod(max(d, 1) for d in shape) * dtype.itemsize
        nbytes = math.prod(shape) * dtype.itemsize
        if nonzero > MAX_ARRAY_BYTES or offset + nbytes > data_len:
            raise GnosisError(f"{where}: {_short(shape)} {entry['dtype']} at offset {offset} "
                              f"does not fit the {data_len}-byte data section")
        try:
            arr = np.frombuffer(buf, dtype, math.prod(shape), data_start + offset)
            arr = arr.reshape(shape)
        except ValueError as exc:
            raise GnosisError(f"{where}: {exc}") from None
        if not mmap and sys.byteorder != "little":
            arr = arr.astype(dtype.newbyteorder("="))
        yield name, arr


def _insert(path: Path, tree: Tree, name: Any, value: Any) -> None:
    parts = name.split(".") if isinstance(name, str) else [""]
    if not all(parts):
        raise GnosisError(f"{path}: invalid name {_short(name)} (dotted, non-empty parts)")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise GnosisError(f"{path}: name {name!r} nests under a tensor or value")
    if parts[-1] in node:
        raise GnosisError(f"{path}: name {name!r} is stored twice (or nests over another)")
    node[parts[-1]] = value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
