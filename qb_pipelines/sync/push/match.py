"""Match before create: is the app's new record already in QuickBooks?

An app that starts syncing usually finds its customers, vendors and items already in QuickBooks,
typed in by the bookkeeper. Creating them again would fail (6240, names are unique) or, worse for
documents, double them. So a record with no mapping is looked up first:

* customers and vendors by display name, then by e-mail;
* items by name, then by SKU;
* invoices, estimates and bills by document number, for the same customer or vendor.

Exactly one match links the record; several go to review as an "ambiguous match"; none creates it.
Lookups are one query per kind and per 30 records (``IN`` lists), never one call per record, up to
four of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MatchClient", "find"]

_IN_CHUNK = 30
#: Lookup queries sent at once.
_PARALLEL = 4


class MatchClient:
    """What the lookups need from a QBO client (``QBOClient`` fits)."""

    def query_all(self, entity: str, where: str | None = None, order_by: str | None = None) -> Iterable[dict]: ...


def _quote(value: str) -> str:
    # QBO escapes apostrophes with a backslash (reference §2.1)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lookup(client: Any, entity: str, field: str, values: Iterable[str]) -> dict[str, list[dict]]:
    wanted = sorted({v for v in values if v})
    wheres = [f"{field} IN ({', '.join(_quote(v) for v in wanted[start:start + _IN_CHUNK])})"
              for start in range(0, len(wanted), _IN_CHUNK)]

    def one(where: str) -> list[dict]:
        return list(client.query_all(entity, where=where))

    if len(wheres) > 1:
        # several queries at once (the client's limiters hold each call); results kept in order
        with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(wheres)), thread_name_prefix="match") as pool:
            pages = list(pool.map(one, wheres))
    else:
        pages = [one(w) for w in wheres]
    found: dict[str, list[dict]] = {}
    for page in pages:
        for obj in page:
            value = _field(obj, field)
            if value is not None:
                found.setdefault(str(value).lower(), []).append(obj)
    return found


def _field(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    if isinstance(cur, Mapping):  # PrimaryEmailAddr compares on its Address
        cur = cur.get("Address")
    return cur


def _pick(candidates: Sequence[dict]) -> list[dict]:
    return list({str(c.get("Id")): c for c in candidates}.values())


def find(client: Any, entity: str, records: Mapping[int, Mapping[str, Any]],
         party_ids: Mapping[int, str] | None = None) -> dict[int, list[dict]]:
    """Candidates in QuickBooks for each record, by outbox row id (empty list: none).

    Args:
        client: the company's QBO client.
        entity: ``Customer``, ``Vendor``, ``Item``, ``Invoice``, ``Estimate`` or ``Bill``.
        records: row id -> the record's data (app vocabulary).
        party_ids: row id -> the QBO id of the document's customer or vendor (documents only).
    """
    out: dict[int, list[dict]] = {row_id: [] for row_id in records}
    if entity in ("Customer", "Vendor"):
        keys = (("DisplayName", "display_name"), ("PrimaryEmailAddr", "email"))
    elif entity == "Item":
        keys = (("Name", "name"), ("Sku", "sku"))
    else:
        keys = (("DocNumber", "number"),)
    remaining = dict(records)
    for qbo_field, app_field in keys:
        if not remaining:
            break
        values = {row_id: str(data[app_field]) for row_id, data in remaining.items() if data.get(app_field)}
        if not values:
            continue
        found = _lookup(client, entity, qbo_field, values.values())
        for row_id, value in values.items():
            candidates = _pick(found.get(value.lower(), []))
            if party_ids is not None:
                party_field = "VendorRef" if entity == "Bill" else "CustomerRef"
                candidates = [c for c in candidates
                              if str((c.get(party_field) or {}).get("value")) == str(party_ids.get(row_id))]
            if candidates:
                out[row_id] = candidates
                remaining.pop(row_id, None)
    return out
