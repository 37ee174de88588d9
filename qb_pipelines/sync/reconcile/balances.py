"""Open balances against QBO's as-of reports: receivables and payables per party, and party balances.

Customers owe the company through Accounts Receivable, the company owes vendors through Accounts
Payable; both sub-ledgers are reconciled the same way, from the registry (the party's documents
are the posting transactions naming it with a ``party_sign``):

* :func:`open_receivables` / :func:`open_payables`: the sub-ledger computed from landed rows
  (open invoice or bill balances, less what credit memos and vendor credits have left, less what
  payments and bill payments left unapplied, plus journal-entry lines on the control accounts)
  per party against AgedReceivables / AgedPayables, and in total against the BalanceSheet's A/R
  or A/P section (group ``AR`` / ``AP``);
* :func:`customer_balances` / :func:`vendor_balances`: ``qbo_customer.balance`` /
  ``qbo_vendor.balance`` per party against CustomerBalance / VendorBalance.

A bill payment keeps no ``UnappliedAmt`` (a payment does): what it leaves unapplied is its
TotalAmt less what its lines apply (bills count, vendor credits used count back), read from its
landed link rows.

All compare *current* balances (the warehouse holds today's Balance of each document), so run
them on the latest month's reports, whose report date is on or after the last transaction;
older months' as-of figures legitimately differ. They cost no API call: the reports are passed in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
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
#: The party whose open documents make up accounts payable.
AP_PARTY = "Vendor"
#: What is still open on a document, first found wins: credit not yet applied (a credit memo),
#: a payment not yet applied to invoices, the balance still owed (an invoice, a bill).
_OPEN_AMOUNT_FIELDS = ("RemainingCredit", "UnappliedAmt", "Balance")


@dataclass(frozen=True)
class _SubLedger:
    """How one party's sub-ledger is named and signed (the words only change the messages)."""

    party: str
    control_type: str
    normal: int  # +1: a debit raises the party's balance (A/R); -1: a credit does (A/P)
    group: str  # the BalanceSheet section of the control account
    aged: str
    balance_report: str
    words: str  # "receivables" / "payables"
    short: str  # "A/R" / "A/P"
    key: str  # "ar" / "ap" (metadata keys)


_SUB_LEDGERS = {
    AR_PARTY: _SubLedger(AR_PARTY, "Accounts Receivable", 1, "AR", "AgedReceivables", "CustomerBalance",
                         "receivables", "A/R", "ar"),
    AP_PARTY: _SubLedger(AP_PARTY, "Accounts Payable", -1, "AP", "AgedPayables", "VendorBalance",
                         "payables", "A/P", "ap"),
}


def party_entities(party: str) -> tuple[registry.EntityDef, ...]:
    """The transactions that move a party's balance (the registry's ``party`` and ``party_sign``):
    invoices and bills raise it; credit memos, vendor credits, payments and bill payments lower it."""
    return tuple(e for e in registry.posting_entities() if e.party == party and e.party_sign != 0)


def receivable_entities() -> tuple[registry.EntityDef, ...]:
    """The transactions that move a customer's balance: invoices raise it, credit memos and
    payments lower it."""
    return party_entities(AR_PARTY)


def payable_entities() -> tuple[registry.EntityDef, ...]:
    """The transactions that move a vendor's balance: bills raise it, vendor credits and bill
    payments lower it."""
    return party_entities(AP_PARTY)


def party_sources(party: str) -> tuple[str, ...]:
    """The landed entities a party's open balances are computed from: its documents, and journal
    entries (whose lines may post to the control account directly)."""
    return tuple(e.name for e in (*party_entities(party), *registry.with_lines(Lines.JOURNAL)))


def receivables_sources() -> tuple[str, ...]:
    """The landed entities open receivables are computed from."""
    return party_sources(AR_PARTY)


def payables_sources() -> tuple[str, ...]:
    """The landed entities open payables are computed from."""
    return party_sources(AP_PARTY)


