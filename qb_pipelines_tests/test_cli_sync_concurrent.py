"""Two ``qb-pipelines sync --full`` of one company at once: the second waits for the first, then lands.

Issue 10 §3: the second sync used to "resume" the first's full refresh as if it had crashed and
die on a ``UniqueViolation``. Here two real command-line processes are started 1 s apart against
a real emulator over HTTP and a real store (SQLite file, then PostgreSQL); the emulator answers
slowly enough (an injected delay on every query) that the first is still landing when the second
starts. Neither may print a traceback; the one that came second says whom it waits for; the
warehouse equals QuickBooks after both. With ``--wait 0`` the second reports the company busy.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.locks import CompanyLocks
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import complete_setup_wizard

CLI = str(Path(sys.executable).with_name("qb-pipelines"))
REPO = Path(__file__).resolve().parents[1]


@dataclass
class World:
    emulator: RunningEmulator
    runtime: Runtime
    env: dict[str, str]

    def connect(self, invoices: int) -> tuple[str, str]:
        realm = self.emulator.emu.engine.create_company(f"Busy Co {secrets.token_hex(2)}")
        seed_company(self.emulator.emu, realm, invoices=invoices)
        tenant = f"t{secrets.token_hex(3)}"
        self.runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
        body = requests.post(f"{self.emulator.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
        self.runtime.connections.save_tokens_on_connect(
            tenant, "emulator", realm, f"Company {realm}", "demo@example.com", "Demo", "User",
            TokenSet.from_response(body, realm_id=realm))
        complete_setup_wizard(self.runtime, tenant)
        return company_key(tenant, realm), realm

    def slow_queries(self, realm: str, delay_s: float) -> None:
        """Every query of ``realm`` answers ``delay_s`` later: a landing that takes a while."""
        body = {"clear": True, "rates": {"slow": 1.0}, "slow_delay_s": delay_s,
                "scope": {"realms": [realm], "paths": ["/query$"]}}
        requests.post(f"{self.emulator.url}/_emulator/faults", json=body, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        requests.post(f"{self.emulator.url}/_emulator/faults", json={"clear": True}, timeout=10).raise_for_status()

    def start_sync(self, key: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([CLI, "sync", "--company", key, "--full", *args], cwd=REPO, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def assert_warehouse_equals_quickbooks(self, key: str, realm: str) -> None:
        counts = requests.get(f"{self.emulator.url}/_emulator/companies/{realm}/counts", timeout=30).json()
        for entity in registry.ENTITIES:
            expected = counts.get(entity.name, {"active": 0, "inactive": 0, "deleted": 0})
            assert self.runtime.warehouse.counts(entity.name, key) == expected, entity.name


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    running = start_in_thread(Emulator(EmulatorSettings()))
    try:
        with throwaway_database(request.param, tmp_path, "qbp_busy") as url:
            env = {**os.environ, "QB_DATABASE_URL": url, "QB_FERNET_KEY": generate_key(),
                   "QBO_CLIENT_ID": "emulator-client-id", "QBO_CLIENT_SECRET": "emulator-client-secret",
                   "QBO_ENVIRONMENT": "emulator", "QBO_EMULATOR_URL": running.url}
            runtime = Runtime.from_env(env)
            try:
                yield World(running, runtime, env)
            finally:
                runtime.close()
    finally:
        running.stop()


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out + err


def test_two_full_syncs_one_second_apart_run_one_after_the_other(world: World) -> None:
    key, realm = world.connect(invoices=300)
    world.slow_queries(realm, 0.2)  # ~25 queries: the first sync lands for 5 s or more
    first = world.start_sync(key)
    time.sleep(1)
    second = world.start_sync(key)
    (code1, out1), (code2, out2) = _finish(first), _finish(second)
    world.clear_faults()

    for code, out in ((code1, out1), (code2, out2)):
        assert code == 0, out
        assert "Traceback" not in out and "UniqueViolation" not in out and "IntegrityError" not in out, out
        assert f"{key}: " in out and "API calls" in out  # each printed its summary
    waited = [out for out in (out1, out2) if "is being landed by another run" in out]
    assert len(waited) == 1, (out1, out2)  # they really overlapped, and only one waited
    other = first if waited[0] is out2 else second
    assert f"company {key} is being landed by another run (pid {other.pid} on host " in waited[0]
    assert "no run id (command line)" in waited[0] and "it will continue when that run ends" in waited[0]
    world.assert_warehouse_equals_quickbooks(key, realm)
    assert not CompanyLocks(world.runtime.engine).is_held(key, "land")


def test_without_waiting_the_second_sync_says_the_company_is_busy(world: World) -> None:
    key, realm = world.connect(invoices=50)
    world.slow_queries(realm, 0.4)
    first = world.start_sync(key)
    try:
        locks = CompanyLocks(world.runtime.engine)
        deadline = time.monotonic() + 60
        while not locks.is_held(key, "land"):
            assert first.poll() is None and time.monotonic() < deadline, _finish(first)[1]
            time.sleep(0.05)
        code, out = _finish(world.start_sync(key, "--wait", "0"))
    finally:
        code1, out1 = _finish(first)
        world.clear_faults()
    assert code == 1 and "Traceback" not in out, out
    assert f"company {key} is still being landed by another run (pid {first.pid} on host " in out
    assert "try again when that run ends" in out
    assert code1 == 0, out1
    world.assert_warehouse_equals_quickbooks(key, realm)
