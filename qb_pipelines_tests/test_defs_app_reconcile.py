"""The app reconciled against QuickBooks in Dagster: ``app_agrees_with_qbo`` on ``qbo/outbox``, per company.

A real emulator over HTTP, companies connected through the real store, the push job executed as
Dagster runs it on a real temporary instance (the check is evaluated after each push, and by the
daily schedule's dry run), changes made in QuickBooks through the emulator's control API and
landed with the change feed's recorder, as the landing assets land them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from qb_pipelines.defs.app_reconcile import (
    APP_AGREES,
    DRY_RUN_CONFIG,
    qbo_app_reconcile_check,
    qbo_app_reconcile_schedule,
)
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.push import OUTBOX_KEY, PUSH_TAG, qbo_outbox, qbo_outbox_checks, qbo_push_job
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import land
from qb_pipelines.sync.push import enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, Connected, connect_company


@dataclass
class World:
    """A store, the QBO resource over it, and a Dagster instance (as in test_defs_push)."""

    emulator: RunningEmulator
    qbo: QBOConnectionResource
    runtime: Runtime
    instance: dg.DagsterInstance

    def connect(self, **kwargs: Any) -> Connected:
        company = connect_company(self.emulator, self.runtime, **kwargs)
        self.instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [company.key])
        return company

    def job(self) -> dg.JobDefinition:
        defs = dg.Definitions(assets=[qbo_outbox], asset_checks=[qbo_outbox_checks, qbo_app_reconcile_check],
                              jobs=[qbo_push_job], resources={"qbo": self.qbo})
        return defs.resolve_job_def(qbo_push_job.name)

    def push(self, company: Connected, **kwargs: Any) -> dg.ExecuteInProcessResult:
        result = self.job().execute_in_process(partition_key=company.key, instance=self.instance, **kwargs)
        assert result.success
        return result

    def check(self, company: Connected) -> dg.AssetCheckEvaluation:
        """The check as the daily schedule runs it: a dry run of the push job."""
        return agreement(self.push(company, run_config=DRY_RUN_CONFIG))


@pytest.fixture
def world(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[World]:
    qbo = QBOConnectionResource(database_url=f"sqlite:///{tmp_path / 'qb.sqlite'}", fernet_key=generate_key(),
                                client_id=EMULATOR_CLIENT_ID, client_secret=EMULATOR_CLIENT_SECRET,
                                environment="emulator", emulator_url=shared_emulator.url, max_retries=1)
    with dg.instance_for_test() as instance:
        yield World(shared_emulator, qbo, qbo.runtime(), instance)
    Runtime.close_shared()


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=kwargs.pop("version", 1), data=data,
                       **kwargs)


def sync(c: Connected) -> None:
    """Land the company's changes with the change feed's recorder, as the landing assets do."""
    land(c.client(max_retries=1), c.runtime.warehouse, c.key, on_changes=FeedRecorder(c.runtime, c.runtime.resolve(c.key)))


def agreement(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.check_name == APP_AGREES]
    assert found.asset_key == OUTBOX_KEY
    return found


def rows(evaluation: dg.AssetCheckEvaluation) -> list[dict[str, Any]]:
    return [r.data for r in evaluation.metadata["findings"].value.records]


def value(evaluation: dg.AssetCheckEvaluation, key: str) -> Any:
    return evaluation.metadata[key].value


def _qbo_id(c: Connected, entity: str, app_id: str) -> str:
    mapping = c.runtime.mappings.get(c.tenant, c.realm, entity, app_id)
    assert mapping is not None
    return mapping.qbo_id


def shop(world: World) -> Connected:
    """A company with the app's customer, item and invoice pushed through Dagster."""
    company = world.connect()
    send(company, "Customer", "c1", {"display_name": "Ada Lovelace", "phone": "555-1000", "email": "ada@x.co",
                                     "address": {"line1": "1 Analytical Row", "city": "London"}})
    send(company, "Item", "svc", {"name": "Lawn care", "type": "service", "unit_price": 50})
    send(company, "Invoice", "inv1", {"customer_app_id": "c1", "number": "R-1",
                                      "lines": [{"item_app_id": "svc", "qty": 2, "unit_price": 50, "taxable": True}]})
    return company