def _open_amount(wt: WarehouseTable) -> sa.ColumnElement | None:
    columns = [c for c in (wt.col(warehouse.column_name(f), required=False) for f in _OPEN_AMOUNT_FIELDS)
               if c is not None]
    if not columns:
        return None
    return columns[0] if len(columns) == 1 else sa.func.coalesce(*columns)


def _credits() -> frozenset[str]:
    """Documents a settlement line *uses up* instead of paying (credit memos, vendor credits)."""
    return frozenset(e.name for e in registry.ENTITIES if e.party_sign < 0 and e.balance_field)


def _unapplied_from_links(conn: Connection, ent: registry.EntityDef, wt: WarehouseTable, party: sa.ColumnElement,
                          company_key: str, cutoff: date) -> dict[str, int]:
    """Per party: what its settlements of ``ent`` left unapplied (cents), from their link rows.

    One link row per (line, linked document) repeats the line's Amount: each line counts once,
    negative when it uses up a credit.
    """
    _, child = warehouse.tables_for(ent)
    totals = {str(i): (str(p), cents(t)) for i, p, t in conn.execute(
        sa.select(wt.table.c.id, party, wt.col(warehouse.column_name(ent.total_field)))
        .where(wt.where_live(company_key), wt.table.c.txn_date <= cutoff, party.is_not(None)))}
    applied: dict[str, int] = defaultdict(int)
    if child is not None and totals:
        lines: dict[tuple[str, int], tuple[int, bool]] = {}
        for txn, line_no, kind, amount in conn.execute(
                sa.select(child.c.txn_id, child.c.line_no, child.c.linked_txn_type, child.c.amount)
                .where(child.c.company_key == company_key)):
            known = lines.get((str(txn), int(line_no)))
            lines[(str(txn), int(line_no))] = (cents(amount), bool(known and known[1]) or kind in _credits())
        for (txn, _line), (amount, credit) in lines.items():
            applied[txn] += -amount if credit else amount
    out: dict[str, int] = defaultdict(int)
    for txn, (pid, total) in totals.items():
        out[pid] += total - applied.get(txn, 0)
    return out


def landed_open_balances(engine: Engine | Connection, company_key: str, party: str, as_of: str) -> dict[str, int]:
    """A party's open balance per id (cents) from landed rows dated on or before ``as_of``.

    QBO's sub-ledger: open documents' balances (the typed ``balance`` column people query), less
    credits' remaining amounts and settlements' unapplied amounts, plus journal-entry lines on
    the control accounts (from their raw JSON: journal entries are few).
    """
    per: dict[str, int] = defaultdict(int)
    cutoff = date.fromisoformat(as_of)
    with connect(engine) as conn:
        for ent in party_entities(party):
            if not table_exists(conn, ent.name):
                continue
            wt = WarehouseTable(conn, ent.name)
            party_col = wt.col(warehouse.column_name(f"{party}Ref.value"))
            amount = _open_amount(wt)
            if amount is None:
                if not ent.link_lines:
                    raise LookupError(f"warehouse table {wt.table.name} has no open amount column")
                for pid, unapplied in _unapplied_from_links(conn, ent, wt, party_col, company_key, cutoff).items():
                    per[pid] += ent.party_sign * unapplied
                continue
            query = (sa.select(party_col, sa.func.sum(amount))
                     .where(wt.where_live(company_key), wt.table.c.txn_date <= cutoff, party_col.is_not(None))
                     .group_by(party_col))
            for pid, value in conn.execute(query):
                per[str(pid)] += ent.party_sign * cents(value)
    journals = [e for e in registry.with_lines(Lines.JOURNAL) if table_exists(engine, e.name)]
    if journals:
        sub = _SUB_LEDGERS[party]
        chart = landed_chart(engine, company_key)
        control = chart.ids_of_type(sub.control_type)
        for ent in journals:
            for body in landed_bodies(engine, company_key, ent.name):
                if str(body.get("TxnDate") or "") > as_of:
                    continue
                for p in postings(ent.name, body, chart, {}):
                    pid = p.customer_id if party == AR_PARTY else p.vendor_id
                    if p.account_id in control and pid:
                        per[pid] += sub.normal * p.cents
    return {k: v for k, v in per.items() if v != 0}


