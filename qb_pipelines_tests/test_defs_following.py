"""A webhook's landing run follows the webhook inbox: the next changes land within a second.

A real emulator over HTTP (a company changed as a QuickBooks user changes it), a real SQLite
store and webhook inbox, the landing asset materialized as Dagster runs it, with the tags of a
webhook's run. The run lands, then stays: a change stored in the inbox meanwhile is landed by the
same run (one more materialization, ``followed``), its ``qbo/webhook-through`` tag moves so the
webhook sensor asks for no run; an event of another entity is landed too (its tag
``qbo/entities`` grows); another company's events change nothing; it leaves when quiet.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.assets import COMPANY_TAG, INGEST_OP_NAME, entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.following import THROUGH_TAG, seconds_setting, waiting_too_long
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.webhooks import WebhookEvent
from qb_pipelines.store.webhook_inbox import delivery_sha
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import connect_company, dagster_resources, emulator_settings


def _event(realm: str, entity: str, entity_id: str) -> WebhookEvent:
    return WebhookEvent(realm, entity, entity_id, "Update", datetime.now(UTC).isoformat(),
                        event_id=secrets.token_hex(8))


def test_a_webhook_landing_follows_the_inbox_and_lands_the_next_changes(emulator: RunningEmulator,
                                                                         tmp_path: Path) -> None:
    resources = dagster_resources(emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", emulator))
    runtime = resources["qbo"].runtime()
    company = connect_company(emulator, runtime, name="Following Co", invoices=3)
    realm, key = company.realm, company.key
    customer = EmulatorControl(emulator.url).export(realm, "Customer")[0]
    tags = {COMPANY_TAG: key, "qbo/trigger": "webhook", "qbo/entities": "Customer"}
    done: dict[str, dg.ExecuteInProcessResult] = {}
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])

            def run() -> None:
                done["run"] = dg.materialize(
                    [qbo_raw_entities], partition_key=key, instance=instance, tags=tags, resources=resources,
                    selection=[entity_asset_key("Customer")],
                    run_config={"ops": {INGEST_OP_NAME: {"config": {"follow_s": 3}}}})

            runner = threading.Thread(target=run)
            runner.start()
            try:
                deadline = time.monotonic() + 60
                while instance.get_latest_materialization_event(entity_asset_key("Customer")) is None:
                    assert time.monotonic() < deadline, "the first landing did not happen"
                    time.sleep(0.1)
                # a bookkeeper edits the customer; Intuit's webhook is stored while the run follows
                EmulatorControl(emulator.url).act(realm, "Customer", "update",
                                                  {"Id": customer["Id"], "Notes": "edited while following"})
                runtime.inbox.add_events([_event(realm, "Customer", str(customer["Id"]))],
                                         delivery_sha=delivery_sha(secrets.token_bytes(8)))
                landed_through = runtime.inbox.latest_seq()
                while len(instance.fetch_materializations(entity_asset_key("Customer"), limit=10).records) < 2:
                    assert time.monotonic() < deadline, "the change was not landed by the following run"
                    time.sleep(0.1)
                # another company's event changes nothing; one of another entity is landed too
                runtime.inbox.add_events([_event("4620816365999999999", "Customer", "1")],
                                         delivery_sha=delivery_sha(secrets.token_bytes(8)))
                runtime.inbox.add_events([_event(realm, "Invoice", "1")],
                                         delivery_sha=delivery_sha(secrets.token_bytes(8)))
                landed_through = runtime.inbox.latest_seq()
            finally:
                runner.join(timeout=120)
            result = done["run"]
            assert result.success
            events = [e for e in result.get_asset_materialization_events()
                      if e.asset_key == entity_asset_key("Customer")]
            assert len(events) == 2 and events[1].partition == key
            followed = {k: getattr(v, "value", v) for k, v in events[1].materialization.metadata.items()}
            assert followed["followed"] is True and followed["rows_updated"] == 1
            (invoices,) = [e for e in result.get_asset_materialization_events()
                           if e.asset_key == entity_asset_key("Invoice")]
            assert invoices.partition == key and invoices.materialization.metadata["followed"].value is True
            tags = instance.get_run_by_id(result.run_id).tags
            assert tags[THROUGH_TAG] == str(landed_through) and tags["qbo/entities"] == "Customer,Invoice"
            logs = "\n".join(str(e.user_message) for e in instance.all_logs(result.run_id))
            assert "landed 2 more times" in logs and "left: quiet" in logs
            assert runtime.warehouse.counts("Customer", key)["active"] > 0
    finally:
        Runtime.close_shared()


def test_following_windows_are_seconds_from_0_to_600() -> None:
    assert seconds_setting("QB_LANDING_FOLLOW_S", 10.0, {}) == 10.0
    assert seconds_setting("QB_LANDING_FOLLOW_S", 10.0, {"QB_LANDING_FOLLOW_S": "2.5"}) == 2.5
    for bad in ("later", "-1", "601"):
        with pytest.raises(SettingsError, match="QB_LANDING_FOLLOW_S"):
            seconds_setting("QB_LANDING_FOLLOW_S", 10.0, {"QB_LANDING_FOLLOW_S": bad})


def test_a_following_run_leaves_for_a_waiting_urgent_run_soon_and_for_background_work_later() -> None:
    def run(priority: str | None, company: str = "other-1") -> dg.DagsterRun:
        tags = {COMPANY_TAG: company, **({"dagster/priority": priority} if priority is not None else {})}
        return dg.DagsterRun(job_name="qbo_incremental_job", run_id=secrets.token_hex(8), tags=tags)

    def mine(r: dg.DagsterRun) -> bool:
        return r.tags[COMPANY_TAG] == "mine-1"

    now = 1_000.0
    webhook, poll, report, same = run("10"), run(None), run("-10"), run("10", company="mine-1")
    # a webhook's landing of another company waiting 3 s: leave; 1 s: stay
    assert waiting_too_long([(webhook, now - 3)], now, mine) is webhook
    assert waiting_too_long([(webhook, now - 1)], now, mine) is None
    # a poll or a report waits up to a minute; the same company's run waits for this one anyway
    assert waiting_too_long([(poll, now - 30), (report, now - 59), (same, now - 300)], now, mine) is None
    assert waiting_too_long([(poll, now - 30), (report, now - 61)], now, mine) is report
