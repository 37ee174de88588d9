"""Limits across processes: ``qb_company_locks`` (who lands or pushes a company) and ``qb_api_slots``.

``qb_company_locks`` only says who holds a company's lock (the lock itself is a PostgreSQL advisory
lock or a file lock, see ``qb_pipelines.store.locks``); ``qb_api_slots`` holds the requests the
store-backed rate limiter counts (``qb_pipelines.store.rate_limits``). Hand-written and
self-contained; ``test_store_migrations`` compares the result with the models on both dialects.

Revision ID: 0008_limits
Revises: 0007_feed
Create Date: 2025-01-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_limits"
down_revision: str | None = "0007_feed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qb_company_locks",
        sa.Column("company_key", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_key", "purpose", name="pk_qb_company_locks"),
    )
    op.create_table(
        "qb_api_slots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("realm_id", sa.String(32), nullable=False),
        sa.Column("batch", sa.Boolean(), nullable=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("acquired_at", sa.Double(), nullable=False),
        sa.Column("released_at", sa.Double(), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_qb_api_slots"),
    )
    op.create_index("ix_qb_api_slots_realm_id", "qb_api_slots", ["realm_id"])


def downgrade() -> None:
    op.drop_index("ix_qb_api_slots_realm_id", table_name="qb_api_slots")
    op.drop_table("qb_api_slots")
    op.drop_table("qb_company_locks")
