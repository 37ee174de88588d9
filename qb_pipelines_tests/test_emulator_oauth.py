"""Intuit OAuth 2.0 / OpenID Connect in the emulator, driven over real HTTP (reference §10).

Covers the authorize pages (sign in, company chooser, consent), the token endpoint (both grants, both
client-auth styles, rotation with grace, rolling and hard expiry), revoke, userinfo, id_token
verification against the JWKS, a real third-party client (requests-oauthlib) used unchanged, the
bearer check the v3 API relies on, and the OAuth control API.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from requests_oauthlib import OAuth2Session

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_PASSWORD,
    REFRESH_HARD_CAP_S,
    REFRESH_ROLLING_S,
)
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines_tests.emulator_client import control

CALLBACK = "https://app.example.com/qbo/callback"
SCOPE = "com.intuit.quickbooks.accounting openid profile email phone address"
DAY = 86_400


# --------------------------------------------------------------------------------------------- helpers
def _flow(html: str) -> str:
    match = re.search(r'name="flow" value="([^"]+)"', html)
    assert match, "page has no flow field"
    return match.group(1)


def _register_app(emulator: RunningEmulator, redirect_uri: str = CALLBACK) -> dict:
    resp = control(emulator, "POST", "apps", json={"name": "Field Service Pro", "redirect_uris": [redirect_uri]})
    assert resp.status_code == 201
    return resp.json()


def _authorize(
    emulator: RunningEmulator,
    app: dict,
    *,
    realm: str | None = None,
    email: str = DEFAULT_USER_EMAIL,
    password: str = DEFAULT_USER_PASSWORD,
    action: str = "connect",
    scope: str = SCOPE,
    state: str = "st4te-xyz",
    redirect_uri: str = CALLBACK,
) -> dict[str, str]:
    """Walk the authorize pages as a user would by posting their forms; returns the callback's query."""
    http = requests.Session()
    page = http.get(
        f"{emulator.url}/connect/oauth2",
        params={
            "client_id": app["client_id"],
            "response_type": "code",
            "scope": scope,
            "redirect_uri": redirect_uri,
            "state": state,
        },
    )
    assert page.status_code == 200 and 'id="sign-in"' in page.text
    page = http.post(
        f"{emulator.url}/connect/oauth2/signin", data={"flow": _flow(page.text), "email": email, "password": password}
    )
    assert page.status_code == 200
    if 'name="realmId"' in page.text:
        assert realm, "the user has several companies: the test must choose one"
        page = http.post(f"{emulator.url}/connect/oauth2/company", data={"flow": _flow(page.text), "realmId": realm})
    assert 'id="connect"' in page.text and 'id="cancel"' in page.text
    final = http.post(
        f"{emulator.url}/connect/oauth2/consent",
        data={"flow": _flow(page.text), "action": action},
        allow_redirects=False,
    )
    assert final.status_code == 302
    location = final.headers["location"]
    assert location.startswith(redirect_uri)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _token(emulator: RunningEmulator, data: dict, auth: tuple[str, str] | None, **headers: str) -> requests.Response:
    return requests.post(
        f"{emulator.url}/oauth2/v1/tokens/bearer",
        data=data,
        auth=auth,
        headers={"Accept": "application/json", **headers},
    )


def _refresh(emulator: RunningEmulator, refresh_token: str, **headers: str) -> requests.Response:
    return _token(
        emulator,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        **headers,
    )


def _control_tokens(emulator: RunningEmulator, realm: str) -> dict:
    resp = control(emulator, "POST", f"companies/{realm}/tokens")
    assert resp.status_code == 200, resp.text
    return resp.json()


def _auth_error(emulator: RunningEmulator, realm: str, access_token: str) -> str:
    """The 401 detail the v3 API would send for this token, or "" when the token is accepted."""
    try:
        emulator.emu.oauth.authenticate(realm, f"Bearer {access_token}")
    except faults.AuthFailure as err:
        return err.detail
    return ""


@pytest.fixture
def realms(emulator: RunningEmulator) -> list[str]:
    """Two companies; the demo user can open both."""
    engine = emulator.emu.engine
    return [engine.create_company("Keller Plumbing"), engine.create_company("Amy's Bird Sanctuary")]


