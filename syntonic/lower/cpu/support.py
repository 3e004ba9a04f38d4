"""The CPU runtime's own machine code: the thread pool's hand-off and GEMM blocks.

A few small functions every compiled program relies on, written once as LLVM IR and
compiled like a program (same engine, same disk cache; see
:func:`syntonic.runtime.cpu.native_support`). They let the pool hand work to its threads
without Python or the GIL on the way:

* ``sn_rt_publish(ctrl, fn, table, total, n, workers) -> seq``: post a job (run
  ``fn(table, lo, hi)`` over the n chunks of ``[0, total)``) in the control block
  ``ctrl``; clears each worker's *sleeping* flag, keeping its old value next to it
  (``SLEEPING + 8*w + 1``) and their sum in ``ctrl[KICKS]``: the caller wakes those
  workers (a semaphore each); every other worker is spinning and sees the job at once.
* ``sn_rt_finish(ctrl, seq)``: the caller claims and runs chunks like a worker, then waits
  (spinning) until every chunk has run.
* ``sn_rt_run(ctrl, fn, table, total, n, workers) -> 0 | seq``: publish, then, when no
  worker was asleep, finish (returns 0: the job is done); otherwise returns the job
  number, and the caller wakes the sleepers before it calls ``sn_rt_finish`` (one call
  from Python per job in the common case).
* ``sn_rt_worker(ctrl, w, seen) -> seen``: a worker's loop. It spins on the job counter,
  runs the chunks it claims, and returns only after ``ctrl[SPIN]`` idle iterations with
  no new job, marking itself sleeping first (its thread then blocks on its semaphore).
* ``sn_rt_spin(n)``: n iterations of the idle loop (to calibrate ``ctrl[SPIN]`` in time).
* ``sn_rt_program(ctrl, steps, n_steps, start, table, workers) -> 0 | resume + 1``: a
  whole CPU program's steps from `start` on, in order, without returning to Python:
  kernels (``fn(table, 0, total)``, or a pool job of `n` chunks through ``sn_rt_run``)
  and GEMMs (the operand addresses read from the buffer table into the GEMM's
  descriptor, its epilogue fused unless it writes memory the GEMM reads, then the block
  function as a pool job). Each step is a :data:`STEP_FIELDS` record. When a pool job
  finds a worker asleep it returns (the job posted but not finished) with the index of
  the step to resume at, plus one: the caller wakes the sleepers, calls ``sn_rt_finish``
  with the job number (``ctrl[SEQ]``) and calls again from there.
* ``sn_rt_gemm_{s,d}{32,64}(desc, lo, hi)``: rows (or columns) ``[lo, hi)`` of a CBLAS
  ``?gemm`` call described by ``desc`` (see :data:`GEMM_FIELDS`), so a split GEMM is a
  pool job like any kernel; then, optionally, the GEMM's elementwise epilogue kernel on
  those rows while they are still in cache.

Chunk k of a job is ``[total*k//n, total*(k+1)//n)`` (exactly
:meth:`~syntonic.runtime.cpu.ThreadPool.chunks`), so which thread runs it changes no bit
of the result. A chunk is claimed by a compare-and-swap on ``claim`` = (job number << 24)
| next chunk, so a worker still looking at a finished job can never take a chunk of the
next one. The job's fields are written before its number is published (release) and read
after it is seen (acquire).

Example::

    text = support_ir(platform.machine())   # LLVM IR of the functions above
"""

from __future__ import annotations

# control block layout (int64 slots; each group on its own 64-byte line)
SEQ, CLAIM, DONE = 0, 8, 16
FN, TABLE, TOTAL, N, SPIN, KICKS = 24, 25, 26, 27, 28, 29
SLEEPING = 32  # worker w's flag at SLEEPING + 8 * w (w from 0)
MAX_WORKERS = 1024


def ctrl_slots(n_workers: int) -> int:
    """int64 slots of a control block for `n_workers` workers."""
    return SLEEPING + 8 * max(n_workers, 1)


