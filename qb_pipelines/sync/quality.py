"""Data-quality suites on the landed tables, run with Great Expectations (GX Core 1.x).

One suite per entity, run on one company partition of its warehouse table
(``run_suite(engine, entity, company_key)``); the Dagster layer surfaces it as an asset check.
What the suite expects, and why each expectation matters to the people who use the tables:

* **keys not null**: ``company_key`` and ``id`` (every join and every upsert depends on them);
* **``(company_key, id)`` unique** (``ExpectCompoundColumnsToBeUnique``): one row per object,
  or sums double count;
* **valid dates** (transactions): ``txn_date`` present and a real ``YYYY-MM-DD`` date, and so
  are ``due_date``/``expiration_date`` when set -- report months are derived from them;
* **currency codes**: ``currency`` is three capital letters (ISO 4217, as QBO's CurrencyRef);
* **line amounts that add up to the totals** (transactions with lines): per transaction, the
  total computed from the landed line rows must equal ``total_amt`` within half a cent, by the
  registry's line family:

  - sales (invoices, estimates, sales receipts, credit memos, refund receipts): item and bundle
    lines, less discount lines, plus ``TxnTaxDetail.TotalTax`` (SubTotal lines are ignored);
  - expense (bills, vendor credits, purchases): expense lines plus tax;
  - deposit: all lines less cash back;
  - links (payments, bill payments): the amounts applied (credits applied, such as credit memos
    and vendor credits, count negative) plus ``UnappliedAmt``;
  - journal: debits equal credits (the difference must be 0).

The partition is read with only the columns the suite needs (the raw JSON only through SQL JSON
paths for tax and cash back), and line sums are aggregated in SQL, so even a company of a million
invoices is a few columns per row in memory. Failing expectations report the first
:data:`MAX_UNEXPECTED` unexpected values with the ids they belong to.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import Lines
from qb_pipelines.store import warehouse
from qb_pipelines.sync.reconcile import CheckOutcome, WarehouseTable, full_refresh_fix
from qb_pipelines.sync.reconcile.landed import connect

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd

#: How many unexpected values (with their ids) a failed expectation reports.
MAX_UNEXPECTED = 20
#: Line sums may differ from totals by rounding only: less than half a cent.
AMOUNT_TOLERANCE = 0.005
CURRENCY_REGEX = r"^[A-Z]{3}$"
DATE_FORMAT = "%Y-%m-%d"

_SALES_ADD = ("SalesItemLineDetail", "GroupLineDetail")
_SALES_SUBTRACT = ("DiscountLineDetail",)
_EXPENSE_ADD = ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail")
#: What the header adds to a transaction's lines to make its total, by line family: tax on sales
#: and expenses, cash back taken out of a deposit, the amount a payment leaves unapplied.
_HEADER_PART: dict[Lines, tuple[str, int]] = {
    Lines.SALES: ("total_tax", 1),
    Lines.EXPENSE: ("total_tax", 1),
    Lines.DEPOSIT: ("cash_back", -1),
    Lines.LINKS: ("unapplied", 1),
}

_lock = threading.Lock()
_gx_state: dict[str, Any] = {}


# =============================================================================================
# Great Expectations plumbing
# =============================================================================================


def _context() -> tuple[Any, Any]:
    """One ephemeral GX context per process (creating one costs ~100 ms; importing GX ~3 s,
    which is why GX is imported here and not at module import)."""
    if "context" not in _gx_state:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        # In memory, no usage statistics sent anywhere, no progress bars in run logs.
        config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                                   progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
        context = gx.get_context(mode="ephemeral", project_config=config)
        _gx_state["context"] = context
        _gx_state["source"] = context.data_sources.add_pandas("qbo_warehouse")
    return _gx_state["context"], _gx_state["source"]


def _batch_definition(asset_name: str) -> Any:
    _, source = _context()
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def build_suite(entity: str, columns: set[str]) -> Any:
    """The expectation suite of ``entity`` for a frame with ``columns`` (see module docstring)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    _context()  # GX suites need an active context
    ent = registry.get(entity)
    suite = gx.ExpectationSuite(name=f"qbo_{warehouse.snake(ent.name)}_quality")
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="company_key"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="id"))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["company_key", "id"]))
    if ent.is_transaction and "txn_date" in columns:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="txn_date"))
    for column in ("txn_date", "due_date", "expiration_date"):
        if column in columns:
            suite.add_expectation(gxe.ExpectColumnValuesToMatchStrftimeFormat(column=column,
                                                                              strftime_format=DATE_FORMAT))
    if "currency" in columns:
        suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="currency", regex=CURRENCY_REGEX))
    if "line_total_difference" in columns:
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(
            column="line_total_difference", min_value=-AMOUNT_TOLERANCE, max_value=AMOUNT_TOLERANCE))
    return suite


