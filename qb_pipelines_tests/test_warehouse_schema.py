"""The warehouse schema, generated from the entity registry, and its writer, on SQLite and PostgreSQL.

The databases are migrated with the real Alembic chain (``store.db.migrate``), so these tests also
prove that migration ``0002_warehouse`` creates exactly what ``store.warehouse`` describes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from qb_pipelines.qbo import registry
from qb_pipelines.store import warehouse
from qb_pipelines.store.warehouse import WarehouseWriter, column_name, column_type, table_name, tables_for
from qb_pipelines_tests.databases import migrated_engine

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A database of each dialect migrated to head (company keys keep the tests apart)."""
    with migrated_engine(request.param, tmp_path_factory.mktemp("wh")) as eng:
        yield eng


def _key() -> str:
    return f"co_{secrets.token_hex(4)}"


# ---------------------------------------------------------------------------------------- naming rules


def test_column_names_and_types_follow_the_documented_rule() -> None:
    assert column_name("CustomerRef.value") == "customer_ref_id"
    assert column_name("APAccountRef.value") == "ap_account_ref_id"
    assert column_name("CurrencyRef.value") == "currency"
    assert column_name("MetaData.CreateTime") == "qbo_created_at"
    assert column_name("MetaData.LastUpdatedTime") == "qbo_updated_at"
    assert column_name("PrimaryEmailAddr.Address") == "primary_email"
    assert column_name("TxnDate") == "txn_date"
    assert column_name("BalanceWithJobs") == "balance_with_jobs"
    assert isinstance(column_type("TotalAmt"), sa.Numeric) and column_type("TotalAmt").scale == 2
    assert isinstance(column_type("Balance"), sa.Numeric) and column_type("Balance").scale == 2
    assert column_type("UnitPrice").scale == 7
    assert isinstance(column_type("TxnDate"), sa.Date)
    assert isinstance(column_type("MetaData.LastUpdatedTime"), sa.DateTime)
    assert column_type("MetaData.LastUpdatedTime").timezone is True
    for flag in ("Active", "Job", "Taxable", "Credit", "Adjustment"):
        assert isinstance(column_type(flag), sa.Boolean), flag
    for count in ("Level", "DueDays", "Hours"):
        assert isinstance(column_type(count), sa.Integer), count
    assert isinstance(column_type("DocNumber"), sa.String)
    assert table_name("SalesReceipt") == "qbo_sales_receipt"
    assert table_name("CompanyInfo") == "qbo_company_info"


# ---------------------------------------------------------------------------------------- schema


def test_every_registry_entity_has_its_tables_and_keys(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    names = set(inspector.get_table_names())
    for entity in registry.ENTITIES:
        main, child = tables_for(entity)
        assert main.name == table_name(entity) and main.name in names, entity.name
        assert inspector.get_pk_constraint(main.name)["constrained_columns"] == ["company_key", "id"]
        columns = {c["name"] for c in inspector.get_columns(main.name)}
        assert {"raw", "sync_token", "is_active", "is_deleted", "deleted_at", "first_synced_at",
                "synced_at"} <= columns, entity.name
        for path in entity.typed_fields:
            assert column_name(path) in columns, (entity.name, path)
        if entity.line_fields:
            assert child is not None and child.name in names, entity.name
            pk = inspector.get_pk_constraint(child.name)["constrained_columns"]
            if entity.link_lines:
                assert child.name == f"{main.name}_link"
                assert pk == ["company_key", "txn_id", "line_no", "link_no"]
            else:
                # budgets land their BudgetDetail, attachments their AttachableRef, the rest item lines
                suffix = {registry.Lines.BUDGET: "detail", registry.Lines.REFS: "ref"}.get(entity.lines, "line")
                assert child.name == f"{main.name}_{suffix}"
                assert pk == ["company_key", "txn_id", "line_no"]
        else:
            assert child is None
        indexes = {i["name"] for i in inspector.get_indexes(main.name)}
        if "txn_date" in columns:
            assert f"ix_{main.name}_txn_date" in indexes
        if "qbo_updated_at" in columns:
            assert f"ix_{main.name}_updated" in indexes
    for state in ("qbo_sync_cursor", "qbo_full_refresh_progress"):
        assert inspector.get_pk_constraint(state)["constrained_columns"] == ["company_key", "entity"]


def test_migrations_create_exactly_the_warehouse_of_the_registry(engine: Engine) -> None:
    """A registry entry without its migration fails here, naming what is missing."""
    mine = set(warehouse.metadata.tables)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), warehouse.metadata)

    def concerns_warehouse(diff: object) -> bool:
        if isinstance(diff, list):
            return any(concerns_warehouse(d) for d in diff)
        for part in diff:  # type: ignore[attr-defined]
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(getattr(part, "table", None), "name", None)
            if name in mine or table in mine:
                return True
        return False

    drift = [d for d in diffs if concerns_warehouse(d)]
    assert not drift, ("the warehouse tables differ from the migrations; add an Alembic migration under "
                       f"qb_pipelines/store/migrations/versions for: {drift}")


