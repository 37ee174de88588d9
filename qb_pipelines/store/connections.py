"""The connections store: each tenant's QuickBooks connection, its tokens, state and settings.

What it guarantees, because a QuickBooks connection that dies silently is the commonest
complaint about existing connectors:

* **Tokens are never lost nor shown.** Access and refresh tokens are Fernet-encrypted at rest
  (:class:`~qb_pipelines.store.crypto.SecretBox`); views, representations and the audit trail
  never carry them. A rotated refresh token is committed before the new access token is handed
  to anyone, so a crash after a refresh cannot strand the connection.
* **One refresh at a time, across threads and processes.** :meth:`ConnectionStore.token_source`
  returns a :class:`StoreTokenSource` whose refresh locks the tenant's connection row
  (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), re-reads it inside
  the lock and calls Intuit only if the stored access token is still the stale one (or expires
  within a minute). Everybody else waiting on the lock gets the token the winner stored.
* **The state is always visible.** ``not_connected`` (never connected), ``connected``,
  ``session_expired`` (Intuit answered ``invalid_grant``: an admin must reconnect),
  ``connection_error`` (QuickBooks cannot be reached or refuses the app: reconnect or retry),
  ``disconnected`` (an admin disconnected), with the last error and its time.

  Transient failures (network, Intuit 5xx, already retried by the OAuth client) do **not** flip
  the state on the first failure: a blip while refreshing would otherwise paint the admin page
  red for nothing. They are recorded as ``last_error`` and counted; after
  :data:`MAX_TRANSIENT_REFRESH_FAILURES` consecutive failed refreshes the state becomes
  ``connection_error``. Any successful refresh resets the count and the state to ``connected``.
  A definitive refusal other than ``invalid_grant`` (``invalid_client``: wrong credentials for the
  environment) is ``connection_error`` at once.
* **Configuration survives.** Settings and mappings are kept across disconnect, session expiry and
  reconnect of the same company. Connecting a different company (a *switch*) keeps the settings,
  records the previous realm and raises ``mappings_need_review`` until an admin acknowledges it.
  A tenant has at most one QuickBooks connection (a unique ``tenant_id``).

Read calls are metered per company and calendar month (:meth:`ConnectionStore.record_read`,
meant as the QBO client's ``on_read`` callback), because Intuit caps an app's monthly reads by tier.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qb_pipelines.qbo.errors import InvalidGrantError, OAuthError, QBOError
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.models import (
    ApiUsage,
    Connection,
    ConnectionEvent,
    EntityMapping,
    IntegrationSettings,
    Tenant,
    utcnow,
)
from qb_pipelines.store.settings import SettingsError, SyncSettings, validate_settings

if TYPE_CHECKING:
    from qb_pipelines.qbo.oauth import IntuitOAuth, TokenSet

#: An access token closer than this to its expiry is refreshed before use.
ACCESS_TOKEN_MARGIN = timedelta(seconds=60)
#: A refresh token older than this is refreshed proactively, keeping Intuit's 100-day rolling
#: window alive even for a company nobody syncs.
REFRESH_TOKEN_MAX_AGE = timedelta(days=1)
#: Consecutive transient refresh failures before the state becomes ``connection_error``.
MAX_TRANSIENT_REFRESH_FAILURES = 3
#: Longest error text kept (an HTML error page is not an error message).
MAX_ERROR_CHARS = 1000

__all__ = [
    "ACCESS_TOKEN_MARGIN",
    "MAX_TRANSIENT_REFRESH_FAILURES",
    "REFRESH_TOKEN_MAX_AGE",
    "ApiUsageCounts",
    "ConnectKind",
    "ConnectionEventView",
    "ConnectionState",
    "ConnectionStore",
    "ConnectionUnavailableError",
    "ConnectionView",
    "MappingView",
    "SettingsError",
    "SettingsView",
    "StoreTokenSource",
    "TenantView",
    "UnknownTenantError",
]


class ConnectionState(StrEnum):
    """Where a tenant's QuickBooks connection stands (the card on Accounting Integrations)."""

    NOT_CONNECTED = "not_connected"  # never connected: "No QuickBooks Online account connected"
    CONNECTED = "connected"
    SESSION_EXPIRED = "session_expired"  # invalid_grant: reconnect
    CONNECTION_ERROR = "connection_error"  # cannot reach or refused: reconnect / try again
    DISCONNECTED = "disconnected"  # an admin disconnected; configuration kept


