"""What a tenant's settings let a landing fetch: the Setup Wizard done, and each entity's Sync switch.

Every landing of a tenant's company -- the Dagster asset (UI runs, the poll schedule, webhook
runs) and ``qb-pipelines sync`` -- asks :func:`landing_gate` first, then hands
:attr:`LandingGate.entities` to :func:`qb_pipelines.sync.ingest.land`:

* **Setup Wizard not completed** (the seed: "Complete the wizard before syncing any data"):
  nothing is fetched; :class:`SetupIncompleteError` says to complete the Setup Wizard in the
  admin app.
* **An entity switched off** in the tenant's settings (Settings page, "Sync" column): it is not
  fetched, not an error; :attr:`LandingGate.skipped` gives the line its materialization shows,
  ``skipped: sync switched off for TimeActivity in the tenant's settings``. Company singletons
  (CompanyInfo, Preferences) cannot be switched off.

Rows already landed for an entity that is switched off later **stay** as they are (not deleted,
not flagged): switching off means "stop fetching", and the rows stay what they were when last
landed (their ``synced_at`` says when). Switching it back on resumes from the stored CDC cursor,
or does a full refresh when that cursor fell out of CDC's 30-day look-back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qb_pipelines.qbo import registry
from qb_pipelines.store.tenant_settings import SettingsStore
from qb_pipelines.sync.companies import Company

__all__ = ["LandingGate", "SetupIncompleteError", "landing_gate", "resolve_entities", "setup_next_step",
           "switched_off_reason"]

def setup_next_step(tenant_key: str) -> str:
    """What an admin does to let a tenant's data land."""
    return (f"complete the Setup Wizard in the admin app (Accounting Integrations > Finish setup, "
            f"/integrations/{tenant_key}/setup), then sync again")


class SetupIncompleteError(RuntimeError):
    """The tenant has not completed the Setup Wizard: nothing of its company may land yet.

    Attributes:
        next_step: what to do, in words (also at the end of the message).
    """

    def __init__(self, message: str, next_step: str) -> None:
        super().__init__(message)
        self.next_step = next_step


def switched_off_reason(entity: str) -> str:
    """The line a skipped entity's materialization (and ``qb-pipelines sync``) shows."""
    return f"skipped: sync switched off for {entity} in the tenant's settings"


@dataclass(frozen=True)
class LandingGate:
    """What one landing of a company may fetch under its tenant's settings.

    Attributes:
        company_key: the company.
        entities: the requested entities that are switched on, in registry order (what to land).
        skipped: requested entities switched off, each with :func:`switched_off_reason`.
    """

    company_key: str
    entities: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def resolve_entities(entities: Sequence[str] | None) -> list[registry.EntityDef]:
    """The registry entities named (any spelling QBO uses), in registry order; every one for ``None``.

    Registry order puts lists before the transactions that reference them.

    Raises:
        ValueError: a name the registry does not know (the message lists the known ones).
    """
    if entities is None:
        return list(registry.ENTITIES)
    wanted = []
    for name in entities:
        found = registry.find(name)
        if found is None:
            known = ", ".join(e.name for e in registry.ENTITIES)
            raise ValueError(f"unknown QuickBooks entity {name!r}; use one of: {known}")
        wanted.append(found.name)
    return [e for e in registry.ENTITIES if e.name in wanted]


def landing_gate(settings: SettingsStore, company: Company, entities: Sequence[str] | None = None) -> LandingGate:
    """Split the requested entities (all of the registry by default) into those to land and those switched off.

    Raises:
        SetupIncompleteError: the tenant has not completed the Setup Wizard (nothing may land).
        ValueError: an unknown entity name.
        UnknownTenantError: the tenant does not exist.
    """
    view = settings.get(company.tenant_key)
    if not view.configured:
        step = setup_next_step(company.tenant_key)
        raise SetupIncompleteError(
            f"tenant {company.tenant_key!r} has not completed the Setup Wizard, so nothing of company "
            f"{company.key} was landed. Next: {step}.", step)
    ordered = [e.name for e in resolve_entities(entities)]
    on = [e for e in ordered if view.values.enabled(e)]
    return LandingGate(company.key, on, {e: switched_off_reason(e) for e in ordered if e not in on})
