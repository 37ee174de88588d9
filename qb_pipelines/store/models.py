"""SQLAlchemy models of the integration store (SQLAlchemy 2.0 typed declarative).

Tables are prefixed ``qb_`` because the store may live in the host application's own database.
The migrations under ``migrations/versions/`` create exactly these tables (a test compares them
with Alembic's autogenerate); change both together.

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
    """A customer organisation of the app; it connects at most one QuickBooks company.

    With ``QB_COMPANIES_PER_TENANT=several`` a tenant's extra companies are tenants too, whose
    ``parent_key`` names the tenant they belong to (``None`` for every ordinary tenant).
    """

    __tablename__ = "qb_tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    parent_key: Mapped[str | None] = mapped_column(sa.String(100), nullable=True, default=None)
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
    #: The tenant's first connection ever: records the app created before it are held, not pushed.
    first_connected_at: Mapped[datetime | None]
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
    #: QBO's SyncToken when both sides last agreed: an update sent with it fails (5010) exactly
    #: when QuickBooks changed the object since, which is when the conflict policy must decide.
    sync_token: Mapped[str | None] = mapped_column(sa.String(32))
    #: The values both sides last agreed on, in the app's vocabulary (the base of a three-way merge).
    agreed: Mapped[dict[str, Any] | None]
    #: The app's version those values came from.
    app_version: Mapped[int | None] = mapped_column(sa.BigInteger)
    #: QBO's MetaData.LastUpdatedTime at the agreement.
    qbo_updated_at: Mapped[datetime | None]
    #: ``active``, ``inactive`` (made inactive), ``deleted``, ``voided`` (in QBO).
    state: Mapped[str] = mapped_column(sa.String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"EntityMapping({self.entity}: app {self.app_id!r} -> qbo {self.qbo_id!r} in {self.realm_id!r})"


class OutboxRow(Base):
    """One version of one app record the app asked to sync to QuickBooks (the transactional outbox).

    The app writes rows (through the records API or inside its own transaction); push runs read
    them in ``id`` order per company, send them and record the outcome here. See
    :mod:`qb_pipelines.store.outbox` for the statuses and the enqueue rules.
    """

    __tablename__ = "qb_outbox"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "entity", "app_id", "version"),
        sa.Index("ix_qb_outbox_record", "tenant_id", "entity", "app_id"),
        sa.Index("ix_qb_outbox_status", "status", "next_attempt_at"),
        sa.Index("ix_qb_outbox_requestid", "requestid"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(sa.String(64))
    app_id: Mapped[str] = mapped_column(sa.String(255))
    version: Mapped[int] = mapped_column(sa.BigInteger)
    op: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any] | None]
    #: ``qbo_id`` the app sent to link its record to an existing QBO object (nothing is pushed).
    link_qbo_id: Mapped[str | None] = mapped_column(sa.String(64))
    #: When the record was created in the app (held when before the first connection).
    record_created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(sa.String(16))
    #: Why the row waits or what happened, in words for the dashboard.
    reason: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    next_step: Mapped[str | None] = mapped_column(sa.Text)
    intuit_tid: Mapped[str | None] = mapped_column(sa.String(64))
    realm_id: Mapped[str | None] = mapped_column(sa.String(32))
    qbo_id: Mapped[str | None] = mapped_column(sa.String(64))
    sync_token: Mapped[str | None] = mapped_column(sa.String(32))
    #: The batch call the row was sent in (QBO replays a requestid's first answer) and its bId.
    requestid: Mapped[str | None] = mapped_column(sa.String(36))
    bid: Mapped[str | None] = mapped_column(sa.String(10))
    #: The exact batch item sent, so a resumed batch is byte for byte the first one.
    request_body: Mapped[dict[str, Any] | None]
    #: A conflict or an ambiguous match waiting for an admin: the values per field, or candidates.
    review: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    synced_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"OutboxRow(#{self.id} {self.entity} {self.app_id!r} v{self.version} {self.op} {self.status})"


class ApiKey(Base):
    """A tenant's key for the records API. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "qb_api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"), index=True)
    #: The key's first characters, to tell keys apart in lists (``qbk_3f9a``); not a secret.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, tenant_id={self.tenant_id!r}, prefix={self.prefix!r})"


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


