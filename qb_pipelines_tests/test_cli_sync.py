"""``qb-pipelines sync``: headless landing of one company, its summary and its error messages.

A real emulator over HTTP, a real SQLite store and warehouse, each company connected through the
real connections store as the OAuth callback stores it (``harness.connect_company``); the command
runs through Click's runner with the environment a cron job would have.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qb_pipelines.cli import cli
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import Connected, connect_company, emulator_settings, settings_env


@dataclass
class World:
    """The store the command works on, its runtime, and the environment a cron job would have."""

    emulator: RunningEmulator
    runtime: Runtime
    env: dict[str, str]

    def connect(self, invoices: int = 20) -> Connected:
        """A new company seeded with ``invoices``, connected for a new tenant."""
        return connect_company(self.emulator, self.runtime, name=f"Sync Co {secrets.token_hex(2)}", invoices=invoices)

    def sync(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["sync", *args], env=self.env, catch_exceptions=False)


@pytest.fixture(scope="module")
def world(shared_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = emulator_settings(f"sqlite:///{Path(tmp_path_factory.mktemp('sync')) / 'qb.sqlite'}", shared_emulator)
    with Runtime(settings) as runtime:
        yield World(shared_emulator, runtime, settings_env(settings))


def _table(output: str) -> dict[str, list[str]]:
    """The summary table's rows by entity: [mode words..., inserted, updated, deleted, api calls, pages]."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("entity") and "api calls" in line)
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_sync_lands_a_company_prints_a_summary_then_picks_up_changes_incrementally(world: World) -> None:
    co = world.connect(invoices=30)

    first = world.sync("--company", co.key)
    assert first.exit_code == 0, first.output
    table = _table(first.output)
    assert set(table) == {e.name for e in registry.ENTITIES}
    counts = co.counts()
    for entity in ("Customer", "Invoice", "Payment", "Item"):
        landed = [r for r in co.rows(entity).values() if not r.is_deleted]
        assert len(landed) == counts[entity]["active"] + counts[entity]["inactive"] > 0, entity
        assert table[entity][0] == "full"
        assert _number(table[entity][-5]) == len(landed)  # inserted
    assert "Invoice: full, page 1" in first.output  # a progress line per page (not a terminal)
    assert f"{co.key}: " in first.output and "API calls" in first.output

    customer = co.act("Customer", "create", {"DisplayName": f"Cron Customer {secrets.token_hex(3)}"})
    invoice_id = sorted(co.rows("Invoice"))[0]
    co.act("Invoice", "update", {"Id": invoice_id, "PrivateNote": "edited for the cron sync"})

    second = world.sync("--company", co.key, "--entities", "Customer,invoice")
    assert second.exit_code == 0, second.output
    table = _table(second.output)
    assert set(table) == {"Customer", "Invoice"}
    assert table["Customer"][0] == table["Invoice"][0] == "incremental"
    assert _number(table["Customer"][1]) == 1  # inserted (QBO may also touch the invoice's customer)
    assert [_number(c) for c in table["Invoice"][1:3]] == [0, 1]
    assert customer["Id"] in co.rows("Customer")
    assert "edited for the cron sync" in str(co.rows("Invoice")[invoice_id].raw)


def test_full_refresh_of_one_entity_rereads_it_and_flags_what_quickbooks_deleted(world: World) -> None:
    co = world.connect(invoices=10)
    assert world.sync("--company", co.key, "--entities", "Customer,Invoice").exit_code == 0
    gone = next(i for i, r in sorted(co.rows("Invoice").items()) if r.balance == r.total_amt)  # unpaid
    co.act("Invoice", "delete", {"Id": gone})  # deleted in QuickBooks since the last sync

    full = world.sync("--company", co.key, "--full", "--entities", "Invoice")
    assert full.exit_code == 0, full.output
    table = _table(full.output)
    assert set(table) == {"Invoice"} and table["Invoice"][0] == "full"
    assert _number(table["Invoice"][3]) >= 1  # deleted
    assert co.rows("Invoice")[gone].is_deleted


def test_an_unknown_company_lists_the_known_ones(world: World) -> None:
    co = world.connect(invoices=1)
    result = world.sync("--company", "nobody-123")
    assert result.exit_code == 1
    assert "no tenant 'nobody'" in result.output
    assert "Known companies:" in result.output and co.key in result.output


def test_an_unknown_entity_names_the_valid_ones(world: World) -> None:
    co = world.connect(invoices=1)
    result = world.sync("--company", co.key, "--entities", "Invoice,Gizmo")
    assert result.exit_code == 1
    assert "unknown QuickBooks entity 'Gizmo'" in result.output and "JournalEntry" in result.output


def test_an_expired_session_says_reconnect_in_the_admin_web_app(world: World) -> None:
    co = world.connect(invoices=1)
    co.disconnect_in_quickbooks()  # every token of the company is dead

    result = world.sync("--company", co.key, "--entities", "Customer")
    assert result.exit_code == 1
    assert "reconnect in the admin web app" in result.output
    assert co.rows("Customer") == {}

    # Now the store knows: the next attempt says so before calling QuickBooks.
    again = world.sync("--company", co.key)
    assert again.exit_code == 1
    assert "session expired" in again.output and "reconnect it in the admin web app" in again.output
    assert world.runtime.connections.get(co.tenant).state.value == "session_expired"


def test_missing_settings_are_named(world: World) -> None:
    env = {k: v for k, v in world.env.items() if k != "QB_FERNET_KEY"}
    result = CliRunner().invoke(cli, ["sync", "--company", "x-1"], env={**env, "QB_FERNET_KEY": ""})
    assert result.exit_code == 1
    assert "QB_FERNET_KEY is not set" in result.output
