"""The Dagster code location loads, validates, matches its snapshot, and its assets produce real results.

CI loads the whole ``Definitions`` here so that no refactor can orphan or break a definition, and
compares what it defines with ``snapshots/definitions.json`` (one line per definition): every
asset key with its group, kinds and partitions, every asset check (blocking or not), job,
schedule (cron, job, time zone, default status), sensor (minimum interval, default status, jobs)
and resource key. A definition
added, removed or changed on purpose is recorded by regenerating the snapshot::

    QB_UPDATE_SNAPSHOTS=1 .venv/bin/pytest qb_pipelines_tests/test_definitions.py -k snapshot

and the JSON diff is reviewed with the change.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from qb_pipelines.definitions import defs as code_location
from qb_pipelines.defs.partitions import qbo_company_partitions
from qb_pipelines.defs.resources import DEFAULT_EMULATOR_URL, QBOEmulatorResource
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE_SNAPSHOTS = "QB_UPDATE_SNAPSHOTS"


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return code_location


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> Any:
    """A partitions definition as the snapshot records it: its name, or its dimensions."""
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic:{partitions_def.name}"
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {d.name: _partitions(d.partitions_def) for d in partitions_def.partitions_defs}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return (f"time:{partitions_def.cron_schedule} from {partitions_def.start.strftime(partitions_def.fmt)} "
                f"{partitions_def.timezone} end_offset={partitions_def.end_offset}")
    return type(partitions_def).__name__


def definitions_snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """Everything the code location defines, in a stable, reviewable shape (sorted, JSON-ready)."""
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = {"group": node.group_name, "kinds": sorted(node.kinds),
                                        "partitions": _partitions(node.partitions_def)}
        if node.backfill_policy is not None:  # e.g. single_run: a backfill is one run, not one per partition
            assets[key.to_user_string()]["backfill"] = node.backfill_policy.policy_type.value.lower()
    checks: dict[str, list[str]] = {}
    for check in graph.asset_check_keys:
        blocking = " (blocking)" if graph.get_check_spec(check).blocking else ""
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name + blocking)
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone,
                          "default_status": s.default_status.value} for s in repo.schedule_defs}
    sensors = {s.name: {"minimum_interval_seconds": s.minimum_interval_seconds,
                        "default_status": s.default_status.value,
                        "jobs": sorted(t.job_name for t in s.targets)}  # by object or by name (job_name=)
               for s in repo.sensor_defs}
    return {
        "assets": assets,
        "asset_checks": {key: sorted(names) for key, names in checks.items()},
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(repo.get_top_level_resources()),
    }


def _dump(snapshot: dict[str, Any]) -> str:
    """JSON with one line per definition, so a change reads as a one-line diff."""
    sections = []
    for name, section in sorted(snapshot.items()):
        if isinstance(section, dict):
            rows = [f"    {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(section.items())]
            sections.append(f"  {json.dumps(name)}: {{\n" + ",\n".join(rows) + "\n  }")
        else:
            rows = [f"    {json.dumps(v, sort_keys=True)}" for v in section]
            sections.append(f"  {json.dumps(name)}: [\n" + ",\n".join(rows) + "\n  ]")
    return "{\n" + ",\n".join(sections) + "\n}\n"


def test_definitions_match_the_snapshot(defs: dg.Definitions) -> None:
    """The code location defines exactly what ``snapshots/definitions.json`` records.

    After an intended change, regenerate the snapshot and review its diff with the change:
    ``QB_UPDATE_SNAPSHOTS=1 .venv/bin/pytest qb_pipelines_tests/test_definitions.py -k snapshot``.
    """
    actual = _dump(definitions_snapshot(defs))
    if os.environ.get(UPDATE_SNAPSHOTS) == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                            "snapshots/definitions.json", "the code location now"))
        pytest.fail(f"The Dagster definitions differ from {SNAPSHOT.name}:\n{diff}\n"
                    f"If the change is intended, regenerate the snapshot and commit it with the change:\n"
                    f"  {UPDATE_SNAPSHOTS}=1 .venv/bin/pytest qb_pipelines_tests/test_definitions.py -k snapshot",
                    pytrace=False)


def test_definitions_load_and_validate(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    # every job (the implicit asset job too) resolves with its resources bound, or resolving raises;
    # the implicit one can materialize every asset, so none is out of reach of the UI and backfills
    implicit = defs.resolve_implicit_global_asset_job_def()
    assert implicit.asset_layer.executable_asset_keys == repo.asset_graph.get_all_asset_keys()
    jobs = defs.resolve_all_job_defs()
    # the house's names (GUIDE 3): jobs *_job, schedules *_schedule, sensors *_sensor
    assert [j.name for j in jobs if not j.name.startswith("__") and not j.name.endswith("_job")] == []
    assert [s.name for s in repo.schedule_defs if not s.name.endswith("_schedule")] == []
    assert [s.name for s in repo.sensor_defs if not s.name.endswith("_sensor")] == []


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


def test_qbo_company_partitions_are_the_companies_added_to_the_instance() -> None:
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


def test_every_registry_entity_and_report_is_an_asset_with_its_checks(defs: dg.Definitions) -> None:
    from qb_pipelines.defs.assets import QBO_POOL, entity_asset_key
    from qb_pipelines.defs.reports import report_asset_key
    from qb_pipelines.sync.reports import REPORTS

    graph = defs.get_repository_def().asset_graph
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
        # a report that disagrees with the landed books is not published: its checks block
        specs = [graph.get_check_spec(k) for k in graph.get_check_keys_for_assets({node.key})]
        assert all(spec.blocking for spec in specs)
    ingest = defs.get_assets_def(entity_asset_key("Invoice"))
    assert ingest.can_subset and ingest.op.pool == QBO_POOL
    assert ingest.op.retry_policy is not None and ingest.op.retry_policy.jitter is not None
    webhook_sensor = defs.get_repository_def().get_sensor_def("qbo_webhook_sensor")
    assert webhook_sensor.minimum_interval_seconds <= 5  # webhooks land within seconds
