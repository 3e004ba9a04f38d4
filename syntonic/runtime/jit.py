"""``@sn.jit``: trace once per argument signature, cache, and run.

The call path turns the arguments into a cheap key (dtype and shape of each array,
value of each static argument) and looks up the compiled entry, tracing only on a miss.
Until a compiled backend is wired in, entries run on the reference interpreter.

Example::

    @sn.jit
    def step(x):
        return sn.harmonize(x - x.mean(axis=-1, keepdims=True))

    step(np.ones((4, 248), np.float32))      # traces, then runs
    print(step.trace(sn.spec("f32[4,248]"))) # the traced IR
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from syntonic.frontend import pytree
from syntonic.frontend.location import (
    display_path,
    filter_traceback,
    user_location,
    user_message,
)
from syntonic.frontend.trace import (
    _SCALAR_TYPES,
    ArraySpec,
    _keywords,
    _leaf_type,
    _output_value,
    _positional,
)
from syntonic.frontend.tracer import Trace, Tracer, current_trace, tracing
from syntonic.ir.errors import BackendError, DTypeError, IRError, SyntonicError, TraceError
from syntonic.ir.graph import Graph, Location
from syntonic.ir.interpreter import interpret
from syntonic.ir.types import DType, TensorType
from syntonic.ir.verifier import verify
from syntonic.runtime.device import DeviceArray

DEVICES = ("auto", "cpu", "cuda", "interpreter")


class Compiled:
    """One traced signature: the graph, the output structure and the runner.

    On ``device="auto"``/``"cpu"`` the first call compiles the graph to native code
    (passes, fusion, LLVM; through the compile cache, see :mod:`syntonic.runtime.native`);
    ``"interpreter"`` runs the reference interpreter. With ``"auto"`` a backend failure
    (or llvmlite missing) warns once and falls back to the interpreter.
    ``"cuda"``, and ``"auto"`` when CUDA is available, compile for the GPU instead
    (:mod:`syntonic.runtime.gpu`); with ``"auto"`` a CUDA failure warns and uses the CPU.
    """

    def __init__(self, graph: Graph, out_tree: pytree.TreeDef, param_types: list[TensorType],
                 device: str = "auto", donated: tuple[int, ...] = (),
                 in_place: tuple[int, ...] = ()):
        self.graph = graph
        self.out_tree = out_tree
        self.param_types = param_types
        self.device = device
        self.donated = donated  # leaf indices of donated arguments (see `jit`)
        # donated leaves passed inside a pytree: outputs may be written into them (in
        # place, see syntonic.lower.inplace); a bare array argument is always held by the
        # caller's own variable during the call, so its outputs use the donation pool
        self.in_place = in_place
        self._native: Any = None  # the runner: a NativeProgram or a GpuProgram
        self._cpu: Any = None
        self._single = out_tree.kind == "leaf"
        # a flat tuple of arrays is the runner's own result: no unflattening per call
        self._flat_tuple = out_tree.kind == "tuple" and all(
            c.kind == "leaf" for c in out_tree.children)
        self._unflatten = pytree.unflattener(out_tree)

    def native(self) -> Any:
        """The compiled CPU program (a :class:`~syntonic.runtime.native.NativeProgram`)."""
        if self._cpu is None:
            from syntonic.runtime.native import compile_graph

            self._cpu = compile_graph(self.graph, self.in_place)
        return self._cpu

    def run(self, leaves: list[Any]) -> Any:
        native = self._native
        if native is None:
            native = self._compile_or_fallback()
            if native is None:
                return self._interpret(leaves)
        if self.donated:
            outs = native.call_donating(leaves, self.donated)
        else:
            outs = native(*leaves)
        if self._single:
            return outs[0]
        if self._flat_tuple:
            return tuple(outs)
        return self._unflatten(outs)

    def _compile_or_fallback(self) -> Any:
        if self.device == "interpreter" or self._native is False:
            return None
        gpu = self._compile_gpu()
        if gpu is not None:
            self._native = gpu
            return gpu
        try:
            self._native = self.native()
            return self._native
        except (ImportError, SyntonicError) as exc:
            if self.device == "cpu":
                raise
            import warnings

            warnings.warn(f"sn.jit: the CPU backend failed for @{self.graph.name} ({exc}); "
                          "running the reference interpreter instead", stacklevel=4)
            self._native = False
            return None

    def _compile_gpu(self) -> Any:
        """The GpuProgram when this signature runs on CUDA (see ``cuda.use_cuda``)."""
        from syntonic.runtime import cuda

        if not cuda.use_cuda(self.device):
            return None  # (the CUDA backend is not even imported)
        from syntonic.runtime import gpu

        try:
            return gpu.compile_graph_gpu(self.graph)
        except (ImportError, SyntonicError) as exc:
            if self.device == "cuda":
                raise
            import warnings

            warnings.warn(f"sn.jit: the CUDA backend failed for @{self.graph.name} ({exc}); "
                          "running on the CPU instead", gpu.DeviceWarning,
                          stacklevel=gpu.user_stacklevel())
            return None

    def _interpret(self, leaves: list[Any]) -> Any:
        args = [np.asarray(a, t.dtype.np) if not isinstance(a, np.ndarray) else a
                for a, t in zip(leaves, self.param_types)]
        outs = interpret(self.graph, *args)
        return pytree.unflatten(self.out_tree, list(outs))


class JitFunction:
    """A function compiled per argument signature. Create with :func:`jit`."""

    def __init__(self, fn: Callable[..., Any], device: str = "auto",
                 static_argnames: Sequence[str] = (), donate_argnums: Sequence[int] = (),
                 donate_argnames: Sequence[str] = ()) -> None:
        if not callable(fn):
            raise TraceError(f"sn.jit needs a function, got {type(fn).__name__}")
        if device not in DEVICES:
            raise SyntonicError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.device = device
        self.signature = inspect.signature(fn)
        if isinstance(static_argnames, str):
            static_argnames = (static_argnames,)
        unknown = [n for n in static_argnames if n not in self.signature.parameters]
        if unknown:
            raise TraceError(
                f"static_argnames names {unknown[0]!r}, which `{fn.__name__}` does not take "
                f"(its parameters: {', '.join(self.signature.parameters)})"
            )
        self.static_argnames = frozenset(static_argnames)
        self.donate_argnames = _donated_names(fn, self.signature, donate_argnums,
                                              donate_argnames, self.static_argnames)
        self._cache: dict[Any, Compiled] = {}

    # ------------------------------------------------------------------ calling
    # (FAST builtin, output shape, output dtype) of the signature called last, when its
    # compiled program has a single output (see _hot_path)
    _hot: tuple[Any, tuple[int, ...], Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hot = self._hot
        if hot is not None and not kwargs:
            # The hot signature's native entry checks every argument itself (exactly an
            # ndarray, dtype, shape, layout, count) and returns `out` only if all match.
            out = np.empty(hot[1], hot[2])
            if hot[0](*args, out) is out and current_trace() is None:
                return out
        if current_trace() is not None:
            return self.fn(*args, **kwargs)  # nested jit: inline into the outer trace
        if not kwargs and not self.static_argnames:
            key = _fast_key(args)
            if key is not None:
                entry = self._cache.get(key)
                if entry is not None:
                    result = entry.run(list(args))
                    self._hot = _hot_path(entry)
                    return result
            else:  # pytrees of arrays (parameters, optimizer state): one pass, no binding
                key, tree_leaves = _tree_key(args)
                entry = self._cache.get(key) if key is not None else None
                if entry is not None:
                    self._hot = None
                    return entry.run(tree_leaves)
        key, leaves, bound = self._signature(args, kwargs, for_call=True)
        entry = self._cache.get(key)
        if entry is None:
            try:
                entry = self._trace(bound)
            except SyntonicError as exc:  # show the user's frames, not the tracer's
                raise exc.with_traceback(filter_traceback(exc.__traceback__)) from None
            self._cache[key] = entry
            _announce(entry.graph, self.device)
        if not kwargs and not self.static_argnames:
            # also when trace/lower/explain made the entry: later calls find it by the
            # cheap key instead of binding the signature again
            fast = _fast_key(args)
            if fast is None:
                fast = _tree_key(args)[0]
            if fast is not None:
                self._cache.setdefault(fast, entry)
        result = entry.run(leaves)
        if not kwargs and not self.static_argnames:
            self._hot = _hot_path(entry)
        return result

    def trace(self, *args: Any, **kwargs: Any) -> Graph:
        """The traced Graph for these arguments (arrays or ``sn.spec``), without running."""
        key, _, bound = self._signature(args, kwargs, for_call=False)
        entry = self._cache.get(key)
        if entry is None:
            try:
                entry = self._trace(bound)
            except SyntonicError as exc:
                raise exc.with_traceback(filter_traceback(exc.__traceback__)) from None
            self._cache[key] = entry
        return entry.graph

    def lower(self, *args: Any, device: str | None = None, **kwargs: Any) -> Any:
        """Every compile stage for these arguments (arrays or ``sn.spec``): a ``Lowered``.

        ``f.lower(x).text(stage)`` for ``traced``, each pass, ``optimized`` and
        ``kernels``; ``.to_dot()``, ``.explain()``. The CPU backend adds ``llvm`` and
        ``asm``; ``device="cuda"`` (or ``"auto"`` with a GPU present) adds ``cuda`` (the
        generated CUDA C, each kernel annotated with the user's ``file:line``) and ``ptx``
        (NVRTC; ``compute_90`` without a GPU), which need no GPU. `device` defaults to the
        function's own; a parameter of `fn` named ``device`` is passed positionally here.
        Example::

            print(step.lower(sn.spec("f32[4,248]")).text("kernels"))
            print(step.lower(sn.spec("f32[4,248]"), device="cuda").text("ptx"))
        """
        import time

        from syntonic.runtime.lowered import lower_graph

        device = self.device if device is None else device
        if device not in DEVICES:
            raise SyntonicError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
        start = time.perf_counter()
        key, _, bound = self._signature(args, kwargs, for_call=False)
        cached = key in self._cache
        graph = self.trace(*args, **kwargs)
        backend = None
        if device in ("auto", "cpu"):
            entry = self._cache[key]
            # backend stages compile on demand (through the compile cache)
            backend = {"llvm": lambda: entry.native().text("llvm"),
                       "asm": lambda: entry.native().text("asm")}
        cuda_stages = device == "cuda"
        if device == "auto":
            from syntonic.runtime import cuda

            cuda_stages = cuda.available()[0]
        return lower_graph(graph, None if cached else time.perf_counter() - start,
                           backend_stages=backend, cuda_stages=cuda_stages)

    def explain(self, *args: Any, **kwargs: Any) -> Any:
        """How this function compiles for these arguments: an ``ExplainReport``.

        ``report.kernels`` has one entry per kernel that will run; ``print(report)`` is
        readable. ``report.overhead`` is the per-call overhead of the compiled call (an
        ``OverheadReport``): with concrete arrays the function is compiled as its first
        call would, and calls and its kernels alone are timed (a few tens of ms); with
        ``sn.spec`` arguments nothing runs and it says "not measured (abstract
        arguments)". Example::

            print(step.explain(sn.spec("f32[4096,4096]")))
            step.explain(np.ones((4, 248), np.float32)).overhead.overhead_us  # µs
        """
        import dataclasses
        import time

        from syntonic.runtime.explain import overhead_report
        from syntonic.runtime.lowered import lower_graph

        start = time.perf_counter()
        key, leaves, bound = self._signature(args, kwargs, for_call=False)
        cached = key in self._cache
        graph = self.trace(*args, **kwargs)
        seconds = None if cached else time.perf_counter() - start
        low = lower_graph(graph, seconds, announce=False)
        report = low.explain()
        overhead = overhead_report(self, self._cache[key], args, kwargs, leaves, low.program)
        return dataclasses.replace(report, overhead=overhead)

    @property
    def cache_size(self) -> int:
        """Number of distinct signatures traced so far."""
        return len({id(e) for e in self._cache.values()})

    # ---------------------------------------------------------------- internals
    def _signature(self, args: tuple[Any, ...], kwargs: dict[str, Any], for_call: bool
                   ) -> tuple[Any, list[Any], inspect.BoundArguments]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise _call_error(TraceError, f"calling `{self.__name__}`: {exc}") from None
        # Defaults are not arguments: the function applies them itself, so they trace as
        # constants (e.g. an int controlling a loop stays a Python int).
        key: list[Any] = []
        leaves: list[Any] = []
        for name, value in bound.arguments.items():
            if name in self.static_argnames:
                try:
                    hash(value)
                except TypeError:
                    raise _call_error(
                        TraceError,
                        f"static argument {name!r} of `{self.__name__}` must be hashable, "
                        f"got a {type(value).__name__}",
                        "pass a tuple instead of a list, or make the argument non-static",
                    ) from None
                key.append(("static", name, value))
                continue
            flat, tree = pytree.flatten(value)
            key.append((name, tree))
            for leaf in flat:
                key.append(self._leaf_key(name, leaf, for_call))
                leaves.append(leaf)
        return tuple(key), leaves, bound

    def _leaf_key(self, name: str, leaf: Any, for_call: bool) -> Any:
        if isinstance(leaf, np.ndarray):
            try:
                DType.from_numpy(leaf.dtype)
            except IRError:
                raise _call_error(
                    DTypeError,
                    f"argument {name!r} of `{self.__name__}` has dtype {leaf.dtype}, which "
                    "Syntonic does not support",
                    f"convert it, e.g. {name}.astype(np.float32) "
                    f"(supported: {', '.join(d.name for d in DType)})",
                ) from None
            return (leaf.dtype, leaf.shape)
        if isinstance(leaf, np.generic):
            return self._leaf_key(name, np.asarray(leaf), for_call)
        if type(leaf) in _SCALAR_TYPES:
            return _SCALAR_TYPES[type(leaf)]
        if isinstance(leaf, ArraySpec):
            if for_call:
                raise _call_error(
                    TraceError,
                    f"argument {name!r} of `{self.__name__}` is {leaf!r}: specs only stand "
                    "in for arrays when tracing",
                    f"call `{self.__name__}.trace(...)`, or pass a numpy array",
                )
            return (leaf.type.dtype.np, leaf.type.shape)
        if isinstance(leaf, Tracer):
            raise _call_error(
                TraceError, f"argument {name!r} is a traced value from `{leaf.trace.name}`")
        if isinstance(leaf, DeviceArray) or hasattr(leaf, "__cuda_array_interface__"):
            return self._device_leaf_key(name, leaf, for_call)
        raise _call_error(
            TraceError,
            f"argument {name!r} of `{self.__name__}` is a {type(leaf).__name__}",
            "pass numpy arrays or Python numbers, or mark it static with "
            f"sn.jit(static_argnames=({name!r},))",
        )

    def _device_leaf_key(self, name: str, leaf: Any, for_call: bool) -> Any:
        """Key of a CUDA array argument (a DeviceArray or ``__cuda_array_interface__``):
        its dtype and shape, as for numpy arrays; the call then runs on the GPU."""
        from syntonic.runtime import cuda
        from syntonic.runtime.device import as_device_array

        if for_call and type(leaf) is DeviceArray and self.device in ("auto", "cuda") \
                and cuda.available()[0]:
            return (leaf.dtype, leaf.shape)  # ours: already validated
        try:
            arr = as_device_array(leaf, name=f"argument {name!r} of `{self.__name__}`")
        except SyntonicError as exc:
            raise _call_error(type(exc), str(exc)) from None
        if for_call and self.device in ("cpu", "interpreter"):
            raise _call_error(
                TraceError,
                f"argument {name!r} of `{self.__name__}` is a CUDA array, but the function "
                f"is jitted with device={self.device!r}",
                f"pass a host array (e.g. {name}.numpy()) or use sn.jit(device='auto')")
        if for_call and not cuda.available()[0]:
            raise _call_error(
                BackendError,
                f"argument {name!r} of `{self.__name__}` is a CUDA array, but CUDA is not "
                f"available: {cuda.available()[1]}")
        return (arr.dtype, arr.shape)

    def _trace(self, bound: inspect.BoundArguments) -> Compiled:
        code = getattr(self.fn, "__code__", None)
        loc = Location(display_path(code.co_filename), code.co_firstlineno) if code else None
        trace = Trace(getattr(self.fn, "__name__", "f"), loc)
        call_args: dict[str, Any] = {}
        param_types: list[TensorType] = []
        donated: list[int] = []
        in_place: list[int] = []
        with tracing(trace):
            for name, value in bound.arguments.items():
                if name in self.static_argnames:
                    call_args[name] = value
                    continue
                flat, tree = pytree.flatten(value)
                traced = []
                for i, leaf in enumerate(flat):
                    t, weak = _leaf_type(_host_spec(leaf))
                    hint = name if len(flat) == 1 else f"{name}_{i}"
                    traced.append(Tracer(trace.builder.param(t, hint), trace, weak))
                    if name in self.donate_argnames:
                        donated.append(len(param_types))
                        if tree.kind != "leaf":
                            in_place.append(len(param_types))
                    param_types.append(t)
                call_args[name] = pytree.unflatten(tree, traced)
            result = self.fn(*_positional(self.signature, call_args),
                             **_keywords(self.signature, call_args))
            out_leaves, out_tree = pytree.flatten(result)
            values = [_output_value(v, self.__name__, loc) for v in out_leaves]
        graph = verify(trace.builder.build(values))
        return Compiled(graph, out_tree, param_types, self.device, tuple(donated),
                        tuple(in_place))


def _host_spec(leaf: Any) -> Any:
    """A CUDA array argument stands in as an ``ArraySpec`` while tracing (no copy)."""
    if hasattr(leaf, "__cuda_array_interface__"):
        from syntonic.runtime.device import as_device_array

        arr = as_device_array(leaf)
        return ArraySpec(TensorType(DType.from_numpy(arr.dtype), arr.shape))
    return leaf


def _announce(graph: Graph, device: str = "cpu") -> None:
    """SYNTONIC_DUMP / SYNTONIC_EXPLAIN: dump every stage / print the report on a compile
    (with the ``cuda`` and ``ptx`` stages when the call runs on CUDA)."""
    from syntonic import config

    cfg = config.current()
    if cfg.dump_dir or cfg.explain:
        from syntonic.runtime import cuda
        from syntonic.runtime.lowered import lower_graph

        lower_graph(graph, cuda_stages=device in ("cuda", "auto") and cuda.available()[0])


def _call_error(cls: type[SyntonicError], problem: str, fix: str | None = None
                ) -> SyntonicError:
    """An error about how a jitted function was called, located at the caller's line."""
    return cls(user_message(problem, user_location(), fix))


