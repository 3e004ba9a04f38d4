"""User source locations and error messages in user terms.

Errors raised while tracing name the first stack frame outside the syntonic package
(the user's line), show that line, and suggest a fix. Tracebacks shown to the user are
filtered to the user's frames.
"""

from __future__ import annotations

import contextvars
import linecache
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syntonic.ir.errors import SyntonicError
from syntonic.ir.graph import Location

_PKG_DIR = str(Path(__file__).resolve().parent.parent)


def _is_internal(filename: str) -> bool:
    return filename.startswith(_PKG_DIR) or filename.startswith("<frozen")


def display_path(filename: str) -> str:
    """A short path for messages: relative to the working directory when inside it.

    Remembered per (file, working directory): a trace asks once per op, and
    ``os.path.relpath`` costs ~10 us each time.
    """
    try:
        key = (filename, os.getcwd())
    except OSError:  # the working directory was removed
        return filename
    path = _DISPLAY.get(key)
    if path is None:
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            rel = ".."
        path = _DISPLAY[key] = filename if rel.startswith("..") else rel
    return path


_DISPLAY: dict[tuple[str, str], str] = {}


def user_frame(depth: int = 1) -> types.FrameType | None:
    """The innermost frame that is not inside the syntonic package."""
    frame = sys._getframe(depth)
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


_PINNED: contextvars.ContextVar[Location | None] = contextvars.ContextVar(
    "syntonic_location", default=None)


@contextmanager
def located(loc: Location | None) -> Iterator[None]:
    """Within the block, ops traced outside any user line (a function's returned
    captured arrays, converted after it returned) are located at `loc`, not at whichever
    line called the function (which would also make the traced IR, and the compile-cache
    key, depend on the call site)."""
    token = _PINNED.set(loc)
    try:
        yield
    finally:
        _PINNED.reset(token)


def user_location() -> Location | None:
    pinned = _PINNED.get()
    if pinned is not None:
        return pinned
    frame = user_frame(2)
    if frame is None:
        return None
    return Location(display_path(frame.f_code.co_filename), frame.f_lineno)


def source_line(loc: Location | None) -> str:
    if loc is None:
        return ""
    line = linecache.getline(loc.file, loc.line) or linecache.getline(
        os.path.abspath(loc.file), loc.line
    )
    return line.strip()


def user_message(problem: str, loc: Location | None, fix: str | None = None) -> str:
    """``file:line: problem`` + the user's source line + ``fix: ...``."""
    where = f"{loc}: " if loc else ""
    lines = [f"{where}{problem}"]
    code = source_line(loc)
    if code:
        lines.append(f"    {code}")
    if fix:
        lines.append(f"  fix: {fix}")
    return "\n".join(lines)


def filter_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback with syntonic's own frames removed (user frames kept in order)."""
    frames = []
    while tb is not None:
        if not _is_internal(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    out = None
    for t in reversed(frames):
        out = types.TracebackType(out, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return out


def reraise_filtered(exc: SyntonicError) -> None:
    """Raise `exc` again with internal frames removed (no chained internal causes)."""
    exc.__cause__ = None
    exc.__suppress_context__ = True
    raise exc.with_traceback(filter_traceback(exc.__traceback__))
