"""``qb-pipelines sync``: headless landing of one company, its summary and its error messages.

A real emulator over HTTP, a real SQLite store and warehouse, the company connected through the
real connections store (tokens from the emulator's test route, as the OAuth callback stores
them); the command runs through Click's runner with the environment a cron job would have.
"""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner, Result

from qb_pipelines.cli import cli
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.connections import ConnectionStore
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.warehouse import tables_for
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime


@dataclass
class World:
    emulator: RunningEmulator
    url: str
    engine: sa.Engine
    runtime: Runtime
    env: dict[str, str]

    @property
    def store(self) -> ConnectionStore:
        return self.runtime.connections

    def connect(self, invoices: int = 20) -> tuple[str, str, str]:
        """A new company seeded with ``invoices``, connected for a new tenant: (key, tenant, realm)."""
        realm = self.emulator.emu.engine.create_company(f"Sync Co {secrets.token_hex(2)}")
        seed_company(self.emulator.emu, realm, invoices=invoices)
        tenant = f"t{secrets.token_hex(3)}"
        self.runtime.tenants.ensure_tenant(tenant, f"Tenant {tenant}")
        body = requests.post(f"{self.emulator.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
        self.store.save_tokens_on_connect(tenant, "emulator", realm, f"Company {realm}", "demo@example.com",
                                          "Demo", "User", TokenSet.from_response(body, realm_id=realm))
        return company_key(tenant, realm), tenant, realm

    def sync(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["sync", *args], env=self.env, catch_exceptions=False)

    def rows(self, entity: str, key: str) -> dict[str, sa.Row]:
        main, _ = tables_for(entity)
        with self.engine.connect() as conn:
            return {r.id: r for r in conn.execute(sa.select(main).where(main.c.company_key == key))}

    def counts(self, realm: str) -> dict:
        return requests.get(f"{self.emulator.url}/_emulator/companies/{realm}/counts", timeout=30).json()

    def act(self, realm: str, entity: str, operation: str, body: dict) -> dict:
        resp = requests.post(f"{self.emulator.url}/_emulator/companies/{realm}/act",
                             json={"entity": entity, "operation": operation, "body": body}, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()[entity]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    running = start_in_thread(Emulator(EmulatorSettings()))
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('sync')) / 'qb.sqlite'}"
    key = generate_key()
    env = {
        "QB_DATABASE_URL": url, "QB_FERNET_KEY": key, "QBO_CLIENT_ID": "emulator-client-id",
        "QBO_CLIENT_SECRET": "emulator-client-secret", "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": running.url,
    }
    runtime = Runtime.from_env(env)
    try:
        yield World(running, url, runtime.engine, runtime, env)
    finally:
        runtime.close()
        running.stop()


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
    key, _, realm = world.connect(invoices=30)

    first = world.sync("--company", key)
    assert first.exit_code == 0, first.output
    table = _table(first.output)
    assert set(table) == {e.name for e in registry.ENTITIES}
    counts = world.counts(realm)
    for entity in ("Customer", "Invoice", "Payment", "Item"):
        landed = [r for r in world.rows(entity, key).values() if not r.is_deleted]
        assert len(landed) == counts[entity]["active"] + counts[entity]["inactive"] > 0, entity
        assert table[entity][0] == "full"
        assert _number(table[entity][-5]) == len(landed)  # inserted
    assert "Invoice: full, page 1" in first.output  # a progress line per page (not a terminal)
    assert f"{key}: " in first.output and "API calls" in first.output

    customer = world.act(realm, "Customer", "create", {"DisplayName": f"Cron Customer {secrets.token_hex(3)}"})
    invoice_id = sorted(world.rows("Invoice", key))[0]
    world.act(realm, "Invoice", "update", {"Id": invoice_id, "PrivateNote": "edited for the cron sync"})

    second = world.sync("--company", key, "--entities", "Customer,invoice")
    assert second.exit_code == 0, second.output
    table = _table(second.output)
    assert set(table) == {"Customer", "Invoice"}
    assert table["Customer"][0] == table["Invoice"][0] == "incremental"
    assert _number(table["Customer"][1]) == 1  # inserted (QBO may also touch the invoice's customer)
    assert [_number(c) for c in table["Invoice"][1:3]] == [0, 1]
    assert customer["Id"] in world.rows("Customer", key)
    assert "edited for the cron sync" in str(world.rows("Invoice", key)[invoice_id].raw)


def test_full_refresh_of_one_entity_rereads_it_and_flags_what_quickbooks_deleted(world: World) -> None:
    key, _, realm = world.connect(invoices=10)
    assert world.sync("--company", key, "--entities", "Customer,Invoice").exit_code == 0
    gone = next(i for i, r in sorted(world.rows("Invoice", key).items()) if r.balance == r.total_amt)  # unpaid
    world.act(realm, "Invoice", "delete", {"Id": gone})  # deleted in QuickBooks since the last sync

    full = world.sync("--company", key, "--full", "--entities", "Invoice")
    assert full.exit_code == 0, full.output
    table = _table(full.output)
    assert set(table) == {"Invoice"} and table["Invoice"][0] == "full"
    assert _number(table["Invoice"][3]) >= 1  # deleted
    assert world.rows("Invoice", key)[gone].is_deleted


def test_an_unknown_company_lists_the_known_ones(world: World) -> None:
    key, _, _ = world.connect(invoices=1)
    result = world.sync("--company", "nobody-123")
    assert result.exit_code == 1
    assert "no tenant 'nobody'" in result.output
    assert "Known companies:" in result.output and key in result.output


def test_an_unknown_entity_names_the_valid_ones(world: World) -> None:
    key, _, _ = world.connect(invoices=1)
    result = world.sync("--company", key, "--entities", "Invoice,Gizmo")
    assert result.exit_code == 1
    assert "unknown QuickBooks entity 'Gizmo'" in result.output and "JournalEntry" in result.output


def test_an_expired_session_says_reconnect_in_the_admin_web_app(world: World) -> None:
    key, tenant, realm = world.connect(invoices=1)
    # The user disconnected the app inside QuickBooks: every token of the company is dead.
    requests.post(f"{world.emulator.url}/_emulator/oauth/revoke-all", json={"realmId": realm},
                  timeout=10).raise_for_status()
    requests.post(f"{world.emulator.url}/_emulator/oauth/expire", json={"realmId": realm, "what": "access"},
                  timeout=10).raise_for_status()

    result = world.sync("--company", key, "--entities", "Customer")
    assert result.exit_code == 1
    assert "reconnect in the admin web app" in result.output
    assert world.rows("Customer", key) == {}

    # Now the store knows: the next attempt says so before calling QuickBooks.
    again = world.sync("--company", key)
    assert again.exit_code == 1
    assert "session expired" in again.output and "reconnect it in the admin web app" in again.output
    assert world.store.get(tenant).state.value == "session_expired"


def test_missing_settings_are_named(world: World) -> None:
    env = {k: v for k, v in world.env.items() if k != "QB_FERNET_KEY"}
    result = CliRunner().invoke(cli, ["sync", "--company", "x-1"], env={**env, "QB_FERNET_KEY": ""})
    assert result.exit_code == 1
    assert "QB_FERNET_KEY is not set" in result.output
