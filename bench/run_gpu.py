"""GPU benchmarks W0-W5 on CUDA: syntonic vs CuPy, PyTorch and jax.jit where importable.

Run ``python bench/run_gpu.py`` on a machine with an NVIDIA GPU and the ``cuda`` extra
(``--quick`` for small sizes). It writes a GPU section into bench/README.md between the
two ``<!-- GPU -->`` marker lines and keeps the rest of the file. Without a
GPU it prints why and exits with status 2.

The workloads are those of bench/run_cpu.py, in f32, on arrays already on the device.
Syntonic, CuPy and PyTorch are timed with CUDA events on the legacy default stream (all
three queue their work there): best of several runs of `number` back-to-back calls after
a warm-up, so the figures include each library's per-call host overhead when that is
larger than the kernel time (W4). jax queues on its own streams, so it is timed by wall
clock around ``block_until_ready``. Bandwidth counts each array read or written once and
is compared with the device-to-device copy bandwidth measured by ``cuMemcpyDtoD``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import syntonic as sn  # noqa: E402
from bench.common import replace_section  # noqa: E402
from syntonic.runtime import cuda  # noqa: E402

MARKER = "<!-- GPU -->"  # on its own line before and after the section (bench/common.py)


# --------------------------------------------------------------------- workloads


@sn.jit(device="cuda")
def copy_sn(x):
    return sn.abs(x)  # a pure stream (a copy would fold away)


@sn.jit(device="cuda")
def triad_sn(a, b):
    return a + 3.0 * b


@sn.jit(device="cuda")
def w1_sn(x):
    t = x * 0.5 + 1.0
    return sn.tanh(t) * sn.exp(-(x * x)) + x / (1.0 + sn.abs(x)) * 0.25


@sn.jit(device="cuda")
def w2_sn(x):
    m = x.mean(axis=-1, keepdims=True)
    c = x - m
    s = sn.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-6)
    return 0.618 * x + 0.382 * (c / s)


@sn.jit(device="cuda")
def w3_sn(x, y):
    return sn.sum(x * y) / sn.sqrt(sn.sum(x * x) * sn.sum(y * y))


@sn.jit(device="cuda")
def w4_sn(x):
    return sn.tanh(x * 0.5 + 0.1) * x - 1.0


@sn.jit(device="cuda")
def w5_sn(x, w, b):
    return sn.maximum(x @ w + b, 0.0)


@sn.jit(device="cuda")
def dhsr_sn(x):
    return sn.dhsr_cycle(x)


@sn.jit(device="cuda")
def evolve_sn(x):
    return sn.evolve(x, max_recursion=13, threshold=0.99)[0]


def _numpy_refs() -> dict[str, Callable[..., Any]]:
    f = np.float32
    return {
        "copy": lambda x: np.abs(x),
        "triad": lambda a, b: a + f(3.0) * b,
        "w1": lambda x: np.tanh(x * f(0.5) + f(1.0)) * np.exp(-(x * x))
        + x / (f(1.0) + np.abs(x)) * f(0.25),
        "w2": lambda x: f(0.618) * x + f(0.382) * (
            (x - x.mean(-1, keepdims=True))
            / np.sqrt(((x - x.mean(-1, keepdims=True)) ** 2).mean(-1, keepdims=True) + f(1e-6))),
        "w3": lambda x, y: np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)),
        "w4": lambda x: np.tanh(x * f(0.5) + f(0.1)) * x - f(1.0),
        "w5": lambda x, w, b: np.maximum(x @ w + b, f(0.0)),
    }


def _array_peers(xp: Any) -> dict[str, Callable[..., Any]]:
    """The same expressions for an array library with numpy-like functions (cupy, torch)."""
    keep = {"keepdim" if xp.__name__ == "torch" else "keepdims": True}

    def w2(x):
        m = x.mean(-1, **keep)
        c = x - m
        return 0.618 * x + 0.382 * (c / xp.sqrt((c * c).mean(-1, **keep) + 1e-6))

    return {
        "copy": lambda x: xp.abs(x),
        "triad": lambda a, b: a + 3.0 * b,
        "w1": lambda x: xp.tanh(x * 0.5 + 1.0) * xp.exp(-(x * x)) + x / (1.0 + xp.abs(x)) * 0.25,
        "w2": w2,
        "w3": lambda x, y: xp.sum(x * y) / xp.sqrt(xp.sum(x * x) * xp.sum(y * y)),
        "w4": lambda x: xp.tanh(x * 0.5 + 0.1) * x - 1.0,
        "w5": lambda x, w, b: xp.maximum(x @ w + b, xp.zeros_like(b)) if xp.__name__ == "torch"
        else xp.maximum(x @ w + b, 0.0),
    }


# --------------------------------------------------------------------- timing


def time_events(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Seconds per call: best of `repeat` event-timed runs of `number` calls."""
    fn()
    cuda.get_device(0).synchronize()
    best = float("inf")
    start, end = cuda.Event(), cuda.Event()
    for _ in range(repeat):
        start.record()
        for _ in range(number):
            fn()
        end.record()
        best = min(best, start.elapsed_ms(end) / 1e3 / number)
    return best


