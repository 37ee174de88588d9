"""The emulator's ledger: what each transaction posts, and that every posting set balances."""

from __future__ import annotations

import pytest

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.db import EmulatorDB
from qb_pipelines.emulator.ledger import (
    Posting,
    UnbalancedTransaction,
    account_balances,
    customer_ar_balances,
    postings,
    write_postings,
)

ITEMS = {
    "5": {"Id": "5", "Name": "Rock Fountain", "Type": "Service",
          "IncomeAccountRef": {"value": str(chart.LANDSCAPING_SERVICES)}},
    "11": {"Id": "11", "Name": "Pump", "Type": "Inventory", "TrackQtyOnHand": True, "PurchaseCost": 10,
           "IncomeAccountRef": {"value": "79"}, "ExpenseAccountRef": {"value": "80"},
           "AssetAccountRef": {"value": "81"}},
    "20": {"Id": "20", "Name": "Gravel", "Type": "NonInventory", "ExpenseAccountRef": {"value": "17"},
           "IncomeAccountRef": {"value": "79"}},
}
TAX_RATES = {"3": {"Id": "3", "Name": "California", "RateValue": 8}}


def lookup(entity: str, ident: str) -> dict | None:
    return {"Item": ITEMS, "TaxRate": TAX_RATES}.get(entity, {}).get(ident)


def by_account(rows: list[Posting]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in rows:
        out[p.account_id] = round(out.get(p.account_id, 0.0) + p.amount, 2)
    return out


def assert_balanced(rows: list[Posting]) -> None:
    assert round(sum(p.amount for p in rows), 2) == 0
    assert all(p.amount == round(p.amount, 2) for p in rows)


INVOICE = {
    "Id": "119", "TxnDate": "2023-02-18", "CustomerRef": {"value": "17"},
    "Line": [
        {"Id": "1", "Amount": 275.0, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "UnitPrice": 275, "Qty": 1, "TaxCodeRef": {"value": "TAX"}}},
        {"Id": "2", "Amount": 30.0, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "11"}, "UnitPrice": 15, "Qty": 2, "TaxCodeRef": {"value": "TAX"}}},
        {"Amount": 305.0, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        {"Amount": 30.5, "DetailType": "DiscountLineDetail",
         "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10, "DiscountAccountRef": {"value": "86"}}},
    ],
    "TxnTaxDetail": {"TxnTaxCodeRef": {"value": "2"}, "TotalTax": 24.4,
                     "TaxLine": [{"Amount": 24.4, "DetailType": "TaxLineDetail",
                                  "TaxLineDetail": {"TaxRateRef": {"value": "3"}, "PercentBased": True,
                                                    "TaxPercent": 8, "NetAmountTaxable": 305.0}}]},
    "TotalAmt": 298.9, "Balance": 298.9,
}


def test_invoice_posts_receivable_income_discount_tax_and_inventory_cost() -> None:
    rows = postings("Invoice", INVOICE, lookup)
    assert_balanced(rows)
    assert by_account(rows) == {
        chart.ACCOUNTS_RECEIVABLE: 298.9,
        chart.LANDSCAPING_SERVICES: -275.0,
        chart.SALES_OF_PRODUCT_INCOME: -30.0,
        chart.DISCOUNTS_GIVEN: 30.5,
        chart.SALES_TAX_PAYABLE: -24.4,
        chart.COST_OF_GOODS_SOLD: 20.0,   # 2 pumps at a purchase cost of 10
        chart.INVENTORY_ASSET: -20.0,
    }
    assert {p.customer_id for p in rows} == {17}


def test_item_account_ref_on_the_line_overrides_the_items_income_account() -> None:
    body = {"Id": "1", "CustomerRef": {"value": "1"}, "TotalAmt": 50,
            "Line": [{"Amount": 50, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "ItemAccountRef": {"value": "82"}}}]}
    assert by_account(postings("Invoice", body, lookup)) == {chart.ACCOUNTS_RECEIVABLE: 50, chart.DESIGN_INCOME: -50}


def test_sales_receipt_debits_undeposited_funds_and_credit_memo_reverses_an_invoice() -> None:
    receipt = {**INVOICE, "DepositToAccountRef": None}
    rows = by_account(postings("SalesReceipt", receipt, lookup))
    assert rows[chart.UNDEPOSITED_FUNDS] == 298.9 and chart.ACCOUNTS_RECEIVABLE not in rows
    memo = by_account(postings("CreditMemo", INVOICE, lookup))
    assert memo == {k: -v for k, v in by_account(postings("Invoice", INVOICE, lookup)).items()}
    refund = by_account(postings("RefundReceipt", {**INVOICE, "DepositToAccountRef": {"value": "35"}}, lookup))
    assert refund[chart.CHECKING] == -298.9 and refund[chart.LANDSCAPING_SERVICES] == 275.0


