"""QuickBooks' financial reports as assets: one per report, partitioned by company and month.

``qbo/report/profit_and_loss``, ``balance_sheet``, ``trial_balance``, ``aged_receivables``,
``customer_balance``, ``aged_payables``, ``vendor_balance`` and ``general_ledger`` (group
``qbo_reports``): each partition asks QuickBooks for one month of one
company (one API call, ``sync.reports.fetch_month``), flattens the nested report into tidy rows
with pandas (``sync.reports.flatten``) and replaces that (company, report, month) partition of
``qbo_report_row`` atomically (``store.report_tables.replace_partition``).

They depend on the landed entities the reconciliation checks compare them with, so the lineage
shows which tables a report proves. Re-materializing months touched by a sync (a month-end
adjustment dated in March re-runs March) is the job of ``qbo_report_refresh_sensor``, which reads
the ``touched_months`` the landing run recorded; an automation condition could not do it,
because the raw assets are partitioned by company only, so any change would mark every month of
that company stale.
"""

import warnings

import dagster as dg

from qb_pipelines.defs.assets import (
    QBO_POOL,
    QBO_RETRY_POLICY,
    company_failures,
    entity_asset_key,
)
from qb_pipelines.defs.partitions import COMPANY_DIMENSION, MONTH_DIMENSION, qbo_company_month_partitions
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.store import report_tables
from qb_pipelines.store.warehouse import snake
from qb_pipelines.sync import reports as report_mod
from qb_pipelines.sync.reconcile import AP_PARTY, AR_PARTY, ledger_sources, payables_sources, receivables_sources

REPORTS_GROUP = "qbo_reports"

#: The landed entities each report is reconciled with (its lineage), as the checks read them: the
#: statements and the general ledger against the ledger rebuilt from every posting transaction,
#: the receivables (payables) against the customers (vendors) and the documents that move their
#: balances.
REPORT_DEPS: dict[str, tuple[str, ...]] = {
    "ProfitAndLoss": ledger_sources(),
    "BalanceSheet": ledger_sources(),
    "TrialBalance": ledger_sources(),
    "AgedReceivables": (AR_PARTY, *receivables_sources()),
    "CustomerBalance": (AR_PARTY,),
    "AgedPayables": (AP_PARTY, *payables_sources()),
    "VendorBalance": (AP_PARTY,),
    "GeneralLedger": ledger_sources(),
}

_DESCRIPTIONS = {
    "ProfitAndLoss": "Income, cost of goods sold and expenses of the month (accrual basis).",
    "BalanceSheet": "Assets, liabilities and equity as of the month's last day (accrual basis).",
    "TrialBalance": "Debit and credit balance of every account as of the month's last day.",
    "AgedReceivables": "Open customer balances aged as of the month's last day.",
    "CustomerBalance": "Each customer's open balance as of the month's last day.",
    "AgedPayables": "Open vendor balances aged as of the month's last day.",
    "VendorBalance": "What is owed to each vendor as of the month's last day.",
    "GeneralLedger": "Every posting of the month, account by account, with beginning and running balances.",
}


def report_asset_key(report: str) -> dg.AssetKey:
    """``qbo/report/<snake_case name>`` (``qbo/report/profit_and_loss``)."""
    return dg.AssetKey(["qbo", "report", snake(report)])


REPORT_BY_KEY: dict[dg.AssetKey, str] = {report_asset_key(r): r for r in report_mod.REPORTS}


def _split(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
    else:
        dims = dict(zip(sorted((COMPANY_DIMENSION, MONTH_DIMENSION)), str(key).split("|"), strict=True))
    return dims[COMPANY_DIMENSION], dims[MONTH_DIMENSION]


def report_partitions(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[tuple[str, str]]:
    """Every ``(company, month)`` of the run, sorted: one partition, or a single-run backfill's range.

    A backfill of report partitions is ONE run per company (``BackfillPolicy.single_run``: Dagster
    groups the backfill's (company, month) keys by company, or by month when fewer months than
    companies are asked for), so the assets and their checks handle every key of the run.
    """
    ctx = context.op_execution_context if isinstance(context, dg.AssetCheckExecutionContext) else context
    if not ctx.has_partition_key and not ctx.has_partition_key_range:
        raise dg.Failure(description="report assets and their checks run for (company, month) partitions: "
                                     "pick one or a range")
    return sorted(_split(key) for key in ctx.partition_keys)


def split_report_partition(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[str, str]:
    """``(company, month)`` of the run's report partition (a run of exactly one partition)."""
    ctx = context.op_execution_context if isinstance(context, dg.AssetCheckExecutionContext) else context
    if not ctx.has_partition_key:
        raise dg.Failure(description="this step runs for one (company, month) partition")
    return _split(ctx.partition_key)


def _build_report_asset(report: str) -> dg.AssetsDefinition:
    with warnings.catch_warnings():  # `backfill_policy` is a beta parameter of @asset in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _report_asset(report)


def _report_asset(report: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=report_asset_key(report),
        group_name=REPORTS_GROUP,
        kinds={"quickbooks", "sql", "pandas"},
        partitions_def=qbo_company_month_partitions,
        deps=[entity_asset_key(e) for e in REPORT_DEPS[report]],
        pool=QBO_POOL,
        retry_policy=QBO_RETRY_POLICY,
        # a backfill ("Materialize all", a company's months) is one run per company, not one per month
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=f"QuickBooks {report}: {_DESCRIPTIONS[report]} Tidy rows in `qbo_report_row`.",
        metadata={"qbo_report": report, "table": report_tables.report_row.name},
    )
    def _report(context: dg.AssetExecutionContext, qbo: QBOConnectionResource,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
        partitions = report_partitions(context)
        engine = warehouse.engine()
        rows: dict[str, int] = {}
        replaced = calls = 0
        periods: list[str] = []
        for company, month in partitions:
            with company_failures(company):
                client = qbo.client_for(company)
                report_json = report_mod.fetch_month(client, report, month)
            frame = report_mod.flatten(report_json)
            written = report_tables.replace_partition(engine, company, report, month, frame)
            header = report_json.get("Header") or {}
            rows[f"{company}|{month}"] = written["inserted"]
            replaced += written["deleted"]
            calls += client.stats.api_calls
            periods.append(f"{header.get('StartPeriod', '')}..{header.get('EndPeriod', '')}")
        companies = sorted({c for c, _ in partitions})
        months = sorted({m for _, m in partitions})
        if len(partitions) > 1:
            context.log.info("%s: %d partitions (%s, %s..%s) in one run", report, len(partitions),
                             ", ".join(companies), months[0], months[-1])
        # In a single-run backfill Dagster records this one result on every partition of the run:
        # `rows_by_partition` says which rows belong to which (company, month).
        return dg.MaterializeResult(
            metadata={
                "company": ", ".join(companies),
                "month": months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}",
                "partitions": len(partitions),
                "report_period": periods[0] if len(periods) == 1 else f"{periods[0]} ... {periods[-1]}",
                "rows_inserted": sum(rows.values()),
                "rows_by_partition": dg.MetadataValue.json(rows),
                "rows_replaced": replaced,
                "api_calls": calls,
                "dagster/row_count": sum(rows.values()),
            }
        )

    return _report


REPORT_ASSETS: list[dg.AssetsDefinition] = [_build_report_asset(r) for r in report_mod.REPORTS]
"""One asset per report of :data:`qb_pipelines.sync.reports.REPORTS`."""
