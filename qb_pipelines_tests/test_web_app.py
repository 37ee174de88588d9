"""The admin web app over real HTTP (httpx against uvicorn), next to the emulator.

What an attacker or a mistaken user can try without a browser: no session, no CSRF token, a
viewer's POST, a forged OAuth callback; and what an admin gets wrong: invalid settings. Then the
secret scan: after a full connect / refresh / live call / disconnect, no token and no client secret
appears in plain text in the database, in the captured logs (uvicorn's included) or in a page.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.db import make_engine
from qb_pipelines.sync.connections import refresh_due
from qb_pipelines_tests.web_fixtures import (  # noqa: F401 - web_fixture provides `web`
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    WebStack,
    consent_over_http,
    csrf_of,
    http_client,
    http_connect,
    http_sign_in,
    web_fixture,
)


def _connected(web: WebStack, client, csrf: str, tenant: str = "acme") -> str:
    """Tenant ``tenant`` connected to a fresh company through the consent pages; returns the realm."""
    web.add_tenant(tenant, "Acme Field Services")
    realm = web.create_company("Keller Plumbing")
    resp = http_connect(client, csrf, tenant, realm)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/integrations/{tenant}/setup"
    return realm


def test_anonymous_visitors_are_sent_to_sign_in(web: WebStack) -> None:
    with http_client(web) as client:
        for path in ("/integrations", "/integrations/acme/settings", "/integrations/acme/setup", "/oauth/callback"):
            resp = client.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["location"].startswith("/signin"), path
        page = client.get("/signin")
        assert page.status_code == 200
        token = csrf_of(page.text)
        # an anonymous POST with the anonymous session's valid token still changes nothing
        resp = client.post("/integrations/tenants", data={"csrf_token": token, "key": "x", "name": "X"})
        assert resp.status_code == 303 and resp.headers["location"] == "/signin"
        assert web.runtime.connections.get("x") is None


def test_wrong_password_is_refused(web: WebStack) -> None:
    with http_client(web) as client:
        token = csrf_of(client.get("/signin").text)
        resp = client.post("/signin", data={"csrf_token": token, "email": "admin@example.com", "password": "nope"})
        assert resp.status_code == 401
        assert "Wrong email or password." in resp.text
        assert client.get("/integrations").status_code == 303


def test_every_post_without_the_csrf_token_answers_403(web: WebStack) -> None:
    web.add_tenant("acme", "Acme")
    with http_client(web) as client:
        csrf = http_sign_in(client)
        posts = {
            "/integrations/tenants": {"key": "other", "name": "Other"},
            "/integrations/acme/connect": {"action": "connect"},
            "/integrations/acme/disconnect": {},
            "/integrations/acme/settings": {"conflict_policy": "qbo_wins"},
            "/integrations/acme/setup": {"conflict_policy": "qbo_wins"},
            "/signout": {},
        }
        for path, data in posts.items():
            assert client.post(path, data=data).status_code == 403, path
            assert client.post(path, data={**data, "csrf_token": "forged" + csrf[6:]}).status_code == 403, path
        # the sign-in form too: a login CSRF cannot sign a victim into the attacker's account
        assert client.post("/signin", data={"email": "a@b.c", "password": "x"}).status_code == 403
        assert web.runtime.connections.get("other") is None
        assert client.get("/integrations").status_code == 200  # still signed in: signout was refused


def test_a_viewer_sees_everything_and_changes_nothing(web: WebStack) -> None:
    with http_client(web) as admin:
        realm = _connected(web, admin, http_sign_in(admin))
    with http_client(web) as viewer:
        csrf = http_sign_in(viewer, VIEWER_EMAIL, VIEWER_PASSWORD)
        page = viewer.get("/integrations")
        assert page.status_code == 200
        assert "Demo User" in page.text and "demo@example.com" in page.text
        assert 'data-action="disconnect"' not in page.text and 'data-action="connect"' not in page.text
        assert "Add tenant" not in page.text
        for path, data in {
            "/integrations/tenants": {"key": "other", "name": "Other"},
            "/integrations/acme/connect": {"action": "switch"},
            "/integrations/acme/disconnect": {},
            "/integrations/acme/setup": {"conflict_policy": "qbo_wins"},
            "/integrations/acme/settings": {"conflict_policy": "qbo_wins"},
        }.items():
            resp = viewer.post(path, data={**data, "csrf_token": csrf})
            assert resp.status_code == 403, path
            assert "viewer" in resp.text
        view = web.view("acme")
        assert view.state == ConnectionState.CONNECTED and view.realm_id == realm
        assert web.runtime.connections.get("other") is None


def test_a_callback_whose_state_does_not_match_stores_nothing(web: WebStack) -> None:
    web.add_tenant("acme", "Acme")
    realm = web.create_company("Keller Plumbing")
    with http_client(web) as client:
        csrf = http_sign_in(client)
        resp = client.post("/integrations/acme/connect", data={"csrf_token": csrf, "action": "connect"})
        callback = consent_over_http(resp.headers["location"], realm)
        query = parse_qs(urlsplit(callback).query)
        assert query["realmId"] == [realm]
        forged = f"/oauth/callback?code={query['code'][0]}&state=attacker-state&realmId={realm}"
        resp = client.get(forged)
        assert resp.status_code == 303 and resp.headers["location"] == "/integrations"
        page = client.get("/integrations").text
        assert 'id="banner-title">Connection Failed<' in page
        assert "Click Connect to try again." in page
        assert web.view("acme").state == ConnectionState.NOT_CONNECTED
        # the genuine callback cannot be replayed either: the pending state was used up
        resp = client.get(f"/oauth/callback?{urlsplit(callback).query}")
        assert resp.headers["location"] == "/integrations"
        assert "Connection Failed" in client.get("/integrations").text
        assert web.view("acme").state == ConnectionState.NOT_CONNECTED


def test_cancel_at_consent_shows_connection_failed(web: WebStack) -> None:
    web.add_tenant("acme", "Acme")
    realm = web.create_company("Keller Plumbing")
    with http_client(web) as client:
        csrf = http_sign_in(client)
        resp = http_connect(client, csrf, "acme", realm, cancel=True)
        assert resp.headers["location"] == "/integrations"
        page = client.get("/integrations").text
        assert "Connection Failed" in page and "Check your QuickBooks credentials" in page
        assert "No QuickBooks Online account connected" in page
    assert web.view("acme").state == ConnectionState.NOT_CONNECTED


def _setup_form(csrf: str, **overrides: str) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": csrf,
        "entity": ["Customer", "Item", "Invoice", "Payment"],
        "direction_Customer": "both",
        "direction_Item": "app_to_qbo",
        "direction_Invoice": "app_to_qbo",
        "conflict_policy": "qbo_wins",
        "default_income_account_id": "",
        "default_tax_code_id": "",
        "mode": "test",
    }
    data.update(overrides)
    return data


def test_invalid_settings_are_refused_next_to_the_field_and_nothing_is_saved(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        _connected(web, client, csrf)
        page = client.get("/integrations/acme/setup")
        assert page.status_code == 200
        assert "QuickBooks Online Setup Wizard" in page.text
        # the lists come live from the company: its Income accounts are on the page
        assert 'name="default_income_account_id"' in page.text

        cases = {
            "default_income_account_id": ({}, "choose the default income account"),
            "directions.Invoice": ({"direction_Invoice": "qbo_to_app"}, "is not allowed for Invoice"),
            "conflict_policy": ({"conflict_policy": "first_wins"}, "is not a conflict policy"),
            "mode": ({"mode": "production"}, "not to real books"),
            "default_tax_code_id": ({"default_tax_code_id": "9999"}, "does not exist in the connected company"),
        }
        account = _first_option(page.text, "default_income_account_id")
        for field, (overrides, message) in cases.items():
            if field != "default_income_account_id":
                overrides = {"default_income_account_id": account, **overrides}
            resp = client.post("/integrations/acme/setup", data=_setup_form(csrf, **overrides))
            assert resp.status_code == 400, field
            assert "Nothing was saved." in resp.text
            assert message in resp.text, (field, resp.text[:2000])
            assert web.runtime.tenant_settings.get("acme").configured is False

        resp = client.post("/integrations/acme/setup", data=_setup_form(csrf, default_income_account_id=account))
        assert resp.status_code == 303 and resp.headers["location"] == "/integrations"
        saved = web.runtime.tenant_settings.get("acme")
        assert saved.configured is True
        assert saved.values.conflict_policy == "qbo_wins"
        assert saved.values.default_income_account_id == account
        assert saved.values.entities["Vendor"] is False and saved.values.entities["Customer"] is True

        # on Settings, a refused change leaves every saved value as it was
        resp = client.post(
            "/integrations/acme/settings",
            data=_setup_form(csrf, default_income_account_id=account, conflict_policy="app_wins", mode="production"),
        )
        assert resp.status_code == 400
        assert web.runtime.tenant_settings.get("acme").values == saved.values


def _first_option(page: str, select_id: str) -> str:
    import re

    block = page.split(f'id="{select_id}"', 1)[1].split("</select>", 1)[0]
    values = [v for v in re.findall(r'<option value="([^"]*)"', block) if v]
    assert values, f"no options in {select_id}"
    return values[0]


def test_no_secret_in_the_database_the_logs_or_the_pages(web: WebStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The emulator's uvicorn turned its own access log off process-wide (level WARNING, no
    # propagation): listen to uvicorn's loggers directly, at DEBUG, for the whole flow.
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    saved = [(logger.level, logger.propagate) for logger in uvicorn_loggers]
    for logger in uvicorn_loggers:
        logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
    try:
        _full_flow_and_scan(web, caplog)
    finally:
        for logger, (level, _propagate) in zip(uvicorn_loggers, saved, strict=True):
            logger.setLevel(level)
            logger.removeHandler(caplog.handler)


def _full_flow_and_scan(web: WebStack, caplog: pytest.LogCaptureFixture) -> None:
    box = SecretBox(web.settings.fernet_key)
    engine = make_engine(web.settings.database_url)
    seen: set[str] = {web.settings.client_secret, web.settings.fernet_key, web.settings.session_secret}
    pages: list[str] = []

    def collect_tokens() -> None:
        with engine.connect() as conn:
            for access, refresh in conn.execute(
                sa.text("SELECT access_token_enc, refresh_token_enc FROM qb_connections")
            ):
                seen.update(box.decrypt(v) for v in (access, refresh) if v)

    with http_client(web) as client:
        csrf = http_sign_in(client)
        web.add_tenant("acme", "Acme")
        realm = web.create_company("Keller Plumbing")
        resp = client.post("/integrations/acme/connect", data={"csrf_token": csrf, "action": "connect"})
        callback = consent_over_http(resp.headers["location"], realm)
        seen.add(parse_qs(urlsplit(callback).query)["code"][0])
        assert client.get(f"/oauth/callback?{urlsplit(callback).query}").status_code == 303
        collect_tokens()
        pages.append(client.get("/integrations/acme/setup").text)  # a live call with the stored token
        summary = refresh_due(web.runtime.connections, web.runtime.oauth, within=timedelta(hours=2))
        assert summary.refreshed == ["acme"]
        collect_tokens()
        pages.append(client.get("/integrations").text)
        resp = client.post("/integrations/acme/disconnect", data={"csrf_token": csrf})
        assert resp.status_code == 303
        pages.append(client.get("/integrations").text)
        assert "Integration disconnected successfully." in pages[-1]

    tokens = {s for s in seen if s}
    assert len(tokens) >= 7  # 3 settings secrets, the code, two access and two refresh tokens (at least)

    # the database: every text column of every table
    leaks = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, str):
                        leaks += [(table, s[:8]) for s in tokens if s in value]
    assert leaks == []

    # the logs: our code, uvicorn's access and error logs (captured: they propagate to the root)
    # (not the emulator's own logs, which play Intuit, nor httpx's: it plays the admin's browser here)
    records = [r for r in caplog.records if not r.name.startswith(("qb_pipelines.emulator", "httpx", "httpcore"))]
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    assert any(r.name == "uvicorn.access" for r in records), "uvicorn's access log was not captured"
    assert "/oauth/callback?code=REDACTED" in text
    assert [s[:8] for s in tokens if s in text] == []
    # the pages
    assert [s[:8] for s in tokens if any(s in p for p in pages)] == []
    assert web.view("acme").state == ConnectionState.DISCONNECTED


def test_configuration_is_read_at_startup_and_a_missing_variable_is_named() -> None:
    from qb_pipelines.config import SettingsError
    from qb_pipelines.sync.settings import AppSettings
    from qb_pipelines.web.config import WebSettings

    env = {
        "QB_FERNET_KEY": "k" * 44,
        "QBO_CLIENT_ID": "emulator-client-id",
        "QBO_CLIENT_SECRET": "emulator-client-secret",
        "QBO_REDIRECT_URI": "http://127.0.0.1:8000/oauth/callback",
        "QBO_ENVIRONMENT": "emulator",
        "QB_SESSION_SECRET": "s" * 48,
    }
    settings = WebSettings.from_env(env)
    assert settings.environment().api_base == "http://127.0.0.1:8765" and settings.database_url is None
    assert "emulator-client-secret" not in repr(settings) and "s" * 48 not in repr(settings)
    for name in ("QB_FERNET_KEY", "QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REDIRECT_URI", "QBO_ENVIRONMENT",
                 "QB_SESSION_SECRET"):
        with pytest.raises(SettingsError, match=name):
            WebSettings.from_env({k: v for k, v in env.items() if k != name})
    # the refresh command needs no session secret
    assert AppSettings.from_env({k: v for k, v in env.items() if k != "QB_SESSION_SECRET"}).client_id
    with pytest.raises(SettingsError, match="QBO_ENVIRONMENT"):
        WebSettings.from_env({**env, "QBO_ENVIRONMENT": "staging"})
