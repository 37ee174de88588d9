"""Webhook delivery (reference §9): subscription, grouping, signing, formats, retries, imperfections.

A tiny HTTP receiver (``http.server`` in a thread) plays the app's webhook endpoint and records
every POST exactly as received. Changes come from the engine (a customer created over the v3
API, a merge) or are written into table ``changes`` directly when a test needs exact times or
several companies. ``POST /_emulator/webhooks/flush`` closes the open group and sends what is
pending, so grouping tests do not depend on timing; retry tests shrink the schedule with the
clock scale instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.webhooks import parse_notifications, verify
from qb_pipelines_tests.emulator_client import control
from qb_pipelines_tests.webhook_helpers import TOKEN, Receiver, flush, subscribe

TS = datetime(2024, 3, 5, 17, 30, 12, tzinfo=UTC).timestamp()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def delivered_log(base: str, attempts: int, timeout: float = 15.0) -> dict:
    """The delivery log once ``attempts`` attempts are logged and the last one was acknowledged."""
    deadline = time.monotonic() + timeout
    log: dict = {}
    while time.monotonic() < deadline:
        log = control(base, "GET", "webhooks/deliveries").json()
        entries = log["deliveries"]
        if len(entries) >= attempts and entries[-1]["ok"] and log["pending"] == 0:
            break
        time.sleep(0.01)
    return log


def add_change(emu: Emulator, realm: str, entity: str, entity_id: str, operation: str, ts: float = TS,
               deleted_id: str | None = None) -> None:
    """Write a change row as the engine does in its transaction."""
    with emu.db.tx() as c:
        c.execute("INSERT INTO changes(realm, entity, entity_id, operation, occurred_at, deleted_id)"
                  " VALUES (?, ?, ?, ?, ?, ?)", (realm, entity, entity_id, operation, ts, deleted_id))


def ids(body: bytes) -> list[str]:
    return [e.entity_id for e in parse_notifications(body)]


# --- delivery, signature, formats ---------------------------------------------------------


def test_a_created_customer_is_delivered_signed_as_a_cloudevent(emulator: RunningEmulator,
                                                                  receiver: Receiver) -> None:
    url = emulator.url
    realm = control(url, "POST", "companies", json={"name": "Webhook Landscaping"}).json()["realmId"]
    access = control(url, "POST", f"companies/{realm}/tokens").json()["access_token"]
    sub = subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=0.2)
    assert sub["format"] == "cloudevents" and sub["window_s"] == 0.2

    created = requests.post(f"{url}/v3/company/{realm}/customer", json={"DisplayName": "Hooked Customer"},
                            headers={"Authorization": f"Bearer {access}", "Accept": "application/json"})
    assert created.status_code == 200, created.text
    customer_id = created.json()["Customer"]["Id"]

    [(headers, body)] = receiver.wait_for(1)
    assert verify(body, headers["intuit-signature"], TOKEN)
    assert not verify(body, headers["intuit-signature"], "wrong-token")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "intuit_notification_server/0.1"
    assert headers["intuit-notification-schema-version"] == "0.1"
    assert headers["intuit-t-id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", headers["intuit-created-time"])

    [event] = json.loads(body)
    assert event["specversion"] == "1.0"
    assert event["type"] == "qbo.customer.created.v1"
    assert event["intuitaccountid"] == realm and event["intuitentityid"] == customer_id
    assert re.fullmatch(r"intuit\.[A-Za-z0-9+/]{43}=", event["source"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", event["time"])
    assert event["datacontenttype"] == "application/json" and event["data"] == {}
    assert event["id"].endswith(f"-Customer-{customer_id}")
    [parsed] = parse_notifications(body)
    assert (parsed.realm_id, parsed.entity, parsed.entity_id, parsed.operation) == (
        realm, "Customer", customer_id, "Create")
    assert parsed.event_id == event["id"]

    log = delivered_log(url, 1)
    assert log["pending"] == 0
    [entry] = log["deliveries"]
    assert entry["attempt"] == 1 and entry["status"] == 200 and entry["next_retry"] is None
    assert entry["signature"] == headers["intuit-signature"] and entry["payload"] == json.loads(body)


def test_legacy_format_groups_changes_into_one_delivery_per_window(emulator: RunningEmulator,
                                                                   receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    subscribe(url, url=receiver.url, verifier_token=TOKEN, format="legacy", window_s=3600)
    add_change(emu, "111", "Vendor", "40", "Update")
    add_change(emu, "222", "Invoice", "130", "Void", TS + 1)
    add_change(emu, "111", "Customer", "5", "Merge", TS + 2, deleted_id="7")
    add_change(emu, "111", "Customer", "43", "Create", TS + 3)
    assert flush(url) == {"attempted": 1, "delivered": 1, "pending": 0}

    [(headers, body)] = receiver.wait_for(1)
    assert verify(body, headers["intuit-signature"], TOKEN)
    assert json.loads(body) == {"eventNotifications": [
        {"realmId": "111", "dataChangeEvent": {"entities": [
            {"name": "Vendor", "id": "40", "operation": "Update", "lastUpdated": "2024-03-05T17:30:12.000Z"},
            {"name": "Customer", "id": "5", "operation": "Merge", "lastUpdated": "2024-03-05T17:30:14.000Z",
             "deletedId": "7"},
            {"name": "Customer", "id": "43", "operation": "Create", "lastUpdated": "2024-03-05T17:30:15.000Z"},
        ]}},
        {"realmId": "222", "dataChangeEvent": {"entities": [
            {"name": "Invoice", "id": "130", "operation": "Void", "lastUpdated": "2024-03-05T17:30:13.000Z"},
        ]}},
    ]}
    events = parse_notifications(body)
    assert [(e.realm_id, e.entity_id, e.operation, e.deleted_id) for e in events] == [
        ("111", "40", "Update", None), ("111", "5", "Merge", "7"), ("111", "43", "Create", None),
        ("222", "130", "Void", None)]


def test_cloudevents_verbs_and_merge_deletedid_from_the_engine(emulator: RunningEmulator,
                                                              receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    realm = emu.engine.create_company("Merge Co")
    keep = emu.engine.create(realm, "Customer", {"DisplayName": "Keeper"})["Id"]
    lose = emu.engine.create(realm, "Customer", {"DisplayName": "Loser"})["Id"]
    subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600)
    emu.engine.merge(realm, "Customer", lose, keep)
    add_change(emu, realm, "Invoice", "9", "Delete")
    add_change(emu, realm, "Payment", "10", "Void")
    add_change(emu, realm, "Invoice", "11", "Emailed")
    add_change(emu, realm, "Item", "12", "Update")
    flush(url)

    [(headers, body)] = receiver.wait_for(1)
    assert verify(body, headers["intuit-signature"], TOKEN)
    events = json.loads(body)
    merge = next(e for e in events if e["type"] == "qbo.customer.merged.v1")
    assert merge["intuitentityid"] == keep and merge["data"] == {"deletedid": lose}
    assert [e["type"] for e in events if e is not merge] == [
        "qbo.invoice.deleted.v1", "qbo.payment.voided.v1", "qbo.invoice.emailed.v1", "qbo.item.updated.v1"]
    assert len({e["id"] for e in events}) == len(events)
    parsed = {e.operation: e for e in parse_notifications(body)}
    assert parsed["Merge"].deleted_id == lose and parsed["Merge"].entity_id == keep
    assert set(parsed) == {"Merge", "Delete", "Void", "Emailed", "Update"}


def test_entity_filter(emulator: RunningEmulator, receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600, entities=["Invoice"])
    add_change(emu, "1", "Customer", "1", "Create")
    add_change(emu, "1", "Invoice", "2", "Create")
    flush(url)
    assert [ids(b) for b in receiver.bodies()] == [["2"]]


def test_a_bulk_change_is_split_into_bounded_deliveries(emulator: RunningEmulator, receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600)
    with emu.db.tx() as c:
        c.executemany(
            "INSERT INTO changes(realm, entity, entity_id, operation, occurred_at) VALUES ('1', 'Item', ?, 'Create', ?)",
            [(str(i), TS) for i in range(1, 1002)],
        )
    assert flush(url)["delivered"] == 2
    assert [len(ids(b)) for b in receiver.bodies()] == [1000, 1]


# --- retries and ordering -----------------------------------------------------------------


def test_a_failing_endpoint_is_retried_on_the_scaled_schedule(emulator: RunningEmulator) -> None:
    emu, url = emulator.emu, emulator.url
    receiver = Receiver(statuses=[500, 500, 200])
    try:
        emu.clock.set_scale(0.001)  # 10 s of retry delay pass in 10 ms
        subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=1)
        add_change(emu, "1", "Customer", "77", "Update")
        received = receiver.wait_for(3)
        log = delivered_log(url, 3)["deliveries"]
    finally:
        receiver.close()
    assert len(received) == 3
    assert len({body for _, body in received}) == 1  # the same bytes every attempt
    assert all(verify(body, headers["intuit-signature"], TOKEN) for headers, body in received)
    assert [(e["attempt"], e["status"], e["next_retry_in_s"]) for e in log] == [
        (1, 500, 0.0), (2, 500, 10.0), (3, 200, None)]
    assert len({e["id"] for e in log}) == 1


def test_later_deliveries_wait_for_the_failing_one(emulator: RunningEmulator) -> None:
    emu, url = emulator.emu, emulator.url
    receiver = Receiver(statuses=[500, 503])
    try:
        # an hour-long window and retry delay: only flush sends, so the order is exact
        subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600, retry_schedule_s=[3600])
        add_change(emu, "1", "Customer", "A", "Create")
        assert flush(url) == {"attempted": 1, "delivered": 0, "pending": 1}
        add_change(emu, "1", "Customer", "B", "Create", TS + 1)
        assert flush(url) == {"attempted": 1, "delivered": 0, "pending": 2}
        assert flush(url) == {"attempted": 2, "delivered": 2, "pending": 0}
        assert [ids(b) for b in receiver.bodies()] == [["A"], ["A"], ["A"], ["B"]]
    finally:
        receiver.close()


def test_a_slow_endpoint_times_out_and_is_retried(emulator: RunningEmulator) -> None:
    emu, url = emulator.emu, emulator.url
    receiver = Receiver(delays=[1.5])
    try:
        subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600, timeout_s=0.3,
                  retry_schedule_s=[3600])
        add_change(emu, "1", "Customer", "1", "Create")
        assert flush(url)["delivered"] == 0
        assert flush(url)["delivered"] == 1
        log = control(url, "GET", "webhooks/deliveries").json()["deliveries"]
    finally:
        receiver.close()
    assert [e["status"] for e in log] == [None, 200]
    assert "timed out" in log[0]["error"]


# --- imperfections ------------------------------------------------------------------------


def test_duplicates_when_configured(emulator: RunningEmulator, receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600, duplicate_probability=1.0)
    add_change(emu, "1", "Invoice", "5", "Update")
    flush(url)
    received = receiver.wait_for(2)
    assert len(received) == 2
    (h1, b1), (h2, b2) = received
    assert b1 == b2 and h1["intuit-signature"] == h2["intuit-signature"]
    assert parse_notifications(b1) == parse_notifications(b2)  # same event ids: a receiver can dedupe
    log = control(url, "GET", "webhooks/deliveries").json()["deliveries"]
    assert [e["duplicate"] for e in log] == [False, True]


def test_out_of_order_when_configured(emulator: RunningEmulator, receiver: Receiver) -> None:
    emu, url = emulator.emu, emulator.url
    subscribe(url, url=receiver.url, verifier_token=TOKEN, window_s=3600, out_of_order_probability=0.5, seed=3)
    for i in range(1, 11):
        add_change(emu, "1", "Customer", str(i), "Update", TS + i)
    flush(url)
    bodies = receiver.bodies()
    order = [int(i) for body in bodies for i in ids(body)]
    assert len(bodies) == 2
    assert sorted(order) == list(range(1, 11))  # nothing lost
    assert order != sorted(order)  # some changes arrive after later ones


# --- subscription lifecycle ---------------------------------------------------------------


def test_subscription_control_api(emulator: RunningEmulator, receiver: Receiver) -> None:
    url = emulator.url
    assert control(url, "GET", "webhooks").json() == {"subscriptions": []}
    for bad in ({"url": "ftp://x"}, {"url": receiver.url, "format": "xml"}, {"url": receiver.url, "colour": 1},
                {"url": receiver.url, "duplicate_probability": 2}):
        response = control(url, "POST", "webhooks", json=bad)
        assert response.status_code == 400 and response.json()["error"], bad
    sub = subscribe(url, url=receiver.url)
    assert sub["verifier_token"]  # generated, as the developer portal does
    assert sub["retry_schedule_s"] == [0, 10, 20, 30, 300, 1200, 7200, 14400, 21600]
    assert sub["retry_every_s"] == 21600 and sub["timeout_s"] == 3
    assert subscribe(url, format="legacy")["verifier_token"] == sub["verifier_token"]  # partial update
    [listed] = control(url, "GET", "webhooks").json()["subscriptions"]
    assert listed["format"] == "legacy" and listed["url"] == receiver.url

    assert control(url, "DELETE", "webhooks").json() == {"deleted": True}
    assert control(url, "DELETE", "webhooks").status_code == 404
    add_change(emulator.emu, "1", "Customer", "1", "Create")
    assert flush(url) == {"attempted": 0, "delivered": 0, "pending": 0}
    assert receiver.bodies() == []


def test_a_restart_neither_loses_nor_redelivers(tmp_path: Path, receiver: Receiver) -> None:
    path = str(tmp_path / "emulator.db")
    first = Emulator(EmulatorSettings(data_file=path))
    first.webhooks.subscribe({"url": receiver.url, "verifier_token": TOKEN, "window_s": 3600})
    add_change(first, "1", "Customer", "1", "Create")
    assert first.webhooks.flush()["delivered"] == 1
    add_change(first, "1", "Customer", "2", "Create")  # still in its grouping window at shutdown
    first.webhooks.tick()
    first.close()

    second = Emulator(EmulatorSettings(data_file=path))
    try:
        [sub] = second.webhooks.subscriptions()
        assert sub["url"] == receiver.url
        add_change(second, "1", "Customer", "3", "Create")
        assert second.webhooks.flush()["delivered"] == 1
    finally:
        second.close()
    assert [ids(b) for b in receiver.bodies()] == [["1"], ["2", "3"]]
