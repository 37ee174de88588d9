"""The general ledger rebuilt from the landed transactions, for the trial balance and the P&L.

:func:`build_ledger` streams the raw JSON of every transaction that posts to the books, books it
with :func:`~qb_pipelines.sync.reconcile.posting_rules.postings` against the landed chart of accounts
and items, and keeps net cents per account and day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.sync.reconcile.chart import Chart
from qb_pipelines.sync.reconcile.landed import landed_bodies_if_any
from qb_pipelines.sync.reconcile.posting_rules import UnbalancedTransaction, postings, ref_id

#: The name lists the ledger books with besides the transactions: the chart of accounts, and the
#: items (their income, expense and asset accounts, and inventory cost).
LEDGER_NAME_LISTS: tuple[str, ...] = ("Account", "Item")


def posting_entity_names() -> tuple[str, ...]:
    """The transactions that post to the books, in registry order (the registry's ``posts_to_ledger``)."""
    return tuple(e.name for e in registry.posting_entities())


def ledger_sources() -> tuple[str, ...]:
    """Every landed entity the rebuilt ledger depends on: what a report of the books is proved
    with, and what a full refresh must re-read when the books disagree."""
    return (*LEDGER_NAME_LISTS, *posting_entity_names())


@dataclass
class LandedLedger:
    """The general ledger rebuilt from the warehouse, aggregated per account and day.

    Keeping net cents per (account, TxnDate) instead of every posting bounds memory by accounts
    x days, whatever the number of transactions.

    Attributes:
        chart: the landed chart of accounts.
        daily: net posted cents (debit positive) per ``(account_id, "YYYY-MM-DD")``, on or before ``as_of``.
        postings: how many postings were aggregated.
        unbalanced: transactions whose lines do not add up to their totals (a landing fault).
    """

    chart: Chart
    daily: dict[tuple[str, str], int]
    postings: int
    unbalanced: list[dict[str, Any]]

    def net(self, start: str | None, end: str) -> dict[str, int]:
        """Net posted cents per account (debit positive) with ``start <= TxnDate <= end``."""
        out: dict[str, int] = defaultdict(int)
        for (account, day), amount in self.daily.items():
            if day <= end and (start is None or day >= start):
                out[account] += amount
        return dict(out)


def landed_chart(engine: Engine | Connection, company_key: str) -> Chart:
    """The company's landed chart of accounts (empty when no account landed yet)."""
    return Chart(landed_bodies_if_any(engine, company_key, "Account"))


def _tax_accounts(engine: Engine | Connection, company_key: str) -> dict[str, str]:
    """TaxRate Id -> the liability account its tax is owed on, for the rates that name one."""
    out: dict[str, str] = {}
    for rate in landed_bodies_if_any(engine, company_key, "TaxRate"):
        account = ref_id(rate, "LiabilityAccountRef") or ref_id(rate, "TaxPayableAccountRef")
        if account:
            out[str(rate.get("Id"))] = account
    return out


def build_ledger(engine: Engine | Connection, company_key: str, as_of: str,
                 entities: Iterable[str] | None = None) -> LandedLedger:
    """Rebuild the general ledger from the landed raw JSON of every posting transaction.

    Streams each entity's rows (raw JSON) in chunks; entities whose table does not exist yet are
    skipped (nothing landed, nothing posted).

    Args:
        engine: the warehouse.
        company_key: the company partition.
        as_of: transactions dated after it are left out.
        entities: the transactions to book; default every one that posts to the books.
    """
    chart = landed_chart(engine, company_key)
    items = {str(b.get("Id")): b for b in landed_bodies_if_any(engine, company_key, "Item")}
    tax_accounts = _tax_accounts(engine, company_key)
    daily: dict[tuple[str, str], int] = defaultdict(int)
    count = 0
    unbalanced: list[dict[str, Any]] = []
    for entity in posting_entity_names() if entities is None else entities:
        for body in landed_bodies_if_any(engine, company_key, entity):
            txn_date = str(body.get("TxnDate") or "")
            if txn_date > as_of:
                continue
            try:
                rows = postings(entity, body, chart, items, tax_accounts)
            except UnbalancedTransaction as exc:
                unbalanced.append({"entity": entity, "id": str(body.get("Id")), "problem": str(exc),
                                   "total_amt": body.get("TotalAmt")})
                continue
            for p in rows:
                daily[(p.account_id, txn_date)] += p.cents
            count += len(rows)
    return LandedLedger(chart, dict(daily), count, unbalanced)
