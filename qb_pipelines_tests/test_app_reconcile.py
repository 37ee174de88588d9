"""The app against QuickBooks, as plain Python (:func:`qb_pipelines.sync.app_reconcile.reconcile_app`).

Through the real emulator and real landing: the app's records pushed, QuickBooks changed as its
users change it, the company landed with the change feed's recorder, then reconciled. The rules
the Dagster check (``test_defs_app_reconcile``) relies on: what counts as agreed (the app's values,
QuickBooks' own where the app left a field blank), the integration's own writes not landed yet,
a document's total and the balance the app was told, references to records the app does not
know, a conflict under review, and a fix made in QuickBooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.sync.app_reconcile import AppAgreement, Finding, differences, expected_values, reconcile_app
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import Connected, connect_company, emulator_settings


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime(request: pytest.FixtureRequest, shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[Runtime]:
    with throwaway_database(request.param, tmp_path, "qbp_app_rec") as url, \
            Runtime(emulator_settings(url, shared_emulator)) as rt:
        yield rt


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, *, version: int = 1,
         **extra: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=version, data=data, **extra)


def sync(c: Connected, *, feed: bool = True) -> None:
    recorder = FeedRecorder(c.runtime, c.runtime.resolve(c.key)) if feed else None
    land(c.client(max_retries=1), c.runtime.warehouse, c.key, on_changes=recorder)


def _qbo_id(c: Connected, entity: str, app_id: str) -> str:
    mapping = c.runtime.mappings.get(c.tenant, c.realm, entity, app_id)
    assert mapping is not None
    return mapping.qbo_id


def edit(c: Connected, entity: str, app_id: str, **fields: Any) -> dict[str, Any]:
    """Change a mapped object in QuickBooks as its users do (a sparse update)."""
    obj = c.read(entity, _qbo_id(c, entity, app_id))
    return c.act(entity, "update", {"Id": obj["Id"], "SyncToken": obj["SyncToken"], "sparse": True, **fields})


def found(result: AppAgreement, kind: str = "mismatch") -> list[tuple[str, str, str | None, Any, Any]]:
    return [(f.entity, f.app_id, f.field, f.app, f.qbo) for f in result.findings if f.kind == kind]


@pytest.fixture
def shop(shared_emulator: RunningEmulator, runtime: Runtime) -> Connected:
    """The app's customer, a service, a stocked item and an invoice, pushed and landed once."""
    company = connect_company(shared_emulator, runtime, conflict_policy="manual_review")
    send(company, "Customer", "c1", {"display_name": "Ada Lovelace", "email": "ada@x.co",
                                     "address": {"line1": "1 Analytical Row", "city": "London"}})
    send(company, "Item", "svc", {"name": "Lawn care", "type": "service", "unit_price": 50})
    send(company, "Item", "bag", {"name": "Mulch bag", "type": "inventory", "unit_price": 10, "qty_on_hand": 40})
    send(company, "Invoice", "inv1", {"customer_app_id": "c1", "number": "A-1",
                                      "lines": [{"item_app_id": "svc", "qty": 2, "unit_price": 50, "taxable": True},
                                                {"item_app_id": "bag", "qty": 3, "unit_price": 10}]})
    assert push(runtime, company.key).created == 4
    return company


def test_own_writes_wait_for_their_landing_and_quickbooks_own_values_count_as_agreed(shop: Connected) -> None:
    pushed = reconcile_app(shop.runtime, shop.key)
    assert pushed.passed and (pushed.mapped, pushed.compared, pushed.not_landed) == (4, 0, 4)

    sync(shop)
    landed = reconcile_app(shop.runtime, shop.key)
    # the invoice's date, terms and tax code, the item's income account: QuickBooks filled them,
    # the app left them blank; the stock the invoice sold moved QtyOnHand: none is a mismatch
    assert landed.passed and landed.compared == 4 and landed.findings == []
    assert shop.read("Item", _qbo_id(shop, "Item", "bag"))["QtyOnHand"] == 37

    # an update pushed but not landed yet is not compared with the stale row
    send(shop, "Customer", "c1", {"display_name": "Ada Lovelace", "email": "ada@engine.co",
                                  "address": {"line1": "1 Analytical Row", "city": "London"}}, version=2)
    assert push(shop.runtime, shop.key).updated == 1
    waiting = reconcile_app(shop.runtime, shop.key)
    assert waiting.passed and waiting.not_landed == 1 and waiting.compared == 3
    sync(shop)
    assert reconcile_app(shop.runtime, shop.key).compared == 4


def test_field_paths_a_fix_made_in_quickbooks_and_a_reference_to_a_record_the_app_does_not_know(
        shop: Connected) -> None:
    sync(shop)
    edit(shop, "Customer", "c1", BillAddr={"Line1": "1 Analytical Row", "City": "Paris"})
    stranger = shop.act("Customer", "create", {"DisplayName": "Someone Else"})
    edit(shop, "Invoice", "inv1", CustomerRef={"value": stranger["Id"]})
    sync(shop)
    result = reconcile_app(shop.runtime, shop.key)
    assert not result.passed
    assert found(result) == [
        ("Customer", "c1", "address.city", "London", "Paris"),
        ("Invoice", "inv1", "customer_app_id", "c1", f"QuickBooks id {stranger['Id']} (not mapped)"),
    ]
    assert result.by_entity["Invoice"] == {"mapped": 1, "compared": 1, "findings": 1}

    # the bookkeeper puts both back: the app and QuickBooks agree again
    edit(shop, "Customer", "c1", BillAddr={"Line1": "1 Analytical Row", "City": "London"})
    edit(shop, "Invoice", "inv1", CustomerRef={"value": _qbo_id(shop, "Customer", "c1")})
    sync(shop)
    assert reconcile_app(shop.runtime, shop.key).passed


