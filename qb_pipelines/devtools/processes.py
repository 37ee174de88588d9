"""One supervised child process, and everything it starts, stopped for sure.

The demo and the benchmarks start the emulator, the admin web app, ``dagster dev`` and
``dagster-daemon``; those start more (the daemon's ``dagster api grpc`` code server, the run
workers). A code server left behind once ignored SIGTERM and waited for a heartbeat that never
came (issue 11). So a :class:`SupervisedProcess`:

* starts its child in a **new session** (its own process group, away from the terminal's), so the
  whole tree can be signalled as one and a terminal's Ctrl-C reaches only the command, which
  stops its children in order;
* **remembers its descendants** (a psutil snapshot every second, and again when stopping), so one
  that left the group or lost its parent is still known;
* **stops** by sending the graceful signal (SIGTERM, or SIGINT for Dagster, which shuts down on
  it as on a terminal's Ctrl-C) to the group, waits up to a deadline for the leader, the group,
  the session and every remembered descendant to be gone, then SIGKILLs what is left and reaps
  it. It never relies on a heartbeat. Stopping is shielded from signals
  (:func:`~qb_pipelines.devtools.signals.shielded`): a second Ctrl-C makes it kill at once
  rather than abandon it half-way;
* is **registered** until stopped: :func:`stop_all` (also run at interpreter exit) stops any that
  a code path forgot.
"""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from qb_pipelines.devtools.signals import Interrupted, hurry_requested, shielded

__all__ = [
    "ROOT",
    "ProcessError",
    "SupervisedProcess",
    "child_env",
    "console_script",
    "python_module",
    "run_to_completion",
    "stop_all",
    "wait_any",
]

#: The checkout: children import this very code, installed or not.
ROOT = Path(__file__).resolve().parents[2]
#: How often the descendants of every supervised process are snapshot.
SNAPSHOT_INTERVAL_S = 1.0


