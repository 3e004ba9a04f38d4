"""The native calling convention of compiled CPU code, emitted as LLVM IR.

Every compiled function has one *buffer table*: an array of data pointers, one per
buffer (parameters, then outputs, then temporaries). Kernels and entry points take it:

* ``void KERNEL(i8** table, i64 start, i64 stop)`` runs work items ``[start, stop)`` of
  one kernel (the unit the thread pool splits: rows, or blocks of elements);
* ``void RUN(i8** table)`` runs every kernel of the function in order over its whole
  range (one call for a small function);
* ``PyObject* FAST(PyObject* self, PyObject* const* args, i64 nargs)`` is a CPython
  ``METH_FASTCALL`` function (see :mod:`syntonic.runtime.cpu`): it checks the call
  itself - ``nargs``, and for each argument (parameters, then outputs) that it is exactly
  a ``numpy.ndarray``, C-contiguous and aligned (outputs also writeable), and has the
  expected dtype number and shape - reads the data pointers straight from ``args``, puts
  temporaries on the stack, calls RUN and returns its last argument (an output; new
  reference). When a check fails it returns its first argument (``self`` when ``nargs``
  is wrong), which tells the caller to take the general path. So a caller may pass any
  objects: the Python side of a call is one builtin call, no ctypes marshalling.

The expectations live in ``self``, an int64 numpy array built per process by
:func:`syntonic.runtime.cpu.make_fastcall` (the object code stays process-independent, so
the compile cache can store it): ``[0]`` the address of ``numpy.ndarray``; for argument
``k`` at ``1 + 3k``: dtype number (-1: any), ndim (-1: any shape) and the index in
``self`` where its dimensions start.

The object layouts read here (``ob_refcnt`` at 0, ``ob_type`` at 8, ``PyArrayObject``'s
``data`` at 16, ``nd`` at 24, ``dimensions`` at 32, ``descr`` at 56, ``flags`` at 64,
``PyArray_Descr``'s ``byteorder`` at 26 and ``type_num`` at 28) are checked against the
running interpreter by :func:`syntonic.runtime.cpu.fastcall_supported` before FAST is ever
used.

Example::

    mod = ir.Module()
    run = declare_run(mod, "f_run")          # then define it: call each kernel
    emit_fastcall(mod, "f_fast", run, n_args=2, temp_bytes=[4096])
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from syntonic.lower.cpu.layout import (
    ARRAY_DATA_OFFSET,
    ARRAY_DESCR_OFFSET,
    ARRAY_DIMS_OFFSET,
    ARRAY_FLAGS_OFFSET,
    ARRAY_ND_OFFSET,
    DESCR_BYTEORDER_OFFSET,
    DESCR_TYPE_NUM_OFFSET,
    NPY_ALIGNED,
    NPY_C_CONTIGUOUS,
    NPY_WRITEABLE,
    OB_TYPE_OFFSET,
)

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = I8.as_pointer()
TABLE = I8P.as_pointer()
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [TABLE, I64, I64])
RUN_TYPE = ir.FunctionType(ir.VoidType(), [TABLE])
FAST_TYPE = ir.FunctionType(I8P, [I8P, TABLE, I64])

STACK_TEMP_LIMIT = 1 << 18  # temporaries above this many bytes are allocated by Python
ALIGN = 64


def declare_kernel(mod: ir.Module, name: str) -> ir.Function:
    """A kernel entry ``void name(i8** table, i64 start, i64 stop)``."""
    fn = ir.Function(mod, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "table", "start", "stop"
    fn.attributes.add("nounwind")
    return fn


def declare_run(mod: ir.Module, name: str) -> ir.Function:
    """The whole-function entry ``void name(i8** table)``."""
    fn = ir.Function(mod, RUN_TYPE, name)
    fn.args[0].name = "table"
    fn.attributes.add("nounwind")
    return fn


def load_buffer(b: ir.IRBuilder, table: ir.Value, index: int, elem: ir.Type,
                name: str = "") -> ir.Value:
    """Typed pointer to buffer `index` of the table."""
    raw = b.load(b.gep(table, [ir.Constant(I64, index)]), name=f"{name}.raw" if name else "")
    return b.bitcast(raw, elem.as_pointer(), name=name)


def emit_fastcall(mod: ir.Module, name: str, run: ir.Function, n_args: int,
                  temp_bytes: Sequence[int], n_outputs: int = 1) -> ir.Function:
    """Define the METH_FASTCALL entry ``name`` (see the module docstring); the last
    `n_outputs` arguments are outputs (checked writeable)."""
    fn = ir.Function(mod, FAST_TYPE, name)
    # Straight-line checks that LLVM's optimiser cannot improve much: unoptimised (and
    # fast instruction selection) it costs the same per call (W4 1.03-1.06 us either
    # way) and saves ~13 ms of a cold compile (~30 % of W1's LLVM time)
    fn.attributes.add("optnone")
    fn.attributes.add("noinline")
    self_, args, nargs = fn.args
    self_.name, args.name, nargs.name = "self", "args", "nargs"
    entry = fn.append_basic_block("entry")
    bad = fn.append_basic_block("bad_call")
    b = ir.IRBuilder(entry)
    n_table = n_args + len(temp_bytes)
    table = b.alloca(I8P, ir.Constant(I64, max(n_table, 1)), name="table")
    expect = b.load(_field(b, self_, ARRAY_DATA_OFFSET, I64.as_pointer().as_pointer()),
                    name="expect")
    array_type = b.load(expect, name="ndarray_type")
    nargs_ok = fn.append_basic_block("args")
    b.cbranch(b.icmp_signed("==", nargs, I64(n_args)), nargs_ok, _wrong_nargs(fn, self_))
    b.position_at_end(nargs_ok)
    for k in range(n_args):
        obj = b.load(b.gep(args, [I64(k)]), name=f"arg{k}")
        is_array = b.icmp_unsigned("==", b.load(_field(b, obj, OB_TYPE_OFFSET, I64.as_pointer())),
                                   array_type)
        typed = fn.append_basic_block(f"arg{k}.typed")
        b.cbranch(is_array, typed, bad)  # only an ndarray may be read further
        b.position_at_end(typed)
        want = NPY_C_CONTIGUOUS | NPY_ALIGNED | (NPY_WRITEABLE if k >= n_args - n_outputs else 0)
        flags = b.load(_field(b, obj, ARRAY_FLAGS_OFFSET, I32.as_pointer()), name=f"flags{k}")
        good = b.icmp_unsigned("==", b.and_(flags, I32(want)), I32(want))
        good = b.and_(good, _dtype_ok(b, obj, b.load(b.gep(expect, [I64(1 + 3 * k)]))))
        shaped = fn.append_basic_block(f"arg{k}.flags")
        b.cbranch(good, shaped, bad)
        b.position_at_end(shaped)
        _check_shape(b, fn, obj, expect, k, bad)
        data = b.load(_field(b, obj, ARRAY_DATA_OFFSET, TABLE), name=f"data{k}")
        b.store(data, b.gep(table, [I64(k)]))
    for t, nbytes in enumerate(temp_bytes):
        mem = b.alloca(I8, ir.Constant(I64, max(nbytes, 1)), name=f"temp{t}")
        mem.align = ALIGN
        b.store(mem, b.gep(table, [I64(n_args + t)]))
    b.call(run, [table])
    result = b.load(b.gep(args, [I64(n_args - 1)]), name="out")
    _incref(b, result)
    b.ret(result)
    b.position_at_end(bad)
    first = b.load(b.gep(args, [I64(0)]))
    _incref(b, first)
    b.ret(first)
    return fn


def _field(b: ir.IRBuilder, obj: ir.Value, offset: int, ptr_type: ir.Type) -> ir.Value:
    """Pointer to the field at byte `offset` of the object `obj` (an i8*)."""
    return b.bitcast(b.gep(obj, [I64(offset)]), ptr_type)


def _wrong_nargs(fn: ir.Function, self_: ir.Value) -> ir.Block:
    block = fn.append_basic_block("bad_nargs")
    b = ir.IRBuilder(block)
    _incref(b, self_)
    b.ret(self_)
    return block


def _dtype_ok(b: ir.IRBuilder, obj: ir.Value, type_num: ir.Value) -> ir.Value:
    """The array's dtype has number `type_num` (-1: any) in native byte order."""
    descr = b.load(_field(b, obj, ARRAY_DESCR_OFFSET, I8P.as_pointer()))
    num = b.sext(b.load(_field(b, descr, DESCR_TYPE_NUM_OFFSET, I32.as_pointer())), I64)
    order = b.load(b.gep(descr, [I64(DESCR_BYTEORDER_OFFSET)]))
    same = b.and_(b.icmp_signed("==", num, type_num),
                  b.icmp_unsigned("!=", order, I8(ord(">"))))
    return b.or_(same, b.icmp_signed("<", type_num, I64(0)))


