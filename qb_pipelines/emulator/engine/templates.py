"""Recurring transactions: a schedule and the template of one transaction (entities with ``wraps``).

QBO answers a RecurringTransaction wrapped in its template's type, ``{"Invoice": {...}}``: the
template is an invoice (a bill, a journal entry...) with ``RecurringInfo`` (name, Automated /
Reminder / Unscheduled, ``ScheduleInfo``) and a read-only ``RecurDataRef``. What QBO does with it
(reference: api-reference/recurringtransaction), and so the emulator:

* the template is validated and computed as a transaction of its type (lines, totals, tax,
  terms) but gets no DocNumber and never posts, moves no balance or stock and links nothing;
* its Id comes from the company's transaction sequence (QBO's sample lists templates with Ids
  among transactions'), its ``RecurDataRef`` from a sequence of its own;
* it is created by POST with the wrapper, updated with the wrapper (``Id`` + ``SyncToken``;
  the type cannot change) and deleted with ``operation=delete``, which answers
  ``{"status": "Deleted", "domain": "QBO", "<Type>": {"Id": ...}}``;
* template names are unique (6240), as in QBO's recurring transactions list.

Scheduling (creating the invoices when NextDate comes) is not emulated: a QuickBooks user makes
them, which the engine's create does.
"""

from __future__ import annotations

import copy

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.engine import transactions, validation
from qb_pipelines.emulator.engine.store import DELETED, Tx
from qb_pipelines.emulator.engine.values import SERVER_FIELDS, bump, check_date, clean, invalid_enum, number
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

_RECUR_TYPES = ("Automated", "Reminder", "Unscheduled")
_INTERVALS = ("Daily", "Weekly", "Monthly", "Yearly")
#: Fields the server keeps on an update (clients do not send them back).
_KEPT = ("RecurDataRef",)


def unwrap(ent: EntityDef, body: dict) -> tuple[str, dict]:
    """``(type, template)`` of a wrapper; 2020 unless it wraps exactly one allowed type."""
    kinds = [k for k, v in body.items() if k in ent.wraps and isinstance(v, dict)]
    if len(kinds) != 1:
        raise faults.validation(
            "2020", "Required param missing, need to supply the required value for the API",
            f"A {ent.name} wraps exactly one transaction: one of {', '.join(ent.wraps)}.", ent.name)
    return kinds[0], body[kinds[0]]


def create(tx: Tx, ent: EntityDef, body: dict) -> dict:
    """POST /recurringtransaction without Id: a new template."""
    kind, template = unwrap(ent, body)
    template = clean(copy.deepcopy(template))
    for f in SERVER_FIELDS | {"Id", "SyncToken", *_KEPT}:
        template.pop(f, None)
    template["Id"] = str(tx.next_id(ent))
    template["SyncToken"] = "0"
    _compute(tx, ent, kind, template)
    template["RecurDataRef"] = {"value": str(tx.next_value("recurdata"))}
    wrapper = _store(tx, ent, kind, template, created=tx.ts)
    tx.change(ent.name, template["Id"], "Create")
    return wrapper


def update(tx: Tx, ent: EntityDef, body: dict) -> dict:
    """POST with the template's Id and SyncToken: a sparse or full update of the same type."""
    kind, template = unwrap(ent, body)
    old_kind, old, created = _current(tx, ent, template)
    if kind != old_kind:
        raise faults.business(f"A recurring {old_kind} cannot become a {kind}.", kind)
    template = clean(copy.deepcopy(template))
    sparse = template.pop("sparse", body.get("sparse")) in (True, "true", "True")
    for f in SERVER_FIELDS | {"SyncToken"}:
        template.pop(f, None)
    new = {**copy.deepcopy(old), **template} if sparse else template
    for keep in _KEPT:
        new[keep] = old[keep]
    new["Id"], new["SyncToken"] = old["Id"], bump(old["SyncToken"])
    for f in ("domain", "sparse", "MetaData"):
        new.pop(f, None)
    _compute(tx, ent, kind, new)
    wrapper = _store(tx, ent, kind, new, created=created, create_time=old["MetaData"]["CreateTime"])
    tx.change(ent.name, new["Id"], "Update")
    return wrapper


