"""Per-company locks across processes: never two landings, never two pushes of one company at once.

A company can be landed from the command line (``qb-pipelines sync``), a Dagster run (launched by
a schedule, a sensor, a webhook or a person in the UI), the demo or a benchmark, each in its own
process. Two landings of one company race on its cursors and its full-refresh progress (the second
"resumes" the first's refresh and collides on its rows), so :func:`~qb_pipelines.sync.ingest.land`
holds the company's ``land`` lock for the whole run; a push holds the ``push`` lock. The two
purposes are independent: a landing and a push of one company may run side by side (QBO's request
limits are shared through :mod:`qb_pipelines.store.rate_limits`).

The second caller waits, bounded (``wait_s``), and is told who it waits for
(:func:`busy_message`: "company X is being landed by another run (pid, host, run id, since ...);
it will continue when that run ends"); after the wait it fails with :class:`CompanyBusyError`
saying the same. The lock is released when the ``with`` block ends, and by the system when the
holding process dies, whatever the death (``kill -9`` included):

* **PostgreSQL**: a *session* advisory lock (``pg_try_advisory_lock``) on a connection kept for
  the run, in autocommit so it never sits "idle in transaction". The server drops it with the
  session. (It needs a session-pooling connection path: PgBouncer in transaction mode would hand
  the lock to someone else's session.)
* **SQLite file**: ``fcntl.flock`` on a file in ``<database>.locks/`` beside the database. Why a
  file lock rather than a lock row with a heartbeat: the kernel releases it the instant the
  process dies, with no expiry to tune (too short lets a slow run be overtaken, too long blocks
  the next run after a crash) and no heartbeat thread writing to a database that the landing
  itself keeps busy. ``flock`` belongs to the open file, so two holders in one process exclude
  each other too. SQLite's own write lock cannot serve: a landing commits page by page.
* **SQLite in memory**: one process only, so a process-wide :class:`threading.Lock`.

Who holds a lock is recorded in ``qb_company_locks`` (information only: a row left by a dead
process is overwritten by the next holder and never read while the lock is free).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.store.models import CompanyLock, utcnow

__all__ = [
    "DEFAULT_WAIT_S",
    "PURPOSES",
    "CompanyBusyError",
    "CompanyLocks",
    "LockHolder",
    "busy_message",
]

log = logging.getLogger(__name__)

#: What a lock protects, and the verb its messages use.
PURPOSES = {"land": "landed", "push": "pushed"}
#: How long a second landing (or push) waits for the first by default, in seconds: long enough for
#: an incremental run or a small full refresh, short enough that a stuck run is reported.
DEFAULT_WAIT_S = 600.0
#: How often a waiter tries again, in seconds.
POLL_S = 0.5


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or, for the caller of :meth:`CompanyLocks.hold`, now holds) a company lock."""

    company_key: str
    purpose: str
    pid: int
    host: str
    run_id: str | None
    since: datetime

    def describe(self) -> str:
        """``pid 4242 on host web-1, run 7f3c..., since 2026-03-01 10:00:02 UTC``."""
        run = f"run {self.run_id}" if self.run_id else "no run id (command line)"
        return f"pid {self.pid} on host {self.host}, {run}, since {self.since:%Y-%m-%d %H:%M:%S} UTC"


def busy_message(company_key: str, purpose: str, holder: LockHolder | None) -> str:
    """What a waiter tells its user while another run holds the company."""
    who = holder.describe() if holder is not None else "its owner has not recorded itself yet"
    return (f"company {company_key} is being {PURPOSES[purpose]} by another run ({who}); "
            "it will continue when that run ends")


class CompanyBusyError(RuntimeError):
    """Another run kept the company's lock for the whole wait.

    Attributes:
        company_key: the company.
        purpose: ``land`` or ``push``.
        holder: who holds it, when recorded.
        waited_s: how long this caller waited.
    """

    def __init__(self, company_key: str, purpose: str, holder: LockHolder | None, waited_s: float) -> None:
        self.company_key = company_key
        self.purpose = purpose
        self.holder = holder
        self.waited_s = waited_s
        who = holder.describe() if holder is not None else "owner not recorded"
        super().__init__(
            f"company {company_key} is still being {PURPOSES[purpose]} by another run ({who}) after waiting "
            f"{waited_s:.1f} s; try again when that run ends (or wait longer)"
        )


