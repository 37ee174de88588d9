"""The harness the other tests stand on does what it says, against a real emulator and store.

A company connected with :func:`~qb_pipelines_tests.harness.connect_company` is stored as the
OAuth callback stores one and configured as the Setup Wizard configures one; it lands through
the product's client into the runtime's warehouse; disconnected inside QuickBooks it can no
longer land, and reconnected it can again. The environment :func:`settings_env` writes reads
back as the same settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.harness import connect_company, emulator_settings, settings_env


@pytest.fixture
def runtime(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", shared_emulator)) as rt:
        yield rt


def test_a_connected_company_is_stored_configured_and_lands_what_quickbooks_holds(
        shared_emulator: RunningEmulator, runtime: Runtime) -> None:
    co = connect_company(shared_emulator, runtime, name="Harness Landscaping", invoices=5)
    view = runtime.connections.get(co.tenant)
    assert view is not None and view.state is ConnectionState.CONNECTED
    assert view.company_name == "Harness Landscaping" and view.realm_id == co.realm
    assert runtime.tenant_settings.get(co.tenant).configured

    result = co.land(["Customer", "Invoice"])
    counts = co.counts()
    for entity in ("Customer", "Invoice"):
        landed = {i for i, r in co.rows(entity).items() if not r.is_deleted}
        assert landed == {b["Id"] for b in co.export(entity, include_deleted=False)}, entity
        assert len(landed) == counts[entity]["active"] + counts[entity]["inactive"] > 0
        assert result.entities[entity].inserted == len(landed)


def test_disconnected_inside_quickbooks_it_cannot_land_until_reconnected(
        shared_emulator: RunningEmulator, runtime: Runtime) -> None:
    co = connect_company(shared_emulator, runtime, invoices=2, configure=False)
    assert not runtime.tenant_settings.get(co.tenant).configured
    co.disconnect_in_quickbooks()
    with pytest.raises(QBOError):
        co.land(["Customer"])
    assert co.rows("Customer") == {}

    co.reconnect()
    assert co.land(["Customer"]).entities["Customer"].inserted == len(co.export("Customer", include_deleted=False))


def test_the_environment_it_writes_reads_back_as_the_same_settings(shared_emulator: RunningEmulator) -> None:
    settings = emulator_settings("sqlite:///x.sqlite", shared_emulator, redirect_uri="http://127.0.0.1:8000/cb")
    assert AppSettings.from_env(settings_env(settings)) == settings
