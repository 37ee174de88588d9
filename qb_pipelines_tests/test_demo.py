"""The pieces the demo is made of.

The demo itself runs end to end, as real processes, in ``test_no_orphans.py``: the headless demo
(every entity, report month and check, then a webhook change through the daemon) and the
interactive one, each checked to leave no process behind.
"""

import stat
from pathlib import Path

import dagster as dg
import pytest

from qb_pipelines.demo.config import SECRET_NAMES
from qb_pipelines.demo.instance import write_demo_instance
from qb_pipelines.demo.secrets_file import load_secrets
from qb_pipelines_tests.databases import throwaway_postgres

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
