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
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, qbo_company_month_partitions, report_partition_key
from qb_pipelines.defs.reports import REPORT_ASSETS
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.run_coordinator import (
    COMPANY_TAG,
    PUSH_COMPANY_TAG,
    PUSH_JOB_NAME,
    CompanyRunCoordinator,
    company_tags,
)
from qb_pipelines.defs.schedules import qbo_poll_schedule
from qb_pipelines.demo.instance import write_demo_instance
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.companies import company_key
from qb_pipelines_tests.harness import complete_setup_wizard

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
            for alias, company in (("materialize", busy), ("report", reporting)):
                assert answer[alias]["__typename"] == "LaunchRunSuccess", answer[alias]
                run = answer[alias]["run"]
                assert run["status"] == "QUEUED"
                assert {t["key"]: t["value"] for t in run["tags"]}[COMPANY_TAG] == company
                runs[company] = run["runId"]

            # the stored runs carry the tag the queue limits on, and the poll schedule leaves them alone
            for company, run_id in runs.items():
                stored = instance.get_runs(filters=dg.RunsFilter(tags={COMPANY_TAG: company}))
                assert [r.run_id for r in stored] == [run_id]
            assert poll() == {idle}
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
    assert company_tags(_run("qbo_reports_job", month)) == {COMPANY_TAG: key}
    assert company_tags(_run("__ASSET_JOB", month, reports)) == {COMPANY_TAG: key}
    # a single-run backfill of one company's months names that company; one across companies, none
    one = {"dagster/asset_partition_range_start": str(report_partition_key(key, "2024-01")),
           "dagster/asset_partition_range_end": str(report_partition_key(key, "2026-12"))}
    assert company_tags(_run("qbo_reports_job", one)) == {COMPANY_TAG: key}
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


def test_both_instance_configurations_limit_one_run_per_company_and_one_push_per_company(tmp_path: Path) -> None:
    home = write_demo_instance(tmp_path / "demo")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    for tag in (COMPANY_TAG, PUSH_COMPANY_TAG):
        assert {"key": tag, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    deployment = (REPO / "dagster.yaml").read_text()
    assert "module: qb_pipelines.defs.run_coordinator\n  class: CompanyRunCoordinator" in deployment
    assert "key: qbo/company-push" in deployment
