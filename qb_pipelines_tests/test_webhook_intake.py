"""``POST /webhooks/quickbooks`` on the real web app (uvicorn in a thread), on SQLite and PostgreSQL.

Intuit's own signed vector is accepted; forged, unsigned, malformed and oversized deliveries are
refused and store nothing; replays and repeated events are stored once; the emulator's real
deliveries (CloudEvents and legacy) land in the inbox in order; 50 concurrent 100-event deliveries
are all acknowledged (the latency is printed, not asserted: benchmarks measure, tests prove).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
import uvicorn

from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.qbo.webhooks import parse_notifications, sign
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.webhook_inbox import InboxEvent, WebhookInbox, delivery_sha
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web.app import create_app
from qb_pipelines.web.config import WebSettings
from qb_pipelines.web.webhooks import MAX_BODY_BYTES, NOT_CONFIGURED, WEBHOOK_PATH
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.emulator_client import control
from qb_pipelines_tests.samples import SAMPLES

LEGACY = json.loads((SAMPLES / "webhook_legacy_signed.json").read_text())
CLOUD = json.loads((SAMPLES / "webhook_cloudevents.json").read_text())
#: Intuit's documented vector was signed with this token; the app is configured with it.
TOKEN = LEGACY["verifier_token"]


@dataclass
class Server:
    """The admin web app served by uvicorn in a thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def hook(self) -> str:
        return self.url + WEBHOOK_PATH

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(settings: WebSettings, runtime: Runtime) -> Server:
    port = free_port()
    config = uvicorn.Config(create_app(settings, runtime), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"web-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the web app did not start on port {port}")
        time.sleep(0.02)
    return Server(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class Stack:
    emulator: RunningEmulator
    web: Server
    runtime: Runtime
    settings: WebSettings
    inbox: WebhookInbox

    def new_events(self, since: int) -> list[InboxEvent]:
        return self.inbox.drain(since, limit=100_000)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The emulator and the web app (verifier token set) on a fresh store of each dialect."""
    emulator = start_in_thread(Emulator(EmulatorSettings()))
    try:
        with throwaway_database(request.param, tmp_path_factory.mktemp(request.param), "qbp_wh") as url:
            settings = WebSettings(
                database_url=url,
                fernet_key=generate_key(),
                client_id=DEFAULT_CLIENT_ID,
                client_secret=DEFAULT_CLIENT_SECRET,
                redirect_uri="http://127.0.0.1:9/oauth/callback",
                environment_name="emulator",
                emulator_url=emulator.url,
                session_secret="s" * 48,
                webhook_verifier_token=TOKEN,
            )
            runtime = Runtime(settings.app_settings())
            web = serve(settings, runtime)
            try:
                yield Stack(emulator, web, runtime, settings, runtime.inbox)
            finally:
                web.stop()
                runtime.close()
    finally:
        emulator.stop()


def post(url: str, body: bytes, signature: str | None, **headers: str) -> requests.Response:
    sent = {"content-type": "application/json", **headers}
    if signature is not None:
        sent["intuit-signature"] = signature
    return requests.post(url, data=body, headers=sent, timeout=30)


def legacy_body(realm: str, entities: list[tuple[str, str, str]], at: str = "2026-01-05T10:00:00.000Z") -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": name, "id": eid, "operation": op, "lastUpdated": at} for name, eid, op in entities]}}]}).encode()


def cloud_body(realm: str, prefix: str, n: int) -> bytes:
    return json.dumps([
        {"specversion": "1.0", "id": f"{prefix}-{i}", "source": "intuit.test", "type": "qbo.invoice.updated.v1",
         "time": "2026-01-05T10:00:00.123456789Z", "intuitentityid": str(i), "intuitaccountid": realm, "data": {}}
        for i in range(n)
    ]).encode()


# ------------------------------------------------------------------------------------------------
# verification and shape
# ------------------------------------------------------------------------------------------------
def test_intuits_signed_legacy_vector_is_stored_and_a_replay_is_not(stack: Stack) -> None:
    body = LEGACY["raw_body"].encode()  # byte-exact: the signature covers these bytes
    before = stack.inbox.latest_seq()
    resp = post(stack.web.hook, body, LEGACY["intuit_signature_header"], **{"intuit-t-id": "t-1"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"stored": 2, "duplicates": 0}
    # Intuit is not a browser: no session cookie is handed out, no CSRF token was needed
    assert "set-cookie" not in resp.headers
    events = stack.new_events(before)
    assert [(e.realm_id, e.entity, e.entity_id, e.operation) for e in events] == [
        ("1269959970", "Vendor", "40", "Update"), ("1269959970", "Customer", "43", "Create")]
    assert {e.delivery_id for e in events} == {delivery_sha(body)}
    assert not any(e.realm_connected for e in events)  # no tenant has that company: stored, flagged

    replay = post(stack.web.hook, body, LEGACY["intuit_signature_header"])
    assert (replay.status_code, replay.json()) == (200, {"stored": 0, "duplicates": 2})
    assert stack.new_events(before) == events


def test_the_cloudevents_sample_is_stored(stack: Stack) -> None:
    body = CLOUD["raw_body"].encode()
    before = stack.inbox.latest_seq()
    resp = post(stack.web.hook, body, CLOUD["intuit_signature_header_computed"])
    assert (resp.status_code, resp.json()) == (200, {"stored": 1, "duplicates": 0})
    [stored] = stack.new_events(before)
    assert (stored.realm_id, stored.entity, stored.entity_id, stored.operation) == ("310687", "Class", "1234", "Create")
    assert stored.event_id == "d1a3aedd-9670-41bf-a4f9-c148a1cc4e03"
    assert stored.occurred_at == datetime(2025, 10, 7, 19, 59, 7, 34359, tzinfo=UTC)


@pytest.mark.parametrize("signature", [
    None,  # unsigned
    "",
    "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWN=",  # one character off
    sign(LEGACY["raw_body"].encode(), "another-apps-token"),  # signed with the wrong token
    "not base64 at all",
])
def test_a_forged_or_missing_signature_is_401_and_stores_nothing(stack: Stack, signature: str | None) -> None:
    body = legacy_body("555", [("Invoice", "1", "Create")])
    count = stack.inbox.count()
    resp = post(stack.web.hook, body, signature)
    assert resp.status_code == 401
    assert "intuit-signature" in resp.json()["error"]
    assert stack.inbox.count() == count


def test_a_signature_over_other_bytes_is_refused(stack: Stack) -> None:
    """Re-serialising the JSON (spaces, key order) changes the bytes: only the exact body verifies."""
    count = stack.inbox.count()
    reformatted = json.dumps(json.loads(LEGACY["raw_body"]), indent=1).encode()
    assert post(stack.web.hook, reformatted, LEGACY["intuit_signature_header"]).status_code == 401
    assert stack.inbox.count() == count


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not JSON"),
    (b'{"hello": "world"}', "neither a legacy"),
    (b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Invoice"}]}}]}',
     "operation"),
    (b'[{"id": "x", "type": "qbo.invoice.exploded.v1", "intuitaccountid": "1", "intuitentityid": "2", '
     b'"time": "2026-01-01T00:00:00Z"}]', "unknown verb"),
    (b'[{"id": "x", "type": "qbo.invoice.created.v1", "intuitaccountid": "1", "intuitentityid": "2", '
     b'"time": "last tuesday"}]', "ISO 8601"),
    (b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Invoice", "id": "2", '
     b'"operation": "Create", "lastUpdated": "2026-01-01T00:00:00Z"}, "oops"]}}]}', "must be an object"),
])
def test_a_signed_but_malformed_body_is_400_and_stores_nothing(stack: Stack, body: bytes, reason: str) -> None:
    count = stack.inbox.count()
    resp = post(stack.web.hook, body, sign(body, TOKEN))
    assert resp.status_code == 400
    assert reason in resp.json()["error"]
    assert resp.json()["error"].startswith("Malformed webhook body")
    assert stack.inbox.count() == count


def test_the_same_event_twice_in_one_delivery_is_stored_once(stack: Stack) -> None:
    body = legacy_body("777", [("Invoice", "9", "Update"), ("Invoice", "9", "Update"), ("Invoice", "10", "Void")])
    before = stack.inbox.latest_seq()
    resp = post(stack.web.hook, body, sign(body, TOKEN))
    assert resp.json() == {"stored": 2, "duplicates": 1}
    assert [(e.entity_id, e.operation) for e in stack.new_events(before)] == [("9", "Update"), ("10", "Void")]
    # the same changes re-sent inside another delivery (other bytes) are duplicates too
    again = legacy_body("777", [("Invoice", "10", "Void"), ("Invoice", "11", "Create")])
    assert post(stack.web.hook, again, sign(again, TOKEN)).json() == {"stored": 1, "duplicates": 1}


def test_an_empty_cloudevents_array_is_acknowledged(stack: Stack) -> None:
    resp = post(stack.web.hook, b"[]", sign(b"[]", TOKEN))
    assert (resp.status_code, resp.json()) == (200, {"stored": 0, "duplicates": 0})


def test_an_oversized_body_is_413_and_stores_nothing(stack: Stack) -> None:
    count = stack.inbox.count()
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    resp = post(stack.web.hook, body, sign(body, TOKEN))
    assert resp.status_code == 413
    assert stack.inbox.count() == count


def test_only_post_is_served(stack: Stack) -> None:
    resp = requests.get(stack.web.hook, timeout=30)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    # the admin pages are still behind sign-in: the intake only owns its own path
    assert requests.get(stack.web.url + "/integrations", allow_redirects=False, timeout=30).status_code == 303


def test_without_a_verifier_token_the_route_answers_503_and_stores_nothing(stack: Stack) -> None:
    settings = WebSettings(**{**stack.settings.__dict__, "webhook_verifier_token": None})
    web = serve(settings, stack.runtime)
    try:
        count = stack.inbox.count()
        body = LEGACY["raw_body"].encode()
        resp = post(web.hook, body, LEGACY["intuit_signature_header"])
        assert resp.status_code == 503
        assert resp.json()["error"] == NOT_CONFIGURED
        assert "QBO_WEBHOOK_VERIFIER_TOKEN" in NOT_CONFIGURED
        assert stack.inbox.count() == count
    finally:
        web.stop()


# ------------------------------------------------------------------------------------------------
# end to end with the emulator's real deliveries
# ------------------------------------------------------------------------------------------------
def _act(emu_url: str, realm: str, **body: object) -> dict:
    resp = control(emu_url, "POST", f"companies/{realm}/act", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_end_to_end_the_emulators_deliveries_land_in_order(stack: Stack) -> None:
    emu = stack.emulator.url
    realm = str(control(emu, "POST", "companies", json={"name": "Webhook Co"}, timeout=30).json()["realmId"])
    # a tenant connected to that company: its events are flagged as routable
    now = datetime.now(UTC)
    stack.runtime.tenants.ensure_tenant("hooked", "Hooked Ltd")
    stack.runtime.connections.save_tokens_on_connect(
        "hooked", "emulator", realm, "Webhook Co", "demo@example.com", "Demo", "User",
        TokenSet("access", "refresh", now + timedelta(hours=1), now + timedelta(days=100)),
    )
    # both formats at once (two Intuit apps); an hour-long window: only flush sends, so the order is exact
    for app, fmt in (("ce", "cloudevents"), ("legacy", "legacy")):
        resp = control(emu, "POST", "webhooks", json={
            "app": app, "url": stack.web.hook, "verifier_token": TOKEN, "format": fmt,
            "window_s": 3600, "realms": [realm]}, timeout=30)
        assert resp.status_code == 200, resp.text
    before = stack.inbox.latest_seq()
    try:
        a = _act(emu, realm, entity="Customer", operation="create", body={"DisplayName": "Ada"})["Customer"]["Id"]
        b = _act(emu, realm, entity="Customer", operation="create", body={"DisplayName": "Bob"})["Customer"]["Id"]
        c = _act(emu, realm, entity="Customer", operation="create", body={"DisplayName": "Cyd"})["Customer"]["Id"]
        _act(emu, realm, entity="Customer", operation="update", body={"Id": a, "CompanyName": "Ada & Co"})
        _act(emu, realm, entity="Customer", operation="merge", from_id=c, into_id=b)
        flushed = control(emu, "POST", "webhooks/flush", timeout=60).json()
        assert flushed["pending"] == 0 and flushed["delivered"] >= 2, flushed
        log = control(emu, "GET", "webhooks/deliveries", timeout=30).json()["deliveries"]
        ours = [d for d in log if d["url"] == stack.web.hook]
        assert ours and all(d["ok"] and d["status"] == 200 for d in ours)
    finally:
        for app in ("ce", "legacy"):
            control(emu, "DELETE", "webhooks", params={"app": app}, timeout=30)

    landed = stack.new_events(before)
    # what the emulator sent, in order per subscription, is what the inbox holds, in order
    for app in ("ce", "legacy"):
        sent = [(e.entity, e.entity_id, e.operation, e.deleted_id)
                for d in ours if d["app"] == app for e in parse_notifications(d["body"].encode())]
        got = [(e.entity, e.entity_id, e.operation, e.deleted_id)
               for e in landed if (e.event_id is not None) == (app == "ce")]
        assert got == sent, app
        assert ("Customer", a, "Create", None) in got
        assert got.index(("Customer", a, "Create", None)) < got.index(("Customer", a, "Update", None))
        assert any(op == "Merge" and deleted == c for _, _, op, deleted in got)
    assert all(e.realm_id == realm and e.realm_connected for e in landed)

    # the same deliveries again (Intuit retried them): nothing new
    for d in ours:
        body = d["body"].encode()
        resp = post(stack.web.hook, body, d["signature"])
        assert resp.json() == {"stored": 0, "duplicates": len(parse_notifications(body))}
    assert stack.new_events(before) == landed


# ------------------------------------------------------------------------------------------------
# under load
# ------------------------------------------------------------------------------------------------
def test_fifty_concurrent_deliveries_of_100_events_are_all_acknowledged(
    stack: Stack, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    deliveries, per_delivery = 50, 100
    dialect = request.node.callspec.params["stack"]
    run = f"load-{dialect}-{time.monotonic_ns()}"
    bodies = [cloud_body("888", f"{run}-{d}", per_delivery) for d in range(deliveries)]
    before = stack.inbox.latest_seq()
    start = threading.Barrier(deliveries)

    def deliver(body: bytes) -> tuple[int, dict, float]:
        with requests.Session() as session:
            start.wait()
            t0 = time.perf_counter()
            resp = session.post(stack.web.hook, data=body, timeout=60,
                                headers={"intuit-signature": sign(body, TOKEN), "content-type": "application/json"})
            return resp.status_code, resp.json(), time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=deliveries) as pool:
        results = list(pool.map(deliver, bodies))
    wall = time.perf_counter() - t0
    assert [status for status, _, _ in results] == [200] * deliveries
    assert sum(r["stored"] for _, r, _ in results) == deliveries * per_delivery
    landed = stack.new_events(before)
    assert len(landed) == deliveries * per_delivery
    # each delivery's events stay together and in payload order (one transaction, seq order)
    by_delivery: dict[str, list[int]] = {}
    for e in landed:
        by_delivery.setdefault(e.event_id.rsplit("-", 1)[0], []).append(int(e.entity_id))
    assert all(ids == list(range(per_delivery)) for ids in by_delivery.values())
    latencies = sorted(lat for _, _, lat in results)
    with capsys.disabled():
        print(f"\n[webhook intake, {dialect}] {deliveries} concurrent deliveries x {per_delivery} events: "
              f"max {latencies[-1] * 1000:.0f} ms, p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
              f"all answered in {wall:.2f} s")

