"""The CUDA runtime: device arrays, the memory pool, GpuProgram and jit on CUDA.

Two layers of tests:

* **emulated** (no GPU; needs g++): a fake ``cuda.bindings.driver`` whose device memory
  is host memory and whose ``cuLaunchKernel`` runs the generated CUDA C through the host
  emulation (:mod:`syntonic.lower.cuda.emulate`, the same ``void** kernelParams`` a real
  launch gets). This drives the real runtime code end to end: context and properties,
  module loading, launch argument packing, the pool, device arrays, opaque steps and
  ``sn.jit`` placement, and compares results with the reference interpreter;
* **gpu** (``@pytest.mark.gpu``, skipped cleanly without a device): the same comparisons
  on a real device, for every op family and random graphs, plus CAI interop with CuPy
  and PyTorch when they are installed.
"""

from __future__ import annotations

import ctypes
import re
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import syntonic as sn
from syntonic.ir import interpret
from syntonic.ir.errors import BackendError
from syntonic.lower.cuda import emulate, generate
from syntonic.lower.schedule import lower_to_kernels
from syntonic.passes import run_pipeline
from syntonic.passes.fusion import fuse
from syntonic.runtime import cuda, device, gpu
from syntonic.runtime.device import DeviceArray
from tests.passes.test_semantics import assert_agrees

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
GPU_OK, GPU_WHY = cuda.available()
gpu_only = [pytest.mark.gpu, pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")]


# ------------------------------------------------------------------ a fake driver


class _Enum:
    def __init__(self, **values: int) -> None:
        for k, v in values.items():
            setattr(self, k, v)


class FakeDriver:
    """Just enough of ``cuda.bindings.driver`` for the runtime, backed by host memory.

    Device pointers are host addresses of ctypes buffers; a "CUBIN" is the CUDA source
    itself (``gpu.build_binary`` is replaced so NVRTC is not needed), compiled by the
    emulator on ``cuModuleLoadData``; ``cuLaunchKernel`` calls the emulated kernel with
    the caller's ``void**`` kernelParams.
    """

    CUresult = _Enum(CUDA_SUCCESS=0, CUDA_ERROR_INVALID_VALUE=1, CUDA_ERROR_OUT_OF_MEMORY=2,
                     CUDA_ERROR_NO_DEVICE=100, CUDA_ERROR_INVALID_PTX=218,
                     CUDA_ERROR_UNSUPPORTED_PTX_VERSION=222, CUDA_ERROR_NOT_FOUND=500)
    CUdevice_attribute = _Enum(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK=1,
                               CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT=16,
                               CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR=75,
                               CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR=76)
    CUfunction_attribute = _Enum(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES=8)
    CUevent_flags = _Enum(CU_EVENT_DEFAULT=0)
    NAMES = {0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 2: "CUDA_ERROR_OUT_OF_MEMORY",
             218: "CUDA_ERROR_INVALID_PTX", 222: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
             500: "CUDA_ERROR_NOT_FOUND"}

    def __init__(self, max_threads: int = 256, sm_count: int = 1, reject_cubin: int = 0,
                 reject_ptx: int = 0, memory_limit: int = 1 << 30) -> None:
        self.attrs = {1: max_threads, 16: sm_count, 75: 9, 76: 0}
        self.memory: dict[int, ctypes.Array] = {}
        self.allocs = 0
        self.launched: list[tuple[str, int, int]] = []
        self.reject_cubin = reject_cubin
        self.reject_ptx = reject_ptx
        self.memory_limit = memory_limit
        self.loaded: list[str] = []

    # errors
    def cuGetErrorName(self, err):  # noqa: N802 - the driver's names
        return 0, self.NAMES.get(int(err), f"CUDA_ERROR_{int(err)}").encode()

    def cuGetErrorString(self, err):  # noqa: N802
        return 0, b"fake driver error"

    # init, devices, contexts
    def cuInit(self, flags):  # noqa: N802
        return (0,)

    def cuDeviceGetCount(self):  # noqa: N802
        return 0, 1

    def cuDriverGetVersion(self):  # noqa: N802
        return 0, 13000

    def cuDeviceGet(self, ordinal):  # noqa: N802
        return 0, ordinal

    def cuDevicePrimaryCtxRetain(self, dev):  # noqa: N802
        return 0, ("ctx", dev)

    def cuCtxSetCurrent(self, ctx):  # noqa: N802
        return (0,)

    def cuCtxSynchronize(self):  # noqa: N802
        return (0,)

    def cuDeviceGetAttribute(self, attr, dev):  # noqa: N802
        return 0, self.attrs[attr]

    def cuDeviceGetName(self, length, dev):  # noqa: N802
        return 0, b"Fake GPU\0\0\0"

    def cuDeviceTotalMem(self, dev):  # noqa: N802
        return 0, self.memory_limit

    # memory
    def cuMemAlloc(self, nbytes):  # noqa: N802
        if nbytes == 0:
            return 1, 0
        if sum(len(b) for b in self.memory.values()) + nbytes > self.memory_limit:
            return 2, 0
        buf = (ctypes.c_char * nbytes)()
        ctypes.memset(buf, 0xFF, nbytes)  # undefined contents show up as NaN / -1
        ptr = ctypes.addressof(buf)
        self.memory[ptr] = buf
        self.allocs += 1
        return 0, ptr

    def cuMemFree(self, ptr):  # noqa: N802
        del self.memory[int(ptr)]
        return (0,)

    def _check_range(self, ptr: int, n: int) -> None:
        for base, buf in self.memory.items():
            if base <= ptr and ptr + n <= base + len(buf):
                return
        raise AssertionError(f"device range {ptr:#x}+{n} is not allocated")

    def cuMemcpyHtoD(self, dst, src, n):  # noqa: N802
        self._check_range(int(dst), n)
        ctypes.memmove(int(dst), src, n)
        return (0,)

    def cuMemcpyDtoH(self, dst, src, n):  # noqa: N802
        self._check_range(int(src), n)
        ctypes.memmove(dst, int(src), n)
        return (0,)

    def cuMemcpyDtoD(self, dst, src, n):  # noqa: N802
        self._check_range(int(src), n)
        self._check_range(int(dst), n)
        ctypes.memmove(int(dst), int(src), n)
        return (0,)

    def CUstream(self, value):  # noqa: N802
        return value

    def cuStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    # modules and launches
    def cuModuleLoadData(self, image):  # noqa: N802
        is_ptx = isinstance(image, bytes) and image.endswith(b"\0")
        if (self.reject_ptx if is_ptx else self.reject_cubin):
            return (self.reject_ptx if is_ptx else self.reject_cubin), None
        source = image.rstrip(b"\0").decode()
        self.loaded.append("ptx" if is_ptx else "cubin")
        symbols = tuple(re.findall(
            r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\)\s*)?(\w+)\(', source))

        class Stub:  # what emulate.library_source reads of a CudaModule
            pass

        stub = Stub()
        stub.source, stub.symbols = source, symbols
        return 0, emulate.build([stub])

    def cuModuleGetFunction(self, lib, name):  # noqa: N802
        symbol = name.decode()
        try:
            return 0, (lib.launcher(symbol), symbol)
        except AttributeError:
            return 500, None

    def cuFuncSetAttribute(self, fn, attr, value):  # noqa: N802
        return (0,)

    # events: a host clock
    def cuEventCreate(self, flags):  # noqa: N802
        return 0, [0.0]

    def cuEventRecord(self, event, stream):  # noqa: N802
        import time

        event[0] = time.perf_counter()
        return (0,)

    def cuEventSynchronize(self, event):  # noqa: N802
        return (0,)

    def cuEventElapsedTime(self, start, end):  # noqa: N802
        return 0, (end[0] - start[0]) * 1e3

    def cuEventDestroy(self, event):  # noqa: N802
        return (0,)

    def cuLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, shared, stream, params, extra):  # noqa: N802
        assert (gy, gz, by, bz) == (1, 1, 1, 1) and extra == 0
        assert bx <= self.attrs[1] and bx % 32 == 0
        launcher, symbol = fn
        launcher(gx, bx, ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p)))
        self.launched.append((symbol, gx, bx))
        return (0,)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Install a :class:`FakeDriver` as CUDA device 0 (and restore everything after)."""
    if not emulate.available():
        pytest.skip("the emulated device needs a C++20 compiler (g++ or $CXX)")
    drv = FakeDriver()
    monkeypatch.setattr(cuda, "_driver", drv)
    monkeypatch.setattr(cuda, "_available", (True, "Fake GPU (sm_90), driver CUDA 13.0"))
    monkeypatch.setattr(cuda, "_devices", {})
    monkeypatch.setattr(device, "_pools", {})

    def fake_binary(source: str, arch: str, name: str = "syntonic") -> gpu.Binary:
        return gpu.Binary(source.encode(), source, arch, "fake")

    monkeypatch.setattr(gpu, "build_binary", fake_binary)
    return drv


def _program(fn, *specs):
    graph = sn.jit(fn).trace(*specs)
    program = lower_to_kernels(fuse(run_pipeline(graph)[-1].graph))
    return graph, program


def _compare(graph, got, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = interpret(graph, *args)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_agrees(np.asarray(g), w, f"output {i} of @{graph.name}")


# ------------------------------------------------------------------ emulated device


def test_availability_says_why(fake_gpu, monkeypatch):
    """No device, and a driver older than NVRTC's CUDA major version, are said plainly."""
    monkeypatch.setattr(cuda, "_driver_library_error", lambda: None)
    monkeypatch.setattr(cuda, "nvrtc_version", lambda: (13, 0))
    monkeypatch.setattr(cuda, "_available", None)
    assert cuda.available() == (True, "Fake GPU (sm_90, 1 SMs), driver CUDA 13.0")
    monkeypatch.setattr(fake_gpu, "cuDriverGetVersion", lambda: (0, 12080))
    cuda.reset_availability()
    ok, why = cuda.available()
    assert not ok and "driver is too old: it supports CUDA 12.8" in why
    assert "nvidia-cuda-nvrtc==12.8.*" in why
    monkeypatch.setattr(fake_gpu, "cuInit", lambda flags: (100,))
    cuda.reset_availability()
    assert cuda.available() == (False, "no CUDA device: the NVIDIA driver is loaded but "
                                       "finds no GPU")
    with pytest.raises(BackendError, match="finds no GPU"):
        sn.to_device(np.ones(2, np.float32))