def test_a_discount_shows_in_the_total_and_a_payment_the_app_never_heard_of_in_the_balance(shop: Connected) -> None:
    sync(shop)
    invoice = shop.read("Invoice", _qbo_id(shop, "Invoice", "inv1"))
    lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    edit(shop, "Invoice", "inv1", Line=[*lines, {"DetailType": "DiscountLineDetail", "DiscountLineDetail": {
        "PercentBased": True, "DiscountPercent": 10}}])
    sync(shop)
    result = reconcile_app(shop.runtime, shop.key)
    (total,) = found(result)
    assert total[:3] == ("Invoice", "inv1", "total_before_tax") and total[3] == 130.0 and total[4] < 130.0

    edit(shop, "Invoice", "inv1", Line=lines)  # the discount taken off again
    sync(shop)
    paid = shop.read("Invoice", invoice["Id"])
    shop.act("Payment", "create", {"CustomerRef": paid["CustomerRef"], "TotalAmt": 40, "Line": [
        {"Amount": 40, "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}]})
    sync(shop)  # the feed tells the app: the balance it knows is QuickBooks'
    assert reconcile_app(shop.runtime, shop.key).passed

    shop.act("Payment", "create", {"CustomerRef": paid["CustomerRef"], "TotalAmt": 10, "Line": [
        {"Amount": 10, "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}]})
    sync(shop, feed=False)  # landed, but the app was never told
    (balance,) = found(reconcile_app(shop.runtime, shop.key))
    assert balance == ("Invoice", "inv1", "balance", round(paid["TotalAmt"] - 40, 2), round(paid["TotalAmt"] - 50, 2))


def test_a_conflict_waits_for_review_as_a_mismatch_and_passes_once_resolved(shop: Connected) -> None:
    sync(shop)
    send(shop, "Customer", "c1", {"display_name": "Ada Lovelace", "email": "ada@app.co",
                                  "address": {"line1": "1 Analytical Row", "city": "London"}}, version=2)
    pending = reconcile_app(shop.runtime, shop.key)
    assert pending.passed and found(pending) == []  # the app's change waits: QuickBooks still agrees
    edit(shop, "Customer", "c1", PrimaryEmailAddr={"Address": "ada@qbo.co"})
    sync(shop)  # the change made in QuickBooks meets the app's: the review queue (manual review)
    row = shop.runtime.outbox.record(shop.tenant, "Customer", "c1")
    assert row.status == "review"
    review = reconcile_app(shop.runtime, shop.key)
    assert not review.passed and found(review) == [("Customer", "c1", "email", "ada@x.co", "ada@qbo.co")]

    shop.runtime.outbox.resolve(row.id, {**row.payload, "email": "ada@qbo.co"})  # keep QuickBooks'
    resolving = reconcile_app(shop.runtime, shop.key)  # the chosen values wait for the next push
    assert resolving.passed and found(resolving, "pending") == [("Customer", "c1", "email", "ada@qbo.co", "ada@qbo.co")]
    assert push(shop.runtime, shop.key).written == 0
    sync(shop)
    resolved = reconcile_app(shop.runtime, shop.key)
    assert resolved.passed and resolved.findings == [] and resolved.compared == 4


def test_agreed_values_and_differences_by_path() -> None:
    agreed = expected_values(
        {"number": "A-1", "memo": None, "lines": [{"item_app_id": "svc", "qty": 2}], "address": {"line1": "1 Row"}},
        {"number": "A-1", "memo": "QBO's", "txn_date": "2026-11-02", "lines": [{"qty": 2.0, "description": "Mow"}],
         "address": {"line1": "1 Row", "country": "US"}})
    assert agreed == {"number": "A-1", "memo": "QBO's", "txn_date": "2026-11-02",
                      "lines": [{"item_app_id": "svc", "qty": 2, "description": "Mow"}],
                      "address": {"line1": "1 Row", "country": "US"}}
    now = {"number": "A-1 ", "lines": [{"item_app_id": "svc", "qty": 3, "description": "Mow"}],
           "address": {"line1": "1 Row", "country": "CA"}}
    assert [d for key in agreed for d in differences(key, agreed[key], now.get(key))] == [
        ("memo", "QBO's", None), ("txn_date", "2026-11-02", None), ("lines[0].qty", 2, 3),
        ("address.country", "US", "CA")]
    assert differences("lines", [{"qty": 1}], [{"qty": 1}, {"qty": 2}]) == [("lines", [{"qty": 1}],
                                                                              [{"qty": 1}, {"qty": 2}])]
    sentence = Finding("mismatch", "Customer", "c1", "58", "phone", "555-1000", "555-7777").sentence()
    assert sentence == "Customer c1 (QuickBooks 58) phone: app '555-1000', QuickBooks '555-7777'"
