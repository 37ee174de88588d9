"""A tenant's sync settings: what the Setup Wizard and the Settings page save, and their rules.

The settings decide, per tenant:

* **entities**: sync on or off per entity. Every entity the integration lands from QuickBooks
  (every registry entity except the company singletons) can be switched off; the pushed ones
  (Customer, Item, Vendor, Invoice, Estimate, Bill) are among them. Entities left out default to on.
* **directions** for the entities that can move both ways. The allowed values and the defaults
  are the registry's (``EntityDef.directions`` / ``default_direction``); they follow what each
  entity means for the business:

  ========  ==========================================  ====================================
  entity    allowed                                     why
  ========  ==========================================  ====================================
  Customer  app_to_qbo, qbo_to_app, both (default)      edited in both places (seed: "either system")
  Item      app_to_qbo (default), qbo_to_app, both      price lists may be kept in either system
  Vendor    app_to_qbo (default), qbo_to_app, both      same as items
  Invoice   app_to_qbo (default), both                  created in the field app; "both" brings
  Estimate  app_to_qbo (default), both                  QBO edits back. A QBO-only direction would
  Bill      app_to_qbo (default), both                  leave the app's own documents unsynced.
  Payment   qbo_to_app                                  payments are recorded in QuickBooks
  ========  ==========================================  ====================================

* **conflict_policy**: ``app_wins``, ``qbo_wins`` or ``manual_review`` (default) when both sides
  changed one record.
* **default income account** (id and name, from the company's Income accounts): required, because
  items pushed without an income account are refused by QBO.
* **default tax code** (id and name): optional, because US companies on automated sales tax have
  no tax codes to choose; when given, both id and name are needed.
* **mode**: ``test`` (Intuit sandbox or the emulator) or ``production`` (default ``test``, so a new
  tenant never writes to real books by accident).

:func:`validate_settings` checks a whole submission at once and raises :class:`InvalidSettingError`
naming the first faulty field; the store saves only what validated, in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from qb_pipelines.qbo import registry

APP_TO_QBO = registry.Direction.APP_TO_QBO.value
QBO_TO_APP = registry.Direction.QBO_TO_APP.value
BOTH = registry.Direction.BOTH.value

#: Entities a tenant can switch on or off: everything landed (the singletons always are).
TOGGLE_ENTITIES: tuple[str, ...] = tuple(e.name for e in registry.ENTITIES if e.kind is not registry.Kind.SINGLETON)

#: Allowed directions per bidirectional entity, from the registry (``EntityDef.directions``).
DIRECTIONS: dict[str, tuple[str, ...]] = {
    e.name: tuple(d.value for d in e.directions) for e in registry.ENTITIES if e.directions
}
DEFAULT_DIRECTIONS: dict[str, str] = {
    e.name: e.default_direction.value for e in registry.ENTITIES if e.default_direction is not None
}
DIRECTION_LABELS = {APP_TO_QBO: "App to QuickBooks", QBO_TO_APP: "QuickBooks to App", BOTH: "Both ways"}

CONFLICT_POLICIES: tuple[str, ...] = ("app_wins", "qbo_wins", "manual_review")
CONFLICT_POLICY_LABELS = {"app_wins": "App wins", "qbo_wins": "QBO wins", "manual_review": "Manual review"}
DEFAULT_CONFLICT_POLICY = "manual_review"

MODES: tuple[str, ...] = ("test", "production")
DEFAULT_MODE = "test"

_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no", ""}


class InvalidSettingError(ValueError):
    """A submitted setting is invalid; nothing was saved.

    Attributes:
        field: the faulty field (``"conflict_policy"``, ``"directions.Customer"``,
            ``"entities.Foo"``, ``"default_income_account_id"``...), for the form to highlight.
        message: what is wrong and what to choose instead.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SyncSettings:
    """A complete, valid set of sync settings (build it with :func:`validate_settings`)."""

    entities: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(TOGGLE_ENTITIES, True))
    directions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DIRECTIONS))
    conflict_policy: str = DEFAULT_CONFLICT_POLICY
    default_income_account_id: str | None = None
    default_income_account_name: str | None = None
    default_tax_code_id: str | None = None
    default_tax_code_name: str | None = None
    mode: str = DEFAULT_MODE

    def enabled(self, entity: str) -> bool:
        """Whether the tenant syncs ``entity`` (singletons always)."""
        return self.entities.get(entity, True)

    def direction(self, entity: str) -> str | None:
        """The direction of a bidirectional entity, ``None`` for one-way entities."""
        return self.directions.get(entity)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, e.g. to prefill a form."""
        return asdict(self)


def _as_bool(value: Any, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidSettingError(field_name, f"must be on or off (true/false), not {value!r}.")


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def validate_settings(data: Mapping[str, Any] | SyncSettings) -> SyncSettings:
    """Check a whole settings submission and return it complete (defaults filled in).

    Args:
        data: a :class:`SyncSettings` or a mapping with the keys ``entities`` (name -> on/off),
            ``directions`` (name -> direction), ``conflict_policy``, ``default_income_account_id``,
            ``default_income_account_name``, ``default_tax_code_id``, ``default_tax_code_name``,
            ``mode``. Missing keys take their defaults, except the income account.

    Raises:
        InvalidSettingError: for the first invalid field (unknown key, unknown entity, direction not
            allowed for the entity, unknown policy or mode, missing income account...).
    """
    if isinstance(data, SyncSettings):
        data = data.to_dict()
    known = set(SyncSettings.__dataclass_fields__)
    for key in data:
        if key not in known:
            raise InvalidSettingError(str(key), f"unknown setting; expected one of {', '.join(sorted(known))}.")

    entities = dict.fromkeys(TOGGLE_ENTITIES, True)
    raw_entities = data.get("entities") or {}
    if not isinstance(raw_entities, Mapping):
        raise InvalidSettingError("entities", "must map entity names to on/off.")
    for name, value in raw_entities.items():
        canonical = registry.find(str(name))
        if canonical is None or canonical.name not in TOGGLE_ENTITIES:
            raise InvalidSettingError(
                f"entities.{name}", f"unknown entity {name!r}; choose among {', '.join(TOGGLE_ENTITIES)}."
            )
        entities[canonical.name] = _as_bool(value, f"entities.{canonical.name}")

    directions = dict(DEFAULT_DIRECTIONS)
    raw_directions = data.get("directions") or {}
    if not isinstance(raw_directions, Mapping):
        raise InvalidSettingError("directions", "must map entity names to a direction.")
    for name, value in raw_directions.items():
        canonical = registry.find(str(name))
        if canonical is None or canonical.name not in DIRECTIONS:
            raise InvalidSettingError(
                f"directions.{name}",
                f"{name!r} has no sync direction to choose; directions apply to {', '.join(DIRECTIONS)}.",
            )
        allowed = DIRECTIONS[canonical.name]
        direction = _as_text(value)
        if direction not in allowed:
            raise InvalidSettingError(
                f"directions.{canonical.name}",
                f"{value!r} is not allowed for {canonical.name}; choose {' or '.join(allowed)}.",
            )
        directions[canonical.name] = direction

    policy = _as_text(data.get("conflict_policy")) or DEFAULT_CONFLICT_POLICY
    if policy not in CONFLICT_POLICIES:
        raise InvalidSettingError("conflict_policy", f"{policy!r} is not a conflict policy; choose {', '.join(CONFLICT_POLICIES)}.")

    mode = _as_text(data.get("mode")) or DEFAULT_MODE
    if mode not in MODES:
        raise InvalidSettingError("mode", f"{mode!r} is not a mode; choose test (sandbox or emulator) or production.")

    income_id = _as_text(data.get("default_income_account_id"))
    income_name = _as_text(data.get("default_income_account_name"))
    if income_id is None:
        raise InvalidSettingError(
            "default_income_account_id",
            "choose the default income account (QuickBooks refuses items pushed without one).",
        )
    if income_name is None:
        raise InvalidSettingError("default_income_account_name", "the default income account needs its name as well as its id.")

    tax_id = _as_text(data.get("default_tax_code_id"))
    tax_name = _as_text(data.get("default_tax_code_name"))
    if tax_id is not None and tax_name is None:
        raise InvalidSettingError("default_tax_code_name", "the default tax code needs its name as well as its id.")
    if tax_name is not None and tax_id is None:
        raise InvalidSettingError("default_tax_code_id", "the default tax code needs its id as well as its name.")

    return SyncSettings(
        entities=entities,
        directions=directions,
        conflict_policy=policy,
        default_income_account_id=income_id,
        default_income_account_name=income_name,
        default_tax_code_id=tax_id,
        default_tax_code_name=tax_name,
        mode=mode,
    )
