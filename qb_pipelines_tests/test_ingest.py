"""Landing QuickBooks in the warehouse (``sync.ingest.land``) against the emulator, on SQLite and PostgreSQL.

Every test talks to a real emulator over HTTP through the project's ``QBOClient`` and writes into
a real database of each dialect; the truth to compare with is the emulator's own export
(``/_emulator/companies/{realm}/export/{entity}?include_deleted=true``) and ``/counts``. Changes
are made as a QuickBooks user would, through ``/_emulator/companies/{realm}/act``. Each company
is a :class:`~qb_pipelines_tests.harness.Landing` under its own company key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.emulator.seed import BulkSeeder, seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.store.db import make_engine, migrate
from qb_pipelines.store.warehouse import LINK_ENTITIES
from qb_pipelines.sync.ingest import MODE_FULL, MODE_FULL_EXPIRED, MODE_INCREMENTAL
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import Landing, new_company

DAY = 86400


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A warehouse of each dialect, shared by the module's tests (each test has its own company key)."""
    with throwaway_database(request.param, tmp_path_factory.mktemp("ingest")) as url:
        eng = make_engine(url)
        try:
            migrate(eng)  # the warehouse, and the store's company locks landing takes
            yield eng
        finally:
            eng.dispose()


@pytest.fixture
def demo(emulator: RunningEmulator, engine: Engine) -> Landing:
    return Landing(emulator, seed_demo_company(emulator.emu), engine)


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def assert_warehouse_equals_emulator(co: Landing, entities: list[str] | None = None, *, deleted: bool = True) -> None:
    """Row for row and amount for amount: raw bodies, typed amounts, lines and links, flags, counts."""
    counts = co.counts()
    for entity in entities or [e.name for e in registry.ENTITIES]:
        ent = registry.get(entity)
        exported = co.export(entity)
        # keyed as the warehouse keys them: the Id, a wrapped template's, an exchange rate's key
        live = {ent.identity(b): b for b in exported if b.get("status") != "Deleted"}
        gone = {ent.identity(b) for b in exported if b.get("status") == "Deleted"}
        rows = co.rows(entity)
        landed_live = {i: r for i, r in rows.items() if not r.is_deleted}
        assert set(landed_live) == set(live), entity
        if deleted:
            assert {i for i, r in rows.items() if r.is_deleted} == gone, entity
            expected = counts.get(entity, {"active": 0, "inactive": 0, "deleted": 0})
            assert co.writer.counts(entity, co.key) == expected, entity
        for obj_id, body in live.items():
            row = landed_live[obj_id]
            fields = ent.fields_of(body)  # a recurring transaction's typed columns are its template's
            assert row.raw == body, (entity, obj_id)
            assert row.sync_token == fields.get("SyncToken")
            assert row.is_active == fields.get("Active", True), (entity, obj_id)
            for field, column in (("TotalAmt", "total_amt"), ("Balance", "balance"), ("Amount", "amount")):
                if column in row._fields:
                    assert row._mapping[column] == _money(fields.get(field)), (entity, obj_id, field)
        if not ent.line_fields:
            continue
        by_txn: dict[str, list[sa.Row]] = defaultdict(list)
        for child in co.child_rows(entity):
            by_txn[child.txn_id].append(child)
        for obj_id, body in live.items():
            lines = body.get(ent.line_fields[0]) or []
            children = by_txn.get(obj_id, [])
            if entity in LINK_ENTITIES:
                expected_links = Counter((i, link["TxnId"], link["TxnType"], _money(line.get("Amount")))
                                         for i, line in enumerate(lines, 1) for link in line.get("LinkedTxn") or [])
                assert Counter((c.line_no, c.linked_txn_id, c.linked_txn_type, c.amount)
                               for c in children) == expected_links, (entity, obj_id)
            elif ent.lines is registry.Lines.REFS:  # what an attachment belongs to
                assert sorted((c.line_no, c.entity_type, c.entity_id) for c in children) == [
                    (i, ref["EntityRef"]["type"], ref["EntityRef"]["value"]) for i, ref in enumerate(lines, 1)]
            elif ent.lines is registry.Lines.BUDGET:  # an amount per account and period
                assert sorted((c.line_no, c.account_id, str(c.budget_date), c.amount) for c in children) == [
                    (i, d["AccountRef"]["value"], d["BudgetDate"], _money(d["Amount"]))
                    for i, d in enumerate(lines, 1)], (entity, obj_id)
            else:
                assert sorted((c.line_no, c.amount) for c in children) == [
                    (i, _money(line.get("Amount"))) for i, line in enumerate(lines, 1)], (entity, obj_id)


# ---------------------------------------------------------------------------------------- full load


