"""Command line: ``python -m syntonic dump FILE.py:FUNC --arg f32[4,248] ...``.

Malformed input prints one line ``syntonic: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syntonic.gnosis.daemon import add_arguments as add_daemon_arguments
from syntonic.gnosis.daemon import main as daemon_main

_DESCRIPTION = """\
Syntonic: trace numpy-style Python functions into a typed IR and compile them.

commands:
  dump FILE.py:FUNC --arg TYPE [--arg TYPE ...]
      Trace FUNC from FILE.py with one array stand-in per --arg and print the IR.
      TYPE is DTYPE[d0,d1,...] (e.g. f32[4,248], f64[] for a scalar); DTYPE is one of
      bool, i32, i64, f16, f32, f64. FUNC may be a plain function or an @sn.jit one.
      --static NAME=VALUE passes a static argument (VALUE is a Python literal).
      --no-locs omits the loc("file":line) trailers.
  daemon [--state FILE.gnosis] [--tick SECONDS] [--cycles N] [--autosave N]
         [--threshold S] [--socket PATH]
      Run the Ouroboros daemon: each tick (default 1/phi s) inject at most one input line
      (stdin, or clients of --socket) through FluxBridge, run one DHSR cycle, print the
      decoded state when syntony > S (default 0.99), else "dreaming" every 10th cycle.
      Autosaves to FILE every N cycles (default 100) and on SIGINT/SIGTERM, and resumes
      from FILE on restart. --cycles N --tick 0 make a finite, fast run.

examples:
  python -m syntonic dump examples/quickstart.py:dhsr_step --arg f32[1,248]
  python -m syntonic daemon --state mind.gnosis --tick 0.1
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        print(f"syntonic: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m syntonic", description=_DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("dump", help="print the traced IR of a function",
                       description="Trace FILE.py:FUNC and print its IR.")
    d.add_argument("target", metavar="FILE.py:FUNC", help="the file and function to trace")
    d.add_argument("--arg", action="append", default=[], metavar="TYPE",
                   help="an argument type such as f32[4,248] (repeat once per argument)")
    d.add_argument("--static", action="append", default=[], metavar="NAME=VALUE",
                   help="a static (compile-time) argument, VALUE a Python literal")
    d.add_argument("--no-locs", action="store_true", help="omit loc(...) trailers")
    dm = sub.add_parser("daemon", help="run the Ouroboros daemon (see syntonic.gnosis.daemon)",
                        description="Run the Ouroboros daemon: FluxBridge input, DHSR cycles, "
                                    "emitted text, .gnosis autosave and resume.")
    add_daemon_arguments(dm)
    return p


def _fail(message: str) -> None:
    print(f"syntonic: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _load_function(target: str) -> Any:
    path_text, sep, func_name = target.rpartition(":")
    if not sep or not path_text or not func_name:
        _fail(f"expected FILE.py:FUNC, got {target!r}")
    path = Path(path_text)
    if not path.is_file():
        _fail(f"no such file: {path_text}")
    spec = importlib.util.spec_from_file_location(f"_syntonic_dump_{path.stem}", path)
    if spec is None or spec.loader is None:
        _fail(f"cannot load {path_text} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SystemExit:
        _fail(f"{path_text} exited while being imported")
    except Exception as exc:  # noqa: BLE001 - the user's module failed; say so in one line
        _fail(f"importing {path_text} failed: {type(exc).__name__}: {exc}")
    finally:
        sys.path.pop(0)
    fn = getattr(module, func_name, None)
    if fn is None or not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        _fail(f"{path_text} has no function {func_name!r} (functions: {', '.join(names[:12])})")
    return fn


def _dump(ns: argparse.Namespace) -> int:
    import ast

    import syntonic as sn

    fn = _load_function(ns.target)
    specs = []
    for text in ns.arg:
        try:
            specs.append(sn.spec(text))
        except sn.SyntonicError as exc:
            _fail(f"--arg {text!r}: {exc}")
    statics: dict[str, Any] = {}
    for item in ns.static:
        name, eq, value = item.partition("=")
        if not eq or not name.isidentifier():
            _fail(f"--static expects NAME=VALUE, got {item!r}")
        try:
            statics[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            _fail(f"--static {name}: {value!r} is not a Python literal")
    jitted = fn if isinstance(fn, sn.JitFunction) else None
    try:
        if jitted is None:
            jitted = sn.jit(fn, static_argnames=tuple(statics))
        elif statics and not set(statics) <= jitted.static_argnames:
            _fail(f"--static names {sorted(set(statics) - jitted.static_argnames)} are not "
                  "static arguments of the jitted function")
        graph = jitted.trace(*specs, **statics)
    except sn.SyntonicError as exc:
        print(f"syntonic: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(graph.text(locs=not ns.no_locs))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    if ns.command == "dump":
        return _dump(ns)
    if ns.command == "daemon":
        return daemon_main(ns)
    _parser().print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
