"""Each tenant's stored sync settings: what the Setup Wizard and the Settings page save.

The rules of a valid configuration are in :mod:`qb_pipelines.store.settings`; this repository
saves only what validated, in one transaction, and marks the tenant *configured* (the wizard is
done). Settings survive disconnects, expired sessions, reconnects and switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qb_pipelines.store.models import IntegrationSettings
from qb_pipelines.store.repository import Repository
from qb_pipelines.store.settings import SyncSettings, validate_settings

__all__ = ["SettingsStore", "SettingsView", "settings_row"]


@dataclass(frozen=True)
class SettingsView:
    """A tenant's stored settings (defaults until the Setup Wizard is completed)."""

    tenant_key: str
    values: SyncSettings
    configured: bool
    mappings_need_review: bool
    previous_realm_id: str | None
    updated_at: datetime | None


def settings_row(session: Session, tenant_id: int, *, create: bool) -> IntegrationSettings | None:
    """The tenant's settings row, created empty (not configured) when asked and missing."""
    row = session.scalars(sa.select(IntegrationSettings).where(IntegrationSettings.tenant_id == tenant_id)).one_or_none()
    if row is None and create:
        row = IntegrationSettings(tenant_id=tenant_id, configured=False, mappings_need_review=False)
        session.add(row)
        session.flush()
    return row


def _view(tenant_key: str, row: IntegrationSettings | None) -> SettingsView:
    if row is None:
        return SettingsView(tenant_key, SyncSettings(), False, False, None, None)
    if row.configured:
        # Stored values were validated on save; re-validating fills in entities added to the
        # registry since then with their defaults.
        values = validate_settings({
            "entities": row.entities or {},
            "directions": row.directions or {},
            "conflict_policy": row.conflict_policy,
            "default_income_account_id": row.default_income_account_id,
            "default_income_account_name": row.default_income_account_name,
            "default_tax_code_id": row.default_tax_code_id,
            "default_tax_code_name": row.default_tax_code_name,
            "mode": row.mode,
        })
    else:
        values = SyncSettings()
    return SettingsView(tenant_key=tenant_key, values=values, configured=row.configured,
                        mappings_need_review=row.mappings_need_review, previous_realm_id=row.previous_realm_id,
                        updated_at=row.updated_at)


class SettingsStore(Repository):
    """Read and save tenants' sync settings."""

    def get(self, tenant_key: str) -> SettingsView:
        """The tenant's settings; defaults (``configured=False``) until the wizard is completed.

        Raises:
            UnknownTenantError: the tenant does not exist.
        """
        with self._read() as session:
            tenant = self._tenant(session, tenant_key)
            return _view(tenant_key, settings_row(session, tenant.id, create=False))

    def save(self, tenant_key: str, data: Any) -> SettingsView:
        """Validate and save a complete settings submission (wizard or Settings page).

        Validation happens before anything is written and the save is one transaction, so an
        invalid submission leaves the previous settings exactly as they were. Saving marks the
        tenant configured (the Setup Wizard is done).

        Args:
            data: a :class:`~qb_pipelines.store.settings.SyncSettings` or a mapping (see
                :func:`~qb_pipelines.store.settings.validate_settings`).

        Raises:
            InvalidSettingError: naming the invalid field; nothing was saved.
            UnknownTenantError: the tenant does not exist.
        """
        values = validate_settings(data)
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = settings_row(session, tenant.id, create=True)
            assert row is not None
            row.entities = dict(values.entities)
            row.directions = dict(values.directions)
            row.conflict_policy = values.conflict_policy
            row.default_income_account_id = values.default_income_account_id
            row.default_income_account_name = values.default_income_account_name
            row.default_tax_code_id = values.default_tax_code_id
            row.default_tax_code_name = values.default_tax_code_name
            row.mode = values.mode
            first = not row.configured
            row.configured = True
            row.updated_at = self._now()
            self._event(session, tenant.id, "settings_saved", "setup wizard completed" if first else None)
            session.flush()
            return _view(tenant_key, row)

    def acknowledge_mappings_review(self, tenant_key: str) -> None:
        """An admin reviewed the mappings after a company switch: clear the warning."""
        with self._write() as session:
            tenant = self._tenant(session, tenant_key)
            row = settings_row(session, tenant.id, create=False)
            if row is not None and row.mappings_need_review:
                row.mappings_need_review = False
                self._event(session, tenant.id, "mappings_reviewed")
