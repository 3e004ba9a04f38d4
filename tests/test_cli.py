"""`python -m syntonic`: dump prints traced IR; malformed input gives one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import syntonic as sn

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syntonic", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_help_documents_dump():
    r = run("--help")
    assert r.returncode == 0
    assert "dump FILE.py:FUNC" in r.stdout and "--arg" in r.stdout and "f32[4,248]" in r.stdout


def test_dump_prints_parseable_ir(tmp_path):
    src = tmp_path / "model.py"
    src.write_text(
        "import syntonic as sn\n"
        "def step(x, w):\n"
        "    return sn.harmonize(x @ w + 1.0)\n"
    )
    r = run("dump", f"{src}:step", "--arg", "f32[4,248]", "--arg", "f32[248,8]")
    assert r.returncode == 0, r.stderr
    assert "func @step(%x: f32[4,248], %w: f32[248,8]) -> (f32[4,8])" in r.stdout
    assert "matmul" in r.stdout and "harmonize" in r.stdout and "model.py\":3)" in r.stdout
    assert sn.ir.parse(r.stdout).text() == r.stdout


def test_dump_quickstart_without_locs_and_with_static():
    r = run("dump", "examples/quickstart.py:dhsr_step", "--arg", "f32[1,248]", "--no-locs")
    assert r.returncode == 0 and "loc(" not in r.stdout and "broadcast" in r.stdout


def test_dump_static_argument(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import syntonic as sn\ndef f(x, n):\n    for _ in range(n):\n"
                   "        x = sn.dhsr_cycle(x)\n    return x\n")
    r = run("dump", f"{src}:f", "--arg", "f32[2,8]", "--static", "n=3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("dhsr_cycle") == 3


@pytest.mark.parametrize("args,needle", [
    (("dump", "examples/quickstart.py"), "FILE.py:FUNC"),
    (("dump", "missing.py:f", "--arg", "f32[2]"), "no such file"),
    (("dump", "examples/quickstart.py:nope", "--arg", "f32[2]"), "no function 'nope'"),
    (("dump", "examples/quickstart.py:dhsr_step", "--arg", "f32[1,"), "malformed tensor type"),
    (("dump", "examples/quickstart.py:dhsr_step", "--arg", "c64[2]"), "malformed tensor type"),
    (("dump", "examples/quickstart.py:dhsr_step", "--static", "oops"), "NAME=VALUE"),
    (("frobnicate",), "invalid choice"),
])
def test_malformed_input_is_one_line_and_exit_2(args, needle):
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syntonic: error:"), r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


def test_trace_error_in_user_code_exits_2_with_location(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("def f(x):\n    if x > 0:\n        return x\n    return -x\n")
    r = run("dump", f"{src}:f", "--arg", "f32[3]")
    assert r.returncode == 2
    assert "bad.py:2:" in r.stderr and "fix:" in r.stderr and "Traceback" not in r.stderr
