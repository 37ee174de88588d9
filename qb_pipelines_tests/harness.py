"""One harness for "an emulator company, connected for a tenant, in a real store, and landed".

Tests of landing, pushing, the Dagster layer, the command line and the web app all start the same
way: a QBO emulator served over real HTTP, a company in it, and usually a store (SQLite or
PostgreSQL) with the project's runtime on it and a tenant connected to the company as the OAuth
callback would connect it. This module builds those once for every test module:

* :class:`EmulatorCompany`: a company in a running emulator, changed as a QuickBooks user would
  change it and read back as the truth to compare with, through the emulator's control API and
  the project's one client of it (:class:`~qb_pipelines.qbo.emulator_control.EmulatorControl`).
* :func:`connect_company` -> :class:`Connected`: that company connected for a tenant in a
  runtime's store (tokens from the control API, the user from userinfo, CompanyInfo, the Setup
  Wizard's settings); its QBO client as the product builds it, landing with
  :func:`qb_pipelines.sync.ingest.land` into the runtime's warehouse, the landed rows.
* :class:`Landing`: a company landed straight into a warehouse under a company key, with tokens
  from the control API and no store (the ingest, reconciliation, quality and report tests);
  :func:`demo_company` and :func:`land_demo` give QBO's demo company landed that way.
* The wiring: :func:`emulator_settings` (the deployment's :class:`AppSettings`),
  :func:`settings_env` (the same as environment variables, for the command line),
  :func:`dagster_resources` and :func:`dagster_stack` (the resources the code location binds,
  over the very runtime the assets use, with a Dagster instance).

The pytest fixtures built on it (``emulator``, ``shared_emulator``, ``shared_demo``, ``landed``,
``chromium``) live in ``conftest.py``; test modules never import each other (``test_suite_rules``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlTokens
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.warehouse import WarehouseWriter, tables_for
from qb_pipelines.sync import reports
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.connections import live_lists
from qb_pipelines.sync.ingest import LandResult, land
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.dates import DEMO_NOW

if TYPE_CHECKING:  # Dagster is imported by the functions that need it: most tests never do
    import dagster as dg

    from qb_pipelines.defs.resources import QBOConnectionResource

EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
#: The company key QBO's demo company is landed under by :func:`land_demo`.
DEMO_KEY = "demo-co"


# ------------------------------------------------------------------------------------------ emulators


def new_company(emulator: RunningEmulator, name: str | None = None, *, invoices: int = 0, seed: int = 1) -> str:
    """A new company with QBO's starting lists (through the control API); its realmId.

    Args:
        emulator: the running emulator.
        name: the company's name (a random one by default).
        invoices: seed it with about this many invoices, with customers, items and payments.
        seed: the seed of that data (the same seed gives the same company).
    """
    body = {"invoices": invoices, "seed": seed} if invoices else None
    with EmulatorControl(emulator.url) as control:
        return str(control.create_company(name or f"Company {secrets.token_hex(2)}", seed=body)["realmId"])


def tokens_for(emulator: RunningEmulator, realm: str) -> TokenSet:
    """A fresh grant on ``realm`` from the emulator's control API (no browser)."""
    with EmulatorControl(emulator.url) as control:
        return TokenSet.from_response(control.tokens(realm), realm_id=realm)


