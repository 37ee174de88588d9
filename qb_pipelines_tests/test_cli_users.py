"""``qb-pipelines users unlock`` and ``users remove``: an admin's answers to a locked or departed user."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from qb_pipelines.cli import cli
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.signin_throttle import ACCOUNT, Claim, Refusal
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.web_fixtures import MovableClock

HOUR = timedelta(hours=1)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"QB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}", "QB_FERNET_KEY": generate_key()}


def _invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def _runtime(env: dict[str, str], clock: MovableClock | None = None) -> Runtime:
    settings = AppSettings(database_url=env["QB_DATABASE_URL"], fernet_key=env["QB_FERNET_KEY"], client_id="x",
                           client_secret="y")
    return Runtime(settings, clock=clock) if clock else Runtime(settings)


def test_users_unlock_opens_a_locked_account(env: dict[str, str]) -> None:
    assert _invoke(env, "users", "create", "locked@example.com", "--password", "long enough")[0] == 0
    clock = MovableClock()
    with _runtime(env, clock) as runtime:
        for _ in range(ACCOUNT.lock_after):
            assert isinstance(runtime.signin_throttle.claim("locked@example.com", "10.0.0.1"), Claim)
            clock.advance(ACCOUNT.max_delay_s)
        refusal = runtime.signin_throttle.claim("locked@example.com", "10.0.0.2")
        assert isinstance(refusal, Refusal) and refusal.scope == "account" and refusal.locked

    code, out = _invoke(env, "users", "unlock", "LOCKED@example.com")
    assert code == 0, out
    assert json.loads(out) == {"email": "locked@example.com", "unlocked": True}
    with _runtime(env, clock) as runtime:
        assert isinstance(runtime.signin_throttle.claim("locked@example.com", "10.0.0.3"), Claim)

    code, out = _invoke(env, "users", "unlock", "locked@example.com", "--address", "10.0.0.1")
    assert code == 0 and json.loads(out)["address"] == "10.0.0.1"
    code, out = _invoke(env, "users", "unlock", "ghost@example.com")
    assert code != 0 and "No user with the e-mail ghost@example.com" in out


def test_users_remove_deletes_the_user_and_ends_their_sessions(env: dict[str, str]) -> None:
    assert _invoke(env, "users", "create", "leaver@example.com", "--password", "long enough")[0] == 0
    with _runtime(env) as runtime:
        user = runtime.users.get("leaver@example.com")
        sid = runtime.web_sessions.start(user.id, HOUR)
        assert runtime.web_sessions.resolve(sid, HOUR) is not None

    code, out = _invoke(env, "users", "remove", "leaver@example.com")
    assert code == 0, out
    assert json.loads(out) == {"email": "leaver@example.com", "removed": True}
    with _runtime(env) as runtime:
        assert runtime.users.get("leaver@example.com") is None
        assert runtime.web_sessions.resolve(sid, HOUR) is None
    assert json.loads(_invoke(env, "users", "list")[1]) == []
    code, out = _invoke(env, "users", "remove", "leaver@example.com")
    assert code != 0 and "No user with the e-mail leaver@example.com" in out

