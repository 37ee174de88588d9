"""A year in the demo company: estimates, invoices, payments, deposits, bills, expenses, journal entries, time.

Month by month, dated back from the emulator's today, through the engine, with the edge cases a
real company has at the end: a voided invoice, a deleted expense, inactive customers and items.
"""

from __future__ import annotations

from typing import Any

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.engine.values import money
from qb_pipelines.emulator.seed.demo_lists import DEMO_DORMANT, Demo, je_line

_SELLABLE = ("Design", "Gardening", "Hours", "Installation", "Maintenance & Repair", "Pest Control", "Trimming",
             "Lighting", "Sod", "Soil", "Rocks", "Sprinkler Heads", "Sprinkler Pipes", "Pump", "Rock Fountain")


def _sales_lines(d: Demo, count: int) -> list[dict]:
    lines = []
    for name in d.rng.sample(_SELLABLE, count):
        item = d.items[name]
        qty = d.rng.choice((1, 1, 2, 3, 4, 5, 8, 10, 12)) if item["UnitPrice"] < 100 else 1
        line: dict[str, Any] = {"Amount": money(qty * float(item["UnitPrice"])), "DetailType": "SalesItemLineDetail",
                                "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                                        "UnitPrice": item["UnitPrice"]}}
        if d.rng.random() < 0.3:
            line["SalesItemLineDetail"]["ClassRef"] = {"value": d.rng.choice(list(d.classes.values()))}
        lines.append(line)
    return lines


def _trading_customers(d: Demo) -> list[str]:
    return [name for name in d.customers if name not in DEMO_DORMANT]


def _demo_invoice(d: Demo, date: str, customer: str, lines: list[dict], **extra: Any) -> dict:
    rng = d.rng
    body: dict[str, Any] = {"CustomerRef": {"value": d.customers[customer]}, "TxnDate": date, "Line": lines}
    if rng.random() < 0.4:
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": "2"}}
    if rng.random() < 0.2:
        body["Line"].append({"DetailType": "DiscountLineDetail", "DiscountLineDetail": {
            "PercentBased": True, "DiscountPercent": rng.choice((5, 10, 15))}})
    if rng.random() < 0.5:
        body["CustomField"] = [{"DefinitionId": "1", "Name": "Crew #", "Type": "StringType",
                                "StringValue": str(100 + rng.randrange(10))}]
    if rng.random() < 0.3:
        body["DepartmentRef"] = {"value": rng.choice(list(d.departments.values()))}
    body["CustomerMemo"] = {"value": "Thank you for your business and have a great day!"}
    body.update(extra)
    inv = d.create("Invoice", body)
    d.open_invoices.append(inv["Id"])
    return inv


def demo_month(d: Demo, m: int, start: str, *, last: bool) -> None:
    rng = d.rng
    trading = _trading_customers(d)
    # --- estimates, some converted into invoices
    for _ in range(3):
        est = d.create("Estimate", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                    "TxnDate": d.day(start, rng.randrange(3)), "Line": _sales_lines(d, rng.randint(1, 3)),
                                    "ExpirationDate": d.day(start, 30)})
        d.open_estimates.append(est["Id"])
    for est_id in list(d.open_estimates[-3:])[: rng.randint(1, 2)]:
        est = d.get("Estimate", est_id)
        lines = [{k: v for k, v in line.items() if k not in ("Id", "LineNum")} for line in est["Line"]
                 if line["DetailType"] == "SalesItemLineDetail"]
        name = next(n for n, i in d.customers.items() if i == est["CustomerRef"]["value"])
        _demo_invoice(d, d.day(start, 4 + rng.randrange(4)), name, lines,
                      LinkedTxn=[{"TxnId": est_id, "TxnType": "Estimate"}])
        d.open_estimates.remove(est_id)
    # --- invoices
    for _ in range(5):
        _demo_invoice(d, d.day(start, rng.randrange(25)), rng.choice(trading), _sales_lines(d, rng.randint(1, 3)))
    # --- sales receipts (paid on the spot)
    for _ in range(2):
        sr = d.create("SalesReceipt", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                       "TxnDate": d.day(start, rng.randrange(25)),
                                       "PaymentMethodRef": {"value": rng.choice(("1", "2", "3", "4"))},
                                       "Line": _sales_lines(d, rng.randint(1, 2))})
        d.undeposited.append(("SalesReceipt", sr["Id"]))
    # --- credit memo, applied through a payment when the customer has an open invoice
    if m % 2 == 1:
        _demo_credit_memo(d, d.day(start, 12))
    # --- refund receipt
    if m % 3 == 2:
        d.create("RefundReceipt", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                   "TxnDate": d.day(start, 14), "DepositToAccountRef": {"value": str(chart.CHECKING)},
                                   "PaymentMethodRef": {"value": "2"}, "PaymentRefNum": str(5000 + m),
                                   "Line": [{"Amount": 40.0 + 5 * m, "DetailType": "SalesItemLineDetail",
                                             "SalesItemLineDetail": {
                                                 "ItemRef": {"value": d.items["Refunds & Allowances"]["Id"]}}}]})
    # --- customer payments on earlier invoices
    _demo_payments(d, start, last=last)
    # --- bills, bill payments, vendor credits, expenses
    _demo_purchasing(d, m, start)
    # --- time
    for _ in range(3):
        item = d.items[rng.choice(("Hours", "Gardening", "Trimming"))]
        d.create("TimeActivity", {"TxnDate": d.day(start, rng.randrange(25)), "NameOf": "Employee",
                                  "EmployeeRef": {"value": rng.choice(d.employees)},
                                  "CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                  "ItemRef": {"value": item["Id"]}, "BillableStatus": "Billable",
                                  "HourlyRate": item["UnitPrice"], "Hours": rng.randint(1, 8),
                                  "Minutes": rng.choice((0, 15, 30, 45)), "Description": item.get("Description", "")})
    # --- deposit what came in (the last month stays in Undeposited Funds)
    if not last and d.undeposited:
        _demo_deposit(d, d.day(start, 27))
    # --- month-end adjustments
    date = d.day(start, 28)
    d.create("JournalEntry", {"TxnDate": date, "Adjustment": True, "PrivateNote": "Monthly depreciation - truck",
                              "Line": [je_line(250.0, "Debit", d.accounts["Depreciation"], "Truck depreciation"),
                                       je_line(250.0, "Credit", d.accounts["Accumulated Depreciation"],
                                                "Truck depreciation")]})
    if m % 3 == 2:
        d.create("JournalEntry", {"TxnDate": date, "PrivateNote": "Quarterly loan interest accrual",
                                  "Line": [je_line(85.5, "Debit", 85, "Loan interest"),
                                           je_line(85.5, "Credit", 90, "Loan interest")]})