@dataclass
class EmulatorCompany:
    """A company in a running emulator: QuickBooks as its users change it and as it really is.

    Attributes:
        emulator: the running emulator.
        realm: the company's realmId.
    """

    emulator: RunningEmulator
    realm: str

    @property
    def control(self) -> EmulatorControl:
        """The emulator's control API (use it in a ``with`` block)."""
        return EmulatorControl(self.emulator.url)

    def act(self, entity: str, operation: str, body: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Change the company as a QuickBooks user would (seen by CDC and webhooks); the object after."""
        with self.control as control:
            answer = control.act(self.realm, entity, operation, body, **extra)
        return answer.get(entity, answer)

    def export(self, entity: str, *, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Every object of ``entity`` QuickBooks holds (tombstones too by default)."""
        with self.control as control:
            return control.export(self.realm, entity, include_deleted=include_deleted)

    def counts(self) -> dict[str, dict[str, int]]:
        """Active, inactive and deleted objects per entity."""
        with self.control as control:
            return control.counts(self.realm)

    def counters(self) -> dict[str, Any]:
        """The company's request, throttle and injected-fault counters."""
        with self.control as control:
            return control.counters(self.realm)

    def disconnect_in_quickbooks(self) -> None:
        """The user disconnected the app inside QuickBooks: every grant revoked, access tokens dead."""
        with self.control as control:
            control.revoke_all(self.realm)
            control.expire_tokens(self.realm, "access")

    def advance_clock(self, seconds: float) -> None:
        """Move QuickBooks' time forward (the whole emulator's): tokens lapse, CDC windows age."""
        with self.control as control:
            control.advance_clock(seconds)

    def now(self) -> datetime:
        """QuickBooks' clock: the emulator's (tests move it)."""
        return datetime.fromtimestamp(self.emulator.emu.clock.timestamp(), UTC)

    @property
    def month(self) -> str:
        """The company's current month (``YYYY-MM`` in its time zone): the latest report partition."""
        emu = self.emulator.emu
        return emu.clock.today(emu.company_tz(self.realm))[:7]

    def token_client(self, **kwargs: Any) -> QBOClient:
        """A QBO client on tokens minted by the control API (no store, no OAuth)."""
        return QBOClient(self.realm, EmulatorControlTokens(self.emulator.url, self.realm),
                         environment("emulator", self.emulator.url), **kwargs)


# ------------------------------------------------------------------------------------------ landed rows


def landed_rows(engine: Engine, entity: str, key: str) -> dict[str, sa.Row]:
    """The warehouse rows of ``entity`` under company ``key`` (deleted ones flagged), by Id."""
    main, _ = tables_for(entity)
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(main).where(main.c.company_key == key))}


def landed_lines(engine: Engine, entity: str, key: str) -> list[sa.Row]:
    """The line (child) rows of ``entity`` under company ``key``."""
    _, child = tables_for(entity)
    assert child is not None, f"{entity} has no line table"
    with engine.connect() as conn:
        return list(conn.execute(sa.select(child).where(child.c.company_key == key)))


