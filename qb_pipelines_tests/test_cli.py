"""The ``qb-pipelines`` command line: the real console script, real processes, real HTTP."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from qb_pipelines.cli import cli
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.devtools.processes import SupervisedProcess
from qb_pipelines.devtools.services import LISTENING_PREFIX
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "qb-pipelines"


def _script() -> list[str]:
    if not SCRIPT.exists():
        pytest.fail(f"console script {SCRIPT} is missing: install the project with `make install` (pip install -e '.[dev]')")
    return [str(SCRIPT)]


class ServedEmulator:
    """A ``qb-pipelines emulator serve`` child process (supervised) and the lines it printed."""

    def __init__(self, args: list[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self.url = ""
        self.process = SupervisedProcess("qb-pipelines emulator serve", args, cwd=ROOT, pipe_output=True,
                                         on_line=self._queue.put)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """Read output until a line satisfies ``predicate``; fail if the process ends first."""
        for line in self.lines:
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if not self.process.alive() and self._queue.empty():
                    pytest.fail(f"emulator {self.process.exit_description()}; output: {self.lines}")
                if time.monotonic() > deadline:
                    pytest.fail(f"expected line not printed within {timeout}s; output: {self.lines}")
                continue
            self.lines.append(line)
            if predicate(line):
                return line


@contextmanager
def serve_process(*args: str, startup_s: float = 120.0) -> Iterator[ServedEmulator]:
    """Run ``qb-pipelines emulator serve ARGS`` on a free port until its listening line.

    The child runs in its own session and is stopped with anything it started, however the
    test ends.
    """
    served = ServedEmulator([*_script(), "emulator", "serve", "--port", str(free_port()), *args])
    with served.process:
        line = served.wait_for_line(lambda line: line.startswith(LISTENING_PREFIX), startup_s)
        served.url = line[len(LISTENING_PREFIX) :]
        # The line is printed just before the server binds its port; wait until it answers.
        with EmulatorControl(served.url) as control:
            control.wait_until_ready(20, poll_s=0.05)
        yield served


def test_help_lists_the_commands() -> None:
    out = subprocess.run([*_script(), "--help"], capture_output=True, text=True, check=True).stdout
    assert "emulator" in out and "demo" in out
    out = subprocess.run([*_script(), "emulator", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "companies", "create-company", "reset", "tokens", "seed", "faults", "counters", "clock", "act", "bench"):
        assert command in out


def test_serve_prints_its_url_and_answers_the_control_api() -> None:
    with serve_process() as served:
        assert served.lines == [f"{LISTENING_PREFIX}{served.url}"]
        assert served.url.startswith("http://127.0.0.1:")
        with EmulatorControl(served.url) as control:
            assert control.companies() == []


def test_serve_with_seed_and_data_file_keeps_the_demo_company_across_restarts(tmp_path: Path) -> None:
    data_file = tmp_path / "emulator.sqlite"
    with serve_process("--seed", "7", "--data-file", str(data_file)) as served:
        with EmulatorControl(served.url) as control:
            first = control.companies()
        assert len(first) == 1 and first[0]["realmId"]
        served.wait_for_line(lambda line: first[0]["realmId"] in line, timeout=10)
    # restarted without --seed: the same company is still there, nothing re-seeded
    with serve_process("--data-file", str(data_file)) as served:
        with EmulatorControl(served.url) as control:
            again = control.companies()
        assert [c["realmId"] for c in again] == [c["realmId"] for c in first]


def test_serve_now_pins_the_emulator_clock_and_the_demo_seed() -> None:
    with serve_process("--now", "2028-03-01T16:00:00Z", "--frozen-clock", "--seed", "7") as served:
        clock = requests.get(f"{served.url}/_emulator/clock", timeout=10).json()
        assert clock == {"now": "2028-03-01T16:00:00+00:00", "frozen": True, "scale": 1.0,
                         "offset_seconds": clock["offset_seconds"]}
        realm = requests.get(f"{served.url}/_emulator/companies", timeout=10).json()[0]["realmId"]
        info = requests.get(f"{served.url}/v3/company/{realm}/companyinfo/{realm}",
                            headers=_bearer(served.url, realm), timeout=10).json()
        assert info["CompanyInfo"]["MetaData"]["CreateTime"].startswith("2028-03-01T08:00:00")
    bad = CliRunner().invoke(cli, ["emulator", "serve", "--now", "the first of March"])
    assert bad.exit_code == 2 and "--now" in bad.output


def _bearer(url: str, realm: str) -> dict[str, str]:
    tokens = requests.post(f"{url}/_emulator/companies/{realm}/tokens", timeout=10).json()
    return {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"}


def test_control_commands_drive_a_running_emulator(emulator: RunningEmulator) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["emulator", "create-company", "Sunrise Landscaping", "--url", emulator.url])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli, ["emulator", "companies"], env={"QBO_EMULATOR_URL": emulator.url})
    assert listed.exit_code == 0, listed.output
    companies = json.loads(listed.output)
    assert [c["name"] for c in companies] == ["Sunrise Landscaping"]
    realm = companies[0]["realmId"]

    issued = runner.invoke(cli, ["emulator", "tokens", realm, "--url", emulator.url])
    assert issued.exit_code == 0, issued.output
    creds = json.loads(issued.output)
    assert {"access_token", "refresh_token", "client_id", "client_secret"} <= set(creds)
    # the token works on the v3 API as a QBO access token does
    resp = requests.get(
        f"{emulator.url}/v3/company/{realm}/companyinfo/{realm}",
        headers={"Authorization": f"Bearer {creds['access_token']}", "Accept": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.json()["CompanyInfo"]["CompanyName"] == "Sunrise Landscaping"


def test_clock_command_moves_emulator_time(emulator: RunningEmulator) -> None:
    before = emulator.emu.clock.timestamp()
    result = CliRunner().invoke(cli, ["emulator", "clock", "--advance", "3600", "--url", emulator.url])
    assert result.exit_code == 0, result.output
    assert emulator.emu.clock.timestamp() - before >= 3600


def test_act_command_changes_the_company_as_a_user_would(emulator: RunningEmulator) -> None:
    realm = emulator.emu.engine.create_company("Act Test Co")
    body = json.dumps({"DisplayName": "Walk-in Customer"})
    result = CliRunner().invoke(cli, ["emulator", "act", realm, "Customer", "create", "--data", body, "--url", emulator.url])
    assert result.exit_code == 0, result.output
    with emulator.emu.db.read() as c:
        names = [json.loads(r[0])["DisplayName"] for r in c.execute(
            "SELECT body FROM objects WHERE realm=? AND entity='Customer'", (realm,)
        )]
    assert names == ["Walk-in Customer"]


def test_control_command_without_emulator_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["emulator", "companies", "--url", url])
    assert result.exit_code != 0
    assert f"no emulator at {url}" in result.output
    assert "qb-pipelines emulator serve" in result.output and "--url" in result.output


def test_unknown_company_says_how_to_list_companies(emulator: RunningEmulator) -> None:
    result = CliRunner().invoke(cli, ["emulator", "tokens", "123", "--url", emulator.url])
    assert result.exit_code != 0
    assert "qb-pipelines emulator companies" in result.output


def test_faults_command_injects_and_clears_429s(emulator: RunningEmulator) -> None:
    realm = emulator.emu.engine.create_company("Faulty Co")
    token = emulator.emu.oauth.issue_tokens_for(realm)["access_token"]
    runner = CliRunner()

    def status() -> int:
        return requests.get(
            f"{emulator.url}/v3/company/{realm}/companyinfo/{realm}",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=10,
        ).status_code

    injected = runner.invoke(cli, ["emulator", "faults", "--rate-429", "1", "--realm", realm, "--url", emulator.url])
    assert injected.exit_code == 0, injected.output
    assert status() == 429
    shown = runner.invoke(cli, ["emulator", "faults", "--url", emulator.url])
    assert shown.exit_code == 0 and "429" in shown.output
    cleared = runner.invoke(cli, ["emulator", "faults", "--clear", "--url", emulator.url])
    assert cleared.exit_code == 0, cleared.output
    assert status() == 200
    counted = runner.invoke(cli, ["emulator", "counters", realm, "--url", emulator.url])
    assert counted.exit_code == 0, counted.output
    assert isinstance(json.loads(counted.output), dict)


def test_demo_instance_uses_sqlite_under_its_own_dagster_home(tmp_path: Path) -> None:
    import dagster as dg

    from qb_pipelines.demo.instance import write_demo_instance

    home = write_demo_instance(tmp_path / "dagster_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert str(home) in str(instance.root_directory)