# ---------------------------------------------------------------------------------------- writer


def _invoice(obj_id: str, *, total: float, txn_date: str = "2025-02-10", sync: str = "0", lines: int = 2,
             note: str | None = None) -> dict:
    body: dict = {
        "Id": obj_id, "SyncToken": sync, "DocNumber": f"10{obj_id}", "TxnDate": txn_date,
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "CustomerRef": {"value": "7", "name": "Amy's Bird Sanctuary"},
        "Line": [{"Id": str(i), "LineNum": i, "Amount": total / lines, "Description": "Rock\tFountain \\ \"big\"\n",
                  "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": "5", "name": "Rock Fountain"}, "Qty": 1,
                                          "UnitPrice": total / lines, "TaxCodeRef": {"value": "NON"}}}
                 for i in range(1, lines + 1)]
        + [{"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}],
        "TotalAmt": total, "Balance": total, "DueDate": "2025-03-12",
        "MetaData": {"CreateTime": "2025-02-10T09:00:00-08:00", "LastUpdatedTime": "2025-02-10T09:00:00-08:00"},
    }
    if note:
        body["PrivateNote"] = note
    return body


def _rows(engine: Engine, table: sa.Table, key: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table).where(table.c.company_key == key)))


def test_writer_upserts_idempotently_and_replaces_lines(engine: Engine) -> None:
    writer = WarehouseWriter(engine)
    key = _key()
    inv, lines = tables_for("Invoice")
    with writer.begin() as conn:
        stats = writer.upsert(conn, "Invoice", key, [_invoice("1", total=100.0), _invoice("2", total=50.5)],
                              synced_at=T0)
    assert (stats.inserted, stats.updated, stats.unchanged) == (2, 0, 0)
    assert stats.touched_months == {"2025-02"}

    with writer.begin() as conn:  # the same objects again: nothing to write
        stats = writer.upsert(conn, "Invoice", key, [_invoice("1", total=100.0), _invoice("2", total=50.5)],
                              synced_at=T0 + timedelta(minutes=1))
    assert (stats.inserted, stats.updated, stats.unchanged) == (0, 0, 2)
    assert stats.touched_months == set()

    moved = _invoice("2", total=80.25, txn_date="2025-04-01", sync="1", lines=1, note="tab\there")
    with writer.begin() as conn:
        stats = writer.upsert(conn, "Invoice", key, [moved], synced_at=T0 + timedelta(minutes=2))
    assert (stats.inserted, stats.updated) == (0, 1)
    assert stats.touched_months == {"2025-02", "2025-04"}  # old and new month of the moved invoice

    rows = {r.id: r for r in _rows(engine, inv, key)}
    assert rows["2"].total_amt == Decimal("80.25") and rows["2"].txn_date == date(2025, 4, 1)
    assert rows["2"].customer_ref_id == "7" and rows["2"].currency == "USD" and rows["2"].private_note == "tab\there"
    assert rows["2"].raw == moved
    created = rows["2"].qbo_created_at
    assert (created if created.tzinfo else created.replace(tzinfo=UTC)) == datetime(2025, 2, 10, 17, 0, tzinfo=UTC)
    first = rows["2"].first_synced_at
    assert (first if first.tzinfo else first.replace(tzinfo=UTC)) == T0  # kept across updates
    line_rows = sorted((r.txn_id, r.line_no, r.detail_type, r.amount) for r in _rows(engine, lines, key))
    assert line_rows == [("1", 1, "SalesItemLineDetail", Decimal("50.00")),
                         ("1", 2, "SalesItemLineDetail", Decimal("50.00")),
                         ("1", 3, "SubTotalLineDetail", Decimal("100.00")),
                         ("2", 1, "SalesItemLineDetail", Decimal("80.25")),
                         ("2", 2, "SubTotalLineDetail", Decimal("80.25"))]
    line = next(r for r in _rows(engine, lines, key) if r.txn_id == "1" and r.line_no == 1)
    assert line.description == "Rock\tFountain \\ \"big\"\n" and line.item_id == "5" and line.tax_code == "NON"


