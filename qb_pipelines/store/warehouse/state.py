"""The warehouse's sync state: CDC cursors, full refreshes in flight, and per-entity counts.

Kept beside the rows they describe, and written in the same transactions, so a crash never leaves
a cursor ahead of the rows it covers or a refresh's progress behind the pages it committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo.registry import EntityDef
from qb_pipelines.store.warehouse.schema import full_refresh_progress, sync_cursor, tables_for


@dataclass(frozen=True)
class CursorState:
    """The sync state of one company and entity (times are aware, UTC on SQLite)."""

    cdc_cursor: datetime | None
    last_full_refresh_at: datetime | None


@dataclass(frozen=True)
class RefreshProgress:
    """A full refresh in flight: read from ``start_position`` on to finish it."""

    run_id: str | None
    start_position: int
    rows_done: int
    started_at: datetime
    updated_at: datetime


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class WarehouseState:
    """Cursors, refresh progress and counts, per company and entity (the writer's base)."""

    engine: Engine

    def cursors(self, company_key: str, conn: Connection | None = None) -> dict[str, CursorState]:
        """Every entity's sync state for one company."""
        stmt = sa.select(sync_cursor.c.entity, sync_cursor.c.cdc_cursor, sync_cursor.c.last_full_refresh_at).where(
            sync_cursor.c.company_key == company_key)
        if conn is None:
            with self.engine.connect() as own:
                rows = own.execute(stmt).all()
        else:
            rows = conn.execute(stmt).all()
        return {r[0]: CursorState(_aware(r[1]), _aware(r[2])) for r in rows}

    def save_cursor(self, conn: Connection, company_key: str, entity: str, *, cdc_cursor: datetime | None,
                    full_refresh_at: datetime | None = None, now: datetime) -> None:
        """Store an entity's CDC cursor (and the time of a finished full refresh) in ``conn``'s transaction."""
        values: dict[str, Any] = {"cdc_cursor": self._time(cdc_cursor) if cdc_cursor else None,
                                  "updated_at": self._time(now)}
        if full_refresh_at is not None:
            values["last_full_refresh_at"] = self._time(full_refresh_at)
        self._merge(conn, sync_cursor, {"company_key": company_key, "entity": entity}, values)

    def has_rows(self, entity: str | EntityDef, company_key: str) -> bool:
        """Whether the company has any row of this entity (a first load when not)."""
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(main.c.id).where(main.c.company_key == company_key).limit(1)).first() \
                is not None

    def progress(self, company_key: str, entity: str) -> RefreshProgress | None:
        """The full refresh in flight for this company and entity, if one crashed or is running."""
        t = full_refresh_progress
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.run_id, t.c.start_position, t.c.rows_done, t.c.started_at,
                                         t.c.updated_at).where(t.c.company_key == company_key,
                                                               t.c.entity == entity)).first()
        if row is None:
            return None
        return RefreshProgress(row[0], int(row[1]), int(row[2]), _aware(row[3]), _aware(row[4]))  # type: ignore[arg-type]

    def save_progress(self, conn: Connection, company_key: str, entity: str, *, run_id: str | None,
                      start_position: int, rows_done: int, started_at: datetime, now: datetime) -> None:
        """Record, in the page's transaction, where a full refresh continues."""
        self._merge(conn, full_refresh_progress, {"company_key": company_key, "entity": entity},
                    {"run_id": run_id, "start_position": start_position, "rows_done": rows_done,
                     "started_at": self._time(started_at), "updated_at": self._time(now)})

    def clear_progress(self, conn: Connection, company_key: str, entity: str) -> None:
        """Forget a finished (or abandoned) full refresh."""
        t = full_refresh_progress
        conn.execute(t.delete().where(t.c.company_key == company_key, t.c.entity == entity))

    def _merge(self, conn: Connection, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        stmt: Any = (postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)).values(
            **key, **values)
        stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=values)
        conn.execute(stmt)

    # ------------------------------------------------------------------------------ reading
    def counts(self, entity: str | EntityDef, company_key: str) -> dict[str, int]:
        """Rows of one company: ``{"active", "inactive", "deleted"}`` (the emulator's ``/counts`` shape)."""
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(main.c.is_deleted, main.c.is_active, sa.func.count()).where(
                main.c.company_key == company_key).group_by(main.c.is_deleted, main.c.is_active)).all()
        out = {"active": 0, "inactive": 0, "deleted": 0}
        for deleted, active, n in rows:
            out["deleted" if deleted else ("active" if active else "inactive")] += n
        return out
