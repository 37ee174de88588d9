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
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import Lines
from qb_pipelines.store import warehouse
from qb_pipelines.sync import reports as report_mod
from qb_pipelines.sync.reconcile.landed import WarehouseTable, connect, landed_bodies, table_exists
from qb_pipelines.sync.reconcile.ledger import landed_chart
from qb_pipelines.sync.reconcile.outcome import (
    MAX_MISMATCHES,
    CheckOutcome,
    cents,
    cents_by_id,
    compare_amounts,
    dollars,
    full_refresh_fix,
    make_outcome,
)
from qb_pipelines.sync.reconcile.posting_rules import postings
from qb_pipelines.sync.reconcile.report_frames import Report, as_frame, report_end, report_labels

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd

#: The party whose open documents make up accounts receivable.
AR_PARTY = "Customer"
#: What is still open on a document, first found wins: credit not yet applied (a credit memo),
#: a payment not yet applied to invoices, the balance still owed (an invoice).
_OPEN_AMOUNT_FIELDS = ("RemainingCredit", "UnappliedAmt", "Balance")


def receivable_entities() -> tuple[registry.EntityDef, ...]:
    """The transactions that move a customer's balance: invoices raise it, credit memos and
    payments lower it (the registry's ``party`` and ``party_sign``)."""
    return tuple(e for e in registry.posting_entities() if e.party == AR_PARTY and e.party_sign != 0)


def receivables_sources() -> tuple[str, ...]:
    """The landed entities open receivables are computed from: the documents that move a
    customer's balance, and journal entries (whose lines may post to A/R directly)."""
    return tuple(e.name for e in (*receivable_entities(), *registry.with_lines(Lines.JOURNAL)))


def _open_amount(wt: WarehouseTable) -> sa.ColumnElement:
    columns = [c for c in (wt.col(warehouse.column_name(f), required=False) for f in _OPEN_AMOUNT_FIELDS)
               if c is not None]
    if not columns:
        raise LookupError(f"warehouse table {wt.table.name} has no open amount column")
    return columns[0] if len(columns) == 1 else sa.func.coalesce(*columns)


def landed_receivables(engine: Engine | Connection, company_key: str, as_of: str) -> dict[str, int]:
    """Open A/R per customer (cents) from landed rows dated on or before ``as_of``.

    QBO's A/R sub-ledger: open invoice balances (the typed ``balance`` column people query),
    less credit memos' remaining credit and payments' unapplied amounts, plus journal-entry
    lines on A/R accounts (from their raw JSON: journal entries are few).
    """
    per: dict[str, int] = defaultdict(int)
    cutoff = date.fromisoformat(as_of)
    with connect(engine) as conn:
        for ent in receivable_entities():
            if not table_exists(conn, ent.name):
                continue
            wt = WarehouseTable(conn, ent.name)
            party = wt.col(warehouse.column_name(f"{AR_PARTY}Ref.value"))
            query = (sa.select(party, sa.func.sum(_open_amount(wt)))
                     .where(wt.where_live(company_key), wt.table.c.txn_date <= cutoff, party.is_not(None))
                     .group_by(party))
            for customer, amount in conn.execute(query):
                per[str(customer)] += ent.party_sign * cents(amount)
    journals = [e for e in registry.with_lines(Lines.JOURNAL) if table_exists(engine, e.name)]
    if journals:
        chart = landed_chart(engine, company_key)
        ar_accounts = chart.ids_of_type("Accounts Receivable")
        for ent in journals:
            for body in landed_bodies(engine, company_key, ent.name):
                if str(body.get("TxnDate") or "") > as_of:
                    continue
                for p in postings(ent.name, body, chart, {}):
                    if p.account_id in ar_accounts and p.customer_id:
                        per[p.customer_id] += p.cents
    return {k: v for k, v in per.items() if v != 0}