def test_tombstones_and_hard_deletes_flag_rows_without_dropping_them(engine: Engine) -> None:
    writer = WarehouseWriter(engine)
    key = _key()
    inv, lines = tables_for("Invoice")
    with writer.begin() as conn:
        writer.upsert(conn, "Invoice", key, [_invoice("1", total=10.0), _invoice("2", total=20.0)], synced_at=T0)
    tomb = {"domain": "QBO", "status": "Deleted", "Id": "1",
            "MetaData": {"LastUpdatedTime": "2025-02-11T10:00:00-08:00"}}
    never_landed = {"domain": "QBO", "status": "Deleted", "Id": "99",
                    "MetaData": {"LastUpdatedTime": "2025-02-11T11:00:00-08:00"}}
    with writer.begin() as conn:
        stats = writer.mark_deleted(conn, "Invoice", key, [tomb, never_landed], synced_at=T0)
    assert stats.deleted == 2 and stats.touched_months == {"2025-02"}
    with writer.begin() as conn:  # a tombstone seen again changes nothing
        assert writer.mark_deleted(conn, "Invoice", key, [tomb], synced_at=T0).deleted == 0
    rows = {r.id: r for r in _rows(engine, inv, key)}
    assert rows["1"].is_deleted and rows["1"].total_amt == Decimal("10.00")  # last known content kept
    deleted_at = rows["1"].deleted_at
    assert (deleted_at if deleted_at.tzinfo else deleted_at.replace(tzinfo=UTC)) == datetime(
        2025, 2, 11, 18, 0, tzinfo=UTC)
    assert rows["99"].is_deleted and rows["99"].raw == never_landed
    assert sum(1 for r in _rows(engine, lines, key) if r.txn_id == "1") == 3  # lines kept with the row

    later = T0 + timedelta(hours=1)
    with writer.begin() as conn:
        writer.upsert(conn, "Invoice", key, [_invoice("2", total=20.0)], synced_at=later)  # unchanged, confirmed
        assert writer.unconfirmed_ids(conn, "Invoice", key, since=later) == []
        writer.upsert(conn, "Invoice", key, [_invoice("3", total=30.0)], synced_at=T0)
        gone = writer.unconfirmed_ids(conn, "Invoice", key, since=later)
        assert gone == ["3"]
        assert writer.mark_hard_deleted(conn, "Invoice", key, gone, at=later).deleted == 1
    assert writer.counts("Invoice", key) == {"active": 1, "inactive": 0, "deleted": 3}


