"""An emulator's object table and clock without a server, for tests of its query and CDC engines.

Rows are written into the emulator's real SQLite ``objects`` table exactly as the engine stores
them (body = the JSON QBO returns, with ``MetaData`` times), so ``query.execute`` and
``cdc.changes`` read them as they read the engine's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson

from qb_pipelines.emulator.clock import PACIFIC, Clock, qbo_timestamp
from qb_pipelines.emulator.db import EmulatorDB

#: The company every row belongs to unless a test says otherwise.
REALM = "9341452000000001"
#: The default "last updated" time of a row: 2024-01-01T10:00:00-08:00.
BASE = datetime(2024, 1, 1, 18, 0, tzinfo=UTC).timestamp()


class EmulatorRows:
    """An emulator's database and clock (``emu``), with :meth:`put` storing objects as the engine does."""

    def __init__(self) -> None:
        self.db = EmulatorDB()
        self.db.version = 0
        self.clock = Clock()
        self.emu = SimpleNamespace(db=self.db, clock=self.clock, company_tz=lambda realm: PACIFIC)

    def put(
        self,
        entity: str,
        obj_id: int,
        fields: dict | None = None,
        *,
        updated: float = BASE,
        created: float | None = None,
        active: bool = True,
        deleted: bool = False,
        realm: str = REALM,
    ) -> dict:
        created = updated if created is None else created
        meta = {"CreateTime": qbo_timestamp(created), "LastUpdatedTime": qbo_timestamp(updated)}
        if deleted:
            body = {"domain": "QBO", "status": "Deleted", "Id": str(obj_id),
                    "MetaData": {"LastUpdatedTime": meta["LastUpdatedTime"]}}
        else:
            body = {**(fields or {}), "domain": "QBO", "sparse": False, "Id": str(obj_id), "SyncToken": "0",
                    "MetaData": meta}
            if "Active" not in body and entity in ("Customer", "Item", "Vendor", "Account"):
                body["Active"] = active
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (realm, entity, obj_id, int(active), "Deleted" if deleted else None, float(int(created)),
                 float(int(updated)), orjson.dumps(body)),
            )
        self.db.version += 1
        return body
