"""Row-local ``while`` loops on CUDA: the whole loop as ONE kernel, one thread block per row.

A row-local loop (:mod:`syntonic.passes.rowlocal`, ``Loop.row_blocks``) evolves every row
on its own, its predicate is ``any(flag)`` of a carried per-row flag, and a row whose
flag is false comes out of the body unchanged; so each row may iterate until its own
predicate is false. :func:`emit` writes one kernel for such a loop:

* a grid-stride loop over the rows, one thread block per row; the block runs
  ``while (cond(row)) row = body(row)`` on its own: no host round trip per iteration and
  no work for rows that are done. Blocks are narrow (down to one warp) when there are
  many rows (:data:`THREADS_IN_FLIGHT`): the loop is latency-bound, so rows in flight
  matter more than threads per row;
* the cond and body regions are rebuilt for ONE row (:func:`row_programs`:
  ``with_rows(region, row_params, rows, 1)``, fused and lowered like any program) and
  each of their kernels becomes code the whole block runs, through the code generator's
  own loops (:meth:`_KernelGen.elementwise_loop` block-stride over the points;
  :meth:`_KernelGen.rows_loop` for reductions: rows one after another, each reduced by
  the block with the fixed-order warp-shuffle and shared-memory reduction, so results
  are deterministic), with a ``__syncthreads()`` after each kernel;
* the block reads only its row of per-row operands (carried values, per-row loop
  invariants) and shared invariants whole; the sub-programs' constants are
  :class:`~syntonic.lower.cuda.plan.Scratch` buffers with data (uploaded once); their
  temporaries are ``__shared__`` arrays when small (:data:`SHARED_TEMP_BYTES`), else
  per-row slices of a scratch buffer;
* carried values ping-pong between pointer sets: the first trip reads the loop's inputs
  and writes the loop's outputs, later trips alternate between the outputs and a
  scratch set by swapping local pointers (no copy). A body result that is not a buffer
  of its own (a value passed through, a constant, a duplicate) is copied into the next
  set. At the end a row whose final values are in the scratch set (or still in the
  inputs: zero trips) copies them to the loop's outputs.

The step is a plain :class:`~syntonic.lower.cuda.plan.Launch` (stage ``rowloop``). Loops
that are not row-local, or whose one-row programs hold a kernel a block cannot run (an
opaque op; a nested loop is never row-local), stay host-driven ``LoopStep``\\ s.

Example (the loop kernel of ``sn.evolve`` on ``f32[20,248]``)::

    mod = generate(program, "f")
    [s for s in mod.steps if s.kernel == 2]   # [Launch(symbol='sn_f_k2', stage='rowloop')]
"""

from __future__ import annotations

import math

import numpy as np

from syntonic.ir.types import DType
from syntonic.lower.cuda.codegen import STORAGE_C, _KernelGen, _ModuleGen, row_block
from syntonic.lower.cuda.plan import Arg, BufferArg, Launch, ScratchArg
from syntonic.lower.kernel import Kernel, Loop, Program, Role, check_kernel
from syntonic.records import record

# A one-row temporary of at most this many bytes lives in shared memory while the loop's
# shared temporaries stay within SHARED_TEMPS_TOTAL (else a per-row slice of scratch).
SHARED_TEMP_BYTES = 512
SHARED_TEMPS_TOTAL = 8 * 1024
# Threads in flight the launch aims for: the loop is latency-bound (barriers, reductions
# per iteration), so with many rows a row gets fewer threads (down to one warp) and more
# rows run at once; with few rows each row gets up to codegen's row block.
THREADS_IN_FLIGHT = 1 << 17


@record(frozen=True, slots=True, eq=False)
class RowPrograms:
    """A row-local loop's cond and body regions rebuilt for one row, as programs."""

    cond: Program
    body: Program


def _in_block(k: Kernel) -> bool:
    """True if a thread block can run kernel `k` inside a larger kernel."""
    return k.opaque is None and k.loop is None


