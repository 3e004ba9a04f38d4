"""The native calling convention of compiled CPU code, emitted as LLVM IR.

Every compiled function has one *buffer table*: an array of data pointers, one per
buffer (parameters, then outputs, then temporaries). Kernels and entry points take it:

* ``void KERNEL(i8** table, i64 start, i64 stop)`` runs work items ``[start, stop)`` of
  one kernel (the unit the thread pool splits: rows, or blocks of elements);
* ``void RUN(i8** table)`` runs every kernel of the function in order over its whole
  range (one call for a small function);
* ``PyObject* FAST(PyObject* self, PyObject* const* args, i64 nargs)`` is a CPython
  ``METH_FASTCALL`` function (see :mod:`syntonic.runtime.cpu`): it reads the numpy arrays'
  data pointers straight from ``args`` (parameters, then outputs), checks they are
  C-contiguous and aligned, puts temporaries on the stack, calls RUN and returns its last
  argument (an output; new reference) - or its first argument when a layout check fails,
  which tells the caller to take the general path. No ctypes marshalling per call.

The object layouts read here (``ob_refcnt`` at 0, ``PyArrayObject.data`` at 16,
``.flags`` at 64) are checked against the running interpreter by
:func:`syntonic.runtime.cpu.fastcall_supported` before FAST is ever used.

Example::

    mod = ir.Module()
    run = declare_run(mod, "f_run")          # then define it: call each kernel
    emit_fastcall(mod, "f_fast", run, n_args=2, temp_bytes=[4096])
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = I8.as_pointer()
TABLE = I8P.as_pointer()
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [TABLE, I64, I64])
RUN_TYPE = ir.FunctionType(ir.VoidType(), [TABLE])
FAST_TYPE = ir.FunctionType(I8P, [I8P, TABLE, I64])

ARRAY_DATA_OFFSET = 16
ARRAY_FLAGS_OFFSET = 64
NPY_C_CONTIGUOUS = 0x1
NPY_ALIGNED = 0x100
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
                  temp_bytes: Sequence[int]) -> ir.Function:
    """Define the METH_FASTCALL entry ``name`` (see the module docstring)."""
    fn = ir.Function(mod, FAST_TYPE, name)
    self_, args, _nargs = fn.args
    self_.name, args.name, _nargs.name = "self", "args", "nargs"
    entry = fn.append_basic_block("entry")
    bad = fn.append_basic_block("bad_layout")
    ok = fn.append_basic_block("call")
    b = ir.IRBuilder(entry)
    n_table = n_args + len(temp_bytes)
    table = b.alloca(I8P, ir.Constant(I64, max(n_table, 1)), name="table")
    good = ir.Constant(ir.IntType(1), 1)
    want = NPY_C_CONTIGUOUS | NPY_ALIGNED
    for k in range(n_args):
        obj = b.load(b.gep(args, [ir.Constant(I64, k)]), name=f"arg{k}")
        data = b.load(b.bitcast(b.gep(obj, [ir.Constant(I64, ARRAY_DATA_OFFSET)]),
                                TABLE), name=f"data{k}")
        flags = b.load(b.bitcast(b.gep(obj, [ir.Constant(I64, ARRAY_FLAGS_OFFSET)]),
                                 I32.as_pointer()), name=f"flags{k}")
        fits = b.icmp_unsigned("==", b.and_(flags, I32(want)), I32(want))
        good = b.and_(good, fits)
        b.store(data, b.gep(table, [ir.Constant(I64, k)]))
    b.cbranch(good, ok, bad)
    b.position_at_end(bad)
    first = b.load(b.gep(args, [ir.Constant(I64, 0)]))
    _incref(b, first)
    b.ret(first)
    b.position_at_end(ok)
    for t, nbytes in enumerate(temp_bytes):
        mem = b.alloca(I8, ir.Constant(I64, max(nbytes, 1)), name=f"temp{t}")
        mem.align = ALIGN
        b.store(mem, b.gep(table, [ir.Constant(I64, n_args + t)]))
    b.call(run, [table])
    result = b.load(b.gep(args, [ir.Constant(I64, n_args - 1)]), name="out")
    _incref(b, result)
    b.ret(result)
    return fn


def _incref(b: ir.IRBuilder, obj: ir.Value) -> None:
    refcnt = b.bitcast(obj, I64.as_pointer())
    b.store(b.add(b.load(refcnt), I64(1)), refcnt)
