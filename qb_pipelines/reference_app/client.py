"""The integration's public contract, as Fieldwise calls it: three HTTP routes and one API key.

=====================================================  ===========================================
``POST {api}/api/v1/tenants/{tenant}/records``          send a whole record (202: stored in the
                                                        integration's outbox; pushed to QuickBooks
                                                        by its next push run)
``GET  {api}/api/v1/tenants/{tenant}/records/E/ID``     where that record is (pending, synced,
                                                        failed with ``next_step``, review, held)
``GET  {api}/api/v1/tenants/{tenant}/changes?after=N``  what changed in QuickBooks since cursor N
=====================================================  ===========================================

The key is made once by the integration's admin (``qb-pipelines api-keys create TENANT``) and
sent as ``Authorization: Bearer <key>``. Nothing else of the integration is used: this module is
the whole coupling.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests


class IntegrationError(Exception):
    """The records API refused a request or could not be reached (``str()`` is one line to show)."""


class IntegrationClient:
    """A thin client of the records API and the change feed for one tenant."""

    def __init__(self, api_url: str, tenant: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.base = f"{api_url.rstrip('/')}/api/v1/tenants/{quote(tenant, safe='')}"
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {api_key}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, self.base + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise IntegrationError(f"the integration is unreachable ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {"error": resp.text[:200]}
            where = f" at {body['field']}" if body.get("field") else ""
            raise IntegrationError(f"{resp.status_code}: {body.get('error')}{where}")
        return resp.json()

    def send(self, record: dict[str, Any]) -> dict[str, Any]:
        """Enqueue one record: ``{"entity", "app_id", "version", "op", "data"}`` (plus ``qbo_id`` to link)."""
        return self._call("POST", "/records", json=record)

    def status(self, entity: str, app_id: str) -> dict[str, Any] | None:
        """The record's sync status (``None`` when it was never sent)."""
        try:
            return self._call("GET", f"/records/{entity}/{quote(app_id, safe='')}")
        except IntegrationError as exc:
            if str(exc).startswith("404"):
                return None
            raise

    def changes(self, after: int, limit: int = 500) -> tuple[list[dict[str, Any]], int]:
        """Entries after cursor ``after``, oldest first, and the next cursor."""
        body = self._call("GET", "/changes", params={"after": after, "limit": limit})
        return body["changes"], int(body["next"])
