"""The app's side of the contract: what a record looks like in the app's vocabulary.

The app never speaks QBO. It sends whole records as plain JSON whose shapes are fixed here, as
JSON Schemas (draft 2020-12), so the records API can publish them (``GET /api/v1/schema``) and
refuse a bad payload before anything is stored, naming the field (``lines[2].qty``). The mapping
to QuickBooks' JSON lives in :mod:`qb_pipelines.sync.push.to_qbo`, one function per entity.

References to other app records are ``*_app_id`` fields (``customer_app_id``, ``item_app_id``,
``vendor_app_id``, ``parent_app_id``); the push resolves them through the mappings, pushing the
referenced record first when it is not in QuickBooks yet. Account, tax code and other QBO list
ids (``income_account_id``, ``tax_code_id``, ``account_id``) are QBO ids the admin sees in the
Settings page's lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from qb_pipelines.qbo import registry

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

__all__ = ["ENTITIES", "OPS", "REFERENCES", "PayloadError", "envelope_schema", "schema", "schemas", "validate"]

OPS = ("upsert", "delete", "void")
_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_TEXT = {"type": "string", "maxLength": 4000}
_NAME = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"^[^:\t\n]*$"}
_DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_MONEY = {"type": "number", "minimum": -1e12, "maximum": 1e12}
_QTY = {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9}
_EMAIL = {"type": "string", "maxLength": 100, "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"}
_PHONE = {"type": "string", "maxLength": 30}
_ADDRESS = {
    "type": "object", "additionalProperties": False, "required": ["line1"],
    "properties": {"line1": {"type": "string", "minLength": 1, "maxLength": 500},
                   "line2": {"type": "string", "maxLength": 500},
                   "city": {"type": "string", "maxLength": 255}, "region": {"type": "string", "maxLength": 255},
                   "postal_code": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 255}},
}
_PARTY = {
    "display_name": _NAME, "company_name": {"type": "string", "maxLength": 100},
    "given_name": {"type": "string", "maxLength": 100}, "family_name": {"type": "string", "maxLength": 100},
    "email": _EMAIL, "phone": _PHONE, "address": _ADDRESS, "notes": _TEXT,
}
_SALES_LINE = {
    "type": "object", "additionalProperties": False, "required": ["item_app_id", "qty", "unit_price"],
    "properties": {"item_app_id": _ID, "description": _TEXT, "qty": _QTY, "unit_price": _MONEY,
                   "taxable": {"type": "boolean"}},
}
_SALES = {
    "number": {"type": "string", "minLength": 1, "maxLength": 21}, "customer_app_id": _ID, "txn_date": _DATE,
    "due_date": _DATE, "lines": {"type": "array", "minItems": 1, "maxItems": 750, "items": _SALES_LINE},
    "tax_code_id": _ID, "memo": {"type": "string", "maxLength": 1000},
}
_BILL_LINE = {
    "type": "object", "additionalProperties": False,
    "properties": {"item_app_id": _ID, "qty": _QTY, "unit_price": _MONEY, "account_id": _ID, "amount": _MONEY,
                   "description": _TEXT, "customer_app_id": _ID},
    "oneOf": [{"required": ["item_app_id", "qty", "unit_price"], "not": {"anyOf": [{"required": ["account_id"]}]}},
              {"required": ["account_id", "amount"], "not": {"anyOf": [{"required": ["item_app_id"]}]}}],
}

#: The JSON Schema of each entity's ``data`` for an upsert.
_SCHEMAS: dict[str, dict[str, Any]] = {
    "Customer": {"required": ["display_name"], "properties": {**_PARTY, "parent_app_id": _ID}},
    "Vendor": {"required": ["display_name"], "properties": dict(_PARTY)},
    "Item": {
        "required": ["name", "type"],
        "properties": {"name": {**_NAME, "maxLength": 100}, "sku": {"type": "string", "maxLength": 100},
                       "type": {"enum": ["service", "non_inventory", "inventory"]}, "unit_price": _MONEY,
                       "description": _TEXT, "income_account_id": _ID, "qty_on_hand": {"type": "number"},
                       "inv_start_date": _DATE, "asset_account_id": _ID, "expense_account_id": _ID},
    },
    "Invoice": {"required": ["customer_app_id", "lines"], "properties": dict(_SALES)},
    "Estimate": {"required": ["customer_app_id", "lines"], "properties": {**_SALES, "expiration_date": _DATE}},
    "Bill": {
        "required": ["vendor_app_id", "lines"],
        "properties": {"number": {"type": "string", "maxLength": 21}, "vendor_app_id": _ID, "txn_date": _DATE,
                       "due_date": _DATE, "memo": {"type": "string", "maxLength": 1000},
                       "lines": {"type": "array", "minItems": 1, "maxItems": 750, "items": _BILL_LINE}},
    },
}

#: Entities the app can push: the registry's pushed entities, each with a schema here.
ENTITIES: tuple[str, ...] = tuple(e.name for e in registry.push_order())

#: Reference fields per entity: field -> referenced entity (``lines[].item_app_id`` for lines).
REFERENCES: dict[str, dict[str, str]] = {
    "Customer": {"parent_app_id": "Customer"},
    "Vendor": {},
    "Item": {},
    "Invoice": {"customer_app_id": "Customer", "lines[].item_app_id": "Item"},
    "Estimate": {"customer_app_id": "Customer", "lines[].item_app_id": "Item"},
    "Bill": {"vendor_app_id": "Vendor", "lines[].item_app_id": "Item", "lines[].customer_app_id": "Customer"},
}

#: Operations each entity accepts besides upsert (delete: inactivate a name list, delete a transaction).
_OPS: dict[str, tuple[str, ...]] = {
    name: ("upsert", "delete", "void") if registry.get(name).void is registry.Void.OPERATION else ("upsert", "delete")
    for name in ENTITIES
}


class PayloadError(ValueError):
    """A record that does not follow the contract; nothing was stored.

    Attributes:
        field: where (a JSON path like ``data.lines[2].qty``), for the app to point at.
        message: what is wrong.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def schema(entity: str) -> dict[str, Any]:
    """The JSON Schema of ``entity``'s upsert ``data``."""
    body = _SCHEMAS[entity]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"{entity} (app vocabulary)",
            "type": "object", "additionalProperties": False, **body}


