"""Dagster resources that reach QuickBooks Online or the QBO emulator.

Configuration is read when a run starts, never at import: loading the code location must not
depend on the environment (tests and ``dagster dev`` load the same module), and a value
changed in the environment takes effect at the next run without reloading code.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
import requests
from pydantic import Field
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_EMULATOR_URL = "http://127.0.0.1:8765"


class QBOEmulatorResource(dg.ConfigurableResource):
    """The QBO emulator's control API (``/_emulator/...``): its companies and test credentials.

    The emulator is the project's QuickBooks in the demo, tests and benchmarks. This resource
    only speaks the emulator's own control API; QuickBooks data itself is read through the QBO
    client (``qb_pipelines.qbo``) exactly as from Intuit, so nothing downstream depends on it.
    The control API needs no secret, hence no ``dg.EnvVar`` here; the QBO connection resource
    (client id and secret) reads those with ``dg.EnvVar``.

    Attributes:
        base_url: the emulator's base URL. Empty means ``$QBO_EMULATOR_URL`` at run time, and
            ``http://127.0.0.1:8765`` (the demo's emulator) when that is unset too.
        timeout_s: per-request timeout in seconds.
        max_retries: retries of a failed connection or 5xx answer, with exponential backoff.
    """

    base_url: str = Field(
        default="",
        description="Emulator base URL; empty means $QBO_EMULATOR_URL at run time, else http://127.0.0.1:8765.",
    )
    timeout_s: float = Field(default=30.0, description="Timeout of each control request, in seconds.")
    max_retries: int = Field(default=3, description="Retries on connection errors and 5xx answers.")

    def resolved_url(self) -> str:
        """The base URL this run talks to (configuration, then environment, then the demo's)."""
        return (self.base_url or os.environ.get("QBO_EMULATOR_URL") or DEFAULT_EMULATOR_URL).rstrip("/")

    def _session(self) -> requests.Session:
        session = requests.Session()
        # GETs and the idempotent control calls below survive an emulator that is still starting.
        retry = Retry(
            total=self.max_retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
        )
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        session.headers["Accept"] = "application/json"
        return session

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.resolved_url()}/_emulator/{path}"
        with self._session() as session:
            try:
                resp = session.request(method, url, json=body, timeout=self.timeout_s)
            except requests.ConnectionError as exc:
                raise dg.Failure(
                    description=f"No QBO emulator answers at {self.resolved_url()}.",
                    metadata={"next_step": "Start one with `qb-pipelines emulator serve --port 8765` or set QBO_EMULATOR_URL."},
                ) from exc
            resp.raise_for_status()
            return resp.json()

    def companies(self) -> list[dict[str, Any]]:
        """Every company the emulator holds, each with at least ``realmId`` and ``name``."""
        return list(self._call("GET", "companies"))

    def tokens(self, realm: str) -> dict[str, Any]:
        """OAuth tokens and client credentials for ``realm``, skipping the browser consent.

        Returns ``access_token``, ``refresh_token``, ``client_id`` and ``client_secret``, which
        the emulator's token endpoint accepts. Never log the result.
        """
        return dict(self._call("POST", f"companies/{realm}/tokens"))


@dg.definitions
def resources() -> dg.Definitions:
    """Resources bound to every asset of the code location."""
    return dg.Definitions(resources={"qbo_emulator": QBOEmulatorResource()})
