"""The QuickBooks Online card shows syncing: the last landing, the grant's end, the read budget.

Over real HTTP next to the emulator: a company connected through the consent pages, landings
recorded as ``qb-pipelines sync`` and the Dagster asset record them (:mod:`qb_pipelines.sync.runs`),
one of them failing on real 500s from the emulator's fault injection; the grant's hard expiry
moved close in the store; reads metered against a small ``QB_READ_BUDGET``. Then the same card
in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.models import Connection
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.runs import recorded_landing
from qb_pipelines_tests.web_fixtures import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    WebStack,
    http_client,
    http_connect,
    http_sign_in,
    start_web,
)

BUDGET = 200


@pytest.fixture
def web(emulator: RunningEmulator, tmp_path: Path) -> Iterator[WebStack]:
    stack = start_web(emulator, tmp_path, read_budget=BUDGET)
    try:
        yield stack
    finally:
        stack.stop()


def _card(client: httpx.Client, tenant: str = "acme") -> str:
    page = client.get("/integrations")
    assert page.status_code == 200
    return page.text.split(f'id="card-{tenant}"', 1)[1].split("</article>", 1)[0]


def _text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def _connected(web: WebStack, client: httpx.Client) -> tuple[str, str]:
    csrf = http_sign_in(client)
    web.add_tenant("acme", "Acme Field Services")
    realm = web.create_company("Keller Plumbing")
    assert http_connect(client, csrf, "acme", realm).status_code == 303
    return company_key("acme", realm), realm


def _land(web: WebStack, key: str, **client_kwargs: object) -> None:
    runtime = web.runtime
    with recorded_landing(runtime.sync_runs, key, source="cli", mode="incremental") as landing:
        landing.result = land(runtime.client_for(key, **client_kwargs), runtime.warehouse, key)


def _hard_expiry(web: WebStack, days: float) -> None:
    with web.runtime.engine.begin() as conn:
        conn.execute(sa.update(Connection.__table__).values(
            refresh_hard_expires_at=web.runtime.sync_runs.now() + timedelta(days=days)))


def test_the_card_shows_the_last_landing_ok_or_failed(web: WebStack) -> None:
    with http_client(web) as client:
        key, realm = _connected(web, client)
        card = _card(client)
        assert 'data-outcome="none"' in card and "Not synced yet" in card

        _land(web, key)
        run = web.runtime.sync_runs.latest(key)
        assert run is not None and run.ok and run.objects > 0
        card = _card(client)
        assert 'class="last-sync" data-outcome="ok"' in card
        when = run.finished_at.strftime("%Y-%m-%d %H:%M UTC")
        assert f"{when} · {run.objects:,} objects changed · OK" in _text(card)
        assert "last-sync-error" not in card

        requests.post(f"{web.emulator.url}/_emulator/faults",
                      json={"rates": {"500": 1.0}, "scope": {"realms": [realm]}}, timeout=10).raise_for_status()
        try:
            with pytest.raises(QBOError):
                _land(web, key, max_retries=0)
        finally:
            requests.post(f"{web.emulator.url}/_emulator/faults", json={"clear": True}, timeout=10).raise_for_status()
        card = _card(client)
        assert 'data-outcome="failed"' in card and "objects changed · Failed" in _text(card)
        error = card.split('class="detail last-sync-error">', 1)[1].split("</p>", 1)[0]
        assert error.startswith("Last sync failed: TransientServerError")
        assert 'data-state="connected"' in client.get("/integrations").text  # a failed landing is not a broken connection


def test_the_card_says_reconnect_before_the_grant_ends_within_30_days(web: WebStack) -> None:
    with http_client(web) as client:
        _connected(web, client)
        assert "Reconnect before" not in _card(client)  # a fresh grant: five years ahead
        _hard_expiry(web, 40)
        assert "Reconnect before" not in _card(client)
        _hard_expiry(web, 12)
        date = web.view("acme").refresh_hard_expires_at.strftime("%Y-%m-%d")
        card = _text(_card(client))
        assert f"Reconnect before {date}: Intuit ends this connection's authorization on that date" in card
        settings = client.get("/integrations/acme/setup").text
        assert f"Reconnect before {date}" in settings


def test_the_card_counts_reads_against_the_budget_and_warns_from_80_percent(web: WebStack) -> None:
    with http_client(web) as client:
        _, realm = _connected(web, client)
        reads = web.runtime.usage.reads(realm)
        assert 0 < reads < BUDGET * 0.8
        card = _card(client)
        assert f"{reads:,} of {BUDGET:,} this month ({reads * 100 // BUDGET}%)" in _text(card)
        assert 'class="usage ok"' in card and "usage-warning" not in card

        for _ in range(int(BUDGET * 0.8) - reads):
            web.runtime.usage.record_read(realm)
        card = _card(client)
        assert 'class="usage warn"' in card
        assert f"160 of {BUDGET:,} read calls this month (80%): over 80% of the monthly read budget." in _text(card)

        for _ in range(BUDGET - 160):
            web.runtime.usage.record_read(realm)
        card = _text(_card(client))
        assert "the monthly read budget is spent. Intuit blocks further reads until next month" in card


def test_the_syncing_card_in_a_browser(web: WebStack, chromium: Browser, tmp_path: Path) -> None:
    with http_client(web) as client:
        key, realm = _connected(web, client)
    _land(web, key)
    _hard_expiry(web, 5)
    for _ in range(BUDGET - web.runtime.usage.reads(realm) - 10):
        web.runtime.usage.record_read(realm)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{web.url}/integrations")
        page.fill("#email", ADMIN_EMAIL)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#sign-in")
        card = page.locator("#card-acme")
        expect(card.locator(".last-sync")).to_have_attribute("data-outcome", "ok")
        expect(card.locator(".last-sync .outcome")).to_have_text("OK")
        expect(card.locator(".usage")).to_have_text(re.compile(rf"^{BUDGET - 10} of {BUDGET} this month \(95%\)$"))
        expect(card.locator(".usage-warning")).to_be_visible()
        expect(card.locator(".reconnect-before")).to_contain_text("Reconnect before")
        page.screenshot(path=str(tmp_path / "syncing-card.png"), full_page=True)
    finally:
        context.close()
