"""``f.explain(*args)``: a structured, printable report of how a function is compiled.

An :class:`ExplainReport` has one :class:`KernelReport` per kernel that will run (its
ops with the user's ``file:line``, iteration space, phases and bytes moved), one
:class:`BoundaryReport` per value that crosses between kernels (with its reason from
:data:`~syntonic.passes.fusion.REASONS`), the values written because the function
returns them, the trace size and the time of every stage. ``str(report)`` is the
readable form; ``report.text(times=False)`` omits the timings (stable, for golden
tests).

``report.overhead`` (an :class:`OverheadReport`, from ``f.explain`` only) is the
**per-call overhead** of the compiled call for those arguments: what a call costs beyond
its kernels' work (signature check, output allocation, argument packing, native entry).
On the CPU it is measured when the arguments are concrete arrays: many calls of the
function are timed, then the same compiled kernels alone on a prepared buffer table (each
kernel timed over its full range minus the same call over an empty range, so the ctypes
entry cancels out); with ``sn.spec`` arguments there is nothing to run. On CUDA the static
facts (launches per call, pooled outputs, launch arguments packed once) are always given;
the times only on a real device. It prints after the stage times; ``text(times=False)``
leaves it out, ``text(times=False, overhead=True)`` prints it without the numbers.

Example::

    >>> report = step.explain(sn.spec("f32[4096,4096]"))
    >>> len(report.kernels), report.kernels[0].space
    (1, (4096, 4096))
    >>> print(report)
    >>> step.explain(np.ones((4, 248), np.float32)).overhead.overhead_us   # e.g. 0.4
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syntonic.ir.graph import Graph, Location, Value
from syntonic.lower.kernel import (
    BLOCK_STACK_LIMIT,
    Kernel,
    Loop,
    Program,
    SourceOp,
    cpu_row_blocks,
)
from syntonic.passes.fusion import REASONS, FusionPlan, Reason


@dataclass(frozen=True, slots=True)
class BoundaryReport:
    """A value written by kernel `producer` and read by kernel `consumer`, and why."""

    producer: int
    consumer: int
    value: str
    reason: Reason
    detail: str = ""

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]

    def __str__(self) -> str:
        text = f"k{self.producer} -> k{self.consumer}  {self.value}: {self.reason.value}"
        if self.detail:
            text += f" ({self.detail})"
        return text + f" -- {self.explanation}"


@dataclass(frozen=True, slots=True)
class KernelReport:
    """One kernel that will run."""

    index: int
    name: str
    kind: str
    space: tuple[int, ...]
    reduce_axes: tuple[int, ...]
    phases: int
    ops: tuple[SourceOp, ...]
    user_ops: tuple[str, ...]
    bytes_read: int
    bytes_written: int
    writes: tuple[str, ...]
    boundaries: tuple[BoundaryReport, ...] = ()
    loop: tuple[str, ...] = ()  # a while loop: how it runs, and its cond/body kernels

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def locations(self) -> tuple[str, ...]:
        """The distinct user ``file:line`` of this kernel's ops."""
        return tuple(dict.fromkeys(str(op.loc) for op in self.ops if op.loc is not None))

    @property
    def iteration_space(self) -> str:
        space = f"[{','.join(map(str, self.space))}]"
        if not self.reduce_axes:
            return space
        return f"{space} reducing axes [{','.join(map(str, self.reduce_axes))}]"

    def text(self) -> str:
        head = (f"{self.name}: {self.kind} over {self.iteration_space}, "
                f"{self.phases} phase{'s' if self.phases != 1 else ''}, "
                f"{_bytes(self.bytes_moved)} moved ({_bytes(self.bytes_read)} read, "
                f"{_bytes(self.bytes_written)} written)")
        lines = [head]
        if self.user_ops:
            lines.append(f"    from: {', '.join(self.user_ops)}")
        names = ", ".join(dict.fromkeys(op.name for op in self.ops))
        lines.append(f"    ops:  {names}")
        if self.locations:
            lines.append(f"    at:   {', '.join(self.locations)}")
        for w in self.writes:
            lines.append(f"    writes {w}")
        lines.extend(f"    {line}" for line in self.loop)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class OverheadReport:
    """The per-call overhead of one compiled signature: static facts and, when measured,
    the time of a call, of its kernels alone, and the difference.

    `device` is ``"cpu"``, ``"cuda"`` or ``"interpreter"``; `facts` say what a call does
    besides its kernels; `call_us` and `kernels_us` are the best per-call times (µs) over
    `samples` timed batches of `batch` calls, or None with `not_measured` saying why.
    Example::

        >>> o = f.explain(np.ones(1024, np.float32)).overhead
        >>> o.overhead_us < o.call_us
        True
        >>> print(o.text())
        per-call overhead (cpu): 0.38 µs over the kernels (call 0.61 µs, kernels 0.23 µs; ...
    """

    device: str
    facts: tuple[str, ...]
    call_us: float | None = None
    kernels_us: float | None = None
    samples: int = 0
    batch: int = 0
    not_measured: str = ""
    method: str = ""

    @property
    def measured(self) -> bool:
        return self.call_us is not None and self.kernels_us is not None

    @property
    def overhead_us(self) -> float | None:
        """``call_us - kernels_us`` (µs), None when not measured."""
        if self.call_us is None or self.kernels_us is None:
            return None
        return self.call_us - self.kernels_us

    def text(self, times: bool = True) -> str:
        """The report's lines; `times=False` keeps the facts and drops every number."""
        head = f"per-call overhead ({self.device}): "
        if not self.measured:
            head += f"not measured ({self.not_measured})"
        elif not times:
            head += "measured (times omitted)"
        else:
            over = self.overhead_us
            assert over is not None and self.call_us is not None
            shown = f"{over:.2f} µs" if over > 0 else "~0 µs (within timing noise)"
            head += (f"{shown} over the kernels (call {self.call_us:.2f} µs, kernels "
                     f"{self.kernels_us:.2f} µs; best of {self.samples} x {self.batch} "
                     f"call{'s' if self.batch != 1 else ''})")
        lines = [head]
        lines += [f"  {fact}" for fact in self.facts]
        if times and self.measured and self.method:
            lines.append(f"  measured: {self.method}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True, slots=True)
class ExplainReport:
    """How a function compiles: its kernels, the boundaries between them, and timings.

    `overhead` is the per-call overhead of the compiled call (:class:`OverheadReport`;
    set by ``f.explain``, None from ``Lowered.explain``). Example::

        >>> r = f.explain(np.ones(1024, np.float32))
        >>> r.overhead.measured, "per-call overhead" in str(r)
        (True, True)
    """

    function: str
    trace_ops: int
    optimized_ops: int
    kernels: tuple[KernelReport, ...]
    boundaries: tuple[BoundaryReport, ...]
    outputs: tuple[str, ...]
    stage_times: Mapping[str, float] = field(default_factory=dict)
    overhead: OverheadReport | None = None

    @property
    def bytes_moved(self) -> int:
        return sum(k.bytes_moved for k in self.kernels)

    def text(self, times: bool = True, overhead: bool | None = None) -> str:
        """The readable report. `times=False` omits stage times and the per-call
        overhead (stable text for golden tests); `overhead=True` adds the overhead's
        facts even then (without its numbers)."""
        n = len(self.kernels)
        lines = [f"explain @{self.function}: {self.trace_ops} traced ops -> "
                 f"{self.optimized_ops} optimized ops -> {n} kernel{'s' if n != 1 else ''}, "
                 f"{_bytes(self.bytes_moved)} moved"]
        if times and self.stage_times:
            total = sum(self.stage_times.values())
            parts = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in self.stage_times.items())
            lines.append(f"stage times (ms): {parts}; total {total * 1e3:.2f}")
        if self.overhead is not None and (times if overhead is None else overhead):
            lines.append(self.overhead.text(times))
        lines.append("")
        for k in self.kernels:
            lines.append(k.text())
        lines.append("")
        if self.boundaries:
            lines.append("fusion boundaries:")
            lines.extend(f"  {b}" for b in self.boundaries)
        else:
            lines.append("fusion boundaries: none")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text()


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024**3:.2f} GiB"


