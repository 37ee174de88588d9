"""A backfill of a company's reports is one run, over the months of its own books.

Issue 10 §7: "Materialize all" became 38 runs over 36 fixed months (2024-01 to 2026-12). Here the
report months come from what the landing touched (the first month with a transaction to now),
Dagster's own backfill planning (the function the asset backfill daemon calls) turns every
report month of two companies into one run per company, and one such run, executed on a real
emulator, store and instance, lands every report of every month and checks them, each check
result naming the company.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from qb_pipelines.definitions import defs
from qb_pipelines.defs.assets import entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.checks import REPORT_CHECKS
from qb_pipelines.defs.partitions import current_month, months_to_add, report_partition_key
from qb_pipelines.defs.reports import REPORT_ASSETS
from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.sync.reports import REPORTS
from qb_pipelines_tests.harness import DagsterStack, dagster_stack, emulator_settings

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def stack(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[DagsterStack]:
    settings = emulator_settings(f"sqlite:///{tmp_path / 'qb.sqlite'}", shared_emulator)
    with dagster_stack(settings, shared_emulator) as stack:
        yield stack


def test_a_backfill_of_a_companys_reports_is_one_run_over_its_months(stack: DagsterStack) -> None:
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.definitions.partitions.context import partition_loading_context

    assert stack.emulator is not None
    co = stack.connect(realm=seed_demo_company(stack.emulator.emu))
    landed = dg.materialize([qbo_raw_entities], partition_key=co.key, resources=stack.resources,
                            instance=stack.instance)
    assert landed.success
    (invoices,) = [e.materialization for e in landed.get_asset_materialization_events()
                   if e.materialization.asset_key == entity_asset_key("Invoice")]
    touched = invoices.metadata["touched_months"].value
    # the report months: the company's own books, from its first transaction's month to now
    months = months_to_add([], touched, current_month())
    assert months[0] == min(touched) and months[-1] == max(current_month(), max(touched))
    assert len(months) < 36
    stack.add_report_months(*months)
    other = stack.connect(name="Other Co", invoices=2)

    # "Materialize all" on the reports: every (company, month) of every report -> one run per company
    everything = [AssetKeyPartitionKey(key, str(report_partition_key(company, month)))
                  for asset in REPORT_ASSETS for key in asset.keys for company in (co.key, other.key)
                  for month in months]
    with partition_loading_context(dynamic_partitions_store=stack.instance):
        planned = build_run_requests_with_backfill_policies(everything, defs.resolve_asset_graph(), stack.instance)
    assert len(planned) == 2
    ranges = sorted((r.tags[RANGE_START], r.tags[RANGE_END]) for r in planned)
    assert ranges == sorted((str(report_partition_key(c, months[0])), str(report_partition_key(c, months[-1])))
                            for c in (co.key, other.key))
    assert all(set(r.asset_selection or ()) == {k for a in REPORT_ASSETS for k in a.keys} for r in planned)

    # one such run: every report of every month landed, each check one result naming the company
    request = next(r for r in planned if r.tags[RANGE_START].startswith(co.key))
    reports_job = dg.Definitions(assets=[*REPORT_ASSETS], asset_checks=REPORT_CHECKS,
                                 jobs=[dg.define_asset_job("reports_backfill", selection=REPORT_ASSETS)],
                                 resources=stack.resources).resolve_job_def("reports_backfill")
    run = reports_job.execute_in_process(instance=stack.instance, tags={RANGE_START: request.tags[RANGE_START],
                                                                         RANGE_END: request.tags[RANGE_END]})
    assert run.success
    by_partition: dict[str, int] = {}
    for event in run.get_asset_materialization_events():
        by_partition[str(event.partition)] = by_partition.get(str(event.partition), 0) + 1
    assert by_partition == {str(report_partition_key(co.key, m)): len(REPORTS) for m in months}
    evaluations = run.get_asset_check_evaluations()
    assert len(evaluations) == len(REPORT_CHECKS)
    for evaluation in evaluations:
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["company"].value == co.key
        assert evaluation.metadata["month"].value == f"{months[0]}..{months[-1]}"
        assert evaluation.description and co.key in evaluation.description
    stored = stack.instance.get_runs()
    assert sum(1 for r in stored if r.job_name == "reports_backfill") == 1
