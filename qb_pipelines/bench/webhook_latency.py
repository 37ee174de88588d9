"""Webhook-to-warehouse latency through the Dagster daemon: how fresh the warehouse is.

What is timed is the whole production path, with every process real: a QuickBooks user changes a
customer (the emulator's ``/act``), the emulator groups changes over its 1 s window and POSTs a
signed CloudEvents delivery to the admin web app (``POST /webhooks/quickbooks``), which stores it
in the webhook inbox; ``qbo_webhook_sensor``, evaluated by ``dagster-daemon``, drains the inbox into
an incremental run for that company and entity, the run queue launches it, and the run lands the
change through CDC. A sample is the time from the ``/act`` call until the warehouse row carries
the change's new ``SyncToken``.

The orchestration is the headless demo's (:mod:`qb_pipelines.demo`): emulator with the demo
company, store, web app, a Dagster instance on SQLite in a temporary folder, the daemon with
the code location's definitions, each a supervised process (:mod:`qb_pipelines.devtools`) stopped
with everything it started however the bench ends. The company is landed once in-process first
(the figure is the latency of a change, not of a first load).

Changes are made every :data:`SPACING_S` seconds (Intuit delivers changes in groups; several
changes may share a delivery and a run), each on a different customer so each sample has its own
row. Figures depend on Dagster's loops: the sensor daemon evaluates sensors every 5 s (a fixed
loop in Dagster), the run queue is polled every second (``dequeue_interval_seconds: 1`` in the
demo's ``dagster.yaml``), and a launched run starts a fresh Python process that loads the code
location (about 3 s on a small machine) before its step runs.

With ``during_backfill`` (``qb-pipelines bench ingest --during-backfill``), the changes are made
while a "Materialize all" is in progress: once the daemon is up, a backfill of every partition
of every asset of the code location is launched exactly as the UI's button launches it (Dagster's
GraphQL ``launchPartitionBackfill``, all partitions), and its runs queue and run beside the
webhook runs; ``backfill_runs`` counts the runs it made and ``bulk_runs_during`` the bulk runs
queued or in progress when the last change was made.

Tooling (``bench/``): it starts processes and drives Dagster through the demo's pieces; no product
layer imports it.
"""

from __future__ import annotations

import math
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qb_pipelines.defs.partitions import QBO_REPORT_MONTHS_NAME, current_month, months_to_add
from qb_pipelines.demo.config import DEMO_TENANT, DemoError
from qb_pipelines.demo.instance import (
    open_instance,
    process_environment,
    skip_report_backlog,
    wait_for_daemon,
    wait_for_runs,
    webhook_runs,
)
from qb_pipelines.demo.landing import land_in_process
from qb_pipelines.demo.stack import Stack, headless_stack
from qb_pipelines.demo.warehouse import row_sync_token
from qb_pipelines.devtools.ports import free_port
from qb_pipelines.devtools.processes import SupervisedProcess
from qb_pipelines.devtools.services import run_daemon_process
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.store.db import make_engine
from qb_pipelines.store.warehouse import tables_for

__all__ = ["SPACING_S", "measure", "percentile"]