def test_group_lines_post_their_components() -> None:
    body = {"Id": "2", "CustomerRef": {"value": "1"}, "TotalAmt": 60, "Line": [
        {"Amount": 60, "DetailType": "GroupLineDetail", "GroupLineDetail": {"Line": [
            {"Amount": 45, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "5"}}},
            {"Amount": 15, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "20"}}},
        ]}}]}
    assert by_account(postings("Invoice", body, lookup)) == {
        chart.ACCOUNTS_RECEIVABLE: 60, chart.LANDSCAPING_SERVICES: -45, chart.SALES_OF_PRODUCT_INCOME: -15}


def test_payment_moves_receivable_to_the_deposit_account() -> None:
    body = {"Id": "120", "CustomerRef": {"value": "17"}, "TotalAmt": 100.0, "UnappliedAmt": 0,
            "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": "119", "TxnType": "Invoice"}]}]}
    rows = postings("Payment", body, lookup)
    assert by_account(rows) == {chart.UNDEPOSITED_FUNDS: 100.0, chart.ACCOUNTS_RECEIVABLE: -100.0}
    assert {p.customer_id for p in rows} == {17}
    direct = postings("Payment", {**body, "DepositToAccountRef": {"value": "35"}}, lookup)
    assert by_account(direct)[chart.CHECKING] == 100.0


