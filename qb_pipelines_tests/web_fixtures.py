"""Fixtures and helpers for the admin web app's tests: the app served by uvicorn next to the emulator.

A :class:`WebStack` is the whole thing an admin uses: the emulator (as Intuit and QuickBooks), a
fresh SQLite store, the web app on a free port whose ``/oauth/callback`` is registered with the
emulator's default developer app, and two users (an admin and a viewer). Test modules import the
fixture functions they use (``web_fixture`` provides ``web``): pytest registers a fixture imported
into a test module. The ``chromium`` fixture is shared by every browser test (``conftest.py``).
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import requests
import uvicorn

from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_PASSWORD,
)
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web.app import create_app, install_log_redaction
from qb_pipelines.web.config import WebSettings

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
VIEWER_EMAIL = "viewer@example.com"
VIEWER_PASSWORD = "viewer password 42"
SESSION_SECRET = "test-session-secret-" + "x" * 40

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FLOW = re.compile(r'name="flow" value="([^"]+)"')


class MovableClock:
    """A clock tests move by hand: the store's "now" (sessions, sign-in throttling, tokens...)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class WebStack:
    """A running admin web app wired to a running emulator, with a fresh store.

    Attributes:
        url: The web app's base URL.
        emulator: The running emulator (``.url``, ``.emu``).
        settings: The app's settings (client secret and keys included: test-only values).
        runtime: The app's runtime: store, users, Intuit app (shared with the running app).
        server: The uvicorn server (stopped by the fixture).
    """

    url: str
    emulator: RunningEmulator
    settings: WebSettings
    runtime: Runtime
    server: uvicorn.Server
    thread: threading.Thread
    realms: dict[str, str] = field(default_factory=dict)

    # -- emulator side ------------------------------------------------------------------------------
    def create_company(self, name: str) -> str:
        """Create a QuickBooks company in the emulator; returns its realmId."""
        resp = requests.post(f"{self.emulator.url}/_emulator/companies", json={"name": name}, timeout=30)
        resp.raise_for_status()
        realm = str(resp.json()["realmId"])
        self.realms[name] = realm
        return realm

    def expire_all(self, realm: str) -> None:
        """Expire every token of ``realm`` in the emulator (as if the grant lapsed)."""
        resp = requests.post(
            f"{self.emulator.url}/_emulator/oauth/expire", json={"realmId": realm, "what": "all"}, timeout=30
        )
        resp.raise_for_status()

    def revoke_all(self, realm: str) -> None:
        """Revoke every grant of ``realm`` (as if the user disconnected the app inside QuickBooks)."""
        requests.post(f"{self.emulator.url}/_emulator/oauth/revoke-all", json={"realmId": realm}, timeout=30).raise_for_status()

    # -- app side -----------------------------------------------------------------------------------
    def add_tenant(self, key: str, name: str) -> None:
        self.runtime.tenants.ensure_tenant(key, name)

    def view(self, tenant_key: str) -> Any:
        return self.runtime.connections.get(tenant_key)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_web(emulator: RunningEmulator, tmp_path: Path, *, database_url: str | None = None,
              clock: Callable[[], datetime] | None = None, **settings_overrides: Any) -> WebStack:
    """Start the web app for ``emulator`` with a fresh store (SQLite under ``tmp_path`` by default).

    Args:
        clock: The store's "now" (a :class:`MovableClock` lets a test move time); the wall clock by default.
        settings_overrides: Fields of :class:`WebSettings` to change (session timeouts, read budget...).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    redirect_uri = f"{url}/oauth/callback"
    requests.post(
        f"{emulator.url}/_emulator/apps",
        json={"client_id": DEFAULT_CLIENT_ID, "redirect_uris": [redirect_uri]},
        timeout=30,
    ).raise_for_status()
    settings = WebSettings(
        database_url=database_url or f"sqlite:///{tmp_path / 'store.sqlite'}",
        fernet_key=generate_key(),
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        redirect_uri=redirect_uri,
        environment_name="emulator",
        emulator_url=emulator.url,
        session_secret=SESSION_SECRET,
        **settings_overrides,
    )
    runtime = Runtime(settings.app_settings(), clock=clock) if clock else Runtime(settings.app_settings())
    runtime.users.create(ADMIN_EMAIL, ADMIN_PASSWORD, "admin")
    runtime.users.create(VIEWER_EMAIL, VIEWER_PASSWORD, "viewer")
    app = create_app(settings, runtime)
    # log_config=None: uvicorn's loggers propagate to the root logger, so caplog sees them too.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True, lifespan="off")
    server = uvicorn.Server(config)
    install_log_redaction()
    thread = threading.Thread(target=server.run, name=f"web-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    else:  # pragma: no cover - only when the server cannot start
        server.should_exit = True
        raise RuntimeError(f"the web app did not start on {url}")
    return WebStack(url=url, emulator=emulator, settings=settings, runtime=runtime, server=server, thread=thread)


@pytest.fixture(name="web")
def web_fixture(emulator: RunningEmulator, tmp_path: Path) -> Iterator[WebStack]:
    """The web app on a fresh SQLite store, next to a fresh emulator."""
    stack = start_web(emulator, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


# ------------------------------------------------------------------------------------------------
# HTTP helpers (no browser): sign in, post forms, drive the emulator's consent pages
# ------------------------------------------------------------------------------------------------
def csrf_of(page_html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(page_html)
    assert match, "no csrf_token on the page"
    return html.unescape(match.group(1))


def http_client(web: WebStack) -> httpx.Client:
    """An HTTP client with a cookie jar, on the web app, not following redirects."""
    return httpx.Client(base_url=web.url, follow_redirects=False, timeout=30)


def http_sign_in(client: httpx.Client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> str:
    """Sign in; returns the session's CSRF token."""
    page = client.get("/signin")
    token = csrf_of(page.text)
    resp = client.post("/signin", data={"csrf_token": token, "email": email, "password": password, "next": ""})
    assert resp.status_code == 303, resp.text
    return csrf_of(client.get("/integrations").text)


