"""Reading what landed: the warehouse tables written by ``store.warehouse`` (``qbo_<snake entity>``).

The checks read typed columns through :class:`WarehouseTable` (SQL sums and per-id amounts) and
the raw QBO bodies through :func:`landed_bodies` (the ledger, streamed in chunks). Every reader
accepts an engine or an open connection: a test tampers inside a transaction and checks on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.store import warehouse


class WarehouseTable:
    """One landed entity table (``store.warehouse.tables_for``) and its line table, if any."""

    def __init__(self, engine: Engine | Connection, entity: str) -> None:
        self.entity = registry.get(entity).name
        self.table, self.child = warehouse.tables_for(self.entity)

    def col(self, name: str, required: bool = True) -> sa.ColumnElement | None:
        """The column ``name`` of the table; ``None`` (or LookupError when required) if it has none."""
        if name in self.table.c:
            return self.table.c[name]
        if required:
            raise LookupError(f"warehouse table {self.table.name} has no {name} column")
        return None

    def where_live(self, company_key: str) -> sa.ColumnElement[bool]:
        """This company's rows that QBO still has (not deleted; inactive ones included)."""
        return (self.table.c.company_key == company_key) & (self.table.c.is_deleted == sa.false())


def connect(engine: Engine | Connection) -> Any:
    """A context manager yielding a connection (borrowing one that is already open)."""
    return nullcontext(engine) if isinstance(engine, Connection) else engine.connect()


def _load(raw: Any) -> dict:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode()
    return json.loads(raw)


def landed_bodies(engine: Engine | Connection, company_key: str, entity: str, *, chunk: int = 2000
                  ) -> Iterator[dict]:
    """The raw QBO bodies of one entity's live rows for one company, streamed in chunks."""
    wt = WarehouseTable(engine, entity)
    query = sa.select(wt.col("raw")).where(wt.where_live(company_key))
    with connect(engine) as conn:
        # Statement-level streaming: a borrowed connection's own options stay untouched.
        for (raw,) in conn.execute(query.execution_options(stream_results=True, yield_per=chunk)):
            yield _load(raw)


def landed_bodies_if_any(engine: Engine | Connection, company_key: str, entity: str) -> Iterator[dict]:
    """:func:`landed_bodies`, or nothing when the entity's table does not exist (nothing landed)."""
    if table_exists(engine, entity):
        yield from landed_bodies(engine, company_key, entity)


def table_exists(engine: Engine | Connection, entity: str) -> bool:
    """Whether the entity's table exists in this database (nothing landed otherwise)."""
    return sa.inspect(engine).has_table(warehouse.table_name(entity))
