"""The warehouse: one SQL table per QuickBooks entity, generated from the entity registry.

What lands where (all tables keyed by ``company_key`` first, so sandbox and production companies,
or two tenants, never collide):

* ``qbo_<entity>`` (``qbo_invoice``, ``qbo_sales_receipt``, ``qbo_company_info``...): one row per
  QBO object, primary key ``(company_key, id)``. Typed columns for what people query, derived from
  :attr:`EntityDef.typed_fields` by :func:`column_name` and :func:`column_type`; the object exactly
  as QBO sent it in ``raw`` (JSONB on PostgreSQL); and the bookkeeping columns ``sync_token``,
  ``is_active``, ``is_deleted``/``deleted_at`` (deleted and merged-away objects stay, flagged),
  ``first_synced_at``, ``synced_at`` (last time QBO confirmed the row) and ``row_hash`` (a digest of
  ``raw`` that lets a re-sync skip rows QBO did not change).
* ``qbo_<entity>_line`` for :attr:`EntityDef.line_fields`: one row per line, key
  ``(company_key, txn_id, line_no)`` where ``line_no`` is the 1-based position in ``Line`` (the
  SubTotal line has no Id, so the position is the only stable key).
* ``qbo_payment_link`` / ``qbo_bill_payment_link``: payment lines are not item lines but
  allocations (``{"Amount", "LinkedTxn": [...]}``), so they land as one row per
  ``(line_no, link_no)``: which invoice (bill, credit memo...) received how much.
* ``qbo_budget_detail``: a budget's ``BudgetDetail``, one row per (account, customer..., period
  start) amount; ``qbo_attachable_ref``: what each attachment belongs to (entity type and Id).
  Which child table an entity gets follows its line family (:data:`CHILD_SPECS`).
* ``qbo_sync_cursor`` (CDC cursor and last full refresh per company and entity) and
  ``qbo_full_refresh_progress`` (the next STARTPOSITION of a full refresh in flight, so a crashed
  refresh resumes from its last committed page).

Adding an entity to the registry adds its table here; migration ``0002_warehouse`` is a frozen
snapshot, and ``test_warehouse_schema`` fails (naming the table) until a new migration creates it.

Column rules (documented here because queries depend on them):

* keys: ``id`` is QBO's Id (of the wrapped template for a RecurringTransaction); an entity QBO
  gives no Id (ExchangeRate) is keyed by its key fields joined by ``:`` (``EUR:USD:2024-01-31``).
  A wrapper's typed columns come from the wrapped object, and ``type`` is its type name.
* names: ``Id`` -> ``id``, ``SyncToken`` -> ``sync_token``, ``Active`` -> ``is_active``,
  ``MetaData.CreateTime`` -> ``qbo_created_at``, ``MetaData.LastUpdatedTime`` -> ``qbo_updated_at``,
  ``CurrencyRef.value`` -> ``currency``, ``PrimaryEmailAddr.Address`` -> ``primary_email``; any
  other ``XRef.value`` -> ``x_ref_id`` (``CustomerRef.value`` -> ``customer_ref_id``); any other
  dotted path -> its parts in snake case joined by ``_``; plain names -> snake case.
* types, by the last segment of the path: ``...Time`` -> timestamp with time zone; ``...Date`` ->
  date; booleans for QBO's flags (:data:`BOOLEAN_FIELDS`: Active, Job, Taxable, Credit...);
  integers for counts (:data:`INTEGER_FIELDS`: Level, DueDays, Hours, Minutes); ``Numeric(20, 7)``
  for per-unit prices, quantities and rates (QBO keeps up to 7 decimals there); ``Numeric(18, 2)``
  for money (``...Amt``, ``...Amount``, ``...Balance``, ``BalanceWithJobs``, ``RemainingCredit``);
  text otherwise.

On SQLite, timestamps are stored in UTC and read back naive (SQLite has no time zones);
PostgreSQL keeps ``timestamptz``.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

__all__ = [
    "BOOLEAN_FIELDS",
    "CHILD_SPECS",
    "INTEGER_FIELDS",
    "LINK_ENTITIES",
    "CursorState",
    "PreparedBatch",
    "RefreshProgress",
    "UpsertStats",
    "WarehouseWriter",
    "column_name",
    "column_type",
    "create_tables",
    "full_refresh_progress",
    "metadata",
    "sync_cursor",
    "table_name",
    "tables_for",
]

#: QBO flags that land as booleans.
BOOLEAN_FIELDS = frozenset({"Active", "Job", "Taxable", "Credit", "Adjustment", "BillWithParent", "Sparse",
                            "TaxTrackedOnSales", "TaxTrackedOnPurchases"})
#: Whole numbers (an attachment's Size is in bytes).
INTEGER_FIELDS = frozenset({"Level", "DueDays", "Hours", "Minutes", "DiscountDays", "Size", "NumInterval"})
#: Per-unit prices, quantities and rates (exchange rates too): QBO accepts up to 7 decimals there.
PRECISE_FIELDS = frozenset({"UnitPrice", "PurchaseCost", "Qty", "QtyOnHand", "RateValue", "Rate"})
#: Money, by suffix of the last path segment.
MONEY_SUFFIXES = ("Amt", "Amount", "Balance", "BalanceWithJobs", "RemainingCredit")
#: Entities whose lines are allocations to other transactions (LinkedTxn), not item lines.
LINK_ENTITIES = frozenset(e.name for e in registry.ENTITIES if e.link_lines)

_SPECIAL_NAMES = {
    "Id": "id",
    "SyncToken": "sync_token",
    "Active": "is_active",
    "MetaData.CreateTime": "qbo_created_at",
    "MetaData.LastUpdatedTime": "qbo_updated_at",
    "CurrencyRef.value": "currency",
    "PrimaryEmailAddr.Address": "primary_email",
}
#: Typed fields that map onto the bookkeeping columns every table has.
_COMMON_FIELDS = frozenset({"Id", "SyncToken", "Active"})
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

MONEY = sa.Numeric(18, 2)
PRECISE = sa.Numeric(20, 7)
TIMESTAMP = sa.DateTime(timezone=True)
#: The raw object: JSONB on PostgreSQL (indexable, compact), JSON (text) elsewhere.
RAW_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def snake(name: str) -> str:
    """``TxnDate`` -> ``txn_date``, ``APAccountRef`` -> ``ap_account_ref``."""
    return _SNAKE.sub("_", name).lower()


def table_name(entity: str | EntityDef) -> str:
    """``Invoice`` -> ``qbo_invoice``, ``CompanyInfo`` -> ``qbo_company_info``."""
    name = entity.name if isinstance(entity, EntityDef) else registry.get(entity).name
    return f"qbo_{snake(name)}"


def column_name(path: str) -> str:
    """The warehouse column of a typed field (see the module docstring for the rule)."""
    if path in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[path]
    parts = path.split(".")
    if len(parts) == 2 and parts[0].endswith("Ref") and parts[1] == "value":
        return f"{snake(parts[0])}_id"
    return "_".join(snake(p) for p in parts)


def column_type(path: str) -> sa.types.TypeEngine:
    """The SQL type of a typed field, by the last segment of its path (module docstring)."""
    leaf = path.split(".")[-1]
    if path == "CurrencyRef.value":
        return sa.String(3)
    if leaf == "value":  # a reference: the referenced object's Id
        return sa.String(32)
    if leaf.endswith("Time"):
        return TIMESTAMP
    if leaf.endswith("Date"):
        return sa.Date()
    if leaf in BOOLEAN_FIELDS:
        return sa.Boolean()
    if leaf in INTEGER_FIELDS:
        return sa.Integer()
    if leaf in PRECISE_FIELDS:
        return PRECISE
    if leaf.endswith(MONEY_SUFFIXES):
        return MONEY
    return sa.String()


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

metadata = sa.MetaData()

#: Where incremental sync resumes, per company and entity. ``cdc_cursor`` is QBO time: the next
#: CDC call asks for changes since it. Saved in the same transaction as the rows it covers.
sync_cursor = sa.Table(
    "qbo_sync_cursor",
    metadata,
    sa.Column("company_key", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(64), nullable=False),
    sa.Column("cdc_cursor", TIMESTAMP, nullable=True, comment="next CDC changedSince (QBO time)"),
    sa.Column("last_full_refresh_at", TIMESTAMP, nullable=True),
    sa.Column("updated_at", TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint("company_key", "entity", name="pk_qbo_sync_cursor"),
)

#: A full refresh in flight: the next STARTPOSITION, committed with each page, so a crashed
#: refresh resumes there. ``started_at`` is kept across resumes: rows not confirmed since then
#: are the hard-delete candidates, and the CDC cursor restarts from it.
full_refresh_progress = sa.Table(
    "qbo_full_refresh_progress",
    metadata,
    sa.Column("company_key", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("start_position", sa.Integer, nullable=False, comment="next STARTPOSITION to read (1-based)"),
    sa.Column("rows_done", sa.Integer, nullable=False, default=0),
    sa.Column("started_at", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint("company_key", "entity", name="pk_qbo_full_refresh_progress"),
)


@dataclass(frozen=True)
class _Typed:
    """One typed column: its name, its kind for value conversion, and the path parts to read."""

    name: str
    path: tuple[str, ...]
    kind: str  # text | money | precise | date | time | bool | int


def _kind(t: sa.types.TypeEngine) -> str:
    if isinstance(t, sa.DateTime):
        return "time"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Numeric):
        return "money" if t.scale == 2 else "precise"
    return "text"


def _typed_columns(entity: EntityDef) -> list[_Typed]:
    out: list[_Typed] = []
    seen: set[str] = set()
    for path in entity.typed_fields:
        if path in _COMMON_FIELDS:
            continue
        name = column_name(path)
        if name in seen:
            continue
        seen.add(name)
        out.append(_Typed(name, tuple(path.split(".")), _kind(column_type(path))))
    return out


def _main_table(entity: EntityDef) -> sa.Table:
    name = table_name(entity)
    typed = _typed_columns(entity)
    columns: list[sa.Column] = [
        sa.Column("company_key", sa.String(64), nullable=False, comment="the company partition"),
        sa.Column("id", sa.String(32), nullable=False, comment="QBO Id"),
        sa.Column("sync_token", sa.String(16), nullable=True),
    ]
    for t in typed:
        columns.append(sa.Column(t.name, column_type(".".join(t.path)), nullable=True,
                                 comment=".".join(t.path)))
    columns += [
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true(),
                  comment="QBO's Active (name lists); true for other objects"),
        sa.Column("is_deleted", sa.Boolean, nullable=False, server_default=sa.false(),
                  comment="deleted in QBO (tombstone, merge, or missing from a full refresh)"),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("raw", RAW_JSON, nullable=False, comment="the object as QBO sent it"),
        sa.Column("row_hash", sa.String(32), nullable=True, comment="digest of raw: skip unchanged rows"),
        sa.Column("first_synced_at", TIMESTAMP, nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False, comment="last time QBO confirmed this row"),
        sa.PrimaryKeyConstraint("company_key", "id", name=f"pk_{name}"),
    ]
    table = sa.Table(name, metadata, *columns, comment=f"QuickBooks {entity.name} objects")
    names = {t.name for t in typed}
    if "qbo_updated_at" in names:
        sa.Index(f"ix_{name}_updated", table.c.company_key, table.c.qbo_updated_at)
    if "txn_date" in names:
        sa.Index(f"ix_{name}_txn_date", table.c.company_key, table.c.txn_date)
    return table


def _line_table(entity: EntityDef) -> sa.Table:
    name = f"{table_name(entity)}_line"
    return sa.Table(
        name,
        metadata,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {entity.name} Id"),
        sa.Column("line_no", sa.Integer, nullable=False, comment="1-based position in Line"),
        sa.Column("line_id", sa.String(32), nullable=True, comment="QBO's line Id (none on SubTotal lines)"),
        sa.Column("detail_type", sa.String(64), nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("description", sa.String, nullable=True),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("qty", PRECISE, nullable=True),
        sa.Column("unit_price", PRECISE, nullable=True),
        sa.Column("tax_code", sa.String(32), nullable=True),
        sa.Column("class_id", sa.String(32), nullable=True),
        sa.Column("posting_type", sa.String(16), nullable=True, comment="Debit/Credit (journal entries)"),
        sa.Column("raw", RAW_JSON, nullable=False),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name=f"pk_{name}"),
        comment=f"lines of QuickBooks {entity.name} objects",
    )


def _link_table(entity: EntityDef) -> sa.Table:
    name = f"{table_name(entity)}_link"
    return sa.Table(
        name,
        metadata,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {entity.name} Id"),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("link_no", sa.Integer, nullable=False),
        sa.Column("linked_txn_id", sa.String(32), nullable=True),
        sa.Column("linked_txn_type", sa.String(32), nullable=True),
        sa.Column("amount", MONEY, nullable=True, comment="the line's Amount applied"),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", "link_no", name=f"pk_{name}"),
        comment=f"what each {entity.name} line paid (LinkedTxn)",
    )


def _budget_table(entity: EntityDef) -> sa.Table:
    name = f"{table_name(entity)}_detail"
    return sa.Table(
        name,
        metadata,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {entity.name} Id"),
        sa.Column("line_no", sa.Integer, nullable=False, comment="1-based position in BudgetDetail"),
        sa.Column("budget_date", sa.Date, nullable=True, comment="first day of the period budgeted"),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("customer_id", sa.String(32), nullable=True),
        sa.Column("class_id", sa.String(32), nullable=True),
        sa.Column("department_id", sa.String(32), nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name=f"pk_{name}"),
        comment=f"amounts of QuickBooks {entity.name} objects, per account and period (BudgetDetail)",
    )


def _ref_table(entity: EntityDef) -> sa.Table:
    name = f"{table_name(entity)}_ref"
    return sa.Table(
        name,
        metadata,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {entity.name} Id"),
        sa.Column("line_no", sa.Integer, nullable=False, comment="1-based position in AttachableRef"),
        sa.Column("entity_type", sa.String(64), nullable=True, comment="what it is attached to: Invoice, Bill..."),
        sa.Column("entity_id", sa.String(32), nullable=True),
        sa.Column("include_on_send", sa.Boolean, nullable=True),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name=f"pk_{name}"),
        comment=f"the objects each QuickBooks {entity.name} belongs to (AttachableRef)",
    )


def _dig(body: dict, path: tuple[str, ...]) -> Any:
    value: Any = body
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def _ref(detail: dict, key: str) -> Any:
    ref = detail.get(key)
    return ref.get("value") if isinstance(ref, dict) else None


def _line_rows(company_key: str, txn_id: str, lines: list) -> list[tuple]:
    """(company_key, txn_id, line_no, line_id, detail_type, amount, description, item_id, account_id,
    qty, unit_price, tax_code, class_id, posting_type, raw) per line."""
    out = []
    for no, line in enumerate(lines, 1):
        if not isinstance(line, dict):
            continue
        detail_type = line.get("DetailType")
        detail = line.get(detail_type) if detail_type else None
        if not isinstance(detail, dict):
            detail = {}
        account = (_ref(detail, "AccountRef") or _ref(detail, "DiscountAccountRef")
                   or _ref(detail, "ItemAccountRef"))
        out.append((
            company_key, txn_id, no, line.get("Id"), detail_type, line.get("Amount"), line.get("Description"),
            _ref(detail, "ItemRef"), account, detail.get("Qty"), detail.get("UnitPrice"),
            _ref(detail, "TaxCodeRef"), _ref(detail, "ClassRef"), detail.get("PostingType"),
            orjson.dumps(line).decode(),
        ))
    return out


def _link_rows(company_key: str, txn_id: str, lines: list) -> list[tuple]:
    """(company_key, txn_id, line_no, link_no, linked_txn_id, linked_txn_type, amount) per link."""
    out = []
    for no, line in enumerate(lines, 1):
        if not isinstance(line, dict):
            continue
        for link_no, link in enumerate(line.get("LinkedTxn") or [], 1):
            out.append((company_key, txn_id, no, link_no, link.get("TxnId"), link.get("TxnType"), line.get("Amount")))
    return out


def _budget_rows(company_key: str, txn_id: str, details: list) -> list[tuple]:
    """(company_key, txn_id, line_no, budget_date, account_id, customer_id, class_id, department_id,
    amount) per BudgetDetail."""
    return [(company_key, txn_id, no, d.get("BudgetDate"), _ref(d, "AccountRef"), _ref(d, "CustomerRef"),
             _ref(d, "ClassRef"), _ref(d, "DepartmentRef"), d.get("Amount"))
            for no, d in enumerate(details, 1) if isinstance(d, dict)]


def _ref_rows(company_key: str, txn_id: str, refs: list) -> list[tuple]:
    """(company_key, txn_id, line_no, entity_type, entity_id, include_on_send) per AttachableRef."""
    out = []
    for no, ref in enumerate(refs, 1):
        if not isinstance(ref, dict):
            continue
        target = ref.get("EntityRef") if isinstance(ref.get("EntityRef"), dict) else {}
        out.append((company_key, txn_id, no, target.get("type") or target.get("Type"), target.get("value"),
                    ref.get("IncludeOnSend")))
    return out


@dataclass(frozen=True)
class ChildSpec:
    """How one line family lands: its table, its columns (with value kinds) and its row builder.

    Every child table is keyed ``(company_key, txn_id, line_no[, ...])``: ``txn_id`` is the parent
    object's Id (a transaction's, a budget's, an attachment's), so replacing an object's children
    is one delete by ``txn_id``.
    """

    table: Callable[[EntityDef], sa.Table]
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: Callable[[str, str, list], list[tuple]]


_LINE_SPEC = ChildSpec(
    _line_table,
    ("company_key", "txn_id", "line_no", "line_id", "detail_type", "amount", "description", "item_id",
     "account_id", "qty", "unit_price", "tax_code", "class_id", "posting_type", "raw"),
    ("text", "text", "int", "text", "text", "money", "text", "text", "text", "precise", "precise", "text",
     "text", "text", "json"),
    _line_rows)
#: The child table of each line family (families not listed land as item lines).
CHILD_SPECS: dict[Lines, ChildSpec] = {
    Lines.LINKS: ChildSpec(
        _link_table, ("company_key", "txn_id", "line_no", "link_no", "linked_txn_id", "linked_txn_type", "amount"),
        ("text", "text", "int", "int", "text", "text", "money"), _link_rows),
    Lines.BUDGET: ChildSpec(
        _budget_table, ("company_key", "txn_id", "line_no", "budget_date", "account_id", "customer_id", "class_id",
                        "department_id", "amount"),
        ("text", "text", "int", "date", "text", "text", "text", "text", "money"), _budget_rows),
    Lines.REFS: ChildSpec(
        _ref_table, ("company_key", "txn_id", "line_no", "entity_type", "entity_id", "include_on_send"),
        ("text", "text", "int", "text", "text", "bool"), _ref_rows),
}


def child_spec(entity: EntityDef) -> ChildSpec | None:
    """How an entity's lines land, or None when it has no line table."""
    return CHILD_SPECS.get(entity.lines, _LINE_SPEC) if entity.line_fields else None


