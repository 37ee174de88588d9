"""The integration's runtime settings: the store's URL, the token key and the Intuit app.

One frozen dataclass that the Dagster resources, the command line and (later) the admin web app
share, so that the variables below mean the same thing everywhere. It is read when a run, a
command or an app starts -- :meth:`AppSettings.from_env` -- never at import, so tests build it
directly and nothing has to be reloaded. A missing variable is reported by name, with what to
put in it.

| variable | what it is |
|---|---|
| ``QB_DATABASE_URL`` | SQLAlchemy URL of the integration store and warehouse (the store's default SQLite file when unset) |
| ``QB_FERNET_KEY`` | key that encrypts tokens at rest (``qb-pipelines keys generate``) |
| ``QBO_CLIENT_ID`` / ``QBO_CLIENT_SECRET`` | the app's keys from Intuit's developer portal (or the emulator's app) |
| ``QBO_ENVIRONMENT`` | ``production``, ``sandbox`` or ``emulator`` (default ``production``) |
| ``QBO_EMULATOR_URL`` | the emulator's base URL (default ``http://127.0.0.1:8765`` when the environment is ``emulator``) |
| ``QBO_REDIRECT_URI`` | the OAuth callback registered with Intuit; only the connect flow needs it |
| ``QB_COMPANIES_PER_TENANT`` | ``one`` (default): one QuickBooks company per tenant; ``several``: a tenant may connect more, each its own card |
| ``QB_SHARED_RATE_LIMITS`` | ``on`` (default): QBO's per-company limits are counted in the store across processes; ``off``: per process only |

Each connection remembers the environment it was made in; :meth:`AppSettings.environment` and
:meth:`AppSettings.oauth` take that name, so one deployment can hold sandbox and production
companies side by side (``QBO_ENVIRONMENT`` is only the default for new connections).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from qb_pipelines.config import SettingsError, required_env
from qb_pipelines.qbo.environments import DEFAULT_EMULATOR_URL, ENVIRONMENT_NAMES, Environment, environment
from qb_pipelines.qbo.oauth import IntuitOAuth

#: Values of ``QB_COMPANIES_PER_TENANT``.
COMPANIES_PER_TENANT = ("one", "several")

__all__ = ["COMPANIES_PER_TENANT", "DEFAULT_EMULATOR_URL", "AppSettings", "SettingsError", "env_flag", "required_env"]


@dataclass(frozen=True)
class AppSettings:
    """What syncing a QuickBooks company needs: where the store is, how tokens are sealed, which app.

    Attributes:
        database_url: SQLAlchemy URL of the store and warehouse; ``None`` lets the store choose its
            default SQLite file.
        fernet_key: Key that encrypts tokens at rest. Never logged.
        client_id: The Intuit app's client id.
        client_secret: The Intuit app's client secret. Never logged.
        environment_name: Default environment (``production``, ``sandbox`` or ``emulator``).
        emulator_url: The emulator's base URL, used for connections made in the emulator.
        redirect_uri: The OAuth callback; refreshing tokens does not use it, connecting does.
        shared_rate_limits: Count QBO's per-company limits in the store, across every process
            (:mod:`qb_pipelines.store.rate_limits`); off saves about a millisecond per request
            where only one process ever calls QuickBooks.
        companies_per_tenant: ``one`` (a tenant connects one company) or ``several`` (a tenant's
            card offers "Connect another company": each extra company is a child tenant).
    """

    database_url: str | None
    fernet_key: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    environment_name: str = "production"
    emulator_url: str | None = None
    redirect_uri: str = ""
    shared_rate_limits: bool = True
    companies_per_tenant: str = "one"

    def __post_init__(self) -> None:
        per_tenant = (self.companies_per_tenant or "one").strip().lower()
        if per_tenant not in COMPANIES_PER_TENANT:
            raise SettingsError(
                f"QB_COMPANIES_PER_TENANT={self.companies_per_tenant!r} is not valid: use one or several."
            )
        object.__setattr__(self, "companies_per_tenant", per_tenant)
        name = (self.environment_name or "production").strip().lower()
        if name not in ENVIRONMENT_NAMES:
            raise SettingsError(
                f"QBO_ENVIRONMENT={self.environment_name!r} is not valid: use one of {', '.join(ENVIRONMENT_NAMES)}."
            )
        object.__setattr__(self, "environment_name", name)

    @property
    def several_companies(self) -> bool:
        """Whether a tenant may connect several QuickBooks companies (``QB_COMPANIES_PER_TENANT=several``)."""
        return self.companies_per_tenant == "several"

    def environment(self, name: str | None = None) -> Environment:
        """The URLs of environment ``name`` (a connection's), or of the default one.

        Raises:
            SettingsError: the emulator environment without an emulator URL, or an unknown name.
        """
        name = (name or self.environment_name).strip().lower()
        url = self.emulator_url or (DEFAULT_EMULATOR_URL if name == "emulator" else None)
        try:
            return environment(name, url)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc

    def oauth(self, name: str | None = None) -> IntuitOAuth:
        """Intuit's OAuth client of this app for environment ``name`` (refreshes tokens)."""
        return IntuitOAuth(self.client_id, self.client_secret, self.redirect_uri, self.environment(name))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        """Read the settings from environment variables (see the module docstring).

        Raises:
            SettingsError: naming the first missing or invalid variable.
        """
        env = os.environ if env is None else env
        return cls(
            database_url=(env.get("QB_DATABASE_URL") or "").strip() or None,
            fernet_key=required_env(
                env, "QB_FERNET_KEY",
                "the store encrypts OAuth tokens with it. Generate one with `qb-pipelines keys generate`.",
            ),
            client_id=required_env(
                env, "QBO_CLIENT_ID", "the Client ID of your app on developer.intuit.com (emulator: emulator-client-id)."
            ),
            client_secret=required_env(
                env, "QBO_CLIENT_SECRET",
                "the Client Secret of your app on developer.intuit.com (emulator: emulator-client-secret).",
            ),
            environment_name=(env.get("QBO_ENVIRONMENT") or "production").strip().lower(),
            emulator_url=(env.get("QBO_EMULATOR_URL") or "").strip() or None,
            redirect_uri=(env.get("QBO_REDIRECT_URI") or "").strip(),
            shared_rate_limits=env_flag(env, "QB_SHARED_RATE_LIMITS", default=True),
            companies_per_tenant=(env.get("QB_COMPANIES_PER_TENANT") or "one").strip().lower(),
        )


def env_flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """An on/off variable (``1/true/on/yes`` or ``0/false/off/no``; unset or empty: ``default``).

    Raises:
        SettingsError: any other value.
    """
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise SettingsError(f"{name}={env.get(name)!r} is not valid: use on or off.")
