"""The Ouroboros daemon: ``python -m syntonic daemon`` (SPEC-ops.md, "Around the ops").

Each tick (default 1/phi s) the daemon

1. takes at most one queued input line (stdin, or clients of ``--socket PATH``) and adds
   its FluxBridge encoding to the state;
2. runs one DHSR cycle, ``state <- dhsr_cycle(state)``, through an ``sn.jit`` function
   (so it runs on whatever backend ``jit`` picks);
3. if ``syntony(state) > threshold`` prints ``decode(state)`` when it is non-empty and
   scales the state by 1/phi; otherwise prints "dreaming" with the syntony every 10th
   cycle;
4. every ``--autosave`` cycles saves state ``[1,248]``, winding ``[1,8]`` and counters to
   the ``--state`` file (atomically, see ``format.py``); it saves again on exit, SIGINT
   and SIGTERM, and resumes from that file on restart.

Stdout carries one line per event, ``[cycle 13] emit, syntony 0.995714: <text>`` or
``[cycle 20] dreaming, syntony 0.000000``; progress notes go to stderr. The state starts
at zero (it dreams at syntony 0 until fed). The winding is carried and persisted unchanged:
the spec defines no update for it yet. Input lines still queued when the process dies are
lost; the state is lost only back to the last completed save.

Example::

    python -m syntonic daemon --state mind.gnosis --tick 0.1
    python -m syntonic daemon --state t.gnosis --cycles 50 --tick 0 < prompts.txt
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import math
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from syntonic.frontend.resonant import dhsr_cycle, syntony
from syntonic.gnosis.flux import DIM, decode, encode
from syntonic.gnosis.format import load, save, temp_files
from syntonic.ir.errors import GnosisError
from syntonic.ir.resonant import PHI_INV
from syntonic.records import record
from syntonic.runtime import jit

WINDING_DIM = 8
DREAM_EVERY = 10
MAX_LINE = 64 * 1024  # longer input lines are split into chunks of this many bytes
QUEUE_LINES = 1024  # readers block (back-pressure) when this many lines wait
FORMAT = 1  # version of the daemon's tree layout inside the .gnosis file


@jit
def dhsr_step(state: Any) -> Any:
    """One DHSR cycle and the syntony of its result (compiled per signature)."""
    new_state = dhsr_cycle(state)
    return new_state, syntony(new_state)


# ------------------------------------------------------------------------ the mind
@record
class Mind:
    """Everything the daemon persists: state, winding, counters and other metadata."""

    state: np.ndarray = field(default_factory=lambda: np.zeros((1, DIM)))
    winding: np.ndarray = field(default_factory=lambda: np.zeros((1, WINDING_DIM)))
    cycle: int = 0
    inputs: int = 0
    emitted: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the file, kept

    def __post_init__(self) -> None:
        meta = self.extra.setdefault("ouroboros", {})
        meta.setdefault("created_at", _now())

    def tree(self) -> dict[str, Any]:
        """The tree saved to ``.gnosis``. Example: ``sn.save(p, Mind().tree())``."""
        meta = dict(self.extra.get("ouroboros", {}))
        meta.update(format=FORMAT, cycle=self.cycle, inputs=self.inputs,
                    emitted=self.emitted, saved_at=_now())
        return {**self.extra, "state": self.state, "winding": self.winding,
                "ouroboros": meta}

    @classmethod
    def from_tree(cls, tree: dict[str, Any], where: str) -> Mind:
        """Rebuild a Mind from a loaded tree, checking it is one. Example:
        ``Mind.from_tree(sn.load(p), p)``."""
        def bad(why: str) -> GnosisError:
            return GnosisError(f"{where} is not an Ouroboros state: {why}")

        state, winding = tree.get("state"), tree.get("winding")
        meta = tree.get("ouroboros")
        for name, arr, shape in (("state", state, (1, DIM)),
                                 ("winding", winding, (1, WINDING_DIM))):
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype.kind != "f":
                raise bad(f"{name} must be a float array of shape {list(shape)}")
        if not isinstance(meta, dict):
            raise bad("no 'ouroboros' metadata")
        if meta.get("format", FORMAT) != FORMAT:
            raise bad(f"layout ouroboros.format={meta.get('format')!r}; this Syntonic "
                      f"reads format {FORMAT}")
        counters = {k: meta.get(k) for k in ("cycle", "inputs", "emitted")}
        for k, v in counters.items():
            if type(v) is not int or v < 0:
                raise bad(f"ouroboros.{k} must be a non-negative int, got {v!r}")
        extra = {k: v for k, v in tree.items() if k not in ("state", "winding")}
        extra["ouroboros"] = {k: v for k, v in meta.items()
                              if k not in ("cycle", "inputs", "emitted")}
        assert isinstance(state, np.ndarray) and isinstance(winding, np.ndarray)
        return cls(np.array(state, np.float64), np.array(winding, np.float64),
                   counters["cycle"], counters["inputs"], counters["emitted"], extra)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@record(frozen=True)
class Event:
    """What one tick produced: ``kind`` is "emit", "dreaming" or "" (nothing to say)."""

    kind: str
    cycle: int
    syntony: float
    text: str = ""

    def line(self) -> str:
        """The stdout line. Example: ``[cycle 20] dreaming, syntony 0.000000``."""
        head = f"[cycle {self.cycle}] {self.kind}, syntony {self.syntony:.6f}"
        return f"{head}: {self.text}" if self.kind == "emit" else head


def tick(mind: Mind, line: bytes | str | None, threshold: float) -> Event:
    """Advance `mind` by one cycle, injecting `line` first if given (mutates `mind`).

    Example::

        mind = Mind()
        tick(mind, "Hello, Syntonic!", 0.99)    # Event("", 1, 0.83...)
    """
    if line:
        mind.state = mind.state + encode(line, DIM)
        mind.inputs += 1
    new_state, s = dhsr_step(mind.state)
    mind.state = np.asarray(new_state, np.float64)
    mind.cycle += 1
    s_value = float(np.asarray(s).reshape(-1)[0])
    if s_value > threshold:
        text = decode(mind.state)
        mind.state = mind.state * PHI_INV
        if text:
            mind.emitted += 1
            return Event("emit", mind.cycle, s_value, text)
        return Event("", mind.cycle, s_value)
    if mind.cycle % DREAM_EVERY == 0:
        return Event("dreaming", mind.cycle, s_value)
    return Event("", mind.cycle, s_value)


# ---------------------------------------------------------------------- the inputs
def _pump(read: Callable[[], bytes], lines: queue.Queue[bytes]) -> None:
    """Split what `read` returns into lines (at most MAX_LINE bytes) until end of input."""
    pending = b""
    while True:
        try:
            chunk = read()
        except OSError:
            chunk = b""
        if not chunk:
            if pending.strip():
                lines.put(pending)
            return
        *complete, pending = (pending + chunk).split(b"\n")
        for item in complete:
            if item.strip():
                lines.put(item.rstrip(b"\r"))
        while len(pending) > MAX_LINE:
            lines.put(pending[:MAX_LINE])
            pending = pending[MAX_LINE:]


def _read_stdin(lines: queue.Queue[bytes]) -> None:
    # os.read on the fd, not sys.stdin: a thread blocked inside sys.stdin holds its lock
    # and can abort interpreter shutdown.
    threading.Thread(target=_pump, args=(lambda: os.read(0, 65536), lines),
                     name="ouroboros-stdin", daemon=True).start()


def _serve_socket(path: Path, lines: queue.Queue[bytes]) -> socket.socket:
    """Listen on a unix socket; every client's lines go to `lines`."""
    if path.exists() or path.is_symlink():
        if not path.is_socket():
            raise GnosisError(f"--socket {path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket from a daemon that died
        else:
            raise GnosisError(f"--socket {path}: another process is listening there")
        finally:
            probe.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(16)
    except OSError as exc:
        server.close()
        raise GnosisError(f"--socket {path}: {exc.strerror or exc}") from None

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed at shutdown
            threading.Thread(target=client, args=(conn,), name="ouroboros-client",
                             daemon=True).start()

    def client(conn: socket.socket) -> None:
        with conn:
            _pump(lambda: conn.recv(65536), lines)

    threading.Thread(target=accept, name="ouroboros-socket", daemon=True).start()
    return server


# ---------------------------------------------------------------------- the loop
@record(frozen=True)
class Options:
    """The daemon's settings (the CLI flags). Example: ``Options(cycles=10, tick=0)``."""

    state: Path | None = None
    tick: float = PHI_INV
    cycles: int | None = None
    autosave: int = 100
    threshold: float = 0.99
    socket: Path | None = None


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an advisory lock next to the state file so two daemons never share it."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise GnosisError(f"--state {path}: cannot create {lock_path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise GnosisError(f"--state {path}: another daemon is using it") from None
            raise
        yield
    finally:
        os.close(fd)


def run(opts: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the daemon until `opts.cycles` are done or SIGINT/SIGTERM; return 0.

    Raises GnosisError for an unusable state file or socket. Signal handlers are only
    installed when called from the main thread. Example:
    ``run(Options(state=Path("m.gnosis"), cycles=20, tick=0))``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    stop = threading.Event()
    caught: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        caught.append(signal.Signals(signum).name)
        stop.set()  # the loop finishes its cycle, saves and returns

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if opts.state is None:
            note = "no --state: running in memory, nothing is saved"
            return _loop(opts, Mind(), out, err, note, stop, caught)
        with _exclusive(opts.state):
            for stale in temp_files(opts.state):  # left by saves that were killed midway
                stale.unlink(missing_ok=True)
            if opts.state.exists():
                mind = Mind.from_tree(load(opts.state), str(opts.state))
                note = f"resumed {opts.state} at cycle {mind.cycle}"
            else:
                mind = Mind()
                save(opts.state, mind.tree())  # fail now, not at the first autosave
                note = f"new state {opts.state}"
            return _loop(opts, mind, out, err, note, stop, caught)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _loop(opts: Options, mind: Mind, out: TextIO, err: TextIO, note: str,
          stop: threading.Event, caught: list[str]) -> int:
    lines: queue.Queue[bytes] = queue.Queue(QUEUE_LINES)
    server = _serve_socket(opts.socket, lines) if opts.socket is not None else None
    try:
        if server is None:
            _read_stdin(lines)
        print(f"ouroboros: {note}", file=err, flush=True)
        done = 0
        deadline = time.monotonic()
        while not stop.is_set() and (opts.cycles is None or done < opts.cycles):
            try:
                line: bytes | None = lines.get_nowait()
            except queue.Empty:
                line = None
            event = tick(mind, line, opts.threshold)
            done += 1
            if event.kind and not _say(out, event.line()):
                stop.set()  # stdout is gone (e.g. piped into `head`): save and stop
            if opts.state is not None and opts.autosave and mind.cycle % opts.autosave == 0:
                save(opts.state, mind.tree())
            if opts.tick > 0:
                # a fixed schedule, so the work inside a tick does not stretch the period;
                # after a stall (more than a tick behind) it restarts instead of bursting
                now = time.monotonic()
                deadline = max(deadline + opts.tick, now)
                stop.wait(deadline - now)
        if opts.state is not None:
            save(opts.state, mind.tree())
            why = f" on {caught[0]}" if caught else ""
            print(f"ouroboros: saved cycle {mind.cycle} to {opts.state}{why}", file=err,
                  flush=True)
        return 0
    finally:
        if server is not None and opts.socket is not None:
            server.close()
            with contextlib.suppress(OSError):
                opts.socket.unlink()


def _say(out: TextIO, text: str) -> bool:
    try:
        print(text, file=out, flush=True)
        return True
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())  # so the interpreter's final flush is quiet
        return False


# ------------------------------------------------------------------------ the CLI
def _seconds(text: str) -> float:
    value = _number(text, float)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _unit(text: str) -> float:
    value = _number(text, float)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the ``daemon`` flags on its sub-parser (used by ``syntonic.__main__``)."""
    p.add_argument("--state", type=Path, metavar="FILE.gnosis",
                   help="resume from FILE if it exists, autosave to it (default: run in "
                        "memory, save nothing)")
    p.add_argument("--tick", type=_seconds, default=PHI_INV, metavar="SECONDS",
                   help="pause between cycles (default 1/phi = 0.618...; 0 runs flat out)")
    p.add_argument("--cycles", type=_count, default=None, metavar="N",
                   help="stop after N cycles (default: run until SIGINT/SIGTERM)")
    p.add_argument("--autosave", type=_count, default=100, metavar="N",
                   help="save every N cycles (default 100; 0 saves only on exit)")
    p.add_argument("--threshold", type=_unit, default=0.99, metavar="S",
                   help="emit text when syntony exceeds S (default 0.99)")
    p.add_argument("--socket", type=Path, default=None, metavar="PATH",
                   help="take input lines from clients of a unix socket at PATH instead "
                        "of stdin")


def main(ns: argparse.Namespace) -> int:
    """Entry point of ``python -m syntonic daemon``; errors are one line and exit 2."""
    opts = Options(state=ns.state, tick=ns.tick, cycles=ns.cycles, autosave=ns.autosave,
                   threshold=ns.threshold, socket=ns.socket)
    try:
        return run(opts)
    except GnosisError as exc:
        print(f"syntonic: error: {exc}", file=sys.stderr)
        return 2
