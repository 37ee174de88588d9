"""Sign-in throttling and server-side sessions of the admin web app, over real HTTP.

What an attacker tries: guessing a password fast, guessing slowly, spreading guesses over many
accounts from one address, resetting the counter by signing in to their own account, replaying a
session cookie after sign-out, after a password change, after the user was removed (and re-created
under the same e-mail). Time is the store's clock, moved by the test: nothing here sleeps.

The client address is what the web app sees: uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1
(the reverse proxy of a deployment), so a test names an address by that header.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.signin_throttle import ACCOUNT, ADDRESS
from qb_pipelines_tests.web_fixtures import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    MovableClock,
    WebStack,
    csrf_of,
    http_client,
    http_sign_in,
    start_web,
)

LOCKED = "Too many failed sign-ins. Try again in 15 minutes or ask an admin to unlock your account."


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def web(emulator: RunningEmulator, tmp_path: Path, clock: MovableClock) -> Iterator[WebStack]:
    stack = start_web(emulator, tmp_path, clock=clock)
    try:
        yield stack
    finally:
        stack.stop()


def attempt(client: httpx.Client, email: str, password: str, address: str | None = None) -> httpx.Response:
    """One sign-in attempt (a fresh sign-in form, then the POST) from ``address``."""
    headers = {"x-forwarded-for": address} if address else {}
    token = csrf_of(client.get("/signin", headers=headers).text)
    return client.post("/signin", headers=headers,
                       data={"csrf_token": token, "email": email, "password": password, "next": ""})


def fail_until_refused(client: httpx.Client, clock: MovableClock, email: str, failures: int,
                       address: str | None = None, *, password: str = "wrong password") -> list[int]:
    """``failures`` wrong passwords, each one waiting out the delay the app asks for; their statuses."""
    statuses = []
    for _ in range(failures):
        resp = attempt(client, email, password, address)
        while resp.status_code == 429 and "minutes" not in resp.text:  # a delay, not a lock: wait it out
            clock.advance(int(resp.headers["retry-after"]))
            resp = attempt(client, email, password, address)
        statuses.append(resp.status_code)
    return statuses


# ------------------------------------------------------------------------------------------------
# throttling
# ------------------------------------------------------------------------------------------------
def test_forty_fast_wrong_passwords_then_the_right_one_is_refused(web: WebStack, clock: MovableClock) -> None:
    """The issue's attack: 40 wrong passwords in 8 s, then the right one."""
    with http_client(web) as client:
        statuses = []
        for _ in range(40):
            statuses.append(attempt(client, ADMIN_EMAIL, "guess").status_code)
            clock.advance(0.2)
        assert statuses.count(401) == ACCOUNT.slow_after + 3  # 5 at once, then after 1 s, 2 s and 4 s
        assert statuses.count(429) == 40 - statuses.count(401)
        resp = attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert resp.status_code == 429
        assert "Too many failed sign-ins. Try again in " in resp.text and "seconds" in resp.text
        assert int(resp.headers["retry-after"]) > 0
        assert client.get("/integrations").status_code == 303  # not signed in
        # once the delay has passed, the right password works and the account starts afresh
        clock.advance(int(resp.headers["retry-after"]))
        assert attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303
        assert client.get("/integrations").status_code == 200


def test_ten_failures_lock_the_account_for_15_minutes_until_an_admin_unlocks_it(web: WebStack,
                                                                               clock: MovableClock) -> None:
    with http_client(web) as client:
        assert fail_until_refused(client, clock, ADMIN_EMAIL, ACCOUNT.lock_after) == [401] * ACCOUNT.lock_after
        resp = attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert resp.status_code == 429
        assert LOCKED in resp.text
        assert resp.headers["retry-after"] == str(15 * 60)
        clock.advance(10 * 60)
        resp = attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert resp.status_code == 429 and "Try again in 5 minutes" in resp.text
        # another account is not locked, nor is this address (10 failures is below its threshold)
        assert attempt(client, VIEWER_EMAIL, VIEWER_PASSWORD).status_code == 303

    web.runtime.signin_throttle.unlock(ADMIN_EMAIL)  # what `qb-pipelines users unlock` does
    with http_client(web) as client:
        assert attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303

    # the lock also ends by itself after 15 minutes
    with http_client(web) as client:
        fail_until_refused(client, clock, ADMIN_EMAIL, ACCOUNT.lock_after)
        assert attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 429
        clock.advance(15 * 60)
        assert attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303


