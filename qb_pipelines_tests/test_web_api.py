"""The records API over real HTTP: the web app served by uvicorn, the emulator as QuickBooks, a real store.

Every route and every error the app can meet: keys (missing, wrong, revoked, another tenant's),
the contract (422 naming the JSON path), malformed JSON, bodies too large, batches stored all or
nothing, idempotent enqueues, a record's status as it moves through a real push, the change feed
after a real landing, the public schema, and the per-key rate limit. After each refusal the
outbox is checked: nothing was stored.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import push
from qb_pipelines.web.api import MAX_BODY_BYTES, MAX_RECORDS
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import Connected, connect_company
from qb_pipelines_tests.web_fixtures import WebStack, start_web

CUSTOMER = {"display_name": "Ada Lovelace", "email": "ada@example.com", "phone": "555-1000",
            "address": {"line1": "1 Main St", "city": "Springfield", "region": "CA", "postal_code": "94000"}}


@pytest.fixture(scope="module")
def web(shared_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    stack = start_web(shared_emulator, tmp_path_factory.mktemp("api"))
    try:
        yield stack
    finally:
        stack.stop()


class App:
    """The app's side: a tenant connected to its own emulator company, and its API key."""

    def __init__(self, web: WebStack, company: Connected, key: str) -> None:
        self.web, self.company, self.key = web, company, key
        self.tenant = company.tenant
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def url(self, path: str) -> str:
        return f"{self.web.url}/api/v1/tenants/{self.tenant}{path}"

    def post(self, body: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url("/records"), json=body, timeout=30, **kwargs)

    def status(self, entity: str, app_id: str) -> requests.Response:
        return self.http.get(self.url(f"/records/{entity}/{app_id}"), timeout=30)

    def stored(self) -> dict[str, int]:
        return self.web.runtime.outbox.counts(self.tenant)


@pytest.fixture
def app(web: WebStack) -> App:
    company = connect_company(web.emulator, web.runtime)
    return App(web, company, web.runtime.api_keys.create(company.tenant, "test").key)


def record(app_id: str = "c-1", data: dict[str, Any] | None = None, *, entity: str = "Customer", version: int = 1,
           **extra: Any) -> dict[str, Any]:
    return {"entity": entity, "app_id": app_id, "version": version, "op": "upsert",
            "data": dict(CUSTOMER) if data is None else data, **extra}


# ---------------------------------------------------------------------------------- the schema


def test_the_schema_is_public_and_names_every_payload(web: WebStack) -> None:
    resp = requests.get(f"{web.url}/api/v1/schema", timeout=30)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body["entities"]) >= {"Customer", "Vendor", "Item", "Invoice", "Estimate", "Bill"}
    assert body["entities"]["Invoice"]["properties"]["lines"]["items"]["required"] == ["item_app_id", "qty",
                                                                                      "unit_price"]
    assert body["envelope"]["required"] == ["entity", "app_id", "version", "op"]
    assert "set-cookie" not in resp.headers  # outside the admin app's session machinery


# ---------------------------------------------------------------------------------- enqueue and status


def test_a_record_is_accepted_idempotently_and_its_status_follows_the_push(app: App) -> None:
    first = app.post(record())
    assert first.status_code == 202, first.text
    row = first.json()
    assert row == {"id": row["id"], "entity": "Customer", "app_id": "c-1", "version": 1, "op": "upsert",
                   "status": "pending", "detail_status": "pending", "duplicate": False, "ignored": False}
    assert first.headers["location"] == f"/api/v1/tenants/{app.tenant}/records/Customer/c-1"
    assert "set-cookie" not in first.headers

    again = app.post(record())
    assert again.status_code == 202 and again.json()["duplicate"] is True and again.json()["id"] == row["id"]
    newer = app.post(record(data={**CUSTOMER, "phone": "555-2000"}, version=3)).json()
    older = app.post(record(version=2)).json()
    assert older["ignored"] is True and older["version"] == 3 and older["id"] == newer["id"]

    before = app.status("Customer", "c-1").json()
    assert before["status"] == "pending" and before["version"] == 3 and before["qbo_id"] is None
    assert before["error"] is None and before["attempts"] == 0

    assert push(app.web.runtime, app.company.key).created == 1

    after = app.status("Customer", "c-1")
    assert after.status_code == 200
    body = after.json()
    qbo = app.company.read("Customer", body["qbo_id"])
    assert body["status"] == "synced" and body["sync_token"] == qbo["SyncToken"]
    assert qbo["PrimaryPhone"]["FreeFormNumber"] == "555-2000"
    assert set(body) == {"entity", "app_id", "version", "op", "status", "detail_status", "reason", "qbo_id",
                         "sync_token", "error", "attempts", "next_attempt_at", "updated_at"}
    assert datetime.fromisoformat(body["updated_at"]) <= datetime.now(UTC)

    # version 4 waits: its row has no QuickBooks id yet, the mapping has
    app.post(record(data={**CUSTOMER, "phone": "555-3000"}, version=4))
    waiting = app.status("Customer", "c-1").json()
    assert waiting["status"] == "pending" and waiting["version"] == 4
    assert (waiting["qbo_id"], waiting["sync_token"]) == (qbo["Id"], qbo["SyncToken"])