def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of one record sent to ``POST /api/v1/tenants/{tenant}/records``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "record", "type": "object",
        "additionalProperties": False, "required": ["entity", "app_id", "version", "op"],
        "properties": {
            "entity": {"enum": list(ENTITIES)}, "app_id": _ID,
            "version": {"type": "integer", "minimum": 0, "maximum": 2**62},
            "op": {"enum": list(OPS)}, "data": {"type": "object"},
            "qbo_id": {"type": "string", "pattern": r"^[0-9]{1,20}$"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }


def schemas() -> dict[str, Any]:
    """Every schema, as ``GET /api/v1/schema`` publishes them."""
    return {"envelope": envelope_schema(), "entities": {name: schema(name) for name in ENTITIES},
            "operations": {name: list(_OPS[name]) for name in ENTITIES}, "references": REFERENCES}


@cache
def _validator(entity: str | None) -> Draft202012Validator:
    # imported here: a push run only reads schemas, and jsonschema costs a push run's process
    # a few tenths of a second to import (only enqueue validates)
    from jsonschema import Draft202012Validator

    return Draft202012Validator(envelope_schema() if entity is None else schema(entity))


def _path(prefix: str, error: Any) -> str:
    path = prefix
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    # a missing required property: name the property itself
    if error.validator == "required" and isinstance(error.message, str) and "'" in error.message:
        path += "." + error.message.split("'")[1]
    elif error.validator == "additionalProperties" and "'" in str(error.message):
        path += "." + str(error.message).split("'")[1]
    return path


@dataclass(frozen=True)
class Record:
    """A valid record: the envelope's fields with ``data`` checked against its entity's schema."""

    entity: str
    app_id: str
    version: int
    op: str
    data: dict[str, Any]
    qbo_id: str | None = None
    created_at: str | None = None


def validate(body: Any) -> Record:
    """Check one record (envelope and data) and return it.

    Raises:
        PayloadError: naming the first faulty field (``entity``, ``data.lines[0].qty``...).
    """
    errors = sorted(_validator(None).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        raise PayloadError(_path("", errors[0]).lstrip(".") or "record", errors[0].message)
    entity, op = body["entity"], body["op"]
    if op not in _OPS[entity]:
        raise PayloadError("op", f"{entity} accepts {', '.join(_OPS[entity])}, not {op!r}")
    data = body.get("data") or {}
    if op == "upsert" and "qbo_id" not in body:
        errors = sorted(_validator(entity).iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise PayloadError(_path("data", errors[0]), errors[0].message)
    elif op == "upsert":
        # linking to an existing QBO object: the data is the app's own copy, checked when given
        if data:
            errors = sorted(_validator(entity).iter_errors(data), key=lambda e: list(e.absolute_path))
            if errors:
                raise PayloadError(_path("data", errors[0]), errors[0].message)
    elif data:
        raise PayloadError("data", f"a {op} carries no data (send {{}})")
    return Record(entity, str(body["app_id"]), int(body["version"]), op, dict(data), body.get("qbo_id"),
                  body.get("created_at"))
