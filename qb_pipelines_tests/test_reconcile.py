"""Reconciliation against QuickBooks: pass on a faithful load, fail naming ids when tampered with.

One emulator serves the demo company (every transaction type, voided and deleted documents,
inactive names); it is landed once per dialect with ``sync.ingest.land`` (full refresh) into a
migrated SQLite file and a throwaway PostgreSQL database (the ``landed`` fixture). Each tamper
test changes the warehouse inside a transaction, runs the check on that connection and rolls
back, so the load stays faithful for the next test.
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.sync import reconcile, reports
from qb_pipelines_tests.harness import DEMO_KEY as COMPANY
from qb_pipelines_tests.harness import Landed


def _one(conn: Connection | Engine, sql: str, **params: object) -> tuple:
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return tuple(c.execute(sa.text(sql), params).one())
    return tuple(conn.execute(sa.text(sql), params).one())


# --------------------------------------------------------------------------------------------
# Faithful load: everything passes
# --------------------------------------------------------------------------------------------


ENTITIES = ("Account", "Customer", "Vendor", "Item", "Invoice", "Payment", "Bill", "BillPayment", "Purchase",
            "JournalEntry", "Deposit", "CreditMemo", "TaxCode")


def test_faithful_load_passes_every_check(landed: Landed) -> None:
    snapshots = {e: reconcile.qbo_snapshot(landed.client, e) for e in ENTITIES}
    for entity in ENTITIES:
        outcome = reconcile.completeness(landed.engine, landed.client, COMPANY, entity, snapshot=snapshots[entity])
        assert outcome.passed, outcome.as_dict()
        assert outcome.metadata["warehouse_rows"] == outcome.metadata["qbo_rows"] > 0
        assert outcome.fix == ""
    for entity in ("Invoice", "Payment", "Bill", "BillPayment", "Purchase", "CreditMemo", "JournalEntry"):
        outcome = reconcile.transaction_totals(landed.engine, landed.client, COMPANY, entity,
                                               snapshot=snapshots.get(entity))
        assert outcome.passed, outcome.as_dict()
    r = landed.reports
    ar = reconcile.open_receivables(landed.engine, COMPANY, r["AgedReceivables"], r["BalanceSheet"])
    assert ar.passed, ar.as_dict()
    assert ar.metadata["warehouse_open_ar"] == ar.metadata["aged_receivables_total"] == ar.metadata["balance_sheet_ar"]
    assert ar.metadata["warehouse_open_ar"] > 0
    balances = reconcile.customer_balances(landed.engine, COMPANY, r["CustomerBalance"])
    assert balances.passed, balances.as_dict()
    ledger = reconcile.build_ledger(landed.engine, COMPANY, reports.parse_month(landed.month).end.isoformat())
    tb = reconcile.trial_balance(landed.engine, COMPANY, r["TrialBalance"], ledger=ledger)
    assert tb.passed, tb.as_dict()
    assert tb.metadata["warehouse_debits"] == tb.metadata["qbo_debits"] > 0
    assert tb.metadata["unbalanced_transactions"] == 0
    pl = reconcile.profit_and_loss(landed.engine, COMPANY, r["ProfitAndLoss"], ledger=ledger)
    assert pl.passed, pl.as_dict()
    assert pl.metadata["warehouse_netincome"] == pl.metadata["qbo_netincome"]
    assert pl.metadata["warehouse_income"] > 0


def test_report_checks_accept_flattened_reports_read_back_from_the_table(landed: Landed) -> None:
    """The asset checks can run on the landed report partitions instead of fresh JSON."""
    from qb_pipelines.store import report_tables

    month = landed.month
    for name in ("AgedReceivables", "CustomerBalance", "TrialBalance", "ProfitAndLoss", "BalanceSheet"):
        report_tables.replace_partition(landed.engine, COMPANY, name, month, reports.flatten(landed.reports[name]))
    read = {n: report_tables.read_partition(landed.engine, COMPANY, n, month)
            for n in ("AgedReceivables", "CustomerBalance", "TrialBalance", "BalanceSheet")}
    assert reconcile.open_receivables(landed.engine, COMPANY, read["AgedReceivables"], read["BalanceSheet"]).passed
    assert reconcile.customer_balances(landed.engine, COMPANY, read["CustomerBalance"]).passed
    assert reconcile.trial_balance(landed.engine, COMPANY, read["TrialBalance"]).passed


# --------------------------------------------------------------------------------------------
# Tampered warehouse: the checks fail and name the ids and amounts
# --------------------------------------------------------------------------------------------


def _open_invoice(conn: Connection | Engine) -> tuple[str, str, float, float]:
    """(id, customer id, total, balance) of a partly or wholly open invoice."""
    ident, customer, total, balance = _one(
        conn, "SELECT id, customer_ref_id, total_amt, balance FROM qbo_invoice "
              "WHERE company_key = :c AND balance > 0 AND is_deleted = :f ORDER BY id LIMIT 1", c=COMPANY, f=False)
    return str(ident), str(customer), float(total), float(balance)


def test_changed_total_amt_fails_transaction_totals_naming_the_invoice(landed: Landed) -> None:
    with landed.tampered() as conn:
        ident, _, total, _ = _open_invoice(conn)
        conn.execute(sa.text("UPDATE qbo_invoice SET total_amt = total_amt + 12.34 WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": ident})
        outcome = reconcile.transaction_totals(conn, landed.client, COMPANY, "Invoice")
    assert not outcome.passed
    assert outcome.mismatches == [{"id": ident, "warehouse": round(total + 12.34, 2), "qbo": total,
                                   "difference": 12.34, "field": "TotalAmt"}]
    assert outcome.metadata["warehouse_total_amt"] == round(outcome.metadata["qbo_total_amt"] + 12.34, 2)
    assert "qb-pipelines sync --company demo-co --full --entities Invoice" in outcome.fix


def test_deleted_row_fails_completeness_and_totals_naming_the_id(landed: Landed) -> None:
    with landed.tampered() as conn:
        ident, _, total, balance = _open_invoice(conn)
        conn.execute(sa.text("DELETE FROM qbo_invoice WHERE company_key = :c AND id = :i"), {"c": COMPANY, "i": ident})
        count = reconcile.completeness(conn, landed.client, COMPANY, "Invoice")
        totals = reconcile.transaction_totals(conn, landed.client, COMPANY, "Invoice")
    assert not count.passed
    assert count.metadata["qbo_rows"] == count.metadata["warehouse_rows"] + 1
    assert count.mismatches == [{"id": ident, "problem": "in QBO, missing from the warehouse"}]
    assert "--full --entities Invoice" in count.fix
    assert not totals.passed
    assert {(m["id"], m["field"], m["warehouse"], m["qbo"]) for m in totals.mismatches} == {
        (ident, "TotalAmt", 0.0, total), (ident, "Balance", 0.0, balance)}


def test_row_qbo_no_longer_has_and_flipped_active_flag_fail_completeness(landed: Landed) -> None:
    with landed.tampered() as conn:
        conn.execute(sa.text("UPDATE qbo_customer SET is_active = :f WHERE company_key = :c AND id = '1'"),
                     {"c": COMPANY, "f": False})
        # a purchase landed under an Id QBO does not have (and so its real Id is missing)
        moved = _one(conn, "SELECT MIN(id) FROM qbo_purchase WHERE company_key = :c", c=COMPANY)[0]
        conn.execute(sa.text("UPDATE qbo_purchase_line SET txn_id = '99999' WHERE company_key = :c AND txn_id = :i"),
                     {"c": COMPANY, "i": moved})
        conn.execute(sa.text("UPDATE qbo_purchase SET id = '99999' WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": moved})
        customers = reconcile.completeness(conn, landed.client, COMPANY, "Customer")
        purchases = reconcile.completeness(conn, landed.client, COMPANY, "Purchase")
    assert not customers.passed
    assert customers.mismatches == [{"id": "1", "problem": "Active differs", "warehouse": False, "qbo": True}]
    assert not purchases.passed
    assert purchases.mismatches == [{"id": str(moved), "problem": "in QBO, missing from the warehouse"},
                                    {"id": "99999", "problem": "in the warehouse, not in QBO (deleted there?)"}]


def test_large_company_compares_counts_first_and_ids_only_when_they_differ(landed: Landed) -> None:
    client = landed.client
    calls = client.stats.api_calls
    outcome = reconcile.completeness(landed.engine, client, COMPANY, "Invoice", list_ids_up_to=0)
    assert outcome.passed and outcome.metadata["ids_compared"] is False
    assert client.stats.api_calls - calls == 1  # one COUNT(*)
    with landed.tampered() as conn:
        ident, *_ = _open_invoice(conn)
        conn.execute(sa.text("DELETE FROM qbo_invoice WHERE company_key = :c AND id = :i"), {"c": COMPANY, "i": ident})
        outcome = reconcile.completeness(conn, client, COMPANY, "Invoice", list_ids_up_to=0)
    assert outcome.metadata["ids_compared"] is True
    assert [m["id"] for m in outcome.mismatches] == [ident]


def test_changed_customer_balance_fails_naming_the_customer(landed: Landed) -> None:
    with landed.tampered() as conn:
        _, customer, _, _ = _open_invoice(conn)
        before = float(_one(conn, "SELECT balance FROM qbo_customer WHERE company_key = :c AND id = :i",
                            c=COMPANY, i=customer)[0])
        conn.execute(sa.text("UPDATE qbo_customer SET balance = balance + 100 WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": customer})
        outcome = reconcile.customer_balances(conn, COMPANY, landed.reports["CustomerBalance"])
    assert not outcome.passed
    assert len(outcome.mismatches) == 1
    m = outcome.mismatches[0]
    assert (m["customer_id"], m["warehouse"], m["qbo"], m["difference"]) == (customer, round(before + 100, 2),
                                                                             before, 100.0)
    assert m["name"]  # the customer's display name from the report
    assert "--entities Customer" in outcome.fix


def test_changed_invoice_balance_fails_open_receivables_naming_customer_and_invoice(landed: Landed) -> None:
    r = landed.reports
    with landed.tampered() as conn:
        ident, customer, _, _ = _open_invoice(conn)
        conn.execute(sa.text("UPDATE qbo_invoice SET balance = balance - 5 WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": ident})
        outcome = reconcile.open_receivables(conn, COMPANY, r["AgedReceivables"], r["BalanceSheet"])
    assert not outcome.passed
    per_customer = [m for m in outcome.mismatches if m["customer_id"] == customer]
    assert len(per_customer) == 1 and per_customer[0]["difference"] == -5.0
    assert ident in per_customer[0]["open_invoice_ids"]
    sources = {m.get("source") for m in outcome.mismatches if m["customer_id"] == "TOTAL"}
    assert sources == {"AgedReceivables TOTAL", "BalanceSheet Accounts Receivable"}


def test_missing_journal_entry_fails_the_trial_balance_naming_its_accounts(landed: Landed) -> None:
    with landed.tampered() as conn:
        ident = _one(conn, "SELECT id FROM qbo_journal_entry WHERE company_key = :c ORDER BY id LIMIT 1", c=COMPANY)[0]
        conn.execute(sa.text("UPDATE qbo_journal_entry SET is_deleted = :t WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "t": True, "i": ident})
        je = next(b for b in reconcile.landed_bodies(landed.engine, COMPANY, "JournalEntry") if b["Id"] == str(ident))
        outcome = reconcile.trial_balance(conn, COMPANY, landed.reports["TrialBalance"])
    assert not outcome.passed
    accounts = {line["JournalEntryLineDetail"]["AccountRef"]["value"] for line in je["Line"]}
    named = {m["account_id"] for m in outcome.mismatches}
    # the entry's accounts (or Retained Earnings, for P&L accounts of an earlier fiscal year)
    assert named and named <= accounts | {"93"}
    assert all(m["difference"] != 0 and "name" in m for m in outcome.mismatches)


def test_missing_invoice_of_the_month_fails_profit_and_loss(landed: Landed) -> None:
    month = reports.parse_month(landed.month)
    with landed.tampered() as conn:
        ident, total = _one(conn, "SELECT id, total_amt FROM qbo_invoice WHERE company_key = :c AND txn_date >= :s "
                                  "AND total_amt > 0 ORDER BY id LIMIT 1", c=COMPANY, s=month.start)
        conn.execute(sa.text("UPDATE qbo_invoice SET is_deleted = :t WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "t": True, "i": ident})
        outcome = reconcile.profit_and_loss(conn, COMPANY, landed.reports["ProfitAndLoss"])
    assert not outcome.passed
    totals = {m["total"]: m for m in outcome.mismatches if m.get("source") == "ProfitAndLoss total"}
    assert "Income" in totals and "NetIncome" in totals
    assert totals["Income"]["difference"] < 0
    assert any(m.get("source") == "ProfitAndLoss account" for m in outcome.mismatches)
    assert float(total) > 0


# --------------------------------------------------------------------------------------------
# Pure maths
# --------------------------------------------------------------------------------------------


def _chart() -> reconcile.Chart:
    return reconcile.Chart([
        {"Id": "84", "Name": "Accounts Receivable (A/R)", "AccountType": "Accounts Receivable", "Classification": "Asset"},
        {"Id": "1", "Name": "Services", "AccountType": "Income", "Classification": "Revenue"},
        {"Id": "79", "Name": "Sales of Product Income", "AccountType": "Income", "Classification": "Revenue"},
        {"Id": "89", "Name": "Board of Equalization Payable", "AccountType": "Other Current Liability",
         "AccountSubType": "GlobalTaxPayable", "Classification": "Liability"},
        {"Id": "4", "Name": "Undeposited Funds", "AccountType": "Other Current Asset",
         "AccountSubType": "UndepositedFunds", "Classification": "Asset"},
    ])


def test_invoice_119_posts_as_quickbooks_books_it() -> None:
    """Reference §7.8's real taxed invoice: Dr A/R 314.28; Cr income 275 + 16; Cr tax 23.28."""
    invoice = {"Id": "119", "TotalAmt": 314.28, "CustomerRef": {"value": "17"},
               "Line": [{"Amount": 275.0, "DetailType": "SalesItemLineDetail",
                         "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "Qty": 1, "UnitPrice": 275}},
                        {"Amount": 16.0, "DetailType": "SalesItemLineDetail",
                         "SalesItemLineDetail": {"ItemRef": {"value": "17"}, "Qty": 4, "UnitPrice": 4}},
                        {"Amount": 291.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}],
               "TxnTaxDetail": {"TotalTax": 23.28, "TaxLine": [{"Amount": 23.28, "DetailType": "TaxLineDetail",
                                                               "TaxLineDetail": {"TaxRateRef": {"value": "3"}}}]}}
    items = {"5": {"Id": "5", "Type": "Service", "IncomeAccountRef": {"value": "79"}},
             "17": {"Id": "17", "Type": "NonInventory", "IncomeAccountRef": {"value": "79"}}}
    rows = reconcile.postings("Invoice", invoice, _chart(), items)
    assert [(p.account_id, p.cents, p.customer_id) for p in rows] == [
        ("84", 31428, "17"), ("79", -27500, "17"), ("79", -1600, "17"), ("89", -2328, "17")]
    voided = {**invoice, "PrivateNote": "Voided - duplicate"}
    assert reconcile.postings("Invoice", voided, _chart(), items) == []
    with pytest.raises(reconcile.UnbalancedTransaction, match="119"):
        reconcile.postings("Invoice", {**invoice, "TotalAmt": 300}, _chart(), items)


def test_payment_and_journal_entry_postings() -> None:
    payment = {"Id": "128", "TotalAmt": 387.0, "CustomerRef": {"value": "8"}}
    assert [(p.account_id, p.cents) for p in reconcile.postings("Payment", payment, _chart(), {})] == [
        ("4", 38700), ("84", -38700)]
    je = {"Id": "1", "Line": [
        {"Amount": 50, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Debit", "AccountRef": {"value": "84"},
            "Entity": {"Type": "Customer", "EntityRef": {"value": "3"}}}},
        {"Amount": 50, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {
            "PostingType": "Credit", "AccountRef": {"value": "1"}}}]}
    assert [(p.account_id, p.cents, p.customer_id) for p in reconcile.postings("JournalEntry", je, _chart(), {})] == [
        ("84", 5000, "3"), ("1", -5000, None)]


def test_compare_amounts_orders_by_size_and_treats_missing_as_zero() -> None:
    out = reconcile.compare_amounts({"1": 100, "2": 500, "3": 7}, {"1": 100, "2": 450, "4": 9}, labels={"4": "Four"})
    assert out == [{"id": "2", "warehouse": 5.0, "qbo": 4.5, "difference": 0.5},
                   {"id": "4", "warehouse": 0.0, "qbo": 0.09, "difference": -0.09, "name": "Four"},
                   {"id": "3", "warehouse": 0.07, "qbo": 0.0, "difference": 0.07}]
    assert (reconcile.cents("12.34"), reconcile.cents(None), reconcile.cents(""), reconcile.cents(7)) == (1234, 0, 0, 700)
    assert reconcile.fiscal_year_start(date(2026, 3, 5), 4) == date(2025, 4, 1)
