"""Every command that starts processes leaves none behind (issue 11), however it ends.

Each test runs a real ``qb-pipelines`` command as a subprocess -- the benchmarks with small N,
the headless demo, the interactive demo stopped with SIGINT and with SIGTERM once its UI answers,
and runs whose ``dagster-daemon`` is killed with SIGKILL while the command runs -- then looks at
every process on the machine: none may be left whose command line names this checkout, the
test's temporary folder or ``qb_pipelines.definitions`` (the test process and its parents
excepted). The search only counts processes started during the test that are this run's: they
name the checkout or the folder (every child runs this checkout's interpreter), or carry the
run's marker in their environment. Other people's processes on a shared machine are not ours.

The headless demo's run is also the end-to-end proof of the demo (every entity, report month and
check, then a webhook change through the daemon). About three to four minutes in all: marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from qb_pipelines.devtools.ports import free_port
from qb_pipelines.devtools.processes import SupervisedProcess
from qb_pipelines.qbo import registry
from qb_pipelines.sync.reports import REPORTS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "qb-pipelines"
MARKER = "QB_NO_ORPHANS_RUN"


def _script() -> str:
    if not SCRIPT.exists():
        pytest.fail(f"console script {SCRIPT} is missing: install the project with `make install`")
    return str(SCRIPT)


# ------------------------------------------------------------------------------------ the search


@dataclass
class Watch:
    """What to look for after a command: its folder, its marker, and what ran before it."""

    folder: Path
    marker: str
    before: set[psutil.Process]

    def needles(self) -> tuple[str, ...]:
        return (str(ROOT), str(self.folder), str(self.folder.resolve()))

    def env(self, **extra: str) -> dict[str, str]:
        """The command's environment: the marker, and temporary files inside the test's folder."""
        return {**os.environ, MARKER: self.marker, "TMPDIR": str(self.folder), **extra}

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this run still alive: new, and naming the checkout or folder, or marked."""
        me = psutil.Process()
        mine = {me, *me.parents()}
        found = []
        for p in psutil.process_iter():
            if p in mine or p in self.before:
                continue
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = " ".join(p.cmdline())
                named = any(n in cmdline for n in self.needles())
                definitions = "qb_pipelines.definitions" in cmdline
                if not (named or definitions):
                    continue
                if named or p.environ().get(MARKER) == self.marker:
                    found.append(p)
            except psutil.Error:
                continue
        return found

    def describe(self, processes: list[psutil.Process]) -> str:
        lines = []
        for p in processes:
            try:
                lines.append(f"pid {p.pid} (parent {p.ppid()}): {' '.join(p.cmdline())[:300]}")
            except psutil.Error:
                continue
        return "\n".join(lines)

    def assert_nothing_left(self) -> None:
        left = self.leftovers()
        assert not left, f"processes left behind:\n{self.describe(left)}"


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Watch]:
    """A fresh watch; whatever a failed test left behind is killed afterwards (never by name)."""
    current = set(psutil.process_iter())
    w = Watch(tmp_path, uuid.uuid4().hex, current)
    yield w
    for p in w.leftovers():
        try:
            p.kill()
        except psutil.Error:
            pass


@dataclass
class Finished:
    returncode: int
    output: str

    def json_line(self) -> dict:
        return json.loads(self.output.strip().splitlines()[-1])


def run_command(watch: Watch, args: list[str], *, timeout: float, cwd: Path | None = None,
                env: dict[str, str] | None = None,
                while_running: Callable[[SupervisedProcess], None] | None = None) -> Finished:
    """Run ``qb-pipelines ARGS`` (in its own session) to its end; ``while_running`` acts on it meanwhile.

    The command is supervised by the test too: if it hangs, it and its session are stopped, and
    the test fails on the timeout.
    """
    log = watch.folder / f"command-{uuid.uuid4().hex[:6]}.log"
    command = SupervisedProcess("qb-pipelines " + " ".join(args[:2]), [_script(), *args], env=env or watch.env(),
                                cwd=cwd or watch.folder, log_file=log, stop_timeout=30)
    try:
        if while_running is not None:
            while_running(command)
        code = command.wait(timeout)
        output = log.read_text(errors="replace")
        assert code is not None, f"the command did not end within {timeout:.0f} s:\n{output[-3000:]}"
        return Finished(code, output)
    finally:
        if command.alive():
            command.stop()