def landed_receivables(engine: Engine | Connection, company_key: str, as_of: str) -> dict[str, int]:
    """Open A/R per customer (cents) from landed rows dated on or before ``as_of``."""
    return landed_open_balances(engine, company_key, AR_PARTY, as_of)


def landed_payables(engine: Engine | Connection, company_key: str, as_of: str) -> dict[str, int]:
    """Open A/P per vendor (cents, what the company owes) from landed rows dated on or before ``as_of``."""
    return landed_open_balances(engine, company_key, AP_PARTY, as_of)


def _open_documents(engine: Engine | Connection, company_key: str, party: str, parties: list[str], as_of: str
                    ) -> tuple[str, dict[str, list[str]]]:
    """The open charges (invoices, bills) of the given parties, to point at in a failed check,
    and the metadata key naming them (``open_invoice_ids``)."""
    wanted = [p for p in parties if p != "TOTAL"][:MAX_MISMATCHES]
    charges = [e for e in party_entities(party) if e.party_sign > 0 and e.balance_field]
    key = f"open_{warehouse.snake(charges[0].name) if charges else 'document'}_ids"
    out: dict[str, list[str]] = defaultdict(list)
    if not wanted:
        return key, {}
    for ent in charges:
        if not table_exists(engine, ent.name):
            continue
        wt = WarehouseTable(engine, ent.name)
        party_col = wt.col(warehouse.column_name(f"{party}Ref.value"))
        query = (sa.select(party_col, wt.table.c.id)
                 .where(wt.where_live(company_key), party_col.in_(wanted),
                        wt.table.c.txn_date <= date.fromisoformat(as_of),
                        wt.col(warehouse.column_name(str(ent.balance_field))) != 0)
                 .order_by(party_col, wt.table.c.id))
        with connect(engine) as conn:
            for pid, ident in conn.execute(query):
                out[str(pid)].append(str(ident))
    return key, dict(out)


def _report_party_totals(df: pd.DataFrame) -> dict[str, int]:
    column = report_mod.value_column(df)
    return cents_by_id(report_mod.data_amounts(df, column))


def _total_mismatch(id_key: str, landed: int, reported: int, source: str) -> list[dict[str, Any]]:
    """The sub-ledger total against one report's, as a mismatch when they differ."""
    if landed == reported:
        return []
    return [{id_key: "TOTAL", "warehouse": dollars(landed), "qbo": dollars(reported),
             "difference": dollars(landed - reported), "source": source}]


def open_balances(engine: Engine | Connection, company_key: str, party: str, aged_report: Report,
                  balance_sheet: Report | None = None, *, as_of: str | None = None) -> CheckOutcome:
    """A party's open balances in the warehouse against its aging report (per party) and the
    BalanceSheet's control account (in total). See :func:`open_receivables`."""
    sub = _SUB_LEDGERS[party]
    id_key = f"{party.lower()}_id"
    aged = as_frame(aged_report)
    as_of = as_of or report_end(aged_report, aged)
    landed = landed_open_balances(engine, company_key, party, as_of)
    reported = _report_party_totals(aged)
    mismatches = compare_amounts(landed, reported, key_name=id_key, labels=report_labels(aged))
    doc_key, open_docs = _open_documents(engine, company_key, party, [m[id_key] for m in mismatches], as_of)
    for m in mismatches:
        m[doc_key] = open_docs.get(m[id_key], [])[:10]
    total = sum(landed.values())
    aged_total = cents(report_mod.summary_amount(aged, "GrandTotal"))
    aged_key = "aged_" + sub.words + "_total"
    metadata: dict[str, Any] = {"as_of": as_of, f"warehouse_open_{sub.key}": dollars(total),
                                aged_key: dollars(aged_total),
                                f"{party.lower()}s_compared": len(set(landed) | set(reported))}
    mismatches += _total_mismatch(id_key, total, aged_total, f"{sub.aged} TOTAL")
    if balance_sheet is not None:
        bs = as_frame(balance_sheet)
        bs_total = cents(report_mod.summary_amount(bs, sub.group, report_mod.value_column(bs)) or 0)
        metadata[f"balance_sheet_{sub.key}"] = dollars(bs_total)
        mismatches += _total_mismatch(id_key, total, bs_total, f"BalanceSheet {sub.control_type}")
    ok = not mismatches
    landed_text = metadata[f"warehouse_open_{sub.key}"]
    return make_outcome(
        ok,
        f"open {sub.words} {landed_text:.2f} as of {as_of} equal QBO's {sub.aged}"
        + (f" and balance sheet {sub.short}" if balance_sheet is not None else ""),
        f"open {sub.words} as of {as_of} differ from QBO for {len(mismatches)} {party.lower()}s/totals "
        f"(warehouse {landed_text:.2f}, {sub.aged} {metadata[aged_key]:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, party_sources(party)),
    )


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
    return open_balances(engine, company_key, AR_PARTY, aged_receivables, balance_sheet, as_of=as_of)


