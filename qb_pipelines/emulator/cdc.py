"""Change Data Capture: ``GET /v3/company/{realmId}/cdc?entities=A,B&changedSince=...`` (reference §3).

What a CDC call returns, as QBO does it:

* every object of the listed entities whose ``MetaData.LastUpdatedTime`` is at or after
  ``changedSince``, as its full current payload (creates and updates look alike; voided
  transactions are ordinary updates), oldest change first; deleted objects as tombstones
  ``{"domain":"QBO","status":"Deleted","Id":..,"MetaData":{"LastUpdatedTime":..}}`` (merged-away
  name-list records are tombstoned by the engine and show up the same way);
* one block per requested entity, in request order, inside the array envelope
  ``{"CDCResponse":[{"QueryResponse":[{"Customer":[...],"startPosition":1,"maxResults":n,
  "totalCount":t}, {}, ...]}],"time":...}``; an entity without changes is ``{}``, so a call with
  no changes at all for one entity is ``[{"QueryResponse":[{}]}]`` (samples/cdc_response.json);
* ``maxResults`` is the number of objects returned in the block and ``totalCount`` the number
  of changed objects of that entity in the window (larger than ``maxResults`` only when the
  response was capped, as in the CDC doc example where 5 > 3);
* **the cap: at most 1000 objects in the whole response**, not per entity. The docs state a
  1000-object response cap and tap-quickbooks treats it as a cap on the whole response (it
  falls back to one call per entity when a response reaches 1000). The 1000 returned are the
  *oldest* changes across all requested entities, so a client that advances its cursor to the
  newest ``LastUpdatedTime`` it received, or splits its window, loses nothing;
* ``entities`` is comma-separated and case-insensitive; ``changedSince`` is a date
  (midnight, company time) or a datetime with any offset, ``Z``, or a ``+`` that arrived
  URL-decoded as a space.

Faults (exact QBO texts for these are not captured in the reference; chosen here):

* missing ``entities`` or ``changedSince``: 2020 "Required param missing" naming the parameter;
* unknown entity: 4001 ``QueryValidationError: invalid context declaration: <name>`` (the text
  QBO uses for an unknown entity in a query, which CDC runs internally);
* entity CDC does not cover (registry ``cdc=False``: CompanyInfo, TaxCode, TaxRate): 4001
  ``QueryValidationError: CDC is not supported for entity <Name>``;
* ``changedSince`` that is not a date: 4001 ``QueryValidationError: invalid changedSince value <v>``;
* ``changedSince`` more than 30 days before emulator time: 4001 with the Detail a QBO user
  reported verbatim (QuickBooksSharp issue #19): ``Operation cdc with changedSince date <v>
  which is older than fixed days is not supported.``
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.clock import parse_instant, qbo_envelope_time
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

LOOKBACK_DAYS = 30
MAX_OBJECTS = 1000
_PLUS_AS_SPACE = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


def parse_changed_since(value: str) -> float:
    """``changedSince`` as a UTC epoch (date or datetime, any offset, ``+`` repaired).

    Raises:
        QBOFault: 4001 when the value is not a date or datetime.
    """
    text = value.strip()
    m = _PLUS_AS_SPACE.match(text)
    if m:
        text = f"{m.group(1)}+{m.group(2)}"
    try:
        return parse_instant(text)
    except ValueError:
        raise faults.query_invalid(f"QueryValidationError: invalid changedSince value {value}") from None


def resolve_entities(entities: str) -> list[EntityDef]:
    """The requested entities, in request order, without duplicates.

    Raises:
        QBOFault: 2020 when none is given, 4001 for an unknown or non-CDC entity.
    """
    out: list[EntityDef] = []
    for name in (part.strip() for part in (entities or "").split(",")):
        if not name:
            continue
        entity = registry.find(name)
        if entity is None:
            raise faults.query_invalid(f"QueryValidationError: invalid context declaration: {name}")
        if not entity.cdc:
            raise faults.query_invalid(f"QueryValidationError: CDC is not supported for entity {entity.name}")
        if entity not in out:
            out.append(entity)
    if not out:
        raise faults.required("entities")
    return out


def changes(emu: Emulator, realm: str, entities: str, changed_since: str) -> bytes:
    """Answer a CDC call for one company: the full response JSON bytes, envelope included.

    Args:
        emu: the emulator (``db`` and ``clock``).
        realm: the company's realmId.
        entities: the ``entities`` parameter, e.g. ``"Customer,invoice"``.
        changed_since: the ``changedSince`` parameter as received.

    Returns:
        ``{"CDCResponse":[{"QueryResponse":[...]}],"time":"..."}`` as bytes.

    Raises:
        QBOFault: see the module docstring.
    """
    if changed_since is None or not str(changed_since).strip():
        raise faults.required("changedSince")
    wanted = resolve_entities(entities)
    since = parse_changed_since(changed_since)
    now = emu.clock.timestamp()
    if since < now - LOOKBACK_DAYS * 86400:
        raise faults.query_invalid(
            f"Operation cdc with changedSince date {changed_since} which is older than fixed days is not supported."
        )

    # Gather up to MAX_OBJECTS + 1 candidates per entity (oldest first), then keep the oldest
    # MAX_OBJECTS overall: that bounds the work whatever the window holds.
    candidates: list[tuple[float, int, int, bytes]] = []
    totals: dict[str, int] = {}
    with emu.db.read() as conn:
        for index, entity in enumerate(wanted):
            (total,) = conn.execute(
                "SELECT COUNT(*) FROM objects WHERE realm=? AND entity=? AND updated_at >= ?",
                (realm, entity.name, since),
            ).fetchone()
            totals[entity.name] = total
            if not total:
                continue
            rows = conn.execute(
                "SELECT updated_at, id, body FROM objects WHERE realm=? AND entity=? AND updated_at >= ? "
                "ORDER BY updated_at, id LIMIT ?",
                (realm, entity.name, since, MAX_OBJECTS),
            ).fetchall()
            for updated_at, obj_id, body in rows:
                data = body if isinstance(body, bytes) else str(body).encode()
                candidates.append((updated_at, index, obj_id, data))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    kept = candidates[:MAX_OBJECTS]

    per_entity: dict[int, list[bytes]] = {}
    for _, index, _, data in kept:
        per_entity.setdefault(index, []).append(data)
    blocks = []
    for index, entity in enumerate(wanted):
        bodies = per_entity.get(index)
        if not bodies:
            blocks.append(b"{}")
            continue
        blocks.append(
            b'{"%s":[%s],"startPosition":1,"maxResults":%d,"totalCount":%d}'
            % (entity.json_key.encode(), b",".join(bodies), len(bodies), totals[entity.name])
        )
    time = qbo_envelope_time(now, emu.company_tz(realm))
    return b'{"CDCResponse":[{"QueryResponse":[%s]}],"time":"%s"}' % (b",".join(blocks), time.encode())
