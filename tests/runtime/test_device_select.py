"""Device selection without a GPU: ``auto`` falls back to the CPU saying why once,
``device="cuda"`` and ``sn.to_device`` fail with one clear error, ``lower(device="cuda")``
gives the CUDA C and PTX stages, and CUDA-array arguments are validated.

None of these tests needs a GPU; the ones that assume there is none skip on a GPU machine.
"""

from __future__ import annotations

import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import syntonic as sn
from syntonic.runtime import cuda, gpu
from syntonic.runtime.device import DeviceArray, size_class

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
HAVE_GPU = cuda.available()[0]
no_gpu = pytest.mark.skipif(HAVE_GPU, reason="checks the behaviour without a GPU")


def _nvrtc_available() -> bool:
    try:
        from syntonic.lower.cuda import nvrtc
    except ImportError:  # pragma: no cover - the module is part of the package
        return False
    return nvrtc.available()


class FakeCudaArray:
    """An object exposing ``__cuda_array_interface__`` only (no memory behind it)."""

    def __init__(self, shape=(2, 3), typestr="<f4", ptr=0x7F0000001000, **extra):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr,
                                         "data": (ptr, False), "version": 3,
                                         "strides": None, **extra}


def _double(x):
    return x * 2.0 + 1.0


# ------------------------------------------------------------------ selection