def _open_documents(engine: Engine | Connection, company_key: str, customers: Iterable[str], as_of: str
                    ) -> dict[str, list[str]]:
    """The open invoices of the given customers (to point at in a failed check)."""
    wanted = [c for c in customers if c != "TOTAL"][:MAX_MISMATCHES]
    out: dict[str, list[str]] = defaultdict(list)
    if not wanted:
        return {}
    for ent in receivable_entities():
        if ent.party_sign < 0 or not ent.balance_field or not table_exists(engine, ent.name):
            continue
        wt = WarehouseTable(engine, ent.name)
        party = wt.col(warehouse.column_name(f"{AR_PARTY}Ref.value"))
        query = (sa.select(party, wt.table.c.id)
                 .where(wt.where_live(company_key), party.in_(wanted),
                        wt.table.c.txn_date <= date.fromisoformat(as_of),
                        wt.col(warehouse.column_name(ent.balance_field)) != 0)
                 .order_by(party, wt.table.c.id))
        with connect(engine) as conn:
            for customer, ident in conn.execute(query):
                out[str(customer)].append(str(ident))
    return dict(out)


def _report_customer_totals(df: pd.DataFrame) -> dict[str, int]:
    column = report_mod.value_column(df)
    return cents_by_id(report_mod.data_amounts(df, column))


def _total_mismatch(landed: int, reported: int, source: str) -> list[dict[str, Any]]:
    """The A/R total against one report's, as a mismatch when they differ."""
    if landed == reported:
        return []
    return [{"customer_id": "TOTAL", "warehouse": dollars(landed), "qbo": dollars(reported),
             "difference": dollars(landed - reported), "source": source}]


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
    open_invoices = _open_documents(engine, company_key, [m["customer_id"] for m in mismatches], as_of)
    for m in mismatches:
        m["open_invoice_ids"] = open_invoices.get(m["customer_id"], [])[:10]
    total = sum(landed.values())
    aged_total = cents(report_mod.summary_amount(aged, "GrandTotal"))
    metadata: dict[str, Any] = {"as_of": as_of, "warehouse_open_ar": dollars(total),
                                "aged_receivables_total": dollars(aged_total),
                                "customers_compared": len(set(landed) | set(reported))}
    mismatches += _total_mismatch(total, aged_total, "AgedReceivables TOTAL")
    if balance_sheet is not None:
        bs = as_frame(balance_sheet)
        bs_ar = cents(report_mod.summary_amount(bs, "AR", report_mod.value_column(bs)) or 0)
        metadata["balance_sheet_ar"] = dollars(bs_ar)
        mismatches += _total_mismatch(total, bs_ar, "BalanceSheet Accounts Receivable")
    ok = not mismatches
    return make_outcome(
        ok,
        f"open receivables {metadata['warehouse_open_ar']:.2f} as of {as_of} equal QBO's AgedReceivables"
        + (" and balance sheet A/R" if balance_sheet is not None else ""),
        f"open receivables as of {as_of} differ from QBO for {len(mismatches)} customers/totals "
        f"(warehouse {metadata['warehouse_open_ar']:.2f}, AgedReceivables {metadata['aged_receivables_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, receivables_sources()),
    )


def customer_balances(engine: Engine | Connection, company_key: str, customer_balance: Report
                      ) -> CheckOutcome:
    """``qbo_customer.balance`` per customer against QBO's CustomerBalance report.

    Customers the report leaves out have a zero balance in QBO.

    Returns:
        Failed when a customer's landed balance differs; mismatches name the customer and amounts.
    """
    df = as_frame(customer_balance)
    party = registry.get(AR_PARTY)
    wt = WarehouseTable(engine, party.name)
    balance = wt.col(warehouse.column_name(str(party.balance_field)))
    with connect(engine) as conn:
        landed = {str(i): cents(b) for i, b in conn.execute(
            sa.select(wt.table.c.id, balance).where(wt.where_live(company_key)))}
    landed = {k: v for k, v in landed.items() if v != 0}
    reported = _report_customer_totals(df)
    mismatches = compare_amounts(landed, reported, key_name="customer_id", labels=report_labels(df))
    metadata = {"warehouse_total": dollars(sum(landed.values())), "qbo_total": dollars(sum(reported.values())),
                "customers_with_balance": len(reported)}
    ok = not mismatches
    return make_outcome(
        ok,
        f"{len(reported)} customer balances (total {metadata['qbo_total']:.2f}) equal QBO's CustomerBalance",
        f"{len(mismatches)} customer balances differ from QBO's CustomerBalance "
        f"(warehouse {metadata['warehouse_total']:.2f}, QBO {metadata['qbo_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, [party.name]),
    )

