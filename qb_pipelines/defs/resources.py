"""Dagster resources that reach QuickBooks Online, the connections store, the warehouse and the emulator.

Configuration is read when a run starts, never at import: loading the code location must not
depend on the environment (tests and ``dagster dev`` load the same module), and a value
changed in the environment takes effect at the next run without reloading code. Secrets
(the token key, the app's client secret) are ``dg.EnvVar`` references, resolved by Dagster at
launch and never shown in the UI; non-secret settings left empty fall back to the same
environment variables at run time (see :mod:`qb_pipelines.sync.settings`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorUnreachableError, serve_hint
from qb_pipelines.qbo.environments import DEFAULT_EMULATOR_URL
from qb_pipelines.store.warehouse import WarehouseWriter
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings, env_flag

__all__ = [
    "DEFAULT_EMULATOR_URL",
    "QBOConnectionResource",
    "QBOEmulatorResource",
    "WarehouseResource",
    "resources",
]


class QBOEmulatorResource(dg.ConfigurableResource):
    """The QBO emulator's control API (``/_emulator/...``): its companies and test credentials.

    The emulator is the project's QuickBooks in the demo, tests and benchmarks. This resource
    is a thin Dagster face of :class:`~qb_pipelines.qbo.emulator_control.EmulatorControl` (the
    project's one control client), configured at launch. QuickBooks data itself is read through
    the QBO client (``qb_pipelines.qbo``) exactly as from Intuit, so nothing downstream depends
    on it.
    The control API needs no secret, hence no ``dg.EnvVar`` here; the QBO connection resource
    (client id and secret) reads those with ``dg.EnvVar``.

    Attributes:
        base_url: the emulator's base URL. Empty means ``$QBO_EMULATOR_URL`` at run time, and
            :data:`~qb_pipelines.qbo.environments.DEFAULT_EMULATOR_URL` (the demo's emulator) when
            that is unset too.
        timeout_s: per-request timeout in seconds.
        max_retries: retries of a refused connection (an emulator still starting) and of a
            gateway error on a read, with exponential backoff.
    """

    base_url: str = Field(
        default="",
        description=f"Emulator base URL; empty means $QBO_EMULATOR_URL at run time, else {DEFAULT_EMULATOR_URL}.",
    )
    timeout_s: float = Field(default=30.0, description="Timeout of each control request, in seconds.")
    max_retries: int = Field(default=3, description="Retries of a refused connection or a 502/503/504 on a read.")

    def resolved_url(self) -> str:
        """The base URL this run talks to (configuration, then environment, then the demo's)."""
        return (self.base_url or os.environ.get("QBO_EMULATOR_URL") or DEFAULT_EMULATOR_URL).rstrip("/")

    def control(self) -> EmulatorControl:
        """The control client this resource delegates to (connection refusals retried ``max_retries`` times)."""
        return EmulatorControl(self.resolved_url(), timeout_s=self.timeout_s, connect_retries=self.max_retries)

    def _run(self, action: Callable[[EmulatorControl], Any]) -> Any:
        with self.control() as control:
            try:
                return action(control)
            except EmulatorUnreachableError as exc:
                raise dg.Failure(
                    description=f"No QBO emulator answers at {control.url}.",
                    metadata={"next_step": "S" + serve_hint(control.url)[1:] + " or set QBO_EMULATOR_URL."},
                ) from exc

    def companies(self) -> list[dict[str, Any]]:
        """Every company the emulator holds, each with at least ``realmId`` and ``name``."""
        return self._run(lambda c: c.companies())

    def tokens(self, realm: str) -> dict[str, Any]:
        """OAuth tokens and client credentials for ``realm``, skipping the browser consent.

        Returns ``access_token``, ``refresh_token``, ``client_id`` and ``client_secret``, which
        the emulator's token endpoint accepts. Never log the result.
        """
        return self._run(lambda c: c.tokens(realm))


class QBOConnectionResource(dg.ConfigurableResource):
    """The integration's runtime for Dagster: the store, the warehouse and each company's QBO client.

    Every asset, check, sensor and schedule asks this resource for the one
    :class:`~qb_pipelines.sync.runtime.Runtime` of its settings (built once per process, the
    schema migrated on first use), so a company key goes from a partition to the HTTP call in one
    step: ``qbo.client_for(partition_key)``. Tokens come from the connections store (refreshed
    single-flight across runs, the rotated refresh token stored before use), every read is metered
    per company and month, and the environment (production, sandbox, emulator) is the one the
    company was connected in.

    Attributes:
        database_url: the store and warehouse; empty means ``$QB_DATABASE_URL`` at run time.
        fernet_key: the key tokens are encrypted with (``dg.EnvVar("QB_FERNET_KEY")``).
        client_id: the Intuit app's client id (``dg.EnvVar("QBO_CLIENT_ID")``).
        client_secret: the Intuit app's client secret (``dg.EnvVar("QBO_CLIENT_SECRET")``).
        environment: default environment for new connections; empty means ``$QBO_ENVIRONMENT``
            at run time, else ``production``.
        emulator_url: the emulator's base URL; empty means ``$QBO_EMULATOR_URL`` at run time.
        max_retries: retries of a throttled or failed QBO call (jittered exponential backoff).
    """

    database_url: str = Field(default="", description="Store URL; empty means $QB_DATABASE_URL at run time.")
    fernet_key: str = Field(description="Key that encrypts tokens at rest (QB_FERNET_KEY).")
    client_id: str = Field(description="The Intuit app's client id (QBO_CLIENT_ID).")
    client_secret: str = Field(description="The Intuit app's client secret (QBO_CLIENT_SECRET).")
    environment: str = Field(default="", description="production, sandbox or emulator; empty means $QBO_ENVIRONMENT.")
    emulator_url: str = Field(default="", description="Emulator base URL; empty means $QBO_EMULATOR_URL.")
    max_retries: int = Field(default=5, description="Retries of a throttled or failed QuickBooks call.")

    def settings(self) -> AppSettings:
        """The app settings this resource stands for (environment variables fill empty fields)."""
        return AppSettings(
            database_url=self.database_url or os.environ.get("QB_DATABASE_URL") or None,
            fernet_key=self.fernet_key,
            client_id=self.client_id,
            client_secret=self.client_secret,
            environment_name=self.environment or os.environ.get("QBO_ENVIRONMENT") or "production",
            emulator_url=self.emulator_url or os.environ.get("QBO_EMULATOR_URL") or None,
            shared_rate_limits=env_flag(os.environ, "QB_SHARED_RATE_LIMITS", default=True),
        )

    def runtime(self) -> Runtime:
        """The process-wide runtime of these settings."""
        return Runtime.shared(self.settings())

    def companies(self) -> list[Company]:
        """The companies that can be synced now, one per connected tenant."""
        return self.runtime().connected_companies()

    def company(self, company_key: str) -> Company:
        """The company a partition key names (raises ``UnknownCompanyError``)."""
        return self.runtime().resolve(company_key)

    def client_for(self, company_key: str) -> QBOClient:
        """The QBO client of the company ``company_key`` (a partition key).

        Raises:
            UnknownCompanyError: the key names no company, or its tenant has switched away.
        """
        return self.runtime().client_for(company_key, max_retries=self.max_retries)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse the QuickBooks tables land in: the runtime's database (SQLite or PostgreSQL).

    The store and the warehouse share one database, so this resource is the runtime's warehouse
    side, seen by the assets and checks that only read or write tables.

    Attributes:
        qbo: the integration's resource (its runtime owns the engine).
    """

    qbo: QBOConnectionResource

    def engine(self) -> Engine:
        """The warehouse engine (migrated to the latest schema)."""
        return self.qbo.runtime().engine

    def writer(self) -> WarehouseWriter:
        """The writer that lands QuickBooks objects (idempotent upserts, flags for deletes)."""
        return self.qbo.runtime().warehouse


@dg.definitions
def resources() -> dg.Definitions:
    """Resources bound to every asset, check, sensor and schedule of the code location.

    Secrets are ``dg.EnvVar`` references: Dagster reads them when a run or a tick starts, and a
    missing one fails that run with the variable's name, never the loading of the code location.
    """
    qbo = QBOConnectionResource(
        fernet_key=dg.EnvVar("QB_FERNET_KEY"),
        client_id=dg.EnvVar("QBO_CLIENT_ID"),
        client_secret=dg.EnvVar("QBO_CLIENT_SECRET"),
    )
    return dg.Definitions(
        resources={"qbo_emulator": QBOEmulatorResource(), "qbo": qbo, "warehouse": WarehouseResource(qbo=qbo)}
    )
