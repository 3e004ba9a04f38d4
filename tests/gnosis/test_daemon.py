"""The Ouroboros daemon: the tick rule, finite runs, resume, the socket, signals, CLI errors,
and the acceptance test: SIGKILL it 20 times, every restart resumes from a valid .gnosis
that holds the last completed save."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import syntonic as sn
from syntonic.gnosis import encode, temp_files
from syntonic.gnosis.daemon import Event, Mind, dhsr_step, tick

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
LINE = re.compile(r"^\[cycle (\d+)\] (emit|dreaming), syntony (\d\.\d{6})(: .*)?$")


def daemon(*args: str | Path, stdin: str | None = "", cwd: Path | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syntonic", "daemon", *map(str, args)],
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=ENV)


def start(*args: str | Path, stdout=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """Start a daemon and wait for its first stderr line (it has loaded its state)."""
    proc = subprocess.Popen([sys.executable, "-m", "syntonic", "daemon", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stderr is not None
    return proc, proc.stderr.readline()


def cycles_printed(text: str) -> list[int]:
    found = []
    for line in text.splitlines():
        m = LINE.match(line)
        assert m, f"unexpected stdout line {line!r}"
        found.append(int(m.group(1)))
    return found


# ------------------------------------------------------------------ the tick rule
def test_tick_follows_the_spec_from_an_injected_line():
    mind = Mind()
    events = [tick(mind, "Hello, Syntonic!" if i == 0 else None, 0.99) for i in range(14)]
    assert mind.inputs == 1 and mind.cycle == 14
    assert [e.kind for e in events[:2]] == ["", ""]  # syntony 0.83, 0.97: below threshold
    assert events[2] == Event("emit", 3, events[2].syntony, "!;c}zz~~~~}")
    assert events[2].syntony == pytest.approx(0.9957140, abs=1e-6)
    assert all(e.kind == "emit" for e in events[2:13]) and events[13].kind == ""
    assert mind.emitted == 11

    # the rule itself: one dhsr_cycle, then scale by 1/phi above the threshold
    state = encode("Hello, Syntonic!")
    for _ in range(3):
        state = sn.dhsr_cycle(state)
    replay = Mind(state=encode("Hello, Syntonic!"))
    for _ in range(3):
        tick(replay, None, 0.99)
    # the daemon's cycle is compiled (native f64 sums), the replay runs the reference
    np.testing.assert_allclose(replay.state, state * sn.PHI_INV, rtol=1e-12, atol=1e-15)


def test_the_cycle_is_a_jitted_function_so_it_follows_the_backend():
    assert isinstance(dhsr_step, sn.JitFunction)
    x = encode("Hello, Syntonic!")
    y, s = dhsr_step(x)
    np.testing.assert_allclose(y, sn.dhsr_cycle(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s, sn.syntony(sn.dhsr_cycle(x)), rtol=1e-12)


def test_a_zero_state_dreams_every_tenth_cycle():
    mind = Mind()
    lines = [tick(mind, None, 0.99).line() for _ in range(30)]
    assert [ln for ln in lines if "dreaming" in ln] == [
        "[cycle 10] dreaming, syntony 0.000000", "[cycle 20] dreaming, syntony 0.000000",
        "[cycle 30] dreaming, syntony 0.000000"]


def test_mind_tree_round_trips_through_gnosis(tmp_path):
    mind = Mind(state=encode("abc"), cycle=7, inputs=2, emitted=1,
                extra={"notes": {"who": "me"}})
    sn.save(tmp_path / "m.gnosis", mind.tree())
    back = Mind.from_tree(sn.load(tmp_path / "m.gnosis"), "m.gnosis")
    assert (back.cycle, back.inputs, back.emitted) == (7, 2, 1)
    assert back.state.tobytes() == mind.state.tobytes() and back.winding.shape == (1, 8)
    assert back.extra["notes"] == {"who": "me"}
    assert back.extra["ouroboros"]["created_at"] == mind.extra["ouroboros"]["created_at"]
    future = mind.tree()
    future["ouroboros"]["format"] = 2
    with pytest.raises(sn.GnosisError, match="format"):
        Mind.from_tree(future, "m.gnosis")
    future["ouroboros"].update(format=1, cycle=-1)
    with pytest.raises(sn.GnosisError, match="cycle"):
        Mind.from_tree(future, "m.gnosis")


# ------------------------------------------------------------------ finite runs
def test_finite_run_dreams_and_writes_a_valid_gnosis_file(tmp_path):
    path = tmp_path / "mind.gnosis"
    r = daemon("--state", path, "--cycles", "30", "--tick", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"[cycle {c}] dreaming, syntony 0.000000"
                                     for c in (10, 20, 30)]
    assert f"new state {path}" in r.stderr and f"saved cycle 30 to {path}" in r.stderr
    tree = sn.load(path)
    assert tree["ouroboros"]["cycle"] == 30 and tree["state"].shape == (1, 248)
    assert tree["winding"].shape == (1, 8)
    assert temp_files(path) == []


def test_input_from_stdin_is_injected_and_emitted(tmp_path):
    path = tmp_path / "mind.gnosis"
    r = daemon("--state", path, "--cycles", "80", "--tick", "0.005",
               stdin="Hello, Syntonic!\n")
    assert r.returncode == 0, r.stderr
    emitted = [ln for ln in r.stdout.splitlines() if " emit, " in ln]
    assert emitted and cycles_printed(r.stdout)
    meta = sn.load(path)["ouroboros"]
    assert meta["inputs"] == 1 and meta["emitted"] == len(emitted) >= 1


def test_resume_continues_the_cycle_count_state_and_metadata(tmp_path):
    path = tmp_path / "mind.gnosis"
    mind = Mind(state=encode("Hello, Syntonic!"), extra={"owner": "tests"})
    sn.save(path, mind.tree())
    first = daemon("--state", path, "--cycles", "25", "--tick", "0", "--threshold", "2")
    assert first.returncode == 0, first.stderr
    assert f"resumed {path} at cycle 0" in first.stderr
    second = daemon("--state", path, "--cycles", "15", "--tick", "0", "--threshold", "2")
    assert f"resumed {path} at cycle 25" in second.stderr
    assert cycles_printed(second.stdout) == [30, 40]
    tree = sn.load(path)
    assert tree["ouroboros"]["cycle"] == 40 and tree["owner"] == "tests"
    expected = Mind(state=encode("Hello, Syntonic!"))
    for _ in range(40):
        tick(expected, None, 2.0)
    assert tree["state"].tobytes() == expected.state.tobytes()


def test_without_state_it_runs_in_memory(tmp_path):
    r = daemon("--cycles", "10", "--tick", "0", cwd=tmp_path)
    assert r.returncode == 0 and "running in memory" in r.stderr
    assert r.stdout == "[cycle 10] dreaming, syntony 0.000000\n"
    assert list(tmp_path.iterdir()) == []


def test_socket_input(tmp_path):
    path, sock_path = tmp_path / "mind.gnosis", tmp_path / "in.sock"
    proc, first = start("--state", path, "--socket", sock_path, "--tick", "0.005",
                        "--autosave", "1", stdout=subprocess.PIPE)
    try:
        assert "new state" in first
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock_path))
            client.sendall(b"Hello, Syntonic!\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the autosaves are atomic: reading is safe
            if sn.load(path)["ouroboros"]["emitted"]:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "on SIGINT" in err and not sock_path.exists()
    meta = sn.load(path)["ouroboros"]
    assert meta["inputs"] == 1 and meta["emitted"] >= 1 and " emit, " in out


def test_sigterm_saves_and_exits_cleanly(tmp_path):
    path = tmp_path / "mind.gnosis"
    proc, first = start("--state", path, "--tick", "0.001", "--autosave", "0")
    assert "new state" in first
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    saved = int(re.search(r"saved cycle (\d+) to .* on SIGTERM", err).group(1))
    assert saved > 0 and sn.load(path)["ouroboros"]["cycle"] == saved


# ------------------------------------------------------------------ CLI errors
@pytest.mark.parametrize("args, needle", [
    (["--tick", "-1"], "--tick"),
    (["--tick", "nan"], "--tick"),
    (["--cycles", "x"], "--cycles"),
    (["--autosave", "-2"], "--autosave"),
    (["--threshold", "inf"], "--threshold"),
    (["--bogus"], "unrecognized"),
])
def test_bad_flags_are_one_line_and_exit_2(args, needle):
    r = daemon(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("syntonic: error: ") and needle in r.stderr


def test_a_corrupt_or_foreign_state_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "mind.gnosis"
    path.write_bytes(b"not a gnosis file at all, really not" * 2)
    r = daemon("--state", path, "--cycles", "1", "--tick", "0")
    assert r.returncode == 2 and r.stderr.startswith("syntonic: error: ")
    assert "not a .gnosis file" in r.stderr and r.stderr.count("\n") == 1
    assert path.read_bytes() == b"not a gnosis file at all, really not" * 2
    sn.save(path, {"weights": np.zeros(3)})
    r = daemon("--state", path, "--cycles", "1", "--tick", "0")
    assert r.returncode == 2 and "not an Ouroboros state" in r.stderr


def test_two_daemons_never_share_a_state_file(tmp_path):
    path = tmp_path / "mind.gnosis"
    proc, first = start("--state", path, "--tick", "0.01")
    try:
        assert "new state" in first
        r = daemon("--state", path, "--cycles", "1", "--tick", "0")
        assert r.returncode == 2 and "another daemon" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_help_documents_the_daemon():
    r = subprocess.run([sys.executable, "-m", "syntonic", "--help"], capture_output=True,
                       text=True, env=ENV, timeout=60)
    assert r.returncode == 0
    for flag in ("daemon", "--state FILE.gnosis", "--tick", "--cycles", "--autosave",
                 "--threshold", "--socket"):
        assert flag in r.stdout


# ------------------------------------------------------------------ acceptance
def test_sigkill_twenty_times_loses_nothing_beyond_the_last_autosave(tmp_path):
    """Kill -9 at random moments (often mid-save). Each restart must resume from a valid
    file holding exactly the state of its cycle count (replayed here), never behind the
    last cycle the killed daemon reported minus its autosave interval."""
    rng = random.Random(20261124)
    path = tmp_path / "mind.gnosis"
    # threshold 2: never emits, so it reports "dreaming" every 10th cycle (our progress log)
    sn.save(path, Mind(state=encode("Hello, Syntonic!")).tree())
    saved = Mind.from_tree(sn.load(path), str(path))
    for attempt in range(20):
        autosave = rng.choice([1, 1, 2, 3])
        log = tmp_path / f"out{attempt}.txt"
        with open(log, "w") as out:
            proc, first = start("--state", path, "--tick", "0.001", "--autosave",
                                str(autosave), "--threshold", "2", stdout=out)
            time.sleep(rng.uniform(0.0, 0.25))
            proc.kill()
            proc.wait(10)
            proc.stderr.close()
        assert f"resumed {path} at cycle {saved.cycle}" in first, first
        assert len(temp_files(path)) <= 1  # at most the save the kill interrupted

        now = Mind.from_tree(sn.load(path), str(path))  # a valid file, every time
        reported = cycles_printed(log.read_text())
        assert now.cycle >= saved.cycle
        if reported:
            assert now.cycle >= max(reported) - autosave, (attempt, now.cycle, reported)
        replay = Mind(state=saved.state.copy())
        for _ in range(now.cycle - saved.cycle):
            tick(replay, None, 2.0)
        assert now.state.tobytes() == replay.state.tobytes(), attempt
        saved = now

    r = daemon("--state", path, "--cycles", "5", "--tick", "0", "--threshold", "2")
    assert r.returncode == 0 and f"resumed {path} at cycle {saved.cycle}" in r.stderr
    assert sn.load(path)["ouroboros"]["cycle"] == saved.cycle + 5
    assert temp_files(path) == []  # the restart cleared what the kills left
    assert saved.cycle > 20  # the kills did land mid-run
