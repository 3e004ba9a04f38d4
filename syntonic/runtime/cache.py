"""The compile cache: compiled CPU code by key, in memory and on disk.

A key is the SHA-256 of everything that determines the machine code: the traced IR text
(with source locations, since they are part of the dumps), the compile configuration,
the host (:func:`host_key`: machine, CPU model and feature flags, the llvmlite build and
with it LLVM's version), and a fingerprint of Syntonic's own sources (so editing a pass
or the code generator never serves stale code). Keying on the *traced* IR rather than on
the optimised IR lets a warm hit skip the passes, codegen and LLVM entirely; the
optimised IR is a function of that key. Every part of the key is cheap to compute
without LLVM (the host key reads ``/proc/cpuinfo``'s first block instead of asking LLVM
for the target), so a process that only runs cached code never loads LLVM; the target
LLVM saw when compiling is kept in the entry's metadata (``target``).

An entry on disk is one file ``<dir>/<key[:2]>/<key>.snc``: a magic line, a JSON header
(metadata: kernel plan, IR and LLVM text for dumps), the object code and the shared
library linked from it (empty without a system linker), followed by a SHA-256 of all
three. Writes go to a unique temporary file in the same directory, are fsync'ed and
renamed into place, so concurrent processes never see a partial entry; a truncated or
corrupt entry is reported with a warning, ignored and rebuilt. No pickles.

The disk holds at most ``SYNTONIC_CACHE_MAX_MB`` (2048 MB; 0: unbounded). A write that
takes it over the bound removes the least recently used entries (a disk hit marks its
entry used) until it is within three quarters of it; the entry just written stays, as do
entries other processes have open. Temporary files of writers that died are removed
after an hour. Entries of an older Syntonic or host are never hit again, so they age out.

Settings (:mod:`syntonic.config`): ``SYNTONIC_CACHE=off|ro|rw`` (default ``rw``),
``SYNTONIC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/syntonic`` or ``~/.cache/syntonic``),
``SYNTONIC_CACHE_MAX_MB``.

Example::

    >>> import syntonic as sn
    >>> sn.cache.info()        # {'dir': ..., 'mode': 'rw', 'entries': 3, 'bytes': ...}
    >>> sn.cache.clear()       # remove every entry (memory and disk)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

MAGIC = b"SYNTONIC-CPU-CACHE 2\n"
SUFFIX = ".snc"
MODES = ("off", "ro", "rw")
TMP_STALE_S = 3600.0  # a temporary file this old belongs to a writer that died


class CacheWarning(UserWarning):
    """A cache entry could not be read or written; it is rebuilt (never fatal)."""


class Entry(NamedTuple):
    """A cached compilation: JSON-able metadata, the object code and, where the system
    has a linker, the shared library linked from it (loaded without LLVM).

    (NamedTuples, not dataclasses: this module loads on a warm process's first call,
    where a dataclass costs ~1 ms to create.)"""

    meta: dict[str, Any]
    obj: bytes
    lib: bytes = b""


class _Settings(NamedTuple):
    mode: str
    dir: Path
    max_bytes: int = 0  # 0: unbounded


def _settings_from_config() -> _Settings:
    from syntonic import config

    cfg = config.current()
    mode = cfg.cache
    if mode not in MODES:
        warnings.warn(f"SYNTONIC_CACHE={mode!r} is not one of {MODES}; using 'rw'",
                      CacheWarning, stacklevel=2)
        mode = "rw"
    base = cfg.cache_dir
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".cache")
        base = os.path.join(xdg, "syntonic")
    return _Settings(mode, Path(base), max(cfg.cache_max_mb, 0) << 20)


_override: list[_Settings] = []
_memory: dict[str, Entry] = {}
_pending: list[threading.Thread] = []  # entries being completed and written (put)
_lock = threading.Lock()
_stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "writes": 0, "corrupt": 0,
          "evicted": 0}


def _current() -> _Settings:
    return _override[-1] if _override else _settings_from_config()


@contextmanager
def configure(mode: str | None = None, dir: str | os.PathLike[str] | None = None,
              max_bytes: int | None = None) -> Iterator[None]:
    """Use another cache mode/directory/size bound inside a ``with`` block (tests, tools)."""
    old = _current()
    if mode is not None and mode not in MODES:
        raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
    _override.append(_Settings(mode or old.mode, Path(dir) if dir is not None else old.dir,
                               old.max_bytes if max_bytes is None else max(max_bytes, 0)))
    try:
        yield
    finally:
        _override.pop()


def mode() -> str:
    return _current().mode


def make_key(*parts: str) -> str:
    """SHA-256 hex digest of the parts (each length-prefixed, so joins are unambiguous)."""
    h = hashlib.sha256()
    for p in parts:
        data = p.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


_fingerprint: str | None = None
_host: str | None = None


# What turns a traced graph into machine code and runs it: the key holds the traced IR
# itself, so the front end (tracing, autodiff, modules, the engine) needs no fingerprint.
COMPILER_PACKAGES = ("ir", "passes", "lower", "runtime")


def source_fingerprint() -> str:
    """A hash of the names, sizes and mtimes of the compiler's source files: the
    top-level modules and :data:`COMPILER_PACKAGES` (computed once per process)."""
    global _fingerprint
    if _fingerprint is None:
        import syntonic

        root = os.path.dirname(os.path.abspath(syntonic.__file__))
        h = hashlib.sha256(getattr(syntonic, "__version__", "?").encode())
        for rel, st in sorted(_sources(root, "", COMPILER_PACKAGES)):
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        _fingerprint = h.hexdigest()[:16]
    return _fingerprint


def _sources(root: str, rel: str, packages: tuple[str, ...] | None = None
             ) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat) of every .py/.lark file under root (os.scandir), in the
    subdirectories `packages` only when given."""
    with os.scandir(os.path.join(root, rel)) as it:
        for d in it:
            name = f"{rel}/{d.name}" if rel else d.name
            if d.is_dir(follow_symlinks=False):
                if d.name != "__pycache__" and (packages is None or d.name in packages):
                    yield from _sources(root, name)
            elif d.name.endswith((".py", ".lark")):
                yield name, d.stat()


