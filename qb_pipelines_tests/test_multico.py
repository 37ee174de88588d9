"""Several companies per tenant (``QB_COMPANIES_PER_TENANT=several``): issue 10 item 14.

In Chromium against the emulator: an admin connects a tenant, then "Connect another company"
connects a second company under the same tenant; each has its own card (labelled with its
company), lands into its own company key, and disconnects on its own; the same company twice
under one tenant is refused. In ``one`` mode (the default) there is no button and the route
answers 404 naming the setting. The CLI's ``tenants create --parent`` and ``connections add``
connect a company tenant from a script.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, expect

from qb_pipelines.cli import cli
from qb_pipelines.config import SettingsError
from qb_pipelines.emulator.oauth import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.harness import emulator_settings, landed_rows, new_company, settings_env
from qb_pipelines_tests.web_fixtures import (  # noqa: F401 - web_fixture provides `web`
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    WebStack,
    http_client,
    http_connect,
    http_sign_in,
    start_web,
    web_fixture,
)

pytestmark = pytest.mark.browser

ADD_COMPANY = "button[data-action=add-company]"


@pytest.fixture
def several(emulator: RunningEmulator, tmp_path: Path) -> Iterator[WebStack]:
    """The web app in ``several`` mode on a fresh store, next to a fresh emulator."""
    stack = start_web(emulator, tmp_path, companies_per_tenant="several")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _sign_in(page: Page, web: WebStack) -> None:
    page.goto(f"{web.url}/integrations")
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#sign-in")
    expect(page).to_have_url(f"{web.url}/integrations")


def _consent(page: Page, web: WebStack, realm: str) -> None:
    """On the emulator's Intuit pages: sign in, choose ``realm``, Connect."""
    expect(page).to_have_url(re.compile("^" + re.escape(web.emulator.url)))
    page.fill("#email", DEFAULT_USER_EMAIL)
    page.fill("#password", DEFAULT_USER_PASSWORD)
    page.click("#sign-in")
    page.check(f"#company-{realm}")
    page.click("#next")
    page.click("#connect")
    expect(page).to_have_url(re.compile("^" + re.escape(web.url)))


