"""Benchmark T1 (issue 9): one training step of an MLP 784-512-512-10, batch 256, f32.

Run ``python bench/run_train.py`` (``--quick`` for fewer repetitions); it writes the T1
section of bench/README.md (between two ``<!-- T1 -->`` lines; the rest of the file is
kept, and bench/run_cpu.py keeps this section when it rewrites the file). One step =
forward, cross-entropy from integer labels, backward, Adam update, for:

* syntonic: ``sn.train.train_step`` (one compiled program, params and Adam state donated);
* jax: ``jax.jit(step, donate_argnums=(0, 1))`` of the same jnp code;
* torch eager and torch.compile, when torch is importable (otherwise the columns say so);
* the GEMM floor: the step's 8 GEMMs alone (forward 3, backward 5: no gradient for the
  input), same shapes and operand layouts, in numpy (OpenBLAS, its own threads), through
  syntonic's GEMM step (:mod:`syntonic.runtime.blas`) and in jax.

All in one process, interleaved round by round so that load from other processes hits
every column alike; a time is the best round (median in brackets) of `steps` steps.
Ratio = peer time / syntonic time (> 1: syntonic is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import syntonic as sn  # noqa: E402
from bench.common import machine, replace_section  # noqa: E402
from syntonic.runtime import blas  # noqa: E402

try:
    import jax  # noqa: E402
    import jax.numpy as jnp  # noqa: E402

    jax.config.update("jax_platforms", "cpu")
except ImportError:  # pragma: no cover - bench extra not installed
    jax = None
try:
    import torch  # noqa: E402
except ImportError:
    torch = None

SIZES = (784, 512, 512, 10)
BATCH = 256
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
SPIN_PAUSE = 0.3  # seconds between cases (see measure)


def init_params(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """syntonic's own initialisation (Linear layers "0", "2", "4"), used by every peer."""
    return model().init(seed)


def model() -> sn.nn.Sequential:
    d = SIZES
    return sn.nn.Sequential(sn.nn.Linear(d[0], d[1]), sn.nn.ReLU(), sn.nn.Linear(d[1], d[2]),
                            sn.nn.ReLU(), sn.nn.Linear(d[2], d[3]))


# ----------------------------------------------------------------------------- peers
def syntonic_step(params: dict, x: np.ndarray, y: np.ndarray) -> Callable[[], object]:
    opt = sn.optim.Adam(LR, B1, B2, EPS)
    step = sn.train.train_step(model(), sn.nn.cross_entropy, opt, device="cpu")
    carry = [sn.frontend.pytree.tree_map(np.copy, params), opt.init(params)]

    def run() -> object:
        carry[0], carry[1], loss = step(carry[0], carry[1], x, y)
        return loss

    return run


def jax_step(params: dict, x: np.ndarray, y: np.ndarray) -> Callable[[], object]:
    def forward(p, x):
        h = jnp.maximum(x @ p["0"]["weight"] + p["0"]["bias"], 0.0)
        h = jnp.maximum(h @ p["2"]["weight"] + p["2"]["bias"], 0.0)
        return h @ p["4"]["weight"] + p["4"]["bias"]

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def step(p, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = s["step"] + 1.0
        m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, s["m"], g)
        v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, s["v"], g)
        lr_t = LR * jnp.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        p = jax.tree.map(lambda p, m, v: p - lr_t * m / (jnp.sqrt(v) + EPS), p, m, v)
        return p, {"step": t, "m": m, "v": v}, loss

    jstep = jax.jit(step, donate_argnums=(0, 1))
    zeros = jax.tree.map(jnp.zeros_like, params)
    carry = [jax.tree.map(jnp.asarray, params),
             {"step": jnp.zeros((), jnp.float32), "m": zeros,
              "v": jax.tree.map(jnp.zeros_like, params)}]
    xd, yd = jnp.asarray(x), jnp.asarray(y)

    def run() -> object:
        carry[0], carry[1], loss = jstep(carry[0], carry[1], xd, yd)
        return loss

    return run


