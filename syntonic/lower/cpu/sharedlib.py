"""Machine code as shared libraries: link an object file with the system linker, load it.

A compiled program's object code is linked once, at compile time, into a shared library
(``ld -shared``, else ``cc -shared``); the compile cache stores the library's bytes next to
the object code. Loading it is a ``dlopen`` through ctypes: no LLVM, no execution engine,
so a process that only runs cached code never imports ``llvmlite.binding`` (about 30 ms).
Without a linker, :func:`link` returns None and callers load the object code into LLVM's
MCJIT instead (:meth:`syntonic.lower.cpu.engine.Engine.load`).

The object code must be position independent (the engine emits PIC when :func:`linker`
finds a linker). This module imports only the standard library (the linker's modules on first link).

Example::

    lib = link(obj)                          # bytes of a .so, or None without a linker
    addrs = load(lib, ("f_run", "f_fast"))   # symbol -> address in this process
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
import threading
import time
import warnings

_linker: list[str] | None | bool = False  # False: not looked up yet
_handles: list[ctypes.CDLL] = []  # loaded libraries stay loaded (their code is in use)
_lock = threading.Lock()


def linker() -> list[str] | None:
    """The command that links a shared library (``ld -shared`` preferred: no compiler
    driver, ~3 ms), or None when neither ``ld`` nor ``cc`` is on PATH or not on Linux."""
    global _linker
    if _linker is False:
        import shutil

        found = None
        if os.name == "posix" and os.uname().sysname == "Linux":
            ld, cc = shutil.which("ld"), shutil.which("cc")
            if ld:
                found = [ld, "-shared", "-Bsymbolic", "--hash-style=both"]
            elif cc:
                found = [cc, "-shared", "-nostdlib", "-Wl,-Bsymbolic"]
        _linker = found
    return _linker  # type: ignore[return-value]


def link(obj: bytes) -> bytes | None:
    """The bytes of a shared library made from the object file `obj`, or None (no linker,
    or the linker failed: warned once per failure, the caller falls back to MCJIT).

    The linker is started with ``os.posix_spawn`` (no ``subprocess`` import, ~5 ms, in
    the process's first compile)."""
    cmd = linker()
    if cmd is None:
        return None
    with tempfile.TemporaryDirectory(prefix="syntonic-link-") as d:
        src, out, log = (os.path.join(d, n) for n in ("code.o", "code.so", "ld.log"))
        with open(src, "wb") as f:
            f.write(obj)
        try:
            with open(log, "wb") as err:
                fd = err.fileno()
                pid = os.posix_spawn(cmd[0], [*cmd, "-o", out, src], os.environ,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1),
                                                   (os.POSIX_SPAWN_DUP2, fd, 2)])
            code = _wait(pid, LINK_TIMEOUT_S)
            if code != 0:
                raise OSError(f"exit status {code}")
            with open(out, "rb") as f:
                return f.read()
        except OSError as exc:
            try:
                with open(log, "rb") as f:
                    detail = f.read().decode(errors="replace").strip()
            except OSError:
                detail = ""
            warnings.warn(f"linking compiled code with {cmd[0]} failed ({exc}; {detail}); "
                          "loading it with LLVM's MCJIT instead", RuntimeWarning,
                          stacklevel=2)
            return None


LINK_TIMEOUT_S = 60.0  # a linker still running after this long is killed (MCJIT instead)


def _wait(pid: int, timeout: float) -> int:
    """The exit code of child `pid`; kills it and raises OSError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise OSError(f"timed out after {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def load(lib: bytes, symbols: tuple[str, ...]) -> dict[str, int]:
    """dlopen the shared library `lib`; the address of each symbol.

    The bytes go to a fresh uniquely named file which is removed right after ``dlopen``
    (the mapping keeps it alive), so two libraries never share a path (the dynamic loader
    would return the first one for the second). Raises OSError when the library cannot
    be loaded or lacks a symbol.
    """
    errors = []
    for d in _load_dirs():
        try:
            fd, path = tempfile.mkstemp(prefix="syntonic-", suffix=".so", dir=d)
        except OSError as exc:
            errors.append(exc)
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(lib)
            handle = ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
        except OSError as exc:  # e.g. a noexec mount: try the next directory
            errors.append(exc)
            continue
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        with _lock:
            _handles.append(handle)
            _worked(d)
        try:
            return {s: ctypes.cast(getattr(handle, s), ctypes.c_void_p).value or 0
                    for s in symbols}
        except AttributeError as exc:
            raise OSError(f"compiled library lacks a symbol: {exc}") from None
    raise OSError(f"could not load compiled code: {errors}")


_dirs: list[str] = []


def _load_dirs() -> list[str]:
    """Where a library may be put for dlopen, the one that worked last first (a noexec
    mount fails dlopen and the next is tried). Not tempfile.gettempdir(): it writes a
    probe file (~4 ms) that a warm start cannot afford."""
    if not _dirs:
        env = [os.environ.get(v) for v in ("TMPDIR", "TEMP", "TMP")]
        for d in [*env, "/tmp", "/var/tmp", "/dev/shm", os.getcwd()]:
            if d and d not in _dirs and os.path.isdir(d):
                _dirs.append(d)
    return list(_dirs)


def _worked(d: str) -> None:
    if _dirs and _dirs[0] != d:
        _dirs.remove(d)
        _dirs.insert(0, d)
