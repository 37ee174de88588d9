"""The sync-errors dashboard: what admins see of the push and what they do about it.

Over real HTTP (the web app served by uvicorn, the emulator as QuickBooks, real push runs between
the steps): the card's counts, sync errors with QuickBooks' code and the next step, Retry and
Retry all, conflicts resolved with the app's values, QuickBooks' values or per field, ambiguous
matches linked or created, held records pushed per entity or per record, viewers who see and
cannot act, forged posts. Then the whole loop once in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines_tests.harness import Connected, connect_company
from qb_pipelines_tests.web_fixtures import (  # noqa: F401 - the *_fixture functions are fixtures
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    WebStack,
    http_client,
    http_sign_in,
    web_fixture,
)

CUSTOMER = {"display_name": "Ada Lovelace", "email": "ada@example.com", "phone": "555-1000"}
TAKEN = "Taken By A Vendor"


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, *, version: int = 1,
         **extra: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=version, data=data, **extra)


def row(c: Connected, entity: str, app_id: str) -> Any:
    found = c.runtime.outbox.record(c.tenant, entity, app_id)
    assert found is not None
    return found


def text(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def section(page_html: str, element_id: str) -> str:
    start = page_html.index(f'id="{element_id}"')
    return page_html[start:page_html.index("</section>", start)]


@pytest.fixture
def acme(web: WebStack) -> Connected:
    return connect_company(web.emulator, web.runtime, tenant="acme", name="Keller Plumbing",
                           conflict_policy="manual_review")


@pytest.fixture
def admin(web: WebStack) -> Iterator[tuple[httpx.Client, str]]:
    with http_client(web) as client:
        yield client, http_sign_in(client)


def failing_customer(c: Connected, app_id: str = "c-bad") -> None:
    """A customer QuickBooks refuses (6240: a vendor has its name), and an invoice waiting on it."""
    c.act("Vendor", "create", {"DisplayName": TAKEN})
    send(c, "Customer", app_id, {"display_name": TAKEN})


def conflict(c: Connected, app_id: str = "c1") -> str:
    """A customer whose e-mail and phone changed both in the app and in QuickBooks (manual review)."""
    send(c, "Customer", app_id, dict(CUSTOMER))
    push(c.runtime, c.key)
    qbo_id = row(c, "Customer", app_id).qbo_id
    current = c.read("Customer", qbo_id)
    c.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                 "PrimaryEmailAddr": {"Address": "qbo@example.com"},
                                 "PrimaryPhone": {"FreeFormNumber": "555-0000"}})
    send(c, "Customer", app_id, {**CUSTOMER, "email": "app@example.com", "phone": "555-2222"}, version=2)
    push(c.runtime, c.key)
    assert row(c, "Customer", app_id).status == "review"
    return qbo_id


# ---------------------------------------------------------------------------------- seeing


def test_the_card_counts_and_the_dashboard_shows_each_error_with_its_reason(web: WebStack, acme: Connected,
                                                                            admin: tuple[httpx.Client, str]) -> None:
    client, _ = admin
    failing_customer(acme)
    send(acme, "Item", "svc", {"name": "Drain cleaning", "type": "service", "unit_price": 120})
    send(acme, "Invoice", "inv-1", {"customer_app_id": "c-bad", "lines": [{"item_app_id": "svc", "qty": 1,
                                                                         "unit_price": 120}]})
    conflict(acme)
    send(acme, "Customer", "old-1", {"display_name": "Old Customer"},
         created_at=(datetime.now(UTC) - timedelta(days=400)).isoformat())

    card = client.get("/integrations").text.split('id="card-acme"', 1)[1].split("</article>", 1)[0]
    assert "2 sync errors · 1 to review · 1 held" in text(card)
    assert 'href="/integrations/acme/sync"' in card
    assert "Nothing pushed yet" not in card  # the item and the customer went

    page = client.get("/integrations/acme/sync")
    assert page.status_code == 200
    errors = section(page.text, "errors")
    bad = text(errors.split('id="error-', 1)[1].split("</tr>", 1)[0])
    assert "Customer Taken By A Vendor" in bad and "c-bad" in bad and "6240" in bad and "Failed" in bad
    assert "rename" in bad and "1" in bad
    blocked = text(errors.split('data-app-id="inv-1"', 1)[1].split("</tr>", 1)[0])
    assert "customer c-bad" in blocked and "failed" in blocked and "Waiting" in blocked
    assert errors.count('data-action="retry"') == 2 and 'id="retry-all"' in errors
    review = section(page.text, "review")
    assert "Email" in text(review) and "ada@example.com" in review and "app@example.com" in review
    assert "qbo@example.com" in review and "555-0000" in review and "555-2222" in review
    held = section(page.text, "held")
    assert "Old Customer" in held and 'data-action="release-entity"' in held
    assert client.get("/integrations/nobody/sync").status_code == 404


def test_a_transient_failure_shows_its_next_retry(web: WebStack, acme: Connected,
                                                  admin: tuple[httpx.Client, str]) -> None:
    client, _ = admin
    send(acme, "Customer", "c-slow", {"display_name": "Slow Co"})
    with acme.control as control:
        control.set_faults({"next": {"fault": "500", "count": 50, "scope": {"realms": [acme.realm]}}})
    push(acme.runtime, acme.key, client=acme.client(max_retries=0))
    with acme.control as control:
        control.set_faults({"clear": True})
    slow = row(acme, "Customer", "c-slow")
    assert slow.status == "retrying"
    line = text(client.get("/integrations/acme/sync").text.split(f'id="error-{slow.id}"', 1)[1].split("</tr>", 1)[0])
    assert "Retrying automatically" in line and slow.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S UTC") in line


# ---------------------------------------------------------------------------------- retrying


def test_retry_one_then_retry_all(web: WebStack, acme: Connected, admin: tuple[httpx.Client, str]) -> None:
    client, csrf = admin
    failing_customer(acme)
    send(acme, "Item", "i-bad", {"name": "Bad Account", "type": "service", "income_account_id": "987654"})
    send(acme, "Item", "i-bad-2", {"name": "Bad Account 2", "type": "service", "income_account_id": "987654"})
    push(acme.runtime, acme.key)
    bad = row(acme, "Customer", "c-bad")
    assert bad.status == "failed"

    # the bookkeeper renames the vendor in QuickBooks, then the admin retries the customer
    vendor = acme.query("Vendor", f"DisplayName = '{TAKEN}'")[0]
    acme.act("Vendor", "update", {"Id": vendor["Id"], "SyncToken": vendor["SyncToken"], "sparse": True,
                                  "DisplayName": "Taken (vendor)"})
    resp = client.post("/integrations/acme/sync/retry", data={"csrf_token": csrf, "row_id": str(bad.id)})
    assert resp.status_code == 303 and resp.headers["location"] == "/integrations/acme/sync#errors"
    assert row(acme, "Customer", "c-bad").status == "pending"
    assert row(acme, "Item", "i-bad").status == "failed"  # only the one retried
    assert "will be sent again at the next push" in client.get("/integrations/acme/sync").text
    push(acme.runtime, acme.key)
    assert row(acme, "Customer", "c-bad").status == "synced"

    resp = client.post("/integrations/acme/sync/retry-all", data={"csrf_token": csrf})
    assert resp.status_code == 303
    assert {row(acme, "Item", a).status for a in ("i-bad", "i-bad-2")} == {"pending"}
    assert "2 records will be sent again" in client.get("/integrations/acme/sync").text

    # another tenant's row cannot be reached through acme's page
    other = connect_company(web.emulator, web.runtime, tenant="globex")
    send(other, "Item", "x", {"name": "Other", "type": "service", "income_account_id": "987654"})
    push(other.runtime, other.key)
    theirs = row(other, "Item", "x")
    assert client.post("/integrations/acme/sync/retry",
                       data={"csrf_token": csrf, "row_id": str(theirs.id)}).status_code == 404
    assert row(other, "Item", "x").status == "failed"


# ---------------------------------------------------------------------------------- reviewing


@pytest.mark.parametrize(("choice", "picks", "email", "phone"), [
    ("app", {}, "app@example.com", "555-2222"),
    ("qbo", {}, "qbo@example.com", "555-0000"),
    ("fields", {"pick.email": "app", "pick.phone": "qbo"}, "app@example.com", "555-0000"),
])
def test_a_conflict_is_resolved_with_either_side_or_field_by_field(
        web: WebStack, acme: Connected, admin: tuple[httpx.Client, str], choice: str, picks: dict[str, str],
        email: str, phone: str) -> None:
    client, csrf = admin
    qbo_id = conflict(acme)
    waiting = row(acme, "Customer", "c1")
    seq = web.runtime.feed.latest_seq("acme")
    resp = client.post(f"/integrations/acme/sync/review/{waiting.id}",
                       data={"csrf_token": csrf, "choice": choice, **picks})
    assert resp.status_code == 303
    assert row(acme, "Customer", "c1").status == "pending"

    push(acme.runtime, acme.key)

    after = acme.read("Customer", qbo_id)
    assert (after["PrimaryEmailAddr"]["Address"], after["PrimaryPhone"]["FreeFormNumber"]) == (email, phone)
    assert row(acme, "Customer", "c1").status == "synced"
    mapping = web.runtime.mappings.get("acme", acme.realm, "Customer", "c1")
    assert mapping.sync_token == after["SyncToken"]
    assert (mapping.agreed["app"]["email"], mapping.agreed["app"]["phone"]) == (email, phone)
    told, _ = web.runtime.feed.read("acme", seq)  # the app hears the values it has to adopt
    assert [(c.app_id, c.data.get("email"), c.data.get("phone")) for c in told] == [("c1", email, phone)]
    # a later change in the app goes as usual: no second review
    send(acme, "Customer", "c1", {**CUSTOMER, "email": email, "phone": phone, "notes": "gate code 42"}, version=3)
    push(acme.runtime, acme.key)
    assert row(acme, "Customer", "c1").status == "synced" and acme.read("Customer", qbo_id)["Notes"] == "gate code 42"


def test_a_conflict_found_while_landing_is_resolved_like_one_found_while_pushing(
        web: WebStack, acme: Connected, admin: tuple[httpx.Client, str]) -> None:
    """QuickBooks changed the e-mail while the app's new e-mail waited: the landing puts it to review."""
    client, csrf = admin
    send(acme, "Customer", "c1", dict(CUSTOMER))
    push(acme.runtime, acme.key)
    recorder = FeedRecorder(web.runtime, web.runtime.resolve(acme.key))
    land(acme.client(), web.runtime.warehouse, acme.key, on_changes=recorder)
    send(acme, "Customer", "c1", {**CUSTOMER, "email": "app@example.com"}, version=2)  # waits for a push
    qbo_id = row(acme, "Customer", "c1").qbo_id or web.runtime.mappings.get("acme", acme.realm, "Customer", "c1").qbo_id
    current = acme.read("Customer", qbo_id)
    acme.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                    "PrimaryEmailAddr": {"Address": "qbo@example.com"}})
    land(acme.client(), web.runtime.warehouse, acme.key, on_changes=recorder)
    waiting = row(acme, "Customer", "c1")
    assert waiting.status == "review"
    assert 'data-field="email"' in section(client.get("/integrations/acme/sync").text, "review")

    client.post(f"/integrations/acme/sync/review/{waiting.id}", data={"csrf_token": csrf, "choice": "app"})
    push(acme.runtime, acme.key)

    assert acme.read("Customer", qbo_id)["PrimaryEmailAddr"]["Address"] == "app@example.com"
    assert row(acme, "Customer", "c1").status == "synced"


