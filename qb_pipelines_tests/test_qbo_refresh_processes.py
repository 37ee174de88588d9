"""Concurrent token refresh from several processes ends in exactly one refresh and no invalid_grant.

The setting: one tenant connected to an emulator company, its tokens in the connections store
(SQLite file, then PostgreSQL). The emulator expires the access token; then five processes, each
with three threads, call the API at the same moment through ``ConnectionStore.token_source``.
Every call gets a 401, every thread asks for a refresh, and the store's row lock must let exactly
one of them trade the refresh token at Intuit while the others pick up what it stored.

How refreshes are counted, from the emulator's side: each token-endpoint refresh mints one access
token in the grant (a superseded refresh token used again inside Intuit's grace period mints
another without rotating, so a double refresh cannot hide). The emulator runs in this process, so
the test reads its token table directly; the workers only speak HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.connections import ConnectionState, ConnectionStore
from qb_pipelines.store.crypto import SecretBox, generate_key
from qb_pipelines.store.db import make_engine, migrate, session_factory
from qb_pipelines.store.models import Connection, Tenant
from qb_pipelines.store.tenants import TenantStore
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.emulator_client import issue_tokens

PROCESSES = 5
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_database(request.param, tmp_path, "qbp_refresh") as url:
        yield url


def _access_tokens_minted(running: RunningEmulator, realm: str) -> int:
    with running.emu.db.read() as c:
        return c.execute(
            "SELECT COUNT(*) FROM oauth_tokens WHERE kind='access' AND grant_id IN "
            "(SELECT grant_id FROM oauth_grants WHERE realm=?)", (realm,)).fetchone()[0]


def _token_version(engine: sa.Engine, tenant: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(Connection.token_version).join(Tenant, Tenant.id == Connection.tenant_id)
            .where(Tenant.key == tenant)).scalar_one()


def test_refresh_from_several_processes_happens_once(emulator: RunningEmulator, db_url: str, tmp_path: Path) -> None:
    realm = emulator.emu.engine.create_company("Keller Plumbing")
    key = generate_key()
    engine = make_engine(db_url)
    migrate(engine)
    store = ConnectionStore(session_factory(engine), SecretBox(key))
    tenant = f"tenant-{secrets.token_hex(4)}"
    TenantStore(session_factory(engine)).ensure_tenant(tenant, "Acme Field Services")
    issued = issue_tokens(emulator, realm)
    store.save_tokens_on_connect(tenant, "emulator", realm, "Keller Plumbing", "demo@example.com", "Demo", "User",
                                 TokenSet.from_response(issued, realm_id=realm))
    version_before = _token_version(engine, tenant)
    minted_before = _access_tokens_minted(emulator, realm)

    # the access token lapses at Intuit while the store still thinks it has most of an hour
    with EmulatorControl(emulator.url) as control:
        assert control.expire_tokens(realm, "access")["expired"]["access"] == 1

    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "QB_FERNET_KEY": key}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "qb_pipelines_tests.refresh_worker", emulator.url, db_url, tenant, realm,
             str(sync), str(i)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(sync.glob("ready-*"))) < PROCESSES:
            dead = [w for w in workers if w.poll() is not None]
            assert not dead, dead[0].communicate()[1]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.02)
        (sync / "go").touch()  # all at once
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()

    results = []
    for (out, err), worker in zip(outputs, workers, strict=True):
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    errors = [e for r in results for e in r["errors"]]
    assert errors == []  # in particular no InvalidGrantError
    assert sum(len(r["ok"]) for r in results) == PROCESSES * 3
    assert {name for r in results for name in r["ok"]} == {"Keller Plumbing"}
    assert sum(r["refresh_requests"] for r in results) >= 2  # they really did meet the 401 together

    # exactly one refresh reached Intuit, and the store recorded exactly one rotation
    assert _access_tokens_minted(emulator, realm) - minted_before == 1
    assert _token_version(engine, tenant) == version_before + 1
    view = store.get(tenant)
    assert view is not None and view.state == ConnectionState.CONNECTED
    engine.dispose()
