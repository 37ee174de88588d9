"""Sales forms (``Lines.SALES``: invoices, estimates, sales receipts, credit memos, refund receipts).

QBO computes, in this order (§7.8): each item line's Amount from Qty x UnitPrice (or the other way
round, 6070 when they disagree) and its tax flag from the item; the SubTotal line; discount lines
(percent of the subtotal or an amount); tax from the transaction's tax code on the taxable lines;
TotalAmt; the customer's addresses and e-mail; terms and DueDate; and the open Balance, which is
TotalAmt less what payments have applied for documents that stay open, zero for forms paid at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.engine.settlements import applied_to, check_not_below_applied, links_of
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import check_date, get_path, lines_of, money, number, ref_value
from qb_pipelines.qbo.registry import EntityDef

#: What a sales form copies from its customer when the client leaves it out.
_FROM_CUSTOMER = {
    "Invoice": ("BillAddr", "ShipAddr", "BillEmail"),
    "Estimate": ("BillAddr", "ShipAddr", "BillEmail"),
    "SalesReceipt": ("BillAddr", "ShipAddr", "BillEmail"),
    "CreditMemo": ("BillAddr", "BillEmail"),
}
_LINE_TAX_CODES = ("TAX", "NON")
_ONLINE_PAYMENT_FLAGS = ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment",
                         "AllowOnlineACHPayment")
UNDEPOSITED = {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"}


@dataclass
class _Lines:
    """The lines as QBO stores them, and the sums the totals need."""

    out: list[dict] = field(default_factory=list)
    discounts: list[dict] = field(default_factory=list)
    subtotal: float = 0.0
    taxable: float = 0.0
    discount: float = 0.0
    n: int = 0

    def number(self, line: dict) -> None:
        self.n += 1
        line["Id"] = str(self.n)
        line["LineNum"] = self.n
        self.out.append(line)


def compute_sales(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Every server-side field of a sales form (see the module docstring)."""
    customer_id = ref_value(body.get(f"{ent.party}Ref"))
    customer = tx.get(ent.party or "", customer_id) if customer_id else None
    lines = _item_lines(tx, ent, body)
    _subtotal_and_discounts(lines)
    body["Line"] = lines.out
    total_tax = _tax(tx, body, customer, lines)
    total = money(lines.subtotal - lines.discount + total_tax)
    body["TotalAmt"] = total
    if customer is not None:
        _from_customer(ent, body, customer)
    body.setdefault("PrintStatus", "NotSet")
    body.setdefault("EmailStatus", "NotSet")
    body.setdefault("CustomField", [])
    if ent.name == "Invoice":
        body.setdefault("LinkedTxn", [])  # invoices carry [], other forms omit it when empty
        for flag in _ONLINE_PAYMENT_FLAGS:
            body.setdefault(flag, False)
    elif not body.get("LinkedTxn"):
        body.pop("LinkedTxn", None)
    if ent.name in ("Invoice", "Estimate"):
        _terms(tx, ent, body, customer)
    if ent.name == "Estimate":
        body.setdefault("TxnStatus", "Pending")
    _balance(tx, ent, body, total)


def _item_lines(tx: Tx, ent: EntityDef, body: dict) -> _Lines:
    """Item, description and group lines numbered in order; discount lines kept for after the subtotal."""
    acc = _Lines()
    for line in lines_of(body):
        dt = line.get("DetailType")
        if dt == "SubTotalLineDetail":
            continue  # QBO recomputes it
        line = dict(line)
        if dt == "SalesItemLineDetail":
            _item_line(tx, line, acc)
        elif dt == "DiscountLineDetail":
            acc.discounts.append(line)
        elif dt == "DescriptionOnly":
            line.setdefault("Amount", 0)
            line.setdefault("DescriptionLineDetail", {})
            acc.number(line)
        elif dt == "GroupLineDetail":
            inner = (line.get("GroupLineDetail") or {}).get("Line") or []
            amount = money(sum(number(x.get("Amount", 0), "Line.Amount") for x in inner))
            line["Amount"] = amount
            acc.subtotal += amount
            acc.number(line)
        else:
            raise faults.validation("2170", "Invalid Enumeration",
                                    f"Invalid Enumeration : {dt} is not a valid DetailType for {ent.name}",
                                    "Line.DetailType")
    return acc


