"""Configuration of the admin web app, read from the environment when the app starts.

The web app is the integration plus a session cookie and the webhook verifier: its settings
are the shared :class:`~qb_pipelines.sync.settings.AppSettings` (one reading of the ``QB_*`` /
``QBO_*`` variables for every process) and the variables below. Everything is read when the app
starts, never at import time, so tests build a :class:`WebSettings` directly. A missing variable
is reported by name, with what to put in it (:class:`~qb_pipelines.config.SettingsError`).

| variable | what it is |
|---|---|
| the variables of :class:`~qb_pipelines.sync.settings.AppSettings` | store, token key, Intuit app, emulator |
| ``QBO_ENVIRONMENT`` | required here (the environment new connections are made in) |
| ``QBO_REDIRECT_URI`` | required here: this app's ``/oauth/callback`` URL, exactly as registered with Intuit |
| ``QB_SESSION_SECRET`` | signs the admin session cookies; a long random string |
| ``QB_COOKIE_SECURE`` | ``1`` to send the session cookie over HTTPS only (set it behind TLS) |
| ``QB_SESSION_IDLE_MINUTES`` | sign an admin out after this many minutes without a request (default 60) |
| ``QB_READ_BUDGET`` | monthly metered read calls allowed per company (default 500,000, Intuit's Builder tier) |
| ``QBO_WEBHOOK_VERIFIER_TOKEN`` | the Verifier Token of the Intuit app's webhooks; unset: ``POST /webhooks/quickbooks`` answers 503 |
| ``QB_API_RATE_LIMIT`` | requests per second each records-API key may make, per web worker (default 50, bursts of twice that; ``0``: no limit) |
| ``QB_DAGSTER_GRAPHQL_URL`` | the dagster-webserver's ``/graphql``: an enqueue asks Dagster for the push run at once, and a stored webhook for its landing run (:mod:`qb_pipelines.web.dagster_launch`); unset: the sensors alone start them |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from qb_pipelines.config import SettingsError, required_env
from qb_pipelines.qbo.environments import ENVIRONMENT_NAMES
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines.sync.usage_budget import DEFAULT_READ_BUDGET, read_budget

__all__ = ["WebSettings"]


@dataclass(frozen=True)
class WebSettings(AppSettings):
    """Settings of the admin web app: the integration's settings plus the session cookie's.

    Attributes:
        session_secret: Signs the session cookie (itsdangerous); rotate it to sign everybody out.
        https_only: Send the session cookie only over HTTPS (set behind TLS).
        session_max_age_s: How long a sign-in lasts at most, however active (absolute expiry).
        session_idle_s: How long a session survives without a request (idle timeout).
        read_budget: Monthly metered read calls allowed per company (the card warns from 80 %).
        webhook_verifier_token: Intuit's webhook Verifier Token (developer portal, Webhooks), the
            key of the ``intuit-signature`` HMAC; ``None`` turns webhook intake off (503).
        api_rate_per_s: Requests per second one records-API key may make (per web worker; bursts
            of twice that); ``0`` lifts the limit.
        dagster_graphql_url: The dagster-webserver's GraphQL endpoint; when set, the records API
            asks for the company's push run right after an enqueue, and the webhook intake for the
            landing of what the events name (best effort, in the background).
    """

    session_secret: str = field(default="", repr=False)
    https_only: bool = False
    session_max_age_s: int = 8 * 3600
    session_idle_s: int = 3600
    read_budget: int = DEFAULT_READ_BUDGET
    webhook_verifier_token: str | None = field(default=None, repr=False)
    api_rate_per_s: float = 50.0
    dagster_graphql_url: str | None = None

    def app_settings(self) -> AppSettings:
        """The shared part (what the runtime is built from)."""
        return AppSettings(database_url=self.database_url, fernet_key=self.fernet_key, client_id=self.client_id,
                           client_secret=self.client_secret, environment_name=self.environment_name,
                           emulator_url=self.emulator_url, redirect_uri=self.redirect_uri,
                           shared_rate_limits=self.shared_rate_limits, companies_per_tenant=self.companies_per_tenant)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read the web app's settings from environment variables (see the module docstring).

        Raises:
            SettingsError: naming the first missing or invalid variable.
        """
        env = os.environ if env is None else env
        # The web app names its environment and callback explicitly; the rest is the shared settings.
        required_env(env, "QBO_ENVIRONMENT", f"one of {', '.join(ENVIRONMENT_NAMES)}.")
        app = AppSettings.from_env(env)
        redirect_uri = required_env(
            env, "QBO_REDIRECT_URI",
            "this web app's callback URL, e.g. https://admin.example.com/oauth/callback, registered as a "
            "Redirect URI of your Intuit app.",
        )
        secret = required_env(
            env, "QB_SESSION_SECRET",
            "it signs the admin session cookies. Use a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
        )
        https_only = (env.get("QB_COOKIE_SECURE") or "").strip().lower() in {"1", "true", "yes"}
        # Optional: the admin pages work without it; only webhook intake needs it (and says so).
        verifier = (env.get("QBO_WEBHOOK_VERIFIER_TOKEN") or "").strip() or None
        idle = (env.get("QB_SESSION_IDLE_MINUTES") or "").strip()
        if idle and (not idle.isdigit() or int(idle) <= 0):
            raise SettingsError(f"QB_SESSION_IDLE_MINUTES={idle!r} is not a positive whole number of minutes.")
        rate = (env.get("QB_API_RATE_LIMIT") or "").strip()
        try:
            api_rate = float(rate) if rate else 50.0
        except ValueError:
            api_rate = -1.0
        if not api_rate >= 0:  # also refuses nan
            raise SettingsError(f"QB_API_RATE_LIMIT={rate!r} is not a number of requests per second (0: no limit).")
        values = {**app.__dict__, "redirect_uri": redirect_uri}
        return cls(**values, session_secret=secret, https_only=https_only, webhook_verifier_token=verifier,
                   session_idle_s=int(idle) * 60 if idle else 3600, read_budget=read_budget(env),
                   api_rate_per_s=api_rate,
                   dagster_graphql_url=(env.get("QB_DAGSTER_GRAPHQL_URL") or "").strip() or None)
