"""The record of each landing (what the admin card shows) and the monthly read budget's asset check.

Real parts: the emulator over HTTP, a company connected through the connections store (tokens
from the emulator's test route, as the OAuth callback stores them), SQLite and PostgreSQL stores,
``qb-pipelines sync`` through Click's runner, the Dagster asset materialized on a real temporary
instance, the usage sensor evaluated on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from qb_pipelines.cli import cli
from qb_pipelines.defs.assets import qbo_raw_entities
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.defs.usage import API_USAGE_KEY, qbo_api_usage, qbo_read_budget_sensor
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.db import session_factory
from qb_pipelines.store.sync_runs import SyncRunStore
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runs import describe_failure, recorded_landing
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.harness import complete_setup_wizard
from qb_pipelines_tests.web_fixtures import MovableClock


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEmulator]:
    emulator = start_in_thread(Emulator(EmulatorSettings()))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def qbo(running: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QBOConnectionResource]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('runs')) / 'qb.sqlite'}"
    resource = QBOConnectionResource(database_url=url, fernet_key=generate_key(), client_id="emulator-client-id",
                                     client_secret="emulator-client-secret", environment="emulator",
                                     emulator_url=running.url, max_retries=1)
    yield resource
    Runtime.close_shared()


def _connect(running: RunningEmulator, runtime: Runtime, invoices: int = 5) -> tuple[str, str]:
    realm = running.emu.engine.create_company(f"Runs Co {secrets.token_hex(2)}")
    seed_company(running.emu, realm, invoices=invoices)
    tenant = f"t{secrets.token_hex(3)}"
    runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
    body = requests.post(f"{running.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
    runtime.connections.save_tokens_on_connect(tenant, "emulator", realm, f"Company {realm}", "demo@example.com",
                                               "Demo", "User", TokenSet.from_response(body, realm_id=realm))
    complete_setup_wizard(runtime, tenant)
    return company_key(tenant, realm), realm


def _revoke(running: RunningEmulator, realm: str) -> None:
    """The user disconnected the app inside QuickBooks: every token of the company is dead."""
    requests.post(f"{running.url}/_emulator/oauth/revoke-all", json={"realmId": realm}, timeout=10).raise_for_status()
    requests.post(f"{running.url}/_emulator/oauth/expire", json={"realmId": realm, "what": "access"},
                  timeout=10).raise_for_status()


# ------------------------------------------------------------------------------------------------
# the store and the recorder
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp("syncruns")) as eng:
        yield eng


def test_runs_are_recorded_newest_first_and_old_ones_forgotten(engine: Engine) -> None:
    clock = MovableClock(datetime(2026, 1, 1, tzinfo=UTC))
    runs = SyncRunStore(session_factory(engine), clock=clock)
    key = f"acme-{secrets.token_hex(4)}"
    assert runs.latest(key) is None
    first = runs.record(key, started_at=clock.now, ok=True, objects=120, api_calls=3, mode="full", source="cli")
    clock.advance(100 * 24 * 3600)
    with recorded_landing(runs, key, source="dagster", mode="incremental", run_id="r-1"):
        clock.advance(2)
    latest = runs.latest(key)
    assert latest is not None and latest.ok and latest.source == "dagster" and latest.run_id == "r-1"
    assert latest.finished_at - latest.started_at == timedelta(seconds=2)
    with pytest.raises(ZeroDivisionError), recorded_landing(runs, key, source="cli", mode="incremental"):
        clock.advance(1)
        _ = 1 / 0
    failed = runs.latest(key)
    assert failed is not None and not failed.ok and failed.error == "ZeroDivisionError: division by zero"
    assert [r.ok for r in runs.history(key)] == [False, True]  # the 100-day-old run was forgotten
    assert first not in runs.history(key)


def test_a_recorded_error_never_carries_a_token() -> None:
    access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..KM1_abc.def-ghi_jkl.mno"
    refresh = "RT1-39-H3-1785429816rcysb9dns1ofreknypnm"
    opaque = secrets.token_urlsafe(48)
    text = describe_failure(RuntimeError(f"Token expired: Bearer {opaque} (refresh {refresh}, jwe {access})"))
    assert opaque not in text and refresh not in text and "KM1_abc" not in text
    assert text.startswith("RuntimeError: Token expired: Bearer [redacted]") and "[redacted]" in text


# ------------------------------------------------------------------------------------------------
# who records: qb-pipelines sync and the Dagster asset
# ------------------------------------------------------------------------------------------------
def test_qb_pipelines_sync_records_its_landings(running: RunningEmulator, qbo: QBOConnectionResource) -> None:
    runtime = qbo.runtime()
    key, realm = _connect(running, runtime)
    env = {"QB_DATABASE_URL": qbo.database_url, "QB_FERNET_KEY": qbo.fernet_key, "QBO_CLIENT_ID": qbo.client_id,
           "QBO_CLIENT_SECRET": qbo.client_secret, "QBO_ENVIRONMENT": "emulator", "QBO_EMULATOR_URL": running.url}
    result = CliRunner().invoke(cli, ["sync", "--company", key], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ok = runtime.sync_runs.latest(key)
    assert ok is not None and ok.ok and ok.source == "cli" and ok.mode == "incremental"
    assert ok.objects > 5 and ok.api_calls > 0 and ok.error is None

    typo = CliRunner().invoke(cli, ["sync", "--company", key, "--entities", "Gizmo"], env=env)
    assert typo.exit_code != 0 and runtime.sync_runs.latest(key) == ok  # a typo is not a landing

    _revoke(running, realm)
    result = CliRunner().invoke(cli, ["sync", "--company", key], env=env, catch_exceptions=False)
    assert result.exit_code != 0
    failed = runtime.sync_runs.latest(key)
    assert failed is not None and not failed.ok and failed.source == "cli"
    assert failed.error and "InvalidGrant" in failed.error and failed.objects == 0


def test_the_dagster_asset_records_its_landings(running: RunningEmulator, qbo: QBOConnectionResource) -> None:
    runtime = qbo.runtime()
    key, realm = _connect(running, runtime)
    resources = {"qbo": qbo, "warehouse": WarehouseResource(qbo=qbo)}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
        result = dg.materialize([qbo_raw_entities], partition_key=key, resources=resources, instance=instance,
                                selection=[dg.AssetKey(["qbo", "customer"]), dg.AssetKey(["qbo", "invoice"])])
        assert result.success
        ok = runtime.sync_runs.latest(key)
        assert ok is not None and ok.ok and ok.source == "dagster" and ok.run_id == result.run_id
        assert ok.objects > 5

        _revoke(running, realm)
        failed_run = dg.materialize([qbo_raw_entities], partition_key=key, resources=resources, instance=instance,
                                    selection=[dg.AssetKey(["qbo", "customer"])], raise_on_error=False)
        assert not failed_run.success
        failed = runtime.sync_runs.latest(key)
        assert failed is not None and not failed.ok and failed.run_id == failed_run.run_id
        assert failed.error and "InvalidGrant" in failed.error


# ------------------------------------------------------------------------------------------------
# the read budget: asset check and sensor
# ------------------------------------------------------------------------------------------------
def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_the_read_budget_check_warns_at_80_and_fails_at_100_percent(
    running: RunningEmulator, qbo: QBOConnectionResource, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = qbo.runtime()
    key, realm = _connect(running, runtime)
    reads = runtime.usage.reads(realm)
    monkeypatch.setenv("QB_READ_BUDGET", str(reads + 100))
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])

        def evaluate() -> dg.AssetCheckEvaluation:
            result = dg.materialize([qbo_api_usage], partition_key=key, resources={"qbo": qbo}, instance=instance)
            assert result.success  # a check that fails does not fail the run: it reports
            (mat,) = result.asset_materializations_for_node("qbo__api_usage")
            assert mat.metadata["company"].value == key and mat.metadata["read_budget"].value == reads + 100
            return _check(result)

        ok = evaluate()
        assert ok.passed and ok.metadata["company"].value == key
        for _ in range(80 - 1):
            runtime.usage.record_read(realm)
        assert evaluate().passed  # 79 %
        runtime.usage.record_read(realm)
        warn = evaluate()
        assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
        assert key in str(warn.description) and "over 80% of the monthly read budget" in str(warn.description)
        for _ in range(20):
            runtime.usage.record_read(realm)
        over = evaluate()
        assert not over.passed and over.severity == dg.AssetCheckSeverity.ERROR
        assert "the monthly read budget is spent" in str(over.description)
        assert over.metadata["percent_of_budget"].value == 100


def test_the_sensor_checks_a_company_once_per_level_and_month(
    running: RunningEmulator, qbo: QBOConnectionResource, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = qbo.runtime()
    key, realm = _connect(running, runtime)
    monkeypatch.setenv("QB_READ_BUDGET", str(runtime.usage.reads(realm) + 10))
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])

        def requested() -> dict[str, str]:
            ctx = dg.build_sensor_context(instance=instance, resources={"qbo": qbo})
            found = [r for r in qbo_read_budget_sensor(ctx) if isinstance(r, dg.RunRequest)]
            return {r.partition_key: r.run_key for r in found}

        month = datetime.now(UTC).strftime("%Y-%m")
        assert requested()[key] == f"read_budget:{key}:{month}:ok"
        for _ in range(8):
            runtime.usage.record_read(realm)
        assert requested()[key] == f"read_budget:{key}:{month}:warn"
        monkeypatch.setenv("QB_READ_BUDGET", "lots")
        ctx = dg.build_sensor_context(instance=instance, resources={"qbo": qbo})
        (skip,) = list(qbo_read_budget_sensor(ctx))
        assert isinstance(skip, dg.SkipReason) and "QB_READ_BUDGET" in str(skip.skip_message)
    assert API_USAGE_KEY.to_user_string() == "qbo/api_usage"
