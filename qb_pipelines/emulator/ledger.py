"""The emulator's double-entry ledger: what each QBO transaction posts to the books.

Every report the emulator serves (ProfitAndLoss, BalanceSheet, TrialBalance, CustomerBalance...)
is computed from one table, ``postings``, so the reports agree with each other and with the
transactions by construction. This module holds the pure translation from a transaction body, as
QBO returns it, to its postings (accrual basis, debit positive, credit negative), and a few small
SQL helpers the engine and the reports share.

The translation follows how QuickBooks Online books each transaction type (reference §7):

* Invoice: Dr A/R (customer) TotalAmt; Cr each item's income account; Dr the discount account;
  Cr sales tax payable; inventory items also Dr COGS / Cr Inventory Asset at purchase cost.
* SalesReceipt: as an Invoice, but the debit goes to the deposit account (Undeposited Funds).
* CreditMemo and RefundReceipt: the reverse of Invoice and SalesReceipt.
* Payment: Dr the deposit account, Cr A/R (customer).
* Bill: Cr A/P (vendor); Dr each expense line (asset account for inventory items).
* VendorCredit: the reverse of a Bill. BillPayment: Dr A/P, Cr the bank or card paid from.
* Purchase: Cr the bank/card account (Dr for a credit/refund), Dr the expense lines.
* Deposit: Dr the bank; Cr Undeposited Funds for deposited payments, Cr the line account otherwise.
* JournalEntry: each line on its account.
* Transfer and CreditCardPayment (``Lines.TRANSFER``): Dr the account the money arrives in (the
  registry's first ``transfer_accounts``: ToAccountRef, the card), Cr the one it leaves.
* Estimate, PurchaseOrder, TimeActivity, RecurringTransaction templates and the name lists post nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from qb_pipelines.emulator import chart, entities
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import Lines

Lookup = Callable[[str, str], dict | None]

# Documents opened to A/R or A/P and later settled by Payment/BillPayment lines (cash basis uses it):
# the registry's transactions that keep a Balance.
OPEN_DOCUMENTS = tuple(e.name for e in entities.open_documents())


class UnbalancedTransaction(ValueError):
    """A transaction's debits and credits differ: the body's totals disagree with its lines."""


@dataclass(frozen=True)
class Posting:
    """One line of the general ledger.

    Attributes:
        account_id: the Account Id posted to.
        amount: debit positive, credit negative, in dollars rounded to cents.
        customer_id: the customer the posting belongs to (A/R sub-ledger, customer filters).
        vendor_id: the vendor the posting belongs to (A/P sub-ledger, vendor filters).
    """

    account_id: int
    amount: float
    customer_id: int | None = None
    vendor_id: int | None = None


def _cents(value: object) -> int:
    """Money as integer cents: sums of cents are exact where float sums are not."""
    try:
        return round(float(value or 0) * 100)
    except (TypeError, ValueError):
        return 0


def _ref(obj: dict | None, *path: str) -> str | None:
    """The ``value`` of a nested reference (``_ref(body, "CustomerRef")`` -> ``"17"``)."""
    cur: object = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    if isinstance(cur, dict):
        cur = cur.get("value")
    return str(cur) if cur not in (None, "") else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _Builder:
    """Collects postings in cents for one transaction, then checks they balance."""

    def __init__(self, customer_id: int | None = None, vendor_id: int | None = None) -> None:
        self.rows: list[tuple[int, int, int | None, int | None]] = []
        self.customer_id = customer_id
        self.vendor_id = vendor_id

    def post(self, account: int | str | None, cents: int, default: int,
             customer_id: int | None = None, vendor_id: int | None = None) -> None:
        if cents == 0:
            return
        account_id = _int(str(account)) if account is not None else None
        self.rows.append((
            account_id if account_id is not None else default,
            cents,
            customer_id if customer_id is not None else self.customer_id,
            vendor_id if vendor_id is not None else self.vendor_id,
        ))

    def result(self, entity: str, body: dict, sign: int = 1) -> list[Posting]:
        total = sum(c for _, c, _, _ in self.rows)
        if total != 0:
            raise UnbalancedTransaction(
                f"{entity} {body.get('Id', '(new)')} does not balance: debits exceed credits by "
                f"{total / 100:.2f} (TotalAmt {body.get('TotalAmt')} disagrees with its lines)"
            )
        return [Posting(a, sign * c / 100, cu, ve) for a, c, cu, ve in self.rows]


def _lines(body: dict) -> Iterable[dict]:
    """Every line, with bundle (GroupLineDetail) lines flattened into their components."""
    for line in body.get("Line") or []:
        if not isinstance(line, dict):
            continue
        if line.get("DetailType") == "GroupLineDetail":
            yield from (sub for sub in (line.get("GroupLineDetail") or {}).get("Line") or []
                        if isinstance(sub, dict))
        else:
            yield line


def _is_inventory(item: dict | None) -> bool:
    return bool(item) and item.get("Type") == "Inventory" and bool(item.get("TrackQtyOnHand", True))


def _tax_account(rate_id: str | None, lookup: Lookup) -> int:
    """The liability account a tax rate books to (the agency's payable account)."""
    rate = lookup("TaxRate", rate_id) if rate_id else None
    for key in ("LiabilityAccountRef", "TaxPayableAccountRef"):
        account = _int(_ref(rate, key)) if rate else None
        if account is not None:
            return account
    for rid, _name, _value, account in chart.TAX_RATES:
        if str(rid) == rate_id:
            return account
    return chart.SALES_TAX_PAYABLE


def _sales(entity: str, body: dict, lookup: Lookup, debit_account: int) -> list[Posting]:
    """Invoice/SalesReceipt postings (CreditMemo/RefundReceipt use them with sign -1)."""
    b = _Builder(customer_id=_int(_ref(body, "CustomerRef")))
    b.post(debit_account, _cents(body.get("TotalAmt")), debit_account)
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = _cents(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            item_id = _ref(detail, "ItemRef")
            item = lookup("Item", item_id) if item_id else None
            income = _ref(detail, "ItemAccountRef") or _ref(item, "IncomeAccountRef")
            b.post(income, -amount, chart.SERVICES)
            if _is_inventory(item):
                qty = float(detail.get("Qty") or 0)
                cost = round(qty * float(item.get("PurchaseCost") or 0) * 100)
                b.post(_ref(item, "ExpenseAccountRef"), cost, chart.COST_OF_GOODS_SOLD)
                b.post(_ref(item, "AssetAccountRef"), -cost, chart.INVENTORY_ASSET)
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            b.post(_ref(detail, "DiscountAccountRef"), amount, chart.DISCOUNTS_GIVEN)
    tax = body.get("TxnTaxDetail") or {}
    total_tax = _cents(tax.get("TotalTax"))
    booked = 0
    for tax_line in tax.get("TaxLine") or []:
        detail = (tax_line or {}).get("TaxLineDetail") or {}
        cents = _cents(tax_line.get("Amount"))
        b.post(_tax_account(_ref(detail, "TaxRateRef"), lookup), -cents, chart.SALES_TAX_PAYABLE)
        booked += cents
    # TotalTax is what TotalAmt includes; any part the TaxLines do not explain goes to the
    # default payable so the entry still balances.
    b.post(chart.SALES_TAX_PAYABLE, -(total_tax - booked), chart.SALES_TAX_PAYABLE)
    return b.result(entity, body)


def _expense_lines(b: _Builder, body: dict, lookup: Lookup, sign: int = 1) -> None:
    """Debit (sign 1) each expense line: account lines to their account, item lines to the item's."""
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = sign * _cents(line.get("Amount"))
        detail = (line.get(kind) or {}) if kind else {}
        customer = _int(_ref(detail, "CustomerRef"))
        if kind == "AccountBasedExpenseLineDetail":
            b.post(_ref(detail, "AccountRef"), amount, chart.COST_OF_GOODS_SOLD, customer_id=customer)
        elif kind == "ItemBasedExpenseLineDetail":
            item_id = _ref(detail, "ItemRef")
            item = lookup("Item", item_id) if item_id else None
            account = _ref(item, "AssetAccountRef") if _is_inventory(item) else _ref(item, "ExpenseAccountRef")
            default = chart.INVENTORY_ASSET if _is_inventory(item) else chart.COST_OF_GOODS_SOLD
            b.post(account, amount, default, customer_id=customer)


def _entity_ids(kind: str | None, value: str | None) -> tuple[int | None, int | None]:
    """(customer_id, vendor_id) for a typed entity reference (JournalEntry, Purchase, Deposit)."""
    ident = _int(value)
    if kind == "Customer":
        return ident, None
    if kind == "Vendor":
        return None, ident
    return None, None


def postings(entity: str, body: dict, lookup: Lookup) -> list[Posting]:
    """The ledger postings of one transaction, accrual basis.

    Args:
        entity: QBO entity name, e.g. ``"Invoice"``.
        body: the transaction as stored (QBO's JSON, computed fields filled in).
        lookup: ``lookup(entity_name, id)`` returns a stored entity body (Item, TaxRate,
            Account...) or None; used for item accounts and inventory costs.

    Returns:
        The postings (debit positive), empty for non-posting entities, voided transactions
        (whose amounts are zero) and deleted ones.

    Raises:
        UnbalancedTransaction: when the body's debits and credits differ.
    """
    # Transactions that carry money but never touch the books (QBO's "non-posting" transactions:
    # estimates, time) are the registry's entities that do not post to the ledger.
    if entities.non_posting(entity) or body.get("status") == "Deleted":
        return []
    ent = registry.find(entity)
    if entity == "Invoice":
        return _sales(entity, body, lookup, _int(_ref(body, "ARAccountRef")) or chart.ACCOUNTS_RECEIVABLE)
    if entity == "SalesReceipt":
        return _sales(entity, body, lookup, _int(_ref(body, "DepositToAccountRef")) or chart.UNDEPOSITED_FUNDS)
    if entity == "CreditMemo":
        rows = _sales(entity, body, lookup, _int(_ref(body, "ARAccountRef")) or chart.ACCOUNTS_RECEIVABLE)
        return [Posting(p.account_id, -p.amount, p.customer_id, p.vendor_id) for p in rows]
    if entity == "RefundReceipt":
        rows = _sales(entity, body, lookup, _int(_ref(body, "DepositToAccountRef")) or chart.UNDEPOSITED_FUNDS)
        return [Posting(p.account_id, -p.amount, p.customer_id, p.vendor_id) for p in rows]
    if entity == "Payment":
        b = _Builder(customer_id=_int(_ref(body, "CustomerRef")))
        total = _cents(body.get("TotalAmt"))
        b.post(_ref(body, "DepositToAccountRef"), total, chart.UNDEPOSITED_FUNDS)
        b.post(_ref(body, "ARAccountRef"), -total, chart.ACCOUNTS_RECEIVABLE)
        return b.result(entity, body)
    if ent is not None and ent.lines is Lines.EXPENSE and ent.party:
        # a vendor's document: A/P by its party_sign (a bill credits A/P, a vendor credit debits it)
        sign = ent.party_sign
        b = _Builder(vendor_id=_int(_ref(body, "VendorRef")))
        b.post(_ref(body, "APAccountRef"), -sign * _cents(body.get("TotalAmt")), chart.ACCOUNTS_PAYABLE)
        _expense_lines(b, body, lookup, sign)
        return b.result(entity, body)
    if entity == "BillPayment":
        b = _Builder(vendor_id=_int(_ref(body, "VendorRef")))
        total = _cents(body.get("TotalAmt"))
        b.post(_ref(body, "APAccountRef"), total, chart.ACCOUNTS_PAYABLE)
        if body.get("PayType") == "CreditCard" or (body.get("CreditCardPayment") and not body.get("CheckPayment")):
            b.post(_ref(body, "CreditCardPayment", "CCAccountRef"), -total, chart.MASTERCARD)
        else:
            b.post(_ref(body, "CheckPayment", "BankAccountRef"), -total, chart.CHECKING)
        return b.result(entity, body)
    if entity == "Purchase":
        entity_ref = body.get("EntityRef") or {}
        customer, vendor = _entity_ids(entity_ref.get("type") or entity_ref.get("Type") or "Vendor",
                                       _ref(body, "EntityRef"))
        b = _Builder(customer_id=customer, vendor_id=vendor)
        sign = -1 if body.get("Credit") else 1
        b.post(_ref(body, "AccountRef"), -sign * _cents(body.get("TotalAmt")), chart.CHECKING)
        _expense_lines(b, body, lookup, sign)
        return b.result(entity, body)
    if entity == "Deposit":
        b = _Builder()
        b.post(_ref(body, "DepositToAccountRef"), _cents(body.get("TotalAmt")), chart.CHECKING)
        for line in _lines(body):
            amount = _cents(line.get("Amount"))
            detail = line.get("DepositLineDetail") or {}
            ent = detail.get("Entity") or {}
            customer, vendor = _entity_ids(ent.get("type") or ent.get("Type"), _ref(detail, "Entity"))
            if any((lt or {}).get("TxnType") in entities.deposited() for lt in line.get("LinkedTxn") or []):
                # Received payments wait in Undeposited Funds until deposited.
                b.post(chart.UNDEPOSITED_FUNDS, -amount, chart.UNDEPOSITED_FUNDS, customer, vendor)
            else:
                b.post(_ref(detail, "AccountRef"), -amount, chart.OPENING_BALANCE_EQUITY, customer, vendor)
        return b.result(entity, body)
    if entity == "JournalEntry":
        b = _Builder()
        for line in _lines(body):
            detail = line.get("JournalEntryLineDetail")
            if not isinstance(detail, dict):
                continue
            sign = -1 if detail.get("PostingType") == "Credit" else 1
            ent = detail.get("Entity") or {}
            kind = ent.get("Type") or ent.get("type") or (ent.get("EntityRef") or {}).get("type")
            customer, vendor = _entity_ids(kind, _ref(ent, "EntityRef"))
            b.post(_ref(detail, "AccountRef"), sign * _cents(line.get("Amount")),
                   chart.OPENING_BALANCE_EQUITY, customer, vendor)
        return b.result(entity, body)
    if ent is not None and ent.lines is Lines.TRANSFER and ent.transfer_accounts:
        # Transfer, CreditCardPayment: Dr the account the money arrives in, Cr the one it leaves
        b = _Builder()
        amount = _cents(body.get("Amount"))
        into, out_of = ent.transfer_accounts
        b.post(_ref(body, into), amount, chart.CHECKING)
        b.post(_ref(body, out_of), -amount, chart.CHECKING)
        return b.result(entity, body)
    return []


# --- storage helpers (the engine and the reports share them) -------------------------


def write_postings(conn: sqlite3.Connection, realm: str, entity: str, txn_id: int | str, txn_date: str,
                   rows: list[Posting]) -> None:
    """Replace one transaction's rows in ``postings`` (call inside the engine's ``db.tx()``).

    An empty ``rows`` (voided, deleted, non-posting) simply removes the transaction from the books.
    """
    conn.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", (realm, entity, int(txn_id)))
    if rows:
        conn.executemany(
            "INSERT INTO postings(realm, entity, txn_id, seq, txn_date, account_id, amount, customer_id, vendor_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(realm, entity, int(txn_id), seq, txn_date, p.account_id, p.amount, p.customer_id, p.vendor_id)
             for seq, p in enumerate(rows, start=1)],
        )


def account_balances(conn: sqlite3.Connection, realm: str, as_of: str | None = None) -> dict[int, float]:
    """Each account's net posted amount (debit positive), optionally as of a date (inclusive).

    Multiply by ``chart.DEBIT_NORMAL[classification]`` for the balance as QBO shows it
    (``Account.CurrentBalance``).
    """
    sql = "SELECT account_id, ROUND(SUM(amount), 2) FROM postings WHERE realm=?"
    args: list[object] = [realm]
    if as_of:
        sql += " AND txn_date <= ?"
        args.append(as_of)
    sql += " GROUP BY account_id"
    return {int(a): float(v or 0.0) for a, v in conn.execute(sql, args)}


def customer_ar_balances(conn: sqlite3.Connection, realm: str, ar_accounts: Iterable[int],
                         as_of: str | None = None) -> dict[int, float]:
    """Open A/R per customer (the A/R sub-ledger), optionally as of a date (inclusive)."""
    ids = list(ar_accounts)
    marks = ",".join("?" * len(ids)) or "NULL"
    sql = (f"SELECT customer_id, ROUND(SUM(amount), 2) FROM postings WHERE realm=? AND account_id IN ({marks})"
           " AND customer_id IS NOT NULL")
    args: list[object] = [realm, *ids]
    if as_of:
        sql += " AND txn_date <= ?"
        args.append(as_of)
    sql += " GROUP BY customer_id"
    return {int(c): float(v or 0.0) for c, v in conn.execute(sql, args)}
