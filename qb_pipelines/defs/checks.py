"""Reconciliation and data quality as asset checks: prove what landed against QuickBooks itself.

Thin wrappers: each check calls a plain function of ``sync.reconcile`` or ``sync.quality``, which
returns a ``CheckOutcome``; a failed check's metadata lists the first mismatching ids and amounts
(``mismatches``) and says what would fix it (``fix``, usually the full refresh of that partition).

On each landed entity (``qbo/<entity>``, company partitions):

* ``completeness``: rows (active and inactive, not deleted) against QBO's ``COUNT(*)`` and the Id
  set (name lists and transactions);
* ``totals``: ``TotalAmt`` and ``Balance`` per id against QBO (transactions);
* ``quality``: the Great Expectations suite of the table (keys, uniqueness, dates, currency
  codes, line amounts that add up to the totals).

An entity its tenant switched off (Settings, :mod:`qb_pipelines.sync.landing_gate`) is not
landed, so its checks pass without reading QuickBooks, ``not_compared`` saying why.

These read QuickBooks page by page (as many calls as a full load), so the incremental job leaves
them out; the daily backstop job and the UI run them. They are partitioned by company like their
assets: each result is recorded against its company's partition, and says the company in its
metadata (``company``) and at the head of its description. Completeness and totals of an entity
share one pass over its pages.

On the reports (``qbo/report/<report>``, company x month partitions), **blocking**: a report that
disagrees with the landed books stops anything downstream of it in the run:

* ``receivables`` on AgedReceivables: open invoice balances against AgedReceivables per customer
  and the BalanceSheet's A/R in total;
* ``customer_balances`` on CustomerBalance;
* ``payables`` on AgedPayables: open bills less vendor credits and unapplied bill payments against
  AgedPayables per vendor and the BalanceSheet's A/P in total;
* ``vendor_balances`` on VendorBalance;
* ``trial_balance`` on TrialBalance: computed from the landed transactions;
* ``profit_and_loss`` on ProfitAndLoss: income, COGS, expenses and net income computed the same way;
* ``general_ledger`` on GeneralLedger: each account's activity in the month and its balance at the
  month's start, computed the same way.

The warehouse holds *today's* balance of each document, so the receivables, payables, customer-
and vendor-balance checks compare only the current month's reports; past months pass with "not
compared" (their as-of balances legitimately differ). Dagster does not group checks; they appear under their
asset's group, and ``qbo_checks`` names the job and selection that run them all.
"""


import json
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from qb_pipelines.defs.assets import (
    QBO_POOL,
    company_failures,
    entity_asset_key,
)
from qb_pipelines.defs.partitions import qbo_company_partitions
from qb_pipelines.defs.reports import REPORT_ASSETS, report_asset_key, report_partitions
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.qbo import registry
from qb_pipelines.store import report_tables
from qb_pipelines.sync import quality, reconcile
from qb_pipelines.sync import reports as report_mod
from qb_pipelines.sync.reconcile import CheckOutcome

if TYPE_CHECKING:  # pandas loads with the checks that read reports, not with the code location
    import pandas as pd

CHECKS_GROUP = "qbo_checks"
COMPLETENESS = "completeness"
TOTALS = "totals"
QUALITY = "quality"


def check_result(outcome: CheckOutcome, *, asset_key: dg.AssetKey | None = None,
                 check_name: str | None = None, company: str | None = None, **extra: Any) -> dg.AssetCheckResult:
    """A Dagster check result from a ``CheckOutcome``: figures, mismatches and the fix in metadata.

    ``company``: the company checked, in the metadata (``company``) and at the head of the
    description, so that every result says which company it is about wherever it is shown.
    """
    metadata: dict[str, Any] = {"company": company} if company else {}
    for key, value in {**outcome.metadata, **extra}.items():
        if isinstance(value, (dict, list, tuple)):
            metadata[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            metadata[key] = value if value is not None else ""
        else:
            metadata[key] = str(value)
    metadata["mismatches"] = dg.MetadataValue.json(json.loads(json.dumps(outcome.mismatches, default=str)))
    metadata["mismatch_count"] = int(outcome.metadata.get("mismatch_count", len(outcome.mismatches)))
    metadata["fix"] = outcome.fix or "nothing to fix"
    description = outcome.description
    if company and description and company not in description:
        description = f"{company}: {description}"
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=bool(outcome.passed),
        description=description,
        metadata=metadata,
    )


