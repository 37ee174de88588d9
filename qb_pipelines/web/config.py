"""Configuration of the admin web app and of the connection commands, read from the environment.

Everything is read when the app (or a command) starts, never at import time, so tests build a
:class:`WebSettings` directly and nothing has to be reloaded. A missing variable is reported by
name, with what to put in it.

| variable | what it is |
|---|---|
| ``QB_DATABASE_URL`` | SQLAlchemy URL of the integration store (the store's default SQLite file when unset) |
| ``QB_FERNET_KEY`` | key that encrypts tokens at rest (``qb-pipelines keys generate``) |
| ``QBO_CLIENT_ID`` / ``QBO_CLIENT_SECRET`` | the app's keys from Intuit's developer portal (or the emulator's app) |
| ``QBO_REDIRECT_URI`` | this app's ``/oauth/callback`` URL, exactly as registered with Intuit |
| ``QBO_ENVIRONMENT`` | ``production``, ``sandbox`` or ``emulator`` |
| ``QBO_EMULATOR_URL`` | the emulator's base URL when ``QBO_ENVIRONMENT=emulator`` (default ``http://127.0.0.1:8765``) |
| ``QB_SESSION_SECRET`` | signs the admin session cookies (web app only); a long random string |
| ``QB_COOKIE_SECURE`` | ``1`` to send the session cookie over HTTPS only (set it behind TLS) |
| ``QBO_WEBHOOK_VERIFIER_TOKEN`` | the Verifier Token of the Intuit app's webhooks (web app only); unset: ``POST /webhooks/quickbooks`` answers 503 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from qb_pipelines.qbo.environments import ENVIRONMENT_NAMES, Environment, environment
from qb_pipelines.sync.settings import DEFAULT_EMULATOR_URL, AppSettings, SettingsError, required_env

#: One error type for a missing or invalid setting, whether the web app or a sync reads it.
ConfigError = SettingsError


@dataclass(frozen=True)
class ConnectionSettings:
    """What the connection flows need: the store and the Intuit app.

    Attributes:
        database_url: SQLAlchemy URL of the integration store; ``None`` lets the store choose its default.
        fernet_key: Key that encrypts tokens at rest.
        client_id: The Intuit app's client id.
        client_secret: The Intuit app's client secret (never logged, never rendered).
        redirect_uri: The web app's OAuth callback URL, registered with Intuit.
        environment_name: ``production``, ``sandbox`` or ``emulator``.
        emulator_url: The emulator's base URL (used when ``environment_name`` is ``emulator``).
    """

    database_url: str | None
    fernet_key: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    environment_name: str
    emulator_url: str | None = None

    def environment(self) -> Environment:
        """The QuickBooks environment these settings point at."""
        return environment(self.environment_name, self.emulator_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectionSettings:
        """Read the connection settings from environment variables (see the module docstring).

        Raises:
            ConfigError: naming the first missing or invalid variable.
        """
        env = os.environ if env is None else env
        return cls(**_connection_fields(env))


def _connection_fields(env: Mapping[str, str]) -> dict[str, str | None]:
    # The web app names its environment and callback explicitly; the rest is the shared settings.
    required_env(env, "QBO_ENVIRONMENT", f"one of {', '.join(ENVIRONMENT_NAMES)}.")
    app = AppSettings.from_env(env)
    redirect_uri = required_env(
        env,
        "QBO_REDIRECT_URI",
        "this web app's callback URL, e.g. https://admin.example.com/oauth/callback, registered as a "
        "Redirect URI of your Intuit app.",
    )
    return {
        "database_url": app.database_url,
        "fernet_key": app.fernet_key,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": redirect_uri,
        "environment_name": app.environment_name,
        "emulator_url": app.emulator_url or (DEFAULT_EMULATOR_URL if app.environment_name == "emulator" else None),
    }


@dataclass(frozen=True)
class WebSettings(ConnectionSettings):
    """Settings of the admin web app: the connection settings plus the session cookie's.

    Attributes:
        session_secret: Signs the session cookie (itsdangerous); rotate it to sign everybody out.
        https_only: Send the session cookie only over HTTPS (set behind TLS).
        session_max_age_s: How long a sign-in lasts.
        webhook_verifier_token: Intuit's webhook Verifier Token (developer portal, Webhooks), the
            key of the ``intuit-signature`` HMAC; ``None`` turns webhook intake off (503).
    """

    session_secret: str = field(default="", repr=False)
    https_only: bool = False
    session_max_age_s: int = 8 * 3600
    webhook_verifier_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read the web app's settings from environment variables (see the module docstring).

        Raises:
            ConfigError: naming the first missing or invalid variable.
        """
        env = os.environ if env is None else env
        fields = _connection_fields(env)
        secret = required_env(
            env,
            "QB_SESSION_SECRET",
            "it signs the admin session cookies. Use a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
        )
        https_only = (env.get("QB_COOKIE_SECURE") or "").strip().lower() in {"1", "true", "yes"}
        # Optional: the admin pages work without it; only webhook intake needs it (and says so).
        verifier = (env.get("QBO_WEBHOOK_VERIFIER_TOKEN") or "").strip() or None
        return cls(**fields, session_secret=secret, https_only=https_only, webhook_verifier_token=verifier)
