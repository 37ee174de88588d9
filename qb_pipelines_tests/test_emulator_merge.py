"""A merge of two customers, as a QuickBooks user makes it, seen through CDC and landed incrementally.

What QBO does at a merge (reference §3, §7.2, §9.3): the losing record is deleted (CDC shows its
tombstone; the webhook says ``Merge`` on the survivor with ``deletedId``); every transaction and
sub-customer that named the loser names the survivor instead, each one a new version (SyncToken
+1, LastUpdatedTime now); the survivor is written too (SyncToken +1, LastUpdatedTime now) with its
new ``Balance`` (its own A/R plus the loser's) and ``BalanceWithJobs``. So a CDC window that
starts before the merge returns every object the merge changed, and an incremental landing makes
the warehouse equal QuickBooks without a full refresh.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.emulator.clock import qbo_timestamp
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlTokens
from qb_pipelines.qbo.environments import environment
from qb_pipelines.store.db import make_engine, migrate
from qb_pipelines.store.warehouse import WarehouseWriter, tables_for
from qb_pipelines.sync.ingest import MODE_INCREMENTAL, land
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.emulator_client import QBOTestClient, connect, control


def _invoice(client: QBOTestClient, customer: dict, item: dict, amount: float) -> dict:
    return client.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [
        {"Amount": amount, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": amount}}]})


class Books:
    """Two customers about to be merged, each with open A/R; the loser also has a job and a payment."""

    def __init__(self, client: QBOTestClient) -> None:
        self.client = client
        item = client.make("Item", {"Name": "Design", "Type": "Service", "IncomeAccountRef": {"value": "82"}})
        self.keeper = client.make("Customer", {"DisplayName": "Keeper Landscaping"})
        self.leaver = client.make("Customer", {"DisplayName": "Leaver Landscaping"})
        self.job = client.make("Customer", {"DisplayName": "Leaver Patio", "ParentRef": {"value": self.leaver["Id"]}})
        self.untouched = _invoice(client, self.keeper, item, 30.0)
        self.moved = [_invoice(client, self.leaver, item, 100.0), _invoice(client, self.leaver, item, 50.0)]
        self.job_invoice = _invoice(client, self.job, item, 40.0)
        self.payment = client.make("Payment", {
            "CustomerRef": {"value": self.leaver["Id"]}, "TotalAmt": 20.0,
            "Line": [{"Amount": 20.0, "LinkedTxn": [{"TxnId": self.moved[1]["Id"], "TxnType": "Invoice"}]}]})

    def merge(self, emulator: RunningEmulator) -> dict:
        """Merge the loser into the keeper as a QuickBooks user does (``emulator act ... merge``)."""
        response = control(emulator, "POST", f"companies/{self.client.realm}/act",
                           json={"entity": "Customer", "operation": "merge", "from_id": self.leaver["Id"],
                                 "into_id": self.keeper["Id"]})
        assert response.status_code == 200, response.text
        return response.json()["Customer"]


def _cdc(client: QBOTestClient, entities: str, since: str) -> dict[str, dict[str, dict]]:
    body = client.ok(client.raw("GET", "cdc", params={"entities": entities, "changedSince": since}), "CDCResponse")
    return {name: {row["Id"]: row for row in block[name]}
            for block in body[0]["QueryResponse"] for name in block
            if name not in ("startPosition", "maxResults", "totalCount")}


def test_cdc_after_a_merge_returns_the_survivor_with_its_balance_and_every_moved_object(
        emulator: RunningEmulator) -> None:
    client = connect(emulator, "Merge Co")
    books = Books(client)
    keeper_before = client.get("Customer", books.keeper["Id"])
    assert (keeper_before["Balance"], keeper_before["BalanceWithJobs"]) == (30.0, 30.0)
    moved_before = {i: client.get("Invoice", i)["SyncToken"] for i in [m["Id"] for m in books.moved]}
    emulator.emu.advance_clock(60)  # the merge happens a minute after everything above
    since = qbo_timestamp(emulator.emu.clock.timestamp() - 1)
    emulator.emu.advance_clock(1)

    merged = books.merge(emulator)
    changes = _cdc(client, "Customer,Invoice,Payment", since)

    # the survivor: written by the merge, with the loser's open A/R (100 + 50 - 20) and its job's
    keeper = client.get("Customer", books.keeper["Id"])
    assert merged == keeper
    assert keeper["Balance"] == 160.0 and keeper["BalanceWithJobs"] == 200.0
    assert int(keeper["SyncToken"]) == int(keeper_before["SyncToken"]) + 1
    assert keeper["MetaData"]["LastUpdatedTime"] > keeper_before["MetaData"]["LastUpdatedTime"]
    assert changes["Customer"][books.keeper["Id"]] == keeper
    # the loser: a tombstone
    assert changes["Customer"][books.leaver["Id"]]["status"] == "Deleted"
    assert client.read("Customer", books.leaver["Id"]).status_code == 400
    # its job now hangs under the survivor, with its path
    job = changes["Customer"][books.job["Id"]]
    assert job == client.get("Customer", books.job["Id"])
    assert job["ParentRef"]["value"] == books.keeper["Id"]
    assert job["FullyQualifiedName"] == "Keeper Landscaping:Leaver Patio" and job["Level"] == 1
    # every transaction that named the loser names the survivor, as a new version
    for invoice_id, token in moved_before.items():
        invoice = changes["Invoice"][invoice_id]
        assert invoice == client.get("Invoice", invoice_id)
        assert invoice["CustomerRef"] == {"value": books.keeper["Id"], "name": "Keeper Landscaping"}
        assert int(invoice["SyncToken"]) == int(token) + 1
    payment = changes["Payment"][books.payment["Id"]]
    assert payment["CustomerRef"]["value"] == books.keeper["Id"]
    # nothing else changed: the survivor's own invoice and the job's invoice are not in the window
    assert books.untouched["Id"] not in changes["Invoice"]
    assert books.job_invoice["Id"] not in changes["Invoice"]
    # the customer balance report agrees with the survivor's Balance
    report = client.raw("GET", "reports/CustomerBalance").json()
    rows = {r["ColData"][0]["value"]: r["ColData"][-1]["value"] for r in report["Rows"]["Row"] if "ColData" in r}
    assert Decimal(rows["Keeper Landscaping"]) == Decimal("160.00")


def _act_merge(emulator: RunningEmulator, realm: str, entity: str, from_id: str, into_id: str) -> dict:
    response = control(emulator, "POST", f"companies/{realm}/act",
                       json={"entity": entity, "operation": "merge", "from_id": from_id, "into_id": into_id})
    assert response.status_code == 200, response.text
    return response.json()[entity]


def test_a_merge_moves_only_references_to_the_merged_kind(emulator: RunningEmulator) -> None:
    client = connect(emulator, "Typed Refs Co")
    keeper = client.make("Customer", {"DisplayName": "Keeper"})
    leaver = client.make("Customer", {"DisplayName": "Leaver"})
    # customers and vendors are numbered separately, so a vendor shares the loser's Id
    vendors = [client.make("Vendor", {"DisplayName": f"Supplies {n}"}) for n in range(2)]
    vendor = next(v for v in vendors if v["Id"] == leaver["Id"])
    expense = client.make("Purchase", {
        "PaymentType": "Cash", "AccountRef": {"value": "35"}, "EntityRef": {"value": vendor["Id"], "type": "Vendor"},
        "Line": [{"Amount": 12.0, "DetailType": "AccountBasedExpenseLineDetail",
                  "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}}}]})
    _act_merge(emulator, client.realm, "Customer", leaver["Id"], keeper["Id"])
    kept = client.get("Purchase", expense["Id"])
    assert kept["EntityRef"]["value"] == vendor["Id"] and kept["SyncToken"] == expense["SyncToken"]


def test_an_account_merge_moves_its_postings_and_the_survivor_shows_them(emulator: RunningEmulator) -> None:
    client = connect(emulator, "Account Merge Co")
    old = client.make("Account", {"Name": "Garden Supplies Expense", "AccountType": "Expense"})
    item = client.make("Item", {"Name": "Mulch", "Type": "NonInventory", "IncomeAccountRef": {"value": "79"},
                                "ExpenseAccountRef": {"value": old["Id"]}})
    bill = client.make("Bill", {"VendorRef": {"value": client.make("Vendor", {"DisplayName": "Nursery"})["Id"]},
                                "Line": [{"Amount": 30.0, "DetailType": "ItemBasedExpenseLineDetail",
                                          "ItemBasedExpenseLineDetail": {"ItemRef": {"value": item["Id"]}}}]})
    assert bill["TotalAmt"] == 30.0
    assert client.get("Account", old["Id"])["CurrentBalance"] == 30.0
    survivor = _act_merge(emulator, client.realm, "Account", old["Id"], "17")  # into Job Expenses
    assert survivor["CurrentBalance"] == 30.0 and survivor["SyncToken"] == "1"
    assert client.get("Item", item["Id"])["ExpenseAccountRef"]["value"] == "17"
    trial = client.raw("GET", "reports/TrialBalance").json()
    names_with_amounts = {r["ColData"][0]["value"] for r in trial["Rows"]["Row"] if "ColData" in r}
    assert "Garden Supplies Expense" not in names_with_amounts


# ---------------------------------------------------------------------------------------- landing


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with throwaway_database(request.param, tmp_path_factory.mktemp("merge")) as url:
        engine = make_engine(url)
        try:
            migrate(engine)  # the warehouse and the company locks landing takes
            yield engine
        finally:
            engine.dispose()


def _export(emulator: RunningEmulator, realm: str, entity: str) -> dict[str, dict]:
    with EmulatorControl(emulator.url) as control:
        return {row["Id"]: row for row in control.export(realm, entity, include_deleted=True)}


def test_an_incremental_landing_after_a_merge_makes_the_warehouse_equal_quickbooks(
        emulator: RunningEmulator, warehouse: Engine) -> None:
    client = connect(emulator, "Merge Landing Co")
    books = Books(client)
    writer = WarehouseWriter(warehouse)
    key = f"co_{secrets.token_hex(4)}"
    qbo = QBOClient(client.realm, EmulatorControlTokens(emulator.url, client.realm),
                    environment("emulator", emulator_url=emulator.url), backoff_base_s=0.01, backoff_cap_s=0.05)
    entities = ["Customer", "Invoice", "Payment"]

    def now() -> datetime:
        return datetime.fromtimestamp(emulator.emu.clock.timestamp(), UTC)

    # the books were entered yesterday and landed then; the merge comes today, past the cursor's overlap
    emulator.emu.advance_clock(3600)
    land(qbo, writer, key, entities, now=now)
    emulator.emu.advance_clock(3600)
    books.merge(emulator)
    result = land(qbo, writer, key, entities, now=now)

    assert all(result.entities[e].mode == MODE_INCREMENTAL for e in entities)
    for entity in entities:
        exported = _export(emulator, client.realm, entity)
        main, _ = tables_for(entity)
        with warehouse.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(main).where(main.c.company_key == key))}
        assert {i for i, r in rows.items() if r.is_deleted} == {i for i, b in exported.items()
                                                                 if b.get("status") == "Deleted"}, entity
        for obj_id, body in exported.items():
            if body.get("status") != "Deleted":
                assert rows[obj_id].raw == body, (entity, obj_id)
    keeper = _export(emulator, client.realm, "Customer")[books.keeper["Id"]]
    with warehouse.connect() as conn:
        main, _ = tables_for("Customer")
        landed = conn.execute(sa.select(main.c.balance).where(main.c.company_key == key,
                                                              main.c.id == books.keeper["Id"])).scalar_one()
    assert landed == Decimal("160.00") == Decimal(str(keeper["Balance"])).quantize(Decimal("0.01"))