# ------------------------------------------------------------------------------------- entity checks


#: The checks of each landed entity: (name, which entities have it, description).
_ENTITY_CHECKS: tuple[tuple[str, Callable[[registry.EntityDef], bool], str], ...] = (
    (COMPLETENESS, lambda ent: ent.kind is not registry.Kind.SINGLETON,
     "Every {name} QuickBooks holds (active and inactive) is landed, and nothing else."),
    (TOTALS, lambda ent: ent.is_transaction, "{name} TotalAmt and Balance equal QuickBooks', id by id."),
    (QUALITY, lambda ent: True,
     "Great Expectations suite of qbo_{name}: keys, uniqueness, dates, currency, line totals."),
)


def _entity_check_specs() -> list[dg.AssetCheckSpec]:
    # Partitioned like their assets (one company per partition): each evaluation is recorded
    # against its company's partition, so the UI's partition column and the check's partition
    # statuses name the company. A preview feature of Dagster 1.13 (its warning is silenced here).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(check, asset=entity_asset_key(ent.name), metadata={"group": CHECKS_GROUP},
                                  description=text.format(name=ent.name), partitions_def=qbo_company_partitions)
                for ent in registry.ENTITIES for check, applies, text in _ENTITY_CHECKS if applies(ent)]


ENTITY_CHECK_SPECS = _entity_check_specs()


def _company(context: dg.AssetCheckExecutionContext) -> str:
    ctx = context.op_execution_context
    if not ctx.has_partition_key:
        raise dg.Failure(description="QuickBooks checks run for one company: pick a company partition")
    return str(ctx.partition_key)


@dg.multi_asset_check(
    name="qbo_entity_checks",
    specs=ENTITY_CHECK_SPECS,
    can_subset=True,
    pool=QBO_POOL,
    description="Reconcile landed entities with QuickBooks (counts, ids, amounts) and run their quality suites.",
)
def qbo_entity_checks(context: dg.AssetCheckExecutionContext, qbo: QBOConnectionResource,
                      warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
    """Completeness, transaction totals and quality suites of the selected entities, one company."""
    company = _company(context)
    selected: dict[str, set[str]] = {}
    for key in context.selected_asset_check_keys:
        selected.setdefault(registry.get(_entity_of(key.asset_key)).name, set()).add(key.name)
    engine = warehouse.engine()
    client = None
    switched_off = _switched_off(qbo, company)
    for ent in registry.ENTITIES:
        names = selected.get(ent.name)
        if not names:
            continue
        key = entity_asset_key(ent.name)
        if ent.name in switched_off:  # not landed on purpose: nothing to hold against QuickBooks
            for name in sorted(names):
                yield dg.AssetCheckResult(asset_key=key, check_name=name, passed=True, metadata={
                    "company": company, "not_compared": switched_off[ent.name]})
            continue
        if names & {COMPLETENESS, TOTALS}:
            with company_failures(company):
                client = client or qbo.client_for(company)
                snapshot = reconcile.qbo_snapshot(client, ent.name)
            if COMPLETENESS in names:
                yield check_result(reconcile.completeness(engine, client, company, ent.name, snapshot=snapshot),
                                   asset_key=key, check_name=COMPLETENESS, company=company)
            if TOTALS in names:
                yield check_result(reconcile.transaction_totals(engine, client, company, ent.name, snapshot=snapshot),
                                   asset_key=key, check_name=TOTALS, company=company)
        if QUALITY in names:
            yield check_result(quality.run_suite(engine, ent.name, company), asset_key=key, check_name=QUALITY,
                               company=company)


def _switched_off(qbo: QBOConnectionResource, company: str) -> dict[str, str]:
    """The entities the company's tenant switched off, with the line their checks show."""
    from qb_pipelines.sync.companies import UnknownCompanyError
    from qb_pipelines.sync.landing_gate import switched_off_reason

    try:
        tenant = qbo.company(company).tenant_key
    except UnknownCompanyError:
        return {}  # the checks that read QuickBooks say what is wrong with the company
    values = qbo.runtime().tenant_settings.get(tenant).values
    return {e.name: switched_off_reason(e.name) for e in registry.ENTITIES if not values.enabled(e.name)}


def _entity_of(asset_key: dg.AssetKey) -> str:
    from qb_pipelines.defs.assets import ENTITY_BY_KEY

    return ENTITY_BY_KEY[asset_key]


# ------------------------------------------------------------------------------------- report checks


def _read_report(engine: Any, company: str, report: str, month: str, *, empty: bool = False) -> "pd.DataFrame | None":
    """The landed partition's rows (None when none landed, unless ``empty`` accepts zero rows)."""
    frame = report_tables.read_partition(engine, company, report, month)
    if frame.empty and not empty:
        return None
    m = report_mod.parse_month(month)
    # The flattened header is not stored; the partition's month is the report's period.
    frame.attrs.update(start_period=m.start.isoformat(), end_period=m.end.isoformat())
    return frame


def _landed_empty(context: dg.AssetCheckExecutionContext, report: str, company: str, month: str) -> bool:
    """Whether this partition of ``report`` was materialized with no row (QuickBooks had none)."""
    key = f"{company}|{month}"
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=report_asset_key(report), asset_partitions=[key]), limit=1,
        ascending=False)
    if not found.records:
        return False
    mat = found.records[0].asset_materialization
    if mat is None:
        return False
    by_partition = mat.metadata.get("rows_by_partition")
    if by_partition is not None:  # a run of several partitions records each one's rows
        return (getattr(by_partition, "value", by_partition) or {}).get(key) == 0
    rows = mat.metadata.get("rows_inserted")
    return getattr(rows, "value", rows) == 0


