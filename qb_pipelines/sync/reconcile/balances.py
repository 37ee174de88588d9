"""Open balances against QBO's as-of reports: receivables per customer, and customer balances.

* :func:`open_receivables`: the A/R sub-ledger computed from landed rows (open invoice balances,
  less credit memos' remaining credit and payments' unapplied amounts, plus journal entry lines
  on A/R accounts) per customer against AgedReceivables, and in total against the
  BalanceSheet's A/R section (group ``AR``);
* :func:`customer_balances`: ``qbo_customer.balance`` per customer against CustomerBalance.

Both compare *current* balances (the warehouse holds today's Balance of each document), so run
them on the latest month's reports, whose report date is on or after the last transaction;
older months' as-of figures legitimately differ. They cost no API call: the reports are passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.sync import reports as report_mod
from qb_pipelines.sync.reconcile.landed import WarehouseTable, connect, landed_bodies_if_any, table_exists
from qb_pipelines.sync.reconcile.ledger import landed_chart
from qb_pipelines.sync.reconcile.outcome import (
    MAX_MISMATCHES,
    CheckOutcome,
    cents,
    cents_by_id,
    compare_amounts,
    dollars,
    full_refresh_fix,
    outcome,
)
from qb_pipelines.sync.reconcile.postings import postings
from qb_pipelines.sync.reconcile.report_frames import Report, as_frame, report_end, report_labels


def landed_receivables(engine: Engine | Connection, company_key: str, as_of: str) -> dict[str, int]:
    """Open A/R per customer (cents) from landed rows dated on or before ``as_of``.

    QBO's A/R sub-ledger: open invoice balances (the typed ``balance`` column people query),
    less credit memos' remaining credit and payments' unapplied amounts, plus journal-entry
    lines on A/R accounts (from their raw JSON: journal entries are few).
    """
    per: dict[str, int] = defaultdict(int)
    cutoff = date.fromisoformat(as_of)
    sources = (("Invoice", "balance", 1), ("CreditMemo", "remaining_credit", -1), ("Payment", "unapplied_amt", -1))
    with connect(engine) as conn:
        for entity, column, sign in sources:
            if not table_exists(conn, entity):
                continue
            wt = WarehouseTable(conn, entity)
            value = wt.table.c[column]
            if entity == "CreditMemo":
                value = sa.func.coalesce(value, wt.table.c.balance)
            query = (sa.select(wt.table.c.customer_ref_id, sa.func.sum(value))
                     .where(wt.where_live(company_key), wt.table.c.txn_date <= cutoff,
                            wt.table.c.customer_ref_id.is_not(None))
                     .group_by(wt.table.c.customer_ref_id))
            for customer, amount in conn.execute(query):
                per[str(customer)] += sign * cents(amount)
    if table_exists(engine, "JournalEntry"):
        chart = landed_chart(engine, company_key)
        ar_accounts = chart.ids_of_type("Accounts Receivable")
        for body in landed_bodies_if_any(engine, company_key, "JournalEntry"):
            if str(body.get("TxnDate") or "") > as_of:
                continue
            for p in postings("JournalEntry", body, chart, {}):
                if p.account_id in ar_accounts and p.customer_id:
                    per[p.customer_id] += p.cents
    return {k: v for k, v in per.items() if v != 0}


def _open_invoice_ids(engine: Engine | Connection, company_key: str, customers: Iterable[str], as_of: str
                      ) -> dict[str, list[str]]:
    """The open invoices of the given customers (to point at in a failed check)."""
    wanted = [c for c in customers if c != "TOTAL"]
    if not wanted or not table_exists(engine, "Invoice"):
        return {}
    wt = WarehouseTable(engine, "Invoice")
    t = wt.table
    query = (sa.select(t.c.customer_ref_id, t.c.id)
             .where(wt.where_live(company_key), t.c.customer_ref_id.in_(wanted[:MAX_MISMATCHES]),
                    t.c.txn_date <= date.fromisoformat(as_of), t.c.balance != 0)
             .order_by(t.c.customer_ref_id, t.c.id))
    out: dict[str, list[str]] = defaultdict(list)
    with connect(engine) as conn:
        for customer, ident in conn.execute(query):
            out[str(customer)].append(str(ident))
    return dict(out)


def _report_customer_totals(df: pd.DataFrame) -> dict[str, int]:
    column = report_mod.value_column(df)
    return cents_by_id(report_mod.data_amounts(df, column))


def open_receivables(engine: Engine | Connection, company_key: str, aged_receivables: Report,
                     balance_sheet: Report | None = None, *, as_of: str | None = None) -> CheckOutcome:
    """Open receivables in the warehouse against AgedReceivables (per customer) and the
    BalanceSheet's A/R (in total).

    Args:
        engine: the warehouse.
        company_key: the company partition.
        aged_receivables: QBO's AgedReceivables (JSON or flattened), for the latest month.
        balance_sheet: QBO's BalanceSheet as of the same date (JSON or flattened), optional.
        as_of: the date the landed documents are cut at; default the report's date.

    Returns:
        Failed when a customer's open balance or the A/R total differs; mismatches name the
        customer, both amounts and the customer's open invoices.
    """
    aged = as_frame(aged_receivables)
    as_of = as_of or report_end(aged_receivables, aged)
    landed = landed_receivables(engine, company_key, as_of)
    reported = _report_customer_totals(aged)
    mismatches = compare_amounts(landed, reported, key_name="customer_id", labels=report_labels(aged))
    open_invoices = _open_invoice_ids(engine, company_key, [m["customer_id"] for m in mismatches], as_of)
    for m in mismatches:
        m["open_invoice_ids"] = open_invoices.get(m["customer_id"], [])[:10]
    aged_total = report_mod.summary_amount(aged, "GrandTotal")
    metadata: dict[str, Any] = {"as_of": as_of, "warehouse_open_ar": dollars(sum(landed.values())),
                                "aged_receivables_total": dollars(cents(aged_total)),
                                "customers_compared": len(set(landed) | set(reported))}
    if cents(aged_total) != sum(landed.values()):
        mismatches.append({"customer_id": "TOTAL", "warehouse": dollars(sum(landed.values())),
                           "qbo": dollars(cents(aged_total)), "difference": dollars(sum(landed.values()) - cents(aged_total)),
                           "source": "AgedReceivables TOTAL"})
    if balance_sheet is not None:
        bs = as_frame(balance_sheet)
        bs_ar = cents(report_mod.summary_amount(bs, "AR", report_mod.value_column(bs)) or 0)
        metadata["balance_sheet_ar"] = dollars(bs_ar)
        if bs_ar != sum(landed.values()):
            mismatches.append({"customer_id": "TOTAL", "warehouse": dollars(sum(landed.values())), "qbo": dollars(bs_ar),
                               "difference": dollars(sum(landed.values()) - bs_ar),
                               "source": "BalanceSheet Accounts Receivable"})
    ok = not mismatches
    return outcome(
        ok,
        f"open receivables {metadata['warehouse_open_ar']:.2f} as of {as_of} equal QBO's AgedReceivables"
        + (" and balance sheet A/R" if balance_sheet is not None else ""),
        f"open receivables as of {as_of} differ from QBO for {len(mismatches)} customers/totals "
        f"(warehouse {metadata['warehouse_open_ar']:.2f}, AgedReceivables {metadata['aged_receivables_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, ["Invoice", "Payment", "CreditMemo", "JournalEntry"]),
    )


def customer_balances(engine: Engine | Connection, company_key: str, customer_balance: Report
                      ) -> CheckOutcome:
    """``qbo_customer.balance`` per customer against QBO's CustomerBalance report.

    Customers the report leaves out have a zero balance in QBO.

    Returns:
        Failed when a customer's landed balance differs; mismatches name the customer and amounts.
    """
    df = as_frame(customer_balance)
    wt = WarehouseTable(engine, "Customer")
    with connect(engine) as conn:
        landed = {str(i): cents(b) for i, b in conn.execute(
            sa.select(wt.table.c.id, wt.col("balance")).where(wt.where_live(company_key)))}
    landed = {k: v for k, v in landed.items() if v != 0}
    reported = _report_customer_totals(df)
    mismatches = compare_amounts(landed, reported, key_name="customer_id", labels=report_labels(df))
    metadata = {"warehouse_total": dollars(sum(landed.values())), "qbo_total": dollars(sum(reported.values())),
                "customers_with_balance": len(reported)}
    ok = not mismatches
    return outcome(
        ok,
        f"{len(reported)} customer balances (total {metadata['qbo_total']:.2f}) equal QBO's CustomerBalance",
        f"{len(mismatches)} customer balances differ from QBO's CustomerBalance "
        f"(warehouse {metadata['warehouse_total']:.2f}, QBO {metadata['qbo_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, ["Customer"]),
    )

