"""The compile cache: hits, misses, atomic writes, corrupt entries, concurrent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llvmlite")

from syntonic.ir.types import DType  # noqa: E402
from syntonic.lower.cpu.constants import pack_array, unpack_array  # noqa: E402
from syntonic.runtime import cache  # noqa: E402
from syntonic.runtime.native import compile_program  # noqa: E402
from tests.lower.cpu import programs as P  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path: Path):
    with cache.configure(mode="rw", dir=tmp_path):
        cache.clear(memory=True, disk=False)
        yield tmp_path
    cache.clear(memory=True, disk=False)


def _entries(d: Path) -> list[Path]:
    cache.wait()  # a compile's entry is linked and written in the background
    return sorted(p for p in d.glob("*/*.snc"))


def test_a_miss_runs_before_its_library_is_linked_and_written(cache_dir: Path,
                                                                monkeypatch) -> None:
    """A cold compile loads its object code at once (MCJIT); the shared library is linked
    and the entry written by a background thread the caller never waits for. wait() (and
    info/clear) wait for it, and the stored entry then holds the library."""
    import threading

    from syntonic.lower.cpu import engine as engine_mod
    from syntonic.lower.cpu import sharedlib

    if sharedlib.linker() is None:
        pytest.skip("no system linker: nothing is linked")
    release, linking = threading.Event(), threading.Event()
    real_link = engine_mod.Engine.link

    def slow_link(self, obj: bytes) -> bytes | None:
        linking.set()
        assert release.wait(60)
        return real_link(self, obj)

    monkeypatch.setattr(engine_mod.Engine, "link", slow_link)
    key = cache.make_key("test-background-link")
    native = compile_program(P.elementwise("exp", DType.f32, (16,)), key)
    x = np.linspace(0, 1, 16, dtype=np.float32)
    np.testing.assert_allclose(native(x)[0], np.exp(x), rtol=1e-6)  # linker still held
    assert linking.wait(60)
    assert not list(cache_dir.glob("*/*.snc"))
    release.set()
    (path,) = _entries(cache_dir)
    entry = cache._read(path)
    assert entry is not None and entry.lib[:4] == b"\x7fELF"
    assert cache.get(key).lib == entry.lib  # the memory entry is completed too


def test_clear_waits_for_a_background_write(cache_dir: Path, monkeypatch) -> None:
    """clear() lets a write in flight land first, then removes it: no entry reappears."""
    import threading
    import time

    from syntonic.lower.cpu import engine as engine_mod
    from syntonic.lower.cpu import sharedlib

    if sharedlib.linker() is None:
        pytest.skip("no system linker: nothing is linked")
    real_link = engine_mod.Engine.link
    started = threading.Event()

    def slow_link(self, obj: bytes) -> bytes | None:
        started.set()
        time.sleep(0.3)
        return real_link(self, obj)

    monkeypatch.setattr(engine_mod.Engine, "link", slow_link)
    compile_program(P.elementwise("neg", DType.f32, (8,)), cache.make_key("test-clear-wait"))
    assert started.wait(60)
    cache.clear()
    assert not list(cache_dir.glob("*/*.snc"))
    assert cache.info()["in_memory"] == 0


def test_a_failing_link_in_the_background_still_stores_the_object_code(cache_dir: Path,
                                                                       monkeypatch) -> None:
    """If completing the entry fails, the entry is written without its library (a later
    process loads the object code into MCJIT) and a CacheWarning says why."""
    from syntonic.lower.cpu import engine as engine_mod

    def broken_link(self, obj: bytes) -> bytes | None:
        raise RuntimeError("linker exploded")

    monkeypatch.setattr(engine_mod.Engine, "link", broken_link)
    key = cache.make_key("test-broken-link")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile_program(P.elementwise("sin", DType.f32, (8,)), key)
        (path,) = _entries(cache_dir)
    entry = cache._read(path)
    assert entry is not None and entry.obj and entry.lib == b""
    if engine_mod.get_engine().pic:
        assert any("linker exploded" in str(w.message) for w in caught)
    cache.clear(memory=True, disk=False)
    again = compile_program(None, key)
    x = np.linspace(0, 1, 8, dtype=np.float32)
    np.testing.assert_allclose(again(x)[0], np.sin(x), rtol=1e-6)


def test_roundtrip_and_memory_hit(cache_dir: Path) -> None:
    prog = P.elementwise("exp", DType.f32, (16,))
    key = cache.make_key("test-roundtrip")
    native = compile_program(prog, key)
    x = np.linspace(0, 1, 16, dtype=np.float32)
    np.testing.assert_allclose(native(x)[0], np.exp(x), rtol=1e-6)
    assert len(_entries(cache_dir)) == 1
    before = cache.info()["memory_hits"]
    compile_program(None, key)  # no program needed on a hit
    assert cache.info()["memory_hits"] == before + 1
    cache.clear(memory=True, disk=False)
    again = compile_program(None, key)
    assert cache.info()["disk_hits"] >= 1
    np.testing.assert_allclose(again(x)[0], np.exp(x), rtol=1e-6)
    assert "define" in again.text("llvm") and again.text("asm")


def test_truncated_entry_is_ignored_with_a_warning_and_rebuilt(cache_dir: Path) -> None:
    prog = P.elementwise("sin", DType.f32, (8,))
    key = cache.make_key("test-truncated")
    compile_program(prog, key)
    (entry,) = _entries(cache_dir)
    data = entry.read_bytes()
    for cut in (len(data) // 2, 10, len(data) - 1):
        entry.write_bytes(data[:cut])
        cache.clear(memory=True, disk=False)
        with pytest.warns(cache.CacheWarning, match="corrupt"):
            native = compile_program(prog, key)
        x = np.ones(8, np.float32)
        np.testing.assert_allclose(native(x)[0], np.sin(x), rtol=1e-6)
        cache.wait()
        assert entry.read_bytes() == data  # rebuilt in place


def test_bit_flip_is_detected(cache_dir: Path) -> None:
    key = cache.make_key("test-flip")
    compile_program(P.elementwise("cos", DType.f32, (8,)), key)
    (entry,) = _entries(cache_dir)
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x40
    entry.write_bytes(bytes(data))
    cache.clear(memory=True, disk=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.get(key) is None
    assert any(issubclass(w.category, cache.CacheWarning) for w in caught)


def test_modes_off_and_ro(cache_dir: Path) -> None:
    prog = P.elementwise("neg", DType.f32, (4,))
    with cache.configure(mode="off"):
        compile_program(prog, cache.make_key("off"))
    with cache.configure(mode="ro"):
        compile_program(prog, cache.make_key("ro"))
    assert _entries(cache_dir) == []
    info = cache.info()
    assert info["mode"] == "rw" and info["entries"] == 0


def test_size_bound_removes_the_least_recently_used_entries(cache_dir: Path) -> None:
    blob = b"x" * 10_000
    keys = [cache.make_key(f"lru-{i}") for i in range(7)]
    paths = [cache._path(k) for k in keys]
    with cache.configure(max_bytes=0):  # unbounded
        for k in keys[:5]:
            cache.put(k, cache.Entry({"key": k}, blob))
    for i, p in enumerate(paths[:5]):
        os.utime(p, (1000 + i, 1000 + i))  # written long ago, entry 0 first
    cache.clear(memory=True, disk=False)
    assert cache.get(keys[0]) is not None  # a disk hit: entry 0 is now the most recent
    size = paths[0].stat().st_size
    stale = cache_dir / "tmp" / ".tmp-dead.snc"  # a writer that died an hour ago
    stale.parent.mkdir()
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))
    with cache.configure(max_bytes=4 * size + size // 2):
        cache.put(keys[5], cache.Entry({"key": keys[5]}, blob))
    # 6 entries > 4.5: the oldest go until at most 3/4 of the bound (3 entries) is left
    assert [p.exists() for p in paths[:6]] == [True, False, False, False, True, True]
    assert not stale.exists()
    assert cache.info()["evicted"] >= 3
    cache.clear(memory=True, disk=False)
    assert cache.get(keys[1]) is None and cache.get(keys[4]) is not None
    # the entry just written stays, even alone over the bound
    with cache.configure(max_bytes=1):
        cache.put(keys[6], cache.Entry({"key": keys[6]}, blob))
        assert cache.info()["max_bytes"] == 1
    assert [p.exists() for p in paths] == [False] * 6 + [True]


def test_clear_and_info(cache_dir: Path) -> None:
    compile_program(P.elementwise("abs", DType.f32, (4,)), cache.make_key("clear"))
    assert cache.info()["entries"] == 1 and cache.info()["bytes"] > 0
    cache.clear()
    assert cache.info()["entries"] == 0 and cache.info()["in_memory"] == 0


_WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from syntonic.ir.types import DType
    from syntonic.runtime import cache
    from syntonic.runtime.native import compile_program
    from tests.lower.cpu import programs as P
    with cache.configure(mode="rw", dir={dir!r}):
        native = compile_program(P.row_normalize(8, 64), cache.make_key("shared"))
        x = np.arange(8 * 64, dtype=np.float32).reshape(8, 64)
        y, m = native(x)
        print(float(m.sum()), cache.info()["disk_hits"])
""")


