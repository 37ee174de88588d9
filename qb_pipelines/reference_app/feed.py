"""Hearing back from QuickBooks: apply the change feed to Fieldwise's database.

Two doors bring the same entries (``{"seq", "entity", "op", "app_id", "qbo_id", "data", "at"}``):

* **polling** ``GET .../changes?after=CURSOR`` every ``REFAPP_POLL_SECONDS`` (:class:`Worker`);
* the **signed callback** ``POST /hooks/quickbooks``: the integration POSTs
  ``{"tenant", "changes", "next"}`` with ``X-QBP-Signature: sha256=<hex HMAC-SHA256 of the raw
  body with the callback secret>``; :func:`verified` checks it before anything is parsed.

Both go through :func:`apply`, which skips entries at or below the stored cursor and moves the
cursor in the same SQLite transaction as the changes, so an entry is applied exactly once however
it arrives (twice through both doors, or again after a lost 2xx).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
from typing import Any

from qb_pipelines.reference_app.client import IntegrationClient, IntegrationError
from qb_pipelines.reference_app.db import Database

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-QBP-Signature"


def verified(raw_body: bytes, signature: str | None, secret: str) -> bool:
    """Whether ``signature`` is ``sha256=`` + the hex HMAC-SHA256 of the exact bytes received."""
    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, (signature or "").strip())


def apply(db: Database, changes: list[dict[str, Any]]) -> int:
    """Apply the entries past the cursor, in order, and move the cursor; returns how many were new."""
    applied = 0
    with db.begin() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'feed_cursor'").fetchone()
        cursor = int(row["value"]) if row else 0
        for change in sorted(changes, key=lambda c: int(c["seq"])):
            if int(change["seq"]) <= cursor:
                continue  # already have it
            _one(conn, change)
            cursor = int(change["seq"])
            applied += 1
        conn.execute("INSERT INTO meta (key, value) VALUES ('feed_cursor', ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(cursor),))
    return applied


def _one(conn: sqlite3.Connection, change: dict[str, Any]) -> None:
    entity, op, app_id, qbo_id = change["entity"], change["op"], change.get("app_id"), str(change["qbo_id"])
    data = change.get("data") or {}
    if entity == "Customer":
        _customer(conn, op, app_id, qbo_id, data)
    elif entity in ("Invoice", "Estimate") and app_id:
        if op in ("void", "delete"):
            conn.execute("UPDATE documents SET status = ?, balance = 0 WHERE id = ?",
                         ("voided" if op == "void" else "deleted", app_id))
        else:  # QuickBooks' balance and status (open, partially_paid, paid)
            conn.execute("UPDATE documents SET status = ?, balance = ?, total = COALESCE(?, total), qbo_id = ? "
                         "WHERE id = ?", (data.get("status", "open"), data.get("balance"), data.get("total"),
                                          qbo_id, app_id))
    elif entity == "Payment":
        conn.execute(
            "INSERT INTO payments (qbo_id, customer_id, amount, date, method, reference, applied, voided) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (qbo_id) DO UPDATE SET customer_id = excluded.customer_id, "
            "amount = excluded.amount, date = excluded.date, method = excluded.method, "
            "reference = excluded.reference, applied = excluded.applied, voided = excluded.voided",
            (qbo_id, data.get("customer_app_id"), data.get("amount"), data.get("date"), data.get("method"),
             data.get("reference"), json.dumps(data.get("applied") or []), int(op in ("void", "delete"))))
    # other entities (Vendor, Item, Bill) are not kept by Fieldwise: the cursor still moves past them


def _customer(conn: sqlite3.Connection, op: str, app_id: str | None, qbo_id: str, data: dict[str, Any]) -> None:
    if op == "merge" and app_id:
        # merged away in QuickBooks: fold our record into the survivor (when we have it)
        into = data.get("into_app_id")
        if into:
            conn.execute("UPDATE documents SET customer_id = ? WHERE customer_id = ?", (into, app_id))
        conn.execute("UPDATE customers SET deleted = 1 WHERE id = ?", (app_id,))
    elif op == "delete" and app_id:
        conn.execute("UPDATE customers SET deleted = 1 WHERE id = ?", (app_id,))
    elif op == "upsert" and app_id:
        # changed in QuickBooks: take its name, e-mail and phone (no new version: nothing to push back)
        conn.execute("UPDATE customers SET display_name = COALESCE(?, display_name), email = ?, phone = ?, "
                     "parent_id = COALESCE(?, parent_id), qbo_id = ? WHERE id = ?",
                     (data.get("display_name"), data.get("email"), data.get("phone"), data.get("parent_app_id"),
                      qbo_id, app_id))
    elif op == "upsert":
        # born in QuickBooks: keep it as our own record; the worker sends it with "qbo_id" to link it
        known = conn.execute("SELECT id FROM customers WHERE qbo_id = ?", (qbo_id,)).fetchone()
        if known is None:
            parent = data.get("parent_app_id")
            conn.execute("INSERT INTO customers (id, parent_id, display_name, email, phone, qbo_id, born_in_qbo) "
                         "VALUES (?, ?, ?, ?, ?, ?, 1)", (f"qbo-{qbo_id}", parent, data.get("display_name") or qbo_id,
                                                         data.get("email"), data.get("phone"), qbo_id))


def send(db: Database, client: IntegrationClient, entity: str, app_id: str) -> dict[str, Any]:
    """Send the record's current version to the records API and remember it was accepted."""
    record = db.record(entity, app_id)
    if record is None:
        raise IntegrationError(f"no {entity} {app_id} here")
    answer = client.send(record)
    db.mark_sent(entity, app_id, int(record["version"]))
    return answer


class Worker(threading.Thread):
    """Every ``poll_seconds``: resend records the API has not accepted yet, then read the feed."""

    def __init__(self, db: Database, client: IntegrationClient, poll_seconds: float) -> None:
        super().__init__(name="fieldwise-feed", daemon=True)
        self.db, self.client, self.poll_seconds = db, client, poll_seconds
        self.stopping = threading.Event()
        #: records the records API refused as they are, by (entity, app_id, version): the error
        self.refused: dict[tuple[str, str, int], str] = {}

    def step(self) -> int:
        """One round; returns the feed entries applied."""
        for entity, app_id, version in self.db.unsent():
            if (entity, app_id, version) in self.refused:
                continue  # refused as it is (422): a new version is sent, this one is not retried
            try:
                send(self.db, self.client, entity, app_id)
            except IntegrationError as exc:
                if not str(exc).startswith(("400", "404", "413", "422")):
                    raise  # unreachable, 401, 429, 5xx: the whole round waits for the next one
                self.refused[(entity, app_id, version)] = str(exc)
                log.warning("fieldwise: %s %s version %s refused: %s", entity, app_id, version, exc)
        total = 0
        while True:
            changes, _next = self.client.changes(self.db.cursor())
            if not changes:
                return total
            total += apply(self.db, changes)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except IntegrationError as exc:
                log.warning("fieldwise: %s; trying again in %ss", exc, self.poll_seconds)
            except Exception:  # keep polling whatever one round met
                log.exception("fieldwise: a feed round failed")
            self.stopping.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stopping.set()
