"""``qb-pipelines api-keys``, ``feed`` and ``push``: through Click's runner with a cron job's environment.

A real emulator over HTTP, a real SQLite store shared with a runtime the test uses to set things
up and to check the outcome, a real HTTP receiver for the callback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qb_pipelines.cli import cli
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.sync.feed_delivery import verify
from qb_pipelines.sync.push import enqueue
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, connect_company, emulator_settings
from qb_pipelines_tests.receiver import Receiver


@dataclass
class World:
    emulator: RunningEmulator
    runtime: Runtime
    env: dict[str, str]

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, input=input, catch_exceptions=False)


@pytest.fixture
def world(emulator: RunningEmulator, tmp_path: Path) -> Iterator[World]:
    url, key = f"sqlite:///{tmp_path / 'store.sqlite'}", generate_key()
    env = {"QB_DATABASE_URL": url, "QB_FERNET_KEY": key, "QBO_CLIENT_ID": EMULATOR_CLIENT_ID,
           "QBO_CLIENT_SECRET": EMULATOR_CLIENT_SECRET, "QBO_ENVIRONMENT": "emulator", "QBO_EMULATOR_URL": emulator.url}
    with Runtime(emulator_settings(url, emulator, fernet_key=key)) as runtime:
        runtime.tenants.ensure_tenant("acme", "Acme")
        yield World(emulator, runtime, env)


# ---------------------------------------------------------------------------------- api-keys


def test_api_keys_are_shown_once_listed_without_the_key_and_revoked(world: World) -> None:
    made = world.run("api-keys", "create", "acme", "--name", "field app")
    assert made.exit_code == 0, made.output
    key = next(line.strip() for line in made.output.splitlines() if line.strip().startswith("qbk_"))
    assert "shown only now" in made.output and f"Authorization: Bearer {key}" in made.output
    assert "/api/v1/tenants/acme/" in made.output
    assert world.runtime.api_keys.tenant_of(key) == "acme"

    quiet = world.run("api-keys", "create", "acme", "-q")
    assert quiet.exit_code == 0 and quiet.output.strip().startswith("qbk_") and len(quiet.output.splitlines()) == 1

    listed = world.run("api-keys", "list", "acme")
    assert listed.exit_code == 0 and key not in listed.output
    keys = json.loads(listed.output)
    assert len(keys) == 2 and {k["name"] for k in keys} == {"field app", None}
    prefix = next(k["prefix"] for k in keys if k["name"] == "field app")
    assert [k["last_used_at"] is not None for k in keys if k["name"] == "field app"] == [True]  # used above
    assert [k["last_used_at"] for k in keys if k["name"] is None] == [None]
    assert key.startswith(prefix) and len(prefix) == 12

    too_short = world.run("api-keys", "revoke", "acme", "qbk_")
    assert too_short.exit_code == 2 and "whole prefix" in too_short.output
    assert world.run("api-keys", "revoke", "acme", "qbk_NOTAKEY00").exit_code == 1
    revoked = world.run("api-keys", "revoke", "acme", prefix)
    assert revoked.exit_code == 0 and json.loads(revoked.output)["revoked"] == 1
    assert world.runtime.api_keys.tenant_of(key) is None
    assert world.runtime.api_keys.tenant_of(quiet.output.strip()) == "acme"  # the other key still opens

    unknown = world.run("api-keys", "create", "nobody")
    assert unknown.exit_code == 1 and "tenants create nobody" in unknown.output


# ---------------------------------------------------------------------------------- feed


def test_a_callback_gets_a_generated_secret_printed_once_or_one_read_from_a_file(world: World,
                                                                                tmp_path: Path) -> None:
    made = world.run("feed", "callback", "acme", "--url", "https://app.example.com/hooks/qbo")
    assert made.exit_code == 0, made.output
    secret = world.runtime.feed.callback_secret("acme")
    assert secret in made.output and "shown only now" in made.output and "X-QBP-Signature" in made.output

    path = tmp_path / "secret.txt"
    path.write_text("from-a-file-0123456789\n")
    from_file = world.run("feed", "callback", "acme", "--url", "https://app.example.com/v2", "--secret-file", str(path))
    assert from_file.exit_code == 0 and "from-a-file" not in from_file.output
    assert world.runtime.feed.callback_secret("acme") == "from-a-file-0123456789"
    from_stdin = world.run("feed", "callback", "acme", "--url", "https://app.example.com/v3", "--secret-file", "-",
                           input="from-stdin-0123456789\n")
    assert from_stdin.exit_code == 0 and world.runtime.feed.callback_secret("acme") == "from-stdin-0123456789"
    short = world.run("feed", "callback", "acme", "--url", "https://x.example", "--secret-file", "-", input="short")
    assert short.exit_code == 1 and "16 characters" in short.output
    bad_url = world.run("feed", "callback", "acme", "--url", "ftp://x.example")
    assert bad_url.exit_code == 1 and "https://" in bad_url.output

    status = json.loads(world.run("feed", "status", "acme").output)
    assert status["url"] == "https://app.example.com/v3" and status["enabled"] is True and status["waiting"] == 0
    off = world.run("feed", "callback-off", "acme")
    assert off.exit_code == 0 and json.loads(world.run("feed", "status", "acme").output)["enabled"] is False
    world.runtime.tenants.ensure_tenant("globex", "Globex")
    assert world.run("feed", "callback-off", "globex").exit_code == 1


def test_feed_deliver_posts_signed_entries_and_feed_changes_reads_them(world: World) -> None:
    receiver = Receiver()
    try:
        world.run("feed", "callback", "acme", "--url", f"{receiver.url}/in", "--secret-file", "-",
                  input="a-secret-for-delivery-1")
        world.runtime.feed.append("acme", "9130", [NewEntry("Customer", "upsert", "58", {"display_name": "Ada"},
                                                            app_id="c1", sync_token="3")])
        delivered = world.run("feed", "deliver")
        assert delivered.exit_code == 0, delivered.output
        assert json.loads(delivered.output)[0]["delivered"] == 1
        (got,) = receiver.received
        assert verify(got.body, got.headers["x-qbp-signature"], "a-secret-for-delivery-1")

        world.runtime.feed.append("acme", "9130", [NewEntry("Customer", "upsert", "58", {"display_name": "Ada L"},
                                                            app_id="c1", sync_token="4")])
        receiver.answers[:] = [500]
        failed = world.run("feed", "deliver", "--tenant", "acme")
        assert failed.exit_code == 1 and "HTTP 500" in json.loads(failed.output)[0]["error"]

        read = json.loads(world.run("feed", "changes", "acme", "--after", "1").output)
        assert [c["data"]["display_name"] for c in read["changes"]] == ["Ada L"] and read["next"] == 2
    finally:
        receiver.stop()


# ---------------------------------------------------------------------------------- push


def test_push_sends_one_company_and_prints_what_happened(world: World) -> None:
    company = connect_company(world.emulator, world.runtime, tenant="acme")
    with world.runtime.engine.begin() as conn:
        enqueue(conn, "acme", entity="Customer", app_id="c1", version=1, data={"display_name": "Ada Lovelace"})
        enqueue(conn, "acme", entity="Item", app_id="svc", version=1,
                data={"name": "Lawn care", "type": "service", "unit_price": 45})
        enqueue(conn, "acme", entity="Invoice", app_id="inv-1", version=1,
                data={"customer_app_id": "c1", "lines": [{"item_app_id": "svc", "qty": 2, "unit_price": 45}]})
        enqueue(conn, "acme", entity="Item", app_id="bad", version=1,
                data={"name": "Bad", "type": "service", "income_account_id": "987654"})

    done = world.run("push", "--company", company.key)

    assert done.exit_code == 0, done.output
    lines = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in done.output.splitlines()
             if line.strip() and line.rsplit(None, 1)[-1].replace(",", "").isdigit()}
    assert lines["created in QuickBooks"] == "3" and lines["failed (see the dashboard)"] == "1"
    assert f"{company.key}: 3 written to QuickBooks, 1 failed" in done.output
    assert "/integrations/acme/sync" in done.output
    assert world.runtime.outbox.record("acme", "Invoice", "inv-1").status == "synced"
    assert world.run("push", "--company", "acme").exit_code == 0  # a tenant key means its company

    unknown = world.run("push", "--company", "nobody-123")
    assert unknown.exit_code == 1 and company.key in unknown.output


def test_push_says_why_nothing_was_sent(world: World) -> None:
    company = connect_company(world.emulator, world.runtime, tenant="acme", configure=False)
    with world.runtime.engine.begin() as conn:
        enqueue(conn, "acme", entity="Customer", app_id="c1", version=1, data={"display_name": "Ada Lovelace"})
    done = world.run("push", "--company", company.key)
    assert done.exit_code == 1 and "nothing was sent: complete the Setup Wizard" in done.output
    assert world.runtime.outbox.record("acme", "Customer", "c1").status == "pending"