# desc[i] of a GEMM block (int64): cblas function, transposes, sizes, leading
# dimensions, operand addresses, split side, byte step of one row/column of the split side;
# with rows split, an epilogue kernel (0: none) run on the block's rows right after it:
# epi(epi_table, lo * epi_items, hi * epi_items) (epi_items: its work items per row)
GEMM_FIELDS = ("fn", "trans_a", "trans_b", "m", "n", "k", "lda", "ldb", "a", "b", "c",
               "by_rows", "step", "item", "epi", "epi_table", "epi_items")
ROW_MAJOR = 101

# step[i] of sn_rt_program (int64): kind (0 kernel, 1 GEMM), the function (kernel, or GEMM
# block), its range and chunks (n <= 1: one direct call); for a GEMM its descriptor, the
# operands as (table slot, byte offset) (slot -1: the offset is an address), the output
# slot, the epilogue kernel (0: none; only where the blocks may run it) and its work
# items per row, and the (written slot, bytes, operand slot, bytes) quadruples whose
# overlap unfuses the epilogue
STEP_FIELDS = ("kind", "fn", "total", "n", "desc", "lhs_slot", "lhs_offset", "rhs_slot",
               "rhs_offset", "out_slot", "epi", "epi_items", "pairs", "n_pairs", "", "")
KERNEL_STEP, GEMM_STEP = 0, 1
_QUAD = ("ws", "wb", "os", "ob")  # an overlap check: written slot, bytes, read slot, bytes

SYMBOLS = ("sn_rt_publish", "sn_rt_finish", "sn_rt_run", "sn_rt_worker", "sn_rt_spin",
           "sn_rt_program", "sn_rt_gemm_s32", "sn_rt_gemm_s64", "sn_rt_gemm_d32",
           "sn_rt_gemm_d64")

