"""A separate process that reads one company through the connections store's token source.

Started by ``test_qbo_refresh_processes`` several times at once, so that many processes (each with
a few threads) meet an expired access token together. Usage::

    QB_FERNET_KEY=... python -m qb_pipelines_tests.refresh_worker EMULATOR_URL DB_URL TENANT REALM SYNC_DIR INDEX

It writes ``SYNC_DIR/ready-INDEX`` when set up, waits for ``SYNC_DIR/go``, then has each thread
call the API (CompanyInfo, then a COUNT) and prints one JSON line: ``{"ok": [...], "errors": [...],
"refresh_requests": n}``. Exit status 0 whatever happened: the test judges the JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.qbo.oauth import IntuitOAuth
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter
from qb_pipelines.store.connections import ConnectionStore
from qb_pipelines.store.crypto import SecretBox
from qb_pipelines.store.db import make_engine, session_factory

THREADS = 3
CALLBACK = "http://localhost:3000/callback"


def main(argv: list[str]) -> int:
    emulator_url, db_url, tenant, realm, sync_dir, index = argv
    env = environment("emulator", emulator_url)
    store = ConnectionStore(session_factory(make_engine(db_url)), SecretBox(os.environ["QB_FERNET_KEY"]))
    oauth = IntuitOAuth("emulator-client-id", "emulator-client-secret", CALLBACK, env)
    tokens = store.token_source(tenant, oauth)
    client = QBOClient(realm, tokens, env, rate_limiter=CompanyRateLimiter(), max_retries=2)

    Path(sync_dir, f"ready-{index}").touch()
    deadline = time.monotonic() + 60
    while not Path(sync_dir, "go").exists():
        if time.monotonic() > deadline:
            print(json.dumps({"ok": [], "errors": ["never told to go"], "refresh_requests": 0}))
            return 0
        time.sleep(0.005)

    def call(_: int) -> str:
        name = client.company_info()["CompanyName"]
        client.count("Customer")
        return name

    ok: list[str] = []
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for future in [pool.submit(call, i) for i in range(THREADS)]:
            try:
                ok.append(future.result())
            except QBOError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"ok": ok, "errors": errors, "refresh_requests": client.stats.refreshes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
