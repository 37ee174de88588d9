"""The whole company landed in this process: every entity, every report month, every check."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from qb_pipelines.demo.config import Out

__all__ = ["QUIET", "LoadSummary", "land_in_process"]


@dataclass
class LoadSummary:
    """What the in-process materializations landed and proved.

    Attributes:
        entities: registry entity -> ``{"mode", "rows", "inserted", "api_calls"}``.
        reports: report month -> number of report assets materialized.
        checks: ``"<asset>:<check>[@month]"`` -> passed.
        failures: what did not land or did not pass, in words.
        seconds: wall time.
        months: the months the landing touched (``YYYY-MM``): where the books have transactions.
    """

    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    months: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


#: In-process runs log to the console at DEBUG by default: keep the demo's output to its summary
#: (every event is still in the instance, for the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _meta_value(value: Any) -> Any:
    return getattr(value, "value", value)


def land_in_process(instance: Any, company: str, out: Out, *, with_reports: bool = True,
                    with_checks: bool = True) -> LoadSummary:
    """Materialize every entity (and report month) of ``company`` in this process, with checks.

    Uses the code location's own jobs (``qbo_daily_backstop_job`` lands every entity and runs
    the entity checks; ``qbo_reports_job`` lands every report of one month with their
    blocking checks), so what runs is exactly what the daemon and the UI run, against
    ``instance`` (the demo's ``DAGSTER_HOME``). Report months: every month the load touched that
    has a partition, and the current month.

    The resources read their settings from ``os.environ`` (set it with :func:`demo_environment`).
    """
    from qb_pipelines.definitions import defs
    from qb_pipelines.defs.assets import ENTITY_BY_KEY
    from qb_pipelines.defs.partitions import (
        QBO_COMPANY_PARTITIONS_NAME,
        QBO_REPORT_MONTHS_NAME,
        current_month,
        months_to_add,
        report_partition_key,
    )
    from qb_pipelines.qbo import registry
    from qb_pipelines.sync.reports import REPORTS

    summary = LoadSummary()
    t0 = time.perf_counter()
    if company not in instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME):
        instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [company])

    job_name = "qbo_daily_backstop_job" if with_checks else "qbo_incremental_job"
    out(f"landing every QuickBooks entity of {company} ({job_name}, in-process) ...")
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=company, instance=instance, raise_on_error=False, run_config=QUIET,
        tags={"qbo/company": company, "qbo/trigger": "demo"})
    months: set[str] = set()
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        entity = ENTITY_BY_KEY.get(mat.asset_key)
        if entity is None:
            continue
        meta = {k: _meta_value(v) for k, v in mat.metadata.items()}
        summary.entities[entity] = {"mode": meta.get("mode"), "inserted": meta.get("rows_inserted", 0),
                                    "updated": meta.get("rows_updated", 0), "api_calls": meta.get("api_calls", 0)}
        listed = meta.get("touched_months") or []
        months |= set(json.loads(listed) if isinstance(listed, str) else listed)
    summary.months = sorted(months)
    missing = [e.name for e in registry.ENTITIES if e.name not in summary.entities]
    if not result.success:
        summary.failures.append(f"the landing run {result.run_id} failed: {_run_failure(result)}")
    if missing:
        summary.failures.append(f"entities not landed: {', '.join(missing)}")
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        summary.checks[name] = evaluation.passed
    checked = f", {sum(summary.checks.values())}/{len(summary.checks)} entity checks passed" if with_checks else ""
    out(f"  {len(summary.entities)}/{len(registry.ENTITIES)} entities landed, "
        f"{sum(int(v['inserted'] or 0) for v in summary.entities.values()):,} rows{checked}")

    if with_reports:
        # the report months follow the books: from the first month with a transaction to now,
        # as the report sensor keeps them; all of them in ONE run (a single-run backfill's range)
        existing = instance.get_dynamic_partitions(QBO_REPORT_MONTHS_NAME)
        adding = months_to_add(existing, months, current_month())
        if adding:
            instance.add_dynamic_partitions(QBO_REPORT_MONTHS_NAME, adding)
        wanted = sorted(m for m in {*existing, *adding} if m >= min(months | {current_month()}))
        reports_job = defs.resolve_job_def("qbo_reports_job")
        out(f"landing the {len(REPORTS)} reports for {len(wanted)} months ({wanted[0]}..{wanted[-1]}) "
            "in one run, with their checks ...")
        run = reports_job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET,
            tags={"qbo/company-reports": company, "qbo/trigger": "demo",
                  "dagster/asset_partition_range_start": str(report_partition_key(company, wanted[0])),
                  "dagster/asset_partition_range_end": str(report_partition_key(company, wanted[-1]))})
        for event in run.get_asset_materialization_events():
            month = str(event.partition).rsplit("|", 1)[-1] if event.partition else "?"
            summary.reports[month] = summary.reports.get(month, 0) + 1
        for evaluation in run.get_asset_check_evaluations():
            summary.checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = evaluation.passed
        if not run.success:
            summary.failures.append(f"the reports run {run.run_id} failed: {_run_failure(run)}")
        short = sorted(m for m in wanted if summary.reports.get(m, 0) != len(REPORTS))
        if run.success and short:
            summary.failures.append(f"reports missing for {', '.join(short[:6])}")
        out(f"  {sum(summary.reports.values())} report partitions landed over {len(wanted)} months")
    failed = sorted(k for k, passed in summary.checks.items() if not passed)
    if failed:
        summary.failures.append(f"checks failed: {', '.join(failed[:20])}" + (" ..." if len(failed) > 20 else ""))
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_failure(result: Any) -> str:
    for event in result.all_events:
        if event.is_step_failure or event.is_failure:
            data = getattr(event.event_specific_data, "error", None)
            return (getattr(data, "message", None) or event.message or "failed").strip().splitlines()[0][:300]
    return "see the run in the Dagster UI"