def test_device_properties_and_context(fake_gpu):
    dev = cuda.get_device(0)
    assert dev.name == "Fake GPU" and dev.arch == "sm_90" and dev.sm_count == 1
    assert dev.compute_capability == (9, 0) and dev.max_threads_per_block == 256
    assert cuda.get_device(0) is dev
    with pytest.raises(BackendError, match="CUDA device 3 does not exist"):
        cuda.get_device(3)


def test_failed_calls_name_the_call_and_the_error(fake_gpu):
    with pytest.raises(BackendError, match=r"cuMemAlloc\(0\) failed: CUDA_ERROR_INVALID_VALUE"):
        cuda.get_device(0).mem_alloc(0)


def test_device_array_round_trip_every_dtype(fake_gpu):
    for dt in (np.bool_, np.int32, np.int64, np.float16, np.float32, np.float64):
        host = (np.arange(24).reshape(2, 3, 4) % 5).astype(dt)
        d = sn.to_device(host)
        assert isinstance(d, DeviceArray)
        assert d.shape == (2, 3, 4) and d.dtype == host.dtype and d.size == 24
        assert d.nbytes == host.nbytes and d.ndim == 3
        np.testing.assert_array_equal(d.numpy(), host)
        np.testing.assert_array_equal(np.asarray(d), host)
        assert d.__cuda_array_interface__["data"][0] == d.ptr
    scalar = sn.to_device(np.float32(2.5))
    assert scalar.shape == () and scalar.numpy() == np.float32(2.5)
    assert sn.to_device(np.zeros((0, 3), np.float32)).numpy().shape == (0, 3)
    non_contiguous = np.arange(12, dtype=np.float64).reshape(3, 4).T
    np.testing.assert_array_equal(sn.to_device(non_contiguous).numpy(), non_contiguous)