def consent_over_http(authorize_url: str, realm: str | None = None, *, cancel: bool = False) -> str:
    """Go through the emulator's sign-in, company and consent pages; returns the callback URL.

    Args:
        authorize_url: Where the web app redirected the browser.
        realm: The company to choose when the chooser appears.
        cancel: Press Cancel on the consent page instead of Connect.
    """
    with requests.Session() as s:
        page = s.get(authorize_url, timeout=30)
        page.raise_for_status()
        base = f"{urlsplit(authorize_url).scheme}://{urlsplit(authorize_url).netloc}"
        flow = html.unescape(_FLOW.search(page.text).group(1))
        page = s.post(
            f"{base}/connect/oauth2/signin",
            data={"flow": flow, "email": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD},
            allow_redirects=False,
            timeout=30,
        )
        if 'name="realmId"' in page.text:
            flow = html.unescape(_FLOW.search(page.text).group(1))
            assert realm, "the emulator asks to choose a company: pass realm"
            page = s.post(f"{base}/connect/oauth2/company", data={"flow": flow, "realmId": realm},
                          allow_redirects=False, timeout=30)
        flow = html.unescape(_FLOW.search(page.text).group(1))
        resp = s.post(
            f"{base}/connect/oauth2/consent",
            data={"flow": flow, "action": "cancel" if cancel else "connect"},
            allow_redirects=False,
            timeout=30,
        )
        assert resp.status_code in (302, 303), resp.text[:500]
        return urljoin(base, resp.headers["location"])


def http_connect(client: httpx.Client, csrf: str, tenant: str, realm: str | None, *, action: str = "connect",
                 cancel: bool = False) -> httpx.Response:
    """Press Connect (or Reconnect/Switch) for ``tenant``, consent in the emulator, follow the callback.

    Returns:
        The web app's answer to the callback (a redirect to the wizard, the page or Settings).
    """
    resp = client.post(f"/integrations/{tenant}/connect", data={"csrf_token": csrf, "action": action})
    assert resp.status_code == 303, resp.text
    callback = consent_over_http(resp.headers["location"], realm, cancel=cancel)
    parts = urlsplit(callback)
    assert parts.path == "/oauth/callback"
    return client.get(f"/oauth/callback?{parts.query}")


def callback_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