#: Seconds between two changes.
SPACING_S = 0.75
#: Longest a single change may take before it counts as lost.
SAMPLE_TIMEOUT_S = 90.0


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values`` by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def measure(n_changes: int = 20, out: Callable[[str], Any] = print, *, database_url: str | None = None,
            spacing_s: float = SPACING_S, during_backfill: bool = False) -> dict[str, Any]:
    """Time ``n_changes`` customer edits from QuickBooks to the warehouse, through the daemon.

    Args:
        n_changes: changes to time (one customer each, cycling when there are more changes than
            customers).
        out: where progress lines go.
        database_url: the store and warehouse (a tenant ``latency-<hex>`` is created there); a
            temporary SQLite file by default.
        spacing_s: seconds between two changes.
        during_backfill: time the changes while a "Materialize all" backfill runs.

    Returns:
        ``webhook_p50_s``, ``webhook_p95_s`` (``None`` when no change arrived), ``samples``
        (seconds, in change order, ``None`` for a change that never arrived), ``lost`` and
        ``webhook_runs`` (runs the sensor launched).

    Raises:
        qb_pipelines.demo.config.DemoError: a setup step failed, or the daemon died while timing.
        qb_pipelines.devtools.processes.ProcessError: a process did not start.
    """
    root = Path(tempfile.mkdtemp(prefix="qbp-webhook-latency-"))
    tenant = f"latency{secrets.token_hex(3)}" if database_url else DEMO_TENANT
    try:
        with headless_stack(root, port=free_port(), web_port=free_port(), out=out, database_url=database_url,
                            tenant_key=tenant) as stack, \
                process_environment(stack.env), \
                open_instance(stack.dagster_home) as instance:
            company = stack.connected.company_key
            load = land_in_process(instance, company, out, with_reports=False, with_checks=False)
            if not load.ok:
                raise DemoError("; ".join(load.failures))
            skip_report_backlog(instance, stack.env, root)
            if during_backfill:  # the report months the report sensor would have added
                instance.add_dynamic_partitions(QBO_REPORT_MONTHS_NAME, months_to_add(
                    instance.get_dynamic_partitions(QBO_REPORT_MONTHS_NAME), load.months, current_month()))
            engine = make_engine(stack.env["QB_DATABASE_URL"])
            try:
                customers_table, _ = tables_for("Customer")
                with engine.connect() as conn:
                    ids = [r[0] for r in conn.execute(
                        sa.select(customers_table.c.id).where(customers_table.c.company_key == company,
                                                              customers_table.c.is_deleted.is_(False))
                        .order_by(customers_table.c.id))]
                if not ids:
                    raise DemoError(f"company {company} landed no customer to change")
                with run_daemon_process(stack.env, root, root / "daemon.log") as daemon:
                    waited = wait_for_daemon(instance, daemon)
                    backfill = _materialize_all(stack.env, root, out) if during_backfill else None
                    out(f"dagster-daemon up after {waited:.1f} s; timing {n_changes} changes, "
                        f"one every {spacing_s} s ...")
                    samples = _time_changes(stack, daemon, engine, company, ids, n_changes, spacing_s, out)
                    bulk_during = len(instance.get_runs(filters=dg_runs_filter(
                        tags={"qbo/bulk": "true"}, statuses=["QUEUED", "STARTING", "STARTED"])))
                    runs = len(webhook_runs(instance, company))
                    backfill_runs = len(instance.get_runs(filters=dg_runs_filter(tags={"dagster/backfill": backfill}))) \
                        if backfill else 0
                    if backfill:  # timed: the rest of the backfill is not the bench's business
                        _cancel_backfill(instance, backfill)
                    wait_for_runs(instance, timeout=300 if during_backfill else 60)  # before the Dagster home goes
            finally:
                engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    arrived = [s for s in samples if s is not None]
    result = {
        "webhook_p50_s": round(statistics.median(arrived), 2) if arrived else None,
        "webhook_p95_s": round(percentile(arrived, 95), 2) if arrived else None,
        "webhook_max_s": round(max(arrived), 2) if arrived else None,
        "samples": [round(s, 2) if s is not None else None for s in samples],
        "lost": len(samples) - len(arrived),
        "webhook_runs": runs,
    }
    if during_backfill:
        result.update(backfill_runs=backfill_runs, bulk_runs_during=bulk_during)
    out(f"webhook -> warehouse: p50 {result['webhook_p50_s']} s, p95 {result['webhook_p95_s']} s, "
        f"max {result['webhook_max_s']} s over {len(arrived)}/{len(samples)} changes, {runs} runs"
        + (f", during a Materialize all of {backfill_runs} runs" if during_backfill else ""))
    return result


def dg_runs_filter(*, tags: dict[str, str], statuses: list[str] | None = None) -> Any:
    """A Dagster runs filter with statuses given by name."""
    import dagster as dg

    return dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus(s) for s in statuses] if statuses else None)


def _cancel_backfill(instance: Any, backfill_id: str) -> None:
    """Cancel a backfill as the UI's Cancel does: no new run, its queued runs dropped."""
    from dagster._core.execution.backfill import BulkActionStatus

    backfill = instance.get_backfill(backfill_id)
    if backfill is not None and backfill.status == BulkActionStatus.REQUESTED:
        instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
    for run in instance.get_runs(filters=dg_runs_filter(tags={"dagster/backfill": backfill_id}, statuses=["QUEUED"])):
        instance.run_coordinator.cancel_run(run.run_id)


