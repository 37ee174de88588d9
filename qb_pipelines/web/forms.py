"""The Setup Wizard / Settings form: from the store to the page, and from a POST back to the store.

The store owns the rules of a valid configuration (:mod:`qb_pipelines.store.settings`); this form
adds the two checks only a live company can answer: the default income account and tax code must
be among the lists just read from the connected company, and the mode must match where the
connection points (test = Intuit sandbox or the emulator, production = real books). A refused
submission keeps what the admin typed, shows the message next to the field, and saves nothing.

When QuickBooks cannot be reached, the "live" lists are only the stored choices
(:func:`stored_choices`): the form can still be saved if it keeps them, and a different account or
tax code is refused with a message saying why (nothing can check it against the company now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.store import settings as rules
from qb_pipelines.store.settings import InvalidSettingError
from qb_pipelines.store.tenant_settings import SettingsStore


def _synced_first() -> list[str]:
    """The entities the app pushes or receives (a sync direction in the registry), party by party:
    each party's documents after the names they reference (Customer, Item, Invoice, Estimate,
    Payment, then Vendor, Bill), then any other synced name."""
    synced = [e for e in registry.ENTITIES if e.directions]
    parties = registry.parties()
    documents = sorted((e for e in synced if e.party in parties), key=lambda e: parties.index(str(e.party)))
    return [e.name for e in registry.dependencies_first([*documents, *synced])]


def entity_order() -> list[str]:
    """Toggle entities in display order: the synced entities first, then the others by name."""
    first = [e for e in _synced_first() if e in rules.TOGGLE_ENTITIES]
    return first + sorted(e for e in rules.TOGGLE_ENTITIES if e not in first)


def _field_for(error_field: str) -> str:
    # The store names the *_name half of a pair too; the form shows one select per pair.
    return {
        "default_income_account_name": "default_income_account_id",
        "default_tax_code_name": "default_tax_code_id",
    }.get(error_field, error_field)


@dataclass
class SettingsForm:
    """The values on the page and the errors to show next to each field.

    Attributes:
        entities: Entity name -> sync on.
        directions: Bidirectional entity name -> direction.
        conflict_policy: ``app_wins``, ``qbo_wins`` or ``manual_review``.
        default_income_account_id: Chosen income account (id from the live list).
        default_tax_code_id: Chosen tax code (id from the live list), or empty for none.
        mode: ``test`` or ``production``.
        errors: Field name -> message (field names as :class:`InvalidSettingError` uses them).
        names: Names of the chosen account and tax code, taken from the live lists.
    """

    entities: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(rules.TOGGLE_ENTITIES, True))
    directions: dict[str, str] = field(default_factory=lambda: dict(rules.DEFAULT_DIRECTIONS))
    conflict_policy: str = rules.DEFAULT_CONFLICT_POLICY
    default_income_account_id: str = ""
    default_tax_code_id: str = ""
    mode: str = rules.DEFAULT_MODE
    errors: dict[str, str] = field(default_factory=dict)
    names: dict[str, str | None] = field(default_factory=dict)

    # -- page helpers -----------------------------------------------------------------------------
    @property
    def entity_order(self) -> list[str]:
        return entity_order()

    @staticmethod
    def allowed_directions(entity: str) -> Sequence[str]:
        return rules.DIRECTIONS.get(entity, ())

    direction_labels = rules.DIRECTION_LABELS
    conflict_policies = rules.CONFLICT_POLICIES
    conflict_labels = {"app_wins": "App wins", "qbo_wins": "QBO wins", "manual_review": "Manual review"}

    def error(self, name: str) -> str | None:
        return self.errors.get(name)

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def from_post(
        cls,
        posted: Mapping[str, Any],
        accounts: Sequence[Any],
        tax_codes: Sequence[Any],
        *,
        environment: str | None,
        live: bool = True,
    ) -> SettingsForm:
        """Read a submitted form and check it completely (store rules + live-list checks).

        Args:
            posted: The form data (a Starlette ``FormData``: ``getlist`` for the entity boxes).
            accounts: The company's income accounts, read just now.
            tax_codes: The company's tax codes, read just now.
            environment: Where the connection points (``production``, ``sandbox``, ``emulator``).
            live: Whether the lists were read from QuickBooks just now; ``False`` when they are only
                the stored choices (QuickBooks could not be reached).
        """
        getlist = getattr(posted, "getlist", None)
        on = set(getlist("entity") if getlist else posted.get("entity") or [])
        form = cls(
            entities={e: e in on for e in rules.TOGGLE_ENTITIES},
            # The page posts every direction; one missing from a hand-made POST keeps its default.
            directions={e: str(posted.get(f"direction_{e}") or rules.DEFAULT_DIRECTIONS[e]) for e in rules.DIRECTIONS},
            conflict_policy=str(posted.get("conflict_policy") or ""),
            default_income_account_id=str(posted.get("default_income_account_id") or ""),
            default_tax_code_id=str(posted.get("default_tax_code_id") or ""),
            mode=str(posted.get("mode") or ""),
        )
        form._check(accounts, tax_codes, environment, live)
        return form

    def _check(self, accounts: Sequence[Any], tax_codes: Sequence[Any], environment: str | None,
               live: bool = True) -> None:
        account_names = {a.id: a.name for a in accounts}
        code_names = {c.id: c.name for c in tax_codes}
        if not live and self.default_income_account_id not in account_names:
            self.errors["default_income_account_id"] = (
                "QuickBooks Online could not be reached to check this income account: keep the saved one, "
                "or try again in a moment."
            )
        elif self.default_income_account_id and self.default_income_account_id not in account_names:
            self.errors["default_income_account_id"] = (
                "This account is not an income account of the connected company. Choose one from the list."
            )
        if not live and self.default_tax_code_id and self.default_tax_code_id not in code_names:
            self.errors["default_tax_code_id"] = (
                "QuickBooks Online could not be reached to check this tax code: keep the saved one, "
                "or try again in a moment."
            )
        elif self.default_tax_code_id and self.default_tax_code_id not in code_names:
            self.errors["default_tax_code_id"] = "This tax code does not exist in the connected company. Choose one from the list."
        if self.mode == "production" and environment and environment != "production":
            self.errors["mode"] = (
                f"This connection is to the {environment}, not to real books: keep Test mode, or connect a "
                "production QuickBooks company first."
            )
        elif self.mode == "test" and environment == "production":
            self.errors["mode"] = (
                "This connection is to a production company (real books): choose Production, or connect an "
                "Intuit sandbox company for testing."
            )
        self.names = {
            "default_income_account_name": account_names.get(self.default_income_account_id),
            "default_tax_code_name": code_names.get(self.default_tax_code_id),
        }
        if self.errors:
            return
        try:
            rules.validate_settings(self.as_store_data())
        except InvalidSettingError as exc:
            self.errors[_field_for(exc.field)] = exc.message

    def as_store_data(self) -> dict[str, Any]:
        """The submission in the store's vocabulary (see :func:`qb_pipelines.store.settings.validate_settings`)."""
        return {
            "entities": dict(self.entities),
            "directions": dict(self.directions),
            "conflict_policy": self.conflict_policy,
            "default_income_account_id": self.default_income_account_id or None,
            "default_income_account_name": self.names.get("default_income_account_name"),
            "default_tax_code_id": self.default_tax_code_id or None,
            "default_tax_code_name": self.names.get("default_tax_code_name"),
            "mode": self.mode,
        }

    def save(self, store: SettingsStore, tenant_key: str) -> str | None:
        """Save through the store (which validates again, in one transaction, and marks the tenant
        configured: the Setup Wizard is done).

        Returns:
            ``None`` when saved, else the error message (also recorded in :attr:`errors`).
        """
        try:
            store.save(tenant_key, self.as_store_data())
        except InvalidSettingError as exc:
            self.errors[_field_for(exc.field)] = exc.message
            return exc.message
        return None


