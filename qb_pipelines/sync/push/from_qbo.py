"""From QuickBooks' JSON back to the app's vocabulary.

The three-way decision of a conflict compares the app's record, the values last agreed and
QuickBooks' current object field by field, so QuickBooks' object is read back into the same
shape as the app's records (:mod:`qb_pipelines.sync.push.contract`). The change feed (QuickBooks
to the app) speaks the same vocabulary.

References come back as app ids through ``app_ids`` (``(entity, qbo_id) -> app_id``); a QBO
object the app does not know keeps ``None`` there and its QBO id under ``*_qbo_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["app_values", "comparable", "document_status", "feed_values", "voided"]

AppIds = Mapping[tuple[str, str], str]
_ITEM_TYPES = {"Service": "service", "NonInventory": "non_inventory", "Inventory": "inventory"}


def _val(obj: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur if cur not in ("", None) else None


def _app_ref(app_ids: AppIds, entity: str, ref: Any) -> str | None:
    qbo_id = _val(ref, "value") if isinstance(ref, Mapping) else None
    return app_ids.get((entity, str(qbo_id))) if qbo_id is not None else None


def _address(addr: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not addr or not _val(addr, "Line1"):
        return None
    out = {"line1": _val(addr, "Line1"), "line2": _val(addr, "Line2"), "city": _val(addr, "City"),
           "region": _val(addr, "CountrySubDivisionCode"), "postal_code": _val(addr, "PostalCode"),
           "country": _val(addr, "Country")}
    return {k: v for k, v in out.items() if v is not None}


def _party(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"display_name": _val(obj, "DisplayName"), "company_name": _val(obj, "CompanyName"),
            "given_name": _val(obj, "GivenName"), "family_name": _val(obj, "FamilyName"),
            "email": _val(obj, "PrimaryEmailAddr", "Address"), "phone": _val(obj, "PrimaryPhone", "FreeFormNumber"),
            "address": _address(obj.get("BillAddr")), "notes": _val(obj, "Notes")}


def customer(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    out = _party(obj)
    out["parent_app_id"] = _app_ref(app_ids, "Customer", obj.get("ParentRef")) if obj.get("Job") else None
    return out


def vendor(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    return _party(obj)


def item(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    out = {"name": _val(obj, "Name"), "sku": _val(obj, "Sku"), "type": _ITEM_TYPES.get(str(obj.get("Type"))),
           "unit_price": obj.get("UnitPrice"), "description": _val(obj, "Description"),
           "income_account_id": _val(obj, "IncomeAccountRef", "value")}
    if obj.get("Type") == "Inventory":
        out.update(qty_on_hand=obj.get("QtyOnHand"), inv_start_date=_val(obj, "InvStartDate"),
                   asset_account_id=_val(obj, "AssetAccountRef", "value"),
                   expense_account_id=_val(obj, "ExpenseAccountRef", "value"))
    return out


def _sales_lines(obj: Mapping[str, Any], app_ids: AppIds) -> list[dict[str, Any]]:
    lines = []
    for line in obj.get("Line") or []:
        detail = line.get("SalesItemLineDetail")
        if line.get("DetailType") != "SalesItemLineDetail" or not isinstance(detail, Mapping):
            continue  # SubTotal, discount and group lines are QBO's own
        entry = {"item_app_id": _app_ref(app_ids, "Item", detail.get("ItemRef")), "qty": detail.get("Qty"),
                 "unit_price": detail.get("UnitPrice"), "description": _val(line, "Description"),
                 "taxable": _val(detail, "TaxCodeRef", "value") == "TAX"}
        lines.append({k: v for k, v in entry.items() if v is not None})
    return lines


def _sales(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    return {"number": _val(obj, "DocNumber"), "customer_app_id": _app_ref(app_ids, "Customer", obj.get("CustomerRef")),
            "txn_date": _val(obj, "TxnDate"), "due_date": _val(obj, "DueDate"), "lines": _sales_lines(obj, app_ids),
            "tax_code_id": _val(obj, "TxnTaxDetail", "TxnTaxCodeRef", "value"),
            "memo": _val(obj, "CustomerMemo", "value")}


def invoice(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    return _sales(obj, app_ids)


def estimate(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    out = _sales(obj, app_ids)
    out["expiration_date"] = _val(obj, "ExpirationDate")
    return out


def bill(obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    lines = []
    for line in obj.get("Line") or []:
        if line.get("DetailType") == "ItemBasedExpenseLineDetail":
            d = line.get("ItemBasedExpenseLineDetail") or {}
            entry = {"item_app_id": _app_ref(app_ids, "Item", d.get("ItemRef")), "qty": d.get("Qty"),
                     "unit_price": d.get("UnitPrice")}
        elif line.get("DetailType") == "AccountBasedExpenseLineDetail":
            d = line.get("AccountBasedExpenseLineDetail") or {}
            entry = {"account_id": _val(d, "AccountRef", "value"), "amount": line.get("Amount")}
        else:
            continue
        entry["description"] = _val(line, "Description")
        entry["customer_app_id"] = _app_ref(app_ids, "Customer", d.get("CustomerRef"))
        lines.append({k: v for k, v in entry.items() if v is not None})
    return {"number": _val(obj, "DocNumber"), "vendor_app_id": _app_ref(app_ids, "Vendor", obj.get("VendorRef")),
            "txn_date": _val(obj, "TxnDate"), "due_date": _val(obj, "DueDate"), "lines": lines,
            "memo": _val(obj, "PrivateNote")}


_READERS: dict[str, Callable[[Mapping[str, Any], AppIds], dict[str, Any]]] = {
    "Customer": customer, "Vendor": vendor, "Item": item, "Invoice": invoice, "Estimate": estimate, "Bill": bill,
}


def app_values(entity: str, obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    """QuickBooks' object in the app's vocabulary (absent values left out)."""
    return {k: v for k, v in _READERS[entity](obj, app_ids).items() if v is not None}


def comparable(value: Any) -> Any:
    """A value normalised for comparison: numbers as rounded floats, empty as ``None``."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 4)
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        cleaned = {k: comparable(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None} or None
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return value


#: Documents whose balance and status the app hears as they change in QuickBooks.
DOCUMENTS = ("Invoice", "Estimate", "Bill")


def voided(obj: Mapping[str, Any]) -> bool:
    """QBO voids a document in place: amounts zeroed and "Voided" in its private note."""
    return "voided" in str(obj.get("PrivateNote") or "").lower() and not float(obj.get("TotalAmt") or 0)


def document_status(obj: Mapping[str, Any]) -> str:
    """``open``, ``partially_paid``, ``paid`` or ``voided`` from a document's TotalAmt and Balance."""
    if voided(obj):
        return "voided"
    total = float(obj.get("TotalAmt") or 0)
    balance = float(obj.get("Balance", obj.get("TotalAmt")) or 0)
    if total > 0 and abs(balance) < 0.005:
        return "paid"
    if 0.005 <= balance < total - 0.004:
        return "partially_paid"
    return "open"


def feed_values(entity: str, obj: Mapping[str, Any], app_ids: AppIds) -> dict[str, Any]:
    """What the change feed tells the app of an object: its values, and a document's totals and status."""
    data = app_values(entity, obj, app_ids)
    if entity in DOCUMENTS:
        data.update(total=obj.get("TotalAmt"), balance=obj.get("Balance", obj.get("TotalAmt")),
                    status=document_status(obj), doc_number=obj.get("DocNumber"))
    return data
