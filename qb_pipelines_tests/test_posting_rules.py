"""QuickBooks' posting rules, one transaction of each line family booked by hand.

The expected postings are written out as QuickBooks books them (reference §7): the rules are
driven by the registry (line family, party, party and stock signs), so these pin what each
family books, including returns, purchases refunded and the deposit of undeposited receipts.
"""

from __future__ import annotations

import pytest

from qb_pipelines.sync import reconcile

CHART = [
    {"Id": "84", "Name": "Accounts Receivable (A/R)", "AccountType": "Accounts Receivable", "Classification": "Asset"},
    {"Id": "33", "Name": "Accounts Payable (A/P)", "AccountType": "Accounts Payable", "Classification": "Liability"},
    {"Id": "1", "Name": "Services", "AccountType": "Income", "Classification": "Revenue"},
    {"Id": "79", "Name": "Sales of Product Income", "AccountType": "Income", "Classification": "Revenue"},
    {"Id": "80", "Name": "Cost of Goods Sold", "AccountType": "Cost of Goods Sold", "Classification": "Expense"},
    {"Id": "81", "Name": "Inventory Asset", "AccountType": "Other Current Asset", "AccountSubType": "Inventory",
     "Classification": "Asset"},
    {"Id": "7", "Name": "Advertising", "AccountType": "Expense", "Classification": "Expense"},
    {"Id": "35", "Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking", "Classification": "Asset"},
    {"Id": "41", "Name": "Mastercard", "AccountType": "Credit Card", "Classification": "Liability"},
    {"Id": "4", "Name": "Undeposited Funds", "AccountType": "Other Current Asset",
     "AccountSubType": "UndepositedFunds", "Classification": "Asset"},
    {"Id": "34", "Name": "Opening Balance Equity", "AccountType": "Equity", "AccountSubType": "OpeningBalanceEquity",
     "Classification": "Equity"},
    {"Id": "89", "Name": "Board of Equalization Payable", "AccountType": "Other Current Liability",
     "AccountSubType": "GlobalTaxPayable", "Classification": "Liability"},
    {"Id": "86", "Name": "Discounts given", "AccountType": "Income", "AccountSubType": "DiscountsRefundsGiven",
     "Classification": "Revenue"},
]
ITEMS = {
    "5": {"Id": "5", "Type": "Service", "IncomeAccountRef": {"value": "1"}, "ExpenseAccountRef": {"value": "7"}},
    "11": {"Id": "11", "Type": "Inventory", "TrackQtyOnHand": True, "PurchaseCost": 10,
           "IncomeAccountRef": {"value": "79"}, "ExpenseAccountRef": {"value": "80"}, "AssetAccountRef": {"value": "81"}},
}
#: A service (income 1), three inventory units sold at 20 (income 79, cost 3 x 10), a discount of 10.
SALE_LINES = [
    {"Amount": 100.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "Qty": 1}},
    {"Amount": 60.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "11"}, "Qty": 3}},
    {"Amount": 10.0, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}},
]
#: Advertising for customer 3 (account 7), three inventory units bought (asset 81).
EXPENSE_LINES = [
    {"Amount": 40.0, "DetailType": "AccountBasedExpenseLineDetail",
     "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}, "CustomerRef": {"value": "3"}}},
    {"Amount": 30.0, "DetailType": "ItemBasedExpenseLineDetail",
     "ItemBasedExpenseLineDetail": {"ItemRef": {"value": "11"}, "Qty": 3}},
]
SALE = [("1", -10000, "3", None), ("79", -6000, "3", None), ("80", 3000, "3", None), ("81", -3000, "3", None),
        ("86", 1000, "3", None)]
RETURN = [(a, -c, cu, v) for a, c, cu, v in SALE]

CASES = [
    ("Invoice", {"Id": "1", "TotalAmt": 160.0, "CustomerRef": {"value": "3"}, "Line": SALE_LINES,
                 "TxnTaxDetail": {"TotalTax": 10.0}},
     [("84", 16000, "3", None), *SALE, ("89", -1000, "3", None)]),
    ("SalesReceipt", {"Id": "2", "TotalAmt": 150.0, "CustomerRef": {"value": "3"}, "Line": SALE_LINES},
     [("4", 15000, "3", None), *SALE]),
    ("CreditMemo", {"Id": "3", "TotalAmt": 150.0, "CustomerRef": {"value": "3"}, "Line": SALE_LINES},
     [("84", -15000, "3", None), *RETURN]),
    ("RefundReceipt", {"Id": "4", "TotalAmt": 150.0, "CustomerRef": {"value": "3"}, "Line": SALE_LINES,
                       "DepositToAccountRef": {"value": "35"}},
     [("35", -15000, "3", None), *RETURN]),
    ("Bill", {"Id": "5", "TotalAmt": 70.0, "VendorRef": {"value": "9"}, "Line": EXPENSE_LINES},
     [("33", -7000, None, "9"), ("7", 4000, "3", "9"), ("81", 3000, None, "9")]),
    ("VendorCredit", {"Id": "6", "TotalAmt": 70.0, "VendorRef": {"value": "9"}, "Line": EXPENSE_LINES},
     [("33", 7000, None, "9"), ("7", -4000, "3", "9"), ("81", -3000, None, "9")]),
    ("Purchase", {"Id": "7", "TotalAmt": 70.0, "AccountRef": {"value": "41"}, "PaymentType": "CreditCard",
                  "EntityRef": {"value": "9", "type": "Vendor"}, "Line": EXPENSE_LINES},
     [("41", -7000, None, "9"), ("7", 4000, "3", "9"), ("81", 3000, None, "9")]),
    ("Purchase", {"Id": "8", "TotalAmt": 70.0, "AccountRef": {"value": "35"}, "Credit": True,
                  "EntityRef": {"value": "3", "type": "Customer"}, "Line": EXPENSE_LINES},
     [("35", 7000, "3", None), ("7", -4000, "3", None), ("81", -3000, "3", None)]),
    ("Payment", {"Id": "9", "TotalAmt": 387.0, "CustomerRef": {"value": "8"}},
     [("4", 38700, "8", None), ("84", -38700, "8", None)]),
    ("BillPayment", {"Id": "10", "TotalAmt": 70.0, "VendorRef": {"value": "9"}, "PayType": "Check",
                     "CheckPayment": {"BankAccountRef": {"value": "35"}}},
     [("33", 7000, None, "9"), ("35", -7000, None, "9")]),
    ("BillPayment", {"Id": "11", "TotalAmt": 70.0, "VendorRef": {"value": "9"}, "PayType": "CreditCard",
                     "CreditCardPayment": {"CCAccountRef": {"value": "41"}}},
     [("33", 7000, None, "9"), ("41", -7000, None, "9")]),
    ("Deposit", {"Id": "12", "TotalAmt": 500.0, "DepositToAccountRef": {"value": "35"}, "Line": [
        {"Amount": 387.0, "LinkedTxn": [{"TxnId": "9", "TxnType": "Payment", "TxnLineId": "0"}]},
        {"Amount": 13.0, "LinkedTxn": [{"TxnId": "2", "TxnType": "SalesReceipt", "TxnLineId": "0"}]},
        {"Amount": 100.0, "DetailType": "DepositLineDetail", "DepositLineDetail": {
            "AccountRef": {"value": "1"}, "Entity": {"value": "3", "type": "Customer"}}}]},
     [("35", 50000, None, None), ("4", -38700, None, None), ("4", -1300, None, None), ("1", -10000, "3", None)]),
    ("Estimate", {"Id": "13", "TotalAmt": 160.0, "CustomerRef": {"value": "3"}, "Line": SALE_LINES}, []),
]


@pytest.mark.parametrize(("entity", "body", "expected"), CASES,
                         ids=[f"{e}-{b['Id']}" for e, b, _ in CASES])
def test_each_line_family_books_as_quickbooks_does(entity: str, body: dict, expected: list[tuple]) -> None:
    rows = reconcile.postings(entity, body, reconcile.Chart(CHART), ITEMS)
    assert [(p.account_id, p.cents, p.customer_id, p.vendor_id) for p in rows] == expected
    assert sum(p.cents for p in rows) == 0


def test_a_bill_whose_lines_do_not_make_its_total_is_unbalanced() -> None:
    bill = {"Id": "5", "TotalAmt": 75.0, "VendorRef": {"value": "9"}, "Line": EXPENSE_LINES}
    with pytest.raises(reconcile.UnbalancedTransaction, match=r"Bill 5 does not balance by -5\.00"):
        reconcile.postings("Bill", bill, reconcile.Chart(CHART), ITEMS)
