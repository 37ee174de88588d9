"""The Reports API (reference §8): financial reports computed from the emulator's own ledger.

``report(emu, realm, name, params)`` answers ``GET /v3/company/{realm}/reports/{name}`` with the
bare ``{"Header", "Columns", "Rows"}`` object QBO returns. Supported: ProfitAndLoss,
BalanceSheet, TrialBalance, AgedReceivables, CustomerBalance.

Every figure comes from the ``postings`` table (see ``ledger.py``), aggregated in SQL by account
and day, so the reports agree with each other by construction: the balance sheet balances, the
trial balance's debits equal its credits, the P&L's net income is the change in equity, and the
customer balances add up to A/R. Python only arranges the aggregated rows (a few per account and
day) into QBO's nested sections, so a company of 1,000,000 transactions stays fast.

Approximations, stated so nobody mistakes them for QBO's exact behaviour:

* Cash basis: invoices, credit memos, bills and vendor credits count when (and as far as) a
  Payment or BillPayment line settles them, on the settlement's date, pro rata to the amount
  settled (income, tax, discount and COGS lines alike). Everything else posts as on accrual.
  Payments not applied to any document stay as an A/R credit.
* AgedReceivables ages each open document's *current* Balance (the engine keeps it), restricted
  to documents dated on or before ``report_date``; payments made after ``report_date`` are not
  un-applied. CustomerBalance is the A/R sub-ledger as of ``report_date`` (truly as-of).
* Sub-customers are listed flat under their DisplayName (QBO nests jobs under the parent).
* ``summarize_column_by`` supports Total, Days, Week, Month, Quarter and Year; the by-entity
  summaries (Customers, Vendors, Classes...) answer a validation fault.
"""

from __future__ import annotations

import calendar
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import TYPE_CHECKING

from qb_pipelines.emulator import chart, entities, faults
from qb_pipelines.emulator.clock import qbo_timestamp
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.ledger import OPEN_DOCUMENTS
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

REPORTS = ("ProfitAndLoss", "BalanceSheet", "TrialBalance", "AgedReceivables", "CustomerBalance")
_BY_LOWER = {r.lower(): r for r in REPORTS}

# Where each AccountType sits on the statements.
_BS_GROUP = {
    "Bank": "BankAccounts",
    "Accounts Receivable": "AR",
    "Other Current Asset": "OtherCurrentAssets",
    "Fixed Asset": "FixedAssets",
    "Other Asset": "OtherAssets",
    "Accounts Payable": "AP",
    "Credit Card": "CreditCards",
    "Other Current Liability": "OtherCurrentLiabilities",
    "Long Term Liability": "LongTermLiabilities",
    "Equity": "Equity",
}
_PL_GROUP = {
    "Income": "Income",
    "Cost of Goods Sold": "COGS",
    "Expense": "Expenses",
    "Other Income": "OtherIncome",
    "Other Expense": "OtherExpenses",
}
# Fallback when an AccountType is unknown: place the account by its Classification.
_BY_CLASSIFICATION = {
    "Asset": "Other Current Asset",
    "Liability": "Other Current Liability",
    "Equity": "Equity",
    "Revenue": "Income",
    "Expense": "Expense",
}
_LABELS = {
    "BankAccounts": "Bank Accounts",
    "AR": "Accounts Receivable",
    "OtherCurrentAssets": "Other current assets",
    "CurrentAssets": "Current Assets",
    "FixedAssets": "Fixed Assets",
    "OtherAssets": "Other Assets",
    "AP": "Accounts Payable",
    "CreditCards": "Credit Cards",
    "OtherCurrentLiabilities": "Other Current Liabilities",
    "CurrentLiabilities": "Current Liabilities",
    "LongTermLiabilities": "Long-Term Liabilities",
    "Liabilities": "Liabilities",
    "Equity": "Equity",
    "Income": "Income",
    "COGS": "Cost of Goods Sold",
    "Expenses": "Expenses",
    "OtherIncome": "Other Income",
    "OtherExpenses": "Other Expenses",
}
# Trial balance order: balance sheet first, then P&L, as QBO lists the chart of accounts.
_TYPE_ORDER = {t: i for i, t in enumerate((*_BS_GROUP, *_PL_GROUP))}
_CREDIT_NORMAL_PL = {"Income", "OtherIncome"}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_AGING_COLUMNS = (("Current", "current"), ("1 - 30", "0"), ("31 - 60", "1"), ("61 - 90", "2"),
                  ("91 and over", "3"))
_SUMMARIZE = ("Total", "Days", "Week", "Month", "Quarter", "Year")
_ENTITY_SUMMARIZE = ("Customers", "Vendors", "Classes", "Departments", "Employees", "ProductsAndServices")

Cells = list[int | None]  # money columns in cents; None renders as "" (no activity)


@dataclass(frozen=True)
class _Account:
    id: int
    name: str
    fqn: str
    type: str
    classification: str
    subtype: str
    parent: int | None


@dataclass(frozen=True)
class _Period:
    start: date
    end: date
    title: str


# --- small helpers --------------------------------------------------------------------


