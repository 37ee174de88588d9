"""Admin web app: server-side sessions, sign-in throttling, and the record of each company's landings.

* ``qb_web_sessions``: one row per signed-in session (the SHA-256 of the cookie's session id),
  revoked at sign-out, password change or user removal; idle and absolute expiry.
* ``qb_signin_throttle``: failed sign-ins per account and per client address, shared by every
  web worker.
* ``qb_sync_runs``: each landing of a company (started, finished, objects, ok or failed, error),
  shown on the QuickBooks Online card.

Hand-written and self-contained (it does not import the models); ``test_store_migrations``
compares the result with the models on SQLite and PostgreSQL.

Revision ID: 0005_web
Revises: 0004_webhook_inbox
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_web"
down_revision: str | None = "0004_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    # Timezone-aware timestamps (timestamptz on PostgreSQL; naive UTC on SQLite).
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "qb_web_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_qb_web_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["qb_admin_users.id"], name="fk_qb_web_sessions_user_id_qb_admin_users",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_qb_web_sessions_user_id", "qb_web_sessions", ["user_id"])
    op.create_table(
        "qb_signin_throttle",
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        _ts("window_started_at"),
        _ts("last_attempt_at"),
        _ts("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_qb_signin_throttle"),
    )
    op.create_index("ix_qb_signin_throttle_last_attempt_at", "qb_signin_throttle", ["last_attempt_at"])
    op.create_table(
        "qb_sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_key", sa.String(160), nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(40), nullable=True),
        sa.Column("objects", sa.Integer(), server_default="0", nullable=False),
        sa.Column("api_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_qb_sync_runs"),
    )
    op.create_index("ix_qb_sync_runs_company_started", "qb_sync_runs", ["company_key", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_qb_sync_runs_company_started", table_name="qb_sync_runs")
    op.drop_table("qb_sync_runs")
    op.drop_index("ix_qb_signin_throttle_last_attempt_at", table_name="qb_signin_throttle")
    op.drop_table("qb_signin_throttle")
    op.drop_index("ix_qb_web_sessions_user_id", table_name="qb_web_sessions")
    op.drop_table("qb_web_sessions")