def _item_line(tx: Tx, line: dict, acc: _Lines) -> None:
    """Amount, Qty and UnitPrice made consistent (6070 when they disagree); the line's tax flag."""
    detail = line["SalesItemLineDetail"] = dict(line.get("SalesItemLineDetail") or {})
    item_id = ref_value(detail.get("ItemRef"))
    item = tx.get("Item", item_id) if item_id else None
    if item is None and item_id is None:
        # QBO falls back to its built-in "Services" item when no item is given
        item = tx.get("Item", chart.SERVICES_ITEM)
        if item is not None:
            detail["ItemRef"] = {"value": str(chart.SERVICES_ITEM), "name": item.get("Name", "Services")}
        else:
            detail.pop("ItemRef", None)
    amount = line.get("Amount")
    qty = detail.get("Qty")
    price = detail.get("UnitPrice")
    if amount is None and qty is None and price is None:
        raise faults.required("Line.Amount")
    if price is None and amount is None and item is not None:
        price = item.get("UnitPrice", 0)
    if amount is None:
        amount = money(number(qty if qty is not None else 1, "Line.SalesItemLineDetail.Qty")
                       * number(price, "Line.SalesItemLineDetail.UnitPrice"))
        detail.setdefault("Qty", qty if qty is not None else 1)
        detail["UnitPrice"] = price
    else:
        amount = money(number(amount, "Line.Amount"))
        if qty is not None and price is not None:
            if abs(number(qty, "Qty") * number(price, "UnitPrice") - amount) > 0.005:
                raise faults.validation(
                    "6070", "Amount calculation incorrect in the request",
                    f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}", "Line.Amount")
        elif qty is not None and number(qty, "Qty") != 0:
            detail["UnitPrice"] = round(amount / number(qty, "Qty"), 7)
        elif price is not None and number(price, "UnitPrice") != 0:
            detail["Qty"] = round(amount / number(price, "UnitPrice"), 7)
        elif qty is None and price is None:
            detail["UnitPrice"] = amount
            detail["Qty"] = 1
    line["Amount"] = amount
    if item is not None:
        if item.get("Description"):
            line.setdefault("Description", item.get("Description"))
        if "TaxCodeRef" not in detail:
            detail["TaxCodeRef"] = {"value": "TAX" if item.get("Taxable") else "NON"}
    else:
        detail.setdefault("TaxCodeRef", {"value": "NON"})
    code = ref_value(detail.get("TaxCodeRef"))
    if code not in _LINE_TAX_CODES:
        raise faults.validation("6100", "Invalid tax code", f"Invalid line tax code {code}: use TAX or NON.",
                                "Line.SalesItemLineDetail.TaxCodeRef")
    acc.subtotal += amount
    if code == "TAX":
        acc.taxable += amount
    acc.number(line)