_MATERIALIZE_ALL = """mutation {
  launchPartitionBackfill(backfillParams: {assetSelection: [%s], allPartitions: true}) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def _materialize_all(env: dict[str, str], cwd: Path, out: Callable[[str], Any]) -> str:
    """Launch "Materialize all" as the UI's button does: a backfill of every partition of every asset.

    Returns:
        The backfill's id.
    """
    import json

    from qb_pipelines.definitions import defs
    from qb_pipelines.devtools.processes import console_script, run_to_completion

    keys = sorted(defs.resolve_asset_graph().get_all_asset_keys(), key=lambda k: k.to_user_string())
    selection = ", ".join("{path: " + json.dumps(k.path) + "}" for k in keys)
    document = _MATERIALIZE_ALL % selection
    code, output = run_to_completion("Materialize all", [console_script("dagster-graphql"), "-m",
                                                         "qb_pipelines.definitions", "-t", document],
                                     env=env, cwd=cwd, timeout=300)
    answer = next((line for line in output.splitlines() if line.startswith("{")), "")
    try:
        launched = json.loads(answer)["data"]["launchPartitionBackfill"]
    except (ValueError, KeyError, TypeError):
        launched = {}
    if code != 0 or launched.get("__typename") != "LaunchBackfillSuccess":
        raise DemoError(f"Materialize all could not be launched: {output[-800:]}")
    out(f"Materialize all launched: backfill {launched['backfillId']} of {len(keys)} assets, all partitions")
    return str(launched["backfillId"])


def _time_changes(stack: Stack, daemon: SupervisedProcess, engine: Any, company: str, ids: list[str], n: int,
                  spacing_s: float, out: Callable[[str], Any]) -> list[float | None]:
    """Make ``n`` changes, ``spacing_s`` apart, while a watcher times each one's arrival.

    Raises:
        DemoError: the daemon died while changes were still travelling (none could arrive).
    """
    pending: dict[int, tuple[str, str, float]] = {}  # change -> (customer id, new SyncToken, made at)
    samples: list[float | None] = [None] * n
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        # One query per round for every pending change: cheap, and 100 ms resolution.
        while not done.is_set() or pending:
            with lock:
                items = list(pending.items())
            for index, (customer_id, token, made_at) in items:
                if time.monotonic() - made_at > SAMPLE_TIMEOUT_S:
                    with lock:
                        pending.pop(index, None)
                    continue
                current = row_sync_token(engine, "Customer", company, customer_id)
                if current is not None and int(current) >= int(token):
                    with lock:
                        if pending.pop(index, None) is not None:
                            samples[index] = time.monotonic() - made_at
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, name="latency-watch", daemon=True)
    watcher.start()

    def check_daemon() -> None:
        if not daemon.alive():
            raise DemoError(daemon.exit_report(f"while timing changes ({len(pending)} still travelling)"))

    try:
        with EmulatorControl(stack.emulator_url) as control:
            for index in range(n):
                check_daemon()
                customer_id = ids[index % len(ids)]
                made_at = time.monotonic()
                changed = control.act(stack.connected.realm_id, "Customer", "update",
                                      {"Id": customer_id, "Notes": f"latency probe {index}"})["Customer"]
                with lock:
                    pending[index] = (customer_id, str(changed["SyncToken"]), made_at)
                time.sleep(spacing_s)
        done.set()  # no more changes: the watcher ends once the last one arrived or timed out
        while watcher.is_alive():
            check_daemon()  # a dead daemon carries nothing more: fail now, not after the timeouts
            watcher.join(timeout=0.5)
    finally:
        done.set()
        if watcher.is_alive():  # failed or interrupted: nothing more will be timed
            with lock:
                pending.clear()
        watcher.join(timeout=5)
    lost = [i for i, s in enumerate(samples) if s is None]
    if lost:
        out(f"  {len(lost)} changes never reached the warehouse within {SAMPLE_TIMEOUT_S:.0f} s: {lost}")
    return samples
