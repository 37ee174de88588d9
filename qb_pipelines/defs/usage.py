"""Intuit's monthly read budget, per company: an asset of the month's metered calls and a check on it.

Intuit meters read calls (queries, reads, CDC, reports) per month and blocks them once the app's
tier is spent (Builder: 500,000); the store counts every read per company
(:mod:`qb_pipelines.store.usage`). Here:

* ``qbo/api_usage`` (group ``qbo_usage``, company partitions): this month's reads and writes of
  the company, against the budget ``QB_READ_BUDGET`` (read when the run starts; 500,000 by default);
  it reads the store only, never QuickBooks;
* its check ``read_budget``: passes below 80 % of the budget, **warns** from 80 % and **fails**
  (severity error) at 100 %; the description and metadata name the company;
* ``qbo_read_budget_sensor`` (every 5 minutes) materializes a company's ``qbo/api_usage`` when
  its level changes (ok, warn, over) in a month, so the check speaks up as the level is crossed
  without a run per company every few minutes. Materialize it from the UI for fresh figures.
"""


from collections.abc import Iterator

import dagster as dg

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.assets import COMPANY_TAG
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, qbo_company_partitions
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.store.usage import month_of
from qb_pipelines.sync.companies import split_company_key
from qb_pipelines.sync.usage_budget import OK, OVER, budget_status, read_budget

USAGE_GROUP = "qbo_usage"
API_USAGE_KEY = dg.AssetKey(["qbo", "api_usage"])
READ_BUDGET_CHECK = "read_budget"


def _budget() -> int:
    try:
        return read_budget()
    except SettingsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


@dg.asset(
    key=API_USAGE_KEY,
    group_name=USAGE_GROUP,
    partitions_def=qbo_company_partitions,
    kinds={"quickbooks"},
    check_specs=[dg.AssetCheckSpec(
        READ_BUDGET_CHECK, asset=API_USAGE_KEY,
        description="This month's metered read calls of the company stay under QB_READ_BUDGET "
                    "(warns from 80 %, fails at 100 %: Intuit then blocks reads until next month).",
    )],
    description="Metered QuickBooks calls of one company this month (reads and writes), against the read budget.",
)
def qbo_api_usage(context: dg.AssetExecutionContext, qbo: QBOConnectionResource) -> Iterator[
        dg.MaterializeResult | dg.AssetCheckResult]:
    """This month's read and write calls of the partition's company, and the read-budget check."""
    company = context.partition_key
    _, realm = split_company_key(company)
    counts = qbo.runtime().usage.counts(realm)
    status = budget_status(counts.reads, _budget())
    figures = {"company": company, "realm_id": realm, "month": counts.month, "reads": counts.reads,
               "writes": counts.writes, "read_budget": status.budget, "percent_of_budget": status.percent}
    yield dg.MaterializeResult(metadata=figures)
    yield dg.AssetCheckResult(
        check_name=READ_BUDGET_CHECK,
        passed=status.level == OK,
        severity=dg.AssetCheckSeverity.ERROR if status.level == OVER else dg.AssetCheckSeverity.WARN,
        description=f"{company}: {status.message}",
        metadata={**figures, "level": status.level},
    )


qbo_usage_job = dg.define_asset_job(
    name="qbo_usage_job",
    selection=dg.AssetSelection.assets(API_USAGE_KEY),
    description="This month's metered QuickBooks calls of one company, and the read-budget check.",
    tags={"qbo/mode": "usage"},
    executor_def=dg.in_process_executor,
)


@dg.sensor(job=qbo_usage_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Check a company's read budget when it crosses 80 % or 100 % (and once a month).")
def qbo_read_budget_sensor(context: dg.SensorEvaluationContext,
                           qbo: QBOConnectionResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """One usage run per company, month and budget level (``run_key`` makes each happen once)."""
    try:
        budget = read_budget()
    except SettingsError as exc:
        yield dg.SkipReason(str(exc))
        return
    partitions = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    runtime = qbo.runtime()
    month = month_of(None)
    requested = 0
    for company in qbo.companies():
        if company.key not in partitions:
            continue
        level = budget_status(runtime.usage.reads(company.realm_id, month), budget).level
        requested += 1
        yield dg.RunRequest(
            run_key=f"read_budget:{company.key}:{month}:{level}",
            partition_key=company.key,
            tags={COMPANY_TAG: company.key, "qbo/trigger": "read_budget", "qbo/read_budget_level": level},
        )
    if not requested:
        yield dg.SkipReason("no connected company with a partition")