def _plain(value: Any) -> Any:
    """GX results hold numpy scalars, NaN and Decimals: make them JSON-friendly."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and value != value:
        return None
    return value


def validate_frame(entity: str, frame: pd.DataFrame, company_key: str | None = None) -> CheckOutcome:
    """Run the entity's suite on a frame shaped like :func:`load_frame`'s output.

    Args:
        entity: the registry entity.
        frame: the rows to check (``company_key``, ``id``, dates, ``currency``,
            ``line_total_difference``...).
        company_key: the partition, for the fix message (default: the frame's first key).

    Returns:
        Passed when every expectation holds; otherwise ``mismatches`` lists each failed
        expectation's first unexpected values with their ids, and ``metadata["expectations"]``
        every expectation's outcome.
    """
    ent = registry.get(entity)
    company_key = company_key or (str(frame["company_key"].iloc[0]) if len(frame) else "?")
    with _lock:  # the shared context's assets are not safe to create concurrently
        suite = build_suite(ent.name, set(frame.columns))
        definition = _batch_definition(warehouse.table_name(ent))
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": ["id"],
            "partial_unexpected_count": MAX_UNEXPECTED, "return_unexpected_index_query": False})
    expectations: list[dict[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    for res in result.results:
        config = res.expectation_config
        kwargs = dict(config.kwargs)
        column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
        details = res.result or {}
        unexpected = int(details.get("unexpected_count") or 0)
        expectations.append({"expectation": config.type, "column": column, "success": bool(res.success),
                             "unexpected_count": unexpected})
        if res.success:
            continue
        index_list = details.get("unexpected_index_list") or []
        values = details.get("partial_unexpected_list") or details.get("unexpected_list") or []
        if index_list:
            for item in index_list[:MAX_UNEXPECTED]:
                item = dict(item)
                ident = item.pop("id", None)
                value = item.get(column, next(iter(item.values()), None)) if item else None
                mismatches.append({"expectation": config.type, "column": column, "id": _plain(ident),
                                   "value": _plain(value)})
        else:
            for value in values[:MAX_UNEXPECTED]:
                mismatches.append({"expectation": config.type, "column": column, "id": None, "value": _plain(value)})
        info = res.exception_info or {}
        raised = (info.get("raised_exception") if "raised_exception" in info
                  else any(isinstance(v, dict) and v.get("raised_exception") for v in info.values()))
        if raised:
            mismatches.append({"expectation": config.type, "column": column, "id": None,
                               "value": "the expectation raised an error", "detail": str(info)[:300]})
    failed = [e for e in expectations if not e["success"]]
    metadata = {"entity": ent.name, "rows": len(frame), "expectations": expectations,
                "failed_expectations": len(failed), "statistics": _plain(dict(result.statistics or {}))}
    ok = bool(result.success)
    text_failed = "; ".join(f"{e['expectation']}({e['column']}): {e['unexpected_count']} unexpected" for e in failed)
    return CheckOutcome(
        ok,
        f"{ent.name}: {len(frame)} rows meet all {len(expectations)} expectations" if ok
        else f"{ent.name}: {len(failed)} of {len(expectations)} expectations failed -- {text_failed}",
        metadata,
        mismatches[:MAX_UNEXPECTED],
        "" if ok else full_refresh_fix(company_key, [ent.name]),
    )


# =============================================================================================
# Loading a partition
# =============================================================================================


def _json_number(column: sa.ColumnElement, *path: str) -> sa.ColumnElement:
    """A number inside the raw JSON, extracted in SQL (PostgreSQL JSONB and SQLite JSON alike)."""
    return column[path].as_float()


def _credit_documents() -> tuple[str, ...]:
    """Documents a payment line *uses up* instead of paying: credits that lower their party's
    balance and keep an open balance of their own (credit memos, vendor credits)."""
    return tuple(e.name for e in registry.ENTITIES if e.party_sign < 0 and e.balance_field)


def _signed_amount(family: Lines, child: sa.Table) -> sa.ColumnElement | None:
    """What one landed line adds to its transaction's total, by line family (None: not checked)."""
    amount = sa.func.coalesce(child.c.amount, 0)
    if family is Lines.SALES:
        return sa.case((child.c.detail_type.in_(_SALES_ADD), amount),
                       (child.c.detail_type.in_(_SALES_SUBTRACT), -amount), else_=0)
    if family is Lines.EXPENSE:
        return sa.case((child.c.detail_type.in_(_EXPENSE_ADD), amount), else_=0)
    if family is Lines.DEPOSIT:
        # Every deposit line counts: deposited payments carry LinkedTxn and no DepositLineDetail.
        return amount
    if family is Lines.JOURNAL:
        return sa.case((child.c.posting_type == "Credit", -amount), (child.c.posting_type == "Debit", amount),
                       else_=0)
    return None


def _link_sums(child: sa.Table, company_key: str) -> sa.Select:
    """Per payment: the amounts its lines apply, credits used up counting negative.

    One link row per (line, linked txn), each repeating the line's Amount: take each line once.
    """
    amount = sa.func.coalesce(child.c.amount, 0)
    credit = sa.func.max(sa.case((child.c.linked_txn_type.in_(_credit_documents()), 1), else_=0))
    per_line = (sa.select(child.c.txn_id, child.c.line_no, sa.func.max(amount).label("amount"), credit.label("credit"))
                .where(child.c.company_key == company_key)
                .group_by(child.c.txn_id, child.c.line_no).subquery())
    signed = sa.case((per_line.c.credit == 1, -per_line.c.amount), else_=per_line.c.amount)
    return sa.select(per_line.c.txn_id, sa.func.sum(signed)).group_by(per_line.c.txn_id)


def _line_expectations(conn: Connection, ent: registry.EntityDef, child: sa.Table | None,
                       company_key: str) -> dict[str, float]:
    """Per transaction id: the total its landed lines add up to (dollars)."""
    if child is None:
        return {}
    if ent.lines is Lines.LINKS:
        query = _link_sums(child, company_key)
    else:
        signed = _signed_amount(ent.lines, child)
        if signed is None:
            return {}
        query = (sa.select(child.c.txn_id, sa.func.sum(signed))
                 .where(child.c.company_key == company_key).group_by(child.c.txn_id))
    return {str(i): float(v or 0) for i, v in conn.execute(query)}


def load_frame(engine: Engine | Connection, entity: str, company_key: str) -> pd.DataFrame:
    """One company's live rows of ``entity``, with the columns the suite checks.

    Columns: ``company_key``, ``id``, dates as text (``txn_date``, ``due_date``,
    ``expiration_date`` when the table has them), ``currency``, and for transactions with lines
    ``total_amt``, ``line_total`` and ``line_total_difference`` (rounded to the cent).
    """
    import pandas as pd

    ent = registry.get(entity)
    main, child = warehouse.tables_for(ent)
    names = {c.name for c in main.columns}
    cols: list[sa.ColumnElement] = [main.c.company_key, main.c.id]
    # Dates are read as text so a malformed value reaches the expectation instead of crashing the read.
    for column in ("txn_date", "due_date", "expiration_date"):
        if column in names:
            cols.append(sa.cast(main.c[column], sa.String).label(column))
    if "currency" in names:
        cols.append(main.c.currency)
    with_lines = ent.is_transaction and child is not None
    if with_lines:
        cols.append(main.c.total_amt if "total_amt" in names else sa.literal(None).label("total_amt"))
        cols.append(_json_number(main.c.raw, "TxnTaxDetail", "TotalTax").label("total_tax"))
        cols.append(_json_number(main.c.raw, "CashBack", "Amount").label("cash_back"))
        cols.append(_json_number(main.c.raw, "UnappliedAmt").label("unapplied"))
    with connect(engine) as conn:
        rows = conn.execute(sa.select(*cols).where(WarehouseTable(conn, ent.name).where_live(company_key)))
        frame = pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in cols])
        if with_lines:
            frame = _add_line_totals(frame, ent, _line_expectations(conn, ent, child, company_key))
        return frame


