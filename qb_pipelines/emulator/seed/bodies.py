"""Bodies as the engine would store them, computed in Python for bulk seeding.

Each ``build_*`` turns what a client would POST into the stored body, with the same keys in the
same order and the same values as the engine's compute steps (``engine.names``, ``engine.sales``,
``engine.settlements``); ``test_emulator_seed`` replays them through ``engine.create`` to prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import add_days, qbo_timestamp
from qb_pipelines.emulator.engine.values import USD, line_ex, money
from qb_pipelines.qbo import registry

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


@dataclass
class CompanyLists:
    """The company's starting lists the computed fields depend on (read once per bulk run)."""

    tz: ZoneInfo
    accounts: dict[str, str]  # Id -> name shown on references
    terms: dict[str, tuple[str, int]]  # Id -> (Name, DueDays)
    payment_methods: dict[str, str]
    tax_codes: dict[str, list[tuple[str, float]]]  # code Id -> [(rate Id, RateValue)]
    default_terms: str | None
    tax_group_code: str | None
    taken_names: set[str]  # lower-cased DisplayNames (Customer/Vendor/Employee) and item FQNs

    @classmethod
    def load(cls, emu: Emulator, realm: str) -> CompanyLists:
        def rows(entity: str) -> list[dict]:
            with emu.db.read() as c:
                return [orjson.loads(r[0]) for r in c.execute(
                    "SELECT body FROM objects WHERE realm=? AND entity=? AND status IS NULL AND active=1",
                    (realm, entity))]

        prefs = emu.engine.lookup(realm, "Preferences", "1") or {}
        rates = {r["Id"]: float(r.get("RateValue", 0)) for r in rows("TaxRate")}
        codes = {}
        for code in rows("TaxCode"):
            details = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
            codes[code["Id"]] = [(d["TaxRateRef"]["value"], rates[d["TaxRateRef"]["value"]]) for d in details
                                 if d["TaxRateRef"]["value"] in rates]
        # names the seeder must not reuse: the parties' shared DisplayNames and the items' full names
        parties = registry.parties()
        taken: set[str] = set()
        with emu.db.read() as c:
            for entity, raw in c.execute(
                    f"SELECT entity, body FROM objects WHERE realm=? AND entity IN ({','.join('?' * len(parties))}, ?)"
                    " AND status IS NULL", (realm, *parties, "Item")):
                body = orjson.loads(raw)
                taken.add(str(body.get("DisplayName") if entity in parties else body.get("FullyQualifiedName")).lower())
        return cls(
            tz=emu.company_tz(realm),
            accounts={a["Id"]: a.get("FullyQualifiedName") or a["Name"] for a in rows("Account")},
            terms={t["Id"]: (t["Name"], int(t.get("DueDays", 0))) for t in rows("Term")},
            payment_methods={p["Id"]: p["Name"] for p in rows("PaymentMethod")},
            tax_codes=codes,
            default_terms=((prefs.get("SalesFormsPrefs") or {}).get("DefaultTerms") or {}).get("value"),
            tax_group_code=((prefs.get("TaxPrefs") or {}).get("TaxGroupCodeRef") or {}).get("value"),
            taken_names=taken,
        )


def meta(created: float, updated: float, tz: ZoneInfo) -> dict:
    return {"CreateTime": qbo_timestamp(created, tz), "LastUpdatedTime": qbo_timestamp(updated, tz)}


def stamp(body: dict, created: float, updated: float, tz: ZoneInfo) -> dict:
    """What the engine's write pipeline appends last: domain, sparse, MetaData (and the row's epochs)."""
    body["domain"] = "QBO"
    body["sparse"] = False
    body["MetaData"] = meta(created, updated, tz)
    body["_created_at"] = int(created)
    body["_updated_at"] = int(updated)
    return body


ADDRESS_KEYS = ("BillAddr", "ShipAddr", "CompanyAddr", "LegalAddr", "CustomerCommunicationAddr")


def count_addresses(body: dict) -> int:
    """How many addresses of ``body`` the engine will number (the ``addr`` sequence)."""
    return sum(1 for key in ADDRESS_KEYS if isinstance(body.get(key), dict) and body[key] and not body[key].get("Id"))