def torch_steps(params: dict, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], object]]:
    """torch eager and torch.compile steps (torch.optim.Adam, foreach)."""
    torch.set_num_threads(os.cpu_count() or 1)
    out = {}
    for name in ("torch eager", "torch.compile"):
        ws = [torch.tensor(params[k][n]).requires_grad_() for k in ("0", "2", "4")
              for n in ("weight", "bias")]
        opt = torch.optim.Adam(ws, lr=LR, betas=(B1, B2), eps=EPS)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()

        def fwd_bwd(ws=ws, xt=xt, yt=yt):
            h = torch.relu(xt @ ws[0] + ws[1])
            h = torch.relu(h @ ws[2] + ws[3])
            loss = torch.nn.functional.cross_entropy(h @ ws[4] + ws[5], yt)
            loss.backward()
            return loss

        if name == "torch.compile":
            fwd_bwd = torch.compile(fwd_bwd)
            opt.step = torch.compile(opt.step)

        def run(fwd_bwd=fwd_bwd, opt=opt) -> object:
            opt.zero_grad(set_to_none=True)
            loss = fwd_bwd()
            opt.step()
            return loss

        out[name] = run
    return out


def gemm_shapes() -> list[tuple[tuple[int, int], tuple[int, int], bool, bool]]:
    """(lhs shape, rhs shape, lhs transposed, rhs transposed) of the step's 8 GEMMs."""
    b, (d0, d1, d2, d3) = BATCH, SIZES
    return [((b, d0), (d0, d1), False, False),   # h1 = x @ W1
            ((b, d1), (d1, d2), False, False),   # h2 = h1 @ W2
            ((b, d2), (d2, d3), False, False),   # logits = h2 @ W3
            ((b, d3), (d2, d3), False, True),    # dh2 = dlogits @ W3.T
            ((b, d2), (d1, d2), False, True),    # dh1 = dh2 @ W2.T
            ((b, d2), (b, d3), True, False),     # dW3 = h2.T @ dlogits
            ((b, d1), (b, d2), True, False),     # dW2 = h1.T @ dh2
            ((b, d0), (b, d1), True, False)]     # dW1 = x.T @ dh1


def numpy_gemms(matmul: Callable[..., object] | None = None) -> Callable[[], object]:
    """The 8 GEMMs through np.matmul, or through `matmul(a, b, out)`."""
    rng = np.random.default_rng(1)
    ops = []
    for ls, rs, lt, rt in gemm_shapes():
        a = rng.standard_normal(ls).astype(np.float32)
        b = rng.standard_normal(rs).astype(np.float32)
        a, b = (a.T if lt else a), (b.T if rt else b)
        ops.append((a, b, np.empty((a.shape[0], b.shape[1]), np.float32)))

    def run() -> object:
        for a, b, out in ops:
            if matmul is None:
                np.matmul(a, b, out=out)
            else:
                matmul(a, b, out)
        return out

    return run


def jax_gemms() -> Callable[[], object]:
    rng = np.random.default_rng(1)
    args = []
    for ls, rs, _, _ in gemm_shapes():
        args += [jnp.asarray(rng.standard_normal(ls).astype(np.float32)),
                 jnp.asarray(rng.standard_normal(rs).astype(np.float32))]
    flags = [(lt, rt) for _, _, lt, rt in gemm_shapes()]

    @jax.jit
    def gemms(*ab):
        outs = []
        for k, (lt, rt) in enumerate(flags):
            a, b = ab[2 * k], ab[2 * k + 1]
            outs.append((a.T if lt else a) @ (b.T if rt else b))
        return outs

    def run() -> object:
        out = gemms(*args)
        out[-1].block_until_ready()
        return out

    return run


# ----------------------------------------------------------------------------- timing
def measure(cases: dict[str, Callable[[], object]], rounds: int, steps: int
            ) -> dict[str, list[float]]:
    """Seconds per step of each case, one sample per round, cases interleaved."""
    for run in cases.values():  # compile and warm up (the donation pools fill here)
        for _ in range(3):
            _block(run())
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                out = run()
            _block(out)
            times[name].append((time.perf_counter() - t0) / steps)
            # numpy's OpenBLAS and XLA's workers busy-wait for a while after a call: let
            # them park, or they take a core from whichever case runs next
            time.sleep(SPIN_PAUSE)
    return times


def _block(out: object) -> None:
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    elif isinstance(out, list) and out and hasattr(out[-1], "block_until_ready"):
        out[-1].block_until_ready()


