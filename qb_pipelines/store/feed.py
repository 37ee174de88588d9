"""The change feed: what changed in QuickBooks, for the app, in order, from any cursor.

Landing runs append entries (:meth:`FeedStore.append`); the app reads them after its own cursor
(``GET /api/v1/tenants/{tenant}/changes?after=SEQ`` or :func:`read_changes` inside its own
database), or receives them on a signed callback whose cursor the store keeps
(:class:`CallbackView`). ``seq`` only grows and is never reused (``AUTOINCREMENT`` on SQLite, a
sequence on PostgreSQL), and writers take the same ordering precaution as the webhook inbox (one
writer at a time per insert: an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so
an entry never appears *behind* a cursor a reader already moved past: an app that was away for
days catches up from its cursor without gaps or duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.orm import Session

from qb_pipelines.qbo.redact import redact
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.models import FeedCallback, FeedEntry, Tenant
from qb_pipelines.store.repository import Repository, UnknownTenantError

__all__ = ["MAX_READ", "CallbackView", "FeedChange", "FeedStore", "NewEntry", "read_changes"]

FEED = FeedEntry.__table__
#: Most entries one read returns.
MAX_READ = 1000
#: PostgreSQL advisory lock key of feed writers (keeps seqs visible in increasing order).
_LOCK_KEY = 0x71627066  # "qbpf"


@dataclass(frozen=True)
class NewEntry:
    """An entry to append (see :class:`~qb_pipelines.store.models.FeedEntry`)."""

    entity: str
    op: str
    qbo_id: str
    data: dict[str, Any]
    app_id: str | None = None
    sync_token: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class FeedChange:
    """One entry as the app reads it."""

    seq: int
    entity: str
    op: str
    app_id: str | None
    qbo_id: str
    data: dict[str, Any]
    at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The entry as the records API publishes it."""
        return {"seq": self.seq, "entity": self.entity, "op": self.op, "app_id": self.app_id, "qbo_id": self.qbo_id,
                "data": self.data, "at": self.at.isoformat() if self.at else None}


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _change(row: Any) -> FeedChange:
    m = row._mapping
    return FeedChange(int(m["seq"]), m["entity"], m["op"], m["app_id"], m["qbo_id"], dict(m["data"] or {}),
                      _aware(m["at"]))


def read_changes(conn: SAConnection | Session, tenant_key: str, after: int = 0, limit: int = MAX_READ
                 ) -> tuple[list[FeedChange], int]:
    """The tenant's entries after ``after``, oldest first, and the cursor to read from next.

    For an app that shares the database: call it with its own connection. The returned cursor is
    ``after`` when there is nothing new (never goes backwards).

    Raises:
        UnknownTenantError: no such tenant.
    """
    tenant_id = conn.execute(sa.select(Tenant.id).where(Tenant.key == tenant_key)).scalar_one_or_none()
    if tenant_id is None:
        raise UnknownTenantError(tenant_key)
    limit = max(1, min(int(limit), MAX_READ))
    rows = conn.execute(sa.select(FEED).where(FEED.c.tenant_id == tenant_id, FEED.c.seq > after)
                        .order_by(FEED.c.seq).limit(limit)).all()
    changes = [_change(r) for r in rows]
    return changes, (changes[-1].seq if changes else int(after))


@dataclass(frozen=True)
class CallbackView:
    """A tenant's callback, as the deliverer and the admin pages see it (the secret only on demand)."""

    tenant_key: str
    url: str
    enabled: bool
    cursor: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_delivered_at: datetime | None


