"""The same comparisons on a real GPU (marked ``gpu``; skipped cleanly without one).

A minimal host for :class:`~syntonic.lower.cuda.plan.CudaModule` on the CUDA driver API of
``cuda-bindings``: CUBIN for the device's own architecture (NVRTC), one device buffer per
program buffer and scratch, ``cuLaunchKernel`` per launch step with the grid the step asks
for on this device, opaque steps on the host. It follows the contract of
:mod:`syntonic.lower.cuda.plan` literally, as the device runtime does.
"""

from __future__ import annotations

import ctypes
import warnings
from typing import Any

import numpy as np
import pytest

from syntonic.lower.cuda import BufferArg, GridArg, Launch, ScratchArg, generate, nvrtc
from syntonic.lower.kernel import Role
from syntonic.lower.kernel_interp import run_kernel, run_program
from tests.lower.cuda.cases import all_cases, check

pytestmark = pytest.mark.gpu


def _ok(result: tuple) -> Any:
    err, *rest = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver error {err!r}")
    return rest[0] if len(rest) == 1 else None


class _Gpu:
    def __init__(self) -> None:
        from cuda.bindings import driver as cu

        self.cu = cu
        _ok(cu.cuInit(0))
        self.dev = _ok(cu.cuDeviceGet(0))
        self.ctx = _ok(cu.cuDevicePrimaryCtxRetain(self.dev))
        _ok(cu.cuCtxSetCurrent(self.ctx))
        attr = cu.CUdevice_attribute
        self.sms = _ok(cu.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, self.dev))
        major = _ok(cu.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.dev))
        minor = _ok(cu.cuDeviceGetAttribute(
            attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.dev))
        self.arch = f"sm_{major}{minor}"

    def load(self, source: str) -> Any:
        image = np.frombuffer(nvrtc.compile_cubin(source, self.arch, "gpu-test"), np.uint8)
        self._image = image  # keep alive while loading
        return _ok(self.cu.cuModuleLoadData(image.ctypes.data))

    def alloc(self, nbytes: int) -> int:
        return int(_ok(self.cu.cuMemAlloc(max(nbytes, 1))))

    def to_device(self, ptr: int, host: np.ndarray) -> None:
        if host.nbytes:
            _ok(self.cu.cuMemcpyHtoD(ptr, host.ctypes.data, host.nbytes))

    def to_host(self, host: np.ndarray, ptr: int) -> None:
        if host.nbytes:
            _ok(self.cu.cuMemcpyDtoH(host.ctypes.data, ptr, host.nbytes))

    def run(self, module_handle: Any, program, mod, args) -> tuple[np.ndarray, ...]:
        cu = self.cu
        host: dict[int, np.ndarray] = {}
        for bid, arg in zip(program.params, args):
            host[bid] = np.ascontiguousarray(arg).reshape(-1).copy()
        for b in program.buffers:
            if b.id not in host:
                host[b.id] = (np.asarray(b.data, b.type.dtype.np).reshape(-1).copy()
                              if b.role is Role.CONST else np.zeros(b.type.size, b.type.dtype.np))
        dev = {bid: self.alloc(a.nbytes) for bid, a in host.items()}
        for bid, a in host.items():
            self.to_device(dev[bid], a)
        scratch = {s.id: self.alloc(s.nbytes) for s in mod.scratch}
        grids: dict[int, int] = {}
        try:
            for i, step in enumerate(mod.steps):
                if not isinstance(step, Launch):
                    for bid, a in host.items():
                        self.to_host(a, dev[bid])
                    kernel = program.kernels[step.kernel]
                    run_kernel(kernel, host, program)
                    for bid in kernel.writes:
                        self.to_device(dev[bid], host[bid])
                    continue
                grid = grids[i] = step.grid(self.sms)
                if grid == 0:
                    continue
                values = []
                for a in step.args:
                    if isinstance(a, BufferArg):
                        values.append(ctypes.c_void_p(dev[a.buffer]))
                    elif isinstance(a, ScratchArg):
                        values.append(ctypes.c_void_p(scratch[a.scratch]))
                    else:
                        assert isinstance(a, GridArg)
                        values.append(ctypes.c_longlong(grids[a.step]))
                ptrs = (ctypes.c_void_p * max(len(values), 1))(
                    *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
                fn = _ok(cu.cuModuleGetFunction(module_handle, step.symbol.encode()))
                _ok(cu.cuLaunchKernel(fn, grid, 1, 1, step.block, 1, 1, step.shared_bytes, 0,
                                      ctypes.addressof(ptrs), 0))
            _ok(cu.cuCtxSynchronize())
            outs = []
            for o in program.outputs:
                a = host[o.buffer]
                self.to_host(a, dev[o.buffer])
                outs.append(a.reshape(o.type.shape).copy())
            return tuple(outs)
        finally:
            for ptr in (*dev.values(), *scratch.values()):
                cu.cuMemFree(ptr)


@pytest.fixture(scope="module")
def gpu():
    try:
        g = _Gpu()
    except Exception as exc:  # noqa: BLE001 - no driver, no device, no cuda-bindings
        pytest.skip(f"no usable CUDA device: {type(exc).__name__}: {exc}")
    yield g
    g.cu.cuDevicePrimaryCtxRelease(g.dev)


CASES = all_cases()


@pytest.fixture(scope="module")
def loaded(gpu):
    mods = {c.id: generate(c.program, f"g{i}") for i, c in enumerate(CASES)}
    return mods, gpu.load("".join(m.source for m in mods.values()))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gpu_matches_the_kernel_interpreter(case, gpu, loaded) -> None:
    mods, handle = loaded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = run_program(case.program, *case.args)
    check(case, gpu.run(handle, case.program, mods[case.id], case.args), want)
