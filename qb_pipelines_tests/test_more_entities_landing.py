"""The entities and reports of issue 10 §16, landed and proved, on SQLite and PostgreSQL.

The demo company (which ends with purchase orders, transfers, card payments, a second tax agency,
a budget, recurring templates, exchange rates and attachments) is landed with
``sync.ingest.land`` into a database of each dialect migrated to head (so migration
``0009_more_entities`` is what creates their tables). Then: every new entity's rows equal the
emulator's; AgedPayables, VendorBalance and GeneralLedger have QBO's shapes and agree with each
other and the balance sheet; the payables and general-ledger checks pass on the faithful load
and fail, naming what differs, when the warehouse is tampered with.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlTokens
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.warehouse import WarehouseWriter, tables_for
from qb_pipelines.sync import quality, reconcile, reports
from qb_pipelines.sync.ingest import MODE_FULL, MODE_INCREMENTAL, land
from qb_pipelines_tests.harness import DEMO_KEY as COMPANY
from qb_pipelines_tests.harness import Landed

NEW = ("PurchaseOrder", "Transfer", "CreditCardPayment", "TaxAgency", "Budget", "RecurringTransaction",
       "ExchangeRate", "Attachable")


# the module's demo company landed on each dialect: conftest's ``landed`` (QBO's demo company, seed 7)


def _rows(engine: Any, entity: str, key: str = COMPANY) -> dict[str, sa.Row]:
    main, _ = tables_for(entity)
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(main).where(main.c.company_key == key))}


def _children(engine: Any, entity: str, key: str = COMPANY) -> list[sa.Row]:
    _, child = tables_for(entity)
    assert child is not None
    with engine.connect() as conn:
        return list(conn.execute(sa.select(child).where(child.c.company_key == key).order_by(child.c.txn_id,
                                                                                            child.c.line_no)))


# --------------------------------------------------------------------------------------------- landing
def test_the_new_entities_land_row_for_row_with_their_child_tables(landed: Landed) -> None:
    for entity in NEW:
        ent = registry.get(entity)
        exported = {ent.identity(b): b for b in landed.export(entity)}
        rows = _rows(landed.engine, entity)
        assert set(rows) == set(exported) and rows, entity
        for ident, body in exported.items():
            assert rows[ident].raw == body and not rows[ident].is_deleted, (entity, ident)

    rates = _rows(landed.engine, "ExchangeRate")
    assert {i.split(":")[0] for i in rates} == {"EUR", "GBP", "CAD"} and len(rates) == 9
    some = next(iter(rates.values()))
    assert some.id == f"{some.source_currency_code}:USD:{some.as_of_date.isoformat()}"
    assert isinstance(some.rate, Decimal) and some.target_currency_code == "USD"

    templates = _rows(landed.engine, "RecurringTransaction")
    assert sorted(r.type for r in templates.values()) == ["Bill", "Bill", "Invoice"]
    assert {r.recurring_info_name for r in templates.values()} >= {"Monthly Building Lease", "Telephone Bill"}
    assert sum(r.total_amt for r in templates.values()) == Decimal("1074.36")

    orders = _rows(landed.engine, "PurchaseOrder")
    assert sorted(r.po_status for r in orders.values()) == ["Closed", "Open", "Open"]
    assert len(_children(landed.engine, "PurchaseOrder")) == 5
    assert sum(r.amount for r in _rows(landed.engine, "Transfer").values()) == Decimal("4500.00")
    payments = _rows(landed.engine, "CreditCardPayment").values()
    assert {(r.bank_account_ref_id, r.credit_card_account_ref_id) for r in payments} == {("35", "41")}
    agencies = _rows(landed.engine, "TaxAgency")
    assert sorted(r.display_name for r in agencies.values()) == ["Arizona Dept. of Revenue", "Board of Equalization"]
    assert all(r.is_active and r.tax_tracked_on_sales for r in agencies.values())
    assert {r.agency_ref_id for r in _rows(landed.engine, "TaxRate").values()} == {"1"}

    details = _children(landed.engine, "Budget")
    assert len(details) == 36 and {d.account_id for d in details} == {"57", "59", "20"}
    assert sum(d.amount for d in details) == Decimal("12") * (900 + 260 + 120)
    refs = _children(landed.engine, "Attachable")
    assert sorted((r.entity_type, bool(r.include_on_send)) for r in refs) == [("Bill", False), ("Invoice", True)]
    files = [r for r in _rows(landed.engine, "Attachable").values() if r.file_name]
    assert sorted((r.file_name, r.content_type, r.size) for r in files) == [
        ("signed_estimate.jpg", "image/jpeg", 1594261), ("tanias_nursery_receipt.pdf", "application/pdf", 184320)]


def test_the_new_entities_pass_their_completeness_totals_and_quality_checks(landed: Landed) -> None:
    for entity in NEW:
        snapshot = reconcile.qbo_snapshot(landed.client, entity)
        outcome = reconcile.completeness(landed.engine, landed.client, COMPANY, entity, snapshot=snapshot)
        assert outcome.passed and outcome.metadata["qbo_rows"] > 0, outcome.as_dict()
        if registry.get(entity).is_transaction:
            totals = reconcile.transaction_totals(landed.engine, landed.client, COMPANY, entity, snapshot=snapshot)
            assert totals.passed and totals.metadata["qbo_total_amt"] > 0, totals.as_dict()
        suite = quality.run_suite(landed.engine, entity, COMPANY)
        assert suite.passed, suite.as_dict()
    # the totals check compares a transfer's Amount, and names a tampered one
    with landed.tampered() as conn:
        main, _ = tables_for("Transfer")
        ident = conn.execute(sa.select(main.c.id).where(main.c.company_key == COMPANY).limit(1)).scalar_one()
        conn.execute(sa.update(main).where(main.c.company_key == COMPANY, main.c.id == ident)
                     .values(amount=main.c.amount + 1))
        totals = reconcile.transaction_totals(conn, landed.client, COMPANY, "Transfer")
    assert not totals.passed and [(m["id"], m["field"]) for m in totals.mismatches] == [(ident, "Amount")]


def test_an_incremental_run_brings_the_changes_of_the_new_entities(emulator: RunningEmulator,
                                                                  landed: Landed) -> None:
    realm = seed_demo_company(emulator.emu)
    key = f"co_{secrets.token_hex(4)}"
    client = QBOClient(realm, EmulatorControlTokens(emulator.url, realm), environment("emulator", emulator.url))
    writer = WarehouseWriter(landed.engine)

    def now() -> datetime:
        return datetime.fromtimestamp(emulator.emu.clock.timestamp(), UTC)

    first = land(client, writer, key, NEW, now=now)
    assert all(e.mode == MODE_FULL for e in first.entities.values())

    def act(entity: str, operation: str, body: dict) -> dict:
        with EmulatorControl(emulator.url) as control:
            return control.act(realm, entity, operation, body)[entity]

    transfer = act("Transfer", "create", {"FromAccountRef": {"value": "36"}, "ToAccountRef": {"value": "35"},
                                          "Amount": 77.0})
    order = next(iter(_rows(landed.engine, "PurchaseOrder", key).values()))
    act("PurchaseOrder", "update", {"Id": order.id, "PrivateNote": "call the vendor"})
    template = next(r for r in _rows(landed.engine, "RecurringTransaction", key).values() if r.type == "Invoice")
    act("RecurringTransaction", "delete", {"Invoice": {"Id": template.id}})  # the control API adds the SyncToken
    act("ExchangeRate", "create", {"SourceCurrencyCode": "EUR", "Rate": 1.2, "AsOfDate": "2026-01-15"})
    act("TaxAgency", "create", {"DisplayName": "Nevada Tax"})

    second = land(client, writer, key, NEW, now=now)
    assert second.api_calls == 2  # one CDC call, one batch for the entities CDC does not cover
    assert {n for n, e in second.entities.items() if e.mode == MODE_INCREMENTAL} == {
        e for e in NEW if registry.get(e).cdc}
    assert second.entities["Transfer"].inserted == 1 and second.entities["PurchaseOrder"].updated == 1
    assert second.entities["RecurringTransaction"].deleted == 1
    assert second.entities["ExchangeRate"].inserted == 1 and second.entities["TaxAgency"].inserted == 1
    assert _rows(landed.engine, "Transfer", key)[transfer["Id"]].amount == Decimal("77.00")
    assert _rows(landed.engine, "PurchaseOrder", key)[order.id].raw["PrivateNote"] == "call the vendor"
    assert _rows(landed.engine, "RecurringTransaction", key)[template.id].is_deleted
    assert "EUR:USD:2026-01-15" in _rows(landed.engine, "ExchangeRate", key)


# --------------------------------------------------------------------------------------------- reports
def _walk(rows: list[dict]) -> Iterator[dict]:
    for row in rows:
        yield row
        yield from _walk(row.get("Rows", {}).get("Row", []))


def test_the_new_reports_have_qbos_shapes_and_agree_with_each_other(landed: Landed) -> None:
    r = landed.reports
    aged, vendors, ledger = r["AgedPayables"], r["VendorBalance"], r["GeneralLedger"]
    assert [c["ColTitle"] for c in aged["Columns"]["Column"]] == ["", "Current", "1 - 30", "31 - 60", "61 - 90",
                                                                  "91 and over", "Total"]
    assert aged["Columns"]["Column"][0]["ColType"] == "Vendor" and vendors["Columns"]["Column"][0]["ColType"] == "Vendor"
    assert {o["Name"] for o in aged["Header"]["Option"]} == {"report_date", "NoReportData"}
    assert aged["Rows"]["Row"][-1]["group"] == "GrandTotal" and vendors["Rows"]["Row"][-1]["group"] == "GrandTotal"
    assert all("id" in row["ColData"][0] for row in aged["Rows"]["Row"][:-1])
    flat_aged, flat_vendors = reports.flatten(aged), reports.flatten(vendors)
    flat_bs = reports.flatten(r["BalanceSheet"])
    payable = reports.summary_amount(flat_bs, "AP", reports.value_column(flat_bs))
    assert payable > 0
    assert reports.summary_amount(flat_aged, "GrandTotal") == reports.summary_amount(flat_vendors, "GrandTotal") \
        == payable
    assert reports.data_amounts(flat_aged) == reports.data_amounts(flat_vendors)

    assert [(c["MetaData"][0]["Value"], c["ColType"]) for c in ledger["Columns"]["Column"]] == [
        ("tx_date", "Date"), ("txn_type", "String"), ("doc_num", "String"), ("name", "String"), ("memo", "String"),
        ("split_acc", "String"), ("subt_nat_amount", "Money"), ("rbal_nat_amount", "Money")]
    assert ledger["Header"]["ReportBasis"] == "Accrual"
    sections = ledger["Rows"]["Row"]
    assert sections and all(s["type"] == "Section" and s["Header"]["ColData"][0].get("id") for s in sections)
    for s in sections:
        first = s["Rows"]["Row"][0]["ColData"]
        assert first[0]["value"] == "Beginning Balance"
        assert s["Summary"]["ColData"][0]["value"] == f"Total for {s['Header']['ColData'][0]['value']}"
        # the running balance ends at the beginning plus the activity
        rows = [row for row in s["Rows"]["Row"][1:] if "ColData" in row]
        if rows:
            end = Decimal(first[-1]["value"]) + sum(Decimal(row["ColData"][6]["value"]) for row in rows)
            assert Decimal(rows[-1]["ColData"][-1]["value"]) == end
            assert all(row["ColData"][1].get("id") for row in rows)  # the transaction's Id
    flat = reports.flatten(ledger)
    accounts = reports.ledger_activity(flat)
    assert accounts and all(a.beginning is not None for a in accounts.values())
    # the month's debits equal its credits: natural-sign activity turned debit positive sums to 0
    chart = reconcile.Chart(reconcile.landed_bodies(landed.engine, COMPANY, "Account"))
    signed = sum((1 if chart.get(a).classification in ("Asset", "Expense") else -1) * v.activity
                 for a, v in accounts.items())
    assert signed == 0 and sum(a.postings for a in accounts.values()) > 0


def test_the_general_ledger_serves_its_documented_parameters(landed: Landed) -> None:
    month = reports.parse_month(landed.month)
    span = {"start_date": "2025-12-01", "end_date": month.end.isoformat()}
    checking = landed.client.report("GeneralLedger", **span, account="35", columns="tx_date,txn_type,account_name,"
                                                                                   "debt_amt,credit_amt")
    assert [s["Header"]["ColData"][0]["id"] for s in checking["Rows"]["Row"]] == ["35"]
    assert [c["MetaData"][0]["Value"] for c in checking["Columns"]["Column"]] == [
        "tx_date", "txn_type", "account_name", "debt_amt", "credit_amt"]
    types = {row["ColData"][1]["value"] for row in _walk(checking["Rows"]["Row"]) if row.get("type") == "Data"}
    assert {"Transfer", "Credit Card Payment", "Deposit", "Bill Payment (Check)"} <= types
    with pytest.raises(QBOError) as refused:
        landed.client.report("GeneralLedger", **span, accounting_method="Cash")
    assert refused.value.code == "2010"


# --------------------------------------------------------------------------------------------- checks
def test_payables_reconcile_on_the_faithful_load(landed: Landed) -> None:
    r = landed.reports
    ap = reconcile.open_payables(landed.engine, COMPANY, r["AgedPayables"], r["BalanceSheet"])
    assert ap.passed, ap.as_dict()
    assert ap.metadata["warehouse_open_ap"] == ap.metadata["aged_payables_total"] == ap.metadata["balance_sheet_ap"] > 0
    vendors = reconcile.vendor_balances(landed.engine, COMPANY, r["VendorBalance"])
    assert vendors.passed and vendors.metadata["vendors_with_balance"] > 0, vendors.as_dict()
    gl = reconcile.general_ledger(landed.engine, COMPANY, r["GeneralLedger"])
    assert gl.passed and gl.metadata["accounts_compared"] > 0, gl.as_dict()
    # an earlier month's general ledger too (its activity and the balances it starts from)
    earlier = reports.fetch_month(landed.client, "GeneralLedger", "2026-06")
    assert reconcile.general_ledger(landed.engine, COMPANY, earlier).passed


def test_a_tampered_bill_fails_the_payables_naming_vendor_and_bill(landed: Landed) -> None:
    r = landed.reports
    with landed.tampered() as conn:
        main, _ = tables_for("Bill")
        ident, vendor = conn.execute(sa.select(main.c.id, main.c.vendor_ref_id).where(
            main.c.company_key == COMPANY, main.c.balance > 0).order_by(main.c.id).limit(1)).one()
        conn.execute(sa.update(main).where(main.c.company_key == COMPANY, main.c.id == ident)
                     .values(balance=main.c.balance - 5))
        outcome = reconcile.open_payables(conn, COMPANY, r["AgedPayables"], r["BalanceSheet"])
    assert not outcome.passed
    per_vendor = [m for m in outcome.mismatches if m["vendor_id"] == vendor]
    assert len(per_vendor) == 1 and per_vendor[0]["difference"] == -5.0 and per_vendor[0]["name"]
    assert ident in per_vendor[0]["open_bill_ids"]
    assert {m["source"] for m in outcome.mismatches if m["vendor_id"] == "TOTAL"} == {
        "AgedPayables TOTAL", "BalanceSheet Accounts Payable"}
    assert "--entities Bill,BillPayment,VendorCredit,JournalEntry" in outcome.fix

    with landed.tampered() as conn:
        vendors, _ = tables_for("Vendor")
        conn.execute(sa.update(vendors).where(vendors.c.company_key == COMPANY, vendors.c.id == vendor)
                     .values(balance=vendors.c.balance + 3))
        balances = reconcile.vendor_balances(conn, COMPANY, r["VendorBalance"])
    assert not balances.passed and [m["vendor_id"] for m in balances.mismatches] == [vendor]


def test_an_unapplied_bill_payment_counts_against_its_vendor(landed: Landed) -> None:
    """A bill payment's TotalAmt beyond what its lines apply stays on the vendor (QBO keeps no
    UnappliedAmt for it): raising a landed payment's total is a difference of that vendor."""
    r = landed.reports
    with landed.tampered() as conn:
        main, _ = tables_for("BillPayment")
        ident, vendor = conn.execute(sa.select(main.c.id, main.c.vendor_ref_id).where(
            main.c.company_key == COMPANY).order_by(main.c.id.desc()).limit(1)).one()
        conn.execute(sa.update(main).where(main.c.company_key == COMPANY, main.c.id == ident)
                     .values(total_amt=main.c.total_amt + 40))
        outcome = reconcile.open_payables(conn, COMPANY, r["AgedPayables"])
    assert not outcome.passed
    assert [(m["vendor_id"], m["difference"]) for m in outcome.mismatches if m["vendor_id"] != "TOTAL"] == [
        (vendor, -40.0)]


