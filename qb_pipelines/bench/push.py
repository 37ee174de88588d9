"""The push benchmark: N invoices (with their customers and items) from the app to QuickBooks.

``qb-pipelines bench push --invoices N [--database-url URL]`` calls :func:`run`. Issue 8/9
targets on this 2-core machine, into PostgreSQL, N = 3,000: ``objects_per_min`` >= 1,100,
``throttled`` 0, ``duplicates`` 0, ``unthrottled_objects_per_s`` >= 300, ``latency_p95_s`` < 5,
``feed_latency_p95_s`` < 10, ``echoes`` 0, ``peak_rss_mb`` < 300.

Every part is real and its own process where production has one: the emulator (its own port,
QBO's default limits: 500 requests a minute, 40 batches a minute, 10 in flight), the store
(a temporary SQLite file, or a **fresh database** created on the PostgreSQL server of
``--database-url`` and dropped afterwards, so runs never see each other), the admin web app
serving the records API, a Dagster instance in a temporary folder with ``dagster-daemon`` and
``dagster-webserver`` on the project's workspace. The company is connected the project's way
(:func:`qb_pipelines.demo.connect.prepare_store`: the OAuth token exchange against the emulator,
the Setup Wizard's defaults), landed once, and an API key is created for its tenant.

Stages:

1. **Throughput under QBO's limits**: N invoices (2 lines each), N/10 customers and N/100 items
   are enqueued through ``POST /api/v1/tenants/{t}/records`` (batches of 500 records), then
   pushed by :func:`qb_pipelines.sync.push.push` -- the code ``qbo_push_job`` runs -- in this
   process. ``objects_per_min`` is objects written over the push's wall time; ``throttled`` is
   the 429s the emulator answered meanwhile (its counters); ``peak_rss_mb`` is this process's
   RSS sampled during the pushes (Dagster's modules are loaded already: the landing used them).
2. **Unthrottled**: the emulator's limits lifted (``POST /_emulator/limits {"enabled": false}``)
   and this process's limiter too; a second batch of the same size is pushed:
   ``unthrottled_objects_per_s`` is the engine's own speed. Limits are restored after.
3. **Enqueue -> QuickBooks latency** through Dagster: ``--latency-samples`` invoices, 1 s apart,
   each POSTed to a web app started with ``QB_DAGSTER_GRAPHQL_URL`` (the fast path of
   :mod:`qb_pipelines.web.dagster_launch`: the web app asks the webserver for the push run; the
   outbox sensor, evaluated by the daemon, stays the backstop). A sample ends when the record's
   status (``GET .../records/Invoice/{app_id}``) is ``synced`` with its QuickBooks id: the run
   recorded QuickBooks' answer, so the object was readable in QBO no later than that. The first
   sample starts a push run (``latency_first_s``: the run's start-up); the run then follows the
   outbox (``follow_outbox``, 15 s) and the next samples ride it.
4. **QuickBooks -> feed latency**: ``--feed-samples`` customer edits made as a QuickBooks user
   (the emulator's ``/act``), 1 s apart, each timed until its entry is in
   ``GET /api/v1/tenants/{t}/changes`` (webhook -> the same web app's inbox, which asks Dagster
   for the landing run at once (``qbo_webhook_sensor`` is the backstop) -> landing run -> feed).
5. **Duplicates and echoes**: ``duplicates`` counts QuickBooks objects sharing an app id (each
   bench record carries its app id in its name or document number; read through the emulator's
   export); ``echoes`` counts feed entries on the bench's own objects written after the pushes,
   i.e. by the landings of the integration's own writes (the entries a push itself writes to
   tell the app what QuickBooks computed are counted apart, as ``told_app``).

Tooling (``bench/``): it starts processes and drives the demo's pieces; no product layer imports it.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from qb_pipelines.bench.rss import RssSampler
from qb_pipelines.bench.webhook_latency import percentile
from qb_pipelines.demo.config import WEBHOOK_WINDOW_S, DemoError
from qb_pipelines.demo.instance import (
    open_instance,
    process_environment,
    skip_report_backlog,
    wait_for_daemon,
    wait_for_runs,
)
from qb_pipelines.demo.landing import land_in_process
from qb_pipelines.demo.stack import headless_stack
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.devtools.services import run_daemon_process, run_dagster_webserver_process, run_web_process
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter, set_limiter
from qb_pipelines.store.db import normalize_url

__all__ = ["run"]

#: Records per ``POST .../records`` (the API takes at most 500).
POST_BATCH = 500
#: Longest one latency sample may take before it counts as lost.
SAMPLE_TIMEOUT_S = 90.0
#: Seconds between two samples.
SPACING_S = 1.0

Out = Callable[[str], Any]


# ------------------------------------------------------------------------------------------ store


@contextlib.contextmanager
def _fresh_database(database_url: str | None, root: Path, out: Out) -> Iterator[str]:
    """A store URL for this run: a SQLite file in ``root``, or a new database on the server given."""
    if database_url is None:
        yield f"sqlite:///{(root / 'qb_pipelines.sqlite').resolve()}"
        return
    url = normalize_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise DemoError(f"--database-url: give a PostgreSQL URL (postgresql://...), not {url.drivername}; "
                        "or leave it out for a temporary SQLite store")
    name = f"qbp_bench_push_{secrets.token_hex(4)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise DemoError(f"could not create a bench database on {url.render_as_string(hide_password=True)}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    out(f"store: fresh PostgreSQL database {name} on {url.host}:{url.port or 5432}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except sa.exc.SQLAlchemyError as exc:
            out(f"could not drop the bench database {name}: {type(exc).__name__} (drop it by hand)")
        admin.dispose()


# -------------------------------------------------------------------------------------- records


def _records(prefix: str, invoices: int, today: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Customers, items and invoices of one batch; each carries its app id in its QBO identity."""
    n_customers, n_items = max(1, invoices // 10), max(1, invoices // 100)
    customers = [{"entity": "Customer", "app_id": f"{prefix}-c{i}", "version": 1, "op": "upsert",
                  "data": {"display_name": f"Bench {prefix}-c{i}", "email": f"c{i}@{prefix}.example.com",
                           "phone": f"555-{i:04d}", "address": {"line1": f"{i} Bench Street", "city": "Portland",
                                                                "region": "OR", "postal_code": "97201"}}}
                 for i in range(n_customers)]
    items = [{"entity": "Item", "app_id": f"{prefix}-i{i}", "version": 1, "op": "upsert",
              "data": {"name": f"Bench {prefix}-i{i}", "sku": f"{prefix}-SKU{i}", "type": "service",
                       "unit_price": 40.0 + i}} for i in range(n_items)]
    invoices_ = [{"entity": "Invoice", "app_id": f"{prefix}-v{i}", "version": 1, "op": "upsert",
                  "data": {"number": f"{prefix}-v{i}", "customer_app_id": f"{prefix}-c{i % n_customers}",
                           "txn_date": today,
                           "lines": [{"item_app_id": f"{prefix}-i{i % n_items}", "description": "Lawn care",
                                      "qty": 1 + i % 3, "unit_price": 45.0, "taxable": True},
                                     {"item_app_id": f"{prefix}-i{(i + 1) % n_items}", "qty": 2,
                                      "unit_price": 12.5, "taxable": False}]}} for i in range(invoices)]
    return customers, items, invoices_


class _Api:
    """The records API over HTTP for one tenant."""

    def __init__(self, url: str, tenant: str, key: str) -> None:
        self.base = f"{url}/api/v1/tenants/{tenant}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, records: list[dict]) -> None:
        for start in range(0, len(records), POST_BATCH):
            chunk = records[start:start + POST_BATCH]
            body = {"records": chunk} if len(chunk) > 1 else chunk[0]
            for _ in range(20):
                resp = self.session.post(f"{self.base}/records", json=body, timeout=120)
                if resp.status_code != 429:
                    break
                time.sleep(float(resp.headers.get("Retry-After", "1")))
            if resp.status_code != 202:
                raise DemoError(f"POST records answered {resp.status_code}: {resp.text[:300]}")

    def status(self, entity: str, app_id: str) -> dict[str, Any]:
        resp = self.session.get(f"{self.base}/records/{entity}/{app_id}", timeout=30)
        return resp.json() if resp.status_code == 200 else {}

    def changes(self, after: int) -> tuple[list[dict], int]:
        resp = self.session.get(f"{self.base}/changes", params={"after": after, "limit": 1000}, timeout=30)
        if resp.status_code != 200:
            raise DemoError(f"GET changes answered {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
        return body["changes"], int(body["next"])

    def all_changes(self, after: int) -> tuple[list[dict], int]:
        out: list[dict] = []
        while True:
            page, nxt = self.changes(after)
            out += page
            if not page or nxt <= after:
                return out, after
            after = nxt


# ------------------------------------------------------------------------------------------ RSS


def _run_processes(daemon_pid: int) -> Callable[[], list[Any]]:
    """The Dagster run processes under the daemon (``dagster api execute_run`` or multiprocessing workers)."""
    import psutil

    def pick() -> list[Any]:
        try:
            children = psutil.Process(daemon_pid).children(recursive=True)
        except psutil.Error:
            return []
        out = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                command = " ".join(child.cmdline())
                if "execute_run" in command or "spawn_main" in command:  # a run worker (dagster api or multiprocessing)
                    out.append(child)
        return out

    return pick


# ---------------------------------------------------------------------------------------- stages


def _push_stage(runtime: Any, api: _Api, control: EmulatorControl, realm: str, company: str, prefix: str,
                invoices: int, today: str, out: Out) -> dict[str, Any]:
    from qb_pipelines.sync.push import push

    customers, items, invoices_ = _records(prefix, invoices, today)
    t0 = time.perf_counter()
    api.post(customers + items + invoices_)
    enqueue_s = time.perf_counter() - t0
    total = len(customers) + len(items) + len(invoices_)
    out(f"  enqueued {total:,} records ({len(customers)} customers, {len(items)} items, {len(invoices_):,} "
        f"invoices) over HTTP in {enqueue_s:.1f} s")
    throttled_before = int(control.counters(realm).get("throttled", 0))
    done = [0]

    def progress(event: dict[str, Any]) -> None:
        done[0] += int(event.get("items") or 0)
        if int(event.get("batch") or 0) % 20 == 0:
            out(f"  {done[0]:,} objects answered ({time.perf_counter() - t1:.0f} s)")

    with RssSampler() as rss:
        t1 = time.perf_counter()
        result = push(runtime, company, progress=progress)
        push_s = time.perf_counter() - t1
    throttled = int(control.counters(realm).get("throttled", 0)) - throttled_before
    out(f"  pushed in {push_s:.1f} s: {result.as_dict()}")
    return {"records": total, "written": result.written, "seconds": push_s, "enqueue_s": enqueue_s,
            "throttled": throttled, "client_throttled": result.throttled, "api_calls": result.api_calls,
            "batches": result.batches, "failed": result.failed, "told_app": result.told_app,
            "peak_rss_mb": rss.peak_mb, "keys": {(r["entity"], r["app_id"]) for r in customers + items + invoices_}}


def _duplicates(control: EmulatorControl, realm: str, prefixes: list[str]) -> tuple[int, dict[str, set[str]]]:
    """QuickBooks objects sharing an app id, and the QBO ids of the bench's objects per entity."""
    ids: dict[str, set[str]] = {}
    dupes = 0
    for entity, field in (("Customer", "DisplayName"), ("Item", "Name"), ("Invoice", "DocNumber")):
        seen: dict[str, int] = {}
        ids[entity] = set()
        for obj in control.export(realm, entity):
            value = str(obj.get(field) or "")
            app_id = value.removeprefix("Bench ")
            if any(app_id.startswith(f"{p}-") for p in prefixes):
                seen[app_id] = seen.get(app_id, 0) + 1
                ids[entity].add(str(obj["Id"]))
        dupes += sum(n - 1 for n in seen.values() if n > 1)
    return dupes, ids


def _time_samples(n: int, start: Callable[[int], Any], arrived: Callable[[dict[int, Any]], dict[int, float]],
                  still_possible: Callable[[], bool]) -> list[float | None]:
    """Start ``n`` samples ``SPACING_S`` apart while a watcher polls ``arrived`` every 100 ms.

    ``start(i)`` begins sample ``i`` and returns what the watcher needs to see it arrive;
    ``arrived(pending)`` returns the samples among ``pending`` seen now, with when they arrived.
    """
    pending: dict[int, Any] = {}
    began: dict[int, float] = {}
    samples: list[float | None] = [None] * n
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or pending:
            with lock:
                now = time.monotonic()
                for index in [i for i in pending if now - began[i] > SAMPLE_TIMEOUT_S]:
                    pending.pop(index)
                current = dict(pending)
            if current:
                for index, at in arrived(current).items():
                    with lock:
                        if pending.pop(index, None) is not None:
                            samples[index] = at - began[index]
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, name="latency-watch", daemon=True)
    watcher.start()
    try:
        for index in range(n):
            if not still_possible():
                raise DemoError("dagster-daemon exited while timing")
            began[index] = time.monotonic()
            token = start(index)
            with lock:
                pending[index] = token
            time.sleep(SPACING_S)
        done.set()
        while watcher.is_alive():
            if not still_possible():
                raise DemoError("dagster-daemon exited while timing")
            watcher.join(timeout=0.5)
    finally:
        done.set()
        if watcher.is_alive():
            with lock:
                pending.clear()
        watcher.join(timeout=5)
    return samples


def _wait_quiet(instance: Any, out: Out, *, settle_s: float = 6.0, timeout: float = 600.0) -> None:
    """Wait until no Dagster run has been queued or running for ``settle_s`` (webhook landings done)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        left = wait_for_runs(instance, timeout=0.0)
        if left:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle_s:
            return
        time.sleep(0.5)
    out(f"  runs still active after {timeout:.0f} s; going on")


def _summary(samples: list[float | None]) -> tuple[float | None, float | None, int]:
    arrived = [s for s in samples if s is not None]
    if not arrived:
        return None, None, len(samples)
    return round(statistics.median(arrived), 2), round(percentile(arrived, 95), 2), len(samples) - len(arrived)


# ------------------------------------------------------------------------------------------- run


def run(invoices: int, database_url: str | None = None, out: Out = print, *, feed_samples: int = 20,
        latency_samples: int = 20) -> dict[str, Any]:
    """Run the push benchmark (see the module doc); returns the figures (the command prints them as JSON).

    Raises:
        DemoError: a step failed (the message names it).
        qb_pipelines.devtools.processes.ProcessError: a process did not start.
    """
    from qb_pipelines.sync.runtime import Runtime

    if invoices < 1:
        raise DemoError("--invoices must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="qbp-bench-push-"))
    run_tag = secrets.token_hex(3)
    tenant = f"bench{run_tag}"
    today = datetime.now(UTC).date().isoformat()
    result: dict[str, Any] = {"invoices": invoices}
    try:
        with _fresh_database(database_url, root, out) as store_url, \
                headless_stack(root, port=free_port(), web_port=free_port(), out=out, database_url=store_url,
                               tenant_key=tenant) as stack, \
                process_environment(stack.env), \
                open_instance(stack.dagster_home) as instance, \
                EmulatorControl(stack.emulator_url) as control:
            company, realm = stack.connected.company_key, stack.connected.realm_id
            load = land_in_process(instance, company, out, with_reports=False, with_checks=False)
            if not load.ok:
                raise DemoError("; ".join(load.failures))
            runtime = Runtime.from_env(stack.env)
            try:
                key = runtime.api_keys.create(tenant, "bench push").key
                api = _Api(stack.web_url, tenant, key)
                limits = control.limits()
                out(f"emulator limits: {limits['per_minute']} requests/min, {limits['batch_per_minute_app']} "
                    f"batches/min, {limits['concurrent']} in flight")
                seq_before = runtime.feed.latest_seq(tenant)

                out(f"stage 1: {invoices:,} invoices under QuickBooks' limits ...")
                first = _push_stage(runtime, api, control, realm, company, f"b{run_tag}", invoices, today, out)

                out(f"stage 2: {invoices:,} more invoices with the limits lifted ...")
                control.set_limits({"enabled": False})
                set_limiter(realm, CompanyRateLimiter(per_window=10**9, concurrent=10, batch_per_window=10**9))
                try:
                    second = _push_stage(runtime, api, control, realm, company, f"u{run_tag}", invoices, today, out)
                finally:
                    control.set_limits({"reset": True})
                    set_limiter(realm, CompanyRateLimiter())
                seq_after_push = runtime.feed.latest_seq(tenant)
                prefixes = [f"b{run_tag}", f"u{run_tag}"]
                dupes, bench_ids = _duplicates(control, realm, prefixes)
            finally:
                runtime.close()
            objects_per_min = first["written"] / first["seconds"] * 60 if first["seconds"] > 0 else None
            out(f"throughput: {first['written']:,} objects in {first['seconds']:.1f} s = "
                f"{objects_per_min:,.0f}/min, {first['throttled']} throttled; unthrottled "
                f"{second['written'] / second['seconds']:,.0f}/s; {dupes} duplicates")
            result.update(
                objects=first["written"], objects_per_min=round(objects_per_min or 0, 1),
                throttled=first["throttled"] + second["throttled"], duplicates=dupes,
                unthrottled_objects=second["written"],
                unthrottled_objects_per_s=round(second["written"] / second["seconds"], 1) if second["seconds"] else None,
                peak_rss_mb=max(first["peak_rss_mb"], second["peak_rss_mb"]),
                push_s=round(first["seconds"], 2), api_calls=first["api_calls"], batches=first["batches"],
                failed=first["failed"] + second["failed"], told_app=first["told_app"] + second["told_app"],
                enqueue_records_per_s=round(first["records"] / first["enqueue_s"], 1),
                database=sa.make_url(store_url).get_backend_name(),
            )

            # ---- through Dagster: the daemon, the webserver, a web app with the fast path
            skip_report_backlog(instance, stack.env, root)
            with run_dagster_webserver_process(free_port(), stack.env, root, root / "webserver.log") as ui:
                fast_env = {**stack.env, "QB_DAGSTER_GRAPHQL_URL": f"{ui.url}/graphql", "QB_API_RATE_LIMIT": "0"}
                with run_web_process(free_port(), fast_env, root / "web-fast.log") as web_fast, \
                        run_daemon_process(stack.env, root, root / "daemon.log") as daemon:
                    # QuickBooks' webhooks go to that web app too: its intake asks for the landing run
                    control.subscribe_webhooks(f"{web_fast.url}/webhooks/quickbooks",
                                               stack.env["QBO_WEBHOOK_VERIFIER_TOKEN"], window_s=WEBHOOK_WINDOW_S)
                    waited = wait_for_daemon(instance, daemon)
                    out(f"dagster-daemon up after {waited:.1f} s, dagster-webserver at {ui.url}; "
                        "letting the webhook landings of the pushes finish ...")
                    t_quiet = time.monotonic()
                    _wait_quiet(instance, out)
                    out(f"  quiet after {time.monotonic() - t_quiet:.0f} s")
                    fast_api = _Api(web_fast.url, tenant, key)
                    result.update(_latency_stage(fast_api, daemon, latency_samples, run_tag, today, out))
                    result.update(_feed_stage(api, control, realm, bench_ids, daemon, feed_samples, out))
                    _wait_quiet(instance, out, settle_s=3.0, timeout=120.0)
                    result["duplicates"], _ = _duplicates(control, realm, [*prefixes, f"l{run_tag}"])
                    echoes, entries = _echoes(api, seq_after_push, bench_ids)
                    result.update(echoes=echoes, feed_entries_after_push=entries,
                                  told_app_entries=seq_after_push - seq_before)
                    out(f"echoes: {echoes} feed entries on the bench's own objects after the pushes "
                        f"({entries} entries in all since)")
                    wait_for_runs(instance)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _latency_stage(api: _Api, daemon: Any, n: int, run_tag: str, today: str, out: Out) -> dict[str, Any]:
    """Enqueue one invoice a second over HTTP; time each until QuickBooks has it (status synced)."""
    prefix = f"b{run_tag}"
    out(f"enqueue -> QuickBooks: {n} invoices, one a second ...")

    def start(i: int) -> str:
        app_id = f"l{run_tag}-v{i}"
        api.post([{"entity": "Invoice", "app_id": app_id, "version": 1, "op": "upsert",
                   "data": {"number": app_id, "customer_app_id": f"{prefix}-c0", "txn_date": today,
                            "lines": [{"item_app_id": f"{prefix}-i0", "qty": 1, "unit_price": 99.0}]}}])
        return app_id

    def arrived(pending: dict[int, str]) -> dict[int, float]:
        seen = {}
        for index, app_id in pending.items():
            status = api.status("Invoice", app_id)
            if status.get("status") == "synced" and status.get("qbo_id"):
                seen[index] = time.monotonic()
        return seen

    with RssSampler(_run_processes(daemon.pid)) as runs_rss:
        samples = _time_samples(n, start, arrived, daemon.alive)
    p50, p95, lost = _summary(samples)
    out(f"  enqueue -> QuickBooks: p50 {p50} s, p95 {p95} s, lost {lost}; samples "
        f"{[round(s, 2) if s is not None else None for s in samples]}")
    return {"latency_p50_s": p50, "latency_p95_s": p95, "latency_lost": lost, "latency_first_s": samples[0],
            "latency_samples": [round(s, 2) if s is not None else None for s in samples],
            "run_peak_rss_mb": runs_rss.peak_mb}


def _feed_stage(api: _Api, control: EmulatorControl, realm: str, bench_ids: dict[str, set[str]], daemon: Any,
                n: int, out: Out) -> dict[str, Any]:
    """Edit customers as a QuickBooks user, one a second; time each until its entry is in the feed."""
    out(f"QuickBooks -> feed: {n} customer edits, one a second ...")
    customers = [str(c["Id"]) for c in control.export(realm, "Customer")
                 if str(c["Id"]) not in bench_ids.get("Customer", set()) and c.get("Active", True)]
    if not customers:
        raise DemoError("the demo company has no customer to edit")
    _, cursor = api.all_changes(0)
    state = {"cursor": cursor}
    made: dict[int, tuple[str, int]] = {}

    def start(i: int) -> tuple[str, int]:
        customer = customers[i % len(customers)]
        changed = control.act(realm, "Customer", "update", {"Id": customer, "Notes": f"feed probe {i}"})["Customer"]
        made[i] = (customer, int(changed["SyncToken"]))
        return made[i]

    def arrived(pending: dict[int, tuple[str, int]]) -> dict[int, float]:
        page, nxt = api.changes(state["cursor"])
        now = time.monotonic()
        state["cursor"] = max(state["cursor"], nxt)
        seen: dict[int, float] = {}
        for entry in page:
            if entry["entity"] != "Customer":
                continue
            for index, (customer, _) in pending.items():
                if entry["qbo_id"] == customer and index not in seen:
                    seen[index] = now
                    break
        return seen

    samples = _time_samples(n, start, arrived, daemon.alive)
    p50, p95, lost = _summary(samples)
    out(f"  QuickBooks -> feed: p50 {p50} s, p95 {p95} s, lost {lost}; samples "
        f"{[round(s, 2) if s is not None else None for s in samples]}")
    return {"feed_latency_p50_s": p50, "feed_latency_p95_s": p95, "feed_lost": lost,
            "feed_samples": [round(s, 2) if s is not None else None for s in samples]}


def _echoes(api: _Api, after: int, bench_ids: dict[str, set[str]]) -> tuple[int, int]:
    """Feed entries after the pushes on objects the bench itself wrote, and all entries since."""
    entries, _ = api.all_changes(after)
    echoes = sum(1 for e in entries if str(e.get("qbo_id")) in bench_ids.get(str(e.get("entity")), set()))
    return echoes, len(entries)