class ConnectKind(StrEnum):
    """What a successful authorization meant for the tenant."""

    FIRST = "first"  # never connected before: open the Setup Wizard
    RECONNECT = "reconnect"  # the same company again: configuration and mappings preserved
    SWITCH = "switch"  # another company: configuration kept, mappings need review


#: States in which tokens may be used (a connection error may be transient: keep trying).
_USABLE_STATES = (ConnectionState.CONNECTED.value, ConnectionState.CONNECTION_ERROR.value)


class UnknownTenantError(LookupError):
    """The tenant key is not in the store."""

    def __init__(self, tenant_key: str) -> None:
        super().__init__(
            f"No tenant {tenant_key!r} in the connections store: create it first (ConnectionStore.ensure_tenant)."
        )
        self.tenant_key = tenant_key


class ConnectionUnavailableError(QBOError):
    """The tenant has no usable QuickBooks connection (never connected, disconnected or expired)."""

    def __init__(self, tenant_key: str, state: ConnectionState) -> None:
        hints = {
            ConnectionState.NOT_CONNECTED: "connect QuickBooks Online from Accounting Integrations",
            ConnectionState.DISCONNECTED: "the integration was disconnected: connect it again from Accounting Integrations",
            ConnectionState.SESSION_EXPIRED: "the QuickBooks Online session has expired: reconnect from Accounting Integrations",
        }
        super().__init__(
            f"tenant {tenant_key!r} has no usable QuickBooks connection (state {state.value})",
            code=state.value,
            hint=hints.get(state, "reconnect from Accounting Integrations"),
        )
        self.tenant_key = tenant_key
        self.state = state


# ------------------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class TenantView:
    """A tenant: its stable key (from the app) and display name."""

    key: str
    name: str


@dataclass(frozen=True)
class ConnectionView:
    """Everything the admin pages show about a tenant's connection; never a token.

    ``state`` is ``NOT_CONNECTED`` when the tenant never connected (then the company and user
    fields are ``None``). ``user_name`` is the connected user's given and family names joined.
    """

    tenant_key: str
    tenant_name: str
    state: ConnectionState
    environment: str | None = None
    realm_id: str | None = None
    company_name: str | None = None
    user_email: str | None = None
    user_name: str | None = None
    user_given_name: str | None = None
    user_family_name: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    refresh_hard_expires_at: datetime | None = None
    connected_at: datetime | None = None
    disconnected_at: datetime | None = None
    configured: bool = False
    mappings_need_review: bool = False
    previous_realm_id: str | None = None
    token_version: int = 0

    @property
    def is_connected(self) -> bool:
        """Whether tokens exist and may be used (connected, or a possibly transient error)."""
        return self.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTION_ERROR)

    @property
    def needs_reconnect(self) -> bool:
        """Whether the card should offer Reconnect (session expired or connection error)."""
        return self.state in (ConnectionState.SESSION_EXPIRED, ConnectionState.CONNECTION_ERROR)


@dataclass(frozen=True)
class SettingsView:
    """A tenant's stored settings (defaults until the Setup Wizard is completed)."""

    tenant_key: str
    values: SyncSettings
    configured: bool
    mappings_need_review: bool
    previous_realm_id: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class MappingView:
    """One app record <-> QBO object correspondence in one company."""

    tenant_key: str
    realm_id: str
    entity: str
    app_id: str
    qbo_id: str
    updated_at: datetime


@dataclass(frozen=True)
class ConnectionEventView:
    """One audit-trail entry (connect, refresh, expiry, disconnect...)."""

    at: datetime
    kind: str
    detail: str | None


@dataclass(frozen=True)
class ApiUsageCounts:
    """Metered calls of one company in one calendar month (UTC)."""

    realm_id: str
    month: str
    reads: int
    writes: int


# ------------------------------------------------------------------------------------------ helpers

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def _redact(text: str | None, *secrets: str | None) -> str | None:
    """Remove known secrets and bearer tokens from an error text, and cap its length."""
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(r"\1[redacted]", text)
    return text[:MAX_ERROR_CHARS]


def _month(when: datetime | None) -> str:
    when = (when or utcnow()).astimezone(UTC)
    return f"{when.year:04d}-{when.month:02d}"


def _full_name(given: str | None, family: str | None) -> str | None:
    name = " ".join(p for p in (given, family) if p)
    return name or None


