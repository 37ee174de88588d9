"""The change feed, through the real emulator and real landing: what the app hears of QuickBooks.

Each test pushes the app's records, then changes the company as a QuickBooks user would, lands
incrementally (CDC) with the feed recorder, and reads the feed as the app would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.webhooks import WebhookEvent
from qb_pipelines.store.feed import read_changes
from qb_pipelines.store.webhook_inbox import delivery_sha
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import Connected, connect_company, emulator_settings


@pytest.fixture
def runtime(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", shared_emulator)) as rt:
        yield rt


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, *, version: int = 1,
         **extra: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=version, data=data, **extra)


def sync(c: Connected) -> FeedRecorder:
    """One landing of the company with the feed recorder (a full load first, then CDC)."""
    recorder = FeedRecorder(c.runtime, c.runtime.resolve(c.key))
    land(c.client(), c.runtime.warehouse, c.key, on_changes=recorder)
    return recorder


def changes(c: Connected, after: int = 0) -> list[dict[str, Any]]:
    found, _ = c.runtime.feed.read(c.tenant, after)
    return [ch.as_json() for ch in found]


@pytest.fixture
def shop(shared_emulator: RunningEmulator, runtime: Runtime) -> Connected:
    """A company with the app's customer, item and invoice pushed and landed once."""
    company = connect_company(shared_emulator, runtime, conflict_policy="qbo_wins")
    send(company, "Customer", "c1", {"display_name": "Ada Lovelace", "phone": "555-1000", "email": "ada@x.co"})
    send(company, "Item", "svc", {"name": "Lawn care", "type": "service", "unit_price": 50})
    send(company, "Invoice", "inv1", {"customer_app_id": "c1", "number": "F-1",
                                      "lines": [{"item_app_id": "svc", "qty": 2, "unit_price": 50}]})
    assert push(runtime, company.key).created == 3
    sync(company)
    return company


def _qbo_id(c: Connected, entity: str, app_id: str) -> str:
    mapping = c.runtime.mappings.get(c.tenant, c.realm, entity, app_id)
    assert mapping is not None
    return mapping.qbo_id


def test_the_integrations_own_writes_never_come_back_as_changes(shop: Connected) -> None:
    assert changes(shop) == []
    recorder = sync(shop)  # CDC returns the pushed objects again: still nothing
    assert changes(shop) == [] and recorder.stats.entries == 0


def test_a_change_made_in_quickbooks_reaches_the_app_once(shop: Connected) -> None:
    qbo_id = _qbo_id(shop, "Customer", "c1")
    current = shop.read("Customer", qbo_id)
    shop.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                    "PrimaryPhone": {"FreeFormNumber": "555-9999"}})
    sync(shop)
    (change,) = changes(shop)
    assert (change["entity"], change["op"], change["app_id"], change["qbo_id"]) == ("Customer", "upsert", "c1", qbo_id)
    assert change["data"]["phone"] == "555-9999" and change["data"]["display_name"] == "Ada Lovelace"
    sync(shop)
    assert len(changes(shop)) == 1  # landed again: not told twice


def test_a_customer_born_in_quickbooks_arrives_without_app_id_and_the_app_links_it(shop: Connected) -> None:
    born = shop.act("Customer", "create", {"DisplayName": "Walk-in Customer", "PrimaryEmailAddr": {"Address": "w@x.co"}})
    sync(shop)
    (change,) = changes(shop)
    assert change["app_id"] is None and change["qbo_id"] == born["Id"] and change["data"]["email"] == "w@x.co"
    send(shop, "Customer", "c-walkin", {"display_name": "Walk-in Customer"}, qbo_id=born["Id"])
    result = push(shop.runtime, shop.key)
    assert result.linked == 1 and result.written == 0
    assert _qbo_id(shop, "Customer", "c-walkin") == born["Id"]


