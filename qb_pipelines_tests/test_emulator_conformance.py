"""Conformance of the QBO emulator with real QuickBooks Online payloads, over real HTTP.

Each test rebuilds in a fresh emulator company the data behind one real payload from
``shared/reference/samples`` (the same customers, items, tax code and term), makes the same
request a client makes against QBO, and compares the emulator's answer with the real one: the same
keys recursively, the same JSON type for each key, the same computed values and the same envelope
(reference §1.2-§1.6, §2.2, §4, §5, §7, §11). Keys that differ only because the real company held
other data are ignored, each with its reason next to it. A client that parses real QBO therefore
parses the emulator.

Also here: the ``intuit_tid`` header, ``minorversion`` acceptance, the gateway's 401 envelope and
the control API contract other tools depend on (``/_emulator/...``).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
import requests

from qb_pipelines_tests.emulator_client import QBOTestClient, connect, control, issue_tokens, shape_diff
from qb_pipelines_tests.samples import SAMPLES

ENVELOPE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")  # §1.4, §11.3
META_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")  # §4.1
TID = re.compile(r"^(1-[0-9a-f]{8}-[0-9a-f]{24}|gw-[0-9a-f-]{36})$")  # §1.3 formats seen

# Keys ignored in every comparison with a real record, and why:
GEOCODE = {"Lat", "Long"}  # QBO geocodes addresses with an external service; not emulated data
CUSTOM_FIELDS = {"CustomField"}  # the sandbox company defined a "Crew #" custom field; a new one has none


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def qbo(emulator: Any) -> QBOTestClient:
    return connect(emulator)


def assert_same_shape(real: Any, ours: Any, ignore: set[str] | frozenset[str] = frozenset()) -> None:
    assert_same_shapes(("", real, ours, ignore))


def assert_same_shapes(*checks: tuple[str, Any, Any, set[str] | frozenset[str]]) -> None:
    """Every (label, real, ours, ignored keys) compared; all differences reported together."""
    problems = [f"{label}{p}" for label, real, ours, ignore in checks
                for p in shape_diff(real, ours, ignore=set(ignore))]
    assert not problems, "emulator payload differs from real QBO:\n" + "\n".join(problems)


def assert_envelope(body: dict, key: str) -> None:
    """Single-object envelope: exactly ``{key: ..., "time": "<ms + offset>"}`` (§1.4)."""
    assert set(body) == {key, "time"}, sorted(body)
    assert ENVELOPE_TIME.match(body["time"]), body["time"]


def assert_meta(obj: dict) -> None:
    assert obj["domain"] == "QBO" and obj["sparse"] is False
    assert isinstance(obj["Id"], str) and obj["Id"].isdigit()
    assert isinstance(obj["SyncToken"], str) and obj["SyncToken"].isdigit()
    assert META_TIME.match(obj["MetaData"]["CreateTime"]) and META_TIME.match(obj["MetaData"]["LastUpdatedTime"])


# ---------------------------------------------------------------------------- sample data
def craigs_items(qbo: QBOTestClient) -> dict[str, dict]:
    """Rock Fountain and Sprinkler Pipes as in the sandbox (inventory, taxable), plus services."""
    inventory = {"Type": "Inventory", "Taxable": True, "TrackQtyOnHand": True, "QtyOnHand": 100,
                 "InvStartDate": "2023-01-01", "IncomeAccountRef": {"value": "79"},
                 "ExpenseAccountRef": {"value": "80"}, "AssetAccountRef": {"value": "81"}}
    return {
        "Rock Fountain": qbo.make("Item", {**inventory, "Name": "Rock Fountain", "Description": "Rock Fountain",
                                           "PurchaseDesc": "Rock Fountain", "UnitPrice": 275, "PurchaseCost": 125}),
        "Sprinkler Pipes": qbo.make("Item", {**inventory, "Name": "Sprinkler Pipes",
                                             "Description": "Sprinkler Pipes", "PurchaseDesc": "Sprinkler Pipes",
                                             "UnitPrice": 4, "PurchaseCost": 2.5}),
        "Gardening": qbo.make("Item", {"Name": "Gardening", "Type": "Service",
                                       "Description": "Weekly Gardening Service", "UnitPrice": 30,
                                       "IncomeAccountRef": {"value": "45"}}),
        "Design": qbo.make("Item", {"Name": "Design", "Type": "Service", "Description": "Custom Design",
                                    "UnitPrice": 75, "IncomeAccountRef": {"value": "82"}}),
    }


def sales_line(item: dict, qty: float, price: float, tax: str, description: str | None = None) -> dict:
    return {"Description": description or item.get("Description", item["Name"]), "Amount": round(qty * price, 2),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"], "name": item["Name"]}, "UnitPrice": price,
                                    "Qty": qty, "TaxCodeRef": {"value": tax}}}


MEMO = {"value": "Thank you for your business and have a great day!"}


# ---------------------------------------------------------------------------- Invoice (§7.8)
def test_invoice_matches_real_open_taxed_invoice(qbo: QBOTestClient) -> None:
    real = sample("invoice_records.json")["Invoice_open_taxed"]
    items = craigs_items(qbo)
    mark = qbo.make("Customer", {
        "DisplayName": "Mark Cho", "GivenName": "Mark", "FamilyName": "Cho",
        "PrimaryEmailAddr": {"Address": "Mark@Cho.com"},
        "ShipAddr": {"Line1": "36 Willow Rd", "City": "Menlo Park", "CountrySubDivisionCode": "CA",
                     "PostalCode": "94304"}})
    response = qbo.create("Invoice", {
        "TxnDate": "2023-02-18",
        "CustomerRef": {"value": mark["Id"]},
        "SalesTermRef": {"value": "3"},
        "Line": [sales_line(items["Rock Fountain"], 1, 275, "TAX"), sales_line(items["Sprinkler Pipes"], 4, 4, "TAX")],
        "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}},
        "CustomerMemo": MEMO,
        "BillAddr": {"Line1": "Mark Cho", "Line2": "36 Willow Rd", "Line3": "Menlo Park, CA  94304"},
        "PrintStatus": "NeedToPrint",
    })
    body = response.json()
    assert response.status_code == 200, response.text
    assert_envelope(body, "Invoice")
    inv = body["Invoice"]
    assert_meta(inv)
    # computed values (§7.8, §11.5)
    assert inv["SyncToken"] == "0"
    assert [line["Amount"] for line in inv["Line"]] == [275.0, 16.0, 291.0]
    assert [line.get("Id") for line in inv["Line"]] == ["1", "2", None]
    assert [line.get("LineNum") for line in inv["Line"]] == [1, 2, None]
    assert inv["Line"][2] == {"Amount": 291.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert inv["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": items["Rock Fountain"]["Id"],
                                                                "name": "Rock Fountain"}
    assert inv["TxnTaxDetail"] == real["TxnTaxDetail"]  # code 2 -> rate 3 at 8% of 291.0 = 23.28
    assert inv["TotalAmt"] == 314.28 and inv["Balance"] == 314.28
    assert inv["DueDate"] == (date(2023, 2, 18) + timedelta(days=30)).isoformat() == real["DueDate"]
    assert inv["SalesTermRef"] == real["SalesTermRef"]
    assert inv["CurrencyRef"] == real["CurrencyRef"]
    assert inv["CustomerRef"] == {"value": mark["Id"], "name": "Mark Cho"}
    assert inv["BillEmail"] == real["BillEmail"]
    assert inv["LinkedTxn"] == [] and inv["EmailStatus"] == "NotSet"
    assert inv["DocNumber"] == "1001"  # sandbox invoices number from 1001 (§11.5)
    for flag in ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment"):
        assert inv[flag] is False
    # a read returns the same object in the same envelope
    read = qbo.read("Invoice", inv["Id"]).json()
    assert_envelope(read, "Invoice")
    assert read["Invoice"] == inv
    assert_same_shape(real, inv, GEOCODE | CUSTOM_FIELDS)


# ---------------------------------------------------------------------------- Payment (§7.10)
def test_payment_matches_real_payment_and_pays_the_invoice(qbo: QBOTestClient) -> None:
    real_payment = sample("payment_record.json")["Payment"]
    real_paid = sample("invoice_records.json")["Invoice_paid"]
    items = craigs_items(qbo)
    cust = qbo.make("Customer", {"DisplayName": "0969 Ocean View Road", "CompanyName": "Freeman Sporting Goods",
                                 "PrimaryEmailAddr": {"Address": "Sporting_goods@intuit.com"},
                                 "BillAddr": {"Line1": "370 Easy St.", "City": "Middlefield",
                                              "CountrySubDivisionCode": "CA", "PostalCode": "94482"},
                                 "ShipAddr": {"Line1": "370 Easy St.", "City": "Middlefield",
                                              "CountrySubDivisionCode": "CA", "PostalCode": "94482"}})
    inv = qbo.make("Invoice", {
        "TxnDate": "2022-12-04", "CustomerRef": {"value": cust["Id"]}, "SalesTermRef": {"value": "3"},
        "Line": [sales_line(items["Gardening"], 3, 30, "NON"), sales_line(items["Rock Fountain"], 1, 275, "TAX")],
        "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}}, "CustomerMemo": MEMO,
        "BillAddr": {"Line1": "Sasha Tillou", "Line2": "Freeman Sporting Goods", "Line3": "370 Easy St.",
                     "Line4": "Middlefield, CA  94482"}})
    assert inv["TotalAmt"] == 387.0 and inv["TxnTaxDetail"]["TotalTax"] == 22.0  # 90 NON + 275 TAX (§7.8)
    assert inv["DueDate"] == "2023-01-03"

    response = qbo.create("Payment", {"TxnDate": "2023-02-18", "CustomerRef": {"value": cust["Id"]},
                                      "TotalAmt": 387.0,
                                      "Line": [{"Amount": 387.0,
                                                "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
    assert response.status_code == 200, response.text
    assert_envelope(response.json(), "Payment")
    pay = response.json()["Payment"]
    assert_meta(pay)
    assert pay["TotalAmt"] == 387.0 and pay["UnappliedAmt"] == 0 and pay["ProcessPayment"] is False
    assert pay["DepositToAccountRef"]["value"] == "4"  # Undeposited Funds by default (§7.10)
    assert pay["Line"][0]["LinkedTxn"] == [{"TxnId": inv["Id"], "TxnType": "Invoice"}]
    line_ex = {nv["value"]["Name"]: nv["value"]["Value"] for nv in pay["Line"][0]["LineEx"]["any"]}
    assert line_ex == {"txnId": inv["Id"], "txnOpenBalance": "387.00", "txnReferenceNumber": inv["DocNumber"]}

    paid = qbo.get("Invoice", inv["Id"])
    assert paid["Balance"] == 0 and paid["TotalAmt"] == 387.0
    assert paid["SyncToken"] == "1"  # the payment updated the invoice (Invoice 96 went 0 -> 1)
    assert paid["LinkedTxn"] == [{"TxnId": pay["Id"], "TxnType": "Payment"}]
    assert qbo.get("Customer", cust["Id"])["Balance"] == 0
    assert_same_shapes(("Payment", real_payment, pay, frozenset()),
                       ("Invoice", real_paid, paid, GEOCODE | CUSTOM_FIELDS))


# ---------------------------------------------------------------------------- Customer (§7.2)
def test_customer_parent_and_sub_customer_match_real_records(qbo: QBOTestClient) -> None:
    real = sample("customer_records.json")
    items = craigs_items(qbo)
    contact = {
        "PrimaryPhone": {"FreeFormNumber": "(650) 555-0987"}, "Mobile": {"FreeFormNumber": "(973) 555-8849"},
        "Fax": {"FreeFormNumber": "(520) 555-7894"}, "PrimaryEmailAddr": {"Address": "Sporting_goods@intuit.com"},
        "WebAddr": {"URI": "http://sportinggoods.intuit.com"},
        "BillAddr": {"Line1": "370 Easy St.", "City": "Middlefield", "CountrySubDivisionCode": "CA",
                     "PostalCode": "94482"},
        "ShipAddr": {"Line1": "370 Easy St.", "City": "Middlefield", "CountrySubDivisionCode": "CA",
                     "PostalCode": "94482"},
        "CompanyName": "Freeman Sporting Goods", "PreferredDeliveryMethod": "Print",
    }
    parent = qbo.make("Customer", {**contact, "DisplayName": "Freeman Sporting Goods", "GivenName": "Kirby",
                                   "FamilyName": "Freeman"})
    child = qbo.make("Customer", {**contact, "DisplayName": "0969 Ocean View Road", "GivenName": "Sasha",
                                  "FamilyName": "Tillou", "ParentRef": {"value": parent["Id"]}})
    sibling = qbo.make("Customer", {**contact, "DisplayName": "55 Twin Lane", "ParentRef": {"value": parent["Id"]}})
    for who, amount in ((child, 477.5), (sibling, 85.0)):
        qbo.make("Invoice", {"CustomerRef": {"value": who["Id"]},
                             "Line": [sales_line(items["Design"], amount / 75, 75, "NON")]})

    parent_now = qbo.get("Customer", parent["Id"])
    child_now = qbo.get("Customer", child["Id"])
    assert child_now["Job"] is True and child_now["Level"] == 1
    assert child_now["ParentRef"]["value"] == parent["Id"]
    assert child_now["FullyQualifiedName"] == "Freeman Sporting Goods:0969 Ocean View Road"
    assert child_now["PrintOnCheckName"] == "Freeman Sporting Goods"
    assert child_now["Balance"] == 477.5 and child_now["BalanceWithJobs"] == 477.5
    assert parent_now["Job"] is False and parent_now["FullyQualifiedName"] == "Freeman Sporting Goods"
    assert parent_now["Balance"] == 0 and parent_now["BalanceWithJobs"] == 562.5
    # balances moved, but the customers were not edited: SyncToken stays "0" (§7.2)
    assert parent_now["SyncToken"] == "0" and child_now["SyncToken"] == "0"
    assert_same_shapes(("parent", real["Customer_parent"], parent_now, GEOCODE),
                       ("child", real["Customer_subcustomer"], child_now, GEOCODE))


# ---------------------------------------------------------------------------- Item (§1.4, §2.2)
def test_item_read_and_query_envelopes_match_real_ones(qbo: QBOTestClient) -> None:
    real = sample("item_read_and_query_responses.json")
    pump = qbo.make("Item", {"Name": "Pump", "Description": "Fountain Pump", "Taxable": True, "UnitPrice": 15,
                             "Type": "Inventory", "IncomeAccountRef": {"value": "79"}, "PurchaseDesc": "Fountain Pump",
                             "PurchaseCost": 10, "ExpenseAccountRef": {"value": "80"},
                             "AssetAccountRef": {"value": "81"}, "TrackQtyOnHand": True, "QtyOnHand": 25,
                             "InvStartDate": "2017-01-31"})
    qbo.make("Item", {"Name": "Concrete", "Description": "Concrete for fountain installation", "Taxable": True,
                      "UnitPrice": 0, "Type": "Service", "IncomeAccountRef": {"value": "45"}})
    read = qbo.read("Item", pump["Id"])
    assert read.status_code == 200
    assert_envelope(read.json(), "Item")
    item = read.json()["Item"]
    assert item["QtyOnHand"] == 25 and item["FullyQualifiedName"] == "Pump" and item["Active"] is True
    assert item["IncomeAccountRef"] == {"value": "79", "name": "Sales of Product Income"}

    query = qbo.query("SELECT * FROM Item")
    assert query.status_code == 200
    body = query.json()
    assert set(body) == {"QueryResponse", "time"} and ENVELOPE_TIME.match(body["time"])
    qr = body["QueryResponse"]
    assert set(qr) == set(real["query_response"]["QueryResponse"]) == {"Item", "startPosition", "maxResults"}
    # maxResults = rows returned: Pump, Concrete and the built-in "Services" (Item 1 of every company)
    assert qr["startPosition"] == 1 and qr["maxResults"] == len(qr["Item"]) == 3
    # POST /query with application/text gives the same answer (python-quickbooks does that, §1.2)
    posted = qbo.query("SELECT * FROM Item", method="POST")
    assert posted.status_code == 200 and posted.json()["QueryResponse"]["Item"] == qr["Item"]
    real_by_name = {i["Name"]: i for i in real["query_response"]["QueryResponse"]["Item"]}
    assert_same_shapes(("read", real["read_response"], read.json(), frozenset()),
                       *((f"query {got['Name']}", real_by_name[got["Name"]], got, frozenset()) for got in qr["Item"]))


def test_every_new_company_has_item_1_services_and_a_client_can_invoice_with_it(qbo: QBOTestClient) -> None:
    """A widely used Python client invoices ``ItemRef`` 1 "Services" in a brand-new company, as in QBO."""
    real = {i["Id"]: i for i in sample("item_read_and_query_responses.json")["query_response"]["QueryResponse"]["Item"]}
    services = qbo.get("Item", "1")
    assert {k: v for k, v in services.items() if k != "MetaData"} == \
        {k: v for k, v in real["1"].items() if k != "MetaData"}
    customer = qbo.make("Customer", {"DisplayName": "First Customer"})
    invoice = qbo.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [
        {"Amount": 100.0, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}}}]})
    assert invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"] == {"value": "1", "name": "Services"}
    assert invoice["TotalAmt"] == 100.0
    # the company's own items are numbered after it
    assert qbo.make("Item", {"Name": "Hours", "Type": "Service", "IncomeAccountRef": {"value": "1"}})["Id"] == "2"


# ---------------------------------------------------------------------------- SalesReceipt (§7.14)
def test_sales_receipt_create_matches_real_response(qbo: QBOTestClient) -> None:
    real = sample("salesreceipt_create_response.json")
    product = qbo.make("Item", {"Name": "Test Product", "Type": "Service", "UnitPrice": 0,
                                "IncomeAccountRef": {"value": "79"}})
    response = qbo.create("SalesReceipt", {
        "PrintStatus": "NeedToPrint",
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 0,
                  "SalesItemLineDetail": {"ItemRef": {"value": product["Id"]}, "Qty": 1, "UnitPrice": 0,
                                          "TaxCodeRef": {"value": "NON"}}}]})
    assert response.status_code == 200, response.text
    assert_envelope(response.json(), "SalesReceipt")
    sr = response.json()["SalesReceipt"]
    assert sr["TotalAmt"] == 0 and sr["Balance"] == 0 and sr["SyncToken"] == "0"
    assert sr["DocNumber"] == "1001"
    assert sr["Line"][1] == {"Amount": 0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
    assert sr["DepositToAccountRef"] == real["SalesReceipt"]["DepositToAccountRef"]
    # TxnTaxDetail: the real company did not use sales tax, so QBO left it out; this company does
    # (QBO's batch sample shows {"TotalTax": 0} on a sales receipt of a company with sales tax).
    assert_same_shape(real, response.json(), {"TxnTaxDetail"})


# ---------------------------------------------------------------------------- CompanyInfo (§7.1)
def test_company_info_read_matches_real_response(qbo: QBOTestClient) -> None:
    real = sample("companyinfo_read_response.json")["response"]
    response = qbo.read("CompanyInfo", qbo.realm)  # GET /companyinfo/{realmId}
    assert response.status_code == 200, response.text
    # EmployerId: the real company entered its EIN, a new one has none.
    # DefaultTimeZone: added by minorversion 75 (§1.5), after the 2015 sample was taken.
    assert_same_shape(real, response.json(), {"EmployerId", "DefaultTimeZone"})
    assert_envelope(response.json(), "CompanyInfo")
    info = response.json()["CompanyInfo"]
    assert info["Id"] == "1" and info["CompanyName"] == "Craig's Design and Landscaping Services"
    assert info["DefaultTimeZone"]  # minorversion 75 field
    names = {nv["Name"] for nv in info["NameValue"]}
    assert {"SubscriptionStatus", "OfferingSku", "NeoEnabled"} <= names
    # also queryable (§1.2)
    rows = qbo.ok(qbo.query("SELECT * FROM CompanyInfo"), "QueryResponse")["CompanyInfo"]
    assert rows == [info]


# ---------------------------------------------------------------------------- faults (§4.6-§4.8)
def _real_fault(code: str, detail_contains: str = "") -> dict:
    for f in sample("faults.json")["faults"]:
        body = f.get("json_real") or f.get("json_equivalent")
        if f["code"] == code and body and detail_contains in body["Fault"]["Error"][0]["Detail"]:
            return body
    raise AssertionError(f"no sample for {code}")


def assert_fault_like(response: requests.Response, real: dict, *, status: int = 400, detail: str | None = None) -> dict:
    """Same HTTP status, envelope keys, types, fault type, code and Message as the real fault."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    real_envelope = dict(real)
    if "time" not in real_envelope:  # the batch-item sample has no envelope time; a response has one
        real_envelope["time"] = "2017-03-14T11:31:21.758-07:00"
    assert_same_shape(real_envelope, body)
    assert ENVELOPE_TIME.match(body["time"])
    got, want = body["Fault"], real["Fault"]
    assert got["type"] == want["type"]
    assert len(got["Error"]) == 1
    assert got["Error"][0]["code"] == want["Error"][0]["code"]
    assert got["Error"][0]["Message"] == want["Error"][0]["Message"]
    if detail is not None:
        assert got["Error"][0]["Detail"] == detail
    return got["Error"][0]