def descendant(command: SupervisedProcess, needle: str, timeout: float, *,
               then: Callable[[psutil.Process], bool] = lambda p: True) -> psutil.Process:
    """Wait until a descendant of ``command`` whose command line holds ``needle`` (and passes ``then``) runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not command.alive():
            pytest.fail(f"the command ended ({command.exit_description()}) before `{needle}` ran:\n{command.tail(50)}")
        try:
            for p in psutil.Process(command.pid).children(recursive=True):
                if needle in " ".join(p.cmdline()) and then(p):
                    return p
        except psutil.Error:
            pass
        time.sleep(0.2)
    pytest.fail(f"no `{needle}` under the command within {timeout:.0f} s:\n{command.tail(50)}")


def assert_ports_free(*ports: int) -> None:
    for port in ports:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)


# ------------------------------------------------------------------------------------ benchmarks


@pytest.mark.timeout(300)
def test_bench_ingest_ends_with_its_figures_and_leaves_nothing(watch: Watch) -> None:
    done = run_command(watch, ["bench", "ingest", "--invoices", "200", "--webhook-changes", "2"], timeout=280)
    assert done.returncode == 0, done.output[-4000:]
    figures = done.json_line()
    assert figures["invoices"] == 200 and figures["invoices_per_s"] > 0
    assert len(figures["samples"]) == 2 and figures["webhook_p50_s"] is not None
    watch.assert_nothing_left()


def _has_code_server(daemon: psutil.Process) -> bool:
    try:
        return any("dagster" in " ".join(c.cmdline()) and " grpc" in " ".join(c.cmdline())
                   for c in daemon.children(recursive=True))
    except psutil.Error:
        return False


@pytest.mark.timeout(300)
def test_bench_ingest_whose_daemon_dies_fails_clearly_and_leaves_nothing(watch: Watch) -> None:
    """Issue 11: the daemon goes first, its code server (waiting on a heartbeat) must not stay."""
    orphans: list[psutil.Process] = []

    def kill_the_daemon(command: SupervisedProcess) -> None:
        daemon = descendant(command, "dagster-daemon run", 240, then=_has_code_server)
        orphans.extend(daemon.children(recursive=True))
        daemon.kill()

    done = run_command(watch, ["bench", "ingest", "--invoices", "200", "--webhook-changes", "2"], timeout=280,
                       while_running=kill_the_daemon)
    assert done.returncode == 1, done.output[-4000:]
    assert "Error: dagster-daemon was killed by SIGKILL" in done.output
    assert orphans and not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    watch.assert_nothing_left()


@pytest.mark.timeout(200)
def test_emulator_bench_leaves_nothing(watch: Watch) -> None:
    done = run_command(watch, ["emulator", "bench", "--invoices", "2000"], timeout=180)
    assert done.returncode == 0, done.output[-4000:]
    assert done.json_line()["served"] == 2000
    watch.assert_nothing_left()


# ------------------------------------------------------------------------------------ headless demo


@pytest.mark.timeout(460)
def test_demo_headless_lands_everything_proves_a_webhook_and_leaves_nothing(watch: Watch) -> None:
    port, web_port = free_port(), free_port()
    env = watch.env(QBO_EMULATOR_URL="", QB_DATABASE_URL="", DAGSTER_HOME="")
    done = run_command(watch, ["demo", "--headless", "--port", str(port), "--web-port", str(web_port)],
                       timeout=440, env=env)
    output = done.output
    assert done.returncode == 0, output[-6000:]
    summary = done.json_line()
    assert summary["ok"] is True and summary["failures"] == []
    assert summary["emulator_url"] == f"http://127.0.0.1:{port}"
    assert summary["realmId"] and f"qb-pipelines emulator tokens {summary['realmId']}" in output
    assert summary["counts"]["Customer"] > 0 and summary["counts"]["Invoice"] > 0
    assert summary["entities_landed"] == summary["entities_expected"] == len(registry.ENTITIES)
    assert "(every entity)" in output
    # every report for every month with data (twelve months of activity), the current one included
    assert summary["report_partitions"] >= len(REPORTS) * 12 and summary["report_partitions"] % len(REPORTS) == 0
    assert summary["checks_total"] > len(registry.ENTITIES) and summary["checks_passed"] == summary["checks_total"]
    assert "(every check)" in output
    assert summary["webhook_run_id"] and summary["webhook_latency_s"] is not None
    assert "webhook change:    arrived in the warehouse" in output
    # the reference app's loop: its invoice reached QuickBooks, the payment came back, no echo
    assert summary["push_latency_s"] is not None and summary["payment_back_latency_s"] is not None
    assert summary["feed_echoes"] == 0
    assert "reference app (Fieldwise) at http://127.0.0.1:" in output and "reference app:     pushed in" in output
    # secrets are generated and used, never printed
    assert "QB_FERNET_KEY=" not in output and "QB_SESSION_SECRET=" not in output
    watch.assert_nothing_left()
    assert_ports_free(port, web_port)
    # its temporary folder (here, inside the test's) is removed
    assert not list(watch.folder.glob("qbp-demo-headless-*"))


# ------------------------------------------------------------------------------------ the demo with its UI


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo folder for the interactive runs: the demo company is seeded once, then reused."""
    return tmp_path_factory.mktemp("demo")