def host_key() -> str:
    """What about this machine and toolchain changes the machine code, without LLVM:
    OS and machine, the CPU's vendor/family/model and feature flags (``/proc/cpuinfo``,
    else :mod:`platform`), and the llvmlite build (its version, and the size and mtime of
    its native library, which bundles LLVM). Computed once per process."""
    global _host
    if _host is None:
        import platform
        import sys

        import llvmlite  # the package only (~0.5 ms); not llvmlite.binding

        lib_dir = os.path.join(os.path.dirname(llvmlite.__file__), "binding")
        libs = []
        with _suppress():
            for name in sorted(os.listdir(lib_dir)):
                if name.startswith("libllvmlite"):
                    st = os.stat(os.path.join(lib_dir, name))
                    libs.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        parts = [sys.platform, platform.machine(), f"llvmlite {llvmlite.__version__}",
                 *libs, _cpu_identity()]
        _host = make_key(*parts)[:32]
    return _host


def _cpu_identity() -> str:
    """The first processor block of /proc/cpuinfo minus what varies (MHz, bogomips, ids)."""
    keep = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags",
            "Features", "CPU implementer", "CPU architecture", "CPU variant", "CPU part",
            "isa", "uarch")
    lines = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                name = line.split(":", 1)[0].strip()
                if name in keep:
                    lines.append(line.strip())
    except OSError:
        pass
    if not lines:
        import platform

        lines = [platform.processor(), platform.platform()]
    return "\n".join(lines)


def _path(key: str, st: _Settings | None = None) -> Path:
    return (st or _current()).dir / key[:2] / f"{key}{SUFFIX}"


def get(key: str) -> Entry | None:
    """The entry for `key` from memory, else from disk (mode ro/rw), else None."""
    entry = _memory.get(key)
    if entry is not None:
        _stats["memory_hits"] += 1
        return entry
    if _current().mode == "off":
        _stats["misses"] += 1
        return None
    path = _path(key)
    entry = _read(path)
    if entry is None:
        _stats["misses"] += 1
        return None
    _stats["disk_hits"] += 1
    if _current().mode == "rw":
        with _suppress():
            os.utime(path)  # used now: the size bound removes least recently used first
    with _lock:
        _memory[key] = entry
    return entry