def test_an_unknown_email_is_throttled_exactly_like_a_real_one(web: WebStack, clock: MovableClock) -> None:
    def lock_and_knock(email: str, address: str) -> tuple[list[int], int, str, str]:
        statuses = fail_until_refused(client, clock, email, ACCOUNT.lock_after, address)
        locked = attempt(client, email, "x" * 9, address)
        return statuses, locked.status_code, locked.headers["retry-after"], LOCKED if LOCKED in locked.text else ""

    with http_client(web) as client:
        assert lock_and_knock(ADMIN_EMAIL, "198.51.100.8") == lock_and_knock("nobody@example.com", "198.51.100.9") \
            == ([401] * ACCOUNT.lock_after, 429, str(15 * 60), LOCKED)


def test_one_address_guessing_many_accounts_is_locked_and_its_own_success_does_not_reset_it(
    web: WebStack, clock: MovableClock,
) -> None:
    attacker, colleague = "203.0.113.7", "198.51.100.20"
    with http_client(web) as client:
        # one wrong password each on many accounts: no account reaches its own threshold
        for i in range(ADDRESS.lock_after - 1):
            assert fail_until_refused(client, clock, f"user{i}@example.com", 1, attacker) == [401]
        # the attacker signs in to an account of their own from the same address...
        clock.advance(ADDRESS.max_delay_s)
        assert attempt(client, VIEWER_EMAIL, VIEWER_PASSWORD, attacker).status_code == 303
    with http_client(web) as client:
        # ...which does not reset the address: one more failure locks it
        clock.advance(ADDRESS.max_delay_s)
        assert fail_until_refused(client, clock, "one-more@example.com", 1, attacker) == [401]
        resp = attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD, attacker)
        assert resp.status_code == 429
        assert "Too many failed sign-ins from your network. Try again in 15 minutes" in resp.text
        # the same account from another address signs in: the admin is not locked out by the attacker
        assert attempt(client, ADMIN_EMAIL, ADMIN_PASSWORD, colleague).status_code == 303


def test_an_admin_sees_the_locked_sign_ins_and_unlocks_one_on_the_web(web: WebStack, clock: MovableClock) -> None:
    with http_client(web) as attacker:
        fail_until_refused(attacker, clock, VIEWER_EMAIL, ACCOUNT.lock_after, "203.0.113.50")
        assert attempt(attacker, VIEWER_EMAIL, VIEWER_PASSWORD, "203.0.113.50").status_code == 429
    with http_client(web) as viewer_elsewhere:
        assert attempt(viewer_elsewhere, VIEWER_EMAIL, VIEWER_PASSWORD, "198.51.100.1").status_code == 429
        with http_client(web) as admin:
            csrf = http_sign_in(admin)
            page = admin.get("/integrations").text
            panel = page.split('id="locked-signins"', 1)[1].split("</section>", 1)[0]
            assert VIEWER_EMAIL in panel and 'data-action="unlock"' in panel
            form = {"csrf_token": csrf, "scope": "account", "key": VIEWER_EMAIL}
            resp = admin.post("/signin/unlock", data=form)
            assert resp.status_code == 303
            assert f"Sign-ins unlocked for {VIEWER_EMAIL}." in admin.get("/integrations").text
            assert 'id="locked-signins"' not in admin.get("/integrations").text
        assert attempt(viewer_elsewhere, VIEWER_EMAIL, VIEWER_PASSWORD, "198.51.100.1").status_code == 303
        # a viewer sees no panel and cannot unlock anything
        viewer_page = viewer_elsewhere.get("/integrations").text
        assert "Locked sign-ins" not in viewer_page
        viewer_csrf = csrf_of(viewer_page)
        resp = viewer_elsewhere.post("/signin/unlock", data={"csrf_token": viewer_csrf, "scope": "account",
                                                             "key": ADMIN_EMAIL})
        assert resp.status_code == 403


# ------------------------------------------------------------------------------------------------
# server-side sessions
# ------------------------------------------------------------------------------------------------
def _cookie(client: httpx.Client) -> str:
    value = client.cookies.get("qbp_session")
    assert value, "no session cookie"
    return value


def _replay(web: WebStack, cookie: str, path: str = "/integrations") -> httpx.Response:
    with httpx.Client(base_url=web.url, follow_redirects=False, timeout=30, cookies={"qbp_session": cookie}) as other:
        return other.get(path)