def test_a_field_without_a_pick_resolves_nothing(web: WebStack, acme: Connected,
                                                 admin: tuple[httpx.Client, str]) -> None:
    client, csrf = admin
    conflict(acme)
    waiting = row(acme, "Customer", "c1")
    resp = client.post(f"/integrations/acme/sync/review/{waiting.id}",
                       data={"csrf_token": csrf, "choice": "fields", "pick.email": "app"})
    assert resp.status_code == 303
    assert row(acme, "Customer", "c1").status == "review"
    page = client.get("/integrations/acme/sync").text
    assert "Nothing was resolved" in page and "Phone" in text(page.split('id="banner"', 1)[1].split("</div>", 1)[0])


def test_an_ambiguous_match_is_linked_to_the_chosen_candidate_or_created(web: WebStack, acme: Connected,
                                                                         admin: tuple[httpx.Client, str]) -> None:
    client, csrf = admin
    twin_a = acme.act("Customer", "create", {"DisplayName": "Twin A", "PrimaryEmailAddr": {"Address": "twin@y.co"}})
    twin_b = acme.act("Customer", "create", {"DisplayName": "Twin B", "PrimaryEmailAddr": {"Address": "twin@y.co"}})
    send(acme, "Customer", "c-link", {"display_name": "Twin Link", "email": "twin@y.co"})
    send(acme, "Customer", "c-new", {"display_name": "Twin New", "email": "twin@y.co"})
    push(acme.runtime, acme.key)
    link, new = row(acme, "Customer", "c-link"), row(acme, "Customer", "c-new")
    assert (link.status, new.status) == ("review", "review")

    review = section(client.get("/integrations/acme/sync").text, "review")
    assert f'data-qbo-id="{twin_a["Id"]}"' in review and f'data-qbo-id="{twin_b["Id"]}"' in review
    assert review.count('data-action="create-new"') == 2

    assert client.post(f"/integrations/acme/sync/match/{link.id}",
                       data={"csrf_token": csrf, "qbo_id": "999999"}).status_code == 400
    assert client.post(f"/integrations/acme/sync/match/{link.id}",
                       data={"csrf_token": csrf, "qbo_id": twin_b["Id"]}).status_code == 303
    assert client.post(f"/integrations/acme/sync/match/{new.id}",
                       data={"csrf_token": csrf, "create": "1"}).status_code == 303
    push(acme.runtime, acme.key)

    linked = row(acme, "Customer", "c-link")
    assert linked.status == "synced" and linked.qbo_id == twin_b["Id"]
    assert web.runtime.mappings.get("acme", acme.realm, "Customer", "c-link").qbo_id == twin_b["Id"]
    assert acme.read("Customer", twin_b["Id"])["DisplayName"] == "Twin B"  # linked: nothing written
    created = row(acme, "Customer", "c-new")
    assert created.status == "synced" and created.qbo_id not in (twin_a["Id"], twin_b["Id"])
    assert acme.read("Customer", created.qbo_id)["DisplayName"] == "Twin New"
    assert len(acme.query("Customer", "DisplayName LIKE 'Twin%'")) == 3


