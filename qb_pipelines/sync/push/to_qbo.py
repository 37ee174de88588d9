"""From the app's vocabulary to QuickBooks' JSON: one function per entity, and the field map.

Each ``<entity>_body(data, refs, defaults)`` turns a whole app record into the QBO object a create
sends. ``FIELDS`` says which QBO keys each app field becomes, so an update can be *sparse*: only
the keys of the fields the app changed since the last agreement are sent (QBO leaves the others
as they are, including any change made in QuickBooks to another field).

References are resolved before: ``refs`` maps ``(entity, app_id)`` to QBO ids. Defaults are the
tenant's settings (default income account, default tax code) and the company's inventory
accounts, so the app never has to know QBO account ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["FIELDS", "Defaults", "MissingReference", "body_for", "sparse_keys"]

_ITEM_TYPES = {"service": "Service", "non_inventory": "NonInventory", "inventory": "Inventory"}


class MissingReference(LookupError):
    """A record names another app record that is not in QuickBooks (yet).

    Attributes:
        entity: the referenced entity (``Customer``).
        app_id: the referenced app id.
    """

    def __init__(self, entity: str, app_id: str) -> None:
        super().__init__(f"{entity} {app_id} is not in QuickBooks yet")
        self.entity = entity
        self.app_id = app_id


@dataclass(frozen=True)
class Defaults:
    """What the tenant's settings and the company decide when the app leaves it out.

    Attributes:
        income_account_id: the tenant's default income account (items).
        tax_code_id: the tenant's default tax code (invoices, estimates), if any.
        asset_account_id: the company's Inventory Asset account (inventory items).
        expense_account_id: the company's Cost of Goods Sold account (inventory items).
        today: the date an inventory item's quantity starts from when the app gives none.
    """

    income_account_id: str | None = None
    tax_code_id: str | None = None
    asset_account_id: str | None = None
    expense_account_id: str | None = None
    today: str | None = None


Refs = Mapping[tuple[str, str], str]


def _ref(refs: Refs, entity: str, app_id: str | None) -> dict[str, str] | None:
    if not app_id:
        return None
    qbo_id = refs.get((entity, str(app_id)))
    if qbo_id is None:
        raise MissingReference(entity, str(app_id))
    return {"value": qbo_id}


def _money(value: Any) -> float:
    return float(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _address(addr: Mapping[str, Any] | None) -> dict[str, Any]:
    if not addr:
        return {}
    out = {"Line1": addr.get("line1"), "Line2": addr.get("line2"), "City": addr.get("city"),
           "CountrySubDivisionCode": addr.get("region"), "PostalCode": addr.get("postal_code"),
           "Country": addr.get("country")}
    return {k: v for k, v in out.items() if v}


def _party(data: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"DisplayName": data["display_name"]}
    for app, qbo in (("company_name", "CompanyName"), ("given_name", "GivenName"), ("family_name", "FamilyName"),
                     ("notes", "Notes")):
        if data.get(app):
            body[qbo] = data[app]
    if data.get("email"):
        body["PrimaryEmailAddr"] = {"Address": data["email"]}
    if data.get("phone"):
        body["PrimaryPhone"] = {"FreeFormNumber": data["phone"]}
    if data.get("address"):
        body["BillAddr"] = _address(data["address"])
    return body


def customer_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    body = _party(data)
    parent = _ref(refs, "Customer", data.get("parent_app_id"))
    if parent is not None:
        body.update(ParentRef=parent, Job=True, BillWithParent=False)
    return body


def vendor_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    return _party(data)


def item_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    kind = _ITEM_TYPES[data["type"]]
    body: dict[str, Any] = {"Name": data["name"], "Type": kind}
    if data.get("sku"):
        body["Sku"] = data["sku"]
    if data.get("description"):
        body["Description"] = data["description"]
    if data.get("unit_price") is not None:
        body["UnitPrice"] = data["unit_price"]
    income = data.get("income_account_id") or defaults.income_account_id
    if income:
        body["IncomeAccountRef"] = {"value": str(income)}
    if kind == "Inventory":
        body.update(TrackQtyOnHand=True, QtyOnHand=data.get("qty_on_hand", 0),
                    InvStartDate=data.get("inv_start_date") or defaults.today)
        asset = data.get("asset_account_id") or defaults.asset_account_id
        expense = data.get("expense_account_id") or defaults.expense_account_id
        if asset:
            body["AssetAccountRef"] = {"value": str(asset)}
        if expense:
            body["ExpenseAccountRef"] = {"value": str(expense)}
    return body


def _sales_lines(lines: list[Mapping[str, Any]], refs: Refs) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        qty, price = line["qty"], line["unit_price"]
        detail: dict[str, Any] = {"ItemRef": _ref(refs, "Item", line["item_app_id"]), "Qty": qty, "UnitPrice": price}
        if "taxable" in line:
            detail["TaxCodeRef"] = {"value": "TAX" if line["taxable"] else "NON"}
        entry: dict[str, Any] = {"DetailType": "SalesItemLineDetail", "Amount": _money(Decimal(str(qty)) * Decimal(str(price))),
                                 "SalesItemLineDetail": detail}
        if line.get("description"):
            entry["Description"] = line["description"]
        out.append(entry)
    return out


def _sales(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    body: dict[str, Any] = {"CustomerRef": _ref(refs, "Customer", data["customer_app_id"]),
                            "Line": _sales_lines(data["lines"], refs)}
    for app, qbo in (("number", "DocNumber"), ("txn_date", "TxnDate"), ("due_date", "DueDate")):
        if data.get(app):
            body[qbo] = data[app]
    tax_code = data.get("tax_code_id") or defaults.tax_code_id
    if tax_code and any(line.get("taxable") for line in data["lines"]):
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": str(tax_code)}}
    if data.get("memo"):
        body["CustomerMemo"] = {"value": data["memo"]}
    return body


def invoice_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    return _sales(data, refs, defaults)


def estimate_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    body = _sales(data, refs, defaults)
    if data.get("expiration_date"):
        body["ExpirationDate"] = data["expiration_date"]
    return body


def bill_body(data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    lines = []
    for line in data["lines"]:
        customer = _ref(refs, "Customer", line.get("customer_app_id"))
        if line.get("item_app_id"):
            qty, price = line["qty"], line["unit_price"]
            detail: dict[str, Any] = {"ItemRef": _ref(refs, "Item", line["item_app_id"]), "Qty": qty, "UnitPrice": price}
            kind, amount = "ItemBasedExpenseLineDetail", _money(Decimal(str(qty)) * Decimal(str(price)))
        else:
            detail = {"AccountRef": {"value": str(line["account_id"])}}
            kind, amount = "AccountBasedExpenseLineDetail", _money(line["amount"])
        if customer is not None:
            detail["CustomerRef"] = customer
        entry: dict[str, Any] = {"DetailType": kind, "Amount": amount, kind: detail}
        if line.get("description"):
            entry["Description"] = line["description"]
        lines.append(entry)
    body: dict[str, Any] = {"VendorRef": _ref(refs, "Vendor", data["vendor_app_id"]), "Line": lines}
    for app, qbo in (("number", "DocNumber"), ("txn_date", "TxnDate"), ("due_date", "DueDate"), ("memo", "PrivateNote")):
        if data.get(app):
            body[qbo] = data[app]
    return body


_BODIES: dict[str, Callable[[Mapping[str, Any], Refs, Defaults], dict[str, Any]]] = {
    "Customer": customer_body, "Vendor": vendor_body, "Item": item_body,
    "Invoice": invoice_body, "Estimate": estimate_body, "Bill": bill_body,
}

_PARTY_FIELDS = {"display_name": ("DisplayName",), "company_name": ("CompanyName",), "given_name": ("GivenName",),
                 "family_name": ("FamilyName",), "email": ("PrimaryEmailAddr",), "phone": ("PrimaryPhone",),
                 "address": ("BillAddr",), "notes": ("Notes",)}
_SALES_FIELDS = {"number": ("DocNumber",), "customer_app_id": ("CustomerRef",), "txn_date": ("TxnDate",),
                 "due_date": ("DueDate",), "lines": ("Line", "TxnTaxDetail"), "tax_code_id": ("TxnTaxDetail", "Line"),
                 "memo": ("CustomerMemo",)}

#: The QBO keys each app field is written to (what a sparse update sends when the field changed).
FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "Customer": {**_PARTY_FIELDS, "parent_app_id": ("ParentRef", "Job", "BillWithParent")},
    "Vendor": dict(_PARTY_FIELDS),
    "Item": {"name": ("Name",), "sku": ("Sku",), "type": ("Type",), "unit_price": ("UnitPrice",),
             "description": ("Description",), "income_account_id": ("IncomeAccountRef",),
             "qty_on_hand": ("QtyOnHand",), "inv_start_date": ("InvStartDate",),
             "asset_account_id": ("AssetAccountRef",), "expense_account_id": ("ExpenseAccountRef",)},
    "Invoice": dict(_SALES_FIELDS),
    "Estimate": {**_SALES_FIELDS, "expiration_date": ("ExpirationDate",)},
    "Bill": {"number": ("DocNumber",), "vendor_app_id": ("VendorRef",), "txn_date": ("TxnDate",),
             "due_date": ("DueDate",), "lines": ("Line",), "memo": ("PrivateNote",)},
}

#: What a field the app cleared becomes in a sparse update (QBO keeps a key that is left out).
_CLEARED: dict[str, Any] = {"PrimaryEmailAddr": {"Address": ""}, "PrimaryPhone": {"FreeFormNumber": ""},
                            "BillAddr": {"Line1": ""}, "CustomerMemo": {"value": ""}}


def body_for(entity: str, data: Mapping[str, Any], refs: Refs, defaults: Defaults) -> dict[str, Any]:
    """The whole QBO object of an app record (what a create sends).

    Raises:
        MissingReference: a referenced record has no QBO id yet.
    """
    return _BODIES[entity](data, refs, defaults)


def sparse_keys(entity: str, changed_fields: set[str], full: Mapping[str, Any]) -> dict[str, Any]:
    """The QBO keys of the app fields in ``changed_fields``, taken from the whole body ``full``.

    A key the full body lacks (the app cleared the field) is sent empty, so QBO clears it too.
    """
    out: dict[str, Any] = {}
    for field in sorted(changed_fields):
        for key in FIELDS[entity].get(field, ()):
            if key in full:
                out[key] = full[key]
            elif key in _CLEARED:
                out[key] = _CLEARED[key]
            elif key in ("Notes", "CompanyName", "GivenName", "FamilyName", "Sku", "Description", "DocNumber",
                         "PrivateNote"):
                out[key] = ""
    return out