def _user_ops(traced: Graph, kernel: Kernel) -> tuple[str, ...]:
    """Ops of the traced graph (the user's vocabulary) at this kernel's source lines."""
    locs: set[Location] = {op.loc for op in kernel.ops if op.loc is not None}
    found = [op.name for op in traced.ops if op.loc in locs and op.name not in (
        "constant", "broadcast")]
    return tuple(dict.fromkeys(found))


def _buffer_text(prog: Program, bid: int) -> str:
    b = prog.buffers[bid]
    name = f" {b.name}" if b.name else ""
    return f"b{bid}{name} {b.type}"


def build_report(function: str, traced: Graph, optimized: Graph, plan: FusionPlan,
                 prog: Program, buffer_of: Mapping[Value, int],
                 stage_times: Mapping[str, float]) -> ExplainReport:
    """Assemble the report from the compile artifacts (`buffer_of`: value -> buffer id)."""
    boundaries = tuple(
        BoundaryReport(b.producer, b.consumer, _value_text(prog, buffer_of, b.value), b.reason,
                       b.detail)
        for b in plan.boundaries
    )
    returned = {o.buffer for o in prog.outputs}
    kernels = []
    for k, kernel in enumerate(prog.kernels):
        writes = []
        for bid in kernel.writes:
            why = [Reason.OUTPUT.value] if bid in returned else []
            why += [f"{b.reason.value} (read by k{b.consumer})" for b in plan.boundaries
                    if b.producer == k and buffer_of.get(b.value) == bid]
            writes.append(f"{_buffer_text(prog, bid)}: "
                          f"{', '.join(dict.fromkeys(why)) or _unread(kernel)}")
        read = sum(prog.buffers[b].nbytes for b in kernel.reads)
        written = sum(prog.buffers[b].nbytes for b in kernel.writes)
        kernels.append(KernelReport(
            k, kernel.name, kernel.kind, kernel.space, kernel.reduce_axes,
            len(kernel.phases), kernel.ops, _user_ops(traced, kernel), read, written,
            tuple(writes), tuple(b for b in boundaries if b.consumer == k),
            _loop_lines(kernel),
        ))
    outputs = tuple(f"output {i}: {_buffer_text(prog, o.buffer)}"
                    for i, o in enumerate(prog.outputs))
    return ExplainReport(function, len(traced.ops), len(optimized.ops), tuple(kernels),
                         boundaries, outputs, dict(stage_times))


