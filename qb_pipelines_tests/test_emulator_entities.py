"""Entity semantics of the QBO emulator over real HTTP: CRUD, SyncToken, delete/void/inactivate,
business-rule faults and the computed fields that tie transactions together.

``test_entity_lifecycle`` runs over every writable entity of the registry
(``qb_pipelines/qbo/registry.py``), so an entity added there is covered here as soon as it has a
minimal body in ``MINIMAL`` (the test fails, it does not skip, until it has one). The other tests
pin the behaviours of reference §4 (CRUD, faults) and §7 (entities) one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from qb_pipelines.qbo import registry
from qb_pipelines_tests.emulator_client import QBOTestClient, connect, control, fault_of

META_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


@pytest.fixture
def qbo(emulator: Any) -> QBOTestClient:
    return connect(emulator)


# ---------------------------------------------------------------------------- minimal bodies
def _customer(q: QBOTestClient, name: str = "Amy's Bird Sanctuary") -> dict:
    return q.make("Customer", {"DisplayName": name})


def _vendor(q: QBOTestClient, name: str = "Books by Bessie") -> dict:
    return q.make("Vendor", {"DisplayName": name})


def _service(q: QBOTestClient, name: str = "Gardening", price: float = 50) -> dict:
    return q.make("Item", {"Name": name, "Type": "Service", "UnitPrice": price, "IncomeAccountRef": {"value": "45"}})


def _ref(obj: dict) -> dict:
    return {"value": obj["Id"]}


def _sales_line(item: dict, qty: float = 2, price: float = 50) -> dict:
    return {"Amount": qty * price, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": _ref(item), "Qty": qty, "UnitPrice": price}}


def _expense_line(amount: float = 120.0, account: str = "7") -> dict:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}}}


def _bill_payment_body(q: QBOTestClient) -> dict:
    vendor = _vendor(q)
    bill = q.make("Bill", {"VendorRef": _ref(vendor), "Line": [_expense_line(120.0)]})
    return {"VendorRef": _ref(vendor), "PayType": "Check", "TotalAmt": 120.0,
            "CheckPayment": {"BankAccountRef": {"value": "35"}},
            "Line": [{"Amount": 120.0, "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}]}


@dataclass(frozen=True)
class Minimal:
    """How to create one entity with the fewest fields QBO requires, and a field to edit."""

    build: Callable[[QBOTestClient], dict]
    field: str
    values: tuple[Any, Any]  # the full-update value, then the sparse-update value
    follows: tuple[str, ...] = ()  # computed fields that legitimately follow ``field`` (equal to it)


MINIMAL: dict[str, Minimal] = {
    "Account": Minimal(lambda q: {"Name": "Fuel", "AccountType": "Expense"}, "Description", ("Truck fuel", "Diesel")),
    "Term": Minimal(lambda q: {"Name": "Net 45", "DueDays": 45}, "Name", ("Net 45 days", "Net forty-five")),
    "PaymentMethod": Minimal(lambda q: {"Name": "Wire"}, "Name", ("Wire transfer", "Bank wire")),
    "Class": Minimal(lambda q: {"Name": "East"}, "Name", ("East Bay", "East Coast"), ("FullyQualifiedName",)),
    "Department": Minimal(lambda q: {"Name": "North"}, "Name", ("North Side", "Northern"), ("FullyQualifiedName",)),
    "Customer": Minimal(lambda q: {"DisplayName": "Amy's Bird Sanctuary"}, "CompanyName", ("Amy's", "Amy's Birds")),
    "Vendor": Minimal(lambda q: {"DisplayName": "Books by Bessie"}, "CompanyName", ("Bessie's", "Bessie Books")),
    "Employee": Minimal(lambda q: {"GivenName": "Emily", "FamilyName": "Platt"}, "EmployeeNumber", ("E-1", "E-2")),
    "Item": Minimal(lambda q: {"Name": "Gardening", "Type": "Service", "IncomeAccountRef": {"value": "45"}},
                    "Description", ("Weekly gardening", "Biweekly gardening")),
    "Invoice": Minimal(lambda q: {"CustomerRef": _ref(_customer(q)), "Line": [_sales_line(_service(q))]},
                       "PrivateNote", ("full", "sparse")),
    "Estimate": Minimal(lambda q: {"CustomerRef": _ref(_customer(q)), "Line": [_sales_line(_service(q))]},
                        "PrivateNote", ("full", "sparse")),
    "Payment": Minimal(lambda q: {"CustomerRef": _ref(_customer(q)), "TotalAmt": 50.0},
                       "PrivateNote", ("full", "sparse")),
    "SalesReceipt": Minimal(lambda q: {"Line": [_sales_line(_service(q))]}, "PrivateNote", ("full", "sparse")),
    "CreditMemo": Minimal(lambda q: {"CustomerRef": _ref(_customer(q)), "Line": [_sales_line(_service(q))]},
                          "PrivateNote", ("full", "sparse")),
    "RefundReceipt": Minimal(lambda q: {"DepositToAccountRef": {"value": "35"}, "Line": [_sales_line(_service(q))]},
                             "PrivateNote", ("full", "sparse")),
    "Bill": Minimal(lambda q: {"VendorRef": _ref(_vendor(q)), "Line": [_expense_line()]},
                    "PrivateNote", ("full", "sparse")),
    "BillPayment": Minimal(_bill_payment_body, "PrivateNote", ("full", "sparse")),
    "VendorCredit": Minimal(lambda q: {"VendorRef": _ref(_vendor(q)), "Line": [_expense_line(30.0)]},
                            "PrivateNote", ("full", "sparse")),
    "Purchase": Minimal(lambda q: {"PaymentType": "Cash", "AccountRef": {"value": "35"}, "Line": [_expense_line()]},
                        "PrivateNote", ("full", "sparse")),
    "Deposit": Minimal(lambda q: {"DepositToAccountRef": {"value": "35"},
                                  "Line": [{"Amount": 10.0, "DetailType": "DepositLineDetail",
                                            "DepositLineDetail": {"AccountRef": {"value": "83"}}}]},
                       "PrivateNote", ("full", "sparse")),
    "JournalEntry": Minimal(lambda q: {"Line": [
        {"Amount": 25.0, "DetailType": "JournalEntryLineDetail",
         "JournalEntryLineDetail": {"PostingType": "Debit", "AccountRef": {"value": "7"}}},
        {"Amount": 25.0, "DetailType": "JournalEntryLineDetail",
         "JournalEntryLineDetail": {"PostingType": "Credit", "AccountRef": {"value": "35"}}}]},
        "PrivateNote", ("full", "sparse")),
    "TimeActivity": Minimal(lambda q: {"NameOf": "Employee", "Hours": 2, "Minutes": 30,
                                       "EmployeeRef": _ref(q.make("Employee", {"GivenName": "Emily",
                                                                               "FamilyName": "Platt"}))},
                            "Description", ("Mowing", "Weeding")),
    "TaxAgency": Minimal(lambda q: {"DisplayName": "City of Tucson"}, "TaxRegistrationNumber", ("TR-1", "TR-2")),
    "PurchaseOrder": Minimal(lambda q: {"VendorRef": _ref(_vendor(q)), "APAccountRef": {"value": "33"},
                                        "Line": [_expense_line()]}, "PrivateNote", ("full", "sparse")),
    "Transfer": Minimal(lambda q: {"FromAccountRef": {"value": "35"}, "ToAccountRef": {"value": "36"},
                                   "Amount": 100.0}, "PrivateNote", ("full", "sparse")),
    "CreditCardPayment": Minimal(lambda q: {"BankAccountRef": {"value": "35"}, "CreditCardAccountRef": {"value": "41"},
                                            "Amount": 50.0}, "PrivateNote", ("full", "sparse")),
    "Attachable": Minimal(lambda q: {"Note": "Signed contract on file"}, "Note", ("Contract v2", "Contract v3")),
}

#: Every writable entity with an Id of its own; exchange rates (no Id) and recurring transactions
#: (a wrapped template) have their own lifecycle tests in ``test_emulator_more_entities``.
WRITABLE = [e.name for e in registry.ENTITIES if e.writable and e.kind is not registry.Kind.SINGLETON
            and not e.key_fields and not e.wraps]
VOLATILE = {"SyncToken", "MetaData"}


@pytest.mark.parametrize("entity", WRITABLE)
def test_entity_lifecycle(qbo: QBOTestClient, entity: str) -> None:
    """Create, read, full update, sparse update, stale token, then delete (or its refusal)."""
    assert entity in MINIMAL, f"add a minimal valid {entity} body to MINIMAL in this file"
    spec = MINIMAL[entity]
    ent = registry.get(entity)
    key = ent.json_key  # QBO's answers name a CreditCardPayment CreditCardPaymentTxn

    created = qbo.create(entity, spec.build(qbo))
    obj = qbo.ok(created, key)
    assert set(created.json()) == {key, "time"}
    assert obj["SyncToken"] == "0" and obj["Id"].isdigit()
    assert obj["domain"] == "QBO" and obj["sparse"] is False
    assert META_TIME.match(obj["MetaData"]["CreateTime"]) and META_TIME.match(obj["MetaData"]["LastUpdatedTime"])
    assert qbo.get(entity, obj["Id"]) == obj

    # full update: the object as read, one field changed -> only that field (and SyncToken) move
    full_value, sparse_value = spec.values
    moving = VOLATILE | {spec.field, *spec.follows}
    full = qbo.ok(qbo.update(entity, {**obj, spec.field: full_value}), key)
    assert full["SyncToken"] == "1" and full["Id"] == obj["Id"]
    assert full[spec.field] == full_value
    assert all(full[f] == full_value for f in spec.follows)
    assert full["MetaData"]["CreateTime"] == obj["MetaData"]["CreateTime"]
    unchanged = {k: v for k, v in obj.items() if k not in moving}
    assert {k: full.get(k) for k in unchanged} == unchanged

    # sparse update: only the supplied field changes
    sparse = qbo.ok(qbo.update(entity, {"Id": obj["Id"], "SyncToken": "1", spec.field: sparse_value}, sparse=True),
                    key)
    assert sparse["SyncToken"] == "2" and sparse[spec.field] == sparse_value
    assert {k: v for k, v in sparse.items() if k not in moving} == {k: v for k, v in full.items() if k not in moving}

    # a stale SyncToken is refused and changes nothing (§4.4)
    fault_of(qbo.update(entity, {"Id": obj["Id"], "SyncToken": "1", spec.field: full_value}, sparse=True), "5010")
    assert qbo.get(entity, obj["Id"])[spec.field] == sparse_value
    # a numeric SyncToken is as good as the string one
    numeric = qbo.update(entity, {"Id": obj["Id"], "SyncToken": 2, spec.field: full_value}, sparse=True)
    assert qbo.ok(numeric, key)["SyncToken"] == "3"

    deleted = qbo.delete(entity, obj["Id"], "3")
    if ent.deletable:
        assert deleted.status_code == 200, deleted.text
        body = deleted.json()
        assert set(body) == {key, "time"}
        assert body[key] == {"domain": "QBO", "status": "Deleted", "Id": obj["Id"]}
        fault_of(qbo.read(entity, obj["Id"]), "610")
    else:  # name lists are inactivated, never deleted (§1.2)
        error = fault_of(deleted, "500")
        assert error["Message"] == "Unsupported Operation"
        assert qbo.get(entity, obj["Id"])["SyncToken"] == "3"


def test_minimal_bodies_cover_every_writable_entity() -> None:
    assert sorted(MINIMAL) == sorted(WRITABLE)


# ---------------------------------------------------------------------------- updates (§4.4)
def test_full_update_sets_omitted_fields_to_null(qbo: QBOTestClient) -> None:
    cust = qbo.make("Customer", {"DisplayName": "Cool Cars", "CompanyName": "Cool Cars Inc",
                                 "GivenName": "Grace", "Notes": "prefers email"})
    body = {k: v for k, v in cust.items() if k not in ("CompanyName", "Notes")}
    updated = qbo.ok(qbo.update("Customer", body), "Customer")
    assert "CompanyName" not in updated and "Notes" not in updated
    assert updated["GivenName"] == "Grace" and updated["SyncToken"] == "1"
    assert "CompanyName" not in qbo.get("Customer", cust["Id"])
    # a sparse update leaves missing fields alone
    sparse = qbo.ok(qbo.update("Customer", {"Id": cust["Id"], "SyncToken": "1", "Notes": "call"}, sparse=True),
                    "Customer")
    assert sparse["GivenName"] == "Grace" and sparse["Notes"] == "call"


def test_empty_strings_in_write_bodies_are_absent_fields(qbo: QBOTestClient) -> None:
    cust = qbo.make("Customer", {"DisplayName": "Diego Rodriguez", "CompanyName": "", "GivenName": "",
                                 "SalesTermRef": {"value": ""}, "PrimaryEmailAddr": {"Address": "diego@example.com"}})
    assert "CompanyName" not in cust and "GivenName" not in cust and "SalesTermRef" not in cust
    assert cust["PrimaryEmailAddr"] == {"Address": "diego@example.com"}
    item = _service(qbo)
    inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "DocNumber": "", "PrivateNote": "",
                               "Line": [_sales_line(item)]})
    assert inv["DocNumber"] == "1001" and "PrivateNote" not in inv


# ---------------------------------------------------------------------------- inactivation (§4.5)
def test_inactivated_customer_is_renamed_and_hidden_from_default_queries(qbo: QBOTestClient) -> None:
    keep = _customer(qbo, "Bill's Windsurf Shop")
    gone = _customer(qbo, "Cool Cars")
    done = qbo.ok(qbo.update("Customer", {"Id": gone["Id"], "SyncToken": "0", "Active": False}, sparse=True),
                  "Customer")
    assert done["Active"] is False and done["DisplayName"] == "Cool Cars (deleted)"
    default = qbo.ok(qbo.query("SELECT * FROM Customer"), "QueryResponse")
    assert [c["Id"] for c in default["Customer"]] == [keep["Id"]]
    both = qbo.ok(qbo.query("SELECT * FROM Customer WHERE Active IN (true, false)"), "QueryResponse")
    assert sorted(c["Id"] for c in both["Customer"]) == sorted([keep["Id"], gone["Id"]])
    assert qbo.get("Customer", gone["Id"])["DisplayName"] == "Cool Cars (deleted)"  # still readable by Id
    # the freed name can be used again
    assert qbo.make("Customer", {"DisplayName": "Cool Cars"})["Active"] is True


# ---------------------------------------------------------------------------- void (§4.5)
def test_void_invoice_zeroes_amounts_and_notes_voided(qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)
    inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 2, 50)]})
    assert qbo.get("Customer", cust["Id"])["Balance"] == 100.0
    response = qbo.void("Invoice", inv["Id"], inv["SyncToken"])  # POST /invoice?operation=void
    voided = qbo.ok(response, "Invoice")
    assert voided["SyncToken"] == "1" and voided["PrivateNote"].startswith("Voided")
    assert voided["TotalAmt"] == 0 and voided["Balance"] == 0
    assert all(line["Amount"] == 0 for line in voided["Line"])
    assert voided["Line"][0]["SalesItemLineDetail"]["Qty"] == 0
    assert qbo.get("Invoice", inv["Id"]) == voided  # the object stays
    assert qbo.get("Customer", cust["Id"])["Balance"] == 0


@pytest.mark.parametrize("entity", ["Payment", "SalesReceipt"])
def test_void_payment_and_sales_receipt_with_include_void(qbo: QBOTestClient, entity: str) -> None:
    cust, item = _customer(qbo), _service(qbo)
    if entity == "Payment":
        inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 2, 50)]})
        doc = qbo.make("Payment", {"CustomerRef": _ref(cust), "TotalAmt": 100.0,
                                   "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
        assert qbo.get("Invoice", inv["Id"])["Balance"] == 0
    else:
        doc = qbo.make("SalesReceipt", {"CustomerRef": _ref(cust), "PrivateNote": "cash sale",
                                        "Line": [_sales_line(item, 2, 50)]})
    response = qbo.void(entity, doc["Id"], doc["SyncToken"])  # operation=update&include=void, sparse
    voided = qbo.ok(response, entity)
    assert voided["TotalAmt"] == 0 and voided["SyncToken"] == "1"
    assert voided["PrivateNote"].startswith("Voided")
    assert qbo.get(entity, doc["Id"])["TotalAmt"] == 0
    if entity == "Payment":
        reopened = qbo.get("Invoice", inv["Id"])
        assert reopened["Balance"] == 100.0
        assert qbo.get("Customer", cust["Id"])["Balance"] == 100.0
    else:
        assert all(line["Amount"] == 0 for line in voided["Line"])


# ---------------------------------------------------------------------------- faults (§4.8)
def test_2500_invalid_reference(qbo: QBOTestClient) -> None:
    item = _service(qbo)
    error = fault_of(qbo.create("Invoice", {"CustomerRef": {"value": "9999"}, "Line": [_sales_line(item)]}), "2500")
    assert error["Message"] == "Invalid Reference Id" and error["element"] == "CustomerRef"
    cust = _customer(qbo)
    line = _sales_line(item)
    line["SalesItemLineDetail"]["ItemRef"] = {"value": "9999"}
    fault_of(qbo.create("Invoice", {"CustomerRef": _ref(cust), "Line": [line]}), "2500")
    assert qbo.count("Invoice") == 0


def test_2020_invoice_without_customer(qbo: QBOTestClient) -> None:
    error = fault_of(qbo.create("Invoice", {"Line": [_sales_line(_service(qbo))]}), "2020")
    assert error["element"] == "CustomerRef"
    assert error["Detail"] == "Required parameter CustomerRef is missing in the request"


def test_6240_display_name_shared_by_customers_and_vendors(qbo: QBOTestClient) -> None:
    _customer(qbo, "Smith Family Store")
    error = fault_of(qbo.create("Vendor", {"DisplayName": "Smith Family Store"}), "6240")
    assert error["Message"] == "Duplicate Name Exists Error"
    fault_of(qbo.create("Customer", {"DisplayName": "Smith Family Store"}), "6240")
    vendor = _vendor(qbo, "Norton Lumber")
    fault_of(qbo.create("Employee", {"DisplayName": "Norton Lumber", "GivenName": "Nora"}), "6240")
    # renaming into a taken name is refused too
    fault_of(qbo.update("Vendor", {"Id": vendor["Id"], "SyncToken": "0", "DisplayName": "Smith Family Store"},
                        sparse=True), "6240")
    assert qbo.count("Vendor") == 1


def test_6000_deleting_an_invoice_with_payments(qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)
    inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 2, 50)]})
    qbo.make("Payment", {"CustomerRef": _ref(cust), "TotalAmt": 40.0,
                         "Line": [{"Amount": 40.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
    current = qbo.get("Invoice", inv["Id"])
    error = fault_of(qbo.delete("Invoice", inv["Id"], current["SyncToken"]), "6000")
    assert error["Detail"].startswith("Business Validation Error: ")
    assert qbo.get("Invoice", inv["Id"])["Balance"] == 60.0


def test_6070_amount_not_qty_times_unit_price(qbo: QBOTestClient) -> None:
    line = _sales_line(_service(qbo), 2, 50)
    line["Amount"] = 99.0
    error = fault_of(qbo.create("Invoice", {"CustomerRef": _ref(_customer(qbo)), "Line": [line]}), "6070")
    assert error["Message"] == "Amount calculation incorrect in the request"


def test_6000_unbalanced_journal_entry(qbo: QBOTestClient) -> None:
    body = MINIMAL["JournalEntry"].build(qbo)
    body["Line"][1]["Amount"] = 20.0
    error = fault_of(qbo.create("JournalEntry", body), "6000")
    assert error["Detail"].startswith("Business Validation Error: ")
    assert qbo.count("JournalEntry") == 0


def test_6540_deleting_a_deposited_payment(qbo: QBOTestClient) -> None:
    cust = _customer(qbo)
    pay = qbo.make("Payment", {"CustomerRef": _ref(cust), "TotalAmt": 50.0})
    deposit = qbo.make("Deposit", {"DepositToAccountRef": {"value": "35"},
                                   "Line": [{"Amount": 50.0,
                                             "LinkedTxn": [{"TxnId": pay["Id"], "TxnType": "Payment",
                                                            "TxnLineId": "0"}]}]})
    assert deposit["TotalAmt"] == 50.0
    deposited = qbo.get("Payment", pay["Id"])
    assert {"TxnId": deposit["Id"], "TxnType": "Deposit"} in deposited["LinkedTxn"]
    error = fault_of(qbo.delete("Payment", pay["Id"], deposited["SyncToken"]), "6540")
    assert error["Message"] == "Deposited Transaction cannot be changed"
    assert qbo.get("Payment", pay["Id"])["TotalAmt"] == 50.0


# ---------------------------------------------------------------------------- computed fields (§7, §11.5)
def test_customer_balance_follows_invoices_payments_and_credit_memos(qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)

    def balance() -> float:
        return qbo.get("Customer", cust["Id"])["Balance"]

    inv1 = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 2, 50)]})
    inv2 = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 1, 50)]})
    assert balance() == 150.0
    pay = qbo.make("Payment", {"CustomerRef": _ref(cust), "TotalAmt": 70.0,
                               "Line": [{"Amount": 70.0, "LinkedTxn": [{"TxnId": inv1["Id"], "TxnType": "Invoice"}]}]})
    assert balance() == 80.0 and qbo.get("Invoice", inv1["Id"])["Balance"] == 30.0
    assert pay["UnappliedAmt"] == 0
    memo = qbo.make("CreditMemo", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 1, 20)]})
    assert memo["TotalAmt"] == 20.0 and memo["Balance"] == 20.0
    assert balance() == 60.0
    qbo.ok(qbo.delete("Invoice", inv2["Id"], inv2["SyncToken"]), "Invoice")
    assert balance() == 10.0
    unapplied = qbo.make("Payment", {"CustomerRef": _ref(cust), "TotalAmt": 5.0})
    assert unapplied["UnappliedAmt"] == 5.0
    assert balance() == 5.0


def test_doc_numbers_start_at_1001(qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)
    numbers = [qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item)]})["DocNumber"]
               for _ in range(3)]
    assert numbers == ["1001", "1002", "1003"]
    mine = qbo.make("Invoice", {"CustomerRef": _ref(cust), "DocNumber": "INV-77", "Line": [_sales_line(item)]})
    assert mine["DocNumber"] == "INV-77"


def test_invoice_pdf_and_send(emulator: Any, qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)
    inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item)]})
    pdf = qbo.raw("GET", f"invoice/{inv['Id']}/pdf", headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200, pdf.text[:300]
    assert pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers.get("intuit_tid")

    sent = qbo.raw("POST", f"invoice/{inv['Id']}/send", params={"sendTo": "x@y.com"},
                   headers={"Content-Type": "application/octet-stream"}, data=b"")
    body = qbo.ok(sent, "Invoice")
    assert body["EmailStatus"] == "EmailSent" and body["BillEmail"]["Address"] == "x@y.com"
    assert qbo.get("Invoice", inv["Id"])["EmailStatus"] == "EmailSent"
    sends = control(emulator, "GET", f"companies/{qbo.realm}/sends")
    assert sends.status_code == 200
    assert [(s["entity"], s["id"], s["sendTo"]) for s in sends.json()] == [("Invoice", inv["Id"], "x@y.com")]


def test_estimate_converted_to_invoice_is_closed_and_linked(qbo: QBOTestClient) -> None:
    cust, item = _customer(qbo), _service(qbo)
    est = qbo.make("Estimate", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 3, 50)]})
    assert est["TxnStatus"] == "Pending"
    assert qbo.get("Customer", cust["Id"])["Balance"] == 0  # an estimate is not owed
    inv = qbo.make("Invoice", {"CustomerRef": _ref(cust), "Line": [_sales_line(item, 3, 50)],
                               "LinkedTxn": [{"TxnId": est["Id"], "TxnType": "Estimate"}]})
    assert {"TxnId": est["Id"], "TxnType": "Estimate"} in inv["LinkedTxn"]
    closed = qbo.get("Estimate", est["Id"])
    assert closed["TxnStatus"] == "Closed"
    assert {"TxnId": inv["Id"], "TxnType": "Invoice"} in closed["LinkedTxn"]
    assert closed["SyncToken"] == "1"


def test_bill_payment_reduces_bill_and_vendor_balances(qbo: QBOTestClient) -> None:
    vendor = _vendor(qbo)
    bill = qbo.make("Bill", {"VendorRef": _ref(vendor), "SalesTermRef": {"value": "3"}, "TxnDate": "2024-03-01",
                             "Line": [_expense_line(100.0), _expense_line(50.0, "55")]})
    assert bill["TotalAmt"] == 150.0 and bill["Balance"] == 150.0 and bill["DueDate"] == "2024-03-31"
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 150.0
    pay = qbo.make("BillPayment", {"VendorRef": _ref(vendor), "PayType": "Check", "TotalAmt": 100.0,
                                   "CheckPayment": {"BankAccountRef": {"value": "35"}},
                                   "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}]})
    paid = qbo.get("Bill", bill["Id"])
    assert paid["Balance"] == 50.0 and paid["SyncToken"] == "1"
    assert {"TxnId": pay["Id"], "TxnType": "BillPaymentCheck"} in paid["LinkedTxn"]
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 50.0


def test_bill_payment_applies_a_vendor_credit_as_a_payment_applies_a_credit_memo(qbo: QBOTestClient) -> None:
    vendor = _vendor(qbo)
    bill = qbo.make("Bill", {"VendorRef": _ref(vendor), "Line": [_expense_line(150.0)]})
    credit = qbo.make("VendorCredit", {"VendorRef": _ref(vendor), "Line": [_expense_line(40.0)]})
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 110.0
    # the bill in full, less the credit: 110 leaves the bank
    pay = qbo.make("BillPayment", {"VendorRef": _ref(vendor), "PayType": "Check", "TotalAmt": 110.0,
                                   "Line": [{"Amount": 150.0, "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]},
                                            {"Amount": 40.0,
                                             "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}]}]})
    used = qbo.get("VendorCredit", credit["Id"])
    assert used["Balance"] == 0.0 and {"TxnId": pay["Id"], "TxnType": "BillPaymentCheck"} in used["LinkedTxn"]
    assert qbo.get("Bill", bill["Id"])["Balance"] == 0.0
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 0.0
    # a used credit cannot be deleted while the payment applies it; more than its balance cannot be applied
    fault_of(qbo.delete("VendorCredit", credit["Id"], used["SyncToken"]), "6000")
    other = qbo.make("Bill", {"VendorRef": _ref(vendor), "Line": [_expense_line(20.0)]})
    fault_of(qbo.create("BillPayment", {
        "VendorRef": _ref(vendor), "PayType": "Check", "TotalAmt": 0.0,
        "Line": [{"Amount": 20.0, "LinkedTxn": [{"TxnId": other["Id"], "TxnType": "Bill"}]},
                 {"Amount": 20.0, "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}]}]}), "6000")
    # deleting the payment reopens both, each one new version
    assert qbo.delete("BillPayment", pay["Id"], pay["SyncToken"]).status_code == 200
    reopened = qbo.get("VendorCredit", credit["Id"])
    assert reopened["Balance"] == 40.0 and reopened["LinkedTxn"] == []
    assert int(reopened["SyncToken"]) == int(used["SyncToken"]) + 1
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 130.0


def test_a_bill_payment_line_must_link_a_document(qbo: QBOTestClient) -> None:
    vendor = _vendor(qbo)
    fault_of(qbo.create("BillPayment", {"VendorRef": _ref(vendor), "PayType": "Check", "TotalAmt": 5.0,
                                        "Line": [{"Amount": 5.0}]}), "2020")
