"""The outbox: every version of every app record the app asked to sync to QuickBooks.

The app tells the integration what changed by writing an outbox row -- through the records API,
or inside its own database transaction when it shares the database (the transactional-outbox
pattern: :func:`insert_row` takes the app's own connection or session, so the record and its row
commit together or not at all). Push runs read the rows, send them, and record the outcome on
them; the dashboard and the records API read them back.

Enqueue rules (:func:`insert_row`):

* the same ``(tenant, entity, app_id, version)`` twice is one row (the second call reports
  ``duplicate``); ``INSERT ... ON CONFLICT DO NOTHING`` makes that hold under concurrency;
* a version lower than the record's latest is **ignored** (an old message arriving late);
* a new version **supersedes** the record's older rows that were not sent yet: payloads are whole
  records, so only the newest needs to reach QuickBooks;
* a record the app created before the tenant's company was first connected is **held**: it is
  never pushed unless an admin releases it ("push these too").

Statuses (``status``; the records API folds them into five, :data:`API_STATUS`):

=============  ================================================================================
pending        waits for the next push run (``reason`` says why when a gate holds it back)
in_flight      sent in a batch whose answer is not recorded yet; the next run re-sends the same
               batch with the same requestid and QBO replays its first answer (exactly once)
retrying       a transient failure; retried from ``next_attempt_at`` with exponential backoff
blocked        a record it depends on failed or was never sent (``reason`` names it)
synced         in QuickBooks (``qbo_id``, ``sync_token``)
failed         refused by QuickBooks (code, message, next step) or out of retries
review         a conflict or an ambiguous match waiting for an admin (``review``)
held           created before the first connection; released only by an admin
superseded     a newer version of the record came first
dropped        the conflict policy kept QuickBooks' values (QBO wins): the app's change was dropped
=============  ================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.orm import Session

from qb_pipelines.qbo.redact import redact
from qb_pipelines.store.models import Connection, EntityMapping, OutboxRow, Tenant, utcnow
from qb_pipelines.store.repository import Repository, UnknownTenantError

__all__ = [
    "ACTIONABLE",
    "API_STATUS",
    "OPEN",
    "WAITING",
    "DueWork",
    "EnqueueResult",
    "Outbox",
    "OutboxView",
    "insert_row",
]

OUTBOX = OutboxRow.__table__

#: Statuses a push run may act on (pending, a due retry, a block that may have ended).
ACTIONABLE = ("pending", "retrying", "blocked")
#: Statuses of a row that still has to reach QuickBooks or an admin.
OPEN = ("pending", "in_flight", "retrying", "blocked", "review", "held", "failed")
#: Statuses of a row still on its way to QuickBooks without anyone's help (the backlog).
WAITING = ("pending", "in_flight", "retrying", "blocked")
#: The records API's five statuses.
API_STATUS = {
    "pending": "pending", "in_flight": "pending", "retrying": "pending", "blocked": "pending",
    "synced": "synced", "failed": "failed", "review": "review", "held": "held",
    "superseded": "pending", "dropped": "synced",
}


@dataclass(frozen=True)
class OutboxView:
    """One outbox row as the API, the dashboard and the push run see it."""

    id: int
    tenant_key: str
    entity: str
    app_id: str
    version: int
    op: str
    payload: dict[str, Any]
    status: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    error_code: str | None
    error_message: str | None
    next_step: str | None
    intuit_tid: str | None
    realm_id: str | None
    qbo_id: str | None
    sync_token: str | None
    link_qbo_id: str | None
    record_created_at: datetime
    requestid: str | None
    bid: str | None
    request_body: dict[str, Any] | None
    review: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    synced_at: datetime | None

    @property
    def api_status(self) -> str:
        """One of the records API's statuses: pending, synced, failed, review, held."""
        return API_STATUS.get(self.status, self.status)

    @property
    def label(self) -> str:
        """What to call the record on a page: its name or number when the payload has one."""
        data = self.payload or {}
        name = data.get("display_name") or data.get("name") or data.get("number")
        return f"{self.entity} {name}" if name else f"{self.entity} {self.app_id}"