def test_fault_2020_required_name(qbo: QBOTestClient) -> None:
    real = _real_fault("2020", "Name")
    error = assert_fault_like(qbo.create("Item", {"Type": "Service", "IncomeAccountRef": {"value": "45"}}), real,
                              detail=real["Fault"]["Error"][0]["Detail"])
    assert error["element"] == "Name"


def test_fault_2020_required_line_detail_type(qbo: QBOTestClient) -> None:
    real = _real_fault("2020", "Line.DetailType")
    error = assert_fault_like(qbo.create("SalesReceipt", {"Line": [{"Amount": 10}]}), real,
                              detail=real["Fault"]["Error"][0]["Detail"])
    assert error["element"] == "Line.DetailType"


def test_fault_4000_query_parse_error(qbo: QBOTestClient) -> None:
    error = assert_fault_like(qbo.query("SELECT * FROM null"), _real_fault("4000"))
    assert error["Detail"].startswith("QueryParserError: Encountered")


def test_fault_4001_query_validation(qbo: QBOTestClient) -> None:
    real = _real_fault("4001")
    assert_fault_like(qbo.query("SELECT * FROM Customer MAXRESULTS 1500"), real,
                      detail="QueryValidationError: value 1500 is too large. Max allowed value is 1000")
    error = assert_fault_like(qbo.query("SELECT * FROM Customer MAXRESULTS 0"), real)
    assert error["Detail"] == "QueryValidationError: value 0 is too small. Min allowed value is 1"