_COMMON = """
define private void @chunks(i64* %ctrl, i64 %seq) nounwind {{
entry:
  %fnp = getelementptr i64, i64* %ctrl, i64 {FN}
  %fni = load atomic i64, i64* %fnp monotonic, align 8
  %fn = inttoptr i64 %fni to void (i8*, i64, i64)*
  %tp = getelementptr i64, i64* %ctrl, i64 {TABLE}
  %ti = load atomic i64, i64* %tp monotonic, align 8
  %table = inttoptr i64 %ti to i8*
  %totp = getelementptr i64, i64* %ctrl, i64 {TOTAL}
  %total = load atomic i64, i64* %totp monotonic, align 8
  %np = getelementptr i64, i64* %ctrl, i64 {N}
  %n = load atomic i64, i64* %np monotonic, align 8
  %claimp = getelementptr i64, i64* %ctrl, i64 {CLAIM}
  %donep = getelementptr i64, i64* %ctrl, i64 {DONE}
  %low = and i64 %seq, 1099511627775
  %tag = shl i64 %low, 24
  br label %claim
claim:
  %c = load atomic i64, i64* %claimp acquire, align 8
  %ctag = and i64 %c, -16777216
  %mine = icmp eq i64 %ctag, %tag
  br i1 %mine, label %index, label %out
index:
  %k = and i64 %c, 16777215
  %left = icmp ult i64 %k, %n
  br i1 %left, label %take, label %out
take:
  %c1 = add i64 %c, 1
  %r = cmpxchg i64* %claimp, i64 %c, i64 %c1 acq_rel acquire
  %ok = extractvalue {{ i64, i1 }} %r, 1
  br i1 %ok, label %run, label %claim
run:
  %q = udiv i64 %total, %n
  %rem = urem i64 %total, %n
  %k1 = add i64 %k, 1
  %qlo = mul i64 %q, %k
  %qhi = mul i64 %q, %k1
  %rlo_num = mul i64 %rem, %k
  %rhi_num = mul i64 %rem, %k1
  %rlo = udiv i64 %rlo_num, %n
  %rhi = udiv i64 %rhi_num, %n
  %lo = add i64 %qlo, %rlo
  %hi = add i64 %qhi, %rhi
  call void %fn(i8* %table, i64 %lo, i64 %hi)
  %d = atomicrmw add i64* %donep, i64 1 release
  br label %claim
out:
  ret void
}}

define i64 @sn_rt_publish(i64* %ctrl, i64 %fn, i64 %table, i64 %total, i64 %n,
                          i64 %workers) nounwind {{
entry:
  %seqp = getelementptr i64, i64* %ctrl, i64 {SEQ}
  %old = load atomic i64, i64* %seqp monotonic, align 8
  %seq = add i64 %old, 1
  %fnp = getelementptr i64, i64* %ctrl, i64 {FN}
  store atomic i64 %fn, i64* %fnp monotonic, align 8
  %tp = getelementptr i64, i64* %ctrl, i64 {TABLE}
  store atomic i64 %table, i64* %tp monotonic, align 8
  %totp = getelementptr i64, i64* %ctrl, i64 {TOTAL}
  store atomic i64 %total, i64* %totp monotonic, align 8
  %np = getelementptr i64, i64* %ctrl, i64 {N}
  store atomic i64 %n, i64* %np monotonic, align 8
  %donep = getelementptr i64, i64* %ctrl, i64 {DONE}
  store atomic i64 0, i64* %donep monotonic, align 8
  %low = and i64 %seq, 1099511627775
  %tag = shl i64 %low, 24
  %claimp = getelementptr i64, i64* %ctrl, i64 {CLAIM}
  store atomic i64 %tag, i64* %claimp release, align 8
  store atomic i64 %seq, i64* %seqp seq_cst, align 8
  br label %loop
loop:
  %w = phi i64 [ 0, %entry ], [ %w1, %loop ]
  %kicks = phi i64 [ 0, %entry ], [ %kicks1, %loop ]
  %slot8 = mul i64 %w, 8
  %slot = add i64 %slot8, {SLEEPING}
  %sp = getelementptr i64, i64* %ctrl, i64 %slot
  %was = atomicrmw xchg i64* %sp, i64 0 seq_cst
  %kslot = add i64 %slot, 1
  %kp1 = getelementptr i64, i64* %ctrl, i64 %kslot
  store i64 %was, i64* %kp1, align 8
  %kicks1 = add i64 %kicks, %was
  %w1 = add i64 %w, 1
  %more = icmp ult i64 %w1, %workers
  br i1 %more, label %loop, label %done
done:
  %kp = getelementptr i64, i64* %ctrl, i64 {KICKS}
  store i64 %kicks1, i64* %kp, align 8
  ret i64 %seq
}}

define i64 @sn_rt_run(i64* %ctrl, i64 %fn, i64 %table, i64 %total, i64 %n,
                      i64 %workers) nounwind {{
entry:
  %seq = call i64 @sn_rt_publish(i64* %ctrl, i64 %fn, i64 %table, i64 %total, i64 %n,
                                 i64 %workers)
  %kp = getelementptr i64, i64* %ctrl, i64 {KICKS}
  %kicks = load i64, i64* %kp, align 8
  %none = icmp eq i64 %kicks, 0
  br i1 %none, label %all, label %wake
all:
  call void @sn_rt_finish(i64* %ctrl, i64 %seq)
  ret i64 0
wake:
  ret i64 %seq
}}

define void @sn_rt_finish(i64* %ctrl, i64 %seq) nounwind {{
entry:
  call void @chunks(i64* %ctrl, i64 %seq)
  %np = getelementptr i64, i64* %ctrl, i64 {N}
  %n = load atomic i64, i64* %np monotonic, align 8
  %donep = getelementptr i64, i64* %ctrl, i64 {DONE}
  br label %wait
wait:
  %d = load atomic i64, i64* %donep acquire, align 8
  %all = icmp uge i64 %d, %n
  br i1 %all, label %out, label %spin
spin:
  {PAUSE}
  br label %wait
out:
  ret void
}}

define i64 @sn_rt_worker(i64* %ctrl, i64 %w, i64 %seen0) nounwind {{
entry:
  %seqp = getelementptr i64, i64* %ctrl, i64 {SEQ}
  %budp = getelementptr i64, i64* %ctrl, i64 {SPIN}
  %slot8 = mul i64 %w, 8
  %slot = add i64 %slot8, {SLEEPING}
  %sp = getelementptr i64, i64* %ctrl, i64 %slot
  %budget = load atomic i64, i64* %budp monotonic, align 8
  br label %loop
loop:
  %seen = phi i64 [ %seen0, %entry ], [ %s, %run ], [ %seen, %spin ], [ %seen, %reclaim ]
  %left = phi i64 [ %budget, %entry ], [ %budget, %run ], [ %left1, %spin ],
                  [ %budget, %reclaim ]
  %s = load atomic i64, i64* %seqp acquire, align 8
  %new = icmp ne i64 %s, %seen
  br i1 %new, label %run, label %idle
run:
  call void @chunks(i64* %ctrl, i64 %s)
  br label %loop
idle:
  %out = icmp sle i64 %left, 0
  br i1 %out, label %sleep, label %spin
spin:
  {PAUSE}
  %left1 = sub i64 %left, 1
  br label %loop
sleep:
  store atomic i64 1, i64* %sp seq_cst, align 8
  %s2 = load atomic i64, i64* %seqp seq_cst, align 8
  %late = icmp ne i64 %s2, %seen
  br i1 %late, label %reclaim, label %exit
reclaim:
  %x = atomicrmw xchg i64* %sp, i64 0 seq_cst
  br label %loop
exit:
  ret i64 %seen
}}

define void @sn_rt_spin(i64 %n) nounwind {{
entry:
  %any = icmp sgt i64 %n, 0
  br i1 %any, label %loop, label %out
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]
  {PAUSE}
  %i1 = add i64 %i, 1
  %more = icmp slt i64 %i1, %n
  br i1 %more, label %loop, label %out
out:
  ret void
}}
"""

