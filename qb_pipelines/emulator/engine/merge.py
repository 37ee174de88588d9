"""Merging two name-list records, as a QuickBooks user can: the loser's references move to the survivor.

Every live object that references the loser (a transaction's CustomerRef, a sub-customer's
ParentRef, a line's ItemRef...) is rewritten to reference the survivor, as a new version; the
ledger follows; the loser is deleted (CDC shows its tombstone, §3) and the change log records a
``Merge`` on the survivor with ``deletedId`` (§9.3).
"""

from __future__ import annotations

from functools import cache

from qb_pipelines.emulator import entities, faults
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.engine import balances
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import bump, get_path
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

LINE = "Line[]."


@cache
def ref_paths_to(entity: str) -> dict[str, tuple[str, ...]]:
    """Entity -> the reference paths (``Line[].`` for line refs) that may point at ``entity``."""
    paths: dict[str, list[str]] = {}
    for e in registry.ENTITIES:
        refs = [(ref.path, ref.target) for ref in e.refs]
        refs += [(LINE + ref.path, ref.target) for line_refs in e.line_refs.values() for ref in line_refs]
        for path, target in refs:
            if entity in (target if isinstance(target, tuple) else (target,)):
                paths.setdefault(e.name, []).append(path)
    return {name: tuple(p) for name, p in paths.items()}


def replace_ref(body: dict, path: str, old_id: str, winner: dict) -> bool:
    """Point the reference at ``path`` to ``winner`` when it names ``old_id``; whether it changed."""
    name = winner.get("DisplayName") or winner.get("FullyQualifiedName") or winner.get("Name")
    if path.startswith(LINE):
        changed = False
        for line in body.get("Line") or []:
            changed |= replace_ref(line, path[len(LINE):], old_id, winner)
        return changed
    ref = get_path(body, path)
    if isinstance(ref, dict) and str(ref.get("value")) == str(old_id):
        ref["value"] = winner["Id"]
        ref["name"] = name
        return True
    return False


def merge(tx: Tx, ent: EntityDef, from_id: str, into_id: str) -> dict:
    """Merge ``from_id`` into ``into_id``; returns the survivor as stored afterwards."""
    loser = tx.get(ent.name, from_id)
    winner = tx.get(ent.name, into_id)
    if loser is None or winner is None or str(from_id) == str(into_id):
        raise faults.not_found()
    paths = ref_paths_to(ent.name)
    rows = tx.conn.execute(
        "SELECT entity, id, body, created_at FROM objects WHERE realm=? AND status IS NULL AND "
        "instr(body, ?) > 0", (tx.realm, f'"value":"{loser["Id"]}"')).fetchall()
    for other_entity, _oid, raw, created in rows:
        other = loads(raw)
        changed = False
        for path in paths.get(other_entity, ()):
            changed |= replace_ref(other, path, loser["Id"], winner)
        if changed:
            other_def = registry.get(other_entity)
            other["SyncToken"] = bump(other.get("SyncToken"))
            other["MetaData"]["LastUpdatedTime"] = tx.stamp()
            tx.put(other_def, other, created=created)
            if other_def.is_transaction:
                balances.post(tx, other_def, other)
    if entities.holds_balance(ent.name):
        column = entities.postings_column(ent.name)
        tx.conn.execute(f"UPDATE postings SET {column}=? WHERE realm=? AND {column}=?",
                        (int(winner["Id"]), tx.realm, int(loser["Id"])))
    tx.tombstone(ent, loser["Id"])
    if entities.holds_balance(ent.name):
        balances.recompute_party_balances(tx, ent)
    tx.change(ent.name, winner["Id"], "Merge", deleted_id=loser["Id"])
    return tx.get(ent.name, winner["Id"]) or winner
