"""What the Prove layer and the settings page derive from the entity registry.

The lists these used to keep by hand (report lineage, the receivables' sources, the documents
that hold an open balance, the settings page's order) now come from the registry's fields; these
tests pin the results, so a registry edit that changes them is seen and meant.
"""

from __future__ import annotations

from qb_pipelines.defs.reports import REPORT_DEPS
from qb_pipelines.qbo import registry
from qb_pipelines.sync import reconcile
from qb_pipelines.web.forms import entity_order

POSTING = ("Invoice", "Payment", "SalesReceipt", "CreditMemo", "RefundReceipt", "Bill", "BillPayment",
           "VendorCredit", "Purchase", "Deposit", "JournalEntry", "Transfer", "CreditCardPayment")


def test_report_lineage_is_the_ledger_the_receivables_and_the_payables() -> None:
    ledger = ("Account", "Item", *POSTING)
    expected = {
        "ProfitAndLoss": ledger,
        "BalanceSheet": ledger,
        "TrialBalance": ledger,
        "AgedReceivables": ("Customer", "Invoice", "Payment", "CreditMemo", "JournalEntry"),
        "CustomerBalance": ("Customer",),
        "AgedPayables": ("Vendor", "Bill", "BillPayment", "VendorCredit", "JournalEntry"),
        "VendorBalance": ("Vendor",),
        "GeneralLedger": ledger,
    }
    assert expected == REPORT_DEPS
    assert reconcile.posting_entity_names() == POSTING


def test_documents_with_an_open_balance_are_the_ones_whose_totals_compare_balance() -> None:
    with_balance = [e.name for e in registry.ENTITIES if e.is_transaction and e.balance_field]
    assert with_balance == ["Invoice", "CreditMemo", "Bill", "VendorCredit"]
    assert [e.name for e in reconcile.receivable_entities()] == ["Invoice", "Payment", "CreditMemo"]
    assert [e.name for e in reconcile.payable_entities()] == ["Bill", "BillPayment", "VendorCredit"]


def test_settings_page_lists_synced_entities_party_by_party_then_the_rest_by_name() -> None:
    order = entity_order()
    assert order[:7] == ["Customer", "Item", "Invoice", "Estimate", "Payment", "Vendor", "Bill"]
    assert order[7:] == sorted(order[7:])
    assert len(order) == len(set(order))
