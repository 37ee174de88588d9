"""Per-tenant API keys of the records API.

A key is 32 random bytes (URL-safe base64) behind a short, readable prefix (``qbk_``), shown once
when created (``qb-pipelines api-keys create TENANT``). Only its SHA-256 is stored: a random key
of that length cannot be guessed from its hash, so a slow password hash would only slow every
API call down. A request's key is hashed and looked up in one indexed query; the comparison is
done by the database on the hash, so timing reveals nothing about the key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from qb_pipelines.store.models import ApiKey, Tenant
from qb_pipelines.store.repository import Repository

__all__ = ["ApiKeyStore", "ApiKeyView", "NewApiKey"]

KEY_PREFIX = "qbk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyView:
    """A key as lists show it: never the key itself."""

    id: int
    tenant_key: str
    prefix: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``key`` is shown once and never stored."""

    view: ApiKeyView
    key: str

    def __repr__(self) -> str:  # never print the key by accident
        return f"NewApiKey(prefix={self.view.prefix!r}, tenant={self.view.tenant_key!r})"


class ApiKeyStore(Repository):
    """Create, check, list and revoke tenants' API keys."""

    def create(self, tenant_key: str, name: str | None = None) -> NewApiKey:
        """A new key for the tenant (shown once).

        Raises:
            UnknownTenantError: no such tenant.
        """
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = ApiKey(tenant_id=tenant.id, prefix=key[:12], key_hash=_hash(key), name=name, created_at=self._now())
            session.add(row)
            session.flush()
            self._event(session, tenant.id, "api_key_created", f"key {row.prefix}... {name or ''}".strip())
            view = self._view(tenant_key, row)
        return NewApiKey(view, key)

    @staticmethod
    def _view(tenant_key: str, row: ApiKey) -> ApiKeyView:
        return ApiKeyView(row.id, tenant_key, row.prefix, row.name, row.created_at, row.last_used_at, row.revoked_at)

    def tenant_of(self, key: str | None) -> str | None:
        """The tenant a presented key belongs to, or ``None`` (unknown, revoked or empty)."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._read() as session:
            row = session.execute(
                sa.select(ApiKey.id, ApiKey.last_used_at, Tenant.key).join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(ApiKey.key_hash == _hash(key), ApiKey.revoked_at.is_(None))
            ).first()
        if row is None:
            return None
        key_id, last_used, tenant_key = row
        now = self._now()
        # last use, at most once a minute, in its own short write: a busy API must not take the
        # store's write lock on every call (SQLite has one for the whole database)
        if last_used is None or (now - last_used).total_seconds() > 60:
            with self._write() as session:
                session.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        return str(tenant_key)

    def list_for(self, tenant_key: str) -> list[ApiKeyView]:
        """The tenant's keys, newest first."""
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            rows = session.scalars(sa.select(ApiKey).where(ApiKey.tenant_id == tenant.id)
                                   .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())).all()
            return [self._view(tenant_key, r) for r in rows]

    def revoke(self, tenant_key: str, prefix: str) -> int:
        """Revoke the tenant's keys starting with ``prefix``; returns how many."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            rows = session.scalars(sa.select(ApiKey).where(
                ApiKey.tenant_id == tenant.id, ApiKey.prefix.startswith(prefix[:12]), ApiKey.revoked_at.is_(None))).all()
            for row in rows:
                row.revoked_at = self._now()
                self._event(session, tenant.id, "api_key_revoked", f"key {row.prefix}...")
            return len(rows)