def _hot_path(entry: Compiled) -> Any:
    """The `_hot` triple of an entry running natively with one plain output, else None."""
    if not entry._single or entry.donated:
        return None
    return getattr(entry._native, "hot", None)


def _fast_key(args: tuple[Any, ...]) -> Any:
    """Key for the common case (positional numpy or sn.DeviceArray arrays only), or None."""
    key: list[Any] = []
    for a in args:
        t = type(a)
        if t is np.ndarray:
            key.append((a.dtype, a.shape))
        elif t is DeviceArray:
            key.append(("device", a.dtype, a.shape))
        else:
            return None
    return ("fast", *key)


_DICT, _LIST, _TUPLE, _NONE = object(), object(), object(), object()  # node tags


def _tree_key(args: tuple[Any, ...]) -> tuple[Any, list[np.ndarray]]:
    """(key, leaves) for positional pytrees (exact dict/list/tuple/None) of numpy arrays,
    the leaves in the order ``_signature`` gives them; (None, []) for anything else."""
    leaves: list[np.ndarray] = []
    try:
        key = ("tree", *[_node_key(a, leaves) for a in args])
    except (_NotTree, TypeError):  # TypeError: dict keys that do not sort
        return None, []
    return key, leaves


class _NotTree(Exception):
    pass


