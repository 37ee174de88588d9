"""QuickBooks Online webhooks: signature and payload vocabulary shared by the emulator and the app.

QBO POSTs change notifications to one endpoint per app. Two body formats exist (reference §9):

* **legacy** ``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [...]}}]}``,
  one item per company, each entity with ``name``, ``id``, ``operation``, ``lastUpdated`` and
  ``deletedId`` on a Merge;
* **CloudEvents** (mandatory from 2026): a JSON *array* of CloudEvents 1.0 objects with
  ``type`` ``qbo.<entity>.<verb>.v1``, ``intuitaccountid`` (realm), ``intuitentityid`` and, on a
  merge, ``data.deletedid``.

Both carry only *what* changed; the receiver fetches current state (read or CDC) afterwards, so
the events parsed here are pointers, not data. Every delivery is signed:
``intuit-signature = base64(HMAC-SHA256(verifier token, raw body bytes))`` (§9.2). Verify the
bytes exactly as received; re-serialised JSON would not match.

This module is pure (standard library plus the entity registry) so the emulator, which sends
webhooks, and the web layer, which receives them, speak exactly the same vocabulary.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from qb_pipelines.qbo import registry

#: The operations QBO reports (reference §9.1).
OPERATIONS = ("Create", "Update", "Delete", "Void", "Merge", "Emailed")

#: Past-tense verbs of CloudEvents ``type`` per operation (``qbo.customer.merged.v1``).
VERB_BY_OPERATION = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}
OPERATION_BY_VERB = {verb: op for op, verb in VERB_BY_OPERATION.items()}

# Webhook entities QBO documents that the project's registry does not model (§9.1); kept so the
# CloudEvents lower-case entity name maps back to QBO's spelling.
_EXTRA_ENTITY_NAMES = (
    "Currency",
    "JournalCode",
)


class WebhookPayloadError(ValueError):
    """A webhook body that is not a QBO notification (bad JSON, wrong shape, missing field)."""


@dataclass(frozen=True)
class WebhookEvent:
    """One change QBO reported: which object, what happened, when.

    Attributes:
        realm_id: the company (realmId / ``intuitaccountid``).
        entity: QBO's entity name, e.g. ``"Invoice"``.
        entity_id: the object's Id.
        operation: one of ``Create``, ``Update``, ``Delete``, ``Void``, ``Merge``, ``Emailed``.
        occurred_at: when it changed, as QBO wrote it (legacy ``lastUpdated`` or CloudEvents
            ``time``); compare as instants, formats differ.
        event_id: the CloudEvents ``id`` (unique per event, the natural dedupe key); ``None`` for
            legacy payloads, which have no event id.
        deleted_id: on a Merge, the Id of the record merged away; else ``None``.
    """

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: str
    event_id: str | None = None
    deleted_id: str | None = None


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` header for ``body``: base64 HMAC-SHA256 keyed by the verifier token."""
    digest = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, signature_header: str | None, verifier_token: str) -> bool:
    """Whether ``signature_header`` signs the raw ``body`` with ``verifier_token``.

    Compares in constant time so a forger learns nothing from response timing. A missing or
    empty header never verifies.
    """
    if not signature_header:
        return False
    expected = sign(body, verifier_token).encode("ascii")
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


def entity_name(lower: str) -> str:
    """QBO's spelling of an entity from its lower-case CloudEvents form (``salesreceipt``)."""
    found = registry.find(lower)
    if found is not None:
        return found.name
    for name in _EXTRA_ENTITY_NAMES:
        if name.lower() == lower.lower():
            return name
    # an entity QBO added later: keep it usable rather than reject the whole delivery
    return lower[:1].upper() + lower[1:]


def parse_notifications(body: bytes | str) -> list[WebhookEvent]:
    """Parse a webhook body in either format into events, in payload order.

    Args:
        body: the raw request body (bytes as received, or already-decoded text).

    Returns:
        One :class:`WebhookEvent` per entity change (possibly empty for an empty array).

    Raises:
        WebhookPayloadError: when the body is not JSON, or not a legacy ``eventNotifications``
            object nor a CloudEvents array, or an event misses a required field or names an
            unknown operation.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(f"webhook body is not JSON: {exc}") from exc
    if isinstance(doc, list):
        return [_cloud_event(item, i) for i, item in enumerate(doc)]
    if isinstance(doc, dict) and "eventNotifications" in doc:
        return _legacy(doc["eventNotifications"])
    raise WebhookPayloadError(
        "webhook body is neither a legacy {'eventNotifications': [...]} object nor a CloudEvents array"
    )


def _text(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise WebhookPayloadError(f"{where} is missing or not a string")
    return str(value)


def _legacy(notifications: object) -> list[WebhookEvent]:
    if not isinstance(notifications, list):
        raise WebhookPayloadError("eventNotifications must be an array")
    events: list[WebhookEvent] = []
    for i, note in enumerate(notifications):
        where = f"eventNotifications[{i}]"
        if not isinstance(note, dict):
            raise WebhookPayloadError(f"{where} must be an object")
        realm = _text(note.get("realmId"), f"{where}.realmId")
        change = note.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise WebhookPayloadError(f"{where}.dataChangeEvent.entities must be an array")
        for j, ent in enumerate(entities):
            at = f"{where}.dataChangeEvent.entities[{j}]"
            if not isinstance(ent, dict):
                raise WebhookPayloadError(f"{at} must be an object")
            operation = _text(ent.get("operation"), f"{at}.operation")
            if operation not in OPERATIONS:
                raise WebhookPayloadError(f"{at}.operation {operation!r} is not one of {', '.join(OPERATIONS)}")
            # the docs table spells it deletedID, the SDK DTOs deletedId: accept both
            deleted = ent.get("deletedId", ent.get("deletedID"))
            events.append(
                WebhookEvent(
                    realm_id=realm,
                    entity=_text(ent.get("name"), f"{at}.name"),
                    entity_id=_text(ent.get("id"), f"{at}.id"),
                    operation=operation,
                    occurred_at=_text(ent.get("lastUpdated"), f"{at}.lastUpdated"),
                    deleted_id=None if deleted in (None, "") else str(deleted),
                )
            )
    return events


def _cloud_event(item: object, i: int) -> WebhookEvent:
    where = f"event[{i}]"
    if not isinstance(item, dict):
        raise WebhookPayloadError(f"{where} must be an object")
    kind = _text(item.get("type"), f"{where}.type")
    parts = kind.split(".")
    if len(parts) != 4 or parts[0] != "qbo" or not parts[3].startswith("v"):
        raise WebhookPayloadError(f"{where}.type {kind!r} is not qbo.<entity>.<verb>.v<N>")
    operation = OPERATION_BY_VERB.get(parts[2])
    if operation is None:
        raise WebhookPayloadError(f"{where}.type {kind!r} has an unknown verb {parts[2]!r}")
    data = item.get("data")
    if data is not None and not isinstance(data, dict):
        raise WebhookPayloadError(f"{where}.data must be an object")
    deleted = (data or {}).get("deletedid")
    return WebhookEvent(
        realm_id=_text(item.get("intuitaccountid"), f"{where}.intuitaccountid"),
        entity=entity_name(parts[1]),
        entity_id=_text(item.get("intuitentityid"), f"{where}.intuitentityid"),
        operation=operation,
        occurred_at=_text(item.get("time"), f"{where}.time"),
        event_id=_text(item.get("id"), f"{where}.id"),
        deleted_id=None if deleted in (None, "") else str(deleted),
    )
