"""The warehouse's tables, generated from the entity registry: one per entity, its child table, sync state.

Which child table an entity gets follows its line family (:data:`CHILD_SPECS`); each spec also
says how a body's lines become child rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines
from qb_pipelines.store.warehouse.naming import (
    _COMMON_FIELDS,
    MONEY,
    PRECISE,
    RAW_JSON,
    TIMESTAMP,
    column_name,
    column_type,
    table_name,
)

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
