"""Landing honours the tenant's settings: the Setup Wizard completed, and each entity's Sync switch.

Through the real emulator over HTTP, the real store (SQLite) and ``qb-pipelines sync`` as a cron
job runs it; then the Dagster asset with a real instance, as the poll schedule and a webhook's
run materialize it (``qbo_incremental_job`` runs that same asset).
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner, Result

from qb_pipelines.cli import cli
from qb_pipelines.defs.assets import entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.checks import qbo_entity_checks
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.store.warehouse import tables_for
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import Connected, connect_company, dagster_stack, emulator_settings, settings_env

OFF = "skipped: sync switched off for TimeActivity in the tenant's settings"


def _time_activity(co: Connected, note: str) -> str:
    employee = co.act("Employee", "create", {"GivenName": "Emily", "FamilyName": f"Platt {secrets.token_hex(2)}"})
    made = co.act("TimeActivity", "create", {"NameOf": "Employee", "Hours": 2, "Minutes": 30, "Description": note,
                                             "EmployeeRef": {"value": employee["Id"]}})
    return str(made["Id"])


def _switch(co: Connected, *, time_activity: bool) -> None:
    """Save the Settings page with TimeActivity's Sync switch on or off (the rest as they are)."""
    values = co.runtime.tenant_settings.get(co.tenant).values.to_dict()
    values["entities"]["TimeActivity"] = time_activity
    co.runtime.tenant_settings.save(co.tenant, values)


def _landed_row_count(runtime: Runtime, company_key: str) -> int:
    import sqlalchemy as sa

    total = 0
    with runtime.engine.connect() as conn:
        for ent in registry.ENTITIES:
            table = tables_for(ent)[0]
            total += conn.execute(sa.select(sa.func.count()).select_from(table)
                                  .where(table.c.company_key == company_key)).scalar_one()
    return total


@pytest.fixture(scope="module")
def cron(shared_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, dict]]:
    settings = emulator_settings(f"sqlite:///{Path(tmp_path_factory.mktemp('gate')) / 'qb.sqlite'}", shared_emulator)
    with Runtime(settings) as runtime:
        yield runtime, settings_env(settings)


def _sync(env: dict, *args: str) -> Result:
    return CliRunner().invoke(cli, ["sync", *args], env=env, catch_exceptions=False)


def test_sync_skips_an_entity_switched_off_and_keeps_what_it_landed_before(
        shared_emulator: RunningEmulator, cron: tuple[Runtime, dict]) -> None:
    runtime, env = cron
    co = connect_company(shared_emulator, runtime, invoices=3, entities={"TimeActivity": False})
    first_id = _time_activity(co, "Mowing")

    off = _sync(env, "--company", co.key)
    assert off.exit_code == 0, off.output
    assert f"TimeActivity: {OFF}" in off.output
    assert co.rows("TimeActivity") == {}  # not fetched
    assert co.rows("Invoice")  # everything else landed
    assert "TimeActivity" not in runtime.warehouse.cursors(co.key)

    _switch(co, time_activity=True)
    on = _sync(env, "--company", co.key)
    assert on.exit_code == 0, on.output
    assert set(co.rows("TimeActivity")) == {first_id}

    # Switched off again: nothing new is fetched, and what landed before stays as it was.
    _switch(co, time_activity=False)
    second_id = _time_activity(co, "Weeding")
    co.act("TimeActivity", "delete", {"Id": first_id, "SyncToken": co.read("TimeActivity", first_id)["SyncToken"]})
    again = _sync(env, "--company", co.key, "--entities", "TimeActivity,Customer")
    assert again.exit_code == 0, again.output
    assert f"TimeActivity: {OFF}" in again.output
    rows = co.rows("TimeActivity")
    assert set(rows) == {first_id} and not rows[first_id].is_deleted

    only_off = _sync(env, "--company", co.key, "--entities", "TimeActivity")
    assert only_off.exit_code == 0, only_off.output
    assert "nothing landed" in only_off.output and second_id not in co.rows("TimeActivity")


def test_sync_of_a_tenant_without_the_setup_wizard_lands_nothing_and_says_what_to_do(
        shared_emulator: RunningEmulator, cron: tuple[Runtime, dict]) -> None:
    runtime, env = cron
    co = connect_company(shared_emulator, runtime, invoices=3, configure=False)

    refused = _sync(env, "--company", co.key)
    assert refused.exit_code == 1
    assert "has not completed the Setup Wizard" in refused.output
    assert "Next: complete the Setup Wizard in the admin app" in refused.output
    assert f"/integrations/{co.tenant}/setup" in refused.output
    assert "Traceback" not in refused.output
    assert _landed_row_count(runtime, co.key) == 0
    assert runtime.warehouse.cursors(co.key) == {}


def test_dagster_landing_skips_switched_off_entities_and_fails_clearly_before_the_wizard(
        shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    settings = emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", shared_emulator)
    with dagster_stack(settings, shared_emulator) as stack:
        co = stack.connect(invoices=3, entities={"TimeActivity": False})
        _time_activity(co, "Edging")

        # What a webhook naming Customer and TimeActivity (or a poll of both) materializes.
        selection = [entity_asset_key("Customer"), entity_asset_key("TimeActivity")]
        result = dg.materialize([qbo_raw_entities], partition_key=co.key, resources=stack.resources,
                                instance=stack.instance, selection=selection, tags={"qbo/trigger": "webhook"})
        assert result.success
        metas = {m.asset_key: {k: getattr(v, "value", v) for k, v in m.materialization.metadata.items()}
                 for m in result.get_asset_materialization_events()}
        assert metas[entity_asset_key("TimeActivity")] == {"company": co.key, "mode": "skipped", "reason": OFF}
        assert metas[entity_asset_key("Customer")]["rows_inserted"] > 0
        assert co.rows("TimeActivity") == {} and co.rows("Customer")
        # the instance's record of the skipped asset says it too
        latest = stack.instance.get_latest_materialization_event(entity_asset_key("TimeActivity"))
        assert latest is not None and latest.asset_materialization.metadata["reason"].value == OFF

        # The daily backstop's checks do not hold the switched-off entity against QuickBooks.
        checked = dg.materialize([qbo_raw_entities, qbo_entity_checks], partition_key=co.key,
                                 resources=stack.resources, instance=stack.instance,
                                 selection=dg.AssetSelection.assets(entity_asset_key("TimeActivity")))
        assert checked.success
        evaluations = [e.asset_check_evaluation_data for e in checked.all_events
                       if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert evaluations and all(ev.passed for ev in evaluations)
        assert all(ev.metadata["not_compared"].value == OFF for ev in evaluations)

        fresh = stack.connect(invoices=3, configure=False)
        failed = dg.materialize([qbo_raw_entities], partition_key=fresh.key, resources=stack.resources,
                                instance=stack.instance, raise_on_error=False)
        assert not failed.success
        (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
        text = failure.step_failure_data.user_failure_data.description
        assert "has not completed the Setup Wizard" in text and "complete the Setup Wizard in the admin app" in text
        # no retries: only an admin can fix it
        assert not [e for e in failed.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert _landed_row_count(stack.runtime, fresh.key) == 0
