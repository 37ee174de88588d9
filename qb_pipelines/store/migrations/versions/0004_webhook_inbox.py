"""Webhook inbox: ``qb_webhook_event``, every change QuickBooks announced, stored once, drained by seq.

Hand-written and self-contained (it does not import ``qb_pipelines.store.webhook_inbox``), so it
keeps creating exactly this table when the module moves on; ``test_webhook_inbox`` compares the
result with the model on SQLite and PostgreSQL.

Revision ID: 0004_webhook_inbox
Revises: 0003_reports
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_webhook_inbox"
down_revision: str | None = "0003_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qb_webhook_event",
        # BIGINT on PostgreSQL (a sequence); INTEGER PRIMARY KEY AUTOINCREMENT on SQLite, so a
        # seq is never reused after pruning and drain cursors stay valid.
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("deleted_id", sa.String(64), nullable=True),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("realm_connected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_qb_webhook_event"),
        sa.UniqueConstraint("dedupe_key", name="uq_qb_webhook_event_dedupe_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_qb_webhook_event_received_at", "qb_webhook_event", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_qb_webhook_event_received_at", table_name="qb_webhook_event")
    op.drop_table("qb_webhook_event")
