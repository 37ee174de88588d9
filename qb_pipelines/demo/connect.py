"""Connect the demo company for the demo tenant, and tell the emulator about the web app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qb_pipelines.demo.config import (
    ADMIN_EMAIL,
    DEMO_TENANT,
    DEMO_TENANT_NAME,
    EMULATOR_CLIENT_ID,
    WEBHOOK_WINDOW_S,
    DemoError,
)
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlError

__all__ = ["ConnectedDemo", "demo_realm", "prepare_store", "register_with_emulator"]


@dataclass
class ConnectedDemo:
    """The demo company, connected for the demo tenant.

    Attributes:
        realm_id: the emulator company's realmId.
        company_name: its CompanyInfo name.
        company_key: the partition and warehouse key (``demo-<realmId>``).
        tenant_key: the tenant that connected it.
        admin_email: the admin user of the web app.
        admin_created: whether the admin was created now (its password is then new).
        connect_kind: ``first`` (a fresh store: the demo connected its company now) or ``kept``
            (the tenant already had a connection, left exactly as it was).
        state: the connection's state (``connected``, ``disconnected``...).
    """

    realm_id: str
    company_name: str
    company_key: str
    tenant_key: str
    admin_email: str
    admin_created: bool
    connect_kind: str
    state: str = "connected"


def demo_realm(control: EmulatorControl) -> str:
    """The realmId of the seeded demo company (the first company when it is not there)."""
    from qb_pipelines.emulator.seed import DEMO_COMPANY_NAME

    companies = control.companies()
    for company in companies:
        if company.get("name") == DEMO_COMPANY_NAME:
            return str(company["realmId"])
    if not companies:
        raise DemoError(f"the emulator at {control.url} holds no company; expected the seeded demo company")
    return str(companies[0]["realmId"])


def prepare_store(env: Mapping[str, str], emulator_url: str, admin_password: str, *, realm_id: str | None = None,
                  tenant_key: str = DEMO_TENANT) -> ConnectedDemo:
    """Migrate the store, create the admin and the tenant; on a fresh store, connect the demo company.

    Idempotent, and a restart never changes a user's connection: when the tenant already has one
    (whatever its company, whatever its state, even disconnected by the user, or switched to
    another company) it is kept exactly as it is: no new grant, no switch back, no settings
    saved. Only a store whose tenant never connected gets the demo company connected and the
    Setup Wizard's settings saved. The admin is reused (its password reset to ``secrets.env``'s).

    Args:
        env: from :func:`~qb_pipelines.demo.secrets_file.demo_environment` (store URL, token key).
        emulator_url: the running emulator.
        admin_password: the demo admin's password (from ``secrets.env``).
        realm_id: the company to connect; the demo company by default.
        tenant_key: the tenant connecting it.

    Raises:
        DemoError: the emulator refused a step (the message names it).
    """
    from qb_pipelines.qbo.client import MemoryTokenSource, QBOClient
    from qb_pipelines.qbo.oauth import TokenSet
    from qb_pipelines.sync.companies import company_key
    from qb_pipelines.sync.connections import live_lists
    from qb_pipelines.sync.runtime import Runtime

    control = EmulatorControl(emulator_url)
    runtime = Runtime.from_env(env)
    settings = runtime.settings
    try:
        users = runtime.users
        admin_created = users.get(ADMIN_EMAIL) is None
        if admin_created:
            users.create(ADMIN_EMAIL, admin_password, "admin")
        else:
            # the password in secrets.env is the one that works, even if someone changed it by hand
            users.set_password(ADMIN_EMAIL, admin_password)
        store = runtime.connections
        runtime.tenants.ensure_tenant(tenant_key, DEMO_TENANT_NAME)
        existing = store.get(tenant_key)
        if existing is not None and existing.realm_id:
            # The user's connection, as they left it: the demo only ever makes the first one.
            state = str(getattr(existing.state, "value", existing.state))
            return ConnectedDemo(existing.realm_id, existing.company_name or f"Company {existing.realm_id}",
                                 company_key(tenant_key, existing.realm_id), tenant_key, ADMIN_EMAIL, admin_created,
                                 "kept", state)

        realm = realm_id or demo_realm(control)
        try:
            issued = control.tokens(realm)
        except EmulatorControlError as exc:
            raise DemoError(f"the emulator refused tokens for company {realm}: {exc}") from None
        tokens = TokenSet.from_response(issued, realm_id=realm)
        oauth = settings.oauth("emulator")
        # What the OAuth callback reads before storing a connection: who connected, which company.
        user = oauth.userinfo(tokens.access_token)
        source = MemoryTokenSource(oauth, tokens)
        client = QBOClient(realm, source, settings.environment("emulator"))
        info = client.company_info()
        company_name = str(info.get("CompanyName") or info.get("LegalName") or f"Company {realm}")
        kind = store.save_tokens_on_connect(
            tenant_key, "emulator", realm, company_name, str(user.get("email") or ""),
            str(user.get("givenName") or ""), str(user.get("familyName") or ""), source.tokens,
        )
        if not runtime.tenant_settings.get(tenant_key).configured:
            # What the Setup Wizard saves: every entity on, default directions and policy, and the
            # company's own income account and tax code (read live, as the wizard lists them).
            accounts, codes = live_lists(client)
            income = next((a for a in accounts if "services" in a.name.lower()), accounts[0] if accounts else None)
            if income is None:
                raise DemoError(f"company {realm} has no income account to use as the default")
            values: dict[str, Any] = {"default_income_account_id": income.id, "default_income_account_name": income.name,
                                      "mode": "test"}
            if codes:
                values.update(default_tax_code_id=codes[0].id, default_tax_code_name=codes[0].name)
            runtime.tenant_settings.save(tenant_key, values)
        return ConnectedDemo(realm, company_name, company_key(tenant_key, realm), tenant_key, ADMIN_EMAIL,
                             admin_created, str(getattr(kind, "value", kind)))
    finally:
        runtime.close()
        control.close()


def register_with_emulator(emulator_url: str, *, redirect_uri: str, webhook_url: str, verifier_token: str,
                           window_s: float = WEBHOOK_WINDOW_S) -> dict[str, Any]:
    """Tell the emulator about the web app: its OAuth callback, and where to send webhooks.

    Returns:
        The webhook subscription as the emulator describes it.

    Raises:
        DemoError: the emulator refused either registration.
    """
    with EmulatorControl(emulator_url) as control:
        try:
            control.register_app(EMULATOR_CLIENT_ID, [redirect_uri])
        except EmulatorControlError as exc:
            raise DemoError(f"registering the redirect URI with the emulator failed: {exc}") from None
        try:
            return control.subscribe_webhooks(webhook_url, verifier_token, format="cloudevents", window_s=window_s)
        except EmulatorControlError as exc:
            raise DemoError(f"subscribing the emulator's webhooks failed: {exc}") from None