def put(key: str, entry: Entry, finish: Callable[[Entry], Entry] | None = None) -> None:
    """Remember `entry` in memory and (mode rw) write it to disk atomically.

    With `finish` (e.g. linking the entry's shared library) the entry is completed and
    written by a background thread, so a first call does not wait for the linker nor the
    disk; :func:`wait` waits for such writes, and so do :func:`info`, :func:`clear` and
    the interpreter's exit (the thread is not a daemon).
    """
    with _lock:
        _memory[key] = entry
    st = _current()
    if st.mode != "rw":
        return
    if finish is None:
        _store(st, key, entry)
        return
    thread = threading.Thread(target=_finish_and_store, args=(st, key, entry, finish),
                              name="syntonic-cache-write")
    with _lock:
        _pending.append(thread)
    thread.start()


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's writer threads (and must not inherit a
    lock one of them held at the fork)."""
    global _lock
    _lock = threading.Lock()
    _pending.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def wait() -> None:
    """Wait until every entry being written in the background is on disk."""
    while True:
        with _lock:
            pending = [t for t in _pending if t is not threading.current_thread()]
        if not pending:
            return
        for t in pending:
            t.join()


def _finish_and_store(st: _Settings, key: str, entry: Entry,
                      finish: Callable[[Entry], Entry]) -> None:
    try:
        try:
            done = finish(entry)
        except Exception as exc:  # noqa: BLE001 - store what there is
            warnings.warn(f"could not complete the compile cache entry {key[:12]}: {exc!r}",
                          CacheWarning, stacklevel=1)
            done = entry
        with _lock:
            if _memory.get(key) is entry:  # not cleared meanwhile
                _memory[key] = done
        _store(st, key, done)
    finally:
        with _lock:
            _pending.remove(threading.current_thread())


def _store(st: _Settings, key: str, entry: Entry) -> None:
    path = _path(key, st)
    try:
        _write(path, entry)
        _stats["writes"] += 1
    except OSError as exc:
        warnings.warn(f"could not write the compile cache entry {path}: {exc}",
                      CacheWarning, stacklevel=3)
        return
    _trim(st, keep=path)


def _trim(st: _Settings, keep: Path) -> None:
    """Bring the disk cache within its bound: least recently used entries first."""
    if st.max_bytes <= 0:
        return
    now = time.time()
    total = 0
    entries: list[tuple[float, int, Path]] = []
    for p in st.dir.glob(f"*/*{SUFFIX}"):
        try:
            stat = p.stat()
        except OSError:
            continue
        if p.name.startswith(".tmp-"):
            if now - stat.st_mtime > TMP_STALE_S:
                with _suppress():
                    p.unlink()
            continue
        total += stat.st_size
        entries.append((stat.st_mtime, stat.st_size, p))
    if total <= st.max_bytes:
        return
    target = st.max_bytes * 3 // 4  # some room, so the next writes do not trim again
    for _, size, p in sorted(entries):
        if total <= target:
            break
        if p == keep:
            continue
        try:
            p.unlink()  # a process that has it open still reads it
        except OSError:
            continue
        total -= size
        _stats["evicted"] += 1


def _encode(entry: Entry) -> bytes:
    header = json.dumps(entry.meta, sort_keys=True, separators=(",", ":")).encode()
    body = b"".join(len(part).to_bytes(8, "little") + part
                    for part in (header, entry.obj, entry.lib))
    return MAGIC + body + hashlib.sha256(body).digest()


def _decode(data: bytes) -> Entry:
    if not data.startswith(MAGIC):
        raise ValueError("bad magic")
    body, digest = data[len(MAGIC):-32], data[-32:]
    if len(data) < len(MAGIC) + 56 or hashlib.sha256(body).digest() != digest:
        raise ValueError("checksum mismatch (truncated or corrupted)")
    parts = []
    pos = 0
    for _ in range(3):  # header, object code, shared library
        n = int.from_bytes(body[pos:pos + 8], "little")
        parts.append(body[pos + 8:pos + 8 + n])
        if len(parts[-1]) != n:
            raise ValueError("inconsistent lengths")
        pos += 8 + n
    if pos != len(body):
        raise ValueError("inconsistent lengths")
    return Entry(json.loads(parts[0]), parts[1], parts[2])


def _read(path: Path) -> Entry | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.warn(f"could not read the compile cache entry {path}: {exc}", CacheWarning,
                      stacklevel=3)
        return None
    try:
        return _decode(data)
    except (ValueError, UnicodeDecodeError) as exc:
        _stats["corrupt"] += 1
        warnings.warn(f"ignoring a corrupt compile cache entry {path} ({exc}); it will be "
                      "rebuilt", CacheWarning, stacklevel=3)
        return None


def _write(path: Path, entry: Entry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_encode(entry))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old entry or the new one
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise


@contextmanager
def _suppress() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def info() -> dict[str, Any]:
    """Where the cache is, its mode, how many entries and bytes it holds, and hit counts
    (after the background writes in flight have finished)."""
    wait()
    st = _current()
    entries = 0
    size = 0
    if st.dir.is_dir():
        for p in st.dir.glob(f"*/*{SUFFIX}"):
            if p.name.startswith(".tmp-"):
                continue
            entries += 1
            with _suppress():
                size += p.stat().st_size
    return {"dir": str(st.dir), "mode": st.mode, "entries": entries,
            "bytes": size, "max_bytes": st.max_bytes, "in_memory": len(_memory), **_stats}


def clear(memory: bool = True, disk: bool = True) -> None:
    """Remove cached entries (both levels by default). Loaded code stays usable.
    Background writes in flight finish first (so none lands after the clear)."""
    wait()
    if memory:
        with _lock:
            _memory.clear()
    st = _current()
    if disk and st.dir.is_dir() and st.mode == "rw":
        for p in st.dir.glob(f"*/*{SUFFIX}"):
            with _suppress():
                p.unlink()
