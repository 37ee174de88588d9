"""Where QuickBooks lives: Intuit production, Intuit's sandbox, or the local emulator.

One :class:`Environment` is the only thing that differs between talking to real companies, to
Intuit's sandbox companies and to the emulator (reference §1.1, §10.1): the Accounting API base
URL and the OAuth/OpenID endpoints. Every other line of the client is the same, which is what
lets the tests against the emulator stand for the real service.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Environment names a tenant's connection can carry.
ENVIRONMENT_NAMES = ("production", "sandbox", "emulator")

#: Where the emulator listens unless told otherwise (``qb-pipelines emulator serve``'s default
#: port, the demo's emulator). The one default for the whole project: the settings, the Dagster
#: resource, the command line and the control client all read it from here.
DEFAULT_EMULATOR_PORT = 8765
DEFAULT_EMULATOR_URL = f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}"

# Intuit's hosts (reference §10.1). Authorize, token and revoke are shared by sandbox and
# production; only the API host and the userinfo host differ.
_AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
_USERINFO_PROD = "https://accounts.platform.intuit.com/v1/openid_connect/userinfo"
_USERINFO_SANDBOX = "https://sandbox-accounts.platform.intuit.com/v1/openid_connect/userinfo"
_DISCOVERY_PROD = "https://developer.intuit.com/.well-known/openid_configuration/"
_DISCOVERY_SANDBOX = "https://developer.intuit.com/.well-known/openid_sandbox_configuration/"

# The emulator serves every Intuit host from one base URL, on the production URLs' paths.
_EMULATOR_PATHS = {
    "authorize_url": "/connect/oauth2",
    "token_url": "/oauth2/v1/tokens/bearer",
    "revoke_url": "/v2/oauth2/tokens/revoke",
    "userinfo_url": "/v1/openid_connect/userinfo",
    "discovery_url": "/.well-known/openid_configuration/",
}


@dataclass(frozen=True)
class Environment:
    """The URLs of one QuickBooks environment.

    Attributes:
        name: ``"production"`` (real companies), ``"sandbox"`` (Intuit's developer sandbox
            companies, separate client credentials) or ``"emulator"`` (the local emulator).
        api_base: Base of the Accounting API; calls go to ``{api_base}/v3/company/{realmId}/...``.
        authorize_url: The consent page the admin's browser is sent to when connecting.
        token_url: Code exchange and refresh.
        revoke_url: Where a disconnect revokes the grant.
        userinfo_url: OpenID userinfo: the connecting user's email and name.
        discovery_url: The OpenID discovery document (informational; the URLs above are fixed).
    """

    name: str
    api_base: str
    authorize_url: str
    token_url: str
    revoke_url: str
    userinfo_url: str
    discovery_url: str

    @property
    def is_production(self) -> bool:
        """True when calls reach real companies (the admin's "production" mode)."""
        return self.name == "production"


def environment(name: str, emulator_url: str | None = None) -> Environment:
    """The :class:`Environment` called ``name``.

    Args:
        name: ``"production"``, ``"sandbox"`` or ``"emulator"`` (case-insensitive).
        emulator_url: The emulator's base URL (e.g. ``http://127.0.0.1:8765``); required for
            ``"emulator"`` and ignored otherwise.

    Raises:
        ValueError: On an unknown name, or ``"emulator"`` without ``emulator_url``; the message
            says which values are valid.
    """
    key = (name or "").strip().lower()
    if key == "production":
        return Environment(
            name="production",
            api_base="https://quickbooks.api.intuit.com",
            authorize_url=_AUTHORIZE_URL,
            token_url=_TOKEN_URL,
            revoke_url=_REVOKE_URL,
            userinfo_url=_USERINFO_PROD,
            discovery_url=_DISCOVERY_PROD,
        )
    if key == "sandbox":
        return Environment(
            name="sandbox",
            api_base="https://sandbox-quickbooks.api.intuit.com",
            authorize_url=_AUTHORIZE_URL,
            token_url=_TOKEN_URL,
            revoke_url=_REVOKE_URL,
            userinfo_url=_USERINFO_SANDBOX,
            discovery_url=_DISCOVERY_SANDBOX,
        )
    if key == "emulator":
        if not emulator_url:
            raise ValueError(
                "the 'emulator' environment needs the emulator's base URL (e.g. http://127.0.0.1:8765; "
                "set QBO_EMULATOR_URL or start one with `qb-pipelines emulator serve`)"
            )
        base = emulator_url.rstrip("/")
        return Environment(name="emulator", api_base=base, **{k: base + p for k, p in _EMULATOR_PATHS.items()})
    raise ValueError(
        f"unknown QuickBooks environment {name!r}: use one of {', '.join(ENVIRONMENT_NAMES)} "
        "(production for real companies, sandbox for Intuit's developer sandbox, emulator for the local emulator)"
    )