@dataclass(frozen=True)
class EnqueueResult:
    """What :func:`insert_row` did.

    Attributes:
        row: the row of that version (new or existing); the latest row when ``ignored``.
        duplicate: the same version was enqueued before (nothing changed).
        ignored: an older version than the record's latest (nothing stored).
        superseded: ids of older rows this version replaced.
    """

    row: OutboxView
    duplicate: bool = False
    ignored: bool = False
    superseded: tuple[int, ...] = ()


@dataclass(frozen=True)
class DueWork:
    """Rows of one tenant a push run could act on now (what the outbox sensor reads).

    Attributes:
        tenant_key: whose rows.
        rows: how many.
        max_id: the highest row id among them (a new row raises it).
        last_change: the latest ``updated_at`` among them (a retry coming due, a row an admin
            retried, a batch left in flight all change it).
        entities: rows per entity.
        in_flight: rows of batches sent without a recorded answer (to resume).
    """

    tenant_key: str
    rows: int
    max_id: int
    last_change: datetime | None
    entities: dict[str, int]
    in_flight: int


def _view(row: Any, tenant_key: str) -> OutboxView:
    m = row._mapping if hasattr(row, "_mapping") else row
    return OutboxView(
        id=int(m["id"]), tenant_key=tenant_key, entity=m["entity"], app_id=m["app_id"], version=int(m["version"]),
        op=m["op"], payload=dict(m["payload"] or {}), status=m["status"], reason=m["reason"],
        attempts=int(m["attempts"] or 0), next_attempt_at=_aware(m["next_attempt_at"]),
        error_code=m["error_code"], error_message=m["error_message"], next_step=m["next_step"],
        intuit_tid=m["intuit_tid"], realm_id=m["realm_id"], qbo_id=m["qbo_id"], sync_token=m["sync_token"],
        link_qbo_id=m["link_qbo_id"], record_created_at=_aware(m["record_created_at"]), requestid=m["requestid"],
        bid=m["bid"], request_body=m["request_body"], review=m["review"], created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]), synced_at=_aware(m["synced_at"]),
    )


def _without_secrets(values: dict[str, Any]) -> dict[str, Any]:
    """Recorded errors (shown on the sync errors page and by the API) never keep a token-shaped value."""
    return {k: redact(v) if k in ("error_message", "reason", "next_step") and isinstance(v, str) else v
            for k, v in values.items()}


