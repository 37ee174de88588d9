"""Sensors and schedules evaluated on a real temporary Dagster instance and a real store.

No emulator is needed: connections are saved in the store with tokens the sensors never use,
and webhook events are stored in the real inbox as the web app's intake stores them.
"""

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from qb_pipelines.defs.assets import COMPANY_TAG, entity_asset_key
from qb_pipelines.defs.partitions import (
    QBO_COMPANY_PARTITIONS_NAME,
    QBO_REPORT_MONTHS_NAME,
    current_month,
    month_range,
    months_to_add,
    report_partition_key,
)
from qb_pipelines.defs.reports import report_asset_key
from qb_pipelines.defs.run_coordinator import (
    BULK_PRIORITY,
    BULK_TAG,
    PRIORITY_TAG,
    REPORTS_COMPANY_TAG,
    URGENT_PRIORITY,
)
from qb_pipelines.defs.schedules import qbo_poll_schedule, qbo_token_refresh_schedule, qbo_weekly_full_refresh_schedule
from qb_pipelines.defs.sensors import (
    THROUGH_TAG,
    qbo_company_partitions_sensor,
    qbo_report_refresh_sensor,
    qbo_webhook_sensor,
)
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.qbo.webhooks import WebhookEvent
from qb_pipelines.store.webhook_inbox import delivery_sha
from qb_pipelines.sync.companies import company_key
from qb_pipelines_tests.harness import DagsterStack, complete_setup_wizard, dagster_stack, emulator_settings

NO_EMULATOR = "http://127.0.0.1:1"  # nothing listens there: a sensor that called QuickBooks would fail