def build_customer(lists: CompanyLists, body: dict, obj_id: int, parent: dict | None,
                   next_addr: Callable[[], int]) -> dict:
    """A Customer create body as the engine stores it (``engine.names.compute_name_list``), in place.

    Args:
        lists: the company's starting lists.
        body: what a client would POST (mutated into the stored body).
        obj_id: the Id reserved for it.
        parent: the stored parent customer when ``body`` has a ParentRef.
        next_addr: the next reserved address Id (each stored address gets one, in
            :data:`ADDRESS_KEYS` order).
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    if "ParentRef" in body:
        body["ParentRef"].setdefault("name", parent["DisplayName"])
    if "SalesTermRef" in body:
        body["SalesTermRef"].setdefault("name", lists.terms[body["SalesTermRef"]["value"]][0])
    if "PaymentMethodRef" in body:
        body["PaymentMethodRef"].setdefault("name", lists.payment_methods[body["PaymentMethodRef"]["value"]])
    body.setdefault("Active", True)
    body.setdefault("PrintOnCheckName", body.get("CompanyName") or body["DisplayName"])
    body.setdefault("Balance", 0)
    body.setdefault("CurrencyRef", USD)
    if parent is not None:
        body["Job"] = True
        body["Level"] = int(parent.get("Level", 0)) + 1
        body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent["DisplayName"])}:{body["DisplayName"]}'
        body.setdefault("BillWithParent", False)
    else:
        body.pop("ParentRef", None)
        body.pop("Level", None)  # QBO omits Level on top-level customers
        body["Job"] = False
        body["FullyQualifiedName"] = body["DisplayName"]
        body["BillWithParent"] = False
    body.setdefault("Taxable", False)
    body.setdefault("PreferredDeliveryMethod", "Print")
    body.setdefault("BalanceWithJobs", body.get("Balance", 0))
    for key in ADDRESS_KEYS:
        addr = body.get(key)
        if isinstance(addr, dict) and addr and not addr.get("Id"):
            addr["Id"] = str(next_addr())
    return body


def build_item(lists: CompanyLists, body: dict, obj_id: int) -> dict:
    """A Service/NonInventory Item create body as the engine stores it (``engine.names``)."""
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    for key in ("IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"):
        if key in body:
            body[key].setdefault("name", lists.accounts[body[key]["value"]])
    body.setdefault("Active", True)
    body.setdefault("Type", "Service")
    body.setdefault("TrackQtyOnHand", False)
    body.setdefault("UnitPrice", 0)
    body.setdefault("PurchaseCost", 0)
    body.setdefault("Taxable", False)
    body.pop("SubItem", None)  # top-level items carry no SubItem/Level
    body.pop("Level", None)
    body["FullyQualifiedName"] = body["Name"]
    return body


def build_invoice(lists: CompanyLists, body: dict, obj_id: int, doc_number: int, customer: dict,
                  items: dict[str, dict]) -> dict:
    """An Invoice create body as the engine stores it (``engine.sales.compute_sales``), in place.

    Covers what bulk invoices use: item lines with Amount, Qty and UnitPrice, percent discounts,
    a transaction tax code (or the customer's taxable default), terms from the invoice, the
    customer or the company preference.
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    # names the engine writes on references while validating them
    body["CustomerRef"].setdefault("name", customer["DisplayName"])
    if "SalesTermRef" in body:
        body["SalesTermRef"].setdefault("name", lists.terms[body["SalesTermRef"]["value"]][0])
    body.setdefault("CurrencyRef", USD)
    body["DocNumber"] = str(doc_number)
    out_lines: list[dict] = []
    discount_lines: list[dict] = []
    subtotal = taxable = discount = 0.0
    n = 0
    for line in body["Line"]:
        if line["DetailType"] == "DiscountLineDetail":
            discount_lines.append(line)
            continue
        n += 1
        detail = line["SalesItemLineDetail"]
        item = items[detail["ItemRef"]["value"]]
        detail["ItemRef"].setdefault("name", item["FullyQualifiedName"])
        amount = money(line["Amount"])
        line["Amount"] = amount
        if item.get("Description"):
            line.setdefault("Description", item["Description"])
        if "TaxCodeRef" not in detail:
            detail["TaxCodeRef"] = {"value": "TAX" if item.get("Taxable") else "NON"}
        subtotal += amount
        if detail["TaxCodeRef"]["value"] == "TAX":
            taxable += amount
        line["Id"] = str(n)
        line["LineNum"] = n
        out_lines.append(line)
    subtotal = money(subtotal)
    out_lines.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    for line in discount_lines:
        n += 1
        detail = line["DiscountLineDetail"]
        amount = money(subtotal * float(detail["DiscountPercent"]) / 100)
        detail.setdefault("DiscountAccountRef", {"value": str(chart.DISCOUNTS_GIVEN), "name": "Discounts given"})
        line["Amount"] = amount
        line["Id"] = str(n)
        line["LineNum"] = n
        discount += amount
        out_lines.append(line)
    body["Line"] = out_lines
    body["ApplyTaxAfterDiscount"] = bool(body.get("ApplyTaxAfterDiscount", False))
    code_id = ((body.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}).get("value")
    if code_id is None and customer.get("Taxable") and taxable > 0:
        code_id = lists.tax_group_code
    total_tax = 0.0
    if code_id:
        tax_lines = []
        for rate_id, pct in lists.tax_codes[code_id]:
            amt = money(taxable * pct / 100)
            total_tax += amt
            tax_lines.append({"Amount": amt, "DetailType": "TaxLineDetail", "TaxLineDetail": {
                "TaxRateRef": {"value": rate_id}, "PercentBased": True, "TaxPercent": pct,
                "NetAmountTaxable": taxable}})
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": str(code_id)}, "TotalTax": money(total_tax),
                                "TaxLine": tax_lines}
    else:
        body["TxnTaxDetail"] = {"TotalTax": 0}
    total = money(subtotal - discount + total_tax)
    body["TotalAmt"] = total
    body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    if customer.get("BillAddr"):
        body.setdefault("BillAddr", dict(customer["BillAddr"]))
    if customer.get("ShipAddr"):
        body.setdefault("ShipAddr", dict(customer["ShipAddr"]))
    if customer.get("PrimaryEmailAddr"):
        body.setdefault("BillEmail", {"Address": customer["PrimaryEmailAddr"].get("Address")})
    body.setdefault("PrintStatus", "NotSet")
    body.setdefault("EmailStatus", "NotSet")
    body.setdefault("CustomField", [])
    body.setdefault("LinkedTxn", [])
    for key in ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment"):
        body.setdefault(key, False)
    term_id = ((body.get("SalesTermRef") or {}).get("value") or (customer.get("SalesTermRef") or {}).get("value")
               or lists.default_terms)
    if term_id in lists.terms:
        term_name, due_days = lists.terms[term_id]
        body["SalesTermRef"] = {"value": term_id, "name": term_name}
        if not body.get("DueDate"):
            body["DueDate"] = add_days(body["TxnDate"], due_days)
    body.setdefault("DueDate", body["TxnDate"])
    body["Balance"] = total
    body["LinkedTxn"] = []
    return body


