"""Per-company locks (``store.locks``): one landing and one push per company, across processes.

Real SQLite files and real PostgreSQL databases; a holder in another process is a real
subprocess, killed with SIGKILL to prove the lock does not outlive its process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from qb_pipelines.store.db import make_engine, migrate
from qb_pipelines.store.locks import CompanyBusyError, CompanyLocks, lock_file_name
from qb_pipelines_tests.databases import throwaway_database

REPO = Path(__file__).resolve().parents[1]
KEY = "acme-9130351000"

#: A process that takes a lock, says so, and holds it until it is killed.
HOLDER = """
import sys, time
from qb_pipelines.store.db import make_engine
from qb_pipelines.store.locks import CompanyLocks
locks = CompanyLocks(make_engine(sys.argv[1]))
with locks.hold(sys.argv[2], sys.argv[3], run_id="run-in-child"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path, "qbp_locks") as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


@pytest.fixture
def locks(db_url: str) -> Iterator[CompanyLocks]:
    engine = make_engine(db_url)
    try:
        yield CompanyLocks(engine, poll_s=0.05)
    finally:
        engine.dispose()


def test_a_second_landing_is_told_who_lands_waits_and_then_gets_the_company(locks: CompanyLocks) -> None:
    released = threading.Event()
    held = threading.Event()

    def first() -> None:
        with locks.hold(KEY, "land", run_id="run-first"):
            held.set()
            time.sleep(0.8)
        released.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    told: list[str] = []
    started = time.monotonic()
    with locks.hold(KEY, "land", run_id="run-second", wait_s=30, on_wait=told.append) as me:
        waited = time.monotonic() - started
        assert released.is_set()  # it got the company only after the first let go
        assert locks.holder(KEY, "land") == me and me.run_id == "run-second"
    thread.join()
    assert waited >= 0.5
    assert len(told) == 1  # told once, not at every retry
    assert told[0].startswith(f"company {KEY} is being landed by another run (pid {os.getpid()} on host ")
    assert "run run-first, since " in told[0] and told[0].endswith("it will continue when that run ends")
    assert locks.holder(KEY, "land") is None  # the record goes with the lock
    assert not locks.is_held(KEY, "land")


def test_the_wait_is_bounded_and_the_failure_names_the_holder(locks: CompanyLocks) -> None:
    with locks.hold(KEY, "land", run_id="run-long"):
        assert locks.is_held(KEY, "land")
        started = time.monotonic()
        with pytest.raises(CompanyBusyError) as failed, locks.hold(KEY, "land", wait_s=0.3):
            pytest.fail("took a lock someone holds")
        assert 0.3 <= time.monotonic() - started < 5
        assert failed.value.holder is not None and failed.value.holder.run_id == "run-long"
        message = str(failed.value)
        assert f"company {KEY} is still being landed by another run (pid {os.getpid()}" in message
        assert re.search(r"after waiting [0-9.]+ s; try again when that run ends", message)
        with pytest.raises(CompanyBusyError), locks.hold(KEY, "land", wait_s=0):  # wait 0: fail at once
            pass


def test_landing_and_pushing_are_separate_locks_and_companies_do_not_share(locks: CompanyLocks) -> None:
    with locks.hold(KEY, "land"), locks.hold(KEY, "push"), locks.hold("other-42", "land"):
        assert locks.is_held(KEY, "land") and locks.is_held(KEY, "push") and locks.is_held("other-42", "land")
        with pytest.raises(CompanyBusyError, match="is still being pushed"), locks.hold(KEY, "push", wait_s=0):
            pass
    assert not any(locks.is_held(k, p) for k, p in ((KEY, "land"), (KEY, "push"), ("other-42", "land")))
    with pytest.raises(ValueError, match="purpose"), locks.hold(KEY, "export"):
        pass


def test_the_lock_dies_with_its_process(locks: CompanyLocks, db_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, KEY, "land"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held", child.stderr.read()
        assert locks.is_held(KEY, "land")
        holder = locks.holder(KEY, "land")
        assert holder is not None and holder.pid == child.pid and holder.run_id == "run-in-child"
        with pytest.raises(CompanyBusyError, match="run run-in-child"), locks.hold(KEY, "land", wait_s=0.2):
            pass
        os.kill(child.pid, signal.SIGKILL)  # no finally, no atexit: only the system can release it
        child.wait(timeout=30)
        started = time.monotonic()
        with locks.hold(KEY, "land", wait_s=30) as me:
            assert time.monotonic() - started < 10
            assert locks.holder(KEY, "land") == me  # the dead holder's record was replaced
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_sqlite_lock_files_sit_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        migrate(engine)
        locks = CompanyLocks(engine)
        with locks.hold(KEY, "land"):
            assert (tmp_path / "store.sqlite.locks" / f"land-{KEY}.lock").is_file()
        # a key that is not a safe file name gets a hashed one, inside the folder all the same
        odd = "ten/ant..-1"
        assert "/" not in lock_file_name(odd, "push") and lock_file_name(odd, "push").startswith("push-")
        with locks.hold(odd, "push"):
            assert not locks.is_held(KEY, "land")
    finally:
        engine.dispose()


def test_an_in_memory_store_locks_between_threads() -> None:
    engine = make_engine("sqlite://", poolclass=sa.pool.StaticPool)
    try:
        migrate(engine)
        locks = CompanyLocks(engine, poll_s=0.02)
        with locks.hold(KEY, "land"), pytest.raises(CompanyBusyError), locks.hold(KEY, "land", wait_s=0.1):
            pass
        with locks.hold(KEY, "land"):
            pass
    finally:
        engine.dispose()
