"""Push: the app's changes to QuickBooks, exactly once, dependencies first (the mirror of ``sync.ingest``).

Two entry points:

* :func:`enqueue` -- the app's door for one record (the records API calls it; an app sharing the
  database calls it inside its own transaction, so the record and its outbox row commit together);
* :func:`push` -- one run for one company: resume, gate, plan, match, send, record
  (:mod:`qb_pipelines.sync.push.engine`). Dagster's push job calls it; so does
  ``qb-pipelines push``.

Replace vs incremental: push is always incremental: only outbox rows not yet synced are sent;
records are sent whole on create and as the fields the app changed on update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from qb_pipelines.store.outbox import EnqueueResult, insert_row
from qb_pipelines.sync.push.contract import PayloadError, Record, validate
from qb_pipelines.sync.push.engine import push
from qb_pipelines.sync.push.result import PushResult

__all__ = ["EnqueueResult", "PayloadError", "PushResult", "enqueue", "enqueue_record", "push"]


def enqueue_record(conn: Connection | Session, tenant_key: str, record: Record, *,
                   now: datetime | None = None) -> EnqueueResult:
    """Store a validated record (:func:`qb_pipelines.sync.push.contract.validate`) in the outbox."""
    try:
        created = datetime.fromisoformat(record.created_at.replace("Z", "+00:00")) if record.created_at else None
    except ValueError:
        raise PayloadError("created_at", "not an ISO 8601 date-time (e.g. 2026-11-02T10:00:00Z)") from None
    if created is not None and created.tzinfo is None:
        raise PayloadError("created_at", "give a time zone (e.g. 2026-11-02T10:00:00Z)")
    return insert_row(conn, tenant_key=tenant_key, entity=record.entity, app_id=record.app_id, version=record.version,
                      op=record.op, payload=record.data, record_created_at=created, link_qbo_id=record.qbo_id, now=now)


def enqueue(conn: Connection | Session, tenant_key: str, *, entity: str, app_id: str, version: int,
            op: str = "upsert", data: dict[str, Any] | None = None, qbo_id: str | None = None,
            created_at: str | datetime | None = None, now: datetime | None = None) -> EnqueueResult:
    """Tell the integration a record changed, inside the caller's transaction (the transactional outbox).

    Example (an app sharing the database)::

        with engine.begin() as conn:
            conn.execute(insert(my_invoices).values(...))          # the app's own record
            enqueue(conn, "acme", entity="Invoice", app_id="inv-1042", version=1, data={
                "customer_app_id": "cust-7",
                "lines": [{"item_app_id": "svc-lawn", "qty": 2, "unit_price": 45.0, "taxable": True}],
            })                                                      # commits (or rolls back) with it

    Args:
        conn: the app's SQLAlchemy connection or session, in its transaction.
        tenant_key: the tenant.
        entity: ``Customer``, ``Vendor``, ``Item``, ``Invoice``, ``Estimate`` or ``Bill``.
        app_id: the app's id of the record.
        version: the app's version of the record (only grows).
        op: ``upsert``, ``delete`` or ``void``.
        data: the whole record in the app's vocabulary (``GET /api/v1/schema``).
        qbo_id: link the record to this existing QuickBooks object instead of pushing it.
        created_at: when the app created the record (held when before the first connection).

    Raises:
        PayloadError: the record does not follow the contract (nothing stored).
        UnknownTenantError: no such tenant.
    """
    body: dict[str, Any] = {"entity": entity, "app_id": app_id, "version": version, "op": op, "data": data or {}}
    if qbo_id is not None:
        body["qbo_id"] = qbo_id
    if created_at is not None:
        body["created_at"] = created_at.isoformat() if isinstance(created_at, datetime) else created_at
    return enqueue_record(conn, tenant_key, validate(body), now=now)
