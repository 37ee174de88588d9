"""Tenants: the app's customer organisations, each of which may connect a QuickBooks company."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qb_pipelines.store.models import Tenant
from qb_pipelines.store.repository import Repository

__all__ = ["TenantStore", "TenantView"]

#: Longest tenant key (the app's stable identifier of the tenant).
MAX_TENANT_KEY = 100


@dataclass(frozen=True)
class TenantView:
    """A tenant: its stable key (from the app) and display name."""

    key: str
    name: str


class TenantStore(Repository):
    """Create, rename and list tenants."""

    def ensure_tenant(self, key: str, name: str) -> TenantView:
        """Create the tenant if it is new, or update its display name.

        Args:
            key: the app's stable identifier of the tenant (at most 100 characters).
            name: the name shown on admin pages.
        """
        key = (key or "").strip()
        if not key or len(key) > MAX_TENANT_KEY:
            raise ValueError("A tenant key must be 1 to 100 characters (the app's stable tenant identifier).")
        name = (name or "").strip() or key
        for _attempt in range(2):
            try:
                with self._write() as session:
                    tenant = session.scalars(sa.select(Tenant).where(Tenant.key == key)).one_or_none()
                    if tenant is None:
                        session.add(Tenant(key=key, name=name, created_at=self._now()))
                    elif tenant.name != name:
                        tenant.name = name
                return TenantView(key=key, name=name)
            except IntegrityError:
                # Another process created it between our SELECT and INSERT: update instead.
                continue
        raise RuntimeError(f"could not create tenant {key!r}")  # pragma: no cover

    def tenants(self) -> list[TenantView]:
        """Every tenant, by name."""
        with self._read() as session:
            rows = session.scalars(sa.select(Tenant).order_by(Tenant.name, Tenant.key)).all()
            return [TenantView(key=t.key, name=t.name) for t in rows]

    def get(self, key: str) -> TenantView | None:
        """The tenant ``key``, or ``None``."""
        with self._read() as session:
            row = session.scalars(sa.select(Tenant).where(Tenant.key == key)).one_or_none()
            return TenantView(key=row.key, name=row.name) if row else None