def test_full_load_equals_the_emulator_row_for_row(demo: Landing) -> None:
    first = demo.land()
    assert all(e.mode == MODE_FULL for e in first.entities.values())
    assert first.inserted > 500 and first.updated == 0
    assert first.entities["Invoice"].inserted == demo.counts()["Invoice"]["active"]
    assert first.entities["Invoice"].cursor is not None and first.entities["TaxCode"].cursor is None
    assert_warehouse_equals_emulator(demo, deleted=False)

    # the next run is incremental: one CDC call and one batch for the entities CDC does not cover;
    # it brings the tombstone of the Purchase the demo deleted, which no query returns
    second = demo.land()
    assert second.api_calls == 2
    assert second.entities["Invoice"].mode == MODE_INCREMENTAL
    assert second.entities["TaxCode"].mode == MODE_FULL
    assert (second.inserted, second.updated) == (0, 0)
    assert second.entities["Purchase"].deleted == 1
    assert_warehouse_equals_emulator(demo)

    third = demo.land()  # nothing changed: nothing written
    assert (third.inserted, third.updated, third.deleted, third.api_calls) == (0, 0, 0, 2)
    assert third.touched_months == set()


# ---------------------------------------------------------------------------------------- incremental


def _open_invoices(co: Landing) -> list[dict]:
    """Invoices nothing else points at (no payment, no link): free to void or delete."""
    return [b for b in co.export("Invoice") if b.get("status") != "Deleted" and not b.get("LinkedTxn")
            and b.get("Balance") == b.get("TotalAmt") and not str(b.get("PrivateNote", "")).startswith("Voided")]


def test_incremental_picks_up_creates_updates_voids_deletes_inactivations_and_merges(demo: Landing) -> None:
    demo.land()
    demo.land()  # absorb the demo's own recent tombstones
    open_invoices = _open_invoices(demo)
    to_void, to_delete = open_invoices[0], open_invoices[1]
    customers = [b for b in demo.export("Customer") if b.get("Active") and not b.get("Job")
                 and not any(c.get("ParentRef", {}).get("value") == b["Id"] for c in demo.export("Customer"))]
    loser, winner, renamed = customers[0], customers[1], customers[2]
    item = next(b for b in demo.export("Item") if b.get("Active") and b.get("Type") == "Service")

    created = demo.act("Invoice", "create", {
        "CustomerRef": {"value": renamed["Id"]}, "TxnDate": "2026-01-15",
        "Line": [{"Amount": 150.0, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 2, "UnitPrice": 75}}]})
    demo.act("Customer", "update", {"Id": renamed["Id"], "CompanyName": "Renamed Landscaping Co"})
    demo.act("Invoice", "void", {"Id": to_void["Id"]})
    demo.act("Invoice", "delete", {"Id": to_delete["Id"]})
    demo.act("Item", "inactivate", {"Id": item["Id"]})
    demo.act("Customer", "merge", from_id=loser["Id"], into_id=winner["Id"])

    result = demo.land()
    assert result.api_calls == 2  # one CDC call for every entity, one batch for the rest
    invoice = result.entities["Invoice"]
    assert invoice.mode == MODE_INCREMENTAL
    assert invoice.inserted == 1 and invoice.updated >= 1 and invoice.deleted == 1
    assert result.entities["Item"].inactivated == 1
    assert result.entities["Customer"].deleted >= 1  # the merged-away customer

    invoices = demo.rows("Invoice")
    assert invoices[created["Id"]].total_amt == Decimal("150.00") and not invoices[created["Id"]].is_deleted
    assert invoices[to_void["Id"]].total_amt == Decimal("0.00")
    assert invoices[to_void["Id"]].private_note.startswith("Voided")
    assert invoices[to_delete["Id"]].is_deleted and invoices[to_delete["Id"]].deleted_at is not None
    assert invoices[to_delete["Id"]].total_amt == _money(to_delete["TotalAmt"])  # last content kept
    customers_landed = demo.rows("Customer")
    assert customers_landed[renamed["Id"]].company_name == "Renamed Landscaping Co"
    assert customers_landed[loser["Id"]].is_deleted
    assert demo.rows("Item")[item["Id"]].is_active is False
    months = {m for _, m in result.touched_months}
    assert {"2026-01", to_void["TxnDate"][:7], to_delete["TxnDate"][:7]} <= months
    assert_warehouse_equals_emulator(demo)


