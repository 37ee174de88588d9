"""What QBO refuses before it computes anything: missing fields (2020), dangling references (2500),
bad line detail types, and names taken in their namespace (6240).

The rules come from the registry: ``required``, ``refs`` and ``line_refs`` per entity, ``unique_name``
and ``name_scope`` for the namespace, ``hierarchical`` for names unique among siblings only.
"""

from __future__ import annotations

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.engine.store import DELETED, Tx
from qb_pipelines.emulator.engine.values import get_path, ref_value
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

#: Line kinds that carry no detail object of their own.
_BARE_LINES = ("SubTotalLineDetail", "DescriptionOnly")


def validate(tx: Tx, ent: EntityDef, body: dict) -> None:
    """Required fields, header references and each line's detail type and references."""
    for name in ent.required:
        if body.get(name) in (None, "", []) and not (name == "Line" and body.get(name) == []):
            raise faults.required(name)
        if name == "Line" and not body.get("Line"):
            raise faults.required("Line")
    for ref in ent.refs:
        check_ref(tx, body, ref.path, ref.target, ref.required, account_types=ref.account_types)
    for line in body.get("Line") or []:
        if not isinstance(line, dict):
            raise faults.invalid_value("Line", "Line must be an object")
        if ent.lines is Lines.LINKS or (ent.lines is Lines.DEPOSIT and "LinkedTxn" in line):
            continue  # lines that only link other documents have no DetailType
        dt = line.get("DetailType")
        if not dt:
            raise faults.required("Line.DetailType")
        if dt not in _BARE_LINES and dt not in line:
            raise faults.required(f"Line.{dt}")
        for ref in ent.line_refs.get(dt, ()):
            check_ref(tx, line, ref.path, ref.target, ref.required, prefix="Line.", account_types=ref.account_types)


def check_ref(tx: Tx, body: dict, path: str, target: str | tuple[str, ...], required: bool,
              prefix: str = "", *, account_types: tuple[str, ...] = ()) -> None:
    """2500 unless the reference at ``path`` names a live, active object; fills its ``name``.

    Typed references (``EntityRef``, a deposit line's ``Entity``) are checked against the party
    their ``type`` names. An account a field accepts only of some types or classifications
    (``account_types``: a credit card payment's ``BankAccountRef`` must be a Bank) is 6000 otherwise.
    """
    ref = get_path(body, path)
    value = ref_value(ref)
    if value is None:
        if required:
            raise faults.required(prefix + path)
        return
    targets = target if isinstance(target, tuple) else (target,)
    if path.endswith("EntityRef") or path.endswith(".Entity"):
        kind = ""
        if isinstance(ref, dict):
            kind = ref.get("type") or get_path(body, path.rsplit(".", 1)[0] + ".Type") or ""
        if kind in registry.parties():
            targets = (kind,)
    for t in targets:
        if t == "Customer" and path.endswith("TaxCodeRef"):
            continue
        row = tx.row(t, value)
        if row is not None and row[2] != DELETED and row[1] == 1:
            found = loads(row[0])
            if account_types and t == "Account" and not {found.get("AccountType"),
                                                          found.get("Classification")} & set(account_types):
                raise faults.business(
                    f"Invalid account type: {prefix}{path} must be an account of type {' or '.join(account_types)}, "
                    f"not {found.get('AccountType')} ({found.get('Name')}).", prefix + path)
            if isinstance(ref, dict) and "name" not in ref:
                ref["name"] = display_name(t, found)
            return
    raise faults.invalid_reference(prefix + path, value, targets[0])


def display_name(entity: str, body: dict) -> str:
    """The name QBO writes on a reference to ``body``: DisplayName for parties, else the full path."""
    if entity in registry.parties():
        return body.get("DisplayName", "")
    return body.get("FullyQualifiedName") or body.get("Name") or body.get("DisplayName") or ""


def check_unique(tx: Tx, ent: EntityDef, body: dict) -> None:
    """6240 when another live object of the namespace has the same name (case-insensitive).

    Parties share one DisplayName namespace; other hierarchical lists compare full paths, so two
    sub-items of different parents may share a name.
    """
    field = ent.unique_name
    if not field:
        return
    name = str(body.get(field, "")).strip()
    if not name:
        return
    scope = ent.name_scope or (ent.name,)
    if ent.hierarchical and not ent.name_scope:
        name_expr = "json_extract(body, '$.FullyQualifiedName')"
        if body.get("ParentRef"):
            name = body.get("FullyQualifiedName", name)
    else:
        name_expr = f"json_extract(body, '$.{field}')"
    placeholders = ",".join("?" * len(scope))
    row = tx.conn.execute(
        f"SELECT entity, id FROM objects WHERE realm=? AND entity IN ({placeholders}) AND status IS NULL "
        f"AND lower({name_expr}) = lower(?) AND NOT (entity=? AND id=?) LIMIT 1",
        (tx.realm, *scope, name, ent.name, int(body["Id"])),
    ).fetchone()
    if row:
        raise faults.duplicate_name()
