"""The change feed's callbacks delivered by Dagster: ``qbo_feed_callback_sensor`` and ``qbo_feed_delivery_job``.

On a real temporary Dagster instance, with the real store and a real HTTP receiver standing in for
the app (``receiver.py``): the sensor asks for a run only when a callback is due (entries past its
cursor, its retry time come), one per tenant and never two at once; the job posts the entries
signed and in order and records what it did; an app that fails costs no failed run and is tried
again after its backoff; delivery has its own tag and no QuickBooks pool, so it never holds a
landing back; and end to end, a change made in QuickBooks (the emulator) reaches the app's
callback through a landing, the sensor and a run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from qb_pipelines.defs.assets import COMPANY_TAG, QBO_POOL
from qb_pipelines.defs.feed import (
    FEED_JOB_NAME,
    FEED_TAG,
    RETRY_WINDOW_S,
    deliver_feed,
    qbo_feed_callback_sensor,
    qbo_feed_delivery_job,
)
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import DagsterStack, dagster_stack, emulator_settings
from qb_pipelines_tests.receiver import Receiver

SECRET = "dagster-callback-secret-0123456789"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Feed:
    """A Dagster stack over one store, tenants acme and globex, and the app's receiver."""

    stack: DagsterStack
    receiver: Receiver

    @property
    def runtime(self) -> Runtime:
        return self.stack.runtime

    def append(self, n: int, tenant: str = "acme") -> None:
        start = self.runtime.feed.latest_seq(tenant)
        self.runtime.feed.append(tenant, "9130", [
            NewEntry("Customer", "upsert", str(100 + start + i), {"display_name": f"C {start + i}"},
                     app_id=f"c{start + i}", sync_token="0") for i in range(n)])

    def sensor(self) -> dg.SensorResult:
        with dg.build_sensor_context(instance=self.stack.instance, resources={"qbo": self.stack.qbo}) as ctx:
            result = qbo_feed_callback_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        return result

    def job(self) -> dg.JobDefinition:
        defs = dg.Definitions(jobs=[qbo_feed_delivery_job], sensors=[qbo_feed_callback_sensor],
                              resources={"qbo": self.stack.qbo})
        return defs.resolve_job_def(FEED_JOB_NAME)

    def run(self, request: dg.RunRequest, **kwargs: Any) -> dg.ExecuteInProcessResult:
        """Launch a requested run as the daemon would: its config and tags."""
        return self.job().execute_in_process(run_config=request.run_config, tags=request.tags,
                                             instance=self.stack.instance, **kwargs)


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    receiver = Receiver()
    try:
        with dagster_stack(emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", "http://127.0.0.1:9"),
                           for_schedules=True) as stack:
            for tenant in ("acme", "globex"):
                stack.runtime.tenants.ensure_tenant(tenant, tenant.title())
            yield Feed(stack, receiver)
    finally:
        receiver.stop()


def signed(body: bytes, header: str, secret: str = SECRET) -> bool:
    """What the README tells the app to check."""
    return hmac.compare_digest("sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), header)


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: getattr(v, "value", v) for k, v in event.event_specific_data.metadata.items()}


def off_window_edge() -> None:
    """Wait out the last seconds of a run-key window, so two evaluations share one."""
    while int(time.time()) % RETRY_WINDOW_S >= RETRY_WINDOW_S - 3:
        time.sleep(0.5)


def test_the_sensor_asks_for_one_delivery_per_due_tenant_and_never_two_at_once(feed: Feed) -> None:
    assert feed.sensor().skip_reason.skip_message == "no feed callback is due"
    feed.runtime.feed.set_callback("acme", f"{feed.receiver.url}/a", SECRET)
    feed.runtime.feed.set_callback("globex", f"{feed.receiver.url}/g", SECRET + "-g")
    assert not feed.sensor().run_requests  # callbacks, but nothing past their cursors

    feed.append(2)
    feed.append(1, "globex")
    off_window_edge()
    first = feed.sensor()
    requests = {r.tags[FEED_TAG]: r for r in first.run_requests}
    assert set(requests) == {"acme", "globex"}
    assert requests["acme"].run_config == {"ops": {"deliver_feed": {"config": {"tenant": "acme"}}}}
    assert requests["acme"].tags["qbo/trigger"] == "feed" and COMPANY_TAG not in requests["acme"].tags
    # evaluated again: the same keys, so Dagster launches each once
    assert {r.run_key for r in feed.sensor().run_requests} == {r.run_key for r in first.run_requests}

    # acme's run is requested, not started yet: no second one for acme, whatever else arrives
    feed.stack.instance.create_run_for_job(feed.job(), run_config=requests["acme"].run_config,
                                           tags=requests["acme"].tags, status=dg.DagsterRunStatus.NOT_STARTED)
    feed.append(1)
    busy = feed.sensor()
    assert [r.tags[FEED_TAG] for r in busy.run_requests] == ["globex"]

    # a landing of acme's company in progress does not hold its delivery back (another tag)
    for run in feed.stack.instance.get_runs(filters=dg.RunsFilter(tags={FEED_TAG: "acme"})):
        feed.stack.instance.report_run_canceled(run)
    feed.stack.instance.create_run_for_job(feed.job(), run_config=requests["acme"].run_config,
                                           tags={COMPANY_TAG: "acme-9130"}, status=dg.DagsterRunStatus.STARTED)
    later = {r.tags[FEED_TAG]: r for r in feed.sensor().run_requests}
    assert set(later) == {"acme", "globex"} and later["acme"].run_key != requests["acme"].run_key


