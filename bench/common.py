"""What the benchmark scripts share: the machine line and the marked sections of
bench/README.md.

Each script owns one section of the report, between two ``<!-- NAME -->`` lines
(``<!-- /NAME -->`` is also accepted as the closing line): run_cpu.py rewrites the file
and keeps every other marked section verbatim; the others replace only their own.

Example::

    replace_section(Path("bench/README.md"), "ENGINE", "## Engine ...")
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_MARKER = re.compile(r"<!-- (/?)([A-Za-z0-9_]+) -->")


def machine(versions: Sequence[str] = ()) -> str:
    """CPU model, cores, LLVM's host CPU name, and python/numpy/llvmlite plus `versions`."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import llvmlite

    from syntonic.lower.cpu.engine import get_engine

    vers = [f"python {platform.python_version()}", f"numpy {np.__version__}",
            f"llvmlite {llvmlite.__version__}", *versions]
    return (f"{cpu}, {os.cpu_count()} cores, host CPU `{get_engine().cpu}`; "
            + ", ".join(vers))


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every marked section."""
    found = []
    i = 0
    while i < len(lines):
        m = _MARKER.fullmatch(lines[i].strip())
        if m and not m.group(1):
            ends = {f"<!-- {m.group(2)} -->", f"<!-- /{m.group(2)} -->"}
            j = next((j for j in range(i + 1, len(lines)) if lines[j].strip() in ends), None)
            if j is not None:
                found.append((m.group(2), i, j))
                i = j + 1
                continue
        i += 1
    return found


def kept_sections(path: Path) -> list[str]:
    """Every marked section of the report at `path`, verbatim (for a script that rewrites
    the whole file)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return ["\n".join(lines[i:j + 1]) for _, i, j in _sections(lines)]


def replace_section(path: Path, name: str, body: str) -> None:
    """Put `body` between two ``<!-- name -->`` lines of `path`: in place of that section
    if it is there, else appended; the rest of the file is kept."""
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines()
    marker = f"<!-- {name} -->"
    block = [marker, body.strip("\n"), marker]
    span = next(((i, j) for n, i, j in _sections(lines) if n == name), None)
    if span is not None:
        lines[span[0]:span[1] + 1] = block
    else:
        lines += ([""] if lines else []) + block
    path.write_text("\n".join(lines) + "\n")
