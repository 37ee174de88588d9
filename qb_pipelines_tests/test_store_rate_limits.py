"""QuickBooks' per-company limits across processes (``store.rate_limits.SharedRateLimiter``).

Two limiters on one store stand for two processes (each has its own in-process limiter, as two
processes would); real SQLite files and real PostgreSQL databases. The proof against QuickBooks'
own enforcement: two real processes hammer one emulator company (batch calls and queries, as
fast as they can) under the emulator's limits shrunk to a 3-second window, and the emulator's
counters show zero 429s with the shared limiter, and some without it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter, set_limiter
from qb_pipelines.store import rate_limits
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.db import make_engine, migrate
from qb_pipelines.store.rate_limits import SharedRateLimiter
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.databases import throwaway_database

REPO = Path(__file__).resolve().parents[1]
REALM = "4620816365"

#: A process that takes one request slot of REALM, says so, and keeps it until it is killed.
HOLDER = """
import sys, time
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter
from qb_pipelines.store.db import make_engine
from qb_pipelines.store.rate_limits import SharedRateLimiter
limiter = SharedRateLimiter(make_engine(sys.argv[1]), sys.argv[2], CompanyRateLimiter(concurrent=1))
with limiter.acquire("read"):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path, "qbp_limits") as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


def _pair(engine: Engine, **limits: float) -> tuple[SharedRateLimiter, SharedRateLimiter]:
    """Two limiters of one company on one store, each with its own in-process limiter: two processes."""
    return (SharedRateLimiter(engine, REALM, CompanyRateLimiter(**limits)),
            SharedRateLimiter(engine, REALM, CompanyRateLimiter(**limits)))


def _in_thread(limiter: SharedRateLimiter, kind: str = "read") -> tuple[threading.Event, threading.Event]:
    """Acquire (and at once release) in a thread: (got it, release it) events."""
    got, done = threading.Event(), threading.Event()

    def run() -> None:
        with limiter.acquire(kind):
            got.set()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return got, done


def test_requests_in_flight_are_limited_across_processes(engine: Engine) -> None:
    a, b = _pair(engine, concurrent=2)
    with ExitStack() as held:
        held.enter_context(a.acquire("read"))
        held.enter_context(a.acquire("write"))  # the company's two concurrent requests, both in "process" a
        got, done = _in_thread(b)
        assert not got.wait(0.5)  # b's own limiter has room; the company has not
        assert b.snapshot()["shared_in_flight"] == 2
    assert got.wait(10) and done.wait(10)  # a's requests ended: b goes
    assert b.waits == 1 and b.waited_s >= 0.4


def test_the_window_counts_every_process_requests_from_their_end(engine: Engine) -> None:
    a, b = _pair(engine, per_window=4, window_s=1.5)
    for _ in range(2):
        with a.acquire():
            pass
    ended = time.time()
    for _ in range(2):
        with b.acquire():
            pass
    started = time.monotonic()
    with a.acquire():  # the company's fifth request in the window: waits for the first to leave it
        pass
    assert time.time() - ended >= 1.5 - 0.05
    assert time.monotonic() - started >= 1.0
    assert a.waits == 1


def test_batch_calls_have_their_own_budget_and_reads_pass_them(engine: Engine) -> None:
    a, b = _pair(engine, batch_per_window=2, window_s=1.5)
    with a.acquire("batch"):
        pass
    with b.acquire("batch"):
        pass
    got, done = _in_thread(a, "batch")
    with b.acquire("read"):  # a read is not a batch call: no wait
        assert b.waits == 0
    assert not got.wait(0.5)  # a's own limiter saw one batch call; the company has had two
    assert got.wait(10) and done.wait(10)  # once the first left the window
    assert a.waits == 1 and a.waited_s >= 1.0


