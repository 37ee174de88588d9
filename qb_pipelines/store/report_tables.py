"""The warehouse table of flattened QuickBooks reports, and its partition writer.

``qbo_report_row`` holds every landed report (ProfitAndLoss, BalanceSheet, TrialBalance,
AgedReceivables, CustomerBalance) as tidy rows, one per (report row, value column), so people
can query "Income by month" or "A/R per customer" with plain SQL. A report asset materializes
one partition = (company, report, month); a rerun must replace that partition whole, never mix
old and new rows, so :func:`replace_partition` deletes and inserts in one transaction: readers
see either the previous report or the new one.

The table has its own ``MetaData``; migration ``0003_reports`` creates it in deployed databases,
and :func:`create_tables` creates it directly for tests and throwaway databases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd

metadata = sa.MetaData()

#: One row per (company, report, month, report row, value column).
report_row = sa.Table(
    "qbo_report_row",
    metadata,
    sa.Column("company_key", sa.String(64), nullable=False, comment="the company partition (realm or tenant key)"),
    sa.Column("report", sa.String(40), nullable=False, comment="ProfitAndLoss, BalanceSheet, TrialBalance..."),
    sa.Column("period", sa.String(7), nullable=False, comment="the month partition, YYYY-MM"),
    sa.Column("row_no", sa.Integer, nullable=False, comment="1-based position of the row in the report"),
    sa.Column("section_path", sa.Text, nullable=False, default="",
              comment="enclosing sections, e.g. 'Income > Landscaping Services'"),
    sa.Column("group", sa.String(64), nullable=True, comment="QBO's section group: Income, AR, GrandTotal..."),
    sa.Column("row_type", sa.String(16), nullable=False, comment="Data, Summary or Header"),
    sa.Column("account_id", sa.String(64), nullable=True,
              comment="the first cell's id: an Account Id, or a Customer Id in customer reports"),
    sa.Column("label", sa.Text, nullable=False, default=""),
    sa.Column("column_key", sa.String(100), nullable=False, comment="ColKey (total, a month, Debit...)"),
    sa.Column("column_title", sa.Text, nullable=False, default=""),
    sa.Column("period_start", sa.Date, nullable=True),
    sa.Column("period_end", sa.Date, nullable=True),
    sa.Column("amount", sa.Numeric(18, 2), nullable=True, comment="money value; NULL for a blank cell"),
    sa.Column("raw_value", sa.Text, nullable=False, default="", comment="the text QBO sent"),
    sa.PrimaryKeyConstraint("company_key", "report", "period", "row_no", "column_key", name="pk_qbo_report_row"),
)

#: Columns a flattened DataFrame must provide (``sync.reports.COLUMNS``).
ROW_COLUMNS: tuple[str, ...] = (
    "row_no", "section_path", "group", "row_type", "account_id", "label", "column_key", "column_title",
    "period_start", "period_end", "amount", "raw_value",
)

_CENT = Decimal("0.01")
_INSERT_CHUNK = 2000


def create_tables(engine: Engine | Connection) -> None:
    """Create ``qbo_report_row`` when missing (tests; deployments run the migrations)."""
    metadata.create_all(engine, checkfirst=True)


def _missing(value: Any) -> bool:
    import pandas as pd

    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (str, bytes, Decimal, date)) else False
    except (TypeError, ValueError):
        return False


def _clean(value: Any) -> Any:
    return None if _missing(value) else value


def _money(value: Any) -> Decimal | None:
    if _missing(value):
        return None
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _day(value: Any) -> date | None:
    import pandas as pd

    if _missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def rows_for(company_key: str, report: str, period: str, frame: pd.DataFrame | Iterable[Mapping[str, Any]]
             ) -> list[dict[str, Any]]:
    """Table rows for one partition from a flattened report (NaN/NaT become NULL)."""
    import pandas as pd

    records = frame.to_dict("records") if isinstance(frame, pd.DataFrame) else list(frame)
    out = []
    for rec in records:
        missing = [c for c in ROW_COLUMNS if c not in rec]
        if missing:
            raise ValueError(f"flattened report rows lack {missing}; use sync.reports.flatten() to build them")
        out.append({
            "company_key": company_key,
            "report": report,
            "period": period,
            "row_no": int(rec["row_no"]),
            "section_path": _clean(rec["section_path"]) or "",
            "group": _clean(rec["group"]),
            "row_type": _clean(rec["row_type"]),
            "account_id": None if _missing(rec["account_id"]) else str(rec["account_id"]),
            "label": _clean(rec["label"]) or "",
            "column_key": str(rec["column_key"]),
            "column_title": _clean(rec["column_title"]) or "",
            "period_start": _day(rec["period_start"]),
            "period_end": _day(rec["period_end"]),
            "amount": _money(rec["amount"]),
            "raw_value": _clean(rec["raw_value"]) or "",
        })
    return out


def replace_partition(engine: Engine, company_key: str, report: str, period: str,
                      frame: pd.DataFrame | Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Replace one (company, report, month) partition with a freshly flattened report, atomically.

    The delete and the inserts run in one transaction: a failure leaves the previous report in
    place, and a concurrent reader never sees a half-written month.

    Args:
        engine: the warehouse engine.
        company_key: the company partition key.
        report: report name (``ProfitAndLoss``...).
        period: the month, ``YYYY-MM``.
        frame: the output of ``sync.reports.flatten`` (or equivalent records).

    Returns:
        ``{"deleted": n, "inserted": m}`` for the materialization's metadata.
    """
    rows = rows_for(company_key, report, period, frame)
    key = ((report_row.c.company_key == company_key) & (report_row.c.report == report)
           & (report_row.c.period == period))
    with engine.begin() as conn:
        deleted = conn.execute(sa.delete(report_row).where(key)).rowcount or 0
        for i in range(0, len(rows), _INSERT_CHUNK):
            conn.execute(sa.insert(report_row), rows[i:i + _INSERT_CHUNK])
    return {"deleted": int(deleted), "inserted": len(rows)}


def read_partition(engine: Engine | Connection, company_key: str, report: str, period: str) -> pd.DataFrame:
    """One landed partition as a DataFrame shaped like ``sync.reports.flatten``'s output.

    Amounts come back as ``Decimal``; rows are in report order.
    """
    query = (sa.select(*(report_row.c[c] for c in ROW_COLUMNS))
             .where(report_row.c.company_key == company_key, report_row.c.report == report,
                    report_row.c.period == period)
             .order_by(report_row.c.row_no, report_row.c.column_key))

    import pandas as pd

    def run(conn: Connection) -> pd.DataFrame:
        result = conn.execute(query)
        return pd.DataFrame([dict(r._mapping) for r in result], columns=list(ROW_COLUMNS))

    if isinstance(engine, Connection):
        df = run(engine)
    else:
        with engine.connect() as conn:
            df = run(conn)
    df["amount"] = [None if _missing(v) else Decimal(str(v)).quantize(_CENT) for v in df["amount"]]
    return df


def periods(engine: Engine | Connection, company_key: str, report: str | None = None) -> list[str]:
    """The months already landed for a company (optionally one report), ascending."""
    query = sa.select(report_row.c.period).distinct().where(report_row.c.company_key == company_key)
    if report is not None:
        query = query.where(report_row.c.report == report)
    query = query.order_by(report_row.c.period)
    if isinstance(engine, Connection):
        return [r[0] for r in engine.execute(query)]
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]
