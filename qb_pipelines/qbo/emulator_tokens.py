"""A token source for the QBO emulator's control API, for benchmarks and tests that skip OAuth.

The emulator mints a fresh grant at ``POST /_emulator/companies/{realmId}/tokens`` (its fixed
control-API contract). This source asks for one at start and again when the client reports the
current access token stale (a 401), so it plays the part a connection's stored tokens play in
production (:meth:`qb_pipelines.store.connections.ConnectionStore.token_source`). It speaks HTTP
only: it never imports the emulator.
"""

from __future__ import annotations

import threading

import requests


class EmulatorControlTokens:
    """:class:`qb_pipelines.qbo.client.TokenSource` backed by the emulator's control API.

    Args:
        url: The emulator's base URL.
        realm: The company's realmId.
        timeout_s: HTTP timeout of the control call.
    """

    def __init__(self, url: str, realm: str, *, timeout_s: float = 30.0) -> None:
        self.url, self.realm, self.timeout_s = url.rstrip("/"), realm, timeout_s
        self._lock = threading.Lock()
        self._token = self._mint()

    def __repr__(self) -> str:  # never show the token
        return f"EmulatorControlTokens(url={self.url!r}, realm={self.realm!r})"

    def _mint(self) -> str:
        response = requests.post(f"{self.url}/_emulator/companies/{self.realm}/tokens", timeout=self.timeout_s)
        response.raise_for_status()
        return response.json()["access_token"]

    def access_token(self) -> str:
        return self._token

    def refresh(self, stale_access_token: str) -> str:
        """A new access token unless another thread already replaced the stale one."""
        with self._lock:
            if self._token == stale_access_token:
                self._token = self._mint()
            return self._token