_TABLES: dict[str, tuple[sa.Table, sa.Table | None]] = {}
for _entity in registry.ENTITIES:
    _spec = child_spec(_entity)
    _TABLES[_entity.name] = (_main_table(_entity), _spec.table(_entity) if _spec else None)
_TYPED: dict[str, list[_Typed]] = {e.name: _typed_columns(e) for e in registry.ENTITIES}


def tables_for(entity: str | EntityDef) -> tuple[sa.Table, sa.Table | None]:
    """The main table of an entity and its child (line, link, budget detail, ref) table, if any."""
    name = entity.name if isinstance(entity, EntityDef) else registry.get(entity).name
    return _TABLES[name]


def create_tables(engine: Engine) -> None:
    """Create every warehouse table that is missing (tests, throwaway databases).

    Deployed databases get them from the Alembic migrations (``qb_pipelines.store.db.migrate``).
    """
    metadata.create_all(engine)


# --------------------------------------------------------------------------------------------
# Row building
# --------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """One incoming object, ready to write: values in table column order."""

    id: str
    values: tuple
    row_hash: str
    txn_date: str | None
    is_active: bool
    children: list[tuple]
    copy_line: str | None = None  # the row in COPY text format, made ahead on the PostgreSQL path
    child_copy: list[str] | None = None


