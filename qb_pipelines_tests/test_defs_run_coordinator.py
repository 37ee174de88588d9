"""Runs launched from the UI carry their company's tag, so per-company limits and schedules see them.

Issue 10 §3: a landing launched from the Dagster UI had no ``qbo/company`` tag, so the poll
schedule started a second landing of the same company. Here runs are launched exactly as the UI
launches them, through Dagster's GraphQL ``launchRun`` mutation (run by the ``dagster-graphql``
command against the code location, no webserver needed), on the demo's real instance
configuration (``write_demo_instance``: the project's run coordinator and per-company limits).
The edge cases of deriving a company from a run (reports, ranges, pushes, other teams' jobs) are
checked on :func:`company_tags` directly.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from qb_pipelines.defs.assets import entity_asset_key
from qb_pipelines.defs.partitions import (
    QBO_COMPANY_PARTITIONS_NAME,
    QBO_REPORT_MONTHS_NAME,
    qbo_company_month_partitions,
    report_partition_key,
)
from qb_pipelines.defs.reports import REPORT_ASSETS
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.run_coordinator import (
    BULK_TAG,
    COMPANY_TAG,
    PRIORITY_TAG,
    PUSH_COMPANY_TAG,
    PUSH_JOB_NAME,
    REPORTS_COMPANY_TAG,
    CompanyRunCoordinator,
    company_tags,
    priority_tags,
)
from qb_pipelines.defs.schedules import qbo_poll_schedule
from qb_pipelines.defs.sensors import qbo_webhook_sensor
from qb_pipelines.demo.instance import (
    DEMO_MAX_BULK_RUNS,
    DEMO_MAX_CONCURRENT_RUNS,
    PER_VALUE_LIMITS,
    write_demo_instance,
)
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.qbo.webhooks import WebhookEvent
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.webhook_inbox import delivery_sha
from qb_pipelines.sync.companies import company_key
from qb_pipelines_tests.harness import complete_setup_wizard
from qb_pipelines_tests.run_queue import RECORDING_LAUNCHER, dequeue_runs, finish_run, submit_run

REPO = Path(__file__).resolve().parents[1]
LOCATION = "qb_pipelines.definitions"
LAUNCH = """
  %s: launchRun(executionParams: {
      selector: {repositoryLocationName: "%s", repositoryName: "__repository__", jobName: "%s"%s},
      executionMetadata: {tags: [%s]}}) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }"""


def _launch(alias: str, job: str, tags: dict[str, str], assets: list[dg.AssetKey] | None = None) -> str:
    selection = ""
    if assets:
        selection = ", assetSelection: [" + ", ".join(json.dumps({"path": k.path}).replace('"path"', "path")
                                                      for k in assets) + "]"
    tag_list = ", ".join(f'{{key: "{k}", value: "{v}"}}' for k, v in tags.items())
    return LAUNCH % (alias, LOCATION, job, selection, tag_list)


def _connect(qbo: QBOConnectionResource, instance: dg.DagsterInstance) -> str:
    runtime = qbo.runtime()
    tenant, realm = f"t{secrets.token_hex(3)}", str(9130000000 + secrets.randbelow(10**6))
    runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
    now = datetime.now(UTC)
    tokens = TokenSet("access", "refresh", now + timedelta(hours=1), now + timedelta(days=100), realm_id=realm)
    runtime.connections.save_tokens_on_connect(tenant, "emulator", realm, "Co", "a@example.com", "A", "B", tokens)
    complete_setup_wizard(runtime, tenant)
    key = company_key(tenant, realm)
    instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
    return key


def test_runs_launched_from_the_ui_get_their_company_tag_and_the_poll_schedule_sees_them(tmp_path: Path) -> None:
    home = write_demo_instance(tmp_path / "dagster_home", dequeue_interval_s=1)
    env = {**os.environ, "DAGSTER_HOME": str(home), "QB_DATABASE_URL": f"sqlite:///{tmp_path / 'qb.sqlite'}",
           "QB_FERNET_KEY": generate_key(), "QBO_CLIENT_ID": "emulator-client-id",
           "QBO_CLIENT_SECRET": "emulator-client-secret", "QBO_ENVIRONMENT": "emulator",
           "QBO_EMULATOR_URL": "http://127.0.0.1:1"}
    qbo = QBOConnectionResource(database_url=env["QB_DATABASE_URL"], fernet_key=env["QB_FERNET_KEY"],
                                client_id=env["QBO_CLIENT_ID"], client_secret=env["QBO_CLIENT_SECRET"],
                                environment="emulator", emulator_url=env["QBO_EMULATOR_URL"])
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_coordinator, CompanyRunCoordinator)
            busy, reporting, idle = (_connect(qbo, instance) for _ in range(3))
            instance.add_dynamic_partitions(QBO_REPORT_MONTHS_NAME, ["2026-03"])

            def poll() -> set[str]:
                ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC),
                                                resources={"qbo": qbo})
                return {r.partition_key for r in qbo_poll_schedule(ctx) if isinstance(r, dg.RunRequest)}

            assert poll() == {busy, reporting, idle}

            # "Materialize" on a company partition in the asset graph, and a report month from the
            # reports job's launchpad: the UI tags them with their partition only
            month = qbo_company_month_partitions.get_tags_for_partition_key(report_partition_key(reporting, "2026-03"))
            document = "mutation {" + _launch("materialize", "__ASSET_JOB", {"dagster/partition": busy},
                                              [entity_asset_key(e.name) for e in registry.ENTITIES]) \
                + _launch("report", "qbo_reports_job", month) + "}"
            out = subprocess.run([str(Path(sys.executable).with_name("dagster-graphql")), "-m", LOCATION, "-t", document],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
            answer = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))["data"]
            runs = {}
            for alias, company, tag in (("materialize", busy, COMPANY_TAG), ("report", reporting, REPORTS_COMPANY_TAG)):
                assert answer[alias]["__typename"] == "LaunchRunSuccess", answer[alias]
                run = answer[alias]["run"]
                assert run["status"] == "QUEUED"
                assert {t["key"]: t["value"] for t in run["tags"]}[tag] == company
                runs[company] = (tag, run["runId"])

            # the stored runs carry the tag the queue limits on; the poll schedule leaves the landing
            # company alone, and polls the reporting one (reports land nothing: no collision)
            for company, (tag, run_id) in runs.items():
                stored = instance.get_runs(filters=dg.RunsFilter(tags={tag: company}))
                assert [r.run_id for r in stored] == [run_id]
            assert poll() == {reporting, idle}
    finally:
        qbo.runtime().close()


def _run(job: str, tags: dict[str, str], assets: set[dg.AssetKey] | None = None) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=job, tags=tags, asset_selection=frozenset(assets) if assets else None)


def test_company_tags_for_reports_ranges_pushes_tagged_and_foreign_runs() -> None:
    key = "acme-co-9130351000"
    raw = {entity_asset_key("Invoice")}
    reports = {spec_key for asset in REPORT_ASSETS for spec_key in asset.keys}
    month = qbo_company_month_partitions.get_tags_for_partition_key(report_partition_key(key, "2026-03"))

    assert company_tags(_run("__ASSET_JOB", {"dagster/partition": key}, raw)) == {COMPANY_TAG: key}
    assert company_tags(_run("qbo_reports_job", month)) == {REPORTS_COMPANY_TAG: key}
    assert company_tags(_run("__ASSET_JOB", month, reports)) == {REPORTS_COMPANY_TAG: key}
    # a single-run backfill of one company's months names that company; one across companies, none
    one = {"dagster/asset_partition_range_start": str(report_partition_key(key, "2024-01")),
           "dagster/asset_partition_range_end": str(report_partition_key(key, "2026-12"))}
    assert company_tags(_run("qbo_reports_job", one)) == {REPORTS_COMPANY_TAG: key}
    across = {"dagster/asset_partition_range_start": "a-1", "dagster/asset_partition_range_end": "b-2"}
    assert company_tags(_run("qbo_incremental_job", across)) == {}
    # a run a sensor or schedule tagged is left as it is
    assert company_tags(_run("qbo_incremental_job", {"dagster/partition": key, COMPANY_TAG: key})) == {}
    # a push run gets the push tag: it must never queue behind a landing of its company
    assert company_tags(_run(PUSH_JOB_NAME, {"dagster/partition": key})) == {PUSH_COMPANY_TAG: key}
    # unpartitioned runs, and other teams' runs in the same instance ("2026-03" is no company)
    assert company_tags(_run("qbo_token_refresh_job", {})) == {}
    assert company_tags(_run("payroll_job", {"dagster/partition": "2026-03"})) == {}
    assert company_tags(_run("__ASSET_JOB", {"dagster/partition": "2026-03"}, {dg.AssetKey(["payroll"])})) == {}


def test_a_webhook_run_is_dequeued_before_a_queue_full_of_bulk_runs(tmp_path: Path) -> None:
    """Issue 10 §7: during "Materialize all", a webhook's run waited 527 s behind 38 bulk runs.

    The demo's instance exactly as written (run coordinator, priorities, caps for a 2-core
    machine), with a launcher that records what the queue launches instead of starting
    processes; Dagster's own queue daemon decides. Shown structurally: what is launched first.
    """
    home = write_demo_instance(tmp_path / "dagster_home")
    with (home / "dagster.yaml").open("a") as config:
        config.write(RECORDING_LAUNCHER)
    env = {"QB_DATABASE_URL": f"sqlite:///{tmp_path / 'qb.sqlite'}", "QB_FERNET_KEY": generate_key()}
    qbo = QBOConnectionResource(database_url=env["QB_DATABASE_URL"], fernet_key=env["QB_FERNET_KEY"],
                                client_id="emulator-client-id", client_secret="emulator-client-secret",
                                environment="emulator", emulator_url="http://127.0.0.1:1")
    raw = {entity_asset_key(e.name) for e in registry.ENTITIES}
    reports = {key for asset in REPORT_ASSETS for key in asset.keys}
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            companies = [_connect(qbo, instance) for _ in range(4)]
            # "Materialize all" queued first: per company one run of its reports (a single-run
            # backfill of its months) and one landing run, as the backfill daemon submits them
            bulk = []
            for company in companies:
                bulk.append(submit_run(instance, "__ASSET_JOB", {
                    "dagster/backfill": "materializeall",
                    "dagster/asset_partition_range_start": str(report_partition_key(company, "2024-01")),
                    "dagster/asset_partition_range_end": str(report_partition_key(company, "2026-12"))}, reports))
            for company in companies:
                bulk.append(submit_run(instance, "__ASSET_JOB", {"dagster/backfill": "materializeall",
                                                              "dagster/partition": company}, raw))
            for run in bulk:
                assert run.status == dg.DagsterRunStatus.QUEUED
                assert run.tags[PRIORITY_TAG] == "-10" and run.tags[BULK_TAG] == "true"

            # then a change in QuickBooks: its webhook, stored by the intake, becomes a run request
            first = companies[0]
            realm = first.rsplit("-", 1)[1]
            event = WebhookEvent(realm, "Invoice", "130", "Update", datetime.now(UTC).isoformat(), event_id="ev-1")
            qbo.runtime().inbox.add_events([event], delivery_sha=delivery_sha(b"delivery-1"))
            with dg.build_sensor_context(instance=instance, resources={"qbo": qbo}) as ctx:
                sensed = qbo_webhook_sensor(ctx)
            (request,) = sensed.run_requests
            webhook = submit_run(instance, "qbo_incremental_job", dict(request.tags), set(request.asset_selection))
            assert webhook.tags[PRIORITY_TAG] == "10"

            # the queue launches the webhook's run first, then one bulk run only (the demo's cap of
            # bulk runs), so run slots stay free for the next webhook
            launched = dequeue_runs(instance)
            assert launched[0] == webhook.run_id
            assert launched[1:] == [bulk[0].run_id]  # first in, first out among bulk runs
            assert DEMO_MAX_BULK_RUNS == 1 < DEMO_MAX_CONCURRENT_RUNS

            # the webhook's run lands the change and ends; a second change of the company whose
            # reports are still running: a report run holds no landing slot, so this webhook's run
            # is launched at once too, past the bulk runs waiting
            finish_run(instance, webhook)
            event = WebhookEvent(realm, "Customer", "7", "Update", datetime.now(UTC).isoformat(), event_id="ev-2")
            qbo.runtime().inbox.add_events([event], delivery_sha=delivery_sha(b"delivery-2"))
            with dg.build_sensor_context(instance=instance, cursor=sensed.cursor, resources={"qbo": qbo}) as ctx:
                (request,) = qbo_webhook_sensor(ctx).run_requests
            second = submit_run(instance, "qbo_incremental_job", dict(request.tags), set(request.asset_selection))
            assert dequeue_runs(instance) == [second.run_id]
            waiting = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
            assert {r.run_id for r in waiting} == {r.run_id for r in bulk[1:]}
    finally:
        qbo.runtime().close()


def test_priority_tags_by_kind_of_run() -> None:
    key = "acme-co-9130351000"
    raw = {entity_asset_key("Invoice")}
    reports = {spec_key for asset in REPORT_ASSETS for spec_key in asset.keys}
    urgent, bulk = {PRIORITY_TAG: "10"}, {PRIORITY_TAG: "-10", BULK_TAG: "true"}
    assert priority_tags(_run("qbo_incremental_job", {"qbo/trigger": "webhook"}, raw)) == urgent
    assert priority_tags(_run(PUSH_JOB_NAME, {"dagster/partition": key})) == urgent
    assert priority_tags(_run("qbo_reports_job", {"qbo/trigger": "touched_month"})) == bulk
    assert priority_tags(_run("__ASSET_JOB", {"dagster/backfill": "b1", "dagster/partition": key}, raw)) == bulk
    assert priority_tags(_run("__ASSET_JOB", {"dagster/partition": key}, reports)) == bulk
    # polling, the backstop and a person's Materialize keep Dagster's default priority
    assert priority_tags(_run("qbo_incremental_job", {"qbo/trigger": "poll"})) == {}
    assert priority_tags(_run("__ASSET_JOB", {"dagster/partition": key}, raw)) == {}
    # a priority someone chose is kept; other teams' runs are left alone
    assert priority_tags(_run("qbo_reports_job", {PRIORITY_TAG: "5"})) == {BULK_TAG: "true"}
    assert priority_tags(_run("payroll_job", {"dagster/backfill": "b2"})) == {}


def test_both_instance_configurations_limit_one_run_per_company_and_one_push_per_company(tmp_path: Path) -> None:
    home = write_demo_instance(tmp_path / "demo")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        runs = instance.get_concurrency_config().run_queue_config
    for tag in (COMPANY_TAG, PUSH_COMPANY_TAG, REPORTS_COMPANY_TAG):
        assert {"key": tag, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert {"key": BULK_TAG, "limit": DEMO_MAX_BULK_RUNS} in limits
    assert runs.max_concurrent_runs == DEMO_MAX_CONCURRENT_RUNS == 4  # a 2-core machine
    deployment = (REPO / "dagster.yaml").read_text()
    assert "module: qb_pipelines.defs.run_coordinator\n  class: CompanyRunCoordinator" in deployment
    # the deployment limits the same tags (its numbers are for a bigger machine)
    for tag in (*PER_VALUE_LIMITS, BULK_TAG):
        assert f"key: {tag}\n" in deployment, tag
