"""Reports: ``qbo_report_row``, the flattened QuickBooks reports (one row per report row and column).

Frozen copy of ``qb_pipelines/store/report_tables.py`` as written with this migration: it does
not import that module, so it keeps creating exactly this table when the module moves on.

Revision ID: 0003_reports
Revises: 0002_warehouse
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_reports"
down_revision: str | None = "0002_warehouse"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qbo_report_row",
        sa.Column("company_key", sa.String(64), nullable=False, comment="the company partition (realm or tenant key)"),
        sa.Column("report", sa.String(40), nullable=False, comment="ProfitAndLoss, BalanceSheet, TrialBalance..."),
        sa.Column("period", sa.String(7), nullable=False, comment="the month partition, YYYY-MM"),
        sa.Column("row_no", sa.Integer(), nullable=False, comment="1-based position of the row in the report"),
        sa.Column("section_path", sa.Text(), nullable=False,
                  comment="enclosing sections, e.g. 'Income > Landscaping Services'"),
        sa.Column("group", sa.String(64), nullable=True, comment="QBO's section group: Income, AR, GrandTotal..."),
        sa.Column("row_type", sa.String(16), nullable=False, comment="Data, Summary or Header"),
        sa.Column("account_id", sa.String(64), nullable=True,
                  comment="the first cell's id: an Account Id, or a Customer Id in customer reports"),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("column_key", sa.String(100), nullable=False, comment="ColKey (total, a month, Debit...)"),
        sa.Column("column_title", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True, comment="money value; NULL for a blank cell"),
        sa.Column("raw_value", sa.Text(), nullable=False, comment="the text QBO sent"),
        sa.PrimaryKeyConstraint("company_key", "report", "period", "row_no", "column_key", name="pk_qbo_report_row"),
    )


def downgrade() -> None:
    op.drop_table("qbo_report_row")