def _node_key(x: Any, leaves: list[np.ndarray]) -> Any:
    t = type(x)
    if t is np.ndarray:
        leaves.append(x)
        return (x.dtype, x.shape)
    if t is dict:
        keys = sorted(x)
        return (_DICT, tuple(keys), *[_node_key(x[k], leaves) for k in keys])
    if t is list:
        return (_LIST, *[_node_key(c, leaves) for c in x])
    if t is tuple:
        return (_TUPLE, *[_node_key(c, leaves) for c in x])
    if x is None:
        return _NONE
    raise _NotTree


def jit(fn: Callable[..., Any] | None = None, *, device: str = "auto",
        static_argnames: Sequence[str] = (), donate_argnums: Sequence[int] = (),
        donate_argnames: Sequence[str] = ()) -> Any:
    """Compile `fn` per argument signature. Use as ``@sn.jit`` or ``@sn.jit(device="cpu")``.

    Example::

        @sn.jit(static_argnames=("steps",))
        def run(x, steps):
            for _ in range(steps):
                x = sn.dhsr_cycle(x)
            return x

    **Devices.** ``device="auto"`` (default) runs on CUDA when ``sn.cuda_available()``
    says so and otherwise on the CPU, warning once per process why (``sn.DeviceWarning``);
    ``"cuda"`` requires a GPU (one ``BackendError`` at the first call without one);
    ``"cpu"`` and ``"interpreter"`` never use the GPU. On CUDA, device arrays
    (``sn.to_device(x)``, or any CuPy/PyTorch/Numba array through
    ``__cuda_array_interface__``, read without a copy) give device-array results; numpy
    inputs are uploaded per call and the results downloaded::

        y = step(sn.to_device(x))      # y: sn.DeviceArray; y.numpy() copies it back

    **Donation.** ``donate_argnums`` (positions) and ``donate_argnames`` (names) mark
    arguments (arrays or pytrees of arrays, e.g. parameters and optimizer state) whose
    memory the compiled program may reuse, as in JAX: the caller promises not to use a
    donated argument after the call. The program keeps the donated arrays and writes a
    later call's outputs into them, so a training loop allocates no parameter-sized arrays
    per step::

        step = sn.jit(train_step, donate_argnums=(0, 1))
        params, state, loss = step(params, state, x, y)   # old params/state: donated

    numpy cannot mark an array deleted, so the contract is soft and safe: memory is reused
    only once nothing references the donated array any more (its reference count says
    so). A donated array that the caller keeps is therefore never overwritten and keeps
    its values, it just saves nothing; an array the caller dropped is overwritten by a
    later call's output (reading it through a raw pointer kept elsewhere is undefined). A
    donated argument that the function returns unchanged is returned as is (no copy). The
    same array passed twice, or also in a non-donated position, is handled by the same
    rule. Donation changes no result: the interpreter path ignores it.

    Inside a donated *pytree*, an output that only updates a parameter point by point
    (``p - lr * g``: :mod:`syntonic.lower.inplace` checks this) is written into that
    parameter's own memory during the call, when nothing but its container holds it: the
    step then uses one set of parameter and state buffers instead of two. The old
    container (``params`` before ``params, ... = step(params, ...)``) then holds the new
    values; an array the caller still holds itself (``w = params["w"]``) is never written.
    """
    if fn is None:
        return lambda f: JitFunction(f, device, static_argnames, donate_argnums,
                                     donate_argnames)
    return JitFunction(fn, device, static_argnames, donate_argnums, donate_argnames)