def test_the_job_posts_the_entries_signed_and_in_order_and_says_what_it_did(feed: Feed) -> None:
    feed.runtime.feed.set_callback("acme", f"{feed.receiver.url}/hooks/qbo", SECRET)
    feed.append(5)
    (request,) = feed.sensor().run_requests
    request = request.with_replaced_attrs(run_config={"ops": {"deliver_feed": {"config": {"tenant": "acme",
                                                                                          "batch": 2}}}})
    result = feed.run(request)

    assert result.success and result.dagster_run.tags[FEED_TAG] == "acme"
    got = feed.receiver.received
    assert [r.seqs for r in got] == [[1, 2], [3, 4], [5]]
    assert all(r.path == "/hooks/qbo" and signed(r.body, r.headers["x-qbp-signature"]) for r in got)
    assert output_metadata(result) == {"tenants": 1, "delivered": 5, "batches": 3, "failures": 0, "tenant": "acme",
                                       "cursor": 5, "skipped": "", "error": "", "next_attempt_at": ""}
    assert feed.runtime.feed.callback("acme").cursor == 5
    assert feed.sensor().skip_reason.skip_message == "no feed callback is due"  # caught up


def test_an_app_that_fails_costs_no_failed_run_and_gets_the_same_entries_after_its_backoff(feed: Feed) -> None:
    feed.runtime.feed.set_callback("acme", feed.receiver.url, SECRET)
    feed.append(3)
    feed.receiver.answers[:] = [503]
    feed.receiver.reply_body = "maintenance"
    (request,) = feed.sensor().run_requests
    failed = feed.run(request)

    assert failed.success  # the app's failure is recorded for the retry, not raised
    meta = output_metadata(failed)
    assert (meta["delivered"], meta["batches"], meta["failures"], meta["cursor"]) == (0, 0, 1, 0)
    assert "HTTP 503" in meta["error"] and "maintenance" in meta["error"] and meta["next_attempt_at"]
    logs = [r.user_message for r in feed.stack.instance.all_logs(failed.run_id) if r.user_message]
    assert any("not delivered" in line and "HTTP 503" in line for line in logs)
    # not due before its retry time: the sensor waits
    assert feed.sensor().skip_reason.skip_message == "no feed callback is due"

    # its retry time comes (moved to the past rather than waiting 5-10 s): the same entries go again
    callback = feed.runtime.feed.callback("acme")
    feed.runtime.feed.delivery_failed("acme", callback.last_error or "", datetime.now(UTC) - timedelta(seconds=1))
    (again,) = feed.sensor().run_requests
    assert again.run_key != request.run_key
    assert output_metadata(feed.run(again))["delivered"] == 3
    assert [r.headers["x-qbp-delivery"] for r in feed.receiver.received] == ["1-3", "1-3"]


def test_without_a_tenant_the_job_delivers_every_due_tenant(feed: Feed) -> None:
    other = Receiver()
    try:
        feed.runtime.feed.set_callback("acme", feed.receiver.url, SECRET)
        feed.runtime.feed.set_callback("globex", other.url, SECRET + "-g")
        feed.append(2)
        feed.append(1, "globex")
        other.answers[:] = [500]
        result = feed.job().execute_in_process(instance=feed.stack.instance)
        meta = output_metadata(result)
        assert (meta["tenants"], meta["delivered"], meta["failures"]) == (2, 2, 1)
        assert {r["tenant"]: r["delivered"] for r in meta["results"]} == {"acme": 2, "globex": 0}
    finally:
        other.stop()