def time_wall(fn: Callable[[], Any], repeat: int, number: int) -> float:
    """Seconds per call by wall clock; `fn` must block until its result is ready."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def copy_bandwidth(nbytes: int, repeat: int) -> float:
    """Device-to-device copy bandwidth (bytes/s, read + write) of ``cuMemcpyDtoD``."""
    dev = cuda.get_device(0)
    src = sn.to_device(np.ones(nbytes // 4, np.float32))
    dst = sn.to_device(np.zeros(nbytes // 4, np.float32))
    t = time_events(lambda: dev.dtod(dst.ptr, src.ptr, src.nbytes), repeat, 10)
    return 2 * src.nbytes / t


# --------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (tests of this script)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "README.md"))
    opts = ap.parse_args()
    ok, why = cuda.available()
    if not ok:
        print(f"bench/run_gpu.py needs an NVIDIA GPU and the cuda extra: {why}",
              file=sys.stderr)
        raise SystemExit(2)
    dev = cuda.get_device(0)
    n = 1 << (10 if opts.tiny else 20 if opts.quick else 26)
    rows_n = 8 if opts.tiny else 1024 if opts.quick else 8192
    rep = 2 if opts.tiny else 3 if opts.quick else 10
    m, k, nn = (8, 16, 8) if opts.tiny else (64, 256, 256) if opts.quick else (256, 1024, 1024)
    rng = np.random.default_rng(0)
    host = {
        "x": rng.standard_normal(n).astype(np.float32),
        "y": rng.standard_normal(n).astype(np.float32),
        "x2": rng.standard_normal(
            (rows_n, 64 if opts.tiny else 1024 if opts.quick else 4096)).astype(np.float32),
        "small": rng.standard_normal(248).astype(np.float32),
        "a": rng.standard_normal((m, k)).astype(np.float32),
        "w": (rng.standard_normal((k, nn)) / np.sqrt(k)).astype(np.float32),
        "b": rng.standard_normal(nn).astype(np.float32),
    }
    calls = 2 if opts.tiny else 10
    cases = {  # name -> (syntonic fn, argument names, calls per timing)
        "copy": (copy_sn, ("x",), calls),
        "triad": (triad_sn, ("x", "y"), calls),
        "w1": (w1_sn, ("x",), calls),
        "w2": (w2_sn, ("x2",), calls),
        "w3": (w3_sn, ("x", "y"), calls),
        "w4": (w4_sn, ("small",), 2 if opts.tiny else 2000),
        "w5": (w5_sn, ("a", "w", "b"), 2 * calls),
    }
    refs = _numpy_refs()
    on_dev = {name: sn.to_device(v) for name, v in host.items()}
    peers: dict[str, tuple[dict[str, Callable], dict[str, Any], Callable]] = {}
    try:
        import cupy as cp

        peers["cupy"] = (_array_peers(cp), {k: cp.asarray(v) for k, v in host.items()},
                         time_events)
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            peers["torch"] = (_array_peers(torch),
                              {k: torch.as_tensor(v, device="cuda") for k, v in host.items()},
                              time_events)
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        if any(d.platform == "gpu" for d in jax.devices()):
            jitted = {k: jax.jit(f) for k, f in _array_peers(jnp).items()}
            peers["jax"] = (jitted, {k: jax.device_put(v) for k, v in host.items()}, None)
    except ImportError:
        pass

    results: dict[str, dict[str, float]] = {}
    for name, (f_sn, argn, number) in cases.items():
        args = [on_dev[a] for a in argn]
        got = np.asarray(f_sn(*args).numpy())
        want = np.asarray(refs[name](*[host[a] for a in argn]))
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
        row = {"syntonic": time_events(lambda f=f_sn, a=args: f(*a), rep, number)}
        for peer, (fns, arrays, timer) in peers.items():
            pa = [arrays[a] for a in argn]
            if timer is None:  # jax: wall clock
                row[peer] = time_wall(lambda f=fns[name], a=pa: f(*a).block_until_ready(),
                                      rep, number)
            else:
                row[peer] = timer(lambda f=fns[name], a=pa: f(*a), rep, number)
        results[name] = row
        print(name, {p: f"{t * 1e6:.1f} us" for p, t in row.items()}, flush=True)
    # The engine workloads of bench/run_engine.py (syntonic only; the CPU backend checks
    # the results): one DHSR cycle (launch-bound) and the evolve loop (row-local: one
    # kernel, a thread block per row).
    engine = host["engine"] = rng.standard_normal((8 if opts.tiny else 4096, 248)).astype(
        np.float32)
    on_dev["engine"] = sn.to_device(engine)
    for name, f_sn, number in (("dhsr", dhsr_sn, 2 if opts.tiny else 100),
                               ("evolve", evolve_sn, 2 if opts.tiny else 10)):
        want = sn.jit(f_sn.fn, device="cpu")(engine)
        np.testing.assert_allclose(f_sn(on_dev["engine"]).numpy(), want, rtol=1e-3,
                                   atol=1e-4)
        results[name] = {"syntonic": time_events(lambda f=f_sn: f(on_dev["engine"]), rep,
                                                 number)}
        print(name, f"{results[name]['syntonic'] * 1e6:.1f} us", flush=True)
    bw = copy_bandwidth(4 * n, rep)
    print(f"cuMemcpyDtoD bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    section = report(results, list(peers), bw, n, host["x2"].shape, (m, k, nn), dev,
                     " --tiny" if opts.tiny else " --quick" if opts.quick else "",
                     engine.shape)
    write_section(Path(opts.out), section)
    print(f"wrote the GPU section of {opts.out}")


def _fmt(t: float) -> str:
    return f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t * 1e3:.3f} ms"


def report(res: dict[str, dict[str, float]], peers: list[str], copy_bw: float, n: int,
           rows: tuple[int, ...], mkn: tuple[int, int, int], dev: cuda.Device,
           flags: str, engine: tuple[int, ...] = (4096, 248)) -> str:
    traffic = {"copy": 8 * n, "triad": 12 * n, "w1": 8 * n, "w2": 8 * rows[0] * rows[1],
               "w3": 8 * n}
    labels = {
        "copy": f"W0 copy-like stream (abs) f32[{n}]",
        "triad": f"W0 triad a+3b f32[{n}]",
        "w1": f"W1 12-op elementwise chain f32[{n}]",
        "w2": f"W2 row-harmonize f32[{rows[0]},{rows[1]}]",
        "w3": f"W3 cosine (3 reductions) f32[{n}]",
        "w4": "W4 per call, 5-op expr f32[248]",
        "w5": f"W5 relu(x@w+b) {mkn[0]}x{mkn[1]}x{mkn[2]}",
        "dhsr": f"dhsr_cycle f32{list(engine)} (engine)",
        "evolve": f"evolve loop f32{list(engine)} (engine, state only)",
    }
    from cuda.bindings import __version__ as bindings_version  # (not `import cuda...`:
    # that would shadow syntonic.runtime.cuda in this function)

    lines = [
        "## GPU benchmarks (W0-W5)",
        "",
        f"Command: `python bench/run_gpu.py{flags}` (rewrites this "
        "section only).",
        "",
        f"Device: {dev.name} ({dev.arch}, {dev.sm_count} SMs), driver CUDA "
        f"{'.'.join(map(str, cuda.driver_version()))}, NVRTC "
        f"{'.'.join(map(str, cuda.nvrtc_version() or ('?',)))}, cuda-bindings "
        f"{bindings_version}, python {platform.python_version()}.",
        "",
        "Arrays are on the device. Syntonic, CuPy and PyTorch: CUDA events, best of several",
        "runs of back-to-back calls; jax: wall clock around `block_until_ready`. Ratio = peer",
        "time / syntonic time (> 1: syntonic is faster). GB/s counts each array read or",
        f"written once; % is of the measured `cuMemcpyDtoD` bandwidth, {copy_bw / 1e9:.0f} GB/s.",
        "",
        "| " + " | ".join(["workload", "syntonic", *peers, "syntonic GB/s (% of copy)"]) + " |",
        "|" + "---|" * (len(peers) + 3),
    ]
    for name, row in res.items():
        t = row["syntonic"]
        cells = [f"{_fmt(row[p])} ({row[p] / t:.2f}x)" if p in row else "n/a" for p in peers]
        if name == "w5":
            rate = f"{2 * mkn[0] * mkn[1] * mkn[2] / t / 1e9:.0f} GFLOP/s"
        elif name in traffic:
            rate = f"{traffic[name] / t / 1e9:.0f} GB/s ({traffic[name] / t / copy_bw:.0%})"
        else:
            rate = ""
        lines.append("| " + " | ".join([labels[name], _fmt(t), *cells, rate]) + " |")
    lines += [
        "",
        "Engine rows have no peers here; ARCHITECTURE.md (GPU facts) measured torch.compile",
        "and jax.jit on an H100 at ~60-70 µs for dhsr_cycle f32[4096,248] and 0.17-0.74 ms",
        "for the evolve loop.",
        "",
        f"Load average while measuring: {os.getloadavg()[0]:.2f}.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the GPU section of `path` (append it if absent); keep the rest."""
    replace_section(path, "GPU", section)


if __name__ == "__main__":
    main()
