"""The CUDA driver layer: availability, devices, primary contexts, modules, memory, events.

Everything goes through the driver API of ``cuda-bindings`` (``from cuda.bindings import
driver``), imported lazily so that Syntonic imports without the ``cuda`` extra. Every
``CUresult`` is checked by :func:`check`, which turns a failure into a
:class:`~syntonic.ir.errors.BackendError` naming the call and the driver's error name and
string (``cuGetErrorName`` / ``cuGetErrorString``).

:func:`available` says whether CUDA can be used and, if not, why (no ``cuda`` extra, no
driver ``libcuda``, no device, a driver too old for the NVRTC in use); it is computed
once per process. :func:`get_device` returns the :class:`Device` for an ordinal: its
retained primary context (made current on demand in every thread that uses it) and its
properties (SM count, compute capability, max threads per block).

Modules: :meth:`Device.load_module` loads the CUBIN NVRTC built for the device's own
architecture (``sm_XY``) and falls back to JIT-compiling the PTX; a PTX whose ISA is
newer than the driver becomes a BackendError that says what to do (the PTX from NVRTC
13.5 is rejected by a CUDA 13.0 driver: pin ``nvidia-cuda-nvrtc==13.0.*``).

Example::

    from syntonic.runtime import cuda
    ok, why = available()
    if ok:
        dev = cuda.get_device(0)
        print(dev.name, dev.arch, dev.sm_count)   # NVIDIA H100 80GB HBM3 sm_90 132
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

from syntonic.ir.errors import BackendError
from syntonic.records import record

INSTALL_HINT = "pip install 'syntonic[cuda]' (cuda-bindings and nvidia-cuda-nvrtc==13.0.*)"

_driver: ModuleType | None = None
_import_error: str | None = None
_lock = threading.RLock()
_available: tuple[bool, str] | None = None
_devices: dict[int, Device] = {}


def driver() -> ModuleType:
    """The ``cuda.bindings.driver`` module; BackendError when the cuda extra is missing."""
    global _driver, _import_error
    if _driver is not None:
        return _driver
    try:
        from cuda.bindings import driver as mod
    except ImportError as exc:  # the extra is not installed (or broken)
        _import_error = str(exc)
        raise BackendError(f"the CUDA backend needs the `cuda` extra ({exc}): "
                           f"{INSTALL_HINT}") from None
    _driver = mod
    return mod


def check(result: Any, call: str) -> Any:
    """Unpack a cuda-bindings result ``(CUresult, *values)``; raise BackendError on failure.

    Returns None, the single value, or a tuple of values. Example::

        ptr = check(drv.cuMemAlloc(1024), "cuMemAlloc(1024)")
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != 0:
        raise BackendError(f"{call} failed: {error_text(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def error_text(err: Any) -> str:
    """``NAME: description`` of a CUresult (falls back to the number)."""
    drv = driver()
    try:
        e1, name = drv.cuGetErrorName(err)
        e2, text = drv.cuGetErrorString(err)
    except Exception:  # noqa: BLE001 - an unknown code must not hide the original error
        return f"CUresult {int(err)}"
    name_s = name.decode() if e1 == 0 and isinstance(name, bytes) else f"CUresult {int(err)}"
    text_s = text.decode() if e2 == 0 and isinstance(text, bytes) else ""
    return f"{name_s}: {text_s}" if text_s else name_s


def _error_name(err: Any) -> str:
    return getattr(err, "name", str(err))


class DeviceWarning(UserWarning):
    """``device="auto"`` runs on the CPU because CUDA is unavailable (said once per
    process), or the CUDA backend failed for a function and the CPU runs it instead."""


# ------------------------------------------------------------------ availability


def available() -> tuple[bool, str]:
    """``(True, "NVIDIA H100 ... (sm_90), driver CUDA 13.0")`` or ``(False, why)``.

    Checked once per process, in order: the ``cuda`` extra imports; the driver library
    ``libcuda.so.1`` loads; ``cuInit`` succeeds and a device exists; the driver supports
    at least the CUDA major version of the installed NVRTC (its CUBIN/PTX need it).
    Never raises. Example::

        ok, why = sn.cuda_available()   # (False, 'no NVIDIA driver: ...') on a laptop
    """
    global _available
    if _available is None:
        with _lock:
            if _available is None:
                _available = _probe()
    return _available


def reset_availability() -> None:
    """Forget the cached :func:`available` answer (tests; after installing a driver)."""
    global _available
    with _lock:
        _available = None


def require() -> None:
    """Raise one clear BackendError unless :func:`available` says yes."""
    ok, why = available()
    if not ok:
        raise BackendError(f"CUDA is not available: {why}")


def _probe() -> tuple[bool, str]:
    # Cheap checks first: without a driver, cuda.bindings (~60 ms) is never imported.
    try:
        import importlib.util

        found = importlib.util.find_spec("cuda.bindings") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return False, f"the `cuda` extra is not installed (no cuda.bindings); {INSTALL_HINT}"
    missing = _driver_library_error()
    if missing is not None:
        return False, ("no NVIDIA driver: the driver library libcuda.so.1 could not be "
                       f"loaded ({missing}); install the NVIDIA driver, or use device='cpu'")
    try:
        drv = driver()
    except BackendError:
        return False, f"the `cuda` extra is not installed ({_import_error}); {INSTALL_HINT}"
    try:
        err = drv.cuInit(0)[0]
        if err == drv.CUresult.CUDA_ERROR_NO_DEVICE:
            return False, "no CUDA device: the NVIDIA driver is loaded but finds no GPU"
        if err != 0:
            return False, f"cuInit(0) failed: {error_text(err)}"
        count = check(drv.cuDeviceGetCount(), "cuDeviceGetCount")
        if count == 0:
            return False, "no CUDA device: the NVIDIA driver is loaded but finds no GPU"
        version = check(drv.cuDriverGetVersion(), "cuDriverGetVersion")
    except BackendError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. cuda-pathfinder cannot find libcuda
        return False, f"the CUDA driver could not be initialised ({type(exc).__name__}: {exc})"
    need = nvrtc_version()
    have = (version // 1000, (version % 1000) // 10)
    if need is not None and have[0] < need[0]:
        return False, (f"the NVIDIA driver is too old: it supports CUDA {have[0]}.{have[1]}, "
                       f"and the installed NVRTC {need[0]}.{need[1]} builds code that needs "
                       f"a CUDA {need[0]}.x driver; update the driver, or install "
                       f"nvidia-cuda-nvrtc=={have[0]}.{have[1]}.* with a matching "
                       "cuda-bindings")
    try:
        dev = get_device(0)
    except BackendError as exc:
        return False, str(exc)
    return True, f"{dev.name} ({dev.arch}, {dev.sm_count} SMs), driver CUDA {have[0]}.{have[1]}"


def _driver_library_error() -> str | None:
    """Why ``libcuda.so.1`` does not load (None when it does); checked before cuInit so
    that a missing driver is reported plainly rather than by cuda-bindings' loader."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return str(exc)
    return None


def nvrtc_version() -> tuple[int, int] | None:
    """``(major, minor)`` of the NVRTC library, or None when it cannot be loaded."""
    try:
        from cuda.bindings import nvrtc
        err, major, minor = nvrtc.nvrtcVersion()
    except Exception:  # noqa: BLE001 - no wheel / no library: NVRTC is simply unavailable
        return None
    return (int(major), int(minor)) if err == 0 else None


def driver_version() -> tuple[int, int]:
    """``(major, minor)`` of the CUDA version the driver supports."""
    drv = driver()
    v = check(drv.cuDriverGetVersion(), "cuDriverGetVersion")
    return v // 1000, (v % 1000) // 10


# ------------------------------------------------------------------ devices


@record(frozen=True)
class DeviceProperties:
    """What the runtime needs to know about a device."""

    name: str
    major: int
    minor: int
    sm_count: int
    max_threads_per_block: int
    total_memory: int

    @property
    def arch(self) -> str:
        """The real architecture NVRTC compiles CUBIN for, e.g. ``sm_90``."""
        return f"sm_{self.major}{self.minor}"


class Device:
    """One CUDA device and its retained primary context.

    Created by :func:`get_device`. :meth:`activate` makes the context current in the
    calling thread (once per thread). The primary context is the one the CUDA runtime,
    CuPy and PyTorch use, so pointers are shared with them without any peer mapping.
    """

    def __init__(self, ordinal: int) -> None:
        drv = driver()
        check(drv.cuInit(0), "cuInit(0)")
        count = check(drv.cuDeviceGetCount(), "cuDeviceGetCount")
        if not 0 <= ordinal < count:
            raise BackendError(f"CUDA device {ordinal} does not exist: this machine has "
                               f"{count} device(s) (ordinals 0..{count - 1})")
        self.ordinal = ordinal
        self.handle = check(drv.cuDeviceGet(ordinal), f"cuDeviceGet({ordinal})")
        self.context = check(drv.cuDevicePrimaryCtxRetain(self.handle),
                             f"cuDevicePrimaryCtxRetain(device {ordinal})")
        self._local = threading.local()
        self.activate()
        attr = drv.CUdevice_attribute

        def get(a: Any) -> int:
            return int(check(drv.cuDeviceGetAttribute(a, self.handle),
                             f"cuDeviceGetAttribute({_error_name(a)})"))

        raw = check(drv.cuDeviceGetName(256, self.handle), "cuDeviceGetName")
        name = raw.split(b"\0", 1)[0].decode(errors="replace") if isinstance(raw, bytes) \
            else str(raw)
        self.props = DeviceProperties(
            name=name,
            major=get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            minor=get(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            sm_count=get(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            max_threads_per_block=get(attr.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK),
            total_memory=int(check(drv.cuDeviceTotalMem(self.handle), "cuDeviceTotalMem")),
        )

    # properties, for convenience
    @property
    def name(self) -> str:
        return self.props.name

    @property
    def arch(self) -> str:
        return self.props.arch

    @property
    def sm_count(self) -> int:
        return self.props.sm_count

    @property
    def compute_capability(self) -> tuple[int, int]:
        return self.props.major, self.props.minor

    @property
    def max_threads_per_block(self) -> int:
        return self.props.max_threads_per_block

    def activate(self) -> None:
        """Make this device's primary context current in the calling thread."""
        if getattr(self._local, "active", False):
            return
        drv = driver()
        check(drv.cuCtxSetCurrent(self.context), f"cuCtxSetCurrent(device {self.ordinal})")
        self._local.active = True

    def synchronize(self) -> None:
        """Wait for all work queued on this device's context."""
        self.activate()
        check(driver().cuCtxSynchronize(), "cuCtxSynchronize")

    # ------------------------------------------------------------ memory
    def mem_alloc(self, nbytes: int) -> int:
        """``cuMemAlloc``: a device pointer (an int); prefer the pool in :mod:`device`."""
        self.activate()
        return int(check(driver().cuMemAlloc(nbytes), f"cuMemAlloc({nbytes})"))

    def mem_alloc_or_none(self, nbytes: int) -> int | None:
        """Like :meth:`mem_alloc`, but None when the device is out of memory."""
        self.activate()
        drv = driver()
        err, ptr = drv.cuMemAlloc(nbytes)
        if err == drv.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
            return None
        if err != 0:
            raise BackendError(f"cuMemAlloc({nbytes}) failed: {error_text(err)}")
        return int(ptr)

    def mem_free(self, ptr: int) -> None:
        self.activate()
        check(driver().cuMemFree(ptr), "cuMemFree")

    def htod(self, dst: int, src_host: int, nbytes: int) -> None:
        """Copy `nbytes` from host address `src_host` to device pointer `dst`."""
        if nbytes:
            self.activate()
            check(driver().cuMemcpyHtoD(dst, src_host, nbytes), f"cuMemcpyHtoD({nbytes} B)")

    def dtoh(self, dst_host: int, src: int, nbytes: int) -> None:
        """Copy `nbytes` from device pointer `src` to host address `dst_host` (syncs)."""
        if nbytes:
            self.activate()
            check(driver().cuMemcpyDtoH(dst_host, src, nbytes), f"cuMemcpyDtoH({nbytes} B)")

    def dtod(self, dst: int, src: int, nbytes: int) -> None:
        if nbytes:
            self.activate()
            check(driver().cuMemcpyDtoD(dst, src, nbytes), f"cuMemcpyDtoD({nbytes} B)")

    # ------------------------------------------------------------ modules
    def load_module(self, cubin: bytes | None, ptx: str | None, what: str) -> Module:
        """Load a module: the CUBIN for this device's arch, else JIT the PTX.

        `what` names the module in errors (e.g. the function). A PTX the driver cannot
        JIT because its ISA is newer than the driver raises a BackendError saying to pin
        ``nvidia-cuda-nvrtc`` to the driver's CUDA version or update the driver.
        """
        self.activate()
        drv = driver()
        cubin_error = ""
        if cubin:
            err, handle = drv.cuModuleLoadData(cubin)
            if err == 0:
                return Module(self, handle, what, "cubin")
            cubin_error = f"the {self.arch} CUBIN was rejected ({error_text(err)}); "
        if ptx is None:
            raise BackendError(f"cannot load the CUDA module of {what}: {cubin_error}"
                               "and there is no PTX to fall back to")
        err, handle = drv.cuModuleLoadData(ptx.encode() + b"\0")
        if err == 0:
            return Module(self, handle, what, "ptx")
        if err in (drv.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                   drv.CUresult.CUDA_ERROR_INVALID_PTX):
            have = driver_version()
            nv = nvrtc_version()
            raise BackendError(
                f"cannot load the CUDA module of {what}: {cubin_error}the driver (CUDA "
                f"{have[0]}.{have[1]}) rejects the PTX ({error_text(err)}). The PTX comes "
                f"from NVRTC {nv[0] if nv else '?'}.{nv[1] if nv else '?'}, whose PTX ISA is "
                "newer than this driver understands. Fix: install the NVRTC of the driver's "
                f"CUDA version (pip install 'nvidia-cuda-nvrtc=={have[0]}.{have[1]}.*'), or "
                "update the NVIDIA driver")
        raise BackendError(f"cannot load the CUDA module of {what}: {cubin_error}"
                           f"cuModuleLoadData(PTX) failed: {error_text(err)}")


class Module:
    """A loaded CUDA module; :meth:`function` resolves a kernel once (cached)."""

    def __init__(self, device: Device, handle: Any, what: str, kind: str) -> None:
        self.device = device
        self.handle = handle
        self.what = what
        self.kind = kind  # "cubin" or "ptx": what was loaded
        self._functions: dict[str, Any] = {}

    def function(self, symbol: str) -> Any:
        """The ``CUfunction`` of an ``extern "C"`` kernel."""
        fn = self._functions.get(symbol)
        if fn is None:
            fn = check(driver().cuModuleGetFunction(self.handle, symbol.encode()),
                       f"cuModuleGetFunction({symbol!r}) in the module of {self.what}")
            self._functions[symbol] = fn
        return fn


def get_device(ordinal: int = 0) -> Device:
    """The :class:`Device` for `ordinal` (created once; retains the primary context)."""
    dev = _devices.get(ordinal)
    if dev is None:
        with _lock:
            dev = _devices.get(ordinal)
            if dev is None:
                dev = Device(ordinal)
                _devices[ordinal] = dev
    dev.activate()
    return dev


def device_for(ordinal: int = 0) -> Device:
    """:func:`get_device` after :func:`require`: one clear error without a GPU."""
    require()
    return get_device(ordinal)


# ------------------------------------------------------------------ device selection


_reported: list[str] = []


def use_cuda(device: str) -> bool:
    """Whether a function jitted with `device` runs on CUDA.

    ``"cuda"``: True, or one BackendError saying why CUDA is unavailable. ``"auto"``:
    :func:`cuda.available`, and when it is not, a :class:`DeviceWarning` saying why, once
    per process. ``"cpu"`` / ``"interpreter"``: False.
    """
    if device == "cuda":
        ok, why = available()
        if not ok:
            raise BackendError(f"sn.jit(device='cuda'): CUDA is not available: {why} "
                               "(device='auto' runs on the CPU when there is no GPU)")
        return True
    if device != "auto":
        return False
    from syntonic import config

    if config.current().device == "cpu":  # SYNTONIC_DEVICE=cpu: auto means the CPU
        return False
    ok, why = available()
    if not ok and not _reported:
        _reported.append(why)
        warnings.warn(f"sn.jit(device='auto') runs on the CPU: {why}", DeviceWarning,
                      stacklevel=user_stacklevel())
    return ok


def user_stacklevel() -> int:
    """The ``stacklevel`` for a warning issued by this module's caller that points at the
    first frame outside the Syntonic package (the user's call)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame = sys._getframe(2)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    return level


def reset_reported() -> None:
    """Let the next ``device="auto"`` fallback warn again (tests)."""
    _reported.clear()


# ------------------------------------------------------------------ launches, events


def launch(fn: Any, grid: int, block: int, shared_bytes: int, params_addr: int) -> None:
    """``cuLaunchKernel`` of a 1-D grid on the legacy default stream.

    `params_addr` is the address of a ``void*[n]`` whose entries point at the argument
    values (see :class:`syntonic.runtime.gpu.GpuProgram`, which prepares it once).
    """
    err = driver().cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, shared_bytes, 0,
                                  params_addr, 0)[0]
    if err != 0:
        raise BackendError(f"cuLaunchKernel(grid={grid}, block={block}, "
                           f"shared={shared_bytes}) failed: {error_text(err)}")


def stream_wait(stream: int) -> None:
    """Wait for a foreign stream (from ``__cuda_array_interface__``) to finish its work."""
    check(driver().cuStreamSynchronize(driver().CUstream(stream)),
          f"cuStreamSynchronize(stream {stream})")


class Event:
    """A CUDA event on the legacy default stream, for timing (``bench/run_gpu.py``).

    Example::

        start, end = cuda.Event(), cuda.Event()
        start.record(); f(x); end.record()
        ms = start.elapsed_ms(end)
    """

    def __init__(self) -> None:
        drv = driver()
        self.handle = check(drv.cuEventCreate(int(drv.CUevent_flags.CU_EVENT_DEFAULT)),
                            "cuEventCreate")

    def record(self) -> None:
        check(driver().cuEventRecord(self.handle, 0), "cuEventRecord")

    def synchronize(self) -> None:
        check(driver().cuEventSynchronize(self.handle), "cuEventSynchronize")

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to `end` (waits for `end`)."""
        end.synchronize()
        return float(check(driver().cuEventElapsedTime(self.handle, end.handle),
                           "cuEventElapsedTime"))

    def __del__(self) -> None:
        try:
            driver().cuEventDestroy(self.handle)
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


__all__ = ["Device", "DeviceProperties", "DeviceWarning", "Event", "Module", "available", "check",
           "device_for", "driver", "driver_version", "get_device", "launch", "nvrtc_version",
           "require", "reset_availability", "reset_reported", "use_cuda", "user_stacklevel"]
