"""``IntuitOAuth`` against the emulator's Intuit OAuth endpoints over real HTTP.

The consent pages are driven by posting their forms, as a browser would (the browser itself is
exercised by the web app's Playwright tests); everything after the redirect is the client's.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from qb_pipelines.emulator.oauth import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.errors import AuthenticationError, InvalidGrantError, OAuthError
from qb_pipelines.qbo.oauth import SCOPES, IntuitOAuth, TokenSet
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter

CALLBACK = "https://app.example.com/qbo/callback"


def _flow(html: str) -> str:
    match = re.search(r'name="flow" value="([^"]+)"', html)
    assert match, "page has no flow field"
    return match.group(1)


@pytest.fixture
def app(emulator: RunningEmulator) -> IntuitOAuth:
    """A developer app registered with the emulator, with our callback URL."""
    with EmulatorControl(emulator.url) as control:
        body = control.register_app(name="Field Service Pro", redirect_uris=[CALLBACK])
    return IntuitOAuth(body["client_id"], body["client_secret"], CALLBACK, environment("emulator", emulator.url))


@pytest.fixture
def realm(emulator: RunningEmulator) -> str:
    return emulator.emu.engine.create_company("Keller Plumbing")


def consent(emulator: RunningEmulator, authorize_url: str, realm: str) -> dict[str, str]:
    """Sign in as the demo user, choose ``realm``, press Connect; returns the callback's query."""
    http = requests.Session()
    page = http.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    page = http.post(f"{emulator.url}/connect/oauth2/signin", timeout=10,
                     data={"flow": _flow(page.text), "email": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD})
    if 'name="realmId"' in page.text:
        page = http.post(f"{emulator.url}/connect/oauth2/company", data={"flow": _flow(page.text), "realmId": realm},
                         timeout=10)
    final = http.post(f"{emulator.url}/connect/oauth2/consent", data={"flow": _flow(page.text), "action": "connect"},
                      allow_redirects=False, timeout=10)
    assert final.status_code == 302
    location = final.headers["location"]
    assert location.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connect(emulator: RunningEmulator, app: IntuitOAuth, realm: str) -> TokenSet:
    callback = consent(emulator, app.authorization_url("s-1"), realm)
    return app.exchange_code(callback["code"], callback["realmId"])


def test_environments_point_at_intuit_or_the_emulator() -> None:
    prod, sandbox = environment("production"), environment("Sandbox")
    assert prod.api_base == "https://quickbooks.api.intuit.com"
    assert sandbox.api_base == "https://sandbox-quickbooks.api.intuit.com"
    assert prod.token_url == sandbox.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert sandbox.userinfo_url.startswith("https://sandbox-accounts.platform.intuit.com/")
    emu = environment("emulator", "http://127.0.0.1:8765/")
    assert emu.api_base == "http://127.0.0.1:8765"
    assert emu.revoke_url == "http://127.0.0.1:8765/v2/oauth2/tokens/revoke"
    with pytest.raises(ValueError, match="production, sandbox, emulator"):
        environment("staging")
    with pytest.raises(ValueError, match="base URL"):
        environment("emulator")


def test_authorization_url_carries_scopes_state_and_redirect(app: IntuitOAuth, emulator: RunningEmulator) -> None:
    url = app.authorization_url("st4te-xyz")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{emulator.url}/connect/oauth2"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["state"] == "st4te-xyz"
    assert query["redirect_uri"] == CALLBACK
    assert query["response_type"] == "code"
    assert query["client_id"] == app.client_id
    assert query["scope"].split() == list(SCOPES)


def test_code_exchange_gives_tokens_that_work(app: IntuitOAuth, emulator: RunningEmulator, realm: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    callback = consent(emulator, app.authorization_url("abc"), realm)
    assert callback["state"] == "abc" and callback["realmId"] == realm
    tokens = app.exchange_code(callback["code"], callback["realmId"])

    now = datetime.now(UTC)
    assert tokens.realm_id == realm and tokens.id_token
    assert timedelta(minutes=55) < tokens.access_expires_at - now <= timedelta(hours=1)
    assert timedelta(days=99) < tokens.refresh_expires_at - now <= timedelta(days=101)
    # the 5-year hard cap is asked for and parsed
    assert tokens.refresh_hard_expires_at is not None
    assert timedelta(days=5 * 365 - 2) < tokens.refresh_hard_expires_at - now <= timedelta(days=5 * 365)
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)

    class Fixed:
        def access_token(self) -> str:
            return tokens.access_token

        def refresh(self, stale: str) -> str:
            raise AssertionError("no refresh expected")

    client = QBOClient(realm, Fixed(), app.environment, rate_limiter=CompanyRateLimiter())
    assert client.company_info()["CompanyName"] == "Keller Plumbing"

    info = app.userinfo(tokens.access_token)
    assert info["email"] == DEFAULT_USER_EMAIL and info["givenName"] and info["familyName"]

    # a code works once
    with pytest.raises(InvalidGrantError) as reused:
        app.exchange_code(callback["code"], realm)
    assert reused.value.intuit_tid and "reconnect" in reused.value.hint

    # nothing secret reached the logs (requests-oauthlib logs token bodies at DEBUG)
    for secret in (tokens.access_token, tokens.refresh_token, app._client_secret):
        assert secret not in caplog.text


def test_refresh_rotates_and_invalid_grant_after_revoke(app: IntuitOAuth, emulator: RunningEmulator,
                                                        realm: str) -> None:
    first = connect(emulator, app, realm)
    second = app.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.refresh_hard_expires_at is not None
    assert app.userinfo(second.access_token)["email"] == DEFAULT_USER_EMAIL

    app.revoke(second.refresh_token)
    with pytest.raises(InvalidGrantError) as info:
        app.refresh(second.refresh_token)
    err = info.value
    assert err.code == "invalid_grant" and err.status == 400 and err.intuit_tid
    assert err.hint == "the QuickBooks connection has expired or was revoked: reconnect from Accounting Integrations"
    with pytest.raises(AuthenticationError):
        app.userinfo(second.access_token)


def test_wrong_client_secret_is_an_oauth_error_not_a_lost_connection(app: IntuitOAuth, emulator: RunningEmulator,
                                                                     realm: str) -> None:
    tokens = connect(emulator, app, realm)
    wrong = IntuitOAuth(app.client_id, "not-the-secret", CALLBACK, app.environment)
    with pytest.raises(OAuthError) as info:
        wrong.refresh(tokens.refresh_token)
    assert not isinstance(info.value, InvalidGrantError)
    assert info.value.code == "invalid_client" and "client secret" in info.value.hint
    assert "not-the-secret" not in str(info.value)
