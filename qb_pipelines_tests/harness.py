"""One harness for "an emulator company, connected for a tenant, in a real store".

Tests of landing, pushing and the web app all start the same way: a QBO emulator served over
real HTTP, a store (SQLite or PostgreSQL) with the project's runtime on it, a tenant connected to
an emulator company as the OAuth callback would connect it (tokens from the emulator's control
API, the connecting user from userinfo, CompanyInfo), and the Setup Wizard's settings saved.
:func:`connect_company` does exactly that and returns a :class:`Connected` with the handles a
test needs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.connections import live_lists
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings

EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"


def emulator_settings(database_url: str, emulator: RunningEmulator, **overrides: Any) -> AppSettings:
    """Settings of a deployment whose QuickBooks is ``emulator`` (a fresh token key)."""
    values: dict[str, Any] = {"database_url": database_url, "fernet_key": generate_key(),
                              "client_id": EMULATOR_CLIENT_ID, "client_secret": EMULATOR_CLIENT_SECRET,
                              "environment_name": "emulator", "emulator_url": emulator.url}
    values.update(overrides)
    return AppSettings(**values)


@dataclass
class Connected:
    """A tenant connected to an emulator company.

    Attributes:
        emulator: the running emulator.
        runtime: the runtime over the store (the one the product code under test uses).
        tenant: the tenant key.
        realm: the company's realmId.
        key: the company key (``<tenant>-<realm>``).
    """

    emulator: RunningEmulator
    runtime: Runtime
    tenant: str
    realm: str
    key: str

    def client(self, **kwargs: Any) -> QBOClient:
        """The company's QBO client, as the product builds it."""
        return self.runtime.client_for(self.key, **kwargs)

    @property
    def control(self) -> EmulatorControl:
        """The emulator's control API."""
        return EmulatorControl(self.emulator.url)

    def act(self, entity: str, operation: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Change the company as a QuickBooks user would (the emulator's control API)."""
        with self.control as control:
            answer = control.act(self.realm, entity, operation, body, **extra)
        return answer.get(entity, answer)

    def read(self, entity: str, obj_id: str) -> dict[str, Any]:
        """QuickBooks' object now."""
        return self.client(max_retries=1).read(entity, obj_id)

    def query(self, entity: str, where: str | None = None) -> list[dict[str, Any]]:
        return list(self.client(max_retries=1).query_all(entity, where=where))

    def counters(self) -> dict[str, Any]:
        with self.control as control:
            return control.counters(self.realm)


def tokens_for(emulator: RunningEmulator, realm: str) -> TokenSet:
    """A fresh grant on ``realm`` from the emulator's control API (no browser)."""
    with EmulatorControl(emulator.url) as control:
        return TokenSet.from_response(control.tokens(realm), realm_id=realm)


def connect_company(emulator: RunningEmulator, runtime: Runtime, *, realm: str | None = None,
                    name: str | None = None, tenant: str | None = None, configure: bool = True,
                    **settings: Any) -> Connected:
    """Connect an emulator company for a tenant, as the OAuth callback and the Setup Wizard would.

    Args:
        emulator: the running emulator.
        runtime: the runtime over the store.
        realm: an existing emulator company; a new empty one (QBO's starting lists) by default.
        name: the new company's name.
        tenant: the tenant key (a new one by default).
        configure: save the wizard's settings (every entity on, the company's Services income
            account, its first tax code, test mode) so the tenant counts as configured.
        **settings: settings to save instead of the defaults (``conflict_policy="app_wins"``...).
    """
    realm = realm or emulator.emu.engine.create_company(name or f"Company {secrets.token_hex(2)}")
    tenant = tenant or f"t{secrets.token_hex(4)}"
    runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
    tokens = tokens_for(emulator, realm)
    oauth = runtime.oauth("emulator")
    user = oauth.userinfo(tokens.access_token)
    info_client = runtime.client(realm, _Static(tokens.access_token), "emulator", max_retries=1)
    info = info_client.company_info()
    runtime.connections.save_tokens_on_connect(
        tenant, "emulator", realm, str(info.get("CompanyName") or realm), str(user.get("email") or ""),
        str(user.get("givenName") or ""), str(user.get("familyName") or ""), tokens)
    connected = Connected(emulator, runtime, tenant, realm, company_key(tenant, realm))
    if configure:
        accounts, codes = live_lists(info_client)
        income = next((a for a in accounts if "services" in a.name.lower()), accounts[0])
        values: dict[str, Any] = {"default_income_account_id": income.id, "default_income_account_name": income.name,
                                  "mode": "test"}
        if codes:
            values.update(default_tax_code_id=codes[0].id, default_tax_code_name=codes[0].name)
        values.update(settings)
        runtime.tenant_settings.save(tenant, values)
    return connected


class _Static:
    """A token source that hands out one access token (for the calls made while connecting)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh(self, stale_access_token: str) -> str:
        return self.token