_PROGRAM = """
define private i64 @operand(i64* %table, i64* %rec, i64 %field) nounwind {{
entry:
  %sp = getelementptr i64, i64* %rec, i64 %field
  %slot = load i64, i64* %sp, align 8
  %f1 = add i64 %field, 1
  %op = getelementptr i64, i64* %rec, i64 %f1
  %off = load i64, i64* %op, align 8
  %abs = icmp slt i64 %slot, 0
  br i1 %abs, label %absolute, label %slotted
absolute:
  ret i64 %off
slotted:
  %bp = getelementptr i64, i64* %table, i64 %slot
  %base = load i64, i64* %bp, align 8
  %addr = add i64 %base, %off
  ret i64 %addr
}}

define private i1 @overlaps(i64* %table, i64 %pairs_addr, i64 %n) nounwind {{
entry:
  %pairs = inttoptr i64 %pairs_addr to i64*
  br label %head
head:
  %j = phi i64 [ 0, %entry ], [ %j1, %next ]
  %more = icmp slt i64 %j, %n
  br i1 %more, label %body, label %none
body:
  %q = mul i64 %j, 4
  %quad = getelementptr i64, i64* %pairs, i64 %q
{quad_loads}
  %wp = getelementptr i64, i64* %table, i64 %ws
  %w = load i64, i64* %wp, align 8
  %opp = getelementptr i64, i64* %table, i64 %os
  %o = load i64, i64* %opp, align 8
  %wend = add i64 %w, %wb
  %oend = add i64 %o, %ob
  %c1 = icmp ult i64 %w, %oend
  %c2 = icmp ult i64 %o, %wend
  %both = and i1 %c1, %c2
  br i1 %both, label %clash, label %next
next:
  %j1 = add i64 %j, 1
  br label %head
clash:
  ret i1 true
none:
  ret i1 false
}}

define i64 @sn_rt_program(i64* %ctrl, i64* %steps, i64 %nsteps, i64 %start, i64* %table,
                          i64 %workers) nounwind {{
entry:
  %tbl = ptrtoint i64* %table to i64
  br label %head
head:
  %i = phi i64 [ %start, %entry ], [ %next, %cont ]
  %more = icmp slt i64 %i, %nsteps
  br i1 %more, label %step, label %done
step:
  %base = mul i64 %i, {REC}
  %rec = getelementptr i64, i64* %steps, i64 %base
{step_loads}
  %i1 = add i64 %i, 1
  %isgemm = icmp eq i64 %kind, {GEMM_STEP}
  br i1 %isgemm, label %gemm, label %launch
gemm:
{gemm_loads}
  %desc = inttoptr i64 %desci to i64*
  %a = call i64 @operand(i64* %table, i64* %rec, i64 5)
  %b = call i64 @operand(i64* %table, i64* %rec, i64 7)
  %cp = getelementptr i64, i64* %table, i64 %outslot
  %c = load i64, i64* %cp, align 8
{operand_stores}
  %clash = call i1 @overlaps(i64* %table, i64 %pairs, i64 %n_pairs)
  %has = icmp ne i64 %epi, 0
  %free = xor i1 %clash, true
  %fused = and i1 %has, %free
  %epi1 = select i1 %fused, i64 %epi, i64 0
{epilogue_stores}
  %skip = zext i1 %fused to i64
  %ig = add i64 %i1, %skip
  br label %launch
launch:
  %next = phi i64 [ %i1, %step ], [ %ig, %gemm ]
  %arg = phi i64 [ %tbl, %step ], [ %desci, %gemm ]
  %pool = icmp sgt i64 %n, 1
  br i1 %pool, label %par, label %ser
ser:
  %f = inttoptr i64 %fn to void (i8*, i64, i64)*
  %argp = inttoptr i64 %arg to i8*
  call void %f(i8* %argp, i64 0, i64 %total)
  br label %cont
par:
  %seq = call i64 @sn_rt_run(i64* %ctrl, i64 %fn, i64 %arg, i64 %total, i64 %n,
                             i64 %workers)
  %asleep = icmp ne i64 %seq, 0
  br i1 %asleep, label %wake, label %cont
wake:
  %resume = add i64 %next, 1
  ret i64 %resume
cont:
  br label %head
done:
  ret i64 0
}}
"""

