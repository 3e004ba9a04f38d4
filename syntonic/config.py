"""All of Syntonic's configuration, in one place: read once from the environment.

Passes and backends never read ``os.environ``; they call :func:`current`. The
environment is read once, when this module is imported; :func:`override` changes
settings for a ``with`` block (per thread / async context, via ``contextvars``).

Environment variables:

========================  ==============================================================
``SYNTONIC_DUMP=<dir>``   write the IR after every compile stage to ``<dir>`` (one file
                          per stage; see :mod:`syntonic.runtime.lowered`)
``SYNTONIC_EXPLAIN=1``    print the fusion report (``f.explain``) whenever a function is
                          lowered
``SYNTONIC_VERIFY=0``     skip IR verification between passes (on by default)
``SYNTONIC_FOLD_LIMIT``   largest constant (elements) constant folding may create (65536)
``SYNTONIC_MAX_KERNEL_OPS``      most graph ops fused into one kernel (512)
``SYNTONIC_MAX_KERNEL_BUFFERS``  most distinct buffers one kernel may read/write (32)
``SYNTONIC_MAX_KERNEL_PHASES``   most phases (passes over a row) in one kernel (4)
``SYNTONIC_CACHE=off|ro|rw``     the on-disk compile cache mode (rw)
``SYNTONIC_CACHE_DIR``    the compile cache directory (``$XDG_CACHE_HOME/syntonic``)
``SYNTONIC_CACHE_MAX_MB`` disk size bound of the cache, least recently used entries go
                          first (2048; 0: unbounded)
``SYNTONIC_CPU_THREADS``  threads for large CPU kernels (0: one per core)
``SYNTONIC_PARALLEL_MIN_POINTS`` smallest kernel cost (iteration points x operations per
                          point; 32768) run on the thread pool
``SYNTONIC_CPU_SPIN_US``  how long (us) an idle pool thread spins for the next job before
                          it sleeps (200; 0: sleep at once)
``SYNTONIC_RECYCLE_MB``   bytes of large outputs (>= 1 MB) kept for reuse by the next call
                          once dead (1024; 0: none; see runtime/donation.Recycler)
``SYNTONIC_DEVICE=cpu``   make ``sn.jit(device="auto")`` use the CPU even with a GPU present
========================  ==============================================================

Example::

    import syntonic as sn
    with sn.config.override(explain=True, dump_dir="/tmp/dumps"):
        f.lower(sn.spec("f32[4,248]"))
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Config:
    """Compile-time settings. Frozen and hashable, so it can be part of a cache key."""

    dump_dir: str | None = None
    explain: bool = False
    verify: bool = True
    fold_limit: int = 1 << 16
    max_kernel_ops: int = 512
    max_kernel_buffers: int = 32
    max_kernel_phases: int = 4
    cache: str = "rw"
    cache_dir: str | None = None
    cache_max_mb: int = 2048
    cpu_threads: int = 0
    parallel_min_points: int = 1 << 15
    cpu_spin_us: int = 200
    recycle_mb: int = 1024  # large outputs tracked for reuse (runtime/donation.Recycler)
    device: str = "auto"  # what sn.jit(device="auto") may pick: "auto" or "cpu"

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu"):
            from syntonic.ir.errors import SyntonicError

            raise SyntonicError(f"SYNTONIC_DEVICE / config device={self.device!r}: expected "
                                "'auto' (CUDA when a GPU is present, else the CPU) or 'cpu'")

    @staticmethod
    def from_env(env: Mapping[str, str]) -> Config:
        """The configuration described by environment variables `env`."""
        base = Config()
        return Config(
            dump_dir=env.get("SYNTONIC_DUMP") or None,
            explain=_flag(env.get("SYNTONIC_EXPLAIN"), base.explain),
            verify=_flag(env.get("SYNTONIC_VERIFY"), base.verify),
            fold_limit=_int(env, "SYNTONIC_FOLD_LIMIT", base.fold_limit),
            max_kernel_ops=_int(env, "SYNTONIC_MAX_KERNEL_OPS", base.max_kernel_ops),
            max_kernel_buffers=_int(env, "SYNTONIC_MAX_KERNEL_BUFFERS", base.max_kernel_buffers),
            max_kernel_phases=_int(env, "SYNTONIC_MAX_KERNEL_PHASES", base.max_kernel_phases),
            cache=(env.get("SYNTONIC_CACHE") or base.cache).strip().lower(),
            cache_dir=env.get("SYNTONIC_CACHE_DIR") or None,
            cache_max_mb=_int(env, "SYNTONIC_CACHE_MAX_MB", base.cache_max_mb),
            cpu_threads=_int(env, "SYNTONIC_CPU_THREADS", base.cpu_threads),
            parallel_min_points=_int(env, "SYNTONIC_PARALLEL_MIN_POINTS",
                                     base.parallel_min_points),
            cpu_spin_us=_int(env, "SYNTONIC_CPU_SPIN_US", base.cpu_spin_us),
            recycle_mb=_int(env, "SYNTONIC_RECYCLE_MB", base.recycle_mb),
            device=(env.get("SYNTONIC_DEVICE") or base.device).strip().lower(),
        )


def _flag(text: str | None, default: bool) -> bool:
    if text is None or text.strip() == "":
        return default
    return text.strip().lower() not in ("0", "false", "no", "off")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text)
    except ValueError:
        from syntonic.ir.errors import SyntonicError

        raise SyntonicError(f"{name}={text!r} is not an integer") from None


_FROM_ENV = Config.from_env(os.environ)
_current: contextvars.ContextVar[Config] = contextvars.ContextVar(
    "syntonic_config", default=_FROM_ENV
)


def current() -> Config:
    """The configuration in effect here (environment defaults plus any override)."""
    return _current.get()


@contextlib.contextmanager
def override(**changes: Any) -> Iterator[Config]:
    """Change settings inside a ``with`` block: ``with sn.config.override(explain=True):``."""
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        from syntonic.ir.errors import SyntonicError

        raise SyntonicError(
            f"unknown config setting {unknown[0]!r} (settings: {', '.join(sorted(fields))})"
        )
    token = _current.set(dataclasses.replace(_current.get(), **changes))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


__all__ = ["Config", "current", "override"]