class ProcessError(RuntimeError):
    """A supervised process did not start, did not answer, or stopped on its own."""


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment by default) with this checkout on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def python_module(module: str, *args: str) -> list[str]:
    """The command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def console_script(name: str) -> str:
    """A console script of this environment (``dagster``, ``dagster-daemon``, ``qb-pipelines``).

    Raises:
        ProcessError: it is not installed.
    """
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise ProcessError(f"the `{name}` command is missing: run `make install` (it installs the project)")
    return found


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _session_members(sid: int, born_after: float) -> set[psutil.Process]:
    """Processes of session ``sid`` (started after its leader, so never a reused id's)."""
    found = set()
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and os.getsid(p.pid) == sid and p.create_time() >= born_after:
                found.add(p)
        except (OSError, psutil.Error):
            continue
    return found


class SupervisedProcess:
    """A child process in its own session; :meth:`stop` ends it and all it started.

    It starts at construction. Use it as a context manager (stopped on exit, however the block
    ends) or call :meth:`stop`.

    Args:
        name: what it is, for messages ("the admin web app").
        cmd: the command.
        env: its environment (this process's by default).
        cwd: its working folder.
        log_file: appends its stdout and stderr there.
        pipe_output: read its output (stdout and stderr merged) line by line: kept in
            :attr:`output` (the last 2,000 lines) and handed to ``on_line``.
        on_line: called with each line (without its newline), in a reader thread.
        stop_signal: the graceful stop signal (SIGTERM; SIGINT for Dagster's processes).
        stop_timeout: seconds the graceful stop may take before everything left is killed.
    """

    def __init__(self, name: str, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None, log_file: Path | None = None, pipe_output: bool = False,
                 on_line: Callable[[str], Any] | None = None, stop_signal: int = signal.SIGTERM,
                 stop_timeout: float = 20.0) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_file = log_file
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.output: collections.deque[str] = collections.deque(maxlen=2000)
        self._known: set[psutil.Process] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._reader: threading.Thread | None = None
        stdout: IO[Any] | int | None = None
        log = None
        if log_file is not None:
            log = open(log_file, "ab")  # noqa: SIM115 - the child keeps its own copy of the descriptor
            stdout = log
        elif pipe_output:
            stdout = subprocess.PIPE
        try:
            with shielded():  # a signal now must not leave a started child unrecorded
                self.proc: subprocess.Popen[str] = subprocess.Popen(
                    self.cmd, env=dict(env) if env is not None else None, cwd=str(cwd) if cwd else None,
                    stdin=subprocess.DEVNULL, stdout=stdout,
                    stderr=subprocess.STDOUT if stdout is not None else None, text=True, bufsize=1,
                    start_new_session=True)
                self.pid = self.proc.pid
                self._born = psutil.Process(self.pid).create_time()
                _REGISTRY.add(self)
        except Interrupted:
            if getattr(self, "proc", None) is not None:
                self.stop()
            raise
        finally:
            if log is not None:
                log.close()
        if pipe_output and log_file is None:
            self._reader = threading.Thread(target=self._pump, args=(on_line,), name=f"output-{self.pid}",
                                            daemon=True)
            self._reader.start()

    def __repr__(self) -> str:
        return f"SupervisedProcess({self.name!r}, pid={self.pid})"

    def __enter__(self) -> SupervisedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ state

    def alive(self) -> bool:
        """True while the child itself runs."""
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit code once it exited (negative: the signal that ended it)."""
        return self.proc.poll()

    def exit_description(self) -> str:
        """How it ended, in words ("exited with code 1", "was killed by SIGKILL")."""
        code = self.returncode
        if code is None:
            return "is running"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def exit_report(self, context: str = "", lines: int = 30) -> str:
        """``<name> <how it ended> <context>``, then its last lines when it printed any (error messages)."""
        tail = self.tail(lines)
        return (f"{self.name} {self.exit_description()}{' ' + context if context else ''}"
                + (f"; its last lines:\n{tail}" if tail.strip() else ""))

    def tail(self, lines: int = 30) -> str:
        """The last lines it printed (from its log file, or what was read from its output)."""
        if self.log_file is not None:
            try:
                return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
            except OSError:
                return ""
        return "\n".join(list(self.output)[-lines:])

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child to exit (``None`` when ``timeout`` passed first)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _pump(self, on_line: Callable[[str], Any] | None) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            self.output.append(line)
            if on_line is not None:
                try:
                    on_line(line)
                except Exception:  # a failing printer must not stop the reading (the child would block)
                    pass

    # ------------------------------------------------------------------------------ descendants

    def remember_descendants(self) -> None:
        """Snapshot the child's descendants, so one that loses its parent is still known."""
        if self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        with self._lock:
            self._known.update(children)

    def _targets(self) -> set[psutil.Process]:
        """Everything to stop: the leader, its descendants now and before, its session."""
        self.remember_descendants()
        found = _session_members(self.pid, self._born)
        with self._lock:
            found |= {p for p in self._known if _alive(p)}
        if self.proc.poll() is None:
            try:
                found.add(psutil.Process(self.pid))
            except psutil.Error:
                pass
        return found

    def _signal(self, sig: int, targets: Iterable[psutil.Process]) -> None:
        outside = []
        group_alive = self.proc.poll() is None
        for p in targets:
            try:
                if os.getpgid(p.pid) == self.pid:
                    group_alive = True
                else:
                    outside.append(p)
            except (OSError, psutil.Error):
                continue
        if group_alive:
            try:
                os.killpg(self.pid, sig)  # the group outlives its leader while members remain
            except (ProcessLookupError, PermissionError):
                pass
        for p in outside:
            try:
                p.send_signal(sig)
            except psutil.Error:
                continue

    # ------------------------------------------------------------------------------ stopping

    def stop(self, timeout: float | None = None, sig: int | None = None) -> int | None:
        """Stop the child and every process it started; returns the child's exit code.

        The graceful signal goes to the whole group (and to known descendants outside it); after
        ``timeout`` seconds (or at once when a second Ctrl-C or SIGTERM arrives) what is left is
        killed with SIGKILL. Returns when nothing of it runs any more. Safe to call twice.
        """
        with shielded():
            if self._stopped:
                return self.proc.returncode
            timeout = self.stop_timeout if timeout is None else timeout
            targets = self._targets()
            self._signal(self.stop_signal if sig is None else sig, targets)
            deadline = time.monotonic() + timeout
            next_scan = time.monotonic() + 1.0
            while time.monotonic() < deadline and not hurry_requested():
                if self.proc.poll() is not None and not any(_alive(p) for p in targets):
                    break
                if time.monotonic() > next_scan:  # a process started while shutting down
                    targets |= _session_members(self.pid, self._born)
                    next_scan = time.monotonic() + 1.0
                time.sleep(0.05)
            left = [p for p in targets | _session_members(self.pid, self._born) if _alive(p)]
            if self.proc.poll() is None or left:
                sys.stderr.write(f"{self.name} (pid {self.pid}) did not stop within {timeout:.0f} s: "
                                 f"killing it and {len(left)} process(es) it started\n")
                self._signal(signal.SIGKILL, left)
                for p in left:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
            self.proc.wait()
            psutil.wait_procs(left, timeout=10)
            self._stopped = True
            _REGISTRY.discard(self)
            if self._reader is not None:
                self._reader.join(timeout=5)  # the tree is gone: the pipe is at its end
            return self.proc.returncode


def wait_any(processes: Sequence[SupervisedProcess], poll_s: float = 0.5) -> SupervisedProcess:
    """Block until one of ``processes`` exits; returns it (Ctrl-C and SIGTERM interrupt the wait)."""
    while True:
        for p in processes:
            if not p.alive():
                return p
        time.sleep(poll_s)


def run_to_completion(name: str, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                      cwd: str | Path | None = None, timeout: float = 120.0) -> tuple[int, str]:
    """Run a command to its end as a supervised process; returns its exit code and output.

    Raises:
        ProcessError: it did not finish within ``timeout`` seconds (it is stopped, tree and all).
    """
    with SupervisedProcess(name, cmd, env=env, cwd=cwd, pipe_output=True) as process:
        code = process.wait(timeout)
        process.stop()  # what it started goes with it, and its output is read to the end
        if code is None:
            raise ProcessError(f"{name} did not finish within {timeout:.0f} s:\n{process.tail()}")
        return code, process.tail(2000)


class _Registry:
    """Every supervised process not stopped yet, and the thread that snapshots their trees."""

    def __init__(self) -> None:
        self._items: set[SupervisedProcess] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, process: SupervisedProcess) -> None:
        with self._lock:
            self._items.add(process)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, name="process-snapshots", daemon=True)
                self._thread.start()

    def discard(self, process: SupervisedProcess) -> None:
        with self._lock:
            self._items.discard(process)

    def items(self) -> list[SupervisedProcess]:
        with self._lock:
            return list(self._items)

    def _watch(self) -> None:
        while True:
            time.sleep(SNAPSHOT_INTERVAL_S)
            items = self.items()
            if not items:
                with self._lock:
                    if not self._items:
                        self._thread = None
                        return
                continue
            for process in items:
                process.remember_descendants()


_REGISTRY = _Registry()


def stop_all() -> None:
    """Stop every supervised process still running, newest first (also run at exit)."""
    for process in sorted(_REGISTRY.items(), key=lambda p: p._born, reverse=True):
        process.stop()


atexit.register(stop_all)