def _interactive_demo(watch: Watch, demo_dir: Path, act: Callable[[SupervisedProcess, int], None]) -> tuple[
        Finished, list[int]]:
    ports = [free_port(), free_port(), free_port(), free_port()]
    emulator_port, web_port, dagster_port, refapp_port = ports

    def when_the_ui_answers(command: SupervisedProcess) -> None:
        deadline = time.monotonic() + 200
        while True:
            assert command.alive(), f"the demo ended ({command.exit_description()}):\n{command.tail(60)}"
            try:
                if requests.get(f"http://127.0.0.1:{dagster_port}/server_info", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the Dagster UI never answered:\n{command.tail(60)}"
            time.sleep(0.5)
        act(command, dagster_port)

    done = run_command(watch, ["demo", "--demo-dir", str(demo_dir), "--port", str(emulator_port),
                               "--web-port", str(web_port), "--dagster-port", str(dagster_port),
                               "--refapp-port", str(refapp_port)],
                       timeout=280, while_running=when_the_ui_answers)
    return done, ports


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_stopped_by_a_signal_stops_everything(watch: Watch, demo_dir: Path, stop_signal: int) -> None:
    def stop(command: SupervisedProcess, _: int) -> None:
        if stop_signal == signal.SIGINT:
            os.killpg(command.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the foreground group
        else:
            os.kill(command.pid, signal.SIGTERM)  # what `kill`, CI runners and systemd do

    done, ports = _interactive_demo(watch, demo_dir, stop)
    assert done.returncode == 0, done.output[-4000:]
    assert "Stopped: every process the demo started (Dagster, the web app, the emulator) is stopped." in done.output
    assert "did not stop within" not in done.output  # each stopped gracefully, none needed killing
    watch.assert_nothing_left()
    assert_ports_free(*ports)


@pytest.mark.timeout(300)
def test_demo_whose_daemon_dies_fails_clearly_and_stops_everything(watch: Watch, demo_dir: Path) -> None:
    def kill_the_daemon(command: SupervisedProcess, _: int) -> None:
        descendant(command, "dagster._daemon run", 30).kill()

    done, ports = _interactive_demo(watch, demo_dir, kill_the_daemon)
    assert done.returncode == 1, done.output[-4000:]
    # the demo names what stopped and why (dagster dev reports its dead daemon; on a busy machine
    # more of its log may come after that line, so only the gist is pinned)
    assert "Error: dagster dev stopped on its own" in done.output, done.output[-4000:]
    assert "dagster-daemon process shut down unexpectedly" in done.output, done.output[-4000:]
    watch.assert_nothing_left()
    assert_ports_free(*ports)
