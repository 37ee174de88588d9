"""The admin pages when QuickBooks misbehaves, and the words that name the right button.

QuickBooks answering 500 (the emulator's fault injection) must not hide Settings: the stored
values show, the live lists are marked unavailable, and a save goes through only if it keeps
the stored income account and tax code. A configured tenant's Setup Wizard is its Settings.
A cancelled switch or reconnect names the button the admin actually has.
"""

from __future__ import annotations

import re

import httpx
import requests

from qb_pipelines.store.connections import ConnectionState
from qb_pipelines_tests.web_fixtures import (  # noqa: F401 - web_fixture provides `web`
    WebStack,
    consent_over_http,
    http_client,
    http_connect,
    http_sign_in,
    web_fixture,
)

UNAVAILABLE = 'id="lists-unavailable"'


def _form(csrf: str, account: str, tax_code: str = "", **overrides: str) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": csrf,
        "entity": ["Customer", "Item", "Invoice", "Payment"],
        "direction_Customer": "both",
        "direction_Item": "app_to_qbo",
        "direction_Invoice": "app_to_qbo",
        "conflict_policy": "qbo_wins",
        "default_income_account_id": account,
        "default_tax_code_id": tax_code,
        "mode": "test",
    }
    data.update(overrides)
    return data


def _options(page: str, select_id: str) -> list[str]:
    block = page.split(f'id="{select_id}"', 1)[1].split("</select>", 1)[0]
    return [v for v in re.findall(r'<option value="([^"]*)"', block) if v]


def _faults(web: WebStack, body: dict[str, object]) -> None:
    requests.post(f"{web.emulator.url}/_emulator/faults", json=body, timeout=10).raise_for_status()


def _quickbooks_down(web: WebStack, realm: str) -> None:
    _faults(web, {"rates": {"500": 1.0}, "scope": {"realms": [realm]}})


def _connected(web: WebStack, client: httpx.Client, csrf: str) -> str:
    web.add_tenant("acme", "Acme Field Services")
    realm = web.create_company("Keller Plumbing")
    assert http_connect(client, csrf, "acme", realm).headers["location"] == "/integrations/acme/setup"
    return realm


def _configured(web: WebStack, client: httpx.Client, csrf: str) -> tuple[str, str, str]:
    realm = _connected(web, client, csrf)
    page = client.get("/integrations/acme/setup").text
    account, tax_code = _options(page, "default_income_account_id")[0], _options(page, "default_tax_code_id")[0]
    resp = client.post("/integrations/acme/setup", data=_form(csrf, account, tax_code))
    assert resp.status_code == 303, resp.text
    return realm, account, tax_code


