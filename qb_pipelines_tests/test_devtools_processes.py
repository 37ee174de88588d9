"""A supervised process is stopped with its whole tree, even the parts that resist or escape."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from qb_pipelines.devtools.processes import SNAPSHOT_INTERVAL_S, SupervisedProcess, run_to_completion

# A parent that starts a grandchild (in its own session when asked) and prints the grandchild's pid.
TREE = """
import signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=sys.argv[2] == "escape")
print(grandchild.pid, flush=True)
if sys.argv[3] == "leave":
    sys.exit(0)  # the grandchild loses its parent
time.sleep(600)
"""
# Each grandchild says "ready" (on the same output) once it is what the test needs it to be.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(600)")
SLEEPER = "import time; print('ready', flush=True); time.sleep(600)"


def _grandchild(process: SupervisedProcess) -> psutil.Process:
    deadline = time.monotonic() + 20
    while "ready" not in process.output or not any(line.isdigit() for line in process.output):
        assert time.monotonic() < deadline, process.exit_report()
        time.sleep(0.05)
    return psutil.Process(int(next(line for line in process.output if line.isdigit())))


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_a_grandchild_that_ignores_sigterm_is_killed_at_the_deadline(capfd: pytest.CaptureFixture[str]) -> None:
    process = SupervisedProcess("tree", [sys.executable, "-c", TREE, STUBBORN, "group", "stay"], pipe_output=True,
                                stop_timeout=1.0)
    grandchild = _grandchild(process)
    assert os.getpgid(grandchild.pid) == process.pid  # one group, away from ours
    assert os.getsid(process.pid) == process.pid != os.getsid(0)
    process.stop()
    assert _gone(grandchild) and not process.alive()
    assert "did not stop within 1 s: killing it" in capfd.readouterr().err


def test_a_grandchild_that_left_the_session_and_lost_its_parent_is_still_stopped() -> None:
    process = SupervisedProcess("tree", [sys.executable, "-c", TREE, SLEEPER, "escape", "stay"], pipe_output=True)
    grandchild = _grandchild(process)
    assert os.getsid(grandchild.pid) != process.pid  # out of the group and the session
    time.sleep(2.5 * SNAPSHOT_INTERVAL_S)  # the snapshot has seen it
    os.kill(process.pid, signal.SIGKILL)  # its parent dies first: it is reparented, nobody's child of ours
    process.wait(10)
    assert not _gone(grandchild)
    process.stop()
    assert _gone(grandchild)


def test_a_command_run_to_completion_returns_its_output_and_code(tmp_path: Path) -> None:
    code, output = run_to_completion("echo", [sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
                                     cwd=tmp_path, timeout=30)
    assert (code, output) == (3, "hello")
