"""Fieldwise, the reference app, in the loop: its forms -> the records API -> QuickBooks -> the feed -> its pages.

The reference app runs as it does for a user (uvicorn, its own SQLite file, only HTTP to the
integration); the integration is the real admin web app and records API over a real store, the
emulator is QuickBooks over HTTP, and pushes and landings are the functions the Dagster push and
landing runs call (:func:`push`, :func:`land` with the :class:`FeedRecorder`). Chromium fills the
forms. Waits are bounded polling, never timed assertions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, expect

from qb_pipelines.cli import cli
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.reference_app import Config, create_app
from qb_pipelines.reference_app.feed import verified
from qb_pipelines.sync.app_reconcile import reconcile_app
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.feed_delivery import deliver, sign
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import push
from qb_pipelines_tests.harness import Connected, connect_company
from qb_pipelines_tests.web_fixtures import ADMIN_EMAIL, ADMIN_PASSWORD, WebStack, start_web


@pytest.fixture(scope="module")
def web(shared_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    stack = start_web(shared_emulator, tmp_path_factory.mktemp("refapp-web"))
    try:
        yield stack
    finally:
        stack.stop()


@dataclass
class Fieldwise:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def get(self, path: str) -> str:
        resp = requests.get(self.url + path, timeout=30)
        resp.raise_for_status()
        return resp.text

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def serve_fieldwise(config: Config) -> Fieldwise:
    """Fieldwise on a free port, as ``qb-pipelines reference-app serve`` runs it (lifespan: its feed worker)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, name=f"fieldwise-{port}", daemon=True)
    thread.start()
    app = Fieldwise(f"http://127.0.0.1:{port}", server, thread)
    wait_for(lambda: _healthy(app.url), "Fieldwise to answer /healthz")
    return app


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).text == "ok"
    except requests.ConnectionError:
        return False


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (bounded: fails naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def land_with_feed(c: Connected) -> None:
    """One landing of the company with the feed recorder, as the Dagster landing run does."""
    land(c.client(max_retries=1), c.runtime.warehouse, c.key, on_changes=FeedRecorder(c.runtime, c.runtime.resolve(c.key)))


@pytest.fixture
def shop(web: WebStack, tmp_path: Path) -> Iterator[tuple[Connected, Fieldwise, str]]:
    """A tenant connected under manual review, its API key, and Fieldwise polling its feed."""
    company = connect_company(web.emulator, web.runtime, name="Keller Plumbing", conflict_policy="manual_review")
    key = web.runtime.api_keys.create(company.tenant, "fieldwise").key
    app = serve_fieldwise(Config(str(tmp_path / "fieldwise.sqlite"), web.url, key, company.tenant, poll_seconds=0.2))
    try:
        yield company, app, key
    finally:
        app.stop()


def _app_id(page: Page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.browser
def test_in_chromium_the_loop_push_payment_back_phone_back_and_a_reviewed_conflict_reconciled(
        web: WebStack, shop: tuple[Connected, Fieldwise, str], chromium: Browser) -> None:
    company, app, _key = shop
    rt = company.runtime
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    page: Page = context.new_page()
    try:
        # -- the app creates a service, a customer and an invoice through its forms ---------------
        page.goto(f"{app.url}/items")
        page.fill("#name", "Drain cleaning")
        page.fill("#unit_price", "120")
        page.click("#create")
        page.goto(f"{app.url}/customers")
        page.fill("#display_name", "Ada Lovelace")
        page.fill("#email", "ada@example.com")
        page.fill("#phone", "555-1000")
        page.click("#create")
        customer_id = _app_id(page)
        expect(page.locator("#sync-status")).to_have_text("pending")
        page.goto(f"{app.url}/invoices")
        page.select_option("#customer_id", label="Ada Lovelace")
        page.fill("#number", "FW-1")
        page.select_option("#item_1", label="Drain cleaning")
        page.fill("#qty_1", "2")
        page.click("#create")
        invoice_id = _app_id(page)
        expect(page.locator("#doc-total")).to_have_text("240.00")

        # -- the push run: in QuickBooks with the tenant's defaults; the page says synced -----------
        assert push(rt, company.key).created == 3
        page.reload()
        expect(page.locator("#sync-status")).to_have_text("synced")
        invoice_qbo_id = page.locator("#qbo-id").inner_text()
        settings = rt.tenant_settings.get(company.tenant).values
        invoice = company.read("Invoice", invoice_qbo_id)
        assert invoice["DocNumber"] == "FW-1" and float(invoice["TotalAmt"]) >= 240
        assert invoice["TxnTaxDetail"]["TxnTaxCodeRef"]["value"] == settings.default_tax_code_id
        item = company.read("Item", invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"])
        assert item["Name"] == "Drain cleaning"
        assert item["IncomeAccountRef"]["value"] == settings.default_income_account_id
        customer_qbo_id = invoice["CustomerRef"]["value"]
        assert company.read("Customer", customer_qbo_id)["DisplayName"] == "Ada Lovelace"
        land_with_feed(company)  # the integration's own writes land: nothing comes back to the app
        assert rt.feed.read(company.tenant)[0] == []

        # -- paid in QuickBooks: the app shows it paid ------------------------------------------------
        total = float(invoice["TotalAmt"])
        company.act("Payment", "create", {"CustomerRef": {"value": customer_qbo_id}, "TotalAmt": total,
                                          "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": invoice_qbo_id,
                                                                                     "TxnType": "Invoice"}]}]})
        land_with_feed(company)
        # the Invoice entry (status, balance) and the Payment entry may reach the app in two polls
        wait_for(lambda: 'id=doc-status class="paid"' in (html := app.get(f"/invoices/{invoice_id}"))
                 and "<ul id=payments>" in html, "the invoice paid and its payment listed")
        page.goto(f"{app.url}/invoices/{invoice_id}")
        expect(page.locator("#doc-status")).to_have_text("paid")
        expect(page.locator("#doc-balance")).to_have_text("0.00")
        expect(page.locator("#payments li")).to_contain_text(f"{total:,.2f}")

        # -- the phone changed in QuickBooks, a customer born there: the app follows and links ------
        current = company.read("Customer", customer_qbo_id)
        company.act("Customer", "update", {"Id": customer_qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                           "PrimaryPhone": {"FreeFormNumber": "555-7777"}})
        born = company.act("Customer", "create", {"DisplayName": "Grace Hopper"})
        land_with_feed(company)
        wait_for(lambda: "555-7777" in app.get(f"/customers/{customer_id}"), "the new phone in the app")
        page.goto(f"{app.url}/customers/{customer_id}")
        expect(page.locator("#customer-phone")).to_have_text("555-7777")
        born_id = str(born.get("Id") or born.get("Customer", {}).get("Id"))
        wait_for(lambda: rt.outbox.record(company.tenant, "Customer", f"qbo-{born_id}"),
                 "the app linking the customer born in QuickBooks (an upsert with qbo_id)")
        result = push(rt, company.key)
        assert result.created == 0  # a link writes nothing to QuickBooks
        assert rt.mappings.get(company.tenant, company.realm, "Customer", f"qbo-{born_id}").qbo_id == born_id
        assert rt.outbox.record(company.tenant, "Customer", f"qbo-{born_id}").api_status == "synced"

        # -- the e-mail changed on both sides under manual review: the admin decides -----------------
        page.fill("#email", "ada@fieldwise.example")
        page.click("#save")
        current = company.read("Customer", customer_qbo_id)
        company.act("Customer", "update", {"Id": customer_qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                           "PrimaryEmailAddr": {"Address": "ada@quickbooks.example"}})
        land_with_feed(company)
        push(rt, company.key)
        assert rt.outbox.record(company.tenant, "Customer", customer_id).status == "review"
        page.reload()
        expect(page.locator("#sync-status")).to_have_text("review")

        admin = context.new_page()
        admin.goto(f"{web.url}/integrations")
        admin.fill("#email", ADMIN_EMAIL)
        admin.fill("#password", ADMIN_PASSWORD)
        admin.click("#sign-in")
        admin.goto(f"{web.url}/integrations/{company.tenant}/sync")
        review = admin.locator(f"article.review[data-app-id='{customer_id}']")
        expect(review.locator("tr[data-field=email]")).to_contain_text("ada@fieldwise.example")
        expect(review.locator("tr[data-field=email] .qbo")).to_contain_text("ada@quickbooks.example")
        review.locator("button[data-action=keep-qbo]").click()
        expect(admin.locator("#no-review")).to_be_visible()
        push(rt, company.key)
        wait_for(lambda: "ada@quickbooks.example" in app.get(f"/customers/{customer_id}"),
                 "QuickBooks' e-mail adopted by the app")
        page.reload()
        expect(page.locator("#customer-email")).to_have_text("ada@quickbooks.example")
        expect(page.locator("#customer-phone")).to_have_text("555-7777")
        assert company.read("Customer", customer_qbo_id)["PrimaryEmailAddr"]["Address"] == "ada@quickbooks.example"

        # -- both sides agree: the app reconciliation finds nothing ----------------------------------
        land_with_feed(company)
        agreement = reconcile_app(rt, company.key)
        assert agreement.findings == [] and agreement.passed, agreement.description()
        assert agreement.compared >= 3
    finally:
        context.close()