def _aware(value: Any) -> Any:
    """Times read through Core come back tagged by the model's UTC type; raw ones are UTC too."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _tenant_id(conn: SAConnection | Session, tenant_key: str) -> int:
    found = conn.execute(sa.select(Tenant.id).where(Tenant.key == tenant_key)).scalar_one_or_none()
    if found is None:
        raise UnknownTenantError(tenant_key)
    return int(found)


def _is_held(conn: SAConnection | Session, tenant_id: int, entity: str, app_id: str, created: datetime) -> bool:
    first, realm = conn.execute(
        sa.select(Connection.first_connected_at, Connection.realm_id).where(Connection.tenant_id == tenant_id)
    ).one_or_none() or (None, None)
    if first is not None and _aware(created) >= _aware(first):
        return False
    if realm is not None:
        mapped = conn.execute(sa.select(EntityMapping.id).where(
            EntityMapping.tenant_id == tenant_id, EntityMapping.realm_id == realm, EntityMapping.entity == entity,
            EntityMapping.app_id == app_id)).first()
        if mapped is not None:
            return False  # the record is linked already: its changes are not "from before"
    released = conn.execute(sa.select(OUTBOX.c.id).where(
        OUTBOX.c.tenant_id == tenant_id, OUTBOX.c.entity == entity, OUTBOX.c.app_id == app_id,
        OUTBOX.c.status.notin_(("held", "superseded")))).first()
    return released is None


def insert_row(conn: SAConnection | Session, *, tenant_key: str, entity: str, app_id: str, version: int, op: str,
               payload: dict[str, Any] | None, record_created_at: datetime | None = None,
               link_qbo_id: str | None = None, now: datetime | None = None) -> EnqueueResult:
    """Store one version of an app record, inside the caller's transaction (see the module doc).

    The payload is stored as given: validate it first (:func:`qb_pipelines.sync.push.enqueue`
    does, and is what apps call).

    Args:
        conn: the app's SQLAlchemy connection or session; nothing is committed here.
        tenant_key: whose record.
        entity: the registry entity (``"Customer"``).
        app_id: the app's id of the record.
        version: the app's version of it (only grows).
        op: ``upsert``, ``delete`` or ``void``.
        payload: the whole record in the app's vocabulary (``{}`` for delete and void).
        record_created_at: when the app created the record (defaults to now).
        link_qbo_id: link the record to this existing QBO object instead of pushing it.
        now: the time to stamp (tests).

    Raises:
        UnknownTenantError: no such tenant.
    """
    now = now or utcnow()
    created = record_created_at or now
    tenant_id = _tenant_id(conn, tenant_key)
    record = (OUTBOX.c.tenant_id == tenant_id) & (OUTBOX.c.entity == entity) & (OUTBOX.c.app_id == app_id)
    latest = conn.execute(sa.select(OUTBOX).where(record).order_by(OUTBOX.c.version.desc()).limit(1)).first()
    if latest is not None and int(latest._mapping["version"]) > version:
        return EnqueueResult(_view(latest, tenant_key), ignored=True)
    status = "held" if _is_held(conn, tenant_id, entity, app_id, created) else "pending"
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    stmt = _insert(dialect)(OUTBOX).values(
        tenant_id=tenant_id, entity=entity, app_id=app_id, version=version, op=op, payload=payload or {},
        link_qbo_id=link_qbo_id, record_created_at=created, status=status, attempts=0,
        reason="created in the app before QuickBooks was first connected: an admin decides whether to push it"
        if status == "held" else None,
        created_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "entity", "app_id", "version"]).returning(OUTBOX.c.id)
    new_id = conn.execute(stmt).scalar_one_or_none()
    row = conn.execute(sa.select(OUTBOX).where(record & (OUTBOX.c.version == version))).one()
    if new_id is None:
        return EnqueueResult(_view(row, tenant_key), duplicate=True)
    older = conn.execute(sa.select(OUTBOX.c.id).where(
        record & (OUTBOX.c.version < version) & OUTBOX.c.status.in_(("pending", "retrying", "blocked", "held",
                                                                      "review", "failed")))).scalars().all()
    if older:
        conn.execute(OUTBOX.update().where(OUTBOX.c.id.in_(older)).values(
            status="superseded", reason=f"replaced by version {version}", updated_at=now))
    return EnqueueResult(_view(row, tenant_key), superseded=tuple(int(i) for i in older))


class Outbox(Repository):
    """The outbox as push runs, the records API and the dashboard use it."""

    # -- reading ---------------------------------------------------------------------------

    def _select(self, session: Session, where: Any, tenant_key: str | None = None,
                order: Any = None, limit: int | None = None) -> list[OutboxView]:
        stmt = sa.select(OUTBOX, Tenant.key).join(Tenant, Tenant.id == OUTBOX.c.tenant_id).where(where)
        stmt = stmt.order_by(*(order if order is not None else (OUTBOX.c.id,)))
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_view(r, r._mapping["key"]) for r in session.execute(stmt).all()]

    def get(self, row_id: int) -> OutboxView | None:
        """One row by id."""
        with self._read() as session:
            rows = self._select(session, OUTBOX.c.id == row_id)
            return rows[0] if rows else None

    def record(self, tenant_key: str, entity: str, app_id: str) -> OutboxView | None:
        """The latest version's row of one record (what the records API reports)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            rows = self._select(session, (OUTBOX.c.tenant_id == tenant.id) & (OUTBOX.c.entity == entity)
                                & (OUTBOX.c.app_id == app_id), order=(OUTBOX.c.version.desc(),), limit=1)
            return rows[0] if rows else None

    def rows(self, tenant_key: str, statuses: Iterable[str], *, entity: str | None = None,
             limit: int = 500) -> list[OutboxView]:
        """The tenant's rows in ``statuses`` (oldest first), e.g. the dashboard's errors."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            where = (OUTBOX.c.tenant_id == tenant.id) & OUTBOX.c.status.in_(tuple(statuses))
            if entity is not None:
                where &= OUTBOX.c.entity == entity
            return self._select(session, where, limit=limit)

    def work(self, tenant_key: str, now: datetime, *, limit: int = 10_000) -> list[OutboxView]:
        """What a push run may act on now: in-flight rows first (to resume), then actionable ones.

        Actionable: ``pending``, ``blocked`` and ``retrying`` rows whose retry time has come, one
        per record (the latest version; older ones are superseded on the way).
        """
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            due = sa.or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now)
            where = (OUTBOX.c.tenant_id == tenant.id) & (
                (OUTBOX.c.status == "in_flight") | (OUTBOX.c.status.in_(ACTIONABLE) & due))
            return self._select(session, where, limit=limit)

    def latest_by_app_ids(self, tenant_key: str, entity: str, app_ids: Iterable[str], *,
                          chunk: int = 500) -> dict[str, OutboxView]:
        """The latest version's row of each of these records, by app id (records never sent are absent).

        What the app-against-QuickBooks reconciliation reads for every mapped record: whether the
        app's last word on it was a removal, or a change still on its way.
        """
        wanted = sorted({str(a) for a in app_ids})
        out: dict[str, OutboxView] = {}
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            for start in range(0, len(wanted), chunk):
                where = ((OUTBOX.c.tenant_id == tenant.id) & (OUTBOX.c.entity == entity)
                         & OUTBOX.c.app_id.in_(wanted[start:start + chunk]))
                for row in self._select(session, where, order=(OUTBOX.c.app_id, OUTBOX.c.version.desc())):
                    out.setdefault(row.app_id, row)
        return out

    def by_requestid(self, requestid: str) -> list[OutboxView]:
        """Every row a batch call carried (whatever became of each), by its requestid."""
        with self._read() as session:
            return self._select(session, OUTBOX.c.requestid == requestid)

    def in_flight_record_versions(self, tenant_key: str) -> set[tuple[str, str]]:
        """``(entity, app_id)`` of records with a row in flight (their newer rows wait for it)."""
        return {(r.entity, r.app_id) for r in self.rows(tenant_key, ("in_flight",), limit=100_000)}

    def counts(self, tenant_key: str) -> dict[str, int]:
        """Rows per status for the tenant."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            found = session.execute(sa.select(OUTBOX.c.status, sa.func.count()).where(
                OUTBOX.c.tenant_id == tenant.id).group_by(OUTBOX.c.status)).all()
            return {status: int(n) for status, n in found}

    def backlog(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per tenant: open rows by status, the oldest waiting row's age, the last push.

        What the outbox sensor and the outbox asset read: one query, every tenant.
        """
        now = now or self._now()
        with self._read() as session:
            stmt = (sa.select(Tenant.key, OUTBOX.c.status, sa.func.count(), sa.func.min(OUTBOX.c.created_at),
                              sa.func.max(OUTBOX.c.id), sa.func.max(OUTBOX.c.synced_at))
                    .join(Tenant, Tenant.id == OUTBOX.c.tenant_id).group_by(Tenant.key, OUTBOX.c.status))
            out: dict[str, dict[str, Any]] = {}
            for key, status, n, oldest, max_id, last_synced in session.execute(stmt).all():
                entry = out.setdefault(key, {"tenant_key": key, "counts": {}, "oldest_open_s": 0.0,
                                             "max_id": 0, "last_synced_at": None})
                entry["counts"][status] = int(n)
                entry["max_id"] = max(entry["max_id"], int(max_id or 0))
                if status in OPEN and status != "held" and oldest is not None:
                    entry["oldest_open_s"] = max(entry["oldest_open_s"], (now - _aware(oldest)).total_seconds())
                if last_synced is not None and (entry["last_synced_at"] is None
                                                or _aware(last_synced) > entry["last_synced_at"]):
                    entry["last_synced_at"] = _aware(last_synced)
            return list(out.values())

    def due_tenants(self, now: datetime | None = None) -> dict[str, int]:
        """Tenants with rows a push run can act on now, each with its highest such row id."""
        now = now or self._now()
        with self._read() as session:
            due = sa.or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now)
            stmt = (sa.select(Tenant.key, sa.func.max(OUTBOX.c.id))
                    .join(Tenant, Tenant.id == OUTBOX.c.tenant_id)
                    .where((OUTBOX.c.status == "in_flight") | ((OUTBOX.c.status.in_(("pending", "retrying"))) & due))
                    .group_by(Tenant.key))
            return {key: int(max_id) for key, max_id in session.execute(stmt).all()}

    def due_work(self, now: datetime | None = None, *, resume_after: timedelta = timedelta(0),
                 tenant_key: str | None = None) -> list[DueWork]:
        """Per tenant, the rows a push run can act on now: pending, retries come due, batches in flight.

        One query for every tenant (the outbox sensor calls it every second), or for one.

        Args:
            now: the time retries are due against.
            resume_after: rows in flight count only once this old: a batch whose answer was lost
                is re-sent after a pause, not in a tight loop while QuickBooks does not answer.
            tenant_key: only this tenant's rows (a push run following its outbox).
        """
        now = now or self._now()
        due = sa.or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now)
        where = (((OUTBOX.c.status == "in_flight") & (OUTBOX.c.updated_at <= now - resume_after))
                 | (OUTBOX.c.status.in_(("pending", "retrying")) & due))
        with self._read() as session:
            stmt = (sa.select(Tenant.key, OUTBOX.c.entity, OUTBOX.c.status, sa.func.count(), sa.func.max(OUTBOX.c.id),
                              sa.func.max(OUTBOX.c.updated_at))
                    .join(Tenant, Tenant.id == OUTBOX.c.tenant_id).where(where)
                    .group_by(Tenant.key, OUTBOX.c.entity, OUTBOX.c.status))
            if tenant_key is not None:
                stmt = stmt.where(Tenant.key == tenant_key)
            found: dict[str, dict[str, Any]] = {}
            for key, entity, status, n, max_id, changed in session.execute(stmt).all():
                entry = found.setdefault(key, {"rows": 0, "max_id": 0, "last_change": None, "entities": {},
                                               "in_flight": 0})
                entry["rows"] += int(n)
                entry["max_id"] = max(entry["max_id"], int(max_id))
                entry["entities"][entity] = entry["entities"].get(entity, 0) + int(n)
                if status == "in_flight":
                    entry["in_flight"] += int(n)
                changed = _aware(changed)
                if changed is not None and (entry["last_change"] is None or changed > entry["last_change"]):
                    entry["last_change"] = changed
        return [DueWork(tenant_key=key, **entry) for key, entry in sorted(found.items())]

    def reasons(self, tenant_key: str, statuses: Iterable[str]) -> list[dict[str, Any]]:
        """Rows in ``statuses`` grouped by (status, entity, reason), most rows first: why things wait."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            stmt = (sa.select(OUTBOX.c.status, OUTBOX.c.entity, OUTBOX.c.reason, sa.func.count())
                    .where(OUTBOX.c.tenant_id == tenant.id, OUTBOX.c.status.in_(tuple(statuses)))
                    .group_by(OUTBOX.c.status, OUTBOX.c.entity, OUTBOX.c.reason))
            found = [{"status": status, "entity": entity, "reason": reason, "rows": int(n)}
                     for status, entity, reason, n in session.execute(stmt).all()]
        return sorted(found, key=lambda r: (-r["rows"], r["status"], r["entity"], r["reason"] or ""))

    def oldest(self, tenant_key: str, statuses: Iterable[str]) -> OutboxView | None:
        """The tenant's oldest row (by enqueue time) in ``statuses``."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            rows = self._select(session, (OUTBOX.c.tenant_id == tenant.id) & OUTBOX.c.status.in_(tuple(statuses)),
                                order=(OUTBOX.c.created_at, OUTBOX.c.id), limit=1)
            return rows[0] if rows else None

    # -- writing ---------------------------------------------------------------------------

    def update(self, row_ids: Sequence[int], **values: Any) -> None:
        """Set columns of rows (the push run records outcomes with it); stamps ``updated_at``."""
        if not row_ids:
            return
        with self._write() as session:
            session.execute(OUTBOX.update().where(OUTBOX.c.id.in_(tuple(row_ids)))
                            .values(updated_at=self._now(), **_without_secrets(values)))

    def update_each(self, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Set different columns on several rows, in one transaction."""
        if not changes:
            return
        now = self._now()
        # consecutive rows setting the same columns go in one statement with many parameter sets
        # (executemany); the order of the changes is kept
        runs: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []
        for row_id, values in changes:
            clean = _without_secrets(values)
            names = tuple(sorted(clean))
            if not runs or runs[-1][0] != names:
                runs.append((names, []))
            runs[-1][1].append({"_row_id": row_id, **{f"_v_{k}": v for k, v in clean.items()}})
        with self._write() as session:
            conn = session.connection()
            for names, params in runs:
                stmt = OUTBOX.update().where(OUTBOX.c.id == sa.bindparam("_row_id")).values(
                    updated_at=now, **{k: sa.bindparam(f"_v_{k}", type_=OUTBOX.c[k].type) for k in names})
                conn.execute(stmt, params)

    def retry(self, row_ids: Sequence[int]) -> int:
        """Send failed (or retrying) rows again at the next push; returns how many changed."""
        return self._reopen(OUTBOX.c.id.in_(tuple(row_ids)), ("failed", "retrying", "blocked"))

    def retry_all(self, tenant_key: str) -> int:
        """Every failed, retrying or blocked row of the tenant goes at the next push."""
        with self._read() as session:
            tenant_id = self._tenant(session, tenant_key).id
        return self._reopen(OUTBOX.c.tenant_id == tenant_id, ("failed", "retrying", "blocked"))

    def release_held(self, tenant_key: str, *, entity: str | None = None, row_id: int | None = None) -> int:
        """An admin chose "push these too": held rows (all, one entity's, or one) become pending."""
        with self._read() as session:
            tenant_id = self._tenant(session, tenant_key).id
        where = OUTBOX.c.tenant_id == tenant_id
        if entity is not None:
            where &= OUTBOX.c.entity == entity
        if row_id is not None:
            where &= OUTBOX.c.id == row_id
        return self._reopen(where, ("held",), reason="released by an admin")

    def _reopen(self, where: Any, statuses: tuple[str, ...], reason: str | None = None) -> int:
        with self._write() as session:
            result = session.execute(OUTBOX.update().where(where & OUTBOX.c.status.in_(statuses)).values(
                status="pending", attempts=0, next_attempt_at=None, reason=reason, updated_at=self._now()))
            return int(result.rowcount or 0)

    def resolve(self, row_id: int, payload: dict[str, Any]) -> OutboxView:
        """An admin resolved a review: the row goes with ``payload`` (the values chosen) at the next push.

        The admin decided against QuickBooks' values as the review showed them: those (and their
        SyncToken, ``review["resolution_base"]`` when the push run recorded them) become the base
        the next push compares with (``review["resolution"]``), so a field where the admin kept the
        app's value is written, and only a change made in QuickBooks *after* the review asks again.

        Raises:
            LookupError: no such row, or it is not waiting for a review.
        """
        return self._resolve(row_id, payload=payload, reason="resolved by an admin")

    def choose_match(self, row_id: int, qbo_id: str | None) -> OutboxView:
        """An admin settled an ambiguous match: link the record to one candidate, or create it anew.

        ``qbo_id`` (one of the review's candidates): the next push links the record to that
        QuickBooks object (the mapping is recorded, nothing is written, as when the app sends
        ``qbo_id``). ``None``: the next push creates the record without looking for matches.

        Raises:
            LookupError: no such row, or it is not waiting on an ambiguous match.
            ValueError: ``qbo_id`` is not one of the candidates.
        """
        found = self.get(row_id)
        if found is None or found.status != "review" or (found.review or {}).get("kind") != "ambiguous_match":
            raise LookupError(f"outbox row {row_id} is not waiting on an ambiguous match")
        if qbo_id is None:
            return self._resolve(row_id, choice={"create": True},
                                 reason="an admin chose to create it in QuickBooks (no match)")
        candidates = {str(c.get("qbo_id")) for c in (found.review or {}).get("candidates") or []}
        if str(qbo_id) not in candidates:
            raise ValueError(f"QuickBooks id {qbo_id} is not one of the candidates of outbox row {row_id}")
        return self._resolve(row_id, choice={"qbo_id": str(qbo_id)}, link_qbo_id=str(qbo_id),
                             reason=f"an admin linked it to QuickBooks {found.entity.lower()} {qbo_id}")

    def _resolve(self, row_id: int, *, reason: str, payload: dict[str, Any] | None = None,
                 choice: dict[str, Any] | None = None, link_qbo_id: str | None = None) -> OutboxView:
        with self._write() as session:
            found = session.execute(sa.select(OUTBOX).where(OUTBOX.c.id == row_id)).first()
            if found is None or found._mapping["status"] != "review":
                raise LookupError(f"outbox row {row_id} is not waiting for a review")
            review = dict(found._mapping["review"] or {})
            review["resolved_at"] = self._now().isoformat()
            if review.get("resolution_base"):
                review["resolution"] = review["resolution_base"]
            if choice is not None:
                review["choice"] = choice
            values: dict[str, Any] = {"status": "pending", "review": review, "reason": reason, "attempts": 0,
                                      "next_attempt_at": None, "updated_at": self._now()}
            if payload is not None:
                values["payload"] = payload
            if link_qbo_id is not None:
                values["link_qbo_id"] = link_qbo_id
            session.execute(OUTBOX.update().where(OUTBOX.c.id == row_id).values(**values))
        view = self.get(row_id)
        assert view is not None
        return view

    def last_synced_at(self, tenant_key: str) -> datetime | None:
        """When a record of the tenant last reached QuickBooks (the card's "last push")."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            found = session.execute(sa.select(sa.func.max(OUTBOX.c.synced_at)).where(
                OUTBOX.c.tenant_id == tenant.id)).scalar_one_or_none()
            return _aware(found)

    def purge_synced(self, older_than: timedelta) -> int:
        """Delete synced, superseded and dropped rows older than ``older_than`` (keeps the table small)."""
        cutoff = self._now() - older_than
        with self._write() as session:
            result = session.execute(OUTBOX.delete().where(
                OUTBOX.c.status.in_(("synced", "superseded", "dropped")) & (OUTBOX.c.updated_at < cutoff)))
            return int(result.rowcount or 0)
