"""The emulator's Intuit authorize pages in a real browser (Chromium driven by Playwright).

A user signs in, picks one of two companies, clicks Connect (or Cancel) and lands on the app's
redirect URI, served here by a tiny local HTTP server that records what arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser

from qb_pipelines.emulator.oauth import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from qb_pipelines.emulator.server import RunningEmulator

pytestmark = pytest.mark.browser


class _Callback:
    """The app's OAuth callback: a local HTTP server that records each query it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/qbo/callback":  # not the browser's /favicon.ico
                    owner.received.append({k: v[0] for k, v in parse_qs(parts.query).items()})
                body = b"<!doctype html><title>Connected</title><h1 id='done'>Back in the app</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/qbo/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback() -> Iterator[_Callback]:
    cb = _Callback()
    try:
        yield cb
    finally:
        cb.close()


def _start(emulator: RunningEmulator, callback: _Callback, chromium: Browser, state: str):
    """Two companies, an app whose redirect URI is the callback server, and a page at the sign-in form."""
    engine = emulator.emu.engine
    realms = [engine.create_company("Keller Plumbing"), engine.create_company("Amy's Bird Sanctuary")]
    app = emulator.emu.oauth.register_app(name="Field Service Pro", redirect_uris=[callback.url])
    query = urlencode(
        {
            "client_id": app["client_id"],
            "response_type": "code",
            "scope": "com.intuit.quickbooks.accounting openid profile email",
            "redirect_uri": callback.url,
            "state": state,
        }
    )
    page = chromium.new_page()
    page.goto(f"{emulator.url}/connect/oauth2?{query}")
    page.fill("#email", DEFAULT_USER_EMAIL)
    page.fill("#password", DEFAULT_USER_PASSWORD)
    page.click("#sign-in")
    return realms, page


def test_sign_in_choose_company_and_connect(emulator: RunningEmulator, callback: _Callback, chromium: Browser) -> None:
    realms, page = _start(emulator, callback, chromium, state="browser-state-1")
    assert page.locator("input[name=realmId]").count() == 2
    page.check(f"#company-{realms[1]}")
    page.click("#next")
    assert page.inner_text("#company-name") == "Amy's Bird Sanctuary"
    assert page.inner_text("#app-name") == "Field Service Pro"
    page.click("#connect")
    page.wait_for_selector("#done")
    assert page.url.startswith(callback.url)
    assert len(callback.received) == 1
    got = callback.received[0]
    assert got["state"] == "browser-state-1"
    assert got["realmId"] == realms[1]
    assert got["code"]


def test_cancel_returns_access_denied(emulator: RunningEmulator, callback: _Callback, chromium: Browser) -> None:
    realms, page = _start(emulator, callback, chromium, state="browser-state-2")
    page.check(f"#company-{realms[0]}")
    page.click("#next")
    page.click("#cancel")
    page.wait_for_selector("#done")
    assert callback.received == [{"error": "access_denied", "state": "browser-state-2"}]
