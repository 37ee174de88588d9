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

So :class:`CompanyRunCoordinator` is Dagster's ``QueuedRunCoordinator`` with one addition: every
run goes through ``submit_run`` before entering the queue (the UI, schedules, sensors and the
backfill daemon alike), and a run of this project without a company tag gets one there, derived
from its partition. The queue then applies the per-company limits to it, and the schedules see it.
The landing itself also holds a lock across processes (:mod:`qb_pipelines.store.locks`): this
tag keeps a second run from waiting inside a run slot, the lock keeps it from colliding at all.

Configure it in the instance's ``dagster.yaml``::

    run_coordinator:
      module: qb_pipelines.defs.run_coordinator
      class: CompanyRunCoordinator
      config: {dequeue_interval_seconds: 2}   # any QueuedRunCoordinator setting

This module imports only Dagster and the partition names: the webserver and the daemon load it
with the instance, not with the code location.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import dagster as dg

from qb_pipelines.defs.partitions import COMPANY_DIMENSION, MONTH_DIMENSION

__all__ = ["COMPANY_TAG", "PUSH_COMPANY_TAG", "PUSH_JOB_NAME", "CompanyRunCoordinator", "company_tags"]

log = logging.getLogger(__name__)

#: Run tag naming the company of a landing or report run; the instance limits runs per value.
COMPANY_TAG = "qbo/company"
#: Run tag naming the company of a push run (its own limit: a push never waits for a landing).
PUSH_COMPANY_TAG = "qbo/company-push"
#: The push job (issue 8); its runs get :data:`PUSH_COMPANY_TAG` instead of :data:`COMPANY_TAG`.
PUSH_JOB_NAME = "qbo_push_job"
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
    if COMPANY_TAG in tags or PUSH_COMPANY_TAG in tags or not _is_qbo_run(run):
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
    return {PUSH_COMPANY_TAG if run.job_name == PUSH_JOB_NAME else COMPANY_TAG: company}


class CompanyRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator, tagging each run with its company before queueing it."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        tags = company_tags(run)
        if tags:
            self._instance.add_run_tags(run.run_id, tags)
            refreshed = self._instance.get_run_by_id(run.run_id)
            if refreshed is not None:
                context = context._replace(dagster_run=refreshed)
            log.debug("run %s tagged %s before queueing", run.run_id, tags)
        return super().submit_run(context)
