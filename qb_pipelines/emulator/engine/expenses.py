"""Expense forms (``Lines.EXPENSE``: bills, vendor credits, purchases, purchase orders).

Each line books to an account (``AccountBasedExpenseLineDetail``) or an item
(``ItemBasedExpenseLineDetail``, priced from the item's PurchaseCost when the client gives no
amount); TotalAmt is their sum. Documents of a vendor get the A/P account and the vendor's name;
a bill also gets terms and DueDate and, like a vendor credit, an open Balance; a purchase order
(non-posting) gets its e-mail status, and its POStatus from the registry's ``status``; a
purchase is paid at once by cash, cheque or card (§7.11).
"""

from __future__ import annotations

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.engine.settlements import applied_to, check_not_below_applied, links_of
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import invalid_enum, lines_of, money, number, ref_value
from qb_pipelines.qbo.registry import EntityDef

_DETAIL_TYPES = ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail")
_PAYMENT_TYPES = ("Cash", "Check", "CreditCard")


def compute_expense(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Lines, TotalAmt, and the vendor document's or the purchase's own fields."""
    body["Line"] = [_line(tx, ent, line, n) for n, line in enumerate(lines_of(body), start=1)]
    body["TotalAmt"] = money(sum(line["Amount"] for line in body["Line"]))
    if ent.party:
        _vendor_document(tx, ent, body)
    elif body.get("PaymentType") not in _PAYMENT_TYPES:
        raise invalid_enum(str(body.get("PaymentType")), "PaymentType")
    elif body["PaymentType"] == "CreditCard":
        body.setdefault("Credit", False)


def _line(tx: Tx, ent: EntityDef, line: dict, n: int) -> dict:
    line = dict(line)
    dt = line.get("DetailType")
    if dt not in _DETAIL_TYPES:
        raise invalid_enum(f"{dt} is not a valid DetailType for {ent.name}", "Line.DetailType")
    detail = line[dt] = dict(line.get(dt) or {})
    if dt == "ItemBasedExpenseLineDetail":
        item = tx.get("Item", ref_value(detail.get("ItemRef")))
        qty, price = detail.get("Qty"), detail.get("UnitPrice")
        if line.get("Amount") is None:
            if price is None and item is not None:
                price = item.get("PurchaseCost", 0)
            qty = 1 if qty is None else qty
            if price is None:
                raise faults.required("Line.Amount")
            line["Amount"] = money(number(qty, "Qty") * number(price, "UnitPrice"))
            detail["Qty"], detail["UnitPrice"] = qty, price
    elif line.get("Amount") is None:
        raise faults.required("Line.Amount")
    line["Amount"] = money(number(line["Amount"], "Line.Amount"))
    detail.setdefault("BillableStatus", "NotBillable")
    detail.setdefault("TaxCodeRef", {"value": "NON"})
    line["Id"] = str(n)
    line.setdefault("LineNum", n)
    return line


def _vendor_document(tx: Tx, ent: EntityDef, body: dict) -> None:
    """The vendor's name, the A/P account, a bill's terms and DueDate, and the open Balance."""
    party_ref = f"{ent.party}Ref"
    vendor = tx.get(ent.party or "", ref_value(body.get(party_ref)))
    body[party_ref] = {"value": vendor["Id"], "name": vendor["DisplayName"]}
    body.setdefault("APAccountRef", {"value": str(chart.ACCOUNTS_PAYABLE), "name": "Accounts Payable (A/P)"})
    if ent.name == "Bill":
        term_id = ref_value(body.get("SalesTermRef")) or ref_value(vendor.get("TermRef"))
        term = tx.get("Term", term_id) if term_id else None
        if term is not None:
            body["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
        if not body.get("DueDate"):
            body["DueDate"] = add_days(body["TxnDate"], int(term.get("DueDays", 0)) if term else 0)
    if ent.pdf:  # a purchase order can be e-mailed to the vendor
        body.setdefault("EmailStatus", "NotSet")
    if ent.balance_field:
        paid = applied_to(tx, ent.name, body["Id"])
        check_not_below_applied(ent, body["TotalAmt"], paid)
        body[ent.balance_field] = money(body["TotalAmt"] - paid)
        if ent.party_sign > 0:
            body["LinkedTxn"] = links_of(body.get("LinkedTxn"))