def _money(cents: int | None) -> str:
    """QBO's report money text: two decimals, "" for a blank cell."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def _to_cents(value: float | None) -> int:
    return round((value or 0.0) * 100)


def _add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _sum_cells(rows: list[Cells], width: int) -> Cells:
    out: Cells = [None] * width
    for cells in rows:
        out = [_add(x, y) for x, y in zip(out, cells, strict=True)]
    return out


def _zero(cells: Cells) -> list[int]:
    return [c or 0 for c in cells]


def _coldata(label: str, cells: Cells, ident: int | None = None) -> list[dict]:
    first: dict = {"value": label}
    if ident is not None:
        first["id"] = str(ident)
    return [first, *({"value": _money(c)} for c in cells)]


def _header(label: str, width: int, ident: int | None = None) -> dict:
    return {"ColData": _coldata(label, [None] * width, ident)}


def _bad_param(param: str, detail: str) -> faults.QBOFault:
    return faults.invalid_value(param, f"Invalid value for {param}: {detail}")


def _parse_date(value: str, param: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _bad_param(param, f"'{value}' is not a date in the format YYYY-MM-DD") from None


def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def _short(d: date) -> str:
    return f"{calendar.month_abbr[d.month]} {d.day}"


# --- the report context ---------------------------------------------------------------


class _Report:
    """Everything one report request needs: parameters resolved, accounts loaded, SQL helpers."""

    def __init__(self, emu: Emulator, realm: str, name: str, params: dict[str, str],
                 conn: sqlite3.Connection) -> None:
        self.emu = emu
        self.realm = realm
        self.name = name
        self.params = {k: v for k, v in params.items() if v is not None}
        self.conn = conn
        self.tz = emu.company_tz(realm)
        self.today = date.fromisoformat(emu.clock.today(self.tz))
        self.fy_month = self._fiscal_month()
        self.accounts = self._load_accounts()
        self.date_macro_echo: str | None = None
        basis = self.params.get("accounting_method", "Accrual")
        if basis.lower() not in ("accrual", "cash"):
            raise _bad_param("accounting_method", f"'{basis}' (use Cash or Accrual)")
        self.basis = "Cash" if basis.lower() == "cash" else "Accrual"
        self.customers = self._id_list("customer")
        self.vendors = self._id_list("vendor")

    # --- parameters -------------------------------------------------------------------
    def _id_list(self, param: str) -> list[int] | None:
        raw = self.params.get(param)
        if not raw:
            return None
        try:
            return [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise _bad_param(param, f"'{raw}' is not a comma-separated list of Ids") from None

    def _fiscal_month(self) -> int:
        row = self.conn.execute(
            "SELECT body FROM objects WHERE realm=? AND entity='CompanyInfo' LIMIT 1", (self.realm,)
        ).fetchone()
        if row:
            month = str(loads(row[0]).get("FiscalYearStartMonth") or "January").lower()
            return _MONTHS.get(month, 1)
        return 1

    def fy_start(self, d: date) -> date:
        """First day of the fiscal year containing ``d``."""
        year = d.year if d.month >= self.fy_month else d.year - 1
        return date(year, self.fy_month, 1)

    def macro_range(self, macro: str) -> tuple[date, date]:
        """Dates of a QBO ``date_macro`` (case-insensitive), and remember its echo for the header."""
        m = " ".join(macro.strip().lower().split())
        t = self.today
        week_start = t - timedelta(days=(t.weekday() + 1) % 7)  # QBO weeks start on Sunday
        month_start = t.replace(day=1)
        q_month = (t.month - 1) // 3 * 3 + 1
        quarter_start = date(t.year, q_month, 1)
        fiscal = self.fy_start(t)
        calendar_year = self.fy_month == 1
        table: dict[str, tuple[date, date]] = {
            "today": (t, t),
            "yesterday": (t - timedelta(days=1), t - timedelta(days=1)),
            "this week": (week_start, week_start + timedelta(days=6)),
            "this week-to-date": (week_start, t),
            "last week": (week_start - timedelta(days=7), week_start - timedelta(days=1)),
            "last week-to-date": (week_start - timedelta(days=7), t - timedelta(days=7)),
            "this month": (month_start, _month_end(t)),
            "this month-to-date": (month_start, t),
            "last month": (_add_months(month_start, -1), month_start - timedelta(days=1)),
            "last month-to-date": (_add_months(month_start, -1), _add_months(t, -1)),
            "this quarter": (quarter_start, _month_end(_add_months(quarter_start, 2))),
            "this quarter-to-date": (quarter_start, t),
            "last quarter": (_add_months(quarter_start, -3), quarter_start - timedelta(days=1)),
            "this year": (date(t.year, 1, 1), date(t.year, 12, 31)),
            "this year-to-date": (date(t.year, 1, 1), t),
            "last year": (date(t.year - 1, 1, 1), date(t.year - 1, 12, 31)),
            "last year-to-date": (date(t.year - 1, 1, 1), _add_months(t, -12)),
            "this fiscal year": (fiscal, _add_months(fiscal, 12) - timedelta(days=1)),
            "this fiscal year-to-date": (fiscal, t),
            "last fiscal year": (_add_months(fiscal, -12), fiscal - timedelta(days=1)),
            "last fiscal year-to-date": (_add_months(fiscal, -12), _add_months(t, -12)),
        }
        table["this fiscal quarter"] = table["this quarter"]
        table["this fiscal quarter-to-date"] = table["this quarter-to-date"]
        table["last fiscal quarter"] = table["last quarter"]
        if m == "all":
            row = self.conn.execute("SELECT MIN(txn_date), MAX(txn_date) FROM postings WHERE realm=?",
                                    (self.realm,)).fetchone()
            first = date.fromisoformat(row[0]) if row and row[0] else t
            last = max(date.fromisoformat(row[1]), t) if row and row[1] else t
            self.date_macro_echo = "all"
            return min(first, t), last
        if m not in table:
            raise _bad_param("date_macro", f"'{macro}' is not a supported date macro")
        echo = m
        if calendar_year:
            # QBO echoes fiscal-year macros as calendar years when the fiscal year is the calendar.
            echo = echo.replace("fiscal ", "")
        if "year" in echo and "fiscal" not in echo:
            echo = echo.replace("year", "calendar year")
        self.date_macro_echo = echo
        return table[m]

    def date_range(self) -> tuple[date, date]:
        """start_date/end_date, else date_macro, else this calendar year to date (QBO's default)."""
        start_text, end_text = self.params.get("start_date"), self.params.get("end_date")
        if start_text or end_text:
            end = _parse_date(end_text, "end_date") if end_text else self.today
            start = _parse_date(start_text, "start_date") if start_text else self.fy_start(end)
        elif self.params.get("date_macro"):
            start, end = self.macro_range(self.params["date_macro"])
        else:
            start, end = date(self.today.year, 1, 1), self.today
            self.date_macro_echo = "this calendar year-to-date"
        if start > end:
            raise _bad_param("start_date", f"start_date {start} is after end_date {end}")
        return start, end

    def report_date(self) -> date:
        """The as-of date of the aging/balance reports: report_date, else the macro's end, else today."""
        if self.params.get("report_date"):
            return _parse_date(self.params["report_date"], "report_date")
        if self.params.get("date_macro"):
            return self.macro_range(self.params["date_macro"])[1]
        return self.today

    def periods(self, start: date, end: date) -> tuple[str, list[_Period]]:
        """The columns asked by summarize_column_by (empty list: a single Total column)."""
        raw = self.params.get("summarize_column_by", "Total")
        by = next((s for s in _SUMMARIZE if s.lower() == raw.lower()), None)
        if by is None:
            if raw in _ENTITY_SUMMARIZE:
                raise _bad_param("summarize_column_by", f"'{raw}' is not supported by the emulator "
                                 f"(supported: {', '.join(_SUMMARIZE)})")
            raise _bad_param("summarize_column_by", f"'{raw}' (supported: {', '.join(_SUMMARIZE)})")
        if by == "Total":
            return by, []
        out: list[_Period] = []
        cursor = start
        while cursor <= end:
            if by == "Days":
                stop = cursor
                title = f"{_short(cursor)}, {cursor.year}"
            elif by == "Week":
                stop = min(cursor + timedelta(days=(5 - cursor.weekday()) % 7), end)
                title = f"{_short(cursor)} - {_short(stop)}, {stop.year}"
            elif by == "Month":
                stop = min(_month_end(cursor), end)
                title = f"{calendar.month_abbr[cursor.month]} {cursor.year}"
            elif by == "Quarter":
                q_end = _month_end(date(cursor.year, (cursor.month - 1) // 3 * 3 + 3, 1))
                stop = min(q_end, end)
                first = calendar.month_abbr[(cursor.month - 1) // 3 * 3 + 1]
                title = f"{first} - {calendar.month_abbr[q_end.month]}, {cursor.year}"
            else:
                stop = min(date(cursor.year, 12, 31), end)
                title = str(cursor.year)
            out.append(_Period(cursor, stop, title))
            cursor = stop + timedelta(days=1)
            if len(out) > 3660:
                raise _bad_param("summarize_column_by", "too many columns for the date range")
        return by, out

    # --- accounts ---------------------------------------------------------------------
    def _load_accounts(self) -> dict[int, _Account]:
        accounts: dict[int, _Account] = {}
        for ident, body in self.conn.execute(
            "SELECT id, body FROM objects WHERE realm=? AND entity='Account' AND status IS NOT 'Deleted'",
            (self.realm,),
        ):
            b = loads(body)
            parent = (b.get("ParentRef") or {}).get("value") if b.get("SubAccount") else None
            classification = b.get("Classification") or "Asset"
            account_type = b.get("AccountType")
            if account_type not in _TYPE_ORDER:
                # Every account must land in exactly one statement section, or totals would not tie.
                account_type = _BY_CLASSIFICATION.get(classification, "Other Current Asset")
            accounts[int(ident)] = _Account(
                int(ident), b.get("Name") or f"Account {ident}", b.get("FullyQualifiedName") or b.get("Name") or "",
                account_type, classification, b.get("AccountSubType") or "", int(parent) if parent else None,
            )
        # Postings written before (or without) the chart being stored still land somewhere sensible.
        for ident, name, classification, account_type, subtype in chart.ACCOUNTS:
            accounts.setdefault(ident, _Account(ident, name, name, account_type, classification, subtype, None))
        return accounts

    def account(self, ident: int) -> _Account:
        if ident not in self.accounts:
            self.accounts[ident] = _Account(ident, f"Account {ident}", f"Account {ident}",
                                            "Other Current Asset", "Asset", "", None)
        return self.accounts[ident]

    def ids_of_type(self, account_type: str) -> list[int]:
        return [a.id for a in self.accounts.values() if a.type == account_type]

    # --- SQL over the ledger ----------------------------------------------------------
    def _ledger(self, start: date | None, end: date) -> tuple[str, list[object]]:
        """A CTE prefix defining ``ledger(txn_date, account_id, amount, customer_id, vendor_id)``.

        Accrual is the postings table itself. Cash replaces each open document's postings by
        copies scaled to each settlement, dated on the settlement (see the module docstring);
        the control (A/R or A/P) leg of each copy is the negated sum of the other rounded legs,
        so every copy still balances to the cent. Rows outside [start, end] are left out early.
        """
        lo, hi = (start.isoformat() if start else ""), end.isoformat()
        if self.basis == "Accrual":
            return ("WITH ledger AS (SELECT txn_date, account_id, amount, customer_id, vendor_id "
                    "FROM postings WHERE realm=? AND txn_date BETWEEN ? AND ?) ", [self.realm, lo, hi])
        control = self.ids_of_type("Accounts Receivable") + self.ids_of_type("Accounts Payable")
        marks = ",".join("?" * len(control)) or "NULL"
        docs = _sql_names(OPEN_DOCUMENTS)
        settlements = _sql_names(e.name for e in entities.settlements())
        sql = f"""
        WITH settle AS (
            SELECT o.entity || ':' || o.id || ':' || l.key || ':' || lt.key AS k,
                   json_extract(o.body, '$.TxnDate') AS pay_date,
                   json_extract(lt.value, '$.TxnType') AS doc_entity,
                   CAST(json_extract(lt.value, '$.TxnId') AS INTEGER) AS doc_id,
                   CAST(json_extract(l.value, '$.Amount') AS REAL) AS applied
            FROM objects o, json_each(o.body, '$.Line') l, json_each(l.value, '$.LinkedTxn') lt
            WHERE o.realm=? AND o.entity IN ({settlements}) AND o.status IS NOT 'Deleted'
              AND json_extract(o.body, '$.TxnDate') BETWEEN ? AND ?
              AND json_extract(lt.value, '$.TxnType') IN ({docs})
        ),
        ctrl AS (
            SELECT p.entity, p.txn_id, MIN(p.account_id) AS acct, MIN(p.customer_id) AS cu,
                   MIN(p.vendor_id) AS ve, SUM(p.amount) AS total
            FROM (SELECT DISTINCT doc_entity, doc_id FROM settle) d
            CROSS JOIN postings p ON p.realm=? AND p.entity = d.doc_entity AND p.txn_id = d.doc_id
            WHERE p.account_id IN ({marks})
            GROUP BY p.entity, p.txn_id
        ),
        legs AS MATERIALIZED (
            SELECT s.k, s.pay_date, p.account_id,
                   ROUND(p.amount * s.applied / ABS(c.total), 2) AS amount,
                   p.customer_id, p.vendor_id, c.acct, c.cu, c.ve
            -- CROSS JOIN keeps this order: few settlements drive primary-key lookups of postings
            FROM settle s
            CROSS JOIN ctrl c ON c.entity = s.doc_entity AND c.txn_id = s.doc_id
            CROSS JOIN postings p ON p.realm=? AND p.entity = s.doc_entity AND p.txn_id = s.doc_id
            WHERE c.total != 0 AND p.account_id NOT IN ({marks})
        ),
        ledger AS (
            SELECT txn_date, account_id, amount, customer_id, vendor_id FROM postings
            WHERE realm=? AND entity NOT IN ({docs}) AND txn_date BETWEEN ? AND ?
            UNION ALL
            SELECT pay_date, account_id, amount, customer_id, vendor_id FROM legs
            UNION ALL
            SELECT pay_date, acct, -SUM(amount), cu, ve FROM legs GROUP BY k
        ) """
        return sql, [self.realm, lo, hi, self.realm, *control, self.realm, *control, self.realm, lo, hi]

    def _filters(self) -> tuple[str, list[object]]:
        sql, args = "", []
        if self.customers is not None:
            sql += f" AND customer_id IN ({','.join('?' * len(self.customers)) or 'NULL'})"
            args += self.customers
        if self.vendors is not None:
            sql += f" AND vendor_id IN ({','.join('?' * len(self.vendors)) or 'NULL'})"
            args += self.vendors
        return sql, args

    def daily(self, start: date | None, end: date, opening_before: date | None = None, filtered: bool = False
              ) -> dict[int, list[tuple[str, int]]]:
        """Net posted cents per account and day in [start, end].

        With ``opening_before``, every day earlier than it is folded into one ``""`` day (the
        opening balance), so as-of reports stay a few rows per account.
        """
        prefix, args = self._ledger(start, end)
        day = "txn_date" if opening_before is None else "CASE WHEN txn_date < ? THEN '' ELSE txn_date END"
        sql = f"{prefix} SELECT account_id, {day} AS d, ROUND(SUM(amount), 2) FROM ledger WHERE txn_date <= ?"
        args = [*args, *([opening_before.isoformat()] if opening_before else []), end.isoformat()]
        if start is not None:
            sql += " AND txn_date >= ?"
            args.append(start.isoformat())
        extra, extra_args = self._filters() if filtered else ("", [])
        sql += extra + " GROUP BY account_id, d ORDER BY d"
        out: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for account_id, d, amount in self.conn.execute(sql, [*args, *extra_args]):
            out[int(account_id)].append((d, _to_cents(amount)))
        return out

    # --- rendering --------------------------------------------------------------------
    def base_header(self, extra: dict | None = None) -> dict:
        header: dict = {"Time": qbo_timestamp(self.emu.clock.timestamp(), self.tz), "ReportName": self.name}
        if self.date_macro_echo:
            header["DateMacro"] = self.date_macro_echo
        header.update(extra or {})
        return header

    def finish_header(self, header: dict, no_data: bool, report_date: date | None = None) -> dict:
        header["Currency"] = "USD"
        if self.customers is not None and self.params.get("customer"):
            header["Customer"] = self.params["customer"]
        if self.vendors is not None and self.params.get("vendor"):
            header["Vendor"] = self.params["vendor"]
        options = []
        if report_date is not None:
            options.append({"Name": "report_date", "Value": report_date.isoformat()})
        else:
            options.append({"Name": "AccountingStandard", "Value": "GAAP"})
        options.append({"Name": "NoReportData", "Value": "true" if no_data else "false"})
        header["Option"] = options
        return header

    def account_rows(self, accounts: list[_Account], values: dict[int, Cells], width: int,
                     label: str = "name") -> tuple[list[dict], Cells]:
        """Data rows (sub-accounts nested in sections, as QBO shows them) and their total."""
        ids = {a.id for a in accounts}
        children: dict[int | None, list[_Account]] = defaultdict(list)
        for a in accounts:
            children[a.parent if a.parent in ids else None].append(a)

        def shown(a: _Account) -> bool:
            return a.id in values or any(shown(c) for c in children[a.id])

        def render(a: _Account) -> tuple[dict, Cells]:
            own = values.get(a.id)
            kids = [render(c) for c in sorted(children[a.id], key=lambda x: x.name.lower()) if shown(c)]
            text = a.fqn if label == "fqn" else a.name
            if not kids:
                return {"ColData": _coldata(text, own or [None] * width, a.id), "type": "Data"}, own or [None] * width
            rows = [r for r, _ in kids]
            cells = [c for _, c in kids]
            if own is not None:
                rows.insert(0, {"ColData": _coldata(text, own, a.id), "type": "Data"})
                cells.append(own)
            total = _sum_cells(cells, width)
            return {"Header": _header(a.name, width, a.id), "Rows": {"Row": rows},
                    "Summary": {"ColData": _coldata(f"Total {a.name}", total)}, "type": "Section"}, total

        rendered = [render(a) for a in sorted(children[None], key=lambda x: x.name.lower()) if shown(a)]
        return [r for r, _ in rendered], _sum_cells([c for _, c in rendered], width)


def _section(group: str, label: str, rows: list[dict], total: Cells, width: int, summary: str | None = None,
             empty_total: bool = True) -> dict:
    """A titled section; an empty one keeps its Header and a 0.00 Total (as QBO's empty P&L)."""
    out: dict = {"Header": _header(label, width)}
    if rows:
        out["Rows"] = {"Row": rows}
        cells = total
    else:
        cells = [None] * (width - 1) + [0] if empty_total else [None] * width
    out["Summary"] = {"ColData": _coldata(summary or f"Total {label}", cells)}
    out["type"] = "Section"
    out["group"] = group
    return out


def _summary_only(group: str, label: str, cells: list[int]) -> dict:
    return {"Summary": {"ColData": _coldata(label, list(cells))}, "type": "Section", "group": group}


def _money_columns(periods: list[_Period], total_title: str | None = "Total") -> list[dict]:
    cols = []
    for p in periods:
        cols.append({"ColTitle": p.title, "ColType": "Money", "MetaData": [
            {"Name": "StartDate", "Value": p.start.isoformat()},
            {"Name": "EndDate", "Value": p.end.isoformat()},
            {"Name": "ColKey", "Value": p.title}]})
    if total_title is not None:
        cols.append({"ColTitle": total_title, "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "total"}]})
    return cols


def _account_column() -> dict:
    return {"ColTitle": "", "ColType": "Account", "MetaData": [{"Name": "ColKey", "Value": "account"}]}


# --- ProfitAndLoss --------------------------------------------------------------------


def _pl_cells(r: _Report, start: date, end: date, periods: list[_Period]) -> dict[int, Cells]:
    """Per P&L account: one cell per period plus the total, in the statement's sign."""
    daily = r.daily(start, end, filtered=True)
    width = len(periods) + 1
    out: dict[int, Cells] = {}
    for account_id, days in daily.items():
        acc = r.account(account_id)
        group = _PL_GROUP.get(acc.type)
        if group is None:
            continue
        sign = -1 if group in _CREDIT_NORMAL_PL else 1
        cells: Cells = [None] * width
        for d, cents in days:
            day = date.fromisoformat(d)
            for i, p in enumerate(periods):
                if p.start <= day <= p.end:
                    cells[i] = _add(cells[i], sign * cents)
                    break
            cells[-1] = _add(cells[-1], sign * cents)
        out[account_id] = cells
    return out


def profit_and_loss(r: _Report) -> dict:
    start, end = r.date_range()
    by, periods = r.periods(start, end)
    width = len(periods) + 1
    values = _pl_cells(r, start, end, periods)
    groups: dict[str, tuple[list[dict], Cells]] = {}
    for group in _PL_GROUP.values():
        members = [a for a in r.accounts.values() if _PL_GROUP.get(a.type) == group]
        groups[group] = r.account_rows(members, {a.id: values[a.id] for a in members if a.id in values}, width)

    def tot(group: str) -> list[int]:
        return _zero(groups[group][1])

    gross = [a - b for a, b in zip(tot("Income"), tot("COGS"), strict=True)]
    operating = [a - b for a, b in zip(gross, tot("Expenses"), strict=True)]
    other = [a - b for a, b in zip(tot("OtherIncome"), tot("OtherExpenses"), strict=True)]
    net = [a + b for a, b in zip(operating, other, strict=True)]
    rows = [_section("Income", "Income", *groups["Income"], width)]
    if groups["COGS"][0]:
        rows.append(_section("COGS", "Cost of Goods Sold", *groups["COGS"], width))
    rows.append(_summary_only("GrossProfit", "Gross Profit", gross))
    rows.append(_section("Expenses", "Expenses", *groups["Expenses"], width))
    rows.append(_summary_only("NetOperatingIncome", "Net Operating Income", operating))
    has_other = bool(groups["OtherIncome"][0] or groups["OtherExpenses"][0])
    if groups["OtherIncome"][0]:
        rows.append(_section("OtherIncome", "Other Income", *groups["OtherIncome"], width))
    if groups["OtherExpenses"][0]:
        rows.append(_section("OtherExpenses", "Other Expenses", *groups["OtherExpenses"], width))
    if has_other:
        rows.append(_summary_only("NetOtherIncome", "Net Other Income", other))
    rows.append(_summary_only("NetIncome", "Net Income", net))
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": by})
    return {"Header": r.finish_header(header, no_data=not values),
            "Columns": {"Column": [_account_column(), *_money_columns(periods)]},
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


def _position(r: _Report, ends: list[date], start: date) -> _Position:
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
        is_pl = acc.type in _PL_GROUP
        cells: Cells = [None] * width
        ytd: Cells = [None] * width
        for d, cents in days:
            for i, e in enumerate(ends):
                if d == "" or date.fromisoformat(d) <= e:
                    cells[i] = _add(cells[i], cents)
                    if is_pl and d != "" and date.fromisoformat(d) >= r.fy_start(e):
                        ytd[i] = _add(ytd[i], cents)
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


def balance_sheet(r: _Report) -> dict:
    start, end = r.date_range()
    by, periods = r.periods(start, end)
    ends = [p.end for p in periods] or [end]
    width = len(ends)
    pos = _position(r, ends, start)

    def group_rows(group: str) -> tuple[list[dict], Cells]:
        members = [a for a in r.accounts.values() if _BS_GROUP.get(a.type) == group]
        return r.account_rows(members, {a.id: pos.balances[a.id] for a in members if a.id in pos.balances}, width)

    def nest(group: str, parts: list[dict], totals: list[Cells]) -> tuple[dict | None, Cells]:
        if not parts:
            return None, [None] * width
        total = _sum_cells(totals, width)
        return _section(group, _LABELS[group], parts, total, width), total

    def leaf(group: str) -> tuple[dict | None, Cells]:
        rows, total = group_rows(group)
        return (_section(group, _LABELS[group], rows, total, width), total) if rows else (None, [None] * width)

    def combine(group: str, children: list[tuple[dict | None, Cells]]) -> tuple[dict | None, Cells]:
        present = [c for c in children if c[0] is not None]
        return nest(group, [s for s, _ in present], [t for _, t in present])

    current_assets = combine("CurrentAssets", [leaf("BankAccounts"), leaf("AR"), leaf("OtherCurrentAssets")])
    assets = [s for s in (current_assets, leaf("FixedAssets"), leaf("OtherAssets")) if s[0] is not None]
    total_assets = _zero(_sum_cells([t for _, t in assets], width))
    current_liab = combine("CurrentLiabilities", [leaf("AP"), leaf("CreditCards"), leaf("OtherCurrentLiabilities")])
    liabilities = combine("Liabilities", [current_liab, leaf("LongTermLiabilities")])

    re_id = next((a.id for a in r.accounts.values() if a.subtype == "RetainedEarnings"), chart.RETAINED_EARNINGS)
    equity_rows, equity_total = group_rows("Equity")
    retained = [c if c != 0 else None for c in pos.retained]
    equity_rows.append({"ColData": _coldata(r.account(re_id).name, retained, re_id), "type": "Data"})
    equity_rows.append({"ColData": _coldata("Net Income", list(pos.net_income)), "type": "Data", "group": "NetIncome"})
    equity_total = [a + b + c for a, b, c in zip(_zero(equity_total), pos.retained, pos.net_income, strict=True)]
    equity = _section("Equity", "Equity", equity_rows, list(equity_total), width)
    liab_total = _zero(liabilities[1])
    total_le = [a + b for a, b in zip(liab_total, equity_total, strict=True)]

    asset_section = {"Header": _header("ASSETS", width)}
    if assets:
        asset_section["Rows"] = {"Row": [s for s, _ in assets]}
    asset_section.update({"Summary": {"ColData": _coldata("TOTAL ASSETS", list(total_assets))},
                          "type": "Section", "group": "TotalAssets"})
    le_rows = ([liabilities[0]] if liabilities[0] is not None else []) + [equity]
    le_section = {"Header": _header("LIABILITIES AND EQUITY", width), "Rows": {"Row": le_rows},
                  "Summary": {"ColData": _coldata("TOTAL LIABILITIES AND EQUITY", list(total_le))},
                  "type": "Section", "group": "TotalLiabilitiesAndEquity"}
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": by})
    columns = [_account_column(), *(_money_columns(periods, None) if periods else _money_columns([], "TOTAL"))]
    return {"Header": r.finish_header(header, no_data=not pos.any_data),
            "Columns": {"Column": columns},
            "Rows": {"Row": [asset_section, le_section]}}


def trial_balance(r: _Report) -> dict:
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
                     key=lambda a: (_TYPE_ORDER.get(a.type, 99), a.fqn.lower()))
    for acc in ordered:
        v = debit_net[acc.id]
        debits += max(v, 0)
        credits += max(-v, 0)
        rows.append({"ColData": _coldata(acc.fqn or acc.name, [v if v > 0 else None, -v if v < 0 else None], acc.id),
                     "type": "Data"})
    rows.append({"Summary": {"ColData": _coldata("TOTAL", [debits, credits])}, "type": "Section", "group": "GrandTotal"})
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat(),
                            "SummarizeColumnsBy": "Total"})
    columns = [_account_column(),
               {"ColTitle": "Debit", "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "Debit"}]},
               {"ColTitle": "Credit", "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "Credit"}]}]
    return {"Header": r.finish_header(header, no_data=not pos.any_data),
            "Columns": {"Column": columns}, "Rows": {"Row": rows}}


# --- AgedReceivables and CustomerBalance ----------------------------------------------


def _customer_names(r: _Report, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = r.conn.execute(
        "SELECT id, json_extract(body, '$.DisplayName') FROM objects WHERE realm=? AND entity='Customer'"
        " AND id IN (SELECT value FROM json_each(?))",
        (r.realm, "[" + ",".join(str(i) for i in ids) + "]"),
    )
    names = {int(i): n for i, n in rows if n is not None}
    return {i: names.get(i, f"Customer {i}") for i in ids}


@dataclass(frozen=True)
class _Receivables:
    """SQL fragments over a customer's open A/R documents, from the registry.

    Charges (invoices) are open for their Balance and age from their DueDate; credits (credit
    memos: what remains of them) and unapplied payments count against the customer at age 0.
    """

    entities: str
    open_amount: str
    credits: str
    journals: str


@cache
def _receivables() -> _Receivables:
    party = chart.SUBLEDGERS["Accounts Receivable"]
    documents: list[EntityDef] = [e for e in entities.open_documents() if e.party == party]
    settlement = entities.settlement_of(party)
    cases = []
    for doc in documents:
        balance = f"json_extract(body, '$.{doc.balance_field}')"
        if doc.party_sign > 0:
            cases.append(f"WHEN '{doc.name}' THEN {balance}")
        else:
            cases.append(f"WHEN '{doc.name}' THEN -COALESCE(json_extract(body, '$.RemainingCredit'), {balance}, 0)")
    credits = [d.name for d in documents if d.party_sign < 0]
    names = [d.name for d in documents]
    if settlement is not None:
        names.append(settlement.name)
        credits.append(settlement.name)
    return _Receivables(
        entities=_sql_names(names),
        open_amount=f"CASE entity {' '.join(cases)} ELSE -COALESCE(json_extract(body, '$.UnappliedAmt'), 0) END",
        credits=_sql_names(credits),
        journals=_sql_names(e.name for e in registry.with_lines(Lines.JOURNAL)),
    )


def _sql_names(names: Iterable[str]) -> str:
    """Entity names as a SQL ``IN`` list (``'Invoice','CreditMemo'``; ``NULL`` when empty)."""
    return ",".join(f"'{n}'" for n in names) or "NULL"


def aged_receivables(r: _Report) -> dict:
    as_of = r.report_date()
    method = r.params.get("aging_method", "Report_Date")
    if method.lower() not in ("report_date", "current"):
        raise _bad_param("aging_method", f"'{method}' (use Report_Date or Current)")
    age_from = r.today if method.lower() == "current" else as_of
    cust_sql, cust_args = "", []
    if r.customers is not None:
        cust_sql = f" AND cid IN ({','.join('?' * len(r.customers)) or 'NULL'})"
        cust_args = list(r.customers)
    ar_ids = r.ids_of_type("Accounts Receivable") or [chart.ACCOUNTS_RECEIVABLE]
    marks = ",".join("?" * len(ar_ids))
    # Open documents straight from their stored bodies (Balance, DueDate), aggregated in SQL;
    # A/R journal-entry lines have no Balance field, so they come from the ledger.
    receivables = _receivables()
    sql = f"""
    WITH docs AS (
        SELECT CAST(json_extract(body, '$.CustomerRef.value') AS INTEGER) AS cid,
               COALESCE(json_extract(body, '$.DueDate'), json_extract(body, '$.TxnDate')) AS due,
               {receivables.open_amount} AS open,
               entity
        FROM objects
        WHERE realm=? AND entity IN ({receivables.entities}) AND status IS NOT 'Deleted'
          AND json_extract(body, '$.TxnDate') <= ?
        UNION ALL
        SELECT customer_id, txn_date, amount, entity FROM postings
        WHERE realm=? AND entity IN ({receivables.journals}) AND account_id IN ({marks}) AND txn_date <= ?
          AND customer_id IS NOT NULL
    )
    SELECT cid,
           CASE WHEN entity IN ({receivables.credits}) THEN 0
                ELSE CAST(julianday(?) - julianday(due) AS INTEGER) END AS age,
           ROUND(SUM(open), 2)
    FROM docs WHERE open IS NOT NULL AND open != 0 AND cid IS NOT NULL {cust_sql}
    GROUP BY cid, age
    """
    args = [r.realm, as_of.isoformat(), r.realm, *ar_ids, as_of.isoformat(), age_from.isoformat(), *cust_args]
    per: dict[int, list[int]] = defaultdict(lambda: [0] * 5)
    for cid, age, amount in r.conn.execute(sql, args):
        bucket = 0 if age <= 0 else 1 if age <= 30 else 2 if age <= 60 else 3 if age <= 90 else 4
        per[int(cid)][bucket] += _to_cents(amount)
    per = {c: v for c, v in per.items() if any(v)}
    names = _customer_names(r, list(per))
    rows = []
    totals = [0] * 6
    for cid in sorted(per, key=lambda c: (names[c].lower(), c)):
        cells = [*per[cid], sum(per[cid])]
        totals = [a + b for a, b in zip(totals, cells, strict=True)]
        rows.append({"ColData": _coldata(names[cid], [c if c != 0 else None for c in cells], cid)})
    rows.append({"Summary": {"ColData": _coldata("TOTAL", list(totals))}, "type": "Section", "group": "GrandTotal"})
    header = r.base_header({"StartPeriod": as_of.isoformat(), "EndPeriod": as_of.isoformat()})
    columns = [{"ColTitle": "", "ColType": "Customer", "MetaData": [{"Name": "ColKey", "Value": "customer"}]}]
    columns += [{"ColTitle": t, "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": k}]}
                for t, k in (*_AGING_COLUMNS, ("Total", "total"))]
    return {"Header": r.finish_header(header, no_data=not per, report_date=as_of),
            "Columns": {"Column": columns}, "Rows": {"Row": rows}}


def customer_balance(r: _Report) -> dict:
    as_of = r.report_date()
    if r.date_macro_echo is None:
        r.date_macro_echo = "all"
    ar_ids = r.ids_of_type("Accounts Receivable") or [chart.ACCOUNTS_RECEIVABLE]
    sql = (f"SELECT customer_id, ROUND(SUM(amount), 2) FROM postings WHERE realm=? "
           f"AND account_id IN ({','.join('?' * len(ar_ids))}) AND txn_date <= ? AND customer_id IS NOT NULL")
    args: list[object] = [r.realm, *ar_ids, as_of.isoformat()]
    if r.customers is not None:
        sql += f" AND customer_id IN ({','.join('?' * len(r.customers)) or 'NULL'})"
        args += r.customers
    balances = {int(c): _to_cents(v) for c, v in r.conn.execute(sql + " GROUP BY customer_id", args)}
    balances = {c: v for c, v in balances.items() if v != 0}
    names = _customer_names(r, list(balances))
    rows: list[dict] = [{"ColData": _coldata(names[c], [balances[c]], c)}
                        for c in sorted(balances, key=lambda c: (names[c].lower(), c))]
    rows.append({"Summary": {"ColData": _coldata("TOTAL", [sum(balances.values())])},
                 "type": "Section", "group": "GrandTotal"})
    return {"Header": r.finish_header(r.base_header(), no_data=not balances, report_date=as_of),
            "Columns": {"Column": [{"ColTitle": "", "ColType": "Customer",
                                    "MetaData": [{"Name": "ColKey", "Value": "customer"}]},
                                   {"ColTitle": "Total", "ColType": "Money",
                                    "MetaData": [{"Name": "ColKey", "Value": "total"}]}]},
            "Rows": {"Row": rows}}


_BUILDERS = {
    "ProfitAndLoss": profit_and_loss,
    "BalanceSheet": balance_sheet,
    "TrialBalance": trial_balance,
    "AgedReceivables": aged_receivables,
    "CustomerBalance": customer_balance,
}


def report(emu: Emulator, realm: str, name: str, params: dict[str, str]) -> dict:
    """Compute one report for a company, as ``GET /v3/company/{realm}/reports/{name}`` returns it.

    Args:
        emu: the emulator (database, clock, company time zone).
        realm: the company's realm Id.
        name: the report name from the URL (matched case-insensitively: ``ProfitAndLoss``...).
        params: the query parameters (start_date, end_date, date_macro, accounting_method,
            summarize_column_by, report_date, aging_method, customer, vendor).

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
        return _BUILDERS[canonical](_Report(emu, realm, canonical, params, conn))