def test_delivery_runs_apart_from_landing_one_per_tenant_in_both_instances(tmp_path: Path) -> None:
    # no QuickBooks pool (a slow app never takes a landing's slot), one process, its own tag
    assert deliver_feed.pool is None and deliver_feed.pool != QBO_POOL
    assert qbo_feed_delivery_job.executor_def is dg.in_process_executor

    from qb_pipelines.demo.instance import write_demo_instance

    limit = {"key": FEED_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    home = write_demo_instance(tmp_path / "demo_home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert limit in limits
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert limit in config["concurrency"]["runs"]["tag_concurrency_limits"]


def test_a_change_made_in_quickbooks_reaches_the_apps_callback_through_dagster(emulator: RunningEmulator,
                                                                               tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        with dagster_stack(emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", emulator), emulator,
                           for_schedules=True) as stack:
            company = stack.connect()
            rt = stack.runtime
            with rt.engine.begin() as conn:
                enqueue(conn, company.tenant, entity="Customer", app_id="c1", version=1,
                        data={"display_name": "Grace Hopper", "phone": "555-0100"})
            push(rt, company.key)
            recorder = FeedRecorder(rt, rt.resolve(company.key))
            land(company.client(), rt.warehouse, company.key, on_changes=recorder)
            rt.feed.set_callback(company.tenant, f"{receiver.url}/qbo", SECRET)
            qbo_id = rt.mappings.get(company.tenant, company.realm, "Customer", "c1").qbo_id
            current = company.read("Customer", qbo_id)
            company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                               "PrimaryPhone": {"FreeFormNumber": "555-0199"}})
            land(company.client(), rt.warehouse, company.key, on_changes=recorder)

            app = Feed(stack, receiver)
            (request,) = app.sensor().run_requests
            assert request.tags[FEED_TAG] == company.tenant
            assert app.run(request).success
    finally:
        receiver.stop()
    (got,) = receiver.received
    assert signed(got.body, got.headers["x-qbp-signature"])
    (change,) = got.json["changes"]
    assert (change["entity"], change["app_id"], change["qbo_id"]) == ("Customer", "c1", qbo_id)
    assert change["data"]["phone"] == "555-0199"


@pytest.mark.slow
def test_a_real_daemon_delivers_each_tenants_entries_in_runs_of_their_own(tmp_path: Path) -> None:
    """The deployment's path: the daemon's sensor tick, the run queue (one per tenant), a run process."""
    from qb_pipelines.demo.instance import open_instance, wait_for_daemon, wait_for_runs, write_demo_instance
    from qb_pipelines.devtools.services import run_daemon_process
    from qb_pipelines_tests.harness import settings_env

    settings = emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", "http://127.0.0.1:9")
    home = write_demo_instance(tmp_path / "dagster_home", dequeue_interval_s=1)
    env = {**os.environ, **settings_env(settings), "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    apps = {"acme": Receiver(), "globex": Receiver()}
    try:
        with Runtime(settings) as rt, open_instance(home) as instance:
            for tenant, app in apps.items():
                rt.tenants.ensure_tenant(tenant, tenant.title())
                rt.feed.set_callback(tenant, f"{app.url}/{tenant}", SECRET)
            with run_daemon_process(env, tmp_path, tmp_path / "daemon.log") as daemon:
                wait_for_daemon(instance, daemon)
                for tenant in apps:
                    rt.feed.append(tenant, "9130", [NewEntry("Customer", "upsert", str(i), {"display_name": f"{tenant} {i}"},
                                                             app_id=f"c{i}", sync_token="0") for i in range(3)])
                deadline = time.monotonic() + 120
                while any(sum(len(r.seqs) for r in app.received) < 3 for app in apps.values()):
                    assert daemon.alive(), daemon.tail()
                    assert time.monotonic() < deadline, f"no delivery in 120 s:\n{daemon.tail()}"
                    time.sleep(0.2)
                assert wait_for_runs(instance) == []
                runs = instance.get_runs(filters=dg.RunsFilter(job_name=FEED_JOB_NAME))
    finally:
        for app in apps.values():
            app.stop()
    for tenant, app in apps.items():
        assert [c["data"]["display_name"] for r in app.received for c in r.json["changes"]] == [
            f"{tenant} {i}" for i in range(3)]
        assert all(r.path == f"/{tenant}" and signed(r.body, r.headers["x-qbp-signature"]) for r in app.received)
    assert {r.tags[FEED_TAG] for r in runs} == set(apps)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS and COMPANY_TAG not in r.tags for r in runs)
