"""The fast paths: an enqueue (a stored webhook) asks a real dagster-webserver for the push (landing) run.

A real ``dagster-webserver`` (the project's workspace, a Dagster instance in a temporary folder
whose queued run coordinator holds the runs: no daemon, so the launched run stays queued and can
be inspected), the web app served by uvicorn with ``dagster_graphql_url`` set, the emulator as
QuickBooks. What is checked: the run is ``qbo_push_job`` for the company's partition with the
sensor's tags; a second enqueue while that run is queued asks for no second run; a Dagster that
cannot be reached never fails the enqueue. A signed webhook delivery asks for the company's
incremental landing of the entities it names, tagged so the webhook sensor skips those events.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from qb_pipelines.defs import push as push_defs
from qb_pipelines.defs import run_coordinator, sensors
from qb_pipelines.defs.assets import entity_asset_key
from qb_pipelines.defs.jobs import qbo_incremental_job
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.demo.instance import open_instance, write_demo_instance
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.devtools.processes import child_env
from qb_pipelines.devtools.services import run_dagster_webserver_process
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.webhooks import sign
from qb_pipelines.web import dagster_launch
from qb_pipelines_tests.harness import connect_company
from qb_pipelines_tests.web_fixtures import start_web


def _post(url: str, tenant: str, key: str, app_id: str) -> requests.Response:
    body = {"entity": "Customer", "app_id": app_id, "version": 1, "op": "upsert",
            "data": {"display_name": f"Fast Path {app_id}"}}
    return requests.post(f"{url}/api/v1/tenants/{tenant}/records", json=body, timeout=30,
                         headers={"Authorization": f"Bearer {key}"})


VERIFIER = "launch-test-verifier"


def _webhook(url: str, realm: str, *entities: tuple[str, str]) -> requests.Response:
    body = json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": name, "id": ident, "operation": "Update", "lastUpdated": datetime.now(UTC).isoformat()}
        for name, ident in entities]}}]}).encode()
    return requests.post(f"{url}/webhooks/quickbooks", data=body, timeout=30,
                         headers={"intuit-signature": sign(body, VERIFIER), "content-type": "application/json"})


def test_the_web_app_names_the_jobs_tags_and_assets_as_the_definitions_do() -> None:
    assert dagster_launch.PUSH_JOB_NAME == push_defs.PUSH_JOB_NAME
    assert dagster_launch.PUSH_TAG == push_defs.PUSH_TAG
    assert qbo_incremental_job.name == dagster_launch.LANDING_JOB_NAME
    assert dagster_launch.COMPANY_TAG == run_coordinator.COMPANY_TAG
    assert (dagster_launch.PRIORITY_TAG, dagster_launch.URGENT_PRIORITY) == (run_coordinator.PRIORITY_TAG,
                                                                             run_coordinator.URGENT_PRIORITY)
    assert dagster_launch.THROUGH_TAG == sensors.THROUGH_TAG
    for entity in ("Customer", "JournalEntry", "Invoice"):
        assert dagster_launch.entity_asset_path(entity) == list(entity_asset_key(entity).path)


@pytest.mark.slow
def test_an_enqueue_launches_the_company_push_run_through_dagster_graphql(
        shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    import dagster as dg

    home = write_demo_instance(tmp_path / "dagster_home")
    port = free_port()
    stack = start_web(shared_emulator, tmp_path, dagster_graphql_url=f"http://127.0.0.1:{port}/graphql",
                      webhook_verifier_token=VERIFIER)
    # the webserver checks the run's resources when it launches: they read the store's settings
    settings = stack.settings
    env = child_env({"DAGSTER_HOME": str(home), "QB_DATABASE_URL": str(settings.database_url),
                     "QB_FERNET_KEY": settings.fernet_key, "QBO_CLIENT_ID": settings.client_id,
                     "QBO_CLIENT_SECRET": settings.client_secret, "QBO_ENVIRONMENT": "emulator",
                     "QBO_EMULATOR_URL": str(settings.emulator_url)})
    try:
        with run_dagster_webserver_process(port, env, tmp_path, tmp_path / "webserver.log"):
            company = connect_company(shared_emulator, stack.runtime)
            key = stack.runtime.api_keys.create(company.tenant, "test").key
            company_key = stack.runtime.resolve(company.tenant).key
            with open_instance(home) as instance:
                instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [company_key])
                assert _post(stack.url, company.tenant, key, "c-1").status_code == 202
                runs: list = []
                deadline = time.monotonic() + 60
                while not runs and time.monotonic() < deadline:
                    runs = instance.get_runs(filters=dg.RunsFilter(tags={push_defs.PUSH_TAG: company_key}))
                    time.sleep(0.2)
                assert len(runs) == 1, "the enqueue asked Dagster for one push run"
                run = runs[0]
                assert run.job_name == push_defs.PUSH_JOB_NAME
                assert run.tags["dagster/partition"] == company_key
                assert run.tags["qbo/trigger"] == "api"
                # no daemon here: it waits in the queue
                assert run.status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED)

                # while that run is queued, more records ask for no second run: it will take them
                assert _post(stack.url, company.tenant, key, "c-2").status_code == 202
                time.sleep(3)
                assert len(instance.get_runs(filters=dg.RunsFilter(tags={push_defs.PUSH_TAG: company_key}))) == 1

                # a push of the company that follows its outbox sends those rows and cancels the
                # queued run, which would only find nothing
                qbo = QBOConnectionResource(database_url=str(settings.database_url), fernet_key=settings.fernet_key,
                                            client_id=settings.client_id, client_secret=settings.client_secret,
                                            environment="emulator", emulator_url=str(settings.emulator_url))
                job = dg.Definitions(assets=[push_defs.qbo_outbox], asset_checks=[push_defs.qbo_outbox_checks],
                                     jobs=[push_defs.qbo_push_job], resources={"qbo": qbo}
                                     ).resolve_job_def(push_defs.PUSH_JOB_NAME)
                follow = {"ops": {"qbo__outbox": {"ops": {"follow_outbox": {"config": {"follow_s": 0.5}}}}}}
                pushed = job.execute_in_process(partition_key=company_key, instance=instance, run_config=follow)
                assert pushed.success
                assert stack.runtime.outbox.record(company.tenant, "Customer", "c-2").status == "synced"
                assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED

                # a webhook delivery for the company's realm asks for its landing of what it names
                realm = stack.runtime.resolve(company.tenant).realm_id
                answer = _webhook(stack.url, realm, ("Customer", "1"), ("Invoice", "7"), ("Customer", "2"))
                assert answer.status_code == 200 and answer.json()["stored"] == 3
                landing = dg.RunsFilter(tags={run_coordinator.COMPANY_TAG: company_key, "qbo/trigger": "webhook"})
                landings: list = []
                deadline = time.monotonic() + 60
                while not landings and time.monotonic() < deadline:
                    landings = instance.get_runs(filters=landing)
                    time.sleep(0.2)
                assert len(landings) == 1, "the delivery asked Dagster for one landing run"
                run = landings[0]
                assert run.job_name == qbo_incremental_job.name and run.tags["dagster/partition"] == company_key
                assert run.asset_selection == {entity_asset_key("Customer"), entity_asset_key("Invoice")}
                assert run.tags["qbo/entities"] == "Customer,Invoice"
                assert run.tags[dagster_launch.THROUGH_TAG] == str(stack.runtime.inbox.latest_seq())
                # while it waits in the queue, more changes of those entities ask for no second run
                assert _webhook(stack.url, realm, ("Invoice", "8")).json()["stored"] == 1
                time.sleep(3)
                assert len(instance.get_runs(filters=landing)) == 1
    finally:
        stack.stop()


def test_an_unreachable_dagster_never_fails_the_enqueue(shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    stack = start_web(shared_emulator, tmp_path, dagster_graphql_url=f"http://127.0.0.1:{free_port()}/graphql")
    try:
        company = connect_company(shared_emulator, stack.runtime)
        key = stack.runtime.api_keys.create(company.tenant, "test").key
        answer = _post(stack.url, company.tenant, key, "c-1")
        assert answer.status_code == 202, answer.text
        assert stack.runtime.outbox.record(company.tenant, "Customer", "c-1") is not None
    finally:
        stack.stop()
