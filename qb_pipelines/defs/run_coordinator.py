"""The instance's run coordinator: every run of a company carries the company's tag, however launched.

The instance allows one run at a time per company through tag limits (``dagster.yaml`` and the
demo's instance): ``qbo/company`` for landings and reports, ``qbo/company-push`` for pushes, so a
push is never queued behind a landing. Schedules and sensors put the tag on the runs they
request; a run launched from the UI (Materialize, the launchpad, a backfill) cannot have it: a job
or asset definition has no per-partition tags, Dagster only tags the run with its partition
(``dagster/partition``; ``dagster/partition/company`` for the company x month reports). Untagged,
such a run escaped the limit, and the poll schedule (which skips companies with a tagged run in
progress) started a second landing of a company a person was landing from the UI.

Why not simply a tag limit on ``dagster/partition``: a push run of a company has the same
partition and must not wait for its landing; a report partition is ``<company>|<month>``, so the
limit would hold per month, not per company; and any other partitioned job sharing the instance
would be limited under names that mean nothing here.

So :class:`CompanyRunCoordinator` is Dagster's ``QueuedRunCoordinator`` with two additions: every
run goes through ``submit_run`` before entering the queue (the UI, schedules, sensors and the
backfill daemon alike), and there

* a run of this project without a company tag gets one, derived from its partition: the queue
  then applies the per-company limits to it, and the schedules see it. Report runs get a tag of
  their own, ``qbo/company-reports`` (one report run per company at a time): a report run lands no
  entity and moves no cursor, so a webhook's landing of the company never waits behind it;
* a run without ``dagster/priority`` gets its class's priority (:func:`priority_tags`); Dagster's
  queue launches queued runs highest priority first (first in, first out within a priority):
  webhook runs and pushes (``10``) before polling and other runs (``0``), before bulk work
  (``-10``: backfills, "Materialize all", report runs). Bulk runs are also tagged ``qbo/bulk`` so
  that the instance can cap how many run at once and keep run slots free for webhook runs.
The landing itself also holds a lock across processes (:mod:`qb_pipelines.store.locks`): this
tag keeps a second run from waiting inside a run slot, the lock keeps it from colliding at all.

Configure it in the instance's ``dagster.yaml``::

    run_coordinator:
      module: qb_pipelines.defs.run_coordinator
      class: CompanyRunCoordinator
      config: {dequeue_interval_seconds: 1}   # any QueuedRunCoordinator setting

This module imports only Dagster and the partition names: the webserver and the daemon load it
with the instance, not with the code location.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import dagster as dg

from qb_pipelines.defs.partitions import COMPANY_DIMENSION, MONTH_DIMENSION

__all__ = [
    "BULK_PRIORITY",
    "BULK_TAG",
    "COMPANY_TAG",
    "PRIORITY_TAG",
    "PUSH_COMPANY_TAG",
    "PUSH_JOB_NAME",
    "REPORTS_COMPANY_TAG",
    "URGENT_PRIORITY",
    "CompanyRunCoordinator",
    "company_tags",
    "priority_tags",
]

log = logging.getLogger(__name__)

#: Run tag naming the company of a landing or report run; the instance limits runs per value.
COMPANY_TAG = "qbo/company"
#: Run tag naming the company of a push run (its own limit: a push never waits for a landing).
PUSH_COMPANY_TAG = "qbo/company-push"
#: Run tag naming the company of a report run (its own limit: a landing never waits for reports).
REPORTS_COMPANY_TAG = "qbo/company-reports"
#: The push job (issue 8); its runs get :data:`PUSH_COMPANY_TAG` instead of :data:`COMPANY_TAG`.
PUSH_JOB_NAME = "qbo_push_job"
#: The reports job; its runs (and runs of report assets only) get :data:`REPORTS_COMPANY_TAG`.
REPORTS_JOB_NAME = "qbo_reports_job"
#: Dagster's run priority tag: the queue launches higher values first.
PRIORITY_TAG = "dagster/priority"
#: Priority of webhook runs and pushes: a change waits for no bulk work.
URGENT_PRIORITY = 10
#: Priority of bulk work: backfills ("Materialize all"), report runs.
BULK_PRIORITY = -10
#: Tag of bulk runs (value ``true``); the instance caps how many run at once.
BULK_TAG = "qbo/bulk"
#: Run tag of the trigger (set by the sensors and schedules): ``webhook``, ``poll``, ``touched_month``...
TRIGGER_TAG = "qbo/trigger"
BACKFILL_TAG = "dagster/backfill"
REPORT_PREFIX = ("qbo", "report")
#: Prefix of the project's asset keys and job names.
QBO_PREFIX = "qbo"

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: Where the company sits in a multi-partition key: Dagster orders dimensions by name.
_COMPANY_INDEX = sorted([COMPANY_DIMENSION, MONTH_DIMENSION]).index(COMPANY_DIMENSION)
_COMPANY_KEY = re.compile(r"^.+-[0-9]+$")


def _is_qbo_run(run: dg.DagsterRun) -> bool:
    """Whether a run belongs to this project: its assets (or checks) are ``qbo/...``, or its job is ``qbo_*``."""
    keys = list(run.asset_selection or ()) + [check.asset_key for check in (run.asset_check_selection or ())]
    if keys:
        return any(key.path[0] == QBO_PREFIX for key in keys)
    return run.job_name.startswith(f"{QBO_PREFIX}_")


def _is_report_run(run: dg.DagsterRun) -> bool:
    """Whether a run materializes reports only (the reports job, or report assets picked in the UI)."""
    keys = list(run.asset_selection or ()) + [check.asset_key for check in (run.asset_check_selection or ())]
    if keys:
        return all(tuple(key.path[:2]) == REPORT_PREFIX for key in keys)
    return run.job_name == REPORTS_JOB_NAME


def _company_of(partition: str | None, multi: bool) -> str | None:
    if not partition:
        return None
    if multi:
        parts = partition.split("|")
        if len(parts) != 2:
            return None
        partition = parts[_COMPANY_INDEX]
    return partition if _COMPANY_KEY.match(partition) else None


def company_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The company tag a run should carry and lacks (empty when it has one or names no single company).

    The company comes from the run's partition: ``dagster/partition/company`` (reports), else
    ``dagster/partition`` (the company partitions), else a partition range whose two ends name
    the same company (a single-run backfill of one company's months).
    """
    tags: Mapping[str, str] = run.tags
    if COMPANY_TAG in tags or PUSH_COMPANY_TAG in tags or REPORTS_COMPANY_TAG in tags or not _is_qbo_run(run):
        return {}
    multi = any(name.startswith(f"{PARTITION_TAG}/") for name in tags)
    company = tags.get(f"{PARTITION_TAG}/{COMPANY_DIMENSION}") or _company_of(tags.get(PARTITION_TAG), multi)
    if company is None and RANGE_START_TAG in tags:
        start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
        is_multi = "|" in (start or "")
        first, last = _company_of(start, is_multi), _company_of(end, is_multi)
        company = first if first is not None and first == last else None
    if company is None:
        return {}
    if run.job_name == PUSH_JOB_NAME:
        return {PUSH_COMPANY_TAG: company}
    return {REPORTS_COMPANY_TAG if _is_report_run(run) else COMPANY_TAG: company}


