"""What a push batch is made of: one row's write (:class:`Item`), its batch item, its requestid.

Pure values and functions: no store, no client, no run state. The rooms of a push run
(:mod:`~qb_pipelines.sync.push.run_state`, ``waves``, ``settle``, ``send``) build items here and
read QuickBooks objects back with the small helpers at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.push.contract import schema


@dataclass
class Item:
    """One row's write in a batch."""

    row: OutboxView
    kind: str  # create | update | delete | void | inactivate
    body: dict[str, Any]
    app: dict[str, Any]  # the app values the write makes true
    mapping: MappingView | None = None
    sent_fields: set[str] = field(default_factory=set)
    note: str | None = None  # e.g. "QuickBooks' values kept for: email"

    def batch_item(self, entity: str, bid: str) -> dict[str, Any]:
        if self.kind == "create":
            return {"bId": bid, "operation": "create", entity: self.body}
        if self.kind == "delete":
            return {"bId": bid, "operation": "delete", entity: self.body}
        if self.kind == "void":
            return {"bId": bid, "operation": "update", "optionsData": "void", entity: self.body}
        return {"bId": bid, "operation": "update", entity: self.body}


def kind_of(item: dict[str, Any]) -> str:
    op = str(item.get("operation", "")).lower()
    if op == "update" and str(item.get("optionsData", "")).lower() == "void":
        return "void"
    if op == "update":
        entity_body = next((v for k, v in item.items() if isinstance(v, dict)), {})
        return "inactivate" if entity_body.get("Active") is False and len(entity_body) <= 4 else "update"
    return op or "create"


def requestid_for(realm: str, round_: int, parts: Sequence[tuple[int, int, Any, str]]) -> str:
    text = f"push|{realm}|{round_}|" + ",".join(f"{i}:{v}:{t}:{u}" for i, v, t, u in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def fields_of(entity: str) -> list[str]:
    return list(schema(entity)["properties"])


def last_updated(obj: dict[str, Any]) -> datetime | None:
    text = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def candidate(entity: str, obj: dict[str, Any]) -> dict[str, Any]:
    name = obj.get("DisplayName") or obj.get("Name") or obj.get("DocNumber")
    email = (obj.get("PrimaryEmailAddr") or {}).get("Address")
    return {k: v for k, v in {"qbo_id": str(obj.get("Id")), "name": name, "email": email,
                              "total": obj.get("TotalAmt")}.items() if v is not None}


def gone(entity: str) -> QBOError:
    from qb_pipelines.qbo.errors import NotFoundError

    return NotFoundError(f"the {entity} was deleted in QuickBooks", code="610")
