"""Running a query and shaping its response: paging, the keyset cache, projections, base version.

:func:`execute` is the entry point (the v3 ``/query`` endpoint and batch items call it). May
read the ``objects`` table; keeps, per emulator database, a keyset cache of page boundaries.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.query.names import NAMES
from qb_pipelines.emulator.query.parser import parse
from qb_pipelines.emulator.query.sql import compile_where, order_terms
from qb_pipelines.emulator.query.syntax import Query
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Kind

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000


class _KeysetCache:
    """(realm, query shape, db version) -> {next STARTPOSITION: sort key of the row before it}."""

    MAX_QUERIES = 256
    MAX_POSITIONS = 32

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple, OrderedDict[int, tuple]] = OrderedDict()

    def get(self, key: tuple, position: int) -> tuple | None:
        with self.lock:
            positions = self.entries.get(key)
            if positions is None:
                return None
            self.entries.move_to_end(key)
            return positions.get(position)

    def put(self, key: tuple, position: int, sort_key: tuple) -> None:
        with self.lock:
            positions = self.entries.get(key)
            if positions is None:
                positions = self.entries[key] = OrderedDict()
                while len(self.entries) > self.MAX_QUERIES:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            positions[position] = sort_key
            while len(positions) > self.MAX_POSITIONS:
                positions.popitem(last=False)


_CACHES: weakref.WeakKeyDictionary[Any, _KeysetCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache_for(emu: Emulator) -> _KeysetCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(emu.db)
        if cache is None:
            cache = _CACHES[emu.db] = _KeysetCache()
        return cache


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


def resolve_entity(name: str) -> EntityDef:
    """The registry entry for a queried entity name (any case).

    Raises:
        QBOFault: 4001 ``QueryValidationError: invalid context declaration: <name>``.
    """
    entity = registry.find(name)
    if entity is None:
        raise faults.query_invalid(f"QueryValidationError: invalid context declaration: {name}")
    return entity


def _paging(q: Query) -> tuple[int, int]:
    start = 1 if q.start is None else q.start
    if start < 0:
        raise faults.query_invalid(f"QueryValidationError: value {start} is too small. Min allowed value is 1")
    start = max(start, 1)  # STARTPOSITION 0 is sent by real clients and served as 1
    max_results = DEFAULT_MAX_RESULTS if q.max_results is None else q.max_results
    if max_results < 1:
        raise faults.query_invalid(f"QueryValidationError: value {max_results} is too small. Min allowed value is 1")
    if max_results > MAX_MAX_RESULTS:
        raise faults.query_invalid(
            f"QueryValidationError: value {max_results} is too large. Max allowed value is {MAX_MAX_RESULTS}"
        )
    return start, max_results


def _base_version(minorversion: str | None) -> bool:
    """True when the request gets QBO's base version (no minorversion, or one below 4)."""
    if minorversion is None or str(minorversion).strip() == "":
        return True
    try:
        return int(str(minorversion).strip()) < 4
    except ValueError:
        return False


def _shape_rows(
    bodies: list[bytes], q: Query, entity: EntityDef, emu: Emulator, realm: str, minorversion: str | None
) -> list[bytes]:
    """Apply projections and field visibility; full ``SELECT *`` rows pass through untouched."""
    if not q.star:
        paths = [NAMES.resolve(emu, realm, entity, f) for f in q.fields]
        out = []
        for body in bodies:
            obj = orjson.loads(body)
            row: dict[str, Any] = {"domain": obj.get("domain", "QBO"), "sparse": True, "Id": obj.get("Id")}
            for path in paths:
                head = path.split(".")[0]
                if head in obj:
                    row[head] = obj[head]
            out.append(orjson.dumps(row))
        return out
    if (
        entity.name == "Item"
        and _base_version(minorversion)
        and not any(f.lower() == "sku" for f in q.fields)
    ):
        out = []
        for body in bodies:
            if b'"Sku"' in body:
                obj = orjson.loads(body)
                obj.pop("Sku", None)
                body = orjson.dumps(obj)
            out.append(body)
        return out
    return bodies


