"""The webhook inbox on SQLite and PostgreSQL: its migration matches its model, each event is
stored once (replays, repeats inside a payload), realms without a connected tenant are flagged,
and a drain cursor never skips an event, not even with concurrent writers or after pruning."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from qb_pipelines.qbo.webhooks import WebhookEvent, WebhookPayloadError, parse_notifications
from qb_pipelines.store import db
from qb_pipelines.store.models import Base, Connection, Tenant
from qb_pipelines.store.webhook_inbox import (
    TABLE_NAME,
    WebhookInbox,
    dedupe_key,
    delivery_sha,
    parse_event_time,
)
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.samples import SAMPLES

LEGACY = json.loads((SAMPLES / "webhook_legacy_signed.json").read_text())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated store of each dialect, shared by the module's tests."""
    with migrated_engine(request.param, tmp_path_factory.mktemp(request.param), "qbp_wh") as eng:
        yield eng


class Clock:
    """A movable "now" for received_at (prune ages by it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inbox(engine: Engine, clock: Clock) -> WebhookInbox:
    """An empty inbox (and no tenants) on the module's store."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {TABLE_NAME}"))
        conn.execute(sa.delete(Connection))
        conn.execute(sa.delete(Tenant))
    return WebhookInbox(db.session_factory(engine), clock=clock)


def event(entity_id: str, *, realm: str = "9130", entity: str = "Customer", operation: str = "Create",
          at: str = "2026-01-05T10:00:00.000Z", event_id: str | None = None) -> WebhookEvent:
    return WebhookEvent(realm_id=realm, entity=entity, entity_id=entity_id, operation=operation,
                        occurred_at=at, event_id=event_id)


def connect(engine: Engine, tenant_key: str, realm: str, state: str) -> None:
    with db.session_factory(engine)() as session, session.begin():
        tenant = Tenant(key=tenant_key, name=tenant_key)
        session.add(tenant)
        session.flush()
        session.add(Connection(tenant_id=tenant.id, environment="emulator", realm_id=realm, state=state))


# ------------------------------------------------------------------------------------------------
# schema
# ------------------------------------------------------------------------------------------------
def test_the_migration_creates_exactly_the_model_and_downgrades_cleanly(engine: Engine) -> None:
    script = ScriptDirectory.from_config(db.alembic_config(engine)).get_revision("0004_webhook_inbox")
    assert script is not None and script.down_revision == "0003_reports"

    # just this table: the other store tables have their own schema test
    only_inbox = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    Base.metadata.tables[TABLE_NAME].to_metadata(only_inbox)

    def differences() -> list[object]:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "version_table": db.VERSION_TABLE,
                "include_name": lambda name, type_, _parent: type_ != "table" or name == TABLE_NAME,
            })
            return compare_metadata(context, only_inbox)

    assert differences() == []
    head = db.current_revision(engine)
    command.downgrade(db.alembic_config(engine), "0003_reports")
    assert TABLE_NAME not in sa.inspect(engine).get_table_names()
    db.migrate(engine)
    assert db.current_revision(engine) == head
    assert differences() == []


# ------------------------------------------------------------------------------------------------
# intake: once per event
# ------------------------------------------------------------------------------------------------
def test_a_delivery_is_stored_once_in_payload_order(inbox: WebhookInbox, clock: Clock) -> None:
    body = LEGACY["raw_body"].encode()
    events = parse_notifications(body)
    sha = delivery_sha(body)
    # the same event twice inside one payload counts once
    assert inbox.add_events([*events, events[0]], delivery_sha=sha) == (2, 1)
    # a replayed delivery (Intuit retried, or sent it twice) stores nothing new
    assert inbox.add_events(events, delivery_sha="f" * 64) == (0, 2)
    stored = inbox.drain(0)
    assert [(e.realm_id, e.entity, e.entity_id, e.operation) for e in stored] == [
        ("1269959970", "Vendor", "40", "Update"),
        ("1269959970", "Customer", "43", "Create"),
    ]
    assert stored[0].seq < stored[1].seq
    assert stored[0].occurred_at == datetime(2016, 10, 5, 3, 9, 4, tzinfo=UTC)
    assert stored[0].received_at == clock.now
    assert stored[0].dedupe_key == "1269959970|Vendor|40|Update|2016-10-05T03:09:04.000Z"
    assert {e.delivery_id for e in stored} == {sha}  # the first delivery that brought them
    assert all(e.event_id is None and not e.realm_connected for e in stored)
    assert inbox.count() == 2


