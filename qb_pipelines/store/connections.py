"""The connections store: each tenant's QuickBooks connection, its state, its audit trail.

What it guarantees, because a QuickBooks connection that dies silently is the commonest
complaint about existing connectors:

* **Tokens are never lost nor shown.** Access and refresh tokens are Fernet-encrypted at rest
  (:class:`~qb_pipelines.store.crypto.SecretBox`); views, representations and the audit trail
  never carry them. Using and refreshing them is :mod:`qb_pipelines.store.tokens`' job
  (:meth:`ConnectionStore.token_source`): single-flight across threads and processes, the rotated
  refresh token committed before the new access token is used.
* **The state is always visible.** ``not_connected`` (never connected), ``connected``,
  ``session_expired`` (Intuit answered ``invalid_grant``: an admin must reconnect),
  ``connection_error`` (QuickBooks cannot be reached or refuses the app: reconnect or retry),
  ``disconnected`` (an admin disconnected), with the last error and its time.
* **Configuration survives.** Settings and mappings (their own repositories) are kept across
  disconnect, session expiry and reconnect of the same company. Connecting a different company
  (a *switch*) keeps the settings, records the previous realm and raises ``mappings_need_review``
  until an admin acknowledges it. A tenant has at most one QuickBooks connection (a unique
  ``tenant_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qb_pipelines.store.connection_state import (
    USABLE_STATES,
    ConnectionState,
    ConnectionUnavailableError,
    ConnectKind,
)
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.models import Connection, ConnectionEvent, IntegrationSettings, Tenant, utcnow
from qb_pipelines.store.repository import Repository, UnknownTenantError
from qb_pipelines.store.tenant_settings import settings_row
from qb_pipelines.store.tokens import REFRESH_TOKEN_MAX_AGE, StoreTokenSource, redact_error

if TYPE_CHECKING:
    from qb_pipelines.qbo.oauth import IntuitOAuth, TokenSet

__all__ = [
    "ConnectKind",
    "ConnectionEventView",
    "ConnectionState",
    "ConnectionStore",
    "ConnectionUnavailableError",
    "ConnectionView",
    "UnknownTenantError",
]


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
    parent_key: str | None = None

    @property
    def is_connected(self) -> bool:
        """Whether tokens exist and may be used (connected, or a possibly transient error)."""
        return self.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTION_ERROR)

    @property
    def needs_reconnect(self) -> bool:
        """Whether the card should offer Reconnect (session expired or connection error)."""
        return self.state in (ConnectionState.SESSION_EXPIRED, ConnectionState.CONNECTION_ERROR)



@dataclass(frozen=True)
class ConnectionEventView:
    """One audit-trail entry (connect, refresh, expiry, disconnect...)."""

    at: datetime
    kind: str
    detail: str | None




def _full_name(given: str | None, family: str | None) -> str | None:
    name = " ".join(p for p in (given, family) if p)
    return name or None


class ConnectionStore(Repository):
    """Repository of tenants' QuickBooks connections: views, connect, state, disconnect, tokens.

    Args:
        session_factory: sessions bound to the store's engine (:func:`qb_pipelines.store.db.session_factory`).
        box: encrypts and decrypts tokens (:class:`~qb_pipelines.store.crypto.SecretBox`).
        clock: returns "now" as an aware UTC datetime (tests move time; defaults to the wall clock).
    """

    def __init__(self, session_factory: sessionmaker[Session], box: SecretBox, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(session_factory, clock=clock)
        self._box = box

    @staticmethod
    def _connection(session: Session, tenant_id: int, *, lock: bool = False) -> Connection | None:
        stmt = sa.select(Connection).where(Connection.tenant_id == tenant_id)
        if lock:
            # Row lock on PostgreSQL; SQLite ignores FOR UPDATE (BEGIN IMMEDIATE already holds the lock).
            stmt = stmt.with_for_update()
        return session.scalars(stmt).one_or_none()

    # -- views -----------------------------------------------------------------------------

    @staticmethod
    def _view(tenant: Tenant, conn: Connection | None, settings: IntegrationSettings | None) -> ConnectionView:
        common: dict[str, Any] = {
            "tenant_key": tenant.key,
            "tenant_name": tenant.name,
            "configured": bool(settings and settings.configured),
            "mappings_need_review": bool(settings and settings.mappings_need_review),
            "previous_realm_id": settings.previous_realm_id if settings else None,
            "parent_key": tenant.parent_key,
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

    def family_holder_of(self, tenant_key: str, realm_id: str) -> ConnectionView | None:
        """Another card of ``tenant_key``'s family (its parent or a sibling company tenant) holding ``realm_id``.

        A disconnected card does not hold its company any more. ``None`` when no other card of
        the family is connected to that company (or the tenant has no family).
        """
        with self._read() as session:
            tenant = session.scalars(sa.select(Tenant).where(Tenant.key == tenant_key)).one_or_none()
            if tenant is None:
                return None
            root = tenant.parent_key or tenant.key
        family = sa.or_(Tenant.key == root, Tenant.parent_key == root)
        held = sa.and_(family, Tenant.key != tenant_key, Connection.realm_id == realm_id,
                       Connection.state != ConnectionState.DISCONNECTED.value)
        views = self._views(held)
        return views[0] if views else None

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
        return self._views(sa.and_(Connection.state.in_(USABLE_STATES), due))

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
                settings = settings_row(session, tenant.id, create=True)
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
            if conn.first_connected_at is None:
                conn.first_connected_at = now
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
        return redact_error(text, *secrets)

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