def test_four_concurrent_processes_then_restart_hits(cache_dir: Path) -> None:
    script = _WORKER.format(root=str(ROOT), dir=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    sums = {o.split()[0] for o, _ in outs}
    assert len(sums) == 1
    assert len(_entries(cache_dir)) == 1
    assert not list(cache_dir.glob("*/.tmp-*"))  # no temporary file left behind
    # a fresh process finds the entry on disk
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] in sums and int(out[1]) == 1


_WARM = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np
    import syntonic as sn
    from syntonic.runtime import cache

    def f(x):
        return sn.tanh(x * 0.5 + 1.0) * sn.exp(-(x * x))

    g = sn.jit(f, device="cpu")
    with cache.configure(mode="rw", dir={dir!r}):
        y = g(np.linspace(-2, 2, 64, dtype=np.float32))
    print(float(y.sum()), cache.info()["disk_hits"], "llvmlite.binding" in sys.modules,
          "networkx" in sys.modules and "syntonic.passes.fusion" in sys.modules)
""")


def test_warm_start_loads_neither_llvm_nor_the_passes(cache_dir: Path) -> None:
    """A fresh process whose function is in the disk cache dlopens the stored shared
    library: it imports no llvmlite.binding and runs no pass (where there is a linker)."""
    from syntonic.lower.cpu import sharedlib

    script = _WARM.format(root=str(ROOT), dir=str(cache_dir))
    cold = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.split()
    warm = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.split()
    assert cold[0] == warm[0] and cold[1] == "0" and warm[1] == "1"
    assert cold[2] == "True"
    if sharedlib.linker() is not None:
        assert warm[2] == "False", "a warm hit should not load LLVM"
    assert warm[3] == "False", "a warm hit should not import the passes"


def test_entry_without_a_loadable_library_falls_back_to_mcjit(cache_dir: Path,
                                                               monkeypatch) -> None:
    """An entry whose shared library cannot be dlopen'ed (noexec temp dirs, no linker when
    it was compiled) still runs: its object code goes into MCJIT."""
    from syntonic.lower.cpu import sharedlib
    from syntonic.runtime import native as native_mod

    prog = P.elementwise("exp", DType.f32, (16,))
    key = cache.make_key("test-mcjit-fallback")
    compile_program(prog, key)
    entry = cache.get(key)
    assert entry is not None
    cache.clear(memory=True, disk=False)
    native_mod._loaded.pop(key, None)

    def refuse(lib: bytes, symbols: tuple[str, ...]) -> dict[str, int]:
        raise OSError("noexec")

    monkeypatch.setattr(sharedlib, "load", refuse)
    again = compile_program(None, key)
    x = np.linspace(0, 1, 16, dtype=np.float32)
    np.testing.assert_allclose(again(x)[0], np.exp(x), rtol=1e-6)
    # an entry stored without a library (compiled where there was no linker) loads too
    native_mod._loaded.pop(key, None)
    bare = cache.Entry(entry.meta, entry.obj, b"")
    addrs = native_mod._load_code(bare)
    assert all(addrs.values())


def test_shared_library_roundtrip() -> None:
    """link + load: each load is a separate library even for identical bytes."""
    from syntonic.lower.cpu import sharedlib
    from syntonic.lower.cpu.engine import get_engine

    if sharedlib.linker() is None:
        pytest.skip("no system linker")
    from syntonic.lower.cpu.codegen import lower_program

    lowered = lower_program(P.elementwise("neg", DType.f32, (4,)), "roundtrip")
    art = get_engine().compile(lowered.llvm_ir, "roundtrip", lowered.symbols)
    lib = sharedlib.link(art.obj)
    assert lib and lib[:4] == b"\x7fELF"
    a = sharedlib.load(lib, art.symbols)
    b = sharedlib.load(lib, art.symbols)
    assert set(a) == set(art.symbols) and all(a.values())
    assert a != b  # two mappings, not the loader's cached first one
    with pytest.raises(OSError):
        sharedlib.load(lib, ("no_such_symbol",))
    with pytest.raises(OSError):
        sharedlib.load(b"not a library", art.symbols)


def test_a_linker_that_hangs_is_killed_and_mcjit_loads_instead(tmp_path: Path,
                                                               monkeypatch) -> None:
    """link() gives up on a linker after LINK_TIMEOUT_S (killing it): a warning and None,
    so the caller loads the object code into MCJIT; nothing waits forever."""
    import time

    from syntonic.lower.cpu import sharedlib

    hang = tmp_path / "ld"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    monkeypatch.setattr(sharedlib, "_linker", [str(hang)])
    monkeypatch.setattr(sharedlib, "LINK_TIMEOUT_S", 0.3)
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="timed out after 0.3 s"):
        assert sharedlib.link(b"object code") is None
    assert time.monotonic() - t0 < 10


def test_captured_arrays_are_stored_as_raw_bytes_and_come_back_exactly(cache_dir: Path
                                                                        ) -> None:
    """A captured weight used as a GEMM operand and a captured array returned as is are
    kept in the entry as their raw bytes (base64: ~4/3 of them, not a list of numbers),
    and a disk hit gives them back bit for bit (f64 and i32)."""
    import syntonic as sn

    rng = np.random.default_rng(2)
    w = rng.standard_normal((300, 200))  # f64: every bit matters
    table = np.arange(-7, 8, dtype=np.int32)

    def fn(x):
        return x @ w, table

    def call(x):  # one call site (a returned capture is located at the caller's line)
        return sn.jit(fn, device="cpu")(x)

    x = rng.standard_normal((5, 300))
    got = call(x)
    (entry,) = _entries(cache_dir)
    assert entry.stat().st_size < 1.5 * w.nbytes + 200_000
    cache.clear(memory=True, disk=False)
    again = call(x)
    assert cache.info()["disk_hits"] >= 1
    np.testing.assert_allclose(again[0], x @ w, rtol=1e-12)
    assert again[0].tobytes() == got[0].tobytes()
    assert again[1].dtype == np.int32 and again[1].tobytes() == table.tobytes()
    again[1][0] = 99  # a result the caller may write
    assert call(x)[1][0] == -7


def test_pack_array_roundtrip() -> None:
    for a in (np.arange(6, dtype=">i4").reshape(2, 3), np.array([True, False]),
              np.float16([1.5, -np.inf]), np.zeros((0, 3), np.float32)):
        b = unpack_array(pack_array(a))
        assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("=")
        np.testing.assert_array_equal(b, a)
        assert b.flags.writeable


def test_the_cache_is_sn_cache(cache_dir: Path) -> None:
    """The issue's public spelling: sn.cache.info() / sn.cache.clear() (and wait())."""
    import syntonic as sn

    assert sn.cache is cache
    compile_program(P.elementwise("exp", DType.f32, (4,)), cache.make_key("test-sn-cache"))
    sn.cache.wait()
    info = sn.cache.info()
    assert info["dir"] == str(cache_dir) and info["mode"] == "rw" and info["entries"] == 1
    sn.cache.clear()
    assert sn.cache.info()["entries"] == 0 and sn.cache.info()["in_memory"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_background_write_does_not_wait_for_it(cache_dir: Path,
                                                                       monkeypatch) -> None:
    """The writer thread does not exist in a forked child: its wait() returns at once
    and its cache still works (the parent's write lands as usual)."""
    import threading

    from syntonic.lower.cpu import engine as engine_mod
    from syntonic.lower.cpu import sharedlib

    if sharedlib.linker() is None:
        pytest.skip("no system linker: nothing is linked")
    release = threading.Event()
    real_link = engine_mod.Engine.link

    def held_link(self, obj: bytes) -> bytes | None:
        assert release.wait(60)
        return real_link(self, obj)

    monkeypatch.setattr(engine_mod.Engine, "link", held_link)
    compile_program(P.elementwise("exp", DType.f32, (8,)), cache.make_key("test-fork"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not block on the parent's writer
        try:
            cache.wait()
            ok = cache.info()["mode"] == "rw"
            os.write(w, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(w)
    import select
    import signal

    try:
        ready = select.select([r], [], [], 30)[0]
        if not ready:
            os.kill(pid, signal.SIGKILL)
        assert ready and os.read(r, 2) == b"ok", "the forked child blocked in cache.wait()"
    finally:
        release.set()
        os.waitpid(pid, 0)
        os.close(r)
    assert len(_entries(cache_dir)) == 1
