"""What every repository of the integration store shares: sessions, the clock, tenants, the audit trail.

The store is one database (SQLite by default, PostgreSQL in deployment) holding several small
repositories, one per concern: tenants (:mod:`~qb_pipelines.store.tenants`), connections and
their tokens (:mod:`~qb_pipelines.store.connections`, :mod:`~qb_pipelines.store.tokens`), sync
settings (:mod:`~qb_pipelines.store.tenant_settings`), mappings (:mod:`~qb_pipelines.store.mappings`)
and metered API usage (:mod:`~qb_pipelines.store.usage`). They share a session factory, so they
share one connection pool; the runtime (:mod:`qb_pipelines.sync.runtime`) builds them once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.models import ConnectionEvent, Tenant, utcnow

__all__ = ["Repository", "UnknownTenantError"]

#: The transaction of the :meth:`Repository.together` block running in this thread (or task), if any.
_JOINED: ContextVar[tuple[sessionmaker[Session], Session] | None] = ContextVar("qbp_store_joined", default=None)


class UnknownTenantError(LookupError):
    """The tenant key is not in the store."""

    def __init__(self, tenant_key: str) -> None:
        super().__init__(
            f"No tenant {tenant_key!r} in the store: create it first "
            f"(`qb-pipelines tenants create {tenant_key} NAME`, or Add tenant in the admin web app)."
        )
        self.tenant_key = tenant_key


class Repository:
    """Base of the store's repositories.

    Args:
        session_factory: sessions bound to the store's engine (:func:`qb_pipelines.store.db.session_factory`).
        clock: returns "now" as an aware UTC datetime (tests move time; defaults to the wall clock).
    """

    def __init__(self, session_factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow) -> None:
        self._sf = session_factory
        self._now = clock
        bind = session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError(f"{type(self).__name__} needs a sessionmaker bound to an Engine (db.session_factory(engine))")
        self.engine: Engine = bind

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A transaction that writes; commits on success, rolls back on error.

        On SQLite it starts with ``BEGIN IMMEDIATE`` (the write lock at once), so a
        read-then-write sequence never meets a concurrent writer half-way. Inside
        :meth:`together` the writes join that block's transaction instead.
        """
        joined = _JOINED.get()
        if joined is not None and joined[0] is self._sf:
            yield joined[1]
            return
        with self._sf() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            yield session

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes of this store's repositories made in the block (this thread) commit as one transaction.

        All of them or none: an error in the block rolls every one back. Reads in the block
        do not see its writes before the end. Nested blocks join the outer one.
        """
        if _JOINED.get() is not None:
            yield
            return
        with self._sf() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            token = _JOINED.set((self._sf, session))
            try:
                yield
            finally:
                _JOINED.reset(token)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sf() as session:
            yield session

    @staticmethod
    def _tenant(session: Session, tenant_key: str) -> Tenant:
        tenant = session.scalars(sa.select(Tenant).where(Tenant.key == tenant_key)).one_or_none()
        if tenant is None:
            raise UnknownTenantError(tenant_key)
        return tenant

    def _event(self, session: Session, tenant_id: int, kind: str, detail: str | None = None) -> None:
        """Append to the tenant's audit trail (connects, refreshes, settings saved...); never a secret."""
        session.add(ConnectionEvent(tenant_id=tenant_id, at=self._now(), kind=kind, detail=detail))