def test_a_payment_in_quickbooks_reaches_the_app_with_the_invoice_paid(shop: Connected) -> None:
    invoice = shop.read("Invoice", _qbo_id(shop, "Invoice", "inv1"))
    shop.act("Payment", "create", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": invoice["TotalAmt"], "PaymentRefNum": "CHK-42",
        "Line": [{"Amount": invoice["TotalAmt"], "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    sync(shop)
    found = {c["entity"]: c for c in changes(shop)}
    payment = found["Payment"]
    assert payment["data"]["amount"] == invoice["TotalAmt"] and payment["data"]["reference"] == "CHK-42"
    assert payment["data"]["applied"] == [{"invoice_qbo_id": invoice["Id"], "invoice_app_id": "inv1",
                                           "amount": invoice["TotalAmt"]}]
    assert payment["data"]["customer_app_id"] == "c1"
    paid = found["Invoice"]
    assert paid["app_id"] == "inv1" and paid["data"]["status"] == "paid" and paid["data"]["balance"] == 0


def test_a_void_in_quickbooks_reaches_the_app(shop: Connected) -> None:
    invoice = shop.read("Invoice", _qbo_id(shop, "Invoice", "inv1"))
    shop.act("Invoice", "void", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    sync(shop)
    (change,) = changes(shop)
    assert change["op"] == "void" and change["app_id"] == "inv1" and change["data"]["status"] == "voided"
    assert shop.runtime.mappings.get(shop.tenant, shop.realm, "Invoice", "inv1").state == "voided"


def test_a_merge_in_quickbooks_names_the_survivor(shop: Connected) -> None:
    loser = _qbo_id(shop, "Customer", "c1")
    survivor = shop.act("Customer", "create", {"DisplayName": "Ada (main account)"})
    shop.act("Customer", "merge", {}, from_id=loser, into_id=survivor["Id"])
    # Intuit's Merge notification names both sides; the web app stores it in the inbox
    shop.runtime.inbox.add_events([WebhookEvent(shop.realm, "Customer", survivor["Id"], "Merge",
                                                datetime.now(UTC).isoformat(), event_id="m1", deleted_id=loser)],
                                  delivery_sha=delivery_sha(b"merge"))
    sync(shop)
    merge = next(c for c in changes(shop) if c["op"] == "merge")
    assert merge["app_id"] == "c1" and merge["qbo_id"] == loser and merge["data"]["into_qbo_id"] == survivor["Id"]


def test_qbo_wins_over_a_waiting_app_change_and_the_app_hears_qbos_values(shop: Connected) -> None:
    qbo_id = _qbo_id(shop, "Customer", "c1")
    send(shop, "Customer", "c1", {"display_name": "Ada Lovelace", "phone": "555-1000", "email": "app@x.co"}, version=2)
    current = shop.read("Customer", qbo_id)
    shop.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                    "PrimaryEmailAddr": {"Address": "qbo@x.co"}})
    sync(shop)
    (change,) = changes(shop)
    assert change["data"]["email"] == "qbo@x.co"
    waiting = shop.runtime.outbox.record(shop.tenant, "Customer", "c1")
    assert waiting.status == "dropped" and "QuickBooks wins" in waiting.reason
    push(shop.runtime, shop.key)
    assert shop.read("Customer", qbo_id)["PrimaryEmailAddr"]["Address"] == "qbo@x.co"


def test_an_app_away_for_days_catches_up_from_its_cursor_without_gaps_or_duplicates(shop: Connected) -> None:
    qbo_id = _qbo_id(shop, "Customer", "c1")
    for phone in ("555-0001", "555-0002", "555-0003"):
        current = shop.read("Customer", qbo_id)
        shop.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                        "PrimaryPhone": {"FreeFormNumber": phone}})
        sync(shop)
    with shop.runtime.engine.connect() as conn:  # an app sharing the database
        first, cursor = read_changes(conn, shop.tenant, 0, limit=2)
        rest, cursor = read_changes(conn, shop.tenant, cursor, limit=100)
        none, same = read_changes(conn, shop.tenant, cursor)
    seqs = [c.seq for c in first + rest]
    assert seqs == sorted(set(seqs)) and len(seqs) == 3 and none == [] and same == cursor
    assert [c.data["phone"] for c in first + rest] == ["555-0001", "555-0002", "555-0003"]
