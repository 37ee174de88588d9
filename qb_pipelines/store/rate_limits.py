"""QuickBooks' per-company limits held across processes, through the store.

QBO refuses (429, fault 3001) a company's 501st request in a rolling minute, its 11th concurrent
request and its 41st batch call in a minute (reference §6). The in-process
:class:`~qb_pipelines.qbo.ratelimit.CompanyRateLimiter` keeps the threads of one process under
those limits, but a landing run and a push run of one company are two processes (and so are
``qb-pipelines sync`` beside the Dagster daemon, or two Dagster runs): each alone is within the
budget, together they are over it. :class:`SharedRateLimiter` counts every process's requests in
the store, with the same interface (``acquire(kind)``), so the limits hold for the deployment.

How it counts: one row of ``qb_api_slots`` per request. Taking a slot is ONE short transaction
that counts the company's rows and inserts the new one only if it fits (a single
``INSERT ... SELECT ... WHERE <counts under the limits> RETURNING id``), serialised per company:

* **PostgreSQL**: ``pg_advisory_xact_lock`` on the company (released at commit), then the insert;
  the clock is the database server's, so processes on several hosts agree on time.
* **SQLite**: ``BEGIN IMMEDIATE`` (SQLite's write lock), then the insert; the host's clock (a
  SQLite file is only shared by processes of one host). These commits skip the fsync
  (``synchronous=NORMAL`` for the limiter's transactions only).

Either commit skips the wait for durable storage (PostgreSQL: ``synchronous_commit`` off for the
transaction): a slot lost in a crash costs nothing, and that wait was most of the cost.

Releasing is one ``UPDATE`` stamping ``released_at``. Counting then mirrors the in-process
limiter: a request is *in flight* from its slot until its release, and counts against the
window until ``window_s`` after its release (the moment QBO registered it is never later than
our release, so no request can be counted by QBO twice within one of our windows).

Crash safety: a slot carries a lease (``lease_until``, longer than any request can take); a
process that dies mid-request leaves a row that stops counting as in flight at the lease's end
and counts against the window for a window after that. When a company's concurrency is full,
slots held by processes of this host that no longer exist are released at once instead.

The in-process limiter stays the fast path: a request first takes a slot there (threads of one
process wait on a condition variable, not on the database), then the shared one; only one thread
per process at a time polls the store while the company is at a limit. Rows older than the window
are deleted as slots are taken.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo.ratelimit import KINDS, CompanyRateLimiter, limiter_for
from qb_pipelines.store.db import SQLITE_BEGIN_OPTION

__all__ = ["LEASE_S", "SharedRateLimiter", "shares_across_processes"]

log = logging.getLogger(__name__)

#: How long an unreleased slot counts as in flight: longer than any request (QBO gives up on a
#: request after 120 s; the client's timeout is 30 s per read).
LEASE_S = 180.0
#: How often (seconds) a limiter deletes its company's rows that left the window.
CLEANUP_EVERY_S = 5.0
#: How long to wait before asking again when the company's concurrency is full (a slot frees
#: within one round trip, usually tens of milliseconds).
CONCURRENCY_POLL_S = 0.02
#: Longest single wait before asking the store again (other processes' slots come and go).
MAX_POLL_S = 0.5

_TAKE = """
INSERT INTO qb_api_slots (realm_id, batch, holder, acquired_at, lease_until)
SELECT :realm, :batch, :holder, :now, :lease_until
FROM (
    SELECT coalesce(sum(CASE WHEN released_at IS NULL AND lease_until > :now THEN 1 ELSE 0 END), 0) AS in_flight,
           count(*) AS used,
           coalesce(sum(CASE WHEN batch THEN 1 ELSE 0 END), 0) AS used_batch
    FROM qb_api_slots
    WHERE realm_id = :realm AND coalesce(released_at, lease_until) > :horizon
) AS counted
WHERE counted.in_flight < :concurrent AND counted.used < :per_window
  AND (:is_batch = 0 OR counted.used_batch < :batch_per_window)