def _demo_credit_memo(d: Demo, date: str) -> None:
    rng = d.rng
    candidates = [i for i in d.open_invoices if d.get("Invoice", i)["Balance"] > 60]
    if not candidates:
        return
    inv = d.get("Invoice", rng.choice(candidates))
    amount = float(rng.choice((25, 40, 50)))
    cm = d.create("CreditMemo", {"CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TxnDate": date,
                                 "PrivateNote": "Goodwill credit",
                                 "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                                           "SalesItemLineDetail": {
                                               "ItemRef": {"value": d.items["Refunds & Allowances"]["Id"]}}}]})
    if rng.random() < 0.7:  # applied: the customer pays the invoice less the credit
        balance = inv["Balance"]
        pay = d.create("Payment", {
            "CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TotalAmt": money(balance - amount),
            "TxnDate": date, "PaymentMethodRef": {"value": "2"}, "PaymentRefNum": str(2000 + int(cm["Id"])),
            "Line": [{"Amount": balance, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                     {"Amount": amount, "LinkedTxn": [{"TxnId": cm["Id"], "TxnType": "CreditMemo"}]}]})
        d.open_invoices.remove(inv["Id"])
        d.undeposited.append(("Payment", pay["Id"]))


def _demo_payments(d: Demo, start: str, *, last: bool) -> None:
    rng = d.rng
    due = [i for i in d.open_invoices if d.get("Invoice", i)["TxnDate"] <= add_days(start, -10)]
    rng.shuffle(due)
    handled: set[str] = set()
    for inv_id in due:
        if inv_id in handled or (last and rng.random() < 0.5):
            continue
        inv = d.get("Invoice", inv_id)
        if inv["Balance"] <= 0:
            continue
        customer = inv["CustomerRef"]["value"]
        date = d.day(start, rng.randrange(20))
        roll = rng.random()
        lines = [{"Amount": inv["Balance"], "LinkedTxn": [{"TxnId": inv_id, "TxnType": "Invoice"}]}]
        handled.add(inv_id)
        if roll < 0.15:  # partial
            lines[0]["Amount"] = money(inv["Balance"] * rng.choice((0.25, 0.5, 0.6)))
        elif roll < 0.35:  # one cheque for two invoices of the same customer
            other = next((o for o in due if o not in handled and d.get("Invoice", o)["CustomerRef"]["value"] == customer
                          and d.get("Invoice", o)["Balance"] > 0), None)
            if other is not None:
                handled.add(other)
                lines.append({"Amount": d.get("Invoice", other)["Balance"],
                              "LinkedTxn": [{"TxnId": other, "TxnType": "Invoice"}]})
        total = money(sum(line["Amount"] for line in lines))
        if roll > 0.93:  # overpaid: the rest stays unapplied on the customer's account
            total = money(total + 20)
        pay = d.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": total, "TxnDate": date,
                                   "PaymentMethodRef": {"value": rng.choice(("1", "2", "3", "4"))},
                                   "PaymentRefNum": str(1000 + rng.randrange(9000)), "Line": lines})
        d.undeposited.append(("Payment", pay["Id"]))
        for line in lines:
            txn = line["LinkedTxn"][0]["TxnId"]
            if d.get("Invoice", txn)["Balance"] <= 0:
                d.open_invoices.remove(txn)
    if rng.random() < 0.4:  # a retainer received before any invoice: wholly unapplied
        pay = d.create("Payment", {"CustomerRef": {"value": d.customers[rng.choice(_trading_customers(d))]},
                                   "TotalAmt": float(rng.choice((100, 150, 250))), "TxnDate": d.day(start, 20),
                                   "PaymentMethodRef": {"value": "2"}, "PrivateNote": "Retainer", "Line": []})
        d.undeposited.append(("Payment", pay["Id"]))


