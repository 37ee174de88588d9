"""The app reconciled against QuickBooks, as an asset check on ``qbo/outbox``, per company.

``app_agrees_with_qbo`` (:func:`qb_pipelines.sync.app_reconcile.reconcile_app`) compares every
mapped record's agreed values with the QuickBooks object as it landed, field by field, and fails
while the app and QuickBooks disagree: a field mismatch (entity, app id, QBO id, field, the app's
and QuickBooks' values), a mapped record deleted, voided or made inactive in QuickBooks that the
app still holds, or an app record that has failed for more than a day. Records held for more than
a day and differences a waiting push is about to settle ("pending") are listed without failing.

A change made in QuickBooks is a mismatch until the app applies it (upserts its record with the
new value; the push then writes nothing) -- or until it is put back in QuickBooks, or a review of
it is resolved and pushed.

It runs after every push of the company (it is a check of ``qbo/outbox``, so ``qbo_push_job``
evaluates it), and ``qbo_app_reconcile_schedule`` runs it daily for every connected company after
the daily backstop landing, as a dry run of the push job (the backlog is recorded, nothing is
sent), so a change made in QuickBooks is flagged even when the app pushes nothing. Store and
warehouse reads only: no QuickBooks call, no ``qbo_api`` pool slot.
"""

import json
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, qbo_company_partitions
from qb_pipelines.defs.push import CHECKS_GROUP, OUTBOX_KEY, PUSH_TAG, qbo_push_job
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.schedules import ACTIVE_STATUSES
from qb_pipelines.sync.app_reconcile import STUCK_AFTER, AppAgreement, reconcile_app
from qb_pipelines.sync.companies import UnknownCompanyError

APP_AGREES = "app_agrees_with_qbo"
#: Findings shown in the check's table (all are counted).
MAX_LISTED = 50
#: Run config of a push that sends nothing: the backlog is recorded and the checks run.
DRY_RUN_CONFIG = {"ops": {"qbo__outbox": {"ops": {"push_outbox": {"config": {"dry_run": True}}}}}}

_COLUMNS = ("kind", "entity", "app_id", "qbo_id", "field", "app", "qbo", "note")


def _cell(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def findings_table(agreement: AppAgreement, limit: int = MAX_LISTED) -> dg.TableMetadataValue:
    """The first ``limit`` findings (failing ones first) as a Dagster table."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in _COLUMNS])
    records = [dg.TableRecord({k: _cell(v) for k, v in f.as_dict().items()}) for f in agreement.findings[:limit]]
    return dg.MetadataValue.table(records=records, schema=schema)


def check_metadata(agreement: AppAgreement) -> dict[str, Any]:
    """The check's metadata: counts per kind, per entity, and the findings table."""
    meta: dict[str, Any] = {}
    for key, value in agreement.as_metadata().items():
        meta[key] = dg.MetadataValue.json(value) if isinstance(value, dict) else value
    meta["findings"] = findings_table(agreement)
    meta["listed"] = min(len(agreement.findings), MAX_LISTED)
    meta["fix"] = ("apply QuickBooks' change in the app (upsert the record with QuickBooks' value), or put the "
                   "value back in QuickBooks, or resolve the review in Sync errors; remove in the app what "
                   "QuickBooks deleted or voided; fix and retry failed records in Sync errors")
    return meta


def _spec() -> dg.AssetCheckSpec:
    # partitioned like qbo/outbox (a Dagster 1.13 preview, see defs/push.py): each company keeps its result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            APP_AGREES, asset=OUTBOX_KEY, partitions_def=qbo_company_partitions, metadata={"group": CHECKS_GROUP},
            description=(
                "The app against QuickBooks: every mapped record's agreed values against the landed QuickBooks "
                "object, field by field. Fails on a mismatch (entity, app id, QBO id, field, both values), a "
                "mapped record deleted or voided in QuickBooks that the app still holds, and an app record "
                f"failed for more than {STUCK_AFTER.days} day; lists held records and pending changes. A change "
                "made in QuickBooks is a mismatch until the app upserts its record with the new value; a change "
                "the next push will send is listed as pending, not as a mismatch."))


@dg.multi_asset_check(specs=[_spec()], name="qbo_app_reconcile_check",
                      description="The app reconciled against QuickBooks for one company (store reads only).")
def qbo_app_reconcile_check(context: dg.AssetCheckExecutionContext, qbo: QBOConnectionResource) -> Any:
    """Compare the company's mapped records with what landed (:func:`reconcile_app`)."""
    ctx = context.op_execution_context
    if not ctx.has_partition_key:
        raise dg.Failure(description="the app is reconciled per company: pick a qbo_company partition")
    company = str(ctx.partition_key)
    try:
        agreement = reconcile_app(qbo.runtime(), company)
    except UnknownCompanyError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for finding in agreement.failing[:20]:
        ctx.log.warning("%s: %s", company, finding.sentence())
    yield dg.AssetCheckResult(check_name=APP_AGREES, passed=agreement.passed, severity=dg.AssetCheckSeverity.ERROR,
                              description=agreement.description(), metadata=check_metadata(agreement))


@dg.schedule(cron_schedule="30 3 * * *", job=qbo_push_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily, after the backstop landing: reconcile the app against QuickBooks for every "
                         "connected company (a dry run of the push job: nothing is sent).")
def qbo_app_reconcile_schedule(context: dg.ScheduleEvaluationContext,
                               qbo: QBOConnectionResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """One dry-run push per connected company, whose checks include ``app_agrees_with_qbo``.

    A company with a push queued or running is skipped: that push evaluates the check when it ends.
    """
    partitions = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    when = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
    requested = 0
    for company in qbo.companies():
        if company.key not in partitions:
            continue
        if context.instance.get_runs(filters=dg.RunsFilter(tags={PUSH_TAG: company.key}, statuses=ACTIVE_STATUSES),
                                     limit=1):
            continue
        requested += 1
        yield dg.RunRequest(run_key=f"app_reconcile:{company.key}:{when}", partition_key=company.key,
                            run_config=DRY_RUN_CONFIG,
                            tags={PUSH_TAG: company.key, "qbo/trigger": "app_reconcile"})
    if not requested:
        yield dg.SkipReason("no connected company with a partition is free of a push run")