def build_payment(lists: CompanyLists, body: dict, obj_id: int, customer: dict, invoices: dict[str, dict],
                  applied: dict[str, float], ts: float) -> dict:
    """A Payment create body as the engine stores it (``engine.settlements.compute_settlement``), in place.

    Also applies the engine's side effects to the invoices it pays (``engine.settlements.relink``): each gets
    a ``Payment`` LinkedTxn, its Balance drops, its SyncToken moves up one and its
    LastUpdatedTime becomes the payment's time.

    Args:
        lists: the company's starting lists.
        body: what a client would POST (mutated into the stored body).
        obj_id: the Id reserved for it.
        customer: the stored customer.
        invoices: stored invoices by Id (the ones the payment links to must be there; mutated).
        applied: running amount applied per invoice Id (updated).
        ts: the payment's creation time (epoch).
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    if "PaymentMethodRef" in body:
        body["PaymentMethodRef"].setdefault("name", lists.payment_methods[body["PaymentMethodRef"]["value"]])
    body.setdefault("CurrencyRef", USD)
    body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    total = money(body["TotalAmt"])
    body["TotalAmt"] = total
    applied_inv = 0.0
    lines = []
    for line in body.get("Line") or []:
        amount = money(line["Amount"])
        out_line: dict[str, Any] = {"Amount": amount, "LinkedTxn": []}
        for lt in line["LinkedTxn"]:
            tid = str(lt["TxnId"])
            available = float(invoices[tid]["Balance"])
            out_line["LinkedTxn"].append({"TxnId": tid, "TxnType": "Invoice"})
            applied_inv += amount
            out_line["LineEx"] = line_ex(tid, available, invoices[tid].get("DocNumber"))
        lines.append(out_line)
    body["Line"] = lines
    body["UnappliedAmt"] = money(total - applied_inv)
    body.setdefault("DepositToAccountRef", {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"})
    body.setdefault("ProcessPayment", False)
    body.pop("LinkedTxn", None)  # a payment carries LinkedTxn only once deposited
    for line in lines:
        for lt in line["LinkedTxn"]:
            inv = invoices[lt["TxnId"]]
            inv["LinkedTxn"].append({"TxnId": body["Id"], "TxnType": "Payment"})
            applied[inv["Id"]] = applied.get(inv["Id"], 0.0) + line["Amount"]
            inv["Balance"] = money(float(inv["TotalAmt"]) - applied[inv["Id"]])
            inv["SyncToken"] = str(int(inv["SyncToken"]) + 1)
            inv["MetaData"]["LastUpdatedTime"] = qbo_timestamp(ts, lists.tz)
            inv["_updated_at"] = int(ts)
    return body