def test_the_signed_callback_brings_the_change_and_a_bad_signature_is_refused(
        web: WebStack, tmp_path: Path) -> None:
    company = connect_company(web.emulator, web.runtime, name="Callback Co", conflict_policy="qbo_wins")
    rt = company.runtime
    key = rt.api_keys.create(company.tenant, "fieldwise").key
    secret = "s3cret-for-the-callback-0123456789"
    app = serve_fieldwise(Config(str(tmp_path / "fw.sqlite"), web.url, key, company.tenant, poll_seconds=0,
                                 callback_secret=secret))
    try:
        resp = requests.post(f"{app.url}/customers", data={"display_name": "Alan Turing", "phone": "555-0001"},
                             timeout=30, allow_redirects=False)
        customer_id = resp.headers["location"].rsplit("/", 1)[-1]
        assert push(rt, company.key).created == 1
        land_with_feed(company)
        rt.feed.set_callback(company.tenant, f"{app.url}/hooks/quickbooks", secret)
        qbo_id = rt.outbox.record(company.tenant, "Customer", customer_id).qbo_id
        current = company.read("Customer", qbo_id)
        company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                           "PrimaryPhone": {"FreeFormNumber": "555-4242"}})
        land_with_feed(company)
        result = deliver(rt, company.tenant)
        assert result.error is None and result.delivered == 1
        assert "555-4242" in app.get(f"/customers/{customer_id}")

        body = b'{"tenant": "x", "changes": [], "next": 0}'
        assert requests.post(f"{app.url}/hooks/quickbooks", data=body, timeout=30,
                             headers={"X-QBP-Signature": sign(body, "another-secret-0123456789")}).status_code == 401
        assert verified(body, sign(body, secret), secret) and not verified(body, None, secret)
        # the same batch again (a lost 2xx): applied once
        again = {"tenant": company.tenant, "changes": [c.as_json() for c in rt.feed.read(company.tenant)[0]]}
        raw = requests.models.complexjson.dumps(again).encode()
        resp = requests.post(f"{app.url}/hooks/quickbooks", data=raw, headers={"X-QBP-Signature": sign(raw, secret)},
                             timeout=30)
        assert resp.status_code == 200 and resp.json() == {"applied": 0}
    finally:
        app.stop()