_GEMM = """
define void @sn_rt_gemm_{name}(i8* %descb, i64 %lo, i64 %hi) nounwind {{
entry:
  %d = bitcast i8* %descb to i64*
{loads}
  %f = inttoptr i64 %fn to void (i32, i32, i32, {I}, {I}, {I}, {F}, i8*, {I}, i8*, {I}, {F},
                                 i8*, {I})*
  %ta32 = trunc i64 %trans_a to i32
  %tb32 = trunc i64 %trans_b to i32
  %part = sub i64 %hi, %lo
  %off = mul i64 %lo, %step
  %rows = icmp ne i64 %by_rows, 0
  %m_r = select i1 %rows, i64 %part, i64 %m
  %n_r = select i1 %rows, i64 %n, i64 %part
  %a_off = select i1 %rows, i64 %off, i64 0
  %b_off = select i1 %rows, i64 0, i64 %off
  %lon = mul i64 %lo, %n
  %c_el = select i1 %rows, i64 %lon, i64 %lo
  %c_off = mul i64 %c_el, %item
  %a1 = add i64 %a, %a_off
  %b1 = add i64 %b, %b_off
  %c1 = add i64 %c, %c_off
  %ap = inttoptr i64 %a1 to i8*
  %bp = inttoptr i64 %b1 to i8*
  %cp = inttoptr i64 %c1 to i8*
  %mi = {TO_INDEX} i64 %m_r to {I}
  %ni = {TO_INDEX} i64 %n_r to {I}
  %ki = {TO_INDEX} i64 %k to {I}
  %ldai = {TO_INDEX} i64 %lda to {I}
  %ldbi = {TO_INDEX} i64 %ldb to {I}
  %ldci = {TO_INDEX} i64 %n to {I}
  call void %f(i32 {ROW_MAJOR}, i32 %ta32, i32 %tb32, {I} %mi, {I} %ni, {I} %ki, {F} 1.0,
               i8* %ap, {I} %ldai, i8* %bp, {I} %ldbi, {F} 0.0, i8* %cp, {I} %ldci)
  %has = icmp ne i64 %epi, 0
  %fuse = and i1 %has, %rows
  br i1 %fuse, label %then, label %out
then:
  %ef = inttoptr i64 %epi to void (i8*, i64, i64)*
  %et = inttoptr i64 %epi_table to i8*
  %elo = mul i64 %lo, %epi_items
  %ehi = mul i64 %hi, %epi_items
  call void %ef(i8* %et, i64 %elo, i64 %ehi)
  br label %out
out:
  ret void
}}
"""


