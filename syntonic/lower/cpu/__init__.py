"""CPU backend: kernel IR -> LLVM IR (llvmlite) -> host machine code.

Modules: :mod:`engine` (target machine, O3 pipeline, object code), :mod:`sharedlib`
(object code -> shared library -> dlopen, no LLVM needed to load), :mod:`math` (branch-free
scalar math in LLVM IR; f32 cores in :mod:`math_f32`, the builder helper in
:mod:`mathexpr`), :mod:`codegen` (kernel IR lowering table), :mod:`abi` (calling
convention, the METH_FASTCALL entry), :mod:`layout` (the CPython/numpy object offsets it
reads), :mod:`support` (the runtime's own machine code: pool hand-off, GEMM blocks, step
runner) and :mod:`constants` (constant arrays in a plan, readable without llvmlite).
"""