def _not_landed(report: str, company: str, month: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False,
        description=f"{report} of {company} for {month} is not landed: nothing to compare",
        metadata={"company": company, "month": month,
                  "fix": f"materialize {report_asset_key(report).to_user_string()} partition {company}|{month}"},
    )


def _current_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _not_compared(report: str, company: str, month: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=True,
        description=(f"{report} {month}: not compared -- the warehouse holds today's balances, which only the "
                     f"current month's report ({_current_month()}) shows"),
        metadata={"compared": False, "company": company, "month": month},
    )


_REPORTS = {report_asset_key(r): a for r, a in zip(report_mod.REPORTS, REPORT_ASSETS, strict=True)}
#: Compares one report partition's rows with the landed books: (engine, company, frame, month).
_Compare = Callable[[Any, str, "pd.DataFrame", str], CheckOutcome]


def _compare_report(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, report: str,
                    compare: _Compare, *, current_month_only: bool = False) -> dg.AssetCheckResult:
    """Compare every (company, month) of the run's landed ``report`` with the landed books.

    One partition (a sensor's or a UI run): that partition's result, naming company and month.
    Several (a single-run backfill): one result for the run, failed when any partition failed,
    naming each failed (company, month) in ``failed_partitions`` and every outcome in ``partitions``.
    """
    partitions = report_partitions(context)
    results = [(company, month, _compare_one(context, warehouse, report, compare, company, month,
                                             current_month_only=current_month_only))
               for company, month in partitions]
    if len(results) == 1:
        return results[0][2]
    failed = [(c, m, r) for c, m, r in results if not r.passed]
    companies = ", ".join(sorted({c for c, _, _ in results}))
    months = sorted({m for _, m, _ in results})
    span = f"{months[0]}..{months[-1]}"
    description = (f"{report} of {companies}, {span}: {len(results) - len(failed)}/{len(results)} partitions agree"
                   + (f"; first failure {failed[0][0]}|{failed[0][1]}: {failed[0][2].description}" if failed else ""))
    return dg.AssetCheckResult(
        passed=not failed,
        description=description,
        metadata={
            "company": companies,
            "month": span,
            "failed_partitions": dg.MetadataValue.json([f"{c}|{m}" for c, m, _ in failed]),
            "partitions": dg.MetadataValue.json({f"{c}|{m}": {"passed": r.passed, "description": r.description}
                                                 for c, m, r in results}),
            "fix": (failed[0][2].metadata.get("fix").value if failed and failed[0][2].metadata.get("fix") is not None
                    else "nothing to fix"),
        },
    )