class World:
    """A Dagster stack (the resources, the runtime the sensors use, an instance) with offline tenants."""

    def __init__(self, stack: DagsterStack) -> None:
        self.qbo, self.runtime, self.instance = stack.qbo, stack.runtime, stack.instance
        self.store, self.inbox = self.runtime.connections, self.runtime.inbox

    def connect(self, realm: str | None = None, *, configure: bool = True) -> tuple[str, str]:
        """A tenant connected with tokens nobody uses (the sensors never call QuickBooks)."""
        tenant, realm = f"t{secrets.token_hex(3)}", realm or str(9130000000 + secrets.randbelow(10**6))
        self.runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
        now = datetime.now(UTC)
        tokens = TokenSet("access", "refresh", now + timedelta(hours=1), now + timedelta(days=100), realm_id=realm)
        self.store.save_tokens_on_connect(tenant, "emulator", realm, "Co", "demo@example.com", "D", "U", tokens)
        if configure:
            complete_setup_wizard(self.runtime, tenant)
        return tenant, realm

    def sensor(self, sensor: dg.SensorDefinition, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(instance=self.instance, cursor=cursor, resources={"qbo": self.qbo}) as ctx:
            return sensor(ctx)

    def schedule(self, schedule: dg.ScheduleDefinition, when: datetime) -> list[Any]:
        """What ``schedule`` asks for at ``when`` (its context closed afterwards, with its instance)."""
        with dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when,
                                       resources={"qbo": self.qbo}) as ctx:
            result = schedule(ctx)
            return [result] if isinstance(result, dg.RunRequest | dg.SkipReason) else list(result)

    def event(self, realm: str, entity: str, entity_id: str, event_id: str | None = None) -> None:
        event = WebhookEvent(realm, entity, entity_id, "Update", datetime.now(UTC).isoformat(),
                             event_id=event_id or secrets.token_hex(8))
        self.inbox.add_events([event], delivery_sha=delivery_sha(secrets.token_bytes(8)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", NO_EMULATOR)
    with dagster_stack(settings, for_schedules=True) as stack:  # an instance ref, as schedule contexts need
        yield World(stack)


def _partitions(world: World) -> set[str]:
    return set(world.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))


def _apply(world: World, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests or []:
        world.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_partition_sensor_adds_connected_companies_and_never_removes(world: World) -> None:
    (t1, r1), (t2, r2) = world.connect(), world.connect()
    world.runtime.tenants.ensure_tenant("never", "Never Connected")
    result = world.sensor(qbo_company_partitions_sensor)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.dynamic_partitions_requests
    assert request.partitions_def_name == QBO_COMPANY_PARTITIONS_NAME
    assert set(request.partition_keys) == {company_key(t1, r1), company_key(t2, r2)}
    _apply(world, result)
    assert isinstance(world.sensor(qbo_company_partitions_sensor), dg.SkipReason)

    world.store.disconnect(t1)  # a disconnected company keeps its partition and its history
    assert isinstance(world.sensor(qbo_company_partitions_sensor), dg.SkipReason)
    assert company_key(t1, r1) in _partitions(world)


def test_webhook_sensor_turns_inbox_events_into_one_targeted_run_per_company(world: World) -> None:
    (t1, r1), (t2, r2) = world.connect(), world.connect()
    k1, k2 = company_key(t1, r1), company_key(t2, r2)
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [k1])  # k2: not yet a partition
    world.event(r1, "Invoice", "12", event_id="ce-1")
    world.event(r1, "Customer", "3")
    world.event(r2, "Payment", "7")
    world.event("999", "Invoice", "1")  # a company nobody here is connected to: dropped

    result = world.sensor(qbo_webhook_sensor)
    assert isinstance(result, dg.SensorResult)
    runs = {r.partition_key: r for r in result.run_requests}
    assert set(runs) == {k1, k2}
    assert set(runs[k1].asset_selection) == {entity_asset_key("Invoice"), entity_asset_key("Customer")}
    assert runs[k2].asset_selection == [entity_asset_key("Payment")]
    assert runs[k1].tags[COMPANY_TAG] == k1 and runs[k1].tags["qbo/trigger"] == "webhook"
    assert runs[k1].tags[PRIORITY_TAG] == str(URGENT_PRIORITY)  # served before bulk work
    assert runs[k1].run_key and runs[k1].run_key != runs[k2].run_key
    assert result.cursor == str(world.inbox.latest_seq())
    # the company without a partition gets one in the same tick, so its run can launch
    (added,) = result.dynamic_partitions_requests
    assert list(added.partition_keys) == [k2]

    # the same tick evaluated again yields the same run keys: Dagster launches them once
    again = world.sensor(qbo_webhook_sensor)
    assert {r.run_key for r in again.run_requests} == {r.run_key for r in result.run_requests}

    # nothing new after the cursor; a duplicate delivery of an event already stored adds nothing
    world.event(r1, "Invoice", "12", event_id="ce-1")
    after = world.sensor(qbo_webhook_sensor, cursor=result.cursor)
    assert not after.run_requests and after.cursor == result.cursor

    world.event(r1, "Invoice", "13")
    later = world.sensor(qbo_webhook_sensor, cursor=result.cursor)
    (run,) = later.run_requests
    assert run.partition_key == k1 and run.asset_selection == [entity_asset_key("Invoice")]
    assert run.run_key not in {r.run_key for r in result.run_requests}
    assert int(later.cursor) > int(result.cursor)


def test_schedules_request_one_run_per_connected_company_with_its_tag(world: World) -> None:
    (t1, r1), (t2, r2), (t3, r3) = world.connect(), world.connect(), world.connect()
    t4, r4 = world.connect(configure=False)  # the Setup Wizard is not done: nothing may land yet
    keys = {company_key(t, r) for t, r in ((t1, r1), (t2, r2), (t3, r3), (t4, r4))}
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, sorted(keys))
    world.store.disconnect(t3)
    when = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)
    requests = [r for r in world.schedule(qbo_poll_schedule, when) if isinstance(r, dg.RunRequest)]
    assert {r.partition_key for r in requests} == {company_key(t1, r1), company_key(t2, r2)}
    assert all(r.tags[COMPANY_TAG] == r.partition_key for r in requests)
    assert len({r.run_key for r in requests}) == 2

    weekly = [r for r in world.schedule(qbo_weekly_full_refresh_schedule, when) if isinstance(r, dg.RunRequest)]
    assert {r.partition_key for r in weekly} == {company_key(t1, r1), company_key(t2, r2)}

    (token,) = world.schedule(qbo_token_refresh_schedule, when)
    assert isinstance(token, dg.RunRequest)

    world.store.disconnect(t1)
    world.store.disconnect(t2)
    (skip,) = world.schedule(qbo_poll_schedule, when + timedelta(minutes=5))
    assert isinstance(skip, dg.SkipReason)
    assert company_key(t4, r4) in str(skip.skip_message) and "complete the Setup Wizard" in str(skip.skip_message)


def test_report_sensor_requests_the_months_a_sync_touched(world: World) -> None:
    tenant, realm = world.connect()
    key = company_key(tenant, realm)
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
    world.instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=entity_asset_key("JournalEntry"), partition=key,
        metadata={"touched_months": dg.MetadataValue.json(["2026-03", "2026-10", "2026-13"])}))
    world.instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=entity_asset_key("Customer"), partition=key, metadata={"rows_inserted": 1}))

    result = world.sensor(qbo_report_refresh_sensor)
    keys = {str(r.partition_key) for r in result.run_requests}
    assert keys == {f"{key}|2026-03", f"{key}|2026-10"}  # "2026-13" is no month: ignored
    # the report months are added with them: from the first month with data to the current month
    (months,) = result.dynamic_partitions_requests
    assert months.partitions_def_name == QBO_REPORT_MONTHS_NAME
    assert list(months.partition_keys) == month_range("2026-03", max("2026-10", current_month()))
    _apply(world, result)
    # later ticks add only a new month (none while the month is the same)
    assert months_to_add(world.instance.get_dynamic_partitions(QBO_REPORT_MONTHS_NAME), [], current_month()) == []
    # reports have their own per-company limit (a landing never waits for them), and are bulk work
    assert all(r.tags[REPORTS_COMPANY_TAG] == key and COMPANY_TAG not in r.tags for r in result.run_requests)
    assert all(r.tags[PRIORITY_TAG] == str(BULK_PRIORITY) and r.tags[BULK_TAG] == "true" for r in result.run_requests)
    assert not world.sensor(qbo_report_refresh_sensor, cursor=result.cursor).run_requests


