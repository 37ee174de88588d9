"""The admin web app in a real browser (headless Chromium driven by Playwright), against the emulator.

An admin signs in, connects a tenant through the emulator's Intuit pages (sign-in, company chooser,
consent), finishes the Setup Wizard with lists read live from the company, disconnects, reconnects
with the configuration preserved, switches company through the "Switch QuickBooks Account" dialog;
a cancelled consent shows "Connection Failed"; an expired session shows the seed's words; a viewer
sees everything and can change nothing. Texts are the seed's (``shared/seeds/004``), exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from qb_pipelines.emulator.oauth import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines_tests.web_fixtures import (  # noqa: F401 - web_fixture provides `web`
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    WebStack,
    http_client,
    http_connect,
    http_sign_in,
    web_fixture,
)

pytestmark = pytest.mark.browser

NOT_CONNECTED = "No QuickBooks Online account connected"
EXPIRED = "Your QuickBooks Online session has expired. Please reconnect your account."
DISCONNECTED_TOAST = "Integration disconnected successfully."


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, web: WebStack, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto(f"{web.url}/integrations")
    expect(page).to_have_url(re.compile(r"/signin"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")
    expect(page).to_have_url(f"{web.url}/integrations")


def card(page: Page, tenant: str = "acme"):
    return page.locator(f"#card-{tenant}")


def consent(page: Page, web: WebStack, realm: str, *, cancel: bool = False) -> None:
    """On the emulator's Intuit pages: sign in, choose ``realm``, then Connect (or Cancel)."""
    expect(page).to_have_url(re.compile("^" + re.escape(web.emulator.url)))
    page.fill("#email", DEFAULT_USER_EMAIL)
    page.fill("#password", DEFAULT_USER_PASSWORD)
    page.click("#sign-in")
    # two companies: the chooser appears
    expect(page.locator("input[name=realmId]")).to_have_count(len(web.realms))
    page.check(f"#company-{realm}")
    page.click("#next")
    page.click("#cancel" if cancel else "#connect")
    expect(page).to_have_url(re.compile("^" + re.escape(web.url)))


def two_companies(web: WebStack) -> tuple[str, str]:
    web.add_tenant("acme", "Acme Field Services")
    return web.create_company("Keller Plumbing"), web.create_company("Amy's Bird Sanctuary")


def test_connect_wizard_disconnect_reconnect_and_switch(page: Page, web: WebStack, tmp_path: Path) -> None:
    keller, amy = two_companies(web)
    sign_in(page, web)
    expect(card(page).locator(".message")).to_have_text(NOT_CONNECTED)

    # Connect -> Intuit -> first connection opens the Setup Wizard
    card(page).locator("button[data-action=connect]").click()
    consent(page, web, keller)
    expect(page).to_have_url(f"{web.url}/integrations/acme/setup")
    expect(page.locator("#page-title")).to_have_text("QuickBooks Online Setup Wizard")
    income = page.locator("#default_income_account_id option:not([value=''])")
    assert income.count() >= 1  # read live from Keller Plumbing's chart of accounts
    account_id = income.first.get_attribute("value")
    account_name = income.first.inner_text()
    page.select_option("#default_income_account_id", account_id)
    tax_code = page.locator("#default_tax_code_id option:not([value=''])").first.get_attribute("value")
    page.select_option("#default_tax_code_id", tax_code)
    page.check("#conflict-qbo_wins")
    page.uncheck("#entity-Vendor")
    page.select_option("#direction-Customer", "qbo_to_app")
    page.click("#save-settings")

    expect(page).to_have_url(f"{web.url}/integrations")
    expect(card(page)).to_have_attribute("data-state", "connected")
    expect(card(page).locator(".user-name")).to_have_text("Demo User")
    expect(card(page).locator(".user-email")).to_have_text("demo@example.com")
    expect(card(page).locator(".company-name")).to_have_text("Keller Plumbing")
    expect(card(page).locator(".settings-link")).to_be_visible()

    # Disconnect: at once, no dialog, the seed's toast; the card goes back to Connect
    card(page).locator("button[data-action=disconnect]").click()
    expect(page.locator(".toast")).to_have_text(DISCONNECTED_TOAST)
    expect(card(page).locator(".message")).to_have_text(NOT_CONNECTED)
    assert web.view("acme").state == ConnectionState.DISCONNECTED

    # Reconnect the same company: back to the page (no wizard), configuration preserved
    card(page).locator("button[data-action=connect]").click()
    consent(page, web, keller)
    expect(page).to_have_url(f"{web.url}/integrations")
    expect(page.locator(".toast")).to_have_text("QuickBooks Online reconnected.")
    expect(card(page).locator(".company-name")).to_have_text("Keller Plumbing")
    card(page).locator(".settings-link").click()
    expect(page.locator("#page-title")).to_have_text("QuickBooks Online Settings")
    expect(page.locator("#conflict-qbo_wins")).to_be_checked()
    expect(page.locator("#entity-Vendor")).not_to_be_checked()
    expect(page.locator("#direction-Customer")).to_have_value("qbo_to_app")
    expect(page.locator("#default_income_account_id option:checked")).to_have_text(account_name)

    # Switch: the gear in Integration Status opens the dialog; Switch Account goes to Intuit
    expect(page.locator("#integration-status .company-name")).to_have_text("Keller Plumbing")
    page.click("#switch-account")
    expect(page.locator("#switch-dialog-title")).to_have_text("Switch QuickBooks Account")
    expect(page.locator("#switch-dialog")).to_contain_text("will be disconnected")
    page.screenshot(path=str(tmp_path / "switch-dialog.png"))
    page.click("#switch-confirm")
    consent(page, web, amy)
    expect(page).to_have_url(f"{web.url}/integrations/acme/settings")
    expect(page.locator("#banner")).to_contain_text("mappings may need review")
    expect(page.locator("#integration-status .company-name")).to_have_text("Amy's Bird Sanctuary")
    expect(page.locator("#conflict-qbo_wins")).to_be_checked()  # configuration kept
    expect(page.locator("#mappings-review")).to_be_visible()
    page.screenshot(path=str(tmp_path / "settings-after-switch.png"), full_page=True)

    page.goto(f"{web.url}/integrations")
    expect(card(page).locator(".company-name")).to_have_text("Amy's Bird Sanctuary")
    expect(card(page).locator(".mappings-review")).to_be_visible()
    view = web.view("acme")
    assert view.realm_id == amy and view.state == ConnectionState.CONNECTED
    assert web.runtime.tenant_settings.get("acme").values.default_income_account_id == account_id
    shot = tmp_path / "connected-card.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_cancel_at_consent_shows_connection_failed(page: Page, web: WebStack) -> None:
    keller, _ = two_companies(web)
    sign_in(page, web)
    card(page).locator("button[data-action=connect]").click()
    consent(page, web, keller, cancel=True)
    expect(page).to_have_url(f"{web.url}/integrations")
    expect(page.locator("#banner-title")).to_have_text("Connection Failed")
    expect(page.locator("#banner")).to_contain_text("Check your QuickBooks credentials")
    expect(card(page).locator(".message")).to_have_text(NOT_CONNECTED)
    assert web.view("acme").state == ConnectionState.NOT_CONNECTED


