"""Kernel IR -> LLVM IR: one native function per kernel, plus the function entry points.

Loop structure of a kernel (``void k(i8** table, i64 start, i64 stop)``): the function runs
*work items* ``[start, stop)``; the thread pool splits that range.

* **reduction kernels** (reduce axes present): a work item is one row (one outer index).
  Per row, each phase is a loop nest over the reduced axes that feeds the accumulators
  and does the phase's stores, then the row stores. Float sums accumulate in f64 (and
  ``reassoc`` is allowed on the accumulator only, so LLVM vectorises with several partial
  sums); f32 sums of short rows in f32, long ones in f32 block by block (below).
  Float adds, subtracts, multiplies and accumulations carry ``contract`` (``ACC_FLAGS``,
  ``scalar.FLOAT_FLAGS``): LLVM may fuse a multiply and an add into one FMA, rounded once
  instead of twice (as NVRTC does by default); the math library's polynomials place their
  FMAs explicitly and are unaffected.
  An f32 sum (or mean) over at most ``SHORT_F32_SUM`` elements per row accumulates in
  f32, at twice the lanes and without conversions: a contiguous row vectorises into 16
  partial sums (8 lanes, 2 interleaved) of at most 16 terms, so the error stays within
  ~20 ulp of sum |x| (numpy's pairwise f32 sum is of the same order; the documented f32
  tolerance is 1e-4). A longer f32 row (at least two blocks per work item) runs its
  innermost axis in blocks of ``SHORT_F32_SUM``: each block accumulates like a short row
  and its sum is added to an f64 accumulator, so the bound is the same (~20 ulp of
  sum |x|) and the loop streams at memory speed (W3, a cosine of two 2**24 vectors:
  6.4 -> 4.2 ms; per element in L2 2.6x faster than converting every element to f64).
* **split full reductions** (one phase, every axis reduced, >= ``SPLIT_MIN`` points): up to
  ``SPLIT_PARTS`` chunks of the first axis run on the thread pool, each writing its partial
  accumulators; a combine kernel folds them in chunk order (deterministic: the chunks
  depend on the shape only) and does the row stores.
* **column reductions** (leading axes reduced, only the last axis kept, one phase): a work
  item is ``COLUMNS`` consecutive columns, the reduced axes loop outside and the columns
  inside, with one accumulator per column in a stack array, so the loop vectorises.
* **elementwise kernels**: the last axis is the inner (vectorised) loop; a work item is one
  block of it in one row (rows = the other axes), so even a rank-1 kernel splits across
  threads.
* **matmul kernels**: the GEMM runs through numpy (BLAS) into a scratch buffer, chosen by
  measurement (``bench/``); the kernel is then the fused epilogue, reading the contraction
  accumulator from the scratch buffer.

Nodes are emitted where they vary: values that do not depend on the inner axes once per
row (before the loop, or after it when they read this phase's accumulators), the others
inside the loop. Constant buffers become global constants in the module, so the object
code (and the disk cache) is self-contained.

Example::

    lowered = lower_program(program)      # LLVM IR text + a JSON-able plan
    print(lowered.llvm_ir)
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import Any

import numpy as np
from llvmlite import ir

from syntonic.ir.errors import BackendError
from syntonic.ir.types import DType
from syntonic.lower.cpu import abi
from syntonic.lower.cpu.constants import pack_array
from syntonic.lower.cpu.math import MathLib
from syntonic.lower.cpu.scalar import (
    LOWERING,
    STORAGE_TYPES,
    VALUE_TYPES,
    Ctx,
    const,
    convert,
    resize_float,
)
from syntonic.lower.kernel import (
    Acc,
    Apply,
    Const,
    Iota,
    Kernel,
    Load,
    Program,
    Reduction,
    Role,
    Store,
    acc_dependencies,
    check_kernel,
    cpu_row_blocks,
)
from syntonic.lower.view import View
from syntonic.records import record

I1 = ir.IntType(1)
I8 = abi.I8
I8P = abi.I8P
I64 = ir.IntType(64)
I32 = ir.IntType(32)
F64 = ir.DoubleType()
CODEGEN_VERSION = "cpu-codegen-1"
MAX_BLOCKS = 256
MIN_BLOCK = 2048


@record
class Lowered:
    """LLVM IR text of a program, the plan the runtime follows to run it, and how many
    vector iterations LLVM should interleave per loop trip (see :func:`interleave_for`)."""

    llvm_ir: str
    plan: dict[str, Any]
    symbols: tuple[str, ...]
    interleave: int = 2


# Vector iterations per loop trip (LLVM's -force-vector-interleave, see Engine.optimize):
# 2 in general; 4 when every kernel is elementwise with inner loops of at least LONG_LOOP
# elements. Measured (same process, best of 9, 2 threads): W1 (tanh, exp and a division
# per element, 2**24) 9.9 -> 8.8 ms with 4; copy, triad, W2 and W3 unchanged; rows of
# 248 (the engine's evolve and DHSR cycle) 0-3 % slower with 4, so they keep 2.
INTERLEAVE = 2
INTERLEAVE_LONG = 4
LONG_LOOP = 1024


def interleave_for(trips: list[int]) -> int:
    """The interleave for a module whose kernels' inner loops run `trips` iterations
    (0: a kernel that is not elementwise)."""
    return INTERLEAVE_LONG if trips and min(trips) >= LONG_LOOP else INTERLEAVE


@record
class _Loops:
    """Work-item decomposition of one kernel."""

    outer_axes: list[int]
    inner_axes: list[int]
    blocks: int  # blocks of the last axis per row (elementwise kernels)
    block: int
    columns: int = 0  # column mode: a work item is this many consecutive outer indices

    def items(self, space: tuple[int, ...]) -> int:
        rows = math.prod(space[a] for a in self.outer_axes)
        if self.columns:
            return -(-rows // self.columns)
        return rows * self.blocks


# Column mode: a reduction over leading axes that keeps only the last axis (column sums,
# bias gradients) runs COLUMNS consecutive columns per work item with the column loop
# innermost, so loads and accumulators are contiguous and the loop vectorizes (one column
# per work item would walk memory with the row stride, one element at a time).
COLUMNS = 16
# f32 sums and means over at most this many elements per row accumulate in f32; longer
# rows in f32 blocks of this many elements, added in f64 (see the module docstring);
# every other float sum in f64
SHORT_F32_SUM = 256
# Multi-phase row kernels recompute, in a later phase, the elementwise values it needs
# (kernel IR's recompute policy). A value whose recomputation costs at least
# CACHE_MIN_OPS ops is instead stored, in the phase that first computes it, into a stack
# array of the row (rows of at most CACHE_MAX_BYTES per cached value) and loaded back.
CACHE_MIN_OPS = 4
CACHE_MAX_BYTES = 16 * 1024
# A block of a row-local loop prefetches the next block's carried rows (inputs, and the
# output rows it will write) when it starts, up to this many bytes per carried value:
# the rows arrive while this block iterates (blocks of one ~1 KiB row otherwise wait for
# memory at each row: evolve f32[65536,248] took 38.1 ms without, 28.2 ms with, in one
# same-process comparison; blocks of 64 rows: 29.5 ms)
PREFETCH_MAX_BYTES = 4096


# Split full reductions: a single-phase reduction of every axis (no element stores) over
# at least SPLIT_MIN points runs as up to SPLIT_PARTS chunks of its first axis on the
# thread pool, each writing its partial accumulators, then a combine kernel folds the
# partials in chunk order (deterministic: the chunks depend on the shape only) and does
# the row stores.
SPLIT_PARTS = 64
SPLIT_MIN = 1 << 16
ACC_FLAGS: tuple[str, ...] = ("reassoc", "contract")  # float accumulation (module docstring)
_ACC_DTYPES = {"double": DType.f64, "float": DType.f32, "i32": DType.i32, "i64": DType.i64}


def split_parts(k: Kernel) -> int:
    """How many chunks a full reduction is split into (1: not split)."""
    if not (k.reduce_axes and not k.outer_axes and k.contraction is None and k.opaque is None
            and k.loop is None and len(k.phases) == 1 and not k.phases[0].stores
            and k.phases[0].reductions and math.prod(k.space) >= SPLIT_MIN
            and all(not r.dtype.is_bool for r in k.reductions)):
        return 1
    first = k.reduce_axes[0]
    return max(1, min(SPLIT_PARTS, k.space[first], math.prod(k.space) // (SPLIT_MIN // 4)))


def _column_mode(k: Kernel) -> bool:
    last = len(k.space) - 1
    return (bool(k.reduce_axes) and k.outer_axes == (last,) and k.space[last] >= 2
            and k.contraction is None and len(k.phases) == 1 and not k.phases[0].stores
            and bool(k.phases[0].reductions))


def plan_loops(k: Kernel) -> _Loops:
    """How kernel `k` is split into work items (deterministic in the shapes only)."""
    space = k.space
    if k.reduce_axes:
        return _Loops(list(k.outer_axes), list(k.reduce_axes), 1, 0,
                      COLUMNS if _column_mode(k) else 0)
    if not space:
        return _Loops([], [], 1, 0)
    last = len(space) - 1
    rows = math.prod(space[:-1])
    n = space[-1]
    blocks = 1
    if rows < MAX_BLOCKS and n >= 2 * MIN_BLOCK:
        blocks = min(-(-MAX_BLOCKS // max(rows, 1)), n // MIN_BLOCK)
    block = -(-n // blocks) if n else 0
    return _Loops(list(range(last)), [last], max(blocks, 1), block)


def lower_program(prog: Program, name: str | None = None,
                  inplace: dict[int, int] | None = None) -> Lowered:
    """Generate the LLVM module of `prog` and its run plan (see :mod:`syntonic.runtime`).

    `inplace` maps output buffers to the donated parameters whose memory they are written
    into (:func:`syntonic.lower.inplace.inplace_outputs`): the kernel that writes such an
    output addresses it through the parameter's pointer, and the plan's output slot says
    ``"inplace": <param slot>``.
    """
    name = name or prog.name
    mod = ir.Module(name=f"syntonic.{name}")
    emitter = _ModuleEmitter(prog, mod, _symbol(name))
    emitter.inplace = dict(inplace or {})
    plan = emitter.emit()
    return Lowered(str(mod), plan, tuple(emitter.symbols), interleave_for(emitter.trips))


def lower_programs(progs: list[Program], names: list[str]) -> tuple[str, list[Lowered]]:
    """Several programs in ONE module (one LLVM compile; used by tests on many graphs).

    Returns the module text and, per program, its plan and symbols (``llvm_ir`` empty).
    """
    mod = ir.Module(name="syntonic.batch")
    out = []
    for prog, name in zip(progs, names):
        emitter = _ModuleEmitter(prog, mod, _symbol(name))
        emitter.math = _shared_math(mod)
        plan = emitter.emit()
        out.append(Lowered("", plan, tuple(emitter.symbols)))
    return str(mod), out


_math_of: dict[int, MathLib] = {}


def _shared_math(mod: ir.Module) -> MathLib:
    lib = _math_of.get(id(mod))
    if lib is None or lib.module is not mod:
        lib = _math_of[id(mod)] = MathLib(mod)
    return lib


def _symbol(name: str) -> str:
    return "sn_" + "".join(c if c.isalnum() else "_" for c in name)


class _ModuleEmitter:
    def __init__(self, prog: Program, mod: ir.Module, prefix: str) -> None:
        self.prog = prog
        self.mod = mod
        self.prefix = prefix
        self.math = MathLib(mod)
        self.symbols: list[str] = []
        self.slots: dict[int, int] = {}
        self.globals: dict[int, ir.GlobalVariable] = {}
        self.slot_info: list[dict[str, Any]] = []
        self.inplace: dict[int, int] = {}  # output buffer -> donated parameter buffer
        self.trips: list[int] = []  # per native kernel: its inner loop's trips (0: not elementwise)

    # ------------------------------------------------------------ buffers
    def _assign_slots(self) -> None:
        """Table order: parameters, outputs, temporaries (incl. matmul scratch)."""
        prog = self.prog
        for bid in prog.params:
            self._slot(bid, "param")
        for o in prog.outputs:
            if prog.buffers[o.buffer].role in (Role.TEMP, Role.OUTPUT):
                self._slot(o.buffer, "output")
        for buf in prog.buffers:
            if buf.role in (Role.TEMP, Role.OUTPUT) and buf.id not in self.slots:
                self._slot(buf.id, "temp")

    def _slot(self, bid: Any, kind: str, dtype: DType | None = None,
              shape: tuple[int, ...] | None = None) -> int:
        """The table slot of buffer `bid` (a program buffer id, or a private key: a
        negative int for matmul scratch, a tuple for a loop's sub-program buffers)."""
        if bid in self.slots:
            return self.slots[bid]
        own = isinstance(bid, int) and bid >= 0
        buf = self.prog.buffers[bid] if own else None
        t_dtype = dtype or buf.type.dtype
        t_shape = shape if shape is not None else buf.type.shape
        self.slots[bid] = len(self.slot_info)
        self.slot_info.append({"kind": kind, "buffer": bid if isinstance(bid, int) else -1,
                               "dtype": t_dtype.name, "shape": list(t_shape)})
        return self.slots[bid]

    def _const_global(self, bid: int) -> ir.GlobalVariable:
        g = self.globals.get(bid)
        if g is None:
            buf = self.prog.buffers[bid]
            assert buf.data is not None
            # The bytes as one i8 array (c"..." in the text; a typed pointer is a bitcast):
            # formatting and parsing an element list costs seconds for a 1M-element mask.
            arr = np.ascontiguousarray(buf.data, buf.type.dtype.np).reshape(-1)
            data = arr.view(np.uint8) if arr.size else np.zeros(1, np.uint8)
            aty = ir.ArrayType(ir.IntType(8), data.size)
            g = ir.GlobalVariable(self.mod, aty, f"{self.prefix}.const{bid}")
            g.global_constant = True
            g.linkage = "internal"
            g.align = 64
            g.initializer = ir.FormattedConstant(aty, _byte_string(data))
            self.globals[bid] = g
        return g

    # ------------------------------------------------------------ program
    def emit(self, fast: bool = True) -> dict[str, Any]:
        """Emit every kernel; returns the run plan. With every step native, also the
        ``run`` entry and (if `fast`) the METH_FASTCALL entry."""
        self._assign_slots()
        steps: list[dict[str, Any]] = []
        kernels: list[tuple[ir.Function, int]] = []
        for idx, k in enumerate(self.prog.kernels):
            check_kernel(k)
            if k.loop is not None and native_loop(k.loop):
                emitter = _LoopEmitter(self, idx, k.loop)
                fn = emitter.emit()
                self.symbols.append(fn.name)
                kernels.append((fn, emitter.items))
                self.trips.append(0)
                rb = cpu_row_blocks(k.loop)
                steps.append({"kind": "native", "kernel": idx, "symbol": fn.name,
                              "items": emitter.items, "name": k.name, "flops": 0,
                              "points": int(math.prod(k.space)) if rb else 1})
                continue
            if k.opaque is not None:
                steps.append({"kind": "opaque", "kernel": idx})
                continue
            scratch = None
            if k.contraction is not None:
                c = k.contraction
                scratch = self._slot(-1 - idx, "temp", c.dtype, k.space)
                steps.append({
                    "kind": "matmul", "kernel": idx, "out": scratch,
                    "lhs": self._operand(c.lhs.buffer, c.lhs.view),
                    "rhs": self._operand(c.rhs.buffer, c.rhs.view),
                })
            symbol = f"{self.prefix}_k{idx}"
            parts = split_parts(k)
            if parts > 1:  # a large full reduction: partials on the pool, then a combine
                partials = {r.acc: self._slot(("partials", idx, r.acc), "temp",
                                              _ACC_DTYPES[str(_acc_type(r))], (parts,))
                            for r in k.reductions}
                fn, _ = _KernelEmitter(self, k, symbol, None, "partial", partials,
                                       parts).emit()
                comb, _ = _KernelEmitter(self, k, f"{symbol}_combine", None, "combine",
                                         partials, parts).emit()
                self.symbols += [symbol, comb.name]
                kernels += [(fn, parts), (comb, 1)]
                self.trips.append(0)
                steps.append({"kind": "native", "kernel": idx, "symbol": symbol,
                              "items": parts, "points": int(math.prod(k.space)),
                              "name": k.name, "flops": k.flops_per_point})
                steps.append({"kind": "native", "kernel": idx, "symbol": comb.name,
                              "items": 1, "points": parts, "name": f"{k.name} (combine)",
                              "flops": 0})
                continue
            fn, loops = _KernelEmitter(self, k, symbol, scratch).emit()
            self.symbols.append(symbol)
            self.trips.append(0 if k.reduce_axes or not k.space else
                              loops.block if loops.blocks > 1 else k.space[-1])
            items = loops.items(k.space)
            kernels.append((fn, items))
            steps.append({"kind": "native", "kernel": idx, "symbol": symbol, "items": items,
                          "points": int(math.prod(k.space)), "name": k.name,
                          "flops": k.flops_per_point})
            written = [self.slots.get(b) for b in k.writes]
            if (k.contraction is not None and not k.reduce_axes and len(k.space) == 2
                    and not loops.columns and None not in written):
                # an elementwise epilogue whose work items are whole rows of the GEMM's
                # output (row*blocks + block): it may run on a row block of the GEMM as
                # soon as that block is done (see syntonic.runtime.blas.matmul)
                steps[-1]["row_items"] = loops.blocks
                steps[-1]["writes"] = sorted(written)
        for out, param in self.inplace.items():
            self.slot_info[self.slots[out]]["inplace"] = self.slots[param]
        plan: dict[str, Any] = {"slots": self.slot_info, "steps": steps,
                                "outputs": self._outputs(), "version": CODEGEN_VERSION}
        if all(s["kind"] == "native" for s in steps):
            run = abi.declare_run(self.mod, f"{self.prefix}_run")
            b = ir.IRBuilder(run.append_basic_block("entry"))
            for fn, items in kernels:
                b.call(fn, [run.args[0], I64(0), I64(items)])
            b.ret_void()
            self.symbols.append(run.name)
            plan["run"] = run.name
            n_args = sum(1 for s in self.slot_info if s["kind"] in ("param", "output"))
            n_out = sum(1 for s in self.slot_info if s["kind"] == "output")
            temps = [_nbytes(s) for s in self.slot_info if s["kind"] == "temp"]
            if fast and n_out and sum(temps) <= abi.STACK_TEMP_LIMIT:
                fast = abi.emit_fastcall(self.mod, f"{self.prefix}_fast", run, n_args,
                                         [-(-t // 64) * 64 for t in temps])
                self.symbols.append(fast.name)
                plan["fast"] = fast.name
        return plan

    def _outputs(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for o in self.prog.outputs:
            buf = self.prog.buffers[o.buffer]
            entry: dict[str, Any] = {"shape": list(o.type.shape), "dtype": o.type.dtype.name}
            if buf.role is Role.PARAM:
                entry["param"] = self.prog.params.index(o.buffer)
            elif buf.role is Role.CONST:
                entry["const"] = pack_array(np.asarray(buf.data, buf.type.dtype.np))
            else:
                entry["slot"] = self.slots[o.buffer]
            out.append(entry)
        return out

    def _operand(self, bid: int, view: View) -> dict[str, Any]:
        role = self.prog.buffers[bid].role
        entry: dict[str, Any] = {"view": _view_json(view)}
        if role is Role.CONST:
            buf = self.prog.buffers[bid]
            entry["const"] = pack_array(np.asarray(buf.data, buf.type.dtype.np).reshape(-1))
        else:
            entry["slot"] = self._slot(bid, "temp")
        return entry

    def pointer(self, b: ir.IRBuilder, table: ir.Value, bid: int, dtype: DType) -> ir.Value:
        """Typed pointer to buffer `bid` (a table slot, or a constant global)."""
        elem = STORAGE_TYPES[dtype]
        if bid >= 0 and self.prog.buffers[bid].role is Role.CONST:
            g = self._const_global(bid)
            return b.bitcast(g, elem.as_pointer(), name=f"b{bid}")
        if bid >= 0 and self.prog.buffers[bid].role is Role.PARAM and bid not in self.slots:
            raise BackendError(f"buffer b{bid} is a parameter the program does not list")
        slot = self._slot(bid, "temp")
        return abi.load_buffer(b, table, slot, elem, name=f"b{bid}" if bid >= 0 else "scratch")


# "\\00" .. "\\FF" as 3-byte items (a take of these is one copy per byte)
_HEX = np.array([list(f"\\{b:02X}".encode()) for b in range(256)], np.uint8).view("V3")[:, 0]


def _byte_string(data: np.ndarray) -> str:
    """``c"\\00\\3F..."``: bytes as an LLVM string constant, every byte escaped (made with
    numpy: llvmlite's own escaping takes over a second for 16 MB)."""
    return 'c"' + _HEX.take(data).tobytes().decode("ascii") + '"'


def native_loop(loop: Any) -> bool:
    """True if the CPU runs `loop` as a native loop (see native_program)."""
    rb = cpu_row_blocks(loop)
    progs = [loop.cond, loop.body] if rb is None else \
        [p for p in (rb.cond, rb.body, rb.tail_cond, rb.tail_body) if p is not None]
    return all(native_program(p) for p in progs)


def native_program(prog: Program) -> bool:
    """True if every kernel of `prog` compiles to native code with no Python step (no
    matmul through numpy, no opaque op), so it can run inside a native loop."""
    for k in prog.kernels:
        if k.loop is not None:
            if not native_loop(k.loop):
                return False
        elif k.opaque is not None or k.contraction is not None:
            return False
    return True


class _LoopEmitter:
    """The native function of a :class:`~syntonic.lower.kernel.Loop` kernel.

    ``void loop(i8** table, i64 start, i64 stop)`` runs work items ``[start, stop)``: the
    whole loop (one item), or, for a row-local loop, blocks of rows (one item per block,
    split across the thread pool; each block runs the loop on its own rows until they
    are all inactive). Per item, a *runner* copies the initial carried values into state
    buffers (the loop's output buffers, at the block's rows), then runs
    ``while cond_run(ctab): body_run(btab)`` with the sub-programs' tables on the stack.
    After each body, a carried value the body computed into its own buffer is taken by
    swapping the two buffers in the tables (no copy); values passed through, duplicated
    or constant are copied with memcpy (through a staging buffer when one carried value
    becomes another). Sub-program temporaries are slots of the enclosing table for a
    whole loop, and stack buffers of the runner for a block of rows (each thread has its
    own).
    """

    def __init__(self, outer: _ModuleEmitter, idx: int, loop: Any) -> None:
        self.outer = outer
        self.idx = idx
        self.loop = loop
        self.memcpy = outer.mod.declare_intrinsic("llvm.memcpy", [I8P, I8P, I64])
        self.prefetch = outer.mod.globals.get("llvm.prefetch.p0i8") or ir.Function(
            outer.mod, ir.FunctionType(ir.VoidType(), [I8P, I32, I32, I32]),
            "llvm.prefetch.p0i8")

    @property
    def items(self) -> int:
        rb = cpu_row_blocks(self.loop)
        return rb.n_blocks if rb is not None else 1

    def _sub(self, tag: str, prog: Program) -> tuple[_ModuleEmitter, dict[str, Any]]:
        sub = _ModuleEmitter(prog, self.outer.mod, f"{self.outer.prefix}_k{self.idx}{tag}")
        sub.math = self.outer.math
        plan = sub.emit(fast=False)
        self.outer.symbols.extend(sub.symbols)
        return sub, plan

    def emit(self) -> ir.Function:
        outer, loop = self.outer, self.loop
        fn = abi.declare_kernel(outer.mod, f"{outer.prefix}_k{self.idx}")
        rb = cpu_row_blocks(loop)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if rb is None:
            run = self._runner("", loop.cond, loop.body, None)
            b.call(run, [fn.args[0], I64(0)])
            b.ret_void()
            return fn
        full = self._runner("f", rb.cond, rb.body, rb.row_params)
        tail = self._runner("t", rb.tail_cond, rb.tail_body, rb.row_params) \
            if rb.tail_cond is not None else None
        start, stop = fn.args[1], fn.args[2]
        with _counted_loop(b, start, stop, "blk") as w:
            r0 = b.mul(w, I64(rb.block))
            if tail is None:
                b.call(full, [fn.args[0], r0])
            else:
                is_full = b.icmp_signed("<=", b.add(r0, I64(rb.block)), I64(rb.rows))
                with b.if_else(is_full) as (then, otherwise):
                    with then:
                        b.call(full, [fn.args[0], r0])
                    with otherwise:
                        b.call(tail, [fn.args[0], r0])
        b.ret_void()
        return fn

    def _runner(self, tag: str, cond_prog: Program, body_prog: Program,
                row_params: tuple[bool, ...] | None) -> ir.Function:
        """``void run(i8** table, i64 r0)``: the loop on all rows, or on the block at r0."""
        outer, loop, n = self.outer, self.loop, self.loop.carried
        mod = outer.mod
        cond, cplan = self._sub(f"{tag}c", cond_prog)
        body, bplan = self._sub(f"{tag}b", body_prog)
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [abi.TABLE, I64]),
                         f"{outer.prefix}_k{self.idx}{tag}_loop")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        table, r0 = fn.args
        entry = fn.append_basic_block("entry")
        head = fn.append_basic_block("cond")
        step = fn.append_basic_block("body")
        done = fn.append_basic_block("exit")
        b = ir.IRBuilder(entry)
        prog = outer.prog
        blocked = row_params is not None
        carried_types = [body_prog.buffers[p].type for p in body_prog.params[:n]]
        nbytes = [I64(t.nbytes) for t in carried_types]

        def raw(bid: int, row: bool) -> ir.Value:  # an enclosing buffer (at the block) as i8*
            buf = prog.buffers[bid]
            ptr = b.bitcast(outer.pointer(b, table, bid, buf.type.dtype), I8P)
            if blocked and row:
                row_bytes = buf.type.nbytes // max(buf.type.shape[0], 1)
                ptr = b.gep(ptr, [b.mul(r0, I64(row_bytes))])
            return ptr

        def copy(dst: ir.Value, src: ir.Value, i: int) -> None:
            b.call(self.memcpy, [dst, src, nbytes[i], ir.Constant(I1, 0)])

        def scratch(key: tuple[Any, ...], dtype: DType, shape: tuple[int, ...]) -> ir.Value:
            if blocked:  # per-thread: a stack buffer of the runner
                size = max(int(math.prod(shape)) * dtype.itemsize, 1)
                mem = b.alloca(I8, I64(-(-size // abi.ALIGN) * abi.ALIGN))
                mem.align = abi.ALIGN
                return mem
            k = outer._slot(key, "temp", dtype, shape)
            return abi.load_buffer(b, table, k, I8)

        def is_row(i: int) -> bool:
            return row_params is None or row_params[i]

        outs = [raw(bid, True) for bid in loop.outputs]
        cells = []
        for i in range(n):
            cell = b.alloca(I8P, name=f"state{i}")
            b.store(outs[i], cell)
            copy(outs[i], raw(loop.inputs[i], is_row(i)), i)
            cells.append(cell)
        if blocked:  # the next block's rows: from memory while this block iterates
            for i in range(n):
                if is_row(i):
                    self._prefetch(b, raw(loop.inputs[i], True), carried_types[i].nbytes, 0)
                    self._prefetch(b, outs[i], carried_types[i].nbytes, 1)
        tables = {}
        for sub, plan, sub_prog, t in ((cond, cplan, cond_prog, "c"),
                                       (body, bplan, body_prog, "b")):
            slots = plan["slots"]
            tab = b.alloca(I8P, I64(max(len(slots), 1)), name=f"{t}tab")
            for j, slot in enumerate(slots):
                if slot["kind"] == "param":
                    p = sub_prog.params.index(slot["buffer"])
                    if p < n:
                        continue  # carried: written from the state cells each iteration
                    ptr = raw(loop.inputs[p], is_row(p))
                else:
                    ptr = scratch(("loop", self.idx, tag + t, j), DType[slot["dtype"]],
                                  tuple(slot["shape"]))
                b.store(ptr, b.gep(tab, [I64(j)]))
            tables[t] = (sub, tab, plan, sub_prog)
        stage: dict[int, ir.Value] = {}
        first_of: dict[int, int] = {}
        for i, o in enumerate(body_prog.outputs):
            role = body_prog.buffers[o.buffer].role
            if role is Role.PARAM:
                p = body_prog.params.index(o.buffer)
                if p < n and p != i:
                    t = carried_types[i]
                    stage[i] = scratch(("loop", self.idx, tag + "stage", i), t.dtype, t.shape)
            elif role is not Role.CONST:
                first_of.setdefault(o.buffer, i)
        b.branch(head)

        b.position_at_end(head)
        for _, tab, plan, sub_prog in tables.values():
            for j, slot in enumerate(plan["slots"]):
                if slot["kind"] == "param":
                    p = sub_prog.params.index(slot["buffer"])
                    if p < n:
                        b.store(b.load(cells[p]), b.gep(tab, [I64(j)]))
        csub, ctab, cplan_, _ = tables["c"]
        b.call(mod.get_global(cplan_["run"]), [ctab])
        pred = b.load(csub.pointer(b, ctab, cond_prog.outputs[0].buffer, DType.bool))
        b.cbranch(b.icmp_unsigned("!=", pred, ir.Constant(pred.type, 0)), step, done)

        b.position_at_end(step)
        bsub, btab, bplan_, _ = tables["b"]
        b.call(mod.get_global(bplan_["run"]), [btab])
        for i, dst in stage.items():  # before any state buffer changes
            p = body_prog.params.index(body_prog.outputs[i].buffer)
            copy(dst, b.load(cells[p]), i)
        for i, o in enumerate(body_prog.outputs):  # swaps
            if first_of.get(o.buffer) == i:
                entry_ptr = b.gep(btab, [I64(bsub.slots[o.buffer])])
                fresh = b.load(entry_ptr)
                b.store(b.load(cells[i]), entry_ptr)
                b.store(fresh, cells[i])
        for i, o in enumerate(body_prog.outputs):  # copies
            role = body_prog.buffers[o.buffer].role
            if i in stage:
                copy(b.load(cells[i]), stage[i], i)
            elif role is Role.CONST:
                src = bsub.pointer(b, btab, o.buffer, body_prog.buffers[o.buffer].type.dtype)
                copy(b.load(cells[i]), b.bitcast(src, I8P), i)
            elif role is Role.PARAM:
                p = body_prog.params.index(o.buffer)
                if p >= n:
                    copy(b.load(cells[i]), raw(loop.inputs[p], is_row(p)), i)
            elif first_of[o.buffer] != i:
                copy(b.load(cells[i]), b.load(cells[first_of[o.buffer]]), i)
        b.branch(head)

        b.position_at_end(done)
        for i in range(n):
            cur = b.load(cells[i])
            moved = b.icmp_unsigned("!=", b.ptrtoint(cur, I64), b.ptrtoint(outs[i], I64))
            with b.if_then(moved):
                copy(outs[i], cur, i)
        b.ret_void()
        return fn

    def _prefetch(self, b: ir.IRBuilder, block: ir.Value, nbytes: int, write: int) -> None:
        """Prefetch the `nbytes` that follow `block` (the next block's rows of a buffer),
        one cache line at a time, up to PREFETCH_MAX_BYTES (a prefetch never faults, so
        the last block's, past the end, is harmless)."""
        for off in range(0, min(nbytes, PREFETCH_MAX_BYTES), 64):
            b.call(self.prefetch, [b.gep(block, [I64(nbytes + off)]), I32(write), I32(3),
                                   I32(1)])


class _rotated_loop:  # noqa: N801 - used as a context manager like llvmlite's helpers
    """``if (lo < hi) do { body; i = next } while (i < hi)``, LLVM's rotated loop form:
    ``__enter__`` returns the loop (its induction variable is ``.i``, a phi of the body
    block); ``next`` is ``i + 1`` unless the body sets ``.next``."""

    def __init__(self, b: ir.IRBuilder, lo: ir.Value, hi: ir.Value, body: str, end: str,
                 var: str) -> None:
        self.b, self.lo, self.hi, self.names = b, lo, hi, (body, end, var)
        self.next: ir.Value | None = None

    def __enter__(self) -> _rotated_loop:
        b = self.b
        pre = b.block
        self.body = b.function.append_basic_block(self.names[0])
        self.end = b.function.append_basic_block(self.names[1])
        b.cbranch(b.icmp_signed("<", self.lo, self.hi), self.body, self.end)
        b.position_at_end(self.body)
        self.i = b.phi(I64, name=self.names[2])
        self.i.add_incoming(self.lo, pre)
        return self

    def __exit__(self, *exc: Any) -> None:
        b = self.b
        nxt = self.next if self.next is not None else b.add(self.i, I64(1),
                                                             name=f"{self.names[2]}.next")
        self.i.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, self.hi), self.body, self.end)
        b.position_at_end(self.end)


class _counted_loop(_rotated_loop):  # noqa: N801
    """``for (i = start; i < stop; i++) { body }`` as a rotated loop; ``with`` gives i."""

    def __init__(self, b: ir.IRBuilder, start: ir.Value, stop: ir.Value, name: str) -> None:
        super().__init__(b, start, stop, f"{name}.body", f"{name}.end", name)

    def __enter__(self) -> ir.Value:  # type: ignore[override]
        return super().__enter__().i


def _nbytes(slot: dict[str, Any]) -> int:
    return int(math.prod(slot["shape"])) * np.dtype(DType[slot["dtype"]].np).itemsize


def _view_json(v: View) -> dict[str, Any]:
    return {"offset": v.offset,
            "dims": [[d.size, d.stride, d.lo, d.upper, d.step] for d in v.dims]}


@record
class _Scope:
    """Values valid at a point of the loop nest, by node index."""

    values: dict[int, ir.Value] = field(default_factory=dict)


class _KernelEmitter:
    """One kernel function. `mode` ``partial``/``combine``: the two halves of a split full
    reduction (see split_parts), with `partials` (accumulator -> table slot)."""

    def __init__(self, mod: _ModuleEmitter, k: Kernel, symbol: str, scratch: int | None,
                 mode: str = "normal", partials: dict[int, int] | None = None,
                 parts: int = 1) -> None:
        self.m = mod
        self.k = k
        self.symbol = symbol
        self.scratch = scratch
        self.mode = mode
        self.partials = partials or {}
        self.parts = parts
        self.loops = plan_loops(k)
        self.inner_count = math.prod(k.inner_shape)
        short = (mode == "normal" and not self.loops.columns
                 and self.inner_count <= SHORT_F32_SUM)
        self.acc_types = {r.acc: _acc_type(r, short) for r in k.reductions}
        self.acc_deps = acc_dependencies(k)
        self.inner_varying = self._inner_varying()
        self.cache_plan = self._cache_plan()

    def _loop_stores(self, phase: Any) -> list[Store]:
        """The stores a phase does at every inner point (without reduced axes, "row"
        stores happen at every point too)."""
        return list(phase.stores) + ([] if self.k.reduce_axes else list(phase.row_stores))

    def _phase_roots(self, phase: Any) -> list[int]:
        """The nodes a phase's inner loop computes: reduction values and stored values."""
        return [r.value for r in phase.reductions] + [s.value for s in self._loop_stores(phase)]

    def _recompute_cost(self, v: int, apply_: set[int], cached: dict[int, int]) -> int:
        """Elementwise ops to recompute node v, cached nodes counting as free."""
        seen: set[int] = set()
        stack = [v]
        while stack:
            i = stack.pop()
            if i in seen or i not in apply_ or (i in cached and i != v):
                continue
            seen.add(i)
            stack.extend(self.k.nodes[i].args)
        return len(seen)

    def _cache_plan(self) -> dict[int, int]:
        """Node -> phase that stores it in the row cache (see CACHE_MIN_OPS): elementwise
        values a later phase needs directly and would otherwise recompute."""
        k, lp = self.k, self.loops
        if (self.mode != "normal" or not k.reduce_axes or lp.columns or lp.blocks > 1
                or len(k.phases) < 2 or k.contraction is not None):
            return {}
        apply_ = {i for i, v in enumerate(self.inner_varying)
                  if v and isinstance(k.nodes[i], Apply)}
        first: dict[int, int] = {}  # Apply node -> first phase that computes it
        plan: dict[int, int] = {}
        for q, phase in enumerate(k.phases):
            roots = self._phase_roots(phase)
            need = [i for i in k.needed(roots) if i in apply_]
            earlier = {i for i in need if i in first}
            users = {a for i in need if i not in earlier for a in k.nodes[i].args}
            for v in sorted(earlier):  # topological: a cached value makes its users cheap
                if v not in roots and v not in users:
                    continue
                cost = self._recompute_cost(v, apply_, plan)
                size = self.inner_count * max(k.nodes[v].dtype.itemsize, 1)
                if (cost >= CACHE_MIN_OPS and size <= CACHE_MAX_BYTES
                        and not k.nodes[v].dtype.is_bool):
                    plan.setdefault(v, first[v])
            for i in need:
                first.setdefault(i, q)
        return plan

    def _inner_varying(self) -> list[bool]:
        inner = set(self.loops.inner_axes)
        out: list[bool] = []
        contraction = self.k.contraction.acc if self.k.contraction else None
        for n in self.k.nodes:
            if isinstance(n, (Load, Iota)):
                out.append(any(n.view.depends_on(a) for a in inner))
            elif isinstance(n, Acc):
                out.append(n.acc == contraction)
            elif isinstance(n, Apply):
                out.append(any(out[a] for a in n.args))
            else:
                out.append(False)
        return out

    # ------------------------------------------------------------ emission
    def emit(self) -> tuple[ir.Function, _Loops]:
        k = self.k
        fn = abi.declare_kernel(self.m.mod, self.symbol)
        self.fn = fn
        table, start, stop = fn.args
        entry = fn.append_basic_block("entry")
        b = ir.IRBuilder(entry)
        self.b = b
        self.ctx = Ctx(b, self.m.math)
        self.ptrs: dict[int, ir.Value] = {}
        bufs = {n.buffer: n.dtype for n in k.nodes if isinstance(n, Load)}
        for st in k.stores:
            bufs.setdefault(st.buffer, self.m.prog.buffers[st.buffer].type.dtype)
        for bid, dt in sorted(bufs.items()):
            # an output written in place of a parameter: through the parameter's pointer,
            # so LLVM sees loads and stores of one address (see syntonic.lower.inplace)
            self.ptrs[bid] = self.m.pointer(b, table, self.m.inplace.get(bid, bid), dt)
        self.partial_ptrs = {a: abi.load_buffer(b, table, slot, self.acc_types[a], f"part{a}")
                             for a, slot in self.partials.items()}
        if self.scratch is not None:
            assert k.contraction is not None
            self.scratch_ptr = abi.load_buffer(b, table, self.scratch,
                                               STORAGE_TYPES[k.contraction.dtype], "acc")
        self.acc_slots: dict[int, ir.Value] = {}
        self.acc_arrays: dict[int, ir.Value] = {}
        for r in k.reductions:
            self.acc_slots[r.acc] = b.alloca(self.acc_types[r.acc], name=f"acc{r.acc}")
            if self.loops.columns:
                self.acc_arrays[r.acc] = b.alloca(ir.ArrayType(self.acc_types[r.acc],
                                                               self.loops.columns),
                                                  name=f"accs{r.acc}")
        # f32 sums of long rows: a per-block f32 accumulator each (see _blocked_loop)
        self.block_slots = {r.acc: b.alloca(ir.FloatType(), name=f"blk{r.acc}")
                            for r in k.reductions
                            if r.dtype is DType.f32 and r.op in ("sum", "mean")
                            and self.acc_types[r.acc] == F64 and not self.loops.columns}
        self.cache_arrays = {v: b.alloca(ir.ArrayType(VALUE_TYPES[k.nodes[v].dtype],
                                                      self.inner_count), name=f"row{v}")
                             for v in self.cache_plan}
        with _rotated_loop(b, start, stop, "item", "done", "w") as items:  # work items
            self._item(items.i)
        b.ret_void()
        return fn, self.loops

    def _columns_item(self, w: ir.Value) -> None:
        """Column mode (see COLUMNS): the reduced axes outside, the work item's columns
        inside, one accumulator per column in a small stack array."""
        b, k, lp = self.b, self.k, self.loops
        last = len(k.space) - 1
        (phase,) = k.phases
        j0 = b.mul(w, I64(lp.columns), name="j0")
        left = b.sub(I64(k.space[last]), j0)
        n = b.select(b.icmp_signed("<", left, I64(lp.columns)), left, I64(lp.columns),
                     name="ncols")

        def slot(r: Reduction, jj: ir.Value) -> ir.Value:
            return b.gep(self.acc_arrays[r.acc], [I64(0), jj])

        with _counted_loop(b, I64(0), n, "jj.init") as jj:
            for r in phase.reductions:
                b.store(_identity(r, self.acc_types[r.acc]), slot(r, jj))
        loops = [_counted_loop(b, I64(0), I64(k.space[a]), f"i{a}") for a in lp.inner_axes]
        coords: dict[int, ir.Value] = {}
        for a, loop in zip(lp.inner_axes, loops):
            coords[a] = loop.__enter__()
        with _counted_loop(b, I64(0), n, "jj") as jj:
            at = dict(coords)
            at[last] = b.add(j0, jj)
            scope = _Scope()
            for r in phase.reductions:
                self.acc_slots[r.acc] = slot(r, jj)
                self._accumulate(r, self._value(r.value, at, scope, scope))
        for loop in reversed(loops):
            loop.__exit__(None, None, None)
        with _counted_loop(b, I64(0), n, "jj.out") as jj:
            at = {a: I64(0) for a in lp.inner_axes}
            at[last] = b.add(j0, jj)
            self.acc_values = {}
            for r in phase.reductions:
                self.acc_slots[r.acc] = slot(r, jj)
                self.acc_values[r.acc] = self._finalize(r)
            scope = _Scope()
            for st in phase.row_stores:
                self._store(st, self._value(st.value, at, scope, scope), at)

    def _combine_item(self) -> None:
        """Fold the partial accumulators in chunk order, finalize, do the row stores."""
        b, k = self.b, self.k
        (phase,) = k.phases
        for r in phase.reductions:
            b.store(_identity(r, self.acc_types[r.acc]), self.acc_slots[r.acc])
        with _counted_loop(b, I64(0), I64(self.parts), "part") as w:
            for r in phase.reductions:
                self._accumulate(r, b.load(b.gep(self.partial_ptrs[r.acc], [w])))
        self.acc_values = {r.acc: self._finalize(r) for r in phase.reductions}
        zero = {a: I64(0) for a in range(len(k.space))}
        scope = _Scope()
        for st in phase.row_stores:
            self._store(st, self._value(st.value, zero, scope, scope), zero)

    def _item(self, w: ir.Value) -> None:
        b, k, lp = self.b, self.k, self.loops
        if self.mode == "combine":
            self._combine_item()
            return
        if lp.columns:
            self._columns_item(w)
            return
        coords: dict[int, ir.Value] = {}
        row = w
        bounds: dict[int, tuple[ir.Value, ir.Value]] = {}
        for a in range(len(k.space)):
            bounds[a] = (I64(0), I64(k.space[a]))
        if self.mode == "partial":  # chunk w of the first reduced axis
            first = k.reduce_axes[0]
            n = k.space[first]
            lo = b.udiv(b.mul(w, I64(n)), I64(self.parts), name="part.lo")
            hi = b.udiv(b.mul(b.add(w, I64(1)), I64(n)), I64(self.parts), name="part.hi")
            bounds[first] = (lo, hi)
            self.part_index = w
        if lp.blocks > 1:
            row = b.udiv(w, I64(lp.blocks), name="row")
            blk = b.urem(w, I64(lp.blocks), name="blk")
            last = lp.inner_axes[0]
            lo = b.mul(blk, I64(lp.block), name="j.lo")
            hi = b.add(lo, I64(lp.block))
            hi = b.select(b.icmp_signed("<", hi, I64(k.space[last])), hi,
                          I64(k.space[last]), name="j.hi")
            bounds[last] = (lo, hi)
        rest = row
        for a in reversed(lp.outer_axes):
            n = k.space[a]
            if a == lp.outer_axes[0]:
                coords[a] = rest
            else:
                coords[a] = b.urem(rest, I64(n), name=f"i{a}")
                rest = b.udiv(rest, I64(n))
        self.acc_values: dict[int, ir.Value] = {}
        row_scope = _Scope()
        phases = k.phases
        for p, phase in enumerate(phases):
            self._phase(p, phase, coords, bounds, row_scope)

    def _phase(self, p: int, phase: Any, coords: dict[int, ir.Value],
               bounds: dict[int, tuple[ir.Value, ir.Value]], row_scope: _Scope) -> None:
        b, k, lp = self.b, self.k, self.loops
        loop_stores = self._loop_stores(phase)
        row_stores = list(phase.row_stores) if k.reduce_axes else []
        # values needed in the loop that do not vary in it: once per row, before the loop
        roots = self._phase_roots(phase)
        for idx in self.k.needed(roots):
            if not self.inner_varying[idx]:
                self._value(idx, coords, row_scope, row_scope)
        for r in phase.reductions:
            b.store(_identity(r, self.acc_types[r.acc]), self.acc_slots[r.acc])
        if roots:
            self._nest(0, coords, bounds, row_scope, phase.reductions, loop_stores, p)
        if self.mode == "partial":
            for r in phase.reductions:
                b.store(b.load(self.acc_slots[r.acc]),
                        b.gep(self.partial_ptrs[r.acc], [self.part_index]))
            return
        for r in phase.reductions:
            self.acc_values[r.acc] = self._finalize(r)
        # row stores: at inner index 0
        zero = dict(coords)
        for a in lp.inner_axes:
            zero[a] = I64(0)
        for st in row_stores:
            v = self._value(st.value, zero, row_scope, row_scope)
            self._store(st, v, zero)

    def _nest(self, depth: int, coords: dict[int, ir.Value],
              bounds: dict[int, tuple[ir.Value, ir.Value]], row_scope: _Scope,
              reductions: tuple[Reduction, ...], stores: list[Store], phase: int = 0,
              blocking: bool = True) -> None:
        b, lp = self.b, self.loops
        if blocking and depth == len(lp.inner_axes) - 1:
            blocked = self._blocked_sums(reductions, lp.inner_axes[depth])
            if blocked:
                self._blocked_loop(depth, coords, bounds, row_scope, reductions, stores,
                                   phase, blocked)
                return
        if depth == len(lp.inner_axes):
            scope = _Scope()
            cached = {v: b.gep(a, [I64(0), self._inner_flat(coords)])
                      for v, a in self.cache_arrays.items() if self.cache_plan[v] <= phase}
            for v, at in cached.items():  # computed by an earlier phase: load it back
                if self.cache_plan[v] < phase:
                    scope.values[v] = b.load(at, name=f"row{v}.ld")
            for r in reductions:
                v = self._value(r.value, coords, scope, row_scope)
                self._accumulate(r, v)
            for st in stores:
                self._store(st, self._value(st.value, coords, scope, row_scope), coords)
            for v, at in cached.items():  # first computed here: keep it for later phases
                if self.cache_plan[v] == phase:
                    b.store(self._value(v, coords, scope, row_scope), at)
            return
        axis = lp.inner_axes[depth]
        lo, hi = bounds[axis]
        with _rotated_loop(b, lo, hi, f"ax{axis}", f"ax{axis}.end", f"i{axis}") as loop:
            inner = dict(coords)
            inner[axis] = loop.i
            self._nest(depth + 1, inner, bounds, row_scope, reductions, stores, phase)

    def _blocked_sums(self, reductions: tuple[Reduction, ...], axis: int) -> list[Reduction]:
        """The f32 sums to accumulate block by block over the innermost `axis`: those with
        an f64 accumulator, when each work item runs at least two blocks of it."""
        n = self.k.space[axis]
        if self.mode == "partial" and axis == self.k.reduce_axes[0]:
            n //= self.parts
        if n < 2 * SHORT_F32_SUM:
            return []
        return [r for r in reductions if r.acc in self.block_slots]

    def _blocked_loop(self, depth: int, coords: dict[int, ir.Value],
                      bounds: dict[int, tuple[ir.Value, ir.Value]], row_scope: _Scope,
                      reductions: tuple[Reduction, ...], stores: list[Store], phase: int,
                      blocked: list[Reduction]) -> None:
        """The innermost axis in blocks of ``SHORT_F32_SUM``: within a block the `blocked`
        f32 sums accumulate in f32 (the short-row loop: 16 vector partial sums, no
        conversions), and each block's sum is then added to the f64 accumulator."""
        b = self.b
        axis = self.loops.inner_axes[depth]
        lo, hi = bounds[axis]
        wide = {r.acc: self.acc_slots[r.acc] for r in blocked}
        with _rotated_loop(b, lo, hi, f"ax{axis}.block", f"ax{axis}.blocks.end",
                           f"j{axis}.lo") as blocks:
            j1 = b.add(blocks.i, I64(SHORT_F32_SUM))
            j1 = b.select(b.icmp_signed("<", j1, hi), j1, hi, name=f"j{axis}.hi")
            for r in blocked:
                self.acc_slots[r.acc] = self.block_slots[r.acc]
                b.store(_identity(r, ir.FloatType()), self.block_slots[r.acc])
            inner = dict(bounds)
            inner[axis] = (blocks.i, j1)
            self._nest(depth, coords, inner, row_scope, reductions, stores, phase,
                       blocking=False)
            for r in blocked:
                part = b.load(self.block_slots[r.acc])
                self.acc_slots[r.acc] = wide[r.acc]
                self._accumulate(r, part)
            blocks.next = j1

    def _inner_flat(self, coords: dict[int, ir.Value]) -> ir.Value:
        """Row-major index of the inner point `coords` within the row (for the row cache)."""
        b, k = self.b, self.k
        flat: ir.Value = I64(0)
        for a in self.loops.inner_axes:
            flat = b.add(b.mul(flat, I64(k.space[a])), coords[a])
        return flat

    # ------------------------------------------------------------ values
    def _value(self, idx: int, coords: dict[int, ir.Value], scope: _Scope,
               row_scope: _Scope) -> ir.Value:
        if idx in row_scope.values:
            return row_scope.values[idx]
        if idx in scope.values:
            return scope.values[idx]
        node = self.k.nodes[idx]
        b = self.b
        if isinstance(node, Load):
            v = self._load(node, coords)
        elif isinstance(node, Const):
            v = const(node.dtype, node.value)
        elif isinstance(node, Iota):
            off, valid = self._offset(node.view, coords)
            val = b.srem(b.sdiv(off, I64(max(node.div, 1))), I64(max(node.mod, 1)))
            if valid is not None:
                val = b.select(valid, val, I64(0))
            v = convert(b, val, DType.i64, node.dtype)
        elif isinstance(node, Acc):
            if self.k.contraction is not None and node.acc == self.k.contraction.acc:
                off, _ = self._offset(View.contiguous(self.k.space), coords)
                v = b.load(b.gep(self.scratch_ptr, [off]), name="acc.mm")
            else:
                v = self.acc_values[node.acc]
        elif isinstance(node, Apply):
            args = [self._value(a, coords, scope, row_scope) for a in node.args]
            rule = LOWERING.get(node.op)
            if rule is None:
                raise BackendError(f"the CPU backend has no rule for op {node.op!r}")
            ins = tuple(_dtype_of(self.k.nodes[a]) for a in node.args)
            v = rule(self.ctx, args, node.attr, ins, node.dtype)
        else:  # pragma: no cover
            raise BackendError(f"unknown kernel node {node!r}")
        target = scope if self.inner_varying[idx] else row_scope
        target.values[idx] = v
        return v

    def _offset(self, view: View, coords: dict[int, ir.Value]
                ) -> tuple[ir.Value, ir.Value | None]:
        """Element offset of `view` at `coords`, and its validity (None: always valid)."""
        b = self.b
        off: ir.Value = I64(view.offset)
        valid: ir.Value | None = None
        for a, d in enumerate(view.dims):
            if d.size == 1 and not d.masked:
                continue
            if d.stride == 0 and not d.masked:
                continue
            i = coords.get(a, I64(0))
            if d.masked:
                rel = b.sub(i, I64(d.lo)) if d.lo else i
                ok = b.and_(b.icmp_signed(">=", i, I64(d.lo)),
                            b.icmp_signed("<", i, I64(d.upper)))
                if d.step != 1:
                    ok = b.and_(ok, b.icmp_signed("==", b.srem(rel, I64(d.step)), I64(0)))
                    rel = b.sdiv(rel, I64(d.step))
                valid = ok if valid is None else b.and_(valid, ok)
                coord = rel
            else:
                coord = i
            if d.stride != 0:
                off = b.add(off, b.mul(coord, I64(d.stride)) if d.stride != 1 else coord)
        return off, valid

    def _load(self, node: Load, coords: dict[int, ir.Value]) -> ir.Value:
        b = self.b
        off, valid = self._offset(node.view, coords)
        ptr = self.ptrs[node.buffer]
        if valid is not None:
            off = b.select(valid, off, I64(0))
        raw = b.load(b.gep(ptr, [off]), name=f"ld.b{node.buffer}")
        if node.dtype.is_bool:
            raw = b.icmp_unsigned("!=", raw, ir.Constant(raw.type, 0))
        if valid is not None:
            raw = b.select(valid, raw, const(node.dtype, 0))
        return raw

    def _store(self, st: Store, v: ir.Value, coords: dict[int, ir.Value]) -> None:
        b = self.b
        off, _ = self._offset(st.view, coords)
        if v.type == I1:
            v = b.zext(v, ir.IntType(8))
        b.store(v, b.gep(self.ptrs[st.buffer], [off]))

    # ------------------------------------------------------------ reductions
    def _accumulate(self, r: Reduction, v: ir.Value) -> None:
        b = self.b
        slot = self.acc_slots[r.acc]
        acc = b.load(slot)
        ty = acc.type
        if r.dtype.is_float and v.type != ty:
            v = resize_float(b, v, ty)
        if r.op in ("sum", "mean"):
            new = b.fadd(acc, v, flags=ACC_FLAGS) if r.dtype.is_float else b.add(acc, v)
        elif r.op == "prod":
            new = b.fmul(acc, v, flags=("reassoc",)) if r.dtype.is_float else b.mul(acc, v)
        elif r.op in ("max", "min"):
            if r.dtype.is_float:
                new = self.ctx.intrinsic(f"llvm.{r.op}imum", ty, [acc, v])
            else:
                new = self.ctx.intrinsic(f"llvm.s{r.op}", ty, [acc, v])
        else:
            raise BackendError(f"the CPU backend has no reduction {r.op!r}")
        b.store(new, slot)

    def _finalize(self, r: Reduction) -> ir.Value:
        b = self.b
        acc = b.load(self.acc_slots[r.acc], name=f"acc{r.acc}.final")
        if r.op == "mean":
            count = math.prod(self.k.inner_shape)
            acc = b.fdiv(acc, ir.Constant(acc.type, float(count)))
        if r.dtype.is_float and acc.type != VALUE_TYPES[r.dtype]:
            acc = resize_float(b, acc, VALUE_TYPES[r.dtype])
        return acc


def _acc_type(r: Reduction, short: bool = False) -> ir.Type:
    """The accumulator type: f64 for float sums/means/products (f32 for an f32 sum or
    mean of a `short` row, see the module docstring), else the value type."""
    if r.dtype.is_float:
        wide = r.op == "prod" or (r.op in ("sum", "mean")
                                  and not (short and r.dtype is DType.f32))
        return F64 if wide or r.dtype is DType.f64 else ir.FloatType()
    return VALUE_TYPES[r.dtype]


def _identity(r: Reduction, ty: ir.Type) -> ir.Constant:
    if r.op in ("sum", "mean"):
        return ir.Constant(ty, 0.0 if r.dtype.is_float else 0)
    if r.op == "prod":
        return ir.Constant(ty, 1.0 if r.dtype.is_float else 1)
    big = r.op == "min"
    if r.dtype.is_float:
        return ir.Constant(ty, math.inf if big else -math.inf)
    info = np.iinfo(r.dtype.np)
    return ir.Constant(ty, int(info.max if big else info.min))


def _dtype_of(node: Any) -> DType:
    return node.dtype


__all__ = ["CODEGEN_VERSION", "Lowered", "lower_program", "lower_programs", "plan_loops"]