def delete(tx: Tx, ent: EntityDef, body: dict) -> dict:
    """``operation=delete`` with the template's Id and SyncToken (wrapped or not)."""
    template = unwrap(ent, body)[1] if any(k in ent.wraps for k in body) else body
    kind, old, _created = _current(tx, ent, template)
    tx.tombstone(ent, old["Id"])
    tx.change(ent.name, old["Id"], "Delete")
    return {"status": DELETED, "domain": "QBO", kind: {"Id": old["Id"]}}


def _current(tx: Tx, ent: EntityDef, template: dict) -> tuple[str, dict, float]:
    """The stored template a write names: (type, template, created_at); 2020, 610 or 5010 as QBO."""
    if template.get("SyncToken") in (None, ""):
        raise faults.required("SyncToken")
    obj_id = str(template.get("Id", "")).strip()
    row = tx.conn.execute("SELECT body, status, created_at FROM objects WHERE realm=? AND entity=? AND id=?",
                          (tx.realm, ent.name, int(obj_id) if obj_id.isdigit() else -1)).fetchone()
    if row is None or row[1] == DELETED:
        raise faults.not_found()
    kind, old = unwrap(ent, loads(row[0]))
    if str(template["SyncToken"]).strip() != old["SyncToken"]:
        raise faults.stale()
    return kind, old, row[2]


def _compute(tx: Tx, ent: EntityDef, kind: str, template: dict) -> None:
    """The schedule, then the template as a transaction of its type (no number, no posting)."""
    info = template.get("RecurringInfo")
    if not isinstance(info, dict):
        raise faults.required("RecurringInfo")
    if not info.get("Name"):
        raise faults.required("RecurringInfo.Name")
    info.setdefault("RecurType", "Automated")
    if info["RecurType"] not in _RECUR_TYPES:
        raise invalid_enum(str(info["RecurType"]), "RecurringInfo.RecurType")
    if isinstance(info.get("Active"), str):
        info["Active"] = info["Active"].lower() == "true"
    info.setdefault("Active", True)
    schedule = info.get("ScheduleInfo")
    if info["RecurType"] != "Unscheduled":
        if not isinstance(schedule, dict) or not schedule.get("IntervalType"):
            raise faults.required("RecurringInfo.ScheduleInfo.IntervalType")
        if schedule["IntervalType"] not in _INTERVALS:
            raise invalid_enum(str(schedule["IntervalType"]), "RecurringInfo.ScheduleInfo.IntervalType")
        schedule["NumInterval"] = int(number(schedule.get("NumInterval", 1), "RecurringInfo.ScheduleInfo.NumInterval"))
        for field in ("StartDate", "EndDate", "NextDate"):
            if schedule.get(field):
                check_date(schedule[field], f"RecurringInfo.ScheduleInfo.{field}")
        if schedule.get("StartDate"):
            schedule.setdefault("NextDate", schedule["StartDate"])
    _check_name_free(tx, ent, template["Id"], str(info["Name"]))
    of = registry.get(kind)
    validation.validate(tx, of, template)
    dated = "TxnDate" in template
    transactions.compute_transaction(tx, of, template, None, template=True)
    if not dated:  # the date each scheduled transaction gets is its own; the template keeps none
        template.pop("TxnDate", None)


def _check_name_free(tx: Tx, ent: EntityDef, own_id: str, name: str) -> None:
    """6240 when another live template already has this name (case-insensitive)."""
    for obj_id, body in tx.live(ent.name):
        if str(obj_id) == str(own_id):
            continue
        other = ent.fields_of(body).get("RecurringInfo") or {}
        if str(other.get("Name", "")).lower() == name.lower():
            raise faults.duplicate_name()


def _store(tx: Tx, ent: EntityDef, kind: str, template: dict, *, created: float,
           create_time: str | None = None) -> dict:
    template["domain"] = "QBO"
    template["sparse"] = False
    template["MetaData"] = {"CreateTime": create_time or tx.stamp(created), "LastUpdatedTime": tx.stamp()}
    wrapper = {kind: template}
    tx.put(ent, wrapper, created=int(created))
    return wrapper
