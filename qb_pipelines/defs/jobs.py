"""Jobs: what the schedules and sensors launch, and what a data engineer launches by name.

=============================== ==================================================================
``qbo_incremental_job``         land changes (CDC) for one company; no checks (they cost a full read)
``qbo_full_refresh_job``        re-read every object of one company (finds hard deletes), with checks
``qbo_daily_backstop_job``      incremental landing followed by every entity check, one company
``qbo_reports_job``             every report of (company, month) partitions (a range: one run), blocking checks
``qbo_token_refresh_job``       refresh tokens about to lapse; mark refused ones "session expired"
``qbo_push_job``                push one company's outbox to QuickBooks (defined in ``defs/push.py``)
=============================== ==================================================================

The entity checks run in a run that also lands the company (the backstop, or the full refresh):
an incremental landing first costs one or two calls and makes the checks compare fresh rows.
They are partitioned by company like their assets, so each result is recorded against its
company. The incremental job (polling, webhooks) selects no check at all: those runs record no
check result, and each check's latest real result stays the one shown.

Report runs are bulk work: one run per company for a backfill of its months (the report assets'
single-run backfill policy), queued behind webhook runs (see ``run_coordinator.py``).
"""


from datetime import timedelta

import dagster as dg

from qb_pipelines.defs.assets import INCREMENTAL_JOB_NAME, INGEST_OP_NAME, qbo_raw_entities
from qb_pipelines.defs.reports import REPORT_ASSETS
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.sync.connections import refresh_due

RAW_SELECTION = dg.AssetSelection.assets(qbo_raw_entities)
REPORTS_SELECTION = dg.AssetSelection.assets(*REPORT_ASSETS)

qbo_incremental_job = dg.define_asset_job(
    name=INCREMENTAL_JOB_NAME,
    selection=RAW_SELECTION.without_checks(),
    description="Land one company's QuickBooks changes since the stored cursors (one CDC call).",
    tags={"qbo/mode": "incremental"},
    # One step: a separate step process only adds ~3 s of code loading to every webhook run.
    executor_def=dg.in_process_executor,
)

qbo_full_refresh_job = dg.define_asset_job(
    name="qbo_full_refresh_job",
    selection=RAW_SELECTION,
    config={"ops": {INGEST_OP_NAME: {"config": {"full_refresh": True}}}},
    description="Re-read every QuickBooks object of one company, flag hard deletes CDC missed, then reconcile.",
    tags={"qbo/mode": "full"},
)

qbo_daily_backstop_job = dg.define_asset_job(
    name="qbo_daily_backstop_job",
    selection=RAW_SELECTION,
    description="Incremental landing of one company, then every reconciliation and quality check.",
    tags={"qbo/mode": "backstop"},
)

qbo_reports_job = dg.define_asset_job(
    name="qbo_reports_job",
    selection=REPORTS_SELECTION,
    description="Land every report of one company and month and check them against the landed books.",
    tags={"qbo/mode": "reports"},
)


class TokenRefreshConfig(dg.Config):
    """How far ahead tokens are refreshed."""

    within_minutes: int = 15


@dg.op(description="Refresh access tokens lapsing soon (and refresh tokens over a day old).",
       out=dg.Out(dg.Nothing))
def qbo_refresh_tokens(context: dg.OpExecutionContext, config: TokenRefreshConfig,
                       qbo: QBOConnectionResource) -> dg.Output[None]:
    """Keep every connection alive; connections Intuit refuses become "session expired"."""
    runtime = qbo.runtime()
    summary = refresh_due(runtime.connections, runtime.oauth, timedelta(minutes=config.within_minutes))
    result = summary.as_dict()
    context.log.info("token refresh: %s", result)
    return dg.Output(None, metadata={"refreshed": len(summary.refreshed), "expired": len(summary.expired),
                                       "errors": len(summary.errors)})


@dg.job(description="Refresh QuickBooks tokens before they lapse and mark expired connections.",
        tags={"qbo/mode": "token_refresh"})
def qbo_token_refresh_job() -> None:
    qbo_refresh_tokens()