@no_gpu
def test_auto_runs_on_the_cpu_and_says_why_once():
    gpu.reset_reported()
    f = sn.jit(_double)
    g = sn.jit(lambda x: x - 1.0)
    x = np.arange(6, dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(f(x), x * 2 + 1)
        np.testing.assert_array_equal(f(x), x * 2 + 1)
        g(x)
        g(x.reshape(2, 3))
    said = [w for w in caught if issubclass(w.category, sn.DeviceWarning)]
    assert len(said) == 1, [str(w.message) for w in said]
    message = str(said[0].message)
    assert "runs on the CPU" in message and cuda.available()[1] in message
    assert said[0].filename == __file__  # points at the user's call, not at Syntonic


@no_gpu
def test_device_cuda_without_gpu_is_one_clear_error():
    f = sn.jit(_double, device="cuda")  # creating it is fine; the first call says why
    with pytest.raises(sn.BackendError, match="CUDA is not available") as info:
        f(np.ones(3, np.float32))
    assert cuda.available()[1] in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert isinstance(info.value, sn.SyntonicError)


def test_unknown_device_is_refused():
    with pytest.raises(sn.SyntonicError, match="unknown device 'gpu'"):
        sn.jit(_double, device="gpu")
    with pytest.raises(sn.SyntonicError, match="unknown device 'tpu'"):
        sn.jit(_double).lower(sn.spec("f32[3]"), device="tpu")


def test_cpu_and_interpreter_devices_still_run():
    x = np.arange(4, dtype=np.float64)
    for device in ("cpu", "interpreter"):
        np.testing.assert_array_equal(sn.jit(_double, device=device)(x), x * 2 + 1)


@no_gpu
def test_to_device_without_gpu_is_one_clear_error():
    with pytest.raises(sn.BackendError, match="CUDA is not available") as info:
        sn.to_device(np.ones((2, 2), np.float32))
    assert cuda.available()[1] in str(info.value)
    assert info.value.__context__ is None


def test_availability_reasons(monkeypatch):
    """Each reason is said plainly: extra missing, no driver library."""
    monkeypatch.setattr(cuda, "_driver", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.driver", None)
    monkeypatch.setattr(cuda, "_available", None)
    ok, why = cuda.available()
    assert not ok and "`cuda` extra is not installed" in why and "pip install" in why
    with pytest.raises(sn.BackendError, match="extra is not installed"):
        sn.to_device(np.ones(2, np.float32))
    monkeypatch.undo()
    cuda.reset_availability()
    ok, why = cuda.available()
    if not HAVE_GPU:
        assert not ok and why


def test_syntonic_imports_without_touching_the_driver():
    code = ("import sys, syntonic; "
            "assert 'cuda.bindings.driver' not in sys.modules, 'imported eagerly'")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ stages


@pytest.mark.skipif(not _nvrtc_available(), reason="needs cuda-bindings with NVRTC")
def test_lower_cuda_gives_cuda_and_ptx_for_the_quickstart():
    step = runpy.run_path(str(EXAMPLE))["dhsr_step"]
    low = step.lower(sn.spec("f32[1,248]"), device="cuda")
    assert low.stages[-2:] == ["cuda", "ptx"]
    source = low.text("cuda")
    assert 'extern "C" __global__' in source
    assert "quickstart.py:18" in source and "quickstart.py:19" in source  # file:line
    ptx = low.text("ptx")
    assert ".version" in ptx and ".entry" in ptx
    want = gpu.ptx_arch().removeprefix("compute_")
    assert f".target sm_{want}" in ptx


def test_default_lower_has_cpu_stages_only_without_gpu():
    low = sn.jit(_double).lower(sn.spec("f32[3]"))
    assert "llvm" in low.stages
    assert ("cuda" in low.stages) == HAVE_GPU


# ------------------------------------------------------------------ CUDA arrays


def test_cuda_array_interface_is_wrapped_without_copy():
    fake = FakeCudaArray((2, 3), "<f4")
    arr = sn.as_device_array(fake)
    assert isinstance(arr, DeviceArray)
    assert arr.shape == (2, 3) and arr.dtype == np.float32 and arr.size == 6
    assert arr.nbytes == 24 and arr.ptr == 0x7F0000001000
    cai = arr.__cuda_array_interface__
    assert cai["version"] == 3 and cai["data"] == (0x7F0000001000, False)
    assert cai["shape"] == (2, 3) and cai["typestr"] == "<f4" and cai["strides"] is None
    assert sn.as_device_array(arr) is arr
    assert sn.to_device(fake).ptr == arr.ptr  # no copy either


def test_c_contiguous_strides_are_accepted():
    ok = FakeCudaArray((2, 3), "<f8", strides=(24, 8))
    assert sn.as_device_array(ok).shape == (2, 3)
    unit = FakeCudaArray((1, 4), "<i4", strides=(999, 4))  # a size-1 axis: any stride
    assert sn.as_device_array(unit).dtype == np.int32
    empty = FakeCudaArray((0, 3), "<f4", ptr=0)
    assert sn.as_device_array(empty).size == 0


@pytest.mark.parametrize("fake, error, match", [
    (FakeCudaArray(typestr="<c8"), sn.DTypeError, "complex64 is not supported"),
    (FakeCudaArray(typestr="<u2"), sn.DTypeError, "uint16 is not supported"),
    (FakeCudaArray((2, 3), "<f4", strides=(4, 8)), sn.TraceError, "not C-contiguous"),
    (FakeCudaArray((2, 3), "<f4", strides=(16, 4)), sn.TraceError, r"row-major would be \[12, 4\]"),
    (FakeCudaArray(mask=FakeCudaArray()), sn.TraceError, "masked CUDA arrays"),
    (FakeCudaArray(ptr=0), sn.TraceError, "null data pointer"),
    (FakeCudaArray(ptr=0x7F0000001002), sn.TraceError, "not aligned to its 4-byte elements"),
    (FakeCudaArray(stream=0), sn.TraceError, "'stream' is 0"),
])
def test_cuda_array_interface_validation(fake, error, match):
    with pytest.raises(error, match=match):
        sn.as_device_array(fake)
    f = sn.jit(_double)
    with pytest.raises(error, match=match) as info:  # the same check on a jitted call
        f(fake)
    assert "argument 'x' of `_double`" in str(info.value)


def test_malformed_interface():
    class Broken:
        __cuda_array_interface__ = {"shape": (2,)}

    with pytest.raises(sn.TraceError, match="malformed"):
        sn.as_device_array(Broken())


def test_cuda_array_on_a_cpu_function_says_what_to_do():
    f = sn.jit(_double, device="cpu")
    with pytest.raises(sn.TraceError, match=r"(?s)device='cpu'.*\.numpy\(\)"):
        f(FakeCudaArray())


@no_gpu
def test_cuda_array_argument_without_gpu_is_one_clear_error():
    with pytest.raises(sn.BackendError, match="CUDA is not available"):
        sn.jit(_double)(FakeCudaArray())


def test_cuda_array_traces_like_a_host_array():
    """Tracing reads only shape and dtype: the same signature (and graph) as numpy."""
    f = sn.jit(_double)
    graph = f.trace(FakeCudaArray((2, 3), "<f4"))
    assert graph.text() == f.trace(np.zeros((2, 3), np.float32)).text()
    assert f.cache_size == 1


def test_size_classes():
    assert size_class(1) == 512 and size_class(512) == 512 and size_class(513) == 1024
    assert size_class(1 << 20) == 1 << 20
    big = size_class((1 << 20) + 1)
    assert big == (1 << 20) + (1 << 18)  # 1/8 steps of 2 MiB above 1 MiB
    for n in (3_000_000, 40_000_000, 123_456_789):
        c = size_class(n)
        assert n <= c <= n * 1.125 + 1 and size_class(c) == c


@no_gpu
def test_a_wrapped_array_without_gpu_fails_clearly_everywhere():
    arr = sn.as_device_array(FakeCudaArray((2, 3), "<f4"))
    with pytest.raises(sn.BackendError, match="CUDA is not available"):
        arr.numpy()
    with pytest.raises(sn.BackendError, match="CUDA is not available"):
        sn.jit(_double)(arr)


def test_syntonic_device_cpu_keeps_auto_on_the_cpu(monkeypatch):
    import syntonic as sn
    from syntonic.runtime import cuda

    monkeypatch.setattr(cuda, "available", lambda: (True, ""))  # pretend a GPU is there
    with sn.config.override(device="cpu"):
        assert cuda.use_cuda("auto") is False
    assert cuda.use_cuda("auto") is True
    assert sn.config.Config.from_env({"SYNTONIC_DEVICE": "CPU"}).device == "cpu"
    with pytest.raises(sn.SyntonicError, match="SYNTONIC_DEVICE"):
        sn.config.Config.from_env({"SYNTONIC_DEVICE": "tpu"})
