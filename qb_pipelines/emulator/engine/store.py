"""The store-facing half of the engine: one company's objects inside one transaction.

A :class:`Tx` wraps the SQLite connection of an open ``db.tx()`` (or ``db.read()``) with the
company and the instant of the operation, and offers the primitives every step of a write uses:
read a row or a live body, check the object a write names, number new objects, store a body,
touch a related object, lay a tombstone and append to the change log that feeds webhooks.

Every write bumps ``db.version``; the query module uses it to retire cached paging positions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.clock import qbo_timestamp
from qb_pipelines.emulator.db import dumps, loads
from qb_pipelines.emulator.engine.values import bump
from qb_pipelines.qbo.registry import EntityDef

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from qb_pipelines.emulator.core import Emulator

DELETED = "Deleted"


class Tx:
    """One company's objects, as one operation sees them.

    Args:
        emu: the emulator (its database, clock and company time zones).
        conn: the connection of the surrounding ``db.tx()`` (writes) or ``db.read()`` (reads).
        realm: the company.
        ts: the instant the operation happens (epoch seconds); every timestamp it writes is this one.
    """

    def __init__(self, emu: Emulator, conn: sqlite3.Connection, realm: str, ts: float | None = None) -> None:
        self.emu = emu
        self.db = emu.db
        self.conn = conn
        self.realm = realm
        self.ts = emu.clock.timestamp() if ts is None else ts
        self.tz: ZoneInfo = emu.company_tz(realm)

    # ------------------------------------------------------------------ time
    def stamp(self, ts: float | None = None) -> str:
        """A MetaData timestamp in the company's zone (the operation's instant by default)."""
        return qbo_timestamp(self.ts if ts is None else ts, self.tz)

    def today(self) -> str:
        """The company's date today."""
        return self.emu.clock.today(self.tz)

    # ------------------------------------------------------------------ reads
    def require_company(self) -> None:
        """3100 (HTTP 403) when the company does not exist: the token cannot be for it."""
        if not self.conn.execute("SELECT 1 FROM companies WHERE realm=?", (self.realm,)).fetchone():
            raise faults.app_authorization_failed()

    def row(self, entity: str, obj_id: Any) -> tuple | None:
        """``(body, active, status)`` of a stored object (tombstones included), or None."""
        try:
            key = int(obj_id)
        except (TypeError, ValueError):
            return None
        return self.conn.execute(
            "SELECT body, active, status FROM objects WHERE realm=? AND entity=? AND id=?",
            (self.realm, entity, key)).fetchone()

    def get(self, entity: str, obj_id: Any) -> dict | None:
        """A live (not deleted) object's body, or None."""
        row = self.row(entity, obj_id)
        if row is None or row[2] == DELETED:
            return None
        return loads(row[0])

    def live(self, entity: str) -> Iterator[tuple[int, dict]]:
        """``(id, body)`` of every live object of ``entity`` (inactive ones included)."""
        for obj_id, raw in self.conn.execute(
                "SELECT id, body FROM objects WHERE realm=? AND entity=? AND status IS NULL",
                (self.realm, entity)).fetchall():
            yield obj_id, loads(raw)

    def preferences(self) -> dict:
        """The company's Preferences (empty when missing)."""
        return self.get("Preferences", 1) or {}

    def current(self, ent: EntityDef, body: dict) -> tuple[dict, float]:
        """The stored object a write names, checked as QBO checks it.

        Returns the object and its ``created_at``. Raises 2020 without a SyncToken, 610 when the
        Id is unknown or deleted, 5010 when the SyncToken is not the current one.
        """
        if body.get("SyncToken") in (None, ""):
            raise faults.required("SyncToken")
        obj_id = str(body.get("Id", "")).strip()
        row = self.conn.execute(
            "SELECT body, status, created_at FROM objects WHERE realm=? AND entity=? AND id=?",
            (self.realm, ent.name, int(obj_id) if obj_id.isdigit() else -1)).fetchone()
        if row is None or row[1] == DELETED:
            raise faults.not_found()
        old = loads(row[0])
        if str(body["SyncToken"]).strip() != old["SyncToken"]:
            raise faults.stale()
        return old, row[2]

    # ------------------------------------------------------------------ numbering
    def next_id(self, ent: EntityDef) -> int:
        """The next Id: transactions share one sequence per company (Invoice 119, Payment 120...),
        each name list has its own (§11.4)."""
        return self.next_value("txn" if ent.is_transaction else ent.name)

    def next_value(self, name: str, start: int = 1) -> int:
        """The next value of one of the company's named sequences (Ids, DocNumbers, addresses)."""
        return self.db.next_value(self.realm, name, start=start)

    # ------------------------------------------------------------------ writes
    def put(self, ent: EntityDef, body: dict, *, created: float, updated: float | None = None,
            status: str | None = None, obj_id: int | None = None) -> None:
        """Store a whole body (insert or replace); ``updated`` defaults to the operation's instant.

        The row is keyed by the body's Id (a wrapped template's), or by ``obj_id`` for an entity
        QBO gives no Id (an exchange rate: the emulator numbers its rows internally).
        """
        active = 0 if body.get("Active") is False else 1
        key = obj_id if obj_id is not None else int(str(ent.identity(body)))
        self.conn.execute(
            "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.realm, ent.name, key, active, status, created,
             int(self.ts if updated is None else updated), dumps(body)),
        )
        self.db.version += 1

    def touch(self, entity: str, body: dict, *, bump_token: bool) -> None:
        """Store a server-side change to a related object (balance, link, stock, merge).

        LastUpdatedTime moves to now, so CDC returns the object; the SyncToken moves too unless
        only a balance changed (QBO leaves it, §7.2).
        """
        if bump_token:
            body["SyncToken"] = bump(body.get("SyncToken"))
        body.setdefault("MetaData", {})["LastUpdatedTime"] = self.stamp()
        # the row exists (we just read it): keep its created_at and active flag, replace the rest
        self.conn.execute("UPDATE objects SET body=?, updated_at=? WHERE realm=? AND entity=? AND id=?",
                          (dumps(body), int(self.ts), self.realm, entity, int(body["Id"])))
        self.db.version += 1

    def rewrite(self, entity: str, body: dict) -> None:
        """Store a derived field without touching the object's times (bulk balance derivation)."""
        self.conn.execute("UPDATE objects SET body=? WHERE realm=? AND entity=? AND id=?",
                          (dumps(body), self.realm, entity, int(body["Id"])))
        self.db.version += 1

    def tombstone(self, ent: EntityDef, obj_id: str) -> None:
        """Replace an object by QBO's deleted shape; CDC reports it with status Deleted (§3)."""
        tomb = {"domain": "QBO", "status": DELETED, "Id": str(obj_id), "MetaData": {"LastUpdatedTime": self.stamp()}}
        self.conn.execute(
            "UPDATE objects SET body=?, status=?, updated_at=? WHERE realm=? AND entity=? AND id=?",
            (dumps(tomb), DELETED, int(self.ts), self.realm, ent.name, int(obj_id)))
        self.db.version += 1

    def change(self, entity: str, obj_id: str, operation: str, *, deleted_id: str | None = None,
               ts: float | None = None) -> None:
        """Append to the change log (webhooks deliver it: Create, Update, Delete, Void, Merge, Emailed)."""
        self.conn.execute(
            "INSERT INTO changes(realm, entity, entity_id, operation, occurred_at, deleted_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.realm, entity, str(obj_id), operation, self.ts if ts is None else ts, deleted_id),
        )
