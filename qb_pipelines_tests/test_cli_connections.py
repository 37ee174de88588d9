"""The connection-side commands: users, tenants, keys and token refresh, on a real SQLite store."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from qb_pipelines.cli import cli
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import emulator_settings, new_company, settings_env


@pytest.fixture
def env(tmp_path: Path, emulator: RunningEmulator) -> dict[str, str]:
    """The environment of a deployment on a fresh SQLite store, next to a fresh emulator."""
    return settings_env(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", emulator,
                                          redirect_uri="http://127.0.0.1:8000/oauth/callback"))


def _invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_users_create_list_and_refuse_weak_password(env: dict[str, str]) -> None:
    code, out = _invoke(env, "users", "create", "admin@example.com", "--role", "admin", "--password", "correct horse")
    assert code == 0 and json.loads(out)["role"] == "admin"
    code, out = _invoke(env, "users", "create", "viewer@example.com", "--role", "viewer", "--password", "short")
    assert code != 0 and "too short" in out
    code, out = _invoke(env, "users", "list")
    listed = json.loads(out)
    assert listed == [{"email": "admin@example.com", "role": "admin"}]
    assert "correct horse" not in out


def test_keys_generate_gives_a_working_fernet_key(env: dict[str, str]) -> None:
    code, out = _invoke(env, "keys", "generate")
    assert code == 0
    box = SecretBox(out.strip())
    assert box.decrypt(box.encrypt("secret")) == "secret"


def test_tenants_create_needs_the_key_and_says_so(env: dict[str, str]) -> None:
    code, out = _invoke({**env, "QB_FERNET_KEY": ""}, "tenants", "create", "acme", "Acme")
    assert code != 0 and "QB_FERNET_KEY" in out and "keys generate" in out
    code, out = _invoke(env, "tenants", "create", "acme", "Acme Landscaping")
    assert code == 0 and json.loads(out) == {"key": "acme", "name": "Acme Landscaping"}


def test_connections_refresh_refreshes_due_and_expires_revoked(env: dict[str, str], emulator: RunningEmulator) -> None:
    """A connection whose token lapses soon is refreshed; one Intuit revoked becomes session expired."""
    runtime = Runtime.from_env(env)
    store = runtime.connections
    realms = [new_company(emulator, f"Refresh Co {i}") for i in range(2)]
    with EmulatorControl(emulator.url) as control:
        for key, realm in zip(("alive", "revoked"), realms, strict=True):
            runtime.tenants.ensure_tenant(key, key.title())
            tokens = TokenSet.from_response(control.tokens(realm), realm_id=realm, now=emulator.emu.clock.now())
            # pretend the access token lapses in 2 minutes, so the refresh is due
            tokens = dataclasses.replace(tokens, access_expires_at=tokens.access_expires_at - timedelta(minutes=58))
            store.save_tokens_on_connect(key, "emulator", realm, f"Refresh Co {key}", "demo@example.com", "Demo",
                                         "User", tokens)
        control.revoke_all(realms[1])

    code, out = _invoke(env, "connections", "refresh")
    assert code == 0, out
    assert json.loads(out) == {"refreshed": ["alive"], "expired": ["revoked"], "errors": {}}
    alive = store.get("alive")
    assert alive.state is ConnectionState.CONNECTED
    assert alive.access_expires_at > emulator.emu.clock.now() + timedelta(minutes=50)
    assert store.get("revoked").state is ConnectionState.SESSION_EXPIRED
    runtime.close()