def test_cloudevents_are_deduplicated_by_event_id(inbox: WebhookInbox) -> None:
    first = event("1", event_id="ev-1")
    assert inbox.add_events([first], delivery_sha="a" * 64) == (1, 0)
    # same id, even re-sent with a later time: the same event
    assert inbox.add_events([replace(first, occurred_at="2026-01-05T11:00:00Z")], delivery_sha="b" * 64) == (0, 1)
    # another id for the same object and operation: a new event (CloudEvents ids are per event)
    assert inbox.add_events([replace(first, event_id="ev-2")], delivery_sha="b" * 64) == (1, 0)
    assert [e.dedupe_key for e in inbox.drain(0)] == ["ce:ev-1", "ce:ev-2"]
    # a legacy change of the same object is keyed by its fields, not clashing with CloudEvents keys
    assert dedupe_key(event("1")) == "9130|Customer|1|Create|2026-01-05T10:00:00.000Z"
    long_id = dedupe_key(event("1", event_id="x" * 300))
    assert long_id.startswith("sha256:") and len(long_id) == 7 + 64


def test_merge_keeps_the_deleted_id(inbox: WebhookInbox) -> None:
    merged = WebhookEvent("9130", "Customer", "5", "Merge", "2026-01-05T10:00:00Z", "ev-m", "7")
    inbox.add_events([merged], delivery_sha="c" * 64)
    [stored] = inbox.drain(0)
    assert (stored.operation, stored.entity_id, stored.deleted_id, stored.event_id) == ("Merge", "5", "7", "ev-m")


def test_events_for_companies_without_a_connected_tenant_are_stored_flagged(
    engine: Engine, inbox: WebhookInbox
) -> None:
    connect(engine, "acme", "111", "connected")
    connect(engine, "gone", "222", "disconnected")
    events = [event("1", realm="111"), event("2", realm="222"), event("3", realm="333")]
    assert inbox.add_events(events, delivery_sha="d" * 64) == (3, 0)
    assert [(e.realm_id, e.realm_connected) for e in inbox.drain(0)] == [
        ("111", True), ("222", False), ("333", False)]


def test_an_invalid_event_stores_nothing_of_its_delivery(inbox: WebhookInbox) -> None:
    with pytest.raises(WebhookPayloadError, match="not an ISO 8601"):
        inbox.add_events([event("1"), event("2", at="yesterday")], delivery_sha="e" * 64)
    with pytest.raises(WebhookPayloadError, match="entity_id is longer"):
        inbox.add_events([event("1"), event("9" * 65)], delivery_sha="e" * 64)
    assert inbox.count() == 0
    assert inbox.add_events([], delivery_sha="e" * 64) == (0, 0)


def test_event_times_in_every_format_intuit_sends() -> None:
    assert parse_event_time("2016-10-05T03:09:04.000Z") == datetime(2016, 10, 5, 3, 9, 4, tzinfo=UTC)
    assert parse_event_time("2025-10-07T19:59:07.034359333Z") == datetime(2025, 10, 7, 19, 59, 7, 34359, tzinfo=UTC)
    assert parse_event_time("2025-12-04T15:25:05Z") == datetime(2025, 12, 4, 15, 25, 5, tzinfo=UTC)
    assert parse_event_time("2025-12-04T08:25:05-07:00") == datetime(2025, 12, 4, 15, 25, 5, tzinfo=UTC)
    assert parse_event_time("2025-12-04T15:25:05") == datetime(2025, 12, 4, 15, 25, 5, tzinfo=UTC)
    for bad in ("", "2025-13-04T15:25:05Z", "1733325905", "2025-12-04 15:25"):
        with pytest.raises(WebhookPayloadError):
            parse_event_time(bad)


