"""The writer: idempotent upserts of QBO objects, tombstones and hard deletes as flags, sync state."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef
from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.warehouse.schema import (
    _TYPED,
    _dig,
    child_spec,
    tables_for,
)
from qb_pipelines.store.warehouse.state import WarehouseState
from qb_pipelines.store.warehouse.values import (
    _PORTABLE,
    _SQLITE,
    _bool,
    _format,
    _py_time,
    _text,
)


@dataclass
class _Prepared:
    """One incoming object, ready to write: values in table column order."""

    id: str
    values: tuple
    row_hash: str
    txn_date: str | None
    is_active: bool
    children: list[tuple]
    copy_line: str | None = None  # the row in COPY text format, made ahead on the PostgreSQL path
    child_copy: list[str] | None = None


@dataclass
class PreparedBatch:
    """Objects turned into rows (and COPY text), ready for :meth:`WarehouseWriter.write_batch`.

    Preparing is CPU work that needs no database; a full refresh prepares page k+1 while the
    database is still busy writing page k (see ``sync.ingest``).
    """

    entity: EntityDef
    company_key: str
    synced_at: datetime
    rows: dict[str, _Prepared]
    #: the caller knows none of these objects is stored yet (a first load): skip the lookup
    assume_new: bool = False


@dataclass
class UpsertStats:
    """What one write did to the warehouse.

    Attributes:
        inserted: objects new to the warehouse.
        updated: objects whose content changed (or that came back from deleted).
        unchanged: objects QBO sent again without a change (only ``synced_at`` moves).
        deleted: objects newly flagged deleted (tombstones, merges, hard deletes).
        inactivated: name-list objects that became inactive in this write.
        touched_months: ``YYYY-MM`` of the TxnDate of every inserted, updated or deleted
            transaction (old and new date when the date moved): the report months to redo.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    inactivated: int = 0
    touched_months: set[str] = field(default_factory=set)

    def add(self, other: UpsertStats) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.inactivated += other.inactivated
        self.touched_months |= other.touched_months


def _month(txn_date: Any) -> str | None:
    if txn_date is None:
        return None
    text = txn_date.isoformat() if isinstance(txn_date, date) else str(txn_date)
    return text[:7] if len(text) >= 7 else None


_ID_CHUNK = 900  # bound parameters per IN list (SQLite's old limit is 999)