def test_payment_links_and_name_list_flags(engine: Engine) -> None:
    writer = WarehouseWriter(engine)
    key = _key()
    payment = {"Id": "42", "SyncToken": "0", "TxnDate": "2025-01-07", "TotalAmt": 674.6, "UnappliedAmt": 0,
               "CustomerRef": {"value": "6"},
               "Line": [{"Amount": 634.6, "LinkedTxn": [{"TxnId": "38", "TxnType": "Invoice"}],
                         "LineEx": {"any": []}},
                        {"Amount": 40.0, "LinkedTxn": [{"TxnId": "41", "TxnType": "CreditMemo"}]}]}
    item = {"Id": "5", "SyncToken": "0", "Name": "Rock Fountain", "Active": True, "UnitPrice": 275.1234567,
            "Type": "NonInventory"}
    with writer.begin() as conn:
        writer.upsert(conn, "Payment", key, [payment], synced_at=T0)
        writer.upsert(conn, "Item", key, [item], synced_at=T0)
        stats = writer.upsert(conn, "Item", key, [{**item, "SyncToken": "1", "Active": False}],
                              synced_at=T0 + timedelta(seconds=1))
    assert stats.updated == 1 and stats.inactivated == 1
    _, links = tables_for("Payment")
    assert sorted((r.line_no, r.link_no, r.linked_txn_id, r.linked_txn_type, r.amount)
                  for r in _rows(engine, links, key)) == [(1, 1, "38", "Invoice", Decimal("634.60")),
                                                          (2, 1, "41", "CreditMemo", Decimal("40.00"))]
    (row,) = _rows(engine, tables_for("Item")[0], key)
    assert row.is_active is False and row.unit_price == Decimal("275.1234567")
    assert writer.counts("Item", key) == {"active": 0, "inactive": 1, "deleted": 0}


def test_sync_state_round_trips(engine: Engine) -> None:
    writer = WarehouseWriter(engine)
    key = _key()
    assert writer.cursors(key) == {} and writer.progress(key, "Invoice") is None
    with writer.begin() as conn:
        writer.save_cursor(conn, key, "Invoice", cdc_cursor=T0, full_refresh_at=T0, now=T0)
        writer.save_progress(conn, key, "Invoice", run_id="r1", start_position=2001, rows_done=2000,
                             started_at=T0, now=T0)
    with writer.begin() as conn:
        writer.save_cursor(conn, key, "Invoice", cdc_cursor=T0 + timedelta(hours=1), now=T0)
    state = writer.cursors(key)["Invoice"]
    assert state.cdc_cursor == T0 + timedelta(hours=1) and state.last_full_refresh_at == T0
    progress = writer.progress(key, "Invoice")
    assert progress is not None and (progress.start_position, progress.rows_done, progress.started_at) == (
        2001, 2000, T0)
    with writer.begin() as conn:
        writer.clear_progress(conn, key, "Invoice")
    assert writer.progress(key, "Invoice") is None


def test_a_first_load_batch_that_meets_a_stored_row_is_caught(engine: Engine) -> None:
    """``assume_new`` skips the lookup; a row that is there after all must not slip through."""
    writer = WarehouseWriter(engine)
    key = _key()
    with writer.begin() as conn:
        writer.upsert(conn, "Invoice", key, [_invoice("1", total=10.0)], synced_at=T0)
    batch = writer.prepare_batch("Invoice", key, [_invoice("1", total=12.0, sync="1")], synced_at=T0,
                                 assume_new=True)
    with pytest.raises(writer.integrity_errors()), writer.begin() as conn:  # refused, nothing half-written
        writer.write_batch(conn, batch)
    assert _rows(engine, tables_for("Invoice")[0], key)[0].total_amt == Decimal("10.00")
    batch.assume_new = False  # what the caller does next: the careful way
    with writer.begin() as conn:
        writer.write_batch(conn, batch)
    (row,) = _rows(engine, tables_for("Invoice")[0], key)
    assert row.total_amt == Decimal("12.00") and row.sync_token == "1"