def test_cdc_window_over_the_1000_cap_is_split_and_loses_nothing(emulator: RunningEmulator, engine: Engine) -> None:
    realm = new_company(emulator, "Cap Co")
    co = Landing(emulator, realm, engine)
    # first load as if it ran 20 days ago, then 1500 invoices (and their payments) over the last 31 days
    twenty_days_ago = datetime.fromtimestamp(emulator.emu.clock.timestamp() - 20 * DAY, UTC)
    co.land(now=lambda: twenty_days_ago)
    cursor = co.writer.cursors(co.key)["Invoice"].cdc_cursor
    BulkSeeder(emulator.emu, realm, invoices=1500, months=1, seed=3).run()

    calls_before = co.client.stats.api_calls
    result = co.land(entities=["Customer", "Item", "Invoice", "Payment"])
    assert result.entities["Invoice"].mode == MODE_INCREMENTAL
    assert result.api_calls == co.client.stats.api_calls - calls_before > 1  # the capped window was split
    for entity in ("Invoice", "Payment"):
        in_window = {b["Id"] for b in co.export(entity)
                     if datetime.fromisoformat(b["MetaData"]["LastUpdatedTime"]) >= cursor}
        assert len(in_window) > 0
        assert in_window <= set(co.rows(entity)), entity
    changed = sum(result.entities[e].inserted for e in ("Invoice", "Payment"))
    assert changed > 1000


def test_a_cursor_older_than_the_lookback_turns_into_a_full_refresh(demo: Landing) -> None:
    demo.land()
    demo.advance_clock(31 * DAY)
    result = demo.land(entities=["Customer", "Invoice", "TaxCode"])
    assert result.entities["Invoice"].mode == MODE_FULL_EXPIRED
    assert result.entities["Customer"].mode == MODE_FULL_EXPIRED
    assert "30-day" in result.entities["Invoice"].reason
    assert result.entities["TaxCode"].mode == MODE_FULL  # no CDC at all: re-read as always
    assert (result.entities["Invoice"].inserted, result.entities["Invoice"].updated) == (0, 0)
    # the refresh restarted the cursor: the next run is incremental again
    assert demo.land(entities=["Invoice"]).entities["Invoice"].mode == MODE_INCREMENTAL
    assert_warehouse_equals_emulator(demo, ["Customer", "Invoice"], deleted=False)


def test_a_cursor_qbo_refuses_as_too_old_turns_into_a_full_refresh(demo: Landing) -> None:
    """Our clock says the cursor is fine, QuickBooks' says it is not: QBO's word wins."""
    demo.land(entities=["Invoice"])
    demo.advance_clock(31 * DAY)
    result = demo.land(entities=["Invoice"], now=lambda: datetime.now(UTC))
    assert result.entities["Invoice"].mode == MODE_FULL_EXPIRED
    assert_warehouse_equals_emulator(demo, ["Invoice"], deleted=False)


# ---------------------------------------------------------------------------------------- full refresh


class Crash(Exception):
    pass


def test_a_crashed_full_refresh_resumes_from_its_last_committed_page(emulator: RunningEmulator,
                                                                     engine: Engine) -> None:
    realm = new_company(emulator, "Crash Co", invoices=450, seed=5)
    co = Landing(emulator, realm, engine)

    def crash_after_two_pages(event: dict) -> None:
        if event["entity"] == "Invoice" and event["page"] == 2:
            raise Crash("killed after page 2")

    with pytest.raises(Crash):
        co.land(entities=["Invoice"], full=True, page_size=100, progress=crash_after_two_pages)
    assert len(co.rows("Invoice")) == 200  # two pages committed
    progress = co.writer.progress(co.key, "Invoice")
    assert progress is not None and progress.start_position == 201

    resumed = co.land(entities=["Invoice"], full=True, page_size=100)
    assert resumed.entities["Invoice"].resumed_from == 201
    assert resumed.entities["Invoice"].inserted == 250
    assert co.writer.progress(co.key, "Invoice") is None
    assert_warehouse_equals_emulator(co, ["Invoice"], deleted=False)

    fresh = Landing(emulator, realm, engine)
    full = fresh.land(entities=["Invoice"], full=True, page_size=100)
    assert resumed.api_calls < full.api_calls
    assert full.entities["Invoice"].resumed_from is None


def test_full_refresh_finds_hard_deletes_that_cdc_missed(demo: Landing) -> None:
    demo.land(entities=["Invoice"])
    victim = _open_invoices(demo)[0]
    demo.act("Invoice", "delete", {"Id": victim["Id"]})  # a delete the incremental runs never saw
    result = demo.land(entities=["Invoice"], full=True)
    assert result.entities["Invoice"].mode == MODE_FULL
    assert result.entities["Invoice"].deleted == 1
    assert (result.entities["Invoice"].inserted, result.entities["Invoice"].updated) == (0, 0)
    row = demo.rows("Invoice")[victim["Id"]]
    assert row.is_deleted and row.deleted_at is not None
    assert_warehouse_equals_emulator(demo, ["Invoice"], deleted=False)


def test_a_full_rerun_changes_nothing(demo: Landing) -> None:
    demo.land(full=True)
    again = demo.land(full=True)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert again.entities["Invoice"].unchanged == demo.counts()["Invoice"]["active"]
    assert again.touched_months == set()