def _unread(kernel: Kernel) -> str:
    return "a loop result nothing reads" if kernel.loop is not None else \
        "read by a later kernel"


def _loop_lines(kernel: Kernel) -> tuple[str, ...]:
    """For a while loop: how the CPU runs it, then its cond and body kernels."""
    loop = kernel.loop
    if loop is None:
        return ()
    from syntonic.lower.cpu.codegen import native_loop

    def count(p: Program) -> str:
        return f"{len(p.kernels)} kernel{'s' if len(p.kernels) != 1 else ''}"

    native = native_loop(loop)
    how = ("native loop on the CPU (no Python per iteration)" if native else
           "runs through its reference rule on the CPU (a cond or body kernel is a matmul "
           "or has no kernel lowering)")
    lines = [f"loop: {loop.carried} carried values; cond {count(loop.cond)}, body "
             f"{count(loop.body)}; {how}"]
    rb = loop.row_blocks
    if rb is not None and cpu_row_blocks(loop) is None:
        lines.append(f"row-local, but a block's temporaries ({rb.scratch_bytes / 2**20:.1f} "
                     f"MiB) exceed a CPU thread's stack budget "
                     f"({BLOCK_STACK_LIMIT / 2**20:.0f} MiB): the CPU runs the whole loop at "
                     "once, temporaries in the workspace")
    elif rb is not None:
        lines.append("row-local: each row runs the whole loop on its own, in parallel, until "
                     "its own flag is false (finished rows do no more work)" if rb.block == 1
                     else f"row-local: {rb.n_blocks} blocks of {rb.block} rows run the whole "
                     f"loop in parallel, each until its own rows are done")
    else:
        lines.append(f"not row-local: {loop.not_row_local}")
    lines.append(_cuda_loop_line(loop))
    for label, sub in (("cond", loop.cond), ("body", loop.body)):
        for sk in sub.kernels:
            names = ", ".join(dict.fromkeys(op.name for op in sk.ops))
            space = f"[{','.join(map(str, sk.space))}]"
            if sk.reduce_axes:
                space += f" reducing axes [{','.join(map(str, sk.reduce_axes))}]"
            lines.append(f"  {label} {sk.name}: {sk.kind} over {space}, {len(sk.phases)} "
                         f"phase{'s' if len(sk.phases) != 1 else ''}; ops: {names}")
    return tuple(lines)