def _check_shape(b: ir.IRBuilder, fn: ir.Function, obj: ir.Value, expect: ir.Value, k: int,
                 bad: ir.Block) -> None:
    """Branch to `bad` unless argument k's shape is the expected one; ends positioned in
    the block after the check."""
    nd_want = b.load(b.gep(expect, [I64(2 + 3 * k)]), name=f"nd{k}.want")
    dims_at = b.load(b.gep(expect, [I64(3 + 3 * k)]), name=f"dims{k}.at")
    nd = b.sext(b.load(_field(b, obj, ARRAY_ND_OFFSET, I32.as_pointer())), I64, name=f"nd{k}")
    dims = b.load(_field(b, obj, ARRAY_DIMS_OFFSET, I64.as_pointer().as_pointer()))
    check = fn.append_basic_block(f"arg{k}.nd")
    has_dims = fn.append_basic_block(f"arg{k}.has_dims")
    loop = fn.append_basic_block(f"arg{k}.dims")
    same = fn.append_basic_block(f"arg{k}.dim_ok")
    done = fn.append_basic_block(f"arg{k}.ok")
    b.cbranch(b.icmp_signed("<", nd_want, I64(0)), done, check)  # -1: any shape
    b.position_at_end(check)
    b.cbranch(b.icmp_signed("==", nd, nd_want), has_dims, bad)
    b.position_at_end(has_dims)
    b.cbranch(b.icmp_signed(">", nd, I64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64, name=f"d{k}")
    got = b.load(b.gep(dims, [i]))
    want = b.load(b.gep(expect, [b.add(dims_at, i)]))
    b.cbranch(b.icmp_signed("==", got, want), same, bad)
    b.position_at_end(same)
    nxt = b.add(i, I64(1))
    b.cbranch(b.icmp_signed("<", nxt, nd), loop, done)
    i.add_incoming(I64(0), has_dims)
    i.add_incoming(nxt, same)
    b.position_at_end(done)


def _incref(b: ir.IRBuilder, obj: ir.Value) -> None:
    refcnt = b.bitcast(obj, I64.as_pointer())
    b.store(b.add(b.load(refcnt), I64(1)), refcnt)
