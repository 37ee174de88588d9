"""The project's QBO client against the emulator over real HTTP: CRUD, paging, COUNT, CDC, batch,
reports, PDFs and typed errors.

Tokens come from the emulator's control API and are refreshed through the real token endpoint
(``IntuitOAuth`` with the emulator's default app), exactly as a connected tenant's would be.
The helpers shared with the other ``test_qbo_*`` modules are in ``qbo_helpers``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.errors import (
    AuthorizationError,
    CDCLookbackError,
    DuplicateNameError,
    NotFoundError,
    QBOError,
    StaleObjectError,
    ValidationError,
)
from qb_pipelines_tests.harness import new_company
from qb_pipelines_tests.qbo_helpers import Recorder, counters, make_client, token_source


# --------------------------------------------------------------------------------------------- helpers
def income_account(client: QBOClient) -> dict[str, Any]:
    return next(iter(client.query_all("Account", where="AccountType = 'Income'")))


def service_item(client: QBOClient, name: str = "Pipe repair") -> dict[str, Any]:
    account = income_account(client)
    return client.create("Item", {"Name": name, "Type": "Service", "UnitPrice": 120,
                                  "IncomeAccountRef": {"value": account["Id"]}})


def invoice_body(customer: dict[str, Any], item: dict[str, Any], amount: float = 240.0) -> dict[str, Any]:
    return {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": amount / 120, "UnitPrice": 120}}],
    }


@pytest.fixture
def realm(emulator: RunningEmulator) -> str:
    return new_company(emulator, "Keller Plumbing")


# --------------------------------------------------------------------------------------------- CRUD
def test_crud_sparse_update_delete_and_void_send_qbo_headers(emulator: RunningEmulator, realm: str) -> None:
    rec = Recorder()
    reads: list[str] = []
    client = make_client(emulator, realm, recorder=rec, on_read=reads.append)

    customer = client.create("Customer", {"DisplayName": "Amy's Bird Sanctuary", "CompanyName": "Amy's",
                                          "PrimaryEmailAddr": {"Address": "amy@example.com"}})
    assert customer["Id"] and customer["SyncToken"] == "0"
    assert client.read("customer", customer["Id"])["DisplayName"] == "Amy's Bird Sanctuary"

    # sparse: only the sent field changes, the others stay
    updated = client.update("Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"],
                                         "Notes": "Pays on time"})
    assert updated["SyncToken"] == "1"
    assert updated["Notes"] == "Pays on time"
    assert updated["PrimaryEmailAddr"]["Address"] == "amy@example.com"
    assert updated["CompanyName"] == "Amy's"

    item = service_item(client)
    invoice = client.create("Invoice", invoice_body(updated, item))
    assert invoice["TotalAmt"] == 240.0
    voided = client.void("Invoice", invoice["Id"], invoice["SyncToken"])
    assert voided["TotalAmt"] == 0 and "Voided" in voided.get("PrivateNote", "")
    second = client.create("Invoice", invoice_body(updated, item, 120.0))
    deleted = client.delete("Invoice", second["Id"], second["SyncToken"])
    assert deleted["status"] == "Deleted"
    with pytest.raises(NotFoundError):
        client.read("Invoice", second["Id"])

    assert client.company_info()["CompanyName"] == "Keller Plumbing"
    assert "SalesFormsPrefs" in client.preferences()

    # what went over the wire: minorversion 75 and JSON everywhere, a requestid on every write
    assert rec.requests
    for sent in rec.requests:
        query = parse_qs(urlsplit(sent.url).query)
        assert query["minorversion"] == ["75"]
        assert sent.headers["Accept"] == "application/json"
        if sent.method == "POST" and not urlsplit(sent.url).path.endswith("/query"):
            (requestid,) = query["requestid"]
            assert 0 < len(requestid) <= 36
    writes = [s for s in rec.requests if "requestid" in (s.url or "")]
    assert len({parse_qs(urlsplit(s.url).query)["requestid"][0] for s in writes}) == len(writes) == 7
    # reads are reported for metering, writes are not
    assert client.stats.writes == 7
    assert len(reads) == client.stats.reads > 0 and set(reads) == {realm}


# --------------------------------------------------------------------------------------------- queries
def test_query_all_returns_every_row_exactly_once_and_count_agrees(emulator: RunningEmulator, realm: str) -> None:
    seed_company(emulator.emu, realm, invoices=2500)
    client = make_client(emulator, realm)

    assert client.count("Invoice") == 2500
    ids = [row["Id"] for row in client.query_all("Invoice")]
    assert len(ids) == 2500 and len(set(ids)) == 2500
    assert client.stats.pages == 3  # 1000 + 1000 + a short page of 500: no empty extra call

    # a page size QBO would otherwise cut at (its default 100) pages just as well
    small = list(client.query_pages("Invoice", where="TotalAmt > '0'", order_by="Id", page_size=100))
    assert all(len(p) <= 100 for p in small)
    assert len({r["Id"] for p in small for r in p}) == client.count("Invoice", where="TotalAmt > '0'")

    # the empty answer is {} and pages to nothing
    assert client.query("SELECT * FROM Invoice WHERE DocNumber = 'nope'") == {}
    assert list(client.query_all("Invoice", where="DocNumber = 'nope'")) == []


# --------------------------------------------------------------------------------------------- CDC
def test_cdc_splits_capped_windows_and_loses_nothing(emulator: RunningEmulator, realm: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qb_pipelines.qbo.client")
    seed_company(emulator.emu, realm, invoices=10_000)
    client = make_client(emulator, realm)
    since = datetime.now(UTC) - timedelta(days=29)
    where = f"MetaData.LastUpdatedTime >= '{since.replace(microsecond=0).isoformat()}'"
    truth_invoices = {r["Id"] for r in client.query_all("Invoice", where=where)}
    truth_payments = {r["Id"] for r in client.query_all("Payment", where=where)}
    assert len(truth_invoices) > 1000  # the test needs a window over QBO's cap

    calls_before = client.stats.api_calls
    changes = client.cdc(["Invoice"], since)
    ids = [o["Id"] for o in changes["Invoice"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == truth_invoices
    assert client.stats.api_calls - calls_before >= 2  # the window was split
    assert "next window from" in caplog.text and "not splittable" not in caplog.text

    # several entities whose total is over the cap: per entity, then per window
    both = client.cdc(["invoice", "Payment"], since)
    assert {o["Id"] for o in both["Invoice"]} == truth_invoices
    assert {o["Id"] for o in both["Payment"]} == truth_payments

    # tombstones come through
    victim = client.read("Payment", sorted(truth_payments)[0])
    client.delete("Payment", victim["Id"], victim["SyncToken"])
    after = client.cdc(["Payment"], datetime.now(UTC) - timedelta(minutes=5))
    assert next(o for o in after["Payment"] if o["Id"] == victim["Id"])["status"] == "Deleted"


def test_cdc_refuses_windows_older_than_30_days(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm)
    with pytest.raises(CDCLookbackError) as info:
        client.cdc(["Invoice"], datetime.now(UTC) - timedelta(days=31))
    assert client.stats.api_calls == 0  # refused before calling
    assert "full sync" in info.value.hint

    # QBO's clock is ahead of ours: its own refusal maps to the same error, with intuit_tid
    with EmulatorControl(emulator.url) as control:
        control.advance_clock(3 * 86400)
    client = make_client(emulator, realm)
    with pytest.raises(CDCLookbackError) as info:
        client.cdc(["Invoice"], datetime.now(UTC) - timedelta(days=29))
    assert info.value.status == 400 and info.value.code == "4001"
    assert info.value.intuit_tid


# --------------------------------------------------------------------------------------------- batch
def test_batch_of_70_makes_3_calls_matches_bids_and_surfaces_item_faults(emulator: RunningEmulator,
                                                                          realm: str) -> None:
    client = make_client(emulator, realm)
    client.create("Customer", {"DisplayName": "Taken Name"})
    items: list[dict[str, Any]] = [
        {"operation": "create", "Customer": {"DisplayName": f"Batch customer {i:02d}"}} for i in range(67)
    ]
    items.insert(10, {"operation": "create", "Customer": {"DisplayName": "Taken Name"}})
    items.insert(40, {"operation": "delete", "Invoice": {"Id": "987654", "SyncToken": "0"}})
    items.append({"bId": "q1", "Query": "SELECT COUNT(*) FROM Customer"})
    assert len(items) == 70
    before = counters(emulator, realm)["requests"]["batch"]

    results = client.batch(items)

    assert counters(emulator, realm)["requests"]["batch"] - before == 3
    assert len(results) == 70
    assert isinstance(results[10], DuplicateNameError) and results[10].code == "6240" and results[10].hint
    assert isinstance(results[40], NotFoundError) and results[40].code == "610" and results[40].intuit_tid
    names = [r["Customer"]["DisplayName"] for i, r in enumerate(results[:69]) if i not in (10, 40)]
    assert names == [f"Batch customer {i:02d}" for i in range(67)]  # matched to their items, in order
    assert results[69]["bId"] == "q1"
    assert client.count("Customer") == 68


# --------------------------------------------------------------------------------------------- reports, PDF
def test_report_and_pdf(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm)
    customer = client.create("Customer", {"DisplayName": "Report Customer"})
    invoice = client.create("Invoice", invoice_body(customer, service_item(client)))
    report = client.report("ProfitAndLoss", start_date=datetime.now(UTC).date() - timedelta(days=30),
                           end_date=datetime.now(UTC).date(), accounting_method="Accrual")
    assert report["Header"]["ReportName"] == "ProfitAndLoss"
    assert "Rows" in report and "Columns" in report
    pdf = client.pdf("Invoice", invoice["Id"])
    assert pdf.startswith(b"%PDF")


# --------------------------------------------------------------------------------------------- typed errors
def test_typed_errors_carry_code_element_hint_and_intuit_tid(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm)

    with pytest.raises(NotFoundError) as nf:
        client.read("Customer", "999999")
    assert (nf.value.status, nf.value.code) == (400, "610")

    customer = client.create("Customer", {"DisplayName": "Stale Co"})
    client.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "Notes": "first"})
    with pytest.raises(StaleObjectError) as stale:
        client.update("Customer", {"Id": customer["Id"], "SyncToken": "0", "Notes": "second"})
    assert stale.value.code == "5010" and "SyncToken" in stale.value.hint

    with pytest.raises(DuplicateNameError) as dup:
        client.create("Vendor", {"DisplayName": "Stale Co"})  # customers and vendors share names
    assert dup.value.code == "6240"

    with pytest.raises(ValidationError) as missing:
        client.create("Invoice", {"Line": []})
    assert missing.value.code == "2020" and missing.value.element

    with pytest.raises(ValidationError) as bad_query:
        client.query("SELECT FROM WHERE")
    assert bad_query.value.code == "4000"

    for err in (nf.value, stale.value, dup.value, missing.value, bad_query.value):
        assert isinstance(err, QBOError)
        assert err.intuit_tid and err.hint and err.message
        assert err.intuit_tid in str(err) and err.hint in str(err)

    # a token of another company: 403 / 3100
    other = new_company(emulator, "Other Co")
    wrong = make_client(emulator, realm, tokens=token_source(emulator, other))
    with pytest.raises(AuthorizationError) as denied:
        wrong.read("Customer", customer["Id"])
    assert denied.value.status == 403 and denied.value.code == "3100" and denied.value.intuit_tid