def test_a_refused_record_reports_quickbooks_code_message_and_next_step(app: App) -> None:
    bad = {"name": "Bad Account Item", "type": "service", "income_account_id": "987654"}
    assert app.post(record("i-bad", bad, entity="Item")).status_code == 202
    push(app.web.runtime, app.company.key)
    body = app.status("Item", "i-bad").json()
    assert body["status"] == "failed" and body["attempts"] == 1
    assert body["error"]["code"] == "2500" and body["error"]["message"]
    assert "Settings" in body["error"]["next_step"]


def test_a_batch_is_stored_all_or_nothing(app: App) -> None:
    item = {"name": "Lawn care", "type": "service", "unit_price": 45}
    invoice = {"customer_app_id": "c-1", "lines": [{"item_app_id": "svc", "qty": 2, "unit_price": 45}]}
    good = [record(), record("svc", item, entity="Item"), record("inv-1", invoice, entity="Invoice")]

    broken = [*good[:2], record("c-2", {"email": "x@y.co"}), good[2]]
    resp = app.post({"records": broken})
    assert resp.status_code == 422
    assert resp.json() == {"error": "'display_name' is a required property", "field": "records[2].data.display_name"}
    assert app.stored() == {}

    # refused while storing (the created_at has no time zone): the rows before it roll back too
    late = [*good, record("c-3", created_at="2026-01-01T10:00:00")]
    resp = app.post({"records": late})
    assert resp.status_code == 422 and resp.json()["field"] == "records[3].created_at"
    resp = app.post({"records": [*good, record("c-4", created_at="yesterday")]})
    assert resp.status_code == 422 and resp.json()["field"] == "records[3].created_at"
    assert app.stored() == {}

    resp = app.post({"records": [record(f"c-{i}", {"display_name": f"N {i}"}) for i in range(MAX_RECORDS + 1)]})
    assert resp.status_code == 422 and resp.json()["field"] == "records"
    assert app.post({"records": []}).json()["field"] == "records"
    assert app.post({"records": good, "extra": 1}).json()["field"] == "extra"
    assert app.stored() == {}

    resp = app.post({"records": good})
    assert resp.status_code == 202
    rows = resp.json()["records"]
    assert [(r["entity"], r["app_id"], r["status"]) for r in rows] == [
        ("Customer", "c-1", "pending"), ("Item", "svc", "pending"), ("Invoice", "inv-1", "pending")]
    assert app.stored() == {"pending": 3}
    assert push(app.web.runtime, app.company.key).created == 3
    assert app.status("Invoice", "inv-1").json()["status"] == "synced"


def test_the_contract_refuses_a_payload_naming_the_json_path_and_stores_nothing(app: App) -> None:
    lines = [{"item_app_id": "svc", "qty": -1, "unit_price": 10}]
    resp = app.post(record("inv-x", {"customer_app_id": "c-1", "lines": lines}, entity="Invoice"))
    assert resp.status_code == 422 and resp.json()["field"] == "data.lines[0].qty"
    resp = app.post(record(data={**CUSTOMER, "shoe_size": 42}))
    assert resp.status_code == 422 and resp.json()["field"] == "data.shoe_size"
    resp = app.post({"entity": "Spaceship", "app_id": "x", "version": 1, "op": "upsert", "data": {}})
    assert resp.status_code == 422 and resp.json()["field"] == "entity"
    resp = app.post({**record(), "op": "void"})
    assert resp.status_code == 422 and resp.json()["field"] == "op"
    assert app.stored() == {}


