"""Warehouse: the entities added after 0002 (issue 10 §16) and their child tables.

PurchaseOrder (with its lines), Transfer, CreditCardPayment, TaxAgency, Budget (with
``qbo_budget_detail``), RecurringTransaction, ExchangeRate and Attachable (with
``qbo_attachable_ref``), and the tax agency a tax rate names (``qbo_tax_rate.agency_ref_id``).

A frozen snapshot like ``0002_warehouse``: it does not import ``store.warehouse``, so it keeps
creating exactly these tables when the registry moves on; ``test_warehouse_schema`` compares the
migrated schema with ``warehouse.metadata`` on SQLite and PostgreSQL.

Revision ID: 0009_more_entities
Revises: 0008_limits
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_more_entities"
down_revision: str | None = "0008_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TXN = (
    ("doc_number", "text", "DocNumber"),
    ("txn_date", "date", "TxnDate"),
    ("total_amt", "money", "TotalAmt"),
    ("currency", "currency", "CurrencyRef.value"),
    ("private_note", "text", "PrivateNote"),
    ("qbo_created_at", "time", "MetaData.CreateTime"),
    ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
)

#: (table, entity name for the comment, typed columns: (column, kind, the QBO field it holds)).
ENTITY_TABLES: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("qbo_tax_agency", "TaxAgency", (
        ("display_name", "text", "DisplayName"),
        ("tax_tracked_on_sales", "bool", "TaxTrackedOnSales"),
        ("tax_tracked_on_purchases", "bool", "TaxTrackedOnPurchases"),
        ("tax_registration_number", "text", "TaxRegistrationNumber"),
        ("last_file_date", "date", "LastFileDate"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
    ("qbo_purchase_order", "PurchaseOrder", (
        *_TXN,
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("ap_account_ref_id", "ref", "APAccountRef.value"),
        ("po_status", "text", "POStatus"),
        ("due_date", "date", "DueDate"),
        ("email_status", "text", "EmailStatus"),
    )),
    ("qbo_transfer", "Transfer", (
        ("txn_date", "date", "TxnDate"),
        ("amount", "money", "Amount"),
        ("from_account_ref_id", "ref", "FromAccountRef.value"),
        ("to_account_ref_id", "ref", "ToAccountRef.value"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
    ("qbo_credit_card_payment", "CreditCardPayment", (
        ("txn_date", "date", "TxnDate"),
        ("amount", "money", "Amount"),
        ("bank_account_ref_id", "ref", "BankAccountRef.value"),
        ("credit_card_account_ref_id", "ref", "CreditCardAccountRef.value"),
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("check_num", "text", "CheckNum"),
        ("print_status", "text", "PrintStatus"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
    ("qbo_recurring_transaction", "RecurringTransaction", (
        ("type", "text", "Type"),
        ("recurring_info_name", "text", "RecurringInfo.Name"),
        ("recurring_info_recur_type", "text", "RecurringInfo.RecurType"),
        ("recurring_info_active", "bool", "RecurringInfo.Active"),
        ("recurring_info_schedule_info_interval_type", "text", "RecurringInfo.ScheduleInfo.IntervalType"),
        ("recurring_info_schedule_info_num_interval", "int", "RecurringInfo.ScheduleInfo.NumInterval"),
        ("recurring_info_schedule_info_next_date", "date", "RecurringInfo.ScheduleInfo.NextDate"),
        ("recur_data_ref_id", "ref", "RecurDataRef.value"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
    ("qbo_budget", "Budget", (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("start_date", "date", "StartDate"),
        ("end_date", "date", "EndDate"),
        ("budget_type", "text", "BudgetType"),
        ("budget_entry_type", "text", "BudgetEntryType"),
    )),
    ("qbo_exchange_rate", "ExchangeRate", (
        ("source_currency_code", "text", "SourceCurrencyCode"),
        ("target_currency_code", "text", "TargetCurrencyCode"),
        ("as_of_date", "date", "AsOfDate"),
        ("rate", "precise", "Rate"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
    ("qbo_attachable", "Attachable", (
        ("file_name", "text", "FileName"),
        ("note", "text", "Note"),
        ("category", "text", "Category"),
        ("content_type", "text", "ContentType"),
        ("size", "int", "Size"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    )),
)


def _type(kind: str) -> sa.types.TypeEngine:
    return {
        "text": sa.String(),
        "ref": sa.String(32),
        "currency": sa.String(3),
        "money": sa.Numeric(18, 2),
        "precise": sa.Numeric(20, 7),
        "date": sa.Date(),
        "time": sa.DateTime(timezone=True),
        "bool": sa.Boolean(),
        "int": sa.Integer(),
    }[kind]


def _raw() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = True, comment: str | None = None) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def _entity_table(name: str, entity: str, typed: tuple[tuple[str, str, str], ...]) -> None:
    op.create_table(
        name,
        sa.Column("company_key", sa.String(64), nullable=False, comment="the company partition"),
        sa.Column("id", sa.String(32), nullable=False, comment="QBO Id"),
        sa.Column("sync_token", sa.String(16), nullable=True),
        *(sa.Column(col, _type(kind), nullable=True, comment=path) for col, kind, path in typed),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true(),
                  comment="QBO's Active (name lists); true for other objects"),
        sa.Column("is_deleted", sa.Boolean(), nullable=False, server_default=sa.false(),
                  comment="deleted in QBO (tombstone, merge, or missing from a full refresh)"),
        _ts("deleted_at"),
        sa.Column("raw", _raw(), nullable=False, comment="the object as QBO sent it"),
        sa.Column("row_hash", sa.String(32), nullable=True, comment="digest of raw: skip unchanged rows"),
        _ts("first_synced_at", nullable=False),
        _ts("synced_at", nullable=False, comment="last time QBO confirmed this row"),
        sa.PrimaryKeyConstraint("company_key", "id", name=f"pk_{name}"),
        comment=f"QuickBooks {entity} objects",
    )
    columns = {col for col, _, _ in typed}
    if "qbo_updated_at" in columns:
        op.create_index(f"ix_{name}_updated", name, ["company_key", "qbo_updated_at"])
    if "txn_date" in columns:
        op.create_index(f"ix_{name}_txn_date", name, ["company_key", "txn_date"])


def upgrade() -> None:
    for name, entity, typed in ENTITY_TABLES:
        _entity_table(name, entity, typed)
    op.create_table(
        "qbo_purchase_order_line",
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment="the PurchaseOrder Id"),
        sa.Column("line_no", sa.Integer(), nullable=False, comment="1-based position in Line"),
        sa.Column("line_id", sa.String(32), nullable=True, comment="QBO's line Id (none on SubTotal lines)"),
        sa.Column("detail_type", sa.String(64), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("qty", sa.Numeric(20, 7), nullable=True),
        sa.Column("unit_price", sa.Numeric(20, 7), nullable=True),
        sa.Column("tax_code", sa.String(32), nullable=True),
        sa.Column("class_id", sa.String(32), nullable=True),
        sa.Column("posting_type", sa.String(16), nullable=True, comment="Debit/Credit (journal entries)"),
        sa.Column("raw", _raw(), nullable=False),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name="pk_qbo_purchase_order_line"),
        comment="lines of QuickBooks PurchaseOrder objects",
    )
    op.create_table(
        "qbo_budget_detail",
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment="the Budget Id"),
        sa.Column("line_no", sa.Integer(), nullable=False, comment="1-based position in BudgetDetail"),
        sa.Column("budget_date", sa.Date(), nullable=True, comment="first day of the period budgeted"),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("customer_id", sa.String(32), nullable=True),
        sa.Column("class_id", sa.String(32), nullable=True),
        sa.Column("department_id", sa.String(32), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name="pk_qbo_budget_detail"),
        comment="amounts of QuickBooks Budget objects, per account and period (BudgetDetail)",
    )
    op.create_table(
        "qbo_attachable_ref",
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment="the Attachable Id"),
        sa.Column("line_no", sa.Integer(), nullable=False, comment="1-based position in AttachableRef"),
        sa.Column("entity_type", sa.String(64), nullable=True, comment="what it is attached to: Invoice, Bill..."),
        sa.Column("entity_id", sa.String(32), nullable=True),
        sa.Column("include_on_send", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name="pk_qbo_attachable_ref"),
        comment="the objects each QuickBooks Attachable belongs to (AttachableRef)",
    )
    with op.batch_alter_table("qbo_tax_rate") as batch:
        batch.add_column(sa.Column("agency_ref_id", sa.String(32), nullable=True, comment="AgencyRef.value"))


def downgrade() -> None:
    with op.batch_alter_table("qbo_tax_rate") as batch:
        batch.drop_column("agency_ref_id")
    for name in ("qbo_attachable_ref", "qbo_budget_detail", "qbo_purchase_order_line"):
        op.drop_table(name)
    for name, _entity, _typed in reversed(ENTITY_TABLES):
        op.drop_table(name)