# --------------------------------------------------------------------------------------------- discovery
def test_discovery_documents_point_at_the_emulator(emulator: RunningEmulator) -> None:
    for path in (
        "/.well-known/openid-configuration",
        "/.well-known/openid_configuration/",
        "/.well-known/openid_sandbox_configuration/",
    ):
        resp = requests.get(emulator.url + path)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        doc = resp.json()
        assert doc["issuer"] == f"{emulator.url}/op/v1"
        assert doc["authorization_endpoint"] == f"{emulator.url}/connect/oauth2"
        assert doc["token_endpoint"] == f"{emulator.url}/oauth2/v1/tokens/bearer"
        assert doc["revocation_endpoint"] == f"{emulator.url}/v2/oauth2/tokens/revoke"
        assert doc["userinfo_endpoint"] == f"{emulator.url}/v1/openid_connect/userinfo"
        assert doc["jwks_uri"] == f"{emulator.url}/op/v1/jwks"
        assert doc["response_types_supported"] == ["code"]
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        assert set(doc["token_endpoint_auth_methods_supported"]) == {"client_secret_post", "client_secret_basic"}
        assert "realmid" in doc["claims_supported"]


# --------------------------------------------------------------------------------------------- authorize
def test_code_flow_over_forms_then_exchange_with_basic_auth(emulator: RunningEmulator, realms: list[str]) -> None:
    app = _register_app(emulator)
    # a wrong password keeps the user on the sign-in page with a message
    http = requests.Session()
    page = http.get(
        f"{emulator.url}/connect/oauth2",
        params={"client_id": app["client_id"], "response_type": "code", "scope": SCOPE, "redirect_uri": CALLBACK,
                "state": "s1"},
    )
    page = http.post(
        f"{emulator.url}/connect/oauth2/signin",
        data={"flow": _flow(page.text), "email": DEFAULT_USER_EMAIL, "password": "wrong"},
    )
    assert 'id="error"' in page.text and "incorrect" in page.text
    # the chooser lists both companies by name
    page = http.post(
        f"{emulator.url}/connect/oauth2/signin",
        data={"flow": _flow(page.text), "email": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD},
    )
    assert "Keller Plumbing" in page.text and "Amy&#39;s Bird Sanctuary" in page.text
    assert all(f'value="{r}"' in page.text for r in realms)

    callback = _authorize(emulator, app, realm=realms[1], state="abc123")
    assert callback["state"] == "abc123"
    assert callback["realmId"] == realms[1]
    assert len(callback["code"]) <= 512

    resp = _token(
        emulator,
        {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": CALLBACK},
        (app["client_id"], app["client_secret"]),
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == REFRESH_ROLLING_S
    assert "x_refresh_token_hard_expires_in" not in body  # only on request
    assert body["access_token"].startswith("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..")
    assert re.fullmatch(r"RT1-\d+-H0-\d{10}[a-z0-9]+", body["refresh_token"])
    assert body["id_token"].count(".") == 2

    # the token opens the chosen company and no other
    assert emulator.emu.oauth.authenticate(realms[1], f"Bearer {body['access_token']}") == app["client_id"]
    with pytest.raises(faults.QBOFault) as denied:
        emulator.emu.oauth.authenticate(realms[0], f"Bearer {body['access_token']}")
    assert denied.value.status == 403 and denied.value.errors[0].code == "3100"

    # the code is single-use
    again = _token(
        emulator,
        {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": CALLBACK},
        (app["client_id"], app["client_secret"]),
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_cancel_redirects_with_access_denied(emulator: RunningEmulator, realms: list[str]) -> None:
    app = _register_app(emulator)
    callback = _authorize(emulator, app, realm=realms[0], action="cancel", state="cancel-me")
    assert callback == {"error": "access_denied", "state": "cancel-me"}


def test_single_company_user_goes_straight_to_consent(emulator: RunningEmulator, realms: list[str]) -> None:
    app = _register_app(emulator)
    resp = control(emulator, "POST", "users",
                   json={"email": "bookkeeper@keller.example", "password": "s3cret", "givenName": "Bea",
                         "familyName": "Keller", "realmIds": [realms[0]]})
    assert resp.status_code == 201
    callback = _authorize(emulator, app, email="bookkeeper@keller.example", password="s3cret")
    assert callback["realmId"] == realms[0]


def test_authorize_refuses_unknown_client_and_unregistered_redirect(emulator: RunningEmulator) -> None:
    app = _register_app(emulator)
    params = {"client_id": app["client_id"], "response_type": "code", "scope": SCOPE, "redirect_uri": CALLBACK,
              "state": "s"}
    unknown = requests.get(f"{emulator.url}/connect/oauth2", params={**params, "client_id": "nope"},
                           allow_redirects=False)
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "invalid_client" in unknown.text
    evil = requests.get(f"{emulator.url}/connect/oauth2", params={**params, "redirect_uri": "https://evil.example/cb"},
                        allow_redirects=False)
    assert evil.status_code == 400 and "location" not in evil.headers
    assert "redirect_uri" in evil.text
    bad_scope = requests.get(f"{emulator.url}/connect/oauth2", params={**params, "scope": "openid everything"},
                             allow_redirects=False)
    assert bad_scope.status_code == 302
    assert parse_qs(urlsplit(bad_scope.headers["location"]).query) == {"error": ["invalid_scope"], "state": ["s"]}


# --------------------------------------------------------------------------------------------- token endpoint
def test_client_secret_in_form_body_and_token_errors(emulator: RunningEmulator, realms: list[str]) -> None:
    app = _register_app(emulator)
    callback = _authorize(emulator, app, realm=realms[0])
    code_form = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": CALLBACK}

    wrong_secret = _token(emulator, {**code_form, "client_id": app["client_id"], "client_secret": "x"}, None)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    no_client = _token(emulator, code_form, None)
    assert no_client.status_code == 401 and no_client.json()["error"] == "invalid_client"
    mismatch = _token(emulator, {**code_form, "redirect_uri": "https://app.example.com/other"},
                      (app["client_id"], app["client_secret"]))
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"
    other_app = _token(emulator, code_form, (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
    assert other_app.status_code == 400 and other_app.json()["error"] == "invalid_grant"
    unsupported = _token(emulator, {"grant_type": "password"}, (app["client_id"], app["client_secret"]))
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"

    ok = _token(emulator, {**code_form, "client_id": app["client_id"], "client_secret": app["client_secret"]}, None)
    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
    unknown = _refresh(emulator, "RT1-1-H0-1700000000notarealtoken")
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "invalid_grant", "error_description": "Token invalid"}


def test_auth_code_lapses_after_five_minutes(emulator: RunningEmulator, realms: list[str]) -> None:
    app = _register_app(emulator)
    callback = _authorize(emulator, app, realm=realms[0])
    emulator.emu.advance_clock(301)
    resp = _token(
        emulator,
        {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": CALLBACK},
        (app["client_id"], app["client_secret"]),
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_refresh_rotates_with_grace_then_invalid_grant(emulator: RunningEmulator, realms: list[str]) -> None:
    first = _control_tokens(emulator, realms[0])
    second = _refresh(emulator, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert _auth_error(emulator, realms[0], second["access_token"]) == ""

    # a retry with the superseded token inside the grace period gets the current refresh token back
    retry = _refresh(emulator, first["refresh_token"])
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] == second["refresh_token"]
    assert _auth_error(emulator, realms[0], retry.json()["access_token"]) == ""

    emulator.emu.advance_clock(DAY + 1)
    late = _refresh(emulator, first["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    current = _refresh(emulator, second["refresh_token"])
    assert current.status_code == 200
    assert current.json()["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_refresh_token_rolling_window_and_hard_cap(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    assert tokens["x_refresh_token_expires_in"] == REFRESH_ROLLING_S

    # used every 90 days, the window keeps resetting, then shrinks to the 5-year hard cap
    refresh, hard_seen = tokens["refresh_token"], []
    elapsed = 0
    while elapsed + 90 * DAY < REFRESH_HARD_CAP_S:
        emulator.emu.advance_clock(90 * DAY)
        elapsed += 90 * DAY
        resp = _refresh(emulator, refresh, **{"x-include-refresh-token-hard-expires-in": "true"})
        assert resp.status_code == 200, (elapsed, resp.text)
        body = resp.json()
        hard = body["x_refresh_token_hard_expires_in"]
        assert REFRESH_HARD_CAP_S - elapsed - 5 <= hard <= REFRESH_HARD_CAP_S - elapsed
        assert body["x_refresh_token_expires_in"] == min(REFRESH_ROLLING_S, hard)
        hard_seen.append(hard)
        refresh = body["refresh_token"]
    assert hard_seen == sorted(hard_seen, reverse=True)
    assert hard_seen[-1] < REFRESH_ROLLING_S  # the last answers were capped by the hard expiry
    emulator.emu.advance_clock(hard_seen[-1] + 1)
    dead = _refresh(emulator, refresh)
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


def test_refresh_token_unused_for_the_window_expires(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    emulator.emu.advance_clock(REFRESH_ROLLING_S + 1)
    resp = _refresh(emulator, tokens["refresh_token"])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


# --------------------------------------------------------------------------------------------- revoke
@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
def test_revoke_ends_the_whole_grant(emulator: RunningEmulator, realms: list[str], which: str) -> None:
    tokens = _control_tokens(emulator, realms[0])
    other = _control_tokens(emulator, realms[0])  # a second connection must survive
    url = f"{emulator.url}/v2/oauth2/tokens/revoke"
    auth = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    if which == "refresh_token":
        resp = requests.post(url, json={"token": tokens[which]}, auth=auth)
    else:  # node-quickbooks posts it form-encoded
        resp = requests.post(url, data={"token": tokens[which]}, auth=auth)
    assert resp.status_code == 200
    assert _auth_error(emulator, realms[0], tokens["access_token"]).startswith("Token revoked: AB0")
    dead = _refresh(emulator, tokens["refresh_token"])
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    assert _auth_error(emulator, realms[0], other["access_token"]) == ""
    assert requests.post(url, json={"token": tokens[which]}, auth=("x", "y")).status_code == 401


# --------------------------------------------------------------------------------------------- OpenID
def test_userinfo_returns_camel_case_claims(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    resp = requests.get(
        f"{emulator.url}/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert resp.status_code == 200
    info = resp.json()
    assert set(info) == {"sub", "email", "emailVerified", "givenName", "familyName", "phoneNumber",
                         "phoneNumberVerified", "address"}
    assert info["email"] == DEFAULT_USER_EMAIL and info["emailVerified"] is True
    assert info["givenName"] == "Demo" and info["familyName"] == "User"
    assert set(info["address"]) == {"streetAddress", "locality", "region", "postalCode", "country"}
    denied = requests.get(f"{emulator.url}/v1/openid_connect/userinfo", headers={"Authorization": "Bearer nope"})
    assert denied.status_code == 401
    assert 'error="invalid_token"' in denied.headers["www-authenticate"]


def test_id_token_verifies_against_jwks(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[1])
    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == "RS256" and header["kid"]
    signing_key = jwt.PyJWKClient(f"{emulator.url}/op/v1/jwks").get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(
        tokens["id_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience=DEFAULT_CLIENT_ID,
        issuer=f"{emulator.url}/op/v1",
    )
    assert claims["aud"] == [DEFAULT_CLIENT_ID]
    assert claims["realmid"] == realms[1]
    assert set(claims) >= {"sub", "aud", "realmid", "iss", "exp", "iat", "auth_time"}
    userinfo = requests.get(
        f"{emulator.url}/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert claims["sub"] == userinfo["sub"]


def test_requests_oauthlib_client_works_unchanged(
    emulator: RunningEmulator, realms: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator serves plain HTTP locally
    app = _register_app(emulator)
    discovery = requests.get(f"{emulator.url}/.well-known/openid_configuration/").json()
    client = OAuth2Session(app["client_id"], redirect_uri=CALLBACK, scope=SCOPE.split())
    url, state = client.authorization_url(discovery["authorization_endpoint"])

    # the user's part: sign in, choose, connect; the browser lands on the app's callback URL
    http = requests.Session()
    page = http.get(url)
    page = http.post(f"{emulator.url}/connect/oauth2/signin",
                     data={"flow": _flow(page.text), "email": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD})
    page = http.post(f"{emulator.url}/connect/oauth2/company", data={"flow": _flow(page.text), "realmId": realms[0]})
    final = http.post(f"{emulator.url}/connect/oauth2/consent", data={"flow": _flow(page.text), "action": "connect"},
                      allow_redirects=False)
    callback_url = final.headers["location"]

    token = client.fetch_token(
        discovery["token_endpoint"], client_secret=app["client_secret"], authorization_response=callback_url
    )
    assert token["token_type"].lower() == "bearer" and token["expires_in"] == 3600
    assert parse_qs(urlsplit(callback_url).query)["state"] == [state]
    userinfo = client.get(discovery["userinfo_endpoint"])
    assert userinfo.status_code == 200 and userinfo.json()["email"] == DEFAULT_USER_EMAIL

    refreshed = client.refresh_token(
        discovery["token_endpoint"], auth=requests.auth.HTTPBasicAuth(app["client_id"], app["client_secret"])
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert emulator.emu.oauth.authenticate(realms[0], f"Bearer {refreshed['access_token']}") == app["client_id"]


# --------------------------------------------------------------------------------------------- bearer check
def test_authenticate_rejects_bad_tokens_with_intuit_details(emulator: RunningEmulator, realms: list[str]) -> None:
    oauth = emulator.emu.oauth
    tokens = _control_tokens(emulator, realms[0])
    cases = {
        None: "Authorization header missing",
        "Basic abc": "Authorization header is not a bearer token",
        "Bearer short": "Malformed bearer token: too short or too long",
        "Bearer " + "x" * 5000: "Malformed bearer token: too short or too long",
        "Bearer " + "x" * 200: "Token invalid",
        f"Bearer {tokens['refresh_token']}": "Token invalid",
    }
    for header, detail in cases.items():
        with pytest.raises(faults.AuthFailure) as err:
            oauth.authenticate(realms[0], header)
        assert err.value.detail == detail
        assert err.value.body(0)["fault"]["error"][0]["code"] == "3200"
    assert oauth.authenticate(realms[0], f"bearer {tokens['access_token']}") == DEFAULT_CLIENT_ID


def test_access_token_expires_after_an_hour_of_emulated_time(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    emulator.emu.advance_clock(3599)
    assert _auth_error(emulator, realms[0], tokens["access_token"]) == ""
    emulator.emu.advance_clock(2)
    assert re.fullmatch(r"Token expired: AB0\d{10}\w+", _auth_error(emulator, realms[0], tokens["access_token"]))
    fresh = _refresh(emulator, tokens["refresh_token"]).json()
    assert _auth_error(emulator, realms[0], fresh["access_token"]) == ""


def test_scaled_clock_expires_access_tokens_in_real_seconds(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    # 3600 emulated seconds at scale 0.0005 last 1.8 real seconds; expires_in still says 3600
    resp = control(emulator, "POST", "clock", json={"scale": 0.0005})
    assert resp.json()["scale"] == 0.0005
    deadline = time.monotonic() + 20
    while not _auth_error(emulator, realms[0], tokens["access_token"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _auth_error(emulator, realms[0], tokens["access_token"]).startswith("Token expired: ")
    fresh = _refresh(emulator, tokens["refresh_token"])
    assert fresh.status_code == 200 and fresh.json()["expires_in"] == 3600


# --------------------------------------------------------------------------------------------- control API
def test_control_api_tokens_apps_users(emulator: RunningEmulator, realms: list[str]) -> None:
    missing = control(emulator, "POST", "companies/404404/tokens")
    assert missing.status_code == 404
    tokens = _control_tokens(emulator, realms[0])
    assert {"access_token", "refresh_token", "client_id", "client_secret", "realmId", "expires_in",
            "x_refresh_token_expires_in"} <= set(tokens)
    assert tokens["realmId"] == realms[0]
    assert _token(emulator, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                  (tokens["client_id"], tokens["client_secret"])).status_code == 200

    apps = control(emulator, "GET", "apps").json()
    assert any(a["client_id"] == DEFAULT_CLIENT_ID and a["client_secret"] == DEFAULT_CLIENT_SECRET for a in apps)
    # registering another redirect URI for an existing app adds to its list
    control(emulator, "POST", "apps", json={"client_id": DEFAULT_CLIENT_ID,
                                                          "redirect_uris": ["http://localhost:8080/cb"]})
    default = next(a for a in control(emulator, "GET", "apps").json()
                   if a["client_id"] == DEFAULT_CLIENT_ID)
    assert "http://localhost:8080/cb" in default["redirect_uris"] and len(default["redirect_uris"]) > 1

    control(emulator, "POST", "users", json={"email": "clerk@example.com", "password": "pw",
                                                           "givenName": "Cal", "familyName": "Clerk",
                                                           "realmIds": [realms[1]]})
    for_second = {u["email"] for u in control(emulator, "GET", "users",
                                                   params={"realmId": realms[1]}).json()}
    assert for_second == {DEFAULT_USER_EMAIL, "clerk@example.com"}
    assert {u["email"] for u in emulator.emu.oauth.users_for(realms[0])} == {DEFAULT_USER_EMAIL}
    users = control(emulator, "GET", "users").json()
    assert all("password" not in str(u) for u in users)


def test_control_api_expire_revoke_all_and_clock(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    other_realm = _control_tokens(emulator, realms[1])

    resp = control(emulator, "POST", "oauth/expire", json={"realmId": realms[0], "what": "access"})
    assert resp.status_code == 200 and resp.json()["expired"]["access"] == 1
    assert _auth_error(emulator, realms[0], tokens["access_token"]).startswith("Token expired")
    assert _auth_error(emulator, realms[1], other_realm["access_token"]) == ""
    tokens = _refresh(emulator, tokens["refresh_token"]).json()

    control(emulator, "POST", "oauth/expire", json={"realmId": realms[0], "what": "refresh"})
    assert _refresh(emulator, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert _auth_error(emulator, realms[0], tokens["access_token"]) == ""  # access tokens live on

    resp = control(emulator, "POST", "oauth/revoke-all", json={"realmId": realms[1]})
    assert resp.json()["revoked_grants"] == 1
    assert _auth_error(emulator, realms[1], other_realm["access_token"]).startswith("Token revoked")
    assert _refresh(emulator, other_realm["refresh_token"]).json()["error"] == "invalid_grant"

    before = control(emulator, "GET", "clock").json()
    after = control(emulator, "POST", "clock", json={"advance_seconds": 7200}).json()
    assert after["offset_seconds"] == before["offset_seconds"] + 7200
    assert control(emulator, "POST", "clock", json={"advance_seconds": -1}).status_code == 400


def test_data_file_keeps_grants_and_signing_key_across_restart(tmp_path) -> None:
    data_file = str(tmp_path / "qbo.sqlite")
    first = start_in_thread(Emulator(EmulatorSettings(data_file=data_file)))
    try:
        realm = first.emu.engine.create_company("Persistent Co")
        tokens = _control_tokens(first, realm)
        kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
    finally:
        first.stop()
        first.emu.close()
    second = start_in_thread(Emulator(EmulatorSettings(data_file=data_file)))
    try:
        assert _auth_error(second, realm, tokens["access_token"]) == ""
        jwks = requests.get(f"{second.url}/op/v1/jwks").json()
        assert [k["kid"] for k in jwks["keys"]] == [kid]
        jwk = jwt.PyJWK(jwks["keys"][0])
        assert jwt.decode(tokens["id_token"], jwk.key, algorithms=["RS256"], audience=DEFAULT_CLIENT_ID,
                          options={"verify_iss": False})["realmid"] == realm
        assert _refresh(second, tokens["refresh_token"]).status_code == 200
    finally:
        second.stop()
        second.emu.close()


def test_v3_api_answers_bad_tokens_like_intuit(emulator: RunningEmulator, realms: list[str]) -> None:
    tokens = _control_tokens(emulator, realms[0])
    url = f"{emulator.url}/v3/company/{realms[0]}/companyinfo/{realms[0]}"

    def get(access_token: str, target: str = url) -> requests.Response:
        return requests.get(
            target,
            params={"minorversion": "75"},
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )

    assert get(tokens["access_token"]).status_code == 200
    other = get(tokens["access_token"], f"{emulator.url}/v3/company/{realms[1]}/companyinfo/{realms[1]}")
    assert other.status_code == 403 and other.json()["Fault"]["Error"][0]["code"] == "3100"
    emulator.emu.advance_clock(3601)
    expired = get(tokens["access_token"])
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == 'Bearer realm="Intuit", error="invalid_token"'
    error = expired.json()["fault"]["error"][0]
    assert error["code"] == "3200" and error["detail"].startswith("Token expired: AB0")
