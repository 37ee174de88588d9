"""The Dagster code location loads, validates, and its assets produce real results.

CI loads the whole ``Definitions`` here so that no refactor can orphan or break a definition.
"""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from qb_pipelines.defs.partitions import qbo_company_partitions
from qb_pipelines.defs.resources import DEFAULT_EMULATOR_URL, QBOEmulatorResource
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from qb_pipelines.definitions import defs

    return defs


def test_definitions_load_and_validate(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"qbo/entity_catalog", "qbo/emulator_companies"} <= keys
    assert "qbo_emulator" in repo.get_top_level_resources()
    # every job (including the implicit asset job) resolves with its resources bound
    assert defs.resolve_implicit_global_asset_job_def() is not None
    for job in defs.resolve_all_job_defs():
        assert job.name


def test_workspace_module_loads_in_a_fresh_interpreter_without_emulator_or_web() -> None:
    # The layers rule: Dagster definitions never import the emulator or the web app. A fresh
    # interpreter shows exactly what loading the code location pulls in.
    code = (
        "import sys, qb_pipelines.definitions as d; "
        "bad = sorted(m for m in sys.modules if m.startswith(('qb_pipelines.emulator', 'qb_pipelines.web'))); "
        "print(type(d.defs).__name__, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Definitions []"


def test_qbo_company_partitions_are_dynamic_and_named() -> None:
    assert isinstance(qbo_company_partitions, dg.DynamicPartitionsDefinition)
    assert qbo_company_partitions.name == "qbo_company"
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("qbo_company", ["acme-9130"])
        assert qbo_company_partitions.get_partition_keys(dynamic_partitions_store=instance) == ["acme-9130"]


def test_entity_catalog_materializes_the_registry(defs: dg.Definitions) -> None:
    result = dg.materialize([defs.get_assets_def(["qbo", "entity_catalog"])])
    assert result.success
    (mat,) = result.asset_materializations_for_node("qbo__entity_catalog")
    meta = mat.metadata
    assert meta["entity_count"].value == len(registry.ENTITIES)
    rows = meta["entities"].value.records
    assert [r.data["entity"] for r in rows] == [e.name for e in registry.ENTITIES]
    invoice = next(r.data for r in rows if r.data["entity"] == "Invoice")
    assert invoice["kind"] == "transaction" and invoice["void"] == "operation" and invoice["pushed"] is True
    assert meta["push_order"].value.split(" -> ")[0] == registry.push_order()[0].name


def test_emulator_companies_lists_what_the_emulator_holds(defs: dg.Definitions, emulator: RunningEmulator) -> None:
    realms = [emulator.emu.engine.create_company("Rock Castle Construction"), emulator.emu.engine.create_company("Amy's Bird Sanctuary")]
    result = dg.materialize(
        [defs.get_assets_def(["qbo", "emulator_companies"])],
        resources={"qbo_emulator": QBOEmulatorResource(base_url=emulator.url)},
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("qbo__emulator_companies")
    assert mat.metadata["company_count"].value == 2
    rows = [r.data for r in mat.metadata["companies"].value.records]
    assert sorted(r["realmId"] for r in rows) == sorted(realms)
    assert {r["name"] for r in rows} == {"Rock Castle Construction", "Amy's Bird Sanctuary"}


def test_emulator_companies_fails_with_next_step_when_no_emulator(defs: dg.Definitions) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = dg.materialize(
        [defs.get_assets_def(["qbo", "emulator_companies"])],
        resources={"qbo_emulator": QBOEmulatorResource(base_url=url, max_retries=0)},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("qbo__emulator_companies")
    assert failure is not None
    assert f"No QBO emulator answers at {url}" in str(failure.user_failure_data.description)


def test_emulator_resource_reads_its_url_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = QBOEmulatorResource()
    monkeypatch.delenv("QBO_EMULATOR_URL", raising=False)
    assert resource.resolved_url() == DEFAULT_EMULATOR_URL
    monkeypatch.setenv("QBO_EMULATOR_URL", "http://127.0.0.1:9999/")
    assert resource.resolved_url() == "http://127.0.0.1:9999"
    assert QBOEmulatorResource(base_url="http://emu:1").resolved_url() == "http://emu:1"


def test_every_registry_entity_and_report_is_an_asset_with_checks_jobs_schedules_and_sensors(
    defs: dg.Definitions,
) -> None:
    from qb_pipelines.defs.assets import QBO_POOL, entity_asset_key
    from qb_pipelines.defs.reports import report_asset_key
    from qb_pipelines.sync.reports import REPORTS

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = graph.get_all_asset_keys()
    for entity in registry.ENTITIES:
        node = graph.get(entity_asset_key(entity.name))
        assert node.group_name == "qbo_raw" and node.kinds >= {"quickbooks", "sql"}
        assert node.partitions_def == qbo_company_partitions
        checks = {k.name for k in graph.get_check_keys_for_assets({node.key})}
        assert "quality" in checks
        assert ("totals" in checks) is entity.is_transaction
    for report in REPORTS:
        node = graph.get(report_asset_key(report))
        assert node.group_name == "qbo_reports"
        assert isinstance(node.partitions_def, dg.MultiPartitionsDefinition)
    blocking = {k.name: graph.get_check_spec(k).blocking for k in graph.asset_check_keys
                if k.asset_key.path[:2] == ["qbo", "report"]}
    assert blocking == {"receivables": True, "customer_balances": True, "payables": True, "vendor_balances": True,
                        "trial_balance": True, "profit_and_loss": True, "general_ledger": True}
    assert len(keys) == len(registry.ENTITIES) + len(REPORTS) + 2
    ingest = defs.get_assets_def(entity_asset_key("Invoice"))
    assert ingest.can_subset and ingest.op.pool == QBO_POOL
    assert ingest.op.retry_policy is not None and ingest.op.retry_policy.jitter is not None
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"qbo_incremental_job", "qbo_full_refresh_job", "qbo_daily_backstop_job", "qbo_reports_job",
            "qbo_token_refresh_job"} <= jobs
    assert {s.name for s in repo.schedule_defs} == {"qbo_poll_schedule", "qbo_daily_backstop_schedule",
                                                    "qbo_weekly_full_refresh_schedule", "qbo_token_refresh_schedule"}
    assert {s.name for s in repo.sensor_defs} == {"qbo_company_partitions_sensor", "qbo_webhook_sensor",
                                                  "qbo_report_refresh_sensor"}
    assert repo.get_sensor_def("qbo_webhook_sensor").minimum_interval_seconds <= 5
    assert {"qbo", "warehouse", "qbo_emulator"} <= set(repo.get_top_level_resources())
