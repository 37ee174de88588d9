"""Signed callbacks: the change feed POSTed to a real local HTTP receiver.

The receiver is a real HTTP server on a free port that records every request and answers what the
test tells it to (200, 500, a redirect, silence). Checked: each body's signature with the tenant's
secret (as the README tells the app to check it), order and batching, the cursor kept on a failure
and the same entries sent again later with backoff, the cursor surviving a restart of the runtime,
redirects, timeouts, stored errors without secrets, several tenants, two deliverers at once, and
once end to end from a change made in QuickBooks (the emulator) through a real landing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.sync import feed_delivery
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.feed_delivery import LEASE, deliver, deliver_due
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import connect_company, emulator_settings
from qb_pipelines_tests.receiver import Receiver

SECRET = "s3cret-callback-key-0123456789"


def verify_like_the_readme(body: bytes, header: str, secret: str) -> bool:
    """What the README tells the app to do with X-QBP-Signature."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def settings_for(path: Path, key: str) -> AppSettings:
    return AppSettings(database_url=f"sqlite:///{path}", fernet_key=key, client_id="app", client_secret="secret")


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(settings_for(tmp_path / "store.sqlite", generate_key())) as rt:
        rt.tenants.ensure_tenant("acme", "Acme")
        yield rt


def append(rt: Runtime, n: int, tenant: str = "acme", start: int = 0) -> None:
    rt.feed.append(tenant, "9130", [NewEntry("Customer", "upsert", str(100 + i), {"display_name": f"C {i}"},
                                             app_id=f"c{i}", sync_token="0") for i in range(start, start + n)])


NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------- delivering


def test_entries_arrive_signed_in_order_and_in_batches(runtime: Runtime, receiver: Receiver) -> None:
    runtime.feed.set_callback("acme", f"{receiver.url}/hooks/qbo", SECRET, from_now=False)
    append(runtime, 5)

    result = deliver(runtime, "acme", now=NOW, batch=2)

    assert (result.delivered, result.posts, result.error) == (5, 3, None)
    assert [r.seqs for r in receiver.received] == [[1, 2], [3, 4], [5]]
    for got in receiver.received:
        assert got.path == "/hooks/qbo" and got.headers["content-type"] == "application/json"
        assert verify_like_the_readme(got.body, got.headers["x-qbp-signature"], SECRET)
        assert not verify_like_the_readme(got.body, got.headers["x-qbp-signature"], SECRET + "x")
        assert got.headers["x-qbp-delivery"] == f"{got.seqs[0]}-{got.seqs[-1]}"
        assert got.headers["x-qbp-timestamp"] == str(int(NOW.timestamp()))
        assert got.json["tenant"] == "acme" and got.json["next"] == got.seqs[-1]
    assert receiver.received[0].json["changes"][0] == {"seq": 1, "entity": "Customer", "op": "upsert", "app_id": "c0",
                                                       "qbo_id": "100", "data": {"display_name": "C 0"}, "at": None}
    assert runtime.feed.callback("acme").cursor == 5 == result.cursor

    again = deliver(runtime, "acme", now=NOW)
    assert (again.posts, again.skipped) == (0, "nothing new")
    append(runtime, 1, start=5)
    assert deliver(runtime, "acme", now=NOW).delivered == 1 and receiver.received[-1].seqs == [6]


def test_a_new_callback_starts_from_now_unless_asked_for_the_whole_feed(runtime: Runtime, receiver: Receiver) -> None:
    append(runtime, 3)
    runtime.feed.set_callback("acme", receiver.url, SECRET)
    append(runtime, 1, start=3)
    deliver(runtime, "acme", now=NOW)
    assert [r.seqs for r in receiver.received] == [[4]]


def test_a_failure_keeps_the_cursor_and_the_same_entries_go_again_later(runtime: Runtime,
                                                                        receiver: Receiver) -> None:
    runtime.feed.set_callback("acme", receiver.url, SECRET, from_now=False)
    append(runtime, 3)
    receiver.answers[:] = [500, 503]
    receiver.reply_body = "database down"

    first = deliver(runtime, "acme", now=NOW, batch=2)
    assert first.failed and first.delivered == 0 and first.cursor == 0
    assert "HTTP 500" in first.error and "database down" in first.error
    assert NOW + timedelta(seconds=5) <= first.next_attempt_at <= NOW + timedelta(seconds=10)
    stored = runtime.feed.callback("acme")
    assert (stored.cursor, stored.attempts, stored.last_error) == (0, 1, first.error)

    not_yet = deliver(runtime, "acme", now=NOW + timedelta(seconds=1))
    assert (not_yet.posts, not_yet.skipped) == (0, "not due (retrying later)")
    assert len(deliver_due(runtime, now=NOW + timedelta(seconds=1))) == 0

    second = deliver(runtime, "acme", now=first.next_attempt_at, batch=2)
    assert second.failed and "HTTP 503" in second.error
    gap = second.next_attempt_at - first.next_attempt_at
    assert timedelta(seconds=10) <= gap <= timedelta(seconds=20)  # doubled

    third = deliver(runtime, "acme", now=second.next_attempt_at, batch=2)
    assert (third.delivered, third.error) == (3, None)
    assert [r.headers["x-qbp-delivery"] for r in receiver.received] == ["1-2", "1-2", "1-2", "3-3"]
    stored = runtime.feed.callback("acme")
    assert (stored.cursor, stored.attempts, stored.last_error) == (3, 0, None)


