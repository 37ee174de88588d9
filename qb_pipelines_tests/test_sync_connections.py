"""The connection flows (``qb_pipelines.sync.connections``) against the emulator, without the web app.

Authorization codes come from the emulator's real consent pages (driven over HTTP); tokens live in a
real SQLite store. Each test checks outcomes: the stored state, what Intuit (the emulator) still
accepts, and what the admin is told.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from qb_pipelines.emulator.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient, TokenSource
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.errors import InvalidGrantError
from qb_pipelines.qbo.oauth import SCOPES, IntuitOAuth
from qb_pipelines.store.connections import ConnectionState, ConnectionStore
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync import connections as flows
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.harness import new_company
from qb_pipelines_tests.web_fixtures import consent_over_http

REDIRECT_URI = "http://127.0.0.1:3000/callback"  # registered for the emulator's default app


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    settings = AppSettings(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}", fernet_key=generate_key(),
                           client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET)
    with Runtime(settings) as runtime:
        yield runtime


@pytest.fixture
def store(rt: Runtime) -> ConnectionStore:
    return rt.connections


@pytest.fixture
def oauth(emulator: RunningEmulator) -> IntuitOAuth:
    return IntuitOAuth(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, REDIRECT_URI, environment("emulator", emulator.url))


def _company(emulator: RunningEmulator, name: str) -> str:
    return new_company(emulator, name)


def _client_factory(oauth: IntuitOAuth):
    def build(realm_id: str, tokens: TokenSource) -> QBOClient:
        return QBOClient(realm_id, tokens, oauth.environment, max_retries=1)

    return build


def _authorize(store: ConnectionStore, oauth: IntuitOAuth, tenant: str, realm: str,
               action: str = "connect") -> tuple[str, str]:
    """The admin consents in the emulator; returns (code, realmId) as the callback would carry them."""
    url, state = flows.begin_connect(store, oauth, tenant, action)
    query = parse_qs(urlsplit(consent_over_http(url, realm)).query)
    assert query["state"] == [state]
    return query["code"][0], query["realmId"][0]


def _connect(store: ConnectionStore, oauth: IntuitOAuth, tenant: str, realm: str,
             action: str = "connect") -> flows.ConnectResult:
    code, realm_id = _authorize(store, oauth, tenant, realm, action)
    return flows.complete_connect(store, oauth, _client_factory(oauth), tenant, code, realm_id, action=action)


def _stored_refresh_token(store: ConnectionStore, tenant: str) -> str:
    """The refresh token the store holds (decrypted), read the way a disconnect would."""
    import sqlalchemy as sa

    from qb_pipelines.store.models import Connection, Tenant

    with store._read() as session:  # test-only peek; the app never reads tokens this way
        conn = session.scalars(
            sa.select(Connection).join(Tenant, Tenant.id == Connection.tenant_id).where(Tenant.key == tenant)
        ).one()
        return store._box.decrypt(conn.refresh_token_enc)


def test_begin_connect_binds_a_fresh_state_and_asks_for_the_four_scopes(rt: Runtime,
    store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    rt.tenants.ensure_tenant("acme", "Acme")
    url, state = flows.begin_connect(store, oauth, "acme", "connect")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oauth.environment.authorize_url + "?")
    assert query["state"] == [state] and len(state) >= 32
    assert query["client_id"] == [DEFAULT_CLIENT_ID]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert set(query["scope"][0].split()) == set(SCOPES) == {
        "com.intuit.quickbooks.accounting", "openid", "email", "profile"
    }
    assert flows.begin_connect(store, oauth, "acme", "reconnect")[1] != state
    with pytest.raises(LookupError):
        flows.begin_connect(store, oauth, "nobody", "connect")
    with pytest.raises(ValueError):
        flows.begin_connect(store, oauth, "acme", "steal")


def test_first_connect_disconnect_reconnect_and_switch(rt: Runtime,
    emulator: RunningEmulator, store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    rt.tenants.ensure_tenant("acme", "Acme")
    keller, amy = _company(emulator, "Keller Plumbing"), _company(emulator, "Amy's Bird Sanctuary")

    first = _connect(store, oauth, "acme", keller)
    assert (first.kind, first.company_name, first.realm_id, first.user_email) == (
        "first", "Keller Plumbing", keller, "demo@example.com"
    )
    assert first.configured is False
    view = store.get("acme")
    assert view.state == ConnectionState.CONNECTED
    assert (view.user_name, view.user_email, view.environment) == ("Demo User", "demo@example.com", "emulator")

    accounts, tax_codes = flows.live_lists(_client_factory(oauth)(keller, store.token_source("acme", oauth)))
    assert accounts and tax_codes
    assert [a.name for a in accounts] == sorted((a.name for a in accounts), key=str.lower)
    rt.tenant_settings.save("acme", {"default_income_account_id": accounts[0].id,
                                 "default_income_account_name": accounts[0].name, "conflict_policy": "qbo_wins"})

    old_refresh = _stored_refresh_token(store, "acme")
    result = flows.disconnect(store, oauth, "acme")
    assert result == flows.DisconnectResult(was_connected=True, revoked=True)
    assert store.get("acme").state == ConnectionState.DISCONNECTED
    with pytest.raises(InvalidGrantError):  # revoked at Intuit, not only forgotten here
        oauth.refresh(old_refresh)
    assert flows.disconnect(store, oauth, "acme") == flows.DisconnectResult(was_connected=False, revoked=None)

    again = _connect(store, oauth, "acme", keller, "connect")
    assert again.kind == "reconnect" and again.configured is True
    assert rt.tenant_settings.get("acme").values.conflict_policy == "qbo_wins"  # configuration preserved

    before_switch = _stored_refresh_token(store, "acme")
    switched = _connect(store, oauth, "acme", amy, "switch")
    assert (switched.kind, switched.company_name, switched.previous_revoked) == ("switch", "Amy's Bird Sanctuary", True)
    view = store.get("acme")
    assert view.realm_id == amy and view.state == ConnectionState.CONNECTED
    assert view.mappings_need_review is True and view.configured is True
    assert rt.tenant_settings.get("acme").values.default_income_account_id == accounts[0].id
    with pytest.raises(InvalidGrantError):  # the previous company's grant is gone
        oauth.refresh(before_switch)


def test_a_bad_code_stores_nothing_and_says_what_to_do(rt: Runtime,
    emulator: RunningEmulator, store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    rt.tenants.ensure_tenant("acme", "Acme")
    realm = _company(emulator, "Keller Plumbing")
    code, realm_id = _authorize(store, oauth, "acme", realm)
    flows.complete_connect(store, oauth, _client_factory(oauth), "acme", code, realm_id)
    flows.disconnect(store, oauth, "acme")
    with pytest.raises(flows.ConnectFlowError) as err:  # a code works once
        flows.complete_connect(store, oauth, _client_factory(oauth), "acme", code, realm_id)
    assert "Click Connect again" in err.value.reason
    assert store.get("acme").state == ConnectionState.DISCONNECTED
    with pytest.raises(flows.ConnectFlowError):
        flows.complete_connect(store, oauth, _client_factory(oauth), "acme", "", realm_id)


def test_disconnect_takes_effect_even_when_intuit_refuses_the_revocation(rt: Runtime,
    emulator: RunningEmulator, store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    rt.tenants.ensure_tenant("acme", "Acme")
    _connect(store, oauth, "acme", _company(emulator, "Keller Plumbing"))
    wrong_keys = IntuitOAuth(DEFAULT_CLIENT_ID, "not-the-secret", REDIRECT_URI, oauth.environment)
    result = flows.disconnect(store, wrong_keys, "acme")
    assert result.was_connected is True and result.revoked is False
    assert "The app is disconnected here" in result.revoke_error
    assert "not-the-secret" not in result.revoke_error
    assert store.get("acme").state == ConnectionState.DISCONNECTED


def test_refresh_due_renews_tokens_and_marks_a_refused_grant_as_expired(rt: Runtime,
    emulator: RunningEmulator, store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    for key in ("acme", "bolt"):
        rt.tenants.ensure_tenant(key, key.title())
    acme_realm = _company(emulator, "Acme Books")
    bolt_realm = _company(emulator, "Bolt Books")
    _connect(store, oauth, "acme", acme_realm)
    _connect(store, oauth, "bolt", bolt_realm)

    # fresh one-hour tokens are not due within ten minutes
    assert flows.refresh_due(store, oauth).as_dict() == {"refreshed": [], "expired": [], "errors": {}}

    version = store.get("acme").token_version
    summary = flows.refresh_due(store, oauth, within=timedelta(hours=2))
    assert sorted(summary.refreshed) == ["acme", "bolt"] and summary.expired == [] and summary.errors == {}
    assert store.get("acme").token_version == version + 1

    # the user disconnected the app inside QuickBooks for Bolt's company
    with EmulatorControl(emulator.url) as control:
        control.revoke_all(bolt_realm)
    summary = flows.refresh_due(store, lambda env: oauth, within=timedelta(hours=2))
    assert summary.refreshed == ["acme"] and summary.expired == ["bolt"]
    bolt = store.get("bolt")
    assert bolt.state == ConnectionState.SESSION_EXPIRED and bolt.last_error
    # expired connections are not retried: only an admin's reconnect brings them back
    assert "bolt" not in flows.refresh_due(store, oauth, within=timedelta(hours=2)).expired


def test_a_failed_live_call_flips_the_card_with_the_seed_words(rt: Runtime,
    emulator: RunningEmulator, store: ConnectionStore, oauth: IntuitOAuth
) -> None:
    rt.tenants.ensure_tenant("acme", "Acme")
    realm = _company(emulator, "Keller Plumbing")
    _connect(store, oauth, "acme", realm)
    with EmulatorControl(emulator.url) as control:
        control.expire_tokens(realm, "all")
    client = _client_factory(oauth)(realm, store.token_source("acme", oauth))
    with pytest.raises(flows.LIVE_CALL_ERRORS) as err:
        flows.live_lists(client)
    message = flows.record_live_failure(store, "acme", err.value)
    assert message == "Your QuickBooks Online session has expired. Please reconnect your account."
    assert store.get("acme").state == ConnectionState.SESSION_EXPIRED
