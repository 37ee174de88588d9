"""Fieldwise's own database: plain SQLite through the standard library.

Nothing here knows QuickBooks. Each record the app sends to the integration has an ``id`` (its
``app_id`` in the records API), a ``version`` the app increases on every change, and
``sent_version``: the last version the records API accepted (202). A record whose
``sent_version`` is behind its ``version`` is sent again by the background loop, so a change made
while the integration was unreachable is not lost. ``qbo_id`` is what the integration told us
(the feed, or the record's status), shown on the pages, never needed to push.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, parent_id TEXT REFERENCES customers(id), display_name TEXT NOT NULL,
    email TEXT, phone TEXT, qbo_id TEXT, version INTEGER NOT NULL DEFAULT 1,
    sent_version INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
    born_in_qbo INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, unit_price REAL NOT NULL DEFAULT 0, qbo_id TEXT,
    version INTEGER NOT NULL DEFAULT 1, sent_version INTEGER NOT NULL DEFAULT 0);
-- invoices and estimates ("documents"): kind is 'Invoice' or 'Estimate'
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, number TEXT, customer_id TEXT NOT NULL REFERENCES customers(id),
    txn_date TEXT, total REAL NOT NULL DEFAULT 0, balance REAL, status TEXT NOT NULL DEFAULT 'open',
    qbo_id TEXT, version INTEGER NOT NULL DEFAULT 1, sent_version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS lines (
    document_id TEXT NOT NULL REFERENCES documents(id), n INTEGER NOT NULL, item_id TEXT NOT NULL,
    description TEXT, qty REAL NOT NULL, unit_price REAL NOT NULL, PRIMARY KEY (document_id, n));
-- payments are made in QuickBooks; the app only hears of them (applied: JSON list from the feed)
CREATE TABLE IF NOT EXISTS payments (
    qbo_id TEXT PRIMARY KEY, customer_id TEXT, amount REAL, date TEXT, method TEXT, reference TEXT,
    applied TEXT NOT NULL DEFAULT '[]', voided INTEGER NOT NULL DEFAULT 0);
-- the change feed's cursor (key 'feed_cursor') and other small settings
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: The app's tables and the integration's entity each one holds.
TABLES = {"Customer": "customers", "Item": "items", "Invoice": "documents", "Estimate": "documents"}


class Database:
    """The app's SQLite file (one short connection per unit of work; WAL so pages read while the feed writes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.executescript(SCHEMA)  # creates what is missing (executescript commits by itself)
        finally:
            conn.close()

    @contextmanager
    def begin(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    # -- reading -----------------------------------------------------------------------------------
    def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self.begin() as conn:
            row = conn.execute(sql, args).fetchone()
            return dict(row) if row else None

    def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(sql, args).fetchall()]

    def cursor(self) -> int:
        row = self.one("SELECT value FROM meta WHERE key = 'feed_cursor'")
        return int(row["value"]) if row else 0

    # -- records as the records API wants them ---------------------------------------------------
    def record(self, entity: str, app_id: str) -> dict[str, Any] | None:
        """The record in the push contract's shape (``{"entity", "app_id", "version", "op", "data"}``)."""
        with self.begin() as conn:
            return _record(conn, entity, app_id)

    def unsent(self) -> list[tuple[str, str, int]]:
        """``(entity, app_id, version)`` of records whose last change the records API has not accepted."""
        out = []
        for entity, table in (("Customer", "customers"), ("Item", "items")):
            out += [(entity, r["id"], r["version"]) for r in self.all(
                f"SELECT id, version FROM {table} WHERE version > sent_version ORDER BY rowid")]
        out += [(r["kind"], r["id"], r["version"]) for r in self.all(
            "SELECT kind, id, version FROM documents WHERE version > sent_version ORDER BY rowid")]
        return out

    def mark_sent(self, entity: str, app_id: str, version: int) -> None:
        with self.begin() as conn:
            conn.execute(f"UPDATE {TABLES[entity]} SET sent_version = MAX(sent_version, ?) WHERE id = ?",
                         (version, app_id))


def _record(conn: sqlite3.Connection, entity: str, app_id: str) -> dict[str, Any] | None:
    table = TABLES[entity]
    row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (app_id,)).fetchone()
    if row is None:
        return None
    row = dict(row)
    if entity == "Customer":
        data: dict[str, Any] = {"display_name": row["display_name"]}
        if row["email"]:
            data["email"] = row["email"]
        if row["phone"]:
            data["phone"] = row["phone"]
        if row["parent_id"]:
            data["parent_app_id"] = row["parent_id"]  # a job: a sub-customer in QuickBooks
    elif entity == "Item":
        data = {"name": row["name"], "type": "service", "unit_price": row["unit_price"]}
    else:
        lines = conn.execute("SELECT * FROM lines WHERE document_id = ? ORDER BY n", (app_id,)).fetchall()
        data = {"customer_app_id": row["customer_id"],
                "lines": [{"item_app_id": ln["item_id"], "qty": ln["qty"], "unit_price": ln["unit_price"],
                           "taxable": True, **({"description": ln["description"]} if ln["description"] else {})}
                          for ln in lines]}
        if row["number"]:
            data["number"] = row["number"]
        if row["txn_date"]:
            data["txn_date"] = row["txn_date"]
    record = {"entity": entity, "app_id": app_id, "version": row["version"], "op": "upsert", "data": data}
    if entity == "Customer" and row["born_in_qbo"] and row["version"] == 1:
        # born in QuickBooks: link it (the integration pushes nothing); no data, so QuickBooks'
        # values are the agreed ones (a job's parent included, which the app may not know yet)
        record.update(qbo_id=row["qbo_id"], data={})
    if entity == "Customer" and row["deleted"]:
        record.update(op="delete", data={})
    return record


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