def test_serve_without_its_settings_says_what_to_set_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["reference-app", "serve", "--database", str(tmp_path / "x.sqlite")], env={
        "REFAPP_API_URL": "", "REFAPP_API_KEY": "", "REFAPP_TENANT": "", "REFAPP_DATABASE": ""})
    assert result.exit_code != 0
    assert "set REFAPP_API_URL, REFAPP_API_KEY, REFAPP_TENANT" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_record_the_api_refuses_does_not_stop_the_app_hearing_the_feed(web: WebStack, tmp_path: Path) -> None:
    company = connect_company(web.emulator, web.runtime, name="Refusal Co", conflict_policy="qbo_wins")
    rt = company.runtime
    key = rt.api_keys.create(company.tenant, "fieldwise").key
    app = serve_fieldwise(Config(str(tmp_path / "fw.sqlite"), web.url, key, company.tenant, poll_seconds=0.2))
    try:
        # a name with ":" breaks the contract (422): kept in the app, shown as not sent, never blocking
        bad = requests.post(f"{app.url}/customers", data={"display_name": "Smith: kitchen"}, timeout=30,
                            allow_redirects=False).headers["location"]
        good = requests.post(f"{app.url}/customers", data={"display_name": "Smith Kitchens", "phone": "555-0002"},
                             timeout=30, allow_redirects=False).headers["location"].rsplit("/", 1)[-1]
        assert push(rt, company.key).created == 1
        qbo_id = rt.outbox.record(company.tenant, "Customer", good).qbo_id
        current = company.read("Customer", qbo_id)
        company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                           "PrimaryPhone": {"FreeFormNumber": "555-3030"}})
        land_with_feed(company)
        wait_for(lambda: "555-3030" in app.get(f"/customers/{good}"), "the new phone despite the refused record")
        assert "not sent yet" in app.get(bad)
    finally:
        app.stop()