def fusable(loop: Loop) -> bool:
    """True if CUDA runs `loop` as one kernel (row-local, every block kernel native).

    Cheap (no fusion): decided on the loop's block programs, which hold the same ops as
    the one-row programs :func:`row_programs` builds.
    """
    rb = loop.row_blocks
    return rb is not None and all(_in_block(k) for p in (rb.cond, rb.body) for k in p)


def row_programs(k: Kernel) -> RowPrograms | None:
    """The one-row cond and body programs of loop kernel `k`, or None when the loop is
    not row-local or a one-row kernel cannot run inside a thread block."""
    from syntonic.lower.schedule import lower_to_kernels
    from syntonic.passes.fusion import fuse
    from syntonic.passes.rowlocal import with_rows

    loop = k.loop
    if loop is None or k.opaque is None or not fusable(loop):
        return None
    rb = loop.row_blocks
    assert rb is not None
    cond, body = k.opaque.regions
    progs = [lower_to_kernels(fuse(with_rows(g, rb.row_params, rb.rows, 1)))
             for g in (cond, body)]
    if not all(_in_block(kk) for p in progs for kk in p):
        return None
    return RowPrograms(*progs)


def emit(mod: _ModuleGen, idx: int, k: Kernel, rows: RowPrograms) -> None:
    """Write the fused loop kernel of program kernel `idx` into `mod` and add its launch."""
    _RowLoopGen(mod, idx, k, rows).emit()


