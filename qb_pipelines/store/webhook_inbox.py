"""The webhook inbox: every change QuickBooks announced, stored once, drained in order by cursor.

Intuit POSTs change notifications to the web app (``POST /webhooks/quickbooks``); the web layer
verifies and parses them (:mod:`qb_pipelines.qbo.webhooks`) and hands the events here. A Dagster
sensor later drains the inbox by cursor and turns the companies and entities touched into
targeted incremental runs. Webhooks are *hints*: CDC remains the truth, so the inbox only has to
be complete and ordered, never authoritative.

Table ``qb_webhook_event`` (on the store's metadata; migration ``0004_webhook_inbox``):

* ``seq``: autoincrement primary key, the drain cursor. Never reused, not even after
  :meth:`WebhookInbox.prune` deleted the newest rows (``AUTOINCREMENT`` on SQLite, a sequence on
  PostgreSQL), so a sensor's ``after_seq`` stays valid for ever.
* ``dedupe_key`` (unique): what makes a duplicate a duplicate. CloudEvents carry an id that is
  unique per event: ``ce:<id>``. Legacy payloads have none, so the key is
  ``realm|entity|id|operation|lastUpdated``; two changes of the same object with the same
  operation in the same millisecond collapse into one event, which is harmless for a hint (the
  sync that follows reads current state). Keys longer than the column are replaced by
  ``sha256:<hex>`` of themselves.
* ``delivery_id``: SHA-256 of the raw body that first brought the event. A replayed delivery
  (Intuit retries, or sends the same POST twice) is byte-identical, so all its events are
  duplicates and nothing new is stored; the column tells which POST an event came from.
* ``realm_connected``: whether a tenant was *connected* to that company when the event arrived.
  Events for other companies (a connection being made right now, a company disconnected here but
  still subscribed at Intuit, a realm Intuit sends for another environment) are **stored anyway**,
  flagged ``False``: answering anything but 200 makes Intuit retry for days and hold every later
  delivery behind the refused one. The sensor decides what to do with them (route them with
  :meth:`ConnectionStore.views_for_realm` at drain time, which sees connections made since).

Writes are one short transaction per delivery: ``INSERT ... ON CONFLICT (dedupe_key) DO
NOTHING ... RETURNING seq`` on both dialects, which counts what was new without a read first.

Ordering across concurrent deliveries matters for a cursor: on PostgreSQL sequence values are
handed out outside transactions, so delivery A could take seqs 1-100, delivery B 101-200, B
commit first, the sensor drain up to 200 and A's rows then appear *behind* the cursor, lost. So
writers take a transaction-scoped advisory lock before inserting (PostgreSQL releases it after
the commit is visible): seqs become visible in increasing order. SQLite gets the same from
``BEGIN IMMEDIATE`` (one writer at a time, rowids assigned under the write lock). The lock is
held for one multi-row insert, milliseconds, so it costs nothing at webhook rates.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from qb_pipelines.qbo.webhooks import WebhookEvent, WebhookPayloadError
from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.models import Base, Connection, utcnow

__all__ = [
    "DEDUPE_KEY_MAX",
    "TABLE_NAME",
    "InboxEvent",
    "WebhookEventRecord",
    "WebhookInbox",
    "dedupe_key",
    "delivery_sha",
    "parse_event_time",
]

TABLE_NAME = "qb_webhook_event"
#: Longest dedupe key stored as is; longer ones are stored as their SHA-256.
DEDUPE_KEY_MAX = 255
#: PostgreSQL advisory lock key serialising inbox writers (an arbitrary constant: "qbwh" in ASCII).
_PG_LOCK_KEY = 0x71627768
# Column widths, checked before inserting so an oversized field answers 400 on both dialects
# (SQLite would store it, PostgreSQL would fail the whole transaction).
_WIDTHS = {"realm_id": 32, "entity": 64, "entity_id": 64, "operation": 16, "event_id": 255, "deleted_id": 64}
_CONNECTED = "connected"  # ConnectionState.CONNECTED; not imported to keep this module light
_TIME = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<zone>Z|z|[+-]\d{2}:?\d{2})?$"
)


class WebhookEventRecord(Base):
    """One change QuickBooks announced (a pointer to an object, not its data)."""

    __tablename__ = TABLE_NAME
    # AUTOINCREMENT on SQLite: without it a rowid can be reused after the newest rows are pruned,
    # and a drain cursor past that rowid would silently skip the new events.
    __table_args__ = {"sqlite_autoincrement": True}

    #: The drain cursor: increasing in commit order, never reused.
    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    #: When this app received the delivery (UTC); what :meth:`WebhookInbox.prune` ages by.
    received_at: Mapped[datetime] = mapped_column(index=True)
    realm_id: Mapped[str] = mapped_column(sa.String(32))
    entity: Mapped[str] = mapped_column(sa.String(64))
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    operation: Mapped[str] = mapped_column(sa.String(16))
    #: When the change happened in QuickBooks (legacy ``lastUpdated`` / CloudEvents ``time``), UTC.
    occurred_at: Mapped[datetime]
    #: The CloudEvents id; ``None`` for legacy payloads.
    event_id: Mapped[str | None] = mapped_column(sa.String(255))
    #: On a Merge, the Id of the record merged away.
    deleted_id: Mapped[str | None] = mapped_column(sa.String(64))
    dedupe_key: Mapped[str] = mapped_column(sa.String(DEDUPE_KEY_MAX), unique=True)
    #: SHA-256 (hex) of the raw body that first brought this event.
    delivery_id: Mapped[str] = mapped_column(sa.String(64))
    #: A tenant was connected to ``realm_id`` when the event arrived.
    realm_connected: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    def __repr__(self) -> str:
        return f"WebhookEventRecord(seq={self.seq!r}, {self.realm_id}/{self.entity}/{self.entity_id} {self.operation})"


@dataclass(frozen=True)
class InboxEvent:
    """A stored webhook event, as the draining sensor sees it.

    Attributes:
        seq: Position in the inbox; pass the last one drained as the next ``after_seq``.
        received_at: When the app received it (UTC).
        realm_id: The company.
        entity: QBO's entity name (``Invoice``).
        entity_id: The object's Id.
        operation: ``Create``, ``Update``, ``Delete``, ``Void``, ``Merge`` or ``Emailed``.
        occurred_at: When it changed in QuickBooks (UTC).
        event_id: CloudEvents id, ``None`` for legacy deliveries.
        deleted_id: On a Merge, the Id merged away.
        dedupe_key: The key that made it unique.
        delivery_id: SHA-256 of the delivery that brought it.
        realm_connected: A tenant was connected to the company at receipt.
    """

    seq: int
    received_at: datetime
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: datetime
    event_id: str | None
    deleted_id: str | None
    dedupe_key: str
    delivery_id: str
    realm_connected: bool


def delivery_sha(body: bytes) -> str:
    """The delivery id of a raw webhook body: its SHA-256 in hex."""
    return hashlib.sha256(body).hexdigest()


def dedupe_key(event: WebhookEvent) -> str:
    """The key under which ``event`` is stored once (see the module docstring)."""
    if event.event_id:
        key = f"ce:{event.event_id}"
    else:
        key = "|".join((event.realm_id, event.entity, event.entity_id, event.operation, event.occurred_at))
    if len(key) > DEDUPE_KEY_MAX:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def parse_event_time(text: str) -> datetime:
    """Parse QBO's webhook times into an aware UTC datetime.

    Accepts what Intuit sends: ``2016-10-05T03:09:04.000Z`` (legacy), nanoseconds
    ``2025-10-07T19:59:07.034359333Z`` (CloudEvents; truncated to microseconds), no fraction,
    and numeric offsets. A time without a zone is taken as UTC.

    Raises:
        WebhookPayloadError: when ``text`` is not such a timestamp.
    """
    match = _TIME.match(text.strip())
    if match is None:
        raise WebhookPayloadError(f"event time {text[:60]!r} is not an ISO 8601 timestamp")
    frac = (match.group("frac") or "")[:6].ljust(6, "0")
    zone = match.group("zone")
    try:
        value = datetime.fromisoformat(match.group("base")).replace(microsecond=int(frac))
        if zone in (None, "Z", "z"):
            tz: timezone = UTC
        else:
            digits = zone.replace(":", "")
            sign = -1 if digits[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5])))
        return value.replace(tzinfo=tz).astimezone(UTC)
    except ValueError as exc:
        raise WebhookPayloadError(f"event time {text[:60]!r} is not a valid timestamp: {exc}") from exc


def _row(event: WebhookEvent, delivery_id: str, received_at: datetime) -> dict[str, object]:
    values: dict[str, object] = {
        "realm_id": event.realm_id,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "operation": event.operation,
        "event_id": event.event_id,
        "deleted_id": event.deleted_id,
    }
    for name, width in _WIDTHS.items():
        value = values[name]
        if isinstance(value, str) and len(value) > width:
            raise WebhookPayloadError(f"event {name} is longer than {width} characters")
    values.update(
        received_at=received_at,
        occurred_at=parse_event_time(event.occurred_at),
        dedupe_key=dedupe_key(event),
        delivery_id=delivery_id,
    )
    return values


class WebhookInbox:
    """Repository of the webhook inbox: idempotent intake, cursor drain, pruning.

    Args:
        session_factory: Sessions bound to the store's engine (:func:`qb_pipelines.store.db.session_factory`).
        clock: Returns "now" as an aware UTC datetime (``received_at``; tests may move it).
    """

    def __init__(self, session_factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sf = session_factory
        self._now = clock
        self._table: sa.Table = WebhookEventRecord.__table__  # type: ignore[assignment]

    # -- intake ------------------------------------------------------------------------------

    def add_events(self, events: Sequence[WebhookEvent], *, delivery_sha: str) -> tuple[int, int]:
        """Store the events of one delivery, each at most once, in payload order.

        One transaction: lock the inbox for writers, look up which realms are connected, insert
        with ``ON CONFLICT DO NOTHING``. An event already stored (a replay, a retry, or the same
        event twice in one payload) is counted as a duplicate and not stored again.

        Args:
            events: Parsed events (:func:`qb_pipelines.qbo.webhooks.parse_notifications`).
            delivery_sha: :func:`delivery_sha` of the raw body they came in.

        Returns:
            ``(stored, duplicates)``; their sum is ``len(events)``.

        Raises:
            WebhookPayloadError: when an event's time cannot be parsed or a field is too long
                (nothing is stored).
        """
        if not events:
            return 0, 0
        received_at = self._now()
        rows: list[dict[str, object]] = []
        seen: set[str] = set()
        for event in events:
            row = _row(event, delivery_sha, received_at)
            if row["dedupe_key"] in seen:  # the same event twice in one payload: keep the first
                continue
            seen.add(str(row["dedupe_key"]))
            rows.append(row)
        realms = sorted({str(r["realm_id"]) for r in rows})
        with self._sf() as session, session.begin():
            conn = session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            if conn.dialect.name == "postgresql":
                # Released at commit, after the rows are visible: seqs appear in increasing order.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
            connected = set(
                conn.execute(
                    sa.select(Connection.realm_id)
                    .where(Connection.realm_id.in_(realms), Connection.state == _CONNECTED)
                    .distinct()
                ).scalars()
            )
            for row in rows:
                row["realm_connected"] = row["realm_id"] in connected
            stored = self._insert(conn, rows)
        return stored, len(events) - stored

    def _insert(self, conn: SAConnection, rows: list[dict[str, object]]) -> int:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(self._table).on_conflict_do_nothing(index_elements=["dedupe_key"])
        # RETURNING only yields the rows actually inserted: the count of new events, no read first.
        return len(conn.execute(stmt.returning(self._table.c.seq), rows).all())

    # -- drain -------------------------------------------------------------------------------

    def drain(self, after_seq: int, limit: int = 1000) -> list[InboxEvent]:
        """The events stored after ``after_seq``, oldest first, at most ``limit``.

        The caller keeps the ``seq`` of the last event it processed as its cursor and passes it
        next time: nothing is skipped (writers commit in seq order) and nothing is deleted by
        draining, so a crashed consumer simply drains again from its last saved cursor.

        Args:
            after_seq: The cursor: ``0`` (or :meth:`latest_seq` to skip history) the first time.
            limit: Most events returned at once.
        """
        if limit <= 0:
            return []
        t = self._table
        with self._sf() as session:
            rows = session.execute(
                sa.select(t).where(t.c.seq > after_seq).order_by(t.c.seq).limit(limit)
            ).mappings().all()
        return [
            InboxEvent(
                seq=int(r["seq"]),
                received_at=r["received_at"],
                realm_id=r["realm_id"],
                entity=r["entity"],
                entity_id=r["entity_id"],
                operation=r["operation"],
                occurred_at=r["occurred_at"],
                event_id=r["event_id"],
                deleted_id=r["deleted_id"],
                dedupe_key=r["dedupe_key"],
                delivery_id=r["delivery_id"],
                realm_connected=bool(r["realm_connected"]),
            )
            for r in rows
        ]

    def merge_survivor(self, realm_id: str, entity: str, deleted_id: str) -> str | None:
        """The Id a merged-away object was merged into, when a Merge webhook said so (else ``None``).

        CDC shows the loser of a merge only as deleted; the Merge notification names both sides.
        """
        t = self._table
        with self._sf() as session:
            found = session.execute(sa.select(t.c.entity_id).where(
                t.c.realm_id == str(realm_id), t.c.entity == entity, t.c.operation == "Merge",
                t.c.deleted_id == str(deleted_id)).order_by(t.c.seq.desc()).limit(1)).scalar_one_or_none()
            return str(found) if found is not None else None

    def latest_seq(self) -> int:
        """The newest ``seq`` in the inbox, ``0`` when it is empty (a cursor that starts "from now")."""
        with self._sf() as session:
            return int(session.execute(sa.select(sa.func.coalesce(sa.func.max(self._table.c.seq), 0))).scalar_one())

    def count(self) -> int:
        """How many events the inbox holds."""
        with self._sf() as session:
            return int(session.execute(sa.select(sa.func.count()).select_from(self._table)).scalar_one())

    # -- housekeeping ------------------------------------------------------------------------

    def prune(self, older_than: datetime | timedelta) -> int:
        """Delete events received before a time (or longer ago than an age); returns how many.

        Pruning never moves cursors: seqs are not reused, so a consumer's ``after_seq`` stays
        valid. Keep events longer than the consumer can lag (the sensor drains within seconds;
        days of retention cost little and help audits).

        Args:
            older_than: A UTC datetime, or an age measured back from now.
        """
        cutoff = self._now() - older_than if isinstance(older_than, timedelta) else older_than
        if cutoff.tzinfo is None:
            raise ValueError("prune needs a timezone-aware datetime (UTC)")
        with self._sf() as session, session.begin():
            conn = session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            result = conn.execute(sa.delete(self._table).where(self._table.c.received_at < cutoff))
            return int(result.rowcount or 0)
