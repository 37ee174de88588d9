"""The change feed (QuickBooks to the app) and the tenants' signed callbacks.

Revision ID: 0007_feed
Revises: 0006_push
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_feed"
down_revision: str | None = "0006_push"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "qb_change_feed",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("app_id", sa.String(255), nullable=True),
        sa.Column("qbo_id", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("sync_token", sa.String(32), nullable=True),
        sa.Column("at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["qb_tenants.id"], name="fk_qb_change_feed_tenant_id_qb_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("seq", name="pk_qb_change_feed"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_qb_change_feed_tenant_seq", "qb_change_feed", ["tenant_id", "seq"])
    op.create_index("ix_qb_change_feed_object", "qb_change_feed", ["tenant_id", "entity", "qbo_id"])
    op.create_table(
        "qb_feed_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_delivered_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["qb_tenants.id"], name="fk_qb_feed_callbacks_tenant_id_qb_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_qb_feed_callbacks"),
        sa.UniqueConstraint("tenant_id", name="uq_qb_feed_callbacks_tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("qb_feed_callbacks")
    op.drop_index("ix_qb_change_feed_object", table_name="qb_change_feed")
    op.drop_index("ix_qb_change_feed_tenant_seq", table_name="qb_change_feed")
    op.drop_table("qb_change_feed")
