"""The Reports API (reference §8): financial reports computed from the emulator's own ledger.

``report(emu, realm, name, params)`` answers ``GET /v3/company/{realm}/reports/{name}`` with the
bare ``{"Header", "Columns", "Rows"}`` object QBO returns. Served: ProfitAndLoss, BalanceSheet,
TrialBalance (here), AgedReceivables, CustomerBalance, AgedPayables, VendorBalance
(``report_aging``) and GeneralLedger (``report_ledger``); what they share (parameters, SQL over
the ledger, QBO's rendering) is in ``report_context``.

Every figure comes from the ``postings`` table (see ``ledger.py``), aggregated in SQL by account
and day, so the reports agree with each other by construction: the balance sheet balances, the
trial balance's debits equal its credits, the P&L's net income is the change in equity, the
customer balances add up to A/R and the vendor balances to A/P, and the general ledger's
activity is the trial balance's movement. Python only arranges the aggregated rows (a few per
account and day) into QBO's nested sections, so a company of 1,000,000 transactions stays fast.

Approximations, stated so nobody mistakes them for QBO's exact behaviour:

* Cash basis: invoices, credit memos, bills and vendor credits count when (and as far as) a
  Payment or BillPayment line settles them, on the settlement's date, pro rata to the amount
  settled (income, tax, discount and COGS lines alike). Everything else posts as on accrual.
  Payments not applied to any document stay as an A/R credit. GeneralLedger is accrual only.
* The agings age each open document's *current* Balance, restricted to documents dated on or
  before ``report_date``; settlements made after ``report_date`` are not un-applied.
  CustomerBalance and VendorBalance are the sub-ledgers as of ``report_date`` (truly as-of).
* Sub-customers are listed flat under their DisplayName (QBO nests jobs under the parent).
* ``summarize_column_by`` supports Total, Days, Week, Month, Quarter and Year; the by-entity
  summaries (Customers, Vendors, Classes...) answer a validation fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.report_aging import aged_payables, aged_receivables, customer_balance, vendor_balance
from qb_pipelines.emulator.report_context import (
    BS_GROUP,
    CREDIT_NORMAL_PL,
    LABELS,
    PL_GROUP,
    TYPE_ORDER,
    Cells,
    Period,
    Report,
    account_column,
    add,
    coldata,
    header_row,
    money_columns,
    section,
    sum_cells,
    summary_only,
    zero,
)
from qb_pipelines.emulator.report_ledger import general_ledger

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

REPORTS = ("ProfitAndLoss", "BalanceSheet", "TrialBalance", "AgedReceivables", "CustomerBalance",
           "AgedPayables", "VendorBalance", "GeneralLedger")
_BY_LOWER = {r.lower(): r for r in REPORTS}


def _pl_cells(r: Report, start: date, end: date, periods: list[Period]) -> dict[int, Cells]:
    """Per P&L account: one cell per period plus the total, in the statement's sign."""
    daily = r.daily(start, end, filtered=True)
    width = len(periods) + 1
    out: dict[int, Cells] = {}
    for account_id, days in daily.items():
        acc = r.account(account_id)
        group = PL_GROUP.get(acc.type)
        if group is None:
            continue
        sign = -1 if group in CREDIT_NORMAL_PL else 1
        cells: Cells = [None] * width
        for d, cents in days:
            day = date.fromisoformat(d)
            for i, p in enumerate(periods):
                if p.start <= day <= p.end:
                    cells[i] = add(cells[i], sign * cents)
                    break
            cells[-1] = add(cells[-1], sign * cents)
        out[account_id] = cells
    return out


def profit_and_loss(r: Report) -> dict:
    start, end = r.date_range()
    by, periods = r.periods(start, end)
    width = len(periods) + 1
    values = _pl_cells(r, start, end, periods)
    groups: dict[str, tuple[list[dict], Cells]] = {}
    for group in PL_GROUP.values():
        members = [a for a in r.accounts.values() if PL_GROUP.get(a.type) == group]
        groups[group] = r.account_rows(members, {a.id: values[a.id] for a in members if a.id in values}, width)

    def tot(group: str) -> list[int]:
        return zero(groups[group][1])

    gross = [a - b for a, b in zip(tot("Income"), tot("COGS"), strict=True)]
    operating = [a - b for a, b in zip(gross, tot("Expenses"), strict=True)]
    other = [a - b for a, b in zip(tot("OtherIncome"), tot("OtherExpenses"), strict=True)]
    net = [a + b for a, b in zip(operating, other, strict=True)]
    rows = [section("Income", "Income", *groups["Income"], width)]
    if groups["COGS"][0]:
        rows.append(section("COGS", "Cost of Goods Sold", *groups["COGS"], width))
    rows.append(summary_only("GrossProfit", "Gross Profit", gross))
    rows.append(section("Expenses", "Expenses", *groups["Expenses"], width))
    rows.append(summary_only("NetOperatingIncome", "Net Operating Income", operating))
    has_other = bool(groups["OtherIncome"][0] or groups["OtherExpenses"][0])
    if groups["OtherIncome"][0]:
        rows.append(section("OtherIncome", "Other Income", *groups["OtherIncome"], width))
    if groups["OtherExpenses"][0]:
        rows.append(section("OtherExpenses", "Other Expenses", *groups["OtherExpenses"], width))
    if has_other:
        rows.append(summary_only("NetOtherIncome", "Net Other Income", other))
    rows.append(summary_only("NetIncome", "Net Income", net))
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": by})
    return {"Header": r.finish_header(header, no_data=not values),
            "Columns": {"Column": [account_column(), *money_columns(periods)]},
            "Rows": {"Row": rows}}


