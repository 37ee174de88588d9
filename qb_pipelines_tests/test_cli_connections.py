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


def _emulator_refresh_token(emulator: RunningEmulator, realm: str) -> str:
    """A refresh token of ``realm``, as `qb-pipelines emulator tokens REALM` prints it."""
    result = CliRunner().invoke(cli, ["emulator", "tokens", realm, "--url", emulator.url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["refresh_token"])


def test_connections_add_connects_a_company_from_a_refresh_token_file(
        env: dict[str, str], emulator: RunningEmulator, tmp_path: Path) -> None:
    """End to end against the emulator: the tenant is created, the token proven and rotated, the company synced."""
    realm = new_company(emulator, "Scripted Co")
    token = _emulator_refresh_token(emulator, realm)
    token_file = tmp_path / "token.txt"
    token_file.write_text(token + "\n")

    code, out = _invoke(env, "connections", "add", "scripted", "--realm", realm, "--refresh-token-file",
                        str(token_file), "--tenant-name", "Scripted")
    assert code == 0, out
    assert token not in out
    shown = json.loads(out)
    assert shown["kind"] == "first" and shown["realm_id"] == realm and shown["company_name"] == "Scripted Co"
    assert shown["user_email"]

    runtime = Runtime.from_env(env)
    with runtime:
        view = runtime.connections.get("scripted")
        assert view.state is ConnectionState.CONNECTED and view.realm_id == realm
        assert runtime.tenants.get("scripted").name == "Scripted"
        with runtime.engine.connect() as db:
            stored = db.exec_driver_sql("SELECT refresh_token_enc FROM qb_connections").scalar_one()
        assert token not in stored  # encrypted,
        assert SecretBox(env["QB_FERNET_KEY"]).decrypt(stored) != token  # and the rotated one
        assert runtime.client_for("scripted").company_info()["CompanyName"] == "Scripted Co"

    # the same command again, the token read from stdin: a reconnect of the same company
    result = CliRunner().invoke(cli, ["connections", "add", "scripted", "--realm", realm, "--refresh-token-file", "-"],
                                env=env, input=_emulator_refresh_token(emulator, realm) + "\n", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "reconnect"


def test_connections_add_refuses_a_bad_token_and_a_wrong_realm_in_one_line(
        env: dict[str, str], emulator: RunningEmulator, tmp_path: Path) -> None:
    realm, other = new_company(emulator, "Token Co"), new_company(emulator, "Other Co")
    token_file = tmp_path / "token.txt"

    token_file.write_text("RT1-12-H0-1790000000notarealtokenatallxyz")
    code, out = _invoke(env, "connections", "add", "acme", "--realm", realm, "--refresh-token-file", str(token_file))
    assert code == 1 and "refused the refresh token" in out and "emulator tokens" in out
    assert "Traceback" not in out and "notarealtoken" not in out and len(out.strip().splitlines()) == 1

    token = _emulator_refresh_token(emulator, realm)
    token_file.write_text(token)
    code, out = _invoke(env, "connections", "add", "acme", "--realm", other, "--refresh-token-file", str(token_file))
    assert code == 1 and f"does not open company {other}" in out and "realm" in out
    assert "Traceback" not in out and token not in out and len(out.strip().splitlines()) == 1
    with Runtime.from_env(env) as runtime:
        assert runtime.connections.get("acme").state is ConnectionState.NOT_CONNECTED

    code, out = _invoke(env, "connections", "add", "Not A Key!", "--realm", realm, "--refresh-token-file",
                        str(token_file))
    assert code == 1 and "tenants create" in out
    options = [o for p in cli.commands["connections"].commands["add"].params for o in p.opts]
    assert "--refresh-token" not in options  # never on the command line (shell history, ps)
