"""SQLAlchemy models of the integration store (SQLAlchemy 2.0 typed declarative).

Tables are prefixed ``qb_`` because the store may live in the host application's own database.
The migration ``migrations/versions/0001_connections.py`` creates exactly these tables (a test
compares them with Alembic's autogenerate); change both together.

Secrets: only ``Connection.access_token_enc`` and ``Connection.refresh_token_enc`` hold tokens,
always Fernet-encrypted (:mod:`qb_pipelines.store.crypto`). ``AdminUser.password_hash`` is an
argon2id hash. No ``__repr__`` here prints a secret column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so the migration can name the same constraints and a later
# migration can drop them on both dialects.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind of time the store keeps)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC and re-tagged on the way out. Naive datetimes are refused on the way in: a token expiry
    in an unknown zone is a bug waiting to expire someone's session.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class Tenant(Base):
    """A customer organisation of the app; it connects at most one QuickBooks company."""

    __tablename__ = "qb_tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, key={self.key!r})"


class Connection(Base):
    """A tenant's QuickBooks connection: company, connected user, encrypted tokens and state.

    One row per tenant (``tenant_id`` is unique), created by the first connect and kept for ever:
    a disconnect clears the tokens and sets the state, so the company and the history remain.
    """

    __tablename__ = "qb_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"), unique=True)
    environment: Mapped[str] = mapped_column(sa.String(20))
    realm_id: Mapped[str] = mapped_column(sa.String(32), index=True)
    company_name: Mapped[str | None] = mapped_column(sa.String(255))
    user_email: Mapped[str | None] = mapped_column(sa.String(320))
    user_given_name: Mapped[str | None] = mapped_column(sa.String(100))
    user_family_name: Mapped[str | None] = mapped_column(sa.String(100))
    access_token_enc: Mapped[str | None] = mapped_column(sa.Text)
    refresh_token_enc: Mapped[str | None] = mapped_column(sa.Text)
    access_expires_at: Mapped[datetime | None]
    refresh_expires_at: Mapped[datetime | None]
    refresh_hard_expires_at: Mapped[datetime | None]
    #: When the current refresh token was issued; a token older than a day is refreshed
    #: proactively so the 100-day rolling window never lapses on a quiet company.
    refresh_token_issued_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_error_at: Mapped[datetime | None]
    #: Consecutive failed refreshes for transient reasons (network, 5xx); reset by a success.
    refresh_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    #: Incremented at every new token pair, so readers can tell a token changed.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        # Tokens are never part of the representation, not even encrypted.
        return f"Connection(id={self.id!r}, tenant_id={self.tenant_id!r}, realm_id={self.realm_id!r}, state={self.state!r})"


class IntegrationSettings(Base):
    """A tenant's sync configuration (Setup Wizard / Settings); survives disconnects and switches."""

    __tablename__ = "qb_integration_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"), unique=True)
    #: The Setup Wizard was completed at least once.
    configured: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    entities: Mapped[dict[str, Any] | None]
    directions: Mapped[dict[str, Any] | None]
    conflict_policy: Mapped[str | None] = mapped_column(sa.String(32))
    default_income_account_id: Mapped[str | None] = mapped_column(sa.String(64))
    default_income_account_name: Mapped[str | None] = mapped_column(sa.String(255))
    default_tax_code_id: Mapped[str | None] = mapped_column(sa.String(64))
    default_tax_code_name: Mapped[str | None] = mapped_column(sa.String(255))
    mode: Mapped[str | None] = mapped_column(sa.String(20))
    #: The realm the tenant was connected to before a switch (for the "review mappings" warning).
    previous_realm_id: Mapped[str | None] = mapped_column(sa.String(32))
    mappings_need_review: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"IntegrationSettings(tenant_id={self.tenant_id!r}, configured={self.configured!r})"


class EntityMapping(Base):
    """Which QBO object an app record corresponds to, per company (kept across disconnects)."""

    __tablename__ = "qb_entity_mappings"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "realm_id", "entity", "app_id"),
        # Inbound changes arrive with QBO ids: find the app record from the QBO side too.
        sa.Index("ix_qb_entity_mappings_qbo", "tenant_id", "realm_id", "entity", "qbo_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"))
    realm_id: Mapped[str] = mapped_column(sa.String(32))
    entity: Mapped[str] = mapped_column(sa.String(64))
    app_id: Mapped[str] = mapped_column(sa.String(255))
    qbo_id: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"EntityMapping({self.entity}: app {self.app_id!r} -> qbo {self.qbo_id!r} in {self.realm_id!r})"


class AdminUser(Base):
    """A person who signs in to the admin web app (role ``admin`` or ``viewer``)."""

    __tablename__ = "qb_admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"AdminUser(id={self.id!r}, email={self.email!r}, role={self.role!r})"


class ApiUsage(Base):
    """QBO API calls per company per calendar month (Intuit meters reads monthly per app tier)."""

    __tablename__ = "qb_api_usage"

    realm_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    month: Mapped[str] = mapped_column(sa.String(7), primary_key=True)  # "YYYY-MM" (UTC)
    reads: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    writes: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConnectionEvent(Base):
    """Audit trail of a tenant's connection (connect, refresh, expiry, disconnect); never secrets."""

    __tablename__ = "qb_connection_events"
    __table_args__ = (sa.Index("ix_qb_connection_events_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)

    def __repr__(self) -> str:
        return f"ConnectionEvent(tenant_id={self.tenant_id!r}, kind={self.kind!r}, at={self.at!r})"


class CompanyLock(Base):
    """Who holds a company's ``land`` or ``push`` lock now: what a waiting run tells its user.

    Information only: the lock itself is a PostgreSQL session advisory lock or, on SQLite, a file
    lock (:mod:`qb_pipelines.store.locks`), both released by the operating system or the server
    when the holding process dies. A row left behind by a dead process is overwritten by the next
    holder and never read while the lock is free.
    """

    __tablename__ = "qb_company_locks"

    company_key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # land | push
    #: A random token of this holding, so a release never deletes a later holder's row.
    holder: Mapped[str] = mapped_column(sa.String(64))
    pid: Mapped[int]
    host: Mapped[str] = mapped_column(sa.String(255))
    #: The Dagster run (or another caller's run id); ``None`` for the command line.
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    acquired_at: Mapped[datetime]


class ApiSlot(Base):
    """One QuickBooks request of a company, in flight or recently finished, from any process.

    The store-backed rate limiter (:mod:`qb_pipelines.store.rate_limits`) counts these rows to
    keep QBO's per-company limits across processes: rows in flight (``released_at`` empty, lease
    not expired) against the 10 concurrent requests, rows that ended within the window against
    the 500 requests (``batch`` ones also against the 40 batch calls) a minute. Times are epoch
    seconds of the database's clock (PostgreSQL) or the host's (SQLite), compared by arithmetic
    in SQL; rows older than the window are deleted as acquirers go.
    """

    __tablename__ = "qb_api_slots"
    __table_args__ = (sa.Index("ix_qb_api_slots_realm_id", "realm_id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    realm_id: Mapped[str] = mapped_column(sa.String(32))
    batch: Mapped[bool]
    #: ``host:pid`` of the process that sent it (a dead local process's slots are reclaimed).
    holder: Mapped[str] = mapped_column(sa.String(300))
    acquired_at: Mapped[float] = mapped_column(sa.Double())
    released_at: Mapped[float | None] = mapped_column(sa.Double())
    #: When an unreleased slot stops counting as in flight (its process died mid-request).
    lease_until: Mapped[float] = mapped_column(sa.Double())