def execute(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> bytes:
    """Run a QBO query for one company and return the ``QueryResponse`` object as JSON bytes.

    Args:
        emu: the emulator (its ``db`` and ``clock`` are used).
        realm: the company's realmId.
        text: the query as the client sent it.
        minorversion: the request's ``minorversion``; ``None`` when absent (QBO's base version
            hides fields introduced later, e.g. ``Item.Sku``). Defaults to a modern client.

    Returns:
        The bytes of the object under ``"QueryResponse"``: ``{"Invoice":[...],"startPosition":1,
        "maxResults":2}``, ``{}`` when nothing matches, ``{"totalCount":n}`` for ``COUNT(*)``.

    Raises:
        QBOFault: 4000 on a syntax error, 4001 on an invalid entity, property or paging value.
    """
    q = parse(text)
    entity = resolve_entity(q.entity)
    start, max_results = _paging(q)
    compiled = compile_where(q, emu, realm, entity)
    clauses = ["realm = ?", "entity = ?", "IFNULL(status, '') <> 'Deleted'"]
    params: list[Any] = [realm, entity.name]
    if entity.kind is Kind.NAME_LIST and not compiled.mentions_active:
        clauses.append("active = 1")  # name lists answer with active rows unless asked
    clauses.extend(compiled.where)
    params.extend(compiled.params)

    # an expression index a term can use is named: without statistics SQLite would rather walk
    # the primary key in Id order than look the values up
    source = f"objects INDEXED BY {compiled.index}" if compiled.index else "objects"
    if q.count:
        with emu.db.read() as conn:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM {source} WHERE {' AND '.join(clauses)}", params).fetchone()
        return b'{"totalCount":%d}' % total

    terms, keyset = order_terms(q, emu, realm, entity)
    order_sql = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in terms)
    key_cols = [expr for expr, _ in terms]
    cache = _cache_for(emu) if keyset else None
    cache_key = (realm, entity.name, q.fields, q.where, q.order, getattr(emu.db, "version", 0))
    offset = start - 1
    after = cache.get(cache_key, start) if cache is not None and start > 1 else None
    if after is not None:
        # The plain bound on the leading column goes first: SQLite's planner takes the first
        # range it sees on an indexed column, and the row value alone is not used as a range.
        desc = terms[0][1]
        keyset_sql = (
            f"{key_cols[0]} {'<=' if desc else '>='} ? AND "
            f"({', '.join(key_cols)}) {'<' if desc else '>'} ({', '.join('?' * len(after))})"
        )
        clauses.insert(2, keyset_sql)
        params[2:2] = [after[0], *after]
        offset = 0
    select_cols = ", ".join(["body", *key_cols]) if keyset else "body"
    sql = (
        f"SELECT {select_cols} FROM {source} WHERE {' AND '.join(clauses)} "
        f"ORDER BY {order_sql} LIMIT ? OFFSET ?"
    )
    params.extend([max_results, offset])
    with emu.db.read() as conn:
        rows = conn.execute(sql, params).fetchall()
    if not rows:
        return b"{}"
    if cache is not None:
        cache.put(cache_key, start + len(rows), tuple(rows[-1][1:]))
    bodies = [r[0] if isinstance(r[0], bytes) else str(r[0]).encode() for r in rows]
    bodies = _shape_rows(bodies, q, entity, emu, realm, minorversion)
    return b'{"%s":[%s],"startPosition":%d,"maxResults":%d}' % (
        entity.json_key.encode(),
        b",".join(bodies),
        start,
        len(bodies),
    )


def execute_dict(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> dict:
    """:func:`execute` decoded, for callers that assemble JSON themselves (batch items).

    Prefer ``orjson.Fragment(execute(...))`` inside an ``orjson.dumps`` to keep rows as bytes.
    """
    return orjson.loads(execute(emu, realm, text, minorversion))


def fragment(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> orjson.Fragment:
    """:func:`execute` wrapped for embedding, e.g. ``orjson.dumps({"QueryResponse": frag, "bId": b})``."""
    return orjson.Fragment(execute(emu, realm, text, minorversion))