def test_pool_reuses_blocks(fake_gpu):
    pool = sn.device_pool()
    a = sn.to_device(np.ones(1000, np.float32))
    ptr = a.ptr
    allocs = fake_gpu.allocs
    del a
    b = sn.to_device(np.zeros(900, np.float32))  # same size class (4 KiB)
    assert b.ptr == ptr and fake_gpu.allocs == allocs
    stats = pool.stats()
    assert stats["reuses"] >= 1 and stats["in_use_bytes"] >= 4096
    del b
    pool.empty_cache()
    assert pool.stats()["cached_bytes"] == 0 and ptr not in fake_gpu.memory


def test_pool_frees_the_cache_when_out_of_memory(fake_gpu):
    fake_gpu.memory_limit = 3 << 20
    a = sn.to_device(np.ones(1 << 18, np.float32))  # 1 MiB
    b = sn.to_device(np.ones(1 << 18, np.float32))
    del a, b  # 2 MiB cached
    c = sn.to_device(np.ones(1 << 19, np.float32))  # 2 MiB: only fits after emptying
    assert c.numpy()[0] == 1
    with pytest.raises(BackendError, match="out of memory"):
        sn.to_device(np.ones(1 << 20, np.float32))


def test_module_loading_falls_back_to_ptx_and_explains_a_too_new_ptx(fake_gpu):
    dev = cuda.get_device(0)
    source = 'extern "C" __global__ void k(float* x) { x[threadIdx.x] = 1.0f; }'
    fake_gpu.reject_cubin = 209  # CUDA_ERROR_NO_BINARY_FOR_GPU
    mod = dev.load_module(source.encode(), source, "@k")
    assert mod.kind == "ptx" and fake_gpu.loaded[-1] == "ptx"
    fake_gpu.reject_ptx = fake_gpu.CUresult.CUDA_ERROR_UNSUPPORTED_PTX_VERSION
    with pytest.raises(BackendError) as info:
        dev.load_module(source.encode(), source, "@k")
    message = str(info.value)
    assert "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in message
    assert "nvidia-cuda-nvrtc==13.0.*" in message and "update the NVIDIA driver" in message
    with pytest.raises(BackendError, match="cuModuleGetFunction"):
        mod.function("missing")


