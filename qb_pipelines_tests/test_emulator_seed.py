"""Seeding: the demo company and bulk companies are deterministic, consistent and engine-exact.

The demo company is built through the engine; the bulk path computes bodies itself for speed, so
one test replays a bulk seed through ``engine.create`` and compares every stored body, posting
and balance: the two paths cannot drift apart. Balances and links are checked where a client
sees them, over HTTP with the emulator's own tokens.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests

from qb_pipelines.emulator import seed as seeding
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines_tests.emulator_client import control, issue_tokens
from qb_pipelines_tests.samples import SAMPLES


# ------------------------------------------------------------------------------------ helpers
def _objects(emu: Emulator, realm: str) -> dict[tuple[str, int], dict]:
    with emu.db.read() as c:
        rows = c.execute("SELECT entity, id, body FROM objects WHERE realm=?", (realm,)).fetchall()
    return {(e, i): orjson.loads(b) for e, i, b in rows}


def _without_times(body: Any) -> Any:
    """A body with its MetaData times (and other wall-clock stamps) removed."""
    if isinstance(body, dict):
        return {k: _without_times(v) for k, v in body.items() if k not in ("MetaData", "CompanyStartDate")}
    if isinstance(body, list):
        return [_without_times(v) for v in body]
    return body


def _same_shape(a: Any, b: Any, where: str = "") -> None:
    """Equal values (0 == 0.0) and the same keys in the same order, recursively."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            _same_shape(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_shape(x, y, f"{where}[{n}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _ledger_total(emu: Emulator, realm: str) -> float:
    with emu.db.read() as c:
        return c.execute("SELECT COALESCE(SUM(amount), 0) FROM postings WHERE realm=?", (realm,)).fetchone()[0]


class Api:
    """A minimal QBO client: bearer token from the control API, queries over HTTP."""

    def __init__(self, running: RunningEmulator, realm: str) -> None:
        self.url = running.url
        self.realm = realm
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {issue_tokens(running, realm)['access_token']}",
                                     "Accept": "application/json"})

    def query(self, text: str) -> dict:
        r = self.session.get(f"{self.url}/v3/company/{self.realm}/query",
                             params={"query": text, "minorversion": "75"}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["QueryResponse"]

    def all(self, entity: str, where: str = "") -> list[dict]:
        rows: list[dict] = []
        start = 1
        while True:
            page = self.query(f"SELECT * FROM {entity} {where} STARTPOSITION {start} MAXRESULTS 1000")
            got = page.get(entity, [])
            rows.extend(got)
            if len(got) < 1000:
                return rows
            start += 1000


def _check_receivables(api: Api) -> dict[str, list[dict]]:
    """Every customer's Balance is its open invoices less its open credits and unapplied payments,
    and payments and invoices are linked both ways with matching amounts."""
    customers = api.all("Customer", "WHERE Active IN (true, false)")
    invoices = api.all("Invoice")
    payments = api.all("Payment")
    credits = api.all("CreditMemo")
    expected: dict[str, float] = defaultdict(float)
    for inv in invoices:
        expected[inv["CustomerRef"]["value"]] += inv["Balance"]
    for cm in credits:
        expected[cm["CustomerRef"]["value"]] -= cm["Balance"]
    for pay in payments:
        expected[pay["CustomerRef"]["value"]] -= pay["UnappliedAmt"]
    for cust in customers:
        assert cust["Balance"] == pytest.approx(expected[cust["Id"]], abs=0.005), cust["DisplayName"]
    by_id = {c["Id"]: c for c in customers}
    with_jobs = {c["Id"]: c["Balance"] for c in customers}
    for cust in customers:
        parent = (cust.get("ParentRef") or {}).get("value")
        while parent:
            with_jobs[parent] += cust["Balance"]
            parent = (by_id[parent].get("ParentRef") or {}).get("value")
    for cust in customers:
        assert cust["BalanceWithJobs"] == pytest.approx(with_jobs[cust["Id"]], abs=0.005)

    inv_by_id = {i["Id"]: i for i in invoices}
    applied: dict[str, float] = defaultdict(float)
    for pay in payments:
        lines_total = 0.0
        for line in pay["Line"]:
            for lt in line["LinkedTxn"]:
                if lt["TxnType"] == "Invoice":
                    inv = inv_by_id[lt["TxnId"]]
                    assert {"TxnId": pay["Id"], "TxnType": "Payment"} in inv["LinkedTxn"]
                    assert inv["CustomerRef"]["value"] == pay["CustomerRef"]["value"]
                    applied[inv["Id"]] += line["Amount"]
                    lines_total += line["Amount"]
                else:
                    lines_total -= line["Amount"]
        assert pay["UnappliedAmt"] == pytest.approx(pay["TotalAmt"] - lines_total, abs=0.005)
    for inv in invoices:
        pay_links = [lt for lt in inv["LinkedTxn"] if lt["TxnType"] == "Payment"]
        assert inv["Balance"] == pytest.approx(inv["TotalAmt"] - applied[inv["Id"]], abs=0.005), inv["Id"]
        assert len(pay_links) == len({p["Id"] for p in payments if any(
            lt["TxnId"] == inv["Id"] and lt["TxnType"] == "Invoice" for line in p["Line"] for lt in line["LinkedTxn"])})
    return {"customers": customers, "invoices": invoices, "payments": payments, "credits": credits}


@pytest.fixture
def demo(emulator: RunningEmulator) -> Iterator[tuple[RunningEmulator, str]]:
    realm = seeding.seed_demo_company(emulator.emu, seed=7)
    yield emulator, realm


# ------------------------------------------------------------------------------------ demo
def test_demo_company_is_deterministic_and_created_once() -> None:
    first, second = Emulator(EmulatorSettings()), Emulator(EmulatorSettings())
    try:
        realm_a = seeding.seed_demo_company(first, seed=7)
        realm_b = seeding.seed_demo_company(second, seed=7)
        assert realm_a == realm_b
        a, b = _objects(first, realm_a), _objects(second, realm_b)
        assert a.keys() == b.keys()
        for key in a:
            assert _without_times(a[key]) == _without_times(b[key]), key
        # seeding again finds the company instead of making another
        assert seeding.seed_demo_company(first, seed=7) == realm_a
        assert [c["name"] for c in first.engine.companies()] == [seeding.DEMO_COMPANY_NAME]
        # another seed gives another company
        third = Emulator(EmulatorSettings())
        realm_c = seeding.seed_demo_company(third, seed=8)
        c = _objects(third, realm_c)
        assert any(_without_times(c.get(k)) != _without_times(v) for k, v in a.items() if k[0] == "Invoice")
        third.close()
    finally:
        first.close()
        second.close()


def test_demo_company_has_a_years_realistic_activity(demo: tuple[RunningEmulator, str]) -> None:
    running, realm = demo
    api = Api(running, realm)
    info = api.query("SELECT * FROM CompanyInfo")["CompanyInfo"][0]
    assert info["CompanyName"] == "Craig's Design and Landscaping Services"

    counts = {e: api.query(f"SELECT COUNT(*) FROM {e}")["totalCount"] for e in (
        "Customer", "Vendor", "Employee", "Item", "Class", "Department", "Invoice", "Estimate", "Payment",
        "SalesReceipt", "CreditMemo", "RefundReceipt", "Bill", "BillPayment", "VendorCredit", "Purchase",
        "Deposit", "JournalEntry", "TimeActivity")}
    assert counts["Customer"] >= 25 and counts["Vendor"] >= 12 and counts["Employee"] == 3
    assert counts["Item"] >= 15 and counts["Class"] >= 3 and counts["Department"] >= 2
    for entity in ("Invoice", "Estimate", "Payment", "SalesReceipt", "CreditMemo", "RefundReceipt", "Bill",
                   "BillPayment", "VendorCredit", "Purchase", "Deposit", "JournalEntry", "TimeActivity"):
        assert counts[entity] >= 3, entity

    seen = _check_receivables(api)
    customers, invoices, payments = seen["customers"], seen["invoices"], seen["payments"]
    # sub-customers two levels deep, and inactive ones renamed as QBO does
    assert max(c.get("Level", 0) for c in customers) == 2
    job = next(c for c in customers if c.get("Level") == 2)
    assert job["FullyQualifiedName"] == "Freeman Sporting Goods:55 Twin Lane:Patio Phase 2"
    inactive = [c for c in customers if not c["Active"]]
    assert len(inactive) == 2 and all(c["DisplayName"].endswith(" (deleted)") for c in inactive)
    # dated across the past year
    dates = sorted(i["TxnDate"] for i in invoices)
    assert dates[0] < running.emu.clock.today() and (
        int(dates[-1][:4]) * 12 + int(dates[-1][5:7]) - int(dates[0][:4]) * 12 - int(dates[0][5:7])) >= 10
    # taxed, discounted, from an estimate, voided
    assert any((i["TxnTaxDetail"].get("TxnTaxCodeRef") or {}).get("value") == "2" and i["TxnTaxDetail"]["TotalTax"] > 0
               for i in invoices)
    assert any(line["DetailType"] == "DiscountLineDetail" for i in invoices for line in i["Line"])
    converted = [i for i in invoices if any(lt["TxnType"] == "Estimate" for lt in i["LinkedTxn"])]
    assert converted
    est_id = next(lt["TxnId"] for lt in converted[0]["LinkedTxn"] if lt["TxnType"] == "Estimate")
    estimate = api.query(f"SELECT * FROM Estimate WHERE Id = '{est_id}'")["Estimate"][0]
    assert estimate["TxnStatus"] == "Closed"
    assert {"TxnId": converted[0]["Id"], "TxnType": "Invoice"} in estimate["LinkedTxn"]
    voided = [i for i in invoices if i.get("PrivateNote", "").startswith("Voided")]
    assert len(voided) == 1 and voided[0]["TotalAmt"] == 0 and voided[0]["Balance"] == 0
    # payments: full, partial, across two invoices, with a credit memo, unapplied
    assert any(len(p["Line"]) >= 2 and all(lt["TxnType"] == "Invoice" for ln in p["Line"] for lt in ln["LinkedTxn"])
               for p in payments)
    assert any(lt["TxnType"] == "CreditMemo" for p in payments for ln in p["Line"] for lt in ln["LinkedTxn"])
    assert any(p["UnappliedAmt"] > 0 and not p["Line"] for p in payments)
    assert any(0 < i["Balance"] < i["TotalAmt"] for i in invoices)
    assert any(any(lt["TxnType"] == "Deposit" for lt in p.get("LinkedTxn", [])) for p in payments)
    bill_payments = api.all("BillPayment")
    assert {bp["PayType"] for bp in bill_payments} == {"Check", "CreditCard"}
    assert any(je.get("Adjustment") for je in api.all("JournalEntry"))
    # inventory: opening stock plus purchases less sales
    items = api.all("Item", "WHERE Active IN (true, false)")
    assert {i["Type"] for i in items} >= {"Service", "Inventory", "NonInventory", "Category"}
    assert any(i.get("SubItem") and i["FullyQualifiedName"].startswith("Sprinklers:") for i in items)
    assert sum(1 for i in items if not i["Active"]) == 2
    # the deleted expense is gone from queries but present as a tombstone
    with running.emu.db.read() as c:
        deleted = c.execute("SELECT COUNT(*) FROM objects WHERE realm=? AND status='Deleted'", (realm,)).fetchone()[0]
    assert deleted == 1
    assert _ledger_total(running.emu, realm) == pytest.approx(0, abs=1e-6)


def test_demo_company_numbers_its_lists_as_qbos_sample_company(demo: tuple[RunningEmulator, str]) -> None:
    """Ids a client may hard-code from QBO's sample company point at the same records here."""
    running, realm = demo
    api = Api(running, realm)
    real_items = {i["Id"]: i for i in json.loads((SAMPLES / "item_read_and_query_responses.json").read_text())
                  ["query_response"]["QueryResponse"]["Item"]}
    items = {i["Id"]: i for i in api.all("Item", "WHERE Active IN (true, false)")}
    # (an item the demo's user retired later carries QBO's inactive suffix)
    assert {i: items[i]["Name"].removesuffix(" (Deleted)") for i in real_items} == \
        {i: r["Name"] for i, r in real_items.items()}
    assert items["1"]["Active"] and items["2"]["Active"]  # Services and Hours can be invoiced
    invoice_sample = json.loads((SAMPLES / "invoice_records.json").read_text())
    customers = {c["Id"]: c for c in api.all("Customer", "WHERE Active IN (true, false)")}
    for record in invoice_sample if isinstance(invoice_sample, list) else invoice_sample.values():
        for ref in _refs(record, "CustomerRef") + _refs(record, "ItemRef"):
            listed = customers if ref in _refs(record, "CustomerRef") else items
            assert listed[ref["value"]]["FullyQualifiedName"].endswith(ref["name"]), ref
    assert customers["7"]["DisplayName"] == "Freeman Sporting Goods"
    assert customers["8"]["ParentRef"]["value"] == "7"
    terms = {t["Id"]: t["Name"] for t in api.all("Term")}
    assert terms["3"] == "Net 30"


def _refs(record: Any, key: str) -> list[dict]:
    """Every ``key`` reference with a name inside a sample record (any depth)."""
    found: list[dict] = []
    if isinstance(record, dict):
        for k, v in record.items():
            if k == key and isinstance(v, dict) and v.get("name"):
                found.append(v)
            else:
                found += _refs(v, key)
    elif isinstance(record, list):
        for v in record:
            found += _refs(v, key)
    return found


# ------------------------------------------------------------------------------------ bulk
def test_bulk_seed_of_500_invoices_over_http(emulator: RunningEmulator) -> None:
    created = control(emulator, "POST", "companies", json={"name": "Bulk Landscaping"})
    assert created.status_code == 201, created.text
    realm = created.json()["realmId"]
    seeded = control(emulator, "POST", f"companies/{realm}/seed", json={"invoices": 500, "seed": 3}, timeout=120)
    assert seeded.status_code == 200, seeded.text
    summary = seeded.json()
    assert summary["invoices"] == 500 and summary["customers"] == 10 and summary["items"] == 5
    assert 150 < summary["payments"] < 350

    api = Api(emulator, realm)
    assert api.query("SELECT COUNT(*) FROM Invoice")["totalCount"] == 500
    seen = _check_receivables(api)
    invoices = seen["invoices"]
    assert [i["DocNumber"] for i in invoices] == [str(n) for n in range(1001, 1501)]
    assert len(seen["payments"]) == summary["payments"]
    assert any(i["Balance"] == 0 for i in invoices) and any(i["Balance"] == i["TotalAmt"] for i in invoices)
    # spread over the past months, MetaData consistent with the paging columns
    months = {i["TxnDate"][:7] for i in invoices}
    assert len(months) >= 11
    assert all(i["MetaData"]["CreateTime"] <= i["MetaData"]["LastUpdatedTime"] for i in invoices)
    recent = api.query(f"SELECT COUNT(*) FROM Invoice WHERE MetaData.LastUpdatedTime >= '{invoices[-1]['TxnDate']}'")
    assert 0 < recent["totalCount"] < 500
    assert _ledger_total(emulator.emu, realm) == pytest.approx(0, abs=1e-6)
    # a second seed continues the numbering and keeps names unique
    again = control(emulator, "POST", f"companies/{realm}/seed", json={"invoices": 20, "seed": 3}, timeout=60).json()
    assert again["invoices"] == 20
    newest = api.query("SELECT * FROM Invoice ORDERBY Id DESC MAXRESULTS 1")["Invoice"][0]
    assert newest["DocNumber"] == "1520"
    names = [c["DisplayName"].lower() for c in api.all("Customer")]
    assert len(names) == len(set(names)) == 10 + 5


def test_bulk_bodies_are_exactly_what_the_engine_stores() -> None:
    """Replay a bulk seed's client inputs through engine.create: same Ids, bodies, postings, balances."""
    bulk, engine = Emulator(EmulatorSettings()), Emulator(EmulatorSettings())
    try:
        realm = bulk.engine.create_company("Replay")
        assert engine.engine.create_company("Replay") == realm
        seeder = seeding.BulkSeeder(bulk, realm, invoices=240, seed=11, customers=30, items=12,
                                    payments_ratio=0.8, batch_size=70, record_inputs=True)
        chunks: list[seeding.Chunk] = []
        summary = seeder.run(on_chunk=chunks.append)
        assert summary["invoices"] == 240

        for chunk in chunks:
            if chunk.inputs is None:
                continue
            for inp, body in zip(chunk.inputs, chunk.bodies, strict=True):
                out = engine.engine.create(realm, chunk.entity, inp)
                assert out["Id"] == body["Id"], (chunk.entity, out["Id"], body["Id"])

        a, b = _objects(bulk, realm), _objects(engine, realm)
        assert a.keys() == b.keys()
        for key in sorted(a):
            _same_shape(_without_times(a[key]), _without_times(b[key]), f"{key[0]} {key[1]}")

        with bulk.db.read() as c:
            pa = c.execute("SELECT entity, txn_id, seq, txn_date, account_id, amount, customer_id, vendor_id "
                           "FROM postings WHERE realm=? ORDER BY 1, 2, 3", (realm,)).fetchall()
        with engine.db.read() as c:
            pb = c.execute("SELECT entity, txn_id, seq, txn_date, account_id, amount, customer_id, vendor_id "
                           "FROM postings WHERE realm=? ORDER BY 1, 2, 3", (realm,)).fetchall()
        assert pa == pb and pa

        # the replay exercised every kind of body the bulk path writes
        invoices = [v for (e, _), v in a.items() if e == "Invoice"]
        payments = [v for (e, _), v in a.items() if e == "Payment"]
        customers = [v for (e, _), v in a.items() if e == "Customer"]
        assert any(c.get("Job") for c in customers) and any(c.get("SalesTermRef") for c in customers)
        assert any(c.get("Taxable") for c in customers)
        assert any(i["TxnTaxDetail"]["TotalTax"] > 0 for i in invoices)
        assert any(ln["DetailType"] == "DiscountLineDetail" for i in invoices for ln in i["Line"])
        assert any(len(p["Line"]) == 2 for p in payments)
        assert any(p["UnappliedAmt"] > 0 and p["Line"] for p in payments)
        assert any(not p["Line"] for p in payments)
        assert any(0 < i["Balance"] < i["TotalAmt"] for i in invoices)

        # MetaData: bulk invoices carry their payment's time, customers their last activity
        paid = next(i for i in invoices if i["LinkedTxn"])
        pay = a[("Payment", int(paid["LinkedTxn"][-1]["TxnId"]))]
        assert paid["MetaData"]["LastUpdatedTime"] == pay["MetaData"]["CreateTime"]
        assert paid["MetaData"]["CreateTime"] < paid["MetaData"]["LastUpdatedTime"]
        with bulk.db.read() as c:
            row = c.execute("SELECT created_at, updated_at FROM objects WHERE realm=? AND entity='Invoice' AND id=?",
                            (realm, int(paid["Id"]))).fetchone()
        assert row[0] < row[1]
    finally:
        bulk.close()
        engine.close()


def test_bulk_seed_is_deterministic_and_validates_its_arguments() -> None:
    one, two = Emulator(EmulatorSettings()), Emulator(EmulatorSettings())
    try:
        realm = one.engine.create_company("Same")
        assert two.engine.create_company("Same") == realm
        seeding.seed_company(one, realm, invoices=120, seed=5, batch_size=50)
        seeding.seed_company(two, realm, invoices=120, seed=5, batch_size=50)
        a, b = _objects(one, realm), _objects(two, realm)
        assert a.keys() == b.keys()
        for key in a:
            assert _without_times(a[key]) == _without_times(b[key]), key
        with pytest.raises(KeyError):
            seeding.seed_company(one, "123", invoices=5)
        with pytest.raises(ValueError):
            seeding.seed_company(one, realm, invoices=5, payments_ratio=2)
    finally:
        one.close()
        two.close()