def test_the_backoff_is_capped_and_jittered() -> None:
    import random

    rng = random.Random(7)
    waits = [feed_delivery.backoff(n, rng).total_seconds() for n in range(1, 20)]
    assert all(w <= feed_delivery.BACKOFF_CAP_S for w in waits) and waits[-1] >= feed_delivery.BACKOFF_CAP_S / 2
    assert len({round(w, 3) for w in waits[-5:]}) == 5  # jitter: apps failing together come back apart


def test_the_cursor_survives_a_restart_of_the_runtime(tmp_path: Path, receiver: Receiver) -> None:
    key, db = generate_key(), tmp_path / "store.sqlite"
    with Runtime(settings_for(db, key)) as first:
        first.tenants.ensure_tenant("acme", "Acme")
        first.feed.set_callback("acme", receiver.url, SECRET, from_now=False)
        append(first, 5)
        assert deliver(first, "acme", now=NOW, batch=2, max_batches=1).cursor == 2
    with Runtime(settings_for(db, key)) as second:  # another process, later
        result = deliver(second, "acme", now=NOW, batch=2)
        assert result.delivered == 3 and result.cursor == 5
    assert [r.seqs for r in receiver.received] == [[1, 2], [3, 4], [5]]
    assert all(verify_like_the_readme(r.body, r.headers["x-qbp-signature"], SECRET) for r in receiver.received)


# ---------------------------------------------------------------------------------- what is not followed


def test_redirects_are_followed_only_to_the_same_host_and_only_when_they_keep_the_post(runtime: Runtime,
                                                                                       receiver: Receiver) -> None:
    elsewhere = Receiver(host="localhost")
    try:
        runtime.feed.set_callback("acme", f"{receiver.url}/old", SECRET, from_now=False)
        append(runtime, 1)
        receiver.answers[:] = [(307, f"{elsewhere.url}/steal")]
        result = deliver(runtime, "acme", now=NOW)
        assert result.failed and "another host" in result.error and elsewhere.received == []

        receiver.answers[:] = [(302, "/new")]
        result = deliver(runtime, "acme", now=result.next_attempt_at)
        assert result.failed and "302" in result.error and "final address" in result.error

        receiver.answers[:] = [(308, "/new")]
        result = deliver(runtime, "acme", now=result.next_attempt_at)
        assert result.delivered == 1 and [r.path for r in receiver.received][-2:] == ["/old", "/new"]
        assert verify_like_the_readme(receiver.received[-1].body, receiver.received[-1].headers["x-qbp-signature"],
                                      SECRET)
    finally:
        elsewhere.stop()


