"""The integration, wired once: store, warehouse, inbox and each company's QuickBooks client.

Everything that runs the integration -- the Dagster resources, the admin web app, the command
line, the demo and the benchmarks -- asks one :class:`Runtime` for what it needs instead of
assembling its own engine, stores and clients. It is built once from :class:`AppSettings` (read
when a process, a run or a command starts, never at import) and owns:

* the SQLAlchemy engine of the store and warehouse (one database, one pool), migrated to the
  latest schema when opened;
* the store's repositories: tenants, connections (state, tokens), per-tenant sync settings,
  app <-> QBO mappings, metered API usage, admin users and their web sessions and sign-in
  counters, the record of each company's landings, the webhook inbox, the outbox of app
  changes, the records API's keys and the change feed back to the app;
* the warehouse writer the landing uses;
* each company's :class:`~qb_pipelines.qbo.client.QBOClient` (:meth:`Runtime.client_for`): tokens
  from the store (refreshed single-flight across processes), the environment the company was
  connected in, its realm's rate limiter (QBO's per-company limits counted in the store across
  processes, the process-wide limiter as the fast path), every read metered.

Following a company from a Dagster partition key to the HTTP call is therefore
``runtime.client_for(key)`` and nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from qb_pipelines.qbo.client import QBOClient, TokenSource
from qb_pipelines.qbo.oauth import IntuitOAuth
from qb_pipelines.qbo.ratelimit import RateLimiter, limiter_for
from qb_pipelines.store.api_keys import ApiKeyStore
from qb_pipelines.store.connections import ConnectionStore
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.db import make_engine, migrate, session_factory
from qb_pipelines.store.feed import FeedStore
from qb_pipelines.store.mappings import MappingStore
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import Outbox
from qb_pipelines.store.rate_limits import SharedRateLimiter, shares_across_processes
from qb_pipelines.store.signin_throttle import SigninThrottleStore
from qb_pipelines.store.sync_runs import SyncRunStore
from qb_pipelines.store.tenant_settings import SettingsStore
from qb_pipelines.store.tenants import TenantStore
from qb_pipelines.store.usage import UsageMeter
from qb_pipelines.store.users import AdminUserStore
from qb_pipelines.store.warehouse import WarehouseWriter
from qb_pipelines.store.web_sessions import WebSessionStore
from qb_pipelines.store.webhook_inbox import WebhookInbox
from qb_pipelines.sync.companies import Company, UnknownCompanyError, company_of, split_company_key
from qb_pipelines.sync.settings import AppSettings

__all__ = ["Runtime"]


class Runtime:
    """One deployment of the integration, as seen from one process.

    Args:
        settings: where the store is, the token key, the Intuit app.
        engine: an engine to use instead of one made from ``settings.database_url`` (tests).
        migrate_schema: bring the schema to the latest migration first (idempotent).
        clock: "now" for the store (tests move time).

    Attributes:
        settings: the settings it was built from.
        engine: the store's and warehouse's engine.
        tenants, connections, tenant_settings, mappings, usage, users, web_sessions,
            signin_throttle, sync_runs, inbox, outbox, api_keys, feed: the store's repositories
            (:mod:`qb_pipelines.store`).
        warehouse: the writer the landing uses.
    """

    def __init__(self, settings: AppSettings, *, engine: Engine | None = None, migrate_schema: bool = True,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.database_url)
        if migrate_schema:
            migrate(self.engine)
        sessions = session_factory(self.engine)
        self.tenants = TenantStore(sessions, clock=clock)
        box = SecretBox(settings.fernet_key)
        self.connections = ConnectionStore(sessions, box, clock=clock)
        self.tenant_settings = SettingsStore(sessions, clock=clock)
        self.mappings = MappingStore(sessions, clock=clock)
        self.usage = UsageMeter(sessions, clock=clock)
        self.users = AdminUserStore(sessions, clock=clock)
        self.web_sessions = WebSessionStore(sessions, clock=clock)
        self.signin_throttle = SigninThrottleStore(sessions, clock=clock)
        self.sync_runs = SyncRunStore(sessions, clock=clock)
        self.inbox = WebhookInbox(sessions)
        self.outbox = Outbox(sessions, clock=clock)
        self.api_keys = ApiKeyStore(sessions, clock=clock)
        self.feed = FeedStore(sessions, box, clock=clock)
        self.warehouse = WarehouseWriter(self.engine)
        self._limiters: dict[str, SharedRateLimiter] = {}
        self._limiters_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Runtime({self.engine.url.render_as_string(hide_password=True)!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Runtime:
        """A runtime from the environment variables :class:`AppSettings` reads.

        Raises:
            SettingsError: a missing or invalid variable, named with what to put in it.
        """
        return cls(AppSettings.from_env(env), **kwargs)

    _shared: dict[AppSettings, Runtime] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, settings: AppSettings) -> Runtime:
        """The process-wide runtime of ``settings``, built (and the schema migrated) on first use.

        Dagster evaluates sensors every second and a run opens several resources: sharing one
        runtime per settings keeps one connection pool per database and migrates once per process.
        """
        with cls._shared_lock:  # the daemon evaluates sensors in threads
            runtime = cls._shared.get(settings)
            if runtime is None:
                runtime = cls._shared[settings] = cls(settings)
            return runtime

    @classmethod
    def close_shared(cls) -> None:
        """Close and forget every process-wide runtime (tests, and a process about to fork)."""
        with cls._shared_lock:
            runtimes, cls._shared = list(cls._shared.values()), {}
        for runtime in runtimes:
            runtime.close()

    def close(self) -> None:
        """Release the database connections (when this runtime made its engine)."""
        if self._own_engine:
            self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- companies -------------------------------------------------------------------------

    def companies(self) -> list[Company]:
        """Every tenant's current (or last) company, whatever its connection state."""
        return [c for c in (company_of(v) for v in self.connections.list_views()) if c is not None]

    def connected_companies(self) -> list[Company]:
        """The companies that can be synced now: one per connected tenant, in tenant-name order."""
        return [c for c in self.companies() if c.is_connected]

    def companies_for_realm(self, realm_id: str) -> list[Company]:
        """The connected companies of ``realm_id`` (one realm may be connected by several tenants)."""
        found = (company_of(v) for v in self.connections.views_for_realm(str(realm_id)))
        return [c for c in found if c is not None and c.is_connected]

    def resolve(self, key: str) -> Company:
        """The company a key names, checked against the store.

        A bare tenant key is accepted too and means the tenant's current company (convenient on
        the command line); Dagster partitions always use the full key ``<tenant>-<realmId>``.

        Raises:
            UnknownCompanyError: unknown tenant, never connected, or the tenant has switched to
                another company since (that partition keeps its history but cannot be synced).
        """
        view = self.connections.get(key)
        if view is not None:  # a bare tenant key
            found = company_of(view)
            if found is None:
                raise UnknownCompanyError(f"tenant {key!r} has never connected a QuickBooks company")
            return found
        tenant, realm = split_company_key(key)
        view = self.connections.get(tenant)
        if view is None:
            raise UnknownCompanyError(f"no tenant {tenant!r} in the connections store (company key {key!r})")
        found = company_of(view)
        if found is None:
            raise UnknownCompanyError(f"tenant {tenant!r} has never connected a QuickBooks company")
        if found.realm_id != realm:
            return Company(key, tenant, realm, found.environment, found.state, current=False)
        return found

    # -- QuickBooks ------------------------------------------------------------------------

    def oauth(self, environment: str | None = None) -> IntuitOAuth:
        """Intuit's OAuth client of this app for ``environment`` (the default one when ``None``)."""
        return self.settings.oauth(environment)

    def rate_limiter(self, realm_id: str) -> RateLimiter:
        """The limiter every client of company ``realm_id`` in this process shares.

        QBO's limits are per company, whichever process calls: a landing run and a push run of
        one company are two processes. So by default the limiter counts requests in the store
        across processes (:class:`~qb_pipelines.store.rate_limits.SharedRateLimiter`), with the
        process-wide in-process limiter of the realm as its fast path and the source of its
        limits. ``QB_SHARED_RATE_LIMITS=off`` (or an in-memory store, which no other process can
        share) leaves the in-process limiter alone.
        """
        local = limiter_for(str(realm_id))
        if not self.settings.shared_rate_limits or not shares_across_processes(self.engine):
            return local
        with self._limiters_lock:
            shared = self._limiters.get(str(realm_id))
            if shared is None or shared.local is not local:  # a new in-process limiter was installed
                shared = self._limiters[str(realm_id)] = SharedRateLimiter(self.engine, str(realm_id), local)
            return shared

    def client(self, realm_id: str, tokens: TokenSource, environment: str | None = None,
               **client_kwargs: Any) -> QBOClient:
        """A QBO client of ``realm_id`` on ``tokens``, sharing the realm's limiter, reads metered.

        The connect flow uses it before the company is stored; everything else uses
        :meth:`client_for`. ``client_kwargs`` may name another ``rate_limiter``.
        """
        client_kwargs.setdefault("rate_limiter", self.rate_limiter(realm_id))
        return QBOClient(realm_id, tokens, self.settings.environment(environment),
                         on_read=self.usage.record_read, **client_kwargs)

    def client_for(self, company: Company | str, **client_kwargs: Any) -> QBOClient:
        """The QBO client of a company (a :class:`Company` or its key): stored tokens, metered reads.

        Args:
            company: the company, or a company key / tenant key (see :meth:`resolve`).
            **client_kwargs: passed to :class:`QBOClient` (retries, timeouts...).

        Raises:
            UnknownCompanyError: the key names no company, or the tenant has switched to another
                company since (its tokens open the new company only).
        """
        company = self.resolve(company) if isinstance(company, str) else company
        if not company.current:
            raise UnknownCompanyError(
                f"tenant {company.tenant_key!r} is now connected to another QuickBooks company; company "
                f"{company.key} keeps its landed history but can no longer be synced (reconnect it to sync again)"
            )
        tokens = self.connections.token_source(company.tenant_key, self.oauth(company.environment))
        return self.client(company.realm_id, tokens, company.environment, **client_kwargs)