RETURNING id
"""

_RECENT = """
SELECT coalesce(released_at, lease_until) AS ends, batch, released_at IS NULL AND lease_until > :now AS flying, holder
FROM qb_api_slots
WHERE realm_id = :realm AND coalesce(released_at, lease_until) > :horizon
ORDER BY ends
"""

_CLEANUP = "DELETE FROM qb_api_slots WHERE realm_id = :realm AND coalesce(released_at, lease_until) <= :horizon"

_PG_NOW = "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"
#: This transaction's commit does not wait for the WAL flush (``synchronous_commit`` off, for
#: this transaction only): a slot lost in a server crash costs nothing, and the wait was most of
#: the limiter's cost per request. Set inside the statement, so it takes no extra round trip.
_NO_FLUSH = "set_config('synchronous_commit', 'off', true)"


def shares_across_processes(engine: Engine) -> bool:
    """Whether other processes can share this store (not an in-memory SQLite database)."""
    database = engine.url.database or ""
    return not (engine.dialect.name == "sqlite" and (database in ("", ":memory:") or database.startswith("file::memory:")))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, belongs to someone else
    return True


class SharedRateLimiter:
    """QBO's limits for one company, counted across every process that shares the store.

    Args:
        engine: the store's engine (PostgreSQL or a SQLite file).
        realm_id: the company.
        local: the in-process limiter used first (the process-wide one of ``realm_id`` by
            default); its limits (per window, window, concurrency, batch calls) are the shared ones.
        lease_s: how long an unreleased slot counts as in flight (see the module docstring).
        clock: epoch seconds on SQLite (PostgreSQL uses the server's clock).
        sleep: how to wait (tests).
    """

    def __init__(self, engine: Engine, realm_id: str, local: CompanyRateLimiter | None = None, *,
                 lease_s: float = LEASE_S, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"the shared rate limiter supports PostgreSQL and SQLite, not {engine.dialect.name}")
        self.engine = engine
        self.realm_id = str(realm_id)
        self.local = local if local is not None else limiter_for(self.realm_id)
        self.lease_s = lease_s
        self._clock = clock
        self._sleep = sleep
        self._postgres = engine.dialect.name == "postgresql"
        self._key = int.from_bytes(hashlib.sha256(f"qb_pipelines:api:{self.realm_id}".encode()).digest()[:8],
                                   "big", signed=True)
        self._host = socket.gethostname()[:200]
        self._gate = threading.Lock()  # one thread per process asks the store at a time
        self._next_cleanup = 0.0
        #: Acquisitions that had to wait for other processes, and for how long (seconds).
        self.waits = 0
        self.waited_s = 0.0

    def __repr__(self) -> str:
        return f"SharedRateLimiter(realm_id={self.realm_id!r}, {self.engine.dialect.name})"

    @property
    def holder(self) -> str:
        """``host:pid`` recorded on this process's slots (computed per call: safe across fork)."""
        return f"{self._host}:{os.getpid()}"

    @contextmanager
    def acquire(self, kind: str = "read") -> Iterator[None]:
        """Hold one request slot of ``kind`` for the ``with`` body, in this process and in the store.

        Blocks until the company is under every limit across processes.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        with self.local.acquire(kind):
            slot = self._take(kind == "batch")
            try:
                yield
            finally:
                self._release(slot)

    # -- the store ---------------------------------------------------------------------------

    def _take(self, batch: bool) -> int:
        started = time.monotonic()
        waited = False
        with self._gate:
            while True:
                slot, wait = self._try(batch)
                if slot is not None:
                    break
                waited = True
                self._sleep(wait)
        if waited:
            self.waits += 1
            self.waited_s += time.monotonic() - started
        return slot

    @contextmanager
    def _transaction(self) -> Iterator[tuple[Connection, float]]:
        """A transaction holding the company's lock, and "now" (epoch seconds) taken under it."""
        if self._postgres:
            with self.engine.begin() as conn:
                now = conn.execute(sa.text(f"SELECT {_PG_NOW} FROM (SELECT pg_advisory_xact_lock(:k), {_NO_FLUSH}) "
                                           "AS locked"), {"k": self._key}).scalar_one()
                yield conn, float(now)
        else:
            with self._sqlite_transaction() as conn:
                yield conn, self._clock()

    @contextmanager
    def _sqlite_transaction(self) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` whose commit does not wait for an fsync.

        ``synchronous=NORMAL`` for this transaction only (WAL mode: still safe from corruption; a
        power cut may forget the last slots, which costs nothing), then the connection's own
        setting back, so the store's other transactions keep theirs. The two fsyncs per request
        were most of the limiter's cost on a busy disk.
        """
        with self.engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn:
            raw = conn.connection.dbapi_connection  # autocommit at the driver (store.db): no BEGIN yet
            assert raw is not None
            previous = raw.execute("PRAGMA synchronous").fetchone()[0]
            raw.execute("PRAGMA synchronous=NORMAL")
            try:
                with conn.begin():
                    yield conn
            finally:
                raw.execute(f"PRAGMA synchronous={int(previous)}")

    def _try(self, batch: bool) -> tuple[int | None, float]:
        """Take a slot if the company is under its limits: ``(slot id, 0)`` or ``(None, seconds to wait)``."""
        local = self.local
        with self._transaction() as (conn, now):
            horizon = now - local.window_s
            if now >= self._next_cleanup:
                self._next_cleanup = now + CLEANUP_EVERY_S
                conn.execute(sa.text(_CLEANUP), {"realm": self.realm_id, "horizon": horizon})
            params: dict[str, Any] = {
                "realm": self.realm_id, "batch": batch, "is_batch": int(batch), "holder": self.holder, "now": now,
                "lease_until": now + self.lease_s, "horizon": horizon, "concurrent": local.concurrent,
                "per_window": local.per_window, "batch_per_window": local.batch_per_window,
            }
            slot = conn.execute(sa.text(_TAKE), params).scalar()
            if slot is not None:
                return int(slot), 0.0
            return None, self._wait_needed(conn, now, horizon, batch)

    def _wait_needed(self, conn: Connection, now: float, horizon: float, batch: bool) -> float:
        """Seconds until a refused request may fit (bounded: the store is asked again after it)."""
        local = self.local
        rows = conn.execute(sa.text(_RECENT), {"realm": self.realm_id, "now": now, "horizon": horizon}).all()
        waits: list[float] = []
        flying = [r for r in rows if r.flying]
        if len(flying) >= local.concurrent:
            if self._reclaim_dead(conn, now, {r.holder for r in flying}):
                return 0.0
            waits.append(CONCURRENCY_POLL_S)
        for counted, limit in ((rows, local.per_window), ([r for r in rows if r.batch] if batch else [], local.batch_per_window)):
            if len(counted) >= limit:
                frees = counted[len(counted) - limit]  # sorted by end: the one whose exit makes room
                waits.append(MAX_POLL_S if frees.flying else frees.ends + local.window_s - now)
        return min(MAX_POLL_S, max(0.001, max(waits, default=CONCURRENCY_POLL_S)))

    def _reclaim_dead(self, conn: Connection, now: float, holders: set[str]) -> bool:
        """Release the in-flight slots of processes of this host that died; whether any were."""
        dead = []
        for holder in holders:
            host, _, pid = holder.rpartition(":")
            if host == self._host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                dead.append(holder)
        if not dead:
            return False
        released = conn.execute(
            sa.text("UPDATE qb_api_slots SET released_at = :now WHERE realm_id = :realm AND released_at IS NULL "
                    "AND holder IN :dead").bindparams(sa.bindparam("dead", expanding=True)),
            {"now": now, "realm": self.realm_id, "dead": dead}).rowcount
        log.warning("realm %s: released %d request slots of dead processes %s", self.realm_id, released, dead)
        return released > 0

    def _release(self, slot: int) -> None:
        if self._postgres:  # one statement in autocommit: no BEGIN / COMMIT round trips
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f"UPDATE qb_api_slots SET released_at = {_PG_NOW} FROM (SELECT {_NO_FLUSH}) "
                                     "AS quick WHERE id = :id"), {"id": slot})
        else:
            with self._sqlite_transaction() as conn:
                conn.execute(sa.text("UPDATE qb_api_slots SET released_at = :now WHERE id = :id"),
                             {"id": slot, "now": self._clock()})

    def snapshot(self) -> dict[str, float]:
        """This process's use (the in-process limiter) and the company's across processes."""
        out = dict(self.local.snapshot())
        with self.engine.connect() as conn:
            now = float(conn.execute(sa.text(f"SELECT {_PG_NOW}")).scalar_one()) if self._postgres else self._clock()
            rows = conn.execute(sa.text(_RECENT), {"realm": self.realm_id, "now": now,
                                                   "horizon": now - self.local.window_s}).all()
        out.update({"shared_in_flight": sum(1 for r in rows if r.flying), "shared_in_window": len(rows),
                    "shared_batch_in_window": sum(1 for r in rows if r.batch), "shared_waits": self.waits,
                    "shared_waited_s": round(self.waited_s, 3)})
        return out