def check_agreement(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Loss after 3 steps, syntonic vs jax (same init, same data): their relative gap."""
    a, b = syntonic_step(params, x, y), jax_step(params, x, y) if jax else None
    la = [float(a()) for _ in range(4)][-1]
    if b is None:
        return float("nan")
    lb = [float(b()) for _ in range(4)][-1]
    return abs(la - lb) / abs(lb)


# ----------------------------------------------------------------------------- report
def _fmt(samples: list[float]) -> str:
    return f"{min(samples) * 1e3:.2f} ms ({statistics.median(samples) * 1e3:.2f})"


def _machine() -> str:
    return machine([v for v in (jax and f"jax {jax.__version__} (jaxlib {jax.lib.__version__})",
                                torch and f"torch {torch.__version__}") if v])


def report(times: dict[str, list[float]], loads: tuple[float, float], gap: float,
           quick: bool, notes: list[str]) -> str:
    ours = min(times["syntonic"])
    d = SIZES
    lines = [
        "## T1: one training step, MLP 784-512-512-10, batch 256, f32",
        "",
        f"Command: `python bench/run_train.py{' --quick' if quick else ''}` (rewrites only "
        "this section).",
        "",
        "Machine: " + _machine(),
        "",
        "One step = forward, cross-entropy (integer labels), backward, Adam update "
        f"(lr {LR}, betas {B1}/{B2}, eps {EPS}); the same initial parameters and batch for "
        "every column. syntonic: `sn.train.train_step` (one compiled program, params and "
        "Adam state donated); jax: `jax.jit(step, donate_argnums=(0, 1))`. GEMM floor: the "
        f"step's 8 GEMMs alone ({d[0]}x{d[1]}, {d[1]}x{d[2]}, {d[2]}x{d[3]} forward; "
        "2 input-gradient and 3 weight-gradient GEMMs backward), same shapes and "
        "transposes. Times per step: best round (median in brackets), rounds interleaved "
        "in one process; ratio = time / syntonic time (> 1: syntonic is faster).",
        "",
        "| implementation | time per step | ratio |",
        "|---|---|---|",
    ]
    for name, samples in times.items():
        ratio = min(samples) / ours
        lines.append(f"| {name} | {_fmt(samples)} | {ratio:.2f}x |")
    lines += [
        "",
        f"Load average (1 min) before / after measuring: {loads[0]:.2f} / {loads[1]:.2f} "
        "(2 cores shared with other work: compare ratios, rerun to confirm).",
        f"syntonic and jax agree on the loss after 4 steps to {gap:.1e} (relative).",
        "",
        *[line for note in notes for line in (note, "")],
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "README.md"))
    ap.add_argument("--notes", default="", help="text for the notes paragraph")
    opts = ap.parse_args()
    rounds, steps = (3, 5) if opts.quick else (15, 20)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH).astype(np.int32)
    params = init_params(0)
    gap = check_agreement(params, x, y)
    cases: dict[str, Callable[[], object]] = {"syntonic": syntonic_step(params, x, y)}
    notes = [
        "Where syntonic's time goes: its GEMM-step floor row is the 8 GEMMs as the program "
        "runs them (a private single-threaded OpenBLAS, one block per thread of syntonic's "
        "pool, blocks posted to the threads from machine code; numpy's own multi-threaded "
        "OpenBLAS busy-waits and collapses when the 2 cores are shared). The rest is 16 "
        "native kernels: the GEMM epilogues (bias + ReLU on the forward GEMMs, the ReLU mask "
        "on the input-gradient GEMMs, Adam on the weight-gradient GEMMs, run on each row "
        "block of the GEMM right after it and written into the donated p, m, v themselves: "
        "one set of parameter/state buffers, ~0.1 + 0.2 ms for the 512x512 and 784x512 "
        "layers; the input-gradient GEMM with K=10 splits by rows so its mask runs on its "
        "blocks too), log-softmax + cross-entropy in one row kernel (on both threads, "
        "~20 us), the bias gradients (two column sums over 256x512, ~30 us each), Adam on "
        "the biases. All 20 steps run in one native call (syntonic/runtime/runner.py: no "
        "Python between steps); Python costs ~55 us per call (pytree key, donation, buffer "
        "table, outputs).",
    ]
    if jax:
        cases["jax.jit"] = jax_step(params, x, y)
    if torch:
        cases.update(torch_steps(params, x, y))
    else:
        notes.append("torch eager / torch.compile: torch is not installed on this machine, "
                     "so those columns are absent (the issue quotes torch 7.4 ms here).")
    cases["GEMM floor (numpy/OpenBLAS)"] = numpy_gemms()
    cases["GEMM floor (syntonic GEMM step)"] = numpy_gemms(blas.matmul)
    if jax:
        cases["GEMM floor (jax)"] = jax_gemms()
    if opts.notes:
        notes.append(opts.notes)
    load0 = os.getloadavg()[0]
    times = measure(cases, rounds, steps)
    load1 = os.getloadavg()[0]
    for name, samples in times.items():
        print(f"{name:30s} {_fmt(samples)}", flush=True)
    replace_section(Path(opts.out), "T1",
                    report(times, (load0, load1), gap, opts.quick, notes))


if __name__ == "__main__":
    main()
