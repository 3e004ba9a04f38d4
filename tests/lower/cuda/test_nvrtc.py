"""NVRTC compiles every test program's CUDA source; ptxas assembles the PTX.

All hand-built test programs (tests/lower/cuda/cases.py) go through ONE NVRTC compile
(their modules concatenated, as modules of different names can be), then ``ptxas``
assembles the PTX for sm_75, sm_80 and sm_90 where ptxas is found (PATH, $CUDA_HOME/bin,
/usr/local/cuda/bin). sm_70 is checked only when the toolchain still supports it (CUDA
13 dropped Volta). Random graphs are compiled by NVRTC in test_random_graphs.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("cuda.bindings")

from syntonic.ir.errors import BackendError  # noqa: E402
from syntonic.lower.cuda import generate, nvrtc  # noqa: E402
from tests.lower.cuda.cases import all_cases  # noqa: E402

if not nvrtc.available():  # pragma: no cover - the cuda extra without a loadable NVRTC
    pytest.skip("NVRTC does not load", allow_module_level=True)

PTX_ARCH = "compute_75"  # the oldest this NVRTC supports: its PTX assembles for all later
SMS = ("sm_70", "sm_75", "sm_80", "sm_90")


def _ptxas() -> str | None:
    found = shutil.which("ptxas")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "ptxas").exists():
            return str(Path(root) / "bin" / "ptxas")
    return None


@pytest.fixture(scope="module")
def modules():
    return [generate(c.program, f"n{i}") for i, c in enumerate(all_cases())]


@pytest.fixture(scope="module")
def ptx(modules) -> str:
    return nvrtc.compile_ptx("".join(m.source for m in modules), PTX_ARCH, "all-cases")


def test_every_kernel_is_in_the_ptx_and_nothing_relaxes_ieee(modules, ptx) -> None:
    entries = set(re.findall(r"\.entry\s+(\w+)", ptx))
    for m in modules:
        assert set(m.symbols) <= entries, m.name
    # precise division and square root (no fast math); the approximations libdevice uses
    # inside expf/division refinements are fine, the fast-math forms are not
    for fast in ("div.approx.f32", "div.full.f32", "sqrt.approx.f32", "div.approx.ftz"):
        assert fast not in ptx


def test_ptxas_assembles_the_ptx_for_each_architecture(ptx) -> None:
    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("ptxas not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    supported = nvrtc.supported_archs()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "all.ptx"
        path.write_text(ptx)
        procs = {}
        for sm in SMS:
            if int(sm[3:]) < min(supported):
                continue  # this CUDA toolchain dropped the architecture
            procs[sm] = subprocess.Popen([ptxas, f"-arch={sm}", str(path), "-o", os.devnull],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
        assert {"sm_75", "sm_80", "sm_90"} <= set(procs)
        for sm, proc in procs.items():
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"ptxas -arch={sm}:\n{err[-4000:]}"


def test_cubin_for_a_known_device(modules) -> None:
    cubin = nvrtc.compile_cubin(modules[0].source, "sm_90")
    assert cubin[:4] == b"\x7fELF"


def test_compile_error_names_the_log_and_the_source_path() -> None:
    source = 'extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }\n'
    with pytest.raises(BackendError) as info:
        nvrtc.compile_ptx(source, name="broken")
    text = str(info.value)
    assert "undefined_name" in text and "identifier" in text  # NVRTC's log
    path = re.search(r"source: (\S+)", text)
    assert path is not None and Path(path.group(1)).read_text() == source


def test_wrong_architecture_kind_is_an_error() -> None:
    with pytest.raises(BackendError, match="sm_XY"):
        nvrtc.compile_cubin("", "compute_90")
