"""Push in Dagster on a real temporary instance: the job, the outbox sensor, the checks, and kill -9.

A real emulator over HTTP, companies connected through the real store (SQLite, and PostgreSQL
where the database matters), the push job executed as Dagster runs it, the sensor evaluated on
the instance the runs land in. The kill -9 test runs the push job in a separate process
(``dagster job execute``), kills it in the middle of a batch QuickBooks has applied but not yet
answered, and reruns it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.push import (
    FAILURES_WAITING,
    HELD_COUNT,
    OLDEST_PENDING_AGE,
    OUTBOX_KEY,
    PUSH_TAG,
    RETRY_WINDOW_S,
    FollowConfig,
    follow_window,
    qbo_outbox,
    qbo_outbox_checks,
    qbo_outbox_sensor,
    qbo_push_job,
)
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.push import enqueue
from qb_pipelines.sync.push.follow import follow
from qb_pipelines.sync.push.run_state import IN_FLIGHT
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, Connected, connect_company


@dataclass
class World:
    """A store, the QBO resource over it (the one the definitions use), and a Dagster instance."""

    url: str
    fernet_key: str
    emulator: RunningEmulator
    qbo: QBOConnectionResource
    runtime: Runtime
    instance: dg.DagsterInstance

    def connect(self, **kwargs: Any) -> Connected:
        company = connect_company(self.emulator, self.runtime, **kwargs)
        self.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [company.key])
        return company

    def job(self) -> dg.JobDefinition:
        defs = dg.Definitions(assets=[qbo_outbox], asset_checks=[qbo_outbox_checks], jobs=[qbo_push_job],
                              resources={"qbo": self.qbo})
        return defs.resolve_job_def(qbo_push_job.name)

    def push(self, company: Connected, **kwargs: Any) -> dg.ExecuteInProcessResult:
        return self.job().execute_in_process(partition_key=company.key, instance=self.instance, **kwargs)

    def sensor(self) -> dg.SensorResult:
        ctx = dg.build_sensor_context(instance=self.instance, resources={"qbo": self.qbo})
        result = qbo_outbox_sensor(ctx)
        assert isinstance(result, dg.SensorResult)
        return result

    def env(self, dagster_home: Path) -> dict[str, str]:
        """The environment a Dagster process of this deployment runs with."""
        return {**os.environ, "DAGSTER_HOME": str(dagster_home), "QB_DATABASE_URL": self.url,
                "QB_FERNET_KEY": self.fernet_key, "QBO_CLIENT_ID": EMULATOR_CLIENT_ID,
                "QBO_CLIENT_SECRET": EMULATOR_CLIENT_SECRET, "QBO_ENVIRONMENT": "emulator",
                "QBO_EMULATOR_URL": self.emulator.url, "PYTHONUNBUFFERED": "1"}


def _world(url: str, emulator: RunningEmulator, instance: dg.DagsterInstance) -> World:
    key = generate_key()
    qbo = QBOConnectionResource(database_url=url, fernet_key=key, client_id=EMULATOR_CLIENT_ID,
                                client_secret=EMULATOR_CLIENT_SECRET, environment="emulator",
                                emulator_url=emulator.url, max_retries=1)
    return World(url, key, emulator, qbo, qbo.runtime(), instance)


@pytest.fixture
def world(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[World]:
    with dg.instance_for_test() as instance:
        yield _world(f"sqlite:///{tmp_path / 'qb.sqlite'}", shared_emulator, instance)
    Runtime.close_shared()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_world(request: pytest.FixtureRequest, shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[World]:
    with throwaway_database(request.param, tmp_path, "qbp_defs_push") as url, dg.instance_for_test() as instance:
        yield _world(url, shared_emulator, instance)
        Runtime.close_shared()


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=kwargs.pop("version", 1), data=data,
                       **kwargs)


def invoice(customer: str, item: str, number: str) -> dict[str, Any]:
    return {"customer_app_id": customer, "number": number,
            "lines": [{"item_app_id": item, "qty": 2, "unit_price": 45.0, "taxable": False}]}


def meta(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == OUTBOX_KEY]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [r.user_message for r in instance.all_logs(run_id) if r.user_message]


def set_settings(c: Connected, **changes: Any) -> None:
    values = c.runtime.tenant_settings.get(c.tenant).values.to_dict()
    for key, value in changes.items():
        if isinstance(value, dict):
            values[key].update(value)
        else:
            values[key] = value
    c.runtime.tenant_settings.save(c.tenant, values)


def off_window_edge() -> None:
    """Wait out the last seconds of a run-key window, so two evaluations share one."""
    while int(time.time()) % RETRY_WINDOW_S >= RETRY_WINDOW_S - 3:
        time.sleep(0.5)


# ----------------------------------------------------------------------------------------- the job


def test_push_job_sends_the_outbox_and_records_what_it_did_and_what_waits(any_world: World) -> None:
    world = any_world
    company = world.connect()
    send(company, "Invoice", "inv-1", invoice("cust-1", "svc", "D-100"))
    send(company, "Customer", "cust-1", {"display_name": "Dagster Customer", "email": "d@example.com"})
    send(company, "Item", "svc", {"name": "Dagster Service", "type": "service", "unit_price": 45})
    send(company, "Customer", "old", {"display_name": "From Before"},
         created_at=(datetime.now(UTC) - timedelta(days=30)).isoformat())  # held

    result = world.push(company)

    assert result.success
    assert result.dagster_run.tags[PUSH_TAG] == company.key  # from the partition, as the launchpad does
    assert result.dagster_run.tags["dagster/max_runtime"]
    m = meta(result)
    assert (m["created"], m["matched"], m["failed"], m["blocked"], m["review"], m["dropped"]) == (3, 0, 0, 0, 0, 0)
    assert m["held"] == 1 and m["backlog"] == 0 and m["failed_waiting"] == 0 and m["oldest_pending_age_s"] == 0
    assert m["api_calls"] >= 3 and m["batches"] == 3 and m["throttled"] == 0 and m["company"] == company.key
    assert m["statuses"] == {"held": 1, "synced": 3}
    inv = company.query("Invoice", "DocNumber = 'D-100'")
    assert len(inv) == 1 and inv[0]["TotalAmt"] == 90.0
    assert company.runtime.outbox.record(company.tenant, "Invoice", "inv-1").qbo_id == inv[0]["Id"]

    # the run's log says what it planned and sent, in push order
    logs = log_lines(world.instance, result.run_id)
    planned = [line for line in logs if line.endswith("to send")]
    assert planned == [f"{company.key}: Customer: 1 upsert to send", f"{company.key}: Item: 1 upsert to send",
                       f"{company.key}: Invoice: 1 upsert to send"]
    assert f"{company.key}: sent 1 Invoice items in 1 batches" in logs
    assert any("1 held rows" in line for line in logs)

    found = checks(result)
    assert set(found) == {FAILURES_WAITING, OLDEST_PENDING_AGE, HELD_COUNT}
    assert all(e.passed for e in found.values()) and {e.partition for e in found.values()} == {company.key}
    assert found[HELD_COUNT].metadata["held"].value == 1
    assert found[HELD_COUNT].metadata["held_by_entity"].value == {"Customer": 1}


def test_an_entity_switched_off_waits_and_the_run_says_why(world: World) -> None:
    company = world.connect()
    set_settings(company, entities={"Item": False})
    send(company, "Item", "svc", {"name": "Switched Off", "type": "service"})
    send(company, "Customer", "c1", {"display_name": "Goes Anyway"})

    result = world.push(company)

    assert result.success
    m = meta(result)
    assert m["created"] == 1 and m["waiting"] == 1 and m["backlog"] == 1
    assert m["waiting_reasons"] == [{"status": "pending", "entity": "Item", "reason": "Item sync is off in Settings",
                                     "rows": 1}]
    assert "Item sync is off in Settings" in m["oldest_pending"]
    assert f"{company.key}: Item: 1 upsert wait: Item sync is off in Settings" in log_lines(world.instance,
                                                                                           result.run_id)
    assert company.query("Item", "Name = 'Switched Off'") == []
    # the sensor does not start runs that could only wait
    skipped = world.sensor()
    assert not skipped.run_requests and "Item sync is off in Settings" in skipped.skip_reason.skip_message

    set_settings(company, entities={"Item": True})
    (request,) = world.sensor().run_requests
    assert request.partition_key == company.key
    assert meta(world.push(company))["created"] == 1


def test_a_dry_run_records_the_backlog_and_a_company_gate_fails_nothing(world: World) -> None:
    company = world.connect(configure=False)  # the Setup Wizard is not done
    send(company, "Customer", "c1", {"display_name": "Before The Wizard"})
    dry = world.push(company, run_config={"ops": {"qbo__outbox": {"ops": {"push_outbox": {"config": {"dry_run": True}}}}}})
    assert dry.success and meta(dry)["backlog"] == 1 and "created" not in meta(dry)
    gated = world.push(company)
    assert gated.success
    m = meta(gated)
    assert m["gate"] == "complete the Setup Wizard before syncing any data" and m["api_calls"] == 0
    assert "nothing will be sent: complete the Setup Wizard" in " ".join(log_lines(world.instance, gated.run_id))
    skipped = world.sensor()
    assert not skipped.run_requests and "complete the Setup Wizard" in skipped.skip_reason.skip_message


# ------------------------------------------------------------------------------------ following


def _follow_config(seconds: float) -> dict[str, Any]:
    return {"ops": {"qbo__outbox": {"ops": {"follow_outbox": {"config": {"follow_s": seconds}}}}}}


def _wait_synced(c: Connected, entity: str, app_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = c.runtime.outbox.record(c.tenant, entity, app_id)
        if row is not None and row.status == "synced":
            return
        time.sleep(0.1)
    raise AssertionError(f"{entity} {app_id} was not synced within {timeout} s")


def test_a_push_run_follows_the_outbox_and_sends_what_arrives_meanwhile(world: World) -> None:
    company = world.connect()
    send(company, "Customer", "first", {"display_name": "Follow First"})
    done: dict[str, dg.ExecuteInProcessResult] = {}
    runner = threading.Thread(target=lambda: done.setdefault("run", world.push(company, run_config=_follow_config(3))))
    runner.start()
    try:
        _wait_synced(company, "Customer", "first")
        send(company, "Customer", "second", {"display_name": "Follow Second"})  # while the run follows
        _wait_synced(company, "Customer", "second")
    finally:
        runner.join(timeout=120)
    result = done["run"]
    assert result.success
    # one run sent both: the second record did not wait for a run of its own
    assert meta(result)["created"] == 2 and meta(result)["statuses"] == {"synced": 2}
    assert len(company.query("Customer", "DisplayName = 'Follow Second'")) == 1
    followed = [line for line in log_lines(world.instance, result.run_id) if "followed the outbox" in line]
    assert len(followed) == 1 and "1 more pushes" in followed[0] and followed[0].endswith("left: quiet")
    # with following off (the test default, QB_PUSH_FOLLOW_S=0) a run ends after its push
    send(company, "Customer", "third", {"display_name": "Follow Third"})
    quick = world.push(company)
    assert meta(quick)["created"] == 1
    assert not [line for line in log_lines(world.instance, quick.run_id) if "followed the outbox" in line]


def test_following_leaves_a_backlog_to_a_run_of_its_own_and_ignores_rows_behind_a_gate(world: World) -> None:
    company = world.connect()
    set_settings(company, entities={"Item": False})
    send(company, "Item", "off", {"name": "Behind The Gate", "type": "service"})
    resolved = world.runtime.resolve(company.key)
    ticks = {"n": 0}

    def sleep(_: float) -> None:  # the app enqueues a burst while the run follows
        ticks["n"] += 1
        if ticks["n"] == 2:
            for i in range(5):
                send(company, "Customer", f"burst-{i}", {"display_name": f"Burst {i}"})
        time.sleep(0.05)

    followed = follow(world.runtime, resolved, window_s=30, max_rows=3, sleep=sleep)
    # the gated Item was due all along and never pushed; the burst is more than max_rows: left
    assert followed.left == "backlog" and followed.pushes == 0 and followed.result is None
    assert company.query("Customer", "DisplayName = 'Burst 0'") == []

    asked = follow(world.runtime, resolved, window_s=30, leave=lambda: "run abc waits for a run slot")
    assert asked.left == "run abc waits for a run slot" and asked.pushes == 0


def test_the_follow_window_comes_from_the_run_config_else_the_environment() -> None:
    assert follow_window(FollowConfig(follow_s=2.5), {"QB_PUSH_FOLLOW_S": "9"}) == 2.5
    assert follow_window(FollowConfig(), {"QB_PUSH_FOLLOW_S": "9"}) == 9.0
    assert follow_window(FollowConfig(), {}) == 15.0
    for bad in ("soon", "-1", "100000"):
        with pytest.raises(SettingsError, match="QB_PUSH_FOLLOW_S"):
            follow_window(FollowConfig(), {"QB_PUSH_FOLLOW_S": bad})


# -------------------------------------------------------------------------------------- the checks


def test_checks_fail_while_failures_wait_warn_on_old_rows_and_pass_after_retry(world: World) -> None:
    company = world.connect()
    company.act("Vendor", "create", {"DisplayName": "Taken Name"})
    send(company, "Customer", "c-bad", {"display_name": "Taken Name"})
    send(company, "Item", "svc", {"name": "Checked Service", "type": "service", "unit_price": 10})
    send(company, "Invoice", "inv-9", invoice("c-bad", "svc", "CHK-9"))

    first = world.push(company)
    assert first.success  # failed records are the outbox's state, not a failed run
    found = checks(first)
    failures = found[FAILURES_WAITING]
    assert not failures.passed and failures.severity == dg.AssetCheckSeverity.ERROR
    listed = failures.metadata["failures"].value
    assert [(f["app_id"], f["code"]) for f in listed] == [("c-bad", "6240")] and "rename" in listed[0]["next_step"]
    assert "Taken Name" in failures.description
    assert meta(first)["blocked"] == 1 and meta(first)["failed_waiting"] == 1
    # the blocked invoice is young: no warning yet
    assert found[OLDEST_PENDING_AGE].passed

    # a record stuck for an hour (enqueued long ago, its entity switched off) warns
    set_settings(company, entities={"Estimate": False})
    send(company, "Estimate", "est-1", invoice("c-ok", "svc", "E-1"), created_at=datetime.now(UTC).isoformat(),
         now=datetime.now(UTC) - timedelta(hours=1))
    aged = checks(world.push(company))[OLDEST_PENDING_AGE]
    assert not aged.passed and aged.severity == dg.AssetCheckSeverity.WARN
    assert aged.metadata["oldest_pending_age_s"].value >= 3600 and "Estimate" in aged.description

    # the bookkeeper renames the vendor; an admin retries: the customer goes, the invoice with it
    vendor = company.query("Vendor", "DisplayName = 'Taken Name'")[0]
    company.act("Vendor", "update", {"Id": vendor["Id"], "SyncToken": vendor["SyncToken"], "sparse": True,
                                     "DisplayName": "Taken Name (vendor)"})
    row = company.runtime.outbox.record(company.tenant, "Customer", "c-bad")
    assert company.runtime.outbox.retry([row.id]) == 1
    (request,) = world.sensor().run_requests  # the retried row is due again, though no row is new
    after = world.push(company)
    assert checks(after)[FAILURES_WAITING].passed
    assert meta(after)["created"] == 2 and meta(after)["failed_waiting"] == 0
    assert len(company.query("Invoice", "DocNumber = 'CHK-9'")) == 1
    assert request.partition_key == company.key


# -------------------------------------------------------------------------------------- the sensor


def test_outbox_sensor_requests_one_run_per_company_and_never_a_second(world: World) -> None:
    a, b = world.connect(), world.connect()
    idle = world.connect()
    unconfigured = world.connect(configure=False)
    late = connect_company(world.emulator, world.runtime)  # connected, no partition yet
    for company, n in ((a, 2), (b, 1), (unconfigured, 1), (late, 1)):
        for i in range(n):
            send(company, "Customer", f"c{i}", {"display_name": f"Sensor {company.tenant} {i}"})
    assert world.runtime.outbox.counts(idle.tenant) == {}

    off_window_edge()
    first = world.sensor()
    runs = {r.partition_key: r for r in first.run_requests}
    assert set(runs) == {a.key, b.key, late.key}
    for key, run in runs.items():
        assert run.tags[PUSH_TAG] == key and run.tags["qbo/trigger"] == "outbox"
    assert runs[a.key].tags["qbo/rows"] == "2"
    assert len({r.run_key for r in first.run_requests}) == 3
    (added,) = first.dynamic_partitions_requests
    assert list(added.partition_keys) == [late.key]
    # evaluated again: the same run keys, so Dagster launches each once
    again = world.sensor()
    assert {r.run_key for r in again.run_requests} == {r.run_key for r in first.run_requests}

    # a run of company a was requested and not started yet: no second one for a, whatever the key
    # (a started one: see the kill -9 test)
    world.instance.create_run_for_job(world.job(), run_config={}, tags={PUSH_TAG: a.key},
                                      status=dg.DagsterRunStatus.NOT_STARTED)
    send(a, "Customer", "c-new", {"display_name": "Arrives While Queued"})
    busy = world.sensor()
    assert {r.partition_key for r in busy.run_requests} == {b.key, late.key}

    # b is pushed: nothing of b is due anymore; a new row of b is a new run with a new key
    assert world.push(b).success
    assert b.key not in {r.partition_key for r in world.sensor().run_requests}
    send(b, "Customer", "c9", {"display_name": "Sensor Later"})
    (later,) = [r for r in world.sensor().run_requests if r.partition_key == b.key]
    assert later.run_key not in {r.run_key for r in first.run_requests}

    for run in world.instance.get_runs(filters=dg.RunsFilter(tags={PUSH_TAG: a.key})):
        world.instance.report_run_canceled(run)
    skip = world.sensor()
    assert a.key in {r.partition_key for r in skip.run_requests}
    world.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [late.key])
    for company in (a, b, late):
        assert world.push(company).success
    nothing = world.sensor()
    assert not nothing.run_requests and f"{unconfigured.key}: 1 rows wait: complete the Setup Wizard" in nothing.skip_reason.skip_message


def test_deployment_and_demo_instances_run_one_push_per_company(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from qb_pipelines.demo.instance import write_demo_instance

    limit = {"key": PUSH_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    home = write_demo_instance(tmp_path / "demo_home", dequeue_interval_s=1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert limit in instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert instance.run_coordinator.dequeue_interval_seconds == 1

    # the deployment's file (the PostgreSQL instance itself is tested in test_demo and test_services)
    config = yaml.safe_load((Path(__file__).resolve().parent.parent / "dagster.yaml").read_text())
    assert limit in config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["run_monitoring"]["enabled"] is True  # a dead push run is failed after its max runtime


# ------------------------------------------------------------------------------------------ kill -9


def _wait(what: str, predicate: Any, timeout: float = 120.0, proc: subprocess.Popen | None = None,
          log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the push process exited ({proc.returncode}) before {what}:\n"
                                 f"{log.read_text()[-4000:] if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _faults(world: World, body: dict[str, Any]) -> None:
    resp = requests.post(f"{world.emulator.url}/_emulator/faults", json=body, timeout=10)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_kill_9_in_the_middle_of_a_push_then_the_rerun_posts_nothing_twice_and_loses_no_row(
        shared_emulator: RunningEmulator, tmp_path: Path, dialect: str) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with throwaway_database(dialect, tmp_path, "qbp_kill") as url, \
            dg.DagsterInstance.from_config(str(home)) as instance:
        world = _world(url, shared_emulator, instance)
        company = world.connect()
        n = 300  # ten invoice batches: rows still wait after the ones in flight at the kill
        send(company, "Item", "svc", {"name": "Kill Service", "type": "service", "unit_price": 45})
        for i in range(n):
            send(company, "Customer", f"c{i}", {"display_name": f"Kill Customer {i:03d}"})
            send(company, "Invoice", f"inv{i}", invoice(f"c{i}", "svc", f"K-{i:03d}"))
        outbox = world.runtime.outbox
        scope = {"paths": ["/batch$"], "realms": [company.realm]}
        _faults(world, {"clear": True, "rates": {"slow": 1.0}, "slow_delay_s": 0.5, "scope": scope})

        log = tmp_path / "push.log"
        tags = json.dumps({"dagster/partition": company.key, PUSH_TAG: company.key, "qbo/trigger": "test"})
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                                     "qb_pipelines.definitions", "-a", "defs", "-j", qbo_push_job.name,
                                     "--tags", tags], env=world.env(home), cwd=tmp_path, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # every customer, the item and a first batch of invoices are in QuickBooks and recorded ...
            _wait("the first invoice batch", lambda: outbox.counts(company.tenant).get("synced", 0) >= n + 1 + 30,
                  proc=proc, log=log)
            # ... then the next batch is applied by QuickBooks, whose answer never comes back
            _faults(world, {"after_commit": "delay", "after_commit_delay_s": 30,
                            "next": {"fault": "timeout_after_commit", "count": 1, "scope": scope}})

            def applied_unanswered() -> bool:
                flying = outbox.rows(company.tenant, ("in_flight",))
                if not flying:
                    return False
                numbers = {r.payload["number"] for r in flying}
                found = company.query("Invoice", "DocNumber IN ({})".format(", ".join(f"'{x}'" for x in numbers)))
                return len(found) == len(flying)

            _wait("a batch applied by QuickBooks and not answered", applied_unanswered, proc=proc, log=log)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        _faults(world, {"clear": True})

        # the unanswered batch, and the batches sent alongside it whose answers wait to be recorded
        # after it (a push keeps up to IN_FLIGHT batch calls going; answers are recorded in order)
        in_flight = outbox.rows(company.tenant, ("in_flight",))
        requestids = {r.requestid for r in in_flight}
        assert len(in_flight) == 30 * len(requestids) and 1 <= len(requestids) <= IN_FLIGHT
        synced_before = outbox.counts(company.tenant)["synced"]
        assert n + 1 + 30 <= synced_before <= 2 * n + 1 - len(in_flight)
        (dead,) = instance.get_runs(filters=dg.RunsFilter(tags={PUSH_TAG: company.key}))
        assert dead.status == dg.DagsterRunStatus.STARTED  # its process is gone; Dagster cannot tell yet

        # the sensor requests no second run while Dagster still believes the dead run is running ...
        busy = world.sensor()
        assert not busy.run_requests and f"push run {dead.run_id[:8]} is started" in busy.skip_reason.skip_message
        # ... and a push launched anyway sends nothing
        refused = world.job().execute_in_process(partition_key=company.key, instance=instance, raise_on_error=False)
        assert not refused.success
        assert dead.run_id in str(refused.failure_data_for_node("qbo__outbox.plan_push").user_failure_data.description)
        assert outbox.counts(company.tenant)["in_flight"] == len(in_flight)

        # run monitoring (dagster/max_runtime) or an operator marks the dead run failed; the rerun goes
        instance.report_run_failed(dead, "the run's process was killed (kill -9)")
        rerun = world.job().execute_in_process(partition_key=company.key, instance=instance)
        m = meta(rerun)
        assert m["resumed"] == len(in_flight) and m["failed"] == 0 and m["backlog"] == 0
        assert m["created"] == 2 * n + 1 - synced_before  # the resumed batches count once, as replayed
        assert outbox.counts(company.tenant) == {"synced": 2 * n + 1}
        assert {outbox.get(r.id).requestid for r in in_flight} == requestids  # answered by the replay

        customers = company.query("Customer", "DisplayName LIKE 'Kill Customer %'")
        invoices = company.query("Invoice", "DocNumber LIKE 'K-%'")
        assert len(customers) == len({c["DisplayName"] for c in customers}) == n
        assert len(invoices) == len({i["DocNumber"] for i in invoices}) == n
        mapped = {outbox.record(company.tenant, "Invoice", f"inv{i}").qbo_id for i in range(n)}
        assert mapped == {i["Id"] for i in invoices}
        Runtime.close_shared()