@dataclass
class PreparedBatch:
    """Objects turned into rows (and COPY text), ready for :meth:`WarehouseWriter.write_batch`.

    Preparing is CPU work that needs no database; a full refresh prepares page k+1 while the
    database is still busy writing page k (see ``sync.ingest``).
    """

    entity: EntityDef
    company_key: str
    synced_at: datetime
    rows: dict[str, _Prepared]
    #: the caller knows none of these objects is stored yet (a first load): skip the lookup
    assume_new: bool = False


# --------------------------------------------------------------------------------------------
# Value encoding per dialect
# --------------------------------------------------------------------------------------------


def _utc_sqlite(value: Any) -> Any:
    """A timestamp as SQLAlchemy's SQLite format, in UTC (SQLite keeps no offsets)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _py_time(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _py_date(value: Any) -> Any:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> Any:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


_PORTABLE = {"text": _text, "money": _num, "precise": _num, "int": _int, "bool": _bool, "date": _py_date,
             "time": _py_time, "json": lambda v: v}
_SQLITE = {**_PORTABLE, "date": lambda v: None if v is None else str(v), "time": _utc_sqlite,
           "bool": lambda v: None if v is None else int(bool(_bool(v)))}


def _copy_str(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _copy_other(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _copy_str(orjson.dumps(value).decode())
    return _copy_str(str(value))


#: COPY text format by Python type: one dict lookup per value, no per-column converter. QBO's
#: JSON gives str, int, float, bool or None; dates and times stay ISO text (PostgreSQL parses them).
_COPY_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: _copy_str,
    int: str,
    float: repr,
    bool: lambda v: "t" if v else "f",
    type(None): lambda v: "\\N",
}


def _copy_line(row: tuple | list) -> str:
    r"""One row in PostgreSQL's COPY text format (``\N`` is NULL; backslash, tab, newlines escaped)."""
    get = _COPY_BY_TYPE.get
    return "\t".join([(get(type(v)) or _copy_other)(v) for v in row])


