"""Push: the outbox, API keys, mappings with the values both sides agreed on, first connection time.

Hand-written and self-contained; ``test_store_migrations`` compares the result with the models on
SQLite and PostgreSQL.

Revision ID: 0006_push
Revises: 0005_web
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_push"
down_revision: str | None = "0005_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("qb_connections") as batch:
        batch.add_column(sa.Column("first_connected_at", TZ, nullable=True))
    # Connections made before this migration: their last connect is the best first-connect known.
    op.execute("UPDATE qb_connections SET first_connected_at = connected_at")

    with op.batch_alter_table("qb_entity_mappings") as batch:
        batch.add_column(sa.Column("sync_token", sa.String(32), nullable=True))
        batch.add_column(sa.Column("agreed", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("app_version", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("qbo_updated_at", TZ, nullable=True))
        batch.add_column(sa.Column("state", sa.String(16), server_default="active", nullable=False))

    op.create_table(
        "qb_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("link_qbo_id", sa.String(64), nullable=True),
        sa.Column("record_created_at", TZ, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("next_step", sa.Text(), nullable=True),
        sa.Column("intuit_tid", sa.String(64), nullable=True),
        sa.Column("realm_id", sa.String(32), nullable=True),
        sa.Column("qbo_id", sa.String(64), nullable=True),
        sa.Column("sync_token", sa.String(32), nullable=True),
        sa.Column("requestid", sa.String(36), nullable=True),
        sa.Column("bid", sa.String(10), nullable=True),
        sa.Column("request_body", sa.JSON(), nullable=True),
        sa.Column("review", sa.JSON(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("synced_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["qb_tenants.id"], name="fk_qb_outbox_tenant_id_qb_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_qb_outbox"),
        sa.UniqueConstraint("tenant_id", "entity", "app_id", "version", name="uq_qb_outbox_tenant_id_entity_app_id_version"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_qb_outbox_record", "qb_outbox", ["tenant_id", "entity", "app_id"])
    op.create_index("ix_qb_outbox_status", "qb_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_qb_outbox_requestid", "qb_outbox", ["requestid"])

    op.create_table(
        "qb_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["qb_tenants.id"], name="fk_qb_api_keys_tenant_id_qb_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_qb_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_qb_api_keys_key_hash"),
    )
    op.create_index("ix_qb_api_keys_tenant_id", "qb_api_keys", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_qb_api_keys_tenant_id", table_name="qb_api_keys")
    op.drop_table("qb_api_keys")
    op.drop_index("ix_qb_outbox_requestid", table_name="qb_outbox")
    op.drop_index("ix_qb_outbox_status", table_name="qb_outbox")
    op.drop_index("ix_qb_outbox_record", table_name="qb_outbox")
    op.drop_table("qb_outbox")
    with op.batch_alter_table("qb_entity_mappings") as batch:
        for column in ("state", "qbo_updated_at", "app_version", "agreed", "sync_token"):
            batch.drop_column(column)
    with op.batch_alter_table("qb_connections") as batch:
        batch.drop_column("first_connected_at")