# ---------------------------------------------------------------------------------- held records


def test_held_records_are_pushed_per_entity_or_per_record(web: WebStack, admin: tuple[httpx.Client, str]) -> None:
    client, csrf = admin
    web.runtime.tenants.ensure_tenant("acme", "Acme")
    with web.runtime.engine.begin() as conn:
        for app_id in ("old-1", "old-2"):
            enqueue(conn, "acme", entity="Customer", app_id=app_id, version=1, data={"display_name": f"Old {app_id}"})
        enqueue(conn, "acme", entity="Item", app_id="old-item", version=1,
                data={"name": "Old Item", "type": "service", "unit_price": 5})
        enqueue(conn, "acme", entity="Item", app_id="old-item-2", version=1,
                data={"name": "Old Item 2", "type": "service", "unit_price": 5})
    acme = connect_company(web.emulator, web.runtime, tenant="acme")
    push(acme.runtime, acme.key)
    assert web.runtime.outbox.counts("acme") == {"held": 4}

    held = section(client.get("/integrations/acme/sync").text, "held")
    assert 'id="held-Customer"' in held and 'id="held-Item"' in held
    assert client.post("/integrations/acme/sync/release",
                       data={"csrf_token": csrf, "entity": "Customer"}).status_code == 303
    item = row(acme, "Item", "old-item")
    assert client.post("/integrations/acme/sync/release",
                       data={"csrf_token": csrf, "row_id": str(item.id)}).status_code == 303
    push(acme.runtime, acme.key)

    assert {a: row(acme, e, a).status for e, a in (("Customer", "old-1"), ("Customer", "old-2"),
                                                   ("Item", "old-item"), ("Item", "old-item-2"))} == {
        "old-1": "synced", "old-2": "synced", "old-item": "synced", "old-item-2": "held"}
    assert len(acme.query("Customer", "DisplayName LIKE 'Old %'")) == 2


