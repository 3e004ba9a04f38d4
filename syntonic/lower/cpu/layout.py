"""Byte offsets of the CPython / numpy object fields that generated code reads.

The FAST entry (:mod:`syntonic.lower.cpu.abi`) reads numpy arrays straight from
``PyObject*`` pointers; :func:`syntonic.runtime.cpu.fastcall_supported` checks every offset
here against live objects of the running interpreter before any FAST entry is called.
Kept apart from ``abi`` so that the runtime can probe them without importing llvmlite.
"""

from __future__ import annotations

OB_TYPE_OFFSET = 8  # PyObject.ob_type (ob_refcnt is at 0)
ARRAY_DATA_OFFSET = 16  # PyArrayObject.data
ARRAY_ND_OFFSET = 24  # .nd (int)
ARRAY_DIMS_OFFSET = 32  # .dimensions (npy_intp*)
ARRAY_DESCR_OFFSET = 56  # .descr (PyArray_Descr*)
ARRAY_FLAGS_OFFSET = 64  # .flags (int)
DESCR_BYTEORDER_OFFSET = 26  # PyArray_Descr.byteorder (char), numpy 1.x and 2.x
DESCR_TYPE_NUM_OFFSET = 28  # PyArray_Descr.type_num (int), numpy 1.x and 2.x
NPY_C_CONTIGUOUS = 0x1
NPY_ALIGNED = 0x100
NPY_WRITEABLE = 0x400