def priority_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The priority (and bulk) tags a run of this project should carry and lacks.

    ========================================================= ===================== ============
    run                                                       ``dagster/priority``  ``qbo/bulk``
    ========================================================= ===================== ============
    a webhook's landing (``qbo/trigger=webhook``), a push     ``10``
    a backfill's run (``dagster/backfill``), a report run     ``-10``               ``true``
    anything else (polling, the backstop, a UI Materialize)   ``0`` (Dagster's default)
    ========================================================= ===================== ============

    A priority set by whoever launched the run (a person in the launchpad) is left as it is.
    """
    tags: Mapping[str, str] = run.tags
    if not _is_qbo_run(run):
        return {}
    out: dict[str, str] = {}
    bulk = BACKFILL_TAG in tags or _is_report_run(run)
    urgent = not bulk and (run.job_name == PUSH_JOB_NAME or tags.get(TRIGGER_TAG) == "webhook")
    if PRIORITY_TAG not in tags and (bulk or urgent):
        out[PRIORITY_TAG] = str(BULK_PRIORITY if bulk else URGENT_PRIORITY)
    if bulk and BULK_TAG not in tags:
        out[BULK_TAG] = "true"
    return out


class CompanyRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, tagging each run with its company and priority before queueing it."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        tags = {**company_tags(run), **priority_tags(run)}
        if tags:
            self._instance.add_run_tags(run.run_id, tags)
            refreshed = self._instance.get_run_by_id(run.run_id)
            if refreshed is not None:
                context = context._replace(dagster_run=refreshed)
            log.debug("run %s tagged %s before queueing", run.run_id, tags)
        return super().submit_run(context)