@dataclass(frozen=True)
class StoredChoice:
    """A saved income account or tax code, standing in for the live list QuickBooks could not give."""

    id: str
    name: str


def stored_choices(stored: Any) -> tuple[list[StoredChoice], list[StoredChoice]]:
    """The saved income account and tax code as one-entry lists (empty when none is saved)."""
    if stored is None or not stored.configured:
        return [], []
    values = stored.values
    accounts = [StoredChoice(values.default_income_account_id, values.default_income_account_name
                             or values.default_income_account_id)] if values.default_income_account_id else []
    codes = [StoredChoice(values.default_tax_code_id, values.default_tax_code_name
                          or values.default_tax_code_id)] if values.default_tax_code_id else []
    return accounts, codes


def settings_form_from_store(stored: Any, view: Any) -> SettingsForm:
    """The form prefilled with the tenant's saved settings (defaults when none yet).

    ``mode`` defaults to what the connection points at, so a first setup on the emulator or the
    sandbox starts in Test mode and one on a production company in Production.
    """
    environment = getattr(view, "environment", None)
    default_mode = "production" if environment == "production" else "test"
    if stored is None or not stored.configured:
        return SettingsForm(mode=default_mode)
    data = stored.values.to_dict()
    entities = dict.fromkeys(rules.TOGGLE_ENTITIES, True)
    entities.update(data.get("entities") or {})
    directions = dict(rules.DEFAULT_DIRECTIONS)
    directions.update(data.get("directions") or {})
    return SettingsForm(
        entities=entities,
        directions=directions,
        conflict_policy=data.get("conflict_policy") or rules.DEFAULT_CONFLICT_POLICY,
        default_income_account_id=data.get("default_income_account_id") or "",
        default_tax_code_id=data.get("default_tax_code_id") or "",
        mode=data.get("mode") or default_mode,
    )
