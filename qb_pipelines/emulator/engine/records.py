"""Records that are neither lists nor transactions (``Kind.RECORD``): attachments.

An Attachable is a note, a file's metadata, or both, linked to other objects by ``AttachableRef``
(QBO's Attachable reference). QBO requires a ``Note`` or a ``FileName``, checks each linked
object exists, derives the ``ContentType`` of a file from its name, and numbers attachments in a
space of its own (19-digit Ids such as ``5000000000000010341``). The file bodies (``/upload``,
``/download``) are not emulated: ``Size`` is kept as the uploading user gave it, and no download
URI is invented.
"""

from __future__ import annotations

import mimetypes

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import invalid_enum, number, ref_value
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

#: Where QBO's attachment Ids start (its docs show 5000000000000010341 and 100000000004190865).
FIRST_ID = 5_000_000_000_000_010_001
_CATEGORIES = ("Contact Photo", "Document", "Image", "Receipt", "Signature", "Sound", "Other")


def compute_record(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """An attachment's note or file, its category and the objects it belongs to."""
    if not body.get("Note") and not body.get("FileName"):
        raise faults.required("Note")
    category = body.get("Category")
    if category is not None and category not in _CATEGORIES:
        raise invalid_enum(str(category), "Category")
    if body.get("FileName") and not body.get("ContentType"):
        guessed, _ = mimetypes.guess_type(str(body["FileName"]))
        body["ContentType"] = guessed or "application/octet-stream"
    if body.get("Size") is not None:
        body["Size"] = int(number(body["Size"], "Size"))
    refs = body.get("AttachableRef") or []
    if not isinstance(refs, list):
        raise faults.invalid_value("AttachableRef", "AttachableRef must be a list")
    out = []
    for ref in refs:
        target = (ref or {}).get("EntityRef") if isinstance(ref, dict) else None
        kind = (target or {}).get("type") or (target or {}).get("Type")
        value = ref_value(target)
        if not kind or not value:
            raise faults.required("AttachableRef.EntityRef")
        linked = registry.find(str(kind))
        if linked is None or tx.get(linked.name, value) is None:
            raise faults.invalid_reference("AttachableRef.EntityRef", value, str(kind))
        include = ref.get("IncludeOnSend", False)
        out.append({**ref, "IncludeOnSend": include if isinstance(include, bool) else str(include).lower() == "true",
                    "EntityRef": {"type": linked.name, "value": value}})
    body["AttachableRef"] = out