def _cuda_loop_line(loop: Loop) -> str:
    """How the CUDA backend runs `loop`: one fused kernel, or driven by the host."""
    from syntonic.lower.cuda.rowloop import fusable

    if fusable(loop):
        return ("CUDA: one kernel, one thread block per row, each row loops until its own "
                "flag is false")
    return ("CUDA: host-driven (per iteration the host launches cond, reads its one-byte "
            "predicate, then launches the body)")


def _value_text(prog: Program, buffer_of: Mapping[Value, int], value: Value) -> str:
    bid = buffer_of.get(value)
    text = f"b{bid} {value.type}" if bid is not None else str(value.type)
    return text + (f" from {value.loc}" if value.loc else "")


# ---------------------------------------------------------------- per-call overhead

BUDGET_S = 0.03  # seconds of timed calls per quantity measured (the call, the kernels)
BATCH_S = 2e-4  # a timed batch runs about this long (many calls for small functions)
MAX_SAMPLES = 25
SLOW_S = 0.1  # a call slower than this is not timed further (explain stays quick)


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _batch_size(run: Callable[[int], float]) -> tuple[int, int]:
    """(calls per batch, batches) for `run(n)` (times n calls, returns seconds): batches
    of ~BATCH_S, as many as fit in BUDGET_S (at least one, at most MAX_SAMPLES)."""
    run(1)  # warm-up (first-touch of outputs, the pool's workers, caches)
    one = max(min(run(1), run(1)), 1e-8)
    n = max(1, min(5000, int(BATCH_S / one)))
    fit = int(BUDGET_S / (n * one))
    floor = 3 if 3 * n * one <= 0.1 else 1  # a few samples unless the calls are slow
    return n, max(floor, min(MAX_SAMPLES, fit))


def _best(run: Callable[[int], float], n: int, samples: int) -> float:
    """Best seconds per call over `samples` batches of `n` calls."""
    return min(run(n) for _ in range(samples)) / n


def overhead_report(fn: Any, entry: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                    leaves: Sequence[Any], program: Program) -> OverheadReport:
    """The per-call overhead of `fn` (a ``JitFunction``) for these arguments.

    `entry` is the traced signature (a ``Compiled``), `leaves` the flattened arguments,
    `program` the kernel program (for facts when nothing is compiled yet). With concrete
    arguments this compiles the entry as the first call would and times calls; the
    function's cache keeps the same entries, and ``fn``'s hot signature is restored.
    Example::

        o = overhead_report(f, f._cache[key], (x,), {}, [x], low.program)
    """
    from syntonic.frontend.trace import ArraySpec
    from syntonic.ir.errors import SyntonicError

    abstract = any(isinstance(leaf, ArraySpec) for leaf in leaves)
    try:
        return _overhead(fn, entry, args, kwargs, leaves, program, abstract)
    except SyntonicError as exc:  # e.g. device="cpu" and the backend fails: say so
        return OverheadReport(entry.device, (), not_measured=f"no compiled call: {exc}")


def _overhead(fn: Any, entry: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
              leaves: Sequence[Any], program: Program, abstract: bool) -> OverheadReport:
    from syntonic.ir.errors import SyntonicError

    native = entry._native
    if not abstract and native is None:
        entry._compile_or_fallback()  # what the first call does
        native = entry._native  # a program, or False: it runs on the interpreter
    device = _device_of(entry, native)
    if device == "interpreter":
        return OverheadReport("interpreter", (
            "runs the reference interpreter: no compiled kernels to separate from the call",),
            not_measured="reference interpreter")
    if device == "cuda":
        return _gpu_overhead(fn, entry, native, args, kwargs, leaves, program, abstract)
    if native is None or native is False:  # abstract and not compiled yet
        outs = len(program.outputs)
        return OverheadReport("cpu", (
            f"{_plural(len(program.kernels), 'kernel')}; {_plural(outs, 'output')} "
            "allocated per call; the entry (METH_FASTCALL or buffer table) is chosen when "
            "the program is compiled at the first call",), not_measured="abstract arguments")
    facts, _ = _cpu_facts(fn, entry, native, args, kwargs, leaves, abstract)
    if abstract:
        return OverheadReport("cpu", facts, not_measured="abstract arguments")
    try:
        return _cpu_measure(fn, entry, native, args, kwargs, leaves, facts)
    except SyntonicError as exc:
        return OverheadReport("cpu", facts, not_measured=f"the call failed: {exc}")