# ---------------------------------------------------------------------------------- who may act


def test_a_viewer_sees_everything_and_can_change_nothing(web: WebStack, acme: Connected) -> None:
    failing_customer(acme)
    push(acme.runtime, acme.key)
    bad = row(acme, "Customer", "c-bad")
    with http_client(web) as viewer:
        csrf = http_sign_in(viewer, VIEWER_EMAIL, VIEWER_PASSWORD)
        page = viewer.get("/integrations/acme/sync").text
        assert "6240" in page and 'id="viewonly"' in page
        assert "data-action" not in page and 'id="retry-all"' not in page
        for path, data in (("/integrations/acme/sync/retry", {"row_id": str(bad.id)}),
                           ("/integrations/acme/sync/retry-all", {}),
                           ("/integrations/acme/sync/release", {"entity": "Customer"}),
                           (f"/integrations/acme/sync/review/{bad.id}", {"choice": "app"}),
                           (f"/integrations/acme/sync/match/{bad.id}", {"create": "1"})):
            assert viewer.post(path, data={"csrf_token": csrf, **data}).status_code == 403
    with http_client(web) as forger:
        http_sign_in(forger)
        assert forger.post("/integrations/acme/sync/retry-all", data={"row_id": str(bad.id)}).status_code == 403
        assert forger.post("/integrations/acme/sync/retry-all",
                           data={"csrf_token": "not-the-token"}).status_code == 403
    with http_client(web) as anonymous:
        assert anonymous.get("/integrations/acme/sync").status_code == 303
    assert row(acme, "Customer", "c-bad").status == "failed"


