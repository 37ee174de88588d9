"""Where a client gets its access tokens: the :class:`TokenSource` protocol and an in-memory source.

May touch: the tokens given to it and the OAuth client it refreshes with; nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class TokenSource(Protocol):
    """Where the client gets access tokens for its company.

    Implementations know the token's expiry and refresh it ahead of time in
    :meth:`access_token`; :meth:`refresh` is for the 401 the client saw anyway.
    """

    def access_token(self) -> str:
        """A currently valid access token (refreshed first if it is about to lapse)."""
        ...

    def refresh(self, stale_access_token: str) -> str:
        """A token newer than ``stale_access_token``: refresh unless someone already did.

        Must be single-flight (threads and processes): the rotated refresh token is stored
        before the new access token is returned.
        """
        ...


class MemoryTokenSource:
    """A :class:`TokenSource` held in memory (scripts, the CLI, tests): single-flight across threads.

    The connections store has its own, which also serialises refreshes across processes; use
    that one for tenants. ``on_rotate`` is called with every new :class:`TokenSet` *before* the
    new access token is handed out, so a caller can persist the rotated refresh token.

    Args:
        oauth: The app's :class:`~qb_pipelines.qbo.oauth.IntuitOAuth` (anything with ``refresh``).
        tokens: The current tokens.
        on_rotate: Called with the new tokens after each refresh.
        refresh_margin: Refresh proactively when the access token lapses within this time.
    """

    def __init__(self, oauth: Any, tokens: Any, *, on_rotate: Callable[[Any], None] | None = None,
                 refresh_margin: timedelta = timedelta(minutes=5)) -> None:
        self._oauth = oauth
        self._tokens = tokens
        self._on_rotate = on_rotate
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self.refresh_count = 0

    @property
    def tokens(self) -> Any:
        return self._tokens

    def access_token(self) -> str:
        with self._lock:
            if self._tokens.access_expires_at - datetime.now(UTC) <= self._margin:
                self._refresh_locked()
            return self._tokens.access_token

    def refresh(self, stale_access_token: str) -> str:
        with self._lock:
            if self._tokens.access_token == stale_access_token:
                self._refresh_locked()
            return self._tokens.access_token

    def _refresh_locked(self) -> None:
        new = self._oauth.refresh(self._tokens.refresh_token)
        if self._on_rotate is not None:
            self._on_rotate(new)
        self._tokens = new
        self.refresh_count += 1
