"""Access tokens of a tenant's connection: used while fresh, refreshed single-flight, never lost.

A rotated refresh token is committed before the new access token is handed to anyone, so a crash
after a refresh cannot strand the connection; one refresh runs at a time across threads (a
process-wide lock) and processes (the connection's row lock: ``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), and the losers read what the winner stored.

Transient failures (network, Intuit 5xx, already retried by the OAuth client) do **not** flip
the state on the first failure: a blip while refreshing would otherwise paint the admin page red
for nothing. They are recorded as ``last_error`` and counted; after
:data:`MAX_TRANSIENT_REFRESH_FAILURES` consecutive failed refreshes the state becomes
``connection_error``. Any successful refresh resets the count and the state to ``connected``. A
definitive refusal other than ``invalid_grant`` (``invalid_client``: wrong credentials for the
environment) is ``connection_error`` at once; ``invalid_grant`` is ``session_expired``.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from qb_pipelines.qbo.errors import InvalidGrantError, OAuthError
from qb_pipelines.qbo.redact import redact
from qb_pipelines.store.connection_state import (
    USABLE_STATES,
    ConnectionState,
    ConnectionUnavailableError,
    UnreadableTokenError,
)
from qb_pipelines.store.crypto import DecryptionError
from qb_pipelines.store.models import Connection

if TYPE_CHECKING:
    from qb_pipelines.qbo.oauth import IntuitOAuth
    from qb_pipelines.store.connections import ConnectionStore

__all__ = [
    "ACCESS_TOKEN_MARGIN",
    "MAX_ERROR_CHARS",
    "MAX_TRANSIENT_REFRESH_FAILURES",
    "REFRESH_TOKEN_MAX_AGE",
    "StoreTokenSource",
    "redact_error",
]

#: An access token closer than this to its expiry is refreshed before use.
ACCESS_TOKEN_MARGIN = timedelta(seconds=60)
#: A refresh token older than this is refreshed proactively, keeping Intuit's 100-day rolling
#: window alive even for a company nobody syncs.
REFRESH_TOKEN_MAX_AGE = timedelta(days=1)
#: Consecutive transient refresh failures before the state becomes ``connection_error``.
MAX_TRANSIENT_REFRESH_FAILURES = 3
#: Longest error text kept (an HTML error page is not an error message).
MAX_ERROR_CHARS = 1000


def redact_error(text: str | None, *secrets: str | None) -> str | None:
    """An error text fit to store: known secrets and anything token-shaped removed, length capped."""
    return redact(text, *secrets, limit=MAX_ERROR_CHARS)


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
        try:
            return self._store._box.decrypt(value)
        except DecryptionError:
            raise UnreadableTokenError(self.tenant_key) from None

    def _unreadable(self, exc: UnreadableTokenError) -> UnreadableTokenError:
        """Mark the connection ``connection_error`` (outside the failed transaction) and return ``exc``."""
        self._store.mark_state(self.tenant_key, ConnectionState.CONNECTION_ERROR, f"{exc.message}: {exc.hint}.")
        return exc

    def _usable(self, conn: Connection | None) -> Connection:
        if conn is None:
            raise ConnectionUnavailableError(self.tenant_key, ConnectionState.NOT_CONNECTED)
        if conn.state not in USABLE_STATES or not conn.access_token_enc or not conn.refresh_token_enc:
            raise ConnectionUnavailableError(self.tenant_key, ConnectionState(conn.state))
        return conn

    def access_token(self) -> str:
        """The stored access token if it stays valid for more than a minute, else a refreshed one.

        Raises:
            ConnectionUnavailableError: never connected, disconnected or session expired.
            InvalidGrantError: the refresh was refused (the state is now ``session_expired``).
        """
        store = self._store
        try:
            with store._read() as session:
                tenant = store._tenant(session, self.tenant_key)
                conn = self._usable(store._connection(session, tenant.id))
                token = self._decrypt(conn.access_token_enc)
                expires = conn.access_expires_at
        except UnreadableTokenError as exc:
            raise self._unreadable(exc) from None
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
        try:
            return self._locked_refresh_once(stale=stale, due_within=due_within)
        except UnreadableTokenError as exc:
            raise self._unreadable(exc) from None

    def _locked_refresh_once(self, *, stale: str | None, due_within: timedelta | None) -> str | None:
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
                conn.last_error = redact_error(str(exc), current, refresh_token)
                conn.last_error_at = now
                store._event(session, tenant.id, "session_expired", conn.last_error)
            except OAuthError as exc:
                failure = exc
                conn.state = ConnectionState.CONNECTION_ERROR.value
                conn.last_error = redact_error(str(exc), current, refresh_token)
                conn.last_error_at = now
                store._event(session, tenant.id, "refresh_refused", conn.last_error)
            except Exception as exc:
                # Transient (network, 5xx: the OAuth client already retried). Count it; only a
                # run of failures means the connection is really broken.
                failure = exc
                conn.refresh_failures = (conn.refresh_failures or 0) + 1
                conn.last_error = redact_error(f"token refresh failed: {exc}", current, refresh_token)
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