def _donated_names(fn: Callable[..., Any], signature: inspect.Signature,
                   argnums: Sequence[int] | int, argnames: Sequence[str] | str,
                   static: frozenset[str]) -> frozenset[str]:
    """The parameter names that `donate_argnums` / `donate_argnames` mark."""
    if isinstance(argnums, int):
        argnums = (argnums,)
    if isinstance(argnames, str):
        argnames = (argnames,)
    params = list(signature.parameters.values())
    positional = [p.name for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = set(argnames)
    for i in argnums:
        if not -len(positional) <= i < len(positional):
            raise TraceError(
                f"donate_argnums has {i}, but `{fn.__name__}` takes {len(positional)} "
                f"positional parameter(s) ({', '.join(positional)})")
        names.add(positional[i])
    for name in names:
        p = signature.parameters.get(name)
        if p is None:
            raise TraceError(
                f"donate_argnames names {name!r}, which `{fn.__name__}` does not take "
                f"(its parameters: {', '.join(signature.parameters)})")
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TraceError(f"cannot donate `*{name}`/`**{name}` of `{fn.__name__}`: "
                             "donate named parameters")
        if name in static:
            raise TraceError(f"argument {name!r} of `{fn.__name__}` is both static and "
                             "donated; a static argument has no buffers to donate")
    return frozenset(names)