def test_malformed_or_oversized_bodies_are_refused_and_nothing_is_stored(app: App) -> None:
    post = app.http.post
    resp = post(app.url("/records"), data=b'{"entity": "Customer",', timeout=30,
                headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"].startswith("Malformed JSON")
    resp = post(app.url("/records"), data=b'{"entity": "Item", "app_id": "i", "version": 1, "op": "upsert", '
                                          b'"data": {"name": "N", "type": "service", "unit_price": NaN}}', timeout=30)
    assert resp.status_code == 400
    resp = post(app.url("/records"), data=b"\xff\xfe", timeout=30)
    assert resp.status_code == 400
    resp = post(app.url("/records"), data=b"[" + b" " * MAX_BODY_BYTES + b"]", timeout=60)
    assert resp.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    resp = post(app.url("/records"), data=chunks(), timeout=60)
    assert resp.status_code == 413
    assert app.stored() == {}


# ---------------------------------------------------------------------------------- keys


def test_keys_open_their_own_tenant_only_and_never_tell_other_tenants_apart(app: App, web: WebStack) -> None:
    url = app.url("/records")
    missing = requests.post(url, json=record(), timeout=30)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert requests.post(url, json=record(), headers={"Authorization": "Bearer qbk_wrong"},
                         timeout=30).status_code == 401
    assert requests.post(url, json=record(), headers={"Authorization": f"Basic {app.key}"},
                         timeout=30).status_code == 401
    via_header = requests.post(url, json=record(), headers={"X-API-Key": app.key}, timeout=30)
    assert via_header.status_code == 202

    other = connect_company(web.emulator, web.runtime)
    other_key = web.runtime.api_keys.create(other.tenant).key
    theirs = {"Authorization": f"Bearer {other_key}"}
    answers = [
        requests.post(url, json=record("c-9"), headers=theirs, timeout=30),
        requests.get(app.url("/records/Customer/c-1"), headers=theirs, timeout=30),
        requests.get(app.url("/changes"), headers=theirs, timeout=30),
        requests.post(f"{web.url}/api/v1/tenants/no-such-tenant/records", json=record(), headers=theirs, timeout=30),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert len({a.text for a in answers}) == 1  # another tenant and no tenant look the same
    assert app.stored() == {"pending": 1} and web.runtime.outbox.counts(other.tenant) == {}

    prefix = web.runtime.api_keys.list_for(app.tenant)[0].prefix
    assert web.runtime.api_keys.revoke(app.tenant, prefix) == 1
    assert app.status("Customer", "c-1").status_code == 401


def test_each_key_is_rate_limited(shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    stack = start_web(shared_emulator, tmp_path, api_rate_per_s=1)
    try:
        company = connect_company(shared_emulator, stack.runtime)
        key = stack.runtime.api_keys.create(company.tenant).key
        url = f"{stack.url}/api/v1/tenants/{company.tenant}/changes"
        codes = [requests.get(url, headers={"X-API-Key": key}, timeout=30) for _ in range(4)]
        assert [c.status_code for c in codes[:2]] == [200, 200]  # a burst of twice the rate
        limited = codes[-1]
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        other = stack.runtime.api_keys.create(company.tenant).key  # another key has its own budget
        assert requests.get(url, headers={"X-API-Key": other}, timeout=30).status_code == 200
    finally:
        stack.stop()


# ---------------------------------------------------------------------------------- reading


def test_unknown_records_entities_and_routes_answer_json_404_or_405(app: App) -> None:
    assert app.status("Customer", "never-sent").status_code == 404
    resp = app.status("Spaceship", "x")
    assert resp.status_code == 404 and "unknown entity" in resp.json()["error"]
    resp = app.http.get(app.url("/records"), timeout=30)
    assert resp.status_code == 405 and "error" in resp.json()
    resp = app.http.get(f"{app.web.url}/api/v2/whatever", timeout=30)
    assert resp.status_code == 404 and "error" in resp.json()


def test_an_app_id_with_slashes_and_spaces_round_trips(app: App) -> None:
    created = app.post(record("jobs/2026 #7", {"display_name": "Slash Job"}))
    assert created.status_code == 202
    assert app.http.get(f"{app.web.url}{created.headers['location']}", timeout=30).json()["app_id"] == "jobs/2026 #7"
    resp = app.status("Customer", requests.utils.quote("jobs/2026 #7", safe=""))
    assert resp.status_code == 200 and resp.json()["app_id"] == "jobs/2026 #7"


def test_the_change_feed_reads_after_a_cursor(app: App) -> None:
    c = app.company
    app.post(record())
    push(app.web.runtime, c.key)
    recorder = FeedRecorder(app.web.runtime, app.web.runtime.resolve(c.key))
    land(c.client(), app.web.runtime.warehouse, c.key, on_changes=recorder)  # the full load
    born = c.act("Customer", "create", {"DisplayName": f"Born In QuickBooks {secrets.token_hex(2)}"})
    mapped = app.web.runtime.mappings.get(app.tenant, c.realm, "Customer", "c-1")
    current = c.read("Customer", mapped.qbo_id)
    c.act("Customer", "update", {"Id": mapped.qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                 "PrimaryPhone": {"FreeFormNumber": "555-9999"}})
    land(c.client(), app.web.runtime.warehouse, c.key, on_changes=recorder)  # CDC

    resp = app.http.get(app.url("/changes"), params={"after": 0}, timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    by_qbo = {ch["qbo_id"]: ch for ch in body["changes"]}
    assert by_qbo[born["Id"]]["app_id"] is None and by_qbo[born["Id"]]["op"] == "upsert"
    assert by_qbo[mapped.qbo_id]["app_id"] == "c-1" and by_qbo[mapped.qbo_id]["data"]["phone"] == "555-9999"
    seqs = [ch["seq"] for ch in body["changes"]]
    assert seqs == sorted(seqs) and body["next"] == seqs[-1]
    assert set(body["changes"][0]) == {"seq", "entity", "op", "app_id", "qbo_id", "data", "at"}

    one = app.http.get(app.url("/changes"), params={"after": 0, "limit": 1}, timeout=30).json()
    assert [ch["seq"] for ch in one["changes"]] == seqs[:1] and one["next"] == seqs[0]
    rest = app.http.get(app.url("/changes"), params={"after": one["next"]}, timeout=30).json()
    assert [ch["seq"] for ch in rest["changes"]] == seqs[1:]
    caught_up = app.http.get(app.url("/changes"), params={"after": body["next"]}, timeout=30).json()
    assert caught_up == {"changes": [], "next": body["next"]}

    for bad in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "5000"}):
        resp = app.http.get(app.url("/changes"), params=bad, timeout=30)
        assert resp.status_code == 400 and resp.json()["field"] in bad


def test_records_created_before_the_first_connection_are_reported_held(web: WebStack) -> None:
    tenant = f"early{secrets.token_hex(3)}"
    web.runtime.tenants.ensure_tenant(tenant, "Early Bird")
    key = web.runtime.api_keys.create(tenant).key
    url = f"{web.url}/api/v1/tenants/{tenant}/records"
    resp = requests.post(url, json=record("old-1"), headers={"X-API-Key": key}, timeout=30)
    assert resp.status_code == 202 and resp.json()["status"] == "held"
    connect_company(web.emulator, web.runtime, tenant=tenant)
    backdated = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    resp = requests.post(url, json=record("old-2", created_at=backdated), headers={"X-API-Key": key}, timeout=30)
    assert resp.json()["status"] == "held"
    got = requests.get(f"{url}/Customer/old-1", headers={"X-API-Key": key}, timeout=30).json()
    assert got["status"] == "held" and "before QuickBooks was first connected" in got["reason"]


@pytest.mark.postgres
def test_the_records_api_on_postgresql(shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    with throwaway_database("postgresql", tmp_path, "qbp_api") as url:
        stack = start_web(shared_emulator, tmp_path, database_url=url)
        try:
            app = App(stack, connect_company(shared_emulator, stack.runtime), "")
            app.http.headers["Authorization"] = f"Bearer {stack.runtime.api_keys.create(app.tenant).key}"
            invoice = {"customer_app_id": "c-1", "lines": [{"item_app_id": "svc", "qty": 1, "unit_price": 10}]}
            good = [record(), record("svc", {"name": "Svc", "type": "service"}, entity="Item"),
                    record("inv", invoice, entity="Invoice")]
            assert app.post({"records": [*good, record("c-2", {})]}).status_code == 422
            assert app.stored() == {}
            assert app.post({"records": good}).status_code == 202
            assert app.post({"records": good}).json()["records"][0]["duplicate"] is True
            assert push(stack.runtime, app.company.key).created == 3
            assert app.status("Invoice", "inv").json()["status"] == "synced"
        finally:
            stack.stop()
            stack.runtime.close()
