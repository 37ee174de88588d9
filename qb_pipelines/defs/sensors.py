"""Sensors: company partitions, webhook-driven syncs and report months to refresh.

* ``qbo_company_partitions_sensor`` keeps one ``qbo_company`` partition per connected company. It
  only ever adds: a disconnected (or switched-away) company keeps its partition, and with it the
  history of its materializations and checks.
* ``qbo_webhook_sensor`` drains the webhook inbox (stored by the web app's intake) by sequence
  number, every few seconds, into incremental runs targeted at the companies and entities the
  events name. Webhooks are hints, CDC is the truth: the run does not apply the event, it runs
  CDC for those entities from their cursors, so a lost, duplicated or out-of-order event changes
  nothing but when the sync happens. ``run_key``\\ s make a re-evaluated tick idempotent. Events
  a landing run asked for by the web app's intake already covers (the fast path, tag
  ``qbo/webhook-through``: :mod:`qb_pipelines.web.dagster_launch`), or a landing of their
  entities still waiting in the queue (its CDC call is yet to come), get no second run.
* ``qbo_report_refresh_sensor`` reads the ``touched_months`` that landing runs record on their
  transaction materializations and re-materializes those (company, month) report partitions:
  a month-end adjustment booked late re-runs that month's reports. It also keeps the report
  months (``qbo_report_month``) running from the earliest month with data to the current month.
"""


import json
from collections import defaultdict
from typing import Any

import dagster as dg

from qb_pipelines.defs.assets import COMPANY_TAG, ENTITY_BY_KEY, entity_asset_key
from qb_pipelines.defs.following import THROUGH_TAG
from qb_pipelines.defs.jobs import qbo_incremental_job, qbo_reports_job
from qb_pipelines.defs.partitions import (
    QBO_COMPANY_PARTITIONS_NAME,
    QBO_REPORT_MONTHS_NAME,
    current_month,
    is_month,
    months_to_add,
    qbo_company_partitions,
    qbo_month_partitions,
    report_partition_key,
)
from qb_pipelines.defs.reports import report_asset_key
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.run_coordinator import (
    BULK_PRIORITY,
    BULK_TAG,
    PRIORITY_TAG,
    REPORTS_COMPANY_TAG,
    URGENT_PRIORITY,
)
from qb_pipelines.qbo import registry
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.companies import keys as company_keys

#: Statuses of an intake's landing run that still cover its events (a failed one does not).
_COVERING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS]
#: Statuses of a run that has not started yet.
_WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]

#: Webhook events drained per tick; the sensor runs again a few seconds later for the rest.
WEBHOOK_BATCH = 1000
#: Materialization records read per asset per tick by the report sensor.
REPORT_SENSOR_BATCH = 500


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Add a qbo_company partition for every connected QuickBooks company (never removes).")
def qbo_company_partitions_sensor(context: dg.SensorEvaluationContext,
                                  qbo: QBOConnectionResource) -> dg.SensorResult | dg.SkipReason:
    """Keep the company partitions in step with the connections store."""
    existing = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    new = [k for k in company_keys(qbo.companies()) if k not in existing]
    if not new:
        return dg.SkipReason(f"{len(existing)} company partitions, all connected companies have one")
    context.log.info("adding company partitions: %s", ", ".join(new))
    return dg.SensorResult(dynamic_partitions_requests=[qbo_company_partitions.build_add_request(new)])


# --------------------------------------------------------------------------------------- webhooks


def _field(event: Any, name: str) -> Any:
    return event.get(name) if isinstance(event, dict) else getattr(event, name, None)


def _covered(instance: dg.DagsterInstance, company: str, after: int, last: int) -> list[tuple[int, set[str]]]:
    """Landings of ``company`` whose CDC call comes after inbox events: (up to which seq, entities).

    The intake's runs asked for after event ``after`` cover the events up to their
    ``qbo/webhook-through``; a landing still waiting in the queue covers every stored event
    (``last``) of the entities it selects: it has not called CDC yet.
    """
    out = []
    for run in instance.get_runs(filters=dg.RunsFilter(tags={COMPANY_TAG: company, "qbo/trigger": "webhook"},
                                                       statuses=_COVERING), limit=20):
        through = run.tags.get(THROUGH_TAG, "")
        if through.isdigit() and int(through) > after:
            out.append((int(through), set(filter(None, run.tags.get("qbo/entities", "").split(",")))))
    for run in instance.get_runs(filters=dg.RunsFilter(tags={COMPANY_TAG: company}, statuses=_WAITING), limit=20):
        if run.job_name == qbo_incremental_job.name:
            selected = ({ENTITY_BY_KEY[k] for k in run.asset_selection if k in ENTITY_BY_KEY}
                        if run.asset_selection else set(ENTITY_BY_KEY.values()))
            out.append((last, selected))
    return out


