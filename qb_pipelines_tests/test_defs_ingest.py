"""The Dagster layer of landing: entity assets, report assets and checks on a real instance.

A real emulator over HTTP, companies connected through the real connections store as the OAuth
callback connects them (``harness.connect_company``: tokens saved encrypted), a real SQLite (and,
for the main landing test, PostgreSQL) store and warehouse migrated to head, the code location's
resources over them and a real temporary Dagster instance (``harness.dagster_stack``). The
assets are materialized exactly as the UI or a schedule would, partition by partition.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from qb_pipelines.defs.assets import entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.checks import REPORT_CHECKS, qbo_entity_checks
from qb_pipelines.defs.jobs import qbo_full_refresh_job, qbo_token_refresh_job
from qb_pipelines.defs.partitions import report_partition_key
from qb_pipelines.defs.reports import REPORT_ASSETS, report_asset_key
from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.store.warehouse import tables_for
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import DagsterStack, dagster_stack, emulator_settings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, shared_emulator: RunningEmulator,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    with throwaway_database(request.param, tmp_path_factory.mktemp("defs")) as url, \
            dagster_stack(emulator_settings(url, shared_emulator), shared_emulator) as stack:
        yield stack


@pytest.fixture(scope="module")
def sqlite_env(shared_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('defs1')) / 'qb.sqlite'}"
    with dagster_stack(emulator_settings(url, shared_emulator), shared_emulator) as stack:
        yield stack


def _materialize(env: DagsterStack, key: str, entities: list[str] | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    selection = [entity_asset_key(e) for e in entities] if entities else None
    return dg.materialize([qbo_raw_entities], partition_key=key, resources=env.resources, instance=env.instance,
                          selection=selection, **kwargs)


def _run_checks(env: DagsterStack, key: str, assets: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    """What ``qbo_daily_backstop_job`` does, limited to ``assets``: land incrementally, then check."""
    return dg.materialize([qbo_raw_entities, qbo_entity_checks], partition_key=key, resources=env.resources,
                          instance=env.instance, selection=dg.AssetSelection.assets(*assets))


def _meta(result: dg.ExecuteInProcessResult, entity: str) -> dict:
    key = entity_asset_key(entity)
    (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: getattr(v, "value", v) for k, v in mat.materialization.metadata.items()}


def test_entity_assets_land_a_company_then_pick_up_changes_with_one_cdc_call(env: DagsterStack) -> None:
    co = env.connect(name="Landing Co", invoices=120)

    first = _materialize(env, co.key)
    assert first.success
    counts = co.counts()
    assert len(first.get_asset_materialization_events()) == len(registry.ENTITIES)
    for entity in ("Customer", "Invoice", "Payment", "Item", "TaxCode"):
        meta = _meta(first, entity)
        landed = [r for r in co.rows(entity).values() if not r.is_deleted]
        expected = counts[entity]["active"] + counts[entity]["inactive"]
        assert len(landed) == expected > 0, entity
        assert meta["rows_inserted"] == expected
        assert meta["mode"] == "full" and meta["api_calls"] >= 1 and meta["pages"] >= 1
    assert _meta(first, "Invoice")["cursor"]  # CDC entities get a cursor
    assert _meta(first, "TaxCode")["cursor"] == ""  # no CDC for tax codes
    assert _meta(first, "Invoice")["touched_months"]

    invoice = next(r for r in co.rows("Invoice").values() if not r.is_deleted)
    customer = co.act("Customer", "create", {"DisplayName": f"New Customer {secrets.token_hex(3)}"})
    co.act("Invoice", "update", {"Id": invoice.id, "sparse": True, "PrivateNote": "changed in QBO"})

    second = _materialize(env, co.key)
    assert second.success
    inv, cust = _meta(second, "Invoice"), _meta(second, "Customer")
    assert inv["mode"] == cust["mode"] == "incremental"
    assert inv["rows_updated"] == 1 and inv["rows_inserted"] == 0
    assert cust["rows_inserted"] == 1
    # one CDC call for every CDC entity, one batch for the few CDC does not cover
    assert inv["run_api_calls"] <= 2
    assert customer["Id"] in co.rows("Customer")
    assert "changed in QBO" in str(co.rows("Invoice")[invoice.id].raw)
    assert second.dagster_run.tags.get("dagster/partition") == co.key


def test_a_broken_company_fails_alone_and_its_rerun_succeeds_after_reconnecting(sqlite_env: DagsterStack) -> None:
    env = sqlite_env
    good = env.connect(name="Good Co", invoices=10)
    bad = env.connect(name="Broken Co", invoices=10)
    bad.disconnect_in_quickbooks()  # every token of the company is dead

    failed = _materialize(env, bad.key, ["Customer", "Invoice"], raise_on_error=False)
    assert not failed.success
    failure = failed.failure_data_for_node("qbo_raw_entities")
    assert failure is not None and bad.key in str(failure.user_failure_data.description)
    assert "reconnect" in str(failure.user_failure_data.metadata["next_step"].value).lower()
    assert env.runtime.connections.get(bad.tenant).state is ConnectionState.SESSION_EXPIRED
    assert bad.rows("Invoice") == {}

    ok = _materialize(env, good.key, ["Customer", "Invoice"])
    assert ok.success and len(good.rows("Invoice")) == good.counts()["Invoice"]["active"]

    bad.reconnect()  # the admin reconnects from Accounting Integrations
    rerun = _materialize(env, bad.key, ["Customer", "Invoice"])
    assert rerun.success
    assert len(bad.rows("Invoice")) == bad.counts()["Invoice"]["active"] > 0


def test_checks_pass_on_a_faithful_load_and_name_the_tampered_ids(sqlite_env: DagsterStack) -> None:
    env = sqlite_env
    co = env.connect(realm=seed_demo_company(env.emulator.emu))
    key = co.key
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
    month = co.month  # the company's month (its time zone), not the machine's
    env.add_report_months(month)
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
    invoice_id = sorted(co.rows("Invoice"))[0]
    customers, _ = tables_for("Customer")
    customer_id = next(i for i, r in co.rows("Customer").items() if r.balance and not r.is_deleted)
    with env.runtime.engine.begin() as conn:
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


def test_full_refresh_job_relands_everything_and_every_entity_check_passes(sqlite_env: DagsterStack) -> None:
    env = sqlite_env
    key = env.connect(name="Refresh Co", invoices=15).key
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


def test_token_refresh_job_refreshes_connections_about_to_lapse(sqlite_env: DagsterStack) -> None:
    env = sqlite_env
    tenant = env.connect(name="Tokens Co").tenant
    store = env.runtime.connections
    before = store.get(tenant).token_version
    defs = dg.Definitions(jobs=[qbo_token_refresh_job], resources=env.resources)
    # access tokens last an hour: asking for those lapsing within two hours refreshes them all
    result = defs.resolve_job_def("qbo_token_refresh_job").execute_in_process(
        instance=env.instance, run_config={"ops": {"qbo_refresh_tokens": {"config": {"within_minutes": 120}}}})
    assert result.success
    assert store.get(tenant).token_version == before + 1
    assert store.get(tenant).state is ConnectionState.CONNECTED

# ------------------------------------------------------------------ payables and the general ledger


def _reports(env: DagsterStack, key: str, month: str) -> dg.ExecuteInProcessResult:
    env.add_report_months(month)
    return dg.materialize([*REPORT_ASSETS, *REPORT_CHECKS], partition_key=str(report_partition_key(key, month)),
                          resources=env.resources, instance=env.instance, raise_on_error=False)


def test_payables_and_general_ledger_report_assets_and_their_blocking_checks(sqlite_env: DagsterStack) -> None:
    env = sqlite_env
    company = env.connect(realm=seed_demo_company(env.emulator.emu))
    key = company.key
    assert _materialize(env, key).success

    # before the books start: the general ledger is empty, lands as no row, and checks as empty
    first = "2024-01"  # a report month before the demo's year of books
    early = _reports(env, key, first)
    assert early.success
    mats = {e.materialization.asset_key: e.materialization for e in early.get_asset_materialization_events()}
    assert mats[report_asset_key("GeneralLedger")].metadata["rows_inserted"].value == 0
    checks = {e.check_name: e for e in early.get_asset_check_evaluations()}
    assert checks["general_ledger"].passed, checks["general_ledger"].description
    assert checks["general_ledger"].description.startswith(f"{key}: general ledger {first}-01..")
    assert checks["payables"].passed and checks["payables"].metadata["compared"].value is False

    # the company's current month: every check compares, and passes
    month = company.month
    current = _reports(env, key, month)
    assert current.success
    checks = {e.check_name: e for e in current.get_asset_check_evaluations()}
    assert {"payables", "vendor_balances", "general_ledger"} <= set(checks)
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items()}
    assert checks["payables"].metadata["compared"].value is True

    # a bill's balance changed in the warehouse: the payables check fails, naming vendor and bill
    bills, _ = tables_for("Bill")
    with env.runtime.engine.begin() as conn:
        ident, vendor = conn.execute(sa.select(bills.c.id, bills.c.vendor_ref_id).where(
            bills.c.company_key == key, bills.c.balance > 0).order_by(bills.c.id).limit(1)).one()
        conn.execute(sa.update(bills).where(bills.c.company_key == key, bills.c.id == ident)
                     .values(balance=bills.c.balance + 12))
    blocked = _reports(env, key, month)
    payables = {e.check_name: e for e in blocked.get_asset_check_evaluations()}["payables"]
    assert not payables.passed
    mismatches = payables.metadata["mismatches"].value
    assert any(m.get("vendor_id") == vendor and ident in m.get("open_bill_ids", []) for m in mismatches), mismatches
    assert "full refresh" in payables.metadata["fix"].value