def test_quickstart_on_the_emulated_device(fake_gpu):
    step = runpy.run_path(str(EXAMPLE))["dhsr_step"]
    state = np.sin(0.37 * np.arange(248, dtype=np.float32)).reshape(1, 248)
    want = sn.jit(step.fn, device="cpu")(state)
    got = step(state)  # auto: CUDA is "available", numpy in -> numpy out
    assert all(type(g) is np.ndarray for g in got)
    x = sn.to_device(state)
    on_device = step(x)
    assert all(isinstance(g, DeviceArray) for g in on_device)
    for a, b, w in zip(got, on_device, want):
        np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(b.numpy(), a)
    assert fake_gpu.launched and fake_gpu.loaded == ["cubin"]


def _families():
    """One function per kernel shape the CUDA backend lowers differently."""
    def elementwise(x, y):
        return sn.tanh(x * y + 1.0) - sn.sqrt(sn.abs(y)), (x > y).astype(np.int32)

    def rows(x):
        return sn.harmonize(x - x.mean(axis=-1, keepdims=True)), x.max(axis=1)

    def full(x):
        return x.sum(), (x - x.mean()) / (x.std() + 1e-3)

    def matmul(x, w, b):
        return sn.maximum(x @ w + b, 0.0)

    def resonant(x):
        return sn.dhsr_cycle(x), sn.syntony(x)

    def views(x):
        return x.T[1:, ::2] * 2.0, x.reshape(6, 2)

    def passthrough(x):
        return x, x.reshape(3, 4), np.float32(3.0) * np.ones((2, 2), np.float32)

    def loop(x):
        return sn.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5),
                             (np.int32(0), x))[1]

    def swap_loop(a, b):  # body outputs that are body parameters (staged, then copied)
        return sn.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[2], c[1] * 2.0),
                             (np.int32(0), a, b))

    def nested_loop(x):
        def outer(c):
            inner = sn.while_loop(lambda d: d[0] < 2, lambda d: (d[0] + 1, d[1] + 1.0),
                                  (np.int32(0), c[1]))[1]
            return c[0] + 1, sn.harmonize(inner) * 0.5

        return sn.while_loop(lambda c: c[0] < 3, outer, (np.int32(0), x))

    rng = np.random.default_rng(0)
    f32 = np.float32
    return [
        (elementwise, (rng.normal(size=(3, 5)).astype(f32), rng.normal(size=(3, 5)).astype(f32))),
        (rows, (rng.normal(size=(4, 37)).astype(f32),)),
        (full, (rng.normal(size=(1000,)).astype(np.float64),)),
        (matmul, (rng.normal(size=(5, 7)).astype(f32), rng.normal(size=(7, 3)).astype(f32),
                  rng.normal(size=(3,)).astype(f32))),
        (resonant, (rng.normal(size=(2, 30)).astype(f32),)),
        (views, (rng.normal(size=(3, 4)).astype(f32),)),
        (passthrough, (rng.normal(size=(12,)).astype(f32),)),
        (loop, (rng.normal(size=(4,)).astype(f32),)),
        (swap_loop, (rng.normal(size=(3,)).astype(f32), rng.normal(size=(3,)).astype(f32))),
        (nested_loop, (rng.normal(size=(2, 8)).astype(f32),)),
    ]