def _pause(arch: str) -> str:
    """The body of one idle-loop iteration: the CPU's spin-wait hint."""
    if arch.lower() in ("x86_64", "amd64", "i686", "i386"):
        return "call void @llvm.x86.sse2.pause()"
    if arch.lower() in ("aarch64", "arm64"):
        return "call void asm sideeffect \"yield\", \"\"()"
    return "call void asm sideeffect \"\", \"\"()"


def _loads(base: str, fields: tuple[str, ...], names: dict[str, str]) -> str:
    """LLVM IR loading the int64 `fields` named in `names` from ``%base`` into ``%name``."""
    return "\n".join(
        f"  %{names[f]}.p = getelementptr i64, i64* %{base}, i64 {i}\n"
        f"  %{names[f]} = load i64, i64* %{names[f]}.p, align 8"
        for i, f in enumerate(fields) if f in names)


def _stores(base: str, fields: tuple[str, ...], values: dict[str, str]) -> str:
    """LLVM IR storing ``%value`` into each int64 field of ``%base`` named in `values`."""
    return "\n".join(
        f"  %{base}.{f} = getelementptr i64, i64* %{base}, i64 {fields.index(f)}\n"
        f"  store i64 %{v}, i64* %{base}.{f}, align 8" for f, v in values.items())


def support_ir(arch: str) -> str:
    """The LLVM IR text of the runtime support functions for `arch` (``x86_64``, ...)."""
    pause = _pause(arch)
    slots = dict(SEQ=SEQ, CLAIM=CLAIM, DONE=DONE, FN=FN, TABLE=TABLE, TOTAL=TOTAL, N=N,
                 SPIN=SPIN, KICKS=KICKS, SLEEPING=SLEEPING, PAUSE=pause)
    step = {"kind": "kind", "fn": "fn", "total": "total", "n": "n"}
    gemm = {"desc": "desci", "out_slot": "outslot", "epi": "epi", "epi_items": "epi_items",
            "pairs": "pairs", "n_pairs": "n_pairs"}
    parts = [_COMMON.format(**slots),
             _PROGRAM.format(REC=len(STEP_FIELDS), GEMM_STEP=GEMM_STEP,
                             quad_loads=_loads("quad", _QUAD, {f: f for f in _QUAD}),
                             step_loads=_loads("rec", STEP_FIELDS, step),
                             gemm_loads=_loads("rec", STEP_FIELDS, gemm),
                             operand_stores=_stores("desc", GEMM_FIELDS,
                                                    {"a": "a", "b": "b", "c": "c"}),
                             epilogue_stores=_stores("desc", GEMM_FIELDS, {
                                 "epi": "epi1", "epi_table": "tbl",
                                 "epi_items": "epi_items"}))]
    loads = _loads("d", GEMM_FIELDS, {f: f for f in GEMM_FIELDS})
    for letter, fp in (("s", "float"), ("d", "double")):
        for bits in (32, 64):  # (an i64 -> i64 "cast" is a bitcast: trunc needs a narrower type)
            parts.append(_GEMM.format(name=f"{letter}{bits}", loads=loads, I=f"i{bits}",
                                      F=fp, ROW_MAJOR=ROW_MAJOR,
                                      TO_INDEX="trunc" if bits < 64 else "bitcast"))
    if "llvm.x86.sse2.pause" in pause:
        parts.append("declare void @llvm.x86.sse2.pause() nounwind")
    return "\n".join(parts)