def test_report_months_cover_the_data_without_gaps() -> None:
    assert month_range("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_to_add([], [], "2026-12") == []  # nothing landed: no report month
    assert months_to_add([], ["2026-10", "2026-08"], "2026-12") == ["2026-08", "2026-09", "2026-10", "2026-11",
                                                                      "2026-12"]
    # an earlier transaction (a backdated bill) extends the months back; a new month extends them on
    assert months_to_add(["2026-08", "2026-09"], ["2026-06"], "2026-09") == ["2026-06", "2026-07"]
    assert months_to_add(["2026-08", "2026-09"], [], "2026-10") == ["2026-10"]
    # a transaction dated ahead of today gets its month
    assert months_to_add(["2026-09"], ["2026-11"], "2026-09") == ["2026-10", "2026-11"]
    assert months_to_add([], ["junk", "2026-00"], "2026-09") == []


def test_report_sensor_skips_months_whose_reports_were_landed_after_the_change(world: World) -> None:
    """A first load lands the books and then every month's reports: no second run for those months."""
    tenant, realm = world.connect()
    key = company_key(tenant, realm)
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
    world.instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=entity_asset_key("Invoice"), partition=key,
        metadata={"touched_months": dg.MetadataValue.json(["2026-03", "2026-10"])}))
    # March's reports were materialized after that landing; October's were not
    world.instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=report_asset_key("ProfitAndLoss"), partition=str(report_partition_key(key, "2026-03"))))

    result = world.sensor(qbo_report_refresh_sensor)
    assert {str(r.partition_key) for r in result.run_requests} == {f"{key}|2026-10"}


def _intake_run(world: World, company: str, entities: str, through: int,
                status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED) -> None:
    """A landing run as the web app's intake asks for it (qb_pipelines.web.dagster_launch.LandingLauncher)."""
    world.instance.add_run(dg.DagsterRun(
        job_name="qbo_incremental_job", run_id=str(uuid.uuid4()), status=status,
        tags={COMPANY_TAG: company, "dagster/partition": company, "qbo/trigger": "webhook", "qbo/entities": entities,
              THROUGH_TAG: str(through)}))


def test_webhook_sensor_skips_events_a_landing_asked_for_by_the_intake_covers(world: World) -> None:
    (t1, r1), (t2, r2) = world.connect(), world.connect()
    k1, k2 = company_key(t1, r1), company_key(t2, r2)
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [k1, k2])
    world.event(r1, "Invoice", "12")
    world.event(r1, "Customer", "3")
    world.event(r2, "Customer", "8")
    through = world.inbox.latest_seq()
    # the intake asked for k1's Customer landing after these events; a failed run covers nothing
    _intake_run(world, k1, "Customer", through)
    _intake_run(world, k2, "Customer", through, status=dg.DagsterRunStatus.FAILURE)
    world.event(r1, "Customer", "4")  # after the run was asked for: not covered

    result = world.sensor(qbo_webhook_sensor)
    runs = {r.partition_key: r for r in result.run_requests}
    assert set(runs[k1].asset_selection) == {entity_asset_key("Invoice"), entity_asset_key("Customer")}
    assert runs[k2].asset_selection == [entity_asset_key("Customer")]

    # both entities of k1 covered, k2 covered: no run at all, and the tick says why
    _intake_run(world, k1, "Customer,Invoice", world.inbox.latest_seq())
    _intake_run(world, k2, "Customer", world.inbox.latest_seq())
    skipped = world.sensor(qbo_webhook_sensor)
    assert not skipped.run_requests and skipped.cursor == str(world.inbox.latest_seq())
    assert "covered by landings asked for by the web app or waiting to start" in skipped.skip_reason.skip_message

    # a run asked for before the cursor covers nothing new
    world.event(r1, "Invoice", "13")
    later = world.sensor(qbo_webhook_sensor, cursor=skipped.cursor)
    (run,) = later.run_requests
    assert run.partition_key == k1 and run.asset_selection == [entity_asset_key("Invoice")]

    # a landing of k1's Invoices that has not started yet covers every stored Invoice event
    world.event(r1, "Invoice", "14")
    world.event(r1, "Customer", "5")
    world.instance.add_run(dg.DagsterRun(
        job_name="qbo_incremental_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.NOT_STARTED,
        asset_selection=frozenset({entity_asset_key("Invoice")}),
        tags={COMPANY_TAG: k1, "dagster/partition": k1, "qbo/trigger": "poll"}))
    waiting = world.sensor(qbo_webhook_sensor, cursor=later.cursor)
    (run,) = waiting.run_requests
    assert run.partition_key == k1 and run.asset_selection == [entity_asset_key("Customer")]