@pytest.mark.parametrize("fn, args", _families(), ids=lambda v: getattr(v, "__name__", ""))
def test_kernel_families_on_the_emulated_device(fake_gpu, fn, args):
    graph, program = _program(fn, *args)
    gp = gpu.GpuProgram(program, generate(program, program.name))
    _compare(graph, gp(*args), args)  # numpy in -> numpy out
    outs = gp(*[sn.to_device(a) for a in args])
    assert all(isinstance(o, DeviceArray) for o in outs)
    _compare(graph, [o.numpy() for o in outs], args)


def test_while_loops_run_on_the_device(fake_gpu):
    """A LoopStep is driven from the host with the state on the device: one launch per
    cond and body kernel per trip, one byte read back per trip, no reference rule."""
    def loop(x):
        return sn.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * 1.5),
                             (np.int32(0), x))[1]

    x = np.linspace(-1, 1, 16).astype(np.float32)
    graph, program = _program(loop, x)
    module = generate(program, program.name)
    if not any(hasattr(s, "body") for s in module.steps):
        pytest.skip("the code generator emits no LoopStep for this loop")
    gp = gpu.GpuProgram(program, module)
    import syntonic.lower.kernel_interp as kernel_interp

    def refuse(*args, **kwargs):
        raise AssertionError("the loop ran through its reference rule")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernel_interp, "run_kernel", refuse)
        (y,) = gp(sn.to_device(x))
    np.testing.assert_allclose(y.numpy(), x * 1.5 ** 5, rtol=1e-6)
    assert gp.launches >= 11  # 6 cond + 5 body trips


def test_no_driver_allocation_per_call_once_warm(fake_gpu):
    f = sn.jit(lambda x, y: (x * y + 1.0, (x - y).sum()))
    x = sn.to_device(np.linspace(0, 1, 300, dtype=np.float32))
    y = sn.to_device(np.linspace(1, 2, 300, dtype=np.float32))
    for _ in range(2):
        out = f(x, y)
    del out
    allocs = fake_gpu.allocs
    launches = len(fake_gpu.launched)
    for _ in range(10):
        out = f(x, y)
    assert fake_gpu.allocs == allocs, "cuMemAlloc after warm-up"
    assert len(fake_gpu.launched) > launches
    np.testing.assert_allclose(out[0].numpy(), x.numpy() * y.numpy() + 1, rtol=1e-6)


def test_launch_arguments_are_prepared_once(fake_gpu):
    fake_gpu.attrs[1] = 64  # a device with small blocks: the runtime lowers `block`
    graph, program = _program(lambda x: (x * 2.0).sum(), np.ones((1000,), np.float32))
    gp = gpu.GpuProgram(program, generate(program, program.name))
    blocks = [(s.addr, ctypes.addressof(s.values)) for s in gp._steps if not isinstance(s, int)]
    assert len(blocks) >= 2  # a full reduction: partial + combine launches
    for _ in range(3):
        (y,) = gp(np.ones((1000,), np.float32))
        assert y == 2000
    assert blocks == [(s.addr, ctypes.addressof(s.values)) for s in gp._steps
                      if not isinstance(s, int)]
    assert all(b <= 64 for _, _, b in fake_gpu.launched)  # block lowered to the device max


