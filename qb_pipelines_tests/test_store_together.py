"""Writes of several repositories in one transaction (``Repository.together``), on SQLite and PostgreSQL.

A push records a batch's mappings and its rows' outcomes together: both or neither, so a crash
never leaves a row in flight whose mapping is already written without its outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from qb_pipelines.store.db import session_factory
from qb_pipelines.store.mappings import MappingStore
from qb_pipelines.store.outbox import Outbox, insert_row
from qb_pipelines.store.tenants import TenantStore
from qb_pipelines_tests.databases import migrated_engine

REALM = "9130351000"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path, "qbp_together") as engine:
        yield engine


def _stores(engine: Engine) -> tuple[MappingStore, Outbox, int]:
    sessions = session_factory(engine)
    TenantStore(sessions).ensure_tenant("acme", "Acme")
    with sessions() as session, session.begin():
        row_id = insert_row(session, tenant_key="acme", entity="Customer", app_id="c-1", version=1, op="upsert",
                            payload={"display_name": "Ada"}).row.id
    return MappingStore(sessions), Outbox(sessions), row_id


def test_the_writes_of_a_block_commit_together(engine: Engine) -> None:
    mappings, outbox, row_id = _stores(engine)
    with outbox.together():
        mappings.add_many("acme", REALM, [("Customer", "c-1", "58", {"sync_token": "0"})])
        outbox.update_each([(row_id, {"status": "synced", "qbo_id": "58"})])
    assert mappings.by_app_ids("acme", REALM, "Customer", ["c-1"])["c-1"].qbo_id == "58"
    assert outbox.record("acme", "Customer", "c-1").status == "synced"


def test_an_error_in_the_block_rolls_every_write_back(engine: Engine) -> None:
    mappings, outbox, row_id = _stores(engine)
    before = outbox.record("acme", "Customer", "c-1").status
    with pytest.raises(RuntimeError), outbox.together():
        mappings.add_many("acme", REALM, [("Customer", "c-1", "58", {"sync_token": "0"})])
        outbox.update_each([(row_id, {"status": "synced", "qbo_id": "58"})])
        raise RuntimeError("the process died here")
    assert mappings.by_app_ids("acme", REALM, "Customer", ["c-1"]) == {}
    assert outbox.record("acme", "Customer", "c-1").status == before != "synced"
    # the store works as before after the block
    outbox.update_each([(row_id, {"reason": "after"})])
    assert outbox.record("acme", "Customer", "c-1").reason == "after"
