"""The entities of issue 10 §16 in the emulator, over real HTTP, as QBO serves them.

PurchaseOrder (non-posting vendor document a bill closes), Transfer and CreditCardPayment (money
between two accounts, posted), TaxAgency (a list without Active, outside CDC), Budget (read-only
through the API), RecurringTransaction (a schedule wrapping a transaction template), ExchangeRate
(no Id: set by POST, read by currency and date) and Attachable (metadata only). The generic
lifecycle of the ones with an Id of their own is in ``test_emulator_entities``; here are their
own rules, their query and CDC answers, and which of them QBO reports by webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from qb_pipelines.emulator import chart
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.webhooks import parse_notifications
from qb_pipelines_tests.emulator_client import QBOTestClient, connect, control, fault_of
from qb_pipelines_tests.webhook_helpers import TOKEN, Receiver, flush, subscribe

CHECKING, SAVINGS, CARD, AP = str(chart.CHECKING), str(chart.SAVINGS), str(chart.MASTERCARD), str(
    chart.ACCOUNTS_PAYABLE)


@pytest.fixture
def qbo(emulator: Any) -> QBOTestClient:
    return connect(emulator)


def _expense_line(amount: float, account: str = "17") -> dict:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account}}}


def _rows(qbo: QBOTestClient, statement: str, key: str) -> list[dict]:
    return qbo.ok(qbo.query(statement), "QueryResponse").get(key, [])


def _balance(qbo: QBOTestClient, account: str) -> float:
    return float(qbo.get("Account", account)["CurrentBalance"])


def _since(qbo: QBOTestClient) -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _cdc(qbo: QBOTestClient, entities: str, since: str) -> dict[str, list[dict]]:
    body = qbo.ok(qbo.raw("GET", "cdc", params={"entities": entities, "changedSince": since}), "CDCResponse")
    out: dict[str, list[dict]] = {}
    for block in body[0]["QueryResponse"]:
        for key, value in block.items():
            if isinstance(value, list):
                out[key] = value
    return out


# ---------------------------------------------------------------------------- PurchaseOrder
def test_a_purchase_order_posts_nothing_and_the_bill_made_from_it_closes_it(qbo: QBOTestClient) -> None:
    vendor = qbo.make("Vendor", {"DisplayName": "Hicks Hardware"})
    body = {"VendorRef": {"value": vendor["Id"]}, "Line": [_expense_line(25.0)]}
    fault_of(qbo.create("PurchaseOrder", body), "2020")  # APAccountRef is among QBO's minimum elements
    fault_of(qbo.create("PurchaseOrder", {**body, "APAccountRef": {"value": CHECKING}}), "6000")  # not an A/P account
    po = qbo.make("PurchaseOrder", {**body, "APAccountRef": {"value": AP}, "POEmail": {"Address": "h@hicks.example"}})
    assert po["POStatus"] == "Open" and po["EmailStatus"] == "NotSet" and po["DocNumber"] == "1001"
    assert po["TotalAmt"] == 25.0 and po["APAccountRef"]["name"] == "Accounts Payable (A/P)"
    # non-posting: no A/P, no vendor balance
    assert _balance(qbo, AP) == 0 and qbo.get("Vendor", vendor["Id"])["Balance"] == 0
    assert [p["Id"] for p in _rows(qbo, "SELECT * FROM PurchaseOrder WHERE POStatus = 'Open'", "PurchaseOrder")] \
        == [po["Id"]]

    other = qbo.make("Vendor", {"DisplayName": "Norton Lumber"})
    link = [{"TxnId": po["Id"], "TxnType": "PurchaseOrder"}]
    fault_of(qbo.create("Bill", {"VendorRef": {"value": other["Id"]}, "LinkedTxn": link,
                                 "Line": [_expense_line(25.0)]}), "6000")  # another vendor's order
    bill = qbo.make("Bill", {"VendorRef": {"value": vendor["Id"]}, "LinkedTxn": link, "Line": [_expense_line(25.0)]})
    closed = qbo.get("PurchaseOrder", po["Id"])
    assert closed["POStatus"] == "Closed" and closed["LinkedTxn"] == [{"TxnId": bill["Id"], "TxnType": "Bill"}]
    assert {"TxnId": po["Id"], "TxnType": "PurchaseOrder"} in bill["LinkedTxn"]
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 25.0  # the bill, not the order, owes

    deleted = qbo.delete("Bill", bill["Id"], bill["SyncToken"])
    assert deleted.status_code == 200, deleted.text
    reopened = qbo.get("PurchaseOrder", po["Id"])
    assert reopened["POStatus"] == "Open" and reopened["LinkedTxn"] == []

    pdf = qbo.raw("GET", f"purchaseorder/{po['Id']}/pdf", headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    sent = qbo.ok(qbo.raw("POST", f"purchaseorder/{po['Id']}/send", params={"sendTo": "orders@hicks.example"}),
                  "PurchaseOrder")
    assert sent["EmailStatus"] == "EmailSent" and sent["POEmail"] == {"Address": "orders@hicks.example"}


# ---------------------------------------------------------------------------- Transfer
def test_a_transfer_moves_money_between_two_asset_accounts(qbo: QBOTestClient) -> None:
    since = _since(qbo)
    body = {"FromAccountRef": {"value": CHECKING}, "ToAccountRef": {"value": SAVINGS}, "Amount": 1000.0,
            "TxnDate": "2025-01-15", "PrivateNote": "Monthly savings transfer"}
    fault_of(qbo.create("Transfer", {**body, "ToAccountRef": {"value": CHECKING}}), "6000")  # same account
    fault_of(qbo.create("Transfer", {**body, "ToAccountRef": {"value": CARD}}), "6000")  # a liability
    fault_of(qbo.create("Transfer", {**body, "Amount": 0}), "6000")
    fault_of(qbo.create("Transfer", {k: v for k, v in body.items() if k != "Amount"}), "2020")
    transfer = qbo.make("Transfer", body)
    assert transfer["FromAccountRef"] == {"value": CHECKING, "name": "Checking"}
    assert transfer["ToAccountRef"] == {"value": SAVINGS, "name": "Savings"}
    assert transfer["Amount"] == 1000.0 and transfer["CurrencyRef"]["value"] == "USD" and "DocNumber" not in transfer
    assert (_balance(qbo, CHECKING), _balance(qbo, SAVINGS)) == (-1000.0, 1000.0)
    assert [t["Id"] for t in _rows(qbo, "SELECT * FROM Transfer WHERE Amount > '500'", "Transfer")] == [transfer["Id"]]
    assert qbo.ok(qbo.delete("Transfer", transfer["Id"], "0"), "Transfer")["status"] == "Deleted"
    assert (_balance(qbo, CHECKING), _balance(qbo, SAVINGS)) == (0.0, 0.0)
    changes = _cdc(qbo, "Transfer", since)["Transfer"]
    assert changes == [{"domain": "QBO", "status": "Deleted", "Id": transfer["Id"],
                        "MetaData": changes[0]["MetaData"]}]


# ---------------------------------------------------------------------------- CreditCardPayment
def test_a_credit_card_payment_pays_the_card_from_a_bank_and_answers_as_credit_card_payment_txn(
        qbo: QBOTestClient) -> None:
    since = _since(qbo)
    body = {"BankAccountRef": {"value": CHECKING}, "CreditCardAccountRef": {"value": CARD}, "Amount": "100",
            "TxnDate": "2025-03-27", "PrivateNote": "This will fill in the memo field."}
    fault_of(qbo.create("CreditCardPayment", {**body, "BankAccountRef": {"value": "4"}}), "6000")  # not a Bank
    fault_of(qbo.create("CreditCardPayment", {**body, "CreditCardAccountRef": {"value": SAVINGS}}), "6000")
    created = qbo.create("CreditCardPayment", body)
    assert set(created.json()) == {"CreditCardPaymentTxn", "time"}
    payment = created.json()["CreditCardPaymentTxn"]
    assert payment["Amount"] == 100.0 and payment["BankAccountRef"]["name"] == "Checking"
    assert payment["CreditCardAccountRef"]["name"] == "Mastercard" and payment["CurrencyRef"]["value"] == "USD"
    # the card owes less, the bank holds less (a liability's balance falls with a debit)
    assert (_balance(qbo, CHECKING), _balance(qbo, CARD)) == (-100.0, -100.0)
    for statement in ("select * from creditcardpayment", "SELECT * FROM CreditCardPaymentTxn"):
        assert [p["Id"] for p in _rows(qbo, statement, "CreditCardPaymentTxn")] == [payment["Id"]]
    assert set(qbo.raw("GET", f"creditcardpayment/{payment['Id']}").json()) == {"CreditCardPaymentTxn", "time"}
    batch = qbo.ok(qbo.batch([{"bId": "1", "operation": "create", "CreditCardPayment": {**body, "Amount": 5}}]),
                   "BatchItemResponse")
    assert batch[0]["CreditCardPaymentTxn"]["Amount"] == 5.0
    changed = _cdc(qbo, "CreditCardPayment", since)
    assert [p["Id"] for p in changed["CreditCardPaymentTxn"]] == [payment["Id"], batch[0]["CreditCardPaymentTxn"]["Id"]]


# ---------------------------------------------------------------------------- TaxAgency
def test_tax_agencies_are_a_list_without_active_that_cdc_does_not_cover(qbo: QBOTestClient) -> None:
    agencies = _rows(qbo, "SELECT * FROM TaxAgency", "TaxAgency")
    assert [(a["Id"], a["DisplayName"]) for a in agencies] == [("1", "Board of Equalization")]
    assert all("Active" not in a and a["TaxTrackedOnSales"] is True for a in agencies)
    assert qbo.get("TaxRate", "3")["AgencyRef"]["value"] == "1"
    city = qbo.make("TaxAgency", {"DisplayName": "CityTaxAgency"})
    assert (city["TaxTrackedOnSales"], city["TaxTrackedOnPurchases"]) == (True, False) and "Active" not in city
    fault_of(qbo.create("TaxAgency", {"DisplayName": "citytaxagency"}), "6240")
    fault_of(qbo.create("TaxAgency", {}), "2020")
    assert qbo.count("TaxAgency") == 2
    error = fault_of(qbo.raw("GET", "cdc", params={"entities": "TaxAgency", "changedSince": _since(qbo)}), "4001")
    assert "TaxAgency" in error["Detail"]


# ---------------------------------------------------------------------------- Budget
def test_budgets_are_read_through_the_api_and_set_up_by_a_quickbooks_user(qbo: QBOTestClient, emulator: Any) -> None:
    since = _since(qbo)
    body = {"Name": "FY2025", "StartDate": "2025-01-01", "EndDate": "2025-12-31", "BudgetEntryType": "Monthly",
            "BudgetDetail": [{"BudgetDate": "2025-01-01", "AccountRef": {"value": "57"}, "Amount": 900},
                             {"BudgetDate": "2025-02-01", "AccountRef": {"value": "57"}, "Amount": 900}]}
    error = fault_of(qbo.create("Budget", body), "500")
    assert error["Message"] == "Unsupported Operation"
    outside = {**body, "BudgetDetail": [{"BudgetDate": "2026-01-01", "AccountRef": {"value": "57"}, "Amount": 1}]}
    refused = control(emulator, "POST", f"companies/{qbo.realm}/act",
                      json={"entity": "Budget", "operation": "create", "body": outside})
    assert refused.status_code == 400 and refused.json()["Fault"]["Error"][0]["code"] == "6000"
    acted = control(emulator, "POST", f"companies/{qbo.realm}/act",
                    json={"entity": "Budget", "operation": "create", "body": body})
    assert acted.status_code == 200, acted.text
    budget = qbo.get("Budget", acted.json()["Budget"]["Id"])
    assert (budget["BudgetType"], budget["Active"], budget["SyncToken"]) == ("ProfitAndLoss", True, "0")
    assert [(d["BudgetDate"], d["AccountRef"], d["Amount"]) for d in budget["BudgetDetail"]] == [
        ("2025-01-01", {"value": "57", "name": "Rent or Lease"}, 900.0),
        ("2025-02-01", {"value": "57", "name": "Rent or Lease"}, 900.0)]
    assert [b["Id"] for b in _rows(qbo, "SELECT * FROM Budget", "Budget")] == [budget["Id"]]
    assert [b["Id"] for b in _cdc(qbo, "Budget", since)["Budget"]] == [budget["Id"]]


# ---------------------------------------------------------------------------- RecurringTransaction
def test_a_recurring_transaction_wraps_a_template_that_never_posts(qbo: QBOTestClient) -> None:
    since = _since(qbo)
    vendor = qbo.make("Vendor", {"DisplayName": "Cal Telephone"})
    template = {"VendorRef": {"value": vendor["Id"]}, "Line": [_expense_line(74.36, "59")],
                "RecurringInfo": {"Name": "Telephone Bill", "RecurType": "Automated",
                                  "ScheduleInfo": {"IntervalType": "Monthly", "NumInterval": 1, "DayOfMonth": 1,
                                                   "StartDate": "2025-08-01"}}}
    created = qbo.create("RecurringTransaction", {"Bill": template})
    assert set(created.json()) == {"RecurringTransaction", "time"}
    wrapper = created.json()["RecurringTransaction"]
    assert list(wrapper) == ["Bill"]
    bill = wrapper["Bill"]
    assert bill["TotalAmt"] == 74.36 and bill["Balance"] == 74.36 and bill["RecurDataRef"]["value"] == "1"
    assert bill["RecurringInfo"]["ScheduleInfo"]["NextDate"] == "2025-08-01" and bill["RecurringInfo"]["Active"]
    assert "DocNumber" not in bill and "TxnDate" not in bill and bill["SyncToken"] == "0"
    # a template owes nothing and posts nothing
    assert qbo.get("Vendor", vendor["Id"])["Balance"] == 0 and _balance(qbo, AP) == 0
    assert qbo.get("RecurringTransaction", bill["Id"]) == wrapper

    customer = qbo.make("Customer", {"DisplayName": "Red Rock Diner"})
    invoice = qbo.make("RecurringTransaction", {"Invoice": {
        "CustomerRef": {"value": customer["Id"]},
        "Line": [{"Amount": 25.0, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": 25}}],
        "RecurringInfo": {"Name": "Gardening", "RecurType": "Unscheduled"}}})
    assert list(invoice) == ["Invoice"] and qbo.get("Customer", customer["Id"])["Balance"] == 0
    listed = _rows(qbo, "SELECT * FROM RecurringTransaction", "RecurringTransaction")
    assert [list(r) for r in listed] == [["Bill"], ["Invoice"]]
    only_bills = _rows(qbo, "SELECT * FROM RecurringTransaction WHERE Type = 'Bill'", "RecurringTransaction")
    assert [r["Bill"]["Id"] for r in only_bills] == [bill["Id"]]

    fault_of(qbo.create("RecurringTransaction", {"Bill": {**template}}), "6240")  # names are unique
    fault_of(qbo.create("RecurringTransaction", {"Bill": {k: v for k, v in template.items()
                                                          if k != "RecurringInfo"}}), "2020")
    fault_of(qbo.create("RecurringTransaction", {"Payment": {"TotalAmt": 1}}), "2020")  # not a template type
    updated = qbo.ok(qbo.update("RecurringTransaction", {"Bill": {"Id": bill["Id"], "SyncToken": "0",
                                                                  "PrivateNote": "phone and internet"}},
                                sparse=True), "RecurringTransaction")["Bill"]
    assert updated["SyncToken"] == "1" and updated["PrivateNote"] == "phone and internet"
    assert updated["RecurDataRef"] == bill["RecurDataRef"] and updated["TotalAmt"] == 74.36
    fault_of(qbo.update("RecurringTransaction", {"Bill": {"Id": bill["Id"], "SyncToken": "0", "PrivateNote": "x"}},
                        sparse=True), "5010")
    deleted = qbo.raw("POST", "recurringtransaction", params={"operation": "delete"},
                      json={"Bill": {"Id": bill["Id"], "SyncToken": "1"}})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["RecurringTransaction"] == {"status": "Deleted", "domain": "QBO", "Bill": {"Id": bill["Id"]}}
    fault_of(qbo.read("RecurringTransaction", bill["Id"]), "610")
    changed = _cdc(qbo, "RecurringTransaction", since)["RecurringTransaction"]
    assert sorted(list(c) for c in changed) == [["Invoice"], ["domain", "status", "Id", "MetaData"]]
    assert next(c for c in changed if "Id" in c)["Id"] == bill["Id"]


# ---------------------------------------------------------------------------- ExchangeRate
def test_exchange_rates_have_no_id_and_are_set_and_read_by_currency_and_date(qbo: QBOTestClient) -> None:
    rate = {"SourceCurrencyCode": "EUR", "Rate": 1.08, "AsOfDate": "2025-07-01"}
    fault_of(qbo.create("ExchangeRate", rate), "6000")  # multicurrency is off
    assert qbo.ok(qbo.query("SELECT * FROM ExchangeRate"), "QueryResponse") == {}
    prefs = qbo.ok(qbo.raw("GET", "preferences"), "Preferences")
    qbo.ok(qbo.update("Preferences", {"Id": "1", "SyncToken": prefs["SyncToken"],
                                      "CurrencyPrefs": {**prefs["CurrencyPrefs"], "MultiCurrencyEnabled": True}},
                      sparse=True), "Preferences")

    created = qbo.ok(qbo.create("ExchangeRate", rate), "ExchangeRate")
    assert created == {"SyncToken": "0", "domain": "QBO", "AsOfDate": "2025-07-01", "SourceCurrencyCode": "EUR",
                       "Rate": 1.08, "sparse": False, "TargetCurrencyCode": "USD",
                       "MetaData": {"LastUpdatedTime": created["MetaData"]["LastUpdatedTime"]}}
    fault_of(qbo.create("ExchangeRate", {**rate, "SyncToken": "7"}), "5010")
    replaced = qbo.ok(qbo.create("ExchangeRate", {**rate, "Rate": 1.1, "SyncToken": "0"}), "ExchangeRate")
    assert (replaced["SyncToken"], replaced["Rate"]) == ("1", 1.1)
    qbo.ok(qbo.create("ExchangeRate", {"SourceCurrencyCode": "EUR", "Rate": 1.12, "AsOfDate": "2025-08-01"}),
           "ExchangeRate")
    fault_of(qbo.create("ExchangeRate", {**rate, "SourceCurrencyCode": "USD"}), "6000")  # the home currency
    fault_of(qbo.create("ExchangeRate", {"SourceCurrencyCode": "EUR", "Rate": 1.1}), "2020")

    def as_of(day: str | None, code: str = "EUR") -> Any:
        params = {"sourcecurrencycode": code, **({"asofdate": day} if day else {})}
        return qbo.raw("GET", "exchangerate", params=params)

    assert qbo.ok(as_of("2025-07-20"), "ExchangeRate")["Rate"] == 1.1  # the latest on or before the date
    assert qbo.ok(as_of("2025-08-01"), "ExchangeRate")["Rate"] == 1.12
    assert qbo.ok(as_of(None), "ExchangeRate")["AsOfDate"] == "2025-08-01"  # today by default
    assert qbo.ok(as_of("2025-07-20", "USD"), "ExchangeRate")["Rate"] == 1
    fault_of(as_of("2025-06-30"), "610")
    fault_of(as_of("2025-07-20", "GBP"), "610")
    rows = _rows(qbo, "SELECT * FROM exchangerate WHERE sourcecurrencycode = 'EUR'", "ExchangeRate")
    assert [(r["AsOfDate"], r["Rate"]) for r in rows] == [("2025-07-01", 1.1), ("2025-08-01", 1.12)]
    assert all("Id" not in r for r in rows)
    fault_of(qbo.raw("GET", "cdc", params={"entities": "ExchangeRate", "changedSince": _since(qbo)}), "4001")


# ---------------------------------------------------------------------------- Attachable
def test_attachments_are_notes_and_file_metadata_linked_to_objects(qbo: QBOTestClient) -> None:
    since = _since(qbo)
    customer = qbo.make("Customer", {"DisplayName": "Cool Cars"})
    invoice = qbo.make("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                   "Line": [{"Amount": 10.0, "DetailType": "SalesItemLineDetail",
                                             "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    ref = {"EntityRef": {"type": "Invoice", "value": invoice["Id"]}}
    note = qbo.make("Attachable", {"Note": "This is an attached note.", "AttachableRef": [ref]})
    assert note["AttachableRef"] == [{"EntityRef": {"type": "Invoice", "value": invoice["Id"]},
                                      "IncludeOnSend": False}]
    assert len(note["Id"]) == 19 and note["Id"].isdigit()  # QBO's attachment Ids are long
    receipt = qbo.make("Attachable", {"FileName": "receipt_nov15.jpg", "Size": 1594261, "Category": "Receipt",
                                      "AttachableRef": [{**ref, "IncludeOnSend": "true"}]})
    assert receipt["ContentType"] == "image/jpeg" and receipt["Size"] == 1594261
    assert receipt["AttachableRef"][0]["IncludeOnSend"] is True
    fault_of(qbo.create("Attachable", {"AttachableRef": [ref]}), "2020")  # neither a note nor a file
    fault_of(qbo.create("Attachable", {"Note": "x", "AttachableRef": [
        {"EntityRef": {"type": "Invoice", "value": "999999"}}]}), "2500")
    fault_of(qbo.create("Attachable", {"Note": "x", "Category": "Movie"}), "2170")
    assert [a["Id"] for a in _rows(qbo, "SELECT * FROM Attachable", "Attachable")] == [note["Id"], receipt["Id"]]
    assert qbo.ok(qbo.delete("Attachable", note["Id"], "0"), "Attachable")["status"] == "Deleted"
    changed = _cdc(qbo, "Attachable", since)["Attachable"]
    assert sorted((c["Id"], c.get("status", "")) for c in changed) == [(note["Id"], "Deleted"), (receipt["Id"], "")]


# ---------------------------------------------------------------------------- webhooks
def test_webhooks_report_only_the_entities_qbo_sends_them_for(emulator: Any) -> None:
    receiver = Receiver()
    try:
        qbo = connect(emulator)
        subscribe(emulator.url, url=receiver.url, verifier_token=TOKEN, window_s=3600)
        vendor = qbo.make("Vendor", {"DisplayName": "Tania's Nursery"})
        qbo.make("PurchaseOrder", {"VendorRef": {"value": vendor["Id"]}, "APAccountRef": {"value": AP},
                                   "Line": [_expense_line(5.0)]})
        qbo.make("Transfer", {"FromAccountRef": {"value": CHECKING}, "ToAccountRef": {"value": SAVINGS}, "Amount": 9})
        qbo.make("TaxAgency", {"DisplayName": "Arizona Dept. of Revenue"})
        qbo.make("CreditCardPayment", {"BankAccountRef": {"value": CHECKING},
                                       "CreditCardAccountRef": {"value": CARD}, "Amount": 3})
        qbo.make("Attachable", {"Note": "no webhook for me"})
        qbo.make("RecurringTransaction", {"Bill": {"VendorRef": {"value": vendor["Id"]}, "Line": [_expense_line(1.0)],
                                                   "RecurringInfo": {"Name": "R", "RecurType": "Unscheduled"}}})
        flush(emulator.url)
        events = [e for body in receiver.bodies() for e in parse_notifications(body)]
        reported = {e.entity for e in events}
        assert reported == {"Vendor", "PurchaseOrder", "Transfer", "TaxAgency"}
        assert all(registry.get(e).webhook for e in reported)
    finally:
        receiver.close()
        requests.delete(f"{emulator.url}/_emulator/webhooks", timeout=10)


def test_a_vendor_merge_moves_its_purchase_orders_and_recurring_templates(qbo: QBOTestClient, emulator: Any) -> None:
    loser = qbo.make("Vendor", {"DisplayName": "Hicks Hardware (old)"})
    winner = qbo.make("Vendor", {"DisplayName": "Hicks Hardware"})
    po = qbo.make("PurchaseOrder", {"VendorRef": {"value": loser["Id"]}, "APAccountRef": {"value": AP},
                                    "Line": [_expense_line(12.0)]})
    template = qbo.make("RecurringTransaction", {"Bill": {
        "VendorRef": {"value": loser["Id"]}, "Line": [_expense_line(30.0)],
        "RecurringInfo": {"Name": "Hardware", "RecurType": "Unscheduled"}}})["Bill"]
    merged = control(emulator, "POST", f"companies/{qbo.realm}/act",
                     json={"entity": "Vendor", "operation": "merge", "from_id": loser["Id"], "into_id": winner["Id"]})
    assert merged.status_code == 200, merged.text
    moved = qbo.get("PurchaseOrder", po["Id"])
    assert moved["VendorRef"] == {"value": winner["Id"], "name": "Hicks Hardware"} and moved["SyncToken"] == "1"
    bill = qbo.get("RecurringTransaction", template["Id"])["Bill"]
    assert bill["VendorRef"]["value"] == winner["Id"] and bill["SyncToken"] == "1"
