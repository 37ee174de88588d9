"""Warehouse: one table per QuickBooks entity, line and link tables, and the sync state.

Frozen snapshot of ``qb_pipelines/store/warehouse.py`` as the entity registry stood when it was
written: it does not import the warehouse module, so it keeps creating exactly these tables when
the registry moves on. An entity added to the registry later needs a new migration;
``test_warehouse_schema`` compares the migrated schema with ``warehouse.metadata`` on SQLite and
PostgreSQL and names what is missing.

Revision ID: 0002_warehouse
Revises: 0001_connections
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_warehouse"
down_revision: str | None = "0001_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Typed columns of each entity table: (column, kind, the QBO field it holds).
ENTITY_TABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "qbo_company_info": (
        ("company_name", "text", "CompanyName"),
        ("country", "text", "Country"),
    ),
    "qbo_preferences": (),
    "qbo_account": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("acct_num", "text", "AcctNum"),
        ("classification", "text", "Classification"),
        ("account_type", "text", "AccountType"),
        ("account_sub_type", "text", "AccountSubType"),
        ("current_balance", "money", "CurrentBalance"),
        ("parent_ref_id", "ref", "ParentRef.value"),
    ),
    "qbo_tax_rate": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("rate_value", "precise", "RateValue"),
    ),
    "qbo_tax_code": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("taxable", "bool", "Taxable"),
    ),
    "qbo_term": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("due_days", "int", "DueDays"),
    ),
    "qbo_payment_method": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("type", "text", "Type"),
    ),
    "qbo_class": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("fully_qualified_name", "text", "FullyQualifiedName"),
        ("parent_ref_id", "ref", "ParentRef.value"),
    ),
    "qbo_department": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("fully_qualified_name", "text", "FullyQualifiedName"),
        ("parent_ref_id", "ref", "ParentRef.value"),
    ),
    "qbo_customer": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("display_name", "text", "DisplayName"),
        ("company_name", "text", "CompanyName"),
        ("given_name", "text", "GivenName"),
        ("family_name", "text", "FamilyName"),
        ("primary_email", "text", "PrimaryEmailAddr.Address"),
        ("balance", "money", "Balance"),
        ("balance_with_jobs", "money", "BalanceWithJobs"),
        ("job", "bool", "Job"),
        ("parent_ref_id", "ref", "ParentRef.value"),
        ("level", "int", "Level"),
        ("currency", "currency", "CurrencyRef.value"),
    ),
    "qbo_vendor": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("display_name", "text", "DisplayName"),
        ("company_name", "text", "CompanyName"),
        ("primary_email", "text", "PrimaryEmailAddr.Address"),
        ("balance", "money", "Balance"),
        ("currency", "currency", "CurrencyRef.value"),
    ),
    "qbo_employee": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("display_name", "text", "DisplayName"),
        ("given_name", "text", "GivenName"),
        ("family_name", "text", "FamilyName"),
    ),
    "qbo_item": (
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("name", "text", "Name"),
        ("sku", "text", "Sku"),
        ("type", "text", "Type"),
        ("unit_price", "precise", "UnitPrice"),
        ("purchase_cost", "precise", "PurchaseCost"),
        ("qty_on_hand", "precise", "QtyOnHand"),
        ("income_account_ref_id", "ref", "IncomeAccountRef.value"),
        ("parent_ref_id", "ref", "ParentRef.value"),
    ),
    "qbo_invoice": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("due_date", "date", "DueDate"),
        ("balance", "money", "Balance"),
        ("email_status", "text", "EmailStatus"),
    ),
    "qbo_estimate": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("txn_status", "text", "TxnStatus"),
        ("expiration_date", "date", "ExpirationDate"),
    ),
    "qbo_payment": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("unapplied_amt", "money", "UnappliedAmt"),
        ("deposit_to_account_ref_id", "ref", "DepositToAccountRef.value"),
        ("payment_ref_num", "text", "PaymentRefNum"),
    ),
    "qbo_sales_receipt": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("deposit_to_account_ref_id", "ref", "DepositToAccountRef.value"),
    ),
    "qbo_credit_memo": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("balance", "money", "Balance"),
        ("remaining_credit", "money", "RemainingCredit"),
    ),
    "qbo_refund_receipt": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("deposit_to_account_ref_id", "ref", "DepositToAccountRef.value"),
    ),
    "qbo_bill": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("due_date", "date", "DueDate"),
        ("balance", "money", "Balance"),
        ("ap_account_ref_id", "ref", "APAccountRef.value"),
    ),
    "qbo_bill_payment": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("pay_type", "text", "PayType"),
    ),
    "qbo_vendor_credit": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("balance", "money", "Balance"),
    ),
    "qbo_purchase": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("payment_type", "text", "PaymentType"),
        ("account_ref_id", "ref", "AccountRef.value"),
        ("entity_ref_id", "ref", "EntityRef.value"),
        ("credit", "bool", "Credit"),
    ),
    "qbo_deposit": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("deposit_to_account_ref_id", "ref", "DepositToAccountRef.value"),
    ),
    "qbo_journal_entry": (
        ("doc_number", "text", "DocNumber"),
        ("txn_date", "date", "TxnDate"),
        ("total_amt", "money", "TotalAmt"),
        ("currency", "currency", "CurrencyRef.value"),
        ("private_note", "text", "PrivateNote"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
        ("adjustment", "bool", "Adjustment"),
    ),
    "qbo_time_activity": (
        ("txn_date", "date", "TxnDate"),
        ("name_of", "text", "NameOf"),
        ("hours", "int", "Hours"),
        ("minutes", "int", "Minutes"),
        ("customer_ref_id", "ref", "CustomerRef.value"),
        ("employee_ref_id", "ref", "EmployeeRef.value"),
        ("vendor_ref_id", "ref", "VendorRef.value"),
        ("item_ref_id", "ref", "ItemRef.value"),
        ("billable_status", "text", "BillableStatus"),
        ("qbo_created_at", "time", "MetaData.CreateTime"),
        ("qbo_updated_at", "time", "MetaData.LastUpdatedTime"),
    ),
}

#: Child tables: item lines, and payment allocations (one row per LinkedTxn).
LINE_TABLES = (
    "qbo_invoice_line", "qbo_estimate_line", "qbo_sales_receipt_line", "qbo_credit_memo_line",
    "qbo_refund_receipt_line", "qbo_bill_line", "qbo_vendor_credit_line", "qbo_purchase_line", "qbo_deposit_line",
    "qbo_journal_entry_line",
)
LINK_TABLES = ("qbo_payment_link", "qbo_bill_payment_link")


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


def _entity_table(name: str, typed: tuple[tuple[str, str, str], ...]) -> None:
    entity = name.removeprefix("qbo_")
    title = "".join(part.capitalize() for part in entity.split("_"))
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
        comment=f"QuickBooks {title} objects",
    )
    columns = {col for col, _, _ in typed}
    if "qbo_updated_at" in columns:
        op.create_index(f"ix_{name}_updated", name, ["company_key", "qbo_updated_at"])
    if "txn_date" in columns:
        op.create_index(f"ix_{name}_txn_date", name, ["company_key", "txn_date"])


def _parent_title(name: str) -> str:
    return "".join(part.capitalize() for part in name.removeprefix("qbo_").rsplit("_", 1)[0].split("_"))


def _line_table(name: str) -> None:
    money = sa.Numeric(18, 2)
    precise = sa.Numeric(20, 7)
    op.create_table(
        name,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {_parent_title(name)} Id"),
        sa.Column("line_no", sa.Integer(), nullable=False, comment="1-based position in Line"),
        sa.Column("line_id", sa.String(32), nullable=True, comment="QBO's line Id (none on SubTotal lines)"),
        sa.Column("detail_type", sa.String(64), nullable=True),
        sa.Column("amount", money, nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("account_id", sa.String(32), nullable=True),
        sa.Column("qty", precise, nullable=True),
        sa.Column("unit_price", precise, nullable=True),
        sa.Column("tax_code", sa.String(32), nullable=True),
        sa.Column("class_id", sa.String(32), nullable=True),
        sa.Column("posting_type", sa.String(16), nullable=True, comment="Debit/Credit (journal entries)"),
        sa.Column("raw", _raw(), nullable=False),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", name=f"pk_{name}"),
        comment=f"lines of QuickBooks {_parent_title(name)} objects",
    )


def _link_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("txn_id", sa.String(32), nullable=False, comment=f"the {_parent_title(name)} Id"),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("link_no", sa.Integer(), nullable=False),
        sa.Column("linked_txn_id", sa.String(32), nullable=True),
        sa.Column("linked_txn_type", sa.String(32), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True, comment="the line's Amount applied"),
        sa.PrimaryKeyConstraint("company_key", "txn_id", "line_no", "link_no", name=f"pk_{name}"),
        comment=f"what each {_parent_title(name)} line paid (LinkedTxn)",
    )


def upgrade() -> None:
    op.create_table(
        "qbo_sync_cursor",
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        _ts("cdc_cursor", comment="next CDC changedSince (QBO time)"),
        _ts("last_full_refresh_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("company_key", "entity", name="pk_qbo_sync_cursor"),
    )
    op.create_table(
        "qbo_full_refresh_progress",
        sa.Column("company_key", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("start_position", sa.Integer(), nullable=False, comment="next STARTPOSITION to read (1-based)"),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        _ts("started_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("company_key", "entity", name="pk_qbo_full_refresh_progress"),
    )
    for name, typed in ENTITY_TABLES.items():
        _entity_table(name, typed)
    for name in LINE_TABLES:
        _line_table(name)
    for name in LINK_TABLES:
        _link_table(name)


def downgrade() -> None:
    for name in (*LINK_TABLES, *LINE_TABLES, *ENTITY_TABLES):
        op.drop_table(name)
    op.drop_table("qbo_full_refresh_progress")
    op.drop_table("qbo_sync_cursor")