# --- BalanceSheet and TrialBalance ------------------------------------------------------


@dataclass
class _Position:
    """Balances as of each column's date, in the statement's sign (assets +, liabilities/equity +)."""

    balances: dict[int, Cells]      # balance-sheet accounts
    retained: list[int]             # Retained Earnings: RE account + prior fiscal years' income
    net_income: list[int]           # current fiscal year to date
    pl_ytd: dict[int, Cells]        # P&L accounts, fiscal year to date (debit positive)
    any_data: bool


def _position(r: Report, ends: list[date], start: date) -> _Position:
    """Balance-sheet position at each date in ``ends`` (ascending) from one aggregated query."""
    cut = min(start, r.fy_start(ends[0]))
    daily = r.daily(None, ends[-1], opening_before=cut)
    width = len(ends)
    re_id = next((a.id for a in r.accounts.values() if a.subtype == "RetainedEarnings"), chart.RETAINED_EARNINGS)
    balances: dict[int, Cells] = {}
    pl_ytd: dict[int, Cells] = {}
    retained = [0] * width
    net_income = [0] * width
    for account_id, days in daily.items():
        acc = r.account(account_id)
        is_pl = acc.type in PL_GROUP
        cells: Cells = [None] * width
        ytd: Cells = [None] * width
        for d, cents in days:
            for i, e in enumerate(ends):
                if d == "" or date.fromisoformat(d) <= e:
                    cells[i] = add(cells[i], cents)
                    if is_pl and d != "" and date.fromisoformat(d) >= r.fy_start(e):
                        ytd[i] = add(ytd[i], cents)
        if is_pl:
            for i in range(width):
                net_income[i] -= ytd[i] or 0
                retained[i] -= (cells[i] or 0) - (ytd[i] or 0)
            if any(c is not None for c in ytd):
                pl_ytd[account_id] = ytd
        elif account_id == re_id:
            for i in range(width):
                retained[i] -= cells[i] or 0
        elif any(c is not None for c in cells):
            sign = 1 if acc.classification == "Asset" or acc.type in ("Bank", "Accounts Receivable",
                                                                      "Other Current Asset", "Fixed Asset",
                                                                      "Other Asset") else -1
            balances[account_id] = [None if c is None else sign * c for c in cells]
    return _Position(balances, retained, net_income, pl_ytd, bool(daily))


def balance_sheet(r: Report) -> dict:
    start, end = r.date_range()
    by, periods = r.periods(start, end)
    ends = [p.end for p in periods] or [end]
    width = len(ends)
    pos = _position(r, ends, start)

    def group_rows(group: str) -> tuple[list[dict], Cells]:
        members = [a for a in r.accounts.values() if BS_GROUP.get(a.type) == group]
        return r.account_rows(members, {a.id: pos.balances[a.id] for a in members if a.id in pos.balances}, width)

    def nest(group: str, parts: list[dict], totals: list[Cells]) -> tuple[dict | None, Cells]:
        if not parts:
            return None, [None] * width
        total = sum_cells(totals, width)
        return section(group, LABELS[group], parts, total, width), total

    def leaf(group: str) -> tuple[dict | None, Cells]:
        rows, total = group_rows(group)
        return (section(group, LABELS[group], rows, total, width), total) if rows else (None, [None] * width)

    def combine(group: str, children: list[tuple[dict | None, Cells]]) -> tuple[dict | None, Cells]:
        present = [c for c in children if c[0] is not None]
        return nest(group, [s for s, _ in present], [t for _, t in present])

    current_assets = combine("CurrentAssets", [leaf("BankAccounts"), leaf("AR"), leaf("OtherCurrentAssets")])
    assets = [s for s in (current_assets, leaf("FixedAssets"), leaf("OtherAssets")) if s[0] is not None]
    total_assets = zero(sum_cells([t for _, t in assets], width))
    current_liab = combine("CurrentLiabilities", [leaf("AP"), leaf("CreditCards"), leaf("OtherCurrentLiabilities")])
    liabilities = combine("Liabilities", [current_liab, leaf("LongTermLiabilities")])

    re_id = next((a.id for a in r.accounts.values() if a.subtype == "RetainedEarnings"), chart.RETAINED_EARNINGS)
    equity_rows, equity_total = group_rows("Equity")
    retained = [c if c != 0 else None for c in pos.retained]
    equity_rows.append({"ColData": coldata(r.account(re_id).name, retained, re_id), "type": "Data"})
    equity_rows.append({"ColData": coldata("Net Income", list(pos.net_income)), "type": "Data", "group": "NetIncome"})
    equity_total = [a + b + c for a, b, c in zip(zero(equity_total), pos.retained, pos.net_income, strict=True)]
    equity = section("Equity", "Equity", equity_rows, list(equity_total), width)
    liab_total = zero(liabilities[1])
    total_le = [a + b for a, b in zip(liab_total, equity_total, strict=True)]

    asset_section = {"Header": header_row("ASSETS", width)}
    if assets:
        asset_section["Rows"] = {"Row": [s for s, _ in assets]}
    asset_section.update({"Summary": {"ColData": coldata("TOTAL ASSETS", list(total_assets))},
                          "type": "Section", "group": "TotalAssets"})
    le_rows = ([liabilities[0]] if liabilities[0] is not None else []) + [equity]
    le_section = {"Header": header_row("LIABILITIES AND EQUITY", width), "Rows": {"Row": le_rows},
                  "Summary": {"ColData": coldata("TOTAL LIABILITIES AND EQUITY", list(total_le))},
                  "type": "Section", "group": "TotalLiabilitiesAndEquity"}
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": by})
    columns = [account_column(), *(money_columns(periods, None) if periods else money_columns([], "TOTAL"))]
    return {"Header": r.finish_header(header, no_data=not pos.any_data),
            "Columns": {"Column": columns},
            "Rows": {"Row": [asset_section, le_section]}}