def advisory_key(company_key: str, purpose: str) -> int:
    """The signed 64-bit PostgreSQL advisory-lock key of a company lock (first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256(f"qb_pipelines:{purpose}:{company_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,120}")


def lock_file_name(company_key: str, purpose: str) -> str:
    """File name of a company lock on SQLite (the key itself when it is a safe file name)."""
    if _SAFE.fullmatch(company_key):
        return f"{purpose}-{company_key}.lock"
    return f"{purpose}-{hashlib.sha256(company_key.encode()).hexdigest()[:32]}.lock"


# -- backends: try to take a lock without waiting; the handle releases it --------------------------


class _Handle:
    def release(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _PostgresHandle(_Handle):
    def __init__(self, conn: sa.Connection, key: int) -> None:
        self.conn, self.key = conn, key

    def release(self) -> None:
        try:
            released = self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key}).scalar()
            if not released:
                log.warning("advisory lock %s was no longer held when released (session reset?)", self.key)
        finally:
            self.conn.close()


class _FileHandle(_Handle):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


class _ThreadHandle(_Handle):
    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock

    def release(self) -> None:
        self.lock.release()


_memory_locks: dict[tuple[int, str, str], threading.Lock] = {}
_memory_guard = threading.Lock()


class CompanyLocks:
    """The company locks of one store (see the module docstring).

    Args:
        engine: the store's engine (PostgreSQL or SQLite).
        clock: "now" for the holder record.
        poll_s: how often a waiter tries again.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow, poll_s: float = POLL_S) -> None:
        self.engine = engine
        self.clock = clock
        self.poll_s = poll_s
        self.dialect = engine.dialect.name
        database = engine.url.database or ""
        self.lock_dir: Path | None = None
        if self.dialect == "sqlite" and database not in ("", ":memory:") and not database.startswith("file::memory:"):
            path = Path(database).expanduser().resolve()
            self.lock_dir = path.with_name(path.name + ".locks")
        elif self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"company locks support PostgreSQL and SQLite, not {self.dialect}")

    # -- taking and releasing ----------------------------------------------------------------

    def _try(self, company_key: str, purpose: str) -> _Handle | None:
        if self.dialect == "postgresql":
            key = advisory_key(company_key, purpose)
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            except BaseException:
                conn.close()
                raise
            if got:
                return _PostgresHandle(conn, key)
            conn.close()
            return None
        if self.lock_dir is not None:
            self.lock_dir.mkdir(exist_ok=True)
            fd = os.open(self.lock_dir / lock_file_name(company_key, purpose), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            return _FileHandle(fd)
        with _memory_guard:
            lock = _memory_locks.setdefault((id(self.engine), company_key, purpose), threading.Lock())
        return _ThreadHandle(lock) if lock.acquire(blocking=False) else None

    @contextlib.contextmanager
    def hold(self, company_key: str, purpose: str = "land", *, run_id: str | None = None,
             wait_s: float = DEFAULT_WAIT_S, on_wait: Callable[[str], Any] | None = None) -> Iterator[LockHolder]:
        """Hold company ``company_key``'s ``purpose`` lock for the ``with`` body.

        Args:
            company_key: the company.
            purpose: ``land`` or ``push`` (independent locks).
            run_id: recorded with the holder (the Dagster run id), shown to waiters.
            wait_s: how long to wait for another holder (0: do not wait).
            on_wait: called once with :func:`busy_message` when this caller has to wait.

        Yields:
            This holding's record.

        Raises:
            CompanyBusyError: the lock stayed taken for ``wait_s`` seconds.
        """
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {sorted(PURPOSES)}, not {purpose!r}")
        started = time.monotonic()
        told = False
        while (handle := self._try(company_key, purpose)) is None:
            waited = time.monotonic() - started
            holder = self.holder(company_key, purpose)
            if waited >= wait_s:
                raise CompanyBusyError(company_key, purpose, holder, waited)
            if not told:
                told = True
                message = busy_message(company_key, purpose, holder)
                log.info("%s", message)
                if on_wait is not None:
                    on_wait(message)
            time.sleep(min(self.poll_s, max(0.0, wait_s - waited)))
        token = uuid.uuid4().hex
        try:
            me = self._record(company_key, purpose, token, run_id)
        except BaseException:
            handle.release()
            raise
        try:
            yield me
        finally:
            try:
                self._forget(company_key, purpose, token)
            finally:
                handle.release()

    # -- who holds it --------------------------------------------------------------------------

    def _record(self, company_key: str, purpose: str, token: str, run_id: str | None) -> LockHolder:
        me = LockHolder(company_key, purpose, os.getpid(), socket.gethostname(), run_id, self.clock())
        table = CompanyLock.__table__
        with self.engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.company_key == company_key, table.c.purpose == purpose))
            conn.execute(sa.insert(table).values(company_key=company_key, purpose=purpose, holder=token, pid=me.pid,
                                                 host=me.host[:255], run_id=run_id, acquired_at=me.since))
        return me

    def _forget(self, company_key: str, purpose: str, token: str) -> None:
        table = CompanyLock.__table__
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(table).where(table.c.company_key == company_key, table.c.purpose == purpose,
                                                    table.c.holder == token))
        except sa.exc.SQLAlchemyError:
            # Information only: the next holder overwrites it. Never keep the lock for this.
            log.warning("could not clear the holder record of %s/%s", company_key, purpose, exc_info=True)

    def holder(self, company_key: str, purpose: str = "land") -> LockHolder | None:
        """The recorded holder of a lock (meaningful while the lock is taken; ``None`` if none recorded)."""
        table = CompanyLock.__table__
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.company_key == company_key,
                                                      table.c.purpose == purpose)).first()
        if row is None:
            return None
        return LockHolder(company_key, purpose, row.pid, row.host, row.run_id, _aware(row.acquired_at))

    def is_held(self, company_key: str, purpose: str = "land") -> bool:
        """Whether someone (this process included) holds the lock now."""
        handle = self._try(company_key, purpose)
        if handle is None:
            return True
        handle.release()
        return False


def _aware(value: Any) -> datetime:
    # Core selects on the ORM table keep the UTCDateTime type, so values come back aware already;
    # be defensive about a raw driver value all the same.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