def test_fault_5010_stale_sync_token(qbo: QBOTestClient) -> None:
    item = qbo.make("Item", {"Name": "Hours", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert qbo.update("Item", {"Id": item["Id"], "SyncToken": "0", "Description": "first"}, sparse=True).ok
    error = assert_fault_like(
        qbo.update("Item", {"Id": item["Id"], "SyncToken": "0", "Description": "second"}, sparse=True),
        _real_fault("5010"))
    assert error["element"] == ""
    assert error["Detail"].startswith("Stale Object Error : You and ")
    assert qbo.get("Item", item["Id"])["Description"] == "first"


def test_fault_610_object_not_found(qbo: QBOTestClient) -> None:
    real = _real_fault("610")
    error = assert_fault_like(qbo.read("Item", "9999"), real, detail=real["Fault"]["Error"][0]["Detail"])
    assert error["element"] == ""


def test_fault_6240_duplicate_name(qbo: QBOTestClient) -> None:
    real = _real_fault("6240")
    qbo.make("Customer", {"DisplayName": "Smith Family Store"})
    error = assert_fault_like(qbo.create("Vendor", {"DisplayName": "Smith Family Store"}), real,
                              detail=real["Fault"]["Error"][0]["Detail"])
    assert error["element"] == ""


def _bad_token_call(qbo: QBOTestClient, token: str) -> requests.Response:
    return requests.get(qbo.url(f"companyinfo/{qbo.realm}"), params={"minorversion": "75"}, timeout=30,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})


def _assert_gateway_401(response: requests.Response) -> dict:
    real = sample("fault_401_authentication_lowercase.json")
    assert response.status_code == real["http_status"] == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="Intuit", error="invalid_token"'
    assert TID.match(response.headers["intuit_tid"])
    body = response.json()
    assert_same_shape(real["body"], body)
    assert set(body) == set(real["body"])
    assert isinstance(body["time"], int) and body["time"] > 1_600_000_000_000  # epoch milliseconds
    error = body["fault"]["error"][0]
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    assert error["code"] == "3200" and error["element"] is None
    return error


def test_401_lowercase_envelope_for_bad_and_expired_tokens(emulator: Any, qbo: QBOTestClient) -> None:
    _assert_gateway_401(_bad_token_call(qbo, "not-a-token-at-all-but-long-enough"))
    _assert_gateway_401(_bad_token_call(qbo, "short"))
    # an expired access token: the detail says so, as in the captured body (§4.6)
    expired = control(emulator, "POST", "oauth/expire", json={"realmId": qbo.realm, "what": "access"})
    assert expired.status_code == 200, expired.text
    error = _assert_gateway_401(qbo.read("CompanyInfo", qbo.realm))
    assert error["detail"].startswith("Token expired: ")


# ---------------------------------------------------------------------------- batch (§5)
def test_official_batch_sample_replayed(qbo: QBOTestClient) -> None:
    real = sample("batch_request_response.json")
    items = craigs_items(qbo)
    qbo.make("Customer", {"DisplayName": "Smith Family Store"})  # item 1 -> 6240
    dylan = qbo.make("Customer", {"DisplayName": "Dylan Sollfrank"})
    sr = qbo.make("SalesReceipt", {
        "TxnDate": "2015-08-25", "CustomerRef": {"value": dylan["Id"]}, "PaymentRefNum": "10264",
        "PaymentMethodRef": {"value": "2"}, "DepositToAccountRef": {"value": "35"}, "CustomerMemo": MEMO,
        "BillAddr": {"Line1": "Dylan Sollfrank"},
        "Line": [sales_line(items["Design"], 4.5, 75, "NON")]})
    qbo.ok(qbo.update("SalesReceipt", {"Id": sr["Id"], "SyncToken": "0", "PrivateNote": "A private note."},
                      sparse=True), "SalesReceipt")  # now at SyncToken 1, so item 3's "0" is stale
    request = json.loads(json.dumps(real["request"]))
    request["BatchItemRequest"][2]["SalesReceipt"]["Id"] = sr["Id"]  # the sample's Id 11 is this receipt
    response = qbo.raw("POST", "batch", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"BatchItemResponse", "time"} and ENVELOPE_TIME.match(body["time"])
    got = {item["bId"]: item for item in body["BatchItemResponse"]}
    want = {item["bId"]: item for item in real["response"]["BatchItemResponse"]}
    assert set(got) == set(want) == {"bid1", "bid2", "bid3", "bid4"}
    for bid in ("bid1", "bid2", "bid3"):
        assert set(got[bid]) == {"bId", "Fault"}
        assert_same_shape(want[bid]["Fault"], got[bid]["Fault"])
        for key in ("code", "Message"):
            assert got[bid]["Fault"]["Error"][0][key] == want[bid]["Fault"]["Error"][0][key]
        assert got[bid]["Fault"]["type"] == "ValidationFault"
    assert [got[b]["Fault"]["Error"][0]["code"] for b in ("bid1", "bid2", "bid3")] == ["6240", "610", "5010"]
    assert set(got["bid4"]) == {"bId", "QueryResponse"}
    qr = got["bid4"]["QueryResponse"]
    assert qr["startPosition"] == 1 and qr["maxResults"] == 1
    receipt = qr["SalesReceipt"][0]
    assert receipt["Id"] == sr["Id"] and receipt["TotalAmt"] == 337.5 and receipt["SyncToken"] == "1"
    # nothing was created by the faulted item
    assert qbo.count("Vendor") == 0
    assert_same_shape(want["bid4"]["QueryResponse"], qr, GEOCODE | CUSTOM_FIELDS)


# ---------------------------------------------------------------------------- headers, minorversion
def test_intuit_tid_on_every_response(qbo: QBOTestClient) -> None:
    cust = qbo.create("Customer", {"DisplayName": "Amy's Bird Sanctuary"})
    responses = {
        "success": cust,
        "read": qbo.read("Customer", cust.json()["Customer"]["Id"]),
        "fault": qbo.read("Customer", "9999"),
        "401": _bad_token_call(qbo, "x" * 40),
        "query": qbo.query("SELECT * FROM Customer"),
        "report": qbo.raw("GET", "reports/ProfitAndLoss"),
        "batch": qbo.batch([{"bId": "1", "Query": "SELECT * FROM Customer"}]),
    }
    tids = set()
    for what, response in responses.items():
        assert response.status_code in (200, 400, 401), (what, response.status_code, response.text[:300])
        tid = response.headers.get("intuit_tid")
        assert tid and TID.match(tid), (what, tid)
        tids.add(tid)
    assert len(tids) == len(responses)  # one transaction id per request
    assert responses["success"].headers["content-type"] == "application/json;charset=UTF-8"


@pytest.mark.parametrize("minorversion", [None, "4", "65", "75"])
def test_minorversion_absent_old_and_current_accepted(qbo: QBOTestClient, minorversion: str | None) -> None:
    assert qbo.raw("GET", f"companyinfo/{qbo.realm}", minorversion=minorversion).status_code == 200
    assert qbo.raw("GET", "query", params={"query": "SELECT * FROM Term"},
                   minorversion=minorversion).status_code == 200
    created = qbo.raw("POST", "customer", json={"DisplayName": f"Customer mv {minorversion}"},
                      minorversion=minorversion)
    assert created.status_code == 200, created.text


# ---------------------------------------------------------------------------- control API contract
def test_control_companies_lists_realm_and_name(emulator: Any) -> None:
    created = control(emulator, "POST", "companies", json={"name": "Larry's Bakery"})
    assert created.status_code in (200, 201)
    realm = created.json()["realmId"]
    listed = control(emulator, "GET", "companies")
    assert listed.status_code == 200
    rows = listed.json()
    assert isinstance(rows, list)
    assert {"realmId": realm, "name": "Larry's Bakery"}.items() <= next(r for r in rows if r["realmId"] == realm).items()


def test_control_tokens_work_with_the_api_and_the_refresh_grant(emulator: Any) -> None:
    realm = control(emulator, "POST", "companies", json={"name": "Token Co"}).json()["realmId"]
    response = control(emulator, "POST", f"companies/{realm}/tokens")
    assert response.status_code == 200, response.text
    tokens = response.json()
    for key in ("access_token", "refresh_token", "client_id", "client_secret"):
        assert isinstance(tokens[key], str) and tokens[key], key
    assert QBOTestClient(emulator.url, realm, tokens["access_token"]).read("CompanyInfo", realm).status_code == 200
    refreshed = requests.post(
        f"{emulator.url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(tokens["client_id"], tokens["client_secret"]),
        headers={"Accept": "application/json"}, timeout=30)
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["token_type"].lower() == "bearer" and new["access_token"] and new["refresh_token"]
    assert QBOTestClient(emulator.url, realm, new["access_token"]).read("CompanyInfo", realm).status_code == 200
    # tokens issued through the helper (the same route) behave identically
    assert issue_tokens(emulator, realm)["access_token"]


def test_control_act_creates_an_object_visible_through_the_api(emulator: Any, qbo: QBOTestClient) -> None:
    acted = control(emulator, "POST", f"companies/{qbo.realm}/act",
                    json={"entity": "Customer", "operation": "create", "body": {"DisplayName": "Walk-in Customer"}})
    assert acted.status_code == 200, acted.text
    cust_id = acted.json()["Customer"]["Id"]
    seen = qbo.get("Customer", cust_id)
    assert seen["DisplayName"] == "Walk-in Customer" and seen["SyncToken"] == "0"
    rows = qbo.ok(qbo.query("SELECT * FROM Customer WHERE DisplayName = 'Walk-in Customer'"), "QueryResponse")
    assert [r["Id"] for r in rows["Customer"]] == [cust_id]


# ---------------------------------------------------------------------------- the comparison itself
def test_shape_diff_sees_missing_extra_and_retyped_keys() -> None:
    real = sample("invoice_records.json")["Invoice_open_taxed"]
    assert shape_diff(real, json.loads(json.dumps(real))) == []
    changed = json.loads(json.dumps(real))
    del changed["Line"][0]["SalesItemLineDetail"]["Qty"]
    changed["Balance"] = "314.28"
    changed["Extra"] = 1
    changed["CustomerRef"].pop("name")  # a reference's name is optional (§4.1)
    assert shape_diff(real, changed) == [
        "$.Balance: type string (real QBO: number)",
        "$.Extra: extra (real QBO does not send it)",
        "$.Line[].SalesItemLineDetail.Qty: missing (real QBO has it)",
    ]
    assert shape_diff(real, changed, ignore={"Extra", "Balance", "SalesItemLineDetail.Qty"}) == []