def trial_balance(r: Report) -> dict:
    start, end = r.date_range()
    pos = _position(r, [end], start)
    re_id = next((a.id for a in r.accounts.values() if a.subtype == "RetainedEarnings"), chart.RETAINED_EARNINGS)
    debit_net: dict[int, int] = {}
    for account_id, cells in pos.balances.items():
        acc = r.account(account_id)
        asset_like = acc.classification == "Asset" or acc.type in ("Bank", "Accounts Receivable", "Other Current Asset",
                                                                    "Fixed Asset", "Other Asset")
        debit_net[account_id] = (cells[0] or 0) * (1 if asset_like else -1)
    for account_id, cells in pos.pl_ytd.items():
        debit_net[account_id] = cells[0] or 0
    debit_net[re_id] = -pos.retained[0]
    rows = []
    debits = credits = 0
    ordered = sorted((r.account(i) for i, v in debit_net.items() if v != 0),
                     key=lambda a: (TYPE_ORDER.get(a.type, 99), a.fqn.lower()))
    for acc in ordered:
        v = debit_net[acc.id]
        debits += max(v, 0)
        credits += max(-v, 0)
        rows.append({"ColData": coldata(acc.fqn or acc.name, [v if v > 0 else None, -v if v < 0 else None], acc.id),
                     "type": "Data"})
    rows.append({"Summary": {"ColData": coldata("TOTAL", [debits, credits])}, "type": "Section", "group": "GrandTotal"})
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": "Total"})
    columns = [account_column(),
               {"ColTitle": "Debit", "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "Debit"}]},
               {"ColTitle": "Credit", "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "Credit"}]}]
    return {"Header": r.finish_header(header, no_data=not pos.any_data),
            "Columns": {"Column": columns}, "Rows": {"Row": rows}}


# --- AgedReceivables and CustomerBalance ----------------------------------------------


_BUILDERS: dict[str, Callable[[Report], dict]] = {
    "ProfitAndLoss": profit_and_loss,
    "BalanceSheet": balance_sheet,
    "TrialBalance": trial_balance,
    "AgedReceivables": aged_receivables,
    "CustomerBalance": customer_balance,
    "AgedPayables": aged_payables,
    "VendorBalance": vendor_balance,
    "GeneralLedger": general_ledger,
}


def report(emu: Emulator, realm: str, name: str, params: dict[str, str]) -> dict:
    """Compute one report for a company, as ``GET /v3/company/{realm}/reports/{name}`` returns it.

    Args:
        emu: the emulator (database, clock, company time zone).
        realm: the company's realm Id.
        name: the report name from the URL (matched case-insensitively: ``ProfitAndLoss``...).
        params: the query parameters (start_date, end_date, date_macro, accounting_method,
            summarize_column_by, report_date, aging_method, customer, vendor, account, columns).

    Returns:
        The bare report object ``{"Header", "Columns", "Rows"}`` (QBO sends no envelope ``time``).

    Raises:
        QBOFault: 400 ValidationFault for an unsupported report name or a bad parameter.
    """
    canonical = _BY_LOWER.get(name.lower())
    if canonical is None:
        raise faults.validation(
            "2010", "Request has invalid or unsupported property",
            f"Unsupported report name: {name}. The emulator serves {', '.join(REPORTS)}.", "ReportName")
    with emu.db.read() as conn:
        return _BUILDERS[canonical](Report(emu, realm, canonical, params, conn))