class FeedEntry(Base):
    """One change made in QuickBooks, told to the app in its own vocabulary (the change feed).

    Entries are appended by landing runs, in the order QuickBooks' changes landed; ``seq`` is the
    cursor an app (or the callback deliverer) reads after. See :mod:`qb_pipelines.store.feed`.
    """

    __tablename__ = "qb_change_feed"
    __table_args__ = (
        sa.Index("ix_qb_change_feed_tenant_seq", "tenant_id", "seq"),
        sa.Index("ix_qb_change_feed_object", "tenant_id", "entity", "qbo_id"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"))
    realm_id: Mapped[str] = mapped_column(sa.String(32))
    entity: Mapped[str] = mapped_column(sa.String(64))
    #: ``upsert``, ``delete``, ``void`` or ``merge``.
    op: Mapped[str] = mapped_column(sa.String(16))
    app_id: Mapped[str | None] = mapped_column(sa.String(255))
    qbo_id: Mapped[str] = mapped_column(sa.String(64))
    #: The record in the app's vocabulary (for a merge: ``{"into_qbo_id", "into_app_id"}``).
    data: Mapped[dict[str, Any] | None]
    #: QBO's SyncToken of the change (a repeated landing of the same version adds nothing).
    sync_token: Mapped[str | None] = mapped_column(sa.String(32))
    #: When the change was made in QuickBooks (MetaData.LastUpdatedTime).
    at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"FeedEntry(#{self.seq} {self.entity} {self.op} qbo {self.qbo_id!r} app {self.app_id!r})"


class FeedCallback(Base):
    """A tenant's signed callback: where the feed is POSTed, and how far delivery got."""

    __tablename__ = "qb_feed_callbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_tenants.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    #: The HMAC key, Fernet-encrypted like the tokens.
    secret_enc: Mapped[str] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    #: The last feed ``seq`` the app acknowledged (2xx).
    cursor: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"FeedCallback(tenant_id={self.tenant_id!r}, cursor={self.cursor!r}, enabled={self.enabled!r})"


class WebSession(Base):
    """A signed-in session of the admin web app, revocable here whatever the browser holds.

    The browser's signed cookie carries a random session id; the store keeps only its SHA-256
    (``id``), so a copy of this table opens no session. A session ends at ``expires_at`` (absolute
    lifetime), after an idle gap longer than the app's idle timeout since ``last_seen_at``, or when
    ``revoked_at`` is set: sign-out, a password change, the user removed.
    """

    __tablename__ = "qb_web_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # sha256 hex of the cookie's session id
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("qb_admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    #: Why it was revoked: ``signed_out``, ``password_changed``, ``user_removed``, ``idle``, ``expired``.
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(32))

    def __repr__(self) -> str:
        return f"WebSession(user_id={self.user_id!r}, expires_at={self.expires_at!r}, revoked_at={self.revoked_at!r})"


class SigninThrottle(Base):
    """Sign-in failures of one account (e-mail) or one client address, in the current window.

    Shared by every web worker (the store is the only place all of them see): a failure counted
    by one process slows down and locks the attempts another process receives.
    """

    __tablename__ = "qb_signin_throttle"

    scope: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # "account" or "address"
    key: Mapped[str] = mapped_column(sa.String(320), primary_key=True)  # normalized e-mail or client address
    #: Attempts that were not (yet) successes since ``window_started_at``: an attempt counts as a
    #: failure the moment its password check starts, so parallel guesses cannot slip past the limit.
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    window_started_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime] = mapped_column(index=True)
    locked_until: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"SigninThrottle({self.scope}:{self.key!r}, failures={self.failures!r}, locked_until={self.locked_until!r})"


class SyncRun(Base):
    """One landing of one company (Dagster run or ``qb-pipelines sync``): when, how much, ok or failed."""

    __tablename__ = "qb_sync_runs"
    __table_args__ = (sa.Index("ix_qb_sync_runs_company_started", "company_key", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_key: Mapped[str] = mapped_column(sa.String(160))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    ok: Mapped[bool]
    #: ``incremental`` or ``full`` (as asked; an entity may still have been refreshed in full).
    mode: Mapped[str | None] = mapped_column(sa.String(40))
    #: Objects inserted, updated or flagged deleted in the warehouse.
    objects: Mapped[int] = mapped_column(default=0, server_default="0")
    api_calls: Mapped[int] = mapped_column(default=0, server_default="0")
    #: What went wrong, one secret-free line (``None`` when ok).
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Who landed: ``dagster`` or ``cli``.
    source: Mapped[str] = mapped_column(sa.String(32))
    run_id: Mapped[str | None] = mapped_column(sa.String(64))

    def __repr__(self) -> str:
        return f"SyncRun({self.company_key!r}, started_at={self.started_at!r}, ok={self.ok!r})"


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
