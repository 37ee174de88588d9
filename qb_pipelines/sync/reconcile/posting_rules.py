"""Posting rules: what QuickBooks books for each transaction (accrual basis, reference §7).

The rules re-implement QuickBooks Online's books from the raw JSON as QBO returns it: sync never
imports the emulator, and the emulator's ledger must agree with QBO, not the other way round.
Inventory cost of goods sold uses each item's current ``PurchaseCost`` (QBO uses FIFO layers,
which the API does not expose); companies with changing inventory costs see COGS/Inventory
differences in the trial balance that are not landing faults.

A transaction books one way per line family (the registry's ``lines``), and the registry says
the rest: whether it posts at all (``posts_to_ledger``), whose sub-ledger it moves (``party``,
``party_sign``) and whether it is a return (``stock_sign``, goods coming back):

* sales: Dr the customer's A/R (an invoice) or the deposit account (a sales receipt: Undeposited
  Funds by default) TotalAmt; Cr each item's income account; Dr discounts; Cr sales tax payable;
  inventory items also Dr COGS / Cr Inventory Asset at the item's cost. Returns (credit memo,
  refund receipt) book the reverse;
* expense: Cr the vendor's A/P (a bill) or the paying account (a purchase) TotalAmt, Dr each line
  (the item's asset account for inventory). Returns (vendor credit, a purchase with
  ``Credit: true``) book the reverse;
* links: a payment settles the party's open documents: Dr the deposit account, Cr A/R (a
  customer payment); Dr A/P, Cr the bank or the card (a bill payment);
* deposit: Dr the bank; Cr Undeposited Funds for deposited receipts, the line's account otherwise;
* journal: each line as posted;
* transfer (Transfer, CreditCardPayment: no lines): Dr the account the money arrives in, Cr the
  one it leaves, by ``Amount`` (the registry's ``transfer_accounts``: ToAccountRef/FromAccountRef,
  the card/the bank).

Voided transactions (PrivateNote "Voided...") and deleted ones post nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines
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


# --------------------------------------------------------------------------------- sub-ledgers


def _received_into(body: dict, chart: Chart) -> str | None:
    """Money received waits in Undeposited Funds unless the transaction names its account."""
    return ref_id(body, "DepositToAccountRef") or chart.default("undeposited")


def _paid_from(body: dict, chart: Chart) -> str | None:
    """Money paid leaves the card or the bank account the payment names (checking by default)."""
    if body.get("PayType") == "CreditCard" or (body.get("CreditCardPayment") and not body.get("CheckPayment")):
        return ref_id(body, "CreditCardPayment", "CCAccountRef") or chart.default("card")
    return ref_id(body, "CheckPayment", "BankAccountRef") or chart.default("checking")


@dataclass(frozen=True)
class _SubLedger:
    """A party's sub-ledger: its control account and where its money goes through.

    Attributes:
        control_ref: the header field naming the control account (``ARAccountRef``).
        control_role: the chart's default control account when the body names none.
        normal: the control account's normal side (+1 A/R, an asset; -1 A/P, a liability),
            so ``party_sign * normal`` is the debit-positive sign of the party's balance moving.
        cash: the account the party's money is received into or paid from.
    """

    control_ref: str
    control_role: str
    normal: int
    cash: Callable[[dict, Chart], str | None]


#: The parties with a sub-ledger: customers owe the company (A/R), the company owes vendors (A/P).
_SUB_LEDGERS: dict[str, _SubLedger] = {
    "Customer": _SubLedger("ARAccountRef", "ar", 1, _received_into),
    "Vendor": _SubLedger("APAccountRef", "ap", -1, _paid_from),
}


def _on_account(ent: EntityDef) -> bool:
    """An invoice or a bill moves its party's balance (on account); a receipt or a purchase is
    settled on the spot, through a bank, card or Undeposited Funds account."""
    return ent.party_sign != 0 and ent.party in _SUB_LEDGERS


def _is_return(ent: EntityDef) -> bool:
    """Credit memos, refund receipts and vendor credits bring goods back: they book the reverse of
    the sale or the bill their family books."""
    return ent.stock_sign == {Lines.SALES: 1, Lines.EXPENSE: -1}.get(ent.lines)


def _books_receipt(ent: EntityDef) -> bool:
    """Whether ``ent`` books money received into Undeposited Funds (until a deposit moves it)."""
    sub = _SUB_LEDGERS.get(ent.party or "")
    settles = ent.lines is Lines.LINKS or (ent.lines in (Lines.SALES, Lines.EXPENSE) and not _on_account(ent))
    return ent.posts_to_ledger and settles and sub is not None and sub.cash is _received_into


# --------------------------------------------------------------------------------- one entry


class _Entry:
    """Postings of one transaction, in cents, checked to balance."""

    def __init__(self, ent: EntityDef, body: dict) -> None:
        self.ent, self.body = ent, body
        self.rows: list[Posting] = []
        self.customer_id, self.vendor_id = _header_party(ent, body)

    def post(self, account: str | None, amount: int, default: str | None, *, customer_id: str | None = None,
             vendor_id: str | None = None) -> None:
        if amount == 0:
            return
        self.rows.append(Posting(str(account or default or "?"), amount, customer_id or self.customer_id,
                                 vendor_id or self.vendor_id))

    def result(self, sign: int = 1) -> list[Posting]:
        total = sum(p.cents for p in self.rows)
        if total != 0:
            raise UnbalancedTransaction(f"{self.ent.name} {self.body.get('Id')} does not balance by {dollars(total):.2f}")
        return [Posting(p.account_id, sign * p.cents, p.customer_id, p.vendor_id) for p in self.rows]


def _party(kind: str | None, ident: str | None) -> tuple[str | None, str | None]:
    """``(customer_id, vendor_id)`` of a reference to a party of kind ``kind``."""
    if kind == "Customer":
        return ident, None
    if kind == "Vendor":
        return None, ident
    return None, None


def _header_party(ent: EntityDef, body: dict) -> tuple[str | None, str | None]:
    """The party the header names: ``CustomerRef``/``VendorRef`` as the registry says, else the
    typed ``EntityRef`` (a purchase's, which names a vendor unless its type says otherwise)."""
    if ent.party:
        return _party(ent.party, ref_id(body, f"{ent.party}Ref"))
    who = body.get("EntityRef") or {}
    return _party(who.get("type") or who.get("Type") or "Vendor", ref_id(body, "EntityRef"))


def _lines(body: dict) -> Iterator[dict]:
    """Every line, bundles (GroupLineDetail) expanded into their component lines."""
    for line in body.get("Line") or []:
        if not isinstance(line, dict):
            continue
        if line.get("DetailType") == "GroupLineDetail":
            yield from (sub for sub in (line.get("GroupLineDetail") or {}).get("Line") or [] if isinstance(sub, dict))
        else:
            yield line


def _is_inventory(item: dict | None) -> bool:
    return bool(item) and item.get("Type") == "Inventory" and bool(item.get("TrackQtyOnHand", True))


@dataclass(frozen=True)
class _Books:
    """What booking needs besides the body: accounts, items and tax liability accounts."""

    chart: Chart
    items: Mapping[str, dict]
    tax_accounts: Mapping[str, str]

    def item(self, detail: dict) -> dict | None:
        return self.items.get(ref_id(detail, "ItemRef") or "")


# --------------------------------------------------------------------------------- line families


def _sales(e: _Entry, books: _Books) -> list[Posting]:
    """Dr A/R or the deposit account; Cr income, Dr discounts, Cr tax; inventory moves to COGS."""
    ent, body, chart = e.ent, e.body, books.chart
    if _on_account(ent):
        sub = _SUB_LEDGERS[str(ent.party)]
        debit = ref_id(body, sub.control_ref) or chart.default(sub.control_role)
    else:
        debit = _received_into(body, chart)
    e.post(debit, cents(body.get("TotalAmt")), None)
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = cents(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            item = books.item(detail)
            e.post(ref_id(detail, "ItemAccountRef") or ref_id(item, "IncomeAccountRef"), -amount, chart.default("income"))
            if _is_inventory(item):
                assert item is not None
                cost = round(float(detail.get("Qty") or 0) * float(item.get("PurchaseCost") or 0) * 100)
                e.post(ref_id(item, "ExpenseAccountRef"), cost, chart.default("cogs"))
                e.post(ref_id(item, "AssetAccountRef"), -cost, chart.default("inventory"))
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            e.post(ref_id(detail, "DiscountAccountRef"), amount, chart.default("discount"))
    _sales_tax(e, books)
    return e.result(-1 if _is_return(ent) else 1)


def _sales_tax(e: _Entry, books: _Books) -> None:
    """Cr each tax line's liability account (sales tax payable by default)."""
    tax = e.body.get("TxnTaxDetail") or {}
    booked = 0
    for tax_line in tax.get("TaxLine") or []:
        detail = (tax_line or {}).get("TaxLineDetail") or {}
        amount = cents(tax_line.get("Amount"))
        e.post(books.tax_accounts.get(ref_id(detail, "TaxRateRef") or ""), -amount, books.chart.default("sales_tax"))
        booked += amount
    # TotalAmt includes TotalTax; any part the tax lines do not explain is still owed.
    e.post(books.chart.default("sales_tax"), -(cents(tax.get("TotalTax")) - booked), None)


def _expenses(e: _Entry, books: _Books) -> list[Posting]:
    """Cr A/P or the paying account; Dr each line (an inventory item's asset account)."""
    ent, body, chart = e.ent, e.body, books.chart
    sign = -1 if _is_return(ent) or body.get("Credit") else 1
    if _on_account(ent):
        sub = _SUB_LEDGERS[str(ent.party)]
        e.post(ref_id(body, sub.control_ref), -sign * cents(body.get("TotalAmt")), chart.default(sub.control_role))
    else:
        e.post(ref_id(body, "AccountRef"), -sign * cents(body.get("TotalAmt")), chart.default("checking"))
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = sign * cents(line.get("Amount"))
        detail = (line.get(kind) or {}) if kind else {}
        customer = ref_id(detail, "CustomerRef")
        if kind == "AccountBasedExpenseLineDetail":
            e.post(ref_id(detail, "AccountRef"), amount, chart.default("cogs"), customer_id=customer)
        elif kind == "ItemBasedExpenseLineDetail":
            item = books.item(detail)
            if _is_inventory(item):
                e.post(ref_id(item, "AssetAccountRef"), amount, chart.default("inventory"), customer_id=customer)
            else:
                e.post(ref_id(item, "ExpenseAccountRef"), amount, chart.default("cogs"), customer_id=customer)
    return e.result()


def _settlement(e: _Entry, books: _Books) -> list[Posting]:
    """A payment moves the party's control account by TotalAmt against the money's account."""
    sub = _SUB_LEDGERS[str(e.ent.party)]
    control = e.ent.party_sign * sub.normal * cents(e.body.get("TotalAmt"))
    sides = ((ref_id(e.body, sub.control_ref), control, books.chart.default(sub.control_role)),
             (sub.cash(e.body, books.chart), -control, None))
    for account, amount, default in sorted(sides, key=lambda side: side[1] < 0):  # the debit first
        e.post(account, amount, default)
    return e.result()


#: Deposited transactions whose money waits in Undeposited Funds until deposited (payments, receipts).
_RECEIPTS: frozenset[str] = frozenset(e.name for e in registry.ENTITIES if _books_receipt(e))


def _deposit(e: _Entry, books: _Books) -> list[Posting]:
    """Dr the bank; Cr Undeposited Funds for deposited receipts, the line's account otherwise."""
    chart = books.chart
    e.post(ref_id(e.body, "DepositToAccountRef"), cents(e.body.get("TotalAmt")), chart.default("checking"))
    for line in _lines(e.body):
        amount = cents(line.get("Amount"))
        detail = line.get("DepositLineDetail") or {}
        who = detail.get("Entity") or {}
        customer, vendor = _party(who.get("type") or who.get("Type"), ref_id(detail, "Entity"))
        if any((lt or {}).get("TxnType") in _RECEIPTS for lt in line.get("LinkedTxn") or []):
            e.post(chart.default("undeposited"), -amount, None, customer_id=customer, vendor_id=vendor)
        else:
            e.post(ref_id(detail, "AccountRef"), -amount, chart.default("opening_equity"),
                   customer_id=customer, vendor_id=vendor)
    return e.result()


def _journal(e: _Entry, books: _Books) -> list[Posting]:
    """Each line on its account, debit or credit as posted, with the party it names."""
    for line in _lines(e.body):
        detail = line.get("JournalEntryLineDetail")
        if not isinstance(detail, dict):
            continue
        sign = -1 if detail.get("PostingType") == "Credit" else 1
        who = detail.get("Entity") or {}
        kind = who.get("Type") or who.get("type") or (who.get("EntityRef") or {}).get("type")
        customer, vendor = _party(kind, ref_id(who, "EntityRef"))
        e.post(ref_id(detail, "AccountRef"), sign * cents(line.get("Amount")), books.chart.default("opening_equity"),
               customer_id=customer, vendor_id=vendor)
    return e.result()


def _transfer(e: _Entry, books: _Books) -> list[Posting]:
    """Dr the account the money arrives in, Cr the one it leaves, by the header's Amount."""
    into, out_of = e.ent.transfer_accounts or ("", "")
    amount = cents(e.body.get("Amount"))
    e.post(ref_id(e.body, into), amount, books.chart.default("checking"))
    e.post(ref_id(e.body, out_of), -amount, books.chart.default("checking"))
    return e.result()


_FAMILIES: dict[Lines, Callable[[_Entry, _Books], list[Posting]]] = {
    Lines.SALES: _sales,
    Lines.EXPENSE: _expenses,
    Lines.LINKS: _settlement,
    Lines.DEPOSIT: _deposit,
    Lines.JOURNAL: _journal,
    Lines.TRANSFER: _transfer,
}


def postings(entity: str, body: dict, chart: Chart, items: Mapping[str, dict],
             tax_accounts: Mapping[str, str] | None = None) -> list[Posting]:
    """The general-ledger postings of one landed transaction, as QuickBooks books it (accrual).

    See the module docstring for the rules of each line family.

    Args:
        entity: QBO entity name; entities that do not post to the books (an estimate) post nothing.
        body: the transaction's raw JSON as landed.
        chart: the company's accounts (defaults when a body names no account).
        items: landed items by Id (income, expense and asset accounts, inventory cost).
        tax_accounts: TaxRate Id -> liability account Id, when known (else sales tax payable).

    Raises:
        UnbalancedTransaction: when the body's debits and credits differ.
    """
    ent = registry.find(entity)
    if ent is None or not ent.posts_to_ledger:
        return []
    if body.get("status") == "Deleted" or str(body.get("PrivateNote") or "").startswith("Voided"):
        return []
    return _FAMILIES[ent.lines](_Entry(ent, body), _Books(chart, items, tax_accounts or {}))