def test_a_silent_app_times_out_and_stored_errors_hold_no_secret(runtime: Runtime, receiver: Receiver,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    port = receiver.server.server_address[1]
    runtime.feed.set_callback("acme", f"http://hook:hunter2@127.0.0.1:{port}/in?token=tok-abc&x=1", SECRET,
                              from_now=False)
    append(runtime, 1)
    receiver.answers[:] = [500]
    receiver.reply_body = f"bad signature, expected key {SECRET} token=tok-abc"
    failed = deliver(runtime, "acme", now=NOW)
    stored = runtime.feed.callback("acme").last_error
    assert failed.failed and stored == failed.error and "HTTP 500" in stored
    for secret in (SECRET, "hunter2", "tok-abc"):
        assert secret not in stored

    monkeypatch.setattr(feed_delivery, "TIMEOUT_S", 0.5)
    receiver.answers[:] = [("sleep", 2.0)]
    slow = deliver(runtime, "acme", now=failed.next_attempt_at)
    assert slow.failed and "no answer" in slow.error and "hunter2" not in slow.error
    assert runtime.feed.callback("acme").cursor == 0


def test_a_callback_switched_off_gets_nothing(runtime: Runtime, receiver: Receiver) -> None:
    runtime.feed.set_callback("acme", receiver.url, SECRET, from_now=False)
    append(runtime, 2)
    runtime.feed.disable_callback("acme")
    assert deliver(runtime, "acme", now=NOW).skipped == "callback switched off"
    assert deliver_due(runtime, now=NOW) == [] and receiver.received == []
    runtime.feed.set_callback("acme", receiver.url, SECRET, from_now=False)  # on again: from its cursor
    assert deliver(runtime, "acme", now=NOW).delivered == 2


# ---------------------------------------------------------------------------------- several at once


def test_every_due_tenant_is_served_and_one_failing_app_stops_no_other(runtime: Runtime, receiver: Receiver) -> None:
    other = Receiver()
    try:
        runtime.tenants.ensure_tenant("globex", "Globex")
        runtime.feed.set_callback("acme", f"{receiver.url}/a", SECRET, from_now=False)
        runtime.feed.set_callback("globex", f"{other.url}/g", SECRET + "-globex", from_now=False)
        append(runtime, 2)
        append(runtime, 3, tenant="globex")
        receiver.answers[:] = [500]
        results = {r.tenant_key: r for r in deliver_due(runtime, now=NOW)}
        assert results["acme"].failed and results["globex"].delivered == 3
        assert [r.json["tenant"] for r in other.received] == ["globex"]
        assert verify_like_the_readme(other.received[0].body, other.received[0].headers["x-qbp-signature"],
                                      SECRET + "-globex")
        assert [c.tenant_key for c in runtime.feed.due_callbacks(NOW)] == []
        later = results["acme"].next_attempt_at
        assert [c.tenant_key for c in runtime.feed.due_callbacks(later)] == ["acme"]
    finally:
        other.stop()


def test_two_deliverers_never_hold_one_callback_at_once(runtime: Runtime, receiver: Receiver) -> None:
    runtime.feed.set_callback("acme", receiver.url, SECRET, from_now=False)
    append(runtime, 1)
    held = runtime.feed.claim_callback("acme", NOW, LEASE)
    assert held is not None and runtime.feed.claim_callback("acme", NOW, LEASE) is None
    busy = deliver(runtime, "acme", now=NOW)
    assert (busy.posts, busy.skipped) == (0, "busy (another delivery holds it)")
    # the first deliverer died: the lease ends and another takes over
    assert deliver(runtime, "acme", now=NOW + LEASE).delivered == 1 and len(receiver.received) == 1


# ---------------------------------------------------------------------------------- end to end


def test_a_change_made_in_quickbooks_reaches_the_apps_callback(emulator: RunningEmulator, tmp_path: Path,
                                                              receiver: Receiver) -> None:
    with Runtime(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", emulator)) as rt:
        company = connect_company(emulator, rt)
        with rt.engine.begin() as conn:
            enqueue(conn, company.tenant, entity="Customer", app_id="c1", version=1,
                    data={"display_name": "Ada Lovelace", "phone": "555-1000"})
        push(rt, company.key)
        recorder = FeedRecorder(rt, rt.resolve(company.key))
        land(company.client(), rt.warehouse, company.key, on_changes=recorder)
        rt.feed.set_callback(company.tenant, f"{receiver.url}/qbo", SECRET)

        qbo_id = rt.mappings.get(company.tenant, company.realm, "Customer", "c1").qbo_id
        current = company.read("Customer", qbo_id)
        company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                           "PrimaryPhone": {"FreeFormNumber": "555-7777"}})
        land(company.client(), rt.warehouse, company.key, on_changes=recorder)
        results = deliver_due(rt)

    assert [r.delivered for r in results] == [1]
    (got,) = receiver.received
    assert verify_like_the_readme(got.body, got.headers["x-qbp-signature"], SECRET)
    (change,) = got.json["changes"]
    assert (change["entity"], change["app_id"], change["qbo_id"]) == ("Customer", "c1", qbo_id)
    assert change["data"]["phone"] == "555-7777"


@pytest.mark.postgres
def test_delivery_on_postgresql(tmp_path: Path, receiver: Receiver) -> None:
    with throwaway_database("postgresql", tmp_path, "qbp_cb") as url, \
            Runtime(AppSettings(database_url=url, fernet_key=generate_key(), client_id="app",
                                client_secret="secret")) as rt:
        rt.tenants.ensure_tenant("acme", "Acme")
        rt.feed.set_callback("acme", receiver.url, SECRET, from_now=False)
        append(rt, 3)
        assert rt.feed.claim_callback("acme", NOW, LEASE) is not None
        assert rt.feed.claim_callback("acme", NOW, LEASE) is None
        receiver.answers[:] = [500]
        failed = deliver(rt, "acme", now=NOW + LEASE, batch=2)
        assert failed.failed and rt.feed.callback("acme").cursor == 0
        done = deliver(rt, "acme", now=failed.next_attempt_at, batch=2)
        assert done.delivered == 3 and [r.headers["x-qbp-delivery"] for r in receiver.received] == ["1-2", "1-2", "3-3"]