def test_a_dead_process_slot_is_released_and_a_remote_one_expires_with_its_lease(engine: Engine,
                                                                                   db_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, REALM], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding", child.stderr.read()
        mine = SharedRateLimiter(engine, REALM, CompanyRateLimiter(concurrent=1))
        got, done = _in_thread(mine)
        assert not got.wait(0.5)  # the company's one concurrent request is the child's
        os.kill(child.pid, signal.SIGKILL)  # dies mid-request: no release, its lease runs for minutes
        child.wait(timeout=30)
        assert got.wait(10) and done.wait(10)  # a process of this host that no longer exists holds nothing
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    # a slot of a process on another host cannot be checked: it counts until its lease ends
    lease = 1.5
    remote = SharedRateLimiter(engine, "77", CompanyRateLimiter(concurrent=1), lease_s=lease)
    remote._host = "another-host"  # stands for a process on another machine
    taken = remote._take(batch=False)  # taken, never released: it died there
    assert taken > 0
    local = SharedRateLimiter(engine, "77", CompanyRateLimiter(concurrent=1))
    started = time.monotonic()
    with local.acquire():
        waited = time.monotonic() - started
    assert lease - 0.3 <= waited < lease + 5


def test_rows_that_left_the_window_are_deleted(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "CLEANUP_EVERY_S", 0.0)
    limiter = SharedRateLimiter(engine, REALM, CompanyRateLimiter(window_s=0.5))
    for _ in range(5):
        with limiter.acquire():
            pass
    time.sleep(0.7)
    with limiter.acquire():
        pass
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM qb_api_slots WHERE realm_id = :r"),
                            {"r": REALM}).scalar_one() == 1


def test_the_runtime_shares_limits_unless_told_not_to(tmp_path: Path) -> None:
    base = {"fernet_key": generate_key(), "client_id": "c", "client_secret": "s", "environment_name": "emulator"}
    with Runtime(AppSettings(database_url=f"sqlite:///{tmp_path / 'a.sqlite'}", **base)) as runtime:
        limiter = runtime.rate_limiter(REALM)
        assert isinstance(limiter, SharedRateLimiter) and runtime.rate_limiter(REALM) is limiter
        assert runtime.client(REALM, tokens=None).rate_limiter is limiter  # type: ignore[arg-type]
        replaced = set_limiter(REALM, CompanyRateLimiter(per_window=100))
        try:
            assert runtime.rate_limiter(REALM).local is replaced  # a newly installed local limiter is used
        finally:
            set_limiter(REALM, CompanyRateLimiter())
    off = AppSettings.from_env({"QB_DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite'}", "QB_FERNET_KEY": base["fernet_key"],
                                "QBO_CLIENT_ID": "c", "QBO_CLIENT_SECRET": "s", "QB_SHARED_RATE_LIMITS": "off"})
    with Runtime(off) as runtime:
        assert isinstance(runtime.rate_limiter(REALM), CompanyRateLimiter)
    with Runtime(AppSettings(database_url="sqlite://", **base)) as runtime:  # no other process can share it
        assert isinstance(runtime.rate_limiter(REALM), CompanyRateLimiter)


# -- two real processes against the emulator's enforcement ----------------------------------------

#: QBO's limits shrunk in time (the emulator's and the client's alike): 30 requests, 6 batch calls
#: in any 3 s, 3 in flight.
LIMITS = {"per_window": 30, "window_s": 3.0, "concurrent": 3, "batch_per_window": 6}
SECONDS = 7.0


@pytest.fixture(scope="module")
def limited_emulator() -> Iterator[RunningEmulator]:
    """An emulator of its own whose limits are shrunk in time (the shared one keeps QBO's)."""
    running = start_in_thread(Emulator(EmulatorSettings()))
    body = {"per_minute": LIMITS["per_window"], "window_s": LIMITS["window_s"], "concurrent": LIMITS["concurrent"],
            "batch_per_minute_app": LIMITS["batch_per_window"], "batch_per_minute_realm": 1000}
    try:
        requests.post(f"{running.url}/_emulator/limits", json=body, timeout=10).raise_for_status()
        yield running
    finally:
        running.stop()


