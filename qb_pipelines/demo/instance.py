"""The demo's Dagster instance: its folder, opening it, and waiting on its daemon and runs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from qb_pipelines.demo.config import WORKSPACE, DemoError
from qb_pipelines.devtools.processes import SupervisedProcess, console_script, run_to_completion

__all__ = [
    "DEMO_MAX_BULK_RUNS",
    "DEMO_MAX_CONCURRENT_RUNS",
    "PER_VALUE_LIMITS",
    "open_instance",
    "process_environment",
    "skip_report_backlog",
    "wait_for_daemon",
    "wait_for_runs",
    "webhook_runs",
    "write_demo_instance",
]


#: Runs at once in the demo's instance (a 2-core machine): one bulk run, a push and a webhook's
#: landing (which stay a little for the next change, mostly idle: ``defs/following.py``), and
#: room for one more (a feed delivery, the usage check).
DEMO_MAX_CONCURRENT_RUNS = 4
#: Bulk runs (tag ``qbo/bulk``: backfills, report runs) at once in the demo's instance.
DEMO_MAX_BULK_RUNS = 1
#: Tags limited to one run per value, in the demo's instance as in ``dagster.yaml``.
PER_VALUE_LIMITS = ("qbo/company", "qbo/company-push", "qbo/company-reports", "qbo/feed-tenant")


def write_demo_instance(dagster_home: Path, *, dequeue_interval_s: int | None = None) -> Path:
    """Create the demo's own Dagster instance folder with default (SQLite) storage.

    The top-level ``dagster.yaml`` configures PostgreSQL for deployments; the demo must need no
    database server, so it gets its own ``DAGSTER_HOME`` whose ``dagster.yaml`` leaves storage and
    run launcher at Dagster's defaults (SQLite files in that folder, runs in subprocesses) and
    queues runs with the project's :class:`~qb_pipelines.defs.run_coordinator.CompanyRunCoordinator`
    and the deployment's per-company run limits.

    Args:
        dagster_home: the folder (created when missing).
        dequeue_interval_s: how often the daemon's run queue launches queued runs (Dagster's
            default, 5 s, when ``None``); the latency bench shortens it.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by `qb-pipelines demo`. No `storage:` key: Dagster's default SQLite storage\n"
        "# in this folder, so the demo needs no database server.\n"
        "telemetry:\n"
        "  enabled: false\n"
        # The queue tags runs launched from the UI with their company, then one run at a time per
        # company (landings and reports), one push at a time per company (see ../dagster.yaml).
        "run_coordinator:\n"
        "  module: qb_pipelines.defs.run_coordinator\n"
        "  class: CompanyRunCoordinator\n"
    )
    if dequeue_interval_s is not None:
        text += f"  config:\n    dequeue_interval_seconds: {int(dequeue_interval_s)}\n"
    # Sized for a 2-core machine: at most DEMO_MAX_CONCURRENT_RUNS runs at once (each run is a
    # Python process of its own), of which at most one bulk run (a backfill, "Materialize all",
    # a report run: tag qbo/bulk), so a webhook's run always finds a free slot; the queue launches
    # by `dagster/priority` (webhook runs and pushes first, bulk last: defs/run_coordinator.py).
    text += f"concurrency:\n  runs:\n    max_concurrent_runs: {DEMO_MAX_CONCURRENT_RUNS}\n    tag_concurrency_limits:\n"
    # one run at a time per company for landings, pushes, reports; one feed delivery per tenant
    for tag in PER_VALUE_LIMITS:
        text += f"      - key: {tag}\n        value:\n          applyLimitPerUniqueValue: true\n        limit: 1\n"
    text += f"      - key: qbo/bulk\n        limit: {DEMO_MAX_BULK_RUNS}\n"
    # a run whose process died (kill -9) is failed after its max runtime, as in ../dagster.yaml,
    # so the next push of its company can start and resume its in-flight batches
    text += "run_monitoring:\n  enabled: true\n  max_resume_run_attempts: 0\n"
    (dagster_home / "dagster.yaml").write_text(text)
    return dagster_home


def open_instance(dagster_home: Path) -> Any:
    """The Dagster instance of ``dagster_home`` (a context manager), shared with the daemon."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home))


@contextlib.contextmanager
def process_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in this process for in-process runs (resources read it), restoring it after."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def skip_report_backlog(instance: Any, env: Mapping[str, str], cwd: Path) -> int:
    """Start ``qbo_report_refresh_sensor`` past the report months already materialized here.

    The sensor re-materializes the report months a landing run touched. After an in-process
    load that already landed every report month, the first tick of a fresh daemon would request
    every one of them again (a dozen runs of every report on a small machine). Its cursor is the
    event storage id it has read up to, so it is set to the newest landing materialization, with
    Dagster's own CLI (``dagster sensor start`` then ``dagster sensor cursor --set``), before the
    daemon starts. Later landings (webhooks, polling) are picked up as usual.

    Returns:
        The cursor set.
    """
    import dagster as dg

    from qb_pipelines.defs.assets import entity_asset_key
    from qb_pipelines.qbo import registry

    newest = 0
    # the sensor reads the transactions' materializations (they carry the touched months)
    for key in (entity_asset_key(e.name) for e in registry.ENTITIES if e.is_transaction):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1, ascending=False)
        if records.records:
            newest = max(newest, records.records[0].storage_id)
    dagster = console_script("dagster")
    base = ["-w", str(WORKSPACE)]
    for args in (["sensor", "start", "qbo_report_refresh_sensor", *base],
                 ["sensor", "cursor", "qbo_report_refresh_sensor", "--set", str(newest), *base]):
        what = f"`dagster {' '.join(args[:3])}`"
        code, output = run_to_completion(what, [dagster, *args], env=env, cwd=cwd, timeout=120)
        if code != 0:
            raise DemoError(f"{what} failed: {output[-1000:]}")
    return newest


def wait_for_daemon(instance: Any, daemon: SupervisedProcess, timeout: float = 90.0) -> float:
    """Wait until the daemon's sensor loop has reported a heartbeat; returns the seconds waited.

    Raises:
        DemoError: the daemon exited or stayed silent.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not daemon.alive():
            raise DemoError(daemon.exit_report())
        beats = instance.get_daemon_heartbeats()
        if "SENSOR" in {str(getattr(k, "value", k)) for k in beats}:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise DemoError(f"dagster-daemon gave no heartbeat in {timeout:.0f} s:\n{daemon.tail()}")


def wait_for_runs(instance: Any, timeout: float = 60.0) -> list[str]:
    """Wait until no run is queued or in progress (before stopping the daemon); returns those left.

    A run launched by the daemon lives in its own process: it should finish its writes before
    its Dagster home is removed (the daemon's supervisor stops any run process still there).
    """
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    deadline = time.monotonic() + timeout
    while True:
        left = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(statuses=active))]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def webhook_runs(instance: Any, company: str) -> list[Any]:
    """Runs the webhook sensor launched for ``company``, newest first."""
    import dagster as dg

    return list(instance.get_runs(filters=dg.RunsFilter(tags={"qbo/company": company, "qbo/trigger": "webhook"})))