@dg.sensor(job=qbo_incremental_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Turn stored QuickBooks webhooks into targeted incremental runs (CDC is the truth).")
def qbo_webhook_sensor(context: dg.SensorEvaluationContext, qbo: QBOConnectionResource) -> dg.SensorResult:
    """Drain the webhook inbox after the cursor into one incremental run per company touched.

    The cursor is the last inbox sequence number handled. Events of companies that are not
    connected (anymore) are dropped: their next connection starts with a full load anyway.
    """
    after = int(context.cursor or 0)
    runtime = qbo.runtime()
    events = list(runtime.inbox.drain(after, WEBHOOK_BATCH))
    if not events:
        return dg.SensorResult(skip_reason=f"no webhook event after #{after}", cursor=str(after))
    last = max(int(_field(e, "seq")) for e in events)
    touched: dict[str, set[str]] = defaultdict(set)
    seqs: dict[str, list[int]] = defaultdict(list)
    pairs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    by_realm: dict[str, list[Company]] = {}
    for event in events:
        realm = str(_field(event, "realm_id") or "")
        entity = registry.find(str(_field(event, "entity") or ""))
        if not realm or entity is None:
            continue  # an entity we do not land: nothing to sync
        if realm not in by_realm:
            by_realm[realm] = runtime.companies_for_realm(realm)
        for company in by_realm[realm]:
            touched[company.key].add(entity.name)
            seqs[company.key].append(int(_field(event, "seq")))
            pairs[company.key].append((int(_field(event, "seq")), entity.name))
    covered_by_intake = 0
    for key, events_of in pairs.items():
        runs = _covered(context.instance, key, after, last)
        left = {e for seq, e in events_of if not any(seq <= through and e in names for through, names in runs)}
        covered_by_intake += len(touched[key] - left)
        touched[key] = left
    touched = defaultdict(set, {k: v for k, v in touched.items() if v})
    existing = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    missing = sorted(k for k in touched if k not in existing)
    requests = [
        dg.RunRequest(
            # one run per company and drained range: a re-evaluated tick requests nothing twice
            run_key=f"webhook:{key}:{min(seqs[key])}-{max(seqs[key])}",
            partition_key=key,
            asset_selection=[entity_asset_key(e) for e in sorted(touched[key])],
            # webhooks are hints: land the change, leave the (QBO-reading) checks to the backstop
            asset_check_keys=[],
            # served before bulk work: the queue launches the highest dagster/priority first
            tags={COMPANY_TAG: key, "qbo/trigger": "webhook", "qbo/entities": ",".join(sorted(touched[key])),
                  PRIORITY_TAG: str(URGENT_PRIORITY)},
        )
        for key in sorted(touched)
    ]
    context.log.info("webhook events #%d..#%d: %d runs%s", after + 1, last, len(requests),
                     f" ({covered_by_intake} company entities covered by landings asked for by the web app or waiting to start)"
                     if covered_by_intake else "")
    return dg.SensorResult(
        run_requests=requests,
        cursor=str(last),
        dynamic_partitions_requests=[qbo_company_partitions.build_add_request(missing)] if missing else None,
        skip_reason=None if requests else (
            f"events #{after + 1}..#{last} are covered by landings asked for by the web app or waiting to start"
            if covered_by_intake
            else f"events #{after + 1}..#{last} name no connected company"),
    )


# ---------------------------------------------------------------------------------- report months


_FRESHNESS_REPORT_KEY = report_asset_key("ProfitAndLoss")


def _reports_fresh(instance: dg.DagsterInstance, partition_key: str, landed_at: int) -> bool:
    """Whether the month's reports were materialized after the landing that touched it.

    A first load (or ``demo``) lands the books and then materializes every month's reports: those
    months need no second run just because the load touched them.
    """
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=_FRESHNESS_REPORT_KEY, asset_partitions=[partition_key]),
        limit=1, ascending=False)
    return bool(latest.records) and latest.records[0].storage_id > landed_at


_TRANSACTION_KEYS = [entity_asset_key(e.name) for e in registry.ENTITIES if e.is_transaction]


@dg.sensor(job=qbo_reports_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Re-materialize the report months a sync touched (late month-end adjustments).")
def qbo_report_refresh_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Request the report partitions of every (company, month) a landing run changed.

    The cursor is the last event-log storage id read; each run's months are requested once
    (``run_key`` = company, month and the landing run).
    """
    after = int(context.cursor or 0)
    months: dict[tuple[str, str], tuple[str, int]] = {}
    newest = after
    ceiling: int | None = None
    for key in _TRANSACTION_KEYS:
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=REPORT_SENSOR_BATCH, ascending=True)
        for record in result.records:
            newest = max(newest, record.storage_id)
            mat = record.asset_materialization
            value = mat.metadata.get("touched_months") if mat is not None else None
            if value is None or record.partition_key is None:
                continue
            listed = value.value if hasattr(value, "value") else value
            if isinstance(listed, str):
                listed = json.loads(listed)
            for month in listed or []:
                if isinstance(month, str) and is_month(month):
                    months.setdefault((record.partition_key, month), (record.run_id, record.storage_id))
        if result.has_more and result.records:
            # more of this asset's records wait: do not move the cursor past what was not read
            last_read = result.records[-1].storage_id
            ceiling = last_read if ceiling is None else min(ceiling, last_read)
    cursor = min(newest, ceiling) if ceiling is not None else newest
    # the report months follow the data: from the earliest touched month to the current one
    adding = months_to_add(context.instance.get_dynamic_partitions(QBO_REPORT_MONTHS_NAME),
                           {month for _, month in months}, current_month())
    requests = [
        dg.RunRequest(
            run_key=f"reports:{company}:{month}:{run_id}",
            partition_key=report_partition_key(company, month),
            # reports have their own per-company limit (a landing never waits for them) and are bulk
            tags={REPORTS_COMPANY_TAG: company, "qbo/trigger": "touched_month", "qbo/month": month,
                  PRIORITY_TAG: str(BULK_PRIORITY), BULK_TAG: "true"},
        )
        for (company, month), (run_id, landed_at) in sorted(months.items())
        if not _reports_fresh(context.instance, report_partition_key(company, month), landed_at)
    ]
    return dg.SensorResult(
        run_requests=requests,
        cursor=str(cursor),
        dynamic_partitions_requests=[qbo_month_partitions.build_add_request(adding)] if adding else None,
        skip_reason=None if requests else "no landing run touched a report month",
    )

