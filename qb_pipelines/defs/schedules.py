"""Schedules: polling, the daily backstop, the weekly full refresh and token upkeep.

Every company schedule launches ONE run per connected company (a company key is a partition),
tagged ``qbo/company`` so that the instance's per-company run limit holds and one company's
failure touches no other. A company whose previous run is still queued or running is skipped
for that tick: polling again would only queue duplicate CDC calls behind it. A company whose
tenant has not completed the Setup Wizard is left out (nothing may land before it).

============================== ============== ==============================================
``qbo_poll_schedule``          every 5 min    incremental CDC (the backstop to webhooks)
``qbo_daily_backstop_schedule`` 03:00 daily   incremental landing + every reconciliation check
``qbo_weekly_full_refresh_schedule`` Sun 04:00 full refresh (finds hard deletes CDC missed)
``qbo_token_refresh_schedule`` every 10 min   refresh tokens about to lapse, mark expired ones
============================== ============== ==============================================
"""


from collections.abc import Iterator

import dagster as dg

from qb_pipelines.defs.assets import COMPANY_TAG
from qb_pipelines.defs.jobs import (
    qbo_daily_backstop_job,
    qbo_full_refresh_job,
    qbo_incremental_job,
    qbo_token_refresh_job,
)
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.resources import QBOConnectionResource

#: Runs in these states still hold the company: do not queue another behind them.
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def company_run_requests(context: dg.ScheduleEvaluationContext, qbo: QBOConnectionResource, trigger: str,
                         *, skip_busy: bool = True) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """One run request per connected company that has a partition, tagged with the company.

    Args:
        context: the schedule tick (its instance holds the partitions and the runs).
        qbo: the connections store, which says who is connected now.
        trigger: ``poll``, ``backstop`` or ``weekly_full_refresh`` (run tag ``qbo/trigger``).
        skip_busy: skip a company whose previous run is still queued or in progress.
    """
    partitions = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    when = (context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now")
    requested, unconfigured = 0, []
    for company in qbo.companies():
        if company.key not in partitions:
            continue  # the partition sensor adds it within a minute; the next tick includes it
        if not qbo.runtime().tenant_settings.get(company.tenant_key).configured:
            unconfigured.append(company.key)  # nothing lands before the Setup Wizard (sync.landing_gate)
            continue
        if skip_busy and context.instance.get_runs(
            filters=dg.RunsFilter(tags={COMPANY_TAG: company.key}, statuses=ACTIVE_STATUSES), limit=1
        ):
            continue
        requested += 1
        yield dg.RunRequest(
            run_key=f"{trigger}:{company.key}:{when}",
            partition_key=company.key,
            tags={COMPANY_TAG: company.key, "qbo/trigger": trigger},
        )
    if not requested:
        waiting = f" ({', '.join(unconfigured)}: complete the Setup Wizard in the admin app)" if unconfigured else ""
        yield dg.SkipReason(f"no connected company with a partition is idle and set up{waiting}")


@dg.schedule(cron_schedule="*/5 * * * *", job=qbo_incremental_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 5 minutes: CDC for every connected company, one run each.")
def qbo_poll_schedule(context: dg.ScheduleEvaluationContext,
                      qbo: QBOConnectionResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """Poll QuickBooks' change data capture for every connected company (webhooks' backstop)."""
    yield from company_run_requests(context, qbo, "poll")


@dg.schedule(cron_schedule="0 3 * * *", job=qbo_daily_backstop_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily: incremental landing then every reconciliation and quality check, per company.")
def qbo_daily_backstop_schedule(context: dg.ScheduleEvaluationContext,
                                qbo: QBOConnectionResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """Land and prove every connected company once a day, whatever webhooks and polling did."""
    yield from company_run_requests(context, qbo, "backstop", skip_busy=False)


@dg.schedule(cron_schedule="0 4 * * 0", job=qbo_full_refresh_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Weekly: full refresh of every connected company (finds the hard deletes CDC missed).")
def qbo_weekly_full_refresh_schedule(context: dg.ScheduleEvaluationContext,
                                     qbo: QBOConnectionResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """Re-read every object of every connected company, one run per company."""
    yield from company_run_requests(context, qbo, "weekly_full_refresh", skip_busy=False)


@dg.schedule(cron_schedule="*/10 * * * *", job=qbo_token_refresh_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 10 minutes: refresh QuickBooks tokens about to lapse; mark refused ones expired.")
def qbo_token_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Keep every connection's tokens alive (Intuit's access tokens last one hour)."""
    when = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
    return dg.RunRequest(run_key=f"token_refresh:{when}", tags={"qbo/trigger": "token_refresh"})