def _compare_one(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, report: str,
                 compare: _Compare, company: str, month: str, *, current_month_only: bool) -> dg.AssetCheckResult:
    """Read one partition's landed ``report`` and compare it with the landed books.

    ``current_month_only``: the check reads today's balances from the warehouse, which only the
    current month's report shows; other months pass as "not compared".
    """
    engine = warehouse.engine()
    frame = _read_report(engine, company, report, month)
    if frame is None and _landed_empty(context, report, company, month):
        # a report QuickBooks answered with no row at all (a GeneralLedger of a month before the
        # books start): landed, and compared as empty
        frame = _read_report(engine, company, report, month, empty=True)
    if frame is None:
        return _not_landed(report, company, month)
    if current_month_only and month != _current_month():
        return _not_compared(report, company, month)
    return check_result(compare(engine, company, frame, month), compared=True, company=company, month=month)


def _report_check(report: str, name: str, description: str, compare: _Compare, *,
                  current_month_only: bool = False, additional_deps: tuple[str, ...] = ()
                  ) -> dg.AssetChecksDefinition:
    """A blocking check of one report's partition against the landed books (see ``_compare_report``)."""

    @dg.asset_check(
        asset=_REPORTS[report_asset_key(report)],
        name=name,
        blocking=True,
        additional_deps=[report_asset_key(r) for r in additional_deps],
        description=description,
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        return _compare_report(context, warehouse, report, compare, current_month_only=current_month_only)

    return _check


def _receivables(engine: Any, company: str, aged: "pd.DataFrame", month: str) -> CheckOutcome:
    balance_sheet = _read_report(engine, company, "BalanceSheet", month)
    return reconcile.open_receivables(engine, company, aged, balance_sheet,
                                      as_of=report_mod.parse_month(month).end.isoformat())


qbo_receivables_check = _report_check(
    "AgedReceivables", "receivables",
    "Open invoice balances landed equal AgedReceivables per customer and the balance sheet's A/R.",
    _receivables, current_month_only=True, additional_deps=("BalanceSheet",))
qbo_customer_balances_check = _report_check(
    "CustomerBalance", "customer_balances", "Landed customer balances equal QuickBooks' CustomerBalance report.",
    lambda engine, company, frame, _month: reconcile.customer_balances(engine, company, frame),
    current_month_only=True)


def _payables(engine: Any, company: str, aged: "pd.DataFrame", month: str) -> CheckOutcome:
    balance_sheet = _read_report(engine, company, "BalanceSheet", month)
    return reconcile.open_payables(engine, company, aged, balance_sheet,
                                   as_of=report_mod.parse_month(month).end.isoformat())


qbo_payables_check = _report_check(
    "AgedPayables", "payables",
    "Open bills less vendor credits and unapplied bill payments equal AgedPayables per vendor and the balance "
    "sheet's A/P.",
    _payables, current_month_only=True, additional_deps=("BalanceSheet",))
qbo_vendor_balances_check = _report_check(
    "VendorBalance", "vendor_balances", "Landed vendor balances equal QuickBooks' VendorBalance report.",
    lambda engine, company, frame, _month: reconcile.vendor_balances(engine, company, frame),
    current_month_only=True)
qbo_trial_balance_check = _report_check(
    "TrialBalance", "trial_balance",
    "A trial balance computed from the landed transactions equals QuickBooks' TrialBalance.",
    lambda engine, company, frame, _month: reconcile.trial_balance(engine, company, frame))
qbo_profit_and_loss_check = _report_check(
    "ProfitAndLoss", "profit_and_loss",
    "Income, COGS, expenses and net income from the landed transactions equal QuickBooks' P&L.",
    lambda engine, company, frame, _month: reconcile.profit_and_loss(engine, company, frame))
qbo_general_ledger_check = _report_check(
    "GeneralLedger", "general_ledger",
    "Each account's activity in the month and its beginning balance, from the landed transactions, equal "
    "QuickBooks' GeneralLedger.",
    lambda engine, company, frame, _month: reconcile.general_ledger(engine, company, frame))

REPORT_CHECKS = [qbo_receivables_check, qbo_customer_balances_check, qbo_payables_check, qbo_vendor_balances_check,
                 qbo_trial_balance_check, qbo_profit_and_loss_check, qbo_general_ledger_check]