def _subtotal_and_discounts(acc: _Lines) -> None:
    """The SubTotal line, then each discount (a percent of the subtotal or an amount)."""
    acc.subtotal = money(acc.subtotal)
    acc.out.append({"Amount": acc.subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    for line in acc.discounts:
        detail = line["DiscountLineDetail"] = dict(line.get("DiscountLineDetail") or {})
        if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
            amount = money(acc.subtotal * number(detail["DiscountPercent"], "DiscountPercent") / 100)
        else:
            amount = money(number(line.get("Amount", 0), "Line.Amount"))
            detail.setdefault("PercentBased", False)
        detail.setdefault("DiscountAccountRef", {"value": str(chart.DISCOUNTS_GIVEN), "name": "Discounts given"})
        line["Amount"] = amount
        acc.discount += amount
        acc.number(line)


def _tax(tx: Tx, body: dict, customer: dict | None, acc: _Lines) -> float:
    """TxnTaxDetail: the transaction's tax code (or the company's for a taxable customer) applied
    to the taxable lines, after the discount's share when ``ApplyTaxAfterDiscount`` (§7.8)."""
    apply_after = bool(body.get("ApplyTaxAfterDiscount", False))
    body["ApplyTaxAfterDiscount"] = apply_after
    tax_detail = dict(body.get("TxnTaxDetail") or {})
    code_id = ref_value(tax_detail.get("TxnTaxCodeRef"))
    if code_id is None and customer is not None and customer.get("Taxable") and acc.taxable > 0:
        code_id = ref_value(get_path(tx.preferences(), "TaxPrefs.TaxGroupCodeRef"))
    if not code_id:
        body["TxnTaxDetail"] = {"TotalTax": 0}
        return 0.0
    code = tx.get("TaxCode", code_id)
    if code is None:
        raise faults.invalid_reference("TxnTaxDetail.TxnTaxCodeRef", code_id, "TaxCode")
    base = acc.taxable
    if apply_after and acc.subtotal:
        base = money(acc.taxable - acc.discount * (acc.taxable / acc.subtotal))
    total_tax = 0.0
    tax_lines = []
    for rd in get_path(code, "SalesTaxRateList.TaxRateDetail") or []:
        rate = tx.get("TaxRate", ref_value(rd.get("TaxRateRef")))
        if rate is None:
            continue
        pct = float(rate.get("RateValue", 0))
        amt = money(base * pct / 100)
        total_tax += amt
        tax_lines.append({"Amount": amt, "DetailType": "TaxLineDetail", "TaxLineDetail": {
            "TaxRateRef": {"value": rate["Id"]}, "PercentBased": True, "TaxPercent": pct,
            "NetAmountTaxable": base}})
    body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": str(code_id)}, "TotalTax": money(total_tax),
                            "TaxLine": tax_lines}
    return total_tax


def _from_customer(ent: EntityDef, body: dict, customer: dict) -> None:
    """The customer's name on the reference, and its addresses and e-mail where the form takes them."""
    body[f"{ent.party}Ref"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    copies = _FROM_CUSTOMER.get(ent.name, ())
    for key in ("BillAddr", "ShipAddr"):
        if key in copies and customer.get(key):
            body.setdefault(key, dict(customer[key]))
    if "BillEmail" in copies and customer.get("PrimaryEmailAddr"):
        body.setdefault("BillEmail", {"Address": customer["PrimaryEmailAddr"].get("Address")})


def _terms(tx: Tx, ent: EntityDef, body: dict, customer: dict | None) -> None:
    """SalesTermRef from the form, the customer or (invoices) the company; an invoice's DueDate from it."""
    term_id = ref_value(body.get("SalesTermRef"))
    if term_id is None and customer is not None:
        term_id = ref_value(customer.get("SalesTermRef"))
    if term_id is None and ent.name == "Invoice":
        term_id = ref_value(get_path(tx.preferences(), "SalesFormsPrefs.DefaultTerms"))
    term = tx.get("Term", term_id) if term_id else None
    if term is not None:
        body["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
        if ent.name == "Invoice" and not body.get("DueDate"):
            body["DueDate"] = add_days(body["TxnDate"], int(term.get("DueDays", 0)))
    if ent.name == "Invoice":
        body.setdefault("DueDate", body["TxnDate"])
        check_date(body["DueDate"], "DueDate")


def _balance(tx: Tx, ent: EntityDef, body: dict, total: float) -> None:
    """Open documents owe TotalAmt less what is applied; forms paid at once owe nothing."""
    if ent.balance_field:
        applied = applied_to(tx, ent.name, body["Id"])
        check_not_below_applied(ent, total, applied)
        body[ent.balance_field] = money(total - applied)
        if ent.party_sign < 0:
            body["RemainingCredit"] = body[ent.balance_field]  # a credit's balance is what remains of it
        else:
            body["LinkedTxn"] = links_of(body.get("LinkedTxn"))
    elif ent.posts_to_ledger:
        body["Balance"] = 0
        body.setdefault("DepositToAccountRef", dict(UNDEPOSITED))
