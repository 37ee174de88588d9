"""SQLite: transactions that read before they write take the write lock first.

In WAL mode a deferred transaction that has read and then meets a commit made by another
connection cannot upgrade to a writer: SQLite answers "database is locked" at once, whatever the
busy timeout. Two transactions of the integration read before they write while other processes
write the same file: the records API's enqueue (it reads the latest version of each record) and
the warehouse writer (it reads stored hashes and cursors). Both begin with ``BEGIN IMMEDIATE`` on
SQLite, so a concurrent writer waits its turn instead of making them fail (seen before the fix: 37
of 150 records API calls answered 503 while a push and a landing ran).

Each test makes the race happen on purpose: the transaction reads, another connection tries to
commit a write, then the transaction writes. With the write lock taken first the other writer
waits and both succeed; without it the transaction's write fails.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.db import make_engine, migrate
from qb_pipelines.store.warehouse.writer import WarehouseWriter
from qb_pipelines.sync.push.contract import validate
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import api
from qb_pipelines_tests.harness import connect_company, emulator_settings


class _OtherWriter:
    """Another process's writer: commits one row to ``scratch`` from its own connection and thread."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO scratch (x) VALUES (1)"))
        except BaseException as exc:  # reported to the test, which fails on it
            self.error = exc

    def race(self) -> None:
        """Start the write and give it a moment: it commits at once unless the lock is taken."""
        self.thread.start()
        self.thread.join(timeout=1.0)

    def finish(self) -> None:
        self.thread.join(timeout=60)
        self.engine.dispose()
        assert not self.thread.is_alive(), "the other writer never got the lock"
        assert self.error is None, f"the other writer failed: {self.error}"


def _scratch(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)"))
    engine.dispose()


def test_the_warehouse_writer_takes_the_write_lock_before_it_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    migrate(url)
    _scratch(url)
    engine = make_engine(url)
    writer = WarehouseWriter(engine)
    other = _OtherWriter(url)
    with writer.begin() as conn:
        conn.execute(sa.text("SELECT count(*) FROM scratch")).scalar_one()  # read first...
        other.race()  # ...another process commits meanwhile (or waits, holding no lock)...
        conn.execute(sa.text("INSERT INTO scratch (x) VALUES (2)"))  # ...then write
    other.finish()
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT x FROM scratch")).scalars()) == [1, 2]
    engine.dispose()


def test_the_records_api_enqueue_takes_the_write_lock_before_it_reads(
        shared_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with Runtime(emulator_settings(url, shared_emulator)) as runtime:
        _scratch(url)
        company = connect_company(shared_emulator, runtime)
        other = _OtherWriter(url)
        real = api.enqueue_record

        def enqueue_after_a_race(conn: Any, tenant: str, record: Any) -> Any:
            conn.execute(sa.text("SELECT count(*) FROM scratch")).scalar_one()
            if not other.thread.is_alive() and other.thread.ident is None:
                other.race()
            return real(conn, tenant, record)

        monkeypatch.setattr(api, "enqueue_record", enqueue_after_a_race)
        records = [validate({"entity": "Customer", "app_id": f"c-{i}", "version": 1, "op": "upsert",
                                     "data": {"display_name": f"Customer {i}"}}) for i in range(3)]
        results = api._enqueue_all(runtime, company.tenant, records)
        other.finish()
        assert [r.row.app_id for r in results] == ["c-0", "c-1", "c-2"]
        assert runtime.outbox.counts(company.tenant).get("pending") == 3