def _demo_deposit(d: Demo, date: str) -> None:
    lines = []
    for typ, txn_id in d.undeposited:
        doc = d.get(typ, txn_id)
        if doc["TxnDate"] > date or doc["TotalAmt"] <= 0:
            continue
        lines.append({"Amount": doc["TotalAmt"],
                      "LinkedTxn": [{"TxnId": txn_id, "TxnType": typ, "TxnLineId": "0"}]})
    if not lines:
        return
    if d.rng.random() < 0.3:
        lines.append({"Amount": 3.21, "DetailType": "DepositLineDetail",
                      "DepositLineDetail": {"AccountRef": {"value": "83"}}, "Description": "Interest"})
    d.create("Deposit", {"TxnDate": date, "DepositToAccountRef": {"value": str(chart.CHECKING)}, "Line": lines})
    deposited = {lt["TxnId"] for line in lines for lt in line.get("LinkedTxn", [])}
    d.undeposited = [(t, i) for t, i in d.undeposited if i not in deposited]


def _demo_purchasing(d: Demo, m: int, start: str) -> None:
    rng = d.rng
    trading = _trading_customers(d)

    def account_line(amount: float, account: int | str, **detail: Any) -> dict:
        return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": str(account)}, **detail}}

    # bills of the month (pay last month's first)
    for bill_id in list(d.open_bills):
        bill = d.get("Bill", bill_id)
        if bill["Balance"] <= 0:
            d.open_bills.remove(bill_id)
            continue
        amount = bill["Balance"] if rng.random() < 0.85 else money(bill["Balance"] / 2)
        body: dict[str, Any] = {"VendorRef": {"value": bill["VendorRef"]["value"]}, "TotalAmt": amount,
                                "TxnDate": d.day(start, rng.randrange(10)),
                                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}]}
        if rng.random() < 0.25:
            body.update(PayType="CreditCard", CreditCardPayment={"CCAccountRef": {"value": str(chart.MASTERCARD)}})
        else:
            body.update(PayType="Check", CheckPayment={"BankAccountRef": {"value": str(chart.CHECKING)}})
        d.create("BillPayment", body)
        if d.get("Bill", bill_id)["Balance"] <= 0:
            d.open_bills.remove(bill_id)
    bills = [("Hall Properties", 57, 900.0, "Office rent"),
             ("PG&E", 59, float(rng.randint(80, 180)), "Electricity"),
             ("Cal Telephone", 59, float(rng.randint(50, 90)), "Phone and internet")]
    if m % 2 == 0:
        bills.append(("Brosnahan Insurance Agency", 20, 241.23, "Liability insurance"))
    for vendor, account, amount, note in bills:
        bill = d.create("Bill", {"VendorRef": {"value": d.vendors[vendor]}, "TxnDate": d.day(start, 1),
                                 "PrivateNote": note, "Line": [account_line(amount, account)]})
        d.open_bills.append(bill["Id"])
    # job materials, billable to a customer
    customer = d.customers[rng.choice(trading)]
    bill = d.create("Bill", {"VendorRef": {"value": d.vendors["Norton Lumber and Building Materials"]},
                             "TxnDate": d.day(start, 8), "Line": [
                                 account_line(float(rng.randint(100, 400)), 17, CustomerRef={"value": customer},
                                              BillableStatus="Billable")]})
    d.open_bills.append(bill["Id"])
    # restock inventory every quarter
    if m % 3 == 0:
        lines = []
        for name, qty in (("Sprinkler Heads", 40), ("Sprinkler Pipes", 30), ("Pump", 10), ("Rock Fountain", 3)):
            item = d.items[name]
            lines.append({"Amount": money(qty * float(item["PurchaseCost"])), "DetailType": "ItemBasedExpenseLineDetail",
                          "ItemBasedExpenseLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                                         "UnitPrice": item["PurchaseCost"]}})
        bill = d.create("Bill", {"VendorRef": {"value": d.vendors["Tania's Nursery"]}, "TxnDate": d.day(start, 2),
                                 "Line": lines})
        d.open_bills.append(bill["Id"])
    if m % 4 == 3:
        d.create("VendorCredit", {"VendorRef": {"value": d.vendors["Norton Lumber and Building Materials"]},
                                  "TxnDate": d.day(start, 15), "PrivateNote": "Returned lumber",
                                  "Line": [account_line(float(rng.randint(20, 80)), 17)]})
    # expenses paid on the spot
    for vendor, account, pay_type, acct in (("Chin's Gas and Oil", 17, "CreditCard", chart.MASTERCARD),
                                            ("Squeaky Kleen Car Wash", 17, "Cash", chart.CHECKING),
                                            ("Bob's Burger Joint", 13, "CreditCard", chart.MASTERCARD),
                                            ("Hicks Hardware", 17, "Check", chart.CHECKING)):
        if rng.random() < 0.75:
            body = {"PaymentType": pay_type, "AccountRef": {"value": str(acct)}, "TxnDate": d.day(start, rng.randrange(25)),
                    "EntityRef": {"value": d.vendors[vendor], "type": "Vendor"},
                    "Line": [account_line(money(rng.uniform(8, 120)), account)]}
            if pay_type == "Check":
                body["DocNumber"] = str(70 + m)
            d.create("Purchase", body)


def demo_finish(d: Demo) -> None:
    """The edge cases a real company has: a voided invoice, a deleted expense, inactive records."""
    eng, realm, rng = d.emu.engine, d.realm, d.rng
    trading = _trading_customers(d)
    # a deposit on a recent job: the invoice stays partly open
    open_docs = [d.get("Invoice", i) for i in d.open_invoices]
    target = next((i for i in reversed(open_docs) if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 20), None)
    if target is not None:
        amount = money(target["Balance"] * 0.4)
        d.create("Payment", {"CustomerRef": {"value": target["CustomerRef"]["value"]}, "TotalAmt": amount,
                             "TxnDate": d.today, "PaymentMethodRef": {"value": "3"}, "PrivateNote": "Deposit on job",
                             "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": target["Id"], "TxnType": "Invoice"}]}]})
    inv = d.create("Invoice", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                               "TxnDate": d.day(d.today, -20), "PrivateNote": "Entered twice",
                               "Line": _sales_lines(d, 1)})
    eng.void(realm, "Invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]})
    purchase = d.create("Purchase", {
        "PaymentType": "Cash", "AccountRef": {"value": str(chart.CHECKING)}, "TxnDate": d.day(d.today, -15),
        "EntityRef": {"value": d.vendors["Squeaky Kleen Car Wash"], "type": "Vendor"},
        "Line": [{"Amount": 19.99, "DetailType": "AccountBasedExpenseLineDetail",
                  "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "17"}}}]})
    eng.delete(realm, "Purchase", {"Id": purchase["Id"], "SyncToken": purchase["SyncToken"]})
    for name in DEMO_DORMANT:
        cust = d.get("Customer", d.customers[name])
        eng.update(realm, "Customer", {"Id": cust["Id"], "SyncToken": cust["SyncToken"], "sparse": True,
                                       "Active": False})
    for name in ("Concrete", "Winter Lighting"):  # never on a transaction: Item 1 "Services" stays usable
        item = d.get("Item", d.items[name]["Id"])
        eng.update(realm, "Item", {"Id": item["Id"], "SyncToken": item["SyncToken"], "sparse": True, "Active": False})