def test_settings_show_the_stored_values_while_quickbooks_answers_500(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        realm, account, tax_code = _configured(web, client, csrf)
        stored = web.runtime.tenant_settings.get("acme").values
        _quickbooks_down(web, realm)
        try:
            page = client.get("/integrations/acme/settings")
            assert page.status_code == 200, page.headers.get("location")
            assert UNAVAILABLE in page.text
            assert "could not be reached" in page.text
            assert _options(page.text, "default_income_account_id") == [account]
            assert f'<option value="{account}" selected>{stored.default_income_account_name}</option>' in page.text
            assert _options(page.text, "default_tax_code_id") == [tax_code]
            assert 'id="conflict-qbo_wins" checked' in page.text
            assert web.view("acme").state == ConnectionState.CONNECTED  # a blip does not paint the card red

            # another setting changes while the stored account and tax code stay: saved
            resp = client.post("/integrations/acme/settings", data=_form(csrf, account, tax_code,
                                                                         conflict_policy="app_wins"))
            assert resp.status_code == 303 and resp.headers["location"] == "/integrations/acme/settings"
            assert web.runtime.tenant_settings.get("acme").values.conflict_policy == "app_wins"
            assert web.runtime.tenant_settings.get("acme").values.default_income_account_id == account

            # another account cannot be checked against QuickBooks: refused, nothing saved
            before = web.runtime.tenant_settings.get("acme").values
            resp = client.post("/integrations/acme/settings", data=_form(csrf, "9999", tax_code,
                                                                         conflict_policy="manual_review"))
            assert resp.status_code == 400
            assert "Nothing was saved." in resp.text
            assert "QuickBooks Online could not be reached to check this income account" in resp.text
            assert web.runtime.tenant_settings.get("acme").values == before
        finally:
            _faults(web, {"clear": True})
        page = client.get("/integrations/acme/settings").text
        assert UNAVAILABLE not in page and len(_options(page, "default_income_account_id")) >= 1


def test_the_setup_wizard_cannot_be_finished_while_quickbooks_answers_500(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        realm = _connected(web, client, csrf)
        _quickbooks_down(web, realm)
        try:
            page = client.get("/integrations/acme/setup")
            assert page.status_code == 200
            assert UNAVAILABLE in page.text and "QuickBooks Online Setup Wizard" in page.text
            assert _options(page.text, "default_income_account_id") == []
            resp = client.post("/integrations/acme/setup", data=_form(csrf, "1"))
            assert resp.status_code == 400
            assert "QuickBooks Online could not be reached to check this income account" in resp.text
            assert web.runtime.tenant_settings.get("acme").configured is False
        finally:
            _faults(web, {"clear": True})


def test_an_expired_session_still_goes_back_to_the_card(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        realm, _, _ = _configured(web, client, csrf)
        web.expire_all(realm)
        resp = client.get("/integrations/acme/settings")
        assert resp.status_code == 303 and resp.headers["location"] == "/integrations"
        assert web.view("acme").state == ConnectionState.SESSION_EXPIRED


def test_the_setup_wizard_of_a_configured_tenant_is_its_settings(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        _configured(web, client, csrf)
        resp = client.get("/integrations/acme/setup")
        assert resp.status_code == 303 and resp.headers["location"] == "/integrations/acme/settings"
        page = client.get("/integrations/acme/settings").text
        assert "Complete the wizard before syncing" not in page
        assert "QuickBooks Online Settings" in page


def test_a_cancelled_switch_names_the_switch_button_not_connect(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        _configured(web, client, csrf)
        amy = web.create_company("Amy's Bird Sanctuary")
        resp = http_connect(client, csrf, "acme", amy, action="switch", cancel=True)
        assert resp.status_code == 303
        page = client.get(resp.headers["location"]).text
        banner = page.split('id="banner"', 1)[1].split("</div>", 1)[0]
        assert "Connection Failed" in banner
        assert "Switch QuickBooks Account" in banner and "click Connect" not in banner
        assert "Your current connection is unchanged" in banner
        card = client.get("/integrations").text.split('id="card-acme"', 1)[1].split("</article>", 1)[0]
        assert 'data-action="connect"' not in card  # indeed: there is no Connect button to click
        assert web.view("acme").company_name == "Keller Plumbing"


def test_a_cancelled_reconnect_names_the_reconnect_button(web: WebStack) -> None:
    with http_client(web) as client:
        csrf = http_sign_in(client)
        realm, _, _ = _configured(web, client, csrf)
        web.expire_all(realm)
        client.get("/integrations/acme/settings")  # the live call finds the session expired
        assert web.view("acme").state == ConnectionState.SESSION_EXPIRED
        resp = client.post("/integrations/acme/connect", data={"csrf_token": csrf, "action": "reconnect"})
        callback = consent_over_http(resp.headers["location"], realm, cancel=True)
        resp = client.get("/oauth/callback?" + callback.split("?", 1)[1])
        page = client.get(resp.headers["location"]).text
        banner = page.split('id="banner"', 1)[1].split("</div>", 1)[0]
        assert "click Reconnect" in banner and "click Connect" not in banner
