"""Journal entries (``Lines.JOURNAL``): debits and credits that must balance.

Each line posts a positive Amount as a Debit or a Credit to an account; a line on a control
account (A/R, A/P) must name the party whose sub-ledger it moves. TotalAmt is the debits' sum.
"""

from __future__ import annotations

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import get_path, lines_of, money, number, ref_value
from qb_pipelines.qbo.registry import EntityDef


def compute_journal(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Check the postings and that they balance; TotalAmt, Adjustment and the empty tax detail."""
    debit = credit = 0.0
    for n, line in enumerate(lines_of(body)):
        detail = line.get("JournalEntryLineDetail") or {}
        posting = detail.get("PostingType")
        if posting not in ("Debit", "Credit"):
            raise faults.required("Line.JournalEntryLineDetail.PostingType")
        amount = money(number(line.get("Amount"), "Line.Amount"))
        if amount < 0:
            raise faults.business("Journal entry line amounts must be positive.", "Line.Amount")
        line["Amount"] = amount
        line["Id"] = str(n)
        account = tx.get("Account", ref_value(detail.get("AccountRef")))
        party = chart.SUBLEDGERS.get((account or {}).get("AccountType", ""))
        if party and get_path(detail, "Entity.Type") != party:
            raise faults.business(
                f"When you use {account['AccountType']}, you must choose a {party.lower()} in the Name field.",
                "Line.JournalEntryLineDetail.Entity")
        if posting == "Debit":
            debit += amount
        else:
            credit += amount
    if abs(debit - credit) > 0.005:
        raise faults.business(
            f"Transaction must be balanced: debits ({debit:.2f}) do not equal credits ({credit:.2f}).")
    body["TotalAmt"] = money(debit)
    body.setdefault("Adjustment", False)
    body.setdefault("TxnTaxDetail", {})
