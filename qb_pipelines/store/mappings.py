"""Mappings: which QuickBooks object an app record corresponds to, and what both sides agreed on.

A mapping links ``(tenant, realm, entity, app_id)`` to QBO's ``Id`` and keeps what a two-way
sync needs to tell who changed what:

* ``sync_token``: QBO's SyncToken when both sides last agreed. An update sent with it fails
  (5010) exactly when QuickBooks changed the object since -- the moment a conflict policy decides;
* ``agreed``: the values both sides last agreed on, in the app's vocabulary: the base of the
  three-way decision (agreed, app, QuickBooks), and what tells an echo of the integration's own
  write from a real change made in QuickBooks;
* ``app_version``, ``qbo_updated_at``: the versions of that agreement on each side;
* ``state``: ``active``, or what happened to the object in QuickBooks (``inactive``, ``deleted``,
  ``voided``).

Mappings are kept across disconnects and reconnects of the same company; after a switch the old
realm's mappings stay (they name that company's objects) and the new company starts with none.
Inbound changes arrive with QBO ids, so the QBO side is indexed too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qb_pipelines.store.models import Connection, EntityMapping
from qb_pipelines.store.repository import Repository

__all__ = ["MappingStore", "MappingView"]

_CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class MappingView:
    """One app record <-> QBO object correspondence in one company."""

    tenant_key: str
    realm_id: str
    entity: str
    app_id: str
    qbo_id: str
    updated_at: datetime
    sync_token: str | None = None
    agreed: dict[str, Any] | None = None
    app_version: int | None = None
    qbo_updated_at: datetime | None = None
    state: str = "active"


def _view(tenant_key: str, row: EntityMapping) -> MappingView:
    return MappingView(tenant_key, row.realm_id, row.entity, row.app_id, row.qbo_id, row.updated_at,
                       row.sync_token, row.agreed, row.app_version, row.qbo_updated_at, row.state or "active")


class MappingStore(Repository):
    """Record and look up app <-> QBO correspondences."""

    def _realm(self, session: Session, tenant_id: int, tenant_key: str, realm_id: str | None) -> str:
        if realm_id is not None:
            return realm_id
        conn = session.scalars(sa.select(Connection).where(Connection.tenant_id == tenant_id)).one_or_none()
        if conn is None:
            raise ValueError(f"tenant {tenant_key!r} has never connected: pass realm_id explicitly.")
        return conn.realm_id

    def add(self, tenant_key: str, entity: str, app_id: str, qbo_id: str, realm_id: str | None = None,
            **agreement: Any) -> MappingView:
        """Record (or update) which QBO object an app record corresponds to.

        Args:
            entity: QBO entity name (``"Customer"``).
            app_id: the app's id of the record.
            qbo_id: QBO's ``Id``.
            realm_id: the company; defaults to the tenant's connected company.
            **agreement: ``sync_token``, ``agreed``, ``app_version``, ``qbo_updated_at``, ``state``
                to store with it (left as they are when not given).
        """
        unknown = set(agreement) - {"sync_token", "agreed", "app_version", "qbo_updated_at", "state"}
        if unknown:
            raise TypeError(f"unknown mapping fields: {', '.join(sorted(unknown))}")
        for _attempt in range(2):
            try:
                with self._write() as session:
                    tenant = self._tenant(session, tenant_key)
                    realm = self._realm(session, tenant.id, tenant_key, realm_id)
                    row = session.scalars(
                        sa.select(EntityMapping).where(
                            EntityMapping.tenant_id == tenant.id,
                            EntityMapping.realm_id == realm,
                            EntityMapping.entity == entity,
                            EntityMapping.app_id == app_id,
                        )
                    ).one_or_none()
                    now = self._now()
                    if row is None:
                        row = EntityMapping(tenant_id=tenant.id, realm_id=realm, entity=entity, app_id=app_id,
                                            qbo_id=qbo_id, created_at=now, updated_at=now, state="active")
                        session.add(row)
                    else:
                        row.qbo_id = qbo_id
                        row.updated_at = now
                    for name, value in agreement.items():
                        setattr(row, name, value)
                    session.flush()
                    return _view(tenant_key, row)
            except IntegrityError:
                continue  # a concurrent insert of the same key: retry as an update
        raise RuntimeError("could not save mapping")  # pragma: no cover

    def add_many(self, tenant_key: str, realm_id: str,
                 entries: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
        """Record several mappings of one company in one transaction (what :meth:`add` does for each).

        Args:
            entries: ``(entity, app_id, qbo_id, agreement)`` in order (a later one for the same
                record wins); ``agreement`` as the keyword arguments of :meth:`add`.
        """
        entries = list(entries)
        for _e, _a, _q, agreement in entries:
            unknown = set(agreement) - {"sync_token", "agreed", "app_version", "qbo_updated_at", "state"}
            if unknown:
                raise TypeError(f"unknown mapping fields: {', '.join(sorted(unknown))}")
        if not entries:
            return
        # one row per record (a later entry wins, field by field, as if written one after the other)
        merged: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for entity, app_id, qbo_id, agreement in entries:
            _old_qbo, before = merged.get((entity, app_id), ("", {}))
            merged[(entity, app_id)] = (qbo_id, {**before, **agreement})
        table = EntityMapping.__table__
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            now = self._now()
            # rows setting the same fields: one INSERT ... ON CONFLICT DO UPDATE with many parameter sets
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for (entity, app_id), (qbo_id, agreement) in merged.items():
                groups.setdefault(tuple(sorted(agreement)), []).append(
                    {"tenant_id": tenant.id, "realm_id": realm_id, "entity": entity, "app_id": app_id,
                     "qbo_id": qbo_id, "created_at": now, "updated_at": now, "state": "active", **agreement})
            insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
            for names, rows in groups.items():
                stmt = insert(table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "realm_id", "entity", "app_id"],
                    set_={name: stmt.excluded[name] for name in ("qbo_id", "updated_at", *names)})
                session.execute(stmt, rows)

    def list_for(self, tenant_key: str, entity: str | None = None, realm_id: str | None = None) -> list[MappingView]:
        """The tenant's mappings, optionally for one entity and/or one company (all companies by default)."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            stmt = sa.select(EntityMapping).where(EntityMapping.tenant_id == tenant.id)
            if entity is not None:
                stmt = stmt.where(EntityMapping.entity == entity)
            if realm_id is not None:
                stmt = stmt.where(EntityMapping.realm_id == realm_id)
            stmt = stmt.order_by(EntityMapping.realm_id, EntityMapping.entity, EntityMapping.app_id)
            return [_view(tenant_key, m) for m in session.scalars(stmt).all()]

    def app_ids(self, tenant_key: str, realm_id: str) -> dict[tuple[str, str], str]:
        """``(entity, QBO id) -> app id`` of every record the tenant mapped in one company (ids only).

        Two records mapped to one QBO object: the last by app id (as :meth:`list_for` lists them).
        """
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            rows = session.execute(sa.select(EntityMapping.entity, EntityMapping.qbo_id, EntityMapping.app_id).where(
                EntityMapping.tenant_id == tenant.id, EntityMapping.realm_id == realm_id)
                .order_by(EntityMapping.entity, EntityMapping.app_id)).all()
        return {(entity, qbo_id): app_id for entity, qbo_id, app_id in rows}

    def _many(self, tenant_key: str, realm_id: str, entity: str, column: Any, keys: Iterable[str]) -> list[MappingView]:
        wanted = sorted({str(k) for k in keys})
        out: list[MappingView] = []
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            for start in range(0, len(wanted), _CHUNK):
                stmt = sa.select(EntityMapping).where(
                    EntityMapping.tenant_id == tenant.id, EntityMapping.realm_id == realm_id,
                    EntityMapping.entity == entity, column.in_(wanted[start:start + _CHUNK]))
                out.extend(_view(tenant_key, m) for m in session.scalars(stmt).all())
        return out

    def by_app_ids(self, tenant_key: str, realm_id: str, entity: str, app_ids: Iterable[str]) -> dict[str, MappingView]:
        """The mappings of these app records in one company, by app id."""
        return {m.app_id: m for m in self._many(tenant_key, realm_id, entity, EntityMapping.app_id, app_ids)}

    def by_qbo_ids(self, tenant_key: str, realm_id: str, entity: str, qbo_ids: Iterable[str]) -> dict[str, MappingView]:
        """The mappings of these QBO objects in one company, by QBO id (what inbound changes need)."""
        return {m.qbo_id: m for m in self._many(tenant_key, realm_id, entity, EntityMapping.qbo_id, qbo_ids)}

    def get(self, tenant_key: str, realm_id: str, entity: str, app_id: str) -> MappingView | None:
        """One record's mapping in one company, or ``None``."""
        return self.by_app_ids(tenant_key, realm_id, entity, [app_id]).get(app_id)