def _device_of(entry: Any, native: Any) -> str:
    """Where the entry runs: ``cpu``, ``cuda`` or ``interpreter`` (None: not compiled)."""
    if native is None:  # abstract arguments, nothing compiled: what a call would pick
        from syntonic import config
        from syntonic.runtime import cuda

        if entry.device == "interpreter":
            return "interpreter"
        if entry.device == "cuda" or (entry.device == "auto"
                                      and config.current().device != "cpu"
                                      and cuda.available()[0]):
            return "cuda"
        return "cpu"
    if native is False:
        return "interpreter"
    return "cpu" if hasattr(native, "fast") else "cuda"


def _cpu_facts(fn: Any, entry: Any, native: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any], leaves: Sequence[Any], abstract: bool
               ) -> tuple[tuple[str, ...], bool]:
    """The static facts of the CPU call path, and whether the FAST entry takes it."""
    import numpy as np

    from syntonic.runtime.jit import _fast_key, _hot_path

    fast_ok = False
    if native.fast is not None and not abstract and not entry.donated:
        outs = [np.empty(shape, dt) for shape, dt in native.out_slots]
        fast_ok = native.fast(*leaves, *outs) is outs[-1]  # its own argument check
    hot = (fast_ok and not kwargs and _hot_path(entry) is not None
           and len(args) == len(leaves) and all(a is b for a, b in zip(args, leaves)))
    n_out = len(native.out_slots)
    steps = native._steps
    n_native = sum(1 for s in steps if s["kind"] == "native")
    facts = []
    if abstract:
        facts.append("inputs checked natively by the entry when this signature is the one "
                     "called last, else by a cached key (dtype and shape of each array)"
                     if _hot_path(entry) is not None else
                     "inputs checked by a cached key (dtype and shape of each array), or "
                     "the full signature key for keywords, static arguments and pytrees")
    elif hot:
        facts.append("inputs checked natively by the entry (type, dtype, shape, layout of "
                     "every array; the hot signature: no Python-side key)")
    elif not kwargs and not fn.static_argnames and _fast_key(args) is not None:
        if _fast_key(args) in fn._cache:
            facts.append("inputs checked by a cached key (dtype and shape of each array)")
        else:
            facts.append("inputs checked by binding the arguments and building the "
                         "signature key on the first call (this signature was traced by "
                         "explain, trace or lower); later calls find it by a cached key "
                         "(dtype and shape of each array)")
    else:
        facts.append("inputs checked by binding the arguments and building the signature "
                     "key (keywords, static arguments, pytrees or scalars)")
    if entry.donated:
        copies = (": outputs written in place into donated arguments then update copies "
                  "of them, which its call time includes" if native._inplace else "")
        facts.append(f"{_plural(n_out, 'output')} per call from the donation pool (this "
                     f"measurement calls without donating, to keep your arrays out of it"
                     f"{copies})")
    else:
        facts.append(f"{_plural(n_out, 'output')} allocated per call (np.empty)")
    if fast_ok or (abstract and native.fast is not None):
        when = "" if fast_ok else " (when the arguments are C-contiguous arrays of the " \
            "expected dtypes)"
        facts.append(f"one native call through the CPython-API (METH_FASTCALL) entry{when}: "
                     f"{_plural(n_native, 'kernel')} run in it, temporaries on the native "
                     "stack")
    else:
        pool = sum(1 for s in steps if s["kind"] == "native" and native.parallel(s))
        gemms = sum(1 for s in steps if s["kind"] == "matmul")
        opaque = sum(1 for s in steps if s["kind"] not in ("native", "matmul"))
        parts = [_plural(n_native, "kernel") + (f" ({pool} on the thread pool)" if pool else "")]
        if gemms:
            parts.append(f"{_plural(gemms, 'GEMM')} (private OpenBLAS, split over the pool)")
        if opaque:
            parts.append(f"{_plural(opaque, 'opaque kernel')} by the reference rule")
            how = "each step called from Python"
        else:
            how = ("all steps in one native call once the runtime support library is "
                   "loaded (runtime/runner.py; before that, each step called from Python)")
        facts.append("arguments packed into a buffer table per call; " + ", ".join(parts)
                     + f": {how}; temporaries in a reused workspace")
    if not entry._single:
        facts.append("results assembled into the output structure (pytree)")
    return tuple(facts), fast_ok


