"""CPU backend: kernel IR -> LLVM IR (llvmlite) -> host machine code.

Modules: :mod:`engine` (target machine, O3 pipeline, object code), :mod:`math` (branch-free
scalar math in LLVM IR), :mod:`codegen` (kernel IR lowering table).
"""
