"""A separate process that calls one company as fast as QBO's limits let it: batch calls and queries.

Started twice at once by ``test_store_rate_limits``, so that two processes share one company the
way a landing run and a push run do. Usage (settings in the environment, as ``Runtime.from_env``
reads them, ``QB_SHARED_RATE_LIMITS`` included)::

    python -m qb_pipelines_tests.limits_worker COMPANY_KEY SYNC_DIR INDEX SECONDS THREADS LIMITS_JSON

``LIMITS_JSON`` are the in-process limiter's limits (``CompanyRateLimiter`` keyword arguments),
the emulator's own configured limits in the test. It writes ``SYNC_DIR/ready-INDEX`` when set
up, waits for ``SYNC_DIR/go``, then each thread alternates a batch call (two queries) and a query
until SECONDS have passed; it prints one JSON line ``{"calls", "batches", "throttled", "errors",
"limiter"}``. Exit status 0 whatever happened: the test judges the JSON.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter, set_limiter
from qb_pipelines.sync.runtime import Runtime


def main(argv: list[str]) -> int:
    key, sync_dir, index, seconds, threads, limits = argv
    with Runtime.from_env() as runtime:
        company = runtime.resolve(key)
        set_limiter(company.realm_id, CompanyRateLimiter(**json.loads(limits)))
        # retries: a 429 is waited out (Retry-After) and counted, as in a real run
        client = runtime.client_for(company, max_retries=8, backoff_base_s=0.05, backoff_cap_s=0.5)
        Path(sync_dir, f"ready-{index}").touch()
        deadline = time.monotonic() + 60
        while not Path(sync_dir, "go").exists():
            if time.monotonic() > deadline:
                print(json.dumps({"errors": ["never told to go"]}))
                return 0
            time.sleep(0.005)
        stop = time.monotonic() + float(seconds)
        counts = {"calls": 0, "batches": 0}
        errors: list[str] = []
        lock = threading.Lock()

        def hammer() -> None:
            n = 0
            while time.monotonic() < stop:
                try:
                    if n % 2 == 0:
                        client.batch([{"Query": "SELECT COUNT(*) FROM Customer"}, {"Query": "SELECT * FROM Term"}])
                        with lock:
                            counts["batches"] += 1
                    else:
                        client.query("SELECT * FROM Customer MAXRESULTS 5")
                    with lock:
                        counts["calls"] += 1
                except QBOError as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                n += 1

        workers = [threading.Thread(target=hammer) for _ in range(int(threads))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        limiter = client.rate_limiter.snapshot()
        print(json.dumps({**counts, "throttled": client.stats.throttled, "errors": errors,
                          "limiter": type(client.rate_limiter).__name__, "waits": limiter.get("shared_waits", 0)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