def _add_line_totals(frame: pd.DataFrame, ent: registry.EntityDef, line_sums: Mapping[str, float]) -> pd.DataFrame:
    import pandas as pd

    def num(column: str) -> pd.Series:
        return pd.to_numeric(frame[column], errors="coerce").fillna(0.0).astype(float)

    lines = frame["id"].astype(str).map(lambda i: line_sums.get(i, 0.0)).astype(float)
    total = num("total_amt")
    if ent.lines is Lines.JOURNAL:
        # Debits must equal credits; TotalAmt is not a line sum there.
        expected = total
        difference = lines
    else:
        expected = lines.copy()
        if ent.lines in _HEADER_PART:
            column, sign = _HEADER_PART[ent.lines]
            expected = expected + sign * num(column)
        difference = total - expected
    frame = frame.drop(columns=["total_tax", "cash_back", "unapplied"])
    frame["total_amt"] = total
    frame["line_total"] = expected.round(2)
    frame["line_total_difference"] = difference.round(2)
    return frame


def run_suite(engine: Engine | Connection, entity: str, company_key: str) -> CheckOutcome:
    """Run the data-quality suite of one entity on one company partition of the warehouse.

    Args:
        engine: the warehouse.
        entity: a registry entity (``Invoice``...).
        company_key: the company partition.

    Returns:
        A :class:`CheckOutcome`: failed expectations with the first unexpected values and ids in
        ``mismatches``, every expectation's outcome in ``metadata["expectations"]``.
    """
    frame = load_frame(engine, entity, company_key)
    return validate_frame(entity, frame, company_key)
