"""The pieces the demo is made of.

The demo itself runs end to end, as real processes, in ``test_no_orphans.py``: the headless demo
(every entity, report month and check, then a webhook change through the daemon) and the
interactive one, each checked to leave no process behind.
"""

import shlex
import stat
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from qb_pipelines.demo.config import ADMIN_EMAIL, DEMO_TENANT, SECRET_NAMES, SECRETS_FILE
from qb_pipelines.demo.connect import prepare_store
from qb_pipelines.demo.instance import write_demo_instance
from qb_pipelines.demo.secrets_file import SHELL_NAMES, demo_environment, load_secrets, source_command, sqlite_url
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_postgres
from qb_pipelines_tests.harness import connect_company, new_company

ROOT = Path(__file__).resolve().parent.parent


def test_demo_secrets_are_generated_once_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "secrets.env"
    first, created = load_secrets(path)
    assert set(created) == set(SECRET_NAMES) and all(first[n] for n in SECRET_NAMES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["QB_FERNET_KEY"] != first["QB_SESSION_SECRET"]

    again, created_again = load_secrets(path)
    assert created_again == [] and again == first

    # a file from an older demo missing a secret gets it added, the others kept
    path.write_text(f"QB_FERNET_KEY={first['QB_FERNET_KEY']}\n")
    path.chmod(0o644)
    completed, added = load_secrets(path)
    assert completed["QB_FERNET_KEY"] == first["QB_FERNET_KEY"]
    assert set(added) == set(SECRET_NAMES) - {"QB_FERNET_KEY"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_demo_instance_polls_the_run_queue_every_second(tmp_path: Path) -> None:
    home = write_demo_instance(tmp_path / "dagster_home", dequeue_interval_s=1)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        # Dagster's queue, which also tags UI-launched runs with their company (defs.run_coordinator)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert type(instance.run_coordinator).__name__ == "CompanyRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1


@pytest.mark.postgres
def test_deployment_dagster_yaml_limits_one_run_per_company_and_the_qbo_api_pool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    with throwaway_postgres() as url:
        for key, value in {"DAGSTER_PG_HOST": url.host or "127.0.0.1", "DAGSTER_PG_PORT": str(url.port or 5432),
                           "DAGSTER_PG_USER": url.username or "postgres", "DAGSTER_PG_PASSWORD": url.password or "",
                           "DAGSTER_PG_DB": url.database or ""}.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            config = instance.get_concurrency_config()
            limits = config.run_queue_config.tag_concurrency_limits
            assert {"key": "qbo/company", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
            assert config.pool_config.default_pool_limit >= 1
            # the pool the QuickBooks steps use gets that limit as soon as a step asks for it
            instance.event_log_storage.initialize_concurrency_limit_to_default("qbo_api")
            info = instance.event_log_storage.get_concurrency_info("qbo_api")
            assert info.slot_count == config.pool_config.default_pool_limit


def test_the_reference_app_key_and_callback_secret_are_kept_reused_and_replaced_when_revoked(tmp_path: Path) -> None:
    from qb_pipelines.demo.refapp import reference_app_environment
    from qb_pipelines.sync.runtime import Runtime
    from qb_pipelines_tests.harness import emulator_settings, settings_env

    settings = emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", "http://127.0.0.1:9")
    env = settings_env(settings)
    secrets_path = tmp_path / "secrets.env"
    with Runtime(settings) as runtime:
        runtime.tenants.ensure_tenant("demo", "Demo")
    first = reference_app_environment(env, secrets_path, tmp_path, web_url="http://127.0.0.1:8000", port=8100)
    assert first["REFAPP_TENANT"] == "demo" and first["REFAPP_POLL_SECONDS"] == "1"
    assert first["REFAPP_DATABASE"] == str(tmp_path / "refapp.sqlite")
    assert first["REFAPP_API_URL"] == "http://127.0.0.1:8000"
    kept, _ = load_secrets(secrets_path)
    assert kept["REFAPP_API_KEY"] == first["REFAPP_API_KEY"]
    assert kept["REFAPP_CALLBACK_SECRET"] == first["REFAPP_CALLBACK_SECRET"]
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    with Runtime(settings) as runtime:
        assert runtime.api_keys.tenant_of(first["REFAPP_API_KEY"]) == "demo"
        callback = runtime.feed.callback("demo")
        assert callback is not None and callback.url == "http://127.0.0.1:8100/hooks/quickbooks"
        assert runtime.feed.callback_secret("demo") == first["REFAPP_CALLBACK_SECRET"]

    again = reference_app_environment(env, secrets_path, tmp_path, web_url="http://127.0.0.1:8000", port=8100)
    assert again["REFAPP_API_KEY"] == first["REFAPP_API_KEY"]  # restart: the same key, still valid
    assert again["REFAPP_CALLBACK_SECRET"] == first["REFAPP_CALLBACK_SECRET"]

    with Runtime(settings) as runtime:  # revoked meanwhile: a new key replaces it
        runtime.api_keys.revoke("demo", first["REFAPP_API_KEY"][:12])
    replaced = reference_app_environment(env, secrets_path, tmp_path, web_url="http://127.0.0.1:8000", port=8100)
    assert replaced["REFAPP_API_KEY"] != first["REFAPP_API_KEY"]
    assert load_secrets(secrets_path)[0]["REFAPP_API_KEY"] == replaced["REFAPP_API_KEY"]
    # the demo's own secrets are untouched
    assert all(kept[n] == load_secrets(secrets_path)[0][n] for n in SECRET_NAMES)


def _start(root: Path, emulator: RunningEmulator, realm: str) -> tuple[dict[str, str], object]:
    """What a demo start does to its folder: secrets, the environment (written for shells), the store."""
    values, _ = load_secrets(root / SECRETS_FILE)
    env = demo_environment(values, database_url=sqlite_url(root / "qb_pipelines.sqlite"), emulator_url=emulator.url,
                           web_port=8790, dagster_home=root / "dagster_home", secrets_path=root / SECRETS_FILE)
    return env, prepare_store(env, emulator.url, values["QB_DEMO_ADMIN_PASSWORD"], realm_id=realm)


def test_a_restarted_demo_keeps_the_users_connection_as_they_left_it(
        shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    root = tmp_path / ".demo"
    demo_books = new_company(shared_emulator, "Demo Books", invoices=2)
    other_books = new_company(shared_emulator, "Other Books")

    env, first = _start(root, shared_emulator, demo_books)
    assert first.connect_kind == "first" and first.realm_id == demo_books  # a fresh store: the demo connects

    with Runtime.from_env(env) as runtime:
        # the user switches the demo tenant to another company in the admin app
        connect_company(shared_emulator, runtime, realm=other_books, tenant=DEMO_TENANT, configure=False)
        switched = runtime.connections.get(DEMO_TENANT)
        events = len(runtime.connections.events(DEMO_TENANT))
    assert switched is not None and switched.realm_id == other_books

    env, again = _start(root, shared_emulator, demo_books)  # `make demo` restarted
    assert again.realm_id == other_books  # not switched back to the demo company
    assert (again.connect_kind, again.realm_id, again.state) == ("kept", other_books, "connected")
    assert again.company_key == company_key(DEMO_TENANT, other_books) and again.company_name == "Other Books"
    with Runtime.from_env(env) as runtime:
        kept = runtime.connections.get(DEMO_TENANT)
        assert kept is not None and kept.realm_id == other_books and kept.state is ConnectionState.CONNECTED
        assert kept.token_version == switched.token_version  # no new grant
        assert len(runtime.connections.events(DEMO_TENANT)) == events  # no connect, no switch
        runtime.connections.disconnect(DEMO_TENANT)  # then the user disconnects

    env, third = _start(root, shared_emulator, demo_books)
    assert (third.connect_kind, third.realm_id, third.state) == ("kept", other_books, "disconnected")
    with Runtime.from_env(env) as runtime:
        left = runtime.connections.get(DEMO_TENANT)
        assert left is not None and left.state is ConnectionState.DISCONNECTED and left.realm_id == other_books


def test_a_shell_that_sources_secrets_env_talks_to_the_demo(shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    root = tmp_path / ".demo"
    _, connected = _start(root, shared_emulator, new_company(shared_emulator, "Shell Books", invoices=2))
    path = root / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert all(f"\n{name}=" in text for name in (*SHELL_NAMES, *SECRET_NAMES))
    assert load_secrets(path)[1] == []  # the demo reads it back, secrets unchanged

    # a shell with nothing but that file, in another folder (where a default store would be created)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli = f"{shlex.quote(sys.executable)} -m qb_pipelines.cli"
    script = (f"{source_command(path)}; {cli} users list && "
              f"{cli} sync --company {DEMO_TENANT} --entities Customer --wait 0")
    done = subprocess.run(["bash", "-c", script], cwd=elsewhere, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ADMIN_EMAIL in done.stdout  # the demo's store
    assert f"syncing {connected.company_key} (emulator" in done.stdout  # its tenant, token key and emulator
    assert list(elsewhere.iterdir()) == []  # no other database appeared
