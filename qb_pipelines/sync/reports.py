"""QuickBooks reports, fetched per company and month and flattened into tidy rows.

QBO returns every report as one nested JSON tree (reference §8): ``Columns.Column[]`` describes
the columns, ``Rows.Row[]`` holds either ``Data`` rows (one ``ColData`` cell per column) or
``Section`` rows with an optional ``Header``, nested ``Rows`` and an optional ``Summary``, and
sections nest as deep as the chart of accounts does. Nobody can query that tree with SQL, so
:func:`flatten` turns it into one tidy row per (report row, value column): where the row sits
(section path, group), what it is (Data, Summary or Header, the account or customer id and
label), which column (key, title, period) and the value (exact ``Decimal`` amount and the raw
text QBO sent).

The report assets are partitioned by company and month; :func:`fetch_month` asks QBO for exactly
the month of a partition, accrual basis:

============== ==================================================================================
ProfitAndLoss  the month's activity (``start_date`` .. ``end_date``), one ``Month`` column + Total
BalanceSheet   the position as of month end, one ``Month`` column (as-of the column's EndDate)
TrialBalance   as of month end (QBO: balance-sheet accounts cumulative, P&L accounts fiscal YTD)
AgedReceivables open receivables aged as of month end (``report_date``)
CustomerBalance each customer's open balance as of month end (``report_date``)
AgedPayables   open payables aged as of month end (``report_date``)
VendorBalance  what is owed to each vendor as of month end (``report_date``)
GeneralLedger  every posting of the month, account by account, with beginning and running balances
============== ==================================================================================

GeneralLedger flattens like any report: its sections are accounts (the Header row carries the
account Id), its Data rows are postings whose first cell is the date, its value columns are the
other cells (``txn_type``, ``doc_num``... as text; ``subt_nat_amount``/``rbal_nat_amount`` as
amounts). :func:`ledger_activity` reads it back per account.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd

#: The reports landed per company and month, in the order the assets list them.
REPORTS: tuple[str, ...] = ("ProfitAndLoss", "BalanceSheet", "TrialBalance", "AgedReceivables", "CustomerBalance",
                           "AgedPayables", "VendorBalance", "GeneralLedger")

#: Columns of a flattened report, in order (the ``qbo_report_row`` table adds company/report/period).
COLUMNS: tuple[str, ...] = (
    "row_no",
    "section_path",
    "group",
    "row_type",
    "account_id",
    "label",
    "column_key",
    "column_title",
    "period_start",
    "period_end",
    "amount",
    "raw_value",
)

#: Separator between nested section names in ``section_path`` ("Income > Landscaping Services").
PATH_SEPARATOR = " > "

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ReportClient(Protocol):
    """What :func:`fetch_month` needs from a QBO client (``QBOClient.report`` fits)."""

    def report(self, name: str, **params: Any) -> dict: ...


@dataclass(frozen=True)
class Month:
    """A report partition's month: ``"2026-03"`` -> first and last day."""

    key: str
    start: date
    end: date


