"""The Dagster layer of landing: entity assets, report assets and checks on a real instance.

A real emulator over HTTP, companies connected through the real connections store (tokens from
the emulator's test route, saved encrypted), a real SQLite (and, for the main landing test,
PostgreSQL) store and warehouse migrated to head, and a real temporary Dagster instance. The
assets are materialized exactly as the UI or a schedule would, partition by partition.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import requests
import sqlalchemy as sa

from qb_pipelines.defs.assets import entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.checks import REPORT_CHECKS, qbo_entity_checks
from qb_pipelines.defs.jobs import qbo_full_refresh_job, qbo_token_refresh_job
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, report_partition_key
from qb_pipelines.defs.reports import REPORT_ASSETS, report_asset_key
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_company, seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.connections import ConnectionState, ConnectionStore
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.warehouse import tables_for
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_database


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_in_thread(Emulator(EmulatorSettings()))
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Env:
    """One store + warehouse database, the resources pointing at it, and a Dagster instance."""

    url: str
    emulator: RunningEmulator
    store: ConnectionStore
    engine: sa.Engine
    resources: dict
    instance: dg.DagsterInstance
    runtime: Runtime

    def connect(self, realm: str, tenant: str | None = None) -> str:
        """Connect ``realm`` for a new tenant as the OAuth callback would; returns the company key."""
        tenant = tenant or f"t{secrets.token_hex(3)}"
        self.runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
        self.reconnect(tenant, realm)
        key = company_key(tenant, realm)
        self.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
        return key

    def reconnect(self, tenant: str, realm: str) -> None:
        body = requests.post(f"{self.emulator.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
        self.store.save_tokens_on_connect(tenant, "emulator", realm, f"Company {realm}", "demo@example.com",
                                          "Demo", "User", TokenSet.from_response(body, realm_id=realm))

    def rows(self, entity: str, key: str) -> dict[str, sa.Row]:
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            return {r.id: r for r in conn.execute(sa.select(main).where(main.c.company_key == key))}

    def counts(self, realm: str) -> dict:
        return requests.get(f"{self.emulator.url}/_emulator/companies/{realm}/counts", timeout=30).json()

    def act(self, realm: str, entity: str, operation: str, body: dict) -> dict:
        resp = requests.post(f"{self.emulator.url}/_emulator/companies/{realm}/act",
                             json={"entity": entity, "operation": operation, "body": body}, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()[entity]


def _env(url: str, emulator: RunningEmulator) -> Iterator[Env]:
    key = generate_key()
    qbo = QBOConnectionResource(database_url=url, fernet_key=key, client_id="emulator-client-id",
                                client_secret="emulator-client-secret", environment="emulator",
                                emulator_url=emulator.url, max_retries=1)
    runtime = qbo.runtime()  # the very runtime the assets use
    resources = {"qbo": qbo, "warehouse": WarehouseResource(qbo=qbo)}
    with dg.DagsterInstance.ephemeral() as instance:
        yield Env(url, emulator, runtime.connections, runtime.engine, resources, instance, runtime)
    Runtime.close_shared()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Env]:
    with throwaway_database(request.param, tmp_path_factory.mktemp("defs")) as url:
        yield from _env(url, emulator)


@pytest.fixture(scope="module")
def sqlite_env(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from _env(f"sqlite:///{Path(tmp_path_factory.mktemp('defs1')) / 'qb.sqlite'}", emulator)


def _materialize(env: Env, key: str, entities: list[str] | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    selection = [entity_asset_key(e) for e in entities] if entities else None
    return dg.materialize([qbo_raw_entities], partition_key=key, resources=env.resources, instance=env.instance,
                          selection=selection, **kwargs)


def _run_checks(env: Env, key: str, assets: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    """What ``qbo_daily_backstop_job`` does, limited to ``assets``: land incrementally, then check."""
    return dg.materialize([qbo_raw_entities, qbo_entity_checks], partition_key=key, resources=env.resources,
                          instance=env.instance, selection=dg.AssetSelection.assets(*assets))


def _meta(result: dg.ExecuteInProcessResult, entity: str) -> dict:
    key = entity_asset_key(entity)
    (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: getattr(v, "value", v) for k, v in mat.materialization.metadata.items()}


def test_entity_assets_land_a_company_then_pick_up_changes_with_one_cdc_call(env: Env) -> None:
    realm = env.emulator.emu.engine.create_company("Landing Co")
    seed_company(env.emulator.emu, realm, invoices=120)
    key = env.connect(realm)

    first = _materialize(env, key)
    assert first.success
    counts = env.counts(realm)
    assert len(first.get_asset_materialization_events()) == len(registry.ENTITIES)
    for entity in ("Customer", "Invoice", "Payment", "Item", "TaxCode"):
        meta = _meta(first, entity)
        landed = [r for r in env.rows(entity, key).values() if not r.is_deleted]
        expected = counts[entity]["active"] + counts[entity]["inactive"]
        assert len(landed) == expected > 0, entity
        assert meta["rows_inserted"] == expected
        assert meta["mode"] == "full" and meta["api_calls"] >= 1 and meta["pages"] >= 1
    assert _meta(first, "Invoice")["cursor"]  # CDC entities get a cursor
    assert _meta(first, "TaxCode")["cursor"] == ""  # no CDC for tax codes
    assert _meta(first, "Invoice")["touched_months"]

    invoice = next(r for r in env.rows("Invoice", key).values() if not r.is_deleted)
    customer = env.act(realm, "Customer", "create", {"DisplayName": f"New Customer {secrets.token_hex(3)}"})
    env.act(realm, "Invoice", "update", {"Id": invoice.id, "sparse": True, "PrivateNote": "changed in QBO"})

    second = _materialize(env, key)
    assert second.success
    inv, cust = _meta(second, "Invoice"), _meta(second, "Customer")
    assert inv["mode"] == cust["mode"] == "incremental"
    assert inv["rows_updated"] == 1 and inv["rows_inserted"] == 0
    assert cust["rows_inserted"] == 1
    # one CDC call for every CDC entity, one batch for the few CDC does not cover
    assert inv["run_api_calls"] <= 2
    assert customer["Id"] in env.rows("Customer", key)
    assert "changed in QBO" in str(env.rows("Invoice", key)[invoice.id].raw)
    assert second.dagster_run.tags.get("dagster/partition") == key


def test_a_broken_company_fails_alone_and_its_rerun_succeeds_after_reconnecting(sqlite_env: Env) -> None:
    env = sqlite_env
    good_realm = env.emulator.emu.engine.create_company("Good Co")
    bad_realm = env.emulator.emu.engine.create_company("Broken Co")
    seed_company(env.emulator.emu, good_realm, invoices=10)
    seed_company(env.emulator.emu, bad_realm, invoices=10)
    good, bad = env.connect(good_realm), env.connect(bad_realm)
    # the user disconnected the app inside QuickBooks: every token of the company is dead
    requests.post(f"{env.emulator.url}/_emulator/oauth/revoke-all", json={"realmId": bad_realm},
                  timeout=10).raise_for_status()
    requests.post(f"{env.emulator.url}/_emulator/oauth/expire", json={"realmId": bad_realm, "what": "access"},
                  timeout=10).raise_for_status()

    failed = _materialize(env, bad, ["Customer", "Invoice"], raise_on_error=False)
    assert not failed.success
    failure = failed.failure_data_for_node("qbo_raw_entities")
    assert failure is not None and bad in str(failure.user_failure_data.description)
    assert "reconnect" in str(failure.user_failure_data.metadata["next_step"].value).lower()
    tenant = bad.rsplit("-", 1)[0]
    assert env.store.get(tenant).state is ConnectionState.SESSION_EXPIRED
    assert env.rows("Invoice", bad) == {}

    ok = _materialize(env, good, ["Customer", "Invoice"])
    assert ok.success and len(env.rows("Invoice", good)) == env.counts(good_realm)["Invoice"]["active"]

    env.reconnect(tenant, bad_realm)  # the admin reconnects from Accounting Integrations
    rerun = _materialize(env, bad, ["Customer", "Invoice"])
    assert rerun.success
    assert len(env.rows("Invoice", bad)) == env.counts(bad_realm)["Invoice"]["active"] > 0


def test_checks_pass_on_a_faithful_load_and_name_the_tampered_ids(sqlite_env: Env) -> None:
    env = sqlite_env
    realm = seed_demo_company(env.emulator.emu)
    key = env.connect(realm)
    assert _materialize(env, key).success

    checked = [entity_asset_key(e) for e in ("Customer", "Invoice")]
    run = _run_checks(env, key, checked)
    assert run.success
    evaluations = {(e.asset_key, e.check_name): e for e in run.get_asset_check_evaluations()}
    assert set(evaluations) == {(entity_asset_key("Customer"), "completeness"),
                                (entity_asset_key("Customer"), "quality"),
                                (entity_asset_key("Invoice"), "completeness"),
                                (entity_asset_key("Invoice"), "totals"),
                                (entity_asset_key("Invoice"), "quality")}
    assert all(e.passed for e in evaluations.values()), {k: e.description for k, e in evaluations.items()}

    # Reports of the current month, with their blocking checks: all agree with the landed books.
    month = datetime.now(UTC).strftime("%Y-%m")
    reports = dg.materialize([*REPORT_ASSETS, *REPORT_CHECKS], partition_key=str(report_partition_key(key, month)),
                             resources=env.resources, instance=env.instance)
    assert reports.success
    report_evals = {e.check_name: e for e in reports.get_asset_check_evaluations()}
    assert set(report_evals) == {"receivables", "customer_balances", "payables", "vendor_balances", "trial_balance",
                                 "profit_and_loss", "general_ledger"}
    assert all(e.passed for e in report_evals.values()), {k: e.description for k, e in report_evals.items()}
    assert len(reports.get_asset_materialization_events()) == len(REPORT_ASSETS) == 8

    # Tamper with the warehouse: one invoice's total, one customer's balance.
    main, _ = tables_for("Invoice")
    invoice_id = sorted(env.rows("Invoice", key))[0]
    customers, _ = tables_for("Customer")
    customer_id = next(i for i, r in env.rows("Customer", key).items() if r.balance and not r.is_deleted)
    with env.engine.begin() as conn:
        conn.execute(sa.update(main).where(main.c.company_key == key, main.c.id == invoice_id)
                     .values(total_amt=main.c.total_amt + 7))
        conn.execute(sa.update(customers).where(customers.c.company_key == key, customers.c.id == customer_id)
                     .values(balance=customers.c.balance + 11))

    rerun = _run_checks(env, key, checked)
    totals = {(e.asset_key, e.check_name): e for e in rerun.get_asset_check_evaluations()}[
        (entity_asset_key("Invoice"), "totals")]
    assert not totals.passed
    mismatches = totals.metadata["mismatches"].value
    assert any(m.get("id") == invoice_id for m in mismatches), mismatches
    assert "full refresh" in totals.metadata["fix"].value

    blocked = dg.materialize([*REPORT_ASSETS, *REPORT_CHECKS], partition_key=str(report_partition_key(key, month)),
                             resources=env.resources, instance=env.instance, raise_on_error=False)
    balances = {e.check_name: e for e in blocked.get_asset_check_evaluations()}["customer_balances"]
    assert not balances.passed
    assert any(m.get("customer_id") == customer_id for m in balances.metadata["mismatches"].value)
    assert report_asset_key("CustomerBalance") in {m.asset_key for m in blocked.get_asset_materialization_events()}


def test_full_refresh_job_relands_everything_and_every_entity_check_passes(sqlite_env: Env) -> None:
    env = sqlite_env
    realm = env.emulator.emu.engine.create_company("Refresh Co")
    seed_company(env.emulator.emu, realm, invoices=15)
    key = env.connect(realm)
    assert _materialize(env, key).success
    defs = dg.Definitions(assets=[qbo_raw_entities], asset_checks=[qbo_entity_checks],
                          jobs=[qbo_full_refresh_job], resources=env.resources)
    result = defs.resolve_job_def("qbo_full_refresh_job").execute_in_process(partition_key=key, instance=env.instance)
    assert result.success
    assert {_meta(result, e)["mode"] for e in ("Invoice", "Customer", "Account")} == {"full"}
    assert _meta(result, "Invoice")["rows_inserted"] == 0  # nothing new: the refresh confirms every row
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(qbo_entity_checks.check_keys)
    assert all(e.passed for e in evaluations), [(e.asset_key, e.check_name, e.description)
                                                 for e in evaluations if not e.passed]


def test_token_refresh_job_refreshes_connections_about_to_lapse(sqlite_env: Env) -> None:
    env = sqlite_env
    realm = env.emulator.emu.engine.create_company("Tokens Co")
    key = env.connect(realm)
    tenant = key.rsplit("-", 1)[0]
    before = env.store.get(tenant).token_version
    defs = dg.Definitions(jobs=[qbo_token_refresh_job], resources=env.resources)
    # access tokens last an hour: asking for those lapsing within two hours refreshes them all
    result = defs.resolve_job_def("qbo_token_refresh_job").execute_in_process(
        instance=env.instance, run_config={"ops": {"qbo_refresh_tokens": {"config": {"within_minutes": 120}}}})
    assert result.success
    assert env.store.get(tenant).token_version == before + 1
    assert env.store.get(tenant).state is ConnectionState.CONNECTED
