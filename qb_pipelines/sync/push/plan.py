"""What a push run may send, and in which order: gates, the latest versions, dependencies first.

Pure functions over outbox rows and settings (no I/O), so the rules read and test on their own:

* **gates**: nothing goes while the company is not connected, its session expired, the tenant
  switched away, the Setup Wizard is not completed or the mappings need review after a switch
  (:func:`company_gate`); nor for an entity switched off or whose direction is QuickBooks to the
  app (:func:`entity_gate`). Gated rows wait, marked why, and go when the reason ends;
* **one version per record**: the latest; older ones are superseded (:func:`latest_per_record`);
* **dependencies first**: entities in the registry's push order (customers and items before the
  invoices that name them, vendors before bills), and parents before sub-customers
  (:func:`levels`);
* **batches** of at most 30 items (:func:`chunks`), QBO's limit, items independent of each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.store.connection_state import ConnectionState
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.store.settings import SyncSettings
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push.contract import REFERENCES

__all__ = ["BATCH_SIZE", "chunks", "company_gate", "entity_gate", "latest_per_record", "levels", "references"]

BATCH_SIZE = 30


def company_gate(company: Company, configured: bool, mappings_need_review: bool) -> str | None:
    """Why nothing of this company may be sent now, or ``None``."""
    if not company.current:
        return "the tenant switched to another QuickBooks company: reconnect this one to push to it"
    if company.state is ConnectionState.SESSION_EXPIRED:
        return "the QuickBooks session expired: reconnect in Accounting Integrations; nothing syncs until then"
    if company.state in (ConnectionState.DISCONNECTED, ConnectionState.NOT_CONNECTED):
        return "QuickBooks is not connected: connect it in Accounting Integrations; nothing syncs until then"
    if not configured:
        return "complete the Setup Wizard before syncing any data"
    if mappings_need_review:
        return "the company was switched: review the mappings in Settings before anything is pushed"
    return None


def entity_gate(settings: SyncSettings, entity: str) -> str | None:
    """Why rows of ``entity`` may not be sent under the tenant's settings, or ``None``."""
    if not settings.enabled(entity):
        return f"{entity} sync is off in Settings"
    direction = settings.direction(entity)
    if direction == registry.Direction.QBO_TO_APP.value:
        return f"{entity} syncs from QuickBooks to the app only (Settings > direction)"
    return None


def latest_per_record(rows: Iterable[OutboxView]) -> tuple[list[OutboxView], list[OutboxView]]:
    """``(latest rows, older rows)``: one row per record, the highest version."""
    best: dict[tuple[str, str], OutboxView] = {}
    older: list[OutboxView] = []
    for row in rows:
        key = (row.entity, row.app_id)
        current = best.get(key)
        if current is None or row.version > current.version:
            if current is not None:
                older.append(current)
            best[key] = row
        else:
            older.append(row)
    return sorted(best.values(), key=lambda r: r.id), older


def references(entity: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(entity, app_id)`` of every app record ``data`` refers to, in order, without duplicates."""
    out: list[tuple[str, str]] = []
    for path, target in REFERENCES.get(entity, {}).items():
        if path.startswith("lines[]."):
            field = path.split(".", 1)[1]
            values = [line.get(field) for line in data.get("lines") or []]
        else:
            values = [data.get(path)]
        out.extend((target, str(v)) for v in values if v)
    return list(dict.fromkeys(out))


def levels(rows: Sequence[OutboxView]) -> list[list[OutboxView]]:
    """Rows of one entity in waves: a row whose parent record is in the same set goes a wave later.

    Only sub-customers have parents (``parent_app_id``); a cycle (a record its own ancestor)
    leaves its rows in a last wave, where the missing parent blocks them with a clear reason.
    """
    by_id = {r.app_id: r for r in rows}
    depth: dict[str, int] = {}

    def level(row: OutboxView, seen: frozenset[str]) -> int:
        if row.app_id in depth:
            return depth[row.app_id]
        parent = (row.payload or {}).get("parent_app_id") if row.op == "upsert" else None
        if not parent or parent not in by_id or parent in seen:
            value = 0 if not parent or parent not in by_id else len(rows)
        else:
            value = level(by_id[parent], seen | {row.app_id}) + 1
        depth[row.app_id] = value
        return value

    waves: dict[int, list[OutboxView]] = {}
    for row in rows:
        waves.setdefault(level(row, frozenset()), []).append(row)
    return [waves[k] for k in sorted(waves)]


def chunks(items: Sequence[Any], size: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