# Process-wide locks in front of the database lock: threads of one process queue here instead of
# polling SQLite's busy handler, and the one that gets in second finds the token already fresh.
_THREAD_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(engine: Engine, tenant_key: str) -> threading.Lock:
    key = (engine.url.render_as_string(hide_password=True), tenant_key)
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(key)
        if lock is None:
            lock = _THREAD_LOCKS[key] = threading.Lock()
        return lock


# ------------------------------------------------------------------------------------------ store


class ConnectionStore:
    """Repository of tenants, their QuickBooks connections, settings, mappings and API usage.

    Args:
        session_factory: sessions bound to the store's engine (:func:`qb_pipelines.store.db.session_factory`).
        box: encrypts and decrypts tokens (:class:`~qb_pipelines.store.crypto.SecretBox`).
        clock: returns "now" as an aware UTC datetime (tests move time; defaults to the wall clock).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        box: SecretBox,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sf = session_factory
        self._box = box
        self._now = clock
        bind = session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("ConnectionStore needs a sessionmaker bound to an Engine (db.session_factory(engine))")
        self.engine: Engine = bind

    def __repr__(self) -> str:
        return f"ConnectionStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- sessions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that writes; commits on success, rolls back on error.

        On SQLite it starts with ``BEGIN IMMEDIATE`` (the write lock at once), so a
        read-then-write sequence never meets a concurrent writer half-way.
        """
        with self._sf() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sf() as session:
            yield session

    @staticmethod
    def _tenant(session: Session, tenant_key: str) -> Tenant:
        tenant = session.scalars(sa.select(Tenant).where(Tenant.key == tenant_key)).one_or_none()
        if tenant is None:
            raise UnknownTenantError(tenant_key)
        return tenant

    @staticmethod
    def _connection(session: Session, tenant_id: int, *, lock: bool = False) -> Connection | None:
        stmt = sa.select(Connection).where(Connection.tenant_id == tenant_id)
        if lock:
            # Row lock on PostgreSQL; SQLite ignores FOR UPDATE (BEGIN IMMEDIATE already holds the lock).
            stmt = stmt.with_for_update()
        return session.scalars(stmt).one_or_none()

    @staticmethod
    def _settings_row(session: Session, tenant_id: int, *, create: bool) -> IntegrationSettings | None:
        row = session.scalars(
            sa.select(IntegrationSettings).where(IntegrationSettings.tenant_id == tenant_id)
        ).one_or_none()
        if row is None and create:
            row = IntegrationSettings(tenant_id=tenant_id, configured=False, mappings_need_review=False)
            session.add(row)
            session.flush()
        return row

    def _event(self, session: Session, tenant_id: int, kind: str, detail: str | None = None) -> None:
        session.add(ConnectionEvent(tenant_id=tenant_id, at=self._now(), kind=kind, detail=detail))

    # -- tenants ---------------------------------------------------------------------------

    def ensure_tenant(self, key: str, name: str) -> TenantView:
        """Create the tenant if it is new, or update its display name.

        Args:
            key: the app's stable identifier of the tenant (at most 100 characters).
            name: the name shown on admin pages.
        """
        key = (key or "").strip()
        if not key or len(key) > 100:
            raise ValueError("A tenant key must be 1 to 100 characters (the app's stable tenant identifier).")
        name = (name or "").strip() or key
        for _attempt in range(2):
            try:
                with self._write() as session:
                    tenant = session.scalars(sa.select(Tenant).where(Tenant.key == key)).one_or_none()
                    if tenant is None:
                        session.add(Tenant(key=key, name=name, created_at=self._now()))
                    elif tenant.name != name:
                        tenant.name = name
                return TenantView(key=key, name=name)
            except IntegrityError:
                # Another process created it between our SELECT and INSERT: update instead.
                continue
        raise RuntimeError(f"could not create tenant {key!r}")  # pragma: no cover

    def tenants(self) -> list[TenantView]:
        """Every tenant, by name."""
        with self._read() as session:
            rows = session.scalars(sa.select(Tenant).order_by(Tenant.name, Tenant.key)).all()
            return [TenantView(key=t.key, name=t.name) for t in rows]

    # -- views -----------------------------------------------------------------------------

    @staticmethod
    def _view(tenant: Tenant, conn: Connection | None, settings: IntegrationSettings | None) -> ConnectionView:
        common: dict[str, Any] = {
            "tenant_key": tenant.key,
            "tenant_name": tenant.name,
            "configured": bool(settings and settings.configured),
            "mappings_need_review": bool(settings and settings.mappings_need_review),
            "previous_realm_id": settings.previous_realm_id if settings else None,
        }
        if conn is None:
            return ConnectionView(state=ConnectionState.NOT_CONNECTED, **common)
        return ConnectionView(
            state=ConnectionState(conn.state),
            environment=conn.environment,
            realm_id=conn.realm_id,
            company_name=conn.company_name,
            user_email=conn.user_email,
            user_name=_full_name(conn.user_given_name, conn.user_family_name),
            user_given_name=conn.user_given_name,
            user_family_name=conn.user_family_name,
            last_error=conn.last_error,
            last_error_at=conn.last_error_at,
            access_expires_at=conn.access_expires_at,
            refresh_expires_at=conn.refresh_expires_at,
            refresh_hard_expires_at=conn.refresh_hard_expires_at,
            connected_at=conn.connected_at,
            disconnected_at=conn.disconnected_at,
            token_version=conn.token_version,
            **common,
        )

    def _views(self, where: Any = None) -> list[ConnectionView]:
        stmt = (
            sa.select(Tenant, Connection, IntegrationSettings)
            .outerjoin(Connection, Connection.tenant_id == Tenant.id)
            .outerjoin(IntegrationSettings, IntegrationSettings.tenant_id == Tenant.id)
            .order_by(Tenant.name, Tenant.key)
        )
        if where is not None:
            stmt = stmt.where(where)
        with self._read() as session:
            return [self._view(t, c, s) for t, c, s in session.execute(stmt).all()]

    def get(self, tenant_key: str) -> ConnectionView | None:
        """The tenant's connection as the admin pages show it, or ``None`` for an unknown tenant."""
        views = self._views(Tenant.key == tenant_key)
        return views[0] if views else None

    def list_views(self) -> list[ConnectionView]:
        """Every tenant's connection view (``not_connected`` ones included), by tenant name."""
        return self._views()

    def views_for_realm(self, realm_id: str) -> list[ConnectionView]:
        """Tenants whose connection (in any state) is to the company ``realm_id`` (webhook routing)."""
        return self._views(Connection.realm_id == realm_id)

    def connections_due_for_refresh(self, within: timedelta) -> list[ConnectionView]:
        """Connections to refresh now so they never lapse (``qb-pipelines connections refresh``).

        A connection is due when it is usable (connected, or a possibly transient connection
        error) and either its access token expires within ``within``, or its refresh token is
        older than a day (refreshing keeps Intuit's 100-day rolling window alive).
        """
        now = self._now()
        due = sa.or_(
            Connection.access_expires_at.is_(None),
            Connection.access_expires_at <= now + within,
            Connection.refresh_token_issued_at.is_(None),
            Connection.refresh_token_issued_at <= now - REFRESH_TOKEN_MAX_AGE,
        )
        return self._views(sa.and_(Connection.state.in_(_USABLE_STATES), due))

    def events(self, tenant_key: str, limit: int = 50) -> list[ConnectionEventView]:
        """The tenant's latest audit-trail entries, newest first."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            rows = session.scalars(
                sa.select(ConnectionEvent)
                .where(ConnectionEvent.tenant_id == tenant.id)
                .order_by(ConnectionEvent.at.desc(), ConnectionEvent.id.desc())
                .limit(limit)
            ).all()
            return [ConnectionEventView(at=e.at, kind=e.kind, detail=e.detail) for e in rows]

    # -- connect / state / disconnect ------------------------------------------------------

    def save_tokens_on_connect(
        self,
        tenant_key: str,
        environment: str,
        realm_id: str,
        company_name: str | None,
        user_email: str | None,
        given_name: str | None,
        family_name: str | None,
        tokens: TokenSet,
    ) -> ConnectKind:
        """Store a completed authorization: company, connected user and fresh tokens.

        Returns:
            ``first`` when the tenant never connected (open the Setup Wizard), ``reconnect`` for
            the same company as before (configuration and mappings preserved), ``switch`` for
            another company (configuration kept; ``mappings_need_review`` set and the previous
            realm recorded).
        """
        args = (tenant_key, environment, realm_id, company_name, user_email, given_name, family_name, tokens)
        try:
            return self._save_tokens_on_connect(*args)
        except IntegrityError:
            # Two first connections raced (no row existed to lock): the loser is now a reconnect
            # or a switch of the winner's row.
            return self._save_tokens_on_connect(*args)

    def _save_tokens_on_connect(
        self,
        tenant_key: str,
        environment: str,
        realm_id: str,
        company_name: str | None,
        user_email: str | None,
        given_name: str | None,
        family_name: str | None,
        tokens: TokenSet,
    ) -> ConnectKind:
        now = self._now()
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            conn = self._connection(session, tenant.id, lock=True)
            if conn is None:
                kind = ConnectKind.FIRST
                conn = Connection(tenant_id=tenant.id, token_version=0, refresh_failures=0)
                session.add(conn)
            elif conn.realm_id == realm_id:
                kind = ConnectKind.RECONNECT
            else:
                kind = ConnectKind.SWITCH
                settings = self._settings_row(session, tenant.id, create=True)
                assert settings is not None
                settings.previous_realm_id = conn.realm_id
                settings.mappings_need_review = True
            conn.environment = environment
            conn.realm_id = realm_id
            conn.company_name = company_name
            conn.user_email = user_email
            conn.user_given_name = given_name
            conn.user_family_name = family_name
            self._store_tokens(conn, tokens, now)
            conn.state = ConnectionState.CONNECTED.value
            conn.last_error = None
            conn.last_error_at = None
            conn.connected_at = now
            conn.disconnected_at = None
            self._event(
                session,
                tenant.id,
                f"connect_{kind.value}",
                f"{environment} company {company_name or '?'} (realm {realm_id}) by {user_email or 'unknown user'}",
            )
        return kind

    def _store_tokens(self, conn: Connection, tokens: TokenSet, now: datetime) -> None:
        conn.access_token_enc = self._box.encrypt(tokens.access_token)
        conn.refresh_token_enc = self._box.encrypt(tokens.refresh_token)
        conn.access_expires_at = tokens.access_expires_at
        conn.refresh_expires_at = tokens.refresh_expires_at
        conn.refresh_hard_expires_at = tokens.refresh_hard_expires_at
        conn.refresh_token_issued_at = now
        conn.token_version = (conn.token_version or 0) + 1
        conn.refresh_failures = 0

    def mark_state(self, tenant_key: str, state: ConnectionState | str, error: str | None = None) -> None:
        """Set the connection's state, with an error message when there is one.

        ``connected`` clears the last error; other states keep it, or replace it with ``error``
        (stamped with the time). Known tokens and bearer values are removed from the message.

        Raises:
            UnknownTenantError: the tenant does not exist.
            ValueError: ``not_connected`` (that is the absence of a connection), or the tenant
                has never connected.
        """
        state = ConnectionState(state)
        if state is ConnectionState.NOT_CONNECTED:
            raise ValueError("not_connected means no connection was ever made; use disconnect() to end one.")
        now = self._now()
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            conn = self._connection(session, tenant.id, lock=True)
            if conn is None:
                raise ValueError(f"tenant {tenant_key!r} has never connected QuickBooks: nothing to mark {state.value}.")
            conn.state = state.value
            if error:
                conn.last_error = self._redact_for(conn, error)
                conn.last_error_at = now
            elif state is ConnectionState.CONNECTED:
                conn.last_error = None
                conn.last_error_at = None
                conn.refresh_failures = 0
            self._event(session, tenant.id, f"state_{state.value}", conn.last_error if error else None)

    def _redact_for(self, conn: Connection, text: str | None) -> str | None:
        secrets: list[str] = []
        for enc in (conn.access_token_enc, conn.refresh_token_enc):
            if enc:
                try:
                    secrets.append(self._box.decrypt(enc))
                except ValueError:
                    pass
        return _redact(text, *secrets)

    def disconnect(self, tenant_key: str) -> str | None:
        """End the connection at once; keep company, settings and mappings.

        The tokens are erased from the store in the same transaction.

        Returns:
            The refresh token that was stored (decrypted), for the caller to revoke at Intuit,
            or ``None`` when there was no active connection.
        """
        now = self._now()
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            conn = self._connection(session, tenant.id, lock=True)
            if conn is None:
                return None
            refresh_token = self._box.decrypt(conn.refresh_token_enc) if conn.refresh_token_enc else None
            if conn.state == ConnectionState.DISCONNECTED.value and refresh_token is None:
                return None
            conn.access_token_enc = None
            conn.refresh_token_enc = None
            conn.state = ConnectionState.DISCONNECTED.value
            conn.disconnected_at = now
            conn.refresh_failures = 0
            self._event(session, tenant.id, "disconnect", f"company realm {conn.realm_id}")
        return refresh_token

    # -- tokens ----------------------------------------------------------------------------

    def token_source(self, tenant_key: str, oauth: IntuitOAuth) -> StoreTokenSource:
        """A :class:`~qb_pipelines.qbo.client.TokenSource` for the QBO client, backed by this store.

        Args:
            tenant_key: whose connection.
            oauth: Intuit's OAuth client for the connection's environment (used to refresh).
        """
        return StoreTokenSource(self, tenant_key, oauth)

    # -- settings --------------------------------------------------------------------------

    def get_settings(self, tenant_key: str) -> SettingsView:
        """The tenant's settings; defaults (``configured=False``) until the wizard is completed."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            row = self._settings_row(session, tenant.id, create=False)
            return self._settings_view(tenant_key, row)

    @staticmethod
    def _settings_view(tenant_key: str, row: IntegrationSettings | None) -> SettingsView:
        if row is None:
            return SettingsView(tenant_key, SyncSettings(), False, False, None, None)
        if row.configured:
            # Stored values were validated on save; re-validating fills in entities added to
            # the registry since then with their defaults.
            values = validate_settings(
                {
                    "entities": row.entities or {},
                    "directions": row.directions or {},
                    "conflict_policy": row.conflict_policy,
                    "default_income_account_id": row.default_income_account_id,
                    "default_income_account_name": row.default_income_account_name,
                    "default_tax_code_id": row.default_tax_code_id,
                    "default_tax_code_name": row.default_tax_code_name,
                    "mode": row.mode,
                }
            )
        else:
            values = SyncSettings()
        return SettingsView(
            tenant_key=tenant_key,
            values=values,
            configured=row.configured,
            mappings_need_review=row.mappings_need_review,
            previous_realm_id=row.previous_realm_id,
            updated_at=row.updated_at,
        )

    def save_settings(self, tenant_key: str, data: Any) -> SettingsView:
        """Validate and save a complete settings submission (wizard or Settings page).

        Validation happens before anything is written and the save is one transaction, so an
        invalid submission leaves the previous settings exactly as they were. Saving marks the
        tenant configured (the Setup Wizard is done).

        Args:
            data: a :class:`~qb_pipelines.store.settings.SyncSettings` or a mapping (see
                :func:`~qb_pipelines.store.settings.validate_settings`).

        Raises:
            SettingsError: naming the invalid field; nothing was saved.
            UnknownTenantError: the tenant does not exist.
        """
        values = validate_settings(data)
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = self._settings_row(session, tenant.id, create=True)
            assert row is not None
            row.entities = dict(values.entities)
            row.directions = dict(values.directions)
            row.conflict_policy = values.conflict_policy
            row.default_income_account_id = values.default_income_account_id
            row.default_income_account_name = values.default_income_account_name
            row.default_tax_code_id = values.default_tax_code_id
            row.default_tax_code_name = values.default_tax_code_name
            row.mode = values.mode
            first = not row.configured
            row.configured = True
            row.updated_at = self._now()
            self._event(session, tenant.id, "settings_saved", "setup wizard completed" if first else None)
            session.flush()
            return self._settings_view(tenant_key, row)

    def acknowledge_mappings_review(self, tenant_key: str) -> None:
        """An admin reviewed the mappings after a company switch: clear the warning."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = self._settings_row(session, tenant.id, create=False)
            if row is not None and row.mappings_need_review:
                row.mappings_need_review = False
                self._event(session, tenant.id, "mappings_reviewed")

    # -- mappings --------------------------------------------------------------------------

    def add_mapping(
        self, tenant_key: str, entity: str, app_id: str, qbo_id: str, realm_id: str | None = None
    ) -> MappingView:
        """Record (or update) which QBO object an app record corresponds to.

        Args:
            entity: QBO entity name (``"Customer"``).
            app_id: the app's id of the record.
            qbo_id: QBO's ``Id``.
            realm_id: the company; defaults to the tenant's connected company.
        """
        for _attempt in range(2):
            try:
                with self._write() as session:
                    tenant = self._tenant(session, tenant_key)
                    if realm_id is None:
                        conn = self._connection(session, tenant.id)
                        if conn is None:
                            raise ValueError(f"tenant {tenant_key!r} has never connected: pass realm_id explicitly.")
                        realm = conn.realm_id
                    else:
                        realm = realm_id
                    row = session.scalars(
                        sa.select(EntityMapping).where(
                            EntityMapping.tenant_id == tenant.id,
                            EntityMapping.realm_id == realm,
                            EntityMapping.entity == entity,
                            EntityMapping.app_id == app_id,
                        )
                    ).one_or_none()
                    now = self._now()
                    if row is None:
                        row = EntityMapping(
                            tenant_id=tenant.id, realm_id=realm, entity=entity, app_id=app_id,
                            qbo_id=qbo_id, created_at=now, updated_at=now,
                        )
                        session.add(row)
                    else:
                        row.qbo_id = qbo_id
                        row.updated_at = now
                    session.flush()
                    return MappingView(tenant_key, realm, entity, app_id, qbo_id, row.updated_at)
            except IntegrityError:
                continue  # a concurrent insert of the same key: retry as an update
        raise RuntimeError("could not save mapping")  # pragma: no cover

    def mappings(self, tenant_key: str, entity: str | None = None, realm_id: str | None = None) -> list[MappingView]:
        """The tenant's mappings, optionally for one entity and/or one company (all companies by default)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            stmt = sa.select(EntityMapping).where(EntityMapping.tenant_id == tenant.id)
            if entity is not None:
                stmt = stmt.where(EntityMapping.entity == entity)
            if realm_id is not None:
                stmt = stmt.where(EntityMapping.realm_id == realm_id)
            stmt = stmt.order_by(EntityMapping.realm_id, EntityMapping.entity, EntityMapping.app_id)
            return [
                MappingView(tenant_key, m.realm_id, m.entity, m.app_id, m.qbo_id, m.updated_at)
                for m in session.scalars(stmt).all()
            ]

    # -- API usage -------------------------------------------------------------------------

    def _count(self, realm_id: str, when: datetime | None, *, reads: int, writes: int) -> None:
        table = ApiUsage.__table__
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - only the two tested dialects are supported
            raise NotImplementedError(f"API usage counting supports sqlite and postgresql, not {self.engine.dialect.name}")
        stmt = insert(table).values(
            realm_id=realm_id, month=_month(when), reads=reads, writes=writes, updated_at=self._now()
        )
        # One atomic statement: concurrent callers add up, never overwrite each other.
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.realm_id, table.c.month],
            set_={
                "reads": table.c.reads + stmt.excluded.reads,
                "writes": table.c.writes + stmt.excluded.writes,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._write() as session:
            session.execute(stmt)

    def record_read(self, realm_id: str, when: datetime | None = None) -> None:
        """Count one metered read (query, read, CDC, report, PDF) for the company's month.

        Fits the QBO client's ``on_read`` callback: ``QBOClient(..., on_read=store.record_read)``.
        """
        self._count(realm_id, when, reads=1, writes=0)

    def record_write(self, realm_id: str, when: datetime | None = None) -> None:
        """Count one write (create, update, delete, void) for the company's month."""
        self._count(realm_id, when, reads=0, writes=1)

    def usage_counts(self, realm_id: str, month: str | None = None) -> ApiUsageCounts:
        """Reads and writes of the company in ``month`` (``"YYYY-MM"``, UTC; this month by default)."""
        month = month or _month(self._now())
        with self._read() as session:
            row = session.get(ApiUsage, (realm_id, month))
            return ApiUsageCounts(realm_id, month, int(row.reads) if row else 0, int(row.writes) if row else 0)

    def usage(self, realm_id: str, month: str | None = None) -> int:
        """Metered reads of the company in ``month`` (``"YYYY-MM"``; this month by default)."""
        return self.usage_counts(realm_id, month).reads


class StoreTokenSource:
    """Access tokens of one tenant's connection, refreshed single-flight through the store.

    Implements the QBO client's ``TokenSource`` protocol. Safe to share between threads, and
    any number of processes may hold one for the same tenant: the database lock decides who
    refreshes, the others read what the winner stored.
    """

    def __init__(self, store: ConnectionStore, tenant_key: str, oauth: IntuitOAuth) -> None:
        self._store = store
        self.tenant_key = tenant_key
        self._oauth = oauth

    def __repr__(self) -> str:
        return f"StoreTokenSource(tenant_key={self.tenant_key!r})"

    def _decrypt(self, value: str | None) -> str:
        if not value:
            raise ConnectionUnavailableError(self.tenant_key, ConnectionState.DISCONNECTED)
        return self._store._box.decrypt(value)

    def _usable(self, conn: Connection | None) -> Connection:
        if conn is None:
            raise ConnectionUnavailableError(self.tenant_key, ConnectionState.NOT_CONNECTED)
        if conn.state not in _USABLE_STATES or not conn.access_token_enc or not conn.refresh_token_enc:
            raise ConnectionUnavailableError(self.tenant_key, ConnectionState(conn.state))
        return conn

    def access_token(self) -> str:
        """The stored access token if it stays valid for more than a minute, else a refreshed one.

        Raises:
            ConnectionUnavailableError: never connected, disconnected or session expired.
            InvalidGrantError: the refresh was refused (the state is now ``session_expired``).
        """
        store = self._store
        with store._read() as session:
            tenant = store._tenant(session, self.tenant_key)
            conn = self._usable(store._connection(session, tenant.id))
            token = self._decrypt(conn.access_token_enc)
            expires = conn.access_expires_at
        if expires is not None and expires > store._now() + ACCESS_TOKEN_MARGIN:
            return token
        return self.refresh(token)

    def refresh(self, stale_access_token: str) -> str:
        """A token newer than ``stale_access_token``, refreshing at Intuit only if nobody did yet.

        Inside the row lock: if the stored access token differs from the stale one and is valid
        for more than a minute, another thread or process already refreshed and it is returned;
        otherwise the refresh token is traded at Intuit and the new pair, its expiries and
        ``token_version + 1`` are committed before the new access token is returned.

        Raises:
            ConnectionUnavailableError: never connected, disconnected or session expired.
            InvalidGrantError: Intuit refused the refresh token; the state is now ``session_expired``.
            QBOError: another refresh failure (see the module doc for how it affects the state).
        """
        token = self._locked_refresh(stale=stale_access_token, due_within=None)
        assert token is not None
        return token

    def refresh_if_due(self, within: timedelta) -> bool:
        """Refresh proactively when the access token expires within ``within`` or the refresh
        token is older than a day; single-flight like :meth:`refresh`.

        Returns:
            Whether this call refreshed (``False`` when it was not, or no longer, due).
        """
        return self._locked_refresh(stale=None, due_within=within) is not None

    def _locked_refresh(self, *, stale: str | None, due_within: timedelta | None) -> str | None:
        store = self._store
        failure: BaseException | None = None
        result: str | None = None
        with _thread_lock(store.engine, self.tenant_key), store._write() as session:
            tenant = store._tenant(session, self.tenant_key)
            conn = self._usable(store._connection(session, tenant.id, lock=True))
            now = store._now()
            current = self._decrypt(conn.access_token_enc)
            fresh = conn.access_expires_at is not None and conn.access_expires_at > now + ACCESS_TOKEN_MARGIN
            if due_within is None:
                if current != stale and fresh:
                    return current  # someone refreshed while we waited for the lock
            else:
                issued = conn.refresh_token_issued_at
                access_ok = conn.access_expires_at is not None and conn.access_expires_at > now + due_within
                if access_ok and issued is not None and issued > now - REFRESH_TOKEN_MAX_AGE:
                    return None
            refresh_token = self._decrypt(conn.refresh_token_enc)
            try:
                tokens = self._oauth.refresh(refresh_token)
            except InvalidGrantError as exc:
                failure = exc
                conn.state = ConnectionState.SESSION_EXPIRED.value
                conn.last_error = _redact(str(exc), current, refresh_token)
                conn.last_error_at = now
                store._event(session, tenant.id, "session_expired", conn.last_error)
            except OAuthError as exc:
                failure = exc
                conn.state = ConnectionState.CONNECTION_ERROR.value
                conn.last_error = _redact(str(exc), current, refresh_token)
                conn.last_error_at = now
                store._event(session, tenant.id, "refresh_refused", conn.last_error)
            except Exception as exc:
                # Transient (network, 5xx: the OAuth client already retried). Count it; only a
                # run of failures means the connection is really broken.
                failure = exc
                conn.refresh_failures = (conn.refresh_failures or 0) + 1
                conn.last_error = _redact(f"token refresh failed: {exc}", current, refresh_token)
                conn.last_error_at = now
                if conn.refresh_failures >= MAX_TRANSIENT_REFRESH_FAILURES:
                    conn.state = ConnectionState.CONNECTION_ERROR.value
                store._event(session, tenant.id, "refresh_failed", conn.last_error)
            else:
                # Same transaction: the rotated refresh token is durable before anyone uses the
                # new access token.
                store._store_tokens(conn, tokens, now)
                conn.state = ConnectionState.CONNECTED.value
                conn.last_error = None
                conn.last_error_at = None
                store._event(session, tenant.id, "refreshed", f"token version {conn.token_version}")
                result = tokens.access_token
        if failure is not None:
            raise failure
        return result