class WarehouseWriter(WarehouseState):
    """Writes QuickBooks objects into the warehouse tables, idempotently, on SQLite and PostgreSQL.

    The writer owns the table names and the SQL: callers hand it QBO objects as QBO sent them and
    get counts back. Why it is built this way:

    * **Idempotent upserts keyed (company_key, id).** QBO re-sends objects all the time (CDC
      windows overlap on purpose, full refreshes re-read everything, webhooks repeat), so every
      write is an upsert: PostgreSQL and SQLite both run ``INSERT ... ON CONFLICT (company_key,
      id) DO UPDATE``. ``first_synced_at`` survives updates; everything else is replaced.
    * **Skip what did not change.** A digest of the raw object (``row_hash``) is compared with
      the stored one before writing, so a re-run of the same window writes nothing but
      ``synced_at`` and reports 0 inserted / 0 updated. It also tells inserts from updates
      portably (PostgreSQL's ``xmax`` trick has no SQLite equivalent) and gives the old TxnDate
      of a moved transaction, for the report months to re-materialize.
    * **Lines replaced per parent in the same transaction.** A QBO object is the unit of change:
      when an invoice changes, its old lines are deleted and the new ones inserted with it, so a
      reader never sees an invoice with half its lines.
    * **COPY on PostgreSQL.** Landing a million invoices row by row is too slow. With psycopg2,
      rows are streamed with ``COPY ... FROM STDIN``: straight into the table when none of the
      page's objects is there yet (a first load; one writer per company and entity, so nothing
      can race it, and a clash would fail loudly, never silently), otherwise into a temporary
      staging table and merged with ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``. QBO's ISO
      timestamps and dates go to PostgreSQL as text, unparsed: PostgreSQL parses them faster.
    * **Deletes are flags.** Tombstones and hard deletes set ``is_deleted``/``deleted_at`` and keep
      the row and its last known content; a tombstone for an object never landed is stored as a
      deleted row holding the tombstone, so the warehouse knows the Id existed.
    * **The caller owns the transaction.** Every method takes the ``Connection`` of
      :meth:`begin`, so rows, the CDC cursor and the refresh progress commit together.

    Args:
        engine: SQLite or PostgreSQL engine (``qb_pipelines.store.db.make_engine``); the tables
            must exist (``migrate`` or :func:`create_tables`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._copy = self.dialect == "postgresql" and engine.dialect.driver == "psycopg2"

    # ------------------------------------------------------------------------------ plumbing
    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: everything written through it commits or rolls back together.

        On SQLite it starts with ``BEGIN IMMEDIATE``: the writer reads (existing hashes, cursors)
        before it writes, and a deferred transaction that read while another process committed
        could only fail with "database is locked" when it then tried to write; taking the write
        lock first makes it wait its turn (the busy timeout) instead. PostgreSQL ignores the option.
        """
        with self.engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------------------ objects
    def prepare(self, entity: str | EntityDef, company_key: str, body: dict, synced_at: datetime) -> _Prepared:
        """Turn one QBO object into the values of its row and its child rows."""
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        typed = _TYPED[ent.name]
        raw = orjson.dumps(body)
        obj_id = str(ent.identity(body))
        fields = ent.fields_of(body)  # a RecurringTransaction's typed columns are its template's
        active = fields.get("Active")
        is_active = True if active is None else bool(_bool(active))
        values = (
            company_key, obj_id, _text(fields.get("SyncToken")),
            *(_dig(fields, t.path) for t in typed),
            is_active, False, None, raw.decode(), hashlib.blake2b(raw, digest_size=16).hexdigest(),
            synced_at, synced_at,
        )
        children: list[tuple] = []
        spec = child_spec(ent)
        if spec is not None:
            children = spec.rows(company_key, obj_id, fields.get(ent.line_fields[0]) or [])
        txn_date = fields.get("TxnDate")
        return _Prepared(obj_id, values, values[-3], txn_date if isinstance(txn_date, str) else None, is_active,
                         children)

    def _kinds(self, entity: EntityDef) -> tuple[str, ...]:
        return ("text", "text", "text", *(t.kind for t in _TYPED[entity.name]),
                "bool", "bool", "time", "json", "text", "time", "time")

    def _existing(self, conn: Connection, table: sa.Table, company_key: str, ids: Sequence[str]) -> dict[str, tuple]:
        """Stored (row_hash, is_deleted, is_active, txn_date) of the given ids."""
        cols = [table.c.id, table.c.row_hash, table.c.is_deleted, table.c.is_active]
        has_date = "txn_date" in table.c
        if has_date:
            cols.append(table.c.txn_date)
        out: dict[str, tuple] = {}
        if self.dialect == "postgresql":
            # one array parameter instead of 1000 bound values: PostgreSQL plans it in a fraction
            stmt = sa.select(*cols).where(table.c.company_key == company_key,
                                          table.c.id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.String))))
            chunks = [list(ids)]
        else:
            chunks = [list(ids[i:i + _ID_CHUNK]) for i in range(0, len(ids), _ID_CHUNK)]
            stmt = None
        for chunk in chunks:
            if stmt is not None:
                rows = conn.execute(stmt, {"ids": chunk})
            else:
                rows = conn.execute(sa.select(*cols).where(table.c.company_key == company_key,
                                                           table.c.id.in_(chunk)))
            for row in rows:
                out[row[0]] = (row[1], bool(row[2]), bool(row[3]), row[4] if has_date else None)
        return out

    def upsert(self, conn: Connection, entity: str | EntityDef, company_key: str, bodies: Sequence[dict], *,
               synced_at: datetime) -> UpsertStats:
        """Insert or update live QBO objects (not tombstones) and replace their lines.

        Args:
            conn: the transaction of :meth:`begin`.
            entity: the objects' entity.
            company_key: the company partition.
            bodies: objects as QBO sent them (a page, a CDC block...); duplicates keep the last.
            synced_at: when they were read (stored in ``synced_at``, and ``first_synced_at`` on insert).

        Returns:
            Counts, and the report months the changed transactions touch.
        """
        return self.write_batch(conn, self.prepare_batch(entity, company_key, bodies, synced_at=synced_at))

    def prepare_batch(self, entity: str | EntityDef, company_key: str, bodies: Sequence[dict], *,
                      synced_at: datetime, assume_new: bool = False) -> PreparedBatch:
        """Turn objects into rows without touching the database (duplicates keep the last).

        ``assume_new=True`` (a first load into an empty table) skips the lookup of stored rows. If
        an object is there after all, the write fails with an IntegrityError (:meth:`integrity_errors`:
        the row on PostgreSQL's COPY path, its lines on SQLite) and the transaction rolls back; the
        caller retries the batch with ``assume_new=False``.
        """
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        latest: dict[str, _Prepared] = {}
        for body in bodies:
            prepared = self.prepare(ent, company_key, body, synced_at)
            latest[prepared.id] = prepared
        if self._copy:
            kinds = self._kinds(ent)
            spec = child_spec(ent)
            child_kinds = spec.kinds if spec is not None else ()
            for prepared in latest.values():
                prepared.copy_line = _format(kinds, prepared.values)
                prepared.child_copy = [_format(child_kinds, c) for c in prepared.children]
        return PreparedBatch(ent, company_key, synced_at, latest, assume_new)

    def write_batch(self, conn: Connection, batch: PreparedBatch) -> UpsertStats:
        """Write a :class:`PreparedBatch` in ``conn``'s transaction (see :meth:`upsert`)."""
        ent, company_key, synced_at, latest = batch.entity, batch.company_key, batch.synced_at, batch.rows
        main, child = tables_for(ent)
        stats = UpsertStats()
        if not latest:
            return stats
        existing = {} if batch.assume_new else self._existing(conn, main, company_key, list(latest))
        new: list[_Prepared] = []
        changed: list[_Prepared] = []
        unchanged: list[str] = []
        for obj_id, prepared in latest.items():
            old = existing.get(obj_id)
            if old is None:
                new.append(prepared)
                stats.inserted += 1
                if ent.is_transaction and (m := _month(prepared.txn_date)):
                    stats.touched_months.add(m)
                continue
            old_hash, old_deleted, old_active, old_date = old
            if old_hash == prepared.row_hash and not old_deleted:
                unchanged.append(obj_id)
                stats.unchanged += 1
                continue
            changed.append(prepared)
            stats.updated += 1
            if old_active and not prepared.is_active:
                stats.inactivated += 1
            if ent.is_transaction:
                for m in (_month(old_date), _month(prepared.txn_date)):
                    if m:
                        stats.touched_months.add(m)
        if new or changed:
            self._write_rows(conn, ent, main, new, changed)
        if child is not None and (new or changed):
            if changed:
                self._delete_children(conn, child, company_key, [p.id for p in changed])
            self._insert_children(conn, ent, child, [*new, *changed])
        if unchanged:
            # QBO confirmed them: a full refresh's hard-delete sweep must not flag them
            for start in range(0, len(unchanged), _ID_CHUNK):
                conn.execute(main.update()
                             .where(main.c.company_key == company_key,
                                    main.c.id.in_(unchanged[start:start + _ID_CHUNK]))
                             .values(synced_at=self._time(synced_at)))
        return stats

    def _write_rows(self, conn: Connection, ent: EntityDef, main: sa.Table, new: list[_Prepared],
                    changed: list[_Prepared]) -> None:
        columns = [c.name for c in main.columns]
        kinds = self._kinds(ent)
        if self._copy:
            lines = [p.copy_line or _format(kinds, p.values) for p in (*new, *changed)]
            if new and not changed:
                self._copy_lines(conn, main.name, columns, lines)
                return
            stage = self._stage(conn, main.name)
            self._copy_lines(conn, stage, columns, lines)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns
                                if c not in ("company_key", "id", "first_synced_at"))
            collist = ", ".join(columns)
            conn.exec_driver_sql(
                f"INSERT INTO {main.name} ({collist}) SELECT {collist} FROM {stage} "
                f"ON CONFLICT (company_key, id) DO UPDATE SET {updates}")
            conn.exec_driver_sql(f"TRUNCATE {stage}")
            return
        rows = [p.values for p in (*new, *changed)]
        if self.dialect == "sqlite":
            convert = [_SQLITE[k] for k in kinds]
            placeholders = ", ".join("?" for _ in columns)
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns
                                if c not in ("company_key", "id", "first_synced_at"))
            sql = (f"INSERT INTO {main.name} ({', '.join(columns)}) VALUES ({placeholders}) "
                   f"ON CONFLICT (company_key, id) DO UPDATE SET {updates}")
            data = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
            conn.exec_driver_sql(sql, data)
            return
        # any other driver: SQLAlchemy's portable upsert (PostgreSQL dialect without psycopg2)
        convert = [_PORTABLE[k] for k in kinds]
        records = [dict(zip(columns, (f(v) for f, v in zip(convert, row, strict=True)), strict=True))
                   for row in rows]
        for r in records:
            r["raw"] = orjson.loads(r["raw"])
        stmt = postgresql.insert(main) if self.dialect == "postgresql" else sqlite.insert(main)
        stmt = stmt.on_conflict_do_update(
            index_elements=["company_key", "id"],
            set_={c: stmt.excluded[c] for c in columns if c not in ("company_key", "id", "first_synced_at")})
        conn.execute(stmt, records)

    def _stage(self, conn: Connection, table: str) -> str:
        """A session-local staging table shaped like ``table``, emptied at every commit.

        Created if missing on every use (a catalog lookup): pooled connections come and go, so
        remembering which one already has it is not worth the risk.
        """
        stage = f"_stage_{table}"
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        return stage

    def _copy_lines(self, conn: Connection, table: str, columns: Sequence[str], lines: list[str]) -> None:
        """Stream rows already in COPY text format into ``table`` (psycopg2 ``copy_expert``)."""
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        cursor = conn.connection.driver_connection.cursor()
        try:
            # one read of the whole buffer: with psycopg2's default 8 KiB reads, each read waits
            # for the GIL while another thread prepares the next page (a convoy of 5 ms waits)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(text),
                               size=len(text) + 1)
        finally:
            cursor.close()

    def _delete_children(self, conn: Connection, child: sa.Table, company_key: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _ID_CHUNK):
            conn.execute(child.delete().where(child.c.company_key == company_key,
                                              child.c.txn_id.in_(list(ids[start:start + _ID_CHUNK]))))

    def _insert_children(self, conn: Connection, ent: EntityDef, child: sa.Table, parents: list[_Prepared]) -> None:
        spec = child_spec(ent)
        assert spec is not None  # the entity has a child table
        columns, kinds = spec.columns, spec.kinds
        if self._copy:
            lines = [line for p in parents
                     for line in (p.child_copy if p.child_copy is not None else
                                  [_format(kinds, c) for c in p.children])]
            self._copy_lines(conn, child.name, columns, lines)
            return
        rows = [c for p in parents for c in p.children]
        if not rows:
            return
        if self.dialect == "sqlite":
            convert = [_SQLITE[k] for k in kinds]
            sql = f"INSERT INTO {child.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            conn.exec_driver_sql(sql, [tuple(f(v) for f, v in zip(convert, r, strict=True)) for r in rows])
            return
        convert = [_PORTABLE[k] for k in kinds]
        records = [dict(zip(columns, (f(v) for f, v in zip(convert, r, strict=True)), strict=True)) for r in rows]
        if "raw" in columns:
            for r in records:
                r["raw"] = orjson.loads(r["raw"])
        conn.execute(child.insert(), records)

    # ------------------------------------------------------------------------------ deletes
    def mark_deleted(self, conn: Connection, entity: str | EntityDef, company_key: str, tombstones: Sequence[dict],
                     *, synced_at: datetime) -> UpsertStats:
        """Flag objects QBO reported deleted (CDC tombstones ``{"Id", "status": "Deleted", ...}``).

        The row and its lines keep their last known content; ``deleted_at`` is the tombstone's
        LastUpdatedTime. A tombstone for an Id never landed is stored as a deleted row holding the
        tombstone. Tombstones seen again change nothing (CDC windows overlap).

        Returns:
            ``deleted`` (newly flagged or stored) and the months of the deleted transactions.
        """
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        main, _ = tables_for(ent)
        stats = UpsertStats()
        latest = {str(ent.identity(t)): t for t in tombstones}
        if not latest:
            return stats
        existing = self._existing(conn, main, company_key, list(latest))
        missing: list[dict] = []
        for obj_id, tomb in latest.items():
            when = _py_time((tomb.get("MetaData") or {}).get("LastUpdatedTime")) or synced_at
            old = existing.get(obj_id)
            if old is None:
                missing.append(tomb)
                continue
            if old[1]:
                stats.unchanged += 1
                continue
            conn.execute(main.update().where(main.c.company_key == company_key, main.c.id == obj_id)
                         .values(is_deleted=True, deleted_at=self._time(when), synced_at=self._time(synced_at)))
            stats.deleted += 1
            if ent.is_transaction and (m := _month(old[3])):
                stats.touched_months.add(m)
        if missing:
            rows = []
            for tomb in missing:
                when = _py_time((tomb.get("MetaData") or {}).get("LastUpdatedTime")) or synced_at
                rows.append(self._tombstone_row(ent, company_key, tomb, synced_at, when))
            self._write_rows(conn, ent, main, rows, [])
            stats.deleted += len(missing)
        return stats

    def _tombstone_row(self, ent: EntityDef, company_key: str, tomb: dict, synced_at: datetime,
                       deleted_at: datetime) -> _Prepared:
        """A deleted row holding the tombstone itself (values laid out as :meth:`prepare` does)."""
        prepared = self.prepare(ent, company_key, tomb, synced_at)
        v = prepared.values
        # ... is_active, is_deleted, deleted_at, raw, row_hash, first_synced_at, synced_at
        prepared.values = (*v[:-6], True, deleted_at, *v[-4:])
        prepared.children = []
        return prepared

    def _time(self, value: datetime) -> Any:
        # SQLite: bind UTC so stored strings compare in one time zone
        return value.astimezone(UTC) if value.tzinfo is not None and self.dialect == "sqlite" else value

    def unconfirmed_ids(self, conn: Connection, entity: str | EntityDef, company_key: str, *,
                        since: datetime) -> list[str]:
        """Live rows QBO has not confirmed since ``since``: the hard-delete candidates of a full refresh."""
        main, _ = tables_for(entity)
        rows = conn.execute(sa.select(main.c.id).where(
            main.c.company_key == company_key, main.c.is_deleted == sa.false(),
            main.c.synced_at < self._time(since)).order_by(main.c.id))
        return [r[0] for r in rows]

    def mark_hard_deleted(self, conn: Connection, entity: str | EntityDef, company_key: str, ids: Sequence[str], *,
                          at: datetime) -> UpsertStats:
        """Flag rows that QBO no longer has (deleted without a tombstone CDC could see)."""
        ent = entity if isinstance(entity, EntityDef) else registry.get(entity)
        main, _ = tables_for(ent)
        stats = UpsertStats()
        if not ids:
            return stats
        existing = self._existing(conn, main, company_key, list(ids))
        for start in range(0, len(ids), _ID_CHUNK):
            result = conn.execute(main.update().where(
                main.c.company_key == company_key, main.c.id.in_(list(ids[start:start + _ID_CHUNK])),
                main.c.is_deleted == sa.false()).values(is_deleted=True, deleted_at=self._time(at)))
            stats.deleted += result.rowcount or 0
        if ent.is_transaction:
            stats.touched_months |= {m for v in existing.values() if (m := _month(v[3]))}
        return stats

    # ------------------------------------------------------------------------------ sync state
    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions a duplicate key raises here (SQLAlchemy's, and the driver's on the COPY path)."""
        dbapi = getattr(self.engine.dialect, "loaded_dbapi", None) or self.engine.dialect.dbapi
        driver_error = getattr(dbapi, "IntegrityError", None)
        return (sa.exc.IntegrityError, driver_error) if driver_error else (sa.exc.IntegrityError,)
