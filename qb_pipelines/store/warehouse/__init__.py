"""The warehouse: one SQL table per QuickBooks entity, generated from the entity registry.

The package's rooms: :mod:`.naming` (column names and types), :mod:`.schema` (the tables),
:mod:`.values` (values per dialect, COPY text), :mod:`.writer` (upserts, deletes as flags) and
:mod:`.state` (CDC cursors, refreshes in flight, counts);
this module re-exports what the rest of the project uses.

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

from qb_pipelines.store.warehouse.naming import (
    BOOLEAN_FIELDS,
    INTEGER_FIELDS,
    LINK_ENTITIES,
    column_name,
    column_type,
    snake,
    table_name,
)
from qb_pipelines.store.warehouse.schema import (
    CHILD_SPECS,
    child_spec,
    create_tables,
    full_refresh_progress,
    metadata,
    sync_cursor,
    tables_for,
)
from qb_pipelines.store.warehouse.state import CursorState, RefreshProgress
from qb_pipelines.store.warehouse.writer import PreparedBatch, UpsertStats, WarehouseWriter

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
    "child_spec",
    "column_name",
    "column_type",
    "create_tables",
    "full_refresh_progress",
    "metadata",
    "snake",
    "sync_cursor",
    "table_name",
    "tables_for",
]
