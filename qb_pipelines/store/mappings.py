"""Mappings: which QuickBooks object an app record corresponds to, per company.

A mapping links ``(tenant, realm, entity, app_id)`` to QBO's ``Id``. It is kept across
disconnects and reconnects of the same company; after a switch to another company the tenant's
mappings of the old realm stay (they name objects of that company) and the new company starts
with none. Inbound changes arrive with QBO ids, so the QBO side is indexed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qb_pipelines.store.models import Connection, EntityMapping
from qb_pipelines.store.repository import Repository

__all__ = ["MappingStore", "MappingView"]


@dataclass(frozen=True)
class MappingView:
    """One app record <-> QBO object correspondence in one company."""

    tenant_key: str
    realm_id: str
    entity: str
    app_id: str
    qbo_id: str
    updated_at: datetime


def _view(tenant_key: str, row: EntityMapping) -> MappingView:
    return MappingView(tenant_key, row.realm_id, row.entity, row.app_id, row.qbo_id, row.updated_at)


class MappingStore(Repository):
    """Record and look up app <-> QBO correspondences."""

    def _realm(self, session: Session, tenant_id: int, tenant_key: str, realm_id: str | None) -> str:
        if realm_id is not None:
            return realm_id
        conn = session.scalars(sa.select(Connection).where(Connection.tenant_id == tenant_id)).one_or_none()
        if conn is None:
            raise ValueError(f"tenant {tenant_key!r} has never connected: pass realm_id explicitly.")
        return conn.realm_id

    def add(self, tenant_key: str, entity: str, app_id: str, qbo_id: str, realm_id: str | None = None) -> MappingView:
        """Record (or update) which QBO object an app record corresponds to.

        Args:
            entity: QBO entity name (``"Customer"``).
            app_id: the app's id of the record.
            qbo_id: QBO's ``Id``.
            realm_id: the company; defaults to the tenant's connected company.
        """
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
                                            qbo_id=qbo_id, created_at=now, updated_at=now)
                        session.add(row)
                    else:
                        row.qbo_id = qbo_id
                        row.updated_at = now
                    session.flush()
                    return _view(tenant_key, row)
            except IntegrityError:
                continue  # a concurrent insert of the same key: retry as an update
        raise RuntimeError("could not save mapping")  # pragma: no cover

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
