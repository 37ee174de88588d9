"""What every emulated report shares: the request's parameters, the chart, SQL over the ledger, QBO's rendering.

:class:`Report` resolves one ``GET /reports/{name}`` request (dates, date macros, fiscal year,
accounting basis, customer and vendor filters), loads the company's accounts, aggregates the
``postings`` table in SQL (accrual, or cash with settled documents re-dated, see ``_ledger``) and
renders QBO's JSON pieces: headers with ``Option`` pairs, ``ColData`` cells (strings, two
decimals, ``""`` for blanks), titled sections and summaries, account rows with sub-accounts
nested. The statements (``reports``), the aging and balance reports (``report_aging``) and the
general ledger (``report_ledger``) are built from these.
"""

from __future__ import annotations

import calendar
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from qb_pipelines.emulator import chart, entities, faults
from qb_pipelines.emulator.clock import qbo_timestamp
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.ledger import OPEN_DOCUMENTS

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

BS_GROUP = {
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
PL_GROUP = {
    "Income": "Income",
    "Cost of Goods Sold": "COGS",
    "Expense": "Expenses",
    "Other Income": "OtherIncome",
    "Other Expense": "OtherExpenses",
}
# Fallback when an AccountType is unknown: place the account by its Classification.
BY_CLASSIFICATION = {
    "Asset": "Other Current Asset",
    "Liability": "Other Current Liability",
    "Equity": "Equity",
    "Revenue": "Income",
    "Expense": "Expense",
}
LABELS = {
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
TYPE_ORDER = {t: i for i, t in enumerate((*BS_GROUP, *PL_GROUP))}
CREDIT_NORMAL_PL = {"Income", "OtherIncome"}
MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
AGING_COLUMNS = (("Current", "current"), ("1 - 30", "0"), ("31 - 60", "1"), ("61 - 90", "2"),
                  ("91 and over", "3"))
SUMMARIZE = ("Total", "Days", "Week", "Month", "Quarter", "Year")
ENTITY_SUMMARIZE = ("Customers", "Vendors", "Classes", "Departments", "Employees", "ProductsAndServices")

Cells = list[int | None]  # money columns in cents; None renders as "" (no activity)


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    fqn: str
    type: str
    classification: str
    subtype: str
    parent: int | None


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    title: str


# --- small helpers --------------------------------------------------------------------


def money_text(cents: int | None) -> str:
    """QBO's report money text: two decimals, "" for a blank cell."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def to_cents(value: float | None) -> int:
    return round((value or 0.0) * 100)


def add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def sum_cells(rows: list[Cells], width: int) -> Cells:
    out: Cells = [None] * width
    for cells in rows:
        out = [add(x, y) for x, y in zip(out, cells, strict=True)]
    return out


def zero(cells: Cells) -> list[int]:
    return [c or 0 for c in cells]


def coldata(label: str, cells: Cells, ident: int | None = None) -> list[dict]:
    first: dict = {"value": label}
    if ident is not None:
        first["id"] = str(ident)
    return [first, *({"value": money_text(c)} for c in cells)]


def header_row(label: str, width: int, ident: int | None = None) -> dict:
    return {"ColData": coldata(label, [None] * width, ident)}


def bad_param(param: str, detail: str) -> faults.QBOFault:
    return faults.invalid_value(param, f"Invalid value for {param}: {detail}")


def parse_date(value: str, param: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise bad_param(param, f"'{value}' is not a date in the format YYYY-MM-DD") from None


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def short_date(d: date) -> str:
    return f"{calendar.month_abbr[d.month]} {d.day}"


# --- the report context ---------------------------------------------------------------


class Report:
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
            raise bad_param("accounting_method", f"'{basis}' (use Cash or Accrual)")
        self.basis = "Cash" if basis.lower() == "cash" else "Accrual"
        self.customers = self.id_list("customer")
        self.vendors = self.id_list("vendor")

    # --- parameters -------------------------------------------------------------------
    def id_list(self, param: str) -> list[int] | None:
        raw = self.params.get(param)
        if not raw:
            return None
        try:
            return [int(x) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise bad_param(param, f"'{raw}' is not a comma-separated list of Ids") from None

    def _fiscal_month(self) -> int:
        row = self.conn.execute(
            "SELECT body FROM objects WHERE realm=? AND entity='CompanyInfo' LIMIT 1", (self.realm,)
        ).fetchone()
        if row:
            month = str(loads(row[0]).get("FiscalYearStartMonth") or "January").lower()
            return MONTHS.get(month, 1)
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
            "this month": (month_start, month_end(t)),
            "this month-to-date": (month_start, t),
            "last month": (add_months(month_start, -1), month_start - timedelta(days=1)),
            "last month-to-date": (add_months(month_start, -1), add_months(t, -1)),
            "this quarter": (quarter_start, month_end(add_months(quarter_start, 2))),
            "this quarter-to-date": (quarter_start, t),
            "last quarter": (add_months(quarter_start, -3), quarter_start - timedelta(days=1)),
            "this year": (date(t.year, 1, 1), date(t.year, 12, 31)),
            "this year-to-date": (date(t.year, 1, 1), t),
            "last year": (date(t.year - 1, 1, 1), date(t.year - 1, 12, 31)),
            "last year-to-date": (date(t.year - 1, 1, 1), add_months(t, -12)),
            "this fiscal year": (fiscal, add_months(fiscal, 12) - timedelta(days=1)),
            "this fiscal year-to-date": (fiscal, t),
            "last fiscal year": (add_months(fiscal, -12), fiscal - timedelta(days=1)),
            "last fiscal year-to-date": (add_months(fiscal, -12), add_months(t, -12)),
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
            raise bad_param("date_macro", f"'{macro}' is not a supported date macro")
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
            end = parse_date(end_text, "end_date") if end_text else self.today
            start = parse_date(start_text, "start_date") if start_text else self.fy_start(end)
        elif self.params.get("date_macro"):
            start, end = self.macro_range(self.params["date_macro"])
        else:
            start, end = date(self.today.year, 1, 1), self.today
            self.date_macro_echo = "this calendar year-to-date"
        if start > end:
            raise bad_param("start_date", f"start_date {start} is after end_date {end}")
        return start, end

    def report_date(self) -> date:
        """The as-of date of the aging/balance reports: report_date, else the macro's end, else today."""
        if self.params.get("report_date"):
            return parse_date(self.params["report_date"], "report_date")
        if self.params.get("date_macro"):
            return self.macro_range(self.params["date_macro"])[1]
        return self.today

    def periods(self, start: date, end: date) -> tuple[str, list[Period]]:
        """The columns asked by summarize_column_by (empty list: a single Total column)."""
        raw = self.params.get("summarize_column_by", "Total")
        by = next((s for s in SUMMARIZE if s.lower() == raw.lower()), None)
        if by is None:
            if raw in ENTITY_SUMMARIZE:
                raise bad_param("summarize_column_by", f"'{raw}' is not supported by the emulator "
                                 f"(supported: {', '.join(SUMMARIZE)})")
            raise bad_param("summarize_column_by", f"'{raw}' (supported: {', '.join(SUMMARIZE)})")
        if by == "Total":
            return by, []
        out: list[Period] = []
        cursor = start
        while cursor <= end:
            if by == "Days":
                stop = cursor
                title = f"{short_date(cursor)}, {cursor.year}"
            elif by == "Week":
                stop = min(cursor + timedelta(days=(5 - cursor.weekday()) % 7), end)
                title = f"{short_date(cursor)} - {short_date(stop)}, {stop.year}"
            elif by == "Month":
                stop = min(month_end(cursor), end)
                title = f"{calendar.month_abbr[cursor.month]} {cursor.year}"
            elif by == "Quarter":
                q_end = month_end(date(cursor.year, (cursor.month - 1) // 3 * 3 + 3, 1))
                stop = min(q_end, end)
                first = calendar.month_abbr[(cursor.month - 1) // 3 * 3 + 1]
                title = f"{first} - {calendar.month_abbr[q_end.month]}, {cursor.year}"
            else:
                stop = min(date(cursor.year, 12, 31), end)
                title = str(cursor.year)
            out.append(Period(cursor, stop, title))
            cursor = stop + timedelta(days=1)
            if len(out) > 3660:
                raise bad_param("summarize_column_by", "too many columns for the date range")
        return by, out

    # --- accounts ---------------------------------------------------------------------
    def _load_accounts(self) -> dict[int, Account]:
        accounts: dict[int, Account] = {}
        for ident, body in self.conn.execute(
            "SELECT id, body FROM objects WHERE realm=? AND entity='Account' AND status IS NOT 'Deleted'",
            (self.realm,),
        ):
            b = loads(body)
            parent = (b.get("ParentRef") or {}).get("value") if b.get("SubAccount") else None
            classification = b.get("Classification") or "Asset"
            account_type = b.get("AccountType")
            if account_type not in TYPE_ORDER:
                # Every account must land in exactly one statement section, or totals would not tie.
                account_type = BY_CLASSIFICATION.get(classification, "Other Current Asset")
            accounts[int(ident)] = Account(
                int(ident), b.get("Name") or f"Account {ident}", b.get("FullyQualifiedName") or b.get("Name") or "",
                account_type, classification, b.get("AccountSubType") or "", int(parent) if parent else None,
            )
        # Postings written before (or without) the chart being stored still land somewhere sensible.
        for ident, name, classification, account_type, subtype in chart.ACCOUNTS:
            accounts.setdefault(ident, Account(ident, name, name, account_type, classification, subtype, None))
        return accounts

    def account(self, ident: int) -> Account:
        if ident not in self.accounts:
            self.accounts[ident] = Account(ident, f"Account {ident}", f"Account {ident}",
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
        docs = sql_names(OPEN_DOCUMENTS)
        settlements = sql_names(e.name for e in entities.settlements())
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

    def party_filters(self, prefix: str = "") -> tuple[str, list[object]]:
        """``AND`` clauses (and their arguments) of the ``customer``/``vendor`` filters over
        postings columns (``prefix`` qualifies them: ``"p."``)."""
        sql, args = "", []
        if self.customers is not None:
            sql += f" AND {prefix}customer_id IN ({','.join('?' * len(self.customers)) or 'NULL'})"
            args += self.customers
        if self.vendors is not None:
            sql += f" AND {prefix}vendor_id IN ({','.join('?' * len(self.vendors)) or 'NULL'})"
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
        extra, extra_args = self.party_filters() if filtered else ("", [])
        sql += extra + " GROUP BY account_id, d ORDER BY d"
        out: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for account_id, d, amount in self.conn.execute(sql, [*args, *extra_args]):
            out[int(account_id)].append((d, to_cents(amount)))
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

    def account_rows(self, accounts: list[Account], values: dict[int, Cells], width: int,
                     label: str = "name") -> tuple[list[dict], Cells]:
        """Data rows (sub-accounts nested in sections, as QBO shows them) and their total."""
        ids = {a.id for a in accounts}
        children: dict[int | None, list[Account]] = defaultdict(list)
        for a in accounts:
            children[a.parent if a.parent in ids else None].append(a)

        def shown(a: Account) -> bool:
            return a.id in values or any(shown(c) for c in children[a.id])

        def render(a: Account) -> tuple[dict, Cells]:
            own = values.get(a.id)
            kids = [render(c) for c in sorted(children[a.id], key=lambda x: x.name.lower()) if shown(c)]
            text = a.fqn if label == "fqn" else a.name
            if not kids:
                return {"ColData": coldata(text, own or [None] * width, a.id), "type": "Data"}, own or [None] * width
            rows = [r for r, _ in kids]
            cells = [c for _, c in kids]
            if own is not None:
                rows.insert(0, {"ColData": coldata(text, own, a.id), "type": "Data"})
                cells.append(own)
            total = sum_cells(cells, width)
            return {"Header": header_row(a.name, width, a.id), "Rows": {"Row": rows},
                    "Summary": {"ColData": coldata(f"Total {a.name}", total)}, "type": "Section"}, total

        rendered = [render(a) for a in sorted(children[None], key=lambda x: x.name.lower()) if shown(a)]
        return [r for r, _ in rendered], sum_cells([c for _, c in rendered], width)


def section(group: str, label: str, rows: list[dict], total: Cells, width: int, summary: str | None = None,
             empty_total: bool = True) -> dict:
    """A titled section; an empty one keeps its Header and a 0.00 Total (as QBO's empty P&L)."""
    out: dict = {"Header": header_row(label, width)}
    if rows:
        out["Rows"] = {"Row": rows}
        cells = total
    else:
        cells = [None] * (width - 1) + [0] if empty_total else [None] * width
    out["Summary"] = {"ColData": coldata(summary or f"Total {label}", cells)}
    out["type"] = "Section"
    out["group"] = group
    return out


def summary_only(group: str, label: str, cells: list[int]) -> dict:
    return {"Summary": {"ColData": coldata(label, list(cells))}, "type": "Section", "group": group}


def money_columns(periods: list[Period], total_title: str | None = "Total") -> list[dict]:
    cols = []
    for p in periods:
        cols.append({"ColTitle": p.title, "ColType": "Money", "MetaData": [
            {"Name": "StartDate", "Value": p.start.isoformat()},
            {"Name": "EndDate", "Value": p.end.isoformat()},
            {"Name": "ColKey", "Value": p.title}]})
    if total_title is not None:
        cols.append({"ColTitle": total_title, "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": "total"}]})
    return cols


def account_column() -> dict:
    return {"ColTitle": "", "ColType": "Account", "MetaData": [{"Name": "ColKey", "Value": "account"}]}


def sql_names(names: Iterable[str]) -> str:
    """Entity names as a SQL ``IN`` list (``'Invoice','CreditMemo'``; ``NULL`` when empty)."""
    return ",".join(f"'{n}'" for n in names) or "NULL"