def test_bill_vendor_credit_and_bill_payment() -> None:
    bill = {"Id": "25", "VendorRef": {"value": "46"}, "TotalAmt": 160.0, "Line": [
        {"Amount": 100.0, "DetailType": "AccountBasedExpenseLineDetail",
         "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "57"}}},
        {"Amount": 40.0, "DetailType": "ItemBasedExpenseLineDetail",
         "ItemBasedExpenseLineDetail": {"ItemRef": {"value": "11"}, "Qty": 4, "UnitPrice": 10}},
        {"Amount": 20.0, "DetailType": "ItemBasedExpenseLineDetail",
         "ItemBasedExpenseLineDetail": {"ItemRef": {"value": "20"}}},
    ]}
    rows = postings("Bill", bill, lookup)
    assert by_account(rows) == {chart.ACCOUNTS_PAYABLE: -160.0, 57: 100.0, chart.INVENTORY_ASSET: 40.0, 17: 20.0}
    assert {p.vendor_id for p in rows} == {46}
    credit = by_account(postings("VendorCredit", bill, lookup))
    assert credit == {k: -v for k, v in by_account(rows).items()}
    check = {"Id": "30", "VendorRef": {"value": "46"}, "PayType": "Check", "TotalAmt": 160.0,
             "CheckPayment": {"BankAccountRef": {"value": "36"}}}
    assert by_account(postings("BillPayment", check, lookup)) == {chart.ACCOUNTS_PAYABLE: 160.0, chart.SAVINGS: -160.0}
    card = {"Id": "31", "VendorRef": {"value": "46"}, "PayType": "CreditCard", "TotalAmt": 10.0,
            "CreditCardPayment": {"CCAccountRef": {"value": "41"}}}
    assert by_account(postings("BillPayment", card, lookup)) == {chart.ACCOUNTS_PAYABLE: 10.0, chart.MASTERCARD: -10.0}
    default = {"Id": "32", "VendorRef": {"value": "46"}, "PayType": "Check", "TotalAmt": 5.0}
    assert by_account(postings("BillPayment", default, lookup))[chart.CHECKING] == -5.0


def test_purchase_and_its_credit_refund() -> None:
    body = {"Id": "40", "PaymentType": "CreditCard", "AccountRef": {"value": "41"}, "TotalAmt": 35.5,
            "EntityRef": {"value": "46", "type": "Vendor"},
            "Line": [{"Amount": 35.5, "DetailType": "AccountBasedExpenseLineDetail",
                      "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "13"}}}]}
    rows = postings("Purchase", body, lookup)
    assert by_account(rows) == {chart.MASTERCARD: -35.5, 13: 35.5}
    assert {p.vendor_id for p in rows} == {46}
    assert by_account(postings("Purchase", {**body, "Credit": True}, lookup)) == {chart.MASTERCARD: 35.5, 13: -35.5}


def test_deposit_clears_undeposited_funds_and_posts_other_lines() -> None:
    body = {"Id": "50", "DepositToAccountRef": {"value": "35"}, "TotalAmt": 150.0, "Line": [
        {"Amount": 100.0, "LinkedTxn": [{"TxnId": "120", "TxnType": "Payment", "TxnLineId": "0"}]},
        {"Amount": 50.0, "DetailType": "DepositLineDetail",
         "DepositLineDetail": {"AccountRef": {"value": "83"}, "Entity": {"value": "3", "type": "Customer"}}},
    ]}
    rows = postings("Deposit", body, lookup)
    assert by_account(rows) == {chart.CHECKING: 150.0, chart.UNDEPOSITED_FUNDS: -100.0, 83: -50.0}
    assert [p.customer_id for p in rows if p.account_id == 83] == [3]


def test_journal_entry_lines_and_their_entities() -> None:
    body = {"Id": "60", "Line": [
        {"Amount": 250.0, "DetailType": "JournalEntryLineDetail",
         "JournalEntryLineDetail": {"PostingType": "Debit", "AccountRef": {"value": "84"},
                                    "Entity": {"Type": "Customer", "EntityRef": {"value": "17"}}}},
        {"Amount": 250.0, "DetailType": "JournalEntryLineDetail",
         "JournalEntryLineDetail": {"PostingType": "Credit", "AccountRef": {"value": "1"}}},
    ]}
    rows = postings("JournalEntry", body, lookup)
    assert [(p.account_id, p.amount, p.customer_id) for p in rows] == [(84, 250.0, 17), (1, -250.0, None)]


def test_non_posting_voided_and_deleted_transactions_post_nothing() -> None:
    assert postings("Estimate", INVOICE, lookup) == []
    assert postings("TimeActivity", {"Id": "1", "Hours": 3}, lookup) == []
    voided = {**INVOICE, "TotalAmt": 0, "Balance": 0, "TxnTaxDetail": {"TotalTax": 0},
              "Line": [{**line, "Amount": 0} for line in INVOICE["Line"]],
              "PrivateNote": "Voided"}
    voided["Line"][1]["SalesItemLineDetail"] = {**voided["Line"][1]["SalesItemLineDetail"], "Qty": 0}
    assert postings("Invoice", voided, lookup) == []
    assert postings("Invoice", {"domain": "QBO", "status": "Deleted", "Id": "119"}, lookup) == []


def test_cents_add_up_exactly() -> None:
    # 0.1 + 0.2 style float drift must not unbalance an entry.
    body = {"Id": "7", "CustomerRef": {"value": "1"}, "TotalAmt": 0.3, "Line": [
        {"Amount": 0.1, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "5"}}},
        {"Amount": 0.2, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "5"}}},
    ]}
    assert_balanced(postings("Invoice", body, lookup))


def test_an_unbalanced_body_raises_a_clear_error() -> None:
    body = {**INVOICE, "TotalAmt": 300.0}
    with pytest.raises(UnbalancedTransaction, match=r"Invoice 119 does not balance.*1\.10"):
        postings("Invoice", body, lookup)


def test_write_postings_replaces_a_transaction_and_balances_aggregate() -> None:
    db = EmulatorDB()
    with db.tx() as conn:
        write_postings(conn, "r1", "Invoice", 119, "2023-02-18", postings("Invoice", INVOICE, lookup))
        write_postings(conn, "r1", "Invoice", 119, "2023-02-18", postings("Invoice", INVOICE, lookup))
        payment = {"Id": "120", "CustomerRef": {"value": "17"}, "TotalAmt": 100.0}
        write_postings(conn, "r1", "Payment", 120, "2023-02-20", postings("Payment", payment, lookup))
    with db.read() as conn:
        balances = account_balances(conn, "r1")
        assert balances[chart.ACCOUNTS_RECEIVABLE] == 198.9
        assert round(sum(balances.values()), 2) == 0
        assert account_balances(conn, "r1", as_of="2023-02-19")[chart.ACCOUNTS_RECEIVABLE] == 298.9
        assert customer_ar_balances(conn, "r1", [chart.ACCOUNTS_RECEIVABLE]) == {17: 198.9}
    with db.tx() as conn:
        write_postings(conn, "r1", "Payment", 120, "2023-02-20", [])  # voided
    with db.read() as conn:
        assert account_balances(conn, "r1")[chart.ACCOUNTS_RECEIVABLE] == 298.9