def test_a_tampered_transfer_fails_the_general_ledger_naming_both_accounts(landed: Landed) -> None:
    month = reports.parse_month(landed.month)
    with landed.tampered() as conn:
        main, _ = tables_for("Transfer")
        ident, txn_date = conn.execute(sa.select(main.c.id, main.c.txn_date).where(main.c.company_key == COMPANY)
                                       .order_by(main.c.txn_date.desc()).limit(1)).one()
        raw = dict(next(b for b in reconcile.landed_bodies(conn, COMPANY, "Transfer") if b["Id"] == ident))
        raw["Amount"] = raw["Amount"] + 10
        conn.execute(sa.update(main).where(main.c.company_key == COMPANY, main.c.id == ident).values(raw=raw))
        gl = reports.fetch_month(landed.client, "GeneralLedger", txn_date.isoformat()[:7])
        outcome = reconcile.general_ledger(conn, COMPANY, gl)
        later = reconcile.general_ledger(conn, COMPANY, landed.reports["GeneralLedger"])
    assert not outcome.passed
    assert {(m["account_id"], m["source"].split(" (")[0]) for m in outcome.mismatches} == {
        ("35", "GeneralLedger activity"), ("36", "GeneralLedger activity")}
    assert all(abs(m["difference"]) == 10.0 for m in outcome.mismatches)
    # a later month starts from balances the tampered transfer moved
    if txn_date < month.start:
        assert not later.passed
        assert {m["source"].split(" (")[0] for m in later.mismatches} == {"GeneralLedger beginning balance"}