def test_the_cookie_carries_a_session_id_not_the_user(web: WebStack) -> None:
    with http_client(web) as client:
        http_sign_in(client)
        payload = _cookie(client).split(".", 1)[0]
        data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
        assert ADMIN_EMAIL not in json.dumps(data) and "admin" not in json.dumps(data).replace("qbp", "")
        assert set(data) >= {"sid"}
        assert _replay(web, _cookie(client)).status_code == 200  # the cookie itself works


def test_a_cookie_replayed_after_sign_out_is_refused(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        stolen = _cookie(client)
        assert client.post("/signout", data={"csrf_token": csrf}).status_code == 303
        assert client.get("/integrations").status_code == 303
    resp = _replay(web, stolen)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/signin")
    # a POST with the replayed cookie and the old CSRF token changes nothing either
    with httpx.Client(base_url=web.url, follow_redirects=False, timeout=30, cookies={"qbp_session": stolen}) as other:
        resp = other.post("/integrations/tenants", data={"csrf_token": csrf, "key": "evil", "name": "Evil"})
        assert resp.status_code in (303, 403)
    assert web.runtime.connections.get("evil") is None


def test_a_password_change_ends_every_session_of_that_user(web: WebStack) -> None:
    with http_client(web) as laptop, http_client(web) as phone, http_client(web) as viewer:
        http_sign_in(laptop)
        http_sign_in(phone)
        http_sign_in(viewer, VIEWER_EMAIL, VIEWER_PASSWORD)
        stolen = _cookie(laptop)
        web.runtime.users.set_password(ADMIN_EMAIL, "a brand new passphrase")
        assert laptop.get("/integrations").status_code == 303
        assert phone.get("/integrations").status_code == 303
        assert _replay(web, stolen).status_code == 303
        assert viewer.get("/integrations").status_code == 200  # other users keep their sessions
        http_sign_in(laptop, ADMIN_EMAIL, "a brand new passphrase")
        assert laptop.get("/integrations").status_code == 200


def test_a_removed_user_is_signed_out_even_if_recreated_with_the_same_email(web: WebStack) -> None:
    with http_client(web) as client:
        http_sign_in(client, VIEWER_EMAIL, VIEWER_PASSWORD)
        stolen = _cookie(client)
        web.runtime.users.remove(VIEWER_EMAIL)
        assert client.get("/integrations").status_code == 303
        web.runtime.users.create(VIEWER_EMAIL, "another password 7", "admin")
        assert _replay(web, stolen).status_code == 303  # the new account is not the old session's


def test_idle_and_absolute_timeouts(web: WebStack, clock: MovableClock) -> None:
    idle = web.settings.session_idle_s
    with http_client(web) as client:
        http_sign_in(client)
        clock.advance(idle - 60)
        assert client.get("/integrations").status_code == 200  # activity keeps it alive
        clock.advance(idle - 60)
        assert client.get("/integrations").status_code == 200
        clock.advance(idle + 1)
        assert client.get("/integrations").status_code == 303  # idle too long
    with http_client(web) as client:
        http_sign_in(client)
        for _ in range(web.settings.session_max_age_s // (idle - 60)):
            clock.advance(idle - 60)
            client.get("/integrations")
        clock.advance(idle - 60)
        resp = client.get("/integrations")
        assert resp.status_code == 303  # never idle, but older than the absolute lifetime


def test_the_idle_timeout_and_the_read_budget_are_read_from_the_environment() -> None:
    from qb_pipelines.config import SettingsError
    from qb_pipelines.web.config import WebSettings

    env = {"QB_FERNET_KEY": "k" * 44, "QBO_CLIENT_ID": "id", "QBO_CLIENT_SECRET": "secret",
           "QBO_REDIRECT_URI": "http://127.0.0.1:8000/oauth/callback", "QBO_ENVIRONMENT": "emulator",
           "QB_SESSION_SECRET": "s" * 48}
    defaults = WebSettings.from_env(env)
    assert (defaults.session_idle_s, defaults.session_max_age_s, defaults.read_budget) == (3600, 8 * 3600, 500_000)
    tuned = WebSettings.from_env({**env, "QB_SESSION_IDLE_MINUTES": "15", "QB_READ_BUDGET": "1_000_000"})
    assert (tuned.session_idle_s, tuned.read_budget) == (900, 1_000_000)
    for name, value in (("QB_SESSION_IDLE_MINUTES", "0"), ("QB_SESSION_IDLE_MINUTES", "soon"),
                        ("QB_READ_BUDGET", "-5"), ("QB_READ_BUDGET", "lots")):
        with pytest.raises(SettingsError, match=name):
            WebSettings.from_env({**env, name: value})
