"""LLVM for the host CPU: initialisation, target machine, optimisation, object code.

One process-wide :class:`Engine` owns a target machine for the host (its CPU name and
features, so LLVM uses AVX2/FMA/... where present). Object code (not a JIT-only artifact)
is the unit of compilation so the compile cache can store it on disk and load it without
LLVM's optimiser running again. Where the system has a linker the object code is
position independent and is linked into a shared library that a cache hit loads with
``dlopen`` (:mod:`syntonic.lower.cpu.sharedlib`; no LLVM at all). A fresh compile loads
its object code into an MCJIT execution engine at once and is linked for the cache in
the background (:func:`syntonic.runtime.native.load_new`); without a linker MCJIT is
the only loader.

Example::

    eng = get_engine()
    art = eng.compile(llvm_ir_text)        # optimise + emit object code
    lib = eng.link(art.obj)                # a shared library (bytes), or None
    addrs = eng.load(art.obj, art.symbols, lib)  # machine code in this process
    addr = addrs["entry"]                  # an address to call through ctypes
"""

from __future__ import annotations

import threading
from dataclasses import field

import llvmlite
import llvmlite.binding as llvm

from syntonic.ir.errors import BackendError
from syntonic.lower.cpu import sharedlib
from syntonic.records import record

_lock = threading.Lock()
_option_lock = threading.Lock()
# LLVM's global context is not thread-safe: one compile at a time in the process (a user's
# threads, and the runtime support library built in the background)
_compile_lock = threading.RLock()
_engine: Engine | None = None


@record(frozen=True)
class Artifact:
    """The result of compiling one module: optimised IR text, object code, asm on demand."""

    name: str
    optimized_ir: str
    obj: bytes
    symbols: tuple[str, ...]
    asm: str | None = field(default=None, compare=False)


class Engine:
    """Host target machine; object files load as shared libraries or into MCJIT."""

    def __init__(self) -> None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        self.triple = llvm.get_process_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_triple(self.triple)
        # A shared library needs position-independent code; MCJIT alone takes the JIT's
        # default (large code model, absolute addresses).
        self.pic = sharedlib.linker() is not None
        self.tm = target.create_target_machine(
            cpu=self.cpu, features=self.features, opt=3,
            reloc="pic" if self.pic else "default",
            codemodel="small" if self.pic else "jitdefault",
        )
        self._ee: llvm.ExecutionEngine | None = None  # created on first MCJIT load
        self._load_lock = threading.Lock()

    @property
    def target_key(self) -> str:
        """Everything about the target and toolchain that changes the machine code."""
        ver = ".".join(map(str, llvm.llvm_version_info))
        return (f"{self.triple}|{self.cpu}|{self.features}|llvm{ver}|"
                f"llvmlite{llvmlite.__version__}|{'pic' if self.pic else 'jit'}")

    def optimize(self, text: str, vectorize: bool = True, interleave: int = 2
                 ) -> llvm.ModuleRef:
        """Parse, verify and run the O3 pipeline (loop + SLP vectorisers on), with
        `interleave` vector iterations per loop trip (the code generator chooses:
        :func:`syntonic.lower.cpu.codegen.interleave_for`)."""
        with _compile_lock:
            try:
                mod = llvm.parse_assembly(text)
                mod.verify()
            except RuntimeError as exc:
                raise BackendError(f"generated LLVM IR does not verify: {exc}\n{_numbered(text)}"
                                   ) from None
            mod.triple = self.triple
            mod.data_layout = str(self.tm.target_data)
            pto = llvm.create_pipeline_tuning_options(speed_level=3)
            # The loop vectoriser of LLVM 22 can run for minutes on large integer bit-mixing
            # kernels (random-number generators); callers turn it off for those.
            pto.loop_vectorization = vectorize
            pto.slp_vectorization = True
            # Full unrolling together with the loop vectoriser blows up on large integer
            # kernels (minutes for a 900-node threefry kernel); interleaving still gives the
            # vectorised loops several independent accumulators.
            pto.loop_unrolling = False
            pto.loop_interleaving = True
            pb = llvm.create_pass_builder(self.tm, pto)
            mpm = pb.getModulePassManager()
            # Interleaved vector iterations per loop trip: long transcendental chains
            # (W1: tanh, exp, a division per element) are latency-bound with one, 15-20 %
            # faster with two and ~12 % faster again with four. LLVM's cost model picks one
            # for large bodies, and only a command-line option forces it, so it is set
            # around our own pass run and reset (0 = the cost model) for any other LLVM
            # user in the process (numba).
            with _option_lock:
                llvm.set_option("syntonic", f"-force-vector-interleave={interleave}")
                try:
                    mpm.run(mod, pb)
                finally:
                    llvm.set_option("syntonic", "-force-vector-interleave=0")
            return mod

    def compile(self, text: str, name: str, symbols: tuple[str, ...],
                vectorize: bool = True, interleave: int = 2) -> Artifact:
        """Optimise `text` and emit object code; `symbols` are the entry points to export."""
        with _compile_lock:
            mod = self.optimize(text, vectorize, interleave)
            obj = self.tm.emit_object(mod)
            return Artifact(name, str(mod), obj, symbols)

    def asm(self, optimized_ir: str) -> str:
        """Assembly text of already-optimised IR (computed only when asked for)."""
        with _compile_lock:
            mod = llvm.parse_assembly(optimized_ir)
            return self.tm.emit_assembly(mod)

    def link(self, obj: bytes) -> bytes | None:
        """A shared library of `obj` (bytes), or None without a (working) linker."""
        return sharedlib.link(obj) if self.pic else None

    def load(self, obj: bytes, symbols: tuple[str, ...], lib: bytes | None = None
             ) -> dict[str, int]:
        """Load compiled code into the process; returns the address of each symbol.

        `lib` (from :meth:`link`) is dlopen'ed; without it, or if that fails, the object
        code goes into MCJIT.
        """
        if lib is None and self.pic:
            lib = self.link(obj)
        if lib:
            try:
                return sharedlib.load(lib, symbols)
            except OSError:
                pass  # MCJIT below loads the same (position-independent) object code
        with _compile_lock, self._load_lock:
            if self._ee is None:
                self._ee = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.tm)
            self._ee.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self._ee.finalize_object()
            addrs = {s: self._ee.get_function_address(s) for s in symbols}
        missing = [s for s, a in addrs.items() if not a]
        if missing:
            raise BackendError(f"object code lacks the symbols {missing}")
        return addrs


def get_engine() -> Engine:
    """The process-wide engine (created on first use; thread-safe)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = Engine()
    return _engine


def _numbered(text: str, limit: int = 400) -> str:
    lines = text.splitlines()[:limit]
    return "\n".join(f"{i + 1:4d}  {line}" for i, line in enumerate(lines))