def parse_month(month: str) -> Month:
    """Validate a ``YYYY-MM`` partition key and return its first and last day.

    Raises:
        ValueError: when ``month`` is not ``YYYY-MM`` (the message shows the expected form).
    """
    match = _MONTH.match(month or "")
    if not match:
        raise ValueError(f"report month must look like 2026-03 (YYYY-MM), got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    return Month(month, date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1]))


def month_params(report: str, month: str) -> dict[str, str]:
    """The Reports API parameters that ask QBO for one month of ``report``.

    Accrual basis everywhere it applies (the agings have no basis parameter in QBO's
    reference, so none is sent). ProfitAndLoss and BalanceSheet are summarized by ``Month`` so
    their value column carries the period in its ``StartDate``/``EndDate`` metadata;
    GeneralLedger keeps QBO's default columns.

    Raises:
        ValueError: for a report not in :data:`REPORTS` or a malformed month.
    """
    m = parse_month(month)
    start, end = m.start.isoformat(), m.end.isoformat()
    period = {"start_date": start, "end_date": end, "accounting_method": "Accrual"}
    # BalanceSheet: start_date only shapes the column (one month); the figures are as of end_date.
    by_month = {**period, "summarize_column_by": "Month"}
    params = {
        "ProfitAndLoss": by_month,
        "BalanceSheet": by_month,
        "TrialBalance": period,
        "AgedReceivables": {"report_date": end},
        "CustomerBalance": {"report_date": end, "accounting_method": "Accrual"},
        "AgedPayables": {"report_date": end},
        "VendorBalance": {"report_date": end, "accounting_method": "Accrual"},
        "GeneralLedger": period,
    }
    if report not in params:
        raise ValueError(f"unknown report {report!r}; the reports landed are {', '.join(REPORTS)}")
    return dict(params[report])


def fetch_month(client: ReportClient, report: str, month: str) -> dict:
    """Fetch one report for one month of one company (one API call).

    Args:
        client: a QBO client for the company (``QBOClient``).
        report: one of :data:`REPORTS`.
        month: the partition, ``YYYY-MM``.

    Returns:
        The bare report object QBO returns (``{"Header", "Columns", "Rows"}``).
    """
    return client.report(report, **month_params(report, month))


# --- flattening ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    key: str
    title: str
    col_type: str
    start: date | None
    end: date | None


def _meta(items: Any) -> dict[str, str]:
    """QBO's ``[{"Name": ..., "Value": ...}]`` lists as a dict (MetaData, Option)."""
    out: dict[str, str] = {}
    for item in items or []:
        if isinstance(item, dict) and item.get("Name") is not None:
            out[str(item["Name"])] = "" if item.get("Value") is None else str(item["Value"])
    return out


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None


def unwrap(report_json: dict) -> dict:
    """The bare report object, also from wrappers (``{"report": {...}}`` samples, ``{"Report": ...}``)."""
    if not isinstance(report_json, dict):
        raise TypeError(f"a report is a JSON object, got {type(report_json).__name__}")
    for key in ("report", "Report"):
        inner = report_json.get(key)
        if isinstance(inner, dict) and ("Rows" in inner or "Header" in inner or "Columns" in inner):
            return inner
    return report_json


def _columns(report: dict) -> list[_Column]:
    header = report.get("Header") or {}
    options = _meta(header.get("Option"))
    # Columns without their own period (Total, TOTAL, aging buckets) cover the report's period;
    # as-of reports (aging, customer balance) only have a report date.
    default_start = _date(header.get("StartPeriod"))
    default_end = _date(header.get("EndPeriod")) or _date(options.get("report_date"))
    raw = ((report.get("Columns") or {}).get("Column")) or []
    out: list[_Column] = []
    seen: set[str] = set()
    for i, col in enumerate(raw):
        col = col if isinstance(col, dict) else {}
        meta = _meta(col.get("MetaData"))
        title = str(col.get("ColTitle") or "")
        key = meta.get("ColKey") or title or f"col{i}"
        if key in seen:  # keys are part of the table's primary key: keep them unique
            key = f"{key}#{i}"
        seen.add(key)
        start = _date(meta.get("StartDate"))
        end = _date(meta.get("EndDate"))
        if start is None and end is None:
            start, end = default_start, default_end
        out.append(_Column(key, title, str(col.get("ColType") or ""), start, end))
    return out


#: Detail reports' money columns by ColKey: older answers give them the key as ColType instead
#: of ``Money`` (the GeneralLedger reference sample), so the key decides too.
MONEY_KEYS = frozenset({"subt_nat_amount", "rbal_nat_amount", "debt_amt", "credit_amt", "nat_open_bal",
                        "subt_nat_amount_nt", "rbal_nat_amount_nt", "nat_amount"})


def _amount(text: str, col: _Column) -> Decimal | None:
    """A money cell as an exact Decimal; blanks and non-money columns give None."""
    if col.col_type not in ("Money", "") and col.key not in MONEY_KEYS and col.col_type not in MONEY_KEYS:
        return None
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _cells(row: dict | None) -> list[dict]:
    data = (row or {}).get("ColData") or []
    return [c if isinstance(c, dict) else {"value": c} for c in data]


def _child_rows(node: dict) -> list[dict]:
    rows = node.get("Rows")
    if isinstance(rows, dict):
        rows = rows.get("Row")
    return [r for r in (rows or []) if isinstance(r, dict)]


def _is_section(row: dict) -> bool:
    kind = row.get("type")
    if kind == "Section":
        return True
    if kind == "Data":
        return False
    # ``type`` is optional (AgedReceivables rows carry only ColData): shape decides.
    return "ColData" not in row and any(k in row for k in ("Header", "Rows", "Summary"))


def _walk(rows: list[dict], path: tuple[str, ...], group: str | None) -> Iterator[tuple[str, tuple[str, ...], str | None,
                                                                                      list[dict]]]:
    """Yield ``(row_type, section_path, group, cells)`` in document order."""
    for row in rows:
        if _is_section(row):
            own_group = row.get("group") or group
            header_cells = _cells(row.get("Header"))
            name = str(header_cells[0].get("value") or "").strip() if header_cells else ""
            if not name:
                # A summary-only section (Gross Profit, Net Income) is named by its summary label.
                summary_cells = _cells(row.get("Summary"))
                name = str(summary_cells[0].get("value") or "").strip() if summary_cells else ""
                name = name or str(row.get("group") or "")
            inner = (*path, name) if name else path
            if header_cells:
                yield "Header", inner, own_group, header_cells
            yield from _walk(_child_rows(row), inner, own_group)
            if row.get("Summary"):
                yield "Summary", inner, own_group, _cells(row.get("Summary"))
        else:
            yield "Data", path, row.get("group") or group, _cells(row)


def flatten(report_json: dict) -> pd.DataFrame:
    """Flatten a QBO report into a tidy DataFrame, one row per (report row, value column).

    Handles what real reports contain: sections nested to any depth (sub-accounts), sections that
    only have a Summary (Gross Profit, Net Income), rows without ``type``, empty strings for blank
    cells, empty reports (``NoReportData``) and columns without ``MetaData``.

    Args:
        report_json: the report as QBO returns it (also accepted wrapped in ``{"report": ...}``).

    Returns:
        A DataFrame with :data:`COLUMNS`:

        * ``row_no``: 1-based position of the report row (all its columns share it);
        * ``section_path``: the enclosing section names joined by ``" > "``
          (``"Income > Landscaping Services"``); a section's own Header/Summary rows include it;
        * ``group``: QBO's section group (``Income``, ``AR``, ``GrandTotal``...), inherited by
          nested sections that have none;
        * ``row_type``: ``Data``, ``Summary`` or ``Header``;
        * ``account_id`` / ``label``: the first cell's ``id`` (an account Id, or a customer Id in
          AgedReceivables and CustomerBalance) and text;
        * ``column_key`` / ``column_title``: the column's ``ColKey`` (its title, else ``colN``)
          and title;
        * ``period_start`` / ``period_end``: the column's ``StartDate``/``EndDate`` metadata,
          else the report's period (``report_date`` for as-of reports);
        * ``amount``: the money value as a ``Decimal`` (None for blanks and non-money columns);
        * ``raw_value``: the text QBO sent.

        ``df.attrs`` keeps the header: ``report_name``, ``no_report_data``, ``start_period``,
        ``end_period``, ``report_basis``, ``currency``.
    """
    import pandas as pd

    report = unwrap(report_json)
    header = report.get("Header") or {}
    options = _meta(header.get("Option"))
    columns = _columns(report)
    records: list[dict[str, Any]] = []
    for row_no, (row_type, path, group, cells) in enumerate(_walk(_child_rows(report), (), None), start=1):
        first = cells[0] if cells else {}
        label = "" if first.get("value") is None else str(first.get("value"))
        ident = first.get("id")
        # Only the value columns become rows; the first column is the row's label.
        width = max(len(columns), len(cells))
        for i in range(1, width):
            col = columns[i] if i < len(columns) else _Column(f"col{i}", "", "", None, None)
            raw = cells[i].get("value") if i < len(cells) else None
            raw_text = "" if raw is None else str(raw)
            records.append({
                "row_no": row_no,
                "section_path": PATH_SEPARATOR.join(path),
                "group": group,
                "row_type": row_type,
                "account_id": None if ident in (None, "") else str(ident),
                "label": label,
                "column_key": col.key,
                "column_title": col.title,
                "period_start": col.start,
                "period_end": col.end,
                "amount": _amount(raw_text, col),
                "raw_value": raw_text,
            })
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df["row_no"] = df["row_no"].astype("int64")
    df.attrs.update({
        "report_name": header.get("ReportName"),
        "no_report_data": options.get("NoReportData", "").lower() == "true",
        "start_period": header.get("StartPeriod"),
        "end_period": header.get("EndPeriod"),
        "report_basis": header.get("ReportBasis"),
        "currency": header.get("Currency"),
    })
    return df


# --- reading flattened reports --------------------------------------------------------------


def value_column(df: pd.DataFrame) -> str | None:
    """The key of the column that holds a report's whole-period figure.

    ``total`` when present (ProfitAndLoss, AgedReceivables, CustomerBalance), else the last
    value column (a one-month BalanceSheet's month column, TrialBalance's ``Credit``... callers
    of two-column reports choose explicitly).
    """
    if df.empty:
        return None
    keys = list(dict.fromkeys(df["column_key"]))
    for key in keys:
        if str(key).lower() == "total":
            return key
    return keys[-1]


def summary_amount(df: pd.DataFrame, group: str, column_key: str | None = None) -> Decimal | None:
    """The Summary amount of the section ``group`` (e.g. ``Income``, ``AR``, ``NetIncome``).

    Returns None when the report has no such section (QBO leaves out empty ones).
    """
    import pandas as pd

    column_key = column_key or value_column(df)
    rows = df[(df["group"] == group) & (df["row_type"] == "Summary") & (df["column_key"] == column_key)]
    if rows.empty:
        return None
    # The outermost section of that group (nested sections inherit the group): the last summary.
    value = rows.iloc[-1]["amount"]
    return Decimal("0") if value is None or pd.isna(value) else Decimal(value)


def data_amounts(df: pd.DataFrame, column_key: str | None = None) -> dict[str, Decimal]:
    """Amounts of the Data rows that carry an id, by id (accounts, or customers), summed."""
    import pandas as pd

    column_key = column_key or value_column(df)
    rows = df[(df["row_type"] == "Data") & df["account_id"].notna() & (df["column_key"] == column_key)]
    out: dict[str, Decimal] = {}
    for ident, value in zip(rows["account_id"], rows["amount"], strict=True):
        if value is None or pd.isna(value):
            continue
        out[str(ident)] = out.get(str(ident), Decimal("0")) + Decimal(value)
    return out


#: The label of a GeneralLedger section's first row: the balance the period starts from.
BEGINNING_BALANCE = "Beginning Balance"


@dataclass(frozen=True)
class LedgerAccount:
    """One account of a GeneralLedger, as its flattened rows give it (natural-sign amounts).

    Attributes:
        account_id: the Account Id of the section's Header.
        label: the account's name in the report.
        beginning: the Beginning Balance (its running-balance cell), None when the report has none.
        activity: the sum of the account's own posting rows (not its sub-accounts').
        postings: how many posting rows it has.
    """

    account_id: str
    label: str
    beginning: Decimal | None
    activity: Decimal
    postings: int


def ledger_activity(df: pd.DataFrame, amount_key: str = "subt_nat_amount",
                    balance_key: str = "rbal_nat_amount") -> dict[str, LedgerAccount]:
    """Per account of a flattened GeneralLedger: its beginning balance and the period's activity.

    Each Data row belongs to the account whose section encloses it (the Header row with the same
    ``section_path``); sub-accounts are sections of their own, so each account counts only its
    own rows.
    """
    import pandas as pd

    heads = df[(df["row_type"] == "Header") & df["account_id"].notna()]
    by_path = dict(zip(heads["section_path"], zip(heads["account_id"], heads["label"], strict=True), strict=True))
    begin: dict[str, Decimal | None] = {}
    activity: dict[str, Decimal] = {}
    count: dict[str, set[int]] = {}
    data = df[(df["row_type"] == "Data") & df["section_path"].isin(list(by_path))]
    for path, label, key, amount, row_no in zip(data["section_path"], data["label"], data["column_key"],
                                                data["amount"], data["row_no"], strict=True):
        ident = str(by_path[path][0])
        value = Decimal("0") if amount is None or pd.isna(amount) else Decimal(amount)
        if label == BEGINNING_BALANCE:
            if key == balance_key:
                begin[ident] = value
            continue
        if key == amount_key:
            activity[ident] = activity.get(ident, Decimal("0")) + value
            count.setdefault(ident, set()).add(int(row_no))
    return {str(ident): LedgerAccount(str(ident), str(label), begin.get(str(ident)),
                                      activity.get(str(ident), Decimal("0")), len(count.get(str(ident), ())))
            for ident, label in by_path.values()}