# ------------------------------------------------------------------------------------------------
# drain by cursor
# ------------------------------------------------------------------------------------------------
def test_drain_by_cursor_sees_everything_once_in_order(inbox: WebhookInbox) -> None:
    assert inbox.latest_seq() == 0 and inbox.drain(0) == []
    for batch in range(3):
        inbox.add_events([event(f"{batch}-{i}") for i in range(9)], delivery_sha=f"{batch}" * 64)
    seen: list[str] = []
    cursor = 0
    while page := inbox.drain(cursor, limit=10):
        assert len(page) <= 10
        seen += [e.entity_id for e in page]
        cursor = page[-1].seq
    assert seen == [f"{b}-{i}" for b in range(3) for i in range(9)]
    assert cursor == inbox.latest_seq()
    assert inbox.drain(cursor) == []
    assert inbox.drain(0, limit=0) == []
    # draining deletes nothing: a consumer that crashed drains again from its saved cursor
    assert [e.entity_id for e in inbox.drain(0, limit=2)] == ["0-0", "0-1"]
    inbox.add_events([event("late")], delivery_sha="9" * 64)
    assert [e.entity_id for e in inbox.drain(cursor)] == ["late"]


def test_pruning_never_reuses_a_seq(inbox: WebhookInbox, clock: Clock) -> None:
    inbox.add_events([event("old-1"), event("old-2")], delivery_sha="1" * 64)
    clock.now += timedelta(days=8)
    inbox.add_events([event("new-1")], delivery_sha="2" * 64)
    cursor = inbox.latest_seq()
    assert inbox.prune(timedelta(days=7)) == 2
    assert [e.entity_id for e in inbox.drain(0)] == ["new-1"]
    # everything gone, the newest row included: the next seq still follows the cursor
    assert inbox.prune(clock.now + timedelta(seconds=1)) == 1
    assert inbox.count() == 0
    inbox.add_events([event("after")], delivery_sha="3" * 64)
    assert [e.entity_id for e in inbox.drain(cursor)] == ["after"]
    with pytest.raises(ValueError, match="timezone-aware"):
        inbox.prune(datetime(2026, 1, 1))  # a naive time: refused


def test_concurrent_writers_never_hide_events_behind_the_cursor(inbox: WebhookInbox) -> None:
    """Writers race; a consumer drains by cursor meanwhile. Seqs must become visible in order,
    otherwise an event committed late with a lower seq falls behind the cursor and is lost."""
    writers, deliveries, per_delivery = 6, 12, 15
    done = threading.Event()
    drained: list[str] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for d in range(deliveries):
                batch = [event(f"{w}-{d}-{i}", event_id=f"{w}-{d}-{i}") for i in range(per_delivery)]
                assert inbox.add_events(batch, delivery_sha=f"{w:02d}{d:02d}".ljust(64, "0")) == (per_delivery, 0)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    def consume() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()  # read before draining: a last pass after the writers end
                page = inbox.drain(cursor, limit=50)
                drained.extend(e.entity_id for e in page)
                if page:
                    assert page[0].seq > cursor
                    cursor = page[-1].seq
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    consumer = threading.Thread(target=consume)
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    consumer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    consumer.join()
    assert errors == []
    expected = {f"{w}-{d}-{i}" for w in range(writers) for d in range(deliveries) for i in range(per_delivery)}
    assert len(drained) == len(expected)  # none twice
    assert set(drained) == expected  # none skipped
