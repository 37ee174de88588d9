"""Company keys: which QuickBooks company a partition, a warehouse row and a sync run belong to.

A tenant of the app connects one QuickBooks company at a time, but may *switch* to another one
(the Accounting Integrations page allows it). If the warehouse keyed rows by tenant alone, the
new company's rows would land on top of the old one's under the same key, and the old company's
CDC cursors would be used for the new one: the two sets of books would mix silently. So a
company is keyed by tenant **and** realm: ``"<tenant key>-<realmId>"`` (``acme-9130351000``).
Realm ids are Intuit's company ids, digits only, so the key splits back unambiguously at its
last ``-`` even when the tenant key holds dashes. A switch therefore starts a new partition with
a fresh full load, and the old company keeps its partition and its history.

The runtime (:class:`qb_pipelines.sync.runtime.Runtime`) lists the companies to sync (what the
partition sensor and the schedules iterate over), resolves a key back into its tenant and realm
(refusing a key whose tenant has since switched away) and builds each company's ``QBOClient``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from qb_pipelines.store.connections import ConnectionState, ConnectionView

__all__ = ["Company", "UnknownCompanyError", "company_key", "company_of", "keys", "split_company_key"]

_REALM = re.compile(r"^[0-9]+$")


class UnknownCompanyError(LookupError):
    """The company key names no company the store can sync (unknown tenant, or switched away)."""


@dataclass(frozen=True)
class Company:
    """One QuickBooks company as seen from the connections store.

    Attributes:
        key: the company key (partition key, warehouse ``company_key``).
        tenant_key: the app's tenant that connected it.
        realm_id: QuickBooks' company id.
        environment: ``production``, ``sandbox`` or ``emulator``.
        state: the tenant's connection state now.
        current: whether it is still the tenant's company (``False`` after a switch).
    """

    key: str
    tenant_key: str
    realm_id: str
    environment: str
    state: ConnectionState
    current: bool = True

    @property
    def is_connected(self) -> bool:
        """Whether it can be synced now (connected, or a possibly transient connection error)."""
        return self.current and self.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTION_ERROR)


def company_key(tenant_key: str, realm_id: str) -> str:
    """The company key of ``realm_id`` connected by ``tenant_key`` (``"acme-9130351000"``)."""
    return f"{tenant_key}-{realm_id}"


def split_company_key(key: str) -> tuple[str, str]:
    """``(tenant_key, realm_id)`` of a company key.

    Raises:
        UnknownCompanyError: when ``key`` is not ``<tenant>-<digits>``.
    """
    tenant, sep, realm = key.rpartition("-")
    if not sep or not tenant or not _REALM.match(realm):
        raise UnknownCompanyError(
            f"{key!r} is not a company key: expected '<tenant key>-<realmId>', e.g. 'acme-9130351000'"
        )
    return tenant, realm


def company_of(view: ConnectionView) -> Company | None:
    """The company a tenant's connection view names (``None`` if the tenant never connected)."""
    if not view.realm_id:
        return None
    return Company(
        key=company_key(view.tenant_key, view.realm_id),
        tenant_key=view.tenant_key,
        realm_id=view.realm_id,
        environment=view.environment or "production",
        state=ConnectionState(getattr(view.state, "value", view.state)),
    )


def keys(companies: Iterable[Company]) -> list[str]:
    """The keys of ``companies``, in order, without duplicates."""
    return list(dict.fromkeys(c.key for c in companies))
