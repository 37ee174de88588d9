"""The rest of the demo company's books: purchase orders, transfers, card payments, a budget,
recurring templates, exchange rates, attachments and a second tax agency.

Seeded after everything else (``demo_finish``), so the Ids of the year's transactions do not
move when this part grows; dated back from the emulator's today like the rest, and built
through the engine as a QuickBooks user would enter them (``as_user`` where the API refuses
what the product allows: budgets).
"""

from __future__ import annotations

from typing import Any

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.engine.values import money
from qb_pipelines.emulator.seed.demo_lists import Demo

#: Rates of the foreign currencies the demo company trades in, per unit, against USD.
_RATES = {"EUR": 1.08, "GBP": 1.27, "CAD": 0.74}


def _account_line(amount: float, account: int | str, **detail: Any) -> dict:
    return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": str(account)}, **detail}}


def _item_line(d: Demo, name: str, qty: int) -> dict:
    item = d.items[name]
    return {"Amount": money(qty * float(item["PurchaseCost"])), "DetailType": "ItemBasedExpenseLineDetail",
            "ItemBasedExpenseLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                           "UnitPrice": item["PurchaseCost"]}}


def demo_more(d: Demo) -> None:
    """Everything the year's activity does not already cover (see the module docstring)."""
    billed = _purchase_orders(d)
    _transfers(d)
    _tax_agency(d)
    _budget(d)
    _recurring(d)
    _exchange_rates(d)
    _attachments(d, billed)


def _purchase_orders(d: Demo) -> str:
    """Three orders: one received and billed (the bill links it and closes it), two still open.

    Returns the Id of the bill made from the received order.
    """
    received = d.create("PurchaseOrder", {
        "VendorRef": {"value": d.vendors["Tania's Nursery"]}, "APAccountRef": {"value": str(chart.ACCOUNTS_PAYABLE)},
        "TxnDate": d.day(d.today, -25), "Memo": "Spring restock",
        "Line": [_item_line(d, "Sprinkler Heads", 30), _item_line(d, "Pump", 4)]})
    bill = d.create("Bill", {"VendorRef": {"value": d.vendors["Tania's Nursery"]}, "TxnDate": d.day(d.today, -12),
                             "LinkedTxn": [{"TxnId": received["Id"], "TxnType": "PurchaseOrder"}],
                             "Line": [{k: v for k, v in line.items() if k not in ("Id", "LineNum")}
                                      for line in received["Line"]]})
    d.create("PurchaseOrder", {
        "VendorRef": {"value": d.vendors["Norton Lumber and Building Materials"]},
        "APAccountRef": {"value": str(chart.ACCOUNTS_PAYABLE)}, "TxnDate": d.day(d.today, -6),
        "POEmail": {"Address": "orders@nortonlumber.example.com"},
        "Line": [_account_line(480.0, 17, CustomerRef={"value": d.customers["Cool Cars"]},
                               BillableStatus="Billable")]})
    d.create("PurchaseOrder", {
        "VendorRef": {"value": d.vendors["Hicks Hardware"]}, "APAccountRef": {"value": str(chart.ACCOUNTS_PAYABLE)},
        "TxnDate": d.day(d.today, -3), "Line": [_item_line(d, "Rock Fountain", 2), _account_line(35.0, 17)]})
    return str(bill["Id"])


def _transfers(d: Demo) -> None:
    """Savings put aside every quarter, and the card paid down from the bank twice."""
    for months_ago in (9, 6, 3):
        d.create("Transfer", {"FromAccountRef": {"value": str(chart.CHECKING)},
                              "ToAccountRef": {"value": str(chart.SAVINGS)}, "Amount": 1500.0,
                              "TxnDate": d.day(d.today, -30 * months_ago), "PrivateNote": "Quarterly savings"})
    for months_ago, amount in ((5, 350.0), (2, 420.75)):
        d.create("CreditCardPayment", {"BankAccountRef": {"value": str(chart.CHECKING)},
                                       "CreditCardAccountRef": {"value": str(chart.MASTERCARD)}, "Amount": amount,
                                       "TxnDate": d.day(d.today, -30 * months_ago), "PrivateNote": "Pay down Mastercard"})


def _tax_agency(d: Demo) -> None:
    d.create("TaxAgency", {"DisplayName": "Arizona Dept. of Revenue"})


def _budget(d: Demo) -> None:
    """This year's operating budget, month by month, for rent, utilities and insurance."""
    year = d.today[:4]
    details = []
    for month in range(1, 13):
        first = f"{year}-{month:02d}-01"
        for account, amount in ((57, 900.0), (59, 260.0), (20, 120.0)):
            details.append({"BudgetDate": first, "AccountRef": {"value": str(account)}, "Amount": amount})
    d.emu.engine.create(d.realm, "Budget", {"Name": f"FY{year} Operating Budget", "StartDate": f"{year}-01-01",
                                            "EndDate": f"{year}-12-31", "BudgetEntryType": "Monthly",
                                            "BudgetDetail": details}, as_user=True)


def _recurring(d: Demo) -> None:
    """The rent and phone bills as monthly templates, and a customer's weekly gardening invoice."""
    next_month = add_days(d.today[:8] + "01", 32)[:8] + "01"
    for vendor, account, amount, name in (("Hall Properties", 57, 900.0, "Monthly Building Lease"),
                                          ("Cal Telephone", 59, 74.36, "Telephone Bill")):
        d.create("RecurringTransaction", {"Bill": {
            "VendorRef": {"value": d.vendors[vendor]}, "Line": [_account_line(amount, account)],
            "RecurringInfo": {"Name": name, "RecurType": "Automated", "Active": True,
                              "ScheduleInfo": {"IntervalType": "Monthly", "NumInterval": 1, "DayOfMonth": 1,
                                               "StartDate": next_month}}}})
    gardening = d.items["Gardening"]
    d.create("RecurringTransaction", {"Invoice": {
        "CustomerRef": {"value": d.customers["Red Rock Diner"]},
        "Line": [{"Amount": 100.0, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": gardening["Id"]}, "Qty": 4, "UnitPrice": 25}}],
        "RecurringInfo": {"Name": "Red Rock Diner gardening", "RecurType": "Reminder", "Active": True,
                          "ScheduleInfo": {"IntervalType": "Weekly", "NumInterval": 1, "DayOfWeek": "Monday",
                                           "DaysBefore": 2, "StartDate": add_days(d.today, 3)}}}})


def _exchange_rates(d: Demo) -> None:
    """Multicurrency turned on, and the rates of three currencies at the start of recent months."""
    eng, realm = d.emu.engine, d.realm
    prefs = eng.read(realm, "Preferences", "1")
    eng.update(realm, "Preferences", {"Id": "1", "SyncToken": prefs["SyncToken"], "sparse": True,
                                      "CurrencyPrefs": {**prefs["CurrencyPrefs"], "MultiCurrencyEnabled": True}})
    for step, months_ago in enumerate((2, 1, 0)):
        first = add_days(d.today, -30 * months_ago)[:8] + "01"
        for code, base in _RATES.items():
            d.create("ExchangeRate", {"SourceCurrencyCode": code, "TargetCurrencyCode": "USD", "AsOfDate": first,
                                      "Rate": round(base * (1 + 0.01 * (step - 1)), 4)})


def _attachments(d: Demo, bill_id: str) -> None:
    """A scanned receipt on a bill, a signed estimate on an invoice, and a note on its own."""
    with d.emu.db.read() as conn:  # the latest invoice still standing (not the voided one)
        invoice_id = str(conn.execute(
            "SELECT MAX(id) FROM objects WHERE realm=? AND entity='Invoice' AND status IS NULL "
            "AND COALESCE(json_extract(body, '$.PrivateNote'), '') NOT LIKE 'Voided%'", (d.realm,)).fetchone()[0])
    d.create("Attachable", {"FileName": "tanias_nursery_receipt.pdf", "Category": "Receipt", "Size": 184320,
                            "Note": "Delivery receipt, signed", "AttachableRef": [
                                {"EntityRef": {"type": "Bill", "value": bill_id}, "IncludeOnSend": False}]})
    d.create("Attachable", {"FileName": "signed_estimate.jpg", "Category": "Image", "Size": 1594261,
                            "AttachableRef": [{"EntityRef": {"type": "Invoice", "value": invoice_id},
                                               "IncludeOnSend": True}]})
    d.create("Attachable", {"Note": "Call Hall Properties about the lease renewal in the spring."})