def open_payables(engine: Engine | Connection, company_key: str, aged_payables: Report,
                  balance_sheet: Report | None = None, *, as_of: str | None = None) -> CheckOutcome:
    """Open payables in the warehouse (open bills, less vendor credits and unapplied bill
    payments) against AgedPayables (per vendor) and the BalanceSheet's A/P (in total).

    Returns:
        Failed when a vendor's open balance or the A/P total differs; mismatches name the
        vendor, both amounts and the vendor's open bills.
    """
    return open_balances(engine, company_key, AP_PARTY, aged_payables, balance_sheet, as_of=as_of)


def party_balances(engine: Engine | Connection, company_key: str, party: str, balance_report: Report
                   ) -> CheckOutcome:
    """Each party's landed ``Balance`` against QBO's CustomerBalance or VendorBalance report.

    Parties the report leaves out have a zero balance in QBO.

    Returns:
        Failed when a party's landed balance differs; mismatches name the party and amounts.
    """
    sub = _SUB_LEDGERS[party]
    df = as_frame(balance_report)
    ent = registry.get(party)
    wt = WarehouseTable(engine, ent.name)
    balance = wt.col(warehouse.column_name(str(ent.balance_field)))
    with connect(engine) as conn:
        landed = {str(i): cents(b) for i, b in conn.execute(
            sa.select(wt.table.c.id, balance).where(wt.where_live(company_key)))}
    landed = {k: v for k, v in landed.items() if v != 0}
    reported = _report_party_totals(df)
    word = party.lower()
    mismatches = compare_amounts(landed, reported, key_name=f"{word}_id", labels=report_labels(df))
    metadata = {"warehouse_total": dollars(sum(landed.values())), "qbo_total": dollars(sum(reported.values())),
                f"{word}s_with_balance": len(reported)}
    ok = not mismatches
    return make_outcome(
        ok,
        f"{len(reported)} {word} balances (total {metadata['qbo_total']:.2f}) equal QBO's {sub.balance_report}",
        f"{len(mismatches)} {word} balances differ from QBO's {sub.balance_report} "
        f"(warehouse {metadata['warehouse_total']:.2f}, QBO {metadata['qbo_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, [ent.name]),
    )


def customer_balances(engine: Engine | Connection, company_key: str, customer_balance: Report) -> CheckOutcome:
    """``qbo_customer.balance`` per customer against QBO's CustomerBalance report."""
    return party_balances(engine, company_key, AR_PARTY, customer_balance)


def vendor_balances(engine: Engine | Connection, company_key: str, vendor_balance: Report) -> CheckOutcome:
    """``qbo_vendor.balance`` per vendor against QBO's VendorBalance report."""
    return party_balances(engine, company_key, AP_PARTY, vendor_balance)