#: Python types a column kind accepts as is on the COPY path; others go through ``_COPY`` first.
_NATIVE = {"int": (int,), "bool": (bool,), "money": (int, float), "precise": (int, float)}
_COPY = {"int": _int, "bool": _bool, "money": _num, "precise": _num}


def _format(kinds: Sequence[str], row: tuple) -> str:
    """One row as a COPY text line; values go as QBO's JSON gave them, except a value whose Python
    type does not suit its column (a number sent as text for an integer column...), converted first."""
    values: tuple | list = row
    for i, kind in enumerate(kinds):
        native = _NATIVE.get(kind)
        if native is not None:
            v = row[i]
            if v is not None and type(v) not in native:
                if values is row:
                    values = list(row)
                values[i] = _COPY[kind](v)
    return _copy_line(values)


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


@dataclass
class UpsertStats:
    """What one write did to the warehouse.

    Attributes:
        inserted: objects new to the warehouse.
        updated: objects whose content changed (or that came back from deleted).
        unchanged: objects QBO sent again without a change (only ``synced_at`` moves).
        deleted: objects newly flagged deleted (tombstones, merges, hard deletes).
        inactivated: name-list objects that became inactive in this write.
        touched_months: ``YYYY-MM`` of the TxnDate of every inserted, updated or deleted
            transaction (old and new date when the date moved): the report months to redo.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    inactivated: int = 0
    touched_months: set[str] = field(default_factory=set)

    def add(self, other: UpsertStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.inactivated += other.inactivated
        self.touched_months |= other.touched_months


@dataclass(frozen=True)
class CursorState:
    """The sync state of one company and entity (times are aware, UTC on SQLite)."""

    cdc_cursor: datetime | None
    last_full_refresh_at: datetime | None


@dataclass(frozen=True)
class RefreshProgress:
    """A full refresh in flight: read from ``start_position`` on to finish it."""

    run_id: str | None
    start_position: int
    rows_done: int
    started_at: datetime
    updated_at: datetime


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _month(txn_date: Any) -> str | None:
    if txn_date is None:
        return None
    text = txn_date.isoformat() if isinstance(txn_date, date) else str(txn_date)
    return text[:7] if len(text) >= 7 else None


_ID_CHUNK = 900  # bound parameters per IN list (SQLite's old limit is 999)


class WarehouseWriter:
    """Writes QuickBooks objects into the warehouse tables, idempotently, on SQLite and PostgreSQL.

    The writer owns the table names and the SQL: callers hand it QBO objects as QBO sent them and
    get counts back. Why it is built this way:

    * **Idempotent upserts keyed (company_key, id).** QBO re-sends objects all the time (CDC
      windows overlap on purpose, full refreshes re-read everything, webhooks repeat), so every
      write is an upsert: PostgreSQL and SQLite both run ``INSERT ... ON CONFLICT (company_key,
      id) DO UPDATE``. ``first_synced_at`` survives updates; everything else is replaced.
    * **Skip what did not change.** A digest of the raw object (``row_hash``) is compared with
      the stored one before writing, so a re-run of the same window writes nothing but
      ``synced_at`` and reports 0 inserted / 0 updated. It also tells inserts from updates
      portably (PostgreSQL's ``xmax`` trick has no SQLite equivalent) and gives the old TxnDate
      of a moved transaction, for the report months to re-materialize.
    * **Lines replaced per parent in the same transaction.** A QBO object is the unit of change:
      when an invoice changes, its old lines are deleted and the new ones inserted with it, so a
      reader never sees an invoice with half its lines.
    * **COPY on PostgreSQL.** Landing a million invoices row by row is too slow. With psycopg2,
      rows are streamed with ``COPY ... FROM STDIN``: straight into the table when none of the
      page's objects is there yet (a first load; one writer per company and entity, so nothing
      can race it, and a clash would fail loudly, never silently), otherwise into a temporary
      staging table and merged with ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``. QBO's ISO
      timestamps and dates go to PostgreSQL as text, unparsed: PostgreSQL parses them faster.
    * **Deletes are flags.** Tombstones and hard deletes set ``is_deleted``/``deleted_at`` and keep
      the row and its last known content; a tombstone for an object never landed is stored as a
      deleted row holding the tombstone, so the warehouse knows the Id existed.
    * **The caller owns the transaction.** Every method takes the ``Connection`` of
      :meth:`begin`, so rows, the CDC cursor and the refresh progress commit together.

    Args:
        engine: SQLite or PostgreSQL engine (``qb_pipelines.store.db.make_engine``); the tables
            must exist (``migrate`` or :func:`create_tables`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._copy = self.dialect == "postgresql" and engine.dialect.driver == "psycopg2"

    # ------------------------------------------------------------------------------ plumbing
    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: everything written through it commits or rolls back together."""
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------------------ objects
    def prepare(self, entity: str | EntityDef, company_key: str, body: dict, synced_at: datetime) -> _Prepared:
        """Turn one QBO object into the values of its row and its child rows."""
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        typed = _TYPED[ent.name]
        raw = orjson.dumps(body)
        obj_id = str(ent.identity(body))
        fields = ent.fields_of(body)  # a RecurringTransaction's typed columns are its template's
        active = fields.get("Active")
        is_active = True if active is None else bool(_bool(active))
        values = (
            company_key, obj_id, _text(fields.get("SyncToken")),
            *(_dig(fields, t.path) for t in typed),
            is_active, False, None, raw.decode(), hashlib.blake2b(raw, digest_size=16).hexdigest(),
            synced_at, synced_at,
        )
        children: list[tuple] = []
        spec = child_spec(ent)
        if spec is not None:
            children = spec.rows(company_key, obj_id, fields.get(ent.line_fields[0]) or [])
        txn_date = fields.get("TxnDate")
        return _Prepared(obj_id, values, values[-3], txn_date if isinstance(txn_date, str) else None, is_active,
                         children)

    def _kinds(self, entity: EntityDef) -> tuple[str, ...]:
        return ("text", "text", "text", *(t.kind for t in _TYPED[entity.name]),
                "bool", "bool", "time", "json", "text", "time", "time")

    def _existing(self, conn: Connection, table: sa.Table, company_key: str, ids: Sequence[str]) -> dict[str, tuple]:
        """Stored (row_hash, is_deleted, is_active, txn_date) of the given ids."""
        cols = [table.c.id, table.c.row_hash, table.c.is_deleted, table.c.is_active]
        has_date = "txn_date" in table.c
        if has_date:
            cols.append(table.c.txn_date)
        out: dict[str, tuple] = {}
        if self.dialect == "postgresql":
            # one array parameter instead of 1000 bound values: PostgreSQL plans it in a fraction
            stmt = sa.select(*cols).where(table.c.company_key == company_key,
                                          table.c.id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.String))))
            chunks = [list(ids)]
        else:
            chunks = [list(ids[i:i + _ID_CHUNK]) for i in range(0, len(ids), _ID_CHUNK)]
            stmt = None
        for chunk in chunks:
            if stmt is not None:
                rows = conn.execute(stmt, {"ids": chunk})
            else:
                rows = conn.execute(sa.select(*cols).where(table.c.company_key == company_key,
                                                           table.c.id.in_(chunk)))
            for row in rows:
                out[row[0]] = (row[1], bool(row[2]), bool(row[3]), row[4] if has_date else None)
        return out

    def upsert(self, conn: Connection, entity: str | EntityDef, company_key: str, bodies: Sequence[dict], *,
               synced_at: datetime) -> UpsertStats:
        """Insert or update live QBO objects (not tombstones) and replace their lines.

        Args:
            conn: the transaction of :meth:`begin`.
            entity: the objects' entity.
            company_key: the company partition.
            bodies: objects as QBO sent them (a page, a CDC block...); duplicates keep the last.
            synced_at: when they were read (stored in ``synced_at``, and ``first_synced_at`` on insert).

        Returns:
            Counts, and the report months the changed transactions touch.
        """
        return self.write_batch(conn, self.prepare_batch(entity, company_key, bodies, synced_at=synced_at))

    def prepare_batch(self, entity: str | EntityDef, company_key: str, bodies: Sequence[dict], *,
                      synced_at: datetime, assume_new: bool = False) -> PreparedBatch:
        """Turn objects into rows without touching the database (duplicates keep the last).

        ``assume_new=True`` (a first load into an empty table) skips the lookup of stored rows. If
        an object is there after all, the write fails with an IntegrityError (:meth:`integrity_errors`:
        the row on PostgreSQL's COPY path, its lines on SQLite) and the transaction rolls back; the
        caller retries the batch with ``assume_new=False``.
        """
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        latest: dict[str, _Prepared] = {}
        for body in bodies:
            prepared = self.prepare(ent, company_key, body, synced_at)
            latest[prepared.id] = prepared
        if self._copy:
            kinds = self._kinds(ent)
            spec = child_spec(ent)
            child_kinds = spec.kinds if spec is not None else ()
            for prepared in latest.values():
                prepared.copy_line = _format(kinds, prepared.values)
                prepared.child_copy = [_format(child_kinds, c) for c in prepared.children]
        return PreparedBatch(ent, company_key, synced_at, latest, assume_new)

    def write_batch(self, conn: Connection, batch: PreparedBatch) -> UpsertStats:
        """Write a :class:`PreparedBatch` in ``conn``'s transaction (see :meth:`upsert`)."""
        ent, company_key, synced_at, latest = batch.entity, batch.company_key, batch.synced_at, batch.rows
        main, child = tables_for(ent)
        stats = UpsertStats()
        if not latest:
            return stats
        existing = {} if batch.assume_new else self._existing(conn, main, company_key, list(latest))
        new: list[_Prepared] = []
        changed: list[_Prepared] = []
        unchanged: list[str] = []
        for obj_id, prepared in latest.items():
            old = existing.get(obj_id)
            if old is None:
                new.append(prepared)
                stats.inserted += 1
                if ent.is_transaction and (m := _month(prepared.txn_date)):
                    stats.touched_months.add(m)
                continue
            old_hash, old_deleted, old_active, old_date = old
            if old_hash == prepared.row_hash and not old_deleted:
                unchanged.append(obj_id)
                stats.unchanged += 1
                continue
            changed.append(prepared)
            stats.updated += 1
            if old_active and not prepared.is_active:
                stats.inactivated += 1
            if ent.is_transaction:
                for m in (_month(old_date), _month(prepared.txn_date)):
                    if m:
                        stats.touched_months.add(m)
        if new or changed:
            self._write_rows(conn, ent, main, new, changed)
        if child is not None and (new or changed):
            if changed:
                self._delete_children(conn, child, company_key, [p.id for p in changed])
            self._insert_children(conn, ent, child, [*new, *changed])
        if unchanged:
            # QBO confirmed them: a full refresh's hard-delete sweep must not flag them
            for start in range(0, len(unchanged), _ID_CHUNK):
                conn.execute(main.update()
                             .where(main.c.company_key == company_key,
                                    main.c.id.in_(unchanged[start:start + _ID_CHUNK]))
                             .values(synced_at=self._time(synced_at)))
        return stats

    def _write_rows(self, conn: Connection, ent: EntityDef, main: sa.Table, new: list[_Prepared],
                    changed: list[_Prepared]) -> None:
        columns = [c.name for c in main.columns]
        kinds = self._kinds(ent)
        if self._copy:
            lines = [p.copy_line or _format(kinds, p.values) for p in (*new, *changed)]
            if new and not changed:
                self._copy_lines(conn, main.name, columns, lines)
                return
            stage = self._stage(conn, main.name)
            self._copy_lines(conn, stage, columns, lines)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns
                                if c not in ("company_key", "id", "first_synced_at"))
            collist = ", ".join(columns)
            conn.exec_driver_sql(
                f"INSERT INTO {main.name} ({collist}) SELECT {collist} FROM {stage} "
                f"ON CONFLICT (company_key, id) DO UPDATE SET {updates}")
            conn.exec_driver_sql(f"TRUNCATE {stage}")
            return
        rows = [p.values for p in (*new, *changed)]
        if self.dialect == "sqlite":
            convert = [_SQLITE[k] for k in kinds]
            placeholders = ", ".join("?" for _ in columns)
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns
                                if c not in ("company_key", "id", "first_synced_at"))
            sql = (f"INSERT INTO {main.name} ({', '.join(columns)}) VALUES ({placeholders}) "
                   f"ON CONFLICT (company_key, id) DO UPDATE SET {updates}")
            data = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
            conn.exec_driver_sql(sql, data)
            return
        # any other driver: SQLAlchemy's portable upsert (PostgreSQL dialect without psycopg2)
        convert = [_PORTABLE[k] for k in kinds]
        records = [dict(zip(columns, (f(v) for f, v in zip(convert, row, strict=True)), strict=True))
                   for row in rows]
        for r in records:
            r["raw"] = orjson.loads(r["raw"])
        stmt = postgresql.insert(main) if self.dialect == "postgresql" else sqlite.insert(main)
        stmt = stmt.on_conflict_do_update(
            index_elements=["company_key", "id"],
            set_={c: stmt.excluded[c] for c in columns if c not in ("company_key", "id", "first_synced_at")})
        conn.execute(stmt, records)

    def _stage(self, conn: Connection, table: str) -> str:
        """A session-local staging table shaped like ``table``, emptied at every commit.

        Created if missing on every use (a catalog lookup): pooled connections come and go, so
        remembering which one already has it is not worth the risk.
        """
        stage = f"_stage_{table}"
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        return stage

    def _copy_lines(self, conn: Connection, table: str, columns: Sequence[str], lines: list[str]) -> None:
        """Stream rows already in COPY text format into ``table`` (psycopg2 ``copy_expert``)."""
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        cursor = conn.connection.driver_connection.cursor()
        try:
            # one read of the whole buffer: with psycopg2's default 8 KiB reads, each read waits
            # for the GIL while another thread prepares the next page (a convoy of 5 ms waits)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text),
                               size=len(text) + 1)
        finally:
            cursor.close()

    def _delete_children(self, conn: Connection, child: sa.Table, company_key: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _ID_CHUNK):
            conn.execute(child.delete().where(child.c.company_key == company_key,
                                              child.c.txn_id.in_(list(ids[start:start + _ID_CHUNK]))))

    def _insert_children(self, conn: Connection, ent: EntityDef, child: sa.Table, parents: list[_Prepared]) -> None:
        spec = child_spec(ent)
        assert spec is not None  # the entity has a child table
        columns, kinds = spec.columns, spec.kinds
        if self._copy:
            lines = [line for p in parents
                     for line in (p.child_copy if p.child_copy is not None else
                                  [_format(kinds, c) for c in p.children])]
            self._copy_lines(conn, child.name, columns, lines)
            return
        rows = [c for p in parents for c in p.children]
        if not rows:
            return
        if self.dialect == "sqlite":
            convert = [_SQLITE[k] for k in kinds]
            sql = f"INSERT INTO {child.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            conn.exec_driver_sql(sql, [tuple(f(v) for f, v in zip(convert, r, strict=True)) for r in rows])
            return
        convert = [_PORTABLE[k] for k in kinds]
        records = [dict(zip(columns, (f(v) for f, v in zip(convert, r, strict=True)), strict=True)) for r in rows]
        if "raw" in columns:
            for r in records:
                r["raw"] = orjson.loads(r["raw"])
        conn.execute(child.insert(), records)

    # ------------------------------------------------------------------------------ deletes
    def mark_deleted(self, conn: Connection, entity: str | EntityDef, company_key: str, tombstones: Sequence[dict],
                     *, synced_at: datetime) -> UpsertStats:
        """Flag objects QBO reported deleted (CDC tombstones ``{"Id", "status": "Deleted", ...}``).

        The row and its lines keep their last known content; ``deleted_at`` is the tombstone's
        LastUpdatedTime. A tombstone for an Id never landed is stored as a deleted row holding the
        tombstone. Tombstones seen again change nothing (CDC windows overlap).

        Returns:
            ``deleted`` (newly flagged or stored) and the months of the deleted transactions.
        """
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        main, _ = tables_for(ent)
        stats = UpsertStats()
        latest = {str(ent.identity(t)): t for t in tombstones}
        if not latest:
            return stats
        existing = self._existing(conn, main, company_key, list(latest))
        missing: list[dict] = []
        for obj_id, tomb in latest.items():
            when = _py_time((tomb.get("MetaData") or {}).get("LastUpdatedTime")) or synced_at
            old = existing.get(obj_id)
            if old is None:
                missing.append(tomb)
                continue
            if old[1]:
                stats.unchanged += 1
                continue
            conn.execute(main.update().where(main.c.company_key == company_key, main.c.id == obj_id)
                         .values(is_deleted=True, deleted_at=self._time(when), synced_at=self._time(synced_at)))
            stats.deleted += 1
            if ent.is_transaction and (m := _month(old[3])):
                stats.touched_months.add(m)
        if missing:
            rows = []
            for tomb in missing:
                when = _py_time((tomb.get("MetaData") or {}).get("LastUpdatedTime")) or synced_at
                rows.append(self._tombstone_row(ent, company_key, tomb, synced_at, when))
            self._write_rows(conn, ent, main, rows, [])
            stats.deleted += len(missing)
        return stats

    def _tombstone_row(self, ent: EntityDef, company_key: str, tomb: dict, synced_at: datetime,
                       deleted_at: datetime) -> _Prepared:
        """A deleted row holding the tombstone itself (values laid out as :meth:`prepare` does)."""
        prepared = self.prepare(ent, company_key, tomb, synced_at)
        v = prepared.values
        # ... is_active, is_deleted, deleted_at, raw, row_hash, first_synced_at, synced_at
        prepared.values = (*v[:-6], True, deleted_at, *v[-4:])
        prepared.children = []
        return prepared

    def _time(self, value: datetime) -> Any:
        # SQLite: bind UTC so stored strings compare in one time zone
        return value.astimezone(UTC) if value.tzinfo is not None and self.dialect == "sqlite" else value

    def unconfirmed_ids(self, conn: Connection, entity: str | EntityDef, company_key: str, *,
                        since: datetime) -> list[str]:
        """Live rows QBO has not confirmed since ``since``: the hard-delete candidates of a full refresh."""
        main, _ = tables_for(entity)
        rows = conn.execute(sa.select(main.c.id).where(
            main.c.company_key == company_key, main.c.is_deleted == sa.false(),
            main.c.synced_at < self._time(since)).order_by(main.c.id))
        return [r[0] for r in rows]

    def mark_hard_deleted(self, conn: Connection, entity: str | EntityDef, company_key: str, ids: Sequence[str], *,
                          at: datetime) -> UpsertStats:
        """Flag rows that QBO no longer has (deleted without a tombstone CDC could see)."""
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        main, _ = tables_for(ent)
        stats = UpsertStats()
        if not ids:
            return stats
        existing = self._existing(conn, main, company_key, list(ids))
        for start in range(0, len(ids), _ID_CHUNK):
            result = conn.execute(main.update().where(
                main.c.company_key == company_key, main.c.id.in_(list(ids[start:start + _ID_CHUNK])),
                main.c.is_deleted == sa.false()).values(is_deleted=True, deleted_at=self._time(at)))
            stats.deleted += result.rowcount or 0
        if ent.is_transaction:
            stats.touched_months |= {m for v in existing.values() if (m := _month(v[3]))}
        return stats

    # ------------------------------------------------------------------------------ sync state
    def cursors(self, company_key: str, conn: Connection | None = None) -> dict[str, CursorState]:
        """Every entity's sync state for one company."""
        stmt = sa.select(sync_cursor.c.entity, sync_cursor.c.cdc_cursor, sync_cursor.c.last_full_refresh_at).where(
            sync_cursor.c.company_key == company_key)
        if conn is None:
            with self.engine.connect() as own:
                rows = own.execute(stmt).all()
        else:
            rows = conn.execute(stmt).all()
        return {r[0]: CursorState(_aware(r[1]), _aware(r[2])) for r in rows}

    def save_cursor(self, conn: Connection, company_key: str, entity: str, *, cdc_cursor: datetime | None,
                    full_refresh_at: datetime | None = None, now: datetime) -> None:
        """Store an entity's CDC cursor (and the time of a finished full refresh) in ``conn``'s transaction."""
        values: dict[str, Any] = {"cdc_cursor": self._time(cdc_cursor) if cdc_cursor else None,
                                  "updated_at": self._time(now)}
        if full_refresh_at is not None:
            values["last_full_refresh_at"] = self._time(full_refresh_at)
        self._merge(conn, sync_cursor, {"company_key": company_key, "entity": entity}, values)

    def has_rows(self, entity: str | EntityDef, company_key: str) -> bool:
        """Whether the company has any row of this entity (a first load when not)."""
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(main.c.id).where(main.c.company_key == company_key).limit(1)).first() \
                is not None

    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions a duplicate key raises here (SQLAlchemy's, and the driver's on the COPY path)."""
        dbapi = getattr(self.engine.dialect, "loaded_dbapi", None) or self.engine.dialect.dbapi
        driver_error = getattr(dbapi, "IntegrityError", None)
        return (sa.exc.IntegrityError, driver_error) if driver_error else (sa.exc.IntegrityError,)

    def progress(self, company_key: str, entity: str) -> RefreshProgress | None:
        """The full refresh in flight for this company and entity, if one crashed or is running."""
        t = full_refresh_progress
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.run_id, t.c.start_position, t.c.rows_done, t.c.started_at,
                                         t.c.updated_at).where(t.c.company_key == company_key,
                                                               t.c.entity == entity)).first()
        if row is None:
            return None
        return RefreshProgress(row[0], int(row[1]), int(row[2]), _aware(row[3]), _aware(row[4]))  # type: ignore[arg-type]

    def save_progress(self, conn: Connection, company_key: str, entity: str, *, run_id: str | None,
                      start_position: int, rows_done: int, started_at: datetime, now: datetime) -> None:
        """Record, in the page's transaction, where a full refresh continues."""
        self._merge(conn, full_refresh_progress, {"company_key": company_key, "entity": entity},
                    {"run_id": run_id, "start_position": start_position, "rows_done": rows_done,
                     "started_at": self._time(started_at), "updated_at": self._time(now)})

    def clear_progress(self, conn: Connection, company_key: str, entity: str) -> None:
        """Forget a finished (or abandoned) full refresh."""
        t = full_refresh_progress
        conn.execute(t.delete().where(t.c.company_key == company_key, t.c.entity == entity))

    def _merge(self, conn: Connection, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        stmt: Any = (postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)).values(
            **key, **values)
        stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=values)
        conn.execute(stmt)

    # ------------------------------------------------------------------------------ reading
    def counts(self, entity: str | EntityDef, company_key: str) -> dict[str, int]:
        """Rows of one company: ``{"active", "inactive", "deleted"}`` (the emulator's ``/counts`` shape)."""
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(main.c.is_deleted, main.c.is_active, sa.func.count()).where(
                main.c.company_key == company_key).group_by(main.c.is_deleted, main.c.is_active)).all()
        out = {"active": 0, "inactive": 0, "deleted": 0}
        for deleted, active, n in rows:
            out["deleted" if deleted else ("active" if active else "inactive")] += n
        return out
