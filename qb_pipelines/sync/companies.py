"""Company keys: which QuickBooks company a partition, a warehouse row and a sync run belong to.

A tenant of the app connects one QuickBooks company at a time, but may *switch* to another one
(the Accounting Integrations page allows it). If the warehouse keyed rows by tenant alone, the
new company's rows would land on top of the old one's under the same key, and the old company's
CDC cursors would be used for the new one: the two sets of books would mix silently. So a
company is keyed by tenant **and** realm: ``"<tenant key>-<realmId>"`` (``acme-9130351000``).
Realm ids are Intuit's company ids, digits only, so the key splits back unambiguously at its
last ``-`` even when the tenant key holds dashes. A switch therefore starts a new partition with
a fresh full load, and the old company keeps its partition and its history.

:func:`connected_companies` lists the companies to sync (what the partition sensor and the
schedules iterate over), :func:`resolve` turns a key back into its tenant and realm (refusing a
key whose tenant has since switched away), and :func:`open_client` builds the company's
``QBOClient`` on the store's single-flight token source, metering every read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.store.connections import ConnectionState, ConnectionStore, ConnectionView
from qb_pipelines.sync.settings import AppSettings

__all__ = [
    "Company",
    "UnknownCompanyError",
    "company_key",
    "connected_companies",
    "known_companies",
    "open_client",
    "resolve",
    "split_company_key",
]

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


def _company(view: ConnectionView) -> Company | None:
    if not view.realm_id:
        return None
    return Company(
        key=company_key(view.tenant_key, view.realm_id),
        tenant_key=view.tenant_key,
        realm_id=view.realm_id,
        environment=view.environment or "production",
        state=ConnectionState(getattr(view.state, "value", view.state)),
    )


def known_companies(store: ConnectionStore) -> list[Company]:
    """Every tenant's current (or last) company, whatever its connection state."""
    return [c for c in (_company(v) for v in store.list_views()) if c is not None]


def connected_companies(store: ConnectionStore) -> list[Company]:
    """The companies that can be synced now: one per connected tenant, in tenant-name order."""
    return [c for c in known_companies(store) if c.is_connected]


def companies_for_realm(store: ConnectionStore, realm_id: str) -> list[Company]:
    """The connected companies of ``realm_id`` (one realm may be connected by several tenants)."""
    return [c for c in (_company(v) for v in store.views_for_realm(str(realm_id))) if c is not None and c.is_connected]


def resolve(store: ConnectionStore, key: str) -> Company:
    """The company a key names, checked against the store.

    A bare tenant key is accepted too and means the tenant's current company (convenient on the
    command line); Dagster partitions always use the full key.

    Raises:
        UnknownCompanyError: unknown tenant, never connected, or the tenant has switched to
            another company since (that partition keeps its history but cannot be synced).
    """
    view = store.get(key)
    if view is not None:  # a bare tenant key
        found = _company(view)
        if found is None:
            raise UnknownCompanyError(f"tenant {key!r} has never connected a QuickBooks company")
        return found
    tenant, realm = split_company_key(key)
    view = store.get(tenant)
    if view is None:
        raise UnknownCompanyError(f"no tenant {tenant!r} in the connections store (company key {key!r})")
    found = _company(view)
    if found is None:
        raise UnknownCompanyError(f"tenant {tenant!r} has never connected a QuickBooks company")
    if found.realm_id != realm:
        return Company(key, tenant, realm, found.environment, found.state, current=False)
    return found


def open_client(store: ConnectionStore, settings: AppSettings, company: Company, **client_kwargs: Any) -> QBOClient:
    """The QBO client of ``company``: tokens from the store (refreshed single-flight), reads metered.

    Args:
        store: the connections store.
        settings: the Intuit app and the emulator's URL.
        company: from :func:`resolve` or :func:`connected_companies`.
        **client_kwargs: passed to :class:`QBOClient` (retries, timeouts...).

    Raises:
        UnknownCompanyError: the tenant has switched to another company since; the tenant's
            tokens open the new company only, and the old one's partition keeps its history.
    """
    if not company.current:
        raise UnknownCompanyError(
            f"tenant {company.tenant_key!r} is now connected to another QuickBooks company; company "
            f"{company.key} keeps its landed history but can no longer be synced (reconnect it to sync again)"
        )
    oauth = settings.oauth(company.environment)
    tokens = store.token_source(company.tenant_key, oauth)
    return QBOClient(company.realm_id, tokens, settings.environment(company.environment),
                     on_read=store.record_read, **client_kwargs)


def keys(companies: Iterable[Company]) -> list[str]:
    """The keys of ``companies``, in order, without duplicates."""
    return list(dict.fromkeys(c.key for c in companies))