class _RowLoopGen:
    """The kernel of one row-local loop (see the module docstring).

    C names: ``sn_g<b>`` enclosing buffer b, ``sn_x<s>`` scratch s, ``sn_row`` the row;
    per carried value i: ``sn_c<i>`` current, ``sn_n<i>`` next, ``sn_o<i>`` the output
    and ``sn_a<i>`` the scratch slot at the row; ``sn_s<tag><b>`` shared temporaries.
    The sub-kernels' own names (``b<id>``, ``v<n>``, ``row`` ...) live in nested blocks.
    """

    def __init__(self, mod: _ModuleGen, idx: int, k: Kernel, rows: RowPrograms) -> None:
        assert k.loop is not None and k.loop.row_blocks is not None
        self.m = mod
        self.w = mod.out
        self.idx = idx
        self.k = k
        self.loop = k.loop
        self.rb = k.loop.row_blocks
        self.progs = {"c": rows.cond, "b": rows.body}
        self.symbol = f"{mod.prefix}_k{idx}"
        self.params: list[str] = []
        self.args: list[Arg] = []
        self.shared: list[str] = []  # __shared__ declarations at the kernel start
        self.shared_bytes = 0
        self.place: dict[tuple[str, int], str] = {}  # (tag, sub-program buffer) -> pointer
        self.read_only: set[tuple[str, int]] = set()  # placed in memory no step writes
        self.consts: dict[tuple[DType, bytes], str] = {}
        self.fresh = self._fresh()

    # ------------------------------------------------------------ layout
    def _fresh(self) -> dict[int, int]:
        """Body buffers that become carried value i (written straight into the next set)."""
        body = self.progs["b"]
        out: dict[int, int] = {}
        for i, o in enumerate(body.outputs[:self.loop.carried]):
            if body.buffers[o.buffer].role is Role.OUTPUT and o.buffer not in out:
                out[o.buffer] = i
        return out

    def row_elems(self, i: int) -> int:
        """Elements per row of sub-program parameter i (the same in cond and body)."""
        return self.progs["b"].buffers[self.progs["b"].params[i]].type.size

    def carried_ctype(self, i: int) -> str:
        body = self.progs["b"]
        return STORAGE_C[body.buffers[body.params[i]].type.dtype]

    def enclosing_params(self) -> None:
        """The loop's input and output buffers as kernel parameters. Only memory that
        nothing writes while the kernel runs (loop invariants) is ``const __restrict__``:
        see :meth:`declare`."""
        prog, loop = self.m.prog, self.loop
        state = set(loop.inputs[:loop.carried]) | set(loop.outputs)
        for bid in sorted(set(loop.inputs) | set(loop.outputs)):
            ct = STORAGE_C[prog.buffers[bid].type.dtype]
            kind = f"{ct}*" if bid in loop.outputs else f"const {ct}*"
            restrict = "" if bid in state else " __restrict__"
            self.params.append(f"{kind}{restrict} sn_g{bid}")
            self.args.append(BufferArg(bid))

    def scratch(self, dtype: DType, size: int, what: str,
                data: np.ndarray | None = None) -> str:
        """A new kernel parameter for a new scratch buffer; its C name."""
        sid = self.m.new_scratch(dtype, size, f"{self.k.name} {what}", data)
        kind = f"{STORAGE_C[dtype]}*" if data is None else \
            f"const {STORAGE_C[dtype]}* __restrict__"
        self.params.append(f"{kind} sn_x{sid}")
        self.args.append(ScratchArg(sid))
        return f"sn_x{sid}"

    def constant(self, prog: Program, bid: int) -> str:
        buf = prog.buffers[bid]
        dt = buf.type.dtype
        data = np.ascontiguousarray(np.asarray(buf.data, dt.np)).reshape(-1)
        key = (dt, data.tobytes())
        if key not in self.consts:
            self.consts[key] = self.scratch(dt, data.size, "constant", data)
        return self.consts[key]

    def place_buffers(self, tag: str) -> None:
        """The pointer each buffer of sub-program `tag` lives at, for the current row."""
        prog, loop, rb = self.progs[tag], self.loop, self.rb
        for b in prog.buffers:
            key = (tag, b.id)
            if b.role is Role.PARAM:
                i = prog.params.index(b.id)
                if i < loop.carried:
                    self.place[key] = f"sn_c{i}"
                elif rb.row_params[i]:
                    self.place[key] = f"(sn_g{loop.inputs[i]} + sn_row * {b.type.size})"
                    self.read_only.add(key)
                else:
                    self.place[key] = f"sn_g{loop.inputs[i]}"
                    self.read_only.add(key)
            elif b.role is Role.CONST:
                self.place[key] = self.constant(prog, b.id)
                self.read_only.add(key)
            elif tag == "b" and b.id in self.fresh:
                self.place[key] = f"sn_n{self.fresh[b.id]}"
            elif b.nbytes <= SHARED_TEMP_BYTES and \
                    self.shared_bytes + b.nbytes <= SHARED_TEMPS_TOTAL:
                self.shared_bytes += b.nbytes
                name = f"sn_s{tag}{b.id}"
                self.shared.append(f"__shared__ {STORAGE_C[b.type.dtype]} "
                                   f"{name}[{max(b.type.size, 1)}];")
                self.place[key] = name
            else:
                x = self.scratch(b.type.dtype, self.rb.rows * b.type.size,
                                 f"{tag}{b.id} per row")
                self.place[key] = f"({x} + sn_row * {b.type.size})"

    def block_threads(self) -> int:
        """Threads per block: codegen's row block for the widest row of any sub-kernel or
        copy, fewer (a power of two, at least one warp) when that many threads per row
        would put more than :data:`THREADS_IN_FLIGHT` threads on the rows."""
        work = [self.row_elems(i) for i in range(self.loop.carried)]
        for prog in self.progs.values():
            for kk in prog:
                work.append(math.prod(kk.inner_shape if kk.reductions else kk.space))
        widest = row_block(max(work, default=1))
        share = THREADS_IN_FLIGHT // max(self.rb.rows, 1)
        return max(32, min(widest, 1 << max(share, 1).bit_length() - 1))

    # ------------------------------------------------------------ emission
    def emit(self) -> None:
        self.enclosing_params()
        alt = [self.scratch(self.progs["b"].buffers[self.progs["b"].params[i]].type.dtype,
                            self.rb.rows * self.row_elems(i), f"carried {i}")
               for i in range(self.loop.carried)]
        self.place_buffers("c")
        self.place_buffers("b")
        w = self.w
        w("")
        w(f"// {self.k.name} [row-local loop] {self.rb.rows} rows, {self.loop.carried} "
          f"carried values: one block per row, each row loops until its own flag is false")
        with w.block(f'extern "C" __global__ void {self.symbol}({", ".join(self.params)})'):
            for line in self.shared:
                w(line)
            with w.block(f"for (long long sn_row = blockIdx.x; sn_row < {self.rb.rows}; "
                         f"sn_row += gridDim.x)"):
                self.row_pointers(alt)
                with w.block("while (true)"):
                    self.sub_program("c")
                    w(f"if ({self.place[('c', self.progs['c'].outputs[0].buffer)]}[0] == 0) "
                      f"break;")
                    self.sub_program("b")
                    self.copy_results()
                    self.rotate()
                for i in range(self.loop.carried):
                    with w.block(f"if (sn_c{i} != sn_o{i})"):
                        self.copy(f"sn_o{i}", f"sn_c{i}", self.row_elems(i))
                w("__syncthreads();  // the next row reuses the shared temporaries")
        self.m.steps.append(Launch(self.idx, self.symbol, tuple(self.args),
                                   self.block_threads(), self.rb.rows, 1, "rowloop"))

    def row_pointers(self, alt: list[str]) -> None:
        loop = self.loop
        for i in range(loop.carried):
            ct, e = self.carried_ctype(i), self.row_elems(i)
            self.w(f"{ct}* sn_c{i} = ({ct}*)(sn_g{loop.inputs[i]} + sn_row * {e});")
            self.w(f"{ct}* const sn_o{i} = sn_g{loop.outputs[i]} + sn_row * {e};")
            self.w(f"{ct}* const sn_a{i} = {alt[i]} + sn_row * {e};")
            self.w(f"{ct}* sn_n{i} = sn_o{i};")

    def sub_program(self, tag: str) -> None:
        """Every kernel of sub-program `tag`, run by the whole block, a barrier after each."""
        prog = self.progs[tag]
        gen = _ModuleGen(prog, f"{self.symbol}{tag}", self.w)
        for j, kk in enumerate(prog.kernels):
            check_kernel(kk)
            kg = _KernelGen(gen, j, kk)
            with self.w.block(""):
                kg.describe("cond " if tag == "c" else "body ")
                for bid in kg.buffers():
                    self.w(self.declare(tag, kg, bid))
                if kk.reductions:
                    kg.rows_loop("0", "1")
                else:
                    kg.elementwise_loop("threadIdx.x", "blockDim.x")
            self.w("__syncthreads();")

    def declare(self, tag: str, kg: _KernelGen, bid: int) -> str:
        """The C declaration of sub-kernel buffer ``b<bid>`` at its place.

        Only loop invariants and constants are ``const __restrict__``. Memory this fused
        kernel writes (carried values, temporaries) never is, nor are the pointers
        written through: with them the compiler reads carried values through the
        read-only data cache (``ld.global.nc``), which is not coherent with writes made
        earlier in the same kernel, i.e. by the previous iteration.
        """
        place = self.place[(tag, bid)]
        if (tag, bid) in self.read_only:
            return f"{kg.buffer_param(bid)} = {place};"
        ct = STORAGE_C[self.progs[tag].buffers[bid].type.dtype]
        const = "" if bid in kg.k.writes else "const "
        return f"{const}{ct}* b{bid} = {place};"

    def copy_results(self) -> None:
        """Body results that are not a buffer of their own, copied into the next set."""
        body = self.progs["b"]
        copied = False
        for i, o in enumerate(body.outputs[:self.loop.carried]):
            if self.fresh.get(o.buffer) != i:
                self.copy(f"sn_n{i}", self.place[("b", o.buffer)], self.row_elems(i))
                copied = True
        if copied:
            self.w("__syncthreads();")

    def copy(self, dst: str, src: str, n: int) -> None:
        with self.w.block(f"for (long long e = threadIdx.x; e < {n}; e += blockDim.x)"):
            self.w(f"{dst}[e] = {src}[e];")

    def rotate(self) -> None:
        """The next values become current; the set they replace is written next."""
        for i in range(self.loop.carried):
            self.w(f"sn_c{i} = sn_n{i};")
            self.w(f"sn_n{i} = sn_c{i} == sn_o{i} ? sn_a{i} : sn_o{i};")


__all__ = ["SHARED_TEMPS_TOTAL", "SHARED_TEMP_BYTES", "THREADS_IN_FLIGHT", "RowPrograms", "emit",
           "fusable", "row_programs"]