def _cpu_measure(fn: Any, entry: Any, native: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any], leaves: Sequence[Any],
                 facts: tuple[str, ...]) -> OverheadReport:
    """Time the call (as the user makes it), then its kernels alone on a prepared table:
    for a program with a METH_FASTCALL entry (all kernels serial) each kernel called over
    its range minus over an empty one; otherwise the program's own steps (the schedule,
    fused GEMM epilogues, pool jobs and step runner of the call)."""
    import numpy as np

    from syntonic.runtime import cpu

    perf = time.perf_counter
    if entry.donated:  # never hand the caller's arrays to the donation pool
        target: Callable[..., Any] = native
        call_args: tuple[Any, ...] = tuple(leaves)
        call_kwargs: dict[str, Any] = {}
    else:
        target, call_args, call_kwargs = fn, args, kwargs

    def calls(n: int) -> float:
        t = perf()
        if call_kwargs:
            for _ in range(n):
                target(*call_args, **call_kwargs)
        else:
            for _ in range(n):
                target(*call_args)
        return perf() - t

    hot = fn._hot
    try:
        first = calls(1)
        if first > SLOW_S:  # one call already costs far more than any dispatch
            return OverheadReport("cpu", facts, not_measured=(
                f"one call takes {first * 1e3:.0f} ms, where the per-call overhead (a few "
                "µs) is below the timing noise; explain a smaller input to measure it"))
        n, samples = _batch_size(calls)
        call = _best(calls, n, samples)
    finally:
        fn._hot = hot  # the measurement leaves the hot signature as it found it

    # the kernels alone: the compiled kernels on a table of copies of the arguments and
    # fresh outputs and temporaries (the caller's arrays are never written)
    params = [np.array(a, dt, copy=True, order="C")
              for a, dt in zip(leaves, native.param_dtypes)]
    outs = [np.empty(shape, dt) for shape, dt in native.out_slots]
    front = params + outs
    temps, table = native._new_workspace(len(front))
    for i, a in enumerate(front):
        table[i] = cpu.data_pointer(a)
    if native.fast is None:  # the steps as the call runs them
        def run_steps(n: int) -> float:
            t = perf()
            for _ in range(n):
                native._run_steps(front, temps, table)
            return perf() - t

        n_k, samples_k = _batch_size(run_steps)
        kernels = _best(run_steps, n_k, samples_k)
        method = ("the call as made, timed in batches; kernels: the program's steps as the "
                  "call runs them (kernels, GEMMs, pool hand-offs, one native call through "
                  "the step runner where it applies) on a prepared buffer table")
        return OverheadReport("cpu", facts, call * 1e6, kernels * 1e6, samples, n,
                              method=method)
    # the METH_FASTCALL entry runs every kernel in one native call (all steps native)
    addr = ctypes.addressof(table)
    steps = [(native.kernels[s["symbol"]], s["items"]) for s in native._steps]

    def full(n: int) -> float:
        t = perf()
        for _ in range(n):
            for kernel, items in steps:
                kernel(addr, 0, items)
        return perf() - t

    def empty(n: int) -> float:  # the same entries over empty ranges: no work
        t = perf()
        for _ in range(n):
            for kernel, _items in steps:
                kernel(addr, 0, 0)
        return perf() - t

    if steps:
        n_k, samples_k = _batch_size(full)
        best_full = best_empty = float("inf")
        for _ in range(samples_k):  # interleaved: both see the same machine state
            best_full = min(best_full, full(n_k))
            best_empty = min(best_empty, empty(n_k))
        kernels = max(0.0, (best_full - best_empty) / n_k)
    else:
        kernels = 0.0
    method = ("the call as made, timed in batches; kernels: each compiled kernel on a "
              "prepared buffer table over its full range minus the same entry over an "
              "empty range (thread-pool hand-off counts as kernel time)")
    return OverheadReport("cpu", facts, call * 1e6, kernels * 1e6, samples, n,
                          method=method)


