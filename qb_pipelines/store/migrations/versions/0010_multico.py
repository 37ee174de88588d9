"""Several companies per tenant: ``qb_tenants.parent_key``.

With ``QB_COMPANIES_PER_TENANT=several`` each extra QuickBooks company of a tenant is a company
connection tenant: a tenant row whose ``parent_key`` names the tenant it belongs to, so it keeps
its own card, partition, settings, mappings, outbox, feed and API key. ``NULL`` for every
ordinary tenant. Hand-written; ``test_store_migrations`` compares the result with the models.

Revision ID: 0010_multico
Revises: 0009_more_entities
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_multico"
down_revision: str | None = "0009_more_entities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("qb_tenants") as batch:
        batch.add_column(sa.Column("parent_key", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("qb_tenants") as batch:
        batch.drop_column("parent_key")