def _hammer(emulator: RunningEmulator, db_url: str, tmp_path: Path, shared: bool) -> tuple[dict, list[dict]]:
    """Two worker processes on one new company; returns the emulator's counters and the workers' reports."""
    env = {**os.environ, "QB_DATABASE_URL": db_url, "QB_FERNET_KEY": generate_key(),
           "QBO_CLIENT_ID": "emulator-client-id", "QBO_CLIENT_SECRET": "emulator-client-secret",
           "QBO_ENVIRONMENT": "emulator", "QBO_EMULATOR_URL": emulator.url,
           "QB_SHARED_RATE_LIMITS": "on" if shared else "off"}
    realm = emulator.emu.engine.create_company(f"Hammered {secrets.token_hex(2)}")
    seed_company(emulator.emu, realm, invoices=5)
    tenant = f"t{secrets.token_hex(3)}"
    with Runtime.from_env(env) as runtime:
        runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
        body = requests.post(f"{emulator.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
        runtime.connections.save_tokens_on_connect(tenant, "emulator", realm, "Co", "a@example.com", "A", "B",
                                                   TokenSet.from_response(body, realm_id=realm))
    sync = tmp_path / f"sync-{int(shared)}"
    sync.mkdir()
    workers = [subprocess.Popen(
        [sys.executable, "-m", "qb_pipelines_tests.limits_worker", company_key(tenant, realm), str(sync), str(i),
         str(SECONDS), "4", json.dumps(LIMITS)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        deadline = time.monotonic() + 90
        while len(list(sync.glob("ready-*"))) < 2:
            dead = [w for w in workers if w.poll() is not None]
            assert not dead, dead[0].communicate()[1]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.02)
        (sync / "go").touch()
        outputs = [w.communicate(timeout=180) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()
    reports = []
    for (out, err), worker in zip(outputs, workers, strict=True):
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    counters = requests.get(f"{emulator.url}/_emulator/companies/{realm}/counters", timeout=10).json()
    return counters, reports


def test_two_processes_hammering_one_company_get_no_429(limited_emulator: RunningEmulator, db_url: str,
                                                        tmp_path: Path) -> None:
    counters, reports = _hammer(limited_emulator, db_url, tmp_path, shared=True)
    assert [r["limiter"] for r in reports] == ["SharedRateLimiter"] * 2
    assert [r["errors"] for r in reports] == [[], []]
    assert counters["throttled"] == 0, counters
    assert sum(r["throttled"] for r in reports) == 0
    # they really pressed: each made calls, together more than a window's budget, and they had
    # to wait for each other (not only for their own threads)
    assert all(r["calls"] >= 5 and r["batches"] >= 1 for r in reports), reports
    assert counters["requests"]["total"] >= LIMITS["per_window"]
    assert sum(r["waits"] for r in reports) > 0


def test_without_the_shared_limiter_the_same_two_processes_are_throttled(limited_emulator: RunningEmulator,
                                                                         tmp_path: Path) -> None:
    with throwaway_database("sqlite", tmp_path, "qbp_limits_off") as url:
        counters, reports = _hammer(limited_emulator, url, tmp_path, shared=False)
    assert [r["limiter"] for r in reports] == ["CompanyRateLimiter"] * 2
    assert counters["throttled"] > 0, counters  # each process alone is within the limits, the two are not


def test_sqlite_slots_skip_the_fsync_but_leave_the_store_connections_as_they_were(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}", pool_size=1, max_overflow=0)
    try:
        migrate(engine)
        with engine.connect() as conn:
            before = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
        limiter = SharedRateLimiter(engine, REALM, CompanyRateLimiter())
        with limiter.acquire("batch"):
            pass
        with engine.connect() as conn:  # the pool's one connection, the limiter's a moment ago
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == before
            assert conn.exec_driver_sql("SELECT count(*) FROM qb_api_slots WHERE released_at IS NOT NULL"
                                        ).scalar_one() == 1
    finally:
        engine.dispose()
