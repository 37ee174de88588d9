"""Merging two name-list records, as a QuickBooks user can: the loser's references move to the survivor.

What QBO does (reference §3, §7.2, §9.3), and so what CDC returns afterwards:

* every live object that references the loser (a transaction's CustomerRef, a sub-customer's
  ParentRef, a line's ItemRef...) references the survivor instead, as a new version (SyncToken
  +1, LastUpdatedTime now); sub-records moved under the survivor get their new
  FullyQualifiedName, and so do their own descendants;
* the ledger follows: the moved transactions are posted again, the party's sub-ledger rows (or
  an account's postings) move to the survivor;
* balances follow the ledger: the survivor's Balance now includes the loser's, ancestors'
  BalanceWithJobs change on both sides; each object whose balance moved gets LastUpdatedTime
  now (not a new SyncToken: only a balance changed);
* the survivor itself is written (SyncToken +1, LastUpdatedTime now) and the loser is deleted
  (CDC shows its tombstone); the change log records a ``Merge`` on the survivor with
  ``deletedId``, which webhooks deliver.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from qb_pipelines.emulator import entities, faults
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.engine import balances, names
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import bump, get_path
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

LINE = "Line[]."


@dataclass(frozen=True)
class _RefPath:
    """Where a reference to the merged entity may sit, and whether it may name other kinds too."""

    path: str
    first_target: str
    typed: bool


@cache
def ref_paths_to(entity: str) -> dict[str, tuple[_RefPath, ...]]:
    """Entity -> the reference paths (``Line[].`` for line refs) that may point at ``entity``."""
    paths: dict[str, list[_RefPath]] = {}
    for e in registry.ENTITIES:
        refs = [(ref.path, ref.target) for ref in e.refs]
        refs += [(LINE + ref.path, ref.target) for line_refs in e.line_refs.values() for ref in line_refs]
        for path, target in refs:
            targets = target if isinstance(target, tuple) else (target,)
            if entity in targets:
                paths.setdefault(e.name, []).append(_RefPath(path, targets[0], len(targets) > 1))
    return {name: tuple(p) for name, p in paths.items()}


def replace_ref(body: dict, where: _RefPath, entity: str, old_id: str, winner: dict) -> bool:
    """Point the reference at ``where`` to ``winner`` when it names ``old_id`` of ``entity``."""
    if where.path.startswith(LINE):
        inner = _RefPath(where.path[len(LINE):], where.first_target, where.typed)
        changed = False
        for line in body.get("Line") or []:
            changed |= replace_ref(line, inner, entity, old_id, winner)
        return changed
    ref = get_path(body, where.path)
    if not isinstance(ref, dict) or str(ref.get("value")) != str(old_id):
        return False
    if where.typed:
        # a typed reference (EntityRef, a line's Entity) names a vendor, customer or employee:
        # only the merged kind moves (an untyped one was resolved to the first kind it may name)
        kind = ref.get("type") or get_path(body, where.path.rsplit(".", 1)[0] + ".Type") or where.first_target
        if kind != entity:
            return False
    ref["value"] = winner["Id"]
    ref["name"] = winner.get("DisplayName") or winner.get("FullyQualifiedName") or winner.get("Name")
    return True


def merge(tx: Tx, ent: EntityDef, from_id: str, into_id: str) -> dict:
    """Merge ``from_id`` into ``into_id``; returns the survivor as stored afterwards."""
    loser = tx.get(ent.name, from_id)
    winner = tx.get(ent.name, into_id)
    if loser is None or winner is None or str(from_id) == str(into_id):
        raise faults.not_found()
    if ent.hierarchical and _descends_from(tx, ent, winner, loser["Id"]):
        raise faults.business(f"A {ent.name.lower()} cannot be merged into one of its own sub-records.")
    moved_under = _move_references(tx, ent, loser, winner)
    for child in moved_under:
        _repath_descendants(tx, ent, child)
    _move_ledger(tx, ent, loser, winner)
    tx.tombstone(ent, loser["Id"])
    if entities.holds_balance(ent.name):
        balances.recompute_party_balances(tx, ent, touch=True)
    elif ent.name == "Account":
        balances.refresh_accounts(tx)
    survivor = tx.get(ent.name, winner["Id"]) or winner
    tx.touch(ent.name, survivor, bump_token=True)
    tx.change(ent.name, winner["Id"], "Merge", deleted_id=loser["Id"])
    return survivor


def _move_references(tx: Tx, ent: EntityDef, loser: dict, winner: dict) -> list[dict]:
    """Rewrite every live object that references the loser; returns the sub-records moved under the winner."""
    paths = ref_paths_to(ent.name)
    rows = tx.conn.execute(
        "SELECT entity, id, body, created_at FROM objects WHERE realm=? AND status IS NULL AND "
        "instr(body, ?) > 0", (tx.realm, f'"value":"{loser["Id"]}"')).fetchall()
    children = []
    for other_entity, _oid, raw, created in rows:
        other = loads(raw)
        other_def = registry.get(other_entity)
        # a recurring transaction's references are its template's, read as the template's type
        kind = next((k for k in other_def.wraps if isinstance(other.get(k), dict)), None)
        target = other[kind] if kind else other
        changed = False
        for where in paths.get(kind or other_entity, ()):
            changed |= replace_ref(target, where, ent.name, loser["Id"], winner)
        if not changed:
            continue
        if other_def.name == ent.name and get_path(other, "ParentRef.value") == winner["Id"]:
            names.place_under(ent, other, winner)
            children.append(other)
        target["SyncToken"] = bump(target.get("SyncToken"))
        target["MetaData"]["LastUpdatedTime"] = tx.stamp()
        tx.put(other_def, other, created=created)
        if other_def.posts_to_ledger:
            # an item merged into one with another income account moves money between accounts
            balances.rederive_later(tx, balances.post(tx, other_def, other))
    return children


def _descends_from(tx: Tx, ent: EntityDef, node: dict, ancestor_id: str) -> bool:
    parent = get_path(node, "ParentRef.value")
    for _ in range(10):  # deeper than any QBO hierarchy
        if parent is None:
            return False
        if str(parent) == str(ancestor_id):
            return True
        parent = get_path(tx.get(ent.name, parent) or {}, "ParentRef.value")
    return False


def _repath_descendants(tx: Tx, ent: EntityDef, parent: dict) -> None:
    """A moved sub-record's own descendants get their new FullyQualifiedName (and Level)."""
    for _obj_id, child in list(tx.live(ent.name)):
        if get_path(child, "ParentRef.value") == parent["Id"]:
            names.place_under(ent, child, parent)
            tx.touch(ent.name, child, bump_token=True)
            _repath_descendants(tx, ent, child)


def _move_ledger(tx: Tx, ent: EntityDef, loser: dict, winner: dict) -> None:
    """The loser's sub-ledger rows (a party) or postings (an account) belong to the survivor now."""
    if entities.holds_balance(ent.name):
        column = entities.postings_column(ent.name)
    elif ent.name == "Account":
        column = "account_id"  # transactions posting through an item's account are not rewritten above
    else:
        return
    tx.conn.execute(f"UPDATE postings SET {column}=? WHERE realm=? AND {column}=?",
                    (int(winner["Id"]), tx.realm, int(loser["Id"])))
