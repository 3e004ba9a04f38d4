"""NVRTC: CUDA C source -> PTX or CUBIN, through ``cuda-bindings`` (no GPU needed).

``cuda.bindings`` is imported on first use, so this module (and the package) import
without the CUDA extra. Options: ``-std=c++17 --gpu-architecture=<arch> -default-device``
and nothing that relaxes IEEE semantics (no ``--use_fast_math``: precise division,
square root and denormals, as the backend's accuracy notes assume).

Every compile writes the source to a file first (under the system temp directory), so a
:class:`~syntonic.ir.errors.BackendError` can name it next to NVRTC's log: the reproducer.

PTX versions: NVRTC 13.0.x emits PTX ISA 9.0, which the CUDA 13.0 driver and ``ptxas``
accept; newer NVRTC wheels emit PTX a 13.0 driver rejects (see ARCHITECTURE.md, "GPU
facts"): prefer CUBIN for a known device.

Example::

    ptx = compile_ptx(generate(program, "f").source)            # compute_90
    cubin = compile_cubin(source, arch="sm_90")
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from syntonic.ir.errors import BackendError

OPTIONS = ("-std=c++17", "-default-device")


def available() -> bool:
    """True when ``cuda.bindings.nvrtc`` imports and the NVRTC library loads."""
    try:
        nvrtc = _nvrtc()
        err, _, _ = nvrtc.nvrtcVersion()
        return int(err) == 0
    except Exception:  # noqa: BLE001 - any failure to load means "not available"
        return False


def version() -> tuple[int, int]:
    """NVRTC's (major, minor) version."""
    nvrtc = _nvrtc()
    err, major, minor = nvrtc.nvrtcVersion()
    _check(nvrtc, err, "nvrtcVersion")
    return int(major), int(minor)


def supported_archs() -> tuple[int, ...]:
    """The SM versions this NVRTC can compile for (e.g. 75, 80, 90)."""
    nvrtc = _nvrtc()
    err, archs = nvrtc.nvrtcGetSupportedArchs()
    _check(nvrtc, err, "nvrtcGetSupportedArchs")
    return tuple(int(a) for a in archs)


def source_path(source: str, name: str = "syntonic") -> Path:
    """Write `source` under the temp directory (named by its hash); returns the path."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "syntonic-cuda"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]
    path = folder / f"{safe}-{digest}.cu"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: a concurrent compile never sees half a file
    return path


def compile_ptx(source: str, arch: str = "compute_90", name: str = "syntonic") -> str:
    """PTX text of `source` for virtual architecture `arch` (``compute_XY``)."""
    return _compile(source, arch, name, cubin=False).decode()


def compile_cubin(source: str, arch: str = "sm_90", name: str = "syntonic") -> bytes:
    """CUBIN (device machine code) of `source` for real architecture `arch` (``sm_XY``)."""
    return _compile(source, arch, name, cubin=True)


# ------------------------------------------------------------------ internals


def _nvrtc() -> Any:
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise BackendError(
            "the CUDA backend needs cuda-bindings and NVRTC: "
            "pip install cuda-bindings 'nvidia-cuda-nvrtc==13.0.*'") from exc
    return nvrtc


def _check(nvrtc: Any, err: Any, what: str) -> None:
    if int(err) != 0:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        raise BackendError(f"NVRTC {what} failed: {msg.decode() if msg else err}")


def _compile(source: str, arch: str, name: str, cubin: bool) -> bytes:
    want = "sm_" if cubin else "compute_"
    if not arch.startswith(want):
        raise BackendError(f"{'CUBIN' if cubin else 'PTX'} needs an architecture {want}XY, "
                           f"got {arch!r}")
    path = source_path(source, name)
    nvrtc = _nvrtc()
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), str(path).encode(), 0, [], [])
    _check(nvrtc, err, "nvrtcCreateProgram")
    try:
        opts = [o.encode() for o in (*OPTIONS, f"--gpu-architecture={arch}")]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        log = _log(nvrtc, prog)
        if int(err) != 0:
            _, msg = nvrtc.nvrtcGetErrorString(err)
            raise BackendError(
                f"NVRTC could not compile the generated CUDA source ({msg.decode()}, "
                f"{arch}).\nsource: {path}\noptions: {' '.join(o.decode() for o in opts)}\n"
                f"log:\n{log}")
        if cubin:
            err, size = nvrtc.nvrtcGetCUBINSize(prog)
            _check(nvrtc, err, "nvrtcGetCUBINSize")
            out = b" " * size
            (err,) = nvrtc.nvrtcGetCUBIN(prog, out)
            _check(nvrtc, err, "nvrtcGetCUBIN")
            return out
        err, size = nvrtc.nvrtcGetPTXSize(prog)
        _check(nvrtc, err, "nvrtcGetPTXSize")
        out = b" " * size
        (err,) = nvrtc.nvrtcGetPTX(prog, out)
        _check(nvrtc, err, "nvrtcGetPTX")
        return out.rstrip(b"\x00")
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _log(nvrtc: Any, prog: Any) -> str:
    err, size = nvrtc.nvrtcGetProgramLogSize(prog)
    if int(err) != 0 or size <= 1:
        return ""
    buf = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, buf)
    return buf.rstrip(b"\x00").decode(errors="replace")


__all__ = ["OPTIONS", "available", "compile_cubin", "compile_ptx", "source_path",
           "supported_archs", "version"]