def test_foreign_cuda_arrays_are_read_without_copy(fake_gpu):
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    owner = sn.to_device(host)

    class Foreign:  # e.g. a CuPy array: only the interface
        __cuda_array_interface__ = owner.__cuda_array_interface__

    f = sn.jit(lambda x: x + 1.0)
    copies = fake_gpu.allocs
    out = f(Foreign())
    assert isinstance(out, DeviceArray)
    np.testing.assert_array_equal(out.numpy(), host + 1)
    assert fake_gpu.allocs <= copies + 1  # the output only: the input was not copied
    _, program = _program(lambda x: x + 1.0, np.ones((3, 2), np.float32))
    other_shape = gpu.GpuProgram(program, generate(program, program.name))
    with pytest.raises(sn.TraceError, match="expects f32\\[3,2\\]"):
        other_shape(Foreign())


def test_cuda_device_jit_on_the_emulated_device(fake_gpu):
    f = sn.jit(lambda x: sn.exp(x) * 0.5, device="cuda")
    x = np.linspace(-1, 1, 50).astype(np.float32)
    np.testing.assert_allclose(f(x), np.exp(x) * 0.5, rtol=1e-6)
    assert "cuda" in f.lower(x).stages


@given(st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_graphs_on_the_emulated_device(data):
    from tests.strategies import graphs, inputs_for

    pytest.importorskip("hypothesis")
    if not emulate.available():
        pytest.skip("needs g++")
    g = data.draw(graphs(dtypes=["f32", "f64", "i32"], max_ops=5))
    args = data.draw(inputs_for(g, moderate=True))
    mp = pytest.MonkeyPatch()
    try:
        drv = FakeDriver()
        mp.setattr(cuda, "_driver", drv)
        mp.setattr(cuda, "_available", (True, "fake"))
        mp.setattr(cuda, "_devices", {})
        mp.setattr(device, "_pools", {})
        mp.setattr(gpu, "build_binary",
                   lambda source, arch, name="s": gpu.Binary(source.encode(), source, arch, "f"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gp = gpu.compile_graph_gpu(g)
            got = gp(*args)
        _compare(g, got, args)
    finally:
        mp.undo()


# ------------------------------------------------------------------ a real GPU


@pytest.mark.parametrize("fn, args", _families(), ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_kernel_families_on_the_gpu(fn, args):
    graph, program = _program(fn, *args)
    gp = gpu.GpuProgram(program, generate(program, program.name))
    assert gp.cu_module.kind == "cubin"
    _compare(graph, gp(*args), args)
    outs = gp(*[sn.to_device(a) for a in args])
    _compare(graph, [o.numpy() for o in outs], args)


def _op_names():
    from syntonic.ir.registry import all_ops

    return sorted(all_ops())


@pytest.mark.parametrize("op", _op_names())
@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_every_op_on_the_gpu(op):
    from tests.strategies import ACCEPTS, inputs_for, op_graphs

    @given(st.data())
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    def check(data):
        dt = data.draw(st.sampled_from(sorted(ACCEPTS[op], key=lambda d: d.name)))
        g = data.draw(op_graphs(op, dt))
        args = data.draw(inputs_for(g, moderate=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = gpu.compile_graph_gpu(g)(*args)
        _compare(g, got, args)

    check()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_graphs_on_the_gpu(data):
    from tests.strategies import graphs, inputs_for

    resonant = data.draw(st.booleans())
    if resonant:
        g = data.draw(graphs(ops=["harmonize", "syntony", "dhsr_cycle", "differentiate",
                                  "mobius_mask", "add", "mul", "mean"],
                             dtypes=["f32", "f64"], max_ops=5))
    else:
        g = data.draw(graphs(max_ops=8))
    args = data.draw(inputs_for(g, moderate=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = gpu.compile_graph_gpu(g)(*args)
    _compare(g, got, args)


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_device_arrays_and_pool_on_the_gpu():
    for dt in (np.bool_, np.int32, np.int64, np.float16, np.float32, np.float64):
        host = (np.arange(1000) % 7).astype(dt)
        np.testing.assert_array_equal(sn.to_device(host).numpy(), host)
    f = sn.jit(lambda x: sn.harmonize(x - x.mean(axis=-1, keepdims=True)))
    x = sn.to_device(np.random.default_rng(1).normal(size=(64, 248)).astype(np.float32))
    for _ in range(3):
        y = f(x)
    pool = sn.device_pool()
    before = pool.stats()["driver_allocs"]
    for _ in range(20):
        y = f(x)
    assert pool.stats()["driver_allocs"] == before, "cuMemAlloc per call after warm-up"
    np.testing.assert_allclose(y.numpy(), sn.jit(f.fn, device="cpu")(x.numpy()),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_quickstart_on_the_gpu():
    step = runpy.run_path(str(EXAMPLE))["dhsr_step"]
    state = np.sin(0.37 * np.arange(248, dtype=np.float32)).reshape(1, 248)
    want = sn.jit(step.fn, device="cpu")(state)
    got = sn.jit(step.fn, device="cuda")(sn.to_device(state))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-6)
    low = step.lower(state, device="cuda")
    assert f".target {cuda.get_device(0).arch}" in low.text("ptx")


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_cupy_interop():
    cp = pytest.importorskip("cupy")
    a = cp.arange(12, dtype=cp.float32).reshape(3, 4)
    f = sn.jit(lambda x: x * 2.0 + 1.0)
    y = f(a)  # wrapped, no copy
    assert isinstance(y, DeviceArray)
    back = cp.asarray(y)  # ours read by CuPy without a copy
    assert back.data.ptr == y.ptr
    np.testing.assert_array_equal(cp.asnumpy(back), np.arange(12).reshape(3, 4) * 2 + 1)
    with pytest.raises(sn.TraceError, match="not C-contiguous"):
        f(a.T)


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_OK, reason=f"no CUDA: {GPU_WHY}")
def test_torch_interop():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    f = sn.jit(lambda x: x * 2.0 + 1.0)
    y = f(t)
    back = torch.as_tensor(y, device="cuda")
    assert back.data_ptr() == y.ptr
    np.testing.assert_array_equal(back.cpu().numpy(), np.arange(12).reshape(3, 4) * 2 + 1)
    with pytest.raises(sn.TraceError, match="not C-contiguous"):
        f(t.T)


def test_warm_process_skips_nvrtc(tmp_path, monkeypatch):
    """NVRTC's CUBIN and PTX are kept in the disk cache (needs NVRTC, not a GPU)."""
    from syntonic.lower.cuda import nvrtc
    from syntonic.runtime import cache

    if not nvrtc.available():
        pytest.skip("needs cuda-bindings with NVRTC")
    source = generate(_program(lambda x: x + 3.0, np.ones(4, np.float32))[1], "warm").source
    with cache.configure(mode="rw", dir=tmp_path):
        first = gpu.build_binary(source, "sm_90", "warm")
        assert not first.cached and first.cubin and ".target sm_90" in first.ptx
        cache.clear(memory=True, disk=False)

        def boom(*a, **k):
            raise AssertionError("NVRTC ran on a warm cache")

        monkeypatch.setattr(nvrtc, "compile_cubin", boom)
        monkeypatch.setattr(nvrtc, "compile_ptx", boom)
        second = gpu.build_binary(source, "sm_90", "warm")
        assert gpu.binary_key(source, "sm_80") != gpu.binary_key(source, "sm_90")
    assert second.cached and second.cubin == first.cubin and second.ptx == first.ptx


def test_gpu_benchmark_script_keeps_the_rest_of_the_readme(tmp_path):
    """bench/run_gpu.py imports without a GPU and only rewrites its marked section."""
    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "run_gpu.py"))
    readme = tmp_path / "README.md"
    readme.write_text("# CPU benchmarks\n\n| a | b |\n")
    bench["write_section"](readme, "## GPU v1")
    bench["write_section"](readme, "## GPU v2")
    text = readme.read_text()
    assert text.startswith("# CPU benchmarks\n\n| a | b |\n")
    assert "## GPU v2" in text and "## GPU v1" not in text
    assert text.count(bench["MARKER"]) == 2


def test_an_arch_nvrtc_does_not_know_gets_ptx_or_a_clear_error(tmp_path):
    from syntonic.lower.cuda import nvrtc
    from syntonic.runtime import cache

    if not nvrtc.available():
        pytest.skip("needs cuda-bindings with NVRTC")
    source = generate(_program(lambda x: x * 3.0, np.ones(4, np.float32))[1], "arch").source
    with cache.configure(mode="off", dir=tmp_path):
        newer = gpu.build_binary(source, "sm_95", "arch")  # between sm_90 and sm_100
        assert newer.cubin == b"" and ".target sm_90" in newer.ptx
        with pytest.raises(BackendError, match="cannot compile for sm_50"):
            gpu.build_binary(source, "sm_50", "arch")


def test_auto_falls_back_to_the_cpu_when_cuda_compilation_fails(fake_gpu, monkeypatch):
    def broken(*args, **kwargs):
        raise BackendError("NVRTC could not compile (test)")

    monkeypatch.setattr(gpu, "build_binary", broken)
    f = sn.jit(lambda x: x + 1.0)
    with pytest.warns(sn.DeviceWarning, match="CUDA backend failed.*running on the CPU"):
        y = f(np.zeros(3, np.float32))
    np.testing.assert_array_equal(y, np.ones(3, np.float32))
    with pytest.raises(BackendError, match="NVRTC could not compile"):
        sn.jit(lambda x: x + 1.0, device="cuda")(np.zeros(3, np.float32))


def test_events_and_benchmark_timer(fake_gpu):
    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "run_gpu.py"))
    x = sn.to_device(np.ones(64, np.float32))
    seconds = bench["time_events"](lambda: bench["copy_sn"](x), 2, 3)
    assert 0 < seconds < 10
    start, end = cuda.Event(), cuda.Event()
    start.record()
    end.record()
    assert start.elapsed_ms(end) >= 0


def test_lower_auto_with_a_gpu_has_both_backends(fake_gpu):
    low = sn.jit(lambda x: x * 2.0).lower(sn.spec("f32[8]"))
    assert {"llvm", "cuda", "ptx"} <= set(low.stages)


def test_gpu_benchmark_script_runs_on_the_emulated_device(fake_gpu, monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(cuda, "nvrtc_version", lambda: (13, 0))
    monkeypatch.setattr(cuda, "driver_version", lambda: (13, 0))
    readme = tmp_path / "README.md"
    readme.write_text("# CPU benchmarks\n")
    monkeypatch.setattr(sys, "argv", ["run_gpu.py", "--tiny", "--out", str(readme)])
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "bench" / "run_gpu.py"),
                   run_name="__main__")
    text = readme.read_text()
    assert text.startswith("# CPU benchmarks\n") and "W5 relu(x@w+b) 8x16x8" in text
    assert "Device: Fake GPU (sm_90, 1 SMs)" in text


def test_threads_share_a_compiled_program(fake_gpu):
    """Calls from several threads serialise on the program's argument blocks."""
    import threading

    f = sn.jit(lambda x, s: x * s + 1.0)
    xs = [sn.to_device(np.full(64, i, np.float32)) for i in range(6)]
    f(xs[0], np.float32(2.0))
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = f(xs[i], np.float32(2.0)).numpy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(6):
        np.testing.assert_array_equal(results[i], np.full(64, 2 * i + 1, np.float32))


def test_pytrees_and_static_arguments_on_the_device(fake_gpu):
    @sn.jit(static_argnames=("steps",))
    def step(params, x, steps):
        for _ in range(steps):
            x = x * params["w"] + params["b"]
        return {"y": x, "mean": x.mean()}

    params = {"w": sn.to_device(np.full(4, 2.0, np.float32)),
              "b": np.ones(4, np.float32)}  # mixed: one leaf on the host
    out = step(params, sn.to_device(np.zeros(4, np.float32)), steps=3)
    assert isinstance(out["y"], DeviceArray)
    np.testing.assert_array_equal(out["y"].numpy(), np.full(4, 7.0, np.float32))
    assert float(out["mean"].numpy()) == 7.0
