"""Entity check results name their company, and runs that do not check leave the last result standing.

Issue 10 §8: the check results did not say which company they were about (the partition column
showed "—"), and after every poll or webhook run the entity checks showed "Not evaluated". Here,
on a real emulator, store and Dagster instance: the daily backstop checks a company, then a poll
run (the schedule's request) and a webhook run (the sensor's request: only the entities the event
names) land it again; each entity check's latest evaluation in the instance is still the
backstop's real pass or fail, recorded against the company's partition and naming the company.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from qb_pipelines.defs.checks import ENTITY_CHECK_SPECS
from qb_pipelines.defs.jobs import qbo_daily_backstop_job, qbo_incremental_job
from qb_pipelines.defs.schedules import qbo_poll_schedule
from qb_pipelines.defs.sensors import qbo_webhook_sensor
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.webhooks import WebhookEvent
from qb_pipelines.store.webhook_inbox import delivery_sha
from qb_pipelines_tests.harness import DagsterStack, dagster_stack, emulator_settings


@pytest.fixture
def stack(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[DagsterStack]:
    settings = emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", shared_emulator)
    with dagster_stack(settings, shared_emulator, for_schedules=True) as stack:
        yield stack


def _execute(stack: DagsterStack, job: Any, request: dg.RunRequest) -> None:
    """Run ``job`` as the daemon would run ``request`` (its partition, selection and tags), in process."""
    resolved = dg.Definitions(assets=[*_assets()], jobs=[job], resources=stack.resources).resolve_job_def(job.name)
    if request.asset_selection is not None:  # the daemon's subset: these assets, these checks (none)
        resolved = resolved.get_subset(asset_selection=set(request.asset_selection),
                                       asset_check_selection=set(request.asset_check_keys or ()))
    result = resolved.execute_in_process(partition_key=request.partition_key, instance=stack.instance,
                                         tags=request.tags)
    assert result.success


def _assets() -> list:
    from qb_pipelines.defs.assets import qbo_raw_entities
    from qb_pipelines.defs.checks import qbo_entity_checks

    return [qbo_raw_entities, qbo_entity_checks]


def test_entity_checks_name_their_company_and_survive_poll_and_webhook_runs(stack: DagsterStack) -> None:
    co = stack.connect(name="Checked Co", invoices=8)
    other = stack.connect(name="Other Co", invoices=3)
    keys = [spec.key for spec in ENTITY_CHECK_SPECS]

    # the daily backstop: land, then every entity check, for one company
    backstop = dg.Definitions(assets=_assets(), jobs=[qbo_daily_backstop_job],
                              resources=stack.resources).resolve_job_def(qbo_daily_backstop_job.name)
    checked = backstop.execute_in_process(partition_key=co.key, instance=stack.instance,
                                          tags={"qbo/company": co.key, "qbo/trigger": "backstop"})
    assert checked.success
    evaluations = checked.get_asset_check_evaluations()
    assert {e.asset_check_key for e in evaluations} == set(keys)
    for evaluation in evaluations:
        assert evaluation.partition == co.key
        assert evaluation.metadata["company"].value == co.key
        assert evaluation.description and evaluation.description.startswith(co.key)

    # a change in QuickBooks, then a poll run (as the schedule asks) and a webhook run (as the sensor asks)
    invoice = co.export("Invoice", include_deleted=False)[0]
    co.act("Invoice", "update", {"Id": invoice["Id"], "sparse": True, "PrivateNote": "changed after the check"})
    when = datetime.now(UTC)
    with dg.build_schedule_context(instance=stack.instance, scheduled_execution_time=when,
                                   resources={"qbo": stack.qbo}) as ctx:
        polls = [r for r in qbo_poll_schedule(ctx) if isinstance(r, dg.RunRequest)]
    assert {r.partition_key for r in polls} == {co.key, other.key}
    for request in polls:
        _execute(stack, qbo_incremental_job, request)

    event = WebhookEvent(co.realm, "Invoice", invoice["Id"], "Update", (when + timedelta(seconds=1)).isoformat(),
                         event_id="evt-checks-1")
    stack.runtime.inbox.add_events([event], delivery_sha=delivery_sha(b"checks-1"))
    with dg.build_sensor_context(instance=stack.instance, resources={"qbo": stack.qbo}) as ctx:
        sensed = qbo_webhook_sensor(ctx)
    assert isinstance(sensed, dg.SensorResult)
    (webhook,) = sensed.run_requests or []
    assert webhook.asset_check_keys == []
    _execute(stack, qbo_incremental_job, webhook)

    # no run after the backstop planned, skipped or evaluated a check: each check's latest
    # evaluation is the backstop's real result, against the company's partition, naming it
    storage = stack.instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(keys)
    assert set(latest) == set(keys)
    for key in keys:
        record = latest[key]
        assert record.run_id == checked.run_id, key
        assert record.status.value in ("SUCCEEDED", "FAILED"), (key, record.status)
        assert record.partition == co.key
        evaluation = record.evaluation
        assert evaluation is not None and evaluation.metadata["company"].value == co.key
    history = storage.get_asset_check_execution_history(keys[0], limit=10)
    assert [r.run_id for r in history] == [checked.run_id]