# ---------------------------------------------------------------------------------- in Chromium


@pytest.mark.browser
def test_in_chromium_an_admin_retries_an_error_resolves_a_conflict_field_by_field_and_releases_a_held_record(
        web: WebStack, chromium: Browser) -> None:
    web.runtime.tenants.ensure_tenant("acme", "Acme Field Services")
    with web.runtime.engine.begin() as conn:
        enqueue(conn, "acme", entity="Customer", app_id="old-1", version=1, data={"display_name": "Early Customer"})
    acme = connect_company(web.emulator, web.runtime, tenant="acme", name="Keller Plumbing",
                           conflict_policy="manual_review")
    failing_customer(acme)
    qbo_id = conflict(acme)  # pushes too: the failing customer fails, the held one stays

    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    page: Page = context.new_page()
    try:
        page.goto(f"{web.url}/integrations")
        page.fill("#email", ADMIN_EMAIL)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#sign-in")
        card = page.locator("#card-acme")
        expect(card.locator(".sync-link")).to_have_text("1 sync error · 1 to review · 1 held")
        card.locator(".sync-link").click()
        expect(page).to_have_url(f"{web.url}/integrations/acme/sync")
        expect(page.locator("#page-title")).to_have_text("Sync errors")

        # the error, with QuickBooks' code and what to do; fixed in QuickBooks, then retried
        error = page.locator("#errors tr[data-app-id='c-bad']")
        expect(error.locator(".code")).to_have_text("6240")
        expect(error.locator(".next-step")).to_contain_text("rename")
        vendor = acme.query("Vendor", f"DisplayName = '{TAKEN}'")[0]
        acme.act("Vendor", "update", {"Id": vendor["Id"], "SyncToken": vendor["SyncToken"], "sparse": True,
                                      "DisplayName": "Taken (vendor)"})
        error.locator("button[data-action=retry]").click()
        expect(page.locator(".toast")).to_contain_text("will be sent again at the next push")
        push(acme.runtime, acme.key)
        page.reload()
        expect(page.locator("#no-errors")).to_be_visible()
        expect(page.locator("#count-errors")).to_have_text("0")

        # the conflict: the app's e-mail, QuickBooks' phone
        review = page.locator("article.review[data-app-id='c1']")
        expect(review.locator("tr[data-field=email] .agreed")).to_have_text("ada@example.com")
        expect(review.locator("tr[data-field=email] .qbo")).to_contain_text("qbo@example.com")
        review.locator("tr[data-field=email] input[value=app]").check()
        review.locator("tr[data-field=phone] input[value=qbo]").check()
        review.locator("button[data-action=keep-picked]").click()
        expect(page.locator(".toast")).to_contain_text("resolved with the values you chose")
        expect(page.locator("#no-review")).to_be_visible()
        push(acme.runtime, acme.key)
        after = acme.read("Customer", qbo_id)
        assert after["PrimaryEmailAddr"]["Address"] == "app@example.com"
        assert after["PrimaryPhone"]["FreeFormNumber"] == "555-0000"

        # the held record: pushed too
        held = page.locator("#held tr[data-app-id='old-1']")
        expect(held.locator(".label")).to_have_text("Customer Early Customer")
        held.locator("button[data-action=release]").click()
        expect(page.locator(".toast")).to_contain_text("will be pushed too")
        expect(page.locator("#no-held")).to_be_visible()
        push(acme.runtime, acme.key)
        assert len(acme.query("Customer", "DisplayName = 'Early Customer'")) == 1

        page.goto(f"{web.url}/integrations")
        expect(card.locator(".sync-link")).to_have_text("0 sync errors")
        expect(card.locator(".last-push")).not_to_have_text("Nothing pushed yet")
    finally:
        context.close()
    assert {row(acme, "Customer", a).status for a in ("c-bad", "c1", "old-1")} == {"synced"}
