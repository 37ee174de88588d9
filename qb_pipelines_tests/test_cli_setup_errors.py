"""Bad configuration on the command line: one line with the next step and exit 1, never a traceback.

A wrong ``QB_DATABASE_URL`` (a database that does not exist, a closed port, an unknown scheme, a
SQLite folder that does not exist), a malformed ``QB_FERNET_KEY`` and a stored token that cannot be
decrypted, on the commands people run first: ``sync``, ``web``, ``users list``, ``connections refresh``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from qb_pipelines.cli import cli
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import postgres_admin_url
from qb_pipelines_tests.harness import complete_setup_wizard, emulator_settings, new_company, settings_env


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(database_url: str) -> dict[str, str]:
    """Everything ``sync``, ``web`` and ``users`` need, around ``database_url``."""
    return {"QB_DATABASE_URL": database_url, "QB_FERNET_KEY": generate_key(), "QBO_CLIENT_ID": "id",
            "QBO_CLIENT_SECRET": "secret", "QBO_ENVIRONMENT": "emulator", "QBO_EMULATOR_URL": "http://127.0.0.1:9",
            "QBO_REDIRECT_URI": "http://127.0.0.1:8000/oauth/callback", "QB_SESSION_SECRET": secrets.token_urlsafe(48)}


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def _one_line_error(result: Result, *words: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _missing_postgres_database() -> str:
    return postgres_admin_url().set(database=f"qbp_missing_{secrets.token_hex(4)}").render_as_string(
        hide_password=False)


@pytest.mark.parametrize("command", [("users", "list"), ("sync", "--company", "acme"), ("web", "--port", "0")])
def test_a_wrong_database_url_is_one_line_with_the_next_step(command: tuple[str, ...]) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{_closed_port()}/store"
    line = _one_line_error(_run(_env(closed), *command), "cannot open the store", "Next:", "QB_DATABASE_URL")
    assert "start the database server" in line

    line = _one_line_error(_run(_env(_missing_postgres_database()), *command), "does not exist", "Next:")
    assert "createdb" in line

    _one_line_error(_run(_env("mongodb://127.0.0.1/store"), *command), "QB_DATABASE_URL", "postgresql://")


def test_a_database_password_is_not_shown() -> None:
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{_closed_port()}/store"
    line = _one_line_error(_run(_env(url), "users", "list"), "cannot open the store")
    assert "hunter2secret" not in line


def test_a_sqlite_url_into_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such"
    for command in (("users", "list"), ("sync", "--company", "acme")):
        _one_line_error(_run(_env(f"sqlite:///{folder / 'store.sqlite'}"), *command), str(folder), "mkdir -p")
    assert not (tmp_path / "no").exists()


def test_without_a_database_url_the_command_says_which_store_it_uses(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QB_DATABASE_URL", raising=False)
    env = _env("")
    del env["QB_DATABASE_URL"]
    result = _run(env, "users", "list")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 1 and str(tmp_path / ".qb_pipelines.sqlite") in notes[0] and "QB_DATABASE_URL" in notes[0]
    # with the variable set, nothing is said
    result = _run({**env, "QB_DATABASE_URL": f"sqlite:///{tmp_path / 'set.sqlite'}"}, "users", "list")
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize("command", [("sync", "--company", "acme"), ("connections", "refresh")])
def test_a_malformed_fernet_key_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = {**_env(f"sqlite:///{tmp_path / 'store.sqlite'}"), "QB_FERNET_KEY": "not-a-fernet-key"}
    _one_line_error(_run(env, *command), "QB_FERNET_KEY", "keys generate")


def test_a_corrupted_stored_token_is_one_line_and_a_connection_error(tmp_path: Path,
                                                                      emulator: RunningEmulator) -> None:
    env = settings_env(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", emulator))
    realm = new_company(emulator, "Corrupt Co")
    with Runtime.from_env(env) as runtime, EmulatorControl(emulator.url) as control:
        runtime.tenants.ensure_tenant("acme", "Acme")
        complete_setup_wizard(runtime, "acme")  # else landing stops at the wizard, before the tokens
        tokens = TokenSet.from_response(control.tokens(realm), realm_id=realm, now=emulator.emu.clock.now())
        tokens = dataclasses.replace(tokens, access_expires_at=tokens.access_expires_at - timedelta(minutes=58))
        runtime.connections.save_tokens_on_connect("acme", "emulator", realm, "Corrupt Co", "demo@example.com",
                                                   "Demo", "User", tokens)
        with runtime.engine.begin() as db:  # a byte flipped in the database
            db.exec_driver_sql("UPDATE qb_connections SET refresh_token_enc = 'gAAAAABcorrupted', "
                               "access_token_enc = 'gAAAAABcorrupted'")
        assert runtime.connections.get("acme").state is ConnectionState.CONNECTED

        result = _run(env, "connections", "refresh")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert json.loads(result.stdout)["errors"].keys() == {"acme"}
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot be decrypted" in lines[0] and "Next: reconnect" in lines[0]
        view = runtime.connections.get("acme")
        assert view.state is ConnectionState.CONNECTION_ERROR  # the card shows the connection error
        assert "cannot be decrypted" in (view.last_error or "")

        result = _run(env, "sync", "--company", "acme")
        assert result.exit_code == 1 and "Traceback" not in result.output and "cannot be decrypted" in result.stderr
