"""Posting rules: what QuickBooks books for each transaction (accrual basis, reference §7).

The rules re-implement QuickBooks Online's books from the raw JSON as QBO returns it: sync never
imports the emulator, and the emulator's ledger must agree with QBO, not the other way round.
Inventory cost of goods sold uses each item's current ``PurchaseCost`` (QBO uses FIFO layers,
which the API does not expose); companies with changing inventory costs see COGS/Inventory
differences in the trial balance that are not landing faults.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qb_pipelines.sync.reconcile.chart import Chart
from qb_pipelines.sync.reconcile.outcome import cents, dollars


@dataclass(frozen=True)
class Posting:
    """One general-ledger line: account, amount in cents (debit positive), the customer/vendor."""

    account_id: str
    cents: int
    customer_id: str | None = None
    vendor_id: str | None = None


class UnbalancedTransaction(ValueError):
    """A landed transaction whose debits and credits differ (its totals disagree with its lines)."""


def ref_id(obj: Any, *path: str) -> str | None:
    """The id a reference at ``path`` points to (``{"value": "42"}`` or a bare id), else None."""
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    if isinstance(cur, dict):
        cur = cur.get("value")
    return str(cur) if cur not in (None, "") else None


def _lines(body: dict) -> Iterator[dict]:
    """Every line, bundles (GroupLineDetail) expanded into their component lines."""
    for line in body.get("Line") or []:
        if not isinstance(line, dict):
            continue
        if line.get("DetailType") == "GroupLineDetail":
            yield from (sub for sub in (line.get("GroupLineDetail") or {}).get("Line") or [] if isinstance(sub, dict))
        else:
            yield line


class _Entry:
    """Postings of one transaction, in cents, checked to balance."""

    def __init__(self, customer_id: str | None = None, vendor_id: str | None = None) -> None:
        self.rows: list[Posting] = []
        self.customer_id, self.vendor_id = customer_id, vendor_id

    def post(self, account: str | None, amount: int, default: str | None, *, customer_id: str | None = None,
             vendor_id: str | None = None) -> None:
        if amount == 0:
            return
        self.rows.append(Posting(str(account or default or "?"), amount, customer_id or self.customer_id,
                                 vendor_id or self.vendor_id))

    def result(self, entity: str, body: dict, sign: int = 1) -> list[Posting]:
        total = sum(p.cents for p in self.rows)
        if total != 0:
            raise UnbalancedTransaction(f"{entity} {body.get('Id')} does not balance by {dollars(total):.2f}")
        return [Posting(p.account_id, sign * p.cents, p.customer_id, p.vendor_id) for p in self.rows]


def _is_inventory(item: dict | None) -> bool:
    return bool(item) and item.get("Type") == "Inventory" and bool(item.get("TrackQtyOnHand", True))


def _party(kind: str | None, ident: str | None) -> tuple[str | None, str | None]:
    if kind == "Customer":
        return ident, None
    if kind == "Vendor":
        return None, ident
    return None, None


def postings(entity: str, body: dict, chart: Chart, items: Mapping[str, dict],
             tax_accounts: Mapping[str, str] | None = None) -> list[Posting]:
    """The general-ledger postings of one landed transaction, as QuickBooks books it (accrual).

    * Invoice: Dr A/R TotalAmt; Cr each item's income account; Dr discounts; Cr sales tax
      payable; inventory items also Dr COGS / Cr Inventory Asset at the item's cost.
    * SalesReceipt: as an invoice, debiting the deposit account (Undeposited Funds by default).
    * CreditMemo, RefundReceipt: the reverse of Invoice and SalesReceipt.
    * Payment: Dr the deposit account, Cr A/R. Deposit: Dr the bank; Cr Undeposited Funds for
      deposited payments and receipts, the line's account otherwise.
    * Bill: Cr A/P, Dr each line (the item's asset account for inventory). VendorCredit: reverse.
    * BillPayment: Dr A/P, Cr the bank (check) or the card. Purchase: Cr the paying account, Dr
      the lines (reversed for a refund, ``Credit: true``). JournalEntry: each line as posted.
    * Voided transactions (PrivateNote "Voided...") and deleted ones post nothing.

    Args:
        entity: QBO entity name.
        body: the transaction's raw JSON as landed.
        chart: the company's accounts (defaults when a body names no account).
        items: landed items by Id (income, expense and asset accounts, inventory cost).
        tax_accounts: TaxRate Id -> liability account Id, when known (else sales tax payable).

    Raises:
        UnbalancedTransaction: when the body's debits and credits differ.
    """
    if body.get("status") == "Deleted" or str(body.get("PrivateNote") or "").startswith("Voided"):
        return []
    tax_accounts = tax_accounts or {}
    if entity in ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt"):
        if entity in ("Invoice", "CreditMemo"):
            debit = ref_id(body, "ARAccountRef") or chart.default("ar")
        else:
            debit = ref_id(body, "DepositToAccountRef") or chart.default("undeposited")
        rows = _sales(entity, body, chart, items, tax_accounts, debit)
        if entity in ("CreditMemo", "RefundReceipt"):
            return [Posting(p.account_id, -p.cents, p.customer_id, p.vendor_id) for p in rows]
        return rows
    if entity == "Payment":
        e = _Entry(customer_id=ref_id(body, "CustomerRef"))
        total = cents(body.get("TotalAmt"))
        e.post(ref_id(body, "DepositToAccountRef"), total, chart.default("undeposited"))
        e.post(ref_id(body, "ARAccountRef"), -total, chart.default("ar"))
        return e.result(entity, body)
    if entity in ("Bill", "VendorCredit"):
        sign = 1 if entity == "Bill" else -1
        e = _Entry(vendor_id=ref_id(body, "VendorRef"))
        e.post(ref_id(body, "APAccountRef"), -sign * cents(body.get("TotalAmt")), chart.default("ap"))
        _expense_lines(e, body, chart, items, sign)
        return e.result(entity, body)
    if entity == "BillPayment":
        e = _Entry(vendor_id=ref_id(body, "VendorRef"))
        total = cents(body.get("TotalAmt"))
        e.post(ref_id(body, "APAccountRef"), total, chart.default("ap"))
        if body.get("PayType") == "CreditCard" or (body.get("CreditCardPayment") and not body.get("CheckPayment")):
            e.post(ref_id(body, "CreditCardPayment", "CCAccountRef"), -total, chart.default("card"))
        else:
            e.post(ref_id(body, "CheckPayment", "BankAccountRef"), -total, chart.default("checking"))
        return e.result(entity, body)
    if entity == "Purchase":
        ref = body.get("EntityRef") or {}
        customer, vendor = _party(ref.get("type") or ref.get("Type") or "Vendor", ref_id(body, "EntityRef"))
        e = _Entry(customer_id=customer, vendor_id=vendor)
        sign = -1 if body.get("Credit") else 1
        e.post(ref_id(body, "AccountRef"), -sign * cents(body.get("TotalAmt")), chart.default("checking"))
        _expense_lines(e, body, chart, items, sign)
        return e.result(entity, body)
    if entity == "Deposit":
        e = _Entry()
        e.post(ref_id(body, "DepositToAccountRef"), cents(body.get("TotalAmt")), chart.default("checking"))
        for line in _lines(body):
            amount = cents(line.get("Amount"))
            detail = line.get("DepositLineDetail") or {}
            who = detail.get("Entity") or {}
            customer, vendor = _party(who.get("type") or who.get("Type"), ref_id(detail, "Entity"))
            if any((lt or {}).get("TxnType") in ("Payment", "SalesReceipt", "RefundReceipt")
                   for lt in line.get("LinkedTxn") or []):
                # Received payments wait in Undeposited Funds until they are deposited.
                e.post(chart.default("undeposited"), -amount, None, customer_id=customer, vendor_id=vendor)
            else:
                e.post(ref_id(detail, "AccountRef"), -amount, chart.default("opening_equity"),
                       customer_id=customer, vendor_id=vendor)
        return e.result(entity, body)
    if entity == "JournalEntry":
        e = _Entry()
        for line in _lines(body):
            detail = line.get("JournalEntryLineDetail")
            if not isinstance(detail, dict):
                continue
            sign = -1 if detail.get("PostingType") == "Credit" else 1
            who = detail.get("Entity") or {}
            kind = who.get("Type") or who.get("type") or (who.get("EntityRef") or {}).get("type")
            customer, vendor = _party(kind, ref_id(who, "EntityRef"))
            e.post(ref_id(detail, "AccountRef"), sign * cents(line.get("Amount")), chart.default("opening_equity"),
                   customer_id=customer, vendor_id=vendor)
        return e.result(entity, body)
    if entity == "Transfer":
        e = _Entry()
        amount = cents(body.get("Amount"))
        e.post(ref_id(body, "ToAccountRef"), amount, chart.default("checking"))
        e.post(ref_id(body, "FromAccountRef"), -amount, chart.default("checking"))
        return e.result(entity, body)
    return []


def _sales(entity: str, body: dict, chart: Chart, items: Mapping[str, dict], tax_accounts: Mapping[str, str],
           debit_account: str | None) -> list[Posting]:
    e = _Entry(customer_id=ref_id(body, "CustomerRef"))
    e.post(debit_account, cents(body.get("TotalAmt")), None)
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = cents(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            item = items.get(ref_id(detail, "ItemRef") or "")
            e.post(ref_id(detail, "ItemAccountRef") or ref_id(item, "IncomeAccountRef"), -amount, chart.default("income"))
            if _is_inventory(item):
                assert item is not None
                cost = round(float(detail.get("Qty") or 0) * float(item.get("PurchaseCost") or 0) * 100)
                e.post(ref_id(item, "ExpenseAccountRef"), cost, chart.default("cogs"))
                e.post(ref_id(item, "AssetAccountRef"), -cost, chart.default("inventory"))
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            e.post(ref_id(detail, "DiscountAccountRef"), amount, chart.default("discount"))
    tax = body.get("TxnTaxDetail") or {}
    booked = 0
    for tax_line in tax.get("TaxLine") or []:
        detail = (tax_line or {}).get("TaxLineDetail") or {}
        amount = cents(tax_line.get("Amount"))
        e.post(tax_accounts.get(ref_id(detail, "TaxRateRef") or ""), -amount, chart.default("sales_tax"))
        booked += amount
    # TotalAmt includes TotalTax; any part the tax lines do not explain is still owed.
    e.post(chart.default("sales_tax"), -(cents(tax.get("TotalTax")) - booked), None)
    return e.result(entity, body)


def _expense_lines(e: _Entry, body: dict, chart: Chart, items: Mapping[str, dict], sign: int) -> None:
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = sign * cents(line.get("Amount"))
        detail = (line.get(kind) or {}) if kind else {}
        customer = ref_id(detail, "CustomerRef")
        if kind == "AccountBasedExpenseLineDetail":
            e.post(ref_id(detail, "AccountRef"), amount, chart.default("cogs"), customer_id=customer)
        elif kind == "ItemBasedExpenseLineDetail":
            item = items.get(ref_id(detail, "ItemRef") or "")
            if _is_inventory(item):
                e.post(ref_id(item, "AssetAccountRef"), amount, chart.default("inventory"), customer_id=customer)
            else:
                e.post(ref_id(item, "ExpenseAccountRef"), amount, chart.default("cogs"), customer_id=customer)