def test_the_check_passes_while_faithful_fails_on_a_quickbooks_edit_and_passes_once_the_app_applies_it(
        world: World) -> None:
    company = shop(world)
    first = agreement(world.push(company))
    # pushed, not landed yet: the integration's own writes are not compared with stale rows
    assert first.passed and first.partition == company.key
    assert (value(first, "mapped"), value(first, "compared"), value(first, "not_landed")) == (3, 0, 3)

    sync(company)
    faithful = world.check(company)
    assert faithful.passed and value(faithful, "compared") == 3 and value(faithful, "mismatch") == 0
    assert "3 mapped records agree with QuickBooks" in faithful.description

    qbo_id = _qbo_id(company, "Customer", "c1")
    current = company.read("Customer", qbo_id)
    company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                       "PrimaryPhone": {"FreeFormNumber": "555-7777"}})
    sync(company)
    edited = world.check(company)
    assert not edited.passed and edited.severity == dg.AssetCheckSeverity.ERROR
    assert rows(edited) == [{"kind": "mismatch", "entity": "Customer", "app_id": "c1", "qbo_id": qbo_id,
                             "field": "phone", "app": "555-1000", "qbo": "555-7777", "note": None}]
    assert "Customer c1" in edited.description and "phone" in edited.description
    assert "'555-1000'" in edited.description and "'555-7777'" in edited.description
    assert value(edited, "by_entity")["Customer"] == {"mapped": 1, "compared": 1, "findings": 1}

    # the app heard it on the feed and applies it: while its upsert waits, the difference is pending
    (change,) = [c for c in company.runtime.feed.read(company.tenant)[0] if c.entity == "Customer"]
    assert change.app_id == "c1" and change.data["phone"] == "555-7777"
    send(company, "Customer", "c1", {**{k: v for k, v in change.data.items() if k != "parent_app_id"}}, version=2)
    waiting = world.check(company)
    assert waiting.passed and value(waiting, "pending") == 1
    assert rows(waiting)[0]["kind"] == "pending" and rows(waiting)[0]["app"] == "555-7777"

    pushed = world.push(company)  # QuickBooks holds it already: nothing to write
    (mat,) = [e for e in pushed.get_asset_materialization_events() if e.asset_key == OUTBOX_KEY]
    figures = {k: getattr(v, "value", v) for k, v in mat.materialization.metadata.items()}
    assert (figures["created"], figures["updated"], figures["unchanged"]) == (0, 0, 1)
    applied = agreement(pushed)
    assert applied.passed and value(applied, "mismatch") == 0 and value(applied, "pending") == 0
    sync(company)
    assert world.check(company).passed


def test_a_voided_invoice_and_a_record_failed_for_more_than_a_day_are_listed(world: World) -> None:
    company = shop(world)
    company.act("Vendor", "create", {"DisplayName": "Taken Name"})
    send(company, "Customer", "held", {"display_name": "From Before"},  # held two days ago
         created_at=(datetime.now(UTC) - timedelta(days=30)).isoformat(), now=datetime.now(UTC) - timedelta(days=2))
    world.push(company)
    sync(company)
    invoice = company.read("Invoice", _qbo_id(company, "Invoice", "inv1"))
    company.act("Invoice", "void", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    sync(company)

    # a record QuickBooks refused, two days ago: the store's clock moved back for that push
    send(company, "Customer", "c-bad", {"display_name": "Taken Name"})
    with Runtime(world.qbo.settings(), clock=lambda: datetime.now(UTC) - timedelta(days=2)) as earlier:
        assert push(earlier, company.key).failed == 1

    found = world.check(company)
    assert not found.passed
    listed = {(r["kind"], r["entity"], r["app_id"]): r for r in rows(found)}
    voided = listed[("voided_in_qbo", "Invoice", "inv1")]
    assert (voided["qbo_id"], voided["field"], voided["app"], voided["qbo"]) == (invoice["Id"], "state", "active",
                                                                                  "voided")
    failed = listed[("failed", "Customer", "c-bad")]
    assert "6240" in failed["note"] and failed["qbo"] < (datetime.now(UTC) - timedelta(days=1)).isoformat()
    held = listed[("held", "Customer", "held")]  # listed, does not fail the check by itself
    assert "before QuickBooks was first connected" in held["note"]
    assert (value(found, "voided_in_qbo"), value(found, "failed"), value(found, "held")) == (1, 1, 1)
    assert [r["kind"] for r in rows(found)] == ["voided_in_qbo", "failed", "held"]  # failing ones first
    assert "voided in QuickBooks" in found.description

    # the app voids its invoice too, and gives up the refused customer: only the held one stays
    send(company, "Invoice", "inv1", {}, op="void", version=2)
    send(company, "Customer", "c-bad", {}, op="delete", version=2)
    settled = agreement(world.push(company))
    assert settled.passed and [r["kind"] for r in rows(settled)] == ["held"]
    assert value(settled, "removed_by_app") == 1


def test_the_daily_schedule_dry_runs_each_idle_company_and_its_check_sends_nothing(world: World) -> None:
    a, b = shop(world), world.connect()
    world.instance.create_run_for_job(world.job(), run_config={}, tags={PUSH_TAG: b.key},
                                      status=dg.DagsterRunStatus.STARTED)  # a push of b is running
    with dg.build_schedule_context(instance=world.instance, resources={"qbo": world.qbo},
                                   scheduled_execution_time=datetime(2026, 11, 3, 3, 30, tzinfo=UTC)) as context:
        requests = list(qbo_app_reconcile_schedule(context))
    (request,) = [r for r in requests if isinstance(r, dg.RunRequest)]
    assert request.partition_key == a.key and request.tags == {PUSH_TAG: a.key, "qbo/trigger": "app_reconcile"}
    assert request.run_key == f"app_reconcile:{a.key}:2026-11-03T03:30:00+00:00"

    result = world.push(a, run_config=request.run_config, tags=request.tags)
    assert agreement(result).passed and a.query("Customer", "DisplayName = 'Ada Lovelace'") == []  # nothing sent
    assert a.runtime.outbox.counts(a.tenant) == {"pending": 3}