class FeedStore(Repository):
    """Append to and read the feed; keep each tenant's callback and its delivery cursor."""

    def __init__(self, session_factory: Any, box: SecretBox, **kwargs: Any) -> None:
        super().__init__(session_factory, **kwargs)
        self._box = box

    # -- entries -------------------------------------------------------------------------------

    def append(self, tenant_key: str, realm_id: str, entries: Sequence[NewEntry]) -> int:
        """Append entries in order, in one transaction; returns how many."""
        if not entries:
            return 0
        now = self._now()
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            if self.engine.dialect.name == "postgresql":
                # seqs become visible in the order they are handed out (see the module doc)
                session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            session.execute(FEED.insert(), [
                {"tenant_id": tenant.id, "realm_id": realm_id, "entity": e.entity, "op": e.op, "app_id": e.app_id,
                 "qbo_id": e.qbo_id, "data": e.data, "sync_token": e.sync_token, "at": e.at, "created_at": now}
                for e in entries])
        return len(entries)

    def read(self, tenant_key: str, after: int = 0, limit: int = MAX_READ) -> tuple[list[FeedChange], int]:
        """:func:`read_changes` on the store's own connection."""
        with self._read() as session:
            return read_changes(session, tenant_key, after, limit)

    def latest_seq(self, tenant_key: str) -> int:
        """The tenant's newest entry (0 when none)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            return int(session.execute(sa.select(sa.func.coalesce(sa.func.max(FEED.c.seq), 0))
                                       .where(FEED.c.tenant_id == tenant.id)).scalar_one())

    def seen(self, tenant_key: str, entity: str, qbo_id: str, sync_token: str | None) -> bool:
        """Whether this version of the object is in the feed already (a landing that repeats adds nothing)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            found = session.execute(sa.select(FEED.c.seq).where(
                FEED.c.tenant_id == tenant.id, FEED.c.entity == entity, FEED.c.qbo_id == qbo_id,
                FEED.c.sync_token == sync_token).limit(1)).first()
            return found is not None

    def seen_any(self, tenant_key: str, entity: str, qbo_id: str) -> bool:
        """Whether the app was ever told about this object."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            found = session.execute(sa.select(FEED.c.seq).where(
                FEED.c.tenant_id == tenant.id, FEED.c.entity == entity, FEED.c.qbo_id == qbo_id).limit(1)).first()
            return found is not None

    def latest_by_qbo_ids(self, tenant_key: str, entity: str, qbo_ids: Iterable[str], *,
                          chunk: int = 500) -> dict[str, FeedChange]:
        """The newest entry told of each of these objects, by QBO id (objects never told are absent).

        What the app was last told of a document (its balance, its status) when the app is
        reconciled against QuickBooks.
        """
        wanted = sorted({str(q) for q in qbo_ids})
        out: dict[str, FeedChange] = {}
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            for start in range(0, len(wanted), chunk):
                rows = session.execute(sa.select(FEED).where(
                    FEED.c.tenant_id == tenant.id, FEED.c.entity == entity,
                    FEED.c.qbo_id.in_(wanted[start:start + chunk])).order_by(FEED.c.seq.desc())).all()
                for row in rows:
                    change = _change(row)
                    out.setdefault(change.qbo_id, change)
        return out

    # -- callbacks -----------------------------------------------------------------------------

    def set_callback(self, tenant_key: str, url: str, secret: str, *, from_now: bool = True) -> CallbackView:
        """Set (or replace) the tenant's callback.

        Args:
            url: where to POST (``https://`` in production; ``http://`` is accepted for local apps).
            secret: the HMAC key the app verifies signatures with (stored encrypted).
            from_now: deliver only entries appended from now on (a new consumer); ``False`` starts
                at the beginning of the feed.
        """
        if not url.startswith(("https://", "http://")):
            raise ValueError("the callback URL must start with https:// (or http:// for a local app)")
        if len(secret) < 16:
            raise ValueError("the callback secret must have at least 16 characters")
        start = self.latest_seq(tenant_key) if from_now else 0
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one_or_none()
            if row is None:
                row = FeedCallback(tenant_id=tenant.id, url=url, secret_enc=self._box.encrypt(secret), cursor=start,
                                   enabled=True, attempts=0, created_at=self._now())
                session.add(row)
            else:
                row.url, row.secret_enc, row.enabled, row.attempts = url, self._box.encrypt(secret), True, 0
                row.next_attempt_at, row.last_error = None, None
            self._event(session, tenant.id, "feed_callback_set", url)
            session.flush()
            return self._callback_view(tenant_key, row)

    def disable_callback(self, tenant_key: str) -> None:
        """Stop delivering to the tenant's callback (its cursor is kept)."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one_or_none()
            if row is not None:
                row.enabled = False

    @staticmethod
    def _callback_view(tenant_key: str, row: FeedCallback) -> CallbackView:
        return CallbackView(tenant_key, row.url, row.enabled, int(row.cursor), int(row.attempts),
                            row.next_attempt_at, row.last_error, row.last_delivered_at)

    def callback(self, tenant_key: str) -> CallbackView | None:
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one_or_none()
            return self._callback_view(tenant_key, row) if row else None

    def callback_secret(self, tenant_key: str) -> str:
        """The decrypted HMAC key (the deliverer signs with it; never logged)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one()
            return self._box.decrypt(row.secret_enc)

    def due_callbacks(self, now: datetime | None = None) -> list[CallbackView]:
        """Enabled callbacks with entries past their cursor whose retry time has come."""
        now = now or self._now()
        newest = (sa.select(sa.func.max(FEED.c.seq)).where(FEED.c.tenant_id == FeedCallback.tenant_id)
                  .scalar_subquery())
        with self._read() as session:
            rows = session.execute(
                sa.select(FeedCallback, Tenant.key).join(Tenant, Tenant.id == FeedCallback.tenant_id).where(
                    FeedCallback.enabled.is_(True), newest > FeedCallback.cursor,
                    sa.or_(FeedCallback.next_attempt_at.is_(None), FeedCallback.next_attempt_at <= now))).all()
            return [self._callback_view(key, row) for row, key in rows]

    def claim_callback(self, tenant_key: str, now: datetime, lease: timedelta) -> CallbackView | None:
        """Take the tenant's callback for one delivery: enabled, due, entries past its cursor, nobody holding it.

        The claim is a lease: ``next_attempt_at`` moves to ``now + lease`` in one conditional
        UPDATE, so two deliverers (two sensor ticks, the CLI beside Dagster) never post the same
        entries at once, and a deliverer that dies mid-way frees the callback when the lease ends.
        :meth:`delivered` and :meth:`delivery_failed` end the lease.

        Returns:
            The callback as claimed, or ``None`` (off, not due, or held by another deliverer).
        """
        table = FeedCallback.__table__
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            newest = sa.select(sa.func.max(FEED.c.seq)).where(FEED.c.tenant_id == tenant.id).scalar_subquery()
            claimed = session.execute(table.update().where(
                table.c.tenant_id == tenant.id, table.c.enabled.is_(True), newest > table.c.cursor,
                sa.or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now),
            ).values(next_attempt_at=now + lease))
            if claimed.rowcount != 1:
                return None
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one()
            return self._callback_view(tenant_key, row)

    def delivered(self, tenant_key: str, cursor: int) -> None:
        """The app acknowledged everything up to ``cursor``."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one()
            row.cursor = max(int(row.cursor), int(cursor))
            row.attempts, row.next_attempt_at, row.last_error = 0, None, None
            row.last_delivered_at = self._now()

    def delivery_failed(self, tenant_key: str, error: str, next_attempt_at: datetime) -> int:
        """A delivery failed: keep the cursor, retry later; returns the attempts so far."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = session.scalars(sa.select(FeedCallback).where(FeedCallback.tenant_id == tenant.id)).one()
            row.attempts = int(row.attempts or 0) + 1
            row.next_attempt_at, row.last_error = next_attempt_at, redact(error, limit=1000)
            return int(row.attempts)
