"""The emulator's Reports API over real HTTP, on a company built through the entity engine.

The books (two fiscal years of invoices, payments, a deposit, credit memo, sales receipt, bills,
bill payments, a card purchase, journal entries, a voided and a deleted invoice) are created with
``emu.engine``; the reports are fetched with ``GET /v3/company/{realm}/reports/{name}`` as a QBO
client would. Every date is explicit and in the past, and the emulator's clock is pinned
(``dates.DEMO_NOW``), so neither the figures nor "last year" depend on the machine's date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import PACIFIC
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines_tests.dates import DEMO_NOW
from qb_pipelines_tests.samples import SAMPLES

Y1 = DEMO_NOW.astimezone(PACIFIC).year - 1  # the fiscal year under test
Y2 = Y1 - 1                 # the year before: its income becomes Retained Earnings


class Books:
    """A running emulator with one populated company and a way to GET its reports."""

    def __init__(self, running: RunningEmulator) -> None:
        self.running = running
        self.emu = running.emu
        self.realm = self.emu.engine.create_company("Craig's Design and Landscaping")
        token = self.emu.oauth.issue_tokens_for(self.realm)["access_token"]
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.ids: dict[str, str] = {}

    def create(self, entity: str, body: dict, key: str | None = None) -> dict:
        out = self.emu.engine.create(self.realm, entity, body)
        if key:
            self.ids[key] = out["Id"]
        return out

    def get(self, name: str, **params: str) -> requests.Response:
        return self.session.get(f"{self.running.url}/v3/company/{self.realm}/reports/{name}",
                                params={"minorversion": "75", **params}, timeout=30)

    def report(self, name: str, **params: str) -> dict:
        response = self.get(name, **params)
        assert response.status_code == 200, response.text
        return response.json()


def _sales_line(item: str, qty: float, price: float, tax: str = "TAX") -> dict:
    return {"Amount": round(qty * price, 2), "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": qty, "UnitPrice": price,
                                    "TaxCodeRef": {"value": tax}}}


def _je_line(posting: str, account: int, amount: float, customer: str | None = None) -> dict:
    detail: dict = {"PostingType": posting, "AccountRef": {"value": str(account)}}
    if customer:
        detail["Entity"] = {"Type": "Customer", "EntityRef": {"value": customer}}
    return {"Amount": amount, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": detail}


def _build(b: Books) -> None:
    amy = b.create("Customer", {"DisplayName": "Amy's Bird Sanctuary"}, "amy")["Id"]
    bill = b.create("Customer", {"DisplayName": "Bill's Windsurf Shop"}, "bill")["Id"]
    cool = b.create("Customer", {"DisplayName": "Cool Cars"}, "cool")["Id"]
    norton = b.create("Vendor", {"DisplayName": "Norton Lumber"}, "norton")["Id"]
    design = b.create("Item", {"Name": "Design", "Type": "Service", "UnitPrice": 75,
                               "IncomeAccountRef": {"value": str(chart.DESIGN_INCOME)}})["Id"]
    pump = b.create("Item", {"Name": "Pump", "Type": "Inventory", "UnitPrice": 15, "PurchaseCost": 10,
                             "QtyOnHand": 0, "InvStartDate": f"{Y2}-01-01",
                             "IncomeAccountRef": {"value": str(chart.SALES_OF_PRODUCT_INCOME)},
                             "ExpenseAccountRef": {"value": str(chart.COST_OF_GOODS_SOLD)},
                             "AssetAccountRef": {"value": str(chart.INVENTORY_ASSET)}})["Id"]
    tax = {"TxnTaxCodeRef": {"value": "2"}}

    # --- the year before ---------------------------------------------------------------
    b.create("JournalEntry", {"TxnDate": f"{Y2}-06-01", "Line": [
        _je_line("Debit", chart.CHECKING, 10000), _je_line("Credit", chart.OPENING_BALANCE_EQUITY, 10000)]})
    inv = b.create("Invoice", {"CustomerRef": {"value": amy}, "TxnDate": f"{Y2}-07-01",
                               "Line": [_sales_line(design, 2, 75)], "TxnTaxDetail": tax})
    assert inv["TotalAmt"] == 162.0
    pay = b.create("Payment", {"CustomerRef": {"value": amy}, "TxnDate": f"{Y2}-07-20", "TotalAmt": 162.0,
                               "Line": [{"Amount": 162.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]})
    b.create("Deposit", {"TxnDate": f"{Y2}-07-25", "DepositToAccountRef": {"value": str(chart.CHECKING)},
                         "Line": [{"Amount": 162.0, "LinkedTxn": [{"TxnId": pay["Id"], "TxnType": "Payment",
                                                                   "TxnLineId": "0"}]}]})
    rent = b.create("Bill", {"VendorRef": {"value": norton}, "TxnDate": f"{Y2}-09-01", "Line": [
        {"Amount": 500.0, "DetailType": "AccountBasedExpenseLineDetail",
         "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "57"}}}]})
    b.create("BillPayment", {"VendorRef": {"value": norton}, "TxnDate": f"{Y2}-09-15", "PayType": "Check",
                             "TotalAmt": 500.0, "CheckPayment": {"BankAccountRef": {"value": str(chart.CHECKING)}},
                             "Line": [{"Amount": 500.0, "LinkedTxn": [{"TxnId": rent["Id"], "TxnType": "Bill"}]}]})

    # --- the year under test -----------------------------------------------------------
    stock = b.create("Bill", {"VendorRef": {"value": norton}, "TxnDate": f"{Y1}-01-05", "Line": [
        {"Amount": 1200.0, "DetailType": "AccountBasedExpenseLineDetail",
         "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "20"}}},
        {"Amount": 100.0, "DetailType": "ItemBasedExpenseLineDetail",
         "ItemBasedExpenseLineDetail": {"ItemRef": {"value": pump}, "Qty": 10, "UnitPrice": 10}}]})
    assert stock["TotalAmt"] == 1300.0
    b.create("BillPayment", {"VendorRef": {"value": norton}, "TxnDate": f"{Y1}-08-01", "PayType": "Check",
                             "TotalAmt": 300.0,
                             "Line": [{"Amount": 300.0, "LinkedTxn": [{"TxnId": stock["Id"], "TxnType": "Bill"}]}]})
    inv_b = b.create("Invoice", {"CustomerRef": {"value": bill}, "TxnDate": f"{Y1}-01-15",
                                 "SalesTermRef": {"value": "3"},
                                 "Line": [_sales_line(design, 3, 75), _sales_line(pump, 2, 15)], "TxnTaxDetail": tax},
                       "inv_b")
    assert inv_b["TotalAmt"] == 275.4 and inv_b["DueDate"] == f"{Y1}-02-14"
    b.create("Payment", {"CustomerRef": {"value": bill}, "TxnDate": f"{Y1}-03-01", "TotalAmt": 100.0,
                         "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": inv_b["Id"], "TxnType": "Invoice"}]}]})
    voided = b.create("Invoice", {"CustomerRef": {"value": amy}, "TxnDate": f"{Y1}-02-02",
                                  "Line": [_sales_line(design, 10, 99.9, "NON")]}, "voided")
    b.emu.engine.void(b.realm, "Invoice", {"Id": voided["Id"], "SyncToken": voided["SyncToken"]})
    deleted = b.create("Invoice", {"CustomerRef": {"value": cool}, "TxnDate": f"{Y1}-02-03",
                                   "Line": [_sales_line(design, 1, 1000, "NON")]}, "deleted")
    b.emu.engine.delete(b.realm, "Invoice", {"Id": deleted["Id"], "SyncToken": deleted["SyncToken"]})
    b.create("Estimate", {"CustomerRef": {"value": cool}, "TxnDate": f"{Y1}-03-03",
                          "Line": [_sales_line(design, 40, 75, "NON")]})
    b.create("SalesReceipt", {"CustomerRef": {"value": cool}, "TxnDate": f"{Y1}-04-01",
                              "DepositToAccountRef": {"value": str(chart.CHECKING)},
                              "Line": [_sales_line(design, 1, 75, "NON")]})
    b.create("CreditMemo", {"CustomerRef": {"value": amy}, "TxnDate": f"{Y1}-05-05",
                            "Line": [_sales_line(design, 1, 50, "NON")]})
    b.create("Payment", {"CustomerRef": {"value": cool}, "TxnDate": f"{Y1}-06-01", "TotalAmt": 40.0})  # unapplied
    b.create("Purchase", {"PaymentType": "CreditCard", "TxnDate": f"{Y1}-08-01",
                          "AccountRef": {"value": str(chart.MASTERCARD)}, "Line": [
                              {"Amount": 35.5, "DetailType": "AccountBasedExpenseLineDetail",
                               "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "13"}}}]})
    b.create("JournalEntry", {"TxnDate": f"{Y1}-09-01", "Line": [
        _je_line("Debit", chart.CHECKING, 25), _je_line("Credit", 83, 25)]})
    b.create("JournalEntry", {"TxnDate": f"{Y1}-09-01", "Line": [
        _je_line("Debit", chart.ACCOUNTS_RECEIVABLE, 60, bill), _je_line("Credit", chart.SERVICES, 60)]})
    # A truck bought with a loan, booked to a sub-account as in QBO's sample company.
    cost = b.create("Account", {"Name": "Original Cost", "AccountType": "Fixed Asset", "SubAccount": True,
                                "ParentRef": {"value": "37"}}, "truck_cost")["Id"]
    b.create("JournalEntry", {"TxnDate": f"{Y1}-10-01", "Line": [
        _je_line("Debit", int(cost), 13495), _je_line("Credit", 91, 13495)]})
    b.create("Invoice", {"CustomerRef": {"value": cool}, "TxnDate": f"{Y1}-10-20", "SalesTermRef": {"value": "3"},
                         "Line": [_sales_line(design, 1, 75, "NON")]})
    b.create("Invoice", {"CustomerRef": {"value": amy}, "TxnDate": f"{Y1}-12-15", "SalesTermRef": {"value": "3"},
                         "Line": [_sales_line(design, 4, 75, "NON")]})


@pytest.fixture(scope="module")
def books() -> Iterator[Books]:
    running = start_in_thread(Emulator(EmulatorSettings(now=DEMO_NOW)))
    try:
        b = Books(running)
        _build(b)
        yield b
    finally:
        running.stop()


# --- helpers that read reports as a client would ---------------------------------------


def money(cell: dict) -> float:
    return float(cell["value"]) if cell["value"] != "" else 0.0


def walk(rows: list[dict]) -> Iterator[dict]:
    for row in rows:
        yield row
        yield from walk(row.get("Rows", {}).get("Row", []))


def section(report: dict, group: str) -> dict:
    return next(r for r in walk(report["Rows"]["Row"]) if r.get("group") == group)


def summary(report: dict, group: str, col: int = -1) -> float:
    return money(section(report, group)["Summary"]["ColData"][col])


def data_rows(report: dict) -> list[dict]:
    return [r for r in walk(report["Rows"]["Row"]) if "ColData" in r]


def account_value(report: dict, account_id: int, col: int = -1) -> float:
    row = next(r for r in data_rows(report) if r["ColData"][0].get("id") == str(account_id))
    return money(row["ColData"][col])


def customer_row(report: dict, customer_id: str) -> list[str]:
    row = next(r for r in report["Rows"]["Row"] if r.get("ColData", [{}])[0].get("id") == customer_id)
    return [c["value"] for c in row["ColData"][1:]]


def all_cells(report: dict) -> Iterator[dict]:
    for row in walk(report["Rows"]["Row"]):
        for part in (row, row.get("Header", {}), row.get("Summary", {})):
            yield from part.get("ColData", [])


def assert_cells_are_strings(report: dict) -> None:
    for cell in all_cells(report):
        assert isinstance(cell["value"], str)
        if "id" in cell:
            assert isinstance(cell["id"], str)


# --- the ledger underneath ---------------------------------------------------------------


def test_every_transaction_posts_a_balanced_entry(books: Books) -> None:
    with books.emu.db.read() as conn:
        sums = conn.execute("SELECT entity, txn_id, ROUND(SUM(amount), 2), COUNT(*) FROM postings WHERE realm=?"
                            " GROUP BY entity, txn_id", (books.realm,)).fetchall()
        entities = {e for e, *_ in sums}
        voided_or_deleted = conn.execute(
            "SELECT COUNT(*) FROM postings WHERE realm=? AND entity='Invoice' AND txn_id IN (?, ?)",
            (books.realm, int(books.ids["voided"]), int(books.ids["deleted"]))).fetchone()[0]
    assert all(total == 0 for _, _, total, _ in sums)
    assert {"Invoice", "Payment", "Deposit", "Bill", "BillPayment", "SalesReceipt", "CreditMemo", "Purchase",
            "JournalEntry"} <= entities
    assert "Estimate" not in entities
    assert voided_or_deleted == 0


# --- BalanceSheet, ProfitAndLoss, TrialBalance -----------------------------------------------


def test_balance_sheet_balances_and_net_income_is_the_change_in_equity(books: Books) -> None:
    year_end = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    prior_end = books.report("BalanceSheet", start_date=f"{Y2}-01-01", end_date=f"{Y2}-12-31")
    pl = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    for bs in (year_end, prior_end):
        assert summary(bs, "TotalAssets") == summary(bs, "TotalLiabilitiesAndEquity")
        assert summary(bs, "TotalLiabilitiesAndEquity") == pytest.approx(
            summary(bs, "Liabilities") + summary(bs, "Equity"))
    net_income = summary(pl, "NetIncome")
    assert net_income == pytest.approx(summary(year_end, "Equity") - summary(prior_end, "Equity"))
    # Y2's income (150 design income - 500 rent) closed into Retained Earnings at the new year.
    equity = section(year_end, "Equity")["Rows"]["Row"]
    retained = next(r for r in equity if r["ColData"][0]["value"] == "Retained Earnings")
    assert retained["ColData"][0]["id"] == str(chart.RETAINED_EARNINGS)
    assert money(retained["ColData"][1]) == -350.0
    net_row = next(r for r in equity if r.get("group") == "NetIncome")
    assert money(net_row["ColData"][1]) == net_income
    # The Y2 payment went through Undeposited Funds and was deposited to Checking.
    assert account_value(prior_end, chart.UNDEPOSITED_FUNDS) == 0.0
    assert account_value(prior_end, chart.CHECKING) == 10000 + 162 - 500
    assert account_value(year_end, chart.ACCOUNTS_PAYABLE) == 1000.0
    assert account_value(year_end, chart.MASTERCARD) == 35.5
    assert account_value(year_end, chart.INVENTORY_ASSET) == 100 - 20
    assert_cells_are_strings(year_end)


def test_profit_and_loss_sections_and_figures(books: Books) -> None:
    pl = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    assert [r["group"] for r in pl["Rows"]["Row"]] == [
        "Income", "COGS", "GrossProfit", "Expenses", "NetOperatingIncome", "OtherIncome", "NetOtherIncome",
        "NetIncome"]
    # design: 225 (Bill's) + 75 (receipt) + 75 (Cool Cars) + 300 (Amy) - 50 (credit memo); voided/deleted ignored
    assert account_value(pl, chart.DESIGN_INCOME) == 625.0
    assert account_value(pl, chart.SALES_OF_PRODUCT_INCOME) == 30.0
    assert account_value(pl, chart.SERVICES) == 60.0
    assert summary(pl, "Income") == 715.0
    assert summary(pl, "COGS") == 20.0
    assert summary(pl, "GrossProfit") == 695.0
    assert summary(pl, "Expenses") == 1200.0 + 35.5
    assert summary(pl, "OtherIncome") == 25.0
    assert summary(pl, "NetIncome") == pytest.approx(695.0 - 1235.5 + 25.0)
    assert pl["Header"]["ReportBasis"] == "Accrual" and pl["Header"]["SummarizeColumnsBy"] == "Total"
    assert pl["Header"]["StartPeriod"] == f"{Y1}-01-01" and pl["Header"]["EndPeriod"] == f"{Y1}-12-31"
    assert_cells_are_strings(pl)


def test_trial_balance_debits_equal_credits(books: Books) -> None:
    tb = books.report("TrialBalance", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    assert [c["ColTitle"] for c in tb["Columns"]["Column"]] == ["", "Debit", "Credit"]
    rows = [r for r in tb["Rows"]["Row"] if r.get("type") == "Data"]
    debits = sum(money(r["ColData"][1]) for r in rows)
    credits = sum(money(r["ColData"][2]) for r in rows)
    total = tb["Rows"]["Row"][-1]
    assert total["group"] == "GrandTotal" and total["Summary"]["ColData"][0]["value"] == "TOTAL"
    assert money(total["Summary"]["ColData"][1]) == pytest.approx(debits)
    assert money(total["Summary"]["ColData"][2]) == pytest.approx(credits)
    assert round(debits, 2) == round(credits, 2)
    # P&L accounts show this fiscal year only; earlier years sit in Retained Earnings (a debit: a loss).
    assert account_value(tb, chart.DESIGN_INCOME) == 625.0
    assert account_value(tb, chart.RETAINED_EARNINGS, col=1) == 350.0
    assert all(r["ColData"][1]["value"] == "" or r["ColData"][2]["value"] == "" for r in rows)


def test_month_columns_sum_to_the_total(books: Books) -> None:
    for by, count in (("Month", 12), ("Quarter", 4), ("Year", 1), ("Week", None), ("Days", 365 + (Y1 % 4 == 0))):
        pl = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31", summarize_column_by=by)
        columns = pl["Columns"]["Column"]
        assert pl["Header"]["SummarizeColumnsBy"] == by
        assert columns[-1]["ColTitle"] == "Total"
        assert columns[-1]["MetaData"] == [{"Name": "ColKey", "Value": "total"}]
        periods = columns[1:-1]
        if count is not None:
            assert len(periods) == count
        meta = [{m["Name"]: m["Value"] for m in c["MetaData"]} for c in periods]
        assert meta[0]["StartDate"] == f"{Y1}-01-01" and meta[-1]["EndDate"] == f"{Y1}-12-31"
        assert all(c["ColType"] == "Money" for c in periods)
        for row in walk(pl["Rows"]["Row"]):
            for part in (row, row.get("Summary", {})):
                cells = part.get("ColData")
                if cells and any(c["value"] for c in cells[1:]):
                    assert sum(money(c) for c in cells[1:-1]) == pytest.approx(money(cells[-1])), (by, cells)
    monthly = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31",
                           summarize_column_by="Month")
    assert [c["ColTitle"] for c in monthly["Columns"]["Column"][1:3]] == [f"Jan {Y1}", f"Feb {Y1}"]
    design = next(r for r in data_rows(monthly) if r["ColData"][0].get("id") == str(chart.DESIGN_INCOME))
    assert [c["value"] for c in design["ColData"][1:]] == [
        "225.00", "", "", "75.00", "-50.00", "", "", "", "", "75.00", "", "300.00", "625.00"]


def test_balance_sheet_by_month_shows_each_month_end(books: Books) -> None:
    bs = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31", summarize_column_by="Month")
    assert len(bs["Columns"]["Column"]) == 13  # the label and one as-of column per month
    assets = section(bs, "TotalAssets")["Summary"]["ColData"][1:]
    liabilities_equity = section(bs, "TotalLiabilitiesAndEquity")["Summary"]["ColData"][1:]
    assert [c["value"] for c in assets] == [c["value"] for c in liabilities_equity]
    year_end = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    assert assets[-1]["value"] == section(year_end, "TotalAssets")["Summary"]["ColData"][1]["value"]


def test_cash_basis_counts_invoices_when_paid(books: Books) -> None:
    cash = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31", accounting_method="Cash")
    assert cash["Header"]["ReportBasis"] == "Cash"
    # receipt 75 + the paid share (100 of 275.40) of Bill's 225 of design; unpaid invoices and the
    # unapplied credit memo do not count yet
    assert account_value(cash, chart.DESIGN_INCOME) == round(75 + 225 * 100 / 275.4, 2)
    # 300 of the 1300 stock bill was paid: insurance counts pro rata
    assert account_value(cash, 20) == round(1200 * 300 / 1300, 2)
    bs = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31", accounting_method="Cash")
    assert summary(bs, "TotalAssets") == summary(bs, "TotalLiabilitiesAndEquity")
    assert section(bs, "NetIncome")["ColData"][1]["value"] == section(cash, "NetIncome")["Summary"]["ColData"][1][
        "value"]


def test_customer_filter_limits_the_profit_and_loss(books: Books) -> None:
    pl = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31",
                      customer=books.ids["cool"])
    assert pl["Header"]["Customer"] == books.ids["cool"]
    assert account_value(pl, chart.DESIGN_INCOME) == 150.0  # the receipt and the open invoice


def test_date_macro_resolves_and_is_echoed(books: Books) -> None:
    macro = books.report("ProfitAndLoss", date_macro="Last Year")
    explicit = books.report("ProfitAndLoss", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    assert macro["Header"]["DateMacro"] == "last calendar year"
    assert (macro["Header"]["StartPeriod"], macro["Header"]["EndPeriod"]) == (f"{Y1}-01-01", f"{Y1}-12-31")
    assert macro["Rows"] == explicit["Rows"]
    default = books.report("ProfitAndLoss")
    today = books.emu.clock.today()
    assert default["Header"]["DateMacro"] == "this calendar year-to-date"
    assert (default["Header"]["StartPeriod"], default["Header"]["EndPeriod"]) == (f"{today[:4]}-01-01", today)
    everything = books.report("TrialBalance", date_macro="All")
    assert everything["Header"]["StartPeriod"] == f"{Y2}-06-01"


# --- receivables -----------------------------------------------------------------------------


def test_customer_balance_equals_receivables_on_the_balance_sheet_and_the_aging(books: Books) -> None:
    as_of = f"{Y1}-12-31"
    cb = books.report("CustomerBalance", report_date=as_of)
    aging = books.report("AgedReceivables", report_date=as_of)
    bs = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=as_of)
    cb_total = money(cb["Rows"]["Row"][-1]["Summary"]["ColData"][1])
    aging_total = money(aging["Rows"]["Row"][-1]["Summary"]["ColData"][-1])
    assert cb_total == summary(bs, "AR") == aging_total == 520.4
    assert {"Name": "report_date", "Value": as_of} in cb["Header"]["Option"]
    # Amy: 300 current invoice less the 50 open credit; Bill's: 175.40 left on an invoice due Feb 14
    # and a 60.00 journal entry, both over 90 days; Cool Cars: 75 due Nov 19 (42 days) less 40 unapplied.
    assert customer_row(aging, books.ids["amy"]) == ["250.00", "", "", "", "", "250.00"]
    assert customer_row(aging, books.ids["bill"]) == ["", "", "", "", "235.40", "235.40"]
    assert customer_row(aging, books.ids["cool"]) == ["-40.00", "", "75.00", "", "", "35.00"]
    assert customer_row(cb, books.ids["bill"]) == ["235.40"]
    names = [r["ColData"][0]["value"] for r in cb["Rows"]["Row"][:-1]]
    assert names == ["Amy's Bird Sanctuary", "Bill's Windsurf Shop", "Cool Cars"]
    # The aging on a later date, measured from the due dates.
    later = books.report("AgedReceivables", report_date=f"{Y1 + 1}-01-31")
    assert customer_row(later, books.ids["amy"])[1] == "300.00"  # due Jan 14: 17 days late


def test_customer_balance_before_the_year_and_filtered(books: Books) -> None:
    early = books.report("CustomerBalance", report_date=f"{Y1}-02-01")
    assert money(early["Rows"]["Row"][-1]["Summary"]["ColData"][1]) == 275.4
    one = books.report("CustomerBalance", report_date=f"{Y1}-12-31", customer=books.ids["cool"])
    assert one["Header"]["Customer"] == books.ids["cool"]
    assert customer_row(one, books.ids["cool"]) == ["35.00"]
    assert len(one["Rows"]["Row"]) == 2
    assert one["Rows"]["Row"][-1]["Summary"]["ColData"][1]["value"] == "35.00"
    empty = books.report("CustomerBalance", report_date=f"{Y2}-01-01")
    assert {"Name": "NoReportData", "Value": "true"} in empty["Header"]["Option"]


# --- shapes and faults -----------------------------------------------------------------------


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())["report"]


def test_empty_profit_and_loss_by_days_matches_the_real_payload(books: Books) -> None:
    realm = books.emu.engine.create_company("Empty Co")
    token = books.emu.oauth.issue_tokens_for(realm)["access_token"]
    got = requests.get(f"{books.running.url}/v3/company/{realm}/reports/ProfitAndLoss",
                       params={"start_date": "2021-07-20", "end_date": "2021-07-21", "summarize_column_by": "Days",
                               "minorversion": "75"},
                       headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, timeout=30).json()
    expected = _sample("report_profitandloss_days.json")
    assert "time" not in got
    got["Header"].pop("Time")
    expected["Header"].pop("Time")
    assert got == expected


def test_shapes_follow_the_samples(books: Books) -> None:
    bs = books.report("BalanceSheet", start_date=f"{Y1}-01-01", end_date=f"{Y1}-12-31")
    sample_bs = _sample("report_balancesheet_converted.json")
    assert set(sample_bs["Header"]) <= set(bs["Header"])
    assert [r["group"] for r in bs["Rows"]["Row"]] == ["TotalAssets", "TotalLiabilitiesAndEquity"]
    assert [r["Summary"]["ColData"][0]["value"] for r in bs["Rows"]["Row"]] == [
        "TOTAL ASSETS", "TOTAL LIABILITIES AND EQUITY"]
    sample_groups = {r.get("group") for r in walk(sample_bs["Rows"]["Row"])} - {None}
    got_groups = {r.get("group") for r in walk(bs["Rows"]["Row"])} - {None}
    assert got_groups == sample_groups
    truck = next(r for r in walk(bs["Rows"]["Row"]) if r.get("Header", {}).get("ColData", [{}])[0].get("id") == "37")
    assert truck["Header"]["ColData"][0]["value"] == "Truck"
    assert truck["Rows"]["Row"][0]["ColData"] == [{"value": "Original Cost", "id": books.ids["truck_cost"]},
                                                  {"value": "13495.00"}]
    assert truck["Summary"]["ColData"] == [{"value": "Total Truck"}, {"value": "13495.00"}]
    assert "group" not in truck
    for row in walk(bs["Rows"]["Row"]):
        if row.get("type") == "Section":
            assert set(row) <= {"Header", "Rows", "Summary", "type", "group"}
        else:
            assert row["type"] == "Data" and set(row) <= {"ColData", "type", "group"}
    cb = books.report("CustomerBalance", customer=books.ids["amy"], report_date=f"{Y1}-12-31")
    sample_cb = _sample("report_customerbalance.json")
    assert set(cb["Header"]) == set(sample_cb["Header"])
    assert [(c["ColType"], c["ColTitle"]) for c in cb["Columns"]["Column"]] == [
        (c["ColType"], c["ColTitle"]) for c in sample_cb["Columns"]["Column"]]
    assert set(cb["Rows"]["Row"][0]) == set(sample_cb["Rows"]["Row"][0])
    assert cb["Rows"]["Row"][-1].keys() == sample_cb["Rows"]["Row"][-1].keys()
    aging = books.report("AgedReceivables", report_date=f"{Y1}-12-31")
    assert [c["ColTitle"] for c in aging["Columns"]["Column"]] == [
        "", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"]
    assert aging["Columns"]["Column"][0]["ColType"] == "Customer"
    for report in (bs, cb, aging):
        assert_cells_are_strings(report)
        assert {"Header", "Columns", "Rows"} == set(report)


def test_report_names_are_matched_case_insensitively(books: Books) -> None:
    assert books.report("balancesheet", end_date=f"{Y1}-12-31")["Header"]["ReportName"] == "BalanceSheet"


@pytest.mark.parametrize(
    ("name", "params", "element"),
    [
        ("GeneralLedgerX", {}, "ReportName"),
        ("ProfitAndLoss", {"start_date": "2024-13-01"}, "start_date"),
        ("ProfitAndLoss", {"end_date": "yesterday"}, "end_date"),
        ("ProfitAndLoss", {"start_date": "2024-05-01", "end_date": "2024-04-01"}, "start_date"),
        ("BalanceSheet", {"accounting_method": "Modified"}, "accounting_method"),
        ("ProfitAndLoss", {"summarize_column_by": "Customers"}, "summarize_column_by"),
        ("AgedReceivables", {"report_date": "31/12/2024"}, "report_date"),
        ("CustomerBalance", {"date_macro": "Someday"}, "date_macro"),
    ],
)
def test_bad_requests_answer_a_validation_fault(books: Books, name: str, params: dict, element: str) -> None:
    response = books.get(name, **params)
    assert response.status_code == 400
    error = response.json()["Fault"]["Error"][0]
    assert response.json()["Fault"]["type"] == "ValidationFault"
    assert error["code"] == "2010"
    assert error["element"] == element
    assert element.split("_")[0].lower() in error["Detail"].lower() or name in error["Detail"]


def test_reports_agree_on_the_seeded_demo_company() -> None:
    """The demo company (a year of every transaction type) ties out on both bases."""
    from qb_pipelines.emulator import seed as seeding

    running = start_in_thread(Emulator(EmulatorSettings()))
    try:
        emu = running.emu
        realm = seeding.seed_demo_company(emu, seed=7)
        token = emu.oauth.issue_tokens_for(realm)["access_token"]

        def get(name: str, **params: str) -> dict:
            response = requests.get(f"{running.url}/v3/company/{realm}/reports/{name}", params=params,
                                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                    timeout=30)
            assert response.status_code == 200, response.text
            return response.json()

        for basis in ("Accrual", "Cash"):
            bs = get("BalanceSheet", date_macro="All", accounting_method=basis)
            assert summary(bs, "TotalAssets") == summary(bs, "TotalLiabilitiesAndEquity") != 0
            tb = get("TrialBalance", date_macro="All", accounting_method=basis)
            debit, credit = (money(c) for c in tb["Rows"]["Row"][-1]["Summary"]["ColData"][1:])
            assert debit == credit != 0
            end = bs["Header"]["EndPeriod"]
            this_year = get("ProfitAndLoss", start_date=f"{end[:4]}-01-01", end_date=end, accounting_method=basis,
                            summarize_column_by="Month")
            assert section(bs, "NetIncome")["ColData"][1]["value"] == section(this_year, "NetIncome")["Summary"][
                "ColData"][-1]["value"]
            # all income ever earned = this year's net income + earlier years' (in Retained Earnings)
            ever = get("ProfitAndLoss", date_macro="All", accounting_method=basis)
            retained = next(r for r in section(bs, "Equity")["Rows"]["Row"]
                            if r["ColData"][0]["value"] == "Retained Earnings")
            assert summary(ever, "NetIncome") == pytest.approx(
                money(retained["ColData"][1]) + summary(this_year, "NetIncome"))
        bs = get("BalanceSheet", date_macro="All")
        customers = get("CustomerBalance")
        aging = get("AgedReceivables")
        receivable = summary(bs, "AR")
        assert receivable > 0
        assert money(customers["Rows"]["Row"][-1]["Summary"]["ColData"][1]) == receivable
        assert money(aging["Rows"]["Row"][-1]["Summary"]["ColData"][-1]) == receivable
        # each customer's line equals the Balance the engine keeps on the Customer
        with emu.db.read() as conn:
            stored = {str(i): b for i, b in conn.execute(
                "SELECT id, json_extract(body, '$.Balance') FROM objects WHERE realm=? AND entity='Customer'",
                (realm,))}
        for row in customers["Rows"]["Row"][:-1]:
            assert money(row["ColData"][1]) == pytest.approx(stored[row["ColData"][0]["id"]])
    finally:
        running.stop()
