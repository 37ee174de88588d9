"""Tenants: the app's customer organisations, each of which may connect a QuickBooks company."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qb_pipelines.store.models import Tenant
from qb_pipelines.store.repository import Repository

__all__ = ["TenantStore", "TenantView"]

#: Longest tenant key (the app's stable identifier of the tenant).
MAX_TENANT_KEY = 100


@dataclass(frozen=True)
class TenantView:
    """A tenant: its stable key (from the app), display name and, for an extra company, its parent."""

    key: str
    name: str
    parent_key: str | None = None


class TenantStore(Repository):
    """Create, rename and list tenants."""

    def ensure_tenant(self, key: str, name: str, *, parent_key: str | None = None) -> TenantView:
        """Create the tenant if it is new, or update its display name.

        Args:
            key: the app's stable identifier of the tenant (at most 100 characters).
            name: the name shown on admin pages.
            parent_key: for a company connection tenant (``QB_COMPANIES_PER_TENANT=several``), the
                tenant it belongs to; that tenant must exist and not be a company tenant itself.
                An existing tenant keeps its parent.
        """
        key = (key or "").strip()
        if not key or len(key) > MAX_TENANT_KEY:
            raise ValueError("A tenant key must be 1 to 100 characters (the app's stable tenant identifier).")
        name = (name or "").strip() or key
        for _attempt in range(2):
            try:
                with self._write() as session:
                    tenant = session.scalars(sa.select(Tenant).where(Tenant.key == key)).one_or_none()
                    if parent_key is not None:
                        self._check_parent(session, key, parent_key, tenant)
                    if tenant is None:
                        tenant = Tenant(key=key, name=name, parent_key=parent_key, created_at=self._now())
                        session.add(tenant)
                    elif tenant.name != name:
                        tenant.name = name
                    parent = tenant.parent_key
                return TenantView(key=key, name=name, parent_key=parent)
            except IntegrityError:
                # Another process created it between our SELECT and INSERT: update instead.
                continue
        raise RuntimeError(f"could not create tenant {key!r}")  # pragma: no cover

    @staticmethod
    def _check_parent(session: Any, key: str, parent_key: str, tenant: Tenant | None) -> None:
        if tenant is not None and tenant.parent_key != parent_key:
            raise ValueError(f"Tenant {key} already exists and does not belong to {parent_key}: choose another key.")
        if parent_key == key:
            raise ValueError("A tenant cannot be its own parent.")
        parent = session.scalars(sa.select(Tenant).where(Tenant.key == parent_key)).one_or_none()
        if parent is None:
            raise ValueError(f"No tenant {parent_key}: create it first.")
        if parent.parent_key is not None:
            raise ValueError(f"Tenant {parent_key} is itself a company of {parent.parent_key}: use {parent.parent_key}.")

    def add_company(self, parent_key: str) -> TenantView:
        """Create the next company connection tenant of ``parent_key``: ``<key>-2``, ``-3``...

        Its name is "<parent name> (company N)". Raises ``ValueError`` for an unknown parent or
        a parent that is itself a company tenant.
        """
        with self._read() as session:
            parent = session.scalars(sa.select(Tenant).where(Tenant.key == parent_key)).one_or_none()
            if parent is None:
                raise ValueError(f"No tenant {parent_key}: create it first.")
            if parent.parent_key is not None:
                raise ValueError(f"Tenant {parent_key} is itself a company of {parent.parent_key}: "
                                 f"use {parent.parent_key}.")
            taken = set(session.scalars(sa.select(Tenant.key).where(Tenant.key.like(f"{parent_key}-%"))).all())
            parent_name = parent.name
        number = 2
        while f"{parent_key}-{number}" in taken:
            number += 1
        key = f"{parent_key}-{number}"
        if len(key) > MAX_TENANT_KEY:
            raise ValueError(f"Tenant key {parent_key} is too long to add companies to (keys are at most 100 characters).")
        return self.ensure_tenant(key, f"{parent_name} (company {number})"[:200], parent_key=parent_key)

    def children(self, parent_key: str) -> list[TenantView]:
        """The company connection tenants of ``parent_key``, by key."""
        with self._read() as session:
            rows = session.scalars(sa.select(Tenant).where(Tenant.parent_key == parent_key).order_by(Tenant.id)).all()
            return [TenantView(key=t.key, name=t.name, parent_key=t.parent_key) for t in rows]

    def tenants(self) -> list[TenantView]:
        """Every tenant, by name."""
        with self._read() as session:
            rows = session.scalars(sa.select(Tenant).order_by(Tenant.name, Tenant.key)).all()
            return [TenantView(key=t.key, name=t.name, parent_key=t.parent_key) for t in rows]

    def get(self, key: str) -> TenantView | None:
        """The tenant ``key``, or ``None``."""
        with self._read() as session:
            row = session.scalars(sa.select(Tenant).where(Tenant.key == key)).one_or_none()
            return TenantView(key=row.key, name=row.name, parent_key=row.parent_key) if row else None