def test_an_expired_session_shows_the_expired_card_and_reconnect(page: Page, web: WebStack) -> None:
    keller, _ = two_companies(web)
    sign_in(page, web)
    card(page).locator("button[data-action=connect]").click()
    consent(page, web, keller)
    page.goto(f"{web.url}/integrations")
    expect(card(page)).to_have_attribute("data-state", "connected")

    web.expire_all(keller)  # Intuit ends the grant (refresh token expired too)
    card(page).locator(".setup-link").click()  # opening the wizard reads the company's lists live
    expect(page).to_have_url(f"{web.url}/integrations")
    expect(card(page).locator(".message")).to_have_text(EXPIRED)
    expect(card(page).locator("button[data-action=reconnect]")).to_have_text("Reconnect")
    assert web.view("acme").state == ConnectionState.SESSION_EXPIRED

    card(page).locator("button[data-action=reconnect]").click()
    consent(page, web, keller)
    expect(page).to_have_url(f"{web.url}/integrations/acme/setup")  # never configured: the wizard
    assert web.view("acme").state == ConnectionState.CONNECTED


def test_a_viewer_sees_but_cannot_change_anything(page: Page, web: WebStack) -> None:
    keller, _ = two_companies(web)
    with http_client(web) as admin:
        csrf = http_sign_in(admin)
        http_connect(admin, csrf, "acme", keller)
    sign_in(page, web, VIEWER_EMAIL, VIEWER_PASSWORD)
    expect(page.locator("#role")).to_have_text("viewer")
    expect(card(page).locator(".user-email")).to_have_text("demo@example.com")
    expect(card(page).locator("button")).to_have_count(0)  # no Connect, Disconnect nor Reconnect
    expect(page.locator("#add-tenant")).to_have_count(0)
    expect(card(page).locator(".viewonly")).to_be_visible()

    card(page).locator(".setup-link").click()  # the viewer may look at the (unfinished) setup
    expect(page.locator("#viewonly")).to_be_visible()
    expect(page.locator("#default_income_account_id")).to_be_disabled()
    expect(page.locator("#save-settings")).to_have_count(0)
    expect(page.locator("#switch-account")).to_have_count(0)

    # a forged POST with the viewer's own valid CSRF token is refused
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path, form in {
        "/integrations/acme/disconnect": {},
        "/integrations/acme/connect": {"action": "switch"},
        "/integrations/acme/setup": {"conflict_policy": "app_wins"},
    }.items():
        resp = page.request.post(f"{web.url}{path}", form={**form, "csrf_token": token}, max_redirects=0)
        assert resp.status == 403, path
    assert web.view("acme").state == ConnectionState.CONNECTED
