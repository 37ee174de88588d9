"""The services CI must provide: PostgreSQL and Chromium.

These tests FAIL, never skip, when a service is missing: a green run must mean the PostgreSQL
and browser tests really ran. Each failure says how to provide the service.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from qb_pipelines_tests.databases import postgres_admin_url, throwaway_postgres

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.postgres
def test_postgres_answers() -> None:
    url = postgres_admin_url()
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {url.render_as_string(hide_password=True)}: {exc.orig}\n"
            "Start it (`make test` does: pg_ctlcluster --skip-systemctl-redirect <version> main start), "
            "create database `test`, or point QB_TEST_POSTGRES_URL at a PostgreSQL you can use."
        )
    finally:
        engine.dispose()


@pytest.mark.browser
def test_chromium_is_installed() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (`make test` does).")
    out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Chromium" in out.stdout


@pytest.mark.browser
def test_playwright_drives_the_system_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (`make test` does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()
            page.set_content("<title>qb</title><button id='go' onclick=\"this.textContent='Connected'\">Connect</button>")
            page.click("#go")
            assert page.text_content("#go") == "Connected"
        finally:
            browser.close()


@pytest.mark.postgres
def test_deployment_dagster_yaml_stores_runs_in_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The top-level dagster.yaml gives a working PostgreSQL instance from DAGSTER_PG_* alone."""
    import shutil

    import dagster as dg

    with throwaway_postgres("qb_dagster_yaml") as url:
        shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", tmp_path / "dagster.yaml")
        for key, value in {
            "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_USER": url.username or "postgres",
            "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_DB": url.database or "",
        }.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"

            @dg.asset
            def probe() -> int:
                return 1

            result = dg.materialize([probe], instance=instance)
            assert result.success
            assert instance.get_runs_count() == 1