def _gpu_facts(gp: Any, module: Any, leaves: Sequence[Any], n_outputs: int
               ) -> tuple[str, ...]:
    """Static facts of a CUDA call, from the GpuProgram (or just the CUDA module)."""
    import numpy as np

    from syntonic.lower.cuda.plan import Launch

    if gp is not None:
        from syntonic.runtime.gpu import _Loop, _PreparedLaunch

        steps = gp._steps
        launches = sum(1 for s in steps if type(s) is _PreparedLaunch and s.grid)
        loops = sum(1 for s in steps if type(s) is _Loop)
        opaque = sum(1 for s in steps if isinstance(s, int))
        written = sum(len(s.dynamic) for s in steps if type(s) is _PreparedLaunch)
        n_outputs = sum(1 for spec in gp._out_specs if spec[3])
    else:
        launches = sum(1 for s in module.steps if isinstance(s, Launch))
        loops = sum(1 for s in module.steps if hasattr(s, "cond") and hasattr(s, "body"))
        opaque = len(module.steps) - launches - loops
        written = 0
    text = _plural(launches, "kernel launch", "kernel launches") + " per call"
    if loops:
        text += f", plus {_plural(loops, 'host-driven loop')} (cond and body launches and " \
                "a one-byte read-back per trip)"
    if opaque:
        text += f", plus {_plural(opaque, 'opaque kernel')} run on the host (copies both ways)"
    facts = [text,
             f"{_plural(n_outputs, 'output')} per call from the pooled device allocator "
             "(no cuMemAlloc once warm)",
             "launch arguments packed once per signature"
             + (f"; per call {_plural(written, 'pointer')} written into them"
                if gp is not None else "")]
    if any(isinstance(leaf, np.ndarray) or type(leaf) in (int, float, bool)
           for leaf in leaves):
        facts.append("host (numpy) inputs are uploaded per call and the results downloaded; "
                     "pass sn.to_device arrays to keep them on the GPU")
    return tuple(facts)


def _real_gpu() -> bool:
    """True when the CUDA driver in use is ``cuda.bindings.driver`` (not a test double)."""
    import types

    from syntonic.runtime import cuda

    try:
        drv = cuda.driver()
    except Exception:  # noqa: BLE001 - no driver: no GPU
        return False
    return isinstance(drv, types.ModuleType) and drv.__name__.startswith("cuda.bindings")


def _gpu_overhead(fn: Any, entry: Any, gp: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any], leaves: Sequence[Any], program: Program,
                  abstract: bool) -> OverheadReport:
    from syntonic.ir.errors import SyntonicError

    module = gp.module if gp is not None else None
    if module is None:
        from syntonic.lower.cuda import generate

        module = generate(program, program.name)
    facts = _gpu_facts(gp, module, leaves, len(program.outputs))
    if abstract:
        return OverheadReport("cuda", facts, not_measured="abstract arguments")
    if gp is None or not _real_gpu():
        return OverheadReport("cuda", facts, not_measured="no GPU")
    try:
        return _gpu_measure(fn, entry, gp, args, kwargs, leaves, facts)
    except SyntonicError as exc:
        return OverheadReport("cuda", facts, not_measured=f"the call failed: {exc}")


def _gpu_measure(fn: Any, entry: Any, gp: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any], leaves: Sequence[Any],
                 facts: tuple[str, ...]) -> OverheadReport:
    """On a real device: a synchronized call end to end (host timer) and the GPU time
    between CUDA events recorded around the call; the overhead is the difference."""
    from syntonic.runtime import cuda

    dev = gp.device
    perf = time.perf_counter
    if entry.donated:
        def one() -> Any:
            return gp(*leaves)
    else:
        def one() -> Any:
            return fn(*args, **kwargs)

    def calls(n: int) -> float:
        t = perf()
        for _ in range(n):  # one call at a time, each synchronized
            one()
            dev.synchronize()
        return perf() - t

    hot = fn._hot
    try:
        n, samples = _batch_size(calls)
        call = _best(calls, n, samples)
        start, end = cuda.Event(), cuda.Event()
        gpu_ms = float("inf")
        for _ in range(max(3, min(samples * n, 50))):
            start.record()
            one()
            end.record()
            gpu_ms = min(gpu_ms, start.elapsed_ms(end))
    finally:
        fn._hot = hot
    method = ("call: one synchronized call, host timer; kernels: GPU time between CUDA "
              "events recorded around the call (gaps between launches count as kernel "
              "time, so the overhead is a lower bound)")
    return OverheadReport("cuda", facts, call * 1e6, gpu_ms * 1e3, samples, n,
                          method=method)


__all__ = ["BoundaryReport", "ExplainReport", "KernelReport", "OverheadReport",
           "build_report", "overhead_report"]
