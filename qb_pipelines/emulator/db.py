"""The emulator's storage: one SQLite database holding every company.

Why SQLite rather than Python dicts: a seeded company of 1,000,000 transactions must fit in
bounded memory (a file-backed database pages through its cache), survive a restart when a
``--data-file`` is given, and serve 1000-row pages fast. Entity bodies are stored as the JSON
text QBO would send, so a query page is assembled by joining stored bytes, never by
re-serialising objects. The columns beside the body are what queries filter on: times as UTC
epochs (so offsets compare as instants), ``active`` for the name-list default filter,
``status`` for CDC tombstones.

All access goes through :meth:`EmulatorDB.tx`, which holds one process-wide lock: the emulator
is a test double, and serialising writes keeps every computed field (balances, links, ledger)
consistent without row-level locking.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS companies (
    realm TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS objects (
    realm TEXT NOT NULL,
    entity TEXT NOT NULL,
    id INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    status TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (realm, entity, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_updated ON objects (realm, entity, updated_at);
-- covering index for COUNT(*) and the active-only default filter of name lists
CREATE INDEX IF NOT EXISTS objects_live ON objects (realm, entity, status, active);
-- documents by number (query.sql.INDEXED_PATHS): a push looks each new one up before creating it
CREATE INDEX IF NOT EXISTS objects_docnumber ON objects (realm, entity, json_extract(body, '$.DocNumber') COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS sequences (
    realm TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (realm, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS postings (
    realm TEXT NOT NULL,
    entity TEXT NOT NULL,
    txn_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    txn_date TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    amount REAL NOT NULL,            -- debit positive, credit negative
    customer_id INTEGER,
    vendor_id INTEGER,
    PRIMARY KEY (realm, entity, txn_id, seq)
) WITHOUT ROWID;
-- covering index: reports aggregate by account and date without touching the table rows
CREATE INDEX IF NOT EXISTS postings_account_cover ON postings (realm, account_id, txn_date, amount, customer_id, vendor_id);
CREATE TABLE IF NOT EXISTS requestids (
    realm TEXT NOT NULL,
    requestid TEXT NOT NULL,
    status INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (realm, requestid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metering (
    realm TEXT NOT NULL,
    month TEXT NOT NULL,
    kind TEXT NOT NULL,              -- 'read' (CorePlus, metered) or 'write' (Core)
    count INTEGER NOT NULL,
    PRIMARY KEY (realm, month, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    realm TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    operation TEXT NOT NULL,         -- Create, Update, Delete, Void, Merge, Emailed
    occurred_at REAL NOT NULL,
    deleted_id TEXT
);
CREATE TABLE IF NOT EXISTS sends (
    realm TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    send_to TEXT,
    sent_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes | str) -> dict:
    return orjson.loads(data)


class EmulatorDB:
    """Thread-safe wrapper around one SQLite connection (in memory unless a path is given)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or ":memory:"
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache: bounded memory
        self.conn.executescript(SCHEMA)
        self._depth = 0
        # bumped by every write; lets query paging cache keyset positions safely
        self.version = 0

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work under the process-wide lock (re-entrant)."""
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self._depth -= 1
                if outer:
                    self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # --- small key/value store for emulator-wide state (oauth, webhooks config) -------
    def kv_get(self, key: str, default: object = None) -> object:
        with self.read() as c:
            row = c.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return loads(row[0]) if row else default

    def kv_set(self, key: str, value: object) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO kv(key, value) VALUES (?, ?)", (key, dumps(value)))

    # --- sequences ------------------------------------------------------------------
    def next_value(self, realm: str, name: str, start: int = 1) -> int:
        with self.tx() as c:
            row = c.execute("SELECT value FROM sequences WHERE realm=? AND name=?", (realm, name)).fetchone()
            value = row[0] + 1 if row else start
            c.execute(
                "INSERT OR REPLACE INTO sequences(realm, name, value) VALUES (?, ?, ?)", (realm, name, value)
            )
            return value

    def reserve(self, realm: str, name: str, count: int, start: int = 1) -> int:
        """Reserve ``count`` consecutive values; returns the first (bulk seeding)."""
        with self.tx() as c:
            row = c.execute("SELECT value FROM sequences WHERE realm=? AND name=?", (realm, name)).fetchone()
            first = row[0] + 1 if row else start
            c.execute(
                "INSERT OR REPLACE INTO sequences(realm, name, value) VALUES (?, ?, ?)",
                (realm, name, first + count - 1),
            )
            return first
