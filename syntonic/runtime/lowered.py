"""``f.lower(*args)``: every compile stage of a function, by name, inspectable.

:func:`lower_graph` runs the pass pipeline on a traced graph, fuses it and builds the
kernel IR, timing each stage. The :class:`Lowered` result keeps each stage's artifact:
``text(stage)`` for ``traced``, every pass name (``decompose``, ``canonicalize``,
``fold``, ``layout``, ``cse``, ``dce``), ``optimized`` and ``kernels``; backends attach
more stages (``llvm``, ``asm``, ``cuda``, ``ptx``) with :meth:`Lowered.add_stage`.
Graph stages print in the IR text form, which ``sn.ir.parse`` reads back.

With ``SYNTONIC_DUMP=<dir>`` (``config.dump_dir``) each lowering writes one file per
stage to ``<dir>/<function>-<hash>/NN-<stage>.txt``; with ``SYNTONIC_EXPLAIN=1``
(``config.explain``) it prints the fusion report. The call path that compiles a
function should call :func:`lower_graph`, so both happen at compile time.

Example::

    >>> low = step.lower(sn.spec("f32[4,248]"))
    >>> low.stages
    ['traced', 'decompose', 'canonicalize', 'fold', 'layout', 'cse', 'dce', 'optimized', 'kernels']
    >>> print(low.text("kernels"))
    >>> low.render("step.svg")          # needs the graphviz extra and the `dot` program
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from syntonic import config
from syntonic.ir.errors import SyntonicError
from syntonic.ir.graph import Graph, Value
from syntonic.lower.kernel import Kernel, Program
from syntonic.lower.schedule import lower_with_buffers
from syntonic.passes.dot import graph_to_dot
from syntonic.passes.fusion import FusionPlan, fuse
from syntonic.passes.pipeline import PIPELINE, run_pipeline
from syntonic.runtime.explain import ExplainReport, build_report

GRAPH_STAGES = ("traced", *(name for name, _ in PIPELINE), "optimized")


class Lowered:
    """The artifacts of compiling one traced signature, stage by stage."""

    def __init__(self, name: str, graphs: dict[str, Graph], plan: FusionPlan,
                 program: Program, buffer_of: dict[Value, int],
                 times: dict[str, float]) -> None:
        self.name = name
        self.graphs = graphs
        self.plan = plan
        self.program = program
        self.buffer_of = buffer_of
        self.times = times
        self._extra: dict[str, Callable[[], str]] = {}
        self._text_cache: dict[str, str] = {}

    # ---------------------------------------------------------------- stages
    @property
    def stages(self) -> list[str]:
        """Stage names in compile order (graph stages, ``kernels``, then backend stages)."""
        return [*self.graphs, "kernels", *self._extra]

    @property
    def kernels(self) -> tuple[Kernel, ...]:
        return self.program.kernels

    @property
    def optimized(self) -> Graph:
        return self.graphs["optimized"]

    def graph(self, stage: str = "optimized") -> Graph:
        """The Graph of a graph stage (``traced``, a pass name or ``optimized``)."""
        if stage not in self.graphs:
            raise SyntonicError(f"{stage!r} is not a graph stage of @{self.name} "
                                f"(graph stages: {', '.join(self.graphs)})")
        return self.graphs[stage]

    def text(self, stage: str = "optimized") -> str:
        """The text of one stage: IR text for graph stages, the kernel IR for ``kernels``."""
        if stage in self.graphs:
            return self.graphs[stage].text()
        if stage == "kernels":
            return self.program.text()
        if stage in self._extra:
            if stage not in self._text_cache:
                self._text_cache[stage] = self._extra[stage]()
            return self._text_cache[stage]
        raise SyntonicError(f"unknown stage {stage!r} of @{self.name}; stages: "
                            f"{', '.join(self.stages)}")

    def add_stage(self, name: str, text: Callable[[], str]) -> None:
        """Attach a later stage (a backend's ``llvm``, ``cuda`` ...), computed on demand."""
        if name in self.graphs or name == "kernels" or name in self._extra:
            raise SyntonicError(f"stage {name!r} already exists")
        self._extra[name] = text

    def explain(self) -> ExplainReport:
        """The fusion report (see :class:`~syntonic.runtime.explain.ExplainReport`)."""
        return build_report(self.name, self.graphs["traced"], self.optimized, self.plan,
                            self.program, self.buffer_of, self.times)

    # ---------------------------------------------------------------- pictures
    def to_dot(self, stage: str = "kernels") -> str:
        """Graphviz dot text of a graph stage; ``optimized``/``kernels`` show kernel clusters."""
        if stage in ("kernels", "optimized"):
            names = [k.name for k in self.program.kernels]
            return graph_to_dot(self.optimized, self.plan, names)
        return graph_to_dot(self.graph(stage))

    def render(self, path: str | Path, stage: str = "kernels") -> Path:
        """Draw a stage to an image (format from the suffix: .png, .svg, .pdf ...).

        Needs the optional ``graphviz`` package (``pip install syntonic[graphviz]``) and
        the Graphviz ``dot`` program; raises SyntonicError saying which is missing.
        """
        try:
            import graphviz  # type: ignore[import-not-found]
        except ImportError:
            raise SyntonicError(
                "Lowered.render needs the optional `graphviz` Python package: "
                "pip install 'syntonic[graphviz]' (and the Graphviz `dot` program); "
                "Lowered.to_dot() gives the dot text without it"
            ) from None
        if shutil.which("dot") is None:
            raise SyntonicError(
                "Lowered.render needs the Graphviz `dot` program on PATH (e.g. apt-get "
                "install graphviz); Lowered.to_dot() gives the dot text without it"
            )
        out = Path(path)
        fmt = out.suffix.lstrip(".") or "png"
        graphviz.Source(self.to_dot(stage)).render(outfile=str(out), format=fmt, cleanup=True)
        return out

    # ---------------------------------------------------------------- dumps
    def dump(self, directory: str | Path) -> list[Path]:
        """Write one file per stage into `directory`/<function>-<hash>/; return the paths."""
        digest = hashlib.sha1(self.graphs["traced"].text().encode()).hexdigest()[:8]
        folder = Path(directory) / f"{self.name}-{digest}"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, stage in enumerate(self.stages):
            path = folder / f"{i:02d}-{stage}.txt"
            path.write_text(self.text(stage))
            paths.append(path)
        return paths

    def __repr__(self) -> str:
        return f"<Lowered @{self.name}: {len(self.program.kernels)} kernel(s), " \
               f"stages {', '.join(self.stages)}>"


def lower_graph(graph: Graph, trace_seconds: float | None = None,
                announce: bool = True,
                backend_stages: dict[str, Callable[[], str]] | None = None,
                cuda_stages: bool = False) -> Lowered:
    """Run the pipeline, fusion and kernel lowering on a traced graph.

    `backend_stages` (``llvm``, ``asm`` ...) are attached before announcing, so dumps
    cover them too; so are ``cuda`` and ``ptx`` with `cuda_stages` (no GPU needed, see
    :func:`syntonic.runtime.gpu.cuda_stages`). With `announce`, honours
    ``config.dump_dir`` (writes the dumps) and ``config.explain`` (prints the report to
    stderr).
    """
    cfg = config.current()
    times: dict[str, float] = {}
    if trace_seconds is not None:
        times["trace"] = trace_seconds
    stages = run_pipeline(graph)
    graphs = {}
    for stage in stages:
        graphs[stage.name] = stage.graph
        if stage.name != "traced":
            times[stage.name] = stage.seconds
    graphs["optimized"] = stages[-1].graph
    start = time.perf_counter()
    plan = fuse(graphs["optimized"])
    times["fusion"] = time.perf_counter() - start
    start = time.perf_counter()
    program, buffer_of = lower_with_buffers(plan)
    times["kernels"] = time.perf_counter() - start
    low = Lowered(graph.name, graphs, plan, program, buffer_of, times)
    for name, text in (backend_stages or {}).items():
        low.add_stage(name, text)
    if cuda_stages:
        from syntonic.runtime.gpu import cuda_stages as make_cuda_stages

        for name, text in make_cuda_stages(program).items():
            low.add_stage(name, text)
    if announce and cfg.dump_dir:
        low.dump(cfg.dump_dir)
    if announce and cfg.explain:
        print(low.explain(), file=sys.stderr)
    return low


__all__ = ["GRAPH_STAGES", "Lowered", "lower_graph"]
