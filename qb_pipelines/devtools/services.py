"""The project's services as supervised children, each waited for until it answers.

* :func:`run_emulator_process`: ``qb-pipelines emulator serve`` (the QBO emulator);
* :func:`run_web_process`: ``qb-pipelines web`` (the admin web app);
* :func:`run_reference_app_process`: ``qb-pipelines reference-app serve`` (Fieldwise);
* :func:`run_daemon_process`: ``dagster-daemon run`` (sensors, schedules, the run queue);
* :func:`run_dagster_webserver_process`: ``dagster-webserver`` (the UI and its GraphQL API);
* :func:`dagster_dev_process`: ``dagster dev`` (the Dagster UI and its own daemon).

Each is a :class:`~qb_pipelines.devtools.processes.SupervisedProcess`: in its own session,
stopped with everything it started when the ``with`` block ends, however it ends.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from qb_pipelines.devtools.ports import port_is_free
from qb_pipelines.devtools.processes import (
    ROOT,
    ProcessError,
    SupervisedProcess,
    child_env,
    console_script,
    python_module,
)
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorUnreachableError

__all__ = [
    "LISTENING_PREFIX",
    "WORKSPACE",
    "EmulatorProcess",
    "WebProcess",
    "dagster_dev_process",
    "run_daemon_process",
    "run_dagster_webserver_process",
    "run_emulator_process",
    "run_reference_app_process",
    "run_web_process",
]

#: ``qb-pipelines emulator serve`` prints this, then its URL, once its companies are ready.
LISTENING_PREFIX = "QBO emulator listening on "
#: The Dagster workspace of this checkout (the code location ``qb_pipelines.definitions``).
WORKSPACE = ROOT / "workspace.yaml"


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass
class EmulatorProcess:
    """An emulator running as a supervised child (``qb-pipelines emulator serve``).

    Attributes:
        url: its base URL.
        process: the supervised child.
    """

    url: str
    process: SupervisedProcess

    @property
    def output(self) -> list[str]:
        """What it printed so far."""
        return list(self.process.output)

    def control(self) -> EmulatorControl:
        """A client of its control API."""
        return EmulatorControl(self.url)

    def stop(self) -> None:
        """Stop it (SIGTERM lets it close its data file), killing it if it hangs."""
        self.process.stop()


@contextmanager
def run_emulator_process(port: int, *, host: str = "127.0.0.1", seed: int | None = None,
                         data_file: str | None = None, startup_timeout: float = 300.0,
                         echo: Callable[[str], Any] = _stderr) -> Iterator[EmulatorProcess]:
    """Start ``qb-pipelines emulator serve`` as a supervised child; stop it on exit.

    Waits until the child prints its listening line and answers ``/_emulator/health``. The
    timeout is generous because seeding a demo company happens before the line is printed.

    Args:
        port: where it listens.
        host: the interface.
        seed: seed a demo company with this seed when it holds none.
        data_file: keep its companies in this SQLite file.
        startup_timeout: seconds it may take to answer.
        echo: where its own lines (warnings, tracebacks) go, prefixed ``[emulator]``.

    Raises:
        ProcessError: the port is taken, or the emulator exited or never answered.
    """
    if not port_is_free(port, host):
        raise ProcessError(
            f"port {port} on {host} is in use (an emulator from an earlier run?): stop it or choose another --port"
        )
    cmd = python_module("qb_pipelines.cli", "emulator", "serve", "--host", host, "--port", str(port))
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if data_file:
        cmd += ["--data-file", data_file]
    ready = threading.Event()

    def on_line(line: str) -> None:
        # Forward the child's output (warnings, tracebacks) and spot its listening line.
        if line.startswith(LISTENING_PREFIX):
            ready.set()
        elif not line.startswith("  company "):
            echo(f"[emulator] {line}")

    url = f"http://{host}:{port}"
    with SupervisedProcess("the QBO emulator", cmd, env=child_env(), pipe_output=True, on_line=on_line,
                           stop_signal=signal.SIGTERM, stop_timeout=20.0) as process:
        deadline = time.monotonic() + startup_timeout
        while not ready.wait(0.2) and process.alive() and time.monotonic() < deadline:
            pass
        try:
            # once it printed its line (seeding done), it binds its port at once
            EmulatorControl(url).wait_until_ready(60.0 if ready.is_set() else max(1.0, deadline - time.monotonic()),
                                                  still_starting=process.alive)
        except EmulatorUnreachableError:
            state = process.exit_description() if not process.alive() else "it runs but does not answer"
            process.stop()
            raise ProcessError(
                f"the emulator did not start on {url} ({state}); its output is above, prefixed [emulator]"
            ) from None
        yield EmulatorProcess(url, process)


def _wait_for_http(process: SupervisedProcess, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise ProcessError(process.exit_report())
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ProcessError(f"{process.name} did not answer on {url} in time:\n{process.tail()}")
        time.sleep(0.2)


@dataclass
class WebProcess:
    """The admin web app running as a supervised child (``qb-pipelines web``).

    Attributes:
        url: its base URL.
        process: the supervised child.
    """

    url: str
    process: SupervisedProcess


@contextmanager
def run_web_process(port: int, env: Mapping[str, str], log_file: Path, *,
                    startup_timeout: float = 60.0) -> Iterator[WebProcess]:
    """``qb-pipelines web --port PORT`` as a supervised child, yielded once ``/healthz`` answers.

    Raises:
        ProcessError: the port is taken, or the app exited or never answered.
    """
    with _run_http_app("the admin web app", ("web",), port, "--web-port", env, log_file,
                       startup_timeout) as app:
        yield app


@contextmanager
def run_reference_app_process(port: int, env: Mapping[str, str], log_file: Path, *,
                              startup_timeout: float = 60.0) -> Iterator[WebProcess]:
    """``qb-pipelines reference-app serve --port PORT`` (configured by ``REFAPP_*`` in ``env``), once ``/healthz`` answers.

    Raises:
        ProcessError: the port is taken, or the app exited or never answered.
    """
    with _run_http_app("the reference app", ("reference-app", "serve"), port, "--refapp-port", env, log_file,
                       startup_timeout) as app:
        yield app


@contextmanager
def _run_http_app(name: str, command: tuple[str, ...], port: int, port_flag: str, env: Mapping[str, str],
                  log_file: Path, startup_timeout: float) -> Iterator[WebProcess]:
    """A ``qb-pipelines`` HTTP app on 127.0.0.1:``port``, supervised, yielded once its ``/healthz`` answers."""
    if not port_is_free(port):
        raise ProcessError(f"port {port} is in use: stop what runs there or pass {port_flag}")
    url = f"http://127.0.0.1:{port}"
    cmd = python_module("qb_pipelines.cli", *command, "--host", "127.0.0.1", "--port", str(port))
    with SupervisedProcess(name, cmd, env=env, log_file=log_file) as process:
        _wait_for_http(process, f"{url}/healthz", startup_timeout)
        yield WebProcess(url, process)


@contextmanager
def run_daemon_process(env: Mapping[str, str], cwd: Path, log_file: Path) -> Iterator[SupervisedProcess]:
    """``dagster-daemon run`` on this checkout's workspace as a supervised child.

    SIGINT is how a terminal stops it: the daemon shuts its threads and its code server down;
    whatever of its tree is left after 30 s is killed. ``cwd`` should not be the checkout:
    Dagster warns about the top-level ``dagster.yaml`` (a deployment's settings) beside it.
    """
    cmd = [console_script("dagster-daemon"), "run", "-w", str(WORKSPACE)]
    with SupervisedProcess("dagster-daemon", cmd, env=env, cwd=cwd, log_file=log_file,
                           stop_signal=signal.SIGINT, stop_timeout=30.0) as process:
        yield process


@contextmanager
def run_dagster_webserver_process(port: int, env: Mapping[str, str], cwd: Path, log_file: Path, *,
                                  startup_timeout: float = 120.0) -> Iterator[WebProcess]:
    """``dagster-webserver`` on this checkout's workspace, yielded once its ``/server_info`` answers.

    Its GraphQL API is at ``<url>/graphql`` (what ``QB_DAGSTER_GRAPHQL_URL`` names).

    Raises:
        ProcessError: the port is taken, or the webserver exited or never answered.
    """
    if not port_is_free(port):
        raise ProcessError(f"port {port} is in use: stop what runs there")
    url = f"http://127.0.0.1:{port}"
    cmd = [console_script("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    with SupervisedProcess("dagster-webserver", cmd, env=env, cwd=cwd, log_file=log_file,
                           stop_signal=signal.SIGINT, stop_timeout=30.0) as process:
        _wait_for_http(process, f"{url}/server_info", startup_timeout)
        yield WebProcess(url, process)


def dagster_dev_process(port: int, env: Mapping[str, str], cwd: Path, *,
                        echo: Callable[[str], Any] = _stderr) -> SupervisedProcess:
    """``dagster dev`` (the UI on ``port`` and a daemon) on this checkout's workspace, supervised.

    Its output is read and passed to ``echo`` (so a failure can quote its last lines). SIGINT
    to its group is a terminal's Ctrl-C: it shuts its webserver, daemon and code server down;
    what is left after 60 s is killed.
    """
    cmd = [console_script("dagster"), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    return SupervisedProcess("dagster dev", cmd, env=env, cwd=cwd, pipe_output=True, on_line=echo,
                             stop_signal=signal.SIGINT, stop_timeout=60.0)

