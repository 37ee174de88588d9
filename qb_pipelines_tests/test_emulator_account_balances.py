"""Account.CurrentBalance follows the ledger after every transaction write, over real HTTP.

A write moves only the accounts its postings touch (by the amounts it posts); these tests hold
those balances against the ledger summed from scratch (``ledger.account_balances``, what the
reports read), through creates, updates, voids and deletes, and show that an account's own
write (a balance typed in, another classification) is derived from the ledger again at the next
transaction write, as every account always was.
"""

from __future__ import annotations

from typing import Any

import pytest

from qb_pipelines.emulator import chart, ledger
from qb_pipelines_tests.emulator_client import QBOTestClient, connect

CHECKING, SAVINGS = str(chart.CHECKING), str(chart.SAVINGS)


@pytest.fixture
def qbo(emulator: Any) -> QBOTestClient:
    return connect(emulator)


def _accounts(qbo: QBOTestClient) -> dict[str, dict]:
    rows = qbo.ok(qbo.query("SELECT * FROM Account WHERE Active IN (true, false) MAXRESULTS 1000"), "QueryResponse")
    return {a["Id"]: a for a in rows["Account"]}


def _assert_follow_the_ledger(qbo: QBOTestClient, emulator: Any) -> None:
    with emulator.emu.db.read() as conn:
        sums = ledger.account_balances(conn, qbo.realm)
    for account_id, acc in _accounts(qbo).items():
        expected = round(chart.DEBIT_NORMAL[acc["Classification"]] * sums.get(int(account_id), 0.0), 2)
        assert (acc["CurrentBalance"], acc["CurrentBalanceWithSubAccounts"]) == (expected, expected), acc["Name"]


def _transfer(amount: float) -> dict:
    return {"FromAccountRef": {"value": CHECKING}, "ToAccountRef": {"value": SAVINGS}, "Amount": amount,
            "TxnDate": "2025-01-15"}


def test_balances_follow_the_ledger_through_creates_updates_voids_and_deletes(qbo: QBOTestClient,
                                                                              emulator: Any) -> None:
    customer = qbo.make("Customer", {"DisplayName": "Ledger Follower"})
    item = next(i for i in qbo.ok(qbo.query("SELECT * FROM Item"), "QueryResponse")["Item"] if i["Type"] == "Service")
    invoices = [qbo.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [
        {"Amount": 100.1 + n, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": 100.1 + n}}]})
        for n in range(3)]
    transfer = qbo.make("Transfer", _transfer(0.3))
    _assert_follow_the_ledger(qbo, emulator)
    qbo.ok(qbo.update("Transfer", {**transfer, "Amount": 1234.57}), "Transfer")
    qbo.ok(qbo.void("Invoice", invoices[0]["Id"], invoices[0]["SyncToken"]), "Invoice")
    _assert_follow_the_ledger(qbo, emulator)
    qbo.ok(qbo.delete("Invoice", invoices[1]["Id"], invoices[1]["SyncToken"]), "Invoice")
    qbo.make("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 50.05})
    _assert_follow_the_ledger(qbo, emulator)


def test_an_accounts_own_write_is_derived_from_the_ledger_at_the_next_transaction_write(qbo: QBOTestClient,
                                                                                       emulator: Any) -> None:
    typed = qbo.make("Account", {"Name": "Petty Cash Box", "AccountType": "Bank", "CurrentBalance": 75.5})
    assert typed["CurrentBalance"] == 75.5  # kept as sent until the books move
    qbo.make("Transfer", _transfer(10))
    assert qbo.get("Account", typed["Id"])["CurrentBalance"] == 0
    qbo.make("Transfer", {**_transfer(20), "ToAccountRef": {"value": typed["Id"]}})
    assert qbo.get("Account", typed["Id"])["CurrentBalance"] == 20
    # another classification turns the sign of the same postings, at the next transaction write
    current = qbo.get("Account", typed["Id"])
    qbo.ok(qbo.update("Account", {**current, "AccountType": "Other Current Liability",
                                  "AccountSubType": "OtherCurrentLiabilities"}), "Account")
    qbo.make("Transfer", _transfer(5))
    assert qbo.get("Account", typed["Id"])["CurrentBalance"] == -20
    _assert_follow_the_ledger(qbo, emulator)