def test_two_companies_under_one_tenant_each_its_own_card_and_company_key(page: Page, several: WebStack) -> None:
    web = several
    web.add_tenant("acme", "Acme Field Services")
    keller, amy = web.create_company("Keller Plumbing"), web.create_company("Amy's Bird Sanctuary")
    _sign_in(page, web)
    expect(page.locator(ADD_COMPANY)).to_have_count(0)  # not before the tenant's first company

    page.locator("#card-acme button[data-action=connect]").click()
    _consent(page, web, keller)
    expect(page).to_have_url(f"{web.url}/integrations/acme/setup")

    page.goto(f"{web.url}/integrations")
    page.locator(f"#card-acme {ADD_COMPANY}").click()
    _consent(page, web, amy)
    # the second company is a card of its own: its own Setup Wizard, settings and mappings
    expect(page).to_have_url(f"{web.url}/integrations/acme-2/setup")

    page.goto(f"{web.url}/integrations")
    cards = page.locator("article.card")
    expect(cards).to_have_count(2)
    assert [cards.nth(i).get_attribute("id") for i in range(2)] == ["card-acme", "card-acme-2"]
    expect(page.locator("#card-acme .tenant")).to_have_text("Acme Field Services")
    expect(page.locator("#card-acme .company-name")).to_have_text("Keller Plumbing")
    expect(page.locator("#card-acme-2 .tenant")).to_have_text("Amy's Bird Sanctuary")
    expect(page.locator("#card-acme-2 .company-name")).to_have_text("Amy's Bird Sanctuary")
    expect(page.locator("#card-acme-2")).to_have_attribute("data-parent", "acme")
    expect(page.locator(f"#card-acme-2 {ADD_COMPANY}")).to_have_count(0)  # only the tenant's own card offers it
    assert web.runtime.tenants.get("acme-2").parent_key == "acme"

    # the same company twice under one tenant is refused, and nothing is connected
    page.locator(f"#card-acme {ADD_COMPANY}").click()
    _consent(page, web, keller)
    expect(page.locator(".banner")).to_contain_text("Keller Plumbing is already connected on the card Acme Field "
                                                    "Services")
    assert web.view("acme-3").realm_id is None
    # that unconnected card is the one the next "Connect another company" uses (no acme-4)
    page.locator(f"#card-acme {ADD_COMPANY}").click()
    expect(page).to_have_url(re.compile("^" + re.escape(web.emulator.url)))
    page.goto(f"{web.url}/integrations")
    assert web.runtime.tenants.get("acme-4") is None

    # each company lands separately into its own company key (its own Dagster partition)
    runtime = web.runtime
    keys = {realm: company_key(tenant, realm) for tenant, realm in (("acme", keller), ("acme-2", amy))}
    for name, key in (("Keller's customer", keys[keller]), ("Amy's customer", keys[amy])):
        client = runtime.client_for(key, max_retries=1)
        client.create("Customer", {"DisplayName": name})
        result = land(client, runtime.warehouse, key, ["Customer"], full=True)
        assert result.company_key == key and result.api_calls > 0
    keller_rows = landed_rows(runtime.engine, "Customer", keys[keller])
    amy_rows = landed_rows(runtime.engine, "Customer", keys[amy])
    assert {r.display_name for r in keller_rows.values()} == {"Keller's customer"}
    assert {r.display_name for r in amy_rows.values()} == {"Amy's customer"}
    assert keys[keller] == f"acme-{keller}" and keys[amy] == f"acme-2-{amy}"
    # both are companies of the deployment: the Dagster partitions are these keys
    assert set(keys.values()) <= {c.key for c in runtime.connected_companies()}

    # disconnecting the second company leaves the first one connected
    page.locator("#card-acme-2 button[data-action=disconnect]").click()
    expect(page.locator("#card-acme-2")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#card-acme")).to_have_attribute("data-state", "connected")
    assert web.view("acme").state is ConnectionState.CONNECTED


def test_one_company_per_tenant_has_no_button_and_the_route_says_why(page: Page, web: WebStack) -> None:
    web.add_tenant("acme", "Acme Field Services")
    realm = web.create_company("Keller Plumbing")
    web.create_company("Amy's Bird Sanctuary")
    _sign_in(page, web)
    page.locator("#card-acme button[data-action=connect]").click()
    _consent(page, web, realm)
    page.goto(f"{web.url}/integrations")
    expect(page.locator("#card-acme")).to_have_attribute("data-state", "connected")
    expect(page.locator(ADD_COMPANY)).to_have_count(0)
    expect(page.get_by_text("Connect another company")).to_have_count(0)
    with http_client(web) as client:
        csrf = http_sign_in(client)
        resp = client.post("/integrations/acme/companies", data={"csrf_token": csrf})
        assert resp.status_code == 404 and "QB_COMPANIES_PER_TENANT=several" in resp.text
    assert web.runtime.tenants.get("acme-2") is None


def test_only_admins_add_companies_and_only_to_a_connected_tenant(several: WebStack) -> None:
    web = several
    web.add_tenant("acme", "Acme Field Services")
    realm = web.create_company("Keller Plumbing")
    with http_client(web) as client:
        csrf = http_sign_in(client)
        resp = client.post("/integrations/acme/companies", data={"csrf_token": csrf})
        assert resp.status_code == 400 and "Connect first" in resp.text  # no first company yet
        assert http_connect(client, csrf, "acme", realm).status_code == 303
        assert client.post("/integrations/nobody/companies", data={"csrf_token": csrf}).status_code == 404
        assert client.post("/integrations/acme/companies", data={}).status_code == 403  # no CSRF token
    with http_client(web) as viewer:
        csrf = http_sign_in(viewer, VIEWER_EMAIL, VIEWER_PASSWORD)
        assert 'data-action="add-company"' not in viewer.get("/integrations").text
        assert viewer.post("/integrations/acme/companies", data={"csrf_token": csrf}).status_code == 403
    assert web.runtime.tenants.children("acme") == []


def test_the_setting_accepts_one_or_several_and_names_itself_otherwise() -> None:
    env = {"QB_FERNET_KEY": "k", "QBO_CLIENT_ID": "c", "QBO_CLIENT_SECRET": "s"}
    assert AppSettings.from_env(env).companies_per_tenant == "one"
    assert AppSettings.from_env({**env, "QB_COMPANIES_PER_TENANT": "Several"}).several_companies
    with pytest.raises(SettingsError, match=r"QB_COMPANIES_PER_TENANT='many' is not valid: use one or several"):
        AppSettings.from_env({**env, "QB_COMPANIES_PER_TENANT": "many"})


def _invoke(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def _refresh_token(emulator: RunningEmulator, realm: str) -> str:
    code, out = _invoke({}, "emulator", "tokens", realm, "--url", emulator.url)
    assert code == 0, out
    return str(json.loads(out)["refresh_token"])


def test_cli_creates_and_connects_a_company_tenant_only_in_several_mode(
        emulator: RunningEmulator, tmp_path: Path) -> None:
    one = settings_env(emulator_settings(f"sqlite:///{tmp_path / 'one.sqlite'}", emulator))
    assert _invoke(one, "tenants", "create", "acme", "Acme")[0] == 0
    code, out = _invoke(one, "tenants", "create", "acme-2", "--parent", "acme")
    assert code == 1 and "QB_COMPANIES_PER_TENANT=several" in out and len(out.strip().splitlines()) == 1

    env = settings_env(emulator_settings(f"sqlite:///{tmp_path / 'several.sqlite'}", emulator,
                                         companies_per_tenant="several"))
    first, second = new_company(emulator, "First Co"), new_company(emulator, "Second Co")
    assert _invoke(env, "tenants", "create", "acme", "Acme")[0] == 0
    code, out = _invoke(env, "tenants", "create", "acme-2", "--parent", "acme")
    assert code == 0 and json.loads(out) == {"key": "acme-2", "name": "Acme (acme-2)", "parent": "acme"}
    code, out = _invoke(env, "tenants", "create", "other", "--parent", "nobody")
    assert code == 1 and "No tenant nobody" in out and "Traceback" not in out

    for tenant, realm in (("acme", first), ("acme-2", second)):
        code, out = _invoke(env, "connections", "add", tenant, "--realm", realm, "--refresh-token-file", "-",
                            stdin=_refresh_token(emulator, realm))
        assert code == 0, out
    # the same company again under the same tenant: refused in one line, nothing changes
    code, out = _invoke(env, "connections", "add", "acme-2", "--realm", first, "--refresh-token-file", "-",
                        stdin=_refresh_token(emulator, first))
    assert code == 1 and "First Co is already connected on the card Acme" in out
    assert len(out.strip().splitlines()) == 1
    with Runtime.from_env(env) as runtime:
        assert runtime.connections.get("acme").company_name == "First Co"
        assert runtime.connections.get("acme-2").company_name == "Second Co"
        assert runtime.connections.get("acme-2").parent_key == "acme"