@dataclass
class Landing(EmulatorCompany):
    """An emulator company landed straight into a warehouse under ``key``: no store, control-API tokens.

    Attributes:
        engine: the warehouse.
        key: the company key its rows are stored under (unique per test by default).
        client: its QBO client (by default on control-API tokens, retries kept short).
        writer: the warehouse writer.
    """

    engine: Engine
    key: str = field(default_factory=lambda: f"co_{secrets.token_hex(4)}")
    client: QBOClient = None  # type: ignore[assignment]  # made in __post_init__ unless given
    writer: WarehouseWriter = field(init=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = self.token_client(backoff_base_s=0.01, backoff_cap_s=0.05)
        self.writer = WarehouseWriter(self.engine)

    def land(self, **kwargs: Any) -> LandResult:
        """:func:`~qb_pipelines.sync.ingest.land` on the emulator's clock (``client=`` to use another)."""
        kwargs.setdefault("now", self.now)
        return land(kwargs.pop("client", self.client), self.writer, self.key, **kwargs)

    def rows(self, entity: str) -> dict[str, sa.Row]:
        return landed_rows(self.engine, entity, self.key)

    def child_rows(self, entity: str) -> list[sa.Row]:
        return landed_lines(self.engine, entity, self.key)

    @contextmanager
    def tampered(self) -> Iterator[Connection]:
        """A connection in a transaction that is rolled back: tamper, check, forget."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                yield conn
            finally:
                trans.rollback()


@dataclass
class Landed(Landing):
    """A company fully landed, with its current month's reports fetched (``reports`` by name)."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


@contextmanager
def demo_company(settings: EmulatorSettings | None = None) -> Iterator[EmulatorCompany]:
    """An emulator over HTTP holding QBO's demo company (seed 7), alone.

    Its clock starts at :data:`qb_pipelines_tests.dates.DEMO_NOW` (mid-month) unless ``settings``
    say otherwise: the demo company's "this month" then has income whatever the real date is.
    """
    with start_in_thread(Emulator(settings or EmulatorSettings(now=DEMO_NOW))) as running:
        yield EmulatorCompany(running, seed_demo_company(running.emu))


def land_demo(company: EmulatorCompany, engine: Engine, key: str = DEMO_KEY) -> Landed:
    """Full load of every entity with the project's ingest, then the current month's reports."""
    landed = Landed(company.emulator, company.realm, engine, key, client=company.token_client())
    landed.land(full=True)
    landed.reports = {name: reports.fetch_month(landed.client, name, landed.month) for name in reports.REPORTS}
    return landed


# ------------------------------------------------------------------------------------------ connected


def emulator_settings(database_url: str, emulator: RunningEmulator | str, **overrides: Any) -> AppSettings:
    """Settings of a deployment whose QuickBooks is ``emulator`` (or its URL), with a fresh token key."""
    url = emulator if isinstance(emulator, str) else emulator.url
    values: dict[str, Any] = {"database_url": database_url, "fernet_key": generate_key(),
                              "client_id": EMULATOR_CLIENT_ID, "client_secret": EMULATOR_CLIENT_SECRET,
                              "environment_name": "emulator", "emulator_url": url}
    values.update(overrides)
    return AppSettings(**values)


def settings_env(settings: AppSettings) -> dict[str, str]:
    """The environment variables :meth:`AppSettings.from_env` reads back as ``settings`` (a cron job's)."""
    env = {"QB_DATABASE_URL": settings.database_url or "", "QB_FERNET_KEY": settings.fernet_key,
           "QBO_CLIENT_ID": settings.client_id, "QBO_CLIENT_SECRET": settings.client_secret,
           "QBO_ENVIRONMENT": settings.environment_name, "QBO_EMULATOR_URL": settings.emulator_url or ""}
    if settings.redirect_uri:
        env["QBO_REDIRECT_URI"] = settings.redirect_uri
    if settings.companies_per_tenant != "one":
        env["QB_COMPANIES_PER_TENANT"] = settings.companies_per_tenant
    return env


@dataclass
class Connected(EmulatorCompany):
    """A tenant connected to an emulator company.

    Attributes:
        runtime: the runtime over the store (the one the product code under test uses).
        tenant: the tenant key.
        key: the company key (``<tenant>-<realm>``).
    """

    runtime: Runtime
    tenant: str
    key: str

    def client(self, **kwargs: Any) -> QBOClient:
        """The company's QBO client, as the product builds it (stored tokens, metered reads)."""
        return self.runtime.client_for(self.key, **kwargs)

    def read(self, entity: str, obj_id: str) -> dict[str, Any]:
        """QuickBooks' object now."""
        return self.client(max_retries=1).read(entity, obj_id)

    def query(self, entity: str, where: str | None = None) -> list[dict[str, Any]]:
        return list(self.client(max_retries=1).query_all(entity, where=where))

    def reconnect(self) -> None:
        """The admin reconnects from Accounting Integrations: a new grant stored for the tenant."""
        _save_connection(self.runtime, self.tenant, self.realm, tokens_for(self.emulator, self.realm))

    def land(self, entities: list[str] | None = None, **kwargs: Any) -> LandResult:
        """Land the company into the runtime's warehouse, as ``qb-pipelines sync`` does."""
        kwargs.setdefault("now", self.now)
        client = kwargs.pop("client", None) or self.client(max_retries=1)
        return land(client, self.runtime.warehouse, self.key, entities, **kwargs)

    def rows(self, entity: str) -> dict[str, sa.Row]:
        """The landed rows of ``entity`` (deleted ones flagged), by Id."""
        return landed_rows(self.runtime.engine, entity, self.key)


def _save_connection(runtime: Runtime, tenant: str, realm: str, tokens: TokenSet) -> dict[str, Any]:
    """Store a grant as the OAuth callback does (the user from userinfo, the name from CompanyInfo)."""
    user = runtime.oauth("emulator").userinfo(tokens.access_token)
    info = runtime.client(realm, _Static(tokens.access_token), "emulator", max_retries=1).company_info()
    runtime.connections.save_tokens_on_connect(
        tenant, "emulator", realm, str(info.get("CompanyName") or realm), str(user.get("email") or ""),
        str(user.get("givenName") or ""), str(user.get("familyName") or ""), tokens)
    return info


def connect_company(emulator: RunningEmulator, runtime: Runtime, *, realm: str | None = None,
                    name: str | None = None, invoices: int = 0, tenant: str | None = None, configure: bool = True,
                    **settings: Any) -> Connected:
    """Connect an emulator company for a tenant, as the OAuth callback and the Setup Wizard would.

    Args:
        emulator: the running emulator.
        runtime: the runtime over the store.
        realm: an existing emulator company; a new one (QBO's starting lists) by default.
        name: the new company's name.
        invoices: seed the new company with about this many invoices (customers, items, payments).
        tenant: the tenant key (a new one by default).
        configure: save the wizard's settings (every entity on, the company's Services income
            account, its first tax code, test mode) so the tenant counts as configured.
        **settings: settings to save instead of the defaults (``conflict_policy="app_wins"``...).
    """
    realm = realm or new_company(emulator, name, invoices=invoices)
    tenant = tenant or f"t{secrets.token_hex(4)}"
    runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
    tokens = tokens_for(emulator, realm)
    _save_connection(runtime, tenant, realm, tokens)
    if configure:
        accounts, codes = live_lists(runtime.client(realm, _Static(tokens.access_token), "emulator", max_retries=1))
        income = next((a for a in accounts if "services" in a.name.lower()), accounts[0])
        values: dict[str, Any] = {"default_income_account_id": income.id, "default_income_account_name": income.name,
                                  "mode": "test"}
        if codes:
            values.update(default_tax_code_id=codes[0].id, default_tax_code_name=codes[0].name)
        values.update(settings)
        runtime.tenant_settings.save(tenant, values)
    return Connected(emulator, realm, runtime, tenant, company_key(tenant, realm))


def complete_setup_wizard(runtime: Runtime, tenant: str, **settings: Any) -> None:
    """Save the tenant's settings as a completed Setup Wizard does, without reading QuickBooks.

    For tests that store a connection by hand: landing waits for the wizard
    (:mod:`qb_pipelines.sync.landing_gate`). The income account is a placeholder, which
    landing never uses; :func:`connect_company` saves the company's real one.
    """
    values: dict[str, Any] = {"default_income_account_id": "1", "default_income_account_name": "Services",
                              "mode": "test"}
    values.update(settings)
    runtime.tenant_settings.save(tenant, values)


class _Static:
    """A token source that hands out one access token (for the calls made while connecting)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh(self, stale_access_token: str) -> str:
        return self.token


# ------------------------------------------------------------------------------------------ Dagster


def dagster_resources(settings: AppSettings, *, max_retries: int = 1) -> dict[str, Any]:
    """The resources the code location binds (``qbo``, ``warehouse``), configured with ``settings``.

    ``resources["qbo"].runtime()`` is the process-wide runtime of ``settings``: the very one the
    assets, checks and sensors use.
    """
    from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource

    qbo = QBOConnectionResource(database_url=settings.database_url or "", fernet_key=settings.fernet_key,
                                client_id=settings.client_id, client_secret=settings.client_secret,
                                environment=settings.environment_name, emulator_url=settings.emulator_url or "",
                                max_retries=max_retries)
    return {"qbo": qbo, "warehouse": WarehouseResource(qbo=qbo)}


@dataclass
class DagsterStack:
    """The integration as Dagster runs it: resources over one store, their runtime, an instance.

    Attributes:
        resources: ``qbo`` and ``warehouse``, as bound in the code location.
        runtime: the runtime the resources use (shared in the process).
        instance: a temporary Dagster instance.
        emulator: the QuickBooks its companies are connected in (none for tests that call no QBO).
    """

    resources: dict[str, Any]
    runtime: Runtime
    instance: dg.DagsterInstance
    emulator: RunningEmulator | None = None

    @property
    def qbo(self) -> QBOConnectionResource:
        return self.resources["qbo"]

    def add_partition(self, key: str) -> None:
        """Add a company partition, as the partitions sensor's request does."""
        from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME

        self.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])

    def add_report_months(self, *months: str) -> None:
        """Add report month partitions (``YYYY-MM``), as the report sensor's request does."""
        from qb_pipelines.defs.partitions import QBO_REPORT_MONTHS_NAME

        self.instance.add_dynamic_partitions(QBO_REPORT_MONTHS_NAME, list(months))

    def connect(self, **kwargs: Any) -> Connected:
        """:func:`connect_company` in the stack's emulator and runtime, the company's partition added."""
        assert self.emulator is not None, "this stack has no emulator to connect a company in"
        connected = connect_company(self.emulator, self.runtime, **kwargs)
        self.add_partition(connected.key)
        return connected


@contextmanager
def dagster_stack(settings: AppSettings, emulator: RunningEmulator | None = None, *, for_schedules: bool = False,
                  max_retries: int = 1) -> Iterator[DagsterStack]:
    """A :class:`DagsterStack` over ``settings``' store; the shared runtimes are closed afterwards.

    Args:
        settings: the deployment (its store is migrated on first use).
        emulator: the emulator its companies live in.
        for_schedules: a test instance with an instance ref (``dg.instance_for_test``), as schedule
            and sensor contexts need; an ephemeral one otherwise.
        max_retries: retries of a failed QBO call in runs.
    """
    import dagster as dg

    resources = dagster_resources(settings, max_retries=max_retries)
    try:
        with dg.instance_for_test() if for_schedules else dg.DagsterInstance.ephemeral() as instance:
            yield DagsterStack(resources, resources["qbo"].runtime(), instance, emulator)
    finally:
        Runtime.close_shared()

